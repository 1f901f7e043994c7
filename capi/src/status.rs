//! Status codes, the thread's last error message, and the guard every exported function runs
//! its body in: an `Err` or a panic becomes a status code and a message, never an unwind
//! across the C boundary.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use sluice::api::ApiError;

/// What a call did; `SLUICE_OK` is 0, every failure sets the thread's last error message.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SluiceStatus {
    /// Success.
    SluiceOk = 0,
    /// The caller's input is at fault: the model file, the prompt, an option out of range.
    SluiceBadInput = 1,
    /// The machine failed: an I/O error, memory, a device.
    SluiceRuntime = 2,
    /// A null pointer where one is required, or a string that is not UTF-8.
    SluiceInvalidArgument = 3,
    /// An internal error was caught at the boundary (a bug in sluice; the engine that was in
    /// use must be freed).
    SluiceInternal = 4,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `msg` as this thread's last error (interior NULs become spaces).
pub fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// This thread's last error message: valid until the next sluice call on this thread.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// A failure of an exported call: its status and message.
pub struct Failure {
    pub status: SluiceStatus,
    pub message: String,
}

impl Failure {
    /// A null pointer or a bad string.
    pub fn argument(message: impl Into<String>) -> Failure {
        Failure {
            status: SluiceStatus::SluiceInvalidArgument,
            message: message.into(),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure {
            status: match &e {
                ApiError::Poisoned => SluiceStatus::SluiceInternal,
                e if e.is_bad_input() => SluiceStatus::SluiceBadInput,
                _ => SluiceStatus::SluiceRuntime,
            },
            message: e.to_string(),
        }
    }
}

/// Runs `body`, turning its error or panic into a status and the thread's last error.
pub fn guard(body: impl FnOnce() -> Result<(), Failure>) -> SluiceStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error("");
            SluiceStatus::SluiceOk
        }
        Ok(Err(f)) => {
            set_last_error(&f.message);
            f.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error in sluice: {what}"));
            SluiceStatus::SluiceInternal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: the pointer is this thread's live message.
        unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let s = guard(|| panic!("boom at the boundary"));
        assert_eq!(s, SluiceStatus::SluiceInternal);
        assert_eq!(last(), "internal error in sluice: boom at the boundary");
        let s = guard(|| -> Result<(), Failure> { panic!("{}", String::from("formatted")) });
        assert_eq!(s, SluiceStatus::SluiceInternal);
        assert!(last().ends_with("formatted"));
    }

    #[test]
    fn errors_keep_their_status_and_success_clears_the_message() {
        let s = guard(|| Err(Failure::argument("x is null")));
        assert_eq!(
            (s, last().as_str()),
            (SluiceStatus::SluiceInvalidArgument, "x is null")
        );
        let bad = ApiError::Option("ctx must be at least 2".into());
        assert_eq!(guard(|| Err(bad.into())), SluiceStatus::SluiceBadInput);
        let machine = ApiError::Cancelled;
        assert_eq!(guard(|| Err(machine.into())), SluiceStatus::SluiceRuntime);
        assert_eq!(
            guard(|| Err(ApiError::Poisoned.into())),
            SluiceStatus::SluiceInternal
        );
        assert_eq!(guard(|| Ok(())), SluiceStatus::SluiceOk);
        assert_eq!(last(), "");
        set_last_error("with\0nul");
        assert_eq!(last(), "with nul");
    }
}

//! Calls into the `tokenizers` crate that may panic on input the user controls, turned into
//! errors. A `tokenizer.json` carries its own pre-tokenizer regexes, and oniguruma panics (in
//! the `onig` crate) when one backtracks past its retry limit: a hostile or careless pattern
//! such as `(a+)+b` on a run of `a`s. Such a panic is caught here and its message becomes
//! the error; while a guarded call runs, the process's panic hook stays quiet for that thread,
//! so the user sees one clear error, not a panic report followed by it.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs a guarded call.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once per process, a panic hook that says nothing for panics inside a guarded
/// call and hands every other panic to the hook that was there before.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it becomes `Err` with the panic's message.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_quiet_hook();
    let was = GUARDED.with(|g| g.replace(true));
    // The guarded calls build a tokenizer or only read one (`encode_fast` takes `&self`), so
    // nothing they may leave half-done is seen again after a panic.
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    out.map_err(|payload| message(payload.as_ref()))
}

/// A panic payload's text.
fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_guard_lifts() {
        assert_eq!(guarded(|| 7), Ok(7));
        let e = guarded(|| -> u32 { panic!("retry-limit-in-match over") }).unwrap_err();
        assert_eq!(e, "retry-limit-in-match over");
        let n = 3;
        let e = guarded(|| -> u32 { panic!("formatted {n}") }).unwrap_err();
        assert_eq!(e, "formatted 3");
        assert!(
            !GUARDED.with(Cell::get),
            "the flag is cleared after a guarded call"
        );
    }
}

//! A finished generation as C sees it: text (NUL-terminated, with its length), token ids, stop
//! reason, timings; read through accessor functions and freed with `sluice_completion_free`.

use std::ffi::{c_char, CStr};

use sluice::api::Completion;
use sluice::engine::session::StopReason;

/// A finished generation (opaque; free with `sluice_completion_free`).
pub struct SluiceCompletion {
    /// The text's bytes and a NUL.
    text: Vec<u8>,
    tokens: Vec<u32>,
    prompt_tokens: usize,
    /// "length", "eos", "stop" or "interrupted", NUL-terminated.
    stop_reason: &'static CStr,
    prefill_s: f64,
    decode_s: f64,
}

impl SluiceCompletion {
    /// The C view of a completion.
    pub fn new(c: Completion) -> SluiceCompletion {
        let mut text = c.text.into_bytes();
        text.push(0);
        let stop_reason = match c.stop_reason {
            StopReason::Length => c"length",
            StopReason::Eos => c"eos",
            StopReason::Stop => c"stop",
            StopReason::Interrupted => c"interrupted",
        };
        SluiceCompletion {
            text,
            tokens: c.tokens,
            prompt_tokens: c.prompt_tokens.len(),
            stop_reason,
            prefill_s: c.prefill_s,
            decode_s: c.decode_s,
        }
    }
}

/// The generated text, NUL-terminated UTF-8 (it may itself hold a NUL: see
/// `sluice_completion_text_len`); valid until the completion is freed.
///
/// # Safety
/// `c` is a live completion.
#[no_mangle]
pub unsafe extern "C" fn sluice_completion_text(c: *const SluiceCompletion) -> *const c_char {
    // SAFETY: a live completion by the caller's promise.
    match unsafe { c.as_ref() } {
        Some(c) => c.text.as_ptr().cast(),
        None => c"".as_ptr(),
    }
}

/// The text's length in bytes (the NUL not counted).
///
/// # Safety
/// `c` is a live completion.
#[no_mangle]
pub unsafe extern "C" fn sluice_completion_text_len(c: *const SluiceCompletion) -> usize {
    // SAFETY: a live completion by the caller's promise.
    unsafe { c.as_ref() }.map_or(0, |c| c.text.len() - 1)
}

/// The generated token ids; `*n_tokens` receives their count. Valid until the completion is
/// freed.
///
/// # Safety
/// `c` is a live completion; `n_tokens` is writable.
#[no_mangle]
pub unsafe extern "C" fn sluice_completion_tokens(
    c: *const SluiceCompletion,
    n_tokens: *mut usize,
) -> *const u32 {
    // SAFETY: a live completion by the caller's promise.
    let (ptr, n) = match unsafe { c.as_ref() } {
        Some(c) => (c.tokens.as_ptr(), c.tokens.len()),
        None => (std::ptr::null(), 0),
    };
    if !n_tokens.is_null() {
        // SAFETY: non-null and writable by the caller's promise.
        unsafe { *n_tokens = n };
    }
    ptr
}

/// The prompt's length in tokens.
///
/// # Safety
/// `c` is a live completion.
#[no_mangle]
pub unsafe extern "C" fn sluice_completion_prompt_tokens(c: *const SluiceCompletion) -> usize {
    // SAFETY: a live completion by the caller's promise.
    unsafe { c.as_ref() }.map_or(0, |c| c.prompt_tokens)
}

/// Why generation ended: "length", "eos", "stop" or "interrupted" (a static string).
///
/// # Safety
/// `c` is a live completion.
#[no_mangle]
pub unsafe extern "C" fn sluice_completion_stop_reason(
    c: *const SluiceCompletion,
) -> *const c_char {
    // SAFETY: a live completion by the caller's promise.
    unsafe { c.as_ref() }.map_or(c"".as_ptr(), |c| c.stop_reason.as_ptr())
}

/// Seconds spent on the prompt, and on the generated tokens after it.
///
/// # Safety
/// `c` is a live completion; the outputs are writable or null.
#[no_mangle]
pub unsafe extern "C" fn sluice_completion_seconds(
    c: *const SluiceCompletion,
    prefill_s: *mut f64,
    decode_s: *mut f64,
) {
    // SAFETY: a live completion by the caller's promise.
    let (p, d) = unsafe { c.as_ref() }.map_or((0.0, 0.0), |c| (c.prefill_s, c.decode_s));
    // SAFETY: each output is null or writable by the caller's promise.
    unsafe {
        if let Some(x) = prefill_s.as_mut() {
            *x = p;
        }
        if let Some(x) = decode_s.as_mut() {
            *x = d;
        }
    }
}

/// Frees a completion (null is ignored).
///
/// # Safety
/// `c` came from sluice and is not used after this call.
#[no_mangle]
pub unsafe extern "C" fn sluice_completion_free(c: *mut SluiceCompletion) {
    if !c.is_null() {
        // SAFETY: made by Box::into_raw in sluice_generate_batch, freed once.
        drop(unsafe { Box::from_raw(c) });
    }
}

//! Small AVX2 building blocks shared by the kernels: loads, unpacking, integer pair sums and the
//! horizontal float sums whose order the scalar twins copy (`cpu::dot::lanes`).
//!
//! Contract of every function here: call it only while AVX2, FMA and F16C are available (i.e.
//! from a kernel compiled with those features, itself reached through an `Avx2` token). They are
//! `#[inline(always)]` so they become part of that kernel's code.

use std::arch::x86_64::*;

/// Loads 8 floats from the start of `s` (any alignment). Panics if `s` is shorter.
#[inline(always)]
pub(super) unsafe fn load_f32x8(s: &[f32]) -> __m256 {
    assert!(s.len() >= 8);
    // SAFETY: 8 readable floats (asserted); `loadu` takes any alignment; AVX per module contract.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

/// Stores 32 bytes at the start of `out` (any alignment). Panics if `out` is shorter.
#[inline(always)]
pub(super) unsafe fn store_u8x32(out: &mut [u8], v: __m256i) {
    assert!(out.len() >= 32);
    // SAFETY: 32 writable bytes (asserted); `storeu` takes any alignment; AVX per module contract.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) }
}

/// Stores 16 bytes at the start of `out` (any alignment). Panics if `out` is shorter.
#[inline(always)]
pub(super) unsafe fn store_u8x16(out: &mut [u8], v: __m128i) {
    assert!(out.len() >= 16);
    // SAFETY: 16 writable bytes (asserted); `storeu` takes any alignment; SSE2 is baseline.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), v) }
}

//! AVX2 twins of `cpu::dot::float`: F16, BF16 and F32 dots over raw little-endian rows.

use std::arch::x86_64::*;

use super::safe_kernel;
use super::util::{hsum_f32x8, load_x16, load_x32};
use crate::cpu::dot::float::{bf16_finish, f16_finish, f32_finish, tail_start, FLOAT_STEP};

/// Reduces four accumulators as ggml's `GGML_F32x8_REDUCE`: `(a0+a2)+(a1+a3)`, then two `hadd`s.
#[inline(always)]
unsafe fn reduce_hadd(a: [__m256; 4]) -> f32 {
    // SAFETY: AVX per the calling kernel's contract; register-only operations.
    unsafe {
        let v = _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[1], a[3]));
        let t0 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let t1 = _mm_hadd_ps(t0, t0);
        _mm_cvtss_f32(_mm_hadd_ps(t1, t1))
    }
}

/// 8 f16 values (16 bytes) widened to f32.
#[inline(always)]
unsafe fn load_f16x8(b: &[u8]) -> __m256 {
    // SAFETY: F16C per the calling kernel's contract; the load checks its length.
    unsafe { _mm256_cvtph_ps(load_x16(b)) }
}

/// 8 bf16 values (16 bytes) widened to f32 (`bits << 16`).
#[inline(always)]
unsafe fn load_bf16x8(b: &[u8]) -> __m256 {
    // SAFETY: AVX2 per the calling kernel's contract; the load checks its length.
    unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(load_x16(b)))) }
}

/// 8 f32 values (32 bytes).
#[inline(always)]
unsafe fn load_f32x8_bytes(b: &[u8]) -> __m256 {
    // SAFETY: AVX per the calling kernel's contract; the load checks its length.
    unsafe { _mm256_castsi256_ps(load_x32(b)) }
}

/// Runs the 4-accumulator vector loop over whole 32-element steps of `esize`-byte elements.
#[inline(always)]
unsafe fn four_accumulators(
    x: &[u8],
    y: &[u8],
    n: usize,
    esize: usize,
    load: unsafe fn(&[u8]) -> __m256,
) -> [__m256; 4] {
    let step = FLOAT_STEP * esize;
    let vec = 8 * esize;
    let body = tail_start(n) * esize;
    // SAFETY: AVX2+FMA per the calling kernel's contract; each load checks its length.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (xs, ys) in x[..body]
            .chunks_exact(step)
            .zip(y[..body].chunks_exact(step))
        {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(load(&xs[j * vec..]), load(&ys[j * vec..]), *a);
            }
        }
        acc
    }
}

/// F16 · F16.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn f16_f16_imp(x: &[u8], y: &[u8]) -> f32 {
    let n = x.len().min(y.len()) / 2;
    // SAFETY: the features are present (fn contract).
    let v = unsafe { reduce_hadd(four_accumulators(x, y, n, 2, load_f16x8)) };
    f16_finish(x, y, n, v)
}

/// BF16 · BF16.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_bf16_imp(x: &[u8], y: &[u8]) -> f32 {
    let n = x.len().min(y.len()) / 2;
    // SAFETY: the features are present (fn contract).
    let v = unsafe {
        let c = four_accumulators(x, y, n, 2, load_bf16x8);
        hsum_f32x8(_mm256_add_ps(
            _mm256_add_ps(c[0], c[2]),
            _mm256_add_ps(c[1], c[3]),
        ))
    };
    bf16_finish(x, y, n, v)
}

/// F32 · F32.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_f32_imp(x: &[u8], y: &[u8]) -> f32 {
    let n = x.len().min(y.len()) / 4;
    // SAFETY: the features are present (fn contract).
    let v = unsafe { reduce_hadd(four_accumulators(x, y, n, 4, load_f32x8_bytes)) };
    f32_finish(x, y, n, v)
}

/// `out[j] = f16_f16(row j, y)` for `out.len()` rows of `y.len()` bytes, row j at `stride · j`
/// in `rows`: one call for a head's keys instead of a dispatch per 64-element dot.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_rows_f16_imp(rows: &[u8], stride: usize, y: &[u8], out: &mut [f32]) {
    let len = y.len();
    for (j, o) in out.iter_mut().enumerate() {
        let x = &rows[j * stride..j * stride + len];
        // SAFETY: the features are present (fn contract).
        *o = unsafe { f16_f16_imp(x, y) };
    }
}

safe_kernel!(
    /// F16 · F16 on AVX2.
    pub(crate) fn f16_f16 = f16_f16_imp; (x: &[u8], y: &[u8]) -> f32);
safe_kernel!(
    /// F16 · F16 of strided rows against one row on AVX2 (each as [`f16_f16`]).
    pub(crate) fn f16_rows_f16 = f16_rows_f16_imp; (rows: &[u8], stride: usize, y: &[u8], out: &mut [f32]) -> ());
safe_kernel!(
    /// BF16 · BF16 on AVX2.
    pub(crate) fn bf16_bf16 = bf16_bf16_imp; (x: &[u8], y: &[u8]) -> f32);
safe_kernel!(
    /// F32 · F32 on AVX2.
    pub(crate) fn f32_f32 = f32_f32_imp; (x: &[u8], y: &[u8]) -> f32);

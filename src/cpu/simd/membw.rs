//! The bandwidth probe's read loops: the widest loads each tier has, summed as u64 lanes, so
//! the probe measures the memory system rather than the adds.

use std::arch::x86_64::*;

use super::{Avx2, Avx512};

/// Σ of the little-endian u64 words of `buf`'s whole 128-byte chunks (wrapping).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn sum_avx2_imp(buf: &[u8]) -> u64 {
    let chunks = buf.chunks_exact(128);
    // SAFETY: AVX2 per the fn contract; each load reads 32 bytes inside a 128-byte chunk.
    unsafe {
        let mut acc = [_mm256_setzero_si256(); 4];
        for c in chunks {
            for (k, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_epi64(*a, _mm256_loadu_si256(c[32 * k..].as_ptr().cast()));
            }
        }
        let mut lanes = [0u64; 16];
        for (k, a) in acc.iter().enumerate() {
            _mm256_storeu_si256(lanes[4 * k..].as_mut_ptr().cast(), *a);
        }
        lanes.iter().fold(0u64, |x, &y| x.wrapping_add(y))
    }
}

/// [`sum_avx2_imp`] with 64-byte loads.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn sum_avx512_imp(buf: &[u8]) -> u64 {
    let whole = buf.len() / 128 * 128;
    let chunks = buf[..whole].chunks_exact(256);
    let rest = chunks.remainder();
    // SAFETY: AVX-512F per the fn contract; each load reads 64 bytes inside a 256-byte chunk.
    unsafe {
        let mut acc = [_mm512_setzero_si512(); 4];
        for c in chunks {
            for (k, a) in acc.iter_mut().enumerate() {
                *a = _mm512_add_epi64(*a, _mm512_loadu_si512(c[64 * k..].as_ptr().cast()));
            }
        }
        let mut sum = 0u64;
        for a in acc {
            sum = sum.wrapping_add(_mm512_reduce_add_epi64(a) as u64);
        }
        for w in rest.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            sum = sum.wrapping_add(u64::from_le_bytes(b));
        }
        sum
    }
}

/// Σ of the u64 words of `buf`'s whole 128-byte chunks, with 32-byte loads.
pub(crate) fn sum_avx2(_proof: Avx2, buf: &[u8]) -> u64 {
    // SAFETY: an `Avx2` token exists only after AVX2 was detected.
    unsafe { sum_avx2_imp(buf) }
}

/// Σ of the u64 words of `buf`'s whole 128-byte chunks, with 64-byte loads.
pub(crate) fn sum_avx512(_proof: Avx512, buf: &[u8]) -> u64 {
    // SAFETY: an `Avx512` token exists only after AVX-512F (and more) was detected.
    unsafe { sum_avx512_imp(buf) }
}

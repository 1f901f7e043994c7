//! AVX2 twins of the Q2_K and Q3_K dots in `cpu::dot::kquants`.
//!
//! A 256-element block is 2 halves × 4 shifts of 32 elements; each group's products are paired
//! by `maddubs`, scaled per 16 elements by `madd`, and summed into 8 exact i32 lanes.

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{BlockQ2K, BlockQ3K, BlockQ8K};

use super::safe_kernel;
use super::util::{hsum_f32x8, load_bsums, load_x16, load_x32, pair_scales};
use crate::cpu::dot::kquants::q8k_d;
use crate::cpu::f16_table::{f16_lookup, f16_table};
use sluice_loader::quant::blocks::q3k_scales;

/// The four 2-bit fields of each byte of `bits`, shifted down (still to be masked with 3).
#[inline(always)]
unsafe fn shifted_pairs(bits: __m256i) -> [__m256i; 4] {
    // SAFETY: AVX2 per the calling kernel's contract; register-only operations.
    unsafe {
        [
            bits,
            _mm256_srli_epi16::<2>(bits),
            _mm256_srli_epi16::<4>(bits),
            _mm256_srli_epi16::<6>(bits),
        ]
    }
}

/// Q2_K · Q8_K.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2k_q8k_imp(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads check their lengths.
    unsafe {
        let m3 = _mm256_set1_epi8(3);
        let m4 = _mm_set1_epi8(0x0F);
        let mut acc = _mm256_setzero_ps();
        for (bx, by) in x.iter().zip(y) {
            let d = q8k_d(by) * f16_lookup(t, bx.d);
            let dmin = -q8k_d(by) * f16_lookup(t, bx.dmin);
            let packed = load_x16(&bx.scales);
            let scales = _mm_and_si128(packed, m4);
            let mins = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(packed), m4));
            let prod = _mm256_madd_epi16(mins, load_bsums(&by.bsums));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);

            let mut sumi = _mm256_setzero_si256();
            for h in 0..2 {
                let shifted = shifted_pairs(load_x32(&bx.qs[32 * h..]));
                for (s, sh) in shifted.into_iter().enumerate() {
                    let g = 4 * h + s;
                    let p =
                        _mm256_maddubs_epi16(_mm256_and_si256(sh, m3), load_x32(&by.qs[32 * g..]));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pair_scales(scales, 2 * g), p));
                }
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_f32x8(acc)
    }
}

/// Q3_K · Q8_K: `(low2 − 4·[high bit clear]) · q8` as two `maddubs` and a subtraction.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3k_q8k_imp(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads check their lengths.
    unsafe {
        let m3 = _mm256_set1_epi8(3);
        let four = _mm256_set1_epi8(4);
        let mut acc = _mm256_setzero_ps();
        for (bx, by) in x.iter().zip(y) {
            let d = q8k_d(by) * f16_lookup(t, bx.d);
            let scales = load_x16(&q3k_scales(&bx.scales).map(|s| s as u8));
            let hbits = load_x32(&bx.hmask);
            let mut sumi = _mm256_setzero_si256();
            for h in 0..2 {
                let shifted = shifted_pairs(load_x32(&bx.qs[32 * h..]));
                for (s, sh) in shifted.into_iter().enumerate() {
                    let g = 4 * h + s;
                    let bit = _mm256_set1_epi8((1u8 << g) as i8);
                    let clear =
                        _mm256_cmpeq_epi8(_mm256_and_si256(hbits, bit), _mm256_setzero_si256());
                    let q8g = load_x32(&by.qs[32 * g..]);
                    let low = _mm256_maddubs_epi16(_mm256_and_si256(sh, m3), q8g);
                    let high = _mm256_maddubs_epi16(_mm256_and_si256(clear, four), q8g);
                    let p = _mm256_sub_epi16(low, high);
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pair_scales(scales, 2 * g), p));
                }
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_f32x8(acc)
    }
}

safe_kernel!(
    /// Q2_K · Q8_K on AVX2.
    pub(crate) fn q2k_q8k = q2k_q8k_imp; (x: &[BlockQ2K], y: &[BlockQ8K]) -> f32);
safe_kernel!(
    /// Q3_K · Q8_K on AVX2.
    pub(crate) fn q3k_q8k = q3k_q8k_imp; (x: &[BlockQ3K], y: &[BlockQ8K]) -> f32);

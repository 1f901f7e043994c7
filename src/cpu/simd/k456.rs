//! AVX2 twins of the Q4_K, Q5_K and Q6_K dots in `cpu::dot::kquants`.

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};

use super::safe_kernel;
use super::util::{hsum_f32x4, hsum_f32x8, load_bsums, load_x16, load_x32, pair_scales};
use crate::cpu::dot::kquants::q8k_d;
use crate::cpu::dot::kscales::k4_scales_mins;
use crate::cpu::f16_table::{f16_lookup, f16_table};

/// The Q4_K/Q5_K min products (4 i32): `m[2k]·(b[4k]+b[4k+1]) + m[2k+1]·(b[4k+2]+b[4k+3])`.
#[inline(always)]
pub(super) unsafe fn min_products(mins: &[u8], by: &BlockQ8K) -> __m128i {
    let m = mins
        .iter()
        .take(8)
        .rev()
        .fold(0u64, |acc, &v| (acc << 8) | u64::from(v));
    // SAFETY: AVX2 per the calling kernel's contract; the load reads the whole array.
    unsafe {
        let bsums = load_bsums(&by.bsums);
        let pairs = _mm_hadd_epi16(
            _mm256_castsi256_si128(bsums),
            _mm256_extracti128_si256::<1>(bsums),
        );
        _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_set_epi64x(0, m as i64)), pairs)
    }
}

/// Bit-4 bytes (0 or 16) of Q5_K group `g` from the 32 `qh` bytes.
#[inline(always)]
pub(super) unsafe fn fifth_bits(hbits: __m256i, g: usize) -> __m256i {
    // SAFETY: AVX2 per the calling kernel's contract; register-only operations.
    unsafe {
        let bit = _mm256_set1_epi8((1u8 << g) as i8);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, bit), bit);
        _mm256_and_si256(set, _mm256_set1_epi8(16))
    }
}

/// The i32 quant lanes of a Q4_K/Q5_K block; `hbits` holds Q5_K's `qh` (None for Q4_K).
#[inline(always)]
unsafe fn k4_lanes(
    qs: &[u8; 128],
    scales: &[u8],
    q8: &[i8; 256],
    hbits: Option<__m256i>,
) -> __m256i {
    // SAFETY: AVX2 per the calling kernel's contract; loads check their lengths.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let bits = load_x32(&qs[32 * j..]);
            let mut lo = _mm256_and_si256(bits, m4);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
            if let Some(h) = hbits {
                lo = _mm256_add_epi8(lo, fifth_bits(h, 2 * j));
                hi = _mm256_add_epi8(hi, fifth_bits(h, 2 * j + 1));
            }
            let pl = _mm256_maddubs_epi16(lo, load_x32(&q8[64 * j..]));
            let ph = _mm256_maddubs_epi16(hi, load_x32(&q8[64 * j + 32..]));
            let sl = _mm256_madd_epi16(_mm256_set1_epi16(i16::from(scales[2 * j])), pl);
            let sh = _mm256_madd_epi16(_mm256_set1_epi16(i16::from(scales[2 * j + 1])), ph);
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(sl, sh));
        }
        sumi
    }
}

/// Q4_K · Q8_K: quant lanes into an 8-lane, mins into a 4-lane float accumulator.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k_q8k_imp(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads check their lengths.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();
        for (bx, by) in x.iter().zip(y) {
            let d = q8k_d(by) * f16_lookup(t, bx.d);
            let dmin = -q8k_d(by) * f16_lookup(t, bx.dmin);
            let sm = k4_scales_mins(&bx.scales);
            let prod = min_products(&sm[8..], by);
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
            let sumi = k4_lanes(&bx.qs, &sm[..8], &by.qs, None);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_f32x8(acc) + hsum_f32x4(acc_m)
    }
}

/// Q5_K · Q8_K: as Q4_K plus the fifth bit; the mins are one integer per block.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5k_q8k_imp(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads check their lengths.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        for (bx, by) in x.iter().zip(y) {
            let d = q8k_d(by) * f16_lookup(t, bx.d);
            let dmin = -q8k_d(by) * f16_lookup(t, bx.dmin);
            let sm = k4_scales_mins(&bx.scales);
            let prod = min_products(&sm[8..], by);
            let p = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
            let isum = _mm_cvtsi128_si32(_mm_add_epi32(p, _mm_shuffle_epi32::<0b01>(p)));
            summs = dmin.mul_add(isum as f32, summs);
            let sumi = k4_lanes(&bx.qs, &sm[..8], &by.qs, Some(load_x32(&bx.qh)));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_f32x8(acc) + summs
    }
}

/// Q6_K · Q8_K: `(q6 − 32)·q8` as `maddubs(q6, q8) − maddubs(32, q8)`, scaled per 16 elements.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_q8k_imp(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads check their lengths.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let m3 = _mm256_set1_epi8(3);
        let m32 = _mm256_set1_epi8(32);
        let mut acc = _mm256_setzero_ps();
        for (bx, by) in x.iter().zip(y) {
            let d = q8k_d(by) * f16_lookup(t, bx.d);
            let scales = load_x16(&bx.scales.map(|s| s as u8));
            let mut sumi = _mm256_setzero_si256();
            for h in 0..2 {
                let lo_a = load_x32(&bx.ql[64 * h..]);
                let lo_b = load_x32(&bx.ql[64 * h + 32..]);
                let high = load_x32(&bx.qh[32 * h..]);
                let low4 = [
                    _mm256_and_si256(lo_a, m4),
                    _mm256_and_si256(lo_b, m4),
                    _mm256_and_si256(_mm256_srli_epi16::<4>(lo_a), m4),
                    _mm256_and_si256(_mm256_srli_epi16::<4>(lo_b), m4),
                ];
                let high2 = [
                    _mm256_and_si256(high, m3),
                    _mm256_and_si256(_mm256_srli_epi16::<2>(high), m3),
                    _mm256_and_si256(_mm256_srli_epi16::<4>(high), m3),
                    _mm256_and_si256(_mm256_srli_epi16::<6>(high), m3),
                ];
                for g in 0..4 {
                    let q = _mm256_or_si256(low4[g], _mm256_slli_epi16::<4>(high2[g]));
                    let q8g = load_x32(&by.qs[128 * h + 32 * g..]);
                    let p = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(q, q8g),
                        _mm256_maddubs_epi16(m32, q8g),
                    );
                    let s = pair_scales(scales, 8 * h + 2 * g);
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(s, p));
                }
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_f32x8(acc)
    }
}

safe_kernel!(
    /// Q4_K · Q8_K on AVX2.
    pub(crate) fn q4k_q8k = q4k_q8k_imp; (x: &[BlockQ4K], y: &[BlockQ8K]) -> f32);
safe_kernel!(
    /// Q5_K · Q8_K on AVX2.
    pub(crate) fn q5k_q8k = q5k_q8k_imp; (x: &[BlockQ5K], y: &[BlockQ8K]) -> f32);
safe_kernel!(
    /// Q6_K · Q8_K on AVX2.
    pub(crate) fn q6k_q8k = q6k_q8k_imp; (x: &[BlockQ6K], y: &[BlockQ8K]) -> f32);

//! AVX2 twins of `cpu::dot::legacy`: the 32-element block dots.
//!
//! Each block yields 8 exact i32 lane sums (products of elements 4k..4k+3) from
//! `maddubs`/`madd`, converted to f32 and folded into one accumulator with
//! `fmadd(set1(dx*dy), sums, acc)`; the result is `hsum_f32x8(acc)`.

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{
    BlockIQ4NL, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, KVALUES_IQ4NL,
};

use super::safe_kernel;
use super::util::{
    bits_to_bytes_32, dot_i8_i8_x4, dot_u8_i8_x4, hsum_f32x8, load_x16, load_x32, nibbles_32,
};
use crate::cpu::f16_table::{f16_lookup, f16_table};

/// Q4_0 · Q8_0.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0_q8_0_imp(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads read whole block fields.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (bx, by) in x.iter().zip(y) {
            let d = _mm256_set1_ps(f16_lookup(t, bx.d) * f16_lookup(t, by.d));
            let qx = _mm256_sub_epi8(nibbles_32(&bx.qs), _mm256_set1_epi8(8));
            let sums = _mm256_cvtepi32_ps(dot_i8_i8_x4(qx, load_x32(&by.qs)));
            acc = _mm256_fmadd_ps(d, sums, acc);
        }
        hsum_f32x8(acc)
    }
}

/// Q5_0 · Q8_0.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_q8_0_imp(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads read whole block fields.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (bx, by) in x.iter().zip(y) {
            let d = _mm256_set1_ps(f16_lookup(t, bx.d) * f16_lookup(t, by.d));
            // A clear fifth bit means "subtract 16": set the byte's top nibble (0xF0 = nib − 16).
            let minus16 = _mm256_andnot_si256(bits_to_bytes_32(bx.qh), _mm256_set1_epi8(-16));
            let qx = _mm256_or_si256(nibbles_32(&bx.qs), minus16);
            let sums = _mm256_cvtepi32_ps(dot_i8_i8_x4(qx, load_x32(&by.qs)));
            acc = _mm256_fmadd_ps(d, sums, acc);
        }
        hsum_f32x8(acc)
    }
}

/// Q8_0 · Q8_0 (weights may hold -128; activations never do).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_q8_0_imp(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads read whole block fields.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (bx, by) in x.iter().zip(y) {
            let d = _mm256_set1_ps(f16_lookup(t, bx.d) * f16_lookup(t, by.d));
            let sums = _mm256_cvtepi32_ps(dot_i8_i8_x4(load_x32(&bx.qs), load_x32(&by.qs)));
            acc = _mm256_fmadd_ps(d, sums, acc);
        }
        hsum_f32x8(acc)
    }
}

/// Q4_1 · Q8_1.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_q8_1_imp(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads read whole block fields.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        for (bx, by) in x.iter().zip(y) {
            summs = f16_lookup(t, bx.m).mul_add(f16_lookup(t, by.s), summs);
            let d = _mm256_set1_ps(f16_lookup(t, bx.d) * f16_lookup(t, by.d));
            let sums = _mm256_cvtepi32_ps(dot_u8_i8_x4(nibbles_32(&bx.qs), load_x32(&by.qs)));
            acc = _mm256_fmadd_ps(d, sums, acc);
        }
        hsum_f32x8(acc) + summs
    }
}

/// Q5_1 · Q8_1.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1_q8_1_imp(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads read whole block fields.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        for (bx, by) in x.iter().zip(y) {
            summs = f16_lookup(t, bx.m).mul_add(f16_lookup(t, by.s), summs);
            let d = _mm256_set1_ps(f16_lookup(t, bx.d) * f16_lookup(t, by.d));
            let plus16 = _mm256_and_si256(bits_to_bytes_32(bx.qh), _mm256_set1_epi8(0x10));
            let qx = _mm256_or_si256(nibbles_32(&bx.qs), plus16);
            let sums = _mm256_cvtepi32_ps(dot_u8_i8_x4(qx, load_x32(&by.qs)));
            acc = _mm256_fmadd_ps(d, sums, acc);
        }
        hsum_f32x8(acc) + summs
    }
}

/// The 8 i32 lane sums of one IQ4_NL block against its Q8_0 block.
#[inline(always)]
unsafe fn iq4_lanes(bx: &BlockIQ4NL, by: &BlockQ8_0) -> __m256i {
    let book = KVALUES_IQ4NL.map(|v| v as u8);
    // SAFETY: AVX2 per the calling kernel's contract; loads read whole arrays.
    unsafe {
        let book = load_x16(&book);
        let t = load_x16(&bx.qs);
        let m4 = _mm_set1_epi8(0x0F);
        let lo = _mm_shuffle_epi8(book, _mm_and_si128(t, m4));
        let hi = _mm_shuffle_epi8(book, _mm_and_si128(_mm_srli_epi16::<4>(t), m4));
        dot_i8_i8_x4(_mm256_set_m128i(hi, lo), load_x32(&by.qs))
    }
}

/// IQ4_NL · Q8_0: two accumulators over block pairs, an odd last block multiplied then added.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq4_nl_q8_0_imp(x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let pairs = x.len().min(y.len()) / 2;
    let t = f16_table();
    // SAFETY: the features are present (fn contract); loads and stores touch whole arrays.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 2];
        for (i, (bx, by)) in x.iter().zip(y).take(2 * pairs).enumerate() {
            let d = _mm256_set1_ps(f16_lookup(t, by.d) * f16_lookup(t, bx.d));
            acc[i % 2] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(iq4_lanes(bx, by)), acc[i % 2]);
        }
        let mut sumf = hsum_f32x8(_mm256_add_ps(acc[0], acc[1]));
        for (bx, by) in x.iter().zip(y).skip(2 * pairs) {
            let d = f16_lookup(t, by.d) * f16_lookup(t, bx.d);
            let mut ints = [0i32; 8];
            _mm256_storeu_si256(ints.as_mut_ptr().cast(), iq4_lanes(bx, by));
            sumf += d * ints.iter().sum::<i32>() as f32; // unfused, like the scalar twin
        }
        sumf
    }
}

safe_kernel!(
    /// Q4_0 · Q8_0 on AVX2.
    pub(crate) fn q4_0_q8_0 = q4_0_q8_0_imp; (x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32);
safe_kernel!(
    /// Q5_0 · Q8_0 on AVX2.
    pub(crate) fn q5_0_q8_0 = q5_0_q8_0_imp; (x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32);
safe_kernel!(
    /// Q8_0 · Q8_0 on AVX2.
    pub(crate) fn q8_0_q8_0 = q8_0_q8_0_imp; (x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32);
safe_kernel!(
    /// Q4_1 · Q8_1 on AVX2.
    pub(crate) fn q4_1_q8_1 = q4_1_q8_1_imp; (x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32);
safe_kernel!(
    /// Q5_1 · Q8_1 on AVX2.
    pub(crate) fn q5_1_q8_1 = q5_1_q8_1_imp; (x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32);
safe_kernel!(
    /// IQ4_NL · Q8_0 on AVX2.
    pub(crate) fn iq4_nl_q8_0 = iq4_nl_q8_0_imp; (x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32);

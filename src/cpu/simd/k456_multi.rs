//! Multi-token twins of the Q4_K, Q5_K and Q6_K dots in `simd::k456`: the 8 groups of 32
//! quants of a block are unpacked once, then each activation row gets the single-token
//! kernel's exact integer lanes and f32 operations.

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};

use super::k456::{fifth_bits, min_products};
use super::tile::{tile_kernel, MultiDot};
use super::util::{hsum_f32x4, hsum_f32x8, load_x16, load_x32, pair_scales};
use crate::cpu::dot::kquants::q8k_d;
use crate::cpu::dot::kscales::k4_scales_mins;
use crate::cpu::f16_table::{f16_lookup, f16_table};

/// The 8 groups of 32 unsigned quants of a Q4_K/Q5_K block (`hbits`: Q5_K's `qh`).
#[inline(always)]
unsafe fn k4_unpack(qs: &[u8; 128], hbits: Option<__m256i>) -> [__m256i; 8] {
    // SAFETY: AVX2 per the calling kernel's contract; loads check their lengths.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let mut q = [_mm256_setzero_si256(); 8];
        for j in 0..4 {
            let bits = load_x32(&qs[32 * j..]);
            q[2 * j] = _mm256_and_si256(bits, m4);
            q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
            if let Some(h) = hbits {
                q[2 * j] = _mm256_add_epi8(q[2 * j], fifth_bits(h, 2 * j));
                q[2 * j + 1] = _mm256_add_epi8(q[2 * j + 1], fifth_bits(h, 2 * j + 1));
            }
        }
        q
    }
}

/// The scaled i32 quant lanes of one Q4_K/Q5_K block against one Q8_K block.
#[inline(always)]
unsafe fn k4_sumi(q: &[__m256i; 8], sc: &[__m256i; 8], q8: &[i8; 256]) -> __m256i {
    // SAFETY: AVX2 per the calling kernel's contract; loads check their lengths.
    unsafe {
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let pl = _mm256_maddubs_epi16(q[2 * j], load_x32(&q8[64 * j..]));
            let ph = _mm256_maddubs_epi16(q[2 * j + 1], load_x32(&q8[64 * j + 32..]));
            let sl = _mm256_madd_epi16(sc[2 * j], pl);
            let sh = _mm256_madd_epi16(sc[2 * j + 1], ph);
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(sl, sh));
        }
        sumi
    }
}

/// The 8 sub-block scales of a Q4_K/Q5_K block, each splatted to 16 i16 lanes.
#[inline(always)]
unsafe fn k4_scale_vecs(sm: &[u8; 16]) -> [__m256i; 8] {
    // SAFETY: AVX2 per the calling kernel's contract; register-only operations.
    unsafe {
        let mut sc = [_mm256_setzero_si256(); 8];
        for (v, &s) in sc.iter_mut().zip(sm) {
            *v = _mm256_set1_epi16(i16::from(s));
        }
        sc
    }
}

/// Q4_K · Q8_K: quant lanes into an 8-lane, mins into a 4-lane float accumulator per row.
pub(super) struct Q4K;

impl MultiDot for Q4K {
    type W = BlockQ4K;
    type A = BlockQ8K;

    #[inline(always)]
    unsafe fn dots<const N: usize>(x: &[BlockQ4K], y: [&[BlockQ8K]; N]) -> [f32; N] {
        let t = f16_table();
        let y = y.map(|r| &r[..x.len()]);
        // SAFETY: AVX2/FMA per the trait contract; loads check their lengths.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); N];
            let mut acc_m = [_mm_setzero_ps(); N];
            for (b, bx) in x.iter().enumerate() {
                let (dx, dminx) = (f16_lookup(t, bx.d), f16_lookup(t, bx.dmin));
                let sm = k4_scales_mins(&bx.scales);
                let q = k4_unpack(&bx.qs, None);
                let sc = k4_scale_vecs(&sm);
                for n in 0..N {
                    let by = &y[n][b];
                    let d = q8k_d(by) * dx;
                    let dmin = -q8k_d(by) * dminx;
                    let prod = min_products(&sm[8..], by);
                    acc_m[n] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[n]);
                    let sumi = k4_sumi(&q, &sc, &by.qs);
                    acc[n] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[n]);
                }
            }
            let mut out = [0.0f32; N];
            for n in 0..N {
                out[n] = hsum_f32x8(acc[n]) + hsum_f32x4(acc_m[n]);
            }
            out
        }
    }
}

/// Q5_K · Q8_K: as Q4_K plus the fifth bit; the mins are one integer per block and row.
pub(super) struct Q5K;

impl MultiDot for Q5K {
    type W = BlockQ5K;
    type A = BlockQ8K;

    #[inline(always)]
    unsafe fn dots<const N: usize>(x: &[BlockQ5K], y: [&[BlockQ8K]; N]) -> [f32; N] {
        let t = f16_table();
        let y = y.map(|r| &r[..x.len()]);
        // SAFETY: AVX2/FMA per the trait contract; loads check their lengths.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); N];
            let mut summs = [0.0f32; N];
            for (b, bx) in x.iter().enumerate() {
                let (dx, dminx) = (f16_lookup(t, bx.d), f16_lookup(t, bx.dmin));
                let sm = k4_scales_mins(&bx.scales);
                let q = k4_unpack(&bx.qs, Some(load_x32(&bx.qh)));
                let sc = k4_scale_vecs(&sm);
                for n in 0..N {
                    let by = &y[n][b];
                    let d = q8k_d(by) * dx;
                    let dmin = -q8k_d(by) * dminx;
                    let prod = min_products(&sm[8..], by);
                    let p = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
                    let isum = _mm_cvtsi128_si32(_mm_add_epi32(p, _mm_shuffle_epi32::<0b01>(p)));
                    summs[n] = dmin.mul_add(isum as f32, summs[n]);
                    let sumi = k4_sumi(&q, &sc, &by.qs);
                    acc[n] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[n]);
                }
            }
            let mut out = [0.0f32; N];
            for n in 0..N {
                out[n] = hsum_f32x8(acc[n]) + summs[n];
            }
            out
        }
    }
}

/// Q6_K · Q8_K: the 8 groups of 6-bit quants and their scale pairs unpacked once per block.
pub(super) struct Q6K;

impl MultiDot for Q6K {
    type W = BlockQ6K;
    type A = BlockQ8K;

    #[inline(always)]
    unsafe fn dots<const N: usize>(x: &[BlockQ6K], y: [&[BlockQ8K]; N]) -> [f32; N] {
        let t = f16_table();
        let y = y.map(|r| &r[..x.len()]);
        // SAFETY: AVX2/FMA per the trait contract; loads check their lengths.
        unsafe {
            let m4 = _mm256_set1_epi8(0x0F);
            let m3 = _mm256_set1_epi8(3);
            let m32 = _mm256_set1_epi8(32);
            let mut acc = [_mm256_setzero_ps(); N];
            for (b, bx) in x.iter().enumerate() {
                let dx = f16_lookup(t, bx.d);
                let scales = load_x16(&bx.scales.map(|s| s as u8));
                let mut q = [_mm256_setzero_si256(); 8];
                let mut s = [_mm256_setzero_si256(); 8];
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
                        q[4 * h + g] = _mm256_or_si256(low4[g], _mm256_slli_epi16::<4>(high2[g]));
                        s[4 * h + g] = pair_scales(scales, 8 * h + 2 * g);
                    }
                }
                for n in 0..N {
                    let by = &y[n][b];
                    let mut sumi = _mm256_setzero_si256();
                    for (g, (&qg, &sg)) in q.iter().zip(&s).enumerate() {
                        let q8g = load_x32(&by.qs[32 * g..]);
                        let p = _mm256_sub_epi16(
                            _mm256_maddubs_epi16(qg, q8g),
                            _mm256_maddubs_epi16(m32, q8g),
                        );
                        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sg, p));
                    }
                    let d = q8k_d(by) * dx;
                    acc[n] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[n]);
                }
            }
            let mut out = [0.0f32; N];
            for n in 0..N {
                out[n] = hsum_f32x8(acc[n]);
            }
            out
        }
    }
}

tile_kernel!(
    /// Q4_K · Q8_K tile on AVX2.
    pub(crate) fn q4k_tile = q4k_tile_imp, Q4K);
tile_kernel!(
    /// Q5_K · Q8_K tile on AVX2.
    pub(crate) fn q5k_tile = q5k_tile_imp, Q5K);
tile_kernel!(
    /// Q6_K · Q8_K tile on AVX2.
    pub(crate) fn q6k_tile = q6k_tile_imp, Q6K);

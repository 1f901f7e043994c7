//! Scalar twins of the K-quant dots against Q8_K (gguf-facts §3.3).
//!
//! Every SIMD K-quant kernel walks a 256-element block as 8 groups of 32 elements; lane k of
//! its i32 accumulator collects, over all groups, `scale(sub-block) · Σ q·q8` for elements
//! 4k..4k+3 of each group. The twins compute the same exact lane sums and then the same f32
//! operations: `fma(d, lanes)` into 8 float lanes, mins folded as the SIMD code folds them.

use sluice_loader::quant::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};

use crate::cpu::f16_table::{f16_lookup, f16_table};

use super::kscales::k4_scales_mins;
use super::lanes::{hsum4, Lanes8};
use sluice_loader::quant::blocks::q3k_scales;

/// The f32 scale of a Q8_K block.
#[inline]
pub(crate) fn q8k_d(b: &BlockQ8K) -> f32 {
    f32::from_le_bytes(b.d)
}

/// The 16 group sums of a Q8_K block.
#[inline]
fn q8k_bsums(b: &BlockQ8K) -> [i16; 16] {
    b.bsums.map(i16::from_le_bytes)
}

/// Adds `scale · Σ q·q8` of one 32-element group into the lanes, one scale per 16 elements.
#[inline]
fn add_group(lanes: &mut [i32; 8], q: &[i32; 32], q8: &[i8], scales: [i32; 2]) {
    for (l, (&a, &b)) in q.iter().zip(q8).enumerate() {
        lanes[l / 4] += scales[l / 16] * a * i32::from(b);
    }
}

/// Adds `scale · Σ q·q8` of one 32-element group with one scale for all 32 elements.
#[inline]
fn add_group32(lanes: &mut [i32; 8], q: &[i32; 32], q8: &[i8], scale: i32) {
    add_group(lanes, q, q8, [scale, scale]);
}

/// Q2_K · Q8_K: mins via `madd(mins, bsums)` lanes, then the scaled quant lanes.
pub(crate) fn q2k_q8k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let t = f16_table();
    let mut acc = Lanes8::default();
    for (bx, by) in x.iter().zip(y) {
        let d = q8k_d(by) * f16_lookup(t, bx.d);
        let dmin = -q8k_d(by) * f16_lookup(t, bx.dmin);
        let bsums = q8k_bsums(by);
        let sc = |j: usize| i32::from(bx.scales[j] & 0x0F);
        let mn = |j: usize| i32::from(bx.scales[j] >> 4);
        let prod: [i32; 8] = std::array::from_fn(|k| {
            mn(2 * k) * i32::from(bsums[2 * k]) + mn(2 * k + 1) * i32::from(bsums[2 * k + 1])
        });
        acc.fma_i32(dmin, &prod);
        let mut lanes = [0i32; 8];
        for h in 0..2 {
            for s in 0..4 {
                let q: [i32; 32] =
                    std::array::from_fn(|l| i32::from((bx.qs[32 * h + l] >> (2 * s)) & 3));
                let g = 4 * h + s;
                add_group(&mut lanes, &q, &by.qs[32 * g..], [sc(2 * g), sc(2 * g + 1)]);
            }
        }
        acc.fma_i32(d, &lanes);
    }
    acc.hsum8()
}

/// Q3_K · Q8_K: `q = low2 − 4·(high bit clear)`, signed 6-bit scales.
pub(crate) fn q3k_q8k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let t = f16_table();
    let mut acc = Lanes8::default();
    for (bx, by) in x.iter().zip(y) {
        let d = q8k_d(by) * f16_lookup(t, bx.d);
        let s = q3k_scales(&bx.scales).map(i32::from);
        let mut lanes = [0i32; 8];
        for h in 0..2 {
            for sh in 0..4 {
                let g = 4 * h + sh;
                let q: [i32; 32] = std::array::from_fn(|l| {
                    let low2 = i32::from((bx.qs[32 * h + l] >> (2 * sh)) & 3);
                    let high = (bx.hmask[l] >> g) & 1;
                    low2 - if high == 0 { 4 } else { 0 }
                });
                add_group(&mut lanes, &q, &by.qs[32 * g..], [s[2 * g], s[2 * g + 1]]);
            }
        }
        acc.fma_i32(d, &lanes);
    }
    acc.hsum8()
}

/// The Q4_K/Q5_K min products: `prod[k] = m[2k]·(b[4k]+b[4k+1]) + m[2k+1]·(b[4k+2]+b[4k+3])`,
/// the pair sums wrapping in i16 as `hadd_epi16` does.
#[inline]
fn k4_min_products(mins: &[u8], by: &BlockQ8K) -> [i32; 4] {
    let b = q8k_bsums(by);
    let pair: [i32; 8] = std::array::from_fn(|i| i32::from(b[2 * i].wrapping_add(b[2 * i + 1])));
    std::array::from_fn(|k| {
        i32::from(mins[2 * k]) * pair[2 * k] + i32::from(mins[2 * k + 1]) * pair[2 * k + 1]
    })
}

/// The quant lanes of a Q4_K/Q5_K block: `hi5` gives the fifth bit (0 for Q4_K).
#[inline]
fn k4_lanes(
    qs: &[u8; 128],
    sc: &[u8],
    q8: &[i8; 256],
    hi5: impl Fn(usize, usize) -> i32,
) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for j in 0..4 {
        let lo: [i32; 32] =
            std::array::from_fn(|l| i32::from(qs[32 * j + l] & 0x0F) + hi5(2 * j, l));
        let hi: [i32; 32] =
            std::array::from_fn(|l| i32::from(qs[32 * j + l] >> 4) + hi5(2 * j + 1, l));
        add_group32(&mut lanes, &lo, &q8[64 * j..], i32::from(sc[2 * j]));
        add_group32(
            &mut lanes,
            &hi,
            &q8[64 * j + 32..],
            i32::from(sc[2 * j + 1]),
        );
    }
    lanes
}

/// Q4_K · Q8_K: quant lanes into 8 float lanes, mins into 4 float lanes, summed at the end.
pub(crate) fn q4k_q8k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let t = f16_table();
    let mut acc = Lanes8::default();
    let mut acc_m = [0.0f32; 4];
    for (bx, by) in x.iter().zip(y) {
        let d = q8k_d(by) * f16_lookup(t, bx.d);
        let dmin = -q8k_d(by) * f16_lookup(t, bx.dmin);
        let sm = k4_scales_mins(&bx.scales);
        for (a, p) in acc_m.iter_mut().zip(k4_min_products(&sm[8..], by)) {
            *a = dmin.mul_add(p as f32, *a);
        }
        acc.fma_i32(d, &k4_lanes(&bx.qs, &sm[..8], &by.qs, |_, _| 0));
    }
    acc.hsum8() + hsum4(acc_m)
}

/// Q5_K · Q8_K: as Q4_K with a fifth bit; the mins form one integer per block, `fma`ed in f32.
pub(crate) fn q5k_q8k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let t = f16_table();
    let mut acc = Lanes8::default();
    let mut summs = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let d = q8k_d(by) * f16_lookup(t, bx.d);
        let dmin = -q8k_d(by) * f16_lookup(t, bx.dmin);
        let sm = k4_scales_mins(&bx.scales);
        let isum: i32 = k4_min_products(&sm[8..], by).iter().sum();
        summs = dmin.mul_add(isum as f32, summs);
        let hi5 = |g: usize, l: usize| i32::from((bx.qh[l] >> g) & 1) << 4;
        acc.fma_i32(d, &k4_lanes(&bx.qs, &sm[..8], &by.qs, hi5));
    }
    acc.hsum8() + summs
}

/// Q6_K · Q8_K: `q = (low4 | high2 << 4) − 32`, signed 8-bit scales per 16 elements.
pub(crate) fn q6k_q8k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let t = f16_table();
    let mut acc = Lanes8::default();
    for (bx, by) in x.iter().zip(y) {
        let d = q8k_d(by) * f16_lookup(t, bx.d);
        let mut lanes = [0i32; 8];
        for h in 0..2 {
            for g in 0..4 {
                let q: [i32; 32] = std::array::from_fn(|l| {
                    let byte = bx.ql[64 * h + 32 * (g & 1) + l];
                    let low4 = if g < 2 { byte & 0x0F } else { byte >> 4 };
                    let high2 = (bx.qh[32 * h + l] >> (2 * g)) & 3;
                    i32::from(low4 | (high2 << 4)) - 32
                });
                let sub = 8 * h + 2 * g;
                let scales = [i32::from(bx.scales[sub]), i32::from(bx.scales[sub + 1])];
                add_group(&mut lanes, &q, &by.qs[128 * h + 32 * g..], scales);
            }
        }
        acc.fma_i32(d, &lanes);
    }
    acc.hsum8()
}

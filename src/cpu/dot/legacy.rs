//! Scalar twins of the 32-element block dots: Q4_0, Q5_0, Q8_0, IQ4_NL against Q8_0, and Q4_1,
//! Q5_1 against Q8_1 (gguf-facts §3.3).
//!
//! Per block: the combined scale `d = dx * dy` (one f32 multiply), the 8 exact lane sums of
//! `qx * qy`, then `lane[k] = fma(d, sum[k], lane[k])`; at the end the `hsum8` reduction. The
//! `m * s` term of Q4_1/Q5_1 is a separate scalar `fma` chain added after the reduction.

use sluice_loader::quant::blocks::{
    BlockIQ4NL, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, KVALUES_IQ4NL,
};

use crate::cpu::f16_table::{f16_lookup, f16_table};

use super::lanes::Lanes8;

/// Lane k gets `Σ x[e] * y[e]` for e in 4k..4k+3 (exact).
#[inline]
fn lane_sums(x: &[i32; 32], y: &[i8; 32]) -> [i32; 8] {
    let mut s = [0i32; 8];
    for (e, (&a, &b)) in x.iter().zip(y).enumerate() {
        s[e / 4] += a * i32::from(b);
    }
    s
}

/// The 32 nibbles of a Q4-style block in element order (low nibbles, then high nibbles).
#[inline]
fn nibbles(qs: &[u8; 16]) -> [i32; 32] {
    let mut q = [0i32; 32];
    for (j, &b) in qs.iter().enumerate() {
        q[j] = i32::from(b & 0x0F);
        q[j + 16] = i32::from(b >> 4);
    }
    q
}

/// The 5-bit values of a Q5-style block: nibble plus bit e of `qh` (LE) as bit 4.
#[inline]
fn fives(qs: &[u8; 16], qh: [u8; 4]) -> [i32; 32] {
    let hi = u32::from_le_bytes(qh);
    let mut q = nibbles(qs);
    for (e, v) in q.iter_mut().enumerate() {
        *v |= (((hi >> e) & 1) as i32) << 4;
    }
    q
}

/// Q4_0 · Q8_0: `Σ dx·dy · Σ (nib − 8)·qy`.
pub(crate) fn q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let t = f16_table();
    let mut acc = Lanes8::default();
    for (bx, by) in x.iter().zip(y) {
        let d = f16_lookup(t, bx.d) * f16_lookup(t, by.d);
        let q = nibbles(&bx.qs).map(|v| v - 8);
        acc.fma_i32(d, &lane_sums(&q, &by.qs));
    }
    acc.hsum8()
}

/// Q5_0 · Q8_0: `Σ dx·dy · Σ (q5 − 16)·qy`.
pub(crate) fn q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let t = f16_table();
    let mut acc = Lanes8::default();
    for (bx, by) in x.iter().zip(y) {
        let d = f16_lookup(t, bx.d) * f16_lookup(t, by.d);
        let q = fives(&bx.qs, bx.qh).map(|v| v - 16);
        acc.fma_i32(d, &lane_sums(&q, &by.qs));
    }
    acc.hsum8()
}

/// Q8_0 · Q8_0: `Σ dx·dy · Σ qx·qy`.
pub(crate) fn q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let t = f16_table();
    let mut acc = Lanes8::default();
    for (bx, by) in x.iter().zip(y) {
        let d = f16_lookup(t, bx.d) * f16_lookup(t, by.d);
        let q = bx.qs.map(i32::from);
        acc.fma_i32(d, &lane_sums(&q, &by.qs));
    }
    acc.hsum8()
}

/// Q4_1 · Q8_1: `Σ dx·dy · Σ nib·qy  +  Σ mx·sy`.
pub(crate) fn q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let t = f16_table();
    let mut acc = Lanes8::default();
    let mut summs = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        summs = f16_lookup(t, bx.m).mul_add(f16_lookup(t, by.s), summs);
        let d = f16_lookup(t, bx.d) * f16_lookup(t, by.d);
        acc.fma_i32(d, &lane_sums(&nibbles(&bx.qs), &by.qs));
    }
    acc.hsum8() + summs
}

/// Q5_1 · Q8_1: `Σ dx·dy · Σ q5·qy  +  Σ mx·sy`.
pub(crate) fn q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let t = f16_table();
    let mut acc = Lanes8::default();
    let mut summs = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        summs = f16_lookup(t, bx.m).mul_add(f16_lookup(t, by.s), summs);
        let d = f16_lookup(t, bx.d) * f16_lookup(t, by.d);
        acc.fma_i32(d, &lane_sums(&fives(&bx.qs, bx.qh), &by.qs));
    }
    acc.hsum8() + summs
}

/// IQ4_NL · Q8_0: `Σ dx·dy · Σ T[nib]·qy`, blocks alternating between two accumulators as
/// llama.cpp's AVX2 loop does; an odd last block is added after the reduction by a separate
/// multiply and add (as GCC compiles llama.cpp's scalar tail).
pub(crate) fn iq4_nl_q8_0(x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let t = f16_table();
    let code = |bx: &BlockIQ4NL| nibbles(&bx.qs).map(|v| i32::from(KVALUES_IQ4NL[v as usize]));
    let mut acc = [Lanes8::default(); 2];
    let pairs = x.len().min(y.len()) / 2;
    for (i, (bx, by)) in x.iter().zip(y).take(2 * pairs).enumerate() {
        let d = f16_lookup(t, by.d) * f16_lookup(t, bx.d);
        acc[i % 2].fma_i32(d, &lane_sums(&code(bx), &by.qs));
    }
    let mut sumf = acc[0].add(acc[1]).hsum8();
    for (bx, by) in x.iter().zip(y).skip(2 * pairs) {
        let d = f16_lookup(t, by.d) * f16_lookup(t, bx.d);
        let sumi: i32 = lane_sums(&code(bx), &by.qs).iter().sum();
        sumf += d * sumi as f32; // GCC leaves this tail uncontracted (no FMA)
    }
    sumf
}

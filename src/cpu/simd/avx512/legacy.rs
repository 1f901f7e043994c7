//! Row-pair twins of the 32-element block dots (`simd::legacy`): per block and row, 8 exact i32
//! lane sums folded into that row's 8 f32 lanes with `fma(dx·dy, sums, acc)`, then
//! `hsum_f32x8` per row, exactly as the AVX2 kernels do, two rows per zmm.

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{
    BlockIQ4NL, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, KVALUES_IQ4NL,
};

use super::super::util::prefetch_ahead as prefetch;
use super::pair::{collect, pair_tile, PairDot};
use super::util::{
    bcast_i8x32, dot_i8_i8, dot_u8_i8, hsum_pair, pair_halves, pair_nibbles, pair_ps,
};
use crate::cpu::f16_table::{f16_lookup, f16_table};

/// A block's f16 `d` and `m` as the 4 bytes `pair_halves` reads.
#[inline(always)]
fn dm(d: &[u8; 2], m: &[u8; 2]) -> [u8; 4] {
    [d[0], d[1], m[0], m[1]]
}

/// The 64-bit mask of two rows' 32 fifth bits (`qh`), row a in the low half.
#[inline(always)]
fn pair_bits(a: [u8; 4], b: [u8; 4]) -> u64 {
    u64::from(u32::from_le_bytes(a)) | u64::from(u32::from_le_bytes(b)) << 32
}

/// Defines a symmetric (no-offset) Q8_0-activation pair kernel: `unpack(a, b)` gives the two
/// rows' signed bytes.
macro_rules! sym_pair {
    ($(#[$m:meta])* $K:ident, $W:ty, |$a:ident, $b:ident| $unpack:expr) => {
        $(#[$m])*
        pub(super) struct $K;

        impl PairDot for $K {
            type W = $W;
            type A = BlockQ8_0;

            #[inline(always)]
            unsafe fn dots<const P: usize, const N: usize>(
                x: [[&[$W]; 2]; P],
                y: [&[BlockQ8_0]; N],
            ) -> [[[f32; N]; 2]; P] {
                let t = f16_table();
                let nb = x[0][0].len();
                let y = y.map(|r| &r[..nb]);
                // SAFETY: AVX-512 per the trait contract; loads read whole block fields.
                unsafe {
                    let mut acc = [[_mm512_setzero_ps(); N]; P];
                    for b in 0..nb {
                        let mut qx = [_mm512_setzero_si512(); P];
                        let mut dx = [_mm512_setzero_ps(); P];
                        for p in 0..P {
                            let ($a, $b) = (&x[p][0][b], &x[p][1][b]);
                            prefetch($a);
                            prefetch($b);
                            dx[p] = pair_ps(f16_lookup(t, $a.d), f16_lookup(t, $b.d));
                            qx[p] = $unpack;
                        }
                        for n in 0..N {
                            let by = &y[n][b];
                            let dy = _mm512_set1_ps(f16_lookup(t, by.d));
                            let qy = bcast_i8x32(&by.qs);
                            for p in 0..P {
                                let d = _mm512_mul_ps(dx[p], dy);
                                let sums = _mm512_cvtepi32_ps(dot_i8_i8(qx[p], qy));
                                acc[p][n] = _mm512_fmadd_ps(d, sums, acc[p][n]);
                            }
                        }
                    }
                    collect!(|p, r, n| hsum_pair(acc[p][n])[r])
                }
            }
        }
    };
}

/// Defines an offset (`m·s`) Q8_1-activation pair kernel: `unpack(a, b)` gives the two rows'
/// unsigned bytes; the `m·s` terms of rows a and b run in lanes 1 and 3 of one f32 vector
/// (`[da, ma, db, mb]` from one F16C conversion).
macro_rules! offset_pair {
    ($(#[$m:meta])* $K:ident, $W:ty, |$a:ident, $b:ident| $unpack:expr) => {
        $(#[$m])*
        pub(super) struct $K;

        impl PairDot for $K {
            type W = $W;
            type A = BlockQ8_1;

            #[inline(always)]
            unsafe fn dots<const P: usize, const N: usize>(
                x: [[&[$W]; 2]; P],
                y: [&[BlockQ8_1]; N],
            ) -> [[[f32; N]; 2]; P] {
                let t = f16_table();
                let nb = x[0][0].len();
                let y = y.map(|r| &r[..nb]);
                // SAFETY: AVX-512 per the trait contract; loads read whole block fields.
                unsafe {
                    let mut acc = [[_mm512_setzero_ps(); N]; P];
                    let mut summs = [[_mm_setzero_ps(); N]; P];
                    for b in 0..nb {
                        let mut qx = [_mm512_setzero_si512(); P];
                        let mut dx = [_mm512_setzero_ps(); P];
                        let mut mx = [_mm_setzero_ps(); P];
                        for p in 0..P {
                            let ($a, $b) = (&x[p][0][b], &x[p][1][b]);
                            prefetch($a);
                            prefetch($b);
                            // [da, ma, db, mb]: the m·s terms run in lanes 1 and 3.
                            (dx[p], mx[p]) = pair_halves(dm(&$a.d, &$a.m), dm(&$b.d, &$b.m));
                            qx[p] = $unpack;
                        }
                        for n in 0..N {
                            let by = &y[n][b];
                            let dy = _mm512_set1_ps(f16_lookup(t, by.d));
                            let sy = _mm_set1_ps(f16_lookup(t, by.s));
                            let qy = bcast_i8x32(&by.qs);
                            for p in 0..P {
                                summs[p][n] = _mm_fmadd_ps(mx[p], sy, summs[p][n]);
                                let d = _mm512_mul_ps(dx[p], dy);
                                let sums = _mm512_cvtepi32_ps(dot_u8_i8(qx[p], qy));
                                acc[p][n] = _mm512_fmadd_ps(d, sums, acc[p][n]);
                            }
                        }
                    }
                    collect!(|p, r, n| {
                        let mut m = [0.0f32; 4];
                        _mm_storeu_ps(m.as_mut_ptr(), summs[p][n]);
                        hsum_pair(acc[p][n])[r] + m[1 + 2 * r]
                    })
                }
            }
        }
    };
}

sym_pair!(
    /// Q4_0 · Q8_0: `nib − 8`.
    Q4_0, BlockQ4_0, |a, b| _mm512_sub_epi8(pair_nibbles(&a.qs, &b.qs), _mm512_set1_epi8(8)));
sym_pair!(
/// Q5_0 · Q8_0: a clear fifth bit subtracts 16.
Q5_0, BlockQ5_0, |a, b| {
    let nib = pair_nibbles(&a.qs, &b.qs);
    _mm512_mask_sub_epi8(nib, !pair_bits(a.qh, b.qh), nib, _mm512_set1_epi8(16))
});
sym_pair!(
    /// Q8_0 · Q8_0.
    Q8_0, BlockQ8_0, |a, b| super::util::pair_u8x32(&a.qs, &b.qs));
offset_pair!(
    /// Q4_1 · Q8_1.
    Q4_1, BlockQ4_1, |a, b| pair_nibbles(&a.qs, &b.qs));
offset_pair!(
/// Q5_1 · Q8_1: the fifth bit adds 16.
Q5_1, BlockQ5_1, |a, b| {
    let nib = pair_nibbles(&a.qs, &b.qs);
    _mm512_mask_add_epi8(nib, pair_bits(a.qh, b.qh), nib, _mm512_set1_epi8(16))
});

/// IQ4_NL · Q8_0: codebook values; per row, blocks alternate between two accumulators and an
/// odd last block is multiplied then added after the reduction (the AVX2 kernel's order).
pub(super) struct Iq4Nl;

impl PairDot for Iq4Nl {
    type W = BlockIQ4NL;
    type A = BlockQ8_0;

    #[inline(always)]
    unsafe fn dots<const P: usize, const N: usize>(
        x: [[&[BlockIQ4NL]; 2]; P],
        y: [&[BlockQ8_0]; N],
    ) -> [[[f32; N]; 2]; P] {
        let t = f16_table();
        let nb = x[0][0].len();
        let y = y.map(|r| &r[..nb]);
        let pairs = nb / 2;
        let book = KVALUES_IQ4NL.map(|v| v as u8);
        // SAFETY: AVX-512 per the trait contract; loads and stores touch whole arrays.
        unsafe {
            let book = _mm512_broadcast_i32x4(_mm_loadu_si128(book.as_ptr().cast()));
            let mut acc = [[[_mm512_setzero_ps(); 2]; N]; P];
            let mut ints = [[[0i32; 16]; N]; P];
            for b in 0..nb {
                let mut qx = [_mm512_setzero_si512(); P];
                let mut dx = [[0.0f32; 2]; P];
                for p in 0..P {
                    let (ba, bb) = (&x[p][0][b], &x[p][1][b]);
                    qx[p] = _mm512_shuffle_epi8(book, pair_nibbles(&ba.qs, &bb.qs));
                    dx[p] = [f16_lookup(t, ba.d), f16_lookup(t, bb.d)];
                }
                for n in 0..N {
                    let by = &y[n][b];
                    let dy = f16_lookup(t, by.d);
                    let qy = bcast_i8x32(&by.qs);
                    for p in 0..P {
                        let lanes = dot_i8_i8(qx[p], qy);
                        if b < 2 * pairs {
                            let d = pair_ps(dy * dx[p][0], dy * dx[p][1]);
                            let a = &mut acc[p][n][b % 2];
                            *a = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(lanes), *a);
                        } else {
                            _mm512_storeu_si512(ints[p][n].as_mut_ptr().cast(), lanes);
                        }
                    }
                }
            }
            collect!(|p, r, n| {
                let sum = hsum_pair(_mm512_add_ps(acc[p][n][0], acc[p][n][1]))[r];
                if nb.is_multiple_of(2) {
                    sum
                } else {
                    let d = f16_lookup(t, y[n][nb - 1].d) * f16_lookup(t, x[p][r][nb - 1].d);
                    let isum: i32 = ints[p][n][8 * r..8 * r + 8].iter().sum();
                    sum + d * isum as f32 // unfused, as the AVX2 kernel
                }
            })
        }
    }
}

pair_tile!(
    /// Q4_0 · Q8_0 tile on AVX-512 (row pairs).
    pub(crate) fn q4_0_pair_tile = q4_0_imp, Q4_0, 2);
pair_tile!(
    /// Q4_1 · Q8_1 tile on AVX-512 (row pairs).
    pub(crate) fn q4_1_pair_tile = q4_1_imp, Q4_1, 2);
pair_tile!(
    /// Q5_0 · Q8_0 tile on AVX-512 (row pairs).
    pub(crate) fn q5_0_pair_tile = q5_0_imp, Q5_0, 2);
pair_tile!(
    /// Q5_1 · Q8_1 tile on AVX-512 (row pairs).
    pub(crate) fn q5_1_pair_tile = q5_1_imp, Q5_1, 2);
pair_tile!(
    /// Q8_0 · Q8_0 tile on AVX-512 (row pairs).
    pub(crate) fn q8_0_pair_tile = q8_0_imp, Q8_0, 2);
pair_tile!(
    /// IQ4_NL · Q8_0 tile on AVX-512 (row pairs).
    pub(crate) fn iq4_nl_pair_tile = iq4_nl_imp, Iq4Nl, 1);

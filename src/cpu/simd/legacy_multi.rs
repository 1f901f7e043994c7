//! Multi-token twins of the 32-element block dots in `simd::legacy`: each weight block is
//! unpacked once, then folded into one accumulator per activation row with the single-token
//! kernel's exact operations. These run one-token tiles (rows in pairs) and IQ4_NL; the other
//! 32-element types' many-token tiles run `simd::legacy_batch`.

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{
    BlockIQ4NL, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, KVALUES_IQ4NL,
};

use super::legacy_batch::{self, Unpack};
use super::tile::{tile_kernel, MultiDot};
use super::util::{dot_i8_i8_x4, dot_u8_i8_x4, hsum_f32x8, load_x16, load_x32, prefetch_ahead};
use crate::cpu::f16_table::{f16_lookup, f16_table};

/// Defines a symmetric (no-offset) Q8_0-activation pair: `Unpack::unpack` gives the block's signed
/// bytes once per row; each (row, activation row) then adds `fma(dx·dy, Σ qx·qy lanes)`.
/// One-token products take rows in pairs (256 MB matrices, 2 threads, EPYC VM: Q5_0 16.1 →
/// 17.2-17.6 GB/s, Q5_1 14.5 → 16.5; four rows per pass were slower than one from memory,
/// and two rows per pass ran 8-token products 6-11% slower in cache).
macro_rules! sym_pair {
    ($(#[$m:meta])* $K:ident, $W:ty) => {
        $(#[$m])*
        pub(super) struct $K;

        impl MultiDot for $K {
            type W = $W;
            type A = BlockQ8_0;
            const DECODE_ROW_PAIRS: bool = true;

            #[inline(always)]
            unsafe fn dots<const N: usize>(x: &[$W], y: [&[BlockQ8_0]; N]) -> [f32; N] {
                // SAFETY: forwarded contract.
                let [r] = unsafe { Self::dots_rows::<1, N>([x], y) };
                r
            }

            #[inline(always)]
            unsafe fn dots_rows<const R: usize, const N: usize>(
                x: [&[$W]; R],
                y: [&[BlockQ8_0]; N],
            ) -> [[f32; N]; R] {
                let t = f16_table();
                let nb = x[0].len();
                let x = x.map(|r| &r[..nb]);
                let y = y.map(|r| &r[..nb]);
                // SAFETY: AVX2/FMA per the trait contract; loads read whole block fields.
                // (Loops, not closures, around the intrinsics: closures do not inherit the
                // kernel's target features.)
                unsafe {
                    let mut acc = [[_mm256_setzero_ps(); N]; R];
                    for b in 0..nb {
                        let mut dy = [0.0f32; N];
                        for n in 0..N {
                            dy[n] = f16_lookup(t, y[n][b].d);
                        }
                        for r in 0..R {
                            let bx = &x[r][b];
                            prefetch_ahead(bx);
                            let dx = f16_lookup(t, bx.d);
                            let qx = Unpack::unpack(bx);
                            for n in 0..N {
                                let d = _mm256_set1_ps(dx * dy[n]);
                                let sums =
                                    _mm256_cvtepi32_ps(dot_i8_i8_x4(qx, load_x32(&y[n][b].qs)));
                                acc[r][n] = _mm256_fmadd_ps(d, sums, acc[r][n]);
                            }
                        }
                    }
                    let mut out = [[0.0f32; N]; R];
                    for r in 0..R {
                        for n in 0..N {
                            out[r][n] = hsum_f32x8(acc[r][n]);
                        }
                    }
                    out
                }
            }
        }
    };
}

/// Defines an offset (`m·s`) Q8_1-activation pair: `Unpack::unpack` gives the block's unsigned
/// bytes.
macro_rules! offset_pair {
    ($(#[$m:meta])* $K:ident, $W:ty) => {
        $(#[$m])*
        pub(super) struct $K;

        impl MultiDot for $K {
            type W = $W;
            type A = BlockQ8_1;
            const DECODE_ROW_PAIRS: bool = true;

            #[inline(always)]
            unsafe fn dots<const N: usize>(x: &[$W], y: [&[BlockQ8_1]; N]) -> [f32; N] {
                // SAFETY: forwarded contract.
                let [r] = unsafe { Self::dots_rows::<1, N>([x], y) };
                r
            }

            #[inline(always)]
            unsafe fn dots_rows<const R: usize, const N: usize>(
                x: [&[$W]; R],
                y: [&[BlockQ8_1]; N],
            ) -> [[f32; N]; R] {
                let t = f16_table();
                let nb = x[0].len();
                let x = x.map(|r| &r[..nb]);
                let y = y.map(|r| &r[..nb]);
                // SAFETY: AVX2/FMA per the trait contract; loads read whole block fields.
                unsafe {
                    let mut acc = [[_mm256_setzero_ps(); N]; R];
                    let mut summs = [[0.0f32; N]; R];
                    for b in 0..nb {
                        let (mut dy, mut sy) = ([0.0f32; N], [0.0f32; N]);
                        for n in 0..N {
                            dy[n] = f16_lookup(t, y[n][b].d);
                            sy[n] = f16_lookup(t, y[n][b].s);
                        }
                        for r in 0..R {
                            let bx = &x[r][b];
                            prefetch_ahead(bx);
                            let (dx, mx) = (f16_lookup(t, bx.d), f16_lookup(t, bx.m));
                            let qx = Unpack::unpack(bx);
                            for n in 0..N {
                                summs[r][n] = mx.mul_add(sy[n], summs[r][n]);
                                let d = _mm256_set1_ps(dx * dy[n]);
                                let sums =
                                    _mm256_cvtepi32_ps(dot_u8_i8_x4(qx, load_x32(&y[n][b].qs)));
                                acc[r][n] = _mm256_fmadd_ps(d, sums, acc[r][n]);
                            }
                        }
                    }
                    let mut out = [[0.0f32; N]; R];
                    for r in 0..R {
                        for n in 0..N {
                            out[r][n] = hsum_f32x8(acc[r][n]) + summs[r][n];
                        }
                    }
                    out
                }
            }
        }
    };
}

sym_pair!(
    /// Q4_0 · Q8_0.
    Q4_0, BlockQ4_0);
sym_pair!(
    /// Q5_0 · Q8_0.
    Q5_0, BlockQ5_0);
sym_pair!(
    /// Q8_0 · Q8_0.
    Q8_0, BlockQ8_0);
offset_pair!(
    /// Q4_1 · Q8_1.
    Q4_1, BlockQ4_1);
offset_pair!(
    /// Q5_1 · Q8_1.
    Q5_1, BlockQ5_1);

/// IQ4_NL · Q8_0: codebook values, blocks alternating between two accumulators per row, an odd
/// last block multiplied then added after the reduction.
pub(super) struct Iq4Nl;

impl MultiDot for Iq4Nl {
    type W = BlockIQ4NL;
    type A = BlockQ8_0;

    #[inline(always)]
    unsafe fn dots<const N: usize>(x: &[BlockIQ4NL], y: [&[BlockQ8_0]; N]) -> [f32; N] {
        let t = f16_table();
        let y = y.map(|r| &r[..x.len()]);
        let pairs = x.len() / 2;
        let book = KVALUES_IQ4NL.map(|v| v as u8);
        // SAFETY: AVX2/FMA per the trait contract; loads and stores touch whole arrays.
        unsafe {
            let book = load_x16(&book);
            let m4 = _mm_set1_epi8(0x0F);
            let mut acc = [[_mm256_setzero_ps(); 2]; N];
            let mut ints = [[0i32; 8]; N];
            for (b, bx) in x.iter().enumerate() {
                let q = load_x16(&bx.qs);
                let lo = _mm_shuffle_epi8(book, _mm_and_si128(q, m4));
                let hi = _mm_shuffle_epi8(book, _mm_and_si128(_mm_srli_epi16::<4>(q), m4));
                let qx = _mm256_set_m128i(hi, lo);
                let dx = f16_lookup(t, bx.d);
                for n in 0..N {
                    let by = &y[n][b];
                    let lanes = dot_i8_i8_x4(qx, load_x32(&by.qs));
                    if b < 2 * pairs {
                        let d = _mm256_set1_ps(f16_lookup(t, by.d) * dx);
                        let a = &mut acc[n][b % 2];
                        *a = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes), *a);
                    } else {
                        _mm256_storeu_si256(ints[n].as_mut_ptr().cast(), lanes);
                    }
                }
            }
            let mut out = [0.0f32; N];
            for n in 0..N {
                out[n] = hsum_f32x8(_mm256_add_ps(acc[n][0], acc[n][1]));
                if x.len() % 2 == 1 {
                    let d = f16_lookup(t, y[n][x.len() - 1].d) * f16_lookup(t, x[x.len() - 1].d);
                    out[n] += d * ints[n].iter().sum::<i32>() as f32; // unfused, as single
                }
            }
            out
        }
    }
}

/// Defines a `#[target_feature]` tile kernel for a 32-element type whose many-token tiles take
/// `legacy_batch` (one-token tiles the per-group kernel `$K`), and its safe, token-gated
/// wrapper `fn(Avx2, w, a, outs)`.
macro_rules! batch_tile_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $imp:ident, $W:ty, $K:ty) => {
        /// A whole tile of one weight type (see `legacy_batch::drive`).
        ///
        /// # Safety
        /// The CPU must support AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $imp(w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
            // SAFETY: the features are present (fn contract).
            unsafe { legacy_batch::drive::<$W, $K>(w, a, outs) }
        }

        super::safe_kernel!(
            $(#[$m])* $vis fn $name = $imp; (w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) -> ());
    };
}

batch_tile_kernel!(
    /// Q4_0 · Q8_0 tile on AVX2.
    pub(crate) fn q4_0_tile = q4_0_tile_imp, BlockQ4_0, Q4_0);
batch_tile_kernel!(
    /// Q4_1 · Q8_1 tile on AVX2.
    pub(crate) fn q4_1_tile = q4_1_tile_imp, BlockQ4_1, Q4_1);
batch_tile_kernel!(
    /// Q5_0 · Q8_0 tile on AVX2.
    pub(crate) fn q5_0_tile = q5_0_tile_imp, BlockQ5_0, Q5_0);
batch_tile_kernel!(
    /// Q5_1 · Q8_1 tile on AVX2.
    pub(crate) fn q5_1_tile = q5_1_tile_imp, BlockQ5_1, Q5_1);
batch_tile_kernel!(
    /// Q8_0 · Q8_0 tile on AVX2.
    pub(crate) fn q8_0_tile = q8_0_tile_imp, BlockQ8_0, Q8_0);
tile_kernel!(
    /// IQ4_NL · Q8_0 tile on AVX2.
    pub(crate) fn iq4_nl_tile = iq4_nl_tile_imp, Iq4Nl);

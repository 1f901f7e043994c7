//! Kernels over the 16-row interleaved layout (`cpu::rows16`): lane r of every register is row
//! r of a group, and the AVX2 kernel's 8 partial lanes of a block are 8 registers.
//!
//! Per block, row r still computes `fma(dx·dy, Σ4 lane l, acc_l)` for l in 0..8, the `m·s`
//! chain, and at the end `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)) + summs`: the AVX2 kernel's
//! operations in its order, so outputs are bit-identical to it and to the scalar twin. What 16
//! rows share: one scale multiply, one `m·s` fma and one activation broadcast per token and
//! block, where the row-pair kernels spend one of each per two rows. This module holds the
//! 32-element types and the driver; `kquants` the K-quants.

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{
    as_blocks, Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1,
};

use sluice_loader::GgmlType;

use super::safe_kernel512;
use crate::cpu::f16_table::{f16_lookup, f16_table};
use crate::cpu::rows16::legacy::{self, Quants};
use crate::cpu::rows16::{Rows16Form, GROUP_ROWS};
use crate::cpu::simd::util::{prefetch_span, quad};

/// The packer's offsets of `ty`'s quant runs and fifth-bit masks in the wide form, which these
/// kernels read: the numbers written into them below are checked against it at compile time.
const fn wide(ty: GgmlType) -> (usize, Option<usize>) {
    match legacy::offsets(ty, Rows16Form::Wide) {
        Some(legacy::Offsets {
            quants: Quants::Runs { at, masks },
            ..
        }) => (at, masks),
        _ => panic!("not a 32-element type with quant runs in the wide form"),
    }
}

const _: () = {
    assert!(matches!(wide(GgmlType::Q4_1), (64, None)));
    assert!(matches!(wide(GgmlType::Q5_1), (128, Some(64))));
    assert!(matches!(wide(GgmlType::Q4_0), (32, None)));
    assert!(matches!(wide(GgmlType::Q5_0), (96, Some(32))));
    assert!(matches!(wide(GgmlType::Q8_0), (32, None)));
};

/// Bytes of one interleaved Q4_1 block group (16 rows' block b).
const Q4_1_GROUP_BLOCK: usize = GROUP_ROWS * BlockQ4_1::BYTES;

/// Bytes of one interleaved Q5_1 block group.
const Q5_1_GROUP_BLOCK: usize = GROUP_ROWS * BlockQ5_1::BYTES;

/// Bytes of one interleaved Q8_0 block group.
const Q8_0_GROUP_BLOCK: usize = GROUP_ROWS * BlockQ8_0::BYTES;

/// Bytes ahead of the current block group that the loops prefetch into L2 (measured on 256 MB
/// matrices, 2 threads: decode at 76-90% of the memory read rate, against 63-80% at 640).
const PREFETCH_AHEAD: usize = 4096;

/// Prefetches the block group `far` past `blk` (`len` bytes) into L2 and the one after
/// `blk` (at least 1 KB past it) into L1.
#[inline(always)]
pub(super) fn prefetch_group(blk: *const u8, len: usize, far: usize) {
    prefetch_span(blk, len, len.max(1024), far);
}

/// Activation rows dotted per pass over a group (accumulators: 8 zmm per token). The
/// K-quants spill some of theirs at 4 and still ran 8-token products 4-25% faster than at 2
/// (alternating runs, 256 MB matrices).
const TOKENS_PER_PASS: usize = 4;

/// One group of 16 interleaved Q4_1 rows (`grp`, `nb` block groups) dotted with `N` Q8_1
/// activation rows: `out[n]` lane r is row r's dot with `y[n]`.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI and F16C; `grp.len() == nb * Q4_1_GROUP_BLOCK`
/// and every `y[n]` holds at least `nb` blocks.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `b` indexes the weight group and every token's row
unsafe fn q4_1_group<const QH: bool, const N: usize>(
    grp: &[u8],
    y: [&[BlockQ8_1]; N],
    nb: usize,
) -> [__m512; N] {
    let group_block = if QH {
        Q5_1_GROUP_BLOCK
    } else {
        Q4_1_GROUP_BLOCK
    };
    // Q5_1's fifth-bit masks sit between the scales and the quant runs.
    let runs = if QH { 128 } else { 64 };
    assert!(grp.len() == nb * group_block);
    let y = y.map(|r| &r[..nb]);
    let t = f16_table();
    // SAFETY: AVX-512 per the fn contract; every load reads inside `grp` (block b's 320 bytes:
    // scales at 0..64, qs runs at 64..320); prefetches never fault.
    unsafe {
        let nib = _mm512_set1_epi8(0x0F);
        let sixteen = _mm512_set1_epi8(16);
        let mut acc = [[_mm512_setzero_ps(); 8]; N];
        let mut summs = [_mm512_setzero_ps(); N];
        for b in 0..nb {
            let blk = grp.as_ptr().add(b * group_block);
            prefetch_group(blk, group_block, PREFETCH_AHEAD);
            let dx = _mm512_cvtph_ps(_mm256_loadu_si256(blk.cast()));
            let mx = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(32).cast()));
            let mut d = [_mm512_setzero_ps(); N];
            for n in 0..N {
                let by = &y[n][b];
                let dy = _mm512_set1_ps(f16_lookup(t, by.d));
                summs[n] = _mm512_fmadd_ps(mx, _mm512_set1_ps(f16_lookup(t, by.s)), summs[n]);
                d[n] = _mm512_mul_ps(dx, dy);
            }
            for l in 0..4 {
                let raw = _mm512_loadu_si512(blk.add(runs + 64 * l).cast());
                let mut lo = _mm512_and_si512(raw, nib);
                let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), nib);
                if QH {
                    let k_lo = blk.add(64 + 8 * l).cast::<u64>().read_unaligned();
                    let k_hi = blk.add(64 + 8 * (l + 4)).cast::<u64>().read_unaligned();
                    lo = _mm512_mask_add_epi8(lo, k_lo, lo, sixteen);
                    hi = _mm512_mask_add_epi8(hi, k_hi, hi, sixteen);
                }
                for n in 0..N {
                    let qs = &y[n][b].qs;
                    let ylo = _mm512_set1_epi32(quad(qs, 4 * l));
                    let yhi = _mm512_set1_epi32(quad(qs, 16 + 4 * l));
                    let plo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, ylo);
                    let phi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, yhi);
                    acc[n][l] = _mm512_fmadd_ps(d[n], _mm512_cvtepi32_ps(plo), acc[n][l]);
                    acc[n][l + 4] = _mm512_fmadd_ps(d[n], _mm512_cvtepi32_ps(phi), acc[n][l + 4]);
                }
            }
        }
        let mut out = summs;
        for n in 0..N {
            out[n] = _mm512_add_ps(hsum_lanes(&acc[n]), summs[n]);
        }
        out
    }
}

/// One group's dots with `N` activation rows of block type `A`, per weight type.
trait GroupDot {
    /// Activation block type.
    type A: Block;
    /// Bytes of one interleaved block group.
    const GROUP_BLOCK: usize;

    /// Lane r of `out[n]` is row r's dot with `y[n]`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI and F16C; `grp.len() == nb * GROUP_BLOCK`; every `y[n]` has at
    /// least `nb` blocks.
    unsafe fn group<const N: usize>(grp: &[u8], y: [&[Self::A]; N], nb: usize) -> [__m512; N];
}

/// Declares a weight type's marker and its [`GroupDot`] over a group kernel
/// `kernel::<[FLAGS,] N>(grp, y, nb)`.
macro_rules! group_dot {
    ($(#[$m:meta])* $T:ident, $A:ty, $block:expr, $kernel:ident $(::<$($flag:tt),+>)?) => {
        $(#[$m])*
        struct $T;

        impl GroupDot for $T {
            type A = $A;
            const GROUP_BLOCK: usize = $block;

            #[inline(always)]
            unsafe fn group<const N: usize>(grp: &[u8], y: [&[$A]; N], nb: usize) -> [__m512; N] {
                // SAFETY: the kernel's contract is this method's.
                unsafe { $kernel::<$($($flag,)+)? N>(grp, y, nb) }
            }
        }
    };
}

group_dot!(
    /// Q4_1 · Q8_1.
    Q4_1, BlockQ8_1, Q4_1_GROUP_BLOCK, q4_1_group::<false>);
group_dot!(
    /// Q5_1 · Q8_1: Q4_1 with each lane's fifth bits as 64-bit byte masks (as Q5_0's).
    Q5_1, BlockQ8_1, Q5_1_GROUP_BLOCK, q4_1_group::<true>);

/// A type whose interleaved quants become unsigned bytes `u = q + BIAS` (Q8_0: stored so;
/// Q5_0: the 5-bit value before its `− 16`), dotted with Q8_0 activations: each lane's
/// `vpdpbusd` starts from `−BIAS · Σ y` over its 4 bytes and so ends at the exact `Σ q·y` the
/// AVX2 kernel's lane holds; then `fma(dx·dy, lane, acc)` as there.
trait Biased {
    /// Bytes of one interleaved block group (the 16 rows' f16 `d` first).
    const GROUP_BLOCK: usize;
    /// What the stored or unpacked unsigned bytes exceed the signed quants by.
    const BIAS: i32;

    /// The unsigned operands of AVX2 lanes `h` and `h + 4` (h in 0..4) for the 16 rows.
    ///
    /// # Safety
    /// AVX-512 F/BW; `blk` points at a whole block group.
    unsafe fn operands(blk: *const u8, h: usize) -> (__m512i, __m512i);
}

/// Q8_0 · Q8_0: quants stored as `q ^ 0x80`, 8 runs of 64 bytes after the scales.
struct Q8_0;

impl Biased for Q8_0 {
    const GROUP_BLOCK: usize = Q8_0_GROUP_BLOCK;
    const BIAS: i32 = 128;

    #[inline(always)]
    unsafe fn operands(blk: *const u8, h: usize) -> (__m512i, __m512i) {
        // SAFETY: runs h and h + 4 lie inside the block group (32 + 8·64 bytes).
        unsafe {
            (
                _mm512_loadu_si512(blk.add(32 + 64 * h).cast()),
                _mm512_loadu_si512(blk.add(32 + 64 * (h + 4)).cast()),
            )
        }
    }
}

/// Q4_0 · Q8_0: nibbles as Q4_1's runs, right after the scales.
struct Q4_0;

impl Biased for Q4_0 {
    const GROUP_BLOCK: usize = GROUP_ROWS * BlockQ4_0::BYTES;
    const BIAS: i32 = 8;

    #[inline(always)]
    unsafe fn operands(blk: *const u8, h: usize) -> (__m512i, __m512i) {
        // SAFETY: qs run h at 32 + 64h lies inside the 288-byte group.
        unsafe {
            let nib = _mm512_set1_epi8(0x0F);
            let raw = _mm512_loadu_si512(blk.add(32 + 64 * h).cast());
            (
                _mm512_and_si512(raw, nib),
                _mm512_and_si512(_mm512_srli_epi16::<4>(raw), nib),
            )
        }
    }
}

/// Q5_0 · Q8_0: nibbles as Q4_1's runs, each lane's fifth bits a 64-bit byte mask.
struct Q5_0;

impl Biased for Q5_0 {
    const GROUP_BLOCK: usize = GROUP_ROWS * BlockQ5_0::BYTES;
    const BIAS: i32 = 16;

    #[inline(always)]
    unsafe fn operands(blk: *const u8, h: usize) -> (__m512i, __m512i) {
        // SAFETY: masks at 32..96 and qs run h at 96 + 64h lie inside the 352-byte group.
        unsafe {
            let nib = _mm512_set1_epi8(0x0F);
            let sixteen = _mm512_set1_epi8(16);
            let raw = _mm512_loadu_si512(blk.add(96 + 64 * h).cast());
            let lo = _mm512_and_si512(raw, nib);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), nib);
            let k_lo = blk.add(32 + 8 * h).cast::<u64>().read_unaligned();
            let k_hi = blk.add(32 + 8 * (h + 4)).cast::<u64>().read_unaligned();
            (
                _mm512_mask_add_epi8(lo, k_lo, lo, sixteen),
                _mm512_mask_add_epi8(hi, k_hi, hi, sixteen),
            )
        }
    }
}

impl<K: Biased> GroupDot for K {
    type A = BlockQ8_0;
    const GROUP_BLOCK: usize = K::GROUP_BLOCK;

    #[inline(always)]
    unsafe fn group<const N: usize>(grp: &[u8], y: [&[BlockQ8_0]; N], nb: usize) -> [__m512; N] {
        // SAFETY: the same contract.
        unsafe { biased_group::<K, N>(grp, y, nb) }
    }
}

/// Blocks whose activation corrections are computed ahead, together, so that the block loop
/// broadcasts them from memory (a load each) rather than shuffling them out of registers.
const BIAS_CHUNK: usize = 16;

/// One group of 16 interleaved rows of a [`Biased`] type dotted with `N` Q8_0 activation rows.
///
/// # Safety
/// As [`GroupDot::group`].
#[inline(always)]
unsafe fn biased_group<K: Biased, const N: usize>(
    grp: &[u8],
    y: [&[BlockQ8_0]; N],
    nb: usize,
) -> [__m512; N] {
    assert!(grp.len() == nb * K::GROUP_BLOCK);
    let y = y.map(|r| &r[..nb]);
    let t = f16_table();
    // SAFETY: AVX-512 per the fn contract; every load reads inside `grp` (block b's bytes) or
    // a whole activation block; prefetches never fault.
    unsafe {
        let ones = _mm256_set1_epi8(1);
        let minus_bias = _mm256_set1_epi32(-K::BIAS);
        let mut acc = [[_mm512_setzero_ps(); 8]; N];
        let mut bias = [[[0i32; 8]; N]; BIAS_CHUNK];
        for c0 in (0..nb).step_by(BIAS_CHUNK) {
            let blocks = c0..nb.min(c0 + BIAS_CHUNK);
            for (b, out) in blocks.clone().zip(bias.iter_mut()) {
                for (n, o) in out.iter_mut().enumerate() {
                    let qy = _mm256_loadu_si256(y[n][b].qs.as_ptr().cast());
                    let sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, qy);
                    _mm256_storeu_si256(
                        o.as_mut_ptr().cast(),
                        _mm256_mullo_epi32(sums, minus_bias),
                    );
                }
            }
            for (b, corr) in blocks.zip(bias.iter()) {
                let blk = grp.as_ptr().add(b * K::GROUP_BLOCK);
                prefetch_group(blk, K::GROUP_BLOCK, PREFETCH_AHEAD);
                let dx = _mm512_cvtph_ps(_mm256_loadu_si256(blk.cast()));
                let mut d = [dx; N];
                for n in 0..N {
                    d[n] = _mm512_mul_ps(dx, _mm512_set1_ps(f16_lookup(t, y[n][b].d)));
                }
                for h in 0..4 {
                    let (u_lo, u_hi) = K::operands(blk, h);
                    for n in 0..N {
                        let qs = &y[n][b].qs;
                        let ylo = _mm512_set1_epi32(quad(qs, 4 * h));
                        let yhi = _mm512_set1_epi32(quad(qs, 16 + 4 * h));
                        let plo = _mm512_dpbusd_epi32(_mm512_set1_epi32(corr[n][h]), u_lo, ylo);
                        let phi = _mm512_dpbusd_epi32(_mm512_set1_epi32(corr[n][h + 4]), u_hi, yhi);
                        acc[n][h] = _mm512_fmadd_ps(d[n], _mm512_cvtepi32_ps(plo), acc[n][h]);
                        acc[n][h + 4] =
                            _mm512_fmadd_ps(d[n], _mm512_cvtepi32_ps(phi), acc[n][h + 4]);
                    }
                }
            }
        }
        hsum_tokens(&acc)
    }
}

/// Each lane's `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`: `hsum_f32x8`'s order, 16 rows at once.
///
/// # Safety
/// AVX-512F must be available (called from a kernel compiled with it).
#[inline(always)]
unsafe fn hsum_lanes(a: &[__m512; 8]) -> __m512 {
    // SAFETY: AVX-512F per the fn contract; register-only.
    unsafe {
        let even = _mm512_add_ps(_mm512_add_ps(a[0], a[4]), _mm512_add_ps(a[2], a[6]));
        let odd = _mm512_add_ps(_mm512_add_ps(a[1], a[5]), _mm512_add_ps(a[3], a[7]));
        _mm512_add_ps(even, odd)
    }
}

/// [`hsum_lanes`] of each token's 8 accumulators.
///
/// # Safety
/// AVX-512F must be available (called from a kernel compiled with it).
#[inline(always)]
unsafe fn hsum_tokens<const N: usize>(acc: &[[__m512; 8]; N]) -> [__m512; N] {
    // SAFETY: AVX-512F per the fn contract; register-only.
    unsafe {
        let mut out = [_mm512_setzero_ps(); N];
        for n in 0..N {
            out[n] = hsum_lanes(&acc[n]);
        }
        out
    }
}

/// `outs[k][i] = dot(weight row i, activation row k)` for interleaved rows `w` (whole groups)
/// and activation rows `a` (`outs.len()` of them).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[inline(always)]
unsafe fn drive<K: GroupDot>(w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
    let n_tok = outs.len();
    let Some(y) = as_blocks::<K::A>(a) else {
        return;
    };
    let nb = y.len().checked_div(n_tok).unwrap_or(0);
    if nb == 0 {
        return;
    }
    let act = |k: usize| &y[k * nb..(k + 1) * nb];
    for (g, grp) in w.chunks_exact(nb * K::GROUP_BLOCK).enumerate() {
        let mut k = 0;
        while k < n_tok {
            let n = (n_tok - k).min(TOKENS_PER_PASS);
            // SAFETY: features per this fn's contract; `grp` is one whole group of `nb` block
            // groups and every activation row has `nb` blocks.
            unsafe {
                match n {
                    1 => store(outs, k, g, &K::group::<1>(grp, [act(k)], nb)),
                    2 => store(outs, k, g, &K::group::<2>(grp, [act(k), act(k + 1)], nb)),
                    3 => store(
                        outs,
                        k,
                        g,
                        &K::group::<3>(grp, [act(k), act(k + 1), act(k + 2)], nb),
                    ),
                    _ => store(
                        outs,
                        k,
                        g,
                        &K::group::<4>(grp, [act(k), act(k + 1), act(k + 2), act(k + 3)], nb),
                    ),
                }
            }
            k += n;
        }
    }
}

/// Defines a `#[target_feature]` interleaved tile kernel over a [`GroupDot`] and its safe,
/// token-gated wrapper `fn(Avx512, w, a, outs)`.
macro_rules! rows16_tile {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $imp:ident, $K:ty) => {
        /// A tile of interleaved rows (whole groups; see `drive`).
        ///
        /// # Safety
        /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $imp(w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
            // SAFETY: the features are present (fn contract).
            unsafe { drive::<$K>(w, a, outs) }
        }

        safe_kernel512!(
            $(#[$m])* $vis fn $name = $imp; (w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) -> ());
    };
}

/// Stores group `g`'s results for tokens `k..k + r.len()`.
///
/// # Safety
/// AVX-512F must be available (called from a kernel compiled with it).
#[inline(always)]
unsafe fn store(outs: &mut [&mut [f32]], k: usize, g: usize, r: &[__m512]) {
    for (o, v) in outs[k..k + r.len()].iter_mut().zip(r) {
        let o = &mut o[g * GROUP_ROWS..(g + 1) * GROUP_ROWS];
        // SAFETY: `o` is 16 writable f32; storeu takes any alignment; AVX-512F per the fn
        // contract.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *v) };
    }
}

rows16_tile!(
    /// Q4_1 · Q8_1 tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q4_1_rows16_tile = q4_1_imp, Q4_1);
rows16_tile!(
    /// Q4_0 · Q8_0 tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q4_0_rows16_tile = q4_0_imp, Q4_0);
rows16_tile!(
    /// Q5_1 · Q8_1 tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q5_1_rows16_tile = q5_1_imp, Q5_1);
rows16_tile!(
    /// Q5_0 · Q8_0 tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q5_0_rows16_tile = q5_0_imp, Q5_0);
rows16_tile!(
    /// Q8_0 · Q8_0 tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q8_0_rows16_tile = q8_0_imp, Q8_0);

mod kquants;

pub(crate) use kquants::{
    q2k_rows16_tile, q3k_rows16_tile, q4k_rows16_tile, q5k_rows16_tile, q6k_rows16_tile,
};

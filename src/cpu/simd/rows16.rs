//! AVX2 kernels over the 16-row interleaved layout (`cpu::rows16`) for the 32-element types
//! (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): each group is read as two halves of 8 rows, lane r of a
//! ymm register is row r of the half, and the file kernel's 8 partial lanes of a block are 8
//! registers. Where each field sits comes from `cpu::rows16::legacy`, the packer's shapes.
//!
//! Per block, row r still computes `fma(dx·dy, Σ4 lane l, acc_l)` for l in 0..8 (and Q4_1's
//! `m·s` chain), then `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)) (+ summs)`: the file kernel's
//! operations in its order, so every output is bit-identical to it and to the scalar twin.
//! What 8 rows share: the nibble unpacking (one 32-byte load per two lanes instead of a
//! 16-byte load, a shift and an insert per row), the scale conversions and products, the
//! activation loads. The file kernel spends about 18 instructions per row and 4-bit block;
//! this one about 6 (estimated from the generated code).
//!
//! Q4_0 and Q5_0 quants are taken unsigned (`u = q + BIAS`, exact in `vpmaddubsw`): each lane
//! then subtracts `BIAS · Σ y` over its 4 activation bytes, an exact integer correction computed
//! once per token and block, and so holds the file kernel's `Σ q·y`.
//!
//! Q5_0 and Q5_1 are read in the layout's halves form: each lane's 5-bit operands packed whole
//! into five vectors per half, so that five lanes take one mask each and three a few shifts and
//! masks (23 vector instructions a half block, counted in `fives`, where expanding the wide
//! form's 64-bit fifth-bit masks took 6 a lane, 48: a broadcast, `pshufb`, an and, a compare,
//! a mask and a merge).

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{as_blocks, Block, BlockQ8_0, BlockQ8_1};
use sluice_loader::GgmlType;

use super::util::{dot_u8_i8_x4, load_x32, prefetch_l2, quad};
use crate::cpu::f16_table::{f16_lookup, f16_table};
use crate::cpu::rows16::legacy::{self, Quants};
use crate::cpu::rows16::{Rows16Form, GROUP_ROWS};

/// Rows per half group: one per f32 lane of a ymm register.
const HALF: usize = 8;

/// What a half pass prefetches into L2, besides what the hardware fetches by itself.
#[derive(Clone, Copy)]
struct Prefetch {
    /// The next group is this tile's too: stream it through both passes, a share per step.
    next: bool,
    /// This group was prefetched by no earlier pass (the tile's first): stream it ahead of the
    /// first pass.
    own: bool,
}

/// Bytes ahead of the current block group that a tile's first group streams itself.
const PREFETCH_AHEAD: usize = 4096;

/// Step `h·nb + b` of a group's two passes: prefetches into L2 its share of the next group
/// (half a block group), so that memory streams the next group through both passes rather
/// than idling through the second, which reads this group from cache; and, for a tile's first
/// group, this group's bytes `PREFETCH_AHEAD` on. Nothing past the tile: its rows after it are
/// another thread's, on another core's L2.
#[inline(always)]
fn prefetch(grp: &[u8], group_block: usize, nb: usize, h: usize, b: usize, pf: Prefetch) {
    let base = grp.as_ptr();
    if pf.next {
        let at = nb * group_block + (h * nb + b) * group_block / 2;
        prefetch_l2(base.wrapping_add(at), group_block.div_ceil(2));
    }
    if pf.own && h == 0 && b * group_block + PREFETCH_AHEAD <= grp.len() {
        prefetch_l2(
            base.wrapping_add(b * group_block + PREFETCH_AHEAD),
            group_block,
        );
    }
}

/// One interleaved weight type's half-group dot, and where its fields sit.
trait HalfDot {
    /// Activation block type.
    type A: Block;
    /// Bytes of one interleaved block group (16 rows' block b).
    const GROUP_BLOCK: usize;
    /// Where the quants sit in a block group (halves form).
    const QUANTS: Quants;

    /// Lane r of output n is row `8h + r` of the group `grp` (`nb` block groups) dotted with
    /// activation row `y[n]`.
    ///
    /// # Safety
    /// AVX2, FMA and F16C; `grp.len() == nb * GROUP_BLOCK`; every `y[n]` has at least `nb`
    /// blocks; `h < 2`.
    unsafe fn half<const N: usize>(
        grp: &[u8],
        y: [&[Self::A]; N],
        nb: usize,
        h: usize,
        pf: Prefetch,
    ) -> [__m256; N];
}

/// Each lane's `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`: `hsum_f32x8`'s order, 8 rows at once.
///
/// # Safety
/// AVX must be available (called from a kernel compiled with it).
#[inline(always)]
unsafe fn hsum_lanes(a: &[__m256; 8]) -> __m256 {
    // SAFETY: AVX per the fn contract; register-only.
    unsafe {
        let even = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
        let odd = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
        _mm256_add_ps(even, odd)
    }
}

/// Converts the 8 f16 values at `p` to f32 (exact, as the table lookups of the file kernel).
///
/// # Safety
/// F16C; `p` points at 16 readable bytes.
#[inline(always)]
unsafe fn f16x8(p: *const u8) -> __m256 {
    // SAFETY: 16 readable bytes per the fn contract; loadu takes any alignment.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

/// Each token's block scales `dx · dy`: the 8 rows' `d` of half `h` at `blk`, times token n's
/// activation `d` (`dy[n]`, f16).
///
/// # Safety
/// AVX and F16C; `blk` points at a whole block group.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // a loop, not a map: closures lose the target features
unsafe fn scales<const N: usize>(blk: *const u8, h: usize, dy: [[u8; 2]; N]) -> [__m256; N] {
    let t = f16_table();
    // SAFETY: the 16 bytes of the half's `d` lie inside the block group (fn contract).
    unsafe {
        let dx = f16x8(blk.add(legacy::D + 16 * h));
        let mut d = [dx; N];
        for n in 0..N {
            d[n] = _mm256_mul_ps(dx, _mm256_set1_ps(f16_lookup(t, dy[n])));
        }
        d
    }
}

/// [`hsum_lanes`] of each token's 8 accumulators.
///
/// # Safety
/// AVX must be available (called from a kernel compiled with it).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // a loop, not a map: closures lose the target features
unsafe fn hsum_tokens<const N: usize>(acc: &[[__m256; 8]; N]) -> [__m256; N] {
    // SAFETY: AVX per the fn contract; register-only.
    unsafe {
        let mut sums = [_mm256_setzero_ps(); N];
        for n in 0..N {
            sums[n] = hsum_lanes(&acc[n]);
        }
        sums
    }
}

/// The 8 rows' unsigned operands of AVX2 lanes `l` and `l + 4` (the low and high nibbles of
/// quant run `l`, half `h`) of `K`'s block group at `blk` (Q4_0, Q4_1).
///
/// # Safety
/// AVX2; `blk` points at a whole block group of `K`, whose quants are runs.
#[inline(always)]
unsafe fn nibbles<K: HalfDot>(blk: *const u8, l: usize, h: usize) -> (__m256i, __m256i) {
    let Quants::Runs { at, .. } = K::QUANTS else {
        unreachable!("nibbles of a type without quant runs");
    };
    // SAFETY: the read lies inside the block group per the fn contract.
    unsafe {
        let nib = _mm256_set1_epi8(0x0F);
        let raw = _mm256_loadu_si256(blk.add(at + 64 * l + 32 * h).cast());
        let lo = _mm256_and_si256(raw, nib);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), nib);
        (lo, hi)
    }
}

/// The 8 rows' 5-bit operands of all 8 AVX2 lanes from a half's five vectors at `v` (halves
/// form, `cpu::rows16::legacy::FIVE_PIECES`): lanes 0-4 are their vectors' low 5 bits; lanes
/// 5-7 gather the bits above them. The 16-bit shifts carry bits across the bytes of a pair
/// only into bits that the masks then clear.
///
/// # Safety
/// AVX2; `v` points at 160 readable bytes.
#[inline(always)]
unsafe fn fives(v: *const u8) -> [__m256i; 8] {
    // SAFETY: the five loads read the 160 bytes of the fn contract.
    unsafe {
        let load = |i: usize| _mm256_loadu_si256(v.add(32 * i).cast());
        let (v0, v1, v2, v3, v4) = (load(0), load(1), load(2), load(3), load(4));
        let mask = |x: i8| _mm256_set1_epi8(x);
        let low5 = mask(0x1F);
        // Lane 5: v0's bits 5-7, then v1's bits 5-6.
        let l5 = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<5>(v0), mask(0x07)),
            _mm256_and_si256(_mm256_srli_epi16::<2>(v1), mask(0x18)),
        );
        // Lane 6: v1's bit 7, v2's bits 5-7, v3's bit 5.
        let l6 = _mm256_or_si256(
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<7>(v1), mask(0x01)),
                _mm256_and_si256(_mm256_srli_epi16::<4>(v2), mask(0x0E)),
            ),
            _mm256_and_si256(_mm256_srli_epi16::<1>(v3), mask(0x10)),
        );
        // Lane 7: v3's bits 6-7, v4's bits 5-7.
        let l7 = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<6>(v3), mask(0x03)),
            _mm256_and_si256(_mm256_srli_epi16::<3>(v4), mask(0x1C)),
        );
        [
            _mm256_and_si256(v0, low5),
            _mm256_and_si256(v1, low5),
            _mm256_and_si256(v2, low5),
            _mm256_and_si256(v3, low5),
            _mm256_and_si256(v4, low5),
            l5,
            l6,
            l7,
        ]
    }
}

/// Folds one token's block into AVX2 lane `lane` of the 8 rows: `u` is the rows' unsigned
/// operands of the lane, `qs` the activation block's quants, `corr` the lane's `BIAS · Σ y`
/// where the operands are biased (0 where not).
///
/// # Safety
/// AVX2 and FMA must be available (called from a kernel compiled with them).
#[inline(always)]
unsafe fn fold_lane(
    u: __m256i,
    qs: &[i8; 32],
    lane: usize,
    corr: i32,
    d: __m256,
    acc: &mut __m256,
) {
    // SAFETY: AVX2/FMA per the fn contract; register-only.
    unsafe {
        let y = _mm256_set1_epi32(quad(qs, 4 * lane));
        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1));
        let p = _mm256_sub_epi32(p, _mm256_set1_epi32(corr));
        *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), *acc);
    }
}

/// Folds one token's block group half into all 8 lanes' accumulators: `K`'s operands of
/// block `blk`, half `h`, against activation blocks `qs` (one per token), with the lanes'
/// corrections `corr` and scales `d`.
///
/// # Safety
/// AVX2 and FMA; `blk` points at a whole block group of `K`; `h < 2`.
#[inline(always)]
unsafe fn fold_block<K: HalfDot, const N: usize>(
    blk: *const u8,
    h: usize,
    qs: [&[i8; 32]; N],
    corr: [&[i32; 8]; N],
    d: &[__m256; N],
    acc: &mut [[__m256; 8]; N],
) {
    // SAFETY: per the fn contract; the operand reads lie inside the block group.
    unsafe {
        match K::QUANTS {
            Quants::Fives { at } => {
                let ops = fives(blk.add(at + legacy::FIVES_HALF * h));
                for (lane, &u) in ops.iter().enumerate() {
                    for n in 0..N {
                        fold_lane(u, qs[n], lane, corr[n][lane], d[n], &mut acc[n][lane]);
                    }
                }
            }
            Quants::Runs { .. } => {
                // Lanes l and l + 4 share a load; 2 operands live at a time, not 8.
                for l in 0..4 {
                    let (lo, hi) = nibbles::<K>(blk, l, h);
                    for n in 0..N {
                        fold_lane(lo, qs[n], l, corr[n][l], d[n], &mut acc[n][l]);
                        fold_lane(hi, qs[n], l + 4, corr[n][l + 4], d[n], &mut acc[n][l + 4]);
                    }
                }
            }
        }
    }
}

/// No corrections: the lanes of unbiased operands (Q4_1, Q5_1).
const NO_CORR: [i32; 8] = [0; 8];

/// Q4_1 or Q5_1 (`K`) · Q8_1 over half `h` of a group, for `N` activation rows: each block's
/// operands are unpacked once and serve every row.
///
/// # Safety
/// As [`HalfDot::half`].
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `b` indexes the weight group and every token's row
unsafe fn offset_half<K: HalfDot, const N: usize>(
    grp: &[u8],
    y: [&[BlockQ8_1]; N],
    nb: usize,
    h: usize,
    pf: Prefetch,
) -> [__m256; N] {
    let group_block = K::GROUP_BLOCK;
    assert!(grp.len() == nb * group_block && h < 2);
    let y = y.map(|r| &r[..nb]);
    let t = f16_table();
    // SAFETY: AVX2/FMA/F16C per the fn contract; every load reads inside block b's group or a
    // whole activation block. (Loops, not closures, around the intrinsics: closures do not
    // inherit the kernel's target features.)
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 8]; N];
        let mut summs = [_mm256_setzero_ps(); N];
        for b in 0..nb {
            let blk = grp.as_ptr().add(b * group_block);
            prefetch(grp, group_block, nb, h, b, pf);
            let mx = f16x8(blk.add(legacy::M + 16 * h));
            for n in 0..N {
                let s = _mm256_set1_ps(f16_lookup(t, y[n][b].s));
                summs[n] = _mm256_fmadd_ps(mx, s, summs[n]);
            }
            let d = scales::<N>(blk, h, std::array::from_fn(|n| y[n][b].d));
            // Unbiased operands: no correction (the subtractions of 0 fold away).
            let qs = std::array::from_fn(|n| &y[n][b].qs);
            fold_block::<K, N>(blk, h, qs, [&NO_CORR; N], &d, &mut acc);
        }
        let mut out = hsum_tokens(&acc);
        for n in 0..N {
            out[n] = _mm256_add_ps(out[n], summs[n]);
        }
        out
    }
}

/// Q4_0 or Q5_0 (`K`) · Q8_0 over half `h` of a group, for `N` activation rows. The unpacked
/// operands are the quants plus 8 (4-bit) or 16 (with the fifth bit).
///
/// # Safety
/// As [`HalfDot::half`].
#[inline(always)]
unsafe fn biased_half<K: HalfDot, const N: usize>(
    grp: &[u8],
    y: [&[BlockQ8_0]; N],
    nb: usize,
    h: usize,
    pf: Prefetch,
) -> [__m256; N] {
    let group_block = K::GROUP_BLOCK;
    let bias: i8 = if matches!(K::QUANTS, Quants::Fives { .. }) {
        16
    } else {
        8
    };
    assert!(grp.len() == nb * group_block && h < 2);
    let y = y.map(|r| &r[..nb]);
    // SAFETY: AVX2/FMA/F16C per the fn contract; every load reads inside block b's group or a
    // whole activation block.
    unsafe {
        let biases = _mm256_set1_epi8(bias);
        let mut acc = [[_mm256_setzero_ps(); 8]; N];
        let mut corr = [[[0i32; 8]; N]; BIAS_CHUNK];
        for c0 in (0..nb).step_by(BIAS_CHUNK) {
            let blocks = c0..nb.min(c0 + BIAS_CHUNK);
            // Lane l of block b's row n: BIAS · Σ y over the lane's 4 activation bytes
            // (|c| ≤ 16·4·127), computed ahead so the block loop broadcasts them from memory.
            for (b, c) in blocks.clone().zip(corr.iter_mut()) {
                for n in 0..N {
                    let v = dot_u8_i8_x4(biases, load_x32(&y[n][b].qs));
                    _mm256_storeu_si256(c[n].as_mut_ptr().cast(), v);
                }
            }
            for (b, c) in blocks.zip(corr.iter()) {
                let blk = grp.as_ptr().add(b * group_block);
                prefetch(grp, group_block, nb, h, b, pf);
                let d = scales::<N>(blk, h, std::array::from_fn(|n| y[n][b].d));
                let qs = std::array::from_fn(|n| &y[n][b].qs);
                let corr = std::array::from_fn(|n| &c[n]);
                fold_block::<K, N>(blk, h, qs, corr, &d, &mut acc);
            }
        }
        hsum_tokens(&acc)
    }
}

/// Q8_0 · Q8_0 over half `h` of a group, for `N` activation rows: the quants are stored as
/// `q ^ 0x80` in 8 runs of 64 bytes (the AVX-512 kernels' unsigned operand);
/// here they are flipped back and dotted as the file kernel does, `|q|` against `y·sign(q)`.
///
/// # Safety
/// As [`HalfDot::half`].
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `b` and `l` index the weight group, every token's row
unsafe fn q8_0_half<K: HalfDot, const N: usize>(
    grp: &[u8],
    y: [&[BlockQ8_0]; N],
    nb: usize,
    h: usize,
    pf: Prefetch,
) -> [__m256; N] {
    let group_block = K::GROUP_BLOCK;
    let Quants::Runs { at: runs, .. } = K::QUANTS else {
        unreachable!("Q8_0's quants are runs");
    };
    assert!(grp.len() == nb * group_block && h < 2);
    let y = y.map(|r| &r[..nb]);
    // SAFETY: AVX2/FMA/F16C per the fn contract; every load reads inside block b's group or a
    // whole activation block.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let flip = _mm256_set1_epi8(-128);
        let mut acc = [[_mm256_setzero_ps(); 8]; N];
        for b in 0..nb {
            let blk = grp.as_ptr().add(b * group_block);
            prefetch(grp, group_block, nb, h, b, pf);
            let d = scales::<N>(blk, h, std::array::from_fn(|n| y[n][b].d));
            for l in 0..8 {
                let raw = _mm256_loadu_si256(blk.add(runs + 64 * l + 32 * h).cast());
                let q = _mm256_xor_si256(raw, flip);
                let a = _mm256_sign_epi8(q, q);
                for n in 0..N {
                    let yq = _mm256_set1_epi32(quad(&y[n][b].qs, 4 * l));
                    let p =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(yq, q)), ones);
                    acc[n][l] = _mm256_fmadd_ps(d[n], _mm256_cvtepi32_ps(p), acc[n][l]);
                }
            }
        }
        hsum_tokens(&acc)
    }
}

/// Blocks whose activation corrections are computed ahead, together (see [`biased_half`]).
const BIAS_CHUNK: usize = 16;

/// Declares a weight type's marker and its [`HalfDot`]: the type's offsets from
/// `cpu::rows16::legacy`, its half kernel.
macro_rules! half_dot {
    ($(#[$m:meta])* $T:ident, $ty:expr, $A:ty, $kernel:ident) => {
        $(#[$m])*
        struct $T;

        impl HalfDot for $T {
            type A = $A;
            const GROUP_BLOCK: usize = offsets($ty).group_block;
            const QUANTS: Quants = offsets($ty).quants;

            #[inline(always)]
            unsafe fn half<const N: usize>(
                grp: &[u8],
                y: [&[$A]; N],
                nb: usize,
                h: usize,
                pf: Prefetch,
            ) -> [__m256; N] {
                // SAFETY: the kernel's contract is this method's.
                unsafe { $kernel::<Self, N>(grp, y, nb, h, pf) }
            }
        }
    };
}

/// The offsets of a type the layout takes, in the halves form these kernels read (a
/// compile-time error for any other type).
const fn offsets(ty: GgmlType) -> legacy::Offsets {
    match legacy::offsets(ty, Rows16Form::Halves) {
        Some(o) => o,
        None => panic!("not a 32-element type of the 16-row layout"),
    }
}

half_dot!(
    /// Q4_1 · Q8_1.
    Q4_1, GgmlType::Q4_1, BlockQ8_1, offset_half);
half_dot!(
    /// Q5_1 · Q8_1.
    Q5_1, GgmlType::Q5_1, BlockQ8_1, offset_half);
half_dot!(
    /// Q4_0 · Q8_0.
    Q4_0, GgmlType::Q4_0, BlockQ8_0, biased_half);
half_dot!(
    /// Q5_0 · Q8_0.
    Q5_0, GgmlType::Q5_0, BlockQ8_0, biased_half);
half_dot!(
    /// Q8_0 · Q8_0.
    Q8_0, GgmlType::Q8_0, BlockQ8_0, q8_0_half);

/// `outs[k][i] = dot(weight row i, activation row k)` for interleaved rows `w` (whole groups)
/// and activation rows `a` (`outs.len()` of them): half by half, token by token, so a half's
/// bytes are read from memory once and from cache for the other tokens and the other half.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[inline(always)]
unsafe fn drive<K: HalfDot>(w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
    let n_tok = outs.len();
    let Some(y) = as_blocks::<K::A>(a) else {
        return;
    };
    let nb = y.len().checked_div(n_tok).unwrap_or(0);
    if nb == 0 {
        return;
    }
    let act = |k: usize| &y[k * nb..(k + 1) * nb];
    // Activation rows `k..k + N`.
    fn rows<'y, A, const N: usize>(act: impl Fn(usize) -> &'y [A], k: usize) -> [&'y [A]; N] {
        std::array::from_fn(|j| act(k + j))
    }
    let n_groups = w.len() / (nb * K::GROUP_BLOCK);
    for (g, grp) in w.chunks_exact(nb * K::GROUP_BLOCK).enumerate() {
        let pf = Prefetch {
            next: g + 1 < n_groups,
            own: g == 0,
        };
        for h in 0..2 {
            let at = g * GROUP_ROWS + h * HALF;
            let mut k = 0;
            while k < n_tok {
                let n = (n_tok - k).min(TOKENS_PER_PASS);
                // SAFETY: features per this fn's contract; `grp` is one whole group of `nb`
                // block groups; every activation row has `nb` blocks; h < 2.
                unsafe {
                    match n {
                        1 => store(outs, k, at, &K::half::<1>(grp, rows(act, k), nb, h, pf)),
                        2 => store(outs, k, at, &K::half::<2>(grp, rows(act, k), nb, h, pf)),
                        3 => store(outs, k, at, &K::half::<3>(grp, rows(act, k), nb, h, pf)),
                        4 => store(outs, k, at, &K::half::<4>(grp, rows(act, k), nb, h, pf)),
                        5 => store(outs, k, at, &K::half::<5>(grp, rows(act, k), nb, h, pf)),
                        6 => store(outs, k, at, &K::half::<6>(grp, rows(act, k), nb, h, pf)),
                        7 => store(outs, k, at, &K::half::<7>(grp, rows(act, k), nb, h, pf)),
                        _ => store(outs, k, at, &K::half::<8>(grp, rows(act, k), nb, h, pf)),
                    }
                }
                k += n;
            }
        }
    }
}

/// Activation rows dotted per pass over a half group (8 accumulators each: past one, the
/// accumulators live in L1, and the operands are unpacked once for all the pass's rows). 8
/// rather than 4, 8-token products, 2 threads, EPYC (weight GB/s × tokens, same build): 576-
/// element rows Q4_1 34.4 → 34.8, Q5_0 29.5 → 32.1, Q8_0 50.4 → 54.2; 4864-element rows 39.6 →
/// 41.0, 36.3 → 38.3, 61.6 → 64.2.
const TOKENS_PER_PASS: usize = 8;

/// Stores a half group's results (rows `at..at + 8`) for activation rows `k..k + r.len()`.
///
/// # Safety
/// AVX must be available (called from a kernel compiled with it).
#[inline(always)]
unsafe fn store(outs: &mut [&mut [f32]], k: usize, at: usize, r: &[__m256]) {
    for (o, v) in outs[k..k + r.len()].iter_mut().zip(r) {
        let o = &mut o[at..at + HALF];
        // SAFETY: `o` is 8 writable f32; storeu takes any alignment; AVX per the fn contract.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), *v) };
    }
}

/// Defines a `#[target_feature]` interleaved tile kernel over a [`HalfDot`] and its safe,
/// token-gated wrapper `fn(Avx2, w, a, outs)`.
macro_rules! rows16_tile {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $imp:ident, $K:ty) => {
        /// A tile of interleaved rows (whole groups; see `drive`).
        ///
        /// # Safety
        /// The CPU must support AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $imp(w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
            // SAFETY: the features are present (fn contract).
            unsafe { drive::<$K>(w, a, outs) }
        }

        super::safe_kernel!(
            $(#[$m])* $vis fn $name = $imp; (w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) -> ());
    };
}

rows16_tile!(
    /// Q4_1 · Q8_1 tile over 16-row interleaved weights on AVX2 (whole groups).
    pub(crate) fn q4_1_rows16_tile = q4_1_imp, Q4_1);
rows16_tile!(
    /// Q5_1 · Q8_1 tile over 16-row interleaved weights on AVX2 (whole groups).
    pub(crate) fn q5_1_rows16_tile = q5_1_imp, Q5_1);
rows16_tile!(
    /// Q4_0 · Q8_0 tile over 16-row interleaved weights on AVX2 (whole groups).
    pub(crate) fn q4_0_rows16_tile = q4_0_imp, Q4_0);
rows16_tile!(
    /// Q5_0 · Q8_0 tile over 16-row interleaved weights on AVX2 (whole groups).
    pub(crate) fn q5_0_rows16_tile = q5_0_imp, Q5_0);
rows16_tile!(
    /// Q8_0 · Q8_0 tile over 16-row interleaved weights on AVX2 (whole groups).
    pub(crate) fn q8_0_rows16_tile = q8_0_imp, Q8_0);

//! Kernels over the 16-row interleaved layout (`cpu::rows16`): lane r of every register is row
//! r of a group, and the AVX2 kernel's 8 partial lanes of a block are 8 registers.
//!
//! Per block, row r still computes `fma(dx·dy, Σ4 lane l, acc_l)` for l in 0..8, the `m·s`
//! chain, and at the end `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)) + summs`: the AVX2 kernel's
//! operations in its order, so outputs are bit-identical to it and to the scalar twin. What 16
//! rows share: one scale multiply, one `m·s` fma and one activation broadcast per token and
//! block, where the row-pair kernels spend one of each per two rows.

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{
    as_blocks, Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8K, BlockQ8_0, BlockQ8_1,
};

use super::safe_kernel512;
use crate::cpu::dot::kquants::q8k_d;
use crate::cpu::f16_table::{f16_lookup, f16_table};
use crate::cpu::rows16::{q2k, q3k, q4k, q5k, q6k, GROUP_ROWS};

/// Bytes of one interleaved Q4_1 block group (16 rows' block b).
const Q4_1_GROUP_BLOCK: usize = GROUP_ROWS * BlockQ4_1::BYTES;

/// Bytes of one interleaved Q5_1 block group.
const Q5_1_GROUP_BLOCK: usize = GROUP_ROWS * BlockQ5_1::BYTES;

/// Bytes of one interleaved Q8_0 block group.
const Q8_0_GROUP_BLOCK: usize = GROUP_ROWS * BlockQ8_0::BYTES;

/// Bytes ahead of the current block group that the loops prefetch (measured on 256 MB
/// matrices, 2 threads: decode at 76-90% of the memory read rate, against 63-80% at 640).
const PREFETCH_AHEAD: usize = 4096;

/// Prefetch distance of the K-quant loops, whose block groups are 7-10x larger (256 MB, 2
/// threads: 8 KB at least as fast as 16 KB in alternating runs, and ahead of 4 KB).
const K_PREFETCH_AHEAD: usize = 8192;

/// Activation rows dotted per pass over a group of a legacy type (accumulators: 8 zmm per
/// token).
const TOKENS_PER_PASS: usize = 4;

/// Activation rows per pass for the K-quants, whose accumulators (8 f32 zmm per token, and
/// Q4_K's 4 for the mins) and 8-16 scale vectors would not fit the register file at 4.
const K_TOKENS_PER_PASS: usize = 2;

/// The 4 activation bytes at `i..i + 4` as one i32 (what `vpdpbusd` multiplies per lane).
#[inline(always)]
fn quad(q: &[i8], i: usize) -> i32 {
    i32::from_le_bytes([q[i] as u8, q[i + 1] as u8, q[i + 2] as u8, q[i + 3] as u8])
}

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
            for k in 0..group_block.div_ceil(64) {
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(PREFETCH_AHEAD + 64 * k).cast());
            }
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
    /// Activation rows per pass (at most [`TOKENS_PER_PASS`]).
    const TOKENS: usize = TOKENS_PER_PASS;

    /// Lane r of `out[n]` is row r's dot with `y[n]`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI and F16C; `grp.len() == nb * GROUP_BLOCK`; every `y[n]` has at
    /// least `nb` blocks.
    unsafe fn group<const N: usize>(grp: &[u8], y: [&[Self::A]; N], nb: usize) -> [__m512; N];
}

/// Q4_1 · Q8_1.
struct Q4_1;

impl GroupDot for Q4_1 {
    type A = BlockQ8_1;
    const GROUP_BLOCK: usize = Q4_1_GROUP_BLOCK;

    #[inline(always)]
    unsafe fn group<const N: usize>(grp: &[u8], y: [&[BlockQ8_1]; N], nb: usize) -> [__m512; N] {
        // SAFETY: the same contract.
        unsafe { q4_1_group::<false, N>(grp, y, nb) }
    }
}

/// Q5_1 · Q8_1: Q4_1 with each lane's fifth bits as 64-bit byte masks (as Q5_0's).
struct Q5_1;

impl GroupDot for Q5_1 {
    type A = BlockQ8_1;
    const GROUP_BLOCK: usize = Q5_1_GROUP_BLOCK;

    #[inline(always)]
    unsafe fn group<const N: usize>(grp: &[u8], y: [&[BlockQ8_1]; N], nb: usize) -> [__m512; N] {
        // SAFETY: the same contract.
        unsafe { q4_1_group::<true, N>(grp, y, nb) }
    }
}

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
                for k in 0..K::GROUP_BLOCK.div_ceil(64) {
                    _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(PREFETCH_AHEAD + 64 * k).cast());
                }
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
        let mut out = [_mm512_setzero_ps(); N];
        for n in 0..N {
            out[n] = hsum_lanes(&acc[n]);
        }
        out
    }
}

/// `acc + Σ pairs a·b` per i32 lane (`vpdpwssd`), kept one instruction: LLVM's generic tuning
/// splits the intrinsic into `vpmaddwd` + `vpaddd`, an extra uop per scaled sub-block sum.
#[inline]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn dpwssd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    let mut out = acc;
    // SAFETY: AVX-512 VNNI per the calling kernel's contract; register operands only, no
    // memory or flags touched.
    unsafe {
        std::arch::asm!(
            "vpdpwssd {acc}, {a}, {b}",
            acc = inout(zmm_reg) out,
            a = in(zmm_reg) a,
            b = in(zmm_reg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// The i32 lanes `x >> n` for a shift count that is a constant once the caller's loop is
/// unrolled (LLVM then emits the immediate form).
#[inline(always)]
unsafe fn srl32(x: __m512i, n: u32) -> __m512i {
    // SAFETY: AVX-512F per the calling kernel's contract; register-only.
    unsafe { _mm512_srl_epi32(x, _mm_cvtsi32_si128(n as i32)) }
}

/// The i32 lanes `x << n` (as [`srl32`]).
#[inline(always)]
unsafe fn sll32(x: __m512i, n: u32) -> __m512i {
    // SAFETY: AVX-512F per the calling kernel's contract; register-only.
    unsafe { _mm512_sll_epi32(x, _mm_cvtsi32_si128(n as i32)) }
}

/// One group of 16 interleaved Q4_K rows dotted with `N` Q8_K activation rows.
///
/// Per block, row r's AVX2 lane l is the exact integer `Σ_k scale_k · Σ4 q·y` over sub-blocks
/// k (`vpdpbusd` for the 4-element sum, `vpdpwssd` against the scale, which fits in the low
/// i16 of a lane), then `fma(dy·dx, lane, acc_l)`; the mins give AVX2's 4 lanes
/// `m[2k]·(b[4k]+b[4k+1]) + m[2k+1]·(b[4k+2]+b[4k+3])` as one `vpdpwssd` of i16 pairs, then
/// `fma(−dy·dmin, lane, acc_m)`. The result is `hsum8(acc) + ((m0+m2)+(m1+m3))`, as there.
///
/// # Safety
/// As [`GroupDot::group`].
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `k`, `l`, `j` index layout runs and activation bytes
unsafe fn q4k_group<const FIFTH: bool, const N: usize>(
    grp: &[u8],
    y: [&[BlockQ8K]; N],
    nb: usize,
) -> [__m512; N] {
    let (group_block, qs_at) = if FIFTH {
        (q5k::GROUP_BLOCK, q5k::QS)
    } else {
        (q4k::GROUP_BLOCK, q4k::QS)
    };
    assert!(grp.len() == nb * group_block);
    let y = y.map(|r| &r[..nb]);
    // SAFETY: AVX-512 per the fn contract; every load reads inside block b's group (offsets of
    // `rows16::q4k`, all below GROUP_BLOCK) or a whole activation block; prefetches never fault.
    unsafe {
        let nib = _mm512_set1_epi8(0x0F);
        let low4 = _mm512_set1_epi32(0x0F);
        let top2 = _mm512_set1_epi32(0x30);
        let sixteen = _mm512_set1_epi8(16);
        let zero = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); 8]; N];
        // Q4_K: AVX2's 4 min lanes; Q5_K: its one scalar sum, in lane 0.
        let mut acc_m = [[_mm512_setzero_ps(); 4]; N];
        for b in 0..nb {
            let blk = grp.as_ptr().add(b * group_block);
            for k in 0..group_block.div_ceil(64) {
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(K_PREFETCH_AHEAD + 64 * k).cast());
            }
            let dx = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(q4k::D).cast()));
            let mx = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(q4k::DMIN).cast()));
            let high = _mm512_loadu_si512(blk.add(q4k::HIGH).cast());
            // Scale k and min k of the 16 rows, one per i32 lane (upper i16 zero).
            let mut sc = [zero; 8];
            let mut mn = [zero; 8];
            for k in 0..8 {
                let z =
                    _mm512_cvtepu8_epi32(_mm_loadu_si128(blk.add(q4k::NIBBLES + 16 * k).cast()));
                let hs = if k < 2 {
                    sll32(high, 4 - 2 * k as u32)
                } else {
                    srl32(high, 2 * k as u32 - 4)
                };
                sc[k] = _mm512_or_si512(_mm512_and_si512(z, low4), _mm512_and_si512(hs, top2));
                let hm = srl32(high, 12 + 2 * k as u32);
                mn[k] = _mm512_or_si512(_mm512_srli_epi32::<4>(z), _mm512_and_si512(hm, top2));
            }
            let mut mins = [zero; 4];
            for k in 0..4 {
                mins[k] = _mm512_or_si512(mn[2 * k], _mm512_slli_epi32::<16>(mn[2 * k + 1]));
            }
            let mut d = [_mm512_setzero_ps(); N];
            for n in 0..N {
                let by = &y[n][b];
                let dy = q8k_d(by);
                d[n] = _mm512_mul_ps(_mm512_set1_ps(dy), dx);
                let dmin = _mm512_mul_ps(_mm512_set1_ps(-dy), mx);
                let bs = by.bsums.map(i16::from_le_bytes);
                let mut prod = [zero; 4];
                for k in 0..4 {
                    let lo = bs[4 * k].wrapping_add(bs[4 * k + 1]) as u16;
                    let hi = bs[4 * k + 2].wrapping_add(bs[4 * k + 3]) as u16;
                    let pair = _mm512_set1_epi32((u32::from(lo) | u32::from(hi) << 16) as i32);
                    prod[k] = dpwssd(zero, mins[k], pair);
                }
                if FIFTH {
                    // AVX2 sums the 4 lanes as integers (exact in any order), then one fma.
                    let isum = _mm512_add_epi32(
                        _mm512_add_epi32(prod[0], prod[2]),
                        _mm512_add_epi32(prod[1], prod[3]),
                    );
                    acc_m[n][0] = _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(isum), acc_m[n][0]);
                } else {
                    for k in 0..4 {
                        let p = _mm512_cvtepi32_ps(prod[k]);
                        acc_m[n][k] = _mm512_fmadd_ps(dmin, p, acc_m[n][k]);
                    }
                }
            }
            for l in 0..8 {
                let mut s0 = [zero; N];
                let mut s1 = [zero; N];
                for j in 0..4 {
                    let raw = _mm512_loadu_si512(blk.add(qs_at + 64 * (4 * l + j)).cast());
                    let mut lo = _mm512_and_si512(raw, nib);
                    let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), nib);
                    if FIFTH {
                        let masks = blk.add(q5k::QH + 8 * (8 * l + 2 * j)).cast::<u64>();
                        lo = _mm512_mask_add_epi8(lo, masks.read_unaligned(), lo, sixteen);
                        hi = _mm512_mask_add_epi8(hi, masks.add(1).read_unaligned(), hi, sixteen);
                    }
                    for n in 0..N {
                        let qs = &y[n][b].qs;
                        let ylo = _mm512_set1_epi32(quad(qs, 64 * j + 4 * l));
                        let yhi = _mm512_set1_epi32(quad(qs, 64 * j + 32 + 4 * l));
                        let plo = _mm512_dpbusd_epi32(zero, lo, ylo);
                        let phi = _mm512_dpbusd_epi32(zero, hi, yhi);
                        s0[n] = dpwssd(s0[n], plo, sc[2 * j]);
                        s1[n] = dpwssd(s1[n], phi, sc[2 * j + 1]);
                    }
                }
                for n in 0..N {
                    let sumi = _mm512_cvtepi32_ps(_mm512_add_epi32(s0[n], s1[n]));
                    acc[n][l] = _mm512_fmadd_ps(d[n], sumi, acc[n][l]);
                }
            }
        }
        let mut out = [_mm512_setzero_ps(); N];
        for n in 0..N {
            let m = &acc_m[n];
            let mins = if FIFTH {
                m[0]
            } else {
                _mm512_add_ps(_mm512_add_ps(m[0], m[2]), _mm512_add_ps(m[1], m[3]))
            };
            out[n] = _mm512_add_ps(hsum_lanes(&acc[n]), mins);
        }
        out
    }
}

/// Q4_K · Q8_K.
struct Q4K;

impl GroupDot for Q4K {
    type A = BlockQ8K;
    const GROUP_BLOCK: usize = q4k::GROUP_BLOCK;
    const TOKENS: usize = K_TOKENS_PER_PASS;

    #[inline(always)]
    unsafe fn group<const N: usize>(grp: &[u8], y: [&[BlockQ8K]; N], nb: usize) -> [__m512; N] {
        // SAFETY: the same contract.
        unsafe { q4k_group::<false, N>(grp, y, nb) }
    }
}

/// Q5_K · Q8_K: Q4_K with each (sub-block, lane)'s fifth bits as a 64-bit byte mask, and the
/// mins summed to one integer per block as AVX2 does.
struct Q5K;

impl GroupDot for Q5K {
    type A = BlockQ8K;
    const GROUP_BLOCK: usize = q5k::GROUP_BLOCK;
    const TOKENS: usize = K_TOKENS_PER_PASS;

    #[inline(always)]
    unsafe fn group<const N: usize>(grp: &[u8], y: [&[BlockQ8K]; N], nb: usize) -> [__m512; N] {
        // SAFETY: the same contract.
        unsafe { q4k_group::<true, N>(grp, y, nb) }
    }
}

/// One group of 16 interleaved Q6_K rows dotted with `N` Q8_K activation rows.
///
/// Row r's AVX2 lane l of a block is the exact integer `Σ_k scale · Σ4 (q − 32)·y` over the 8
/// sub-blocks of 32 (scale `2k` for lanes 0..4, `2k + 1` for 4..8): `vpdpbusd` from
/// `−32 · Σ4 y` gives the 4-element sum, `vpdpwssd` scales it; then `fma(dy·dx, lane, acc_l)`
/// and the AVX2 horizontal sum.
///
/// # Safety
/// As [`GroupDot::group`].
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `k`, `l`, `h`, `g` index layout runs and activations
unsafe fn q6k_group<const N: usize>(grp: &[u8], y: [&[BlockQ8K]; N], nb: usize) -> [__m512; N] {
    assert!(grp.len() == nb * q6k::GROUP_BLOCK);
    let y = y.map(|r| &r[..nb]);
    // SAFETY: AVX-512 per the fn contract; every load reads inside block b's group (offsets of
    // `rows16::q6k`, all below GROUP_BLOCK), a whole activation block or the local arrays;
    // prefetches never fault.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        let m30 = _mm512_set1_epi8(0x30);
        let thirty_two = _mm512_set1_epi8(32);
        let low16 = _mm512_set1_epi32(0xFFFF);
        let zero = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); 8]; N];
        // −32 · Σ4 y for each activation quad m (elements 4m..4m + 4) of the block.
        let mut corr = [[0i32; 64]; N];
        for b in 0..nb {
            let blk = grp.as_ptr().add(b * q6k::GROUP_BLOCK);
            for k in 0..q6k::GROUP_BLOCK.div_ceil(64) {
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(K_PREFETCH_AHEAD + 64 * k).cast());
            }
            let dx = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(q6k::D).cast()));
            // Scale s of the 16 rows in the low i16 of each i32 lane (upper i16 zero).
            let mut sc = [zero; 16];
            for s in 0..16 {
                let v = _mm_loadu_si128(blk.add(q6k::SCALES + 16 * s).cast());
                sc[s] = _mm512_and_si512(_mm512_cvtepi8_epi32(v), low16);
            }
            let mut d = [_mm512_setzero_ps(); N];
            for n in 0..N {
                let by = &y[n][b];
                d[n] = _mm512_mul_ps(_mm512_set1_ps(q8k_d(by)), dx);
                for c in 0..4 {
                    let qy = _mm512_loadu_si512(by.qs.as_ptr().add(64 * c).cast());
                    let s = _mm512_dpbusd_epi32(zero, thirty_two, qy);
                    let out = corr[n].as_mut_ptr().add(16 * c);
                    _mm512_storeu_si512(out.cast(), _mm512_sub_epi32(zero, s));
                }
            }
            for l in 0..8 {
                let mut s0 = [zero; N];
                let mut s1 = [zero; N];
                for h in 0..2 {
                    let chunk = blk.add(q6k::QUANTS + q6k::CHUNK * (2 * l + h));
                    let qh = _mm512_loadu_si512(chunk.cast());
                    let ql = [
                        _mm512_loadu_si512(chunk.add(64).cast()),
                        _mm512_loadu_si512(chunk.add(128).cast()),
                    ];
                    for g in 0..4 {
                        let lo = if g < 2 {
                            _mm512_and_si512(ql[g], m4)
                        } else {
                            _mm512_and_si512(_mm512_srli_epi16::<4>(ql[g - 2]), m4)
                        };
                        let hs = match g {
                            0 => _mm512_slli_epi16::<4>(qh),
                            1 => _mm512_slli_epi16::<2>(qh),
                            2 => qh,
                            _ => _mm512_srli_epi16::<2>(qh),
                        };
                        let q = _mm512_or_si512(lo, _mm512_and_si512(hs, m30));
                        let k = 4 * h + g;
                        let s = sc[2 * k + usize::from(l >= 4)];
                        for n in 0..N {
                            let yq = _mm512_set1_epi32(quad(&y[n][b].qs, 32 * k + 4 * l));
                            let p =
                                _mm512_dpbusd_epi32(_mm512_set1_epi32(corr[n][8 * k + l]), q, yq);
                            if g % 2 == 0 {
                                s0[n] = dpwssd(s0[n], p, s);
                            } else {
                                s1[n] = dpwssd(s1[n], p, s);
                            }
                        }
                    }
                }
                for n in 0..N {
                    let sumi = _mm512_cvtepi32_ps(_mm512_add_epi32(s0[n], s1[n]));
                    acc[n][l] = _mm512_fmadd_ps(d[n], sumi, acc[n][l]);
                }
            }
        }
        let mut out = [_mm512_setzero_ps(); N];
        for n in 0..N {
            out[n] = hsum_lanes(&acc[n]);
        }
        out
    }
}

/// Q6_K · Q8_K.
struct Q6K;

impl GroupDot for Q6K {
    type A = BlockQ8K;
    const GROUP_BLOCK: usize = q6k::GROUP_BLOCK;
    const TOKENS: usize = K_TOKENS_PER_PASS;

    #[inline(always)]
    unsafe fn group<const N: usize>(grp: &[u8], y: [&[BlockQ8K]; N], nb: usize) -> [__m512; N] {
        // SAFETY: the same contract.
        unsafe { q6k_group::<N>(grp, y, nb) }
    }
}

/// The i16 lanes `x >> n` (as [`srl32`]).
#[inline(always)]
unsafe fn srl16(x: __m512i, n: u32) -> __m512i {
    // SAFETY: AVX-512BW per the calling kernel's contract; register-only.
    unsafe { _mm512_srl_epi16(x, _mm_cvtsi32_si128(n as i32)) }
}

/// One group of 16 interleaved Q2_K (`Q3 = false`) or Q3_K rows dotted with `N` Q8_K rows.
///
/// Row r's AVX2 lane l of a block is the exact integer `Σ_g scale · Σ4 q·y` over the 8
/// sub-blocks of 32 (scale `2g` for lanes 0..4, `2g + 1` for 4..8). Q2_K's quants are the
/// 2-bit fields; Q3_K's are `low2 + 4·high − 4`, as `vpdpbusd` from `−4 · Σ4 y` over the
/// unsigned `low2 + 4·high`. Q2_K first adds AVX2's min lanes `m[2i]·b[2i] + m[2i+1]·b[2i+1]`
/// with `fma(−dy·dmin, ·, acc_i)`, then both `fma(dy·dx, lane, acc_l)`, as there.
///
/// # Safety
/// As [`GroupDot::group`].
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `g`, `l`, `h`, `s` index layout runs and activations
unsafe fn k23_group<const Q3: bool, const N: usize>(
    grp: &[u8],
    y: [&[BlockQ8K]; N],
    nb: usize,
) -> [__m512; N] {
    let (group_block, qs_at) = if Q3 {
        (q3k::GROUP_BLOCK, q3k::QS)
    } else {
        (q2k::GROUP_BLOCK, q2k::QS)
    };
    assert!(grp.len() == nb * group_block);
    let y = y.map(|r| &r[..nb]);
    // SAFETY: AVX-512 per the fn contract; every load reads inside block b's group (offsets of
    // `rows16::q2k`/`q3k`, all below its size), a whole activation block or the local arrays;
    // prefetches never fault.
    unsafe {
        let m3 = _mm512_set1_epi8(3);
        let four = _mm512_set1_epi8(4);
        let low4 = _mm512_set1_epi32(0x0F);
        let top2 = _mm512_set1_epi32(0x30);
        let low16 = _mm512_set1_epi32(0xFFFF);
        let zero = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); 8]; N];
        // Q3_K: −4 · Σ4 y for each activation quad m (elements 4m..4m + 4) of the block.
        let mut corr = [[0i32; 64]; N];
        for b in 0..nb {
            let blk = grp.as_ptr().add(b * group_block);
            for k in 0..group_block.div_ceil(64) {
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(K_PREFETCH_AHEAD + 64 * k).cast());
            }
            // Scale s of the 16 rows in the low i16 of each i32 lane (upper i16 zero).
            let mut sc = [zero; 16];
            let high = if Q3 {
                _mm512_loadu_si512(blk.add(q3k::HIGH).cast())
            } else {
                zero
            };
            for s in 0..16 {
                sc[s] = if Q3 {
                    let at = blk.add(q3k::NIBBLES + 16 * (s % 8));
                    let z = _mm512_cvtepu8_epi32(_mm_loadu_si128(at.cast()));
                    let low = if s < 8 {
                        _mm512_and_si512(z, low4)
                    } else {
                        _mm512_srli_epi32::<4>(z)
                    };
                    let shift = (8 * (s % 4) + 2 * (s / 4)) as u32;
                    let hs = if shift >= 4 {
                        srl32(high, shift - 4)
                    } else {
                        sll32(high, 4 - shift)
                    };
                    let v = _mm512_or_si512(low, _mm512_and_si512(hs, top2));
                    _mm512_and_si512(_mm512_sub_epi32(v, _mm512_set1_epi32(32)), low16)
                } else {
                    let at = blk.add(q2k::SCALES + 16 * s);
                    _mm512_and_si512(_mm512_cvtepu8_epi32(_mm_loadu_si128(at.cast())), low4)
                };
            }
            let dx = _mm512_cvtph_ps(_mm256_loadu_si256(
                blk.add(if Q3 { q3k::D } else { q2k::D }).cast(),
            ));
            let mut d = [_mm512_setzero_ps(); N];
            if Q3 {
                for n in 0..N {
                    let by = &y[n][b];
                    d[n] = _mm512_mul_ps(_mm512_set1_ps(q8k_d(by)), dx);
                    for c in 0..4 {
                        let qy = _mm512_loadu_si512(by.qs.as_ptr().add(64 * c).cast());
                        let s = _mm512_dpbusd_epi32(zero, four, qy);
                        let out = corr[n].as_mut_ptr().add(16 * c);
                        _mm512_storeu_si512(out.cast(), _mm512_sub_epi32(zero, s));
                    }
                }
            } else {
                let mx = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(q2k::DMIN).cast()));
                let mut mins = [zero; 8];
                for i in 0..8 {
                    let at = blk.add(q2k::SCALES + 32 * i);
                    let m0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(at.cast()));
                    let m1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(at.add(16).cast()));
                    mins[i] = _mm512_or_si512(
                        _mm512_srli_epi32::<4>(m0),
                        _mm512_slli_epi32::<16>(_mm512_srli_epi32::<4>(m1)),
                    );
                }
                for n in 0..N {
                    let by = &y[n][b];
                    let dy = q8k_d(by);
                    d[n] = _mm512_mul_ps(_mm512_set1_ps(dy), dx);
                    let dmin = _mm512_mul_ps(_mm512_set1_ps(-dy), mx);
                    let bs = by.bsums.map(|v| u32::from(u16::from_le_bytes(v)));
                    for i in 0..8 {
                        let pair = _mm512_set1_epi32((bs[2 * i] | bs[2 * i + 1] << 16) as i32);
                        let prod = _mm512_cvtepi32_ps(dpwssd(zero, mins[i], pair));
                        acc[n][i] = _mm512_fmadd_ps(dmin, prod, acc[n][i]);
                    }
                }
            }
            for l in 0..8 {
                let mut s0 = [zero; N];
                let mut s1 = [zero; N];
                for h in 0..2 {
                    let raw = _mm512_loadu_si512(blk.add(qs_at + 64 * (2 * l + h)).cast());
                    for s in 0..4 {
                        let g = 4 * h + s;
                        let mut q = _mm512_and_si512(srl16(raw, 2 * s as u32), m3);
                        if Q3 {
                            let at = blk.add(q3k::QH + 8 * (8 * l + g));
                            q = _mm512_mask_add_epi8(q, at.cast::<u64>().read_unaligned(), q, four);
                        }
                        let scale = sc[2 * g + usize::from(l >= 4)];
                        for n in 0..N {
                            let yq = _mm512_set1_epi32(quad(&y[n][b].qs, 32 * g + 4 * l));
                            let init = if Q3 {
                                _mm512_set1_epi32(corr[n][8 * g + l])
                            } else {
                                zero
                            };
                            let p = _mm512_dpbusd_epi32(init, q, yq);
                            if s % 2 == 0 {
                                s0[n] = dpwssd(s0[n], p, scale);
                            } else {
                                s1[n] = dpwssd(s1[n], p, scale);
                            }
                        }
                    }
                }
                for n in 0..N {
                    let sumi = _mm512_cvtepi32_ps(_mm512_add_epi32(s0[n], s1[n]));
                    acc[n][l] = _mm512_fmadd_ps(d[n], sumi, acc[n][l]);
                }
            }
        }
        let mut out = [_mm512_setzero_ps(); N];
        for n in 0..N {
            out[n] = hsum_lanes(&acc[n]);
        }
        out
    }
}

/// Q2_K · Q8_K.
struct Q2K;

impl GroupDot for Q2K {
    type A = BlockQ8K;
    const GROUP_BLOCK: usize = q2k::GROUP_BLOCK;
    const TOKENS: usize = K_TOKENS_PER_PASS;

    #[inline(always)]
    unsafe fn group<const N: usize>(grp: &[u8], y: [&[BlockQ8K]; N], nb: usize) -> [__m512; N] {
        // SAFETY: the same contract.
        unsafe { k23_group::<false, N>(grp, y, nb) }
    }
}

/// Q3_K · Q8_K.
struct Q3K;

impl GroupDot for Q3K {
    type A = BlockQ8K;
    const GROUP_BLOCK: usize = q3k::GROUP_BLOCK;
    const TOKENS: usize = K_TOKENS_PER_PASS;

    #[inline(always)]
    unsafe fn group<const N: usize>(grp: &[u8], y: [&[BlockQ8K]; N], nb: usize) -> [__m512; N] {
        // SAFETY: the same contract.
        unsafe { k23_group::<true, N>(grp, y, nb) }
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
            let n = (n_tok - k).min(K::TOKENS);
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
rows16_tile!(
    /// Q4_K · Q8_K tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q4k_rows16_tile = q4k_imp, Q4K);
rows16_tile!(
    /// Q6_K · Q8_K tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q6k_rows16_tile = q6k_imp, Q6K);
rows16_tile!(
    /// Q5_K · Q8_K tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q5k_rows16_tile = q5k_imp, Q5K);
rows16_tile!(
    /// Q2_K · Q8_K tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q2k_rows16_tile = q2k_imp, Q2K);
rows16_tile!(
    /// Q3_K · Q8_K tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q3k_rows16_tile = q3k_imp, Q3K);

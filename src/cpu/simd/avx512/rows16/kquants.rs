//! K-quant kernels over the 16-row layout (`cpu::rows16::{q2k, q3k, q4k, q5k, q6k}`).
//!
//! Row r's AVX2 lane l of a block is an exact integer `Σ_k scale_k · Σ4 q·y` over the
//! block's sub-blocks, converted and added once per block. Here `vpdpbusd` gives 16 rows'
//! 4-element sums (from `−bias · Σ4 y` where the stored quants are offset) and `vpdpwssd`
//! multiplies them by the rows' scales, each in the low i16 of its lane; two chains per lane
//! keep the dependency short, and [`close_lane`] ends the lane as AVX2 does.

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::BlockQ8K;

use super::{drive, hsum_lanes, hsum_tokens, prefetch_group, quad, GroupDot};
use crate::cpu::dot::kquants::q8k_d;
use crate::cpu::rows16::{q2k, q3k, q4k, q5k, q6k};
use crate::cpu::simd::avx512::{safe_kernel512, Avx512};

/// Runs `$body` for each AVX2 lane `$l` in 0..8, written out eight times: LLVM would keep the
/// loop (the body is large) and then index the accumulators and scales through the stack;
/// with `$l` a constant in each copy they stay in registers.
macro_rules! lanes_unrolled {
    ($l:ident => $body:block) => {
        lanes_unrolled!(@each $l => $body; 0 1 2 3 4 5 6 7)
    };
    (@each $l:ident => $body:block; $($i:literal)+) => {
        $({
            let $l: usize = $i;
            $body
        })+
    };
}

/// L2 prefetch distance of the K-quant loops, whose block groups are 7-10x larger (256 MB, 2
/// threads, prefetching into L1 then: 8 KB at least as fast as 16 KB in alternating runs, and
/// ahead of 4 KB; session 13, into L2: 2, 4 and 16 KB no faster than 8 KB, 32 KB slower).
const K_PREFETCH_AHEAD: usize = 8192;

/// Closes AVX2 lane `l` of a block for every token: `acc_l = fma(dy·dx, float(s0 + s1), acc_l)`
/// (the two integer chains are exact, so their sum is the AVX2 lane's).
///
/// # Safety
/// AVX-512F must be available (called from a kernel compiled with it).
#[inline(always)]
unsafe fn close_lane<const N: usize>(
    acc: &mut [[__m512; 8]; N],
    d: &[__m512; N],
    s0: &[__m512i; N],
    s1: &[__m512i; N],
    l: usize,
) {
    // SAFETY: AVX-512F per the fn contract; register-only.
    unsafe {
        for n in 0..N {
            let sumi = _mm512_cvtepi32_ps(_mm512_add_epi32(s0[n], s1[n]));
            acc[n][l] = _mm512_fmadd_ps(d[n], sumi, acc[n][l]);
        }
    }
}

/// `out[m] = −bias · Σ y` over activation quad m (elements `4m..4m + 4`) of block `by`: the
/// start of `vpdpbusd` over quants stored as `q + bias` (`bias` broadcast as bytes), so that it
/// ends at the exact `Σ4 q·y`.
///
/// # Safety
/// AVX-512 F/BW/VNNI must be available (called from a kernel compiled with them).
#[inline(always)]
unsafe fn bias_corrections(by: &BlockQ8K, bias: __m512i, out: &mut [i32; 64]) {
    // SAFETY: AVX-512 per the fn contract; each load reads 64 of the block's 256 quants and
    // each store writes 16 of `out`'s 64 entries.
    unsafe {
        let zero = _mm512_setzero_si512();
        for c in 0..4 {
            let qy = _mm512_loadu_si512(by.qs.as_ptr().add(64 * c).cast());
            let sums = _mm512_dpbusd_epi32(zero, bias, qy);
            let at = out.as_mut_ptr().add(16 * c);
            _mm512_storeu_si512(at.cast(), _mm512_sub_epi32(zero, sums));
        }
    }
}

/// `acc + Σ pairs a·b` per i32 lane (`vpdpwssd`), kept one instruction: LLVM's generic tuning
/// splits the intrinsic into `vpmaddwd` + `vpaddd`, an extra uop per scaled sub-block sum.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512 VNNI (called from a kernel compiled with them).
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
        let low6 = _mm512_set1_epi32(0x3F);
        let top2 = _mm512_set1_epi32(0x30);
        let sixteen = _mm512_set1_epi8(16);
        let zero = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); 8]; N];
        // Q4_K: AVX2's 4 min lanes; Q5_K: its one scalar sum, in lane 0.
        let mut acc_m = [[_mm512_setzero_ps(); 4]; N];
        for b in 0..nb {
            let blk = grp.as_ptr().add(b * group_block);
            prefetch_group(blk, group_block, K_PREFETCH_AHEAD);
            let dx = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(q4k::D).cast()));
            let mx = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(q4k::DMIN).cast()));
            // Scale k and min k of the 16 rows, one per i32 lane (upper i16 zero), from the
            // file's 12 packed bytes (gguf-facts §2.3): k < 4 in the low 6 bits of bytes k and
            // 4 + k; k ≥ 4 in byte 4 + k's nibbles, with top bits from bytes k − 4 and k.
            let mut z = [zero; 12];
            for i in 0..12 {
                let at = blk.add(q4k::SCALES + 16 * i);
                z[i] = _mm512_cvtepu8_epi32(_mm_loadu_si128(at.cast()));
            }
            let mut sc = [zero; 8];
            let mut mn = [zero; 8];
            for k in 0..4 {
                sc[k] = _mm512_and_si512(z[k], low6);
                mn[k] = _mm512_and_si512(z[4 + k], low6);
                // Bits 6..8 of a byte, moved to 4..6 (no closure: it would not inherit the
                // target features).
                let sc_top = _mm512_and_si512(_mm512_srli_epi32::<2>(z[k]), top2);
                let mn_top = _mm512_and_si512(_mm512_srli_epi32::<2>(z[4 + k]), top2);
                sc[4 + k] = _mm512_or_si512(_mm512_and_si512(z[8 + k], low4), sc_top);
                mn[4 + k] = _mm512_or_si512(_mm512_srli_epi32::<4>(z[8 + k]), mn_top);
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
                close_lane(&mut acc, &d, &s0, &s1, l);
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

group_dot!(
    /// Q4_K · Q8_K.
    Q4K, BlockQ8K, q4k::GROUP_BLOCK, q4k_group::<false>);

group_dot!(
    /// Q5_K · Q8_K: Q4_K with each (sub-block, lane)'s fifth bits as a 64-bit byte mask, and the
    /// mins summed to one integer per block as AVX2 does.
    Q5K, BlockQ8K, q5k::GROUP_BLOCK, q4k_group::<true>);

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
            prefetch_group(blk, q6k::GROUP_BLOCK, K_PREFETCH_AHEAD);
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
                bias_corrections(by, thirty_two, &mut corr[n]);
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
                close_lane(&mut acc, &d, &s0, &s1, l);
            }
        }
        hsum_tokens(&acc)
    }
}

group_dot!(
    /// Q6_K · Q8_K.
    Q6K, BlockQ8K, q6k::GROUP_BLOCK, q6k_group);

/// The 6-bit two's complement field at the top (bits 26..32) of each i32 lane of `x`, sign
/// extended into the low i16 with the upper i16 zero (`low16` is `0xFFFF` per lane): the form
/// `vpdpwssd` multiplies a Q3_K scale in.
///
/// # Safety
/// AVX-512F must be available (called from a kernel compiled with it).
#[inline(always)]
unsafe fn six_bit_scale(x: __m512i, low16: __m512i) -> __m512i {
    // SAFETY: AVX-512F per the fn contract; register-only.
    unsafe { _mm512_and_si512(_mm512_srai_epi32::<26>(x), low16) }
}

/// The i16 lanes `x >> n` (as [`srl32`]).
#[inline(always)]
unsafe fn srl16(x: __m512i, n: u32) -> __m512i {
    // SAFETY: AVX-512BW per the calling kernel's contract; register-only.
    unsafe { _mm512_srl_epi16(x, _mm_cvtsi32_si128(n as i32)) }
}

/// The GF(2) affine matrix that moves bits `2s, 2s + 1` of every byte to bits 0, 1 and clears
/// the rest (`vgf2p8affineqb`: output bit i is the parity of the byte ANDed with matrix byte
/// `7 − i`), for `vgf2p8affineqb` to do a shift and a mask in one instruction.
#[inline(always)]
unsafe fn field_matrix(s: usize) -> __m512i {
    let m = (1u64 << (2 * s)) << 56 | (1u64 << (2 * s + 1)) << 48;
    // SAFETY: AVX-512F per the calling kernel's contract; register-only.
    unsafe { _mm512_set1_epi64(m as i64) }
}

/// One group of 16 interleaved Q2_K (`Q3 = false`) or Q3_K rows dotted with `N` Q8_K rows.
///
/// Row r's AVX2 lane l of a block is the exact integer `Σ_g scale · Σ4 q·y` over the 8
/// sub-blocks of 32 (scale `2g` for lanes 0..4, `2g + 1` for 4..8). Q2_K's quants are the
/// 2-bit fields; Q3_K's are `low2 + 4·high − 4`, as `vpdpbusd` from `−4 · Σ4 y` over the
/// unsigned `low2 + 4·high`. Q2_K first adds AVX2's min lanes `m[2i]·b[2i] + m[2i+1]·b[2i+1]`
/// with `fma(−dy·dmin, ·, acc_i)`, then both `fma(dy·dx, lane, acc_l)`, as there. With `GF`
/// each 2-bit field past the first comes out of its byte with one `vgf2p8affineqb`
/// ([`field_matrix`]) instead of a shift and a mask: 10-19% faster products from cache.
///
/// # Safety
/// As [`GroupDot::group`]; with `GF`, GFNI too.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `g`, `l`, `h`, `s` index layout runs and activations
unsafe fn k23_group<const Q3: bool, const GF: bool, const N: usize>(
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
        let low16 = _mm512_set1_epi32(0xFFFF);
        let zero = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); 8]; N];
        // Q3_K: −4 · Σ4 y for each activation quad m (elements 4m..4m + 4) of the block.
        let mut corr = [[0i32; 64]; N];
        for b in 0..nb {
            let blk = grp.as_ptr().add(b * group_block);
            prefetch_group(blk, group_block, K_PREFETCH_AHEAD);
            // Scale s of the 16 rows in the low i16 of each i32 lane (upper i16 zero).
            let mut sc = [zero; 16];
            if Q3 {
                let w = [0, 1, 2].map(|j| _mm512_loadu_si512(blk.add(q3k::SCALES + 64 * j).cast()));
                // Nested so that LLVM unrolls it into immediate shifts (one loop over s kept
                // its loop, a division by 5 and a shift by register).
                for (j, word) in w.iter().enumerate() {
                    for i in 0..5 {
                        sc[5 * j + i] = six_bit_scale(sll32(*word, 26 - 6 * i as u32), low16);
                    }
                }
                // Scale 15's three 2-bit pieces sit at the top of the three words.
                let mid = _mm512_and_si512(srl32(w[1], 28), _mm512_set1_epi32(0x0C));
                let top = _mm512_and_si512(srl32(w[2], 26), _mm512_set1_epi32(0x30));
                let f15 = _mm512_or_si512(_mm512_or_si512(srl32(w[0], 30), mid), top);
                sc[15] = six_bit_scale(_mm512_slli_epi32::<26>(f15), low16);
            } else {
                let w = [0, 1].map(|j| _mm512_loadu_si512(blk.add(q2k::SCALES + 64 * j).cast()));
                for s in 0..16 {
                    sc[s] = _mm512_and_si512(srl32(w[s / 8], 4 * (s % 8) as u32), low4);
                }
            }
            let dx = _mm512_cvtph_ps(_mm256_loadu_si256(
                blk.add(if Q3 { q3k::D } else { q2k::D }).cast(),
            ));
            let mut d = [_mm512_setzero_ps(); N];
            if Q3 {
                for n in 0..N {
                    let by = &y[n][b];
                    d[n] = _mm512_mul_ps(_mm512_set1_ps(q8k_d(by)), dx);
                    bias_corrections(by, four, &mut corr[n]);
                }
            } else {
                let mx = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(q2k::DMIN).cast()));
                // Min pair i: m[2i] in the low i16 of each lane, m[2i + 1] in the high one.
                let low4x2 = _mm512_set1_epi32(0x000F_000F);
                let w = [2, 3].map(|j| _mm512_loadu_si512(blk.add(q2k::SCALES + 64 * j).cast()));
                let mut mins = [zero; 8];
                for i in 0..8 {
                    mins[i] = _mm512_and_si512(srl32(w[i / 4], 4 * (i % 4) as u32), low4x2);
                }
                for n in 0..N {
                    let by = &y[n][b];
                    let dy = q8k_d(by);
                    d[n] = _mm512_mul_ps(_mm512_set1_ps(dy), dx);
                    let dmin = _mm512_mul_ps(_mm512_set1_ps(-dy), mx);
                    for i in 0..8 {
                        // bsums 2i and 2i + 1 as one little-endian word: a broadcast load.
                        let [lo, hi] = [by.bsums[2 * i], by.bsums[2 * i + 1]];
                        let pair =
                            _mm512_set1_epi32(i32::from_le_bytes([lo[0], lo[1], hi[0], hi[1]]));
                        let prod = _mm512_cvtepi32_ps(dpwssd(zero, mins[i], pair));
                        acc[n][i] = _mm512_fmadd_ps(dmin, prod, acc[n][i]);
                    }
                }
            }
            // One AVX2 lane's 8 sub-block sums, then its close.
            macro_rules! lane {
                ($l:expr) => {{
                    let l: usize = $l;
                    let mut s0 = [zero; N];
                    let mut s1 = [zero; N];
                    for h in 0..2 {
                        let raw = _mm512_loadu_si512(blk.add(qs_at + 64 * (2 * l + h)).cast());
                        for s in 0..4 {
                            let g = 4 * h + s;
                            let mut q = if s == 0 {
                                _mm512_and_si512(raw, m3)
                            } else if GF {
                                _mm512_gf2p8affine_epi64_epi8::<0>(raw, field_matrix(s))
                            } else {
                                _mm512_and_si512(srl16(raw, 2 * s as u32), m3)
                            };
                            if Q3 {
                                let at = blk.add(q3k::QH + 8 * (8 * l + g));
                                q = _mm512_mask_add_epi8(
                                    q,
                                    at.cast::<u64>().read_unaligned(),
                                    q,
                                    four,
                                );
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
                    close_lane(&mut acc, &d, &s0, &s1, l);
                }};
            }
            // Written out, Q2_K's single-token loop keeps its accumulators in registers (14%
            // faster from cache); Q3_K's and the multi-token ones ran slower so (spills).
            if !Q3 && N == 1 {
                lanes_unrolled!(l => { lane!(l) });
            } else {
                for l in 0..8 {
                    lane!(l);
                }
            }
        }
        hsum_tokens(&acc)
    }
}

group_dot!(
    /// Q2_K · Q8_K.
    Q2K, BlockQ8K, q2k::GROUP_BLOCK, k23_group::<false, false>);

group_dot!(
    /// Q2_K · Q8_K with GFNI.
    Q2KGfni, BlockQ8K, q2k::GROUP_BLOCK, k23_group::<false, true>);

group_dot!(
    /// Q3_K · Q8_K.
    Q3K, BlockQ8K, q3k::GROUP_BLOCK, k23_group::<true, false>);

group_dot!(
    /// Q3_K · Q8_K with GFNI.
    Q3KGfni, BlockQ8K, q3k::GROUP_BLOCK, k23_group::<true, true>);

/// Defines a K23 tile kernel, its GFNI twin and the safe wrapper that runs the twin where the
/// proof says the CPU has GFNI.
macro_rules! k23_tile {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $imp:ident, $K:ty, $imp_gf:ident, $Kgf:ty) => {
        /// A tile of interleaved rows (whole groups; see `drive`).
        ///
        /// # Safety
        /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $imp(w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
            // SAFETY: the features are present (fn contract).
            unsafe { drive::<$K>(w, a, outs) }
        }

        /// [`$imp`] taking the 2-bit fields out with GFNI.
        ///
        /// # Safety
        /// As [`$imp`], and the CPU must support GFNI.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,gfni")]
        unsafe fn $imp_gf(w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
            // SAFETY: the features are present (fn contract).
            unsafe { drive::<$Kgf>(w, a, outs) }
        }

        $(#[$m])*
        $vis fn $name(proof: Avx512, w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
            if proof.gfni() {
                // SAFETY: an `Avx512` token exists only after AVX-512 F/BW/VL/VNNI, AVX2, FMA
                // and F16C were detected, and it says GFNI only where GFNI was detected.
                unsafe { $imp_gf(w, a, outs) }
            } else {
                // SAFETY: as above, without GFNI.
                unsafe { $imp(w, a, outs) }
            }
        }
    };
}

rows16_tile!(
    /// Q4_K · Q8_K tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q4k_rows16_tile = q4k_imp, Q4K);
rows16_tile!(
    /// Q6_K · Q8_K tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q6k_rows16_tile = q6k_imp, Q6K);
rows16_tile!(
    /// Q5_K · Q8_K tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q5k_rows16_tile = q5k_imp, Q5K);
k23_tile!(
    /// Q2_K · Q8_K tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q2k_rows16_tile = q2k_imp, Q2K, q2k_gfni_imp, Q2KGfni);
k23_tile!(
    /// Q3_K · Q8_K tile over 16-row interleaved weights (whole groups; see `cpu::rows16`).
    pub(crate) fn q3k_rows16_tile = q3k_imp, Q3K, q3k_gfni_imp, Q3KGfni);

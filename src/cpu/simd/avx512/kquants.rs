//! Row-pair twins of the K-quant dots (`simd::k23`, `simd::k456`): per 256-element block and
//! row, the AVX2 kernel's 8 exact i32 lanes (`maddubs` pairs scaled by `madd`, here the same
//! `maddubs` pairs scaled and summed by `vpdpwssd`), folded into that row's f32 lanes in the
//! same order, two rows per zmm.

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};

use super::pair::{collect, pair_tile, PairDot};
use super::util::{
    bcast_i8x32, hsum_pair, pair_ps, pair_ps4, pair_u8x16, pair_u8x32, pair_u8x8_to_i16,
    scale_pair_i16,
};
use crate::cpu::dot::kquants::q8k_d;
use crate::cpu::dot::kscales::k4_scales_mins;
use crate::cpu::f16_table::{f16_lookup, f16_table};
use crate::cpu::simd::util::{hsum_f32x4, load_bsums, prefetch_ahead as prefetch};
use sluice_loader::quant::blocks::q3k_scales;

/// Group g's scale for both rows, each splatted to its half's 16 i16 lanes, from
/// `[a's 8 scales | b's 8 scales]` as i16 in the low 16 words.
#[inline(always)]
unsafe fn k4_scale_pair(scales16: __m512i, g: usize) -> __m512i {
    let (a, b) = (g as i16, 8 + g as i16);
    // SAFETY: AVX-512BW per the calling kernel's contract; register-only.
    unsafe {
        let idx = _mm512_set_epi16(
            b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, //
            a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a,
        );
        _mm512_permutexvar_epi16(idx, scales16)
    }
}

/// The 16 i16 group-pair sums of a Q8_K block's bsums, `b[2k] + b[2k+1]` in word k (k < 8),
/// in both 128-bit halves of a ymm (AVX2's `min_products` pairs, once per row half).
#[inline(always)]
unsafe fn bsum_pairs(by: &BlockQ8K) -> __m256i {
    // SAFETY: AVX2 per the calling kernel's contract; the load reads the whole array.
    unsafe {
        let bsums = load_bsums(&by.bsums);
        let pairs = _mm_hadd_epi16(
            _mm256_castsi256_si128(bsums),
            _mm256_extracti128_si256::<1>(bsums),
        );
        _mm256_broadcastsi128_si256(pairs)
    }
}

/// The unpacked quants and scales of one Q4_K/Q5_K block pair.
struct K4Pair {
    q: [__m512i; 8],
    sc: [__m512i; 8],
    /// `[a's 8 mins | b's 8 mins]` as i16.
    mins: __m256i,
    dx: __m512,
    /// The two rows' f32 `dmin`.
    dminx: [f32; 2],
}

/// Unpacks a Q4_K/Q5_K block pair (`qh`: Q5_K's high bits of both rows).
#[inline(always)]
unsafe fn k4_pair(
    t: &crate::cpu::f16_table::F16Table,
    (da, dmina, sa, qa): ([u8; 2], [u8; 2], &[u8; 12], &[u8; 128]),
    (db, dminb, sb, qb): ([u8; 2], [u8; 2], &[u8; 12], &[u8; 128]),
    qh: Option<(&[u8; 32], &[u8; 32])>,
) -> K4Pair {
    let (sma, smb) = (k4_scales_mins(sa), k4_scales_mins(sb));
    // SAFETY: AVX-512 per the calling kernel's contract; loads check their lengths.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        let hb = qh.map(|(ha, hb)| pair_u8x32(ha, hb));
        let mut q = [_mm512_setzero_si512(); 8];
        for j in 0..4 {
            let bits = pair_u8x32(&qa[32 * j..], &qb[32 * j..]);
            q[2 * j] = _mm512_and_si512(bits, m4);
            q[2 * j + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(bits), m4);
        }
        if let Some(h) = hb {
            let sixteen = _mm512_set1_epi8(16);
            for (g, qg) in q.iter_mut().enumerate() {
                let set = _mm512_test_epi8_mask(h, _mm512_set1_epi8((1u8 << g) as i8));
                *qg = _mm512_mask_add_epi8(*qg, set, *qg, sixteen);
            }
        }
        let scales16 = _mm512_castsi256_si512(pair_u8x8_to_i16(&sma[..8], &smb[..8]));
        let sc = std::array::from_fn(|g| k4_scale_pair(scales16, g));
        K4Pair {
            q,
            sc,
            mins: pair_u8x8_to_i16(&sma[8..], &smb[8..]),
            dx: pair_ps(f16_lookup(t, da), f16_lookup(t, db)),
            dminx: [f16_lookup(t, dmina), f16_lookup(t, dminb)],
        }
    }
}

/// A K-quant block pair's scaled i32 lanes against one Q8_K block, as the AVX2 kernels form
/// them per row: `Σ_g sc[g]·(maddubs(q[g], y_g) − maddubs(sub[g], y_g))`, the subtrahend
/// being Q3_K's cleared-high-bit fours or Q6_K's 32s (none for Q2_K, Q4_K and Q5_K).
#[inline(always)]
unsafe fn scaled_sumi(
    q: &[__m512i; 8],
    sub: Option<&[__m512i; 8]>,
    sc: &[__m512i; 8],
    q8: &[i8; 256],
) -> __m512i {
    // SAFETY: AVX-512 per the calling kernel's contract; loads check their lengths.
    unsafe {
        let mut sumi = _mm512_setzero_si512();
        for g in 0..8 {
            let q8g = bcast_i8x32(&q8[32 * g..]);
            let mut pr = _mm512_maddubs_epi16(q[g], q8g);
            if let Some(sub) = sub {
                pr = _mm512_sub_epi16(pr, _mm512_maddubs_epi16(sub[g], q8g));
            }
            sumi = _mm512_dpwssd_epi32(sumi, sc[g], pr);
        }
        sumi
    }
}

/// Q4_K · Q8_K: quant lanes into an 8-lane, mins into a 4-lane f32 accumulator per row.
pub(super) struct Q4K;

impl PairDot for Q4K {
    type W = BlockQ4K;
    type A = BlockQ8K;

    #[inline(always)]
    unsafe fn dots<const P: usize, const N: usize>(
        x: [[&[BlockQ4K]; 2]; P],
        y: [&[BlockQ8K]; N],
    ) -> [[[f32; N]; 2]; P] {
        let t = f16_table();
        let nb = x[0][0].len();
        let y = y.map(|r| &r[..nb]);
        // SAFETY: AVX-512 per the trait contract; loads check their lengths.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); N]; P];
            let mut acc_m = [[_mm256_setzero_ps(); N]; P];
            for b in 0..nb {
                for p in 0..P {
                    let (ba, bb) = (&x[p][0][b], &x[p][1][b]);
                    prefetch(ba);
                    prefetch(bb);
                    let k = k4_pair(
                        t,
                        (ba.d, ba.dmin, &ba.scales, &ba.qs),
                        (bb.d, bb.dmin, &bb.scales, &bb.qs),
                        None,
                    );
                    let dminx = pair_ps4(k.dminx[0], k.dminx[1]);
                    for n in 0..N {
                        let by = &y[n][b];
                        let dy = q8k_d(by);
                        let dmin = _mm256_mul_ps(_mm256_set1_ps(-dy), dminx);
                        // [a's 4 min products | b's 4], as AVX2's `min_products` per row.
                        let prod = _mm256_cvtepi32_ps(_mm256_madd_epi16(k.mins, bsum_pairs(by)));
                        acc_m[p][n] = _mm256_fmadd_ps(dmin, prod, acc_m[p][n]);
                        let d = _mm512_mul_ps(_mm512_set1_ps(dy), k.dx);
                        let sumi = scaled_sumi(&k.q, None, &k.sc, &by.qs);
                        acc[p][n] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc[p][n]);
                    }
                }
            }
            collect!(|p, r, n| {
                let sums = hsum_pair(acc[p][n]);
                let m = if r == 0 {
                    _mm256_castps256_ps128(acc_m[p][n])
                } else {
                    _mm256_extractf128_ps::<1>(acc_m[p][n])
                };
                sums[r] + hsum_f32x4(m)
            })
        }
    }
}

/// Q5_K · Q8_K: as Q4_K plus the fifth bit; the mins are one integer per block and row.
pub(super) struct Q5K;

impl PairDot for Q5K {
    type W = BlockQ5K;
    type A = BlockQ8K;

    #[inline(always)]
    unsafe fn dots<const P: usize, const N: usize>(
        x: [[&[BlockQ5K]; 2]; P],
        y: [&[BlockQ8K]; N],
    ) -> [[[f32; N]; 2]; P] {
        let t = f16_table();
        let nb = x[0][0].len();
        let y = y.map(|r| &r[..nb]);
        // SAFETY: AVX-512 per the trait contract; loads check their lengths.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); N]; P];
            let mut summs = [[[0.0f32; 2]; N]; P];
            for b in 0..nb {
                for p in 0..P {
                    let (ba, bb) = (&x[p][0][b], &x[p][1][b]);
                    prefetch(ba);
                    prefetch(bb);
                    let k = k4_pair(
                        t,
                        (ba.d, ba.dmin, &ba.scales, &ba.qs),
                        (bb.d, bb.dmin, &bb.scales, &bb.qs),
                        Some((&ba.qh, &bb.qh)),
                    );
                    for n in 0..N {
                        let by = &y[n][b];
                        let dy = q8k_d(by);
                        let prod = _mm256_madd_epi16(k.mins, bsum_pairs(by));
                        let mut lanes = [0i32; 8];
                        _mm256_storeu_si256(lanes.as_mut_ptr().cast(), prod);
                        for r in 0..2 {
                            // Row r's 4 products; their integer sum is exact in any order.
                            let isum: i32 = lanes[4 * r..4 * r + 4].iter().sum();
                            let dmin = -dy * k.dminx[r];
                            summs[p][n][r] = dmin.mul_add(isum as f32, summs[p][n][r]);
                        }
                        let d = _mm512_mul_ps(_mm512_set1_ps(dy), k.dx);
                        let sumi = scaled_sumi(&k.q, None, &k.sc, &by.qs);
                        acc[p][n] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc[p][n]);
                    }
                }
            }
            collect!(|p, r, n| hsum_pair(acc[p][n])[r] + summs[p][n][r])
        }
    }
}

/// Q6_K · Q8_K: 6-bit quants `low4 | high2 << 4` and their 16 signed scales per row.
pub(super) struct Q6K;

impl PairDot for Q6K {
    type W = BlockQ6K;
    type A = BlockQ8K;

    #[inline(always)]
    unsafe fn dots<const P: usize, const N: usize>(
        x: [[&[BlockQ6K]; 2]; P],
        y: [&[BlockQ8K]; N],
    ) -> [[[f32; N]; 2]; P] {
        let t = f16_table();
        let nb = x[0][0].len();
        let y = y.map(|r| &r[..nb]);
        // SAFETY: AVX-512 per the trait contract; loads check their lengths.
        unsafe {
            let m4 = _mm512_set1_epi8(0x0F);
            let m3 = _mm512_set1_epi8(3);
            let m32 = _mm512_set1_epi8(32);
            let mut acc = [[_mm512_setzero_ps(); N]; P];
            for b in 0..nb {
                for p in 0..P {
                    let (ba, bb) = (&x[p][0][b], &x[p][1][b]);
                    prefetch(ba);
                    prefetch(bb);
                    let dx = pair_ps(f16_lookup(t, ba.d), f16_lookup(t, bb.d));
                    let scales16 = _mm512_cvtepi8_epi16(pair_u8x16(&ba.scales, &bb.scales));
                    let mut q = [_mm512_setzero_si512(); 8];
                    for h in 0..2 {
                        let lo_a = pair_u8x32(&ba.ql[64 * h..], &bb.ql[64 * h..]);
                        let lo_b = pair_u8x32(&ba.ql[64 * h + 32..], &bb.ql[64 * h + 32..]);
                        let high = pair_u8x32(&ba.qh[32 * h..], &bb.qh[32 * h..]);
                        let low4 = [
                            _mm512_and_si512(lo_a, m4),
                            _mm512_and_si512(lo_b, m4),
                            _mm512_and_si512(_mm512_srli_epi16::<4>(lo_a), m4),
                            _mm512_and_si512(_mm512_srli_epi16::<4>(lo_b), m4),
                        ];
                        let high2 = [
                            _mm512_and_si512(high, m3),
                            _mm512_and_si512(_mm512_srli_epi16::<2>(high), m3),
                            _mm512_and_si512(_mm512_srli_epi16::<4>(high), m3),
                            _mm512_and_si512(_mm512_srli_epi16::<6>(high), m3),
                        ];
                        for g in 0..4 {
                            q[4 * h + g] =
                                _mm512_or_si512(low4[g], _mm512_slli_epi16::<4>(high2[g]));
                        }
                    }
                    let s: [__m512i; 8] = std::array::from_fn(|g| scale_pair_i16(scales16, g));
                    for n in 0..N {
                        let by = &y[n][b];
                        let sumi = scaled_sumi(&q, Some(&[m32; 8]), &s, &by.qs);
                        let d = _mm512_mul_ps(_mm512_set1_ps(q8k_d(by)), dx);
                        acc[p][n] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc[p][n]);
                    }
                }
            }
            collect!(|p, r, n| hsum_pair(acc[p][n])[r])
        }
    }
}

/// The four 2-bit fields of each byte of `bits`, shifted down (still to be masked with 3).
#[inline(always)]
unsafe fn shifted_pairs(bits: __m512i) -> [__m512i; 4] {
    // SAFETY: AVX-512BW per the calling kernel's contract; register-only.
    unsafe {
        [
            bits,
            _mm512_srli_epi16::<2>(bits),
            _mm512_srli_epi16::<4>(bits),
            _mm512_srli_epi16::<6>(bits),
        ]
    }
}

/// Q2_K · Q8_K: the mins' products folded in first, then the quant lanes, into one 8-lane
/// accumulator per row.
pub(super) struct Q2K;

impl PairDot for Q2K {
    type W = BlockQ2K;
    type A = BlockQ8K;

    #[inline(always)]
    unsafe fn dots<const P: usize, const N: usize>(
        x: [[&[BlockQ2K]; 2]; P],
        y: [&[BlockQ8K]; N],
    ) -> [[[f32; N]; 2]; P] {
        let t = f16_table();
        let nb = x[0][0].len();
        let y = y.map(|r| &r[..nb]);
        // SAFETY: AVX-512 per the trait contract; loads check their lengths.
        unsafe {
            let m3 = _mm512_set1_epi8(3);
            let m4 = _mm256_set1_epi8(0x0F);
            let mut acc = [[_mm512_setzero_ps(); N]; P];
            for b in 0..nb {
                for p in 0..P {
                    let (ba, bb) = (&x[p][0][b], &x[p][1][b]);
                    prefetch(ba);
                    prefetch(bb);
                    let dx = pair_ps(f16_lookup(t, ba.d), f16_lookup(t, bb.d));
                    let dminx = pair_ps(f16_lookup(t, ba.dmin), f16_lookup(t, bb.dmin));
                    let packed = pair_u8x16(&ba.scales, &bb.scales);
                    let scales16 = _mm512_cvtepu8_epi16(_mm256_and_si256(packed, m4));
                    let mins =
                        _mm512_cvtepu8_epi16(_mm256_and_si256(_mm256_srli_epi16::<4>(packed), m4));
                    let mut q = [_mm512_setzero_si512(); 8];
                    for h in 0..2 {
                        let bits = pair_u8x32(&ba.qs[32 * h..], &bb.qs[32 * h..]);
                        for (s, sh) in shifted_pairs(bits).into_iter().enumerate() {
                            q[4 * h + s] = _mm512_and_si512(sh, m3);
                        }
                    }
                    let sc: [__m512i; 8] = std::array::from_fn(|g| scale_pair_i16(scales16, g));
                    for n in 0..N {
                        let by = &y[n][b];
                        let dy = q8k_d(by);
                        let dmin = _mm512_mul_ps(_mm512_set1_ps(-dy), dminx);
                        let bsums = _mm512_broadcast_i64x4(load_bsums(&by.bsums));
                        let prod = _mm512_madd_epi16(mins, bsums);
                        acc[p][n] = _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(prod), acc[p][n]);
                        let sumi = scaled_sumi(&q, None, &sc, &by.qs);
                        let d = _mm512_mul_ps(_mm512_set1_ps(dy), dx);
                        acc[p][n] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc[p][n]);
                    }
                }
            }
            collect!(|p, r, n| hsum_pair(acc[p][n])[r])
        }
    }
}

/// Q3_K · Q8_K: `(low2 − 4·[high bit clear]) · q8` as two `maddubs` and a subtraction.
pub(super) struct Q3K;

impl PairDot for Q3K {
    type W = BlockQ3K;
    type A = BlockQ8K;

    #[inline(always)]
    unsafe fn dots<const P: usize, const N: usize>(
        x: [[&[BlockQ3K]; 2]; P],
        y: [&[BlockQ8K]; N],
    ) -> [[[f32; N]; 2]; P] {
        let t = f16_table();
        let nb = x[0][0].len();
        let y = y.map(|r| &r[..nb]);
        // SAFETY: AVX-512 per the trait contract; loads check their lengths.
        unsafe {
            let m3 = _mm512_set1_epi8(3);
            let four = _mm512_set1_epi8(4);
            let mut acc = [[_mm512_setzero_ps(); N]; P];
            for b in 0..nb {
                for p in 0..P {
                    let (ba, bb) = (&x[p][0][b], &x[p][1][b]);
                    prefetch(ba);
                    prefetch(bb);
                    let dx = pair_ps(f16_lookup(t, ba.d), f16_lookup(t, bb.d));
                    let (sa, sb) = (q3k_scales(&ba.scales), q3k_scales(&bb.scales));
                    let scales16 = _mm512_cvtepi8_epi16(pair_u8x16(&sa, &sb));
                    let hbits = pair_u8x32(&ba.hmask, &bb.hmask);
                    let mut q = [_mm512_setzero_si512(); 8];
                    let mut high = [_mm512_setzero_si512(); 8];
                    for h in 0..2 {
                        let bits = pair_u8x32(&ba.qs[32 * h..], &bb.qs[32 * h..]);
                        for (s, sh) in shifted_pairs(bits).into_iter().enumerate() {
                            let g = 4 * h + s;
                            q[g] = _mm512_and_si512(sh, m3);
                            let bit = _mm512_set1_epi8((1u8 << g) as i8);
                            high[g] =
                                _mm512_maskz_mov_epi8(_mm512_testn_epi8_mask(hbits, bit), four);
                        }
                    }
                    let sc: [__m512i; 8] = std::array::from_fn(|g| scale_pair_i16(scales16, g));
                    for n in 0..N {
                        let by = &y[n][b];
                        let sumi = scaled_sumi(&q, Some(&high), &sc, &by.qs);
                        let d = _mm512_mul_ps(_mm512_set1_ps(q8k_d(by)), dx);
                        acc[p][n] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc[p][n]);
                    }
                }
            }
            collect!(|p, r, n| hsum_pair(acc[p][n])[r])
        }
    }
}

pair_tile!(
    /// Q2_K · Q8_K tile on AVX-512 (row pairs).
    pub(crate) fn q2k_pair_tile = q2k_imp, Q2K, 1);
pair_tile!(
    /// Q3_K · Q8_K tile on AVX-512 (row pairs).
    pub(crate) fn q3k_pair_tile = q3k_imp, Q3K, 1);
pair_tile!(
    /// Q4_K · Q8_K tile on AVX-512 (row pairs).
    pub(crate) fn q4k_pair_tile = q4k_imp, Q4K, 1);
pair_tile!(
    /// Q5_K · Q8_K tile on AVX-512 (row pairs).
    pub(crate) fn q5k_pair_tile = q5k_imp, Q5K, 1);
pair_tile!(
    /// Q6_K · Q8_K tile on AVX-512 (row pairs).
    pub(crate) fn q6k_pair_tile = q6k_imp, Q6K, 1);

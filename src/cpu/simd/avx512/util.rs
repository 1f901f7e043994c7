//! AVX-512 building blocks shared by the pair kernels: two rows' loads and unpacking into one
//! zmm (row a in the low 256 bits, row b in the high), exact VNNI integer sums, per-row scale
//! vectors and the per-half horizontal sums in the AVX2 order.
//!
//! Contract of every function here: call it only while AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C
//! are available (from a kernel compiled with them, itself reached through an `Avx512` token).

use std::arch::x86_64::*;

use super::super::util::{hsum_f32x8, load_x16, load_x32, Byte};

/// `[a[..32] | b[..32]]`: 32 bytes of each row, row a low.
#[inline(always)]
pub(super) unsafe fn pair_u8x32<T: Byte>(a: &[T], b: &[T]) -> __m512i {
    // SAFETY: AVX-512F per module contract; the loads check their lengths.
    unsafe { _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load_x32(a)), load_x32(b)) }
}

/// `[a[..16] | b[..16]]` as 32 bytes, row a low.
#[inline(always)]
pub(super) unsafe fn pair_u8x16<T: Byte>(a: &[T], b: &[T]) -> __m256i {
    // SAFETY: AVX per module contract; the loads check their lengths.
    unsafe { _mm256_set_m128i(load_x16(b), load_x16(a)) }
}

/// Two rows' 16 bytes of nibbles as AVX2's `nibbles_32` lays out each:
/// `[a low nibbles, a high nibbles | b low nibbles, b high nibbles]`. Built from broadcast
/// loads and blends, which stay off the shuffle port.
#[inline(always)]
pub(super) unsafe fn pair_nibbles(a: &[u8; 16], b: &[u8; 16]) -> __m512i {
    // SAFETY: AVX-512F/BW per module contract; the loads read the 16-byte arrays.
    unsafe {
        let za = _mm512_broadcast_i32x4(load_x16(a));
        let zb = _mm512_broadcast_i32x4(load_x16(b));
        let z = _mm512_mask_blend_epi64(0xF0, za, zb); // [a, a, b, b]
        let z = _mm512_mask_blend_epi64(0b1100_1100, z, _mm512_srli_epi16::<4>(z));
        _mm512_and_si512(z, _mm512_set1_epi8(0x0F))
    }
}

/// One row's 32 activation bytes in both halves.
#[inline(always)]
pub(super) unsafe fn bcast_i8x32<T: Byte>(y: &[T]) -> __m512i {
    // SAFETY: AVX-512F per module contract; the load checks its length.
    unsafe { _mm512_broadcast_i64x4(load_x32(y)) }
}

/// `[da ×8 | db ×8]`.
#[inline(always)]
pub(super) unsafe fn pair_ps(da: f32, db: f32) -> __m512 {
    // SAFETY: AVX-512F per module contract; register-only.
    unsafe { _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(da), _mm512_set1_ps(db)) }
}

/// Two rows' first two f16 fields (each row's 4 bytes `h`, e.g. a block's `d` and `m`) as f32
/// `[a0, a1, b0, b1]`, converted exactly by F16C, and `[a0 ×8 | b0 ×8]` for the per-row scale.
#[inline(always)]
pub(super) unsafe fn pair_halves(a: [u8; 4], b: [u8; 4]) -> (__m512, __m128) {
    // SAFETY: AVX-512F/F16C per module contract; register-only.
    unsafe {
        let words = _mm_set_epi32(0, 0, i32::from_le_bytes(b), i32::from_le_bytes(a));
        let f = _mm_cvtph_ps(words);
        let idx = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
        (_mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f)), f)
    }
}

/// `[da ×4 | db ×4]`.
#[inline(always)]
pub(super) unsafe fn pair_ps4(da: f32, db: f32) -> __m256 {
    // SAFETY: AVX per module contract; register-only.
    unsafe { _mm256_set_m128(_mm_set1_ps(db), _mm_set1_ps(da)) }
}

/// Σ of 4 adjacent u8×i8 products per i32 lane, exact (VNNI; AVX2's `maddubs`+`madd` give the
/// same sums whenever no pair saturates i16, which holds for every type here).
#[inline(always)]
pub(super) unsafe fn dot_u8_i8(u: __m512i, s: __m512i) -> __m512i {
    // SAFETY: AVX-512VNNI per module contract; register-only.
    unsafe { _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s) }
}

/// Σ of 4 adjacent i8×i8 products per i32 lane, as AVX2's sign trick forms them: |x| times y
/// with x's sign (`y` must avoid -128; `x` may hold it, |−128| is 128 as a u8).
#[inline(always)]
pub(super) unsafe fn dot_i8_i8(x: __m512i, y: __m512i) -> __m512i {
    // SAFETY: AVX-512BW/VNNI per module contract; register-only.
    unsafe {
        let neg = _mm512_movepi8_mask(x);
        let s = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
        dot_u8_i8(_mm512_abs_epi8(x), s)
    }
}

/// Each half's 8 lanes summed in `hsum_f32x8`'s order: (row a, row b).
#[inline(always)]
pub(super) unsafe fn hsum_pair(v: __m512) -> [f32; 2] {
    // SAFETY: AVX-512F/AVX per module contract; register-only.
    unsafe {
        let lo = _mm512_castps512_ps256(v);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        [hsum_f32x8(lo), hsum_f32x8(hi)]
    }
}

/// Index vectors for [`scale_pair_i16`]: group g of 32 elements takes scale `2g` for its first
/// 16 and `2g + 1` for its last 16, from row a's 16 scales (words 0..16) or row b's (16..32).
#[inline(always)]
unsafe fn scale_pair_idx(g: usize) -> __m512i {
    let k = 2 * g as i16;
    let (a0, a1, b0, b1) = (k, k + 1, 16 + k, 17 + k);
    // SAFETY: AVX-512F per module contract; register-only.
    unsafe {
        _mm512_set_epi16(
            b1, b1, b1, b1, b1, b1, b1, b1, b0, b0, b0, b0, b0, b0, b0, b0, //
            a1, a1, a1, a1, a1, a1, a1, a1, a0, a0, a0, a0, a0, a0, a0, a0,
        )
    }
}

/// Group g's i16 scale lanes for both rows from `[a's 16 scales | b's 16 scales]` as i16
/// (AVX2's `pair_scales(scales, 2g)` in each half).
#[inline(always)]
pub(super) unsafe fn scale_pair_i16(scales16: __m512i, g: usize) -> __m512i {
    // SAFETY: AVX-512BW per module contract; register-only.
    unsafe { _mm512_permutexvar_epi16(scale_pair_idx(g), scales16) }
}

/// `[a's 8 u8 | b's 8 u8]` widened to i16 (16 words, row a low). Panics if a row is shorter.
#[inline(always)]
pub(super) unsafe fn pair_u8x8_to_i16(a: &[u8], b: &[u8]) -> __m256i {
    let pack = |s: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[..8]);
        u64::from_le_bytes(w)
    };
    // SAFETY: AVX2 per module contract; register-only.
    unsafe { _mm256_cvtepu8_epi16(_mm_set_epi64x(pack(b) as i64, pack(a) as i64)) }
}

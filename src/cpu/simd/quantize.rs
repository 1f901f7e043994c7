//! AVX2 twins of the activation quantisers in `cpu::quantize` (identical bytes).

use std::arch::x86_64::*;

use sluice_loader::quant::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1};

use super::safe_kernel;
use super::util::{load_f32x8, store_u8x16, store_u8x32};
use crate::cpu::quantize::{f32_to_bf16_bits, f32_to_f16_bits, q8k_bsums, QK8, QK_K};

/// Restores element order after two rounds of lane-wise packing (dword permutation).
#[inline(always)]
unsafe fn unpack_order(v: __m256i) -> __m256i {
    // SAFETY: AVX2 per the calling kernel's contract; register-only operations.
    unsafe { _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)) }
}

/// Max over 8 lanes (exact and order-free for non-NaN input).
#[inline(always)]
unsafe fn hmax_f32x8(v: __m256) -> f32 {
    // SAFETY: AVX per the calling kernel's contract; register-only operations.
    unsafe {
        let m = _mm_max_ps(_mm256_extractf128_ps::<1>(v), _mm256_castps256_ps128(v));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
    }
}

/// One Q8_0/Q8_1 block of 32 inputs: `(d, 32 quant bytes, Σ of the i32 quants before saturation)`.
#[inline(always)]
unsafe fn q8_block(x: &[f32]) -> (f32, __m256i, __m256i) {
    // SAFETY: AVX2 per the calling kernel's contract; loads check their lengths.
    unsafe {
        let v: [__m256; 4] = [
            load_f32x8(x),
            load_f32x8(&x[8..]),
            load_f32x8(&x[16..]),
            load_f32x8(&x[24..]),
        ];
        let sign = _mm256_set1_ps(-0.0);
        // Plain loops, not closures: a closure would not inherit the kernel's target features,
        // so its intrinsics would become out-of-line calls.
        let mut a = v;
        for e in &mut a {
            *e = _mm256_andnot_ps(sign, *e);
        }
        let amax = hmax_f32x8(_mm256_max_ps(
            _mm256_max_ps(a[0], a[1]),
            _mm256_max_ps(a[2], a[3]),
        ));
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let mut i = [_mm256_setzero_si256(); 4];
        for (o, &a) in i.iter_mut().zip(&v) {
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(a, id),
            );
            *o = _mm256_cvtps_epi32(r);
        }
        let sum = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
        let packed = _mm256_packs_epi16(
            _mm256_packs_epi32(i[0], i[1]),
            _mm256_packs_epi32(i[2], i[3]),
        );
        (d, unpack_order(packed), sum)
    }
}

/// Wrapping sum of 8 i32 lanes.
#[inline(always)]
unsafe fn hsum_i32x8(v: __m256i) -> i32 {
    // SAFETY: AVX2 per the calling kernel's contract; register-only operations.
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s)))
    }
}

/// Quant bytes of a vector as the signed quants of a block.
#[inline(always)]
unsafe fn to_i8x32(v: __m256i) -> [i8; 32] {
    let mut bytes = [0u8; 32];
    // SAFETY: AVX per the calling kernel's contract; the store checks its length.
    unsafe { store_u8x32(&mut bytes, v) };
    bytes.map(|b| b as i8)
}

/// Quantises rows to Q8_0.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_imp(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xb, ob) in x.chunks_exact(QK8).zip(out) {
        // SAFETY: the features are present (fn contract); `xb` holds 32 floats.
        let (d, q, _) = unsafe { q8_block(xb) };
        ob.d = f32_to_f16_bits(d).to_le_bytes();
        // SAFETY: as above.
        ob.qs = unsafe { to_i8x32(q) };
    }
}

/// Quantises rows to Q8_1 (`s = f16(d · Σq)`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_1_imp(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xb, ob) in x.chunks_exact(QK8).zip(out) {
        // SAFETY: the features are present (fn contract); `xb` holds 32 floats.
        let (d, q, sum) = unsafe { q8_block(xb) };
        ob.d = f32_to_f16_bits(d).to_le_bytes();
        // SAFETY: as above.
        ob.s = f32_to_f16_bits(d * unsafe { hsum_i32x8(sum) } as f32).to_le_bytes();
        // SAFETY: as above.
        ob.qs = unsafe { to_i8x32(q) };
    }
}

/// 32 Q8_K quants from 32 inputs: magic-number rounding, clamp to ≤127, low byte kept (C's
/// int → int8_t conversion).
#[inline(always)]
unsafe fn q8k_quants32(x: &[f32], iscale: f32, out: &mut [u8]) {
    // SAFETY: AVX2 per the calling kernel's contract; loads and the store check their lengths.
    unsafe {
        let scale = _mm256_set1_ps(iscale);
        let mut ints = [_mm256_setzero_si256(); 4];
        for (k, o) in ints.iter_mut().enumerate() {
            let f = _mm256_add_ps(
                _mm256_mul_ps(scale, load_f32x8(&x[8 * k..])),
                _mm256_set1_ps(12_582_912.0),
            );
            let bits = _mm256_and_si256(_mm256_castps_si256(f), _mm256_set1_epi32(0x007F_FFFF));
            let n = _mm256_min_epi32(
                _mm256_sub_epi32(bits, _mm256_set1_epi32(0x0040_0000)),
                _mm256_set1_epi32(127),
            );
            *o = _mm256_and_si256(n, _mm256_set1_epi32(0xFF));
        }
        let packed = _mm256_packus_epi16(
            _mm256_packus_epi32(ints[0], ints[1]),
            _mm256_packus_epi32(ints[2], ints[3]),
        );
        store_u8x32(out, unpack_order(packed));
    }
}

/// Index of the first element whose |x| equals `amax` (the scalar reference's running max).
#[inline(always)]
unsafe fn first_abs_equal(x: &[f32], amax: f32) -> Option<usize> {
    // SAFETY: AVX per the calling kernel's contract; loads check their lengths.
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let target = _mm256_set1_ps(amax);
        x.chunks_exact(8).enumerate().find_map(|(i, c)| {
            let eq = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, load_f32x8(c)), target);
            let hit = _mm256_movemask_ps(eq);
            (hit != 0).then(|| 8 * i + hit.trailing_zeros() as usize)
        })
    }
}

/// Quantises rows to Q8_K (signed max, `iscale = −127/max`, `d = 1/iscale`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_k_imp(x: &[f32], out: &mut [BlockQ8K]) {
    for (xb, ob) in x.chunks_exact(QK_K).zip(out) {
        // SAFETY: the features are present (fn contract); loads check their lengths.
        let amax = unsafe {
            let sign = _mm256_set1_ps(-0.0);
            let m = xb.chunks_exact(8).fold(_mm256_setzero_ps(), |m, c| {
                _mm256_max_ps(m, _mm256_andnot_ps(sign, load_f32x8(c)))
            });
            hmax_f32x8(m)
        };
        if amax == 0.0 {
            *ob = BlockQ8K {
                d: [0; 4],
                qs: [0; QK_K],
                bsums: [[0; 2]; 16],
            };
            continue;
        }
        // SAFETY: as above.
        let max = unsafe { first_abs_equal(xb, amax) }.map_or(amax, |j| xb[j]);
        let iscale = -127.0 / max;
        let mut bytes = [0u8; QK_K];
        for (xs, qs) in xb.chunks_exact(32).zip(bytes.chunks_exact_mut(32)) {
            // SAFETY: as above; 32 inputs and 32 output bytes.
            unsafe { q8k_quants32(xs, iscale, qs) };
        }
        let qs = bytes.map(|b| b as i8);
        *ob = BlockQ8K {
            d: (1.0 / iscale).to_le_bytes(),
            qs,
            bsums: q8k_bsums(&qs),
        };
    }
}

/// Converts f32 to little-endian f16 bytes with F16C (round to nearest even).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_imp(x: &[f32], out: &mut [u8]) {
    let body = x.len() - x.len() % 8;
    for (a, o) in x[..body].chunks_exact(8).zip(out.chunks_exact_mut(16)) {
        // SAFETY: the features are present (fn contract); load and store check their lengths.
        unsafe {
            store_u8x16(
                o,
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(load_f32x8(a)),
            )
        };
    }
    for (v, o) in x[body..].iter().zip(out[2 * body..].chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_f16_bits(*v).to_le_bytes());
    }
}

/// 8 floats to bf16 in the low halves of 8 i32 lanes (round to nearest even, NaN kept quiet).
#[inline(always)]
unsafe fn bf16x8(x: &[f32]) -> __m256i {
    // SAFETY: AVX2 per the calling kernel's contract; the load checks its length.
    unsafe {
        let u = _mm256_castps_si256(load_f32x8(x));
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(1));
        let bias = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF));
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(u, bias));
        let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(64));
        let mag = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFF_FFFF));
        let is_nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7F80_0000));
        _mm256_blendv_epi8(rounded, quiet, is_nan)
    }
}

/// Converts f32 to little-endian bf16 bytes.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_imp(x: &[f32], out: &mut [u8]) {
    let body = x.len() - x.len() % 16;
    for (a, o) in x[..body].chunks_exact(16).zip(out.chunks_exact_mut(32)) {
        // SAFETY: the features are present (fn contract); loads and the store check lengths.
        unsafe {
            let packed = _mm256_packus_epi32(bf16x8(a), bf16x8(&a[8..]));
            store_u8x32(o, _mm256_permute4x64_epi64::<0b11_01_10_00>(packed));
        }
    }
    for (v, o) in x[body..].iter().zip(out[2 * body..].chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_bf16_bits(*v).to_le_bytes());
    }
}

safe_kernel!(
    /// Q8_0 quantiser on AVX2.
    pub(crate) fn q8_0 = q8_0_imp; (x: &[f32], out: &mut [BlockQ8_0]) -> ());
safe_kernel!(
    /// Q8_1 quantiser on AVX2.
    pub(crate) fn q8_1 = q8_1_imp; (x: &[f32], out: &mut [BlockQ8_1]) -> ());
safe_kernel!(
    /// Q8_K quantiser on AVX2.
    pub(crate) fn q8_k = q8_k_imp; (x: &[f32], out: &mut [BlockQ8K]) -> ());
safe_kernel!(
    /// f32 → f16 converter on AVX2.
    pub(crate) fn f16 = f16_imp; (x: &[f32], out: &mut [u8]) -> ());
safe_kernel!(
    /// f32 → bf16 converter on AVX2.
    pub(crate) fn bf16 = bf16_imp; (x: &[f32], out: &mut [u8]) -> ());

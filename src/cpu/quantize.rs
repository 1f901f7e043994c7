//! Activation quantisers and converters, matching what llama.cpp's x86 build feeds its dots
//! (gguf-facts §3.2): Q8_0/Q8_1 as the AVX2 path makes them (`id = 127/amax`, round half to
//! even, `d` stored as f16), Q8_K as the scalar reference makes it (signed max,
//! `iscale = −127/max`, magic-number rounding, `d = 1/iscale` as f32), and f32 → f16 / bf16 with
//! round-to-nearest-even. Each public function picks the scalar or AVX2 version; both write
//! identical bytes for every finite input.

use half::f16;
use sluice_loader::quant::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1};

use super::dispatch::{Isa, IsaKind};
#[cfg(target_arch = "x86_64")]
use super::simd;

/// Elements per Q8_0/Q8_1 block.
pub const QK8: usize = 32;
/// Elements per Q8_K block.
pub const QK_K: usize = 256;

/// f32 → IEEE half bits, round to nearest even (as F16C's `vcvtps2ph` with imm 0).
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// f32 → bf16 bits, round to nearest even; NaN stays NaN (quiet bit forced), as ggml does.
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7FFF_FFFF > 0x7F80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7FFF + ((u >> 16) & 1)) >> 16) as u16
}

/// `_mm256_cvtps_epi32` on an already rounded value: out of range and NaN give `i32::MIN`.
#[inline]
fn cvt_i32_x86(r: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&r) {
        r as i32
    } else {
        i32::MIN
    }
}

/// One Q8_0/Q8_1 block: `(d, quants, Σ of the unsaturated i32 quants)`.
#[inline]
fn q8_block(x: &[f32]) -> (f32, [i8; QK8], i32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut q = [0i8; QK8];
    let mut sum = 0i32;
    for (qi, &v) in q.iter_mut().zip(x) {
        let i = cvt_i32_x86((v * id).round_ties_even());
        sum = sum.wrapping_add(i);
        *qi = i.clamp(-128, 127) as i8;
    }
    (d, q, sum)
}

/// Scalar Q8_0 quantiser (twin of the AVX2 one).
pub(crate) fn q8_0_scalar(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xb, ob) in x.chunks_exact(QK8).zip(out) {
        let (d, qs, _) = q8_block(xb);
        *ob = BlockQ8_0 {
            d: f32_to_f16_bits(d).to_le_bytes(),
            qs,
        };
    }
}

/// Scalar Q8_1 quantiser: Q8_0 plus `s = f16(d · Σq)` (twin of the AVX2 one).
pub(crate) fn q8_1_scalar(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xb, ob) in x.chunks_exact(QK8).zip(out) {
        let (d, qs, sum) = q8_block(xb);
        let s = f32_to_f16_bits(d * sum as f32).to_le_bytes();
        *ob = BlockQ8_1 {
            d: f32_to_f16_bits(d).to_le_bytes(),
            s,
            qs,
        };
    }
}

/// llama.cpp's `nearest_int`: round half to even via the 1.5·2²³ magic add, bit-exact.
#[inline]
pub(crate) fn nearest_int(f: f32) -> i32 {
    let bits = (f + 12_582_912.0).to_bits() as i32;
    (bits & 0x007F_FFFF) - 0x0040_0000
}

/// The 16 group sums of a Q8_K block's quants, as stored little-endian i16.
#[inline]
pub(crate) fn q8k_bsums(qs: &[i8; QK_K]) -> [[u8; 2]; 16] {
    std::array::from_fn(|j| {
        (qs[16 * j..16 * j + 16]
            .iter()
            .map(|&q| i32::from(q))
            .sum::<i32>() as i16)
            .to_le_bytes()
    })
}

/// Scalar Q8_K quantiser (llama.cpp's reference, which its x86 build uses).
pub(crate) fn q8_k_scalar(x: &[f32], out: &mut [BlockQ8K]) {
    for (xb, ob) in x.chunks_exact(QK_K).zip(out) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *ob = BlockQ8K {
                d: [0; 4],
                qs: [0; QK_K],
                bsums: [[0; 2]; 16],
            };
            continue;
        }
        let iscale = -127.0 / max;
        let qs: [i8; QK_K] = std::array::from_fn(|j| nearest_int(iscale * xb[j]).min(127) as i8);
        *ob = BlockQ8K {
            d: (1.0 / iscale).to_le_bytes(),
            qs,
            bsums: q8k_bsums(&qs),
        };
    }
}

/// Scalar f32 → f16 row conversion.
pub(crate) fn f16_scalar(x: &[f32], out: &mut [u8]) {
    for (v, o) in x.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_f16_bits(*v).to_le_bytes());
    }
}

/// Scalar f32 → bf16 row conversion.
pub(crate) fn bf16_scalar(x: &[f32], out: &mut [u8]) {
    for (v, o) in x.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_bf16_bits(*v).to_le_bytes());
    }
}

/// Asserts the block count of a quantiser call (programming error, not data).
fn check_blocks(x_len: usize, block: usize, out_len: usize) {
    assert!(
        x_len.is_multiple_of(block) && x_len / block == out_len,
        "quantiser: {x_len} inputs do not fill {out_len} blocks of {block}"
    );
}

/// Quantises `x` to Q8_0 blocks. Panics unless `x.len() == 32 * out.len()`.
pub fn quantize_row_q8_0(isa: Isa, x: &[f32], out: &mut [BlockQ8_0]) {
    check_blocks(x.len(), QK8, out.len());
    match isa.kind() {
        IsaKind::Scalar => q8_0_scalar(x, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2(t) => simd::quantize::q8_0(t, x, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512(t) => simd::quantize::q8_0(t.avx2(), x, out),
    }
}

/// Quantises `x` to Q8_1 blocks. Panics unless `x.len() == 32 * out.len()`.
pub fn quantize_row_q8_1(isa: Isa, x: &[f32], out: &mut [BlockQ8_1]) {
    check_blocks(x.len(), QK8, out.len());
    match isa.kind() {
        IsaKind::Scalar => q8_1_scalar(x, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2(t) => simd::quantize::q8_1(t, x, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512(t) => simd::quantize::q8_1(t.avx2(), x, out),
    }
}

/// Quantises `x` to Q8_K blocks. Panics unless `x.len() == 256 * out.len()`.
pub fn quantize_row_q8_k(isa: Isa, x: &[f32], out: &mut [BlockQ8K]) {
    check_blocks(x.len(), QK_K, out.len());
    match isa.kind() {
        IsaKind::Scalar => q8_k_scalar(x, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2(t) => simd::quantize::q8_k(t, x, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512(t) => simd::quantize::q8_k(t.avx2(), x, out),
    }
}

/// Converts `x` to little-endian f16 bytes. Panics unless `out.len() == 2 * x.len()`.
pub fn convert_row_f16(isa: Isa, x: &[f32], out: &mut [u8]) {
    check_blocks(out.len(), 2, x.len());
    match isa.kind() {
        IsaKind::Scalar => f16_scalar(x, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2(t) => simd::quantize::f16(t, x, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512(t) => simd::quantize::f16(t.avx2(), x, out),
    }
}

/// Converts `x` to little-endian bf16 bytes. Panics unless `out.len() == 2 * x.len()`.
pub fn convert_row_bf16(isa: Isa, x: &[f32], out: &mut [u8]) {
    check_blocks(out.len(), 2, x.len());
    match isa.kind() {
        IsaKind::Scalar => bf16_scalar(x, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2(t) => simd::quantize::bf16(t, x, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512(t) => simd::quantize::bf16(t.avx2(), x, out),
    }
}

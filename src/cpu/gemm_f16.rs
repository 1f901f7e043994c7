//! The f16 dot in the summation order of llama.cpp's batched GEMM (llamafile tinyBLAS), which
//! it uses for attention products inside a prompt batch: one 8-lane accumulator stepping
//! through the row with fused multiply-adds, then the upper 4 lanes added to the lower 4 and
//! those summed pairwise. Scalar and AVX2 versions give the same bits.

use half::f16;

use super::Isa;

/// Dots two little-endian f16 rows of equal length (a multiple of 8) in GEMM order.
pub fn dot_f16_gemm(isa: Isa, a: &[u8], b: &[u8]) -> f32 {
    let n = a.len().min(b.len()) / 2;
    debug_assert!(n.is_multiple_of(8));
    #[cfg(target_arch = "x86_64")]
    if isa.avx2_proof().is_some() {
        // SAFETY: an `Avx2` proof exists only after AVX2, FMA and F16C were detected; the rows
        // hold 2·n bytes.
        return unsafe { gemm_avx2(&a[..2 * n], &b[..2 * n]) };
    }
    gemm_scalar(&a[..2 * n], &b[..2 * n])
}

fn half_at(r: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([r[2 * i], r[2 * i + 1]])).to_f32()
}

fn fold(l: [f32; 8]) -> f32 {
    let h = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    (h[0] + h[2]) + (h[1] + h[3])
}

fn gemm_scalar(a: &[u8], b: &[u8]) -> f32 {
    let mut lanes = [0.0f32; 8];
    for i in (0..a.len() / 2).step_by(8) {
        for (k, lane) in lanes.iter_mut().enumerate() {
            *lane = half_at(a, i + k).mul_add(half_at(b, i + k), *lane);
        }
    }
    fold(lanes)
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C; `a` and `b` have the same length, a multiple of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_avx2(a: &[u8], b: &[u8]) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_ps();
    for (ca, cb) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        // SAFETY: each chunk is 16 readable bytes (8 halves); unaligned loads.
        let (va, vb) = unsafe {
            (
                _mm256_cvtph_ps(_mm_loadu_si128(ca.as_ptr().cast())),
                _mm256_cvtph_ps(_mm_loadu_si128(cb.as_ptr().cast())),
            )
        };
        acc = _mm256_fmadd_ps(va, vb, acc);
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` is 8 writable f32s.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    fold(lanes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avx2_and_scalar_agree_bit_for_bit() {
        let mut state = 0x1234_5678u32;
        let mut row = |n: usize| -> Vec<u8> {
            (0..n)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    let x = (state as f32 / u32::MAX as f32 - 0.5) * 8.0;
                    f16::from_f32(x).to_bits().to_le_bytes()
                })
                .collect()
        };
        for n in [8, 16, 64, 160, 512] {
            let (a, b) = (row(n), row(n));
            let s = dot_f16_gemm(Isa::scalar(), &a, &b);
            if let Some(v) = Isa::avx2() {
                assert_eq!(dot_f16_gemm(v, &a, &b).to_bits(), s.to_bits(), "n={n}");
            }
            let exact: f64 = (0..n)
                .map(|i| half_at(&a, i) as f64 * half_at(&b, i) as f64)
                .sum();
            assert!(
                (s as f64 - exact).abs() < 1e-3 * (1.0 + exact.abs()),
                "n={n}"
            );
        }
    }
}

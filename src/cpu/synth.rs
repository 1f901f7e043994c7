//! Synthetic weights and activations of any type, for benchmarks (`sluice bench kernels`, the
//! criterion benches): random quantised blocks whose f16 scales are small and finite, so every
//! kernel does its real work on realistic bit patterns.

use half::f16;
use sluice_loader::GgmlType;

use super::{quantize_acts_with, CpuError, Isa, QuantizedActs};

/// SplitMix64: reproducible pseudo-random numbers without a dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniform in [-1, 1).
    pub fn float(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Byte offsets of a block's f16 scale fields (gguf-facts §2.2), which random blocks must
/// hold finite.
pub(crate) fn f16_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType as T;
    match ty {
        T::Q4_0 | T::Q5_0 | T::Q8_0 | T::IQ4NL => &[0],
        T::Q4_1 | T::Q5_1 | T::Q4K | T::Q5K => &[0, 2],
        T::Q2K => &[80, 82],
        T::Q3K => &[108],
        T::Q6K => &[208],
        _ => &[],
    }
}

/// A random `n_rows × row_elems` weight matrix of type `ty` (`row_elems` a multiple of the
/// type's block size).
pub fn weights(rng: &mut Rng, ty: GgmlType, row_elems: usize, n_rows: usize) -> Vec<u8> {
    let n = row_elems * n_rows;
    match ty {
        GgmlType::F32 => (0..n).flat_map(|_| rng.float().to_le_bytes()).collect(),
        GgmlType::F16 | GgmlType::BF16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.float()).to_bits().to_le_bytes())
            .collect(),
        _ => {
            let bb = ty.block_bytes();
            let mut bytes: Vec<u8> = (0..n / ty.block_elems() * bb)
                .map(|_| rng.next_u64() as u8)
                .collect();
            for block in bytes.chunks_exact_mut(bb) {
                for &at in f16_fields(ty) {
                    block[at..at + 2].copy_from_slice(
                        &f16::from_f32(0.01 * rng.float()).to_bits().to_le_bytes(),
                    );
                }
            }
            bytes
        }
    }
}

/// `tokens` random activation rows quantised for weights of type `ty`.
pub fn acts(
    rng: &mut Rng,
    isa: Isa,
    ty: GgmlType,
    row_elems: usize,
    tokens: usize,
) -> Result<QuantizedActs, CpuError> {
    let x: Vec<f32> = (0..row_elems * tokens).map(|_| rng.float()).collect();
    let mut q = QuantizedActs::for_shape(tokens, row_elems);
    quantize_acts_with(isa, ty, &x, tokens, &mut q)?;
    Ok(q)
}

/// Every weight type the CPU backend multiplies, most common first.
pub const WEIGHT_TYPES: [GgmlType; 14] = [
    GgmlType::Q4_1,
    GgmlType::Q8_0,
    GgmlType::Q5_0,
    GgmlType::Q4K,
    GgmlType::Q6K,
    GgmlType::Q4_0,
    GgmlType::Q5_1,
    GgmlType::IQ4NL,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q5K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{matmul_with, ThreadPool, WeightView};

    #[test]
    fn every_type_makes_a_valid_matrix() {
        let mut rng = Rng::new(3);
        let pool = ThreadPool::new(1);
        for ty in WEIGHT_TYPES {
            let bytes = weights(&mut rng, ty, 256, 3);
            let w = WeightView::file(ty, 256, 3, &bytes);
            let q = acts(&mut rng, Isa::scalar(), ty, 256, 1).expect("acts");
            let mut out = [f32::NAN; 3];
            assert_eq!(matmul_with(Isa::scalar(), &w, &q, &mut out, &pool), Ok(()));
            assert!(out.iter().all(|v| v.is_finite()), "{ty}: {out:?}");
        }
    }
}

//! Random weight rows of every type, with valid finite f16 scales, and quantised activations.

use half::{bf16, f16};
use sluice_loader::GgmlType;

use super::rng::Rng;
use crate::cpu::synth::f16_fields;
use crate::cpu::{quantize_acts_with, vec_dot_type, Isa, QuantizedActs};

/// Every weight type the kernels support.
pub(super) const WEIGHT_TYPES: [GgmlType; 14] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::IQ4NL,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

/// A random finite f16 scale of magnitude in [2^-12, 2^-3], either sign (the second field of
/// Q4_1/Q5_1, `m`, gets a larger magnitude, as offsets do).
fn scale(rng: &mut Rng, field: usize) -> [u8; 2] {
    let mag = 2f32.powf(rng.range(-12.0, -3.0)) * if field == 1 { 16.0 } else { 1.0 };
    let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
    f16::from_f32(sign * mag).to_bits().to_le_bytes()
}

/// `n_rows` random rows of `row_elems` elements of `ty`, back to back.
pub(super) fn weights(rng: &mut Rng, ty: GgmlType, row_elems: usize, n_rows: usize) -> Vec<u8> {
    let n = row_elems * n_rows;
    match ty {
        GgmlType::F32 => (0..n)
            .flat_map(|_| rng.range(-2.0, 2.0).to_le_bytes())
            .collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.range(-2.0, 2.0)).to_bits().to_le_bytes())
            .collect(),
        GgmlType::BF16 => (0..n)
            .flat_map(|_| bf16::from_f32(rng.range(-2.0, 2.0)).to_bits().to_le_bytes())
            .collect(),
        _ => {
            let bb = ty.block_bytes();
            let mut bytes = vec![0u8; n / ty.block_elems() * bb];
            rng.fill(&mut bytes);
            for block in bytes.chunks_exact_mut(bb) {
                for (k, &at) in f16_fields(ty).iter().enumerate() {
                    block[at..at + 2].copy_from_slice(&scale(rng, k));
                }
            }
            bytes
        }
    }
}

/// `rows` random activation rows quantised (scalar path) for weights of type `ty`.
pub(super) fn acts(
    rng: &mut Rng,
    ty: GgmlType,
    row_elems: usize,
    rows: usize,
) -> (Vec<f32>, QuantizedActs) {
    let x = rng.activations(row_elems * rows);
    let mut q = QuantizedActs::for_shape(rows, row_elems);
    let res = quantize_acts_with(Isa::scalar(), ty, &x, rows, &mut q);
    assert_eq!(res, Ok(()), "quantising activations for {ty}");
    assert_eq!(Some(q.ty()), vec_dot_type(ty));
    (x, q)
}

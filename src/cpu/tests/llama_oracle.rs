//! Bit-exact agreement with llama.cpp: its CPU quantisers and dots (commit c392e509, x86 AVX2,
//! GCC -O3 -march=native, built outside this repository and never committed) ran once on inputs
//! drawn from a SplitMix64 stream; `llama_fixture.rs` holds only their recorded outputs. This
//! test draws the same inputs and requires the same output bits on both of sluice's paths.

use sluice_loader::GgmlType;

use super::llama_fixture as fx;
use super::rng::Rng;
use crate::cpu::{quantize_acts_with, vec_dot_with, Isa, QuantizedActs};

/// Fixture name, type and byte offsets of the f16 scale fields of one block.
const TYPES: [(&str, GgmlType, &[usize]); 11] = [
    ("Q4_0", GgmlType::Q4_0, &[0]),
    ("Q4_1", GgmlType::Q4_1, &[0, 2]),
    ("Q5_0", GgmlType::Q5_0, &[0]),
    ("Q5_1", GgmlType::Q5_1, &[0, 2]),
    ("Q8_0", GgmlType::Q8_0, &[0]),
    ("IQ4NL", GgmlType::IQ4NL, &[0]),
    ("Q2K", GgmlType::Q2K, &[80, 82]),
    ("Q3K", GgmlType::Q3K, &[108]),
    ("Q4K", GgmlType::Q4K, &[0, 2]),
    ("Q5K", GgmlType::Q5K, &[0, 2]),
    ("Q6K", GgmlType::Q6K, &[208]),
];
const LENS_32: [usize; 4] = [32, 96, 576, 4096];
const LENS_256: [usize; 4] = [256, 768, 1536, 4096];
const QUANT_N: usize = 1024;

/// A finite f16 scale as the generator draws it (sign, exponent 2^-12..2^-3, or 2^-8..2^1 for
/// the second field, random mantissa).
fn scale_bits(rng: &mut Rng, field: usize) -> u16 {
    let r = rng.next_u64();
    let exp = 3 + r % 10 + if field == 1 { 4 } else { 0 };
    (((r >> 8) & 1) << 15 | exp << 10 | ((r >> 16) & 0x3FF)) as u16
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn paths() -> Vec<Isa> {
    Isa::all_present()
}

#[test]
fn quantisers_and_dots_match_llama_cpp_bit_for_bit() {
    let mut rng = Rng::new(fx::SEED);
    let mut q = QuantizedActs::for_shape(1, 4096);
    for (r, want) in fx::QUANT_HASHES.iter().enumerate().take(fx::QUANT_ROWS) {
        let mut x = rng.activations(QUANT_N);
        if r % 4 == 1 {
            let c = 1e-3f32 * (r + 1) as f32;
            x.iter_mut().for_each(|v| *v *= c);
        }
        for isa in paths() {
            for (k, ty) in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4K]
                .into_iter()
                .enumerate()
            {
                assert_eq!(quantize_acts_with(isa, ty, &x, 1, &mut q), Ok(()));
                assert_eq!(
                    fnv1a(q.row(0)),
                    want[k],
                    "row {r}: {} quantiser output ({})",
                    q.ty(),
                    isa.name()
                );
            }
        }
    }
    for ((name, ty, fields), (fx_name, want)) in TYPES.iter().zip(fx::DOTS.iter()) {
        assert_eq!(name, fx_name);
        let lens = if ty.block_elems() == 256 {
            LENS_256
        } else {
            LENS_32
        };
        for (n, want_n) in lens.into_iter().zip(want) {
            assert_eq!(want_n.len(), fx::REPS);
            for want_bits in want_n {
                let nb = n / ty.block_elems();
                let mut w = vec![0u8; nb * ty.block_bytes()];
                rng.fill(&mut w);
                for block in w.chunks_exact_mut(ty.block_bytes()) {
                    for (k, &at) in fields.iter().enumerate() {
                        block[at..at + 2].copy_from_slice(&scale_bits(&mut rng, k).to_le_bytes());
                    }
                }
                let x = rng.activations(n);
                for isa in paths() {
                    assert_eq!(quantize_acts_with(isa, *ty, &x, 1, &mut q), Ok(()));
                    let got = vec_dot_with(isa, *ty, n, &w, q.row(0)).map(f32::to_bits);
                    assert_eq!(
                        got,
                        Ok(*want_bits),
                        "{ty} n={n} ({}): llama.cpp gave {:e}",
                        isa.name(),
                        f32::from_bits(*want_bits)
                    );
                }
            }
        }
    }
}

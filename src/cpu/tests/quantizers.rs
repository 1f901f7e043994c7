//! Activation quantisers: AVX2 bytes equal scalar bytes on random and extreme inputs, and the
//! scalar versions follow llama.cpp's rules (round half to even, signed Q8_K max, f16 `d`).

use half::f16;
use sluice_loader::quant::block_bytes;
use sluice_loader::quant::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1};

use super::avx2_or_skip;
use super::rng::Rng;
use crate::cpu::quantize::{
    convert_row_bf16, convert_row_f16, f32_to_bf16_bits, quantize_row_q8_0, quantize_row_q8_1,
    quantize_row_q8_k,
};
use crate::cpu::Isa;

/// Rows of 256 values that stress the quantisers: zeros, signed zeros, ties, extremes.
fn nasty_rows(rng: &mut Rng) -> Vec<Vec<f32>> {
    let mut rows = vec![vec![0.0; 256], vec![-0.0; 256]];
    rows.push((0..256).map(|i| (i as f32 - 128.0) + 0.5).collect()); // exact .5 ties
    rows.push(
        (0..256)
            .map(|i| if i == 7 { -3.0 } else { (i % 7) as f32 * 0.25 })
            .collect(),
    );
    rows.push(
        (0..256)
            .map(|i| if i % 2 == 0 { 3.0e38 } else { -1.0e38 })
            .collect(),
    );
    rows.push((0..256).map(|i| 1.0e-38 * (i as f32 - 100.0)).collect()); // subnormal-ish
    rows.push((0..256).map(|i| 1.0e-42 * (i % 5) as f32).collect()); // subnormal amax
    rows.push(
        (0..256)
            .map(|i| {
                if i == 255 {
                    5.0
                } else if i == 3 {
                    -5.0
                } else {
                    1.0
                }
            })
            .collect(),
    );
    rows.push((0..256).map(|_| 65504.0 * rng.range(-1.5, 1.5)).collect()); // beyond f16 range
    rows.push(
        (0..256)
            .map(|_| 2f32.powf(rng.range(-30.0, 30.0)) * rng.range(-1.0, 1.0))
            .collect(),
    );
    for _ in 0..300 {
        rows.push(rng.activations(256));
    }
    rows
}

#[test]
fn avx2_quantisers_write_the_scalar_bytes() {
    let Some(avx2) = avx2_or_skip("avx2_quantisers_write_the_scalar_bytes") else {
        return;
    };
    let mut rng = Rng::new(0x5EED_0010);
    for (r, x) in nasty_rows(&mut rng).iter().enumerate() {
        let q80 = |isa| {
            let mut o = vec![
                BlockQ8_0 {
                    d: [0; 2],
                    qs: [0; 32]
                };
                8
            ];
            quantize_row_q8_0(isa, x, &mut o);
            block_bytes(&o).to_vec()
        };
        let q81 = |isa| {
            let mut o = vec![
                BlockQ8_1 {
                    d: [0; 2],
                    s: [0; 2],
                    qs: [0; 32]
                };
                8
            ];
            quantize_row_q8_1(isa, x, &mut o);
            block_bytes(&o).to_vec()
        };
        let q8k = |isa| {
            let mut o = vec![
                BlockQ8K {
                    d: [0; 4],
                    qs: [0; 256],
                    bsums: [[0; 2]; 16]
                };
                1
            ];
            quantize_row_q8_k(isa, x, &mut o);
            block_bytes(&o).to_vec()
        };
        let f16s = |isa, n: usize| {
            let mut o = vec![0u8; 2 * n];
            convert_row_f16(isa, &x[..n], &mut o);
            o
        };
        let bf16s = |isa, n: usize| {
            let mut o = vec![0u8; 2 * n];
            convert_row_bf16(isa, &x[..n], &mut o);
            o
        };
        assert_eq!(q80(Isa::scalar()), q80(avx2), "Q8_0 row {r}");
        assert_eq!(q81(Isa::scalar()), q81(avx2), "Q8_1 row {r}");
        assert_eq!(q8k(Isa::scalar()), q8k(avx2), "Q8_K row {r}");
        for n in [256, 255, 7] {
            assert_eq!(f16s(Isa::scalar(), n), f16s(avx2, n), "F16 row {r} n={n}");
            assert_eq!(
                bf16s(Isa::scalar(), n),
                bf16s(avx2, n),
                "BF16 row {r} n={n}"
            );
        }
    }
}

#[test]
fn q8_0_rounds_half_to_even_with_id_127_over_amax() {
    let mut x = [0.0f32; 32];
    x[..6].copy_from_slice(&[127.0, 0.5, 1.5, -0.5, -2.5, 3.5]);
    let mut o = [BlockQ8_0 {
        d: [0; 2],
        qs: [0; 32],
    }];
    quantize_row_q8_0(Isa::scalar(), &x, &mut o);
    assert_eq!(&o[0].qs[..6], &[127, 0, 2, 0, -2, 4]);
    assert_eq!(f16::from_bits(u16::from_le_bytes(o[0].d)).to_f32(), 1.0);
    let mut z = [BlockQ8_0 {
        d: [1; 2],
        qs: [1; 32],
    }];
    quantize_row_q8_0(Isa::scalar(), &[0.0; 32], &mut z);
    assert_eq!(
        z[0],
        BlockQ8_0 {
            d: [0; 2],
            qs: [0; 32]
        }
    );
}

#[test]
fn q8_1_sum_uses_the_unrounded_d() {
    let x: Vec<f32> = (0..32).map(|i| i as f32 * 0.1).collect();
    let mut o = [BlockQ8_1 {
        d: [0; 2],
        s: [0; 2],
        qs: [0; 32],
    }];
    quantize_row_q8_1(Isa::scalar(), &x, &mut o);
    let d = 3.1f32 / 127.0;
    let sum: i32 = o[0].qs.iter().map(|&q| i32::from(q)).sum();
    assert_eq!(
        o[0].s,
        f16::from_f32(d * sum as f32).to_bits().to_le_bytes()
    );
}

#[test]
fn q8_k_keeps_the_sign_of_the_largest_magnitude() {
    let mut x = [1.0f32; 256];
    x[3] = -5.0;
    x[255] = 5.0; // same magnitude later: the first one wins
    let mut o = [BlockQ8K {
        d: [0; 4],
        qs: [0; 256],
        bsums: [[0; 2]; 16],
    }];
    quantize_row_q8_k(Isa::scalar(), &x, &mut o);
    let d = f32::from_le_bytes(o[0].d);
    assert_eq!(d, 1.0 / (-127.0f32 / -5.0));
    assert_eq!((o[0].qs[3], o[0].qs[255], o[0].qs[0]), (-127, 127, 25));
    let sum0: i16 = o[0].qs[..16].iter().map(|&q| i16::from(q)).sum();
    assert_eq!(i16::from_le_bytes(o[0].bsums[0]), sum0);
    x[3] = 5.0;
    x[255] = -5.0;
    quantize_row_q8_k(Isa::scalar(), &x, &mut o);
    assert!(
        f32::from_le_bytes(o[0].d) < 0.0,
        "a positive max gives a negative d"
    );
    assert_eq!(o[0].qs[3], -127);
}

#[test]
fn bf16_rounds_to_nearest_even_and_keeps_nan() {
    assert_eq!(f32_to_bf16_bits(1.0), 0x3F80);
    assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3F80_8000)), 0x3F80); // tie → even
    assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3F81_8000)), 0x3F82); // tie → even
    assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3F80_8001)), 0x3F81);
    assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7F80_0001)), 0x7FC0);
}

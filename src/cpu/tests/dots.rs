//! Dot products: the AVX2 and scalar paths agree bit for bit, and both agree with an independent
//! f64 evaluation of the dequantised weights and activations.

use sluice_loader::GgmlType;

use super::avx2_or_skip;
use super::gen::{acts, weights, WEIGHT_TYPES};
use super::reference::dequant;
use super::rng::Rng;
use crate::cpu::{vec_dot_with, Isa};

/// Allowed error relative to `Σ |parts of w| · |a|`: f32 accumulation over ≤ 128 blocks stays
/// far below it (observed ≤ 6e-8).
const REL_TOL: f64 = 1e-6;
/// Extra allowance for Q4_1/Q5_1: `s = f16(d·Σq)` replaces `f16(d)·Σq` (two f16 roundings).
const S_TOL: f64 = 1.5e-3;

/// Row lengths exercised: one block, odd block counts, a SmolLM2 width, a large row.
fn lengths(ty: GgmlType) -> &'static [usize] {
    match ty.block_elems() {
        256 => &[256, 768, 1536, 4096],
        32 => &[32, 96, 576, 4096],
        _ => &[1, 31, 32, 33, 100, 576, 4096],
    }
}

/// The allowed |dot − reference| for one row pair.
fn tolerance(ty: GgmlType, w_row: &[u8], a_row: &[u8], a_ty: GgmlType) -> f64 {
    let w = dequant(ty, w_row);
    let a = dequant(a_ty, a_row);
    let bound: f64 = w.iter().zip(&a).map(|(w, a)| w.scale * a.value.abs()).sum();
    let mut tol = REL_TOL * bound + 1e-30;
    if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
        for (wb, ab) in w_row.chunks_exact(ty.block_bytes()).zip(a.chunks_exact(32)) {
            let m = f64::from(half::f16::from_bits(u16::from_le_bytes([wb[2], wb[3]])).to_f32());
            let sum_a: f64 = ab.iter().map(|e| e.value).sum();
            tol += S_TOL * (m * sum_a).abs();
        }
    }
    tol
}

#[test]
fn every_type_matches_the_f64_reference_on_both_paths() {
    let mut rng = Rng::new(0x5EED_0001);
    for ty in WEIGHT_TYPES {
        let mut worst = 0.0f64;
        for &n in lengths(ty) {
            for _ in 0..8 {
                let w = weights(&mut rng, ty, n, 1);
                let (_, q) = acts(&mut rng, ty, n, 1);
                let w_ref = dequant(ty, &w);
                let a_ref = dequant(q.ty(), q.row(0));
                let exact: f64 = w_ref
                    .iter()
                    .zip(&a_ref)
                    .map(|(w, a)| w.value * a.value)
                    .sum();
                let tol = tolerance(ty, &w, q.row(0), q.ty());
                for isa in Isa::all_present().into_iter() {
                    let got = vec_dot_with(isa, ty, n, &w, q.row(0)).map(f64::from);
                    let err = (got.clone().unwrap_or(f64::NAN) - exact).abs();
                    assert!(
                        err <= tol,
                        "{ty} n={n} {}: got {got:?}, f64 reference {exact}, tolerance {tol}",
                        isa.name()
                    );
                    worst = worst.max(err / tol);
                }
            }
        }
        eprintln!("{ty}: worst error {:.3} of tolerance", worst);
    }
}

#[test]
fn avx2_equals_scalar_bit_for_bit() {
    let Some(avx2) = avx2_or_skip("avx2_equals_scalar_bit_for_bit") else {
        return;
    };
    let mut rng = Rng::new(0x5EED_0002);
    for ty in WEIGHT_TYPES {
        for &n in lengths(ty) {
            for _ in 0..40 {
                let w = weights(&mut rng, ty, n, 1);
                let (_, q) = acts(&mut rng, ty, n, 1);
                let s = vec_dot_with(Isa::scalar(), ty, n, &w, q.row(0)).map(f32::to_bits);
                let v = vec_dot_with(avx2, ty, n, &w, q.row(0)).map(f32::to_bits);
                assert!(s.is_ok());
                assert_eq!(s, v, "{ty} n={n}: scalar {s:?} vs avx2 {v:?} (bits)");
            }
        }
    }
}

#[test]
fn q8_0_weights_may_hold_minus_128() {
    let Some(avx2) = avx2_or_skip("q8_0_weights_may_hold_minus_128") else {
        return;
    };
    let mut rng = Rng::new(0x5EED_0003);
    let n = 64;
    let mut w = weights(&mut rng, GgmlType::Q8_0, n, 1);
    for b in w.chunks_exact_mut(34) {
        b[2..].fill(0x80); // every quant −128
    }
    let (_, q) = acts(&mut rng, GgmlType::Q8_0, n, 1);
    let s = vec_dot_with(Isa::scalar(), GgmlType::Q8_0, n, &w, q.row(0));
    let v = vec_dot_with(avx2, GgmlType::Q8_0, n, &w, q.row(0));
    assert_eq!(s.clone().map(f32::to_bits), v.map(f32::to_bits));
    let exact: f64 = dequant(GgmlType::Q8_0, &w)
        .iter()
        .zip(dequant(GgmlType::Q8_0, q.row(0)))
        .map(|(a, b)| a.value * b.value)
        .sum();
    assert!((f64::from(s.unwrap_or(f32::NAN)) - exact).abs() <= 1e-5 * exact.abs().max(1e-6));
}

#[test]
fn public_typed_entry_points_agree_with_the_generic_one() {
    let mut rng = Rng::new(0x5EED_0004);
    let n = 512;
    let w = weights(&mut rng, GgmlType::Q4_1, n, 1);
    let (_, q) = acts(&mut rng, GgmlType::Q4_1, n, 1);
    let blocks = sluice_loader::quant::as_blocks(q.row(0)).unwrap_or(&[]);
    let typed = crate::cpu::dot::vec_dot_q4_1_q8_1(n, &w, blocks);
    assert_eq!(
        Ok(typed),
        vec_dot_with(Isa::current(), GgmlType::Q4_1, n, &w, q.row(0))
    );
    let wf = weights(&mut rng, GgmlType::F16, 100, 1);
    let (_, qf) = acts(&mut rng, GgmlType::F16, 100, 1);
    let typed = crate::cpu::dot::vec_dot_f16_f16(100, &wf, qf.row(0));
    assert_eq!(
        Ok(typed),
        vec_dot_with(Isa::current(), GgmlType::F16, 100, &wf, qf.row(0))
    );
}

#[test]
fn mismatched_lengths_are_errors() {
    let w = vec![0u8; 18];
    let a = vec![0u8; 34];
    assert!(vec_dot_with(Isa::scalar(), GgmlType::Q4_0, 32, &w, &a).is_ok());
    assert!(vec_dot_with(Isa::scalar(), GgmlType::Q4_0, 64, &w, &a).is_err());
    assert!(vec_dot_with(Isa::scalar(), GgmlType::Q4_0, 31, &w, &a).is_err());
    assert!(vec_dot_with(Isa::scalar(), GgmlType::Q8K, 256, &w, &a).is_err());
}

#[test]
fn strided_f16_rows_equal_one_dot_per_row_on_every_path() {
    let mut rng = Rng::new(0x5EED_0005);
    for n in [1, 31, 32, 64, 100, 130] {
        let y = weights(&mut rng, GgmlType::F16, n, 1);
        let stride = 2 * n + 6;
        for count in [0, 1, 5] {
            let rows = weights(&mut rng, GgmlType::F16, stride / 2, count.max(1));
            let rows = &rows[..(count * stride).saturating_sub(6)];
            let want: Vec<u32> = (0..count)
                .map(|j| {
                    let row = &rows[j * stride..j * stride + 2 * n];
                    crate::cpu::dot::float::f16_f16(row, &y).to_bits()
                })
                .collect();
            for isa in Isa::all_present() {
                let mut out = vec![f32::NAN; count];
                crate::cpu::dot::vec_dot_f16_f16_rows_with(isa, n, rows, stride, &y, &mut out);
                let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "n {n}, {count} rows, {}", isa.name());
            }
        }
    }
}

//! Multi-token dots: every output of a multi-token call equals the single-token dot of its row
//! pair bit for bit, for every type, group size and row length, on both paths.

use sluice_loader::GgmlType;

use super::gen::{acts, weights, WEIGHT_TYPES};
use super::rng::Rng;
use crate::cpu::dot::RowDot;
use crate::cpu::{vec_dot_multi_with, vec_dot_with, CpuError, Isa};

/// Activation rows per call: below, at and above the kernels' group and tile of 8.
const NS: [usize; 9] = [1, 2, 3, 4, 5, 7, 8, 9, 13];

/// Row lengths: one block, an odd block count, SmolLM2's 576 (Q8_K: 2 blocks), a long row.
fn lengths(ty: GgmlType) -> &'static [usize] {
    match ty.block_elems() {
        256 => &[256, 768, 2048],
        32 => &[32, 96, 576, 2048],
        _ => &[1, 33, 576],
    }
}

#[test]
fn every_output_equals_the_single_dot_on_both_paths() {
    let mut rng = Rng::new(0x5EED_0030);
    let paths: Vec<Isa> = Isa::all_present();
    for ty in WEIGHT_TYPES {
        for &n in lengths(ty) {
            for n_tok in NS {
                let w = weights(&mut rng, ty, n, 1);
                let (_, q) = acts(&mut rng, ty, n, n_tok);
                for &isa in &paths {
                    let mut out = vec![f32::NAN; n_tok];
                    let res = vec_dot_multi_with(isa, ty, n, &w, q.rows_bytes(0, n_tok), &mut out);
                    assert_eq!(res, Ok(()), "{ty} n={n} N={n_tok}");
                    for (k, v) in out.iter().enumerate() {
                        let single = vec_dot_with(isa, ty, n, &w, q.row(k)).map(f32::to_bits);
                        assert_eq!(
                            Ok(v.to_bits()),
                            single,
                            "{ty} n={n} N={n_tok} row {k} {}: multi {v} vs single (bits)",
                            isa.name()
                        );
                        let scalar = vec_dot_with(Isa::scalar(), ty, n, &w, q.row(k));
                        assert_eq!(Ok(v.to_bits()), scalar.map(f32::to_bits), "vs scalar");
                    }
                }
            }
        }
    }
}

#[test]
fn multi_lengths_are_checked() {
    let mut rng = Rng::new(0x5EED_0031);
    let w = weights(&mut rng, GgmlType::Q4_1, 64, 1);
    let (_, q) = acts(&mut rng, GgmlType::Q4_1, 64, 3);
    let mut out = [0.0f32; 3];
    let a = q.rows_bytes(0, 3);
    assert_eq!(
        vec_dot_multi_with(Isa::scalar(), GgmlType::Q4_1, 64, &w, a, &mut out),
        Ok(())
    );
    let short = &a[..a.len() - 1];
    assert!(matches!(
        vec_dot_multi_with(Isa::scalar(), GgmlType::Q4_1, 64, &w, short, &mut out),
        Err(CpuError::RowLength { .. })
    ));
    assert!(matches!(
        vec_dot_multi_with(Isa::scalar(), GgmlType::Q4_1, 64, &w, a, &mut out[..2]),
        Err(CpuError::RowLength { .. })
    ));
    assert!(matches!(
        vec_dot_multi_with(Isa::scalar(), GgmlType::Q8K, 256, &w, a, &mut out),
        Err(CpuError::NotAWeightType(_))
    ));
}

#[test]
fn tiles_of_many_rows_and_blocks_equal_the_single_dots() {
    // One tile call over 37 rows (the batch kernels' row groups of 16 and a ragged last one)
    // and rows of one and of three block chunks (32 blocks each), for 2..=9 tokens.
    let mut rng = Rng::new(0x5EED_0032);
    for ty in WEIGHT_TYPES {
        let kernel = RowDot::for_weight(ty).unwrap_or_else(|e| panic!("{ty}: {e}"));
        let n = if ty.block_elems() == 256 { 2560 } else { 2144 };
        for n_elems in [if ty.block_elems() == 32 { 576 } else { 512 }, n] {
            let rows = 37;
            let w = weights(&mut rng, ty, n_elems, rows);
            let rb = w.len() / rows;
            for n_tok in [2, 5, 8, 9] {
                let (_, q) = acts(&mut rng, ty, n_elems, n_tok);
                for isa in Isa::all_present() {
                    let mut store = vec![vec![f32::NAN; rows]; n_tok];
                    let mut outs: Vec<&mut [f32]> = store.iter_mut().map(|v| &mut v[..]).collect();
                    kernel.tile(isa, &w, q.rows_bytes(0, n_tok), &mut outs);
                    for (k, out) in store.iter().enumerate() {
                        for (r, v) in out.iter().enumerate() {
                            let single = vec_dot_with(
                                Isa::scalar(),
                                ty,
                                n_elems,
                                &w[r * rb..][..rb],
                                q.row(k),
                            );
                            assert_eq!(
                                Ok(v.to_bits()),
                                single.map(f32::to_bits),
                                "{ty} n={n_elems} T={n_tok} row {r} token {k} {}",
                                isa.name()
                            );
                        }
                    }
                }
            }
        }
    }
}

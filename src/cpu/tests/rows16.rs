//! The 16-row interleaved layout: products over rearranged matrices equal the file layout's on
//! the scalar path bit for bit, for every token count, row length and thread count; paths
//! without its kernels refuse it.

use sluice_loader::GgmlType;

use super::gen::{acts, weights};
use super::rng::Rng;
use crate::cpu::rows16::{self, Rows16Form, WeightLayout};
use crate::cpu::{
    matmul_pair_with, matmul_with, CpuError, Isa, QuantizedActs, ThreadPool, WeightView,
};

/// The weight types with an interleaved layout.
const TYPES: [GgmlType; 10] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

fn run(
    isa: Isa,
    w: &WeightView<'_>,
    q: &QuantizedActs,
    pool: &ThreadPool,
) -> Result<Vec<u32>, CpuError> {
    let mut out = vec![f32::NAN; q.rows() * w.n_rows];
    matmul_with(isa, w, q, &mut out, pool)?;
    Ok(out.iter().map(|v| v.to_bits()).collect())
}

fn interleaved<'a>(
    file: &WeightView<'_>,
    packed: &'a mut Vec<u8>,
    form: Rows16Form,
) -> WeightView<'a> {
    packed.clear();
    packed.extend_from_slice(file.bytes);
    let mut scratch = Vec::new();
    assert_eq!(
        rows16::repack(form, file.ty, file.n_rows, packed, &mut scratch),
        Ok(())
    );
    WeightView {
        layout: WeightLayout::Rows16(form),
        ..WeightView::file(file.ty, file.row_elems, file.n_rows, packed)
    }
}

/// The paths with interleaved kernels on this CPU (AVX2 for the 32-element types, AVX-512
/// VNNI for every type the layout takes).
fn rows16_paths() -> Vec<Isa> {
    Isa::all_present()
        .into_iter()
        .filter(|i| i.reads_rows16())
        .collect()
}

#[test]
fn interleaved_products_equal_the_scalar_file_layout() {
    let paths = rows16_paths();
    if paths.is_empty() {
        eprintln!("interleaved_products_equal_the_scalar_file_layout: skipped: this CPU lacks AVX2, the least path with interleaved kernels");
        return;
    }
    let pools = [ThreadPool::new(1), ThreadPool::new(2), ThreadPool::new(3)];
    let mut rng = Rng::new(0x5EED_0160);
    let mut packed = Vec::new();
    let mut checked = 0;
    for ty in TYPES {
        // One block, an odd block count, SmolLM2's rows, a long row (K-quants: blocks of 256,
        // one, three, and Qwen2.5's ffn_down row of 19), and enough rows that a one-token
        // product's shares are split into several items and stolen from.
        let shapes: &[(usize, usize)] = if ty.block_elems() == 256 {
            &[(256, 16), (768, 48), (4864, 32), (256, 560)]
        } else {
            &[(32, 16), (96, 48), (576, 192), (2048, 80), (64, 624)]
        };
        for &(row_elems, n_rows) in shapes {
            let bytes = weights(&mut rng, ty, row_elems, n_rows);
            let file = WeightView::file(ty, row_elems, n_rows, &bytes);
            let cases: Vec<_> = [1, 2, 3, 4, 5, 7, 8, 9, 13]
                .into_iter()
                .map(|tokens| {
                    let (_, q) = acts(&mut rng, ty, row_elems, tokens);
                    let reference = run(Isa::scalar(), &file, &q, &pools[0]);
                    (tokens, q, reference)
                })
                .collect();
            for &isa in &paths {
                let form = isa
                    .rows16_form()
                    .expect("a path that reads the layout has a form");
                let w = interleaved(&file, &mut packed, form);
                for (tokens, q, reference) in &cases {
                    let (tokens, q, reference) = (*tokens, q, reference.clone());
                    if !rows16::interleaves(isa, ty, n_rows) {
                        // The engine keeps such matrices in file layout; the path refuses them.
                        assert_eq!(
                            run(isa, &w, q, &pools[0]),
                            Err(CpuError::Layout {
                                ty,
                                n_rows,
                                isa: isa.name()
                            }),
                            "{ty} on {}",
                            isa.name()
                        );
                        continue;
                    }
                    checked += 1;
                    for pool in &pools {
                        assert_eq!(
                            run(isa, &w, q, pool),
                            reference,
                            "{ty} {n_rows}×{row_elems}, {tokens} tokens, {pool:?}, {}",
                            isa.name()
                        );
                    }
                    // The kernels of AVX-512 CPUs without GFNI (Q2_K, Q3_K take their fields
                    // out with shifts there); the same as `isa` where it has no GFNI.
                    assert_eq!(
                        run(isa.without_gfni(), &w, q, &pools[1]),
                        reference,
                        "{ty} {n_rows}×{row_elems}, {tokens} tokens, without GFNI"
                    );
                }
            }
        }
    }
    // AVX2 has kernels for the five 32-element types at least: 5 types × 4 shapes × 9 counts.
    assert!(
        checked >= 5 * 4 * 9,
        "only {checked} interleaved products checked"
    );
}

#[test]
fn avx2_reads_the_layout_for_the_32_element_types_only() {
    let Some(isa) = Isa::avx2() else {
        eprintln!(
            "avx2_reads_the_layout_for_the_32_element_types_only: skipped: no AVX2 on this CPU"
        );
        return;
    };
    for ty in TYPES {
        let reads = matches!(
            ty,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0
        );
        assert_eq!(rows16::interleaves(isa, ty, 32), reads, "{ty}");
        assert!(rows16::applies(ty, 32), "{ty}");
    }
    assert!(
        !rows16::interleaves(isa, GgmlType::Q4_1, 24),
        "not whole groups"
    );
    assert!(!rows16::interleaves(Isa::scalar(), GgmlType::Q4_1, 32));
}

#[test]
fn paired_products_take_the_layout_too() {
    let paths = rows16_paths();
    if paths.is_empty() {
        eprintln!("paired_products_take_the_layout_too: skipped: no AVX2 on this CPU");
        return;
    }
    for isa in paths {
        paired_on(isa);
    }
}

fn paired_on(isa: Isa) {
    let pool = ThreadPool::new(2);
    let mut rng = Rng::new(0x5EED_0161);
    let ty = GgmlType::Q4_1;
    let (a, b) = (
        weights(&mut rng, ty, 576, 96),
        weights(&mut rng, ty, 576, 96),
    );
    let (fa, fb) = (
        WeightView::file(ty, 576, 96, &a),
        WeightView::file(ty, 576, 96, &b),
    );
    let (mut pa, mut pb) = (Vec::new(), Vec::new());
    let form = isa
        .rows16_form()
        .expect("a path that reads the layout has a form");
    let (wa, wb) = (
        interleaved(&fa, &mut pa, form),
        interleaved(&fb, &mut pb, form),
    );
    let (_, q) = acts(&mut rng, ty, 576, 6);
    let (mut oa, mut ob) = (vec![0.0; 6 * 96], vec![0.0; 6 * 96]);
    let join = |_: usize, _: &mut [f32], _: &[f32]| {};
    assert_eq!(
        matmul_pair_with(isa, &wa, &wb, &q, &mut oa, &mut ob, &pool, join),
        Ok(())
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(Ok(bits(&oa)), run(Isa::scalar(), &fa, &q, &pool));
    assert_eq!(Ok(bits(&ob)), run(Isa::scalar(), &fb, &q, &pool));
}

#[test]
fn paths_without_the_kernels_refuse_the_layout() {
    let pool = ThreadPool::new(1);
    let mut rng = Rng::new(0x5EED_0162);
    let ty = GgmlType::Q4_1;
    let bytes = weights(&mut rng, ty, 64, 32);
    let file = WeightView::file(ty, 64, 32, &bytes);
    let mut packed = Vec::new();
    let w = interleaved(&file, &mut packed, Rows16Form::Halves);
    let (_, q) = acts(&mut rng, ty, 64, 2);
    let err = run(Isa::scalar(), &w, &q, &pool).unwrap_err();
    assert_eq!(
        err,
        CpuError::Layout {
            ty,
            n_rows: 32,
            isa: "scalar"
        }
    );
    assert!(
        err.to_string().contains("16-row interleaved layout"),
        "{err}"
    );
    // A row count that is not whole groups is refused on every path, never misread.
    let odd = WeightView {
        n_rows: 31,
        bytes: &w.bytes[..31 * bytes.len() / 32],
        ..w
    };
    for isa in Isa::all_present() {
        let mut out = vec![0.0; 2 * 31];
        assert!(matches!(
            matmul_with(isa, &odd, &q, &mut out, &pool),
            Err(CpuError::Layout { .. })
        ));
    }
    // A path never reads the other kernels' form (Q5_0's bytes differ between them).
    let ty = GgmlType::Q5_0;
    let bytes = weights(&mut rng, ty, 64, 32);
    let file = WeightView::file(ty, 64, 32, &bytes);
    let (_, q) = acts(&mut rng, ty, 64, 1);
    for isa in rows16_paths() {
        let other = match isa.rows16_form() {
            Some(Rows16Form::Halves) => Rows16Form::Wide,
            _ => Rows16Form::Halves,
        };
        let w = interleaved(&file, &mut packed, other);
        assert_eq!(
            run(isa, &w, &q, &pool),
            Err(CpuError::Layout {
                ty,
                n_rows: 32,
                isa: isa.name()
            }),
            "{} given the {other:?} form",
            isa.name()
        );
    }
}

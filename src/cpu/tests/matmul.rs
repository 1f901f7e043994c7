//! Matmul: results independent of the thread count, of the batch size and of the kernel path,
//! each element equal to the single dot; malformed arguments are errors.

use sluice_loader::GgmlType;

use super::gen::{acts, weights, WEIGHT_TYPES};
use super::rng::Rng;
use crate::cpu::{
    matmul_many_with, matmul_pair_with, matmul_with, quantize_acts_with, vec_dot_with, CpuError,
    Isa, QuantizedActs, ThreadPool, WeightView,
};

const ROW_ELEMS: usize = 512;
const N_ROWS: usize = 37; // not a multiple of the chunk size

fn run(isa: Isa, w: &WeightView<'_>, q: &QuantizedActs, pool: &ThreadPool) -> Vec<u32> {
    let mut out = vec![f32::NAN; q.rows() * w.n_rows];
    assert_eq!(matmul_with(isa, w, q, &mut out, pool), Ok(()));
    out.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn results_do_not_depend_on_threads_batch_or_path() {
    let pools = [ThreadPool::new(1), ThreadPool::new(2), ThreadPool::new(3)];
    let mut rng = Rng::new(0x5EED_0020);
    let paths: Vec<Isa> = Isa::all_present();
    for ty in WEIGHT_TYPES {
        let bytes = weights(&mut rng, ty, ROW_ELEMS, N_ROWS);
        let w = WeightView::file(ty, ROW_ELEMS, N_ROWS, &bytes);
        for tokens in [5, 19, 33] {
            let (x, q) = acts(&mut rng, ty, ROW_ELEMS, tokens);
            let reference = run(Isa::scalar(), &w, &q, &pools[0]);
            for &isa in &paths {
                for pool in &pools {
                    assert_eq!(
                        run(isa, &w, &q, pool),
                        reference,
                        "{ty} T={tokens} {} {pool:?}",
                        isa.name()
                    );
                }
            }
            // Token 3 alone gives the batch's column 3, and each element is the plain dot.
            let mut one = QuantizedActs::for_shape(1, ROW_ELEMS);
            let row3 = &x[3 * ROW_ELEMS..4 * ROW_ELEMS];
            assert_eq!(
                quantize_acts_with(Isa::scalar(), ty, row3, 1, &mut one),
                Ok(())
            );
            assert_eq!(one.row(0), q.row(3));
            let single = run(Isa::scalar(), &w, &one, &pools[1]);
            for &isa in &paths {
                assert_eq!(
                    run(isa, &w, &one, &pools[1])[..],
                    reference[3 * N_ROWS..4 * N_ROWS],
                    "{ty}: token 3 alone vs in a batch, {}",
                    isa.name()
                );
            }
            let rb = ty.row_bytes(ROW_ELEMS as u64).unwrap_or(0) as usize;
            for (r, &bits) in single.iter().enumerate() {
                let dot = vec_dot_with(
                    Isa::scalar(),
                    ty,
                    ROW_ELEMS,
                    &bytes[r * rb..(r + 1) * rb],
                    q.row(3),
                );
                assert_eq!(dot.map(f32::to_bits), Ok(bits), "{ty} row {r}");
            }
        }
    }
}

#[test]
fn malformed_arguments_are_errors() {
    let pool = ThreadPool::new(2);
    let mut rng = Rng::new(0x5EED_0021);
    let bytes = weights(&mut rng, GgmlType::Q4_1, 64, 4);
    let w = WeightView::file(GgmlType::Q4_1, 64, 4, &bytes);
    let (_, q) = acts(&mut rng, GgmlType::Q4_1, 64, 2);
    let (_, wrong) = acts(&mut rng, GgmlType::Q8_0, 64, 2);
    let mut out = vec![0.0; 8];
    assert_eq!(matmul_with(Isa::scalar(), &w, &q, &mut out, &pool), Ok(()));
    assert!(matches!(
        matmul_with(Isa::scalar(), &w, &wrong, &mut out, &pool),
        Err(CpuError::ActsMismatch { .. })
    ));
    assert!(matches!(
        matmul_with(Isa::scalar(), &w, &q, &mut out[..7], &pool),
        Err(CpuError::OutputSize { .. })
    ));
    let short = WeightView {
        bytes: &bytes[..bytes.len() - 1],
        ..w
    };
    assert!(matches!(
        matmul_with(Isa::scalar(), &short, &q, &mut out, &pool),
        Err(CpuError::WeightSize { .. })
    ));
    let act_only = WeightView {
        ty: GgmlType::Q8K,
        ..w
    };
    assert!(matches!(
        matmul_with(Isa::scalar(), &act_only, &q, &mut out, &pool),
        Err(CpuError::NotAWeightType(_))
    ));

    let mut small = QuantizedActs::with_capacity(10);
    let x = vec![1.0f32; 128];
    let err = quantize_acts_with(Isa::scalar(), GgmlType::Q4_1, &x, 2, &mut small);
    assert!(matches!(
        err,
        Err(CpuError::ActsCapacity {
            needed: 144,
            capacity: 10
        })
    ));
    let err = quantize_acts_with(Isa::scalar(), GgmlType::Q4K, &x, 2, &mut small);
    assert!(matches!(err, Err(CpuError::ActsShape { .. })));
}

#[test]
fn empty_shapes_are_fine() {
    let pool = ThreadPool::new(2);
    let w = WeightView::file(GgmlType::Q8_0, 32, 0, &[]);
    let mut rng = Rng::new(1);
    let (_, q) = acts(&mut rng, GgmlType::Q8_0, 32, 3);
    assert_eq!(matmul_with(Isa::scalar(), &w, &q, &mut [], &pool), Ok(()));
}

#[test]
fn grouped_products_equal_separate_ones() {
    let pools = [ThreadPool::new(1), ThreadPool::new(2), ThreadPool::new(3)];
    let mut rng = Rng::new(0x5EED_0022);
    let isa = Isa::best();
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4K] {
        // Row counts below, at and well above a work item's chunk, and unequal.
        let shapes = [300usize, 37, 64];
        let bytes: Vec<Vec<u8>> = shapes
            .iter()
            .map(|&n| weights(&mut rng, ty, ROW_ELEMS, n))
            .collect();
        let ws: Vec<WeightView<'_>> = shapes
            .iter()
            .zip(&bytes)
            .map(|(&n_rows, b)| WeightView::file(ty, ROW_ELEMS, n_rows, b))
            .collect();
        for tokens in [1, 2, 9] {
            let (_, q) = acts(&mut rng, ty, ROW_ELEMS, tokens);
            let separate: Vec<Vec<u32>> = ws.iter().map(|w| run(isa, w, &q, &pools[0])).collect();
            for pool in &pools {
                let mut o: Vec<Vec<f32>> =
                    shapes.iter().map(|&n| vec![f32::NAN; n * tokens]).collect();
                let [a, b, c] = &mut o[..] else {
                    unreachable!()
                };
                let got = matmul_many_with(isa, [&ws[0], &ws[1], &ws[2]], &q, [a, b, c], pool);
                assert_eq!(got, Ok(()));
                for (m, out) in o.iter().enumerate() {
                    let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(bits, separate[m], "{ty} T={tokens} matrix {m} {pool:?}");
                }
            }
            // The pair: same rows; `join` sees matching chunks of both outputs.
            let wb = WeightView {
                bytes: &bytes[0],
                ..ws[0]
            };
            let other = weights(&mut rng, ty, ROW_ELEMS, 300);
            let wa = WeightView {
                bytes: &other,
                ..ws[0]
            };
            let (ra, rb) = (run(isa, &wa, &q, &pools[0]), run(isa, &wb, &q, &pools[0]));
            for pool in &pools {
                let (mut oa, mut ob) = (vec![f32::NAN; 300 * tokens], vec![f32::NAN; 300 * tokens]);
                let seen = std::sync::atomic::AtomicUsize::new(0);
                let got =
                    matmul_pair_with(isa, &wa, &wb, &q, &mut oa, &mut ob, pool, |row0, a, b| {
                        assert_eq!(a.len(), b.len());
                        assert!(row0 + a.len() <= 300);
                        seen.fetch_add(a.len(), std::sync::atomic::Ordering::Relaxed);
                        for (x, y) in a.iter_mut().zip(b) {
                            *x -= y; // a − b: checks the chunks line up
                        }
                    });
                assert_eq!(got, Ok(()));
                assert_eq!(
                    seen.into_inner(),
                    300 * tokens,
                    "join sees every element once"
                );
                for i in 0..300 * tokens {
                    let want = f32::from_bits(ra[i]) - f32::from_bits(rb[i]);
                    assert_eq!(
                        oa[i].to_bits(),
                        want.to_bits(),
                        "{ty} T={tokens} element {i}"
                    );
                    assert_eq!(ob[i].to_bits(), rb[i]);
                }
            }
            let short = WeightView {
                n_rows: 37,
                bytes: &bytes[1],
                ..ws[0]
            };
            let (mut oa, mut ob) = (vec![0.0; 300 * tokens], vec![0.0; 37 * tokens]);
            assert!(matches!(
                matmul_pair_with(
                    isa,
                    &wa,
                    &short,
                    &q,
                    &mut oa,
                    &mut ob,
                    &pools[1],
                    |_, _, _| {}
                ),
                Err(CpuError::PairShape {
                    a_rows: 300,
                    b_rows: 37
                })
            ));
        }
    }
}

/// Every small shape on every tier equals the scalar path bit for bit: row counts that leave
/// odd rows and partial row pairs, token counts that leave every group remainder, and rows of
/// an odd number of blocks.
#[test]
fn every_tier_matches_scalar_on_ragged_shapes() {
    let pool = ThreadPool::new(2);
    let mut rng = Rng::new(0x5EED_0021);
    for ty in WEIGHT_TYPES {
        let row_elems = if ty.block_elems() == 256 { 768 } else { 96 };
        for n_rows in 1..=9 {
            let bytes = weights(&mut rng, ty, row_elems, n_rows);
            let w = WeightView::file(ty, row_elems, n_rows, &bytes);
            for tokens in 1..=9 {
                let (_, q) = acts(&mut rng, ty, row_elems, tokens);
                let reference = run(Isa::scalar(), &w, &q, &pool);
                for isa in Isa::all_present() {
                    assert_eq!(
                        run(isa, &w, &q, &pool),
                        reference,
                        "{ty} rows={n_rows} T={tokens} {}",
                        isa.name()
                    );
                }
            }
        }
    }
}

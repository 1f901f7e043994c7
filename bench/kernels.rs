//! CPU kernel throughput: matrix × one token for every weight type, scalar vs AVX2, 1 vs 2
//! threads, reported as weight bytes per second; one SmolLM2-135M-shaped layer (decode); and
//! prefill-shaped matrices × 128 tokens, reported as tokens per second.
//!
//! `cargo bench --bench kernels -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice::cpu::synth::{self, weights, Rng, WEIGHT_TYPES};
use sluice::cpu::{matmul_with, quantize_acts_with, Isa, QuantizedActs, ThreadPool, WeightView};
use sluice_loader::GgmlType;

/// Rows and row length of the large matrix (4096 × 4096, like a 7B attention projection).
const BIG: usize = 4096;

/// Quantised activations for `tokens` random rows.
fn acts(rng: &mut Rng, isa: Isa, ty: GgmlType, row_elems: usize, tokens: usize) -> QuantizedActs {
    synth::acts(rng, isa, ty, row_elems, tokens).unwrap_or_else(|e| panic!("bench setup: {e}"))
}

const TYPES: [GgmlType; 14] = WEIGHT_TYPES;

/// Paths benchmarked: scalar always, AVX2 where the CPU has it.
fn paths() -> Vec<Isa> {
    [Some(Isa::scalar()), Isa::avx2()]
        .into_iter()
        .flatten()
        .collect()
}

fn matvec_4096(c: &mut Criterion) {
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    let mut rng = Rng::new(7);
    for ty in TYPES {
        let bytes = weights(&mut rng, ty, BIG, BIG);
        let w = WeightView {
            ty,
            row_elems: BIG,
            n_rows: BIG,
            bytes: &bytes,
        };
        let mut group = c.benchmark_group(format!("matvec_4096/{ty}"));
        group
            .throughput(Throughput::Bytes(bytes.len() as u64))
            .sample_size(10);
        for isa in paths() {
            let q = acts(&mut rng, isa, ty, BIG, 1);
            let mut out = vec![0.0f32; BIG];
            for pool in &pools {
                let id = BenchmarkId::new(isa.name(), format!("{}t", pool.n_threads()));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        matmul_with(isa, &w, black_box(&q), &mut out, pool)
                            .map(|()| black_box(out[0]))
                    })
                });
            }
        }
        group.finish();
    }
}

/// One SmolLM2-135M decoder layer's matmuls for one token (weights in L2/L3: measures the
/// per-call overhead of quantising activations and waking the pool as well as the kernels).
fn smollm2_layer(c: &mut Criterion) {
    let (embd, ff, kv) = (576, 1536, 192);
    let shapes = [
        (embd, embd),
        (embd, kv),
        (embd, kv),
        (embd, embd),
        (embd, ff),
        (embd, ff),
        (ff, embd),
    ];
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    let mut rng = Rng::new(11);
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0] {
        let mats: Vec<(usize, usize, Vec<u8>)> = shapes
            .iter()
            .map(|&(k, n)| (k, n, weights(&mut rng, ty, k, n)))
            .collect();
        let total: usize = mats.iter().map(|m| m.2.len()).sum();
        let x: Vec<f32> = (0..ff).map(|_| rng.float()).collect();
        let mut group = c.benchmark_group(format!("smollm2_layer/{ty}"));
        group.throughput(Throughput::Bytes(total as u64));
        for isa in paths() {
            for pool in &pools {
                let mut q = QuantizedActs::for_shape(1, ff);
                let mut out = vec![0.0f32; ff];
                let id = BenchmarkId::new(isa.name(), format!("{}t", pool.n_threads()));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        for (k, n, bytes) in &mats {
                            let w = WeightView {
                                ty,
                                row_elems: *k,
                                n_rows: *n,
                                bytes,
                            };
                            let run = quantize_acts_with(isa, ty, &x[..*k], 1, &mut q)
                                .and_then(|()| matmul_with(isa, &w, &q, &mut out[..*n], pool));
                            black_box(run.map(|()| out[0]).ok());
                        }
                    })
                });
            }
        }
        group.finish();
    }
}

/// Tokens in the prefill-shaped case (a 128-token prompt as one batch).
const PREFILL_TOKENS: usize = 128;

/// Prefill: a whole prompt through one matrix (SmolLM2-135M's FFN up, Q4_1; Qwen2.5-0.5B's FFN
/// up, Q5_0), on the AVX2 path, 1 and 2 threads; throughput in tokens.
fn prefill(c: &mut Criterion) {
    let Some(isa) = Isa::avx2() else { return };
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    let mut rng = Rng::new(13);
    for (ty, k, n) in [(GgmlType::Q4_1, 576, 1536), (GgmlType::Q5_0, 896, 4864)] {
        let bytes = weights(&mut rng, ty, k, n);
        let w = WeightView {
            ty,
            row_elems: k,
            n_rows: n,
            bytes: &bytes,
        };
        let q = acts(&mut rng, isa, ty, k, PREFILL_TOKENS);
        let mut out = vec![0.0f32; PREFILL_TOKENS * n];
        let mut group = c.benchmark_group(format!("prefill_{k}x{n}/{ty}"));
        group
            .throughput(Throughput::Elements(PREFILL_TOKENS as u64))
            .sample_size(10);
        for pool in &pools {
            let id = BenchmarkId::new(isa.name(), format!("{}t", pool.n_threads()));
            group.bench_function(id, |b| {
                b.iter(|| {
                    matmul_with(isa, &w, black_box(&q), &mut out, pool).map(|()| black_box(out[0]))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, matvec_4096, smollm2_layer, prefill);
criterion_main!(benches);

//! CPU kernel throughput (`src/cpu`): matrix × one token for every weight type, scalar vs AVX2,
//! 1 vs 2 threads, reported as weight bytes per second; one SmolLM2-135M-shaped layer's matmuls
//! (decode); prefill-shaped matrices × 128 tokens, reported as tokens per second; activation
//! quantisation into each dot format, in f32 input bytes per second; and the thread pool's
//! dispatch of an empty job, in jobs per second.
//!
//! `cargo bench --bench kernels` (about 4 minutes); one group: `cargo bench --bench kernels --
//! quantize_acts`

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use sluice::cpu::synth::{self, weights, Rng, WEIGHT_TYPES};
use sluice::cpu::{
    matmul_with, quantize_acts_with, vec_dot_type, Isa, QuantizedActs, ThreadPool, WeightView,
};
use sluice_loader::GgmlType;

/// Rows and row length of the large matrix (4096 × 4096, like a 7B attention projection).
const BIG: usize = 4096;

/// Quantised activations for `tokens` random rows.
fn acts(rng: &mut Rng, isa: Isa, ty: GgmlType, row_elems: usize, tokens: usize) -> QuantizedActs {
    synth::acts(rng, isa, ty, row_elems, tokens).unwrap_or_else(|e| panic!("bench setup: {e}"))
}

const TYPES: [GgmlType; 14] = WEIGHT_TYPES;

/// Samples and measurement time of a group, with half a second of warm-up: short enough that
/// `cargo bench --bench kernels` takes about 4 minutes on a 2-core machine.
fn timing(group: &mut BenchmarkGroup<'_, WallTime>, samples: usize, measure_s: u64) {
    group
        .sample_size(samples)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(measure_s));
}

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
        let w = WeightView::file(ty, BIG, BIG, &bytes);
        let mut group = c.benchmark_group(format!("matvec_4096/{ty}"));
        timing(&mut group, 10, 2);
        // The scalar F16/BF16/F32 paths take 60-120 ms an iteration: the same count per sample.
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
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
        timing(&mut group, 20, 2);
        group.throughput(Throughput::Bytes(total as u64));
        for isa in paths() {
            for pool in &pools {
                let mut q = QuantizedActs::for_shape(1, ff);
                let mut out = vec![0.0f32; ff];
                let id = BenchmarkId::new(isa.name(), format!("{}t", pool.n_threads()));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        for (k, n, bytes) in &mats {
                            let w = WeightView::file(ty, *k, *n, bytes);
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
        let w = WeightView::file(ty, k, n, &bytes);
        let q = acts(&mut rng, isa, ty, k, PREFILL_TOKENS);
        let mut out = vec![0.0f32; PREFILL_TOKENS * n];
        let mut group = c.benchmark_group(format!("prefill_{k}x{n}/{ty}"));
        timing(&mut group, 10, 3);
        group.throughput(Throughput::Elements(PREFILL_TOKENS as u64));
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

/// Activation shapes quantised: one decode token of Qwen2.5-0.5B's FFN width (the down
/// projection's input), and a 128-token prompt of SmolLM2-135M's FFN width. Both are whole
/// Q8_K blocks (256) as well as Q8_0/Q8_1 blocks (32).
const ACT_SHAPES: [(usize, usize); 2] = [(1, 4864), (PREFILL_TOKENS, 1536)];

/// One weight type per activation format the dot kernels take: Q8_0 (Q4_0, Q5_0, Q8_0,
/// IQ4_NL weights), Q8_1 (Q4_1, Q5_1), Q8_K (the K-quants) and F16 (F16 weights).
const ACT_FORMATS: [GgmlType; 4] = [GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::Q4K, GgmlType::F16];

/// `quantize_acts_with`: f32 activations into each dot format, scalar vs AVX2; throughput in
/// bytes of f32 input.
fn quantize_acts(c: &mut Criterion) {
    let mut rng = Rng::new(17);
    for (tokens, row_elems) in ACT_SHAPES {
        let x: Vec<f32> = (0..tokens * row_elems).map(|_| rng.float()).collect();
        let mut q = QuantizedActs::for_shape(tokens, row_elems);
        let mut group = c.benchmark_group(format!("quantize_acts_{tokens}x{row_elems}"));
        timing(&mut group, 30, 1);
        group.throughput(Throughput::Bytes(std::mem::size_of_val(&x[..]) as u64));
        for weight_ty in ACT_FORMATS {
            let act_ty = vec_dot_type(weight_ty).expect("a weight type");
            for isa in paths() {
                let id = BenchmarkId::new(act_ty.to_string(), isa.name());
                group.bench_function(id, |b| {
                    b.iter(|| {
                        quantize_acts_with(isa, weight_ty, black_box(&x), tokens, &mut q)
                            .map(|()| black_box(q.row(0)[0]))
                    })
                });
            }
        }
        group.finish();
    }
}

/// `ThreadPool::run` of an empty job on 2 threads: the fixed cost each matmul, fused SwiGLU
/// and attention call pays to hand work to the pool and wait for it, with the workers still
/// spinning from the previous call as they are between a layer's products; throughput in jobs.
/// (A pool of 1 runs the job inline: nothing to measure.)
fn pool_dispatch(c: &mut Criterion) {
    let threads = 2;
    let pool = ThreadPool::new(threads);
    let mut group = c.benchmark_group("pool_run_empty");
    timing(&mut group, 50, 1);
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{threads}t"), |b| {
        b.iter(|| {
            pool.run(threads, |task| {
                black_box(task);
            })
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    matvec_4096,
    smollm2_layer,
    prefill,
    quantize_acts,
    pool_dispatch
);
criterion_main!(benches);

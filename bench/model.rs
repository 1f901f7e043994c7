//! Model-graph throughput (`src/model`) on SmolLM2-135M and Qwen2.5-0.5B shapes: the per-row
//! ops (RMSNorm, RoPE, SwiGLU, softmax, the exp they use) in bytes of f32 input per second;
//! attention for one decode token over 512 and 2048 cached positions in bytes of K and V per
//! second, and for a 128-token prompt in tokens per second; and one whole transformer block for
//! one decode token (norms, projections, RoPE, KV store, attention, FFN) in tokens per second.
//!
//! `cargo bench --bench model` (about 1.5 minutes); one group: `cargo bench --bench model -- attend`

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use sluice::cpu::synth::{weights, Rng};
use sluice::cpu::{Isa, ThreadPool, WeightLayout};
use sluice::model::attention::{attend_batch, padded_n_kv, AttnScratch, AttnShape};
use sluice::model::exp::exp_ggml;
use sluice::model::forward::{embed, forward_layer, Config, RunState};
use sluice::model::kv_cache::KvCache;
use sluice::model::ops::{rms_norm, softmax_scaled, swiglu, RopePairs, RopeTable};
use sluice::model::segment::Segment;
use sluice::model::weights::{LayerWeights, Tensor};
use sluice_loader::GgmlType;

/// The hyper-parameters of the two models the project tracks, and the weight type their
/// GGUF files mostly use for the layer matrices.
struct Model {
    name: &'static str,
    n_embd: usize,
    n_ff: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    rope_freq_base: f32,
    rope_pairs: RopePairs,
    rms_eps: f32,
    /// Qwen2 has q/k/v biases.
    qkv_bias: bool,
    weight_ty: GgmlType,
}

const SMOLLM2: Model = Model {
    name: "smollm2-135m",
    n_embd: 576,
    n_ff: 1536,
    n_head: 9,
    n_head_kv: 3,
    head_dim: 64,
    rope_freq_base: 100_000.0,
    rope_pairs: RopePairs::Adjacent,
    rms_eps: 1e-5,
    qkv_bias: false,
    weight_ty: GgmlType::Q4_1,
};

const QWEN25: Model = Model {
    name: "qwen2.5-0.5b",
    n_embd: 896,
    n_ff: 4864,
    n_head: 14,
    n_head_kv: 2,
    head_dim: 64,
    rope_freq_base: 1_000_000.0,
    rope_pairs: RopePairs::HalfSplit,
    rms_eps: 1e-6,
    qkv_bias: true,
    weight_ty: GgmlType::Q5_0,
};

const MODELS: [&Model; 2] = [&SMOLLM2, &QWEN25];

/// Cached positions a decode token attends over: a short and a long context.
const KV_LENS: [usize; 2] = [512, 2048];

/// Bytes of one cached key or value element (f16).
const KV_ELEM_BYTES: usize = 2;

/// Tokens of the prompt in the prefill attention case.
const PROMPT_TOKENS: usize = 128;

impl Model {
    fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    fn shape(&self) -> AttnShape {
        AttnShape {
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim: self.head_dim,
        }
    }

    fn config(&self) -> Config {
        Config {
            n_layer: 1,
            n_embd: self.n_embd,
            n_ff: self.n_ff,
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim: self.head_dim,
            n_rot: self.head_dim,
            rms_eps: self.rms_eps,
            rope_freq_base: self.rope_freq_base,
            rope_pairs: self.rope_pairs,
            interleave_qk: false,
            n_vocab: 1,
        }
    }
}

fn floats(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.float()).collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A one-layer cache of `n_ctx` positions, every one filled with random keys and values.
fn filled_cache(rng: &mut Rng, kv_dim: usize, n_ctx: usize) -> KvCache {
    let mut cache = KvCache::new(1, kv_dim, n_ctx);
    for pos in 0..n_ctx {
        let (k, v) = (floats(rng, kv_dim), floats(rng, kv_dim));
        cache.store(0, pos, &k, &v);
    }
    cache
}

/// Short runs for the sub-microsecond ops: they converge quickly.
fn quick(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
}

/// Longer iterations (attention, a layer): fewer samples, a bit more time.
fn slow(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

/// RMSNorm of one token's residual (n_embd).
fn norm(c: &mut Criterion) {
    let mut rng = Rng::new(21);
    let mut group = c.benchmark_group("rms_norm");
    quick(&mut group);
    for m in MODELS {
        let (x, w) = (floats(&mut rng, m.n_embd), floats(&mut rng, m.n_embd));
        let mut out = vec![0.0f32; m.n_embd];
        group.throughput(Throughput::Bytes(std::mem::size_of_val(&x[..]) as u64));
        group.bench_function(BenchmarkId::new(m.name, m.n_embd), |b| {
            b.iter(|| {
                rms_norm(black_box(&x), &w, m.rms_eps, &mut out);
                black_box(out[0])
            })
        });
    }
    group.finish();
}

/// RoPE for one token as the forward pass runs it: the position's cos/sin table, then q and k.
fn rope(c: &mut Criterion) {
    let mut rng = Rng::new(22);
    let mut group = c.benchmark_group("rope");
    quick(&mut group);
    for m in MODELS {
        let mut table = RopeTable::new(m.head_dim, m.rope_freq_base, Vec::new());
        let (mut q, mut k) = (floats(&mut rng, m.q_dim()), floats(&mut rng, m.kv_dim()));
        let bytes = std::mem::size_of_val(&q[..]) + std::mem::size_of_val(&k[..]);
        group.throughput(Throughput::Bytes(bytes as u64));
        let mut pos = 0usize;
        group.bench_function(m.name, |b| {
            b.iter(|| {
                pos = (pos + 1) % 4096;
                table.set_position(black_box(pos));
                table.apply(&mut q, m.head_dim, m.rope_pairs);
                table.apply(&mut k, m.head_dim, m.rope_pairs);
                black_box(q[0] + k[0])
            })
        });
    }
    group.finish();
}

/// SwiGLU of one token's FFN activations (n_ff); the input is restored from a copy each time
/// so the values stay in range (the copy is counted).
fn swiglu_ffn(c: &mut Criterion) {
    let mut rng = Rng::new(23);
    let mut group = c.benchmark_group("swiglu");
    quick(&mut group);
    for m in MODELS {
        let gate0: Vec<f32> = floats(&mut rng, m.n_ff).iter().map(|v| 4.0 * v).collect();
        let up = floats(&mut rng, m.n_ff);
        let mut gate = gate0.clone();
        group.throughput(Throughput::Bytes(2 * std::mem::size_of_val(&up[..]) as u64));
        group.bench_function(BenchmarkId::new(m.name, m.n_ff), |b| {
            b.iter(|| {
                gate.copy_from_slice(&gate0);
                swiglu(&mut gate, black_box(&up), m.n_ff);
                black_box(gate[0])
            })
        });
    }
    group.finish();
}

/// Softmax of one head's attention scores over the KV lengths; and `exp_ggml` alone over
/// 4096 values (the exponential inside softmax and SiLU).
fn softmax_exp(c: &mut Criterion) {
    let mut rng = Rng::new(24);
    let mut group = c.benchmark_group("softmax");
    quick(&mut group);
    for n in KV_LENS {
        let scores0: Vec<f32> = floats(&mut rng, n).iter().map(|v| 8.0 * v).collect();
        let mut scores = scores0.clone();
        group.throughput(Throughput::Bytes(std::mem::size_of_val(&scores[..]) as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                scores.copy_from_slice(&scores0);
                softmax_scaled(&mut scores, 0.125, n);
                black_box(scores[0])
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("exp_ggml");
    quick(&mut group);
    let x: Vec<f32> = floats(&mut rng, 4096).iter().map(|v| 20.0 * v).collect();
    let mut out = vec![0.0f32; x.len()];
    group.throughput(Throughput::Bytes(std::mem::size_of_val(&x[..]) as u64));
    // Inside an FMA frame, as softmax and SwiGLU call it (outside one, `mul_add` is a libm
    // call and the figure would be some twenty times lower).
    let isa = Isa::current();
    group.bench_function("4096", |b| {
        b.iter(|| {
            isa.with_fma(|| {
                for (o, &v) in out.iter_mut().zip(black_box(&x)) {
                    *o = exp_ggml(v);
                }
            });
            black_box(out[0])
        })
    });
    group.finish();
}

/// One pool thread's scratch each, as `RunState` holds them.
fn scratch(m: &Model, n_ctx: usize, threads: usize) -> Vec<Mutex<AttnScratch>> {
    (0..threads)
        .map(|_| Mutex::new(AttnScratch::new(m.head_dim, n_ctx)))
        .collect()
}

/// Attention for one decode token at the end of a cache of 512 and 2048 positions, through the
/// pool as the forward pass calls it (heads split across threads). Throughput: the bytes of
/// keys and values the token reads (each kv head's once).
fn attend_decode(c: &mut Criterion) {
    let mut rng = Rng::new(25);
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    for m in MODELS {
        let mut group = c.benchmark_group(format!("attend_decode/{}", m.name));
        slow(&mut group);
        for n_kv in KV_LENS {
            let cache = filled_cache(&mut rng, m.kv_dim(), n_kv);
            let q = floats(&mut rng, m.q_dim());
            let mut out = vec![0.0f32; m.q_dim()];
            let kv_bytes = 2 * n_kv * m.kv_dim() * KV_ELEM_BYTES;
            group.throughput(Throughput::Bytes(kv_bytes as u64));
            for pool in &pools {
                let scratch = scratch(m, n_kv, pool.n_threads());
                let id = BenchmarkId::new(format!("{n_kv}"), format!("{}t", pool.n_threads()));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        let (pos, n_tok) = (n_kv - 1, 1);
                        attend_batch(
                            &cache,
                            0,
                            m.shape(),
                            black_box(&q),
                            pos,
                            n_tok,
                            &scratch,
                            &mut out,
                            pool,
                        );
                        black_box(out[0])
                    })
                });
            }
        }
        group.finish();
    }
}

/// Attention of a 128-token prompt on an empty cache (the batched, GEMM-ordered dot);
/// throughput in prompt tokens.
fn attend_prompt(c: &mut Criterion) {
    let mut rng = Rng::new(26);
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    let n_kv = padded_n_kv(PROMPT_TOKENS, PROMPT_TOKENS);
    let mut group = c.benchmark_group(format!("attend_prompt_{PROMPT_TOKENS}"));
    slow(&mut group);
    group.throughput(Throughput::Elements(PROMPT_TOKENS as u64));
    for m in MODELS {
        let cache = filled_cache(&mut rng, m.kv_dim(), n_kv);
        let q = floats(&mut rng, PROMPT_TOKENS * m.q_dim());
        let mut out = vec![0.0f32; PROMPT_TOKENS * m.q_dim()];
        for pool in &pools {
            let scratch = scratch(m, n_kv, pool.n_threads());
            let id = BenchmarkId::new(m.name, format!("{}t", pool.n_threads()));
            group.bench_function(id, |b| {
                b.iter(|| {
                    attend_batch(
                        &cache,
                        0,
                        m.shape(),
                        black_box(&q),
                        0,
                        PROMPT_TOKENS,
                        &scratch,
                        &mut out,
                        pool,
                    );
                    black_box(out[0])
                })
            });
        }
    }
    group.finish();
}

/// The bytes of one transformer block's tensors, random, in the model's weight type (norms
/// and biases in f32).
struct LayerBytes {
    attn_norm: Vec<u8>,
    ffn_norm: Vec<u8>,
    q: Vec<u8>,
    k: Vec<u8>,
    v: Vec<u8>,
    o: Vec<u8>,
    gate: Vec<u8>,
    up: Vec<u8>,
    down: Vec<u8>,
    q_bias: Vec<u8>,
    k_bias: Vec<u8>,
    v_bias: Vec<u8>,
}

impl LayerBytes {
    fn new(rng: &mut Rng, m: &Model) -> LayerBytes {
        let ty = m.weight_ty;
        let (e, qd, kvd, ff) = (m.n_embd, m.q_dim(), m.kv_dim(), m.n_ff);
        // Norm weights near 1, as trained models have them.
        let norm = |rng: &mut Rng| {
            let w: Vec<f32> = (0..e).map(|_| 1.0 + 0.1 * rng.float()).collect();
            f32_bytes(&w)
        };
        LayerBytes {
            attn_norm: norm(rng),
            ffn_norm: norm(rng),
            q: weights(rng, ty, e, qd),
            k: weights(rng, ty, e, kvd),
            v: weights(rng, ty, e, kvd),
            o: weights(rng, ty, qd, e),
            gate: weights(rng, ty, e, ff),
            up: weights(rng, ty, e, ff),
            down: weights(rng, ty, ff, e),
            q_bias: f32_bytes(&floats(rng, qd)),
            k_bias: f32_bytes(&floats(rng, kvd)),
            v_bias: f32_bytes(&floats(rng, kvd)),
        }
    }

    /// Bytes of the matrices (what a decode token streams through the kernels).
    fn matrix_bytes(&self) -> usize {
        [
            &self.q, &self.k, &self.v, &self.o, &self.gate, &self.up, &self.down,
        ]
        .iter()
        .map(|b| b.len())
        .sum()
    }

    fn view<'a>(&'a self, m: &Model) -> LayerWeights<'a> {
        let (e, qd, kvd, ff) = (m.n_embd, m.q_dim(), m.kv_dim(), m.n_ff);
        let ty = m.weight_ty;
        let t = |ty, row_elems, n_rows, bytes: &'a [u8]| Tensor {
            ty,
            row_elems,
            n_rows,
            bytes,
            layout: WeightLayout::File,
        };
        let bias = |n, bytes| m.qkv_bias.then(|| t(GgmlType::F32, n, 1, bytes));
        LayerWeights {
            attn_norm: t(GgmlType::F32, e, 1, &self.attn_norm),
            q: t(ty, e, qd, &self.q),
            k: t(ty, e, kvd, &self.k),
            v: t(ty, e, kvd, &self.v),
            q_bias: bias(qd, &self.q_bias),
            k_bias: bias(kvd, &self.k_bias),
            v_bias: bias(kvd, &self.v_bias),
            o: t(ty, qd, e, &self.o),
            ffn_norm: t(GgmlType::F32, e, 1, &self.ffn_norm),
            gate: t(ty, e, ff, &self.gate),
            up: t(ty, e, ff, &self.up),
            down: t(ty, ff, e, &self.down),
        }
    }
}

/// One transformer block for one decode token at position 511 and 2047 (the cache before it
/// filled), weights resident, 1 and 2 threads: what a decode step costs per layer, in tokens
/// and in bytes of the layer's matrices per second. The residual stream is reset from a one-row
/// embedding each time (a 2-4 KB copy, counted).
fn decode_layer(c: &mut Criterion) {
    let mut rng = Rng::new(27);
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    for m in MODELS {
        let cfg = m.config();
        let layer = LayerBytes::new(&mut rng, m);
        let w = layer.view(m);
        let embd_bytes = f32_bytes(&floats(&mut rng, m.n_embd));
        let mut token_embd = Tensor {
            ty: GgmlType::F32,
            row_elems: m.n_embd,
            n_rows: 1,
            bytes: &embd_bytes,
            layout: WeightLayout::File,
        };
        let mut group = c.benchmark_group(format!("decode_layer/{}-{}", m.name, m.weight_ty));
        slow(&mut group);
        // Tokens per second, and the layer's matrix bytes per second that makes.
        group.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: layer.matrix_bytes() as u64,
        });
        for n_ctx in KV_LENS {
            let mut cache = filled_cache(&mut rng, m.kv_dim(), n_ctx);
            let pos = n_ctx - 1;
            for pool in &pools {
                let mut st = RunState::new(&cfg, 1, n_ctx, 1, Vec::new(), pool.n_threads());
                let id = BenchmarkId::new(format!("pos{pos}"), format!("{}t", pool.n_threads()));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        embed(&cfg, &mut token_embd, &[0], &mut st)
                            .and_then(|()| {
                                forward_layer(
                                    &cfg,
                                    &w,
                                    None,
                                    0,
                                    &[Segment::alone(pos, 1)],
                                    &mut st,
                                    &mut cache,
                                    pool,
                                )
                            })
                            .expect("forward_layer on synthetic weights")
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(
    benches,
    norm,
    rope,
    swiglu_ffn,
    softmax_exp,
    attend_decode,
    attend_prompt,
    decode_layer
);
criterion_main!(benches);

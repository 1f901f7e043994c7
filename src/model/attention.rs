//! Grouped-query attention over the f16 KV cache, as llama.cpp computes it without flash
//! attention: Q is rounded to f16, `KQ = K·Q`, softmax of `KQ/√d` with a causal mask, the
//! probabilities rounded to f16, and `KQV = Vᵀ·P`, one dot product per output element over
//! `n_kv` positions (padded to [`KV_PAD`] with masked zeros).

use std::sync::{Mutex, PoisonError};

use super::kv_cache::{KvCache, KV_PAD};
use super::kv_slabs::KvCaches;
use super::ops::softmax_scaled;
use super::segment::{segment_of, Segment};
use crate::cpu::dot::vec_dot_f16_f16_rows;
use crate::cpu::gemm_f16::dot_f16_gemm;
use crate::cpu::quantize::convert_row_f16;
use crate::cpu::{Isa, ThreadPool};

/// Shapes of one attention layer.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
}

/// Scratch for one query token, allocated once for the cache's capacity.
pub struct AttnScratch {
    /// One head's query rounded to f16 (little-endian bytes).
    q16: Vec<u8>,
    scores: Vec<f32>,
    /// The probabilities rounded to f16 (little-endian bytes).
    p16: Vec<u8>,
}

impl AttnScratch {
    /// Scratch for heads of `head_dim` over up to `n_ctx` cached positions.
    pub fn new(head_dim: usize, n_ctx: usize) -> AttnScratch {
        AttnScratch {
            q16: vec![0; 2 * head_dim],
            scores: vec![0.0; n_ctx],
            p16: vec![0; 2 * n_ctx],
        }
    }
}

/// Attention output for one token at `pos` whose query is `q` (`n_head·head_dim`), over the
/// positions `0..=pos` of `layer`; `n_kv` is the padded number of positions the batch sees;
/// `batched` says whether the token is part of a batch of 2+ (which changes llama.cpp's dot).
#[allow(clippy::too_many_arguments)]
pub fn attend(
    cache: &KvCache,
    layer: usize,
    shape: AttnShape,
    q: &[f32],
    pos: usize,
    n_kv: usize,
    batched: bool,
    scratch: &mut AttnScratch,
    out: &mut [f32],
) {
    let hd = shape.head_dim;
    debug_assert_eq!(q.len(), shape.n_head * hd);
    for (h, o) in out[..shape.n_head * hd].chunks_exact_mut(hd).enumerate() {
        let at = HeadAt {
            layer,
            head: h,
            pos,
            n_kv,
            batched,
        };
        attend_head(cache, shape, at, &q[h * hd..(h + 1) * hd], scratch, o);
    }
}

/// Attention for the `n_tok` tokens of one sequence at positions `pos0..pos0 + n_tok` whose
/// queries are the rows of `q`, into the rows of `out`: [`attend_segments`] with one segment.
#[allow(clippy::too_many_arguments)]
pub fn attend_batch(
    cache: &KvCache,
    layer: usize,
    shape: AttnShape,
    q: &[f32],
    pos0: usize,
    n_tok: usize,
    scratch: &[Mutex<AttnScratch>],
    out: &mut [f32],
    pool: &ThreadPool,
) {
    let segs = [Segment::alone(pos0, n_tok)];
    attend_segments(cache, layer, shape, q, &segs, scratch, out, pool);
}

/// Attention for every token of a step's batch, each over its own sequence's cache: the
/// queries are the rows of `q`, the outputs the rows of `out`, and `segs` (sorted by row,
/// tiling the batch) say which sequence and position each row is. One (token, head) pair per
/// work item across the pool; `scratch` holds one scratch per pool thread. Every output is the
/// same as [`attend`]'s for that token alone, with the padded `n_kv` of its segment.
#[allow(clippy::too_many_arguments)]
pub fn attend_segments(
    caches: &impl KvCaches,
    layer: usize,
    shape: AttnShape,
    q: &[f32],
    segs: &[Segment],
    scratch: &[Mutex<AttnScratch>],
    out: &mut [f32],
    pool: &ThreadPool,
) {
    let n_tok = segs.last().map_or(0, |s| s.row0 + s.n);
    let hd = shape.head_dim;
    let width = shape.n_head * hd;
    debug_assert!(q.len() >= n_tok * width && out.len() >= n_tok * width);
    debug_assert!(scratch.len() >= pool.n_threads().min(n_tok * shape.n_head));
    let items = Mutex::new(out[..n_tok * width].chunks_exact_mut(hd).enumerate());
    let n_tasks = pool
        .n_threads()
        .min(n_tok * shape.n_head)
        .min(scratch.len());
    pool.run(n_tasks, |task| {
        let mut s = scratch[task].lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let next = items.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((i, o)) = next else { break };
            let (t, h) = (i / shape.n_head, i % shape.n_head);
            let seg = segment_of(segs, t);
            let cache = caches.cache(seg.slot);
            let at = HeadAt {
                layer,
                head: h,
                pos: seg.pos0 + (t - seg.row0),
                n_kv: padded_n_kv(seg.pos0 + seg.n, cache.n_ctx()),
                batched: seg.batched,
            };
            let qh = &q[t * width + h * hd..t * width + (h + 1) * hd];
            attend_head(cache, shape, at, qh, &mut s, o);
        }
    });
}

/// Which head of which token one [`attend_head`] call computes.
#[derive(Clone, Copy, Debug)]
struct HeadAt {
    layer: usize,
    head: usize,
    /// The token's position: it sees positions `0..=pos`.
    pos: usize,
    /// Padded number of positions the batch sees.
    n_kv: usize,
    /// Part of a batch of 2+ tokens (llama.cpp's GEMM summation order).
    batched: bool,
}

/// One head of one token: scores over the cached keys, softmax, then the weighted values.
fn attend_head(
    cache: &KvCache,
    shape: AttnShape,
    at: HeadAt,
    q: &[f32],
    scratch: &mut AttnScratch,
    out: &mut [f32],
) {
    let isa = Isa::current();
    let AttnShape {
        n_head,
        n_head_kv,
        head_dim,
    } = shape;
    let (layer, pos, n_kv) = (at.layer, at.pos, at.n_kv);
    debug_assert!(n_kv % KV_PAD == 0 && pos < n_kv && n_kv <= cache.n_ctx());
    let kvh = at.head / (n_head / n_head_kv);
    let scale = 1.0 / (head_dim as f32).sqrt();
    let scores = &mut scratch.scores[..n_kv];
    let p16 = &mut scratch.p16[..2 * n_kv];
    convert_row_f16(isa, q, &mut scratch.q16);
    // Inside a prompt batch llama.cpp computes these products with its GEMM's summation
    // order; single-token steps use `vec_dot_f16` (four accumulators), here one call per run.
    if at.batched {
        for (j, s) in scores[..=pos].iter_mut().enumerate() {
            *s = dot_f16_gemm(isa, cache.key(layer, j, kvh, head_dim), &scratch.q16);
        }
    } else {
        let (keys, stride) = cache.keys(layer, pos + 1, kvh, head_dim);
        vec_dot_f16_f16_rows(head_dim, keys, stride, &scratch.q16, &mut scores[..=pos]);
    }
    softmax_scaled(scores, scale, pos + 1);
    convert_row_f16(isa, scores, p16);
    if at.batched {
        for (d, od) in out.iter_mut().enumerate() {
            *od = dot_f16_gemm(isa, cache.value_row(layer, kvh * head_dim + d, n_kv), p16);
        }
    } else {
        let (values, stride) = cache.value_rows(layer, kvh * head_dim, out.len(), n_kv);
        vec_dot_f16_f16_rows(n_kv, values, stride, p16, out);
    }
}

/// The padded number of cache positions a batch ending at `n_past_after` sees.
pub fn padded_n_kv(n_past_after: usize, n_ctx: usize) -> usize {
    (n_past_after.div_ceil(KV_PAD) * KV_PAD).min(n_ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_dot_uses_one_accumulator_of_eight_lanes() {
        // 16 ones dotted with 16 ones: 16 either way; with a value that only one order keeps.
        let row = |v: &[f32]| -> Vec<u8> {
            v.iter()
                .flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes())
                .collect()
        };
        let a = row(&[1.0; 16]);
        assert_eq!(dot_f16_gemm(Isa::current(), &a, &a), 16.0);
        let mut big = [0.0f32; 16];
        big[0] = 2048.0;
        big[8] = 1.0;
        big[4] = -2048.0;
        // Lane 0 holds 2048 + 1 = 2049 (exact in f32); lanes 0 and 4 then cancel to 1.
        assert_eq!(dot_f16_gemm(Isa::current(), &row(&big), &a), 1.0);
    }

    #[test]
    fn single_position_returns_its_value() {
        let shape = AttnShape {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 8,
        };
        let mut cache = KvCache::new(1, 16, 32);
        let k: Vec<f32> = (0..16).map(|i| i as f32 * 0.1).collect();
        let v: Vec<f32> = (0..16).map(|i| i as f32 - 3.0).collect();
        cache.store(0, 0, &k, &v);
        let q = vec![0.5f32; 32];
        let mut out = vec![0.0f32; 32];
        let mut s = AttnScratch::new(8, 32);
        attend(&cache, 0, shape, &q, 0, 32, false, &mut s, &mut out);
        // One position: probability 1, so each head returns its kv head's values.
        for h in 0..4 {
            let kvh = h / 2;
            assert_eq!(&out[h * 8..h * 8 + 8], &v[kvh * 8..kvh * 8 + 8]);
        }
    }

    #[test]
    fn causal_mask_ignores_later_positions() {
        let shape = AttnShape {
            n_head: 1,
            n_head_kv: 1,
            head_dim: 4,
        };
        let mut cache = KvCache::new(1, 4, 32);
        cache.store(0, 0, &[1.0, 0.0, 0.0, 0.0], &[1.0, 1.0, 1.0, 1.0]);
        cache.store(0, 1, &[0.0, 1.0, 0.0, 0.0], &[9.0, 9.0, 9.0, 9.0]);
        let mut out = [0.0f32; 4];
        let mut s = AttnScratch::new(4, 32);
        attend(
            &cache,
            0,
            shape,
            &[1.0, 1.0, 0.0, 0.0],
            0,
            32,
            false,
            &mut s,
            &mut out,
        );
        assert_eq!(out, [1.0; 4]);
        attend(
            &cache,
            0,
            shape,
            &[1.0, 1.0, 0.0, 0.0],
            1,
            32,
            false,
            &mut s,
            &mut out,
        );
        // Equal scores: the mean of the two values.
        assert_eq!(out, [5.0; 4]);
    }

    #[test]
    fn batch_over_the_pool_equals_token_by_token() {
        let shape = AttnShape {
            n_head: 6,
            n_head_kv: 2,
            head_dim: 16,
        };
        let (n_ctx, n_tok, pos0) = (64, 11, 5);
        let width = shape.n_head * shape.head_dim;
        let kvd = shape.n_head_kv * shape.head_dim;
        let mut cache = KvCache::new(1, kvd, n_ctx);
        for p in 0..pos0 + n_tok {
            let k: Vec<f32> = (0..kvd)
                .map(|i| ((p * 31 + i) as f32 * 0.013).sin())
                .collect();
            let v: Vec<f32> = (0..kvd)
                .map(|i| ((p * 17 + i) as f32 * 0.029).cos())
                .collect();
            cache.store(0, p, &k, &v);
        }
        let q: Vec<f32> = (0..n_tok * width)
            .map(|i| (i as f32 * 0.07).sin())
            .collect();
        let n_kv = padded_n_kv(pos0 + n_tok, n_ctx);
        for (tokens, batched) in [(n_tok, true), (1, false)] {
            let mut want = vec![0.0f32; tokens * width];
            let mut s = AttnScratch::new(shape.head_dim, n_ctx);
            for t in 0..tokens {
                let (qt, ot) = (
                    &q[t * width..(t + 1) * width],
                    &mut want[t * width..(t + 1) * width],
                );
                attend(&cache, 0, shape, qt, pos0 + t, n_kv, batched, &mut s, ot);
            }
            for threads in [1, 2, 3] {
                let pool = ThreadPool::new(threads);
                let scratch: Vec<Mutex<AttnScratch>> = (0..threads)
                    .map(|_| Mutex::new(AttnScratch::new(shape.head_dim, n_ctx)))
                    .collect();
                let mut got = vec![f32::NAN; tokens * width];
                attend_batch(
                    &cache, 0, shape, &q, pos0, tokens, &scratch, &mut got, &pool,
                );
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{tokens} tokens, {threads} threads"
                );
            }
        }
    }

    #[test]
    fn segments_of_several_sequences_equal_each_token_alone() {
        use crate::model::kv_slabs::{KvCaches, KvSlabs};
        let shape = AttnShape {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 16,
        };
        let width = shape.n_head * shape.head_dim;
        let kvd = shape.n_head_kv * shape.head_dim;
        let mut slabs = KvSlabs::new(1, kvd, 3, u64::MAX);
        // Three sequences of different lengths: a decode token at 40, a prompt chunk of 7 at
        // 0 (batched), a decode token at 3.
        let lens = [41usize, 7, 4];
        let slots: Vec<usize> = lens.iter().map(|&l| slabs.alloc(l + 8).unwrap()).collect();
        for (s, (&slot, &len)) in slots.iter().zip(&lens).enumerate() {
            for p in 0..len {
                let k: Vec<f32> = (0..kvd)
                    .map(|i| ((p * 31 + i + s * 7) as f32 * 0.013).sin())
                    .collect();
                let v: Vec<f32> = (0..kvd)
                    .map(|i| ((p * 17 + i + s * 3) as f32 * 0.029).cos())
                    .collect();
                slabs.cache_mut(slot).store(0, p, &k, &v);
            }
        }
        let segs = [
            Segment {
                row0: 0,
                n: 1,
                pos0: 40,
                slot: slots[0],
                batched: false,
            },
            Segment {
                row0: 1,
                n: 7,
                pos0: 0,
                slot: slots[1],
                batched: true,
            },
            Segment {
                row0: 8,
                n: 1,
                pos0: 3,
                slot: slots[2],
                batched: false,
            },
        ];
        let n_tok = 9;
        let q: Vec<f32> = (0..n_tok * width)
            .map(|i| (i as f32 * 0.07).sin())
            .collect();
        let mut want = vec![0.0f32; n_tok * width];
        for seg in &segs {
            let cache = slabs.cache(seg.slot);
            let n_kv = padded_n_kv(seg.pos0 + seg.n, cache.n_ctx());
            let mut s = AttnScratch::new(shape.head_dim, cache.n_ctx());
            for t in seg.rows() {
                let (qt, ot) = (
                    &q[t * width..(t + 1) * width],
                    &mut want[t * width..(t + 1) * width],
                );
                let pos = seg.pos0 + t - seg.row0;
                attend(cache, 0, shape, qt, pos, n_kv, seg.batched, &mut s, ot);
            }
        }
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads);
            let scratch: Vec<Mutex<AttnScratch>> = (0..threads)
                .map(|_| Mutex::new(AttnScratch::new(shape.head_dim, 64)))
                .collect();
            let mut got = vec![f32::NAN; n_tok * width];
            attend_segments(&slabs, 0, shape, &q, &segs, &scratch, &mut got, &pool);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{threads} threads");
        }
    }
}

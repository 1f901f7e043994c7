//! The forward pass of the llama family, over a batch of consecutive tokens.
//!
//! Like llama2.c's `forward()`: one function per transformer block that reads top to bottom,
//! a run state holding every activation buffer (allocated once for the largest batch), and no
//! allocation per token. Matrix products are the CPU backend's quantised kernels on the weights
//! where they lie (a ring slot or a resident buffer); a prompt is one batch, so each streamed
//! layer is read once for the whole prompt.

use std::sync::Mutex;

use sluice_loader::quant::{dequantize_row, DequantError};
use sluice_loader::roles::TensorRole;
use sluice_loader::spec::{Arch, ModelSpec, RopeStyle, SourceFormat};
use sluice_loader::GgmlType;
use thiserror::Error;

use super::attention::{attend_segments, AttnScratch, AttnShape};
use super::kv_slabs::KvCaches;
use super::ops::{
    add_bias_rows, add_in_place, rms_norm, swiglu, swiglu_chunk, RopePairs, RopeTable,
};
use super::segment::Segment;
use super::weights::{LayerWeights, Tensor};
use crate::cpu::{
    matmul, matmul_many_with, matmul_pair_with, quantize_acts, rows16, vec_dot_type, CpuError, Isa,
    QuantizedActs, ThreadPool, WeightLayout, WeightView,
};

/// A failure inside the forward pass (a kernel refused its inputs).
#[derive(Debug, Error)]
pub enum ForwardError {
    #[error(transparent)]
    Cpu(#[from] CpuError),
    #[error(transparent)]
    Dequant(#[from] DequantError),
    #[error("token id {token} is outside the vocabulary of {n_vocab} tokens")]
    Token { token: u32, n_vocab: usize },
    #[error(transparent)]
    Layout(#[from] crate::cpu::rows16::RepackError),
    #[error("reading the embedding of token {token}: {source}")]
    EmbeddingRead {
        token: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("reading weights: {0}")]
    Stream(#[from] sluice_runtime::Error),
    #[error(
        "a streamed layer's pieces are out of order: wanted rows from {row} of {want:?}, \
         got rows from {got_row} of {got:?}"
    )]
    PieceOrder {
        want: TensorRole,
        row: usize,
        got: TensorRole,
        got_row: usize,
    },
    #[error("a streamed layer has {count} pieces but the forward pass took {taken}, or a piece was short")]
    PieceCount { count: usize, taken: usize },
}

/// One run of rows of a streamed matrix, as it lies in its ring slot.
pub struct FedPiece<'a> {
    pub role: TensorRole,
    /// Its first row in the whole matrix.
    pub row0: usize,
    /// The rows (`n_rows` of them), in file layout.
    pub tensor: Tensor<'a>,
}

/// Hands a streamed layer's matrices to [`forward_layer`] piece by piece, in the order it
/// multiplies them (q, k, v, o, gate, up, down; `engine::pieces`), so that a small ring
/// serves a layer of any size. Taking a piece frees the previous one.
pub trait PieceFeed {
    /// The next piece, waiting for its read.
    fn next_piece(&mut self) -> Result<FedPiece<'_>, ForwardError>;
}

/// The hyper-parameters the forward pass uses, derived once from the spec.
#[derive(Clone, Debug)]
pub struct Config {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_rot: usize,
    pub rms_eps: f32,
    pub rope_freq_base: f32,
    pub rope_pairs: RopePairs,
    /// HF llama weights hold Q/K rows in half-split order: permuting the projected q/k into
    /// the interleaved order of llama GGUF files makes the two sources compute identically.
    pub interleave_qk: bool,
    pub n_vocab: usize,
}

impl Config {
    /// Derives the forward-pass settings from a model spec.
    pub fn from_spec(spec: &ModelSpec) -> Config {
        let hf_llama = spec.arch == Arch::Llama && spec.source == SourceFormat::Safetensors;
        let rope_pairs = match spec.rope_style {
            _ if hf_llama => RopePairs::Adjacent,
            RopeStyle::Norm => RopePairs::Adjacent,
            RopeStyle::Neox => RopePairs::HalfSplit,
        };
        Config {
            n_layer: spec.n_layer,
            n_embd: spec.n_embd,
            n_ff: spec.n_ff,
            n_head: spec.n_head,
            n_head_kv: spec.n_head_kv,
            head_dim: spec.head_dim,
            n_rot: spec.n_rot,
            rms_eps: spec.rms_eps,
            rope_freq_base: spec.rope_freq_base,
            rope_pairs,
            interleave_qk: hf_llama,
            n_vocab: spec.n_vocab,
        }
    }

    fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// Every activation buffer, sized once for `batch_max` tokens.
pub struct RunState {
    batch_max: usize,
    /// Residual stream `[batch][n_embd]`.
    x: Vec<f32>,
    /// Normalised input of a sub-block `[batch][n_embd]`.
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Attention output `[batch][q_dim]`.
    att: Vec<f32>,
    /// Output of the o and down projections `[batch][n_embd]`.
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// A norm weight or bias as f32 (max of n_embd, q_dim).
    vec_scratch: Vec<f32>,
    /// One head, for the HF → interleaved permutation.
    head_scratch: Vec<f32>,
    acts: QuantizedActs,
    /// Logits `[logit_rows][n_vocab]`: one row per token the head was asked for, in order.
    logits: Vec<f32>,
    n_vocab: usize,
    /// A row range's products `[tokens][range rows]` (a streamed head range, a streamed layer
    /// piece) before [`range_products`] scatters them into their output; sized by
    /// [`reserve_head_range`](RunState::reserve_head_range) and
    /// [`reserve_piece_rows`](RunState::reserve_piece_rows).
    range_tmp: Vec<f32>,
    rope: RopeTable,
    /// Attention scratch, one per pool thread.
    attn: Vec<Mutex<AttnScratch>>,
}

impl RunState {
    /// Buffers for batches of up to `batch_max` tokens over caches of up to `n_ctx` positions,
    /// logits for up to `logit_rows` tokens per batch, for a pool of `n_threads` threads.
    pub fn new(
        cfg: &Config,
        batch_max: usize,
        n_ctx: usize,
        logit_rows: usize,
        rope_freq_factors: Vec<f32>,
        n_threads: usize,
    ) -> RunState {
        let b = batch_max.max(1);
        let logit_rows = logit_rows.clamp(1, b);
        let widest = cfg.n_embd.max(cfg.n_ff).max(cfg.q_dim());
        RunState {
            batch_max: b,
            x: vec![0.0; b * cfg.n_embd],
            xb: vec![0.0; b * cfg.n_embd.max(cfg.q_dim())],
            q: vec![0.0; b * cfg.q_dim()],
            k: vec![0.0; b * cfg.kv_dim()],
            v: vec![0.0; b * cfg.kv_dim()],
            att: vec![0.0; b * cfg.q_dim()],
            proj: vec![0.0; b * cfg.n_embd],
            gate: vec![0.0; b * cfg.n_ff],
            up: vec![0.0; b * cfg.n_ff],
            vec_scratch: vec![0.0; cfg.n_embd.max(cfg.q_dim()).max(cfg.kv_dim())],
            head_scratch: vec![0.0; cfg.head_dim],
            acts: QuantizedActs::for_shape(b, widest),
            logits: vec![0.0; logit_rows * cfg.n_vocab],
            n_vocab: cfg.n_vocab,
            range_tmp: Vec::new(),
            rope: RopeTable::new(cfg.n_rot, cfg.rope_freq_base, rope_freq_factors),
            attn: (0..n_threads.max(1))
                .map(|_| Mutex::new(AttnScratch::new(cfg.head_dim, n_ctx)))
                .collect(),
        }
    }

    /// The largest batch these buffers hold.
    pub fn batch_max(&self) -> usize {
        self.batch_max
    }

    /// The most tokens one batch can ask the head for.
    pub fn logit_rows(&self) -> usize {
        self.logits.len() / self.n_vocab.max(1)
    }

    /// The logits of the `i`th token the last head was asked for.
    pub fn logits(&self, i: usize) -> &[f32] {
        &self.logits[i * self.n_vocab..(i + 1) * self.n_vocab]
    }

    /// The logits of the `i`th token the last head was asked for, to sample from in place.
    pub fn logits_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.logits[i * self.n_vocab..(i + 1) * self.n_vocab]
    }

    /// Makes room, once, for a streamed head's ranges of up to `range_rows` rows (one token's
    /// range products land in its logits directly).
    pub fn reserve_head_range(&mut self, range_rows: usize) {
        if self.logit_rows() > 1 {
            self.reserve_range_tmp(self.logit_rows() * range_rows);
        }
    }

    /// Makes room, once, for streamed layer pieces of up to `piece_rows` rows (one token's
    /// piece products land in the projection's output directly).
    pub fn reserve_piece_rows(&mut self, piece_rows: usize) {
        if self.batch_max > 1 {
            self.reserve_range_tmp(self.batch_max * piece_rows);
        }
    }

    fn reserve_range_tmp(&mut self, floats: usize) {
        if self.range_tmp.len() < floats {
            self.range_tmp = vec![0.0; floats];
        }
    }

    /// Bytes of the activation buffers and the logits (the RoPE table and the attention
    /// scratch, a few bytes per cached position, aside).
    pub fn bytes(&self) -> usize {
        let f32_bufs = [
            &self.x,
            &self.xb,
            &self.q,
            &self.k,
            &self.v,
            &self.att,
            &self.proj,
            &self.gate,
            &self.up,
            &self.vec_scratch,
            &self.head_scratch,
            &self.logits,
            &self.range_tmp,
        ];
        let floats: usize = f32_bufs.iter().map(|b| b.len()).sum();
        floats * std::mem::size_of::<f32>() + self.acts.capacity_bytes()
    }
}

/// `out = W · input` for `n` tokens, quantising `input` to W's activation format unless `acts`
/// already holds it in that format (`fresh` says whether `acts` holds this input).
fn project(
    w: &Tensor<'_>,
    input: &[f32],
    n: usize,
    acts: &mut QuantizedActs,
    fresh: &mut bool,
    out: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), ForwardError> {
    refresh_acts(w, input, n, acts, fresh)?;
    matmul(&w.matrix(), acts, &mut out[..n * w.n_rows], pool)?;
    Ok(())
}

/// Quantises `input` to W's activation format unless `acts` already holds it so (`fresh`).
fn refresh_acts(
    w: &Tensor<'_>,
    input: &[f32],
    n: usize,
    acts: &mut QuantizedActs,
    fresh: &mut bool,
) -> Result<(), ForwardError> {
    let want = act_format(w)?;
    if !*fresh || acts.ty() != want || acts.rows() != n {
        quantize_acts(w.ty, &input[..n * w.row_elems], n, acts)?;
        *fresh = true;
    }
    Ok(())
}

/// The products of `w`, rows `row0..row0 + w.n_rows` of a matrix with `stride` rows, for `n`
/// tokens, into those rows of `out` (`[n][stride]`): in place where they are contiguous there
/// (one token, or every row), else through `tmp` and scattered. A row's product does not
/// depend on the other rows, so range by range gives the whole matrix's values.
#[allow(clippy::too_many_arguments)]
fn range_products(
    w: &WeightView<'_>,
    acts: &QuantizedActs,
    n: usize,
    out: &mut [f32],
    stride: usize,
    row0: usize,
    tmp: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), CpuError> {
    let nr = w.n_rows;
    if n == 1 || nr == stride {
        debug_assert!(n == 1 || row0 == 0);
        return matmul(w, acts, &mut out[row0..row0 + n * nr], pool);
    }
    assert!(
        tmp.len() >= n * nr,
        "no room reserved for {n} tokens' products of {nr} rows"
    );
    matmul(w, acts, &mut tmp[..n * nr], pool)?;
    for i in 0..n {
        out[i * stride + row0..i * stride + row0 + nr].copy_from_slice(&tmp[i * nr..(i + 1) * nr]);
    }
    Ok(())
}

/// `out = W · input` for `n` tokens, W's rows taken piece by piece from `feed` (W itself holds
/// only the shape); quantises `input` as [`project`] does. Each piece's rows land in those rows
/// of `out` (`[n][W rows]`), through `tmp` when there are several tokens.
#[allow(clippy::too_many_arguments)]
fn project_pieces(
    w: &Tensor<'_>,
    role: TensorRole,
    input: &[f32],
    n: usize,
    acts: &mut QuantizedActs,
    fresh: &mut bool,
    out: &mut [f32],
    tmp: &mut [f32],
    feed: &mut dyn PieceFeed,
    pool: &ThreadPool,
) -> Result<(), ForwardError> {
    refresh_acts(w, input, n, acts, fresh)?;
    let rows = w.n_rows;
    let mut row = 0;
    while row < rows {
        let p = feed.next_piece()?;
        let (t, nr) = (&p.tensor, p.tensor.n_rows);
        let fits = t.ty == w.ty && t.row_elems == w.row_elems && nr >= 1 && row + nr <= rows;
        if p.role != role || p.row0 != row || !fits {
            return Err(ForwardError::PieceOrder {
                want: role,
                row,
                got: p.role,
                got_row: p.row0,
            });
        }
        range_products(&t.matrix(), acts, n, out, rows, row, tmp, pool)?;
        row += nr;
    }
    Ok(())
}

/// [`project_pieces`] for each `(W, role, out)` of one input in turn, quantising the input
/// once while their activation formats agree.
fn project_each_in_pieces<const K: usize>(
    mats: [(&Tensor<'_>, TensorRole, &mut Vec<f32>); K],
    input: &[f32],
    n: usize,
    acts: &mut QuantizedActs,
    tmp: &mut [f32],
    feed: &mut dyn PieceFeed,
    pool: &ThreadPool,
) -> Result<(), ForwardError> {
    let mut fresh = false;
    for (w, role, out) in mats {
        project_pieces(w, role, input, n, acts, &mut fresh, out, tmp, feed, pool)?;
    }
    Ok(())
}

/// The activation format a weight's products need.
fn act_format(w: &Tensor<'_>) -> Result<GgmlType, CpuError> {
    vec_dot_type(w.ty).ok_or(CpuError::NotAWeightType(w.ty))
}

/// `q, k, v = W·xb` for `n` tokens: one quantisation and one pass over the pool when the three
/// weights take the same activation format (the usual case), else one product each.
fn project_qkv(
    w: &LayerWeights<'_>,
    n: usize,
    st: &mut RunState,
    pool: &ThreadPool,
) -> Result<(), ForwardError> {
    let want = act_format(&w.q)?;
    if act_format(&w.k)? != want || act_format(&w.v)? != want {
        let mut fresh = false;
        project(&w.q, &st.xb, n, &mut st.acts, &mut fresh, &mut st.q, pool)?;
        project(&w.k, &st.xb, n, &mut st.acts, &mut fresh, &mut st.k, pool)?;
        project(&w.v, &st.xb, n, &mut st.acts, &mut fresh, &mut st.v, pool)?;
        return Ok(());
    }
    quantize_acts(w.q.ty, &st.xb[..n * w.q.row_elems], n, &mut st.acts)?;
    let (q, k, v) = (w.q.matrix(), w.k.matrix(), w.v.matrix());
    matmul_many_with(
        Isa::current(),
        [&q, &k, &v],
        &st.acts,
        [
            &mut st.q[..n * q.n_rows],
            &mut st.k[..n * k.n_rows],
            &mut st.v[..n * v.n_rows],
        ],
        pool,
    )?;
    Ok(())
}

/// `gate = silu(W_gate·xb) ⊙ W_up·xb` for `n` tokens: gate and up in one pass over the pool,
/// SwiGLU applied chunk by chunk while hot, when both weights take the same activation format.
fn project_gate_up(
    w: &LayerWeights<'_>,
    n: usize,
    n_ff: usize,
    st: &mut RunState,
    pool: &ThreadPool,
) -> Result<(), ForwardError> {
    if act_format(&w.gate)? != act_format(&w.up)? || w.gate.n_rows != w.up.n_rows {
        let mut fresh = false;
        project(
            &w.gate,
            &st.xb,
            n,
            &mut st.acts,
            &mut fresh,
            &mut st.gate,
            pool,
        )?;
        project(&w.up, &st.xb, n, &mut st.acts, &mut fresh, &mut st.up, pool)?;
        swiglu(&mut st.gate[..n * n_ff], &st.up[..n * n_ff], n_ff);
        return Ok(());
    }
    quantize_acts(w.gate.ty, &st.xb[..n * w.gate.row_elems], n, &mut st.acts)?;
    let (g, u) = (w.gate.matrix(), w.up.matrix());
    matmul_pair_with(
        Isa::current(),
        &g,
        &u,
        &st.acts,
        &mut st.gate[..n * n_ff],
        &mut st.up[..n * n_ff],
        pool,
        |row0, gate, up| swiglu_chunk(row0, n_ff, gate, up),
    )?;
    Ok(())
}

/// Reads a float vector (norm weight, bias) into `out`.
fn read_vector<'s>(t: &Tensor<'_>, out: &'s mut [f32]) -> Result<&'s [f32], ForwardError> {
    let n = t.row_elems * t.n_rows;
    dequantize_row(t.ty, t.bytes, &mut out[..n])?;
    Ok(&out[..n])
}

/// RMSNorm of each of `n` rows of `x` into `out`.
fn norm_rows(x: &[f32], w: &[f32], eps: f32, n: usize, out: &mut [f32]) {
    let d = w.len();
    for t in 0..n {
        rms_norm(&x[t * d..(t + 1) * d], w, eps, &mut out[t * d..(t + 1) * d]);
    }
}

/// Reorders each head of `x` from half-split to interleaved pairs (HF → GGUF row order).
fn interleave_heads(x: &mut [f32], head_dim: usize, scratch: &mut [f32]) {
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        scratch.copy_from_slice(head);
        for j in 0..half {
            head[2 * j] = scratch[j];
            head[2 * j + 1] = scratch[half + j];
        }
    }
}

/// Where [`embed`] finds the rows of the token embedding matrix: a resident [`Tensor`], or a
/// reader that fetches each row from disk when asked.
pub trait EmbeddingRows {
    /// The rows' element type.
    fn ty(&self) -> GgmlType;
    /// Number of rows (the vocabulary).
    fn n_rows(&self) -> usize;
    /// The bytes of row `id`, which is below [`n_rows`](Self::n_rows).
    fn row(&mut self, id: usize) -> Result<&[u8], ForwardError>;
    /// Hints that row `id` may be asked for soon (a reader starts reading it); resident rows
    /// ignore it.
    fn prefetch(&mut self, _id: usize) {}
}

impl EmbeddingRows for Tensor<'_> {
    fn ty(&self) -> GgmlType {
        self.ty
    }

    fn n_rows(&self) -> usize {
        self.n_rows
    }

    fn row(&mut self, id: usize) -> Result<&[u8], ForwardError> {
        let row_bytes = self.bytes.len() / self.n_rows.max(1);
        Ok(&self.bytes[id * row_bytes..(id + 1) * row_bytes])
    }
}

/// Resident embeddings, in file layout or rearranged in 16-row groups (a tied LM head on the
/// AVX-512 path), whose rows it copies back to file layout one at a time.
pub struct ResidentRows<'a> {
    tensor: Tensor<'a>,
    /// One row in file layout (empty for a file-layout tensor): sized once.
    row: Vec<u8>,
}

impl<'a> ResidentRows<'a> {
    /// Rows of `tensor`, with a row buffer when its layout needs one.
    pub fn new(tensor: Tensor<'a>) -> Self {
        let row = match tensor.layout {
            WeightLayout::File => Vec::new(),
            WeightLayout::Rows16(_) => vec![0; tensor.bytes.len() / tensor.n_rows.max(1)],
        };
        ResidentRows { tensor, row }
    }
}

impl EmbeddingRows for ResidentRows<'_> {
    fn ty(&self) -> GgmlType {
        self.tensor.ty
    }

    fn n_rows(&self) -> usize {
        self.tensor.n_rows
    }

    fn row(&mut self, id: usize) -> Result<&[u8], ForwardError> {
        let t = &self.tensor;
        match t.layout {
            WeightLayout::File => self.tensor.row(id),
            WeightLayout::Rows16(form) => {
                rows16::unpack_row(form, t.ty, t.n_rows, t.bytes, id, &mut self.row)?;
                Ok(&self.row)
            }
        }
    }
}

/// Looks up the embeddings of `tokens` into the residual stream.
pub fn embed(
    cfg: &Config,
    token_embd: &mut dyn EmbeddingRows,
    tokens: &[u32],
    st: &mut RunState,
) -> Result<(), ForwardError> {
    let (ty, n_rows) = (token_embd.ty(), token_embd.n_rows());
    for (t, &tok) in tokens.iter().enumerate() {
        let id = tok as usize;
        if id >= n_rows {
            return Err(ForwardError::Token {
                token: tok,
                n_vocab: n_rows,
            });
        }
        let row = token_embd.row(id)?;
        dequantize_row(ty, row, &mut st.x[t * cfg.n_embd..(t + 1) * cfg.n_embd])?;
    }
    Ok(())
}

/// One transformer block over a step's batch: `segs` (sorted, tiling the batch) say which
/// sequence, KV slot and position each token row is. The matrices are `w`'s, or with `pieces`
/// (a layer streamed in row pieces; `w` then holds their shapes) taken from it as needed.
#[allow(clippy::too_many_arguments)]
pub fn forward_layer(
    cfg: &Config,
    w: &LayerWeights<'_>,
    mut pieces: Option<&mut dyn PieceFeed>,
    layer: usize,
    segs: &[Segment],
    st: &mut RunState,
    caches: &mut impl KvCaches,
    pool: &ThreadPool,
) -> Result<(), ForwardError> {
    let n = segs.last().map_or(0, |s| s.row0 + s.n);
    debug_assert!(n >= 1 && n <= st.batch_max);
    let (e, qd, kvd) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim());

    // Attention: xb = norm(x); q, k, v = W·xb (+ bias); RoPE; cache k, v; attend.
    let norm_w = read_vector(&w.attn_norm, &mut st.vec_scratch)?;
    norm_rows(&st.x, norm_w, cfg.rms_eps, n, &mut st.xb);
    match pieces.as_deref_mut() {
        None => project_qkv(w, n, st, pool)?,
        Some(feed) => {
            let qkv = [
                (&w.q, TensorRole::Q, &mut st.q),
                (&w.k, TensorRole::K, &mut st.k),
                (&w.v, TensorRole::V, &mut st.v),
            ];
            let tmp = &mut st.range_tmp;
            project_each_in_pieces(qkv, &st.xb, n, &mut st.acts, tmp, feed, pool)?;
        }
    }
    for (bias, out, dim) in [
        (&w.q_bias, &mut st.q, qd),
        (&w.k_bias, &mut st.k, kvd),
        (&w.v_bias, &mut st.v, kvd),
    ] {
        if let Some(b) = bias {
            add_bias_rows(&mut out[..n * dim], read_vector(b, &mut st.vec_scratch)?);
        }
    }
    if cfg.interleave_qk {
        interleave_heads(&mut st.q[..n * qd], cfg.head_dim, &mut st.head_scratch);
        interleave_heads(&mut st.k[..n * kvd], cfg.head_dim, &mut st.head_scratch);
    }
    for seg in segs {
        let cache = caches.cache_mut(seg.slot);
        for t in seg.rows() {
            let pos = seg.pos0 + (t - seg.row0);
            st.rope.set_position(pos);
            st.rope.apply(
                &mut st.q[t * qd..(t + 1) * qd],
                cfg.head_dim,
                cfg.rope_pairs,
            );
            st.rope.apply(
                &mut st.k[t * kvd..(t + 1) * kvd],
                cfg.head_dim,
                cfg.rope_pairs,
            );
            cache.store(
                layer,
                pos,
                &st.k[t * kvd..(t + 1) * kvd],
                &st.v[t * kvd..(t + 1) * kvd],
            );
        }
    }
    let shape = AttnShape {
        n_head: cfg.n_head,
        n_head_kv: cfg.n_head_kv,
        head_dim: cfg.head_dim,
    };
    attend_segments(
        caches,
        layer,
        shape,
        &st.q[..n * qd],
        segs,
        &st.attn,
        &mut st.att[..n * qd],
        pool,
    );
    let mut fresh = false;
    match pieces.as_deref_mut() {
        None => project(
            &w.o,
            &st.att,
            n,
            &mut st.acts,
            &mut fresh,
            &mut st.proj,
            pool,
        )?,
        Some(feed) => project_pieces(
            &w.o,
            TensorRole::O,
            &st.att,
            n,
            &mut st.acts,
            &mut fresh,
            &mut st.proj,
            &mut st.range_tmp,
            feed,
            pool,
        )?,
    }
    add_in_place(&mut st.x[..n * e], &st.proj[..n * e]);

    // Feed-forward: x += W_down · (silu(W_gate·m) ⊙ W_up·m), m = norm(x).
    let norm_w = read_vector(&w.ffn_norm, &mut st.vec_scratch)?;
    norm_rows(&st.x, norm_w, cfg.rms_eps, n, &mut st.xb);
    let mut fresh = false;
    match pieces {
        None => {
            project_gate_up(w, n, cfg.n_ff, st, pool)?;
            project(
                &w.down,
                &st.gate,
                n,
                &mut st.acts,
                &mut fresh,
                &mut st.proj,
                pool,
            )?;
        }
        Some(feed) => {
            let gate_up = [
                (&w.gate, TensorRole::Gate, &mut st.gate),
                (&w.up, TensorRole::Up, &mut st.up),
            ];
            let tmp = &mut st.range_tmp;
            project_each_in_pieces(gate_up, &st.xb, n, &mut st.acts, tmp, feed, pool)?;
            let f = cfg.n_ff;
            swiglu(&mut st.gate[..n * f], &st.up[..n * f], f);
            let (down, tmp) = (&w.down, &mut st.range_tmp);
            project_pieces(
                down,
                TensorRole::Down,
                &st.gate,
                n,
                &mut st.acts,
                &mut fresh,
                &mut st.proj,
                tmp,
                feed,
                pool,
            )?;
        }
    }
    add_in_place(&mut st.x[..n * e], &st.proj[..n * e]);
    Ok(())
}

/// Final norm and LM head for the batch rows `rows` (at most [`RunState::logit_rows`]); the
/// logits of `rows[i]` land in [`RunState::logits`]`(i)`.
pub fn forward_head(
    cfg: &Config,
    output_norm: &Tensor<'_>,
    output: &Tensor<'_>,
    rows: &[usize],
    st: &mut RunState,
    pool: &ThreadPool,
) -> Result<(), ForwardError> {
    head_input(cfg, output_norm, output.ty, rows, st)?;
    head_rows(output, 0, rows.len(), st, pool)
}

/// The LM head's input: the final norm of the batch rows `rows`, quantised for a head of type
/// `head_ty`. [`head_rows`] then computes the logits from any rows of the head.
pub fn head_input(
    cfg: &Config,
    output_norm: &Tensor<'_>,
    head_ty: GgmlType,
    rows: &[usize],
    st: &mut RunState,
) -> Result<(), ForwardError> {
    let e = cfg.n_embd;
    let m = rows.len();
    debug_assert!(m >= 1 && m <= st.logit_rows());
    let norm_w = read_vector(output_norm, &mut st.vec_scratch)?;
    for (i, &r) in rows.iter().enumerate() {
        rms_norm(
            &st.x[r * e..(r + 1) * e],
            norm_w,
            cfg.rms_eps,
            &mut st.xb[i * e..(i + 1) * e],
        );
    }
    quantize_acts(head_ty, &st.xb[..m * e], m, &mut st.acts)?;
    Ok(())
}

/// Logits `row0..row0 + head.n_rows` of the `m` tokens [`head_input`] prepared, from those rows
/// of the LM head: each logit is one row's dot product, so a head taken range by range gives
/// the same logits as the whole matrix.
pub fn head_rows(
    head: &Tensor<'_>,
    row0: usize,
    m: usize,
    st: &mut RunState,
    pool: &ThreadPool,
) -> Result<(), ForwardError> {
    let w = head.matrix();
    let (logits, tmp) = (&mut st.logits, &mut st.range_tmp);
    range_products(&w, &st.acts, m, logits, st.n_vocab, row0, tmp, pool)?;
    Ok(())
}

//! The evaluation driver: hands a plan's chunks to the engine's batch core as sequences that
//! only score their prompt (several per layer sweep, so a streamed model reads each layer once
//! per batch of chunks), turns each scored row into a token record as it arrives, and folds
//! the records chunk by chunk, in order, into llama-perplexity's sums.

use std::time::{Duration, Instant};

use thiserror::Error;

use super::chunks::ChunkPlan;
use super::logits_file::{LogitsFileError, LogitsReader, LogitsWriter};
use super::logprob::{encode_row, kld_token, nll, row_words, KldToken};
use super::stats::{KldLine, KldSummary, KldSums, PplSums};
use crate::engine::sampler::{Sampler, SamplerConfig};
use crate::engine::scheduler::{
    BatchOptions, BatchStats, Driver, Finished, SeqRequest, Verdict, MAX_BATCH_LIMIT,
};
use crate::engine::session::{Engine, EngineError, StopReason};

/// What an evaluation computes besides perplexity.
pub enum EvalMode {
    /// Perplexity only.
    Perplexity,
    /// Perplexity, and every scored row saved as a base for later KL comparisons.
    WriteBase(LogitsWriter),
    /// The KL divergence against a base file's rows (the plan's tokens come from it).
    Compare(LogitsReader),
}

/// How many chunks share a layer sweep.
#[derive(Clone, Copy, Debug)]
pub struct EvalOptions {
    /// Chunks evaluated together, each a sequence of one batch.
    pub n_seq: usize,
    /// Tokens one sweep computes (n_seq·n_ctx, or less when a chunk takes several sweeps).
    pub step_tokens: usize,
}

impl EvalOptions {
    /// llama-perplexity's batching for `-b batch`: `batch / n_ctx` chunks share a sweep (at
    /// most `n_chunk`, at least one), and a sweep is no larger than they are.
    pub fn for_batch(batch: usize, n_ctx: usize, n_chunk: usize) -> EvalOptions {
        let n_seq = chunks_per_sweep(batch, n_ctx).min(n_chunk.max(1));
        EvalOptions {
            n_seq,
            step_tokens: batch.min(n_seq * n_ctx),
        }
    }
}

/// Chunks of `n_ctx` that share a sweep of `batch` tokens, known before the text is read (the
/// engine plans KV caches for this many).
pub fn chunks_per_sweep(batch: usize, n_ctx: usize) -> usize {
    (batch / n_ctx.max(1)).clamp(1, MAX_BATCH_LIMIT)
}

/// The figures after a chunk, as llama-perplexity prints them then.
#[derive(Clone, Copy, Debug)]
pub struct ChunkLine {
    /// 1-based chunk number.
    pub chunk: usize,
    /// The running perplexity over the chunks so far.
    pub ppl: f64,
    /// The running KL figures, when comparing.
    pub kld: Option<KldLine>,
}

/// What an evaluation measured.
#[derive(Clone, Debug)]
pub struct EvalReport {
    pub n_ctx: usize,
    pub n_chunk: usize,
    /// The perplexity sums (for a comparison: of the model's float −log p, as llama.cpp).
    pub ppl: PplSums,
    /// The KL figures, when comparing.
    pub kld: Option<KldSummary>,
    /// Tokens run through the model (n_chunk·n_ctx).
    pub tokens_evaluated: usize,
    pub wall: Duration,
    pub batch: BatchStats,
}

impl EvalReport {
    /// Wall time per evaluated token.
    pub fn per_token(&self) -> Duration {
        self.wall / self.tokens_evaluated.max(1) as u32
    }
}

/// Why an evaluation failed.
#[derive(Debug, Error)]
pub enum EvalError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    File(#[from] LogitsFileError),
    #[error("interrupted after {done} of {n_chunk} chunks")]
    Interrupted { done: usize, n_chunk: usize },
    #[error("perplexity runs on the CPU backend: the CUDA backend computes one row of logits per sweep (use --device cpu)")]
    CudaBackend,
}

impl EvalError {
    /// Whether the input (model, text, file) is at fault rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        match self {
            EvalError::Engine(e) => e.is_bad_input(),
            EvalError::File(LogitsFileError::Io { .. }) | EvalError::Interrupted { .. } => false,
            EvalError::File(_) | EvalError::CudaBackend => true,
        }
    }
}

/// Evaluates `plan` on `engine`; `on_chunk` sees each chunk's running figures in order, and
/// `stop` ends the run early (Ctrl-C) at a step boundary.
pub fn evaluate(
    engine: &mut Engine,
    plan: &ChunkPlan,
    mode: EvalMode,
    opts: &EvalOptions,
    on_chunk: &mut dyn FnMut(&ChunkLine),
    stop: &dyn Fn() -> bool,
) -> Result<EvalReport, EvalError> {
    if engine.on_gpu() {
        return Err(EvalError::CudaBackend);
    }
    let n_vocab = engine.spec().n_vocab;
    let started = Instant::now();
    let mut batch = BatchOptions::new(opts.n_seq);
    batch.n_ctx = Some(plan.n_ctx);
    batch.step_tokens = opts.step_tokens;
    // Every scored row of the sweep's chunks, and their last rows.
    batch.logit_rows = (opts.n_seq * (plan.n_ctx - plan.first))
        .min(opts.step_tokens)
        .max(opts.n_seq);
    let comparing = matches!(mode, EvalMode::Compare(_));
    let mut d = EvalDriver {
        plan,
        mode,
        n_vocab,
        next_chunk: 0,
        rows_done: vec![0; plan.n_chunk],
        nll: vec![0.0; if comparing { 0 } else { plan.scored() }],
        kld: vec![KldToken::default(); if comparing { plan.scored() } else { 0 }],
        words: vec![0; row_words(n_vocab)],
        scratch: vec![0; row_words(n_vocab)],
        reported: 0,
        ppl: PplSums::default(),
        kld_sums: KldSums::default(),
        on_chunk,
        error: None,
        stop,
    };
    let stats = engine.run_batch(&batch, &mut d);
    if let Some(e) = d.error.take() {
        return Err(e);
    }
    let stats = stats?;
    if d.reported < plan.n_chunk {
        return Err(EvalError::Interrupted {
            done: d.reported,
            n_chunk: plan.n_chunk,
        });
    }
    let kld = match d.mode {
        EvalMode::WriteBase(w) => {
            w.finish()?;
            None
        }
        EvalMode::Compare(_) => {
            let mut klds: Vec<f32> = d.kld.iter().map(|t| t.kld as f32).collect();
            let mut p_diffs: Vec<f32> = d.kld.iter().map(|t| t.p_diff).collect();
            Some(d.kld_sums.summary(&mut klds, &mut p_diffs))
        }
        EvalMode::Perplexity => None,
    };
    debug_assert_eq!(d.ppl.count, plan.scored());
    Ok(EvalReport {
        n_ctx: plan.n_ctx,
        n_chunk: plan.n_chunk,
        ppl: d.ppl,
        kld,
        tokens_evaluated: plan.n_chunk * plan.n_ctx,
        wall: started.elapsed(),
        batch: stats,
    })
}

/// The engine's driver for one evaluation.
struct EvalDriver<'a> {
    plan: &'a ChunkPlan,
    mode: EvalMode,
    n_vocab: usize,
    next_chunk: usize,
    /// Scored rows received, per chunk.
    rows_done: Vec<usize>,
    /// Per scored token, in (chunk, position) order: −log p, or the comparison's record.
    nll: Vec<f64>,
    kld: Vec<KldToken>,
    /// One base row, and this model's row encoded the same way.
    words: Vec<u16>,
    scratch: Vec<u16>,
    /// Chunks folded into the sums and reported.
    reported: usize,
    ppl: PplSums,
    kld_sums: KldSums,
    on_chunk: &'a mut dyn FnMut(&ChunkLine),
    error: Option<EvalError>,
    stop: &'a dyn Fn() -> bool,
}

impl EvalDriver<'_> {
    /// Scores one row; an error is kept and ends the run.
    fn score(&mut self, c: usize, pos: usize, logits: &[f32]) -> Result<(), EvalError> {
        let r = pos - self.plan.first;
        let i = c * self.plan.scored_per_chunk() + r;
        let tok = self.plan.target(c, pos);
        match &mut self.mode {
            EvalMode::Perplexity => self.nll[i] = nll(logits, tok),
            EvalMode::WriteBase(w) => {
                self.nll[i] = encode_row(logits, tok, &mut self.words);
                w.write_row(c, r, &self.words)?;
            }
            EvalMode::Compare(base) => {
                base.read_row(c, r, &mut self.words)?;
                self.kld[i] = kld_token(logits, &self.words, tok, &mut self.scratch);
            }
        }
        Ok(())
    }

    /// Folds every complete chunk that is next in order into the sums and reports it.
    fn flush(&mut self) {
        let per = self.plan.scored_per_chunk();
        while self.reported < self.plan.n_chunk && self.rows_done[self.reported] == per {
            let c = self.reported;
            let range = c * per..(c + 1) * per;
            let line = if self.kld.is_empty() {
                for &v in &self.nll[range] {
                    self.ppl.add(v);
                }
                ChunkLine {
                    chunk: c + 1,
                    ppl: self.ppl.ppl(),
                    kld: None,
                }
            } else {
                for t in &self.kld[range] {
                    self.kld_sums.add(t);
                    self.ppl.add(f64::from(t.nll));
                }
                ChunkLine {
                    chunk: c + 1,
                    ppl: self.ppl.ppl(),
                    kld: Some(self.kld_sums.line()),
                }
            };
            (self.on_chunk)(&line);
            self.reported += 1;
        }
    }
}

impl Driver for EvalDriver<'_> {
    fn next(&mut self, _idle: bool) -> Option<SeqRequest> {
        if self.next_chunk >= self.plan.n_chunk || self.error.is_some() || (self.stop)() {
            return None;
        }
        let c = self.next_chunk;
        self.next_chunk += 1;
        let greedy = SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        };
        Some(SeqRequest {
            id: c as u64,
            prompt: self.plan.prompt(c),
            max_tokens: 0,
            sampler: Sampler::new(greedy, self.n_vocab),
            score_from: Some(self.plan.first),
        })
    }

    fn is_eog(&self, _token: u32) -> bool {
        false
    }

    fn token(&mut self, _id: u64, _token: u32, _logits: &[f32]) -> Verdict {
        // Scoring sequences generate nothing (max_tokens 0).
        Verdict::Stop(StopReason::Length)
    }

    fn prompt_logits(&mut self, id: u64, pos: usize, logits: &[f32]) {
        let c = id as usize;
        // The last position predicts past the chunk: unused, as in llama.cpp.
        if self.error.is_some() || pos + 1 >= self.plan.n_ctx || pos < self.plan.first {
            return;
        }
        if let Err(e) = self.score(c, pos, logits) {
            self.error = Some(e);
            return;
        }
        self.rows_done[c] += 1;
        self.flush();
    }

    fn finished(&mut self, _id: u64, result: Result<Finished, EngineError>) {
        if let Err(e) = result {
            self.error.get_or_insert(e.into());
        }
    }

    fn cancelled(&mut self, _id: u64) -> bool {
        self.error.is_some() || (self.stop)()
    }
}

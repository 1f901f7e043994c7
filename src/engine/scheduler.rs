//! The engine core every frontend drives: a set of live sequences, each with its own KV slab,
//! sampler and stop rules. One step is one sweep over the layers that advances every live
//! sequence: decode tokens and prompt chunks share the step, so a streamed layer is read once
//! for all of them. Sequences join and leave at step boundaries. `sluice run` is this with one
//! sequence ([`Engine::generate`](super::session::Engine::generate)), `sluice batch` with many.
//!
//! Each sequence computes exactly what it would alone: its prompt is cut into the same
//! [`PREFILL_BATCH_MAX`] chunks (a chunk split across steps keeps its "batched" attention
//! order), every matrix product is per column, and attention reads only its own cache.

use std::time::{Duration, Instant};

use sluice_loader::roles::TensorRole;
use thiserror::Error;

use super::executor::{ExecError, Globals, Narrowing, StepBatch, StreamedHead, Sweep, SweepTimes};
use super::head_rows::HeadRows;
use super::sampler::Sampler;
use super::session::{Engine, EngineError, StopReason, PREFILL_BATCH_MAX};
use super::store::GlobalMatrix;
use crate::cpu::Isa;
use crate::cuda::release::Loans;
use crate::model::forward::{EmbeddingRows, ResidentRows, RunState};
use crate::model::kv_cache::KV_PAD;
use crate::model::kv_slabs::{KvSlabs, SlabRefused};
use crate::model::segment::Segment;
use crate::model::weights::WeightError;

/// Most sequences one step may advance (each decode token takes one row of a step's batch,
/// and prompt chunks need room beside them).
pub const MAX_BATCH_LIMIT: usize = PREFILL_BATCH_MAX / 2;

/// Most tokens one step may compute: several sequences' prompt chunks share a sweep (a
/// perplexity batch of four 512-token chunks reads each streamed layer once).
pub const STEP_TOKENS_MAX: usize = 8 * PREFILL_BATCH_MAX;

/// A sequence a driver asks the engine to run.
pub struct SeqRequest {
    /// The caller's name for the sequence, echoed in every callback.
    pub id: u64,
    /// The prompt's token ids (at least one, fewer than the context).
    pub prompt: Vec<u32>,
    /// Most tokens to generate (clipped to what the context leaves); 0 only scores the prompt
    /// (see `score_from`), which may then fill the whole context.
    pub max_tokens: usize,
    /// This sequence's sampler (its own RNG and penalty history).
    pub sampler: Sampler,
    /// The first prompt position whose logits go to [`Driver::prompt_logits`] (perplexity
    /// scores every position from here to the prompt's end); `None`: only the last.
    pub score_from: Option<usize>,
}

/// What a driver says of a sequence's new token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep generating.
    Continue,
    /// Stop here, for this reason (a stop string, a cancelled request, Ctrl-C).
    Stop(StopReason),
}

/// A sequence that ended, and its timings.
#[derive(Clone, Debug)]
pub struct Finished {
    pub id: u64,
    /// The generated ids (the end-of-generation token excluded).
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub stop_reason: StopReason,
    /// The logits after the prompt, when [`BatchOptions::keep_first_logits`] asked for them.
    pub first_logits: Option<Vec<f32>>,
    /// When its first step began, when its prompt was done (before sampling), when it ended.
    pub started: Instant,
    pub prefilled: Instant,
    pub ended: Instant,
    /// Steps in which it decoded a token.
    pub decode_steps: usize,
}

/// The caller's side of a batch run: it hands sequences in and takes tokens out.
pub trait Driver {
    /// The next sequence to admit before this step, if any. `idle` says no sequence is live: a
    /// server may block here until a request comes; `None` while idle ends the run.
    fn next(&mut self, idle: bool) -> Option<SeqRequest>;
    /// Whether `token` ends generation (the model's end-of-generation tokens).
    fn is_eog(&self, token: u32) -> bool;
    /// A sequence's new token and the logits it was drawn from (after the repetition
    /// penalty); the verdict says whether it goes on.
    fn token(&mut self, id: u64, token: u32, logits: &[f32]) -> Verdict;
    /// The logits after prompt position `pos` of a sequence that asked for them
    /// ([`SeqRequest::score_from`]), in position order, before any sampling.
    fn prompt_logits(&mut self, _id: u64, _pos: usize, _logits: &[f32]) {}
    /// A sequence ended (its KV slab is already freed), or was refused at admission.
    fn finished(&mut self, id: u64, result: Result<Finished, EngineError>);
    /// Whether a live sequence is to be dropped at this step boundary (its caller left).
    fn cancelled(&mut self, _id: u64) -> bool {
        false
    }
    /// After each step: the run's figures so far and the bytes of the live KV slabs.
    fn step(&mut self, _stats: &BatchStats, _kv_bytes: u64) {}
}

/// How a batch run is sized.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Most sequences live at once (1..=[`MAX_BATCH_LIMIT`]).
    pub max_batch: usize,
    /// Most positions one sequence may hold (prompt and generated tokens); `None`: the model's
    /// context length.
    pub n_ctx: Option<usize>,
    /// Bytes the live sequences' KV slabs may take together; `None`: `max_batch` full-context
    /// slabs.
    pub kv_budget: Option<u64>,
    /// Most tokens one step computes (decode tokens and prompt chunks together); at least
    /// `max_batch`, at most [`STEP_TOKENS_MAX`]. Smaller runs allocate smaller buffers.
    pub step_tokens: usize,
    /// Most rows of logits one step computes (a decode token or a prompt's end takes one, a
    /// scored prompt position one); at least `max_batch`, at most `step_tokens`. Each row
    /// takes the vocabulary's size in f32s.
    pub logit_rows: usize,
    /// Keep each sequence's logits after its prompt (for comparisons with a reference).
    pub keep_first_logits: bool,
}

impl BatchOptions {
    /// `max_batch` sequences, full-size steps, the model's context.
    pub fn new(max_batch: usize) -> BatchOptions {
        BatchOptions {
            max_batch,
            n_ctx: None,
            kv_budget: None,
            step_tokens: PREFILL_BATCH_MAX,
            logit_rows: max_batch,
            keep_first_logits: false,
        }
    }
}

/// Why a batch run could not start.
#[derive(Debug, Error)]
pub enum BatchError {
    #[error("the batch size must be between 1 and {MAX_BATCH_LIMIT}, not {0}")]
    MaxBatch(usize),
    #[error(
        "a step must hold between max_batch ({max_batch}) and {STEP_TOKENS_MAX} tokens, not {step}"
    )]
    StepTokens { step: usize, max_batch: usize },
    #[error("a step must compute between max_batch ({max_batch}) and step_tokens ({step}) rows of logits, not {rows}")]
    LogitRows {
        rows: usize,
        step: usize,
        max_batch: usize,
    },
    #[error("the context limit {n_ctx} is outside 2..={model} (the model's context)")]
    Context { n_ctx: usize, model: usize },
    #[error("batched decode (more than one sequence per sweep) runs on the CPU backend; the CUDA backend runs one sequence at a time (use --device cpu, or a batch size of 1)")]
    CudaBatch,
    #[error("the sequence needs {need} bytes of KV cache but the KV budget is {budget} bytes")]
    KvTooSmall { need: u64, budget: u64 },
    /// The model's output held NaN or infinity: its weights do, or they overflow.
    #[error("the model's logits are not finite (NaN or infinity) at position {pos}: the weights hold NaN or infinity, or overflow (a damaged file?)")]
    NonFiniteLogits { pos: usize },
}

/// What a batch run did, summed over its steps.
#[derive(Clone, Debug, Default)]
pub struct BatchStats {
    /// Time to read the resident weights at the start (and rearrange them).
    pub resident_load: Duration,
    /// Resident weight bytes rearranged into the 16-row layout at the start (`cpu::rows16`).
    pub interleaved_bytes: u64,
    /// Sweeps over the layers.
    pub steps: usize,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub io_wait: Duration,
    pub compute: Duration,
    /// Bytes the streaming prefetcher read during the run.
    pub streamed_bytes: u64,
    /// Embedding rows taken from the rows a streamed tied head kept ([`HeadRows`]).
    pub embd_rows_from_head: u64,
    /// Embedding rows read on demand, and how many of them a streamed untied head's
    /// candidates had read ahead into the page cache (0 when the embeddings are resident).
    pub embd_rows_read: u64,
    pub embd_rows_read_ahead: u64,
    /// Most sequences live at once, and the most bytes their KV slabs took.
    pub peak_live: usize,
    pub peak_kv_bytes: u64,
    /// Bytes of the activation buffers and logits.
    pub run_state_bytes: u64,
    /// Wall time of the whole run.
    pub wall: Duration,
}

/// One live sequence.
struct Live {
    id: u64,
    prompt: Vec<u32>,
    max_tokens: usize,
    sampler: Sampler,
    score_from: Option<usize>,
    slot: usize,
    /// Prompt tokens already computed.
    fed: usize,
    /// The token to compute next once the prompt is done (the last one sampled).
    next: u32,
    tokens: Vec<u32>,
    first_logits: Option<Vec<f32>>,
    started: Option<Instant>,
    prefilled: Option<Instant>,
    decode_steps: usize,
    /// The GPU's state for this sequence, when the GPU computes.
    device: Option<crate::cuda::DeviceState>,
}

impl Live {
    fn in_prompt(&self) -> bool {
        self.fed < self.prompt.len()
    }

    /// Rows of logits that prompt positions `a..b` need: the scored ones, and the prompt's
    /// last (its first token is sampled from it, or it is scored).
    fn prompt_rows(&self, a: usize, b: usize) -> usize {
        let from = self.score_from.unwrap_or(self.prompt.len());
        let scored = b.saturating_sub(a.max(from));
        let last = self.prompt.len() - 1;
        scored + usize::from(b == self.prompt.len() && last < from)
    }

    /// The most prompt tokens from `fed` (up to `want`) whose logit rows fit in `rows`.
    fn take_within(&self, want: usize, rows: usize) -> usize {
        if self.prompt_rows(self.fed, self.fed + want) <= rows {
            return want;
        }
        // Unscored positions cost nothing until the prompt ends; past `score_from` each
        // position costs one row. `want` ends before the prompt does, or it would fit.
        let from = self.score_from.unwrap_or(self.prompt.len());
        let free = from.saturating_sub(self.fed).min(want);
        let take = free + rows.min(want - free);
        if self.prompt_rows(self.fed, self.fed + take) <= rows {
            take
        } else {
            take.saturating_sub(1)
        }
    }

    /// Tokens in its cache.
    fn pos(&self) -> usize {
        self.fed + self.tokens.len().saturating_sub(1)
    }
}

/// Who owns each row of logits of a step, and what the row is for.
#[derive(Clone, Copy)]
struct Owner {
    live: usize,
    /// The prompt is done with this step (sample its first token).
    prefill_done: bool,
    /// The prompt position this row scores, for the driver.
    scored: Option<usize>,
}

/// How a live sequence ends after a step.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// It stopped: the driver gets what it produced.
    Stop(StopReason),
    /// Its logits at this sequence position were not finite: the driver gets an error.
    NonFinite { pos: usize },
}

/// The step being assembled, reused from step to step (no allocation per token).
struct StepBuf {
    tokens: Vec<u32>,
    segs: Vec<Segment>,
    logit_rows: Vec<usize>,
    /// One per entry of `logit_rows`.
    owners: Vec<Owner>,
    decoding: Vec<usize>,
    /// Live indices that end after this step, and how.
    stopped: Vec<(usize, Ending)>,
}

impl StepBuf {
    fn new(step_tokens: usize, max_batch: usize, logit_rows: usize) -> StepBuf {
        StepBuf {
            tokens: Vec::with_capacity(step_tokens),
            segs: Vec::with_capacity(step_tokens),
            logit_rows: Vec::with_capacity(logit_rows),
            owners: Vec::with_capacity(logit_rows),
            decoding: Vec::with_capacity(max_batch),
            stopped: Vec::with_capacity(max_batch),
        }
    }

    /// Lays out one step: every decoding sequence's token first, then prompt chunks in
    /// admission order while the step has room for their tokens and rows of logits.
    fn assemble(&mut self, live: &[Live], step_tokens: usize, logit_rows: usize) {
        self.tokens.clear();
        self.segs.clear();
        self.logit_rows.clear();
        self.owners.clear();
        self.decoding.clear();
        for (i, s) in live.iter().enumerate().filter(|(_, s)| !s.in_prompt()) {
            let row = self.tokens.len();
            self.tokens.push(s.next);
            self.segs.push(Segment {
                row0: row,
                n: 1,
                pos0: s.pos(),
                slot: s.slot,
                batched: false,
            });
            self.logit_rows.push(row);
            self.owners.push(Owner {
                live: i,
                prefill_done: false,
                scored: None,
            });
            self.decoding.push(i);
        }
        for (i, s) in live.iter().enumerate().filter(|(_, s)| s.in_prompt()) {
            let room = step_tokens - self.tokens.len();
            if room == 0 {
                break;
            }
            // The chunk this token would be in alone, and how much of it fits.
            let chunk0 = s.fed / PREFILL_BATCH_MAX * PREFILL_BATCH_MAX;
            let chunk_end = (chunk0 + PREFILL_BATCH_MAX).min(s.prompt.len());
            let rows_left = logit_rows - self.logit_rows.len();
            let take = s.take_within((chunk_end - s.fed).min(room), rows_left);
            if take == 0 {
                continue;
            }
            let row = self.tokens.len();
            self.tokens
                .extend_from_slice(&s.prompt[s.fed..s.fed + take]);
            self.segs.push(Segment {
                row0: row,
                n: take,
                pos0: s.fed,
                slot: s.slot,
                batched: chunk_end - chunk0 > 1,
            });
            let from = s.score_from.unwrap_or(s.prompt.len()).max(s.fed);
            for pos in from..s.fed + take {
                self.logit_rows.push(row + (pos - s.fed));
                self.owners.push(Owner {
                    live: i,
                    prefill_done: pos + 1 == s.prompt.len(),
                    scored: Some(pos),
                });
            }
            let end = s.fed + take;
            if end == s.prompt.len() && end <= from {
                self.logit_rows.push(row + take - 1);
                self.owners.push(Owner {
                    live: i,
                    prefill_done: true,
                    scored: None,
                });
            }
            debug_assert!(self.logit_rows.len() <= logit_rows);
        }
    }
}

impl Engine {
    /// Runs sequences from `driver` until it has none left: each step admits what fits (up to
    /// `opts.max_batch` live, within the KV budget), sweeps the layers once for every live
    /// sequence, samples, and retires the sequences that stopped.
    pub fn run_batch(
        &mut self,
        opts: &BatchOptions,
        driver: &mut dyn Driver,
    ) -> Result<BatchStats, EngineError> {
        let run_started = Instant::now();
        let model_ctx = self.model.spec.context_length;
        let n_ctx = opts.n_ctx.unwrap_or(model_ctx);
        if opts.max_batch == 0 || opts.max_batch > MAX_BATCH_LIMIT {
            return Err(BatchError::MaxBatch(opts.max_batch).into());
        }
        if opts.step_tokens < opts.max_batch || opts.step_tokens > STEP_TOKENS_MAX {
            return Err(BatchError::StepTokens {
                step: opts.step_tokens,
                max_batch: opts.max_batch,
            }
            .into());
        }
        if opts.logit_rows < opts.max_batch || opts.logit_rows > opts.step_tokens {
            return Err(BatchError::LogitRows {
                rows: opts.logit_rows,
                step: opts.step_tokens,
                max_batch: opts.max_batch,
            }
            .into());
        }
        if n_ctx < 2 || n_ctx > model_ctx {
            return Err(BatchError::Context {
                n_ctx,
                model: model_ctx,
            }
            .into());
        }
        let on_gpu = self.cuda.is_some();
        if on_gpu && opts.max_batch > 1 {
            return Err(BatchError::CudaBatch.into());
        }
        let kv_dim = self.model.spec.kv_dim();
        // On the GPU the host keeps only the logits: no host KV cache, one-token buffers.
        // A slab holds its positions rounded up to KV_PAD, and attention reads that far.
        let host_ctx = if on_gpu {
            1
        } else {
            n_ctx.div_ceil(KV_PAD) * KV_PAD
        };
        let probe = KvSlabs::new(self.cfg.n_layer, kv_dim, 0, 0);
        let kv_budget = opts
            .kv_budget
            .unwrap_or_else(|| opts.max_batch as u64 * probe.slab_bytes(host_ctx));
        let mut slabs = KvSlabs::new(self.cfg.n_layer, kv_dim, opts.max_batch, kv_budget);

        let held_started = Instant::now();
        // Kept from an earlier batch, or read now (an error drops it: the next batch reads again).
        let mut held = match self.held.take() {
            Some(h) => h,
            None => self.store.hold()?,
        };
        let interleaved_bytes =
            if !on_gpu && !held.interleaved && Isa::current().interleaves_resident() {
                held.interleave(&self.model.extents, &self.plan.resident, &self.pool)
                    .map_err(ExecError::from)?
            } else {
                0
            };
        let globals = Globals::view(&self.model.extents, &held).map_err(ExecError::from)?;
        let mut stats = BatchStats {
            resident_load: held_started.elapsed(),
            interleaved_bytes,
            ..BatchStats::default()
        };
        let step_tokens = opts.step_tokens;
        // On the GPU the host computes nothing: one-token buffers (the logits are its output).
        let host_batch = if on_gpu { 1 } else { step_tokens };
        let mut st = RunState::new(
            &self.cfg,
            host_batch,
            host_ctx,
            opts.logit_rows,
            Vec::new(),
            self.pool.n_threads(),
        );
        if let Some(r) = self.plan.head_ranges.iter().map(|r| r.n_rows).max() {
            st.reserve_head_range(r);
        }
        st.reserve_piece_rows(self.store.piece_rows_max());
        stats.run_state_bytes = st.bytes() as u64;
        let host_slots = self
            .store
            .streamer
            .as_ref()
            .map_or(1, |p| p.reader().ring().slot_count());
        let mut loans = Loans::new(host_slots);
        let head = GlobalMatrix::head(&self.model.extents)
            .filter(|_| !self.plan.head_ranges.is_empty())
            .map(|m| StreamedHead {
                ty: m.slice.ty,
                row_elems: m.row_elems(),
                ranges: &self.plan.head_ranges,
            });
        let sweep = Sweep {
            model: &self.model,
            cfg: &self.cfg,
            resident: &self.plan.resident,
            store: &self.store,
            held: &held,
            globals: &globals,
            head,
            pool: &self.pool,
            narrowing: Narrowing::default(),
        };
        let missing_embd = || {
            EngineError::from(ExecError::from(WeightError::Missing {
                layer: None,
                role: TensorRole::TokenEmbd,
            }))
        };
        // With a streamed head and on-demand embeddings, the head's best candidates give the
        // next step's rows: kept from the head itself when tied, read ahead when not.
        let tied = GlobalMatrix::tied(&self.model.extents);
        let mut kept = match (&head, &self.embd_reader) {
            (Some(_), Some(_)) if tied && !on_gpu => GlobalMatrix::head(&self.model.extents)
                .map(|m| HeadRows::new(m.on_disk.row_bytes as usize, opts.max_batch)),
            (Some(_), Some(_)) if !on_gpu => Some(HeadRows::ids_only(opts.max_batch)),
            _ => None,
        };
        let rows_before = self.embd_reader.as_ref().map_or((0, 0), |r| r.rows_read());
        let mut resident_embd = globals.token_embd.map(ResidentRows::new);
        let embd: &mut dyn EmbeddingRows = match (&mut self.embd_reader, &mut resident_embd) {
            (_, Some(t)) => t,
            (Some(r), None) => r,
            (None, None) => return Err(missing_embd()),
        };
        let streamed_before = self.store.streamed_bytes_read();
        let mut times = SweepTimes::default();
        let (cuda, cfg, extents, layer_rec) = (
            &mut self.cuda,
            &self.cfg,
            &self.model.extents,
            &mut self.layer_rec,
        );
        // A sequence that only scores its prompt needs no position for a generated token.
        let check_prompt = |p: &[u32], max_tokens: usize| -> Result<(), EngineError> {
            if p.is_empty() {
                return Err(EngineError::EmptyPrompt);
            }
            if p.len() + usize::from(max_tokens > 0) > n_ctx {
                return Err(EngineError::PromptTooLong {
                    prompt: p.len(),
                    context: n_ctx,
                });
            }
            Ok(())
        };

        let mut live: Vec<Live> = Vec::with_capacity(opts.max_batch);
        let mut waiting: Option<SeqRequest> = None;
        let mut buf = StepBuf::new(step_tokens, opts.max_batch, opts.logit_rows);
        loop {
            // Step boundary: drop cancelled sequences, then admit what fits.
            let mut i = 0;
            while i < live.len() {
                if driver.cancelled(live[i].id) {
                    let s = live.remove(i);
                    retire(s, StopReason::Interrupted, &mut slabs, driver);
                } else {
                    i += 1;
                }
            }
            while live.len() < opts.max_batch {
                let Some(req) = waiting.take().or_else(|| driver.next(live.is_empty())) else {
                    break;
                };
                if let Err(e) = check_prompt(&req.prompt, req.max_tokens) {
                    driver.finished(req.id, Err(e));
                    continue;
                }
                let max_tokens = req.max_tokens.min(n_ctx - req.prompt.len());
                let seq_ctx = if on_gpu {
                    1
                } else {
                    req.prompt.len() + max_tokens
                };
                let slot = match slabs.alloc(seq_ctx) {
                    Ok(slot) => slot,
                    Err(SlabRefused::OverBudget { need, .. }) if live.is_empty() => {
                        let e = BatchError::KvTooSmall {
                            need,
                            budget: slabs.budget_bytes(),
                        };
                        driver.finished(req.id, Err(e.into()));
                        continue;
                    }
                    Err(_) => {
                        // Waits for a live sequence to leave and free its slab.
                        waiting = Some(req);
                        break;
                    }
                };
                let device = match cuda.as_mut() {
                    Some(g) => {
                        let batch = req.prompt.len().min(PREFILL_BATCH_MAX);
                        match g.start(cfg, &globals, batch, req.prompt.len() + max_tokens) {
                            Ok(d) => Some(d),
                            Err(e) => {
                                slabs.free(slot);
                                return Err(e.into());
                            }
                        }
                    }
                    None => None,
                };
                let mut sampler = req.sampler;
                for &t in &req.prompt {
                    sampler.observe(t);
                }
                stats.prompt_tokens += req.prompt.len();
                live.push(Live {
                    id: req.id,
                    prompt: req.prompt,
                    max_tokens,
                    sampler,
                    score_from: req.score_from,
                    slot,
                    fed: 0,
                    next: 0,
                    tokens: Vec::with_capacity(max_tokens),
                    first_logits: None,
                    started: None,
                    prefilled: None,
                    decode_steps: 0,
                    device,
                });
            }
            if live.is_empty() {
                break;
            }
            stats.peak_live = stats.peak_live.max(live.len());
            stats.peak_kv_bytes = stats.peak_kv_bytes.max(slabs.live_bytes());

            // One sweep for every live sequence.
            buf.assemble(&live, step_tokens, opts.logit_rows);
            let now = Instant::now();
            for s in &mut live {
                s.started.get_or_insert(now);
            }
            let batch = StepBatch {
                tokens: &buf.tokens,
                segs: &buf.segs,
                logit_rows: &buf.logit_rows,
            };
            match cuda.as_mut() {
                Some(g) => {
                    let s = &mut live[0];
                    let d = s.device.as_mut().ok_or(BatchError::CudaBatch)?;
                    g.sweep(
                        cfg,
                        extents,
                        sweep.store,
                        &held,
                        globals.token_embd.as_ref().ok_or_else(missing_embd)?,
                        batch.tokens,
                        batch.segs[0].pos0,
                        d,
                        &mut loans,
                        st.logits_mut(0),
                        &mut times,
                    )?;
                }
                None => sweep.run(
                    embd,
                    kept.as_mut(),
                    &batch,
                    &mut st,
                    &mut slabs,
                    &mut times,
                    layer_rec.as_mut(),
                )?,
            }
            stats.steps += 1;
            let swept = Instant::now();
            for seg in &buf.segs {
                let s = live
                    .iter_mut()
                    .find(|s| s.slot == seg.slot)
                    .expect("every segment belongs to a live sequence");
                if s.in_prompt() {
                    s.fed += seg.n;
                }
            }
            for &i in &buf.decoding {
                live[i].decode_steps += 1;
            }

            // Sample where the head computed logits; retire what stopped.
            let stopped = &mut buf.stopped;
            stopped.clear();
            for (k, o) in buf.owners.iter().enumerate() {
                let s = &mut live[o.live];
                // NaN or infinite weights (a damaged or hostile file) make every later logit
                // NaN: sampling would pick token 0 for ever, scores would be NaN. Fail the
                // sequence instead, once however many of its rows this step scores.
                if !crate::model::ops::all_finite(st.logits(k)) {
                    if !stopped.iter().any(|&(i, _)| i == o.live) {
                        let pos = o.scored.unwrap_or(s.prompt.len() + s.tokens.len() - 1);
                        stopped.push((o.live, Ending::NonFinite { pos }));
                    }
                    continue;
                }
                if let Some(pos) = o.scored {
                    driver.prompt_logits(s.id, pos, st.logits(k));
                }
                if !o.prefill_done && o.scored.is_some() {
                    continue;
                }
                if o.prefill_done {
                    s.prefilled = Some(swept);
                    if opts.keep_first_logits {
                        s.first_logits = Some(st.logits(k).to_vec());
                    }
                    if s.max_tokens == 0 {
                        stopped.push((o.live, Ending::Stop(StopReason::Length)));
                        continue;
                    }
                }
                let next = s.sampler.sample(st.logits_mut(k));
                if driver.is_eog(next) {
                    stopped.push((o.live, Ending::Stop(StopReason::Eos)));
                    continue;
                }
                s.sampler.observe(next);
                s.tokens.push(next);
                s.next = next;
                stats.generated_tokens += 1;
                if let Verdict::Stop(r) = driver.token(s.id, next, st.logits(k)) {
                    stopped.push((o.live, Ending::Stop(r)));
                } else if s.tokens.len() >= s.max_tokens {
                    stopped.push((o.live, Ending::Stop(StopReason::Length)));
                }
            }
            stats.io_wait = times.io_wait;
            stats.compute = times.compute;
            stats.streamed_bytes = self.store.streamed_bytes_read() - streamed_before;
            driver.step(&stats, slabs.live_bytes());
            // Highest index first, so the indices still to remove stay valid.
            stopped.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
            for &(i, how) in stopped.iter() {
                let s = live.remove(i);
                match how {
                    Ending::Stop(why) => retire(s, why, &mut slabs, driver),
                    Ending::NonFinite { pos } => {
                        slabs.free(s.slot);
                        driver.finished(s.id, Err(BatchError::NonFiniteLogits { pos }.into()));
                    }
                }
            }
        }
        stats.io_wait = times.io_wait;
        stats.compute = times.compute;
        stats.streamed_bytes = self.store.streamed_bytes_read() - streamed_before;
        stats.embd_rows_from_head = kept.map_or(0, |k| k.rows_served());
        let rows_after = self.embd_reader.as_ref().map_or((0, 0), |r| r.rows_read());
        stats.embd_rows_read = rows_after.0 - rows_before.0;
        stats.embd_rows_read_ahead = rows_after.1 - rows_before.1;
        stats.wall = run_started.elapsed();
        self.held = Some(held);
        Ok(stats)
    }
}

/// Frees a sequence's slab and reports it to the driver.
fn retire(s: Live, why: StopReason, slabs: &mut KvSlabs, driver: &mut dyn Driver) {
    slabs.free(s.slot);
    let ended = Instant::now();
    let started = s.started.unwrap_or(ended);
    driver.finished(
        s.id,
        Ok(Finished {
            id: s.id,
            prompt_tokens: s.prompt.len(),
            tokens: s.tokens,
            stop_reason: why,
            first_logits: s.first_logits,
            started,
            prefilled: s.prefilled.unwrap_or(ended),
            ended,
            decode_steps: s.decode_steps,
        }),
    );
}

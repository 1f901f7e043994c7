//! The engine a frontend drives: load a model, plan residency, generate tokens.

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_loader::model::{LoadError, ModelFiles};
use sluice_loader::roles::TensorRole;
use sluice_loader::spec::ModelSpec;
use sluice_runtime::ReaderConfig;
use thiserror::Error;

use super::backend::{select, DeviceChoice, Selected};
use super::executor::{check_extent_counts, ExecError};
use super::layer_times::{layer_times_requested, PipelineTimes, SweepRecorder};
use super::memory_limit::{memory_limit, MemoryLimit};
use super::planner::{kv_plan_bytes, plan, Plan, PlanInput};
use super::row_reader::RowReader;
use super::sampler::Sampler;
use super::scheduler::{BatchError, BatchOptions, Driver, Finished, SeqRequest, Verdict};
use super::store::{GlobalMatrix, WeightStore};
use crate::cpu::ThreadPool;
use crate::cuda::{CudaBackend, CudaError};
use crate::model::forward::Config;
use crate::model::weights::check_tensors;

/// Largest number of prompt tokens computed in one sweep; longer prompts take several.
pub const PREFILL_BATCH_MAX: usize = 512;

/// Why loading or running failed; `is_bad_input` tells the CLI which exit code to use.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{path}: {problem}")]
    Model { path: String, problem: String },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("setting up the weight readers: {0}")]
    Runtime(#[from] sluice_runtime::Error),
    #[error("setting up the embedding reader: {0}")]
    EmbeddingReader(#[source] std::io::Error),
    #[error("the prompt has {prompt} tokens but the model's context holds {context}")]
    PromptTooLong { prompt: usize, context: usize },
    #[error("the prompt is empty: it must produce at least one token")]
    EmptyPrompt,
    #[error(transparent)]
    Cuda(#[from] CudaError),
    #[error(transparent)]
    Batch(#[from] BatchError),
}

impl EngineError {
    /// Whether the input (file, options, prompt) is at fault rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            EngineError::Load(_)
                | EngineError::Model { .. }
                | EngineError::PromptTooLong { .. }
                | EngineError::EmptyPrompt
                | EngineError::Batch(_)
        )
    }
}

/// How to load.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Compute threads.
    pub threads: usize,
    /// Layer-weight bytes allowed to stay resident (`None`: the planner's default).
    pub ram_budget: Option<u64>,
    /// Reader settings (io_uring or pread, queue depth, chunk size).
    pub reader: ReaderConfig,
    /// Which backend computes.
    pub device: DeviceChoice,
    /// Layer-weight bytes allowed to stay on the GPU (`None`: what fits).
    pub vram_budget: Option<u64>,
    /// Time every layer of every sweep (read, copy, compute, stall), as `SLUICE_LAYER_TIMES=1`
    /// does; off, nothing is recorded.
    pub layer_times: bool,
    /// Sequences run at once ([`run_batch`](Engine::run_batch)): the planner keeps room for
    /// this many KV caches of the context [`Engine::load`] is given.
    pub max_batch: usize,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `max_tokens` were generated (or the context filled up).
    Length,
    /// The model produced an end-of-generation token.
    Eos,
    /// A stop string of the request was generated.
    Stop,
    /// The caller asked to stop (Ctrl-C).
    Interrupted,
}

impl StopReason {
    /// The name used in `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Length => "length",
            StopReason::Eos => "eos",
            StopReason::Stop => "stop",
            StopReason::Interrupted => "interrupted",
        }
    }
}

/// What a generation produced and how fast.
#[derive(Clone, Debug)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub stop_reason: StopReason,
    /// Time to read the resident weights for this generation.
    pub resident_load: Duration,
    /// Resident weight bytes rearranged into the 16-row layout for it (`cpu::rows16`).
    pub interleaved_bytes: u64,
    pub prefill: Duration,
    pub decode: Duration,
    /// Single-token sweeps run after the prompt.
    pub decode_steps: usize,
    pub io_wait: Duration,
    /// Bytes the streaming prefetcher read during this generation.
    pub streamed_bytes: u64,
    /// Embedding rows taken from a streamed tied head's kept rows, read from disk, and read
    /// ahead of those (see [`BatchStats`](super::scheduler::BatchStats)).
    pub embd_rows_from_head: u64,
    pub embd_rows_read: u64,
    pub embd_rows_read_ahead: u64,
    /// Logits after the prompt (the first step), for comparisons with a reference.
    pub first_logits: Vec<f32>,
    /// Bytes of the KV cache this generation allocated.
    pub kv_cache_bytes: u64,
    /// Bytes of the activation buffers and logits this generation allocated.
    pub run_state_bytes: u64,
}

/// A loaded model, ready to generate.
pub struct Engine {
    pub model: ModelFiles,
    pub cfg: Config,
    pub plan: Plan,
    pub load_time: Duration,
    pub(super) pool: ThreadPool,
    pub(super) store: WeightStore,
    /// The GPU backend, when one computes.
    pub(super) cuda: Option<Box<CudaBackend>>,
    /// Why the CPU computes when `--device auto` found no usable GPU.
    pub cpu_because: Option<String>,
    /// Reads embedding rows on demand when the embeddings are not resident.
    pub(super) embd_reader: Option<RowReader>,
    /// The resident weights, read (and rearranged) by the first batch and kept for the next.
    pub(super) held: Option<super::store::Held<'static>>,
    /// Per-layer times of CPU sweeps, when asked for (the GPU keeps its own).
    pub(super) layer_rec: Option<SweepRecorder>,
    /// The memory limit the default budget was planned against (the tightest of MemAvailable
    /// and the process's cgroups), when one could be read.
    pub memory_limit: Option<MemoryLimit>,
}

impl Engine {
    /// Opens the model, checks it, plans residency for a context of `n_ctx` tokens and sets up
    /// the readers.
    pub fn load(path: &Path, n_ctx: usize, opts: &EngineOptions) -> Result<Engine, EngineError> {
        Engine::from_model(Engine::open_model(path)?, n_ctx, opts)
    }

    /// Opens a model's files and reads their headers (a caller builds the tokenizer from them
    /// before [`Engine::from_model`] starts reading weights, so the two never peak together).
    pub fn open_model(path: &Path) -> Result<ModelFiles, EngineError> {
        Ok(ModelFiles::open(path)?)
    }

    /// [`Engine::load`] on a model already opened.
    pub fn from_model(
        model: ModelFiles,
        n_ctx: usize,
        opts: &EngineOptions,
    ) -> Result<Engine, EngineError> {
        let started = Instant::now();
        let bad = |problem: String| EngineError::Model {
            path: model.path.display().to_string(),
            problem,
        };
        check_tensors(&model.spec, &model.extents).map_err(|e| bad(e.to_string()))?;
        check_extent_counts(&model.extents).map_err(bad)?;
        let cfg = Config::from_spec(&model.spec);
        let (mut cuda, cpu_because) = match select(opts.device, &model.extents, &cfg)? {
            Selected::Cpu { why } => (None, why),
            Selected::Cuda(b) => (Some(b), None),
        };
        let memory_limit = memory_limit();
        let available = memory_limit.as_ref().map_or(0, |l| l.available);
        let mut input = plan_input(&model, &cfg, n_ctx, opts, available).map_err(bad)?;
        let mut plan = plan(&input);
        if let Some(gpu) = cuda.as_mut() {
            // VRAM and RAM layers are both read once into host memory: together they are the
            // prefix the CPU planner keeps resident. The GPU computes the head from VRAM and
            // looks embeddings up on the host, so the globals stay resident too: the host
            // budget is those layers plus every global.
            let tiers = gpu.plan_tiers(
                &cfg,
                n_ctx,
                model.extents.global_bytes(),
                opts.vram_budget,
                plan.budget_bytes,
            )?;
            let host_resident = tiers.host_resident();
            let layers: u64 = input
                .layer_bytes
                .iter()
                .zip(&host_resident)
                .filter(|(_, &r)| r)
                .map(|(b, _)| b)
                .sum();
            let globals =
                input.head_extent_bytes + input.embd_extent_bytes.unwrap_or(0) + input.vector_bytes;
            input.ram_budget = Some(layers + globals);
            // The device copies whole layers out of the ring.
            input.pieces = false;
            plan = super::planner::plan(&input);
            debug_assert_eq!(plan.resident, host_resident);
        }
        let registrar = cuda.as_ref().map(|g| g.registrar());
        let store = WeightStore::new(&model, &plan, &opts.reader, registrar.as_ref())?;
        let embd_reader =
            WeightStore::embedding_reader(&model, &plan).map_err(EngineError::EmbeddingReader)?;
        let pool = ThreadPool::new(opts.threads.max(1));
        let timed = opts.layer_times || layer_times_requested();
        let layer_rec = match cuda.as_mut() {
            Some(g) if timed => {
                g.time_layers()?;
                None
            }
            None if timed => Some(SweepRecorder::new(cfg.n_layer)),
            _ => None,
        };
        Ok(Engine {
            model,
            cfg,
            plan,
            load_time: started.elapsed(),
            pool,
            store,
            cuda,
            cpu_because,
            embd_reader,
            held: None,
            layer_rec,
            memory_limit,
        })
    }

    /// Per-layer read, copy, compute and stall times so far, when layer timing is on.
    pub fn layer_times(&self) -> Option<&PipelineTimes> {
        match &self.cuda {
            Some(g) => g.layer_times(),
            None => self.layer_rec.as_ref().map(|r| &r.times),
        }
    }

    /// The backend computing, for the user: "cpu", or "cuda (device name)".
    pub fn backend_name(&self) -> String {
        match &self.cuda {
            Some(g) => format!("cuda ({})", g.info().name),
            None => "cpu".into(),
        }
    }

    /// Compute threads of the CPU backend.
    pub fn threads(&self) -> usize {
        self.pool.n_threads()
    }

    /// Whether the GPU computes (it runs one sequence per sweep: see `BatchError::CudaBatch`).
    pub fn on_gpu(&self) -> bool {
        self.cuda.is_some()
    }

    /// The GPU tier plan, when the GPU computes.
    pub fn tiers(&self) -> Option<&super::tiers::TierPlan> {
        self.cuda.as_ref().and_then(|g| g.tiers())
    }

    /// The model's hyper-parameters.
    pub fn spec(&self) -> &ModelSpec {
        &self.model.spec
    }

    /// Bytes read from disk by every reader so far.
    pub fn bytes_read(&self) -> u64 {
        let rows = self.embd_reader.as_ref().map_or(0, |r| r.bytes_read());
        self.store.bytes_read() + rows
    }

    /// Bytes of the streaming ring (0 when every weight is resident).
    pub fn ring_bytes(&self) -> u64 {
        self.store.ring_bytes()
    }

    /// How the streaming reader reads (queue depth, chunk size); `None` when nothing streams.
    pub fn streaming_reader(&self) -> Option<ReaderConfig> {
        self.store.streaming_reader()
    }

    /// The streamed layers' prefetcher handle and its planned depth (for the thermal
    /// governor); `None` when every layer is resident.
    pub fn stream_control(&self) -> Option<(sluice_runtime::PrefetchControl, usize)> {
        let p = self.store.streamer.as_ref()?;
        Some((p.control(), p.depth()))
    }

    /// Consumer stall on streamed layers so far.
    pub fn io_stall(&self) -> Duration {
        self.store.streamer.as_ref().map_or(Duration::ZERO, |p| {
            Duration::from_nanos(p.stats().consumer_stall_ns)
        })
    }

    /// Checks that `prompt` can be generated from: not empty, and shorter than the context, so
    /// callers can refuse it before printing anything.
    pub fn check_prompt(&self, prompt: &[u32]) -> Result<(), EngineError> {
        let context = self.model.spec.context_length;
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if prompt.len() >= context {
            return Err(EngineError::PromptTooLong {
                prompt: prompt.len(),
                context,
            });
        }
        Ok(())
    }

    /// Generates up to `max_tokens` after `prompt`; `on_token` sees each token as it is
    /// chosen and returns false to stop (Ctrl-C). Stops early at an end-of-generation token.
    /// This is [`run_batch`](Engine::run_batch) with one sequence.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        sampler: Sampler,
        is_eog: impl Fn(u32) -> bool,
        on_token: impl FnMut(u32) -> bool,
    ) -> Result<Generation, EngineError> {
        self.check_prompt(prompt)?;
        let context = self.model.spec.context_length;
        let max_tokens = max_tokens.min(context - prompt.len());
        let mut opts = BatchOptions::new(1);
        opts.step_tokens = prompt.len().min(PREFILL_BATCH_MAX);
        opts.keep_first_logits = true;
        let mut one = OneSequence {
            request: Some(SeqRequest {
                id: 0,
                prompt: prompt.to_vec(),
                max_tokens,
                sampler,
                score_from: None,
            }),
            is_eog,
            on_token,
            result: None,
        };
        let stats = self.run_batch(&opts, &mut one)?;
        let f = one
            .result
            .unwrap_or_else(|| unreachable!("a run of one admitted sequence reports it"))?;
        Ok(Generation {
            decode_steps: f.decode_steps,
            stop_reason: f.stop_reason,
            resident_load: stats.resident_load,
            interleaved_bytes: stats.interleaved_bytes,
            prefill: f.prefilled.duration_since(f.started),
            decode: f.ended.duration_since(f.prefilled),
            io_wait: stats.io_wait,
            streamed_bytes: stats.streamed_bytes,
            embd_rows_from_head: stats.embd_rows_from_head,
            embd_rows_read: stats.embd_rows_read,
            embd_rows_read_ahead: stats.embd_rows_read_ahead,
            first_logits: f.first_logits.unwrap_or_default(),
            kv_cache_bytes: stats.peak_kv_bytes,
            run_state_bytes: stats.run_state_bytes,
            tokens: f.tokens,
        })
    }
}

/// The driver of [`Engine::generate`]: one sequence, its tokens handed to a callback.
struct OneSequence<E, T> {
    request: Option<SeqRequest>,
    is_eog: E,
    on_token: T,
    result: Option<Result<Finished, EngineError>>,
}

impl<E: Fn(u32) -> bool, T: FnMut(u32) -> bool> Driver for OneSequence<E, T> {
    fn next(&mut self, _idle: bool) -> Option<SeqRequest> {
        self.request.take()
    }

    fn is_eog(&self, token: u32) -> bool {
        (self.is_eog)(token)
    }

    fn token(&mut self, _id: u64, token: u32, _logits: &[f32]) -> Verdict {
        if (self.on_token)(token) {
            Verdict::Continue
        } else {
            Verdict::Stop(StopReason::Interrupted)
        }
    }

    fn finished(&mut self, _id: u64, result: Result<Finished, EngineError>) {
        self.result = Some(result);
    }
}

/// What the planner needs, from the model's extents and the options; an error names a global
/// matrix that cannot be read row by row.
fn plan_input(
    model: &ModelFiles,
    cfg: &Config,
    n_ctx: usize,
    opts: &EngineOptions,
    mem_available: u64,
) -> Result<PlanInput, String> {
    let ext = &model.extents;
    let head = GlobalMatrix::head(ext).ok_or_else(|| {
        "the model has no output or token embedding matrix of whole rows".to_string()
    })?;
    let tied = GlobalMatrix::tied(ext);
    let embd_extent_bytes = if tied {
        None
    } else {
        let embd = GlobalMatrix::find(ext, TensorRole::TokenEmbd)
            .ok_or_else(|| "the model has no token embedding matrix of whole rows".to_string())?;
        Some(embd.extent.len)
    };
    let matrices = head.extent.len + embd_extent_bytes.unwrap_or(0);
    Ok(PlanInput {
        layer_bytes: ext.layer_bytes_all(),
        extent_bytes_max: ext.extent_bytes_max(),
        head: head.on_disk,
        head_extent_bytes: head.extent.len,
        embd_extent_bytes,
        vector_bytes: ext.global_bytes().saturating_sub(matrices),
        alignment_bytes: ext.alignment_bytes,
        kv_cache_bytes: kv_plan_bytes(cfg.n_layer, model.spec.kv_dim(), n_ctx, opts.max_batch),
        ram_budget: opts.ram_budget,
        mem_available,
        pieces: true,
        matrix_row_bytes_max: super::pieces::row_bytes_max(ext),
    })
}

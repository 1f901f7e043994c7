//! sluice as a library: a loaded model with its tokenizer ([`Llm`]), text in and text out.
//!
//! This is the surface the C ABI (`capi/`) and the Python package (`python/`) wrap, and the
//! one a Rust program embeds:
//!
//! ```no_run
//! use sluice::api::{Llm, LlmOptions, Request};
//!
//! let mut llm = Llm::open("smollm2-135m", &LlmOptions::default())?;
//! let done = llm.generate(&Request::new("What color is the sky?").greedy(), |piece| {
//!     print!("{}", piece.text);
//!     true // false stops the generation
//! })?;
//! println!("\n{} tokens, {:?}", done.tokens.len(), done.stop_reason);
//! # Ok::<(), sluice::api::ApiError>(())
//! ```
//!
//! Every generation runs on the engine's batch core ([`Engine::run_batch`]): a request alone
//! computes exactly what `sluice run` computes, and [`Llm::generate_batch`] advances many
//! requests per layer sweep with each one's tokens equal to what it would get alone.

pub mod perplexity;
pub mod prompt;
mod requests;

use std::path::{Path, PathBuf};

pub use sluice_loader::tokenizer::ChatMessage;
use sluice_loader::tokenizer::Tokenizer;
use sluice_runtime::ReaderConfig;
use thiserror::Error;

use crate::engine::backend::DeviceChoice;
use crate::engine::sampler::{SamplerConfig, SamplerError};
use crate::engine::scheduler::{BatchOptions, BatchStats, MAX_BATCH_LIMIT};
use crate::engine::session::{Engine, EngineError, EngineOptions, StopReason};
use crate::eval::EvalError;
pub use perplexity::{Perplexity, PerplexityOptions};
pub use prompt::PromptError;
use requests::{Prepared, RequestsDriver};

/// Positions one sequence may hold by default (prompt and answer), capped by the model's.
pub const DEFAULT_CTX: usize = 4096;

/// Sequences generated together by default in [`Llm::generate_batch`].
pub const DEFAULT_MAX_BATCH: usize = 8;

/// Why a library call failed. [`ApiError::is_bad_input`] tells the caller's input (model
/// file, prompt, option) from a failure of the machine.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The model could not be found (a path that does not exist, an alias not fetched).
    #[error("{0}")]
    ModelNotFound(String),
    /// Loading or running the engine failed.
    #[error(transparent)]
    Engine(Box<EngineError>),
    /// The tokenizer could not be built, or a prompt could not be tokenized.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// A sampling option is out of range.
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// An option is out of range; the sentence names it.
    #[error("{0}")]
    Option(String),
    /// One request of a batch is unusable; the others did not run.
    #[error("request {index}: {source}")]
    Request {
        index: usize,
        #[source]
        source: Box<ApiError>,
    },
    /// A perplexity evaluation failed.
    #[error(transparent)]
    Eval(Box<EvalError>),
    /// The caller's callback asked to stop.
    #[error("cancelled by the caller")]
    Cancelled,
    /// A call panicked inside the engine earlier (a bug in sluice): a frontend that shares the
    /// engine behind a lock refuses to use it again.
    #[error("this engine failed inside an earlier call; free it and open another")]
    Poisoned,
}

// The engine's errors are large; boxed, every `Result<_, ApiError>` stays small.
impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        ApiError::Engine(Box::new(e))
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> ApiError {
        ApiError::Eval(Box::new(e))
    }
}

impl ApiError {
    /// Whether the caller's input (model, prompt, options) is at fault rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ApiError::ModelNotFound(_)
            | ApiError::Prompt(_)
            | ApiError::Sampler(_)
            | ApiError::Option(_) => true,
            ApiError::Engine(e) => e.is_bad_input(),
            ApiError::Request { source, .. } => source.is_bad_input(),
            ApiError::Eval(e) => e.is_bad_input(),
            ApiError::Cancelled | ApiError::Poisoned => false,
        }
    }
}

/// How to load a model. `Default` is what the `sluice` CLI does without options.
#[derive(Clone, Debug)]
pub struct LlmOptions {
    /// Compute threads (`None`: the machine's cores).
    pub threads: Option<usize>,
    /// Bytes of weights kept resident in RAM (`None`: what fits in the memory limit; `Some(0)`
    /// streams every layer from disk for every token).
    pub ram_budget: Option<u64>,
    /// Which backend computes.
    pub device: DeviceChoice,
    /// Bytes of layer weights kept on the GPU (`None`: what fits).
    pub vram_budget: Option<u64>,
    /// Positions one sequence may hold, prompt and answer (capped by the model's context).
    pub ctx: usize,
    /// Most sequences [`Llm::generate_batch`] runs at once (1..=[`MAX_BATCH_LIMIT`]); the
    /// planner keeps room for this many KV caches. The GPU backend runs one at a time.
    pub max_batch: usize,
    /// A tokenizer to use instead of the model's own (a GGUF file or a tokenizer.json).
    pub tokenizer: Option<PathBuf>,
    /// Disk reader settings (io_uring or pread, queue depth, chunk size).
    pub reader: ReaderConfig,
}

impl Default for LlmOptions {
    fn default() -> LlmOptions {
        LlmOptions {
            threads: None,
            ram_budget: None,
            device: DeviceChoice::Auto,
            vram_budget: None,
            ctx: DEFAULT_CTX,
            max_batch: DEFAULT_MAX_BATCH,
            tokenizer: None,
            reader: ReaderConfig::default(),
        }
    }
}

impl LlmOptions {
    /// Checks every option's range, with a sentence naming the option.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.threads == Some(0) || self.threads.is_some_and(|t| t > 1024) {
            return Err(ApiError::Option(format!(
                "threads must be from 1 to 1024, got {}",
                self.threads.unwrap_or(0)
            )));
        }
        if self.ctx < 2 {
            return Err(ApiError::Option(format!(
                "ctx must be at least 2 positions, got {}",
                self.ctx
            )));
        }
        if !(1..=MAX_BATCH_LIMIT).contains(&self.max_batch) {
            return Err(ApiError::Option(format!(
                "max_batch must be from 1 to {MAX_BATCH_LIMIT}, got {}",
                self.max_batch
            )));
        }
        Ok(())
    }
}

/// What a request generates from.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    /// Text: through the chat template as one user turn, unless [`Request::raw`].
    Text(String),
    /// Chat messages, through the chat template.
    Messages(Vec<ChatMessage>),
    /// Token ids, as they are.
    Tokens(Vec<u32>),
}

/// One generation to run: the prompt, how long, how to sample, where to stop.
#[derive(Clone, Debug)]
pub struct Request {
    pub prompt: Prompt,
    /// Most tokens to generate (clipped to what the context leaves).
    pub max_tokens: usize,
    /// The sampler; [`SamplerConfig::default`] is the CLI's default (temperature 0.8).
    pub sampling: SamplerConfig,
    /// Text prompts skip the chat template; BOS exactly as the model's metadata asks.
    pub raw: bool,
    /// Stop strings: the text ends just before the first one generated.
    pub stop: Vec<String>,
}

impl Request {
    /// A text prompt with the CLI's defaults: 128 tokens, temperature 0.8, chat template.
    pub fn new(prompt: impl Into<String>) -> Request {
        Request::from_prompt(Prompt::Text(prompt.into()))
    }

    /// Any prompt with the CLI's defaults.
    pub fn from_prompt(prompt: Prompt) -> Request {
        Request {
            prompt,
            max_tokens: 128,
            sampling: SamplerConfig::default(),
            raw: false,
            stop: Vec::new(),
        }
    }

    /// Greedy decoding (temperature 0: argmax, ties to the lowest id), as llama.cpp's reference
    /// outputs.
    pub fn greedy(mut self) -> Request {
        self.sampling.temperature = 0.0;
        self
    }

    /// At most `n` tokens.
    pub fn max_tokens(mut self, n: usize) -> Request {
        self.max_tokens = n;
        self
    }
}

/// A piece of a generation's text, handed to a streaming callback as tokens come.
#[derive(Clone, Copy, Debug)]
pub struct Piece<'a> {
    /// The request's index in the call (0 for [`Llm::generate`]).
    pub index: usize,
    /// The token just generated; `None` for the text released when the generation ended
    /// (bytes held back as a possible stop string or an unfinished character).
    pub token: Option<u32>,
    /// The text this token released (empty while held back).
    pub text: &'a str,
}

/// What a request produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The generated text, cut before a stop string.
    pub text: String,
    /// The generated token ids (the end-of-generation token excluded).
    pub tokens: Vec<u32>,
    /// The prompt's token ids.
    pub prompt_tokens: Vec<u32>,
    /// Why generation ended.
    pub stop_reason: StopReason,
    /// Seconds from the sequence's first step to its prompt being done.
    pub prefill_s: f64,
    /// Seconds from then to its end.
    pub decode_s: f64,
    /// Layer sweeps that generated a token after the prompt's (decode speed is
    /// `decode_steps / decode_s`).
    pub decode_steps: usize,
}

/// Figures of a whole call (one request or a batch).
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    /// Layer sweeps run.
    pub steps: usize,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Seconds of the whole call.
    pub wall_s: f64,
    /// Seconds the compute waited on the disk.
    pub io_wait_s: f64,
    /// Bytes the streaming prefetcher read.
    pub streamed_bytes: u64,
    /// Most sequences live at once.
    pub peak_live: usize,
}

impl From<&BatchStats> for RunStats {
    fn from(s: &BatchStats) -> RunStats {
        RunStats {
            steps: s.steps,
            prompt_tokens: s.prompt_tokens,
            generated_tokens: s.generated_tokens,
            wall_s: s.wall.as_secs_f64(),
            io_wait_s: s.io_wait.as_secs_f64(),
            streamed_bytes: s.streamed_bytes,
            peak_live: s.peak_live,
        }
    }
}

/// A loaded model with its tokenizer, ready to generate. One call runs at a time (`&mut`);
/// share it between threads behind a mutex.
pub struct Llm {
    engine: Engine,
    tok: Tokenizer,
    ctx: usize,
    max_batch: usize,
    /// The figures of the last generation call.
    last_run: Option<RunStats>,
}

impl Llm {
    /// Opens `model` (a GGUF file, an HF directory, or a cache alias such as `smollm2-135m`),
    /// builds its tokenizer, plans residency for `opts.max_batch` sequences of `opts.ctx`
    /// positions and sets up the readers.
    pub fn open(model: impl AsRef<Path>, opts: &LlmOptions) -> Result<Llm, ApiError> {
        opts.validate()?;
        let arg = model.as_ref().to_string_lossy();
        let path = sluice_loader::cache::resolve(&arg)
            .into_path()
            .map_err(ApiError::ModelNotFound)?;
        // The GPU backend runs one sequence per sweep: with it, a batch's requests run one
        // after another, and the planner keeps room for one KV cache.
        let max_batch = match opts.device {
            DeviceChoice::Cuda => 1,
            _ => opts.max_batch,
        };
        let eng_opts = EngineOptions {
            threads: opts
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            ram_budget: opts.ram_budget,
            reader: opts.reader,
            device: opts.device,
            vram_budget: opts.vram_budget,
            layer_times: false,
            max_batch,
        };
        let mut files = Engine::open_model(&path)?;
        // The tokenizer is built before the engine reads weights, so the two never peak together.
        let tok = prompt::load_tokenizer(&mut files, opts.tokenizer.as_deref())?;
        let engine = Engine::from_model(files, opts.ctx, &eng_opts)?;
        let ctx = opts.ctx.min(engine.spec().context_length);
        let max_batch = if engine.on_gpu() { 1 } else { max_batch };
        Ok(Llm {
            engine,
            tok,
            ctx,
            max_batch,
            last_run: None,
        })
    }

    /// The engine underneath (plan, spec, figures), for callers that need more than text.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine underneath, to drive [`Engine::run_batch`] with a driver of one's own.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tok
    }

    /// Positions one sequence may hold (prompt and answer).
    pub fn ctx(&self) -> usize {
        self.ctx
    }

    /// Most sequences generated at once.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The figures of the last [`generate`](Llm::generate) or
    /// [`generate_batch`](Llm::generate_batch) call that ran (disk bytes, I/O wait, sweeps).
    pub fn last_run(&self) -> Option<&RunStats> {
        self.last_run.as_ref()
    }

    /// The token ids a request's prompt becomes (chat template and BOS as the request says).
    pub fn prompt_tokens(&self, request: &Request) -> Result<Vec<u32>, ApiError> {
        Ok(match &request.prompt {
            Prompt::Text(t) => prompt::prompt_tokens(&self.tok, t, request.raw)?,
            Prompt::Messages(m) => prompt::messages_tokens(&self.tok, m)?,
            Prompt::Tokens(t) => t.clone(),
        })
    }

    /// Generates for one request; `on_piece` sees the text as tokens come and returns false to
    /// stop (the completion then ends with [`StopReason::Interrupted`]).
    pub fn generate(
        &mut self,
        request: &Request,
        mut on_piece: impl FnMut(&Piece) -> bool,
    ) -> Result<Completion, ApiError> {
        let prepared = self.prepare(request)?;
        let (mut done, _) = self.run(vec![prepared], &mut on_piece)?;
        Ok(done
            .pop()
            .unwrap_or_else(|| unreachable!("one request, one result")))
    }

    /// Generates for every request, up to [`max_batch`](Llm::max_batch) per layer sweep, in
    /// the order given; `on_piece` sees every request's text as it comes (`Piece::index`) and
    /// returns false to stop them all. Every request is checked and tokenized before any runs:
    /// one bad request fails the call, naming its index.
    pub fn generate_batch(
        &mut self,
        requests: &[Request],
        mut on_piece: impl FnMut(&Piece) -> bool,
    ) -> Result<(Vec<Completion>, RunStats), ApiError> {
        let prepared = requests
            .iter()
            .enumerate()
            .map(|(index, r)| {
                self.prepare(r).map_err(|e| ApiError::Request {
                    index,
                    source: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.run(prepared, &mut on_piece)
    }

    /// Runs prepared requests on the batch core: the completions in order, and the figures.
    fn run(
        &mut self,
        prepared: Vec<Prepared>,
        on_piece: &mut dyn FnMut(&Piece) -> bool,
    ) -> Result<(Vec<Completion>, RunStats), ApiError> {
        if prepared.is_empty() {
            return Ok((Vec::new(), RunStats::default()));
        }
        let n_vocab = self.engine.spec().n_vocab;
        let mut opts = BatchOptions::new(self.max_batch.min(prepared.len()));
        opts.n_ctx = Some(self.ctx);
        let mut driver = RequestsDriver::new(prepared, &self.tok, n_vocab, on_piece);
        let stats = RunStats::from(&self.engine.run_batch(&opts, &mut driver)?);
        self.last_run = Some(stats.clone());
        Ok((driver.into_results()?, stats))
    }

    /// A request checked against the model and tokenized.
    fn prepare(&self, r: &Request) -> Result<Prepared, ApiError> {
        r.sampling.validate()?;
        if r.max_tokens == 0 {
            return Err(ApiError::Option(
                "max_tokens must be at least 1".to_string(),
            ));
        }
        let prompt = self.prompt_tokens(r)?;
        let n_vocab = self.engine.spec().n_vocab;
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ApiError::Option(format!(
                "token id {bad} is outside the model's vocabulary of {n_vocab}"
            )));
        }
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt.into());
        }
        // `ctx` is the model's context or less: the model's own limit is checked too.
        if prompt.len() >= self.ctx {
            return Err(EngineError::PromptTooLong {
                prompt: prompt.len(),
                context: self.ctx,
            }
            .into());
        }
        Ok(Prepared {
            prompt,
            max_tokens: r.max_tokens,
            sampling: r.sampling.clone(),
            stop: r.stop.clone(),
        })
    }
}

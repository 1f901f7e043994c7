//! The `sluice run` argument contract (DESIGN.md "Contracts").

use clap::{Args, ValueEnum};

use super::size::parse_size;
pub use super::thermal::ThermalArg;

/// Which backend computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// CUDA when a device and kernels are present, otherwise the CPU.
    Auto,
    /// The CPU backend.
    Cpu,
    /// The CUDA backend (fails when no usable GPU is present).
    Cuda,
}

impl DeviceArg {
    /// The engine's name for this choice.
    pub fn choice(self) -> crate::engine::backend::DeviceChoice {
        use crate::engine::backend::DeviceChoice;
        match self {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
        }
    }
}

/// `--threads`, or the machine's cores when it is not given.
fn threads_or_cores(threads: Option<u16>) -> usize {
    threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The engine arguments `sluice run` and `sluice bench model` share.
pub struct EngineArgs<'a> {
    pub model: &'a str,
    pub device: DeviceArg,
    pub threads: Option<u16>,
    pub ram_budget: Option<u64>,
    pub vram_budget: Option<u64>,
    pub layer_times: bool,
    /// Sequences run at once (the planner keeps room for their KV caches).
    pub max_batch: usize,
}

impl EngineArgs<'_> {
    /// The model's path and the engine's options; `--device cuda` without a usable GPU fails
    /// here, before the model is touched (no amount of loading makes a GPU appear).
    pub(crate) fn resolve(
        &self,
    ) -> Result<(std::path::PathBuf, crate::engine::session::EngineOptions), super::Failure> {
        use super::Failure;
        if self.device == DeviceArg::Cuda {
            crate::cuda::probe()
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("--device cuda: {e}")))?;
        }
        let path = sluice_loader::cache::resolve(self.model)
            .into_path()
            .map_err(|m| Failure::BadInput(anyhow::anyhow!(m)))?;
        let opts = crate::engine::session::EngineOptions {
            threads: threads_or_cores(self.threads),
            ram_budget: self.ram_budget,
            reader: sluice_runtime::ReaderConfig::from_env()
                .map_err(|e| Failure::BadInput(e.into()))?,
            device: self.device.choice(),
            vram_budget: self.vram_budget,
            layer_times: self.layer_times,
            max_batch: self.max_batch,
        };
        Ok((path, opts))
    }
}

/// Sampling options `sluice run` and `sluice batch` share.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 = greedy (argmax, ties to the lowest id).
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling threshold in (0, 1].
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Drop tokens below min-p × the top probability.
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Repetition penalty over the last 64 tokens (1 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    /// Seed of the random draw.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
}

impl SamplingArgs {
    /// The sampler settings these options give (not yet validated).
    pub fn config(&self) -> crate::engine::sampler::SamplerConfig {
        crate::engine::sampler::SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: 64,
            seed: self.seed,
        }
    }
}

/// The model and where it runs: options `sluice run`, `sluice batch` and `sluice serve` share.
#[derive(Args, Debug, Clone)]
pub struct EngineFlags {
    /// Model: a GGUF file, an HF directory (safetensors + config.json), or a cache alias.
    #[arg(long, short = 'm', default_value = sluice_loader::cache::DEFAULT_ALIAS)]
    pub model: String,
    /// Compute threads (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Bytes of model weights kept resident in RAM, spent on the LM head, then layers in order,
    /// then untied embeddings (`0` streams every layer and the head every token and reads
    /// embedding rows on demand; default: what fits in 75% of available memory).
    #[arg(long, value_parser = parse_size)]
    pub ram_budget: Option<u64>,
    /// Bytes of layer weights kept resident on the GPU.
    #[arg(long, value_parser = parse_size)]
    pub vram_budget: Option<u64>,
    /// Tokenizer source for HF directories without tokenizer.json (a GGUF file or a
    /// tokenizer.json).
    #[arg(long)]
    pub tokenizer: Option<std::path::PathBuf>,
}

impl EngineFlags {
    /// The engine arguments for a run of up to `max_batch` sequences at once.
    pub fn engine_args(&self, max_batch: usize) -> EngineArgs<'_> {
        EngineArgs {
            model: &self.model,
            device: self.device,
            threads: self.threads,
            ram_budget: self.ram_budget,
            vram_budget: self.vram_budget,
            layer_times: false,
            max_batch,
        }
    }
}

/// Options of `sluice run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub engine: EngineFlags,
    /// The prompt.
    #[arg(long, short = 'p')]
    pub prompt: String,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_tokens: u32,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// No chat template; BOS exactly when the model's metadata asks for it.
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON object on stdout and nothing else there.
    #[arg(long)]
    pub json: bool,
    /// Write the logits after the prompt (the first step) to this file as little-endian f32,
    /// in token-id order: for comparisons with a reference implementation.
    #[arg(long, value_name = "FILE")]
    pub logits_out: Option<std::path::PathBuf>,
    /// Drive and GPU sensors and the thermal governor: real sensors when present, a simulated
    /// drive, or none.
    #[arg(long, value_enum, default_value_t = ThermalArg::Auto)]
    pub thermal: ThermalArg,
}

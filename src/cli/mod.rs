//! The `sluice` command line: argument parsing and the exit-code contract.
//!
//! Exit codes (DESIGN.md): 0 success, 1 runtime failure, 2 bad usage or bad input file. Errors
//! are printed to stderr as one sentence naming the file and the problem.

pub mod batch;
#[path = "../../bench/harness/mod.rs"]
mod bench;
pub mod inspect;
mod interrupt;
mod logger;
pub mod perplexity;
pub mod run;
pub mod run_args;
pub mod size;
mod thermal;

use clap::{Parser, Subcommand};

/// Exit status for a failure at run time (I/O, device).
pub const EXIT_RUNTIME: i32 = 1;
/// Exit status for bad usage or a bad input file.
pub const EXIT_BAD_INPUT: i32 = 2;

/// A command's failure, and whether the input or the machine is at fault.
pub(crate) enum Failure {
    BadInput(anyhow::Error),
    Runtime(anyhow::Error),
}

impl Failure {
    /// Prints the failure as one sentence after `who: ` and returns its exit status.
    pub(crate) fn report(self, who: &str) -> i32 {
        let (e, code) = match self {
            Failure::BadInput(e) => (e, EXIT_BAD_INPUT),
            Failure::Runtime(e) => (e, EXIT_RUNTIME),
        };
        eprintln!("{who}: {e:#}");
        code
    }
}

/// A bad-input failure (exit 2).
pub(crate) fn bad(e: impl Into<anyhow::Error>) -> Failure {
    Failure::BadInput(e.into())
}

/// An engine error as a failure: the input's fault (exit 2) or the machine's (exit 1); a CUDA
/// failure the user asked for by `--device cuda` says so.
pub(crate) fn engine_failure(
    e: crate::engine::session::EngineError,
    device: run_args::DeviceArg,
) -> Failure {
    use crate::engine::session::EngineError;
    match e {
        EngineError::Cuda(c) if device == run_args::DeviceArg::Cuda => {
            Failure::Runtime(anyhow::anyhow!("--device cuda: {c}"))
        }
        e if e.is_bad_input() => bad(e),
        e => Failure::Runtime(e.into()),
    }
}

/// Which memory limit the residency plan was made against, for stderr.
pub(crate) fn memory_line(
    engine: &crate::engine::session::Engine,
    ram_budget: Option<u64>,
) -> String {
    let budget = engine.plan.budget_bytes as f64 / 1e6;
    if ram_budget.is_some() {
        return format!("memory: weights budget {budget:.0} MB, set by --ram-budget");
    }
    match &engine.memory_limit {
        Some(l) => format!(
            "memory: planned against {:.0} MB available of a {:.0} MB limit ({}): weights budget {budget:.0} MB",
            l.available as f64 / 1e6,
            l.limit as f64 / 1e6,
            l.source
        ),
        None => "memory: no memory figure could be read (MemAvailable, cgroups): only the smallest residency is planned".to_string(),
    }
}

/// The exit status of a command's outcome, its failure printed after `who: `.
pub(crate) fn exit_status(outcome: Result<(), Failure>, who: &str) -> i32 {
    outcome.map_or_else(|f| f.report(who), |()| 0)
}

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Run LLMs larger than memory by streaming layers from NVMe"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate text from a model, streaming layers from disk as the memory budget requires.
    Run(run_args::RunArgs),
    /// Describe a model: architecture, hyper-parameters, tensor types, layer extents, streaming cost.
    Inspect(inspect::InspectArgs),
    /// Measure parts of the engine (`sluice bench io --file F`, `sluice bench thermal --simulate`).
    Bench(bench::BenchArgs),
    /// Generate for many prompts from a JSONL file, many sequences per layer sweep (resumable).
    Batch(batch::BatchArgs),
    /// Serve the model over an OpenAI-compatible HTTP API, many requests per layer sweep.
    Serve(crate::serve::ServeArgs),
    /// Measure fidelity as llama-perplexity does: perplexity over a text, or the KL divergence
    /// of the model's token distributions against a base model's saved logits.
    Perplexity(perplexity::PerplexityArgs),
}

/// Parses the command line, runs it, and returns the process exit status.
pub fn main() -> i32 {
    logger::init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_BAD_INPUT } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Bench(args) => bench::run(args),
        Command::Batch(args) => batch::run(&args),
        Command::Serve(args) => crate::serve::run(&args),
        Command::Perplexity(args) => perplexity::run(&args),
    }
}

//! The `sluice` command line: argument parsing and the exit-code contract.
//!
//! Exit codes (DESIGN.md): 0 success, 1 runtime failure, 2 bad usage or bad input file. Errors
//! are printed to stderr as one sentence naming the file and the problem.

#[path = "../../bench/harness/mod.rs"]
mod bench;
pub mod inspect;
mod interrupt;
mod logger;
pub mod run;
pub mod run_args;
pub mod size;
mod thermal;

use clap::{Parser, Subcommand};

/// Exit status for a failure at run time (I/O, device).
pub const EXIT_RUNTIME: i32 = 1;
/// Exit status for bad usage or a bad input file.
pub const EXIT_BAD_INPUT: i32 = 2;

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
    }
}

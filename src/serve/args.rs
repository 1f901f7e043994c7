//! Options of `sluice serve`.

use clap::Args;

use crate::cli::run_args::EngineFlags;

/// Options of `sluice serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub engine: EngineFlags,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests generated at once: each layer sweep advances all of them.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// Requests that may wait for a slot; beyond this, 503 with Retry-After.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_queue: u32,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Positions one sequence may hold, prompt and answer (capped by the model's context).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(2..=1_048_576))]
    pub ctx: u32,
    /// Seconds between SSE keep-alive comments while a stream is silent (a long prefill).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub sse_ping: u64,
    /// Seconds requests in flight get to finish after SIGTERM before they are cancelled.
    #[arg(long, default_value_t = 30)]
    pub shutdown_grace: u64,
}

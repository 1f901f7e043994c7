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
    /// Seconds between SSE keep-alive comments while a stream is silent (a long prefill);
    /// fractions allowed, 0.05 to 3600.
    #[arg(long, default_value_t = 10.0, value_parser = sse_ping_seconds)]
    pub sse_ping: f64,
    /// Seconds requests in flight get to finish after SIGTERM before they are cancelled.
    #[arg(long, default_value_t = 30)]
    pub shutdown_grace: u64,
}

/// `--sse-ping`: seconds in 0.05..=3600 (a finite number; a shorter interval would flood the
/// stream with comments, a longer one outlasts every proxy's idle timeout).
fn sse_ping_seconds(v: &str) -> Result<f64, String> {
    let s: f64 = v
        .parse()
        .map_err(|_| format!("{v:?} is not a number of seconds"))?;
    if (0.05..=3600.0).contains(&s) {
        Ok(s)
    } else {
        Err(format!("{v} s is out of range: give 0.05 to 3600 seconds"))
    }
}

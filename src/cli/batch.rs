//! `sluice batch`: generate for every line of a JSONL file, many sequences per layer sweep,
//! writing each result as it finishes. Resumable: ids already in the output are skipped and a
//! torn last line is done again. A bad line is reported with its line number and the others
//! still run (exit status 1 at the end).

mod driver;
mod input;
mod output;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;
use clap::Args;
use serde_json::json;

use super::bench::progress;
use super::run_args::{EngineFlags, SamplingArgs};
use super::{bad, engine_failure, interrupt, Failure};
use crate::api::prompt::load_tokenizer;
use crate::engine::scheduler::{BatchOptions, MAX_BATCH_LIMIT};
use crate::engine::session::Engine;
use driver::{BatchDriver, Defaults, Tally};
use output::Output;

/// Options of `sluice batch`.
#[derive(Args, Debug, Clone)]
pub struct BatchArgs {
    #[command(flatten)]
    pub engine: EngineFlags,
    /// Input: one JSON object per line, {"id", "prompt" | "messages", "max_tokens"?,
    /// "temperature"?, "seed"?, "stop"?}.
    #[arg(long)]
    pub input: PathBuf,
    /// Output: one JSON object per finished line, appended (ids already there are skipped).
    #[arg(long)]
    pub output: PathBuf,
    /// Sequences generated together (each layer sweep advances all of them).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=MAX_BATCH_LIMIT as i64))]
    pub max_batch: u16,
    /// Tokens to generate at most per line (a line's "max_tokens" overrides it).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_tokens: u32,
    /// Positions one sequence may hold, prompt and answer (capped by the model's context).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(2..=1_048_576))]
    pub ctx: u32,
    /// Sampling defaults (a line's "temperature" and "seed" override them).
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// No chat template for "prompt" lines; BOS exactly when the model's metadata asks for it.
    #[arg(long)]
    pub raw: bool,
    /// Print the summary as one JSON object on stderr.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command; returns the exit status.
pub fn run(args: &BatchArgs) -> i32 {
    super::exit_status(batch(args), "sluice batch")
}

/// "1 line", "3 lines".
fn n_lines(n: usize) -> String {
    format!("{n} line{}", if n == 1 { "" } else { "s" })
}

fn batch(args: &BatchArgs) -> Result<(), Failure> {
    let defaults = args.sampling.config();
    defaults.validate().map_err(bad)?;
    let max_batch = usize::from(args.max_batch);
    let input_name = args.input.display().to_string();
    let text =
        std::fs::read_to_string(&args.input).map_err(|e| bad(anyhow!("{input_name}: {e}")))?;
    let (lines, mut bad_lines) = input::parse_all(&text);
    drop(text);
    let (out, existing) = Output::open(&args.output).map_err(|e| bad(anyhow!(e)))?;
    if existing.torn_bytes > 0 {
        eprintln!(
            "sluice batch: {}: cut off a torn last line ({} bytes); its sequence runs again",
            args.output.display(),
            existing.torn_bytes
        );
    }
    let total_valid = lines.len();
    let todo: Vec<_> = lines
        .into_iter()
        .filter(|l| !existing.done.contains(&input::id_key(&l.id)))
        .collect();
    let skipped = total_valid - todo.len();

    let (path, opts) = args.engine.engine_args(max_batch).resolve()?;
    let ctx = args.ctx as usize;
    let failure = |e| engine_failure(e, args.engine.device);
    let mut model = Engine::open_model(&path).map_err(failure)?;
    let tok = load_tokenizer(&mut model, args.engine.tokenizer.as_deref()).map_err(bad)?;
    let mut engine = Engine::from_model(model, ctx, &opts).map_err(failure)?;
    let ctx = ctx.min(engine.spec().context_length);
    if !args.json {
        eprintln!(
            "sluice batch: {} lines to run ({} already in {}, {} bad), up to {max_batch} at once, {} context positions each; {} backend, {} layers resident, {} streamed",
            todo.len(),
            skipped,
            args.output.display(),
            bad_lines.len(),
            ctx,
            engine.backend_name(),
            engine.plan.n_resident(),
            engine.plan.n_streamed(),
        );
        eprintln!(
            "sluice batch: {}",
            super::memory_line(&engine, args.engine.ram_budget)
        );
    }
    interrupt::install();
    let bar = progress::bar(todo.len() as u64, "sequences");
    let started = Instant::now();
    let n_vocab = engine.spec().n_vocab;
    let bar_step = bar.clone();
    let mut driver = BatchDriver::new(
        todo,
        &tok,
        Defaults {
            raw: args.raw,
            sampler: defaults,
            max_tokens: args.max_tokens as usize,
        },
        n_vocab,
        out,
        Box::new(|t: &Tally| bar.set_position((t.written + t.failed.len()) as u64)),
        Box::new(move |s| {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            bar_step.set_message(format!(
                "sequences, {:.1} tok/s",
                s.generated_tokens as f64 / secs
            ));
        }),
    );
    let mut opts = BatchOptions::new(max_batch);
    opts.n_ctx = Some(ctx);
    let result = engine.run_batch(&opts, &mut driver);
    bar.finish_and_clear();
    let remaining = driver.remaining();
    let write_error = driver.write_error().map(str::to_string);
    let tally = driver.tally;
    // The lines that failed are named even when the run itself failed.
    bad_lines.extend(tally.failed.iter().cloned());
    bad_lines.sort();
    for (line, why) in &bad_lines {
        eprintln!("sluice batch: {input_name} line {line}: {why}");
    }
    let stats = result.map_err(|e| engine_failure(e, args.engine.device))?;
    let wall = started.elapsed().as_secs_f64();
    let per_s = |n: usize| n as f64 / wall.max(1e-9);
    // Bytes streamed per generated token: what the batch amortises (0 when all is resident).
    let per_token = stats.streamed_bytes as f64 / stats.generated_tokens.max(1) as f64;
    let bytes_read = engine.bytes_read();
    if args.json {
        let summary = json!({
            "sequences": tally.written,
            "failed": bad_lines.len(),
            "skipped": skipped,
            "interrupted": tally.interrupted,
            "prompt_tokens": tally.prompt_tokens,
            "completion_tokens": tally.completion_tokens,
            "steps": stats.steps,
            "wall_s": wall,
            "tok_per_s": per_s(stats.generated_tokens),
            "bytes_read": bytes_read,
            "bytes_read_per_token": per_token,
            "streamed_bytes": stats.streamed_bytes,
            "io_stall_s": stats.io_wait.as_secs_f64(),
            "peak_live": stats.peak_live,
            "peak_kv_bytes": stats.peak_kv_bytes,
            "max_batch": max_batch,
        });
        eprintln!("{summary}");
    } else {
        eprintln!(
            "sluice batch: {} written, {} failed, {} skipped; {} prompt and {} generated tokens in {:.1} s ({:.1} tok/s, {} steps); read {:.1} MB ({:.1} MB streamed per token), I/O stall {:.2} s; up to {} sequences at once, {:.1} MB of KV cache",
            tally.written,
            bad_lines.len(),
            skipped,
            tally.prompt_tokens,
            tally.completion_tokens,
            wall,
            per_s(stats.generated_tokens),
            stats.steps,
            bytes_read as f64 / 1e6,
            per_token / 1e6,
            stats.io_wait.as_secs_f64(),
            stats.peak_live,
            stats.peak_kv_bytes as f64 / 1e6,
        );
    }
    if let Some(e) = write_error {
        return Err(Failure::Runtime(anyhow!(
            "{e}; stopped with {} not written (run the same command again to resume)",
            n_lines(remaining)
        )));
    }
    if interrupt::requested() {
        return Err(Failure::Runtime(anyhow!(
            "interrupted: {} of {input_name} not written (in flight or not started); run the same command again to resume",
            n_lines(remaining)
        )));
    }
    if !bad_lines.is_empty() {
        return Err(Failure::Runtime(anyhow!(
            "{} of {input_name} failed (listed above); the others were written to {}",
            n_lines(bad_lines.len()),
            args.output.display()
        )));
    }
    Ok(())
}

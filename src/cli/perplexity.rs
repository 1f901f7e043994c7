//! `sluice perplexity`: llama-perplexity's measurements on the sluice engine. Perplexity over a
//! text (`[i]ppl,` after each chunk, then `Final estimate: PPL = X +/- Y`), the base-logits
//! file for KL comparisons (`--kl-divergence-base FILE`), and the comparison itself
//! (`--kl-divergence`), with llama.cpp's tables. `--json` prints every figure as one object.

use std::io::Write;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use serde_json::{json, Value};

use super::bench::progress;
use super::run_args::{DeviceArg, EngineFlags};
use super::{bad, engine_failure, interrupt, Failure};
use crate::api::prompt::load_tokenizer;
use crate::engine::scheduler::STEP_TOKENS_MAX;
use crate::engine::session::Engine;
use crate::eval::stats::{Est, KldLine, KldSummary};
use crate::eval::{
    chunk_bos, chunks_per_sweep, evaluate, text_plan, ChunkLine, ChunkPlan, EvalError, EvalMode,
    EvalOptions, EvalReport, LogitsHeader, LogitsReader, LogitsWriter,
};

/// The default tokens per chunk (llama-perplexity's).
const DEFAULT_CTX: usize = 512;
/// Fewer scored tokens than this get no final KL tables (llama.cpp's rule).
const KLD_STATS_MIN: usize = 100;

/// Options of `sluice perplexity`.
#[derive(Args, Debug, Clone)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub engine: EngineFlags,
    /// The text to evaluate, UTF-8 (one trailing newline is dropped, as llama-perplexity does).
    /// Not used with --kl-divergence: the tokens come from the base file.
    #[arg(long, short = 'f', value_name = "TEXT")]
    pub file: Option<PathBuf>,
    /// Tokens per chunk; the second half of each chunk is scored [default: 512, or the base
    /// file's with --kl-divergence].
    #[arg(long, short = 'c', value_parser = clap::value_parser!(u32).range(4..=1_048_576))]
    pub ctx: Option<u32>,
    /// Chunks to evaluate at most [default: all the text holds].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100_000_000))]
    pub chunks: Option<u32>,
    /// Tokens per layer sweep: batch/ctx chunks run together as sequences of one batch
    /// (llama.cpp's -b); a smaller batch takes a chunk in several sweeps.
    #[arg(long, short = 'b', default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..=STEP_TOKENS_MAX as i64))]
    pub batch: u32,
    /// The base logits file: written by this run, or read with --kl-divergence
    /// (llama-perplexity's format; files move between the two tools).
    #[arg(long, value_name = "FILE")]
    pub kl_divergence_base: Option<PathBuf>,
    /// Compare this model's token distributions with the base file's: KL divergence, Δp,
    /// top-token agreement and the perplexity ratio.
    #[arg(long, requires = "kl_divergence_base")]
    pub kl_divergence: bool,
    /// Print one JSON object with every figure on stdout and nothing else there.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command; returns the exit status.
pub fn run(args: &PerplexityArgs) -> i32 {
    super::exit_status(perplexity(args), "sluice perplexity")
}

fn eval_failure(e: EvalError, device: DeviceArg) -> Failure {
    match e {
        EvalError::Engine(e) => engine_failure(e, device),
        e if e.is_bad_input() => bad(e),
        e => Failure::Runtime(e.into()),
    }
}

/// What the run measures, and the file it reads or writes.
enum Task {
    Perplexity,
    WriteBase(PathBuf),
    Compare(LogitsReader),
}

fn perplexity(args: &PerplexityArgs) -> Result<(), Failure> {
    let task = match (&args.kl_divergence_base, args.kl_divergence) {
        (Some(p), true) => Task::Compare(LogitsReader::open(p).map_err(bad)?),
        (Some(p), false) => Task::WriteBase(p.clone()),
        (None, _) => Task::Perplexity,
    };
    let ctx = match &task {
        Task::Compare(base) => {
            let h = base.header();
            if let Some(c) = args.ctx.filter(|&c| c as usize != h.n_ctx) {
                return Err(bad(anyhow!(
                    "{}: the base logits were computed with chunks of {} tokens; --ctx {c} differs (leave it out to use the file's)",
                    base.path().display(),
                    h.n_ctx
                )));
            }
            h.n_ctx
        }
        _ => args.ctx.map_or(DEFAULT_CTX, |c| c as usize),
    };
    // llama-perplexity's batching: batch/ctx chunks per sweep, a sweep no larger than they are.
    let chunks_per_sweep = chunks_per_sweep(args.batch as usize, ctx);

    let text = match (&task, &args.file) {
        (Task::Compare(_), Some(f)) => {
            eprintln!(
                "sluice perplexity: {} is not read: the tokens come from the base logits file",
                f.display()
            );
            None
        }
        (Task::Compare(_), None) => None,
        (_, Some(f)) => {
            let t = std::fs::read_to_string(f)
                .map_err(|e| bad(anyhow!("{}: {e}", f.display())))?;
            Some((f.clone(), t))
        }
        (_, None) => {
            return Err(bad(anyhow!(
                "name the text to evaluate with -f/--file (or compare with a base file: --kl-divergence --kl-divergence-base FILE)"
            )))
        }
    };

    // Scoring needs every row's logits, which only the CPU backend computes: `auto` means it.
    let mut flags = args.engine.clone();
    if flags.device == DeviceArg::Auto {
        flags.device = DeviceArg::Cpu;
    }
    let (path, opts) = flags.engine_args(chunks_per_sweep).resolve()?;
    let failure = |e| engine_failure(e, args.engine.device);
    let mut model = Engine::open_model(&path).map_err(failure)?;
    let tok = load_tokenizer(&mut model, args.engine.tokenizer.as_deref()).map_err(bad)?;
    let mut engine = Engine::from_model(model, ctx, &opts).map_err(failure)?;
    let model_ctx = engine.spec().context_length;
    if ctx > model_ctx {
        return Err(bad(anyhow!(
            "{}: chunks of {ctx} tokens exceed the model's context of {model_ctx}",
            path.display()
        )));
    }
    let bos = chunk_bos(&tok).map_err(|e| bad(anyhow!("{}: {e}", path.display())))?;
    let n_vocab = engine.spec().n_vocab;
    let max_chunks = args.chunks.map(|c| c as usize);
    let plan_err =
        |e: crate::eval::PlanError, what: &std::path::Path| bad(anyhow!("{}: {e}", what.display()));
    let (plan, n_text_tokens) = match &task {
        Task::Compare(base) => {
            let h = base.header();
            if h.n_vocab != n_vocab {
                return Err(bad(anyhow!(
                    "{}: the base logits are over a vocabulary of {} tokens but {} has {n_vocab}: they come from another model family",
                    base.path().display(),
                    h.n_vocab,
                    path.display()
                )));
            }
            let plan = ChunkPlan::from_chunks(base.tokens().to_vec(), h.n_ctx, max_chunks, bos)
                .map_err(|e| plan_err(e, base.path()))?;
            (plan, h.n_chunk * h.n_ctx)
        }
        _ => {
            let Some((f, t)) = &text else {
                unreachable!("a text is read for every task but a comparison")
            };
            text_plan(&tok, t, ctx, max_chunks).map_err(|e| plan_err(e, f))?
        }
    };
    let eval_opts = EvalOptions::for_batch(args.batch as usize, ctx, plan.n_chunk);
    let chunks_per_sweep = eval_opts.n_seq;
    let mode = match &task {
        Task::Perplexity => EvalMode::Perplexity,
        Task::WriteBase(p) => {
            let h = LogitsHeader {
                n_ctx: ctx,
                n_vocab,
                n_chunk: plan.n_chunk,
            };
            EvalMode::WriteBase(LogitsWriter::create(p, h, plan.tokens()).map_err(bad)?)
        }
        Task::Compare(_) => {
            let Task::Compare(base) = task else {
                unreachable!()
            };
            EvalMode::Compare(base)
        }
    };
    let comparing = matches!(mode, EvalMode::Compare(_));
    if !args.json {
        eprintln!(
            "sluice perplexity: {n_text_tokens} tokens, {} chunks of {ctx} ({}; the last {} positions of each scored), {chunks_per_sweep} chunks per layer sweep; {} backend, {} layers resident, {} streamed",
            plan.n_chunk,
            if bos.is_some() { "BOS first in each" } else { "no BOS: the model adds none" },
            plan.scored_per_chunk(),
            engine.backend_name(),
            engine.plan.n_resident(),
            engine.plan.n_streamed(),
        );
        eprintln!(
            "sluice perplexity: {}",
            super::memory_line(&engine, flags.ram_budget)
        );
        if comparing {
            println!("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p");
        }
    }
    interrupt::install();
    let bar = progress::bar(plan.n_chunk as u64, "chunks");
    let mut lines: Vec<ChunkLine> = Vec::with_capacity(plan.n_chunk);
    let json_out = args.json;
    let mut on_chunk = |l: &ChunkLine| {
        lines.push(*l);
        bar.set_position(l.chunk as u64);
        if json_out {
            return;
        }
        bar.suspend(|| {
            let mut out = std::io::stdout().lock();
            let _ = match &l.kld {
                None => write!(out, "[{}]{:.4},", l.chunk, l.ppl),
                Some(k) => writeln!(out, "{}", kld_row(l.chunk, k)),
            };
            let _ = out.flush();
        });
    };
    let result = evaluate(
        &mut engine,
        &plan,
        mode,
        &eval_opts,
        &mut on_chunk,
        &interrupt::requested,
    );
    bar.finish_and_clear();
    if !json_out && !comparing && !lines.is_empty() {
        println!();
    }
    let report = result.map_err(|e| eval_failure(e, args.engine.device))?;
    let threads = engine.threads();
    if json_out {
        let v = report_json(
            &report,
            &lines,
            &engine,
            chunks_per_sweep,
            threads,
            &args.kl_divergence_base,
        );
        println!("{v}");
        return Ok(());
    }
    match report.ppl.estimate() {
        Some((ppl, err)) if report.kld.is_none() => {
            println!("Final estimate: PPL = {ppl:.4} +/- {err:.5}")
        }
        None => eprintln!("sluice perplexity: the variance of log(prob) is not positive: no estimate (too few scored tokens?)"),
        Some(_) => {}
    }
    if let Some(k) = &report.kld {
        if k.count >= KLD_STATS_MIN {
            print!("\n{}", kld_tables(k));
        } else {
            eprintln!(
                "sluice perplexity: {} scored tokens: too few for the final statistics (llama-perplexity's minimum is {KLD_STATS_MIN})",
                k.count
            );
        }
    }
    if let (Some(p), false) = (&args.kl_divergence_base, comparing) {
        let bytes = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "sluice perplexity: saved the base logits of {} chunks to {} ({:.1} MB)",
            report.n_chunk,
            p.display(),
            bytes as f64 / 1e6
        );
    }
    let wall = report.wall.as_secs_f64();
    eprintln!(
        "sluice perplexity: {} tokens evaluated in {:.2} s: {:.3} ms per token ({:.1} tok/s), {} threads, {} sweeps; streamed {:.1} MB, I/O stall {:.2} s",
        report.tokens_evaluated,
        wall,
        report.per_token().as_secs_f64() * 1e3,
        report.tokens_evaluated as f64 / wall.max(1e-9),
        threads,
        report.batch.steps,
        report.batch.streamed_bytes as f64 / 1e6,
        report.batch.io_wait.as_secs_f64(),
    );
    Ok(())
}

/// llama-perplexity's per-chunk KL line.
fn kld_row(chunk: usize, k: &KldLine) -> String {
    format!(
        "{chunk:4}    {:9.4} ± {:9.4}    {:10.5} ± {:10.5}    {:10.5} ± {:10.5}    {:6.3} ± {:6.3} %    {:6.3} ± {:6.3} %",
        k.ppl.0,
        k.ppl.1,
        k.ln_ppl_ratio.0,
        k.ln_ppl_ratio.1,
        k.kld.0,
        k.kld.1,
        100.0 * k.p_diff_rms.0,
        100.0 * k.p_diff_rms.1,
        100.0 * k.same_top.0,
        100.0 * k.same_top.1,
    )
}

/// llama-perplexity's three final tables.
fn kld_tables(k: &KldSummary) -> String {
    let l = &k.line;
    let mut s = String::new();
    let mut line = |t: String| {
        s.push_str(&t);
        s.push('\n');
    };
    line("====== Perplexity statistics ======".into());
    line(pm("Mean PPL(Q)", l.ppl));
    line(pm("Mean PPL(base)", k.ppl_base));
    line(format!(
        "{:<30}: {:6.2}%",
        "Cor(ln(PPL(Q)), ln(PPL(base)))",
        100.0 * k.ln_ppl_correlation
    ));
    line(pm("Mean ln(PPL(Q)/PPL(base))", l.ln_ppl_ratio));
    line(pm("Mean PPL(Q)/PPL(base)", k.ppl_ratio));
    line(pm("Mean PPL(Q)-PPL(base)", k.ppl_diff));
    line(String::new());
    line("====== KL divergence statistics ======".into());
    line(format!("Mean    KLD: {:10.6} ± {:10.6}", l.kld.0, l.kld.1));
    for (name, v) in &k.kld_percentiles {
        line(format!("{:<7} KLD: {v:10.6}", pad_name(name)));
    }
    line(String::new());
    line("====== Token probability statistics ======".into());
    line(format!(
        "Mean    Δp: {:6.3} ± {:5.3} %",
        100.0 * k.p_diff.0,
        100.0 * k.p_diff.1
    ));
    for (name, v) in &k.p_diff_percentiles {
        line(format!("{:<7} Δp: {:6.3}%", pad_name(name), 100.0 * v));
    }
    line(format!(
        "RMS Δp    : {:6.3} ± {:5.3} %",
        100.0 * l.p_diff_rms.0,
        100.0 * l.p_diff_rms.1
    ));
    line(format!(
        "Same top p: {:6.3} ± {:5.3} %",
        100.0 * l.same_top.0,
        100.0 * l.same_top.1
    ));
    s
}

/// A "name: value ± error" line of llama.cpp's perplexity table.
fn pm(name: &str, e: Est) -> String {
    format!("{name:<30}: {:10.6} ± {:10.6}", e.0, e.1)
}

/// A percentile's label as llama.cpp aligns it (" 5.0%" beside "99.9%").
fn pad_name(name: &str) -> String {
    if name.len() == 4 && name.ends_with('%') {
        format!(" {name}")
    } else {
        name.to_string()
    }
}

fn est(e: Est) -> Value {
    json!({"value": e.0, "error": e.1})
}

fn report_json(
    r: &EvalReport,
    lines: &[ChunkLine],
    engine: &Engine,
    chunks_per_sweep: usize,
    threads: usize,
    base: &Option<PathBuf>,
) -> Value {
    let wall = r.wall.as_secs_f64();
    let (ppl, ppl_err) = r
        .ppl
        .estimate()
        .map_or((None, None), |(p, e)| (Some(p), Some(e)));
    let kld = r.kld.as_ref().map(|k| {
        let pcts = |v: &[(&str, f32)]| -> Value {
            v.iter()
                .map(|(n, x)| (n.to_string(), json!(x)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json!({
            "ppl_q": est(k.line.ppl),
            "ppl_base": est(k.ppl_base),
            "ln_ppl_correlation": k.ln_ppl_correlation,
            "ln_ppl_ratio": est(k.line.ln_ppl_ratio),
            "ppl_ratio": est(k.ppl_ratio),
            "ppl_diff": est(k.ppl_diff),
            "kld": est(k.line.kld),
            "kld_percentiles": pcts(&k.kld_percentiles),
            "p_diff": est(k.p_diff),
            "p_diff_percentiles": pcts(&k.p_diff_percentiles),
            "p_diff_rms": est(k.line.p_diff_rms),
            "p_diff_max_abs": k.max_abs_p_diff,
            "same_top": est(k.line.same_top),
        })
    });
    json!({
        "model": engine.model.path.display().to_string(),
        "n_ctx": r.n_ctx,
        "n_chunk": r.n_chunk,
        "chunks_per_sweep": chunks_per_sweep,
        "scored_tokens": r.ppl.count,
        "tokens_evaluated": r.tokens_evaluated,
        "chunk_ppl": lines.iter().map(|l| l.ppl).collect::<Vec<_>>(),
        "ppl": ppl,
        "ppl_error": ppl_err,
        "nll_mean": r.ppl.nll / r.ppl.count.max(1) as f64,
        "kl_divergence": kld,
        "kl_divergence_base": base.as_ref().map(|p| p.display().to_string()),
        "wall_s": wall,
        "ms_per_token": r.per_token().as_secs_f64() * 1e3,
        "tok_per_s": r.tokens_evaluated as f64 / wall.max(1e-9),
        "threads": threads,
        "steps": r.batch.steps,
        "streamed_bytes": r.batch.streamed_bytes,
        "streamed_bytes_per_sweep": engine.plan.streamed_bytes_per_token,
        "ring_bytes": engine.ring_bytes(),
        "io_stall_s": r.batch.io_wait.as_secs_f64(),
        "run_state_bytes": r.batch.run_state_bytes,
        "peak_kv_bytes": r.batch.peak_kv_bytes,
        "resident_layers": engine.plan.n_resident(),
        "streamed_layers": engine.plan.n_streamed(),
        "backend": engine.backend_name(),
    })
}

//! `sluice bench batch`: aggregate decode tokens/s against the number of sequences each layer
//! sweep advances, in one run on one loaded engine. Every row runs `b` sequences of the same
//! length through the batch scheduler; its decode window runs from the last sequence's prompt
//! to the last token, and the speedup is against `b = 1` measured in the same run. Streamed
//! bytes per generated token show the read being shared (they fall as 1/b when layers stream).
//! Each row also says how the machine's CPUs spent its run: idle (threads waiting on the disk
//! or on one another) and stolen (a hypervisor's work for a virtual disk can take the guest's
//! cores while it streams).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Result};
use clap::Args;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{json, Value};

use super::cpustat;
use super::plot::{draw_err, draw_legend, palette, Figure};
use super::progress;
use crate::cli::run_args::EngineFlags;
use crate::cli::Failure;
use crate::engine::sampler::{Sampler, SamplerConfig};
use crate::engine::scheduler::{
    BatchOptions, BatchStats, Driver, Finished, SeqRequest, Verdict, MAX_BATCH_LIMIT,
};
use crate::engine::session::{Engine, EngineError, PREFILL_BATCH_MAX};

/// Options of `sluice bench batch`.
#[derive(Args, Debug)]
pub struct BatchBenchArgs {
    #[command(flatten)]
    engine: EngineFlags,
    /// Batch sizes to measure (1 is always measured, for the speedup).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    batches: Vec<usize>,
    /// Tokens each sequence decodes.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=4096))]
    tokens: u32,
    /// Prompt tokens of each sequence (synthetic ids).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=512))]
    prompt_tokens: u32,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Write aggregate tokens/s against the batch size (.png or .svg).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// One measured batch size.
#[derive(Clone, Debug)]
struct Row {
    batch: usize,
    decode_tok_per_s: f64,
    speedup: f64,
    streamed_bytes_per_token: f64,
    steps: usize,
    io_stall_s: f64,
    peak_kv_bytes: u64,
    /// How the machine's CPUs spent the batch's run (prefill included), when counted.
    cpu: Option<cpustat::Shares>,
}

/// Runs `sluice bench batch`; returns the exit status.
pub fn run(args: &BatchBenchArgs) -> i32 {
    crate::cli::exit_status(bench(args), "sluice bench batch")
}

/// Every sequence runs its full token count; the driver keeps what each produced.
struct Fixed {
    queue: Vec<SeqRequest>,
    done: Vec<Finished>,
    failed: Option<EngineError>,
}

impl Driver for Fixed {
    fn next(&mut self, _idle: bool) -> Option<SeqRequest> {
        self.queue.pop()
    }

    fn is_eog(&self, _token: u32) -> bool {
        false
    }

    fn token(&mut self, _id: u64, _token: u32, _logits: &[f32]) -> Verdict {
        Verdict::Continue
    }

    fn finished(&mut self, _id: u64, result: Result<Finished, EngineError>) {
        match result {
            Ok(f) => self.done.push(f),
            Err(e) => self.failed = Some(e),
        }
    }
}

/// The batch sizes to run: sorted, unique, with 1 first.
fn batch_sizes(asked: &[usize], prompt_tokens: usize) -> Result<Vec<usize>> {
    let mut b: Vec<usize> = asked.to_vec();
    if let Some(&x) = b.iter().find(|&&x| x == 0 || x > MAX_BATCH_LIMIT) {
        return Err(anyhow!(
            "--batches: each batch size must be from 1 to {MAX_BATCH_LIMIT}, not {x}"
        ));
    }
    b.push(1);
    b.sort_unstable();
    b.dedup();
    let largest = b.last().copied().unwrap_or(1);
    if largest * prompt_tokens > PREFILL_BATCH_MAX {
        return Err(anyhow!(
            "--prompt-tokens {prompt_tokens} × batch {largest} exceeds the {PREFILL_BATCH_MAX} \
             tokens one step holds; use shorter prompts or smaller batches"
        ));
    }
    Ok(b)
}

/// Measures one batch size.
fn measure(engine: &mut Engine, b: usize, prompt: usize, tokens: usize) -> Result<Row, Failure> {
    let n_vocab = engine.spec().n_vocab;
    let greedy = SamplerConfig {
        temperature: 0.0,
        ..SamplerConfig::default()
    };
    let queue = (0..b)
        .map(|s| SeqRequest {
            id: s as u64,
            prompt: (0..prompt)
                .map(|j| ((s * 7919 + j * 104_729 + 13) % n_vocab.max(1)) as u32)
                .collect(),
            max_tokens: tokens,
            sampler: Sampler::new(greedy.clone(), n_vocab),
            score_from: None,
        })
        .collect();
    let mut d = Fixed {
        queue,
        done: Vec::with_capacity(b),
        failed: None,
    };
    let mut opts = BatchOptions::new(b);
    opts.n_ctx = Some(prompt + tokens);
    let cpu_before = cpustat::Counters::read();
    let stats: BatchStats = engine
        .run_batch(&opts, &mut d)
        .map_err(|e| Failure::Runtime(e.into()))?;
    let cpu = cpu_before.zip(cpustat::Counters::read());
    let cpu = cpu.and_then(|(a, b)| a.shares_until(&b));
    if let Some(e) = d.failed {
        return Err(Failure::Runtime(e.into()));
    }
    let from = d.done.iter().map(|f| f.prefilled).max();
    let to = d.done.iter().map(|f| f.ended).max();
    let (Some(from), Some(to)) = (from, to) else {
        return Err(Failure::Runtime(anyhow!("no sequence finished")));
    };
    let decoded: usize = d
        .done
        .iter()
        .map(|f| f.tokens.len().saturating_sub(1))
        .sum();
    let window = to.duration_since(from).as_secs_f64().max(1e-9);
    Ok(Row {
        batch: b,
        decode_tok_per_s: decoded as f64 / window,
        speedup: 0.0,
        streamed_bytes_per_token: stats.streamed_bytes as f64
            / stats.generated_tokens.max(1) as f64,
        steps: stats.steps,
        io_stall_s: stats.io_wait.as_secs_f64(),
        peak_kv_bytes: stats.peak_kv_bytes,
        cpu,
    })
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn bench(args: &BatchBenchArgs) -> Result<(), Failure> {
    let bad = |e: anyhow::Error| Failure::BadInput(e);
    let prompt = args.prompt_tokens as usize;
    let tokens = args.tokens as usize;
    let sizes = batch_sizes(&args.batches, prompt).map_err(bad)?;
    if let Some(p) = &args.plot {
        super::plot::Format::of(p).map_err(bad)?;
    }
    let largest = sizes.last().copied().unwrap_or(1);
    let (path, opts) = args.engine.engine_args(largest).resolve()?;
    let threads = opts.threads;
    let mut engine = Engine::load(&path, prompt + tokens, &opts).map_err(|e| {
        if e.is_bad_input() {
            bad(e.into())
        } else {
            Failure::Runtime(e.into())
        }
    })?;
    let bar = progress::bar(sizes.len() as u64, "batch sizes");
    let started = Instant::now();
    let mut rows = Vec::with_capacity(sizes.len());
    for &b in &sizes {
        rows.push(measure(&mut engine, b, prompt, tokens)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let one = rows[0].decode_tok_per_s.max(1e-9);
    for r in &mut rows {
        r.speedup = r.decode_tok_per_s / one;
    }
    let cpu = cpu_name();
    let (res, streamed) = (engine.plan.n_resident(), engine.plan.n_streamed());
    let model = engine.model.path.display().to_string();
    if args.json {
        let out = json!({
            "model": model,
            "cpu": cpu,
            "backend": engine.backend_name(),
            "threads": threads,
            "resident_layers": res,
            "streamed_layers": streamed,
            "prompt_tokens": prompt,
            "tokens": tokens,
            "wall_s": started.elapsed().as_secs_f64(),
            "rows": rows.iter().map(|r| json!({
                "batch": r.batch,
                "decode_tok_per_s": r.decode_tok_per_s,
                "per_sequence_tok_per_s": r.decode_tok_per_s / r.batch as f64,
                "speedup": r.speedup,
                "streamed_bytes_per_token": r.streamed_bytes_per_token,
                "steps": r.steps,
                "io_stall_s": r.io_stall_s,
                "peak_kv_bytes": r.peak_kv_bytes,
                "cpu": r.cpu,
            })).collect::<Vec<Value>>(),
        });
        println!("{out}");
    } else {
        println!(
            "{model}: {res} layers resident, {streamed} streamed, {threads} threads, {} backend; {cpu}",
            engine.backend_name()
        );
        println!(
            "{:>6} {:>12} {:>12} {:>8} {:>14} {:>6} {:>10} {:>7} {:>9}",
            "batch",
            "decode tok/s",
            "per seq",
            "speedup",
            "MB read/token",
            "steps",
            "io stall s",
            "idle %",
            "stolen %"
        );
        let pct =
            |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{:.1}", 100.0 * v));
        for r in &rows {
            println!(
                "{:>6} {:>12.1} {:>12.1} {:>7.2}x {:>14.2} {:>6} {:>10.2} {:>7} {:>9}",
                r.batch,
                r.decode_tok_per_s,
                r.decode_tok_per_s / r.batch as f64,
                r.speedup,
                r.streamed_bytes_per_token / 1e6,
                r.steps,
                r.io_stall_s,
                pct(r.cpu.map(|c| c.idle)),
                pct(r.cpu.map(|c| c.stolen))
            );
        }
        println!(
            "idle and stolen: shares of all the machine's CPU time over each batch's run (prefill \
             included); stolen is time the hypervisor took while the guest had work"
        );
    }
    if let Some(p) = &args.plot {
        let title = format!(
            "{}, {} resident / {} streamed layers, {threads} threads",
            engine.spec().arch.name(),
            res,
            streamed
        );
        super::plot::save(p, &BatchFigure { title, rows: &rows }).map_err(Failure::Runtime)?;
    }
    Ok(())
}

/// Aggregate decode tokens/s against the batch size (log2 axis), with linear scaling from
/// `b = 1` for reference.
struct BatchFigure<'a> {
    title: String,
    rows: &'a [Row],
}

impl Figure for BatchFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let log2 = |b: usize| (b as f64).log2();
        let x_hi = self.rows.last().map_or(1.0, |r| log2(r.batch)) + 0.3;
        let one = self.rows.first().map_or(1.0, |r| r.decode_tok_per_s);
        let y_hi = self
            .rows
            .iter()
            .map(|r| r.decode_tok_per_s)
            .fold(one, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.3..x_hi, 0.0..y_hi)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("sequences per layer sweep")
            .y_desc("decode tokens/s (all sequences)")
            .x_labels(((x_hi + 0.3) * 2.0) as usize + 1)
            .x_label_formatter(&|x| {
                // Powers of two only: the axis is log2 of the batch size.
                if (x - x.round()).abs() < 1e-6 && *x >= 0.0 {
                    format!("{:.0}", x.round().exp2())
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(draw_err)?;
        let ideal: Vec<(f64, f64)> = self
            .rows
            .iter()
            .map(|r| (log2(r.batch), one * r.batch as f64))
            .take_while(|&(_, y)| y <= y_hi)
            .collect();
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(LineSeries::new(ideal, grey.stroke_width(1)))
            .map_err(draw_err)?
            .label("linear from 1 sequence")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        let color = palette(0);
        let pts: Vec<(f64, f64)> = self
            .rows
            .iter()
            .map(|r| (log2(r.batch), r.decode_tok_per_s))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(draw_err)?
            .label("measured")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(draw_err)?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_include_one_and_fit_a_step() {
        assert_eq!(batch_sizes(&[8, 2, 8], 16).unwrap(), [1, 2, 8]);
        assert!(batch_sizes(&[0], 16).is_err());
        assert!(batch_sizes(&[300], 1).is_err());
        let e = batch_sizes(&[64], 16).unwrap_err().to_string();
        assert!(e.contains("--prompt-tokens"), "{e}");
    }
}

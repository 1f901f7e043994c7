//! `sluice run`: generate text from a model, streaming it to stdout, with stats on stderr (or
//! one JSON object on stdout with `--json`).

use crate::engine::layer_times::{layer_times_requested, LAYER_TIMES_ENV};
use std::io::Write;

use anyhow::Context;
use serde_json::json;
use sluice_loader::tokenizer::{StreamDecoder, Tokenizer};

use super::run_args::RunArgs;
use super::{bad, interrupt, Failure};
use crate::api::prompt::{load_tokenizer, prompt_tokens};
use crate::engine::memory_limit::LimitSource;
use crate::engine::sampler::Sampler;
use crate::engine::session::{Engine, Generation};

/// Runs the command; returns the exit status.
pub fn run(args: &RunArgs) -> i32 {
    super::exit_status(run_inner(args), "sluice")
}

fn peak_rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn run_inner(args: &RunArgs) -> Result<(), Failure> {
    let sampler_cfg = args.sampling.config();
    sampler_cfg.validate().map_err(bad)?;
    let (path, opts) = args.engine.engine_args(1).resolve()?;
    let threads = opts.threads;
    let failure = |e| super::engine_failure(e, args.engine.device);
    let mut model = Engine::open_model(&path).map_err(failure)?;
    let tok = load_tokenizer(&mut model, args.engine.tokenizer.as_deref()).map_err(bad)?;
    // The template and vocabulary come from the tokenizer's file: name it in the error.
    let tok_file = args.engine.tokenizer.as_deref().unwrap_or(&path);
    let prompt = prompt_tokens(&tok, &args.prompt, args.raw)
        .map_err(|e| bad(anyhow::anyhow!("{}: {e}", tok_file.display())))?;
    // The KV cache is planned for exactly the prompt and the tokens asked for (the tokenizer
    // runs before the engine plans), so a tight memory limit keeps more layers resident.
    let n_ctx_plan = (prompt.len() + args.max_tokens as usize).min(model.spec.context_length);
    let mut engine = Engine::from_model(model, n_ctx_plan.max(2), &opts).map_err(failure)?;
    engine.check_prompt(&prompt).map_err(bad)?;
    report_device(args, &engine);
    if !args.json {
        eprintln!(
            "sluice: {} ({}), {} threads, {} backend, {} layers resident, {} streamed ({:.1} MB per token)",
            engine.model.path.display(),
            engine.spec().arch.name(),
            threads,
            engine.backend_name(),
            engine.plan.n_resident(),
            engine.plan.n_streamed(),
            engine.plan.streamed_bytes_per_token as f64 / 1e6,
        );
        eprintln!(
            "sluice: {}",
            super::memory_line(&engine, args.engine.ram_budget)
        );
    }
    let model_file = engine
        .model
        .index
        .files
        .first()
        .unwrap_or(&engine.model.path);
    let thermal = super::thermal::start(args.thermal, model_file, engine.stream_control());
    if !args.json {
        for line in thermal.start_lines() {
            eprintln!("sluice: {line}");
        }
    }
    interrupt::install();
    let sampler = Sampler::new(sampler_cfg, engine.spec().n_vocab);
    let mut stream = StreamDecoder::new(&tok);
    let mut stdout = std::io::stdout().lock();
    let json_mode = args.json;
    let generation = engine
        .generate(
            &prompt,
            args.max_tokens as usize,
            sampler,
            |t| tok.is_end_of_generation(t),
            |t| {
                if !json_mode {
                    if let Some(text) = stream.push(t) {
                        let _ = stdout.write_all(text.as_bytes());
                        let _ = stdout.flush();
                    }
                }
                !interrupt::requested()
            },
        )
        .map_err(|e| {
            if e.is_bad_input() {
                bad(e)
            } else {
                Failure::Runtime(e.into())
            }
        })?;
    if !json_mode {
        if let Some(text) = stream.finish() {
            let _ = stdout.write_all(text.as_bytes());
        }
        let _ = writeln!(stdout);
    }
    drop(stdout);
    if let Some(path) = &args.logits_out {
        let bytes: Vec<u8> = generation
            .first_logits
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(path, bytes)
            .with_context(|| format!("writing the logits to {}", path.display()))
            .map_err(Failure::Runtime)?;
    }
    let (thermal, thermal_line) = thermal.finish();
    if let (Some(line), false) = (thermal_line, args.json) {
        eprintln!("sluice: {line}");
    }
    report(args, &engine, &tok, &prompt, &generation, thermal);
    // The GPU backend prints its own table when it is dropped.
    if let (Some(times), true, None) = (
        engine.layer_times(),
        layer_times_requested(),
        engine.tiers(),
    ) {
        eprintln!("sluice: per-layer times ({LAYER_TIMES_ENV}=1, cpu)\n{times}");
    }
    Ok(())
}

/// Says on stderr which device computes (and why not the GPU under `--device auto`), and the
/// GPU's three tiers.
fn report_device(args: &RunArgs, engine: &Engine) {
    match (&engine.cpu_because, engine.tiers()) {
        (Some(why), _) => eprintln!("sluice: device: cpu ({why})"),
        (None, Some(t)) => {
            use crate::engine::tiers::Tier;
            eprintln!(
                "sluice: device: {}; layers in VRAM {}, RAM {}, streamed {} ({:.1} MB copied per token)",
                engine.backend_name(),
                t.count(Tier::Vram),
                t.count(Tier::Ram),
                t.count(Tier::Disk),
                (t.ram_bytes + t.disk_bytes) as f64 / 1e6,
            );
        }
        (None, None) => {
            eprintln!("sluice: device: cpu");
            if args.engine.vram_budget.is_some() {
                eprintln!("sluice: --vram-budget has no effect on the CPU backend");
            }
        }
    }
}

fn report(
    args: &RunArgs,
    engine: &Engine,
    tok: &Tokenizer,
    prompt: &[u32],
    g: &Generation,
    thermal: serde_json::Value,
) {
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let per_s = |n: usize, d: std::time::Duration| {
        if d.as_secs_f64() > 0.0 {
            n as f64 / d.as_secs_f64()
        } else {
            0.0
        }
    };
    let prefill_tok_per_s = per_s(prompt.len(), g.prefill);
    let decode_tok_per_s = per_s(g.decode_steps, g.decode);
    let gen_time = g.prefill + g.decode;
    let read_gb_per_s = if gen_time.as_secs_f64() > 0.0 {
        g.streamed_bytes as f64 / 1e9 / gen_time.as_secs_f64()
    } else {
        0.0
    };
    let load_s = secs(engine.load_time + g.resident_load);
    if args.json {
        let obj = json!({
            "model": engine.model.path.display().to_string(),
            "prompt_tokens": prompt,
            "tokens": g.tokens,
            "text": tok.decode(&g.tokens),
            "stop_reason": g.stop_reason.name(),
            "stats": {
                "load_s": load_s,
                "prefill_tok_per_s": prefill_tok_per_s,
                "decode_tok_per_s": decode_tok_per_s,
                "bytes_read": engine.bytes_read(),
                "read_gb_per_s": read_gb_per_s,
                "embd_rows_from_head": g.embd_rows_from_head,
                "embd_rows_read": g.embd_rows_read,
                "embd_rows_read_ahead": g.embd_rows_read_ahead,
                "io_stall_s": secs(g.io_wait),
                "resident_layers": engine.plan.n_resident(),
                "interleaved_bytes": g.interleaved_bytes,
                "streamed_layers": engine.plan.n_streamed(),
                "peak_rss_bytes": peak_rss_bytes(),
                "memory_limit_bytes": engine.memory_limit.as_ref().map(|l| l.limit),
                "memory_available_bytes": engine.memory_limit.as_ref().map(|l| l.available),
                "memory_limit_source": engine.memory_limit.as_ref().map(|l| l.source.kind()),
                "memory_limit_path": engine.memory_limit.as_ref().and_then(|l| match &l.source {
                    LimitSource::CgroupV1(p) | LimitSource::CgroupV2(p) => Some(p.display().to_string()),
                    LimitSource::MemAvailable => None,
                }),
                "weights_budget_bytes": engine.plan.budget_bytes,
                "ring_bytes": engine.ring_bytes(),
                "io_queue_depth": engine.streaming_reader().map(|c| c.queue_depth),
                "io_chunk_bytes": engine.streaming_reader().map(|c| c.chunk_bytes),
                "kv_cache_bytes": g.kv_cache_bytes,
                "run_state_bytes": g.run_state_bytes,
                "thermal": thermal,
            }
        });
        println!("{obj}");
    } else {
        eprintln!(
            "sluice: {} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s ({}); load {:.2} s; read {:.1} MB ({:.2} GB/s while generating), I/O stall {:.2} s; peak RSS {:.0} MB",
            prompt.len(),
            prefill_tok_per_s,
            g.tokens.len(),
            decode_tok_per_s,
            g.stop_reason.name(),
            load_s,
            engine.bytes_read() as f64 / 1e6,
            read_gb_per_s,
            secs(g.io_wait),
            peak_rss_bytes() as f64 / 1e6,
        );
    }
}

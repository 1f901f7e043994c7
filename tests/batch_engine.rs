//! Many sequences per sweep give every sequence the tokens it gets alone (greedy), on the real
//! models: prompts of mixed lengths (one longer than a prefill chunk, so its chunks are split
//! across steps beside decode tokens) with different token limits, more sequences than the
//! batch holds (so some join while others decode, and leave at different steps), resident and
//! streamed, on 1 and 2 threads, on this machine's kernel path and (re-running this test
//! binary with `SLUICE_SIMD=scalar`) on the scalar twin. Needs the models of
//! `scripts/fetch-models.sh all`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{assert_no_failures, load_reference, REFERENCE_MODELS};
use sluice::engine::backend::DeviceChoice;
use sluice::engine::sampler::{Sampler, SamplerConfig};
use sluice::engine::scheduler::{
    BatchOptions, Driver, Finished, SeqRequest, Verdict, MAX_BATCH_LIMIT, STEP_TOKENS_MAX,
};
use sluice::engine::session::{Engine, EngineError, EngineOptions, StopReason};
use sluice_loader::cache::require_model;
use sluice_runtime::ReaderConfig;

/// Hands the requests in order and keeps what each sequence produced.
struct Collect {
    queue: Vec<SeqRequest>,
    done: BTreeMap<u64, Result<Finished, String>>,
    /// Sequences live at each admission call, to show that joins happened mid-run.
    joined_while_busy: usize,
}

impl Driver for Collect {
    fn next(&mut self, idle: bool) -> Option<SeqRequest> {
        if self.queue.is_empty() {
            return None;
        }
        if !idle {
            self.joined_while_busy += 1;
        }
        Some(self.queue.remove(0))
    }

    fn is_eog(&self, _token: u32) -> bool {
        false
    }

    fn token(&mut self, _id: u64, _token: u32, _logits: &[f32]) -> Verdict {
        Verdict::Continue
    }

    fn finished(&mut self, id: u64, result: Result<Finished, EngineError>) {
        self.done.insert(id, result.map_err(|e| e.to_string()));
    }
}

fn greedy(n_vocab: usize) -> Sampler {
    let cfg = SamplerConfig {
        temperature: 0.0,
        ..SamplerConfig::default()
    };
    Sampler::new(cfg, n_vocab)
}

/// The reference prompts' token ids and, with `long`, one prompt longer than a prefill chunk
/// made of them (second in line).
fn prompts(model: &str, long: bool) -> Vec<Vec<u32>> {
    let r = load_reference(model);
    let mut ps: Vec<Vec<u32>> = r
        .prompts
        .values()
        .map(|p| p.prompt_token_ids.clone())
        .collect();
    if long {
        let long: Vec<u32> = ps.iter().flatten().copied().cycle().take(530).collect();
        ps.insert(1, long);
    }
    ps
}

fn load(path: &Path, threads: usize, ram_budget: Option<u64>, max_batch: usize) -> Engine {
    let opts = EngineOptions {
        threads,
        ram_budget,
        reader: ReaderConfig::default(),
        device: DeviceChoice::Cpu,
        vram_budget: None,
        layer_times: false,
        max_batch,
    };
    Engine::load(path, 1024, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every model × residency × thread count: batched tokens against alone tokens.
#[test]
fn batched_sequences_equal_each_sequence_alone() {
    let mut failures = Vec::new();
    let limits = [12usize, 9, 16, 5, 20];
    // Every path, not every combination: SmolLM2 on all four (resident and streamed, 1 and 2
    // threads), Qwen2.5 (its mixed types, biases and untied head) resident on 2 threads and
    // streamed on 1. The scalar re-run (below) covers SmolLM2 resident on 2 threads: its kernels
    // are many times slower, and scheduling and thread split are the same code on every path.
    // It leaves out the prompt longer than a prefill chunk: how a chunk is split across steps is
    // the same scheduling code on every path, and that prompt's 530-token prefill (alone, then
    // batched) on the scalar kernels took this file from 93 s to 168 s on 2 cores.
    let scalar = std::env::var("SLUICE_SIMD").is_ok_and(|v| v == "scalar");
    let paths: &[(&str, Option<u64>, usize)] = if scalar {
        &[(REFERENCE_MODELS[0], None, 2)]
    } else {
        &[
            (REFERENCE_MODELS[0], None, 1),
            (REFERENCE_MODELS[0], None, 2),
            (REFERENCE_MODELS[0], Some(0), 1),
            (REFERENCE_MODELS[0], Some(0), 2),
            (REFERENCE_MODELS[1], None, 2),
            (REFERENCE_MODELS[1], Some(0), 1),
        ]
    };
    for &(model, ram_budget, threads) in paths {
        let path = require_model(model);
        let ps = prompts(model, !scalar);
        let residency = if ram_budget.is_some() {
            "streamed"
        } else {
            "resident"
        };
        let what = format!("{model}, {residency}, {threads} threads");
        let mut engine = load(&path, threads, ram_budget, 3);
        let n_vocab = engine.spec().n_vocab;
        let alone: Vec<Vec<u32>> = ps
            .iter()
            .zip(limits)
            .map(|(p, n)| {
                engine
                    .generate(p, n, greedy(n_vocab), |_| false, |_| true)
                    .unwrap_or_else(|e| panic!("{what}: alone: {e}"))
                    .tokens
            })
            .collect();
        let mut driver = Collect {
            queue: ps
                .iter()
                .zip(limits)
                .enumerate()
                .map(|(i, (p, n))| SeqRequest {
                    id: i as u64,
                    prompt: p.clone(),
                    max_tokens: n,
                    sampler: greedy(n_vocab),
                    score_from: None,
                })
                .collect(),
            done: BTreeMap::new(),
            joined_while_busy: 0,
        };
        let stats = engine
            .run_batch(&BatchOptions::new(3), &mut driver)
            .unwrap_or_else(|e| panic!("{what}: batch: {e}"));
        assert!(
            driver.joined_while_busy >= 2,
            "{what}: sequences must join while others run"
        );
        assert_eq!(stats.peak_live, 3, "{what}");
        assert_eq!(
            stats.generated_tokens,
            limits.iter().take(ps.len()).sum::<usize>(),
            "{what}"
        );
        for (i, want) in alone.iter().enumerate() {
            match driver.done.get(&(i as u64)) {
                Some(Ok(f)) => {
                    assert_eq!(f.stop_reason, StopReason::Length, "{what}");
                    if &f.tokens != want {
                        failures.push(format!(
                                    "{what}: sequence {i} (prompt of {} tokens): batched {:?} != alone {:?}",
                                    ps[i].len(),
                                    f.tokens,
                                    want
                                ));
                    }
                }
                other => failures.push(format!("{what}: sequence {i}: {other:?}")),
            }
        }
        eprintln!(
            "{what}: {} sequences in {} steps, {} streamed bytes",
            ps.len(),
            stats.steps,
            stats.streamed_bytes
        );
    }
    assert_no_failures("batched vs alone", &failures);
}

/// The same comparison on the scalar kernels: this test binary again, forced to them.
#[test]
fn batched_sequences_equal_alone_on_the_scalar_path() {
    if std::env::var("SLUICE_SIMD").is_ok_and(|v| v == "scalar") {
        return; // This is the child run: the test above does the work.
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([
            "--exact",
            "batched_sequences_equal_each_sequence_alone",
            "--nocapture",
        ])
        .env("SLUICE_SIMD", "scalar")
        .output()
        .expect("re-running the test binary");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scalar run failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the scalar run did not run the comparison:\n{text}"
    );
}

/// A KV budget for two sequences holds the third back until one leaves; a sequence that alone
/// exceeds the budget, an empty prompt and one longer than the context are refused by name
/// while the others run; bad batch options are refused before anything runs.
#[test]
fn admission_is_bounded_by_the_kv_budget_and_refuses_bad_sequences() {
    let path = require_model("smollm2-135m");
    let mut engine = load(&path, 2, None, 2);
    let n_vocab = engine.spec().n_vocab;
    let p = prompts("smollm2-135m", false)[0].clone();
    let req = |id: u64, prompt: Vec<u32>, max_tokens: usize| SeqRequest {
        id,
        prompt,
        max_tokens,
        sampler: greedy(n_vocab),
        score_from: None,
    };
    let mut opts = BatchOptions::new(3);
    // Not a multiple of the KV padding: slabs and attention scratch round up alike.
    opts.n_ctx = Some(250);
    let one = sluice::model::kv_cache::KvCache::bytes_for(
        engine.cfg.n_layer,
        engine.spec().kv_dim(),
        p.len() + 8,
    );
    opts.kv_budget = Some(2 * one);
    let mut driver = Collect {
        queue: vec![
            req(0, p.clone(), 8),
            req(1, p.clone(), 8),
            req(2, p.clone(), 8),
            req(3, Vec::new(), 8),
            req(4, vec![1; 300], 8),
            req(5, p.clone(), 200),
        ],
        done: BTreeMap::new(),
        joined_while_busy: 0,
    };
    let stats = engine.run_batch(&opts, &mut driver).expect("batch run");
    assert_eq!(stats.peak_live, 2, "the budget holds two slabs");
    assert!(stats.peak_kv_bytes <= 2 * one);
    let alone = engine
        .generate(&p, 8, greedy(n_vocab), |_| false, |_| true)
        .expect("alone")
        .tokens;
    for id in 0..3 {
        match &driver.done[&id] {
            Ok(f) => assert_eq!(f.tokens, alone, "sequence {id}"),
            Err(e) => panic!("sequence {id}: {e}"),
        }
    }
    let err = |id: u64| driver.done[&id].as_ref().err().cloned().unwrap_or_default();
    assert!(err(3).contains("empty"), "{}", err(3));
    assert!(err(4).contains("context"), "{}", err(4));
    assert!(err(5).contains("KV"), "{}", err(5));

    // A context that is not a multiple of the KV padding, filled to its end.
    let mut tight = BatchOptions::new(2);
    tight.n_ctx = Some(p.len() + 10);
    let mut d = Collect {
        queue: vec![req(0, p.clone(), 10), req(1, p.clone(), 10)],
        done: BTreeMap::new(),
        joined_while_busy: 0,
    };
    engine.run_batch(&tight, &mut d).expect("a tight context");
    for id in 0..2 {
        let got = d.done[&id].as_ref().expect("finished");
        assert_eq!(got.tokens.len(), 10, "sequence {id} fills the context");
        assert_eq!(got.tokens[..8], alone[..], "sequence {id}");
    }

    let steps_over = STEP_TOKENS_MAX + 1;
    let bad_options = [
        (0, 512, 0),
        (MAX_BATCH_LIMIT + 1, 512, MAX_BATCH_LIMIT + 1),
        (4, 2, 4),
        (1, steps_over, 1),
        (4, 512, 3),
        (2, 64, 65),
    ];
    for (max_batch, step, rows) in bad_options {
        let mut o = BatchOptions::new(max_batch);
        o.step_tokens = step;
        o.logit_rows = rows;
        let mut d = Collect {
            queue: vec![req(0, p.clone(), 4)],
            done: BTreeMap::new(),
            joined_while_busy: 0,
        };
        let e = engine
            .run_batch(&o, &mut d)
            .expect_err("bad batch options are refused");
        assert!(e.is_bad_input(), "{e}");
        assert!(d.done.is_empty(), "nothing ran");
    }
}

/// Keeps every scored prompt row a sequence hands back, by (id, position).
struct Scores {
    queue: Vec<SeqRequest>,
    rows: BTreeMap<(u64, usize), Vec<f32>>,
    finished: Vec<(u64, Result<usize, String>)>,
    generated: usize,
}

impl Driver for Scores {
    fn next(&mut self, _idle: bool) -> Option<SeqRequest> {
        (!self.queue.is_empty()).then(|| self.queue.remove(0))
    }

    fn is_eog(&self, _token: u32) -> bool {
        false
    }

    fn token(&mut self, _id: u64, _token: u32, _logits: &[f32]) -> Verdict {
        self.generated += 1;
        Verdict::Continue
    }

    fn prompt_logits(&mut self, id: u64, pos: usize, logits: &[f32]) {
        let fresh = self.rows.insert((id, pos), logits.to_vec()).is_none();
        assert!(fresh, "position {pos} of sequence {id} scored twice");
    }

    fn finished(&mut self, id: u64, result: Result<Finished, EngineError>) {
        self.finished.push((
            id,
            result.map(|f| f.tokens.len()).map_err(|e| e.to_string()),
        ));
    }
}

/// Sequences that score their prompt (perplexity's): every position from `score_from` comes
/// back once, in order, bit-identical however few logit rows a step may hold (the steps then
/// split the prompts) and to the logits `generate` samples from; `max_tokens` 0 generates
/// nothing and lets the prompt fill the whole context.
#[test]
fn scored_prompts_return_every_row_however_the_steps_split() {
    let path = require_model("smollm2-135m");
    let mut engine = load(&path, 2, None, 2);
    let n_vocab = engine.spec().n_vocab;
    let ps = prompts("smollm2-135m", false);
    let a: Vec<u32> = ps.iter().flatten().copied().cycle().take(64).collect();
    let b: Vec<u32> = ps
        .iter()
        .flatten()
        .copied()
        .skip(3)
        .cycle()
        .take(64)
        .collect();
    let run = |engine: &mut Engine, rows: usize, step: usize| {
        let mut opts = BatchOptions::new(2);
        opts.n_ctx = Some(64);
        opts.step_tokens = step;
        opts.logit_rows = rows;
        let req = |id: u64, prompt: &Vec<u32>| SeqRequest {
            id,
            prompt: prompt.clone(),
            max_tokens: 0,
            sampler: greedy(n_vocab),
            score_from: Some(40),
        };
        let mut d = Scores {
            queue: vec![req(0, &a), req(1, &b)],
            rows: BTreeMap::new(),
            finished: Vec::new(),
            generated: 0,
        };
        let stats = engine.run_batch(&opts, &mut d).expect("scoring run");
        assert_eq!(d.generated, 0, "max_tokens 0 generates nothing");
        d.finished.sort_by_key(|f| f.0);
        assert_eq!(d.finished, vec![(0, Ok(0)), (1, Ok(0))]);
        (d.rows, stats.steps)
    };
    let (wide, wide_steps) = run(&mut engine, 48, 128);
    assert_eq!(wide_steps, 1, "both prompts and all 48 rows in one sweep");
    let keys: Vec<(u64, usize)> = (0..2)
        .flat_map(|id| (40..64).map(move |p| (id, p)))
        .collect();
    assert_eq!(wide.keys().copied().collect::<Vec<_>>(), keys);
    let (narrow, narrow_steps) = run(&mut engine, 2, 128);
    assert!(
        narrow_steps >= 24,
        "two rows per sweep: {narrow_steps} sweeps"
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for k in &keys {
        assert_eq!(bits(&wide[k]), bits(&narrow[k]), "row {k:?}");
    }
    // The last row is the logits generation samples its first token from.
    let alone = engine
        .generate(&a[..64 - 1], 1, greedy(n_vocab), |_| false, |_| true)
        .expect("alone");
    assert_eq!(bits(&alone.first_logits), bits(&wide[&(0, 62)]));
}

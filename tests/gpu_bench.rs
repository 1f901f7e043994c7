//! GPU figures (feature `gpu-tests`; run with `--nocapture`): host→device GB/s from page-locked
//! and pageable memory, and decode timings of SmolLM2 with every layer streamed through the
//! page-locked ring and the device ring, and the per-layer copy / compute / stall table of the
//! streamed pipeline (`SLUICE_LAYER_TIMES=1`). Prints figures, asserts only that they exist.
#![cfg(feature = "gpu-tests")]

mod common;

use common::{parse_run_json, run_json, sluice, stderr, REFERENCE_MODELS};
use sluice::cuda::timing::LAYER_TIMES_ENV;

#[test]
fn h2d_bandwidth_pinned_vs_pageable() {
    if let Err(e) = sluice::cuda::probe() {
        println!("skipped: no CUDA device ({e})");
        return;
    }
    for bytes in [8usize << 20, 64 << 20, 256 << 20] {
        let f = sluice::cuda::bench::h2d(bytes, 8).expect("H2D bench");
        println!(
            "h2d {:>4} MiB: page-locked {:.2} GB/s, pageable {:.2} GB/s",
            bytes >> 20,
            f.pinned_gb_per_s,
            f.pageable_gb_per_s
        );
        assert!(f.pinned_gb_per_s > 0.0 && f.pageable_gb_per_s > 0.0);
    }
}

#[test]
fn streamed_decode_timings() {
    if let Err(e) = sluice::cuda::probe() {
        println!("skipped: no CUDA device ({e})");
        return;
    }
    let model = REFERENCE_MODELS[0];
    if sluice_loader::cache::resolve(model).into_path().is_err() {
        println!("skipped: model {model} is not in the cache");
        return;
    }
    for (label, extra) in [
        ("all in VRAM", vec![]),
        ("all from RAM", vec!["--vram-budget", "0"]),
        (
            "all from disk",
            vec!["--vram-budget", "0", "--ram-budget", "0"],
        ),
    ] {
        let mut args = vec![
            "run",
            "--model",
            model,
            "--prompt",
            "Once upon a time",
            "--temperature",
            "0",
            "--max-tokens",
            "64",
            "--json",
            "--device",
            "cuda",
        ];
        args.extend(extra);
        let out = run_json(&args, &[]);
        let s = &out.stats;
        let per_token_ms = 1e3 / s.decode_tok_per_s.max(1e-9);
        println!(
            "{label:>14}: decode {:.1} tok/s ({:.3} ms/token), prefill {:.1} tok/s, I/O stall {:.3} s, read {:.2} GB/s",
            s.decode_tok_per_s,
            per_token_ms,
            s.prefill_tok_per_s,
            s.io_stall_s,
            s.read_gb_per_s
        );
        assert!(s.decode_tok_per_s > 0.0);
    }
}

#[test]
fn streamed_per_layer_copy_compute_stall() {
    if let Err(e) = sluice::cuda::probe() {
        println!("skipped: no CUDA device ({e})");
        return;
    }
    let model = REFERENCE_MODELS[0];
    if sluice_loader::cache::resolve(model).into_path().is_err() {
        println!("skipped: model {model} is not in the cache");
        return;
    }
    for (label, extra) in [
        ("streamed from RAM", vec![]),
        ("streamed from disk", vec!["--ram-budget", "0"]),
    ] {
        let mut args = vec![
            "run",
            "--model",
            model,
            "--prompt",
            "Once upon a time",
            "--temperature",
            "0",
            "--max-tokens",
            "64",
            "--json",
            "--device",
            "cuda",
            "--vram-budget",
            "0",
        ];
        args.extend(extra);
        let out = sluice(&args, &[(LAYER_TIMES_ENV, "1")]);
        let err = stderr(&out);
        let run = parse_run_json(&out).unwrap_or_else(|e| panic!("{e}\n{err}"));
        println!(
            "== {model}, {label}: decode {:.1} tok/s",
            run.stats.decode_tok_per_s
        );
        // The backend prints its table to stderr when it is dropped.
        let table: Vec<&str> = err
            .lines()
            .skip_while(|l| !l.starts_with("sluice: per-layer device times"))
            .collect();
        for line in &table {
            println!("{line}");
        }
        assert!(
            table.iter().any(|l| l.trim_start().starts_with("all ")),
            "no per-layer table in stderr:\n{err}"
        );
    }
}

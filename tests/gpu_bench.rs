//! GPU figures (ignored unless asked for: `scripts/gpu-check.sh` runs them with `--ignored
//! --nocapture`): host→device GB/s from page-locked and pageable memory, and decode timings of
//! SmolLM2 with every layer streamed through the page-locked ring and the device ring, and the
//! per-layer copy / compute / stall table of the streamed pipeline (`SLUICE_LAYER_TIMES=1`). Prints
//! figures, asserts only that they exist.
#![cfg(feature = "cuda")]

mod common;

use common::{parse_run_json, require_cuda, run_json, sluice, stderr, REFERENCE_MODELS};
use sluice::cuda::timing::LAYER_TIMES_ENV;
use sluice_loader::cache::require_model;

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn h2d_bandwidth_pinned_vs_pageable() {
    require_cuda();
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
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn streamed_decode_timings() {
    require_cuda();
    let model = REFERENCE_MODELS[0];
    require_model(model);
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
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn streamed_per_layer_copy_compute_stall() {
    require_cuda();
    let model = REFERENCE_MODELS[0];
    require_model(model);
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

// `sluice bench pcie` and the GPU half of `sluice bench kernels`: the figures behind them,
// printed (`--nocapture`); asserted only to exist.

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn pcie_link_both_ways_page_locked() {
    require_cuda();
    let f = sluice::cuda::bench::pcie_link(64 << 20, 8).expect("PCIe link");
    println!(
        "link at {} MiB: H2D {:.2} GB/s, D2H {:.2} GB/s (page-locked)",
        f.bytes >> 20,
        f.h2d_gb_per_s,
        f.d2h_gb_per_s
    );
    assert!(f.bytes > 0 && f.h2d_gb_per_s > 0.0 && f.d2h_gb_per_s > 0.0);
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn pcie_bench_four_series_by_size() {
    use sluice::cuda::bench::PcieBench;
    require_cuda();
    let mut bench = PcieBench::open(256 << 20).expect("opening the PCIe bench");
    println!(
        "{}: {} MiB free, copies up to {} MiB",
        bench.info().name,
        bench.free_device_bytes() >> 20,
        bench.bytes_max() >> 20
    );
    println!("     size   H2D pinned  H2D pageable   D2H pinned  D2H pageable  (GB/s)");
    for bytes in [64usize << 10, 1 << 20, 16 << 20, 256 << 20] {
        let bytes = bytes.min(bench.bytes_max());
        let f = bench.measure(bytes, 10).expect("copies");
        println!(
            "{:>9} {:>12.2} {:>13.2} {:>12.2} {:>13.2}",
            f.bytes,
            f.h2d_pinned_gb_per_s,
            f.h2d_pageable_gb_per_s,
            f.d2h_pinned_gb_per_s,
            f.d2h_pageable_gb_per_s
        );
        for rate in [
            f.h2d_pinned_gb_per_s,
            f.h2d_pageable_gb_per_s,
            f.d2h_pinned_gb_per_s,
            f.d2h_pageable_gb_per_s,
        ] {
            assert!(rate > 0.0 && rate.is_finite(), "{f:?}");
        }
    }
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn kernel_bench_every_weight_type() {
    use sluice::cpu::synth::{weights, Rng, WEIGHT_TYPES};
    use sluice::cuda::bench::KernelBench;
    require_cuda();
    let bench = KernelBench::open().expect("the kernel bench on device 0");
    let (row_elems, matrix_bytes, seconds) = (4096usize, 64usize << 20, 0.2);
    let mem = bench
        .mem_gb_per_s(matrix_bytes, seconds)
        .expect("memory bandwidth");
    println!(
        "{}: device-to-device copy {mem:.1} GB/s (read + written)",
        bench.info().name
    );
    let mut rng = Rng::new(7);
    for ty in WEIGHT_TYPES {
        let row_bytes = ty.row_bytes(row_elems as u64).expect("whole blocks") as usize;
        let n_rows = matrix_bytes / row_bytes;
        let w = weights(&mut rng, ty, row_elems, n_rows);
        let f = bench
            .measure(ty, row_elems, n_rows, &w, seconds)
            .unwrap_or_else(|e| panic!("{ty}: {e}"));
        println!(
            "{:<7} dequant {:>8.1} GB/s, matvec {:>8.1} GB/s ({:.0}% of the copy)",
            ty.to_string(),
            f.dequant_gb_per_s,
            f.matvec_gb_per_s,
            100.0 * f.matvec_gb_per_s / mem
        );
        assert_eq!(f.weight_bytes, w.len());
        assert!(f.dequant_gb_per_s > 0.0 && f.matvec_gb_per_s > 0.0, "{f:?}");
    }
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn bench_pcie_writes_a_plot() {
    require_cuda();
    let dir = tempfile::tempdir().expect("tempdir");
    let plot = dir.path().join("pcie.svg");
    let plot_arg = plot.to_str().expect("utf-8 temp path");
    let args = [
        "bench",
        "pcie",
        "--sizes",
        "64K,4M,64M",
        "--reps",
        "5",
        "--plot",
        plot_arg,
    ];
    let out = sluice(&args, &[]);
    let (text, err) = (common::stdout(&out), stderr(&out));
    println!("{text}");
    if err.contains("TrueType font") {
        println!("no plot: {err}");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(text.contains("best: H2D"), "{text}");
    assert!(std::fs::metadata(&plot).is_ok_and(|m| m.len() > 0));
}

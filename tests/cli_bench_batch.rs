//! `sluice bench batch` contracts on SmolLM2 (needs the model in the cache; CI fetches it): one
//! JSON row per batch size with 1 always measured, bytes streamed per generated token falling
//! as 1/batch when every layer streams, the machine's CPU shares, and bad options refused with
//! exit 2.

mod common;

use common::{path_arg, sluice, stderr};
use serde_json::Value;
use sluice_loader::cache::require_model;

const MODEL: &str = "smollm2-135m";

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

#[test]
fn streamed_rows_share_the_read_and_count_the_cpus() {
    let model = require_model(MODEL);
    let o = sluice(
        &[
            "bench",
            "batch",
            "-m",
            path_arg(&model),
            "--ram-budget",
            "0",
            "--batches",
            "4",
            "--tokens",
            "3",
            "--prompt-tokens",
            "2",
            "--threads",
            "2",
            "--device",
            "cpu",
            "--json",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON object on stdout");
    assert_eq!(v["streamed_layers"], 30, "{v}");
    assert_eq!(v["resident_layers"], 0, "{v}");
    let rows = v["rows"].as_array().expect("rows");
    let batches: Vec<u64> = rows.iter().filter_map(|r| r["batch"].as_u64()).collect();
    assert_eq!(batches, [1, 4], "1 is always measured: {v}");
    assert_eq!(num(&rows[0], "speedup"), 1.0, "{v}");
    for r in rows {
        assert!(num(r, "decode_tok_per_s") > 0.0, "{r}");
        let ratio =
            num(r, "speedup") / (num(r, "decode_tok_per_s") / num(&rows[0], "decode_tok_per_s"));
        assert!(
            (ratio - 1.0).abs() < 1e-9,
            "speedup is against batch 1: {r}"
        );
        // How the machine's CPUs spent the run: three shares of one whole, or null when no
        // clock tick passed within it (the one-sequence row streams every token: it spans
        // many ticks, so it is always counted).
        let cpu = &r["cpu"];
        assert!(
            !rows[0]["cpu"].is_null(),
            "the streamed one-sequence row: {v}"
        );
        if !cpu.is_null() {
            let parts = ["busy", "idle", "stolen"].map(|k| num(cpu, k));
            assert!(parts.iter().all(|p| (0.0..=1.0).contains(p)), "{cpu}");
            assert!((parts.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{cpu}");
        }
    }
    // Each sweep reads every layer once, whatever the batch; four sequences share it. Prefill
    // sweeps and the sequences' last tokens keep the ratio off exactly 4.
    let one = num(&rows[0], "streamed_bytes_per_token");
    let four = num(&rows[1], "streamed_bytes_per_token");
    assert!(one > 0.0, "{v}");
    assert!(
        four < one / 2.5 && four > one / 6.0,
        "bytes per token fall as 1/batch: {one} at 1, {four} at 4"
    );
}

#[test]
fn bad_options_are_refused_with_exit_2() {
    let model = require_model(MODEL);
    for (extra, says) in [
        (&["--batches", "0"][..], "--batches"),
        (
            &["--batches", "64", "--prompt-tokens", "512"][..],
            "--prompt-tokens",
        ),
        (&["--plot", "out.bmp"][..], "bmp"),
        (&["--tokens", "1"][..], "--tokens"),
    ] {
        let mut args = vec!["bench", "batch", "-m", path_arg(&model), "--device", "cpu"];
        args.extend_from_slice(extra);
        let o = sluice(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{extra:?}: {}", stderr(&o));
    }
}

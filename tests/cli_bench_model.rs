//! `sluice bench model` contracts on SmolLM2 (needs the model in the cache; CI fetches it): the
//! JSON object, the bound and bottleneck consistent with the per-token figures, one row per
//! layer plus the embedding and the head, the plot, and bad options refused with exit 2.

mod common;

use common::{path_arg, sluice, stderr};
use serde_json::Value;
use sluice_loader::cache::require_model;

const MODEL: &str = "smollm2-135m";
/// SmolLM2-135M's layers.
const N_LAYER: usize = 30;

fn bench_json(extra: &[&str]) -> Value {
    let model = require_model(MODEL);
    let mut args = vec![
        "bench",
        "model",
        "-m",
        path_arg(&model),
        "--tokens",
        "4",
        "--prompt-tokens",
        "3",
        "--seconds",
        "0.05",
        "--threads",
        "2",
        "--device",
        "cpu",
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = sluice(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("one JSON object on stdout")
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{} is not a number in {v}", path.join(".")))
}

/// The bound is the slowest link, and the prediction is its inverse.
fn assert_bound_consistent(v: &Value) {
    let times = [
        ("disk", num(v, &["per_token", "disk_s"])),
        ("pcie", num(v, &["per_token", "pcie_s"])),
        ("compute", num(v, &["per_token", "compute_s"])),
    ];
    let bound = num(v, &["per_token", "bound_s"]);
    let slowest = times.iter().map(|t| t.1).fold(0.0, f64::max);
    assert!((bound - slowest).abs() <= 1e-12 * slowest.max(1.0), "{v}");
    let named = v["bottleneck"].as_str().expect("bottleneck");
    let (_, t) = times
        .iter()
        .find(|(n, _)| *n == named)
        .expect("bottleneck is disk, pcie or compute");
    assert_eq!(*t, bound, "the bottleneck's time is the bound: {v}");
    let predicted = num(v, &["predicted_tok_per_s"]);
    assert!((predicted * bound - 1.0).abs() < 1e-9, "{v}");
    let achieved = num(v, &["achieved_tok_per_s"]);
    assert!(achieved > 0.0, "{v}");
    assert!((num(v, &["achieved_over_predicted"]) - achieved / predicted).abs() < 1e-9);
}

#[test]
fn streaming_everything_reads_every_layer_and_names_a_bottleneck() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plot = dir.path().join("model.svg");
    let v = bench_json(&["--ram-budget", "0", "--plot", path_arg(&plot)]);
    assert_bound_consistent(&v);
    for link in ["disk_gb_per_s", "host_gb_per_s", "compute_gb_per_s"] {
        assert!(num(&v, &["links", link]) > 0.0, "{link} in {v}");
    }
    assert!(
        v["links"]["pcie_gb_per_s"].is_null(),
        "the CPU computes: {v}"
    );
    assert_eq!(num(&v, &["per_token", "copied_bytes"]), 0.0);
    let streamed = num(&v, &["per_token", "streamed_bytes"]);
    let weights = num(&v, &["per_token", "weight_bytes"]);
    assert!(streamed >= 0.9 * weights, "everything streams: {v}");
    assert_eq!(v["decode_tokens"], 3);
    assert_eq!(num(&v, &["measured_per_token", "sweeps"]), 3.0);
    assert!(
        num(&v, &["disk_before_gb_per_s"]) > 0.0 && num(&v, &["disk_after_gb_per_s"]) > 0.0,
        "the disk link is measured again just before and just after the decode: {v}"
    );
    // The drive under the model file while decoding, where the kernel counts it (a block
    // device has a /proc/diskstats line; overlayfs or tmpfs would not).
    let disk = &v["decode_disk"];
    if disk.is_null() {
        eprintln!("decode_disk: the model's file system has no block device of its own here");
        assert!(v["decode_over_disk_around"].is_null(), "{v}");
    } else {
        // The decode's rate over the mean of the two figures around it.
        let around = (num(&v, &["disk_before_gb_per_s"]) + num(&v, &["disk_after_gb_per_s"])) / 2.0;
        let ratio = num(&v, &["decode_over_disk_around"]);
        let expect = num(disk, &["read_gb_per_s"]) / around;
        assert!((ratio - expect).abs() <= 1e-9 * expect.max(1.0), "{v}");
        let busy = num(disk, &["busy"]);
        assert!((0.0..=1.0).contains(&busy), "{disk}");
        assert!(num(disk, &["read_gb_per_s"]) >= 0.0, "{disk}");
        assert!(
            disk["device"].as_str().is_some_and(|d| !d.is_empty()),
            "{disk}"
        );
    }

    // The machine's CPUs while decoding: three shares of one whole, or null when the decode
    // ended within one clock tick.
    let cpu = &v["decode_cpu"];
    if !cpu.is_null() {
        let parts = ["busy", "idle", "stolen"].map(|k| num(cpu, &[k]));
        assert!(parts.iter().all(|p| (0.0..=1.0).contains(p)), "{cpu}");
        assert!((parts.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{cpu}");
    }

    let layers = v["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), N_LAYER + 2, "embd, the layers, head");
    assert_eq!(layers[0]["name"], "embd");
    assert_eq!(layers[N_LAYER + 1]["name"], "head");
    for (i, l) in layers.iter().enumerate() {
        assert_eq!(l["tier"], "disk", "row {i}: {l}");
        for f in ["read_ms", "copy_ms", "compute_ms", "stall_ms"] {
            assert!(
                l[f].as_f64().is_some_and(|x| x >= 0.0),
                "{f} of row {i}: {l}"
            );
        }
        if (1..=N_LAYER).contains(&i) {
            assert_eq!(l["name"], (i - 1).to_string());
            assert!(num(l, &["read_ms"]) > 0.0, "a streamed layer is read: {l}");
            assert!(num(l, &["compute_ms"]) > 0.0, "{l}");
            assert!(num(l, &["bytes"]) > 0.0, "{l}");
        }
    }
    let timeline = v["timeline"].as_array().expect("timeline");
    assert_eq!(timeline.len(), N_LAYER + 2);
    for t in &timeline[1..=N_LAYER] {
        let read = t["read_ms"]
            .as_array()
            .expect("streamed rows have a read span");
        let (queued, done) = (
            read[0].as_f64().unwrap_or(f64::NAN),
            read[1].as_f64().unwrap_or(f64::NAN),
        );
        assert!(queued <= done, "{t}");
        let compute = t["compute_ms"].as_array().expect("compute span");
        let start = compute[0].as_f64().unwrap_or(f64::NAN);
        assert!(done <= start + 1e-3, "a layer computes after its read: {t}");
    }
    let kernels = v["kernels"].as_array().expect("kernels");
    let q4_1 = kernels
        .iter()
        .find(|k| k["type"] == "Q4_1")
        .expect("SmolLM2's layers are Q4_1");
    assert!(num(q4_1, &["matvec_gb_per_s"]) > 0.0);
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    assert!(svg.contains("<svg"), "not an SVG");
    let bound = format!("({}-bound)", v["bottleneck"].as_str().unwrap_or("?"));
    assert!(
        svg.contains(&bound),
        "the chart names the bottleneck {bound}"
    );
}

#[test]
fn a_resident_model_is_compute_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plot = dir.path().join("model.png");
    let v = bench_json(&["--plot", path_arg(&plot)]);
    assert_bound_consistent(&v);
    assert_eq!(v["bottleneck"], "compute", "{v}");
    assert_eq!(num(&v, &["per_token", "streamed_bytes"]), 0.0);
    assert_eq!(num(&v, &["per_token", "disk_s"]), 0.0);
    for l in v["layers"].as_array().expect("layers") {
        assert_eq!(l["tier"], "ram", "{l}");
        assert_eq!(num(l, &["read_ms"]), 0.0, "{l}");
    }
    let png = std::fs::read(&plot).expect("plot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}

#[test]
fn the_table_names_the_bottleneck() {
    let model = require_model(MODEL);
    let o = sluice(
        &[
            "bench",
            "model",
            "-m",
            path_arg(&model),
            "--tokens",
            "3",
            "--seconds",
            "0.05",
            "--ram-budget",
            "0",
            "--device",
            "cpu",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("<- bottleneck"), "{out}");
    assert!(
        out.contains("predicted") && out.contains("achieved"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("head")),
        "{out}"
    );
}

#[test]
fn bad_options_exit_2_with_one_sentence() {
    let model = require_model(MODEL);
    let m = path_arg(&model);
    for (args, says) in [
        (vec!["-m", "/nonexistent/model.gguf"], "model.gguf"),
        (vec!["-m", m, "--seconds", "0"], "--seconds"),
        (vec!["-m", m, "--plot", "chart.jpg"], "chart.jpg"),
        (vec!["-m", m, "--tokens", "1"], "--tokens"),
        (vec!["-m", m, "--ram-budget", "lots"], "--ram-budget"),
    ] {
        let mut full = vec!["bench", "model"];
        full.extend(&args);
        let o = sluice(&full, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

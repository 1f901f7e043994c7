//! `sluice bench pcie` contracts. Without a GPU (the usual case off a GPU machine): exit 0 with
//! one sentence saying there is none and why, or `{"gpu": null, "reason": ...}` with `--json`.
//! With one: a figure per size and series. Bad options exit 2 with one sentence and no stdout.

use std::process::{Command, Output};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice")
}

/// Why this machine has no GPU to measure, or `None` when it has one.
fn no_gpu() -> Option<String> {
    sluice::cuda::probe().err().map(|e| e.to_string())
}

#[test]
fn without_a_gpu_one_sentence_says_why_and_exit_0() {
    let Some(why) = no_gpu() else {
        println!("skipped: this machine has a GPU (see pcie_json_has_every_series_per_size)");
        return;
    };
    let o = sluice(&["bench", "pcie"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {err}");
    assert_eq!(out.trim_end().lines().count(), 1, "{out}");
    assert!(
        out.starts_with("no GPU, so no PCIe link to measure: "),
        "{out}"
    );
    println!("{why}\n{out}");

    let o = sluice(&[
        "bench", "pcie", "--json", "--sizes", "64K,1M", "--reps", "3",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert!(v["gpu"].is_null(), "{v}");
    let reason = v["reason"].as_str().expect("a reason");
    assert!(
        !reason.is_empty() && out.contains(reason),
        "{reason} vs {out}"
    );
}

#[test]
fn pcie_json_has_every_series_per_size() {
    if let Some(why) = no_gpu() {
        println!("skipped: {why}");
        return;
    }
    let o = sluice(&[
        "bench", "pcie", "--json", "--sizes", "1M,64K", "--reps", "5",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stderr: {err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert!(v["gpu"]["name"].as_str().is_some(), "{v}");
    let rows = v["results"].as_array().expect("results");
    let sizes: Vec<u64> = rows.iter().filter_map(|r| r["bytes"].as_u64()).collect();
    assert_eq!(sizes, [64 << 10, 1 << 20]);
    for key in [
        "h2d_pinned_gb_per_s",
        "h2d_pageable_gb_per_s",
        "d2h_pinned_gb_per_s",
        "d2h_pageable_gb_per_s",
    ] {
        for r in rows {
            assert!(r[key].as_f64().is_some_and(|x| x > 0.0), "{key} in {r}");
        }
        assert!(v["best"][key].as_f64().is_some_and(|x| x > 0.0), "{v}");
    }
}

#[test]
fn pcie_bad_options_exit_2_with_one_sentence() {
    for (args, fragment) in [
        (&["--sizes", "0"][..], "--sizes"),
        (&["--sizes", "64K,12Q"][..], "--sizes"),
        (&["--sizes", "32G"][..], "between 4 KiB and 16 GiB"),
        (&["--reps", "0"][..], "--reps"),
        (&["--plot", "chart.jpg"][..], ".png or .svg"),
    ] {
        let mut all = vec!["bench", "pcie"];
        all.extend_from_slice(args);
        let o = sluice(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(err.contains(fragment), "{fragment} not in {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // Unparseable values are clap's: exit 2 too.
    let o = sluice(&["bench", "pcie", "--reps", "many"]);
    assert_eq!(o.status.code(), Some(2));
}

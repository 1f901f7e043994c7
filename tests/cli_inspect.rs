//! `sluice inspect` contracts: text and JSON on the real models, exit 2 with one sentence
//! naming the file for bad paths, truncated files and unknown aliases.

use std::path::Path;
use std::process::{Command, Output};

use sluice_loader::cache::require_model;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2, nothing on stdout, one line on stderr containing every fragment.
fn assert_bad_input(o: &Output, fragments: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for f in fragments {
        assert!(err.contains(f), "'{f}' not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn text_on_smollm2() {
    let path = require_model("smollm2-135m");
    let o = sluice(&["inspect", &path.display().to_string()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    eprintln!("{out}");
    for f in [
        "architecture llama",
        "30 layers, n_embd 576, n_ff 1536, 9 heads / 3 kv heads, head_dim 64",
        "49152 tokens",
        "base 100000",
        "norm pairs",
        "output tied to embeddings: yes",
        "Q4_1",
        "token_embd.weight",
        "(assumed NVMe rate)",
        "ms per token",
    ] {
        assert!(out.contains(f), "'{f}' not in:\n{out}");
    }
    let rows = out
        .lines()
        .filter(|l| l.trim_end().ends_with("yes") && l.trim_start().starts_with(char::is_numeric));
    assert_eq!(rows.count(), 30, "one contiguous row per layer:\n{out}");
}

#[test]
fn json_on_qwen_by_alias() {
    let _ = require_model("qwen2.5-coder-0.5b");
    let o = sluice(&[
        "inspect",
        "qwen2.5-coder-0.5b",
        "--json",
        "--disk-gb-per-s",
        "7",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    eprintln!("{v}");
    assert_eq!(v["arch"], "qwen2");
    assert_eq!(v["format"], "gguf");
    let h = &v["hparams"];
    assert_eq!(
        (
            h["n_layer"].as_u64(),
            h["n_embd"].as_u64(),
            h["n_ff"].as_u64()
        ),
        (Some(24), Some(896), Some(4864))
    );
    assert_eq!(
        (h["n_head"].as_u64(), h["n_head_kv"].as_u64()),
        (Some(14), Some(2))
    );
    assert_eq!(
        (h["n_vocab"].as_u64(), h["rope_style"].as_str()),
        (Some(151936), Some("neox"))
    );
    assert_eq!(
        (h["tied_output"].as_bool(), h["qkv_bias"].as_bool()),
        (Some(false), Some(true))
    );
    let layers = v["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 24);
    assert!(layers
        .iter()
        .all(|l| l["contiguous"] == true && l["extents"] == 1));
    let types: Vec<&str> = v["types"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(|t| t["type"].as_str())
        .collect();
    for ty in ["Q5_0", "Q8_0", "Q4_K", "Q6_K", "F32"] {
        assert!(types.contains(&ty), "{types:?}");
    }
    let s = &v["streaming"];
    assert_eq!(
        (
            s["disk_gb_per_s"].as_f64(),
            s["disk_rate_assumed"].as_bool()
        ),
        (Some(7.0), Some(false))
    );
    let bytes = s["bytes_per_token"].as_f64().expect("bytes");
    let layer_sum: f64 = layers.iter().filter_map(|l| l["bytes"].as_f64()).sum();
    let head = s["head_bytes"].as_f64().expect("head bytes");
    // Qwen2.5's untied Q8_0 output matrix: 151936 rows of 896 elements.
    assert!(head >= (151_936 * 896 / 32 * 34) as f64, "{head}");
    assert_eq!(bytes, layer_sum + head);
    let secs = s["seconds_per_token"].as_f64().expect("secs");
    assert!((secs - bytes / 7e9).abs() < 1e-12, "{secs}");
}

#[test]
fn nonexistent_path() {
    let o = sluice(&["inspect", "/no/such/dir/model.gguf"]);
    assert_bad_input(&o, &["/no/such/dir/model.gguf"]);
}

#[test]
fn unknown_alias() {
    let o = sluice(&["inspect", "no-such-model-alias"]);
    assert_bad_input(&o, &["no-such-model-alias", "smollm2-135m"]);
}

#[test]
fn truncated_model() {
    let src = require_model("smollm2-135m");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("cut.gguf");
    let bytes = std::fs::read(&src).expect("read model");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("write");
    let o = sluice(&["inspect", &p.display().to_string(), "--json"]);
    assert_bad_input(&o, &[&p.display().to_string()]);
}

#[test]
fn bad_rate() {
    let path = require_model("smollm2-135m");
    let o = sluice(&[
        "inspect",
        &path.display().to_string(),
        "--disk-gb-per-s",
        "0",
    ]);
    assert_bad_input(&o, &["--disk-gb-per-s"]);
}

#[test]
fn hf_directory() {
    let dir = sluice_loader::cache::models_dir().join("smollm2-135m-f16-hf");
    assert!(
        Path::new(&dir).join("config.json").is_file(),
        "run scripts/test.sh to make {}",
        dir.display()
    );
    let o = sluice(&["inspect", &dir.display().to_string(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(
        (v["format"].as_str(), v["hparams"]["rope_style"].as_str()),
        (Some("safetensors"), Some("neox"))
    );
}

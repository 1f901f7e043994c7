//! `sluice batch` on SmolLM2: every line's greedy tokens equal `sluice run`'s for the same
//! prompt (mixed prompt lengths and token limits, more lines than the batch holds, resident and
//! streamed), resuming skips what is written and redoes a torn last line, bad lines are named
//! by line number while the others run, stop strings cut the text, and the JSON summary counts
//! bytes read per token. Needs `scripts/fetch-models.sh`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{sluice, stderr, stdout};
use serde_json::{json, Value};
use sluice_loader::cache::require_model;

const PROMPTS: [(&str, u64); 5] = [
    ("The capital of France is", 10),
    ("def fibonacci(n):", 16),
    (
        "Once upon a time, in a small village by the sea, there lived an old fisherman who",
        6,
    ),
    ("1, 2, 3, 4, 5,", 12),
    ("The three laws of motion are", 20),
];

fn model() -> String {
    require_model("smollm2-135m")
        .to_str()
        .expect("UTF-8 path")
        .to_string()
}

/// `sluice run --raw --temperature 0 --json` tokens and text for one prompt.
fn alone(prompt: &str, max_tokens: u64) -> (Vec<u64>, String) {
    let n = max_tokens.to_string();
    let m = model();
    let args = [
        "run",
        "-m",
        &m,
        "--raw",
        "--temperature",
        "0",
        "--json",
        "--threads",
        "2",
        "--device",
        "cpu",
        "--max-tokens",
        &n,
        "-p",
        prompt,
    ];
    let o = sluice(&args, &[]);
    assert!(o.status.success(), "sluice run: {}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("run --json");
    let tokens = v["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_u64().expect("id"))
        .collect();
    (tokens, v["text"].as_str().expect("text").to_string())
}

fn write_input(dir: &Path, lines: &[String]) -> String {
    let p = dir.join("in.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").expect("writing the input");
    p.to_str().expect("UTF-8").to_string()
}

/// Runs `sluice batch` greedy and raw with extra arguments; returns (status, stderr).
fn batch(input: &str, output: &str, extra: &[&str]) -> (Option<i32>, String) {
    let m = model();
    let mut args = vec![
        "batch",
        "-m",
        &m,
        "--input",
        input,
        "--output",
        output,
        "--raw",
        "--temperature",
        "0",
        "--threads",
        "2",
        "--device",
        "cpu",
        "--json",
    ];
    args.extend(extra);
    let o = sluice(&args, &[]);
    (o.status.code(), stderr(&o))
}

fn read_output(path: &str) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(path).expect("reading the output");
    assert!(text.ends_with('\n'), "every line is complete");
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).expect("each output line is JSON");
        let key = v["id"].to_string();
        assert!(
            out.insert(key.clone(), v).is_none(),
            "id {key} written twice"
        );
    }
    out
}

fn summary(err: &str) -> Value {
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary on stderr:\n{err}"));
    serde_json::from_str(line).expect("the summary is JSON")
}

#[test]
fn every_line_gets_the_tokens_it_gets_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines: Vec<String> = PROMPTS
        .iter()
        .enumerate()
        .map(|(i, (p, n))| json!({"id": format!("p{i}"), "prompt": p, "max_tokens": n}).to_string())
        .collect();
    let input = write_input(dir.path(), &lines);
    let want: Vec<(Vec<u64>, String)> = PROMPTS.iter().map(|(p, n)| alone(p, *n)).collect();
    let mut per_token = Vec::new();
    for (budget, name) in [(None, "resident"), (Some("0"), "streamed")] {
        let out = dir.path().join(format!("{name}.jsonl"));
        let out = out.to_str().expect("UTF-8");
        let mut extra = vec!["--max-batch", "3"];
        if let Some(b) = budget {
            extra.extend(["--ram-budget", b]);
        }
        let (code, err) = batch(&input, out, &extra);
        assert_eq!(code, Some(0), "{name}: {err}");
        let got = read_output(out);
        assert_eq!(got.len(), PROMPTS.len(), "{name}");
        for (i, (tokens, text)) in want.iter().enumerate() {
            let v = &got[&format!("\"p{i}\"")];
            let ids: Vec<u64> = v["tokens"]
                .as_array()
                .expect("tokens")
                .iter()
                .map(|t| t.as_u64().expect("id"))
                .collect();
            assert_eq!(&ids, tokens, "{name}: line {i}");
            assert_eq!(v["text"].as_str(), Some(text.as_str()), "{name}: line {i}");
            assert_eq!(v["stop_reason"], "length");
            assert_eq!(v["completion_tokens"].as_u64(), Some(tokens.len() as u64));
            assert!(v["prompt_tokens"].as_u64().expect("prompt_tokens") > 0);
        }
        let s = summary(&err);
        assert_eq!(s["sequences"], PROMPTS.len());
        assert_eq!(s["peak_live"], 3, "{name}: three at once");
        per_token.push(s["bytes_read_per_token"].as_f64().expect("bytes per token"));
    }
    assert_eq!(per_token[0], 0.0, "resident: nothing streams");
    assert!(per_token[1] > 0.0, "streamed: layers are read every step");
}

#[test]
fn streamed_bytes_per_token_fall_with_the_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines: Vec<String> = (0..8)
        .map(|i| json!({"id": i, "prompt": format!("Item {i}:"), "max_tokens": 8}).to_string())
        .collect();
    let input = write_input(dir.path(), &lines);
    let mut per_token = Vec::new();
    for b in ["1", "8"] {
        let out = dir.path().join(format!("b{b}.jsonl"));
        let (code, err) = batch(
            &input,
            out.to_str().expect("UTF-8"),
            &["--max-batch", b, "--ram-budget", "0"],
        );
        assert_eq!(code, Some(0), "{err}");
        per_token.push(
            summary(&err)["bytes_read_per_token"]
                .as_f64()
                .expect("figure"),
        );
    }
    assert!(
        per_token[1] < per_token[0] / 4.0,
        "8 sequences per sweep read under a quarter of the bytes per token of 1: {per_token:?}"
    );
}

#[test]
fn resuming_skips_written_ids_and_redoes_a_torn_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines: Vec<String> = (0..4)
        .map(|i| json!({"id": i, "prompt": PROMPTS[i].0, "max_tokens": 4}).to_string())
        .collect();
    let input = write_input(dir.path(), &lines);
    let out = dir.path().join("out.jsonl");
    let done = r#"{"id":1,"text":"kept as it was","tokens":[],"stop_reason":"length","prompt_tokens":1,"completion_tokens":0}"#;
    std::fs::write(&out, format!("{done}\n{{\"id\":2,\"text\":\"torn")).expect("writing");
    let out = out.to_str().expect("UTF-8");
    let (code, err) = batch(&input, out, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("torn last line"), "{err}");
    let got = read_output(out);
    assert_eq!(got.len(), 4, "every id exactly once");
    assert_eq!(
        got["1"]["text"], "kept as it was",
        "a written line is not redone"
    );
    assert_eq!(got["2"]["stop_reason"], "length", "the torn line is redone");
    assert_eq!(summary(&err)["skipped"], 1);
    let (code, err) = batch(&input, out, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(summary(&err)["sequences"], 0, "nothing left to do");
    assert_eq!(read_output(out).len(), 4);
}

#[test]
fn bad_lines_are_named_and_the_others_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines = vec![
        json!({"id": "a", "prompt": "Hello", "max_tokens": 3}).to_string(),
        "{this is not json".to_string(),
        json!({"id": "b"}).to_string(),
        json!({"id": "c", "prompt": "x ".repeat(600), "max_tokens": 3}).to_string(),
        json!({"id": "a", "prompt": "again"}).to_string(),
        json!({"id": "d", "prompt": "World", "max_tokens": 3}).to_string(),
    ];
    let input = write_input(dir.path(), &lines);
    let out = dir.path().join("out.jsonl");
    let out = out.to_str().expect("UTF-8");
    let (code, err) = batch(&input, out, &["--ctx", "256"]);
    assert_eq!(code, Some(1), "{err}");
    for (line, what) in [
        (2, "not valid JSON"),
        (3, "neither"),
        (4, "context"),
        (5, "appears earlier"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("line {line}:")) && l.contains(what)),
            "line {line} ({what}) not reported:\n{err}"
        );
    }
    assert!(err.contains("in.jsonl"), "the input file is named:\n{err}");
    let got = read_output(out);
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), ["\"a\"", "\"d\""]);
    assert_eq!(summary(&err)["failed"], 4);
}

#[test]
fn a_stop_string_cuts_the_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, text) = alone(PROMPTS[4].0, 20);
    let stop = &text[text.len() / 2..text.len() / 2 + 2];
    let want = &text[..text.find(stop).expect("stop in text")];
    let lines = vec![
        json!({"id": 0, "prompt": PROMPTS[4].0, "max_tokens": 20, "stop": [stop]}).to_string(),
    ];
    let input = write_input(dir.path(), &lines);
    let out = dir.path().join("out.jsonl");
    let out = out.to_str().expect("UTF-8");
    let (code, err) = batch(&input, out, &[]);
    assert_eq!(code, Some(0), "{err}");
    let got = read_output(out);
    assert_eq!(got["0"]["text"], want, "stop {stop:?}");
    assert_eq!(got["0"]["stop_reason"], "stop");
}

#[test]
fn bad_options_and_files_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = write_input(dir.path(), &[json!({"id": 1, "prompt": "x"}).to_string()]);
    let out = dir.path().join("out.jsonl");
    let out = out.to_str().expect("UTF-8");
    for extra in [
        vec!["--max-batch", "0"],
        vec!["--max-batch", "999"],
        vec!["--top-p", "2"],
    ] {
        let (code, err) = batch(&input, out, &extra);
        assert_eq!(code, Some(2), "{extra:?}: {err}");
    }
    let (code, err) = batch("/no/such/input.jsonl", out, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/no/such/input.jsonl"), "{err}");
}

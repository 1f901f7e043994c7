//! `sluice run` contracts (DESIGN.md "Contracts"): the `--json` object and its stats, text mode
//! (text on stdout, stats on stderr), exit codes and one-sentence errors for bad input, the chat
//! template path, `--device cuda` on this CPU-only build, and Ctrl-C.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    open_model, parse_run_json, path_arg, run_json, sluice, sluice_command, stderr, stdout,
    RunJson, RunStats,
};
use sluice_loader::cache::require_model;

/// `run --raw --temperature 0 --max-tokens N --json` on `model` with extra arguments.
fn greedy_json(model: &Path, prompt: &str, max_tokens: u32, extra: &[&str]) -> RunJson {
    let n = max_tokens.to_string();
    let mut args = vec![
        "run",
        "-m",
        path_arg(model),
        "--prompt",
        prompt,
        "--raw",
        "--temperature",
        "0",
        "--max-tokens",
        &n,
        "--json",
    ];
    args.extend_from_slice(extra);
    run_json(&args, &[])
}

/// Stats every run must satisfy: finite, non-negative, something read, RSS measured.
fn assert_sane_stats(s: &RunStats) {
    for (name, x) in [
        ("load_s", s.load_s),
        ("prefill_tok_per_s", s.prefill_tok_per_s),
        ("decode_tok_per_s", s.decode_tok_per_s),
        ("read_gb_per_s", s.read_gb_per_s),
        ("io_stall_s", s.io_stall_s),
    ] {
        assert!(x.is_finite() && x >= 0.0, "{name} = {x} in {s:?}");
    }
    assert!(s.load_s > 0.0 && s.load_s < 600.0, "{s:?}");
    assert!(s.prefill_tok_per_s > 0.0, "{s:?}");
    assert!(s.bytes_read > 0, "{s:?}");
    assert!(s.peak_rss_bytes > 0, "{s:?}");
}

/// Exit `code`, nothing on stdout, exactly one line on stderr containing every fragment.
fn assert_one_sentence(what: &str, o: &Output, code: i32, fragments: &[&str]) -> Vec<String> {
    let err = stderr(o);
    let mut problems = Vec::new();
    if o.status.code() != Some(code) {
        problems.push(format!("exit {:?}, expected {code}", o.status.code()));
    }
    if !o.stdout.is_empty() {
        problems.push(format!("stdout not empty: {}", stdout(o)));
    }
    if err.trim_end().lines().count() != 1 {
        problems.push("stderr is not one line".to_string());
    }
    for f in fragments {
        if !err.contains(f) {
            problems.push(format!("'{f}' not named"));
        }
    }
    if err.contains("panicked") {
        problems.push("panicked".to_string());
    }
    problems
        .into_iter()
        .map(|p| format!("{what}: {p}; stderr: {err:?}"))
        .collect()
}

/// A usage error reported by the argument parser: exit 2, nothing on stdout, an `error:`
/// message (its first paragraph) containing every fragment, followed only by the parser's
/// standard `Usage:` / `For more information, try '--help'.` hint lines.
fn assert_usage_error(what: &str, o: &Output, fragments: &[&str]) -> Vec<String> {
    let err = stderr(o);
    let mut problems = Vec::new();
    if o.status.code() != Some(2) {
        problems.push(format!("exit {:?}, expected 2", o.status.code()));
    }
    if !o.stdout.is_empty() {
        problems.push(format!("stdout not empty: {}", stdout(o)));
    }
    let (message, hint) = err.split_once("\n\n").unwrap_or((&err, ""));
    if !message.starts_with("error: ") {
        problems.push("no `error:` message first".to_string());
    }
    for f in fragments {
        if !message.contains(f) {
            problems.push(format!("'{f}' not named in the message"));
        }
    }
    let hint_only = hint
        .lines()
        .all(|l| l.is_empty() || l.starts_with("Usage: ") || l.starts_with("For more information"));
    if !hint_only {
        problems.push("more than the usage hint after the message".to_string());
    }
    problems
        .into_iter()
        .map(|p| format!("{what}: {p}; stderr: {err:?}"))
        .collect()
}

/// Panics with every problem found, one per line.
fn assert_no_problems(problems: &[String]) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn json_is_one_object_with_resident_stats() {
    let path = require_model("smollm2-135m");
    let model = open_model(&path);
    let n_layer = model.spec.n_layer;
    let layer_bytes: u64 = model.extents.layer_bytes_all().iter().sum();
    // 1 GiB holds every SmolLM2 layer (checked here, not assumed).
    assert!(layer_bytes < 1 << 30, "{layer_bytes}");
    let o = sluice(
        &[
            "run",
            "-m",
            path_arg(&path),
            "--prompt",
            "The capital of France is",
            "--raw",
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "--json",
            "--ram-budget",
            "1G",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = parse_run_json(&o).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", stdout(&o));
    assert_eq!(r.model, path_arg(&path));
    assert!(!r.prompt_tokens.is_empty());
    assert_eq!(r.tokens.len(), 8);
    assert_eq!(r.stop_reason, "length");
    assert!(!r.text.is_empty());
    let s = &r.stats;
    assert_sane_stats(s);
    assert!(s.decode_tok_per_s > 0.0, "{s:?}");
    assert_eq!(
        (s.resident_layers, s.streamed_layers),
        (n_layer, 0),
        "{s:?}"
    );
    assert_eq!(s.read_gb_per_s, 0.0, "nothing streams: {s:?}");
    assert!(s.bytes_read >= layer_bytes, "every layer read once: {s:?}");
    assert!(s.peak_rss_bytes >= layer_bytes, "layers held in RAM: {s:?}");
    assert_eq!(s.ring_bytes, 0, "no streaming ring: {s:?}");
}

#[test]
fn json_streaming_stats_with_ram_budget_0() {
    let path = require_model("smollm2-135m");
    let model = open_model(&path);
    let n_layer = model.spec.n_layer;
    let layer_bytes: u64 = model.extents.layer_bytes_all().iter().sum();
    let r = greedy_json(
        &path,
        "Once upon a time",
        48,
        &["--ram-budget", "0", "--threads", "2"],
    );
    eprintln!("{:?}", r.stats);
    let s = &r.stats;
    assert_sane_stats(s);
    assert_eq!(
        (s.resident_layers, s.streamed_layers),
        (0, n_layer),
        "{s:?}"
    );
    assert!(s.read_gb_per_s > 0.0, "{s:?}");
    assert!(s.ring_bytes > 0 && s.kv_cache_bytes > 0, "{s:?}");
    // One sweep for the prompt and one per further token: 48 sweeps, each reading every layer.
    assert!(
        s.bytes_read >= 48 * layer_bytes,
        "{} bytes read, 48 sweeps of {layer_bytes} layer bytes need more",
        s.bytes_read
    );
    assert_eq!(r.tokens.len(), 48);
    assert_eq!(r.stop_reason, "length");
}

#[test]
fn json_default_budget_accounts_for_every_layer() {
    let path = require_model("qwen2.5-coder-0.5b");
    let n_layer = open_model(&path).spec.n_layer;
    let r = greedy_json(&path, "def fibonacci(n):", 4, &[]);
    eprintln!("{:?}", r.stats);
    assert_sane_stats(&r.stats);
    assert_eq!(
        r.stats.resident_layers + r.stats.streamed_layers,
        n_layer,
        "{:?}",
        r.stats
    );
    assert_eq!(r.tokens.len(), 4);
    assert_eq!(r.stop_reason, "length");
}

#[test]
fn text_mode_streams_text_to_stdout_and_stats_to_stderr() {
    let path = require_model("smollm2-135m");
    let prompt = "Once upon a time, in a small village by the sea,";
    let args = [
        "run",
        "-m",
        path_arg(&path),
        "--prompt",
        prompt,
        "--raw",
        "--temperature",
        "0",
        "--max-tokens",
        "16",
    ];
    let o = sluice(&args, &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    eprintln!("stdout: {out:?}\nstderr: {err}");
    assert_eq!(o.status.code(), Some(0), "{err}");
    let json = greedy_json(&path, prompt, 16, &[]);
    assert_eq!(
        out,
        format!("{}\n", json.text),
        "streamed text vs the --json text of the same greedy run"
    );
    let last = err.trim_end().lines().last().unwrap_or("");
    for f in [
        "prompt tokens",
        "16 generated",
        "(length)",
        "tok/s",
        "peak RSS",
    ] {
        assert!(last.contains(f), "'{f}' not in the stats line: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// `SLUICE_IO_DEPTH` sets the layer reader's queue depth (the run reports it, and the tokens do
/// not change); a value out of range is bad input, named in one sentence.
#[test]
fn io_depth_comes_from_the_environment() {
    let path = require_model("smollm2-135m");
    let args = |n: &'static str| -> Vec<&str> {
        let mut a = vec!["run", "-m", path_arg(&path), "--prompt", "Once upon a time"];
        a.extend(["--raw", "--temperature", "0", "--max-tokens", n, "--json"]);
        a.extend(["--ram-budget", "0"]);
        a
    };
    let default = run_json(&args("12"), &[]);
    let deep = run_json(&args("12"), &[("SLUICE_IO_DEPTH", "64")]);
    let want = sluice_runtime::ReaderConfig::default();
    assert_eq!(default.stats.io_queue_depth, Some(want.queue_depth));
    assert_eq!(default.stats.io_chunk_bytes, Some(want.chunk_bytes as u64));
    assert_eq!(
        deep.stats.io_queue_depth,
        Some(64),
        "the streaming reader runs at 64"
    );
    assert_eq!(deep.tokens, default.tokens, "the depth changes no token");
    let mut problems = Vec::new();
    for bad in ["0", "257", "deep"] {
        let o = sluice(&args("2"), &[("SLUICE_IO_DEPTH", bad)]);
        let what = format!("SLUICE_IO_DEPTH={bad}");
        problems.extend(assert_one_sentence(&what, &o, 2, &["SLUICE_IO_DEPTH", bad]));
    }
    assert_no_problems(&problems);
}

/// A `SLUICE_SIMD` value that picks the tier automatically says why on stderr: `amx` that there
/// is no AMX tier (not that it is unknown), any other word that it is not understood.
#[test]
fn simd_settings_that_pick_automatically_say_why() {
    let path = require_model("smollm2-135m");
    let args = [
        "run",
        "-m",
        path_arg(&path),
        "--prompt",
        "hi",
        "--max-tokens",
        "1",
    ];
    for (value, says, not) in [
        ("amx", "no AMX tier", "is not scalar"),
        ("bogus", "is not scalar, avx2, avx512 or auto", "AMX"),
    ] {
        let o = sluice(&args, &[("SLUICE_SIMD", value)]);
        let err = stderr(&o);
        assert!(o.status.success(), "SLUICE_SIMD={value}: {err}");
        assert!(
            err.contains(says) && !err.contains(not),
            "SLUICE_SIMD={value}: {err}"
        );
    }
}

#[test]
fn bad_input_exits_2_with_one_sentence() {
    let path = require_model("smollm2-135m");
    let smollm2 = path_arg(&path);
    let dir = tempfile::tempdir().expect("a temporary directory for the bad model files");
    let missing = dir.path().join("no-such-model.gguf");
    let truncated = dir.path().join("truncated.gguf");
    let head: Vec<u8> = std::fs::read(&path)
        .expect("reading smollm2 to make a truncated copy")
        .into_iter()
        .take(1 << 20)
        .collect();
    std::fs::write(&truncated, head).expect("writing the truncated copy");
    let context = open_model(&path).spec.context_length;
    let long_prompt = "a ".repeat(20_000);
    let context_str = context.to_string();
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "nonexistent model path",
            vec!["-m", path_arg(&missing), "--prompt", "hi"],
            vec![path_arg(&missing)],
        ),
        (
            "unknown alias",
            vec!["-m", "no-such-alias-xyz", "--prompt", "hi"],
            vec!["no-such-alias-xyz", "alias"],
        ),
        (
            "truncated model",
            vec!["-m", path_arg(&truncated), "--prompt", "hi"],
            vec![path_arg(&truncated), "truncated"],
        ),
        (
            "--top-p 0",
            vec!["-m", smollm2, "--prompt", "hi", "--top-p", "0"],
            vec!["top-p"],
        ),
        (
            "--temperature=-1",
            vec!["-m", smollm2, "--prompt", "hi", "--temperature=-1"],
            vec!["temperature", "-1"],
        ),
        (
            "prompt longer than the context",
            vec!["-m", smollm2, "--prompt", &long_prompt, "--raw", "--json"],
            vec!["prompt", "context", &context_str],
        ),
    ];
    let mut problems = Vec::new();
    for (what, args, fragments) in cases {
        let mut full = vec!["run"];
        full.extend(args);
        let o = sluice(&full, &[]);
        eprintln!(
            "{what}: exit {:?}: {}",
            o.status.code(),
            stderr(&o).trim_end()
        );
        problems.extend(assert_one_sentence(what, &o, 2, &fragments));
    }
    assert_no_problems(&problems);
}

#[test]
fn usage_errors_exit_2_naming_the_option() {
    let cases: [(&str, &[&str], &[&str]); 3] = [
        (
            "--ram-budget 12X",
            &["--prompt", "hi", "--ram-budget", "12X"],
            &["--ram-budget", "12X"],
        ),
        (
            "--threads 0",
            &["--prompt", "hi", "--threads", "0"],
            &["--threads", "0"],
        ),
        ("missing --prompt", &["-m", "smollm2-135m"], &["--prompt"]),
    ];
    let mut problems = Vec::new();
    for (what, args, fragments) in cases {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        let o = sluice(&full, &[]);
        eprintln!(
            "{what}: exit {:?}: {}",
            o.status.code(),
            stderr(&o).trim_end()
        );
        problems.extend(assert_usage_error(what, &o, fragments));
    }
    assert_no_problems(&problems);
}

/// `--temperature -1` (a separate word) must reach the temperature check, not be taken for an
/// unknown flag `-1`.
#[test]
fn negative_temperature_as_separate_word_is_rejected_by_name() {
    let o = sluice(&["run", "--prompt", "hi", "--temperature", "-1"], &[]);
    eprintln!("exit {:?}: {}", o.status.code(), stderr(&o).trim_end());
    let problems = assert_usage_error("--temperature -1", &o, &["temperature"]);
    let sentence = assert_one_sentence("--temperature -1", &o, 2, &["temperature"]);
    // Either form is acceptable: the parser's message or the engine's one sentence.
    if !problems.is_empty() && !sentence.is_empty() {
        assert_no_problems(&[problems, sentence].concat());
    }
}

#[test]
fn chat_template_on_both_models() {
    for alias in ["smollm2-135m", "qwen2.5-coder-0.5b"] {
        let path = require_model(alias);
        let prompt = "What is the capital of France?";
        let base = [
            "run",
            "-m",
            path_arg(&path),
            "--prompt",
            prompt,
            "--temperature",
            "0",
            "--max-tokens",
            "16",
            "--json",
        ];
        let chat = run_json(&base, &[]);
        let raw = run_json(&[&base[..], &["--raw"]].concat(), &[]);
        println!("{alias} chat: {:?} ({})", chat.text, chat.stop_reason);
        assert!(
            !chat.text.trim().is_empty(),
            "{alias}: empty chat reply {chat:?}"
        );
        assert!(
            chat.prompt_tokens.len() > raw.prompt_tokens.len() + 4,
            "{alias}: the template added no turn markers: {:?} vs raw {:?}",
            chat.prompt_tokens,
            raw.prompt_tokens
        );
        match chat.stop_reason.as_str() {
            "length" => assert_eq!(chat.tokens.len(), 16, "{alias}"),
            "eos" => assert!(chat.tokens.len() < 16, "{alias}"),
            other => panic!("{alias}: stop_reason {other:?}"),
        }
    }
}

#[test]
fn device_cuda_exits_1_with_one_sentence() {
    let o = sluice(&["run", "--prompt", "hi", "--device", "cuda"], &[]);
    eprintln!("exit {:?}: {}", o.status.code(), stderr(&o).trim_end());
    assert_no_problems(&assert_one_sentence("--device cuda", &o, 1, &["cuda"]));
}

#[test]
fn ctrl_c_stops_generation_and_prints_stats() {
    let path = require_model("smollm2-135m");
    let mut child = sluice_command(
        &[
            "run",
            "-m",
            path_arg(&path),
            "--prompt",
            "The capital of France is",
            "--raw",
            "--temperature",
            "0",
            "--max-tokens",
            "100000",
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawning sluice run");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let (first_text, text_seen) = mpsc::channel();
    let out_reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let _ = first_text.send(());
        }
        all
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    if text_seen.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        panic!("no text on stdout within 120 s");
    }
    let pid = libc::pid_t::try_from(child.id()).expect("the child's pid fits pid_t");
    // SAFETY: kill(2) only sends a signal; `pid` is our own child, not yet waited for, so it
    // cannot have been reused by another process.
    let rc = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(rc, 0, "kill(SIGINT) failed");
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for sluice") {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("sluice still running 10 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = sent.elapsed();
    let text = String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned();
    let err = err_reader.join().expect("stderr reader");
    eprintln!("exit {status:?} {took:?} after SIGINT\nstdout: {text:?}\nstderr: {err}");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!text.trim().is_empty());
    let last = err.trim_end().lines().last().unwrap_or("");
    assert!(last.contains("interrupted"), "stats line: {err}");
    assert!(last.contains("generated"), "stats line: {err}");
}

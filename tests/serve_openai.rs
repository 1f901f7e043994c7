//! `sluice serve` against the real `openai` Python client (pinned in
//! tests/fixtures/requirements.txt, installed by `scripts/fixture-python.sh`), on SmolLM2, on
//! free loopback ports: chat and completions, streamed and not, greedy answers equal to
//! `sluice run`'s, stop strings, log-probabilities, errors, auth, tokenize; a bounded load test
//! (32 concurrent clients × 4 requests) whose answers all equal the sequential ones, also with
//! every layer streamed from disk; a full queue's 503s; a client that leaves mid-stream; SSE
//! keep-alive comments during a long prefill; and SIGTERM ending the server with status 0.
//! Needs `scripts/fetch-models.sh` and the fixture venv (scripts/test.sh sets both up).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{sluice, stderr, stdout};
use serde_json::{json, Value};
use sluice_loader::cache::require_model;

const KEY: &str = "test-key-123";
const MAX_TOKENS: usize = 12;

/// The fixture venv's Python (it has the `openai` package).
fn python() -> &'static PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = Command::new(format!("{root}/scripts/fixture-python.sh"))
            .output()
            .expect("running scripts/fixture-python.sh");
        assert!(
            out.status.success(),
            "the test scripts' Python could not be set up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
    })
}

/// A server on a free loopback port, killed (SIGKILL) if a test panics before stopping it.
struct Server {
    child: Option<Child>,
    base: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let model = require_model("smollm2-135m");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "serve",
                "-m",
                model.to_str().expect("UTF-8 path"),
                "--port",
                "0",
            ])
            .args(["--api-key", KEY, "--threads", "2"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning sluice serve");
        let err = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(err).lines();
        let mut seen = String::new();
        let base = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    seen.push_str(&l);
                    seen.push('\n');
                    if let Some(at) = l.find("listening on ") {
                        let url = l[at + "listening on ".len()..]
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        break url;
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("sluice serve did not start:\n{seen}");
                }
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child: Some(child),
            base,
        }
    }

    /// Runs one check of tests/serve/openai_checks.py against this server.
    fn check(&self, args: &[&str]) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve/openai_checks.py");
        let out = Command::new(python())
            .arg(script)
            .arg(args[0])
            .arg(&self.base)
            .arg(KEY)
            .args(&args[1..])
            .output()
            .expect("running the openai checks");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        eprintln!("{text}");
        assert!(
            out.status.success(),
            "openai checks `{}` failed:\n{text}",
            args[0]
        );
    }

    /// SIGTERM: the server finishes and exits 0.
    fn stop(mut self) {
        let mut child = self.child.take().expect("a running server");
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "sending SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the server") {
                assert!(
                    status.success(),
                    "sluice serve exited with {status} after SIGTERM"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sluice serve did not stop within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What `sluice run --temperature 0` answers for the test prompts, as the checks expect it.
fn expected() -> PathBuf {
    let model = require_model("smollm2-135m");
    let model = model.to_str().expect("UTF-8 path");
    let n = MAX_TOKENS.to_string();
    let run = |prompt: &str, raw: bool| -> Value {
        let mut args = vec!["run", "-m", model, "--temperature", "0", "--json"];
        args.extend(["--max-tokens", &n, "--threads", "2", "-p", prompt]);
        if raw {
            args.push("--raw");
        }
        let o = sluice(&args, &[]);
        assert!(o.status.success(), "sluice run: {}", stderr(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).expect("sluice run --json");
        json!({"prompt": prompt, "text": v["text"]})
    };
    let chat = ["What color is the sky?", "Name a fruit."].map(|p| run(p, false));
    let raw = [
        "The capital of France is",
        "def fibonacci(n):",
        "Once upon a time, in a small village by the sea,",
        "1, 2, 3, 4, 5,",
    ]
    .map(|p| run(p, true));
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("sluice-serve-expected-{}-{n}.json", std::process::id());
    let path = std::env::temp_dir().join(name);
    let v = json!({"max_tokens": MAX_TOKENS, "chat": chat, "raw": raw});
    std::fs::write(&path, v.to_string()).expect("writing the expected answers");
    path
}

#[test]
fn openai_client_chat_completions_errors_auth_and_load() {
    let expected = expected();
    let exp = expected.to_str().expect("UTF-8 path");
    let server = Server::start(&[
        "--parallel",
        "8",
        "--max-queue",
        "256",
        "--ctx",
        "1024",
        // A comment every 50 ms: the 400-word prefill below takes several times that even
        // on a fast machine (at 1 s it ended before the first comment at ~900 tok/s).
        "--sse-ping",
        "0.05",
    ]);
    server.check(&["basic", exp]);
    server.check(&["load", exp, "32", "4"]);
    server.check(&["disconnect"]);
    server.check(&["keepalive"]);
    server.stop();
    let _ = std::fs::remove_file(expected);
}

#[test]
fn streamed_weights_serve_the_same_answers_under_load() {
    let expected = expected();
    let exp = expected.to_str().expect("UTF-8 path");
    let server = Server::start(&["--parallel", "16", "--ram-budget", "0", "--ctx", "512"]);
    server.check(&["load", exp, "16", "2"]);
    server.stop();
    let _ = std::fs::remove_file(expected);
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let server = Server::start(&["--parallel", "1", "--max-queue", "1"]);
    server.check(&["overflow"]);
    server.stop();
}

#[test]
fn bad_options_are_refused_before_listening() {
    for args in [
        vec!["serve", "--parallel", "0"],
        vec!["serve", "--parallel", "300"],
        vec!["serve", "-m", "/no/such/model.gguf"],
        vec!["serve", "--host", "not an address"],
        vec!["serve", "--sse-ping", "0.01"],
        vec!["serve", "--sse-ping", "NaN"],
    ] {
        let o = sluice(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("listening"), "{args:?}");
    }
}

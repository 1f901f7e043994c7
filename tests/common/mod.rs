//! Helpers shared by the end-to-end tests of `sluice run`: running the binary, parsing its
//! `--json` object, locating models and the llama.cpp reference files, and the reference's
//! token-comparison rule.
//!
//! Each test file uses a subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sluice_loader::cache::models_dir;
use sluice_loader::model::ModelFiles;

/// The aliases of the two reference models, as named in the reference files.
pub const REFERENCE_MODELS: [&str; 2] = ["smollm2-135m", "qwen2.5-coder-0.5b"];

/// The reference's tolerance: a divergence is accepted only at a step whose reference margin
/// (top-1 minus top-2 logit) is below this; `rule` in the reference files states it.
pub const MARGIN_TOLERANCE: f64 = 0.01;

/// The F16 GGUF copy of SmolLM2 made by `tests/fixtures/make_f16_models.py`.
pub const F16_GGUF: &str = "smollm2-135m-f16.gguf";

/// The HF safetensors directory made by `tests/fixtures/make_f16_models.py`.
pub const F16_HF_DIR: &str = "smollm2-135m-f16-hf";

/// A `sluice` command with the given arguments and extra environment.
pub fn sluice_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `sluice` to completion and returns its output.
pub fn sluice(args: &[&str], env: &[(&str, &str)]) -> Output {
    sluice_command(args, env)
        .output()
        .expect("spawning the sluice binary built for these tests")
}

/// Runs `sluice ARGS`, asserts it exits 2 (bad input) with every one of `needles` in its
/// standard error and no panic report, and returns that text.
pub fn refused(args: &[&str], needles: &[&str]) -> String {
    let o = sluice(args, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "sluice {}: {err}", args.join(" "));
    for n in needles {
        assert!(
            err.contains(n),
            "sluice {}: no {n:?} in: {err}",
            args.join(" ")
        );
    }
    assert!(
        !err.contains("panicked"),
        "sluice {}: {err}",
        args.join(" ")
    );
    err
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `stats` member of `sluice run --json` (every field required).
#[derive(Clone, Debug, Deserialize)]
pub struct RunStats {
    pub load_s: f64,
    pub prefill_tok_per_s: f64,
    pub decode_tok_per_s: f64,
    pub bytes_read: u64,
    pub read_gb_per_s: f64,
    pub embd_rows_from_head: u64,
    pub embd_rows_read: u64,
    pub embd_rows_read_ahead: u64,
    pub io_stall_s: f64,
    pub resident_layers: usize,
    pub streamed_layers: usize,
    pub interleaved_bytes: u64,
    pub peak_rss_bytes: u64,
    pub ring_bytes: u64,
    /// The streaming reader's settings (null when nothing streams).
    pub io_queue_depth: Option<usize>,
    pub io_chunk_bytes: Option<u64>,
    pub kv_cache_bytes: u64,
    pub run_state_bytes: u64,
}

/// The object `sluice run --json` prints (every field required).
#[derive(Clone, Debug, Deserialize)]
pub struct RunJson {
    pub model: String,
    pub prompt_tokens: Vec<u32>,
    pub tokens: Vec<u32>,
    pub text: String,
    pub stop_reason: String,
    pub stats: RunStats,
}

/// Parses the whole of stdout as exactly one JSON object (trailing whitespace only), or
/// returns why not.
pub fn parse_run_json(o: &Output) -> Result<RunJson, String> {
    let out = stdout(o);
    if out.trim_end().lines().count() != 1 {
        return Err(format!("stdout is not exactly one line:\n{out}"));
    }
    serde_json::from_str(&out).map_err(|e| format!("stdout is not one run object ({e}):\n{out}"))
}

/// Runs `sluice` and returns its parsed `--json` object, or a one-paragraph reason
/// (exit status, stderr) why there is none.
pub fn try_run_json(args: &[&str], env: &[(&str, &str)]) -> Result<RunJson, String> {
    let o = sluice(args, env);
    if o.status.code() != Some(0) {
        return Err(format!(
            "sluice {} exited with {:?}; stderr:\n{}",
            args.join(" "),
            o.status.code(),
            stderr(&o)
        ));
    }
    parse_run_json(&o).map_err(|e| format!("sluice {}: {e}", args.join(" ")))
}

/// Like [`try_run_json`], panicking with the reason.
pub fn run_json(args: &[&str], env: &[(&str, &str)]) -> RunJson {
    try_run_json(args, env).unwrap_or_else(|e| panic!("{e}"))
}

/// A model file made by `tests/fixtures/make_f16_models.py` in the cache, or a panic that says
/// how to make it (model tests never skip silently).
pub fn require_fixture_model(name: &str) -> PathBuf {
    let p = models_dir().join(name);
    assert!(
        p.exists(),
        "this test needs {}: run scripts/test.sh, which makes it (or \
         `\"$(scripts/fixture-python.sh)\" tests/fixtures/make_f16_models.py`)",
        p.display()
    );
    p
}

/// A path as a `&str` argument (the cache paths are UTF-8 in every setup we support).
/// `sluice run` arguments for a raw greedy run with `--json` (callers append budget options).
pub fn greedy_args<'a>(
    path: &'a str,
    prompt: &'a str,
    max_tokens: &'a str,
    threads: &'a str,
) -> Vec<&'a str> {
    vec![
        "run",
        "-m",
        path,
        "--prompt",
        prompt,
        "--raw",
        "--temperature",
        "0",
        "--max-tokens",
        max_tokens,
        "--json",
        "--threads",
        threads,
    ]
}

pub fn path_arg(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("{} is not valid UTF-8", p.display()))
}

/// The model's files opened by the loader: the layer count and extents the run's stats are
/// checked against.
pub fn open_model(path: &Path) -> ModelFiles {
    ModelFiles::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// The directory of the llama.cpp reference files, kept in the repository (`tests/reference`,
/// whose README says what produced each file) so that a clone is self-sufficient.
pub fn reference_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("reference");
    assert!(
        dir.is_dir(),
        "the llama.cpp reference files were not found: expected the directory {}",
        dir.display()
    );
    dir
}

/// One of the 20 largest first-step logits in the reference.
#[derive(Clone, Debug, Deserialize)]
pub struct TopLogit {
    pub id: u32,
    pub logit: f64,
}

/// One prompt of a reference file.
#[derive(Clone, Debug, Deserialize)]
pub struct RefPrompt {
    pub text: String,
    pub prompt_token_ids: Vec<u32>,
    pub greedy_ids: Vec<u32>,
    pub margins: Vec<f64>,
    pub stopped_at_eog: bool,
    pub n_vocab: usize,
    pub top20_first_step: Vec<TopLogit>,
    pub first_step_logits_file: String,
}

/// A reference file `<model>.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct Reference {
    pub model: String,
    pub max_tokens: usize,
    pub rule: String,
    pub prompts: BTreeMap<String, RefPrompt>,
}

/// Loads `<model>.json` from the reference directory and checks that its rule is the one
/// [`compare_greedy`] implements.
pub fn load_reference(model: &str) -> Reference {
    let path = reference_dir().join(format!("{model}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading the reference {}: {e}", path.display()));
    let r: Reference = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("parsing the reference {}: {e}", path.display()));
    assert_eq!(r.model, model, "{}", path.display());
    assert!(
        r.rule.contains(&format!("below {MARGIN_TOLERANCE}")),
        "{}: the rule changed, update compare_greedy: {}",
        path.display(),
        r.rule
    );
    for (id, p) in &r.prompts {
        assert_eq!(
            p.greedy_ids.len(),
            r.max_tokens,
            "{} prompt {id}",
            path.display()
        );
        assert!(
            p.margins.len() >= p.greedy_ids.len(),
            "{} {id}",
            path.display()
        );
    }
    r
}

/// Reads a little-endian f32 vector (the `.f32` logits format).
pub fn read_f32_file(path: &Path) -> Vec<f32> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("reading logits {}: {e}", path.display()));
    assert_eq!(
        bytes.len() % 4,
        0,
        "{}: not a whole number of f32",
        path.display()
    );
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The outcome of comparing generated ids with the reference's greedy ids.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Every id equal, same length.
    Equal,
    /// First divergence at `step`, where the reference margin was below the tolerance.
    Tolerated { step: usize, margin: f64 },
    /// First divergence at `step` with a clear reference margin (`None` ids: one side ended).
    Diverged {
        step: usize,
        margin: f64,
        want: Option<u32>,
        got: Option<u32>,
    },
}

/// Matched steps before the first divergence, and the verdict under the reference's rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub matched: usize,
    pub verdict: Verdict,
}

impl Comparison {
    /// Whether the rule accepts this run.
    pub fn passes(&self) -> bool {
        !matches!(self.verdict, Verdict::Diverged { .. })
    }

    /// A short description for result tables.
    pub fn describe(&self) -> String {
        match &self.verdict {
            Verdict::Equal => "equal".to_string(),
            Verdict::Tolerated { step, margin } => {
                format!("tolerated @{step} (margin {margin:.4})")
            }
            Verdict::Diverged {
                step,
                margin,
                want,
                got,
            } => format!("DIVERGED @{step} want {want:?} got {got:?} (margin {margin:.4})"),
        }
    }
}

/// Applies the reference rule: ids must be equal; a divergence is tolerated only at a step whose
/// reference margin is below [`MARGIN_TOLERANCE`], and the comparison stops there.
pub fn compare_greedy(reference: &RefPrompt, got: &[u32]) -> Comparison {
    let want = &reference.greedy_ids;
    let steps = want.len().max(got.len());
    for step in 0..steps {
        let (w, g) = (want.get(step).copied(), got.get(step).copied());
        if w == g {
            continue;
        }
        let margin = reference
            .margins
            .get(step)
            .copied()
            .unwrap_or(f64::INFINITY);
        let verdict = if margin < MARGIN_TOLERANCE {
            Verdict::Tolerated { step, margin }
        } else {
            Verdict::Diverged {
                step,
                margin,
                want: w,
                got: g,
            }
        };
        return Comparison {
            matched: step,
            verdict,
        };
    }
    Comparison {
        matched: steps,
        verdict: Verdict::Equal,
    }
}

/// The leading steps on which two id sequences agree.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Runs `f`, returning its result and how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

/// Panics with every collected failure, one per line, if there are any.
pub fn assert_no_failures(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Fails the test, saying why, unless a CUDA device is usable. The GPU tests are `#[ignore]`d,
/// so they run only when asked for (`scripts/gpu-check.sh`); asked for, they must not pass
/// without running.
pub fn require_cuda() {
    if let Err(e) = sluice::cuda::probe() {
        panic!("this test needs a CUDA device ({e}); run it with scripts/gpu-check.sh on a GPU machine");
    }
}

/// Whether `SLUICE_SIMD=avx512` selects the AVX-512 tier here (F/BW/VL/VNNI with AVX2, FMA and
/// F16C); the tests that compare tiers say so when it does not.
pub fn cpu_has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

//! The C ABI from C: the committed `sluice.h` is what cbindgen makes of the crate today, and
//! `examples/generate.c` compiles against it with warnings as errors, links `libsluice.so`, and
//! gives the llama.cpp reference tokens (greedy) and the library's batch results; bad input
//! comes back as a status and a message. Needs a C compiler (`cc`) and `scripts/fetch-models.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding a current libsluice.so: this test binary's profile directory, after
/// cargo has built the library there (a test of a cdylib crate does not build the cdylib).
/// The build names the whole workspace and its tests, so its features are those `cargo test
/// --workspace` already built with (dev-dependencies included) and it finds the engine fresh;
/// `--lib` adds the cdylib. Without `--tests` the dev-dependencies' features drop out and the
/// engine and its dependencies recompile (about 150 s of a fresh run); `-p sluice-capi` alone
/// does the same (120 s); this way costs the two cdylibs and pyo3 (about 25 s).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf();
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "test",
        Some(p) => p,
        None => panic!("{} has no profile name", dir.display()),
    }
    .to_string();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--workspace",
            "--tests",
            "--lib",
            "--profile",
            &profile,
        ])
        .current_dir(crate_dir())
        .output()
        .expect("running cargo to build libsluice.so");
    assert!(
        out.status.success(),
        "cargo build --workspace --tests --lib --profile {profile} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.join("libsluice.so").exists(),
        "cargo built sluice-capi but {} has no libsluice.so",
        dir.display()
    );
    dir
}

#[test]
fn header_is_what_cbindgen_generates() {
    let config = cbindgen::Config::from_file(crate_dir().join("cbindgen.toml"))
        .expect("reading cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir())
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    let generated = String::from_utf8(out).expect("the header is UTF-8");
    let path = crate_dir().join("include").join("sluice.h");
    if std::env::var_os("SLUICE_BLESS_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("writing the header");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what cbindgen generates from capi/src; regenerate it with \
         SLUICE_BLESS_HEADER=1 cargo test -p sluice-capi --test c_abi header",
        path.display()
    );
}

/// Compiles and links examples/generate.c; returns the executable.
fn build_example(dir: &Path) -> PathBuf {
    let exe = dir.join("generate");
    let lib = lib_dir();
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join("examples").join("generate.c"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lsluice", "-o"])
        .arg(&exe)
        .output()
        .expect("running the C compiler (cc): this test needs one");
    assert!(
        out.status.success(),
        "compiling examples/generate.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn model() -> PathBuf {
    sluice_loader::cache::require_model("smollm2-135m")
}

/// The reference's prompt A and its 48 greedy token ids (llama.cpp on the same file).
fn reference_a() -> (String, Vec<u64>) {
    let path = crate_dir().join("../tests/reference/smollm2-135m.json");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the reference file"))
            .expect("the reference is JSON");
    let a = &r["prompts"]["A"];
    let ids = a["greedy_ids"]
        .as_array()
        .expect("greedy_ids")
        .iter()
        .map(|v| v.as_u64().expect("an id"))
        .collect();
    (a["text"].as_str().expect("text").to_string(), ids)
}

/// The numbers after `label` on the line that starts with it.
fn ids_after(stdout: &str, label: &str) -> Vec<u64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no line starting {label:?} in:\n{stdout}"));
    line[label.len()..]
        .split_whitespace()
        .map(|t| t.parse().expect("a token id"))
        .collect()
}

#[test]
fn the_c_example_generates_the_reference_tokens() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let exe = build_example(dir.path());
    let (prompt, want) = reference_a();
    let out = Command::new(&exe)
        .arg(model())
        .arg(&prompt)
        .arg(want.len().to_string())
        .output()
        .expect("running the C example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the C example failed:\n{stdout}\n{stderr}"
    );
    // Greedy, raw: llama.cpp's tokens on the same file; the streamed text is the completion's.
    assert_eq!(ids_after(&stdout, "tokens:"), want, "{stdout}");
    assert!(
        stdout.contains("streamed text equals the completion's"),
        "{stdout}"
    );
    // The batch: three prompts at once, each the tokens it gets alone.
    for i in 0..3 {
        let batch = ids_after(&stdout, &format!("batch {i} tokens:"));
        let alone = ids_after(&stdout, &format!("alone {i} tokens:"));
        assert!(!batch.is_empty());
        assert_eq!(batch, alone, "prompt {i}");
    }
    // The callback cancels after three tokens; a stop string ends the text before it.
    assert!(
        stdout.contains("cancelled: interrupted after 3 tokens"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stopped: stop, text \" 5, 6,\""),
        "{stdout}"
    );
    // Bad input: a status and a message naming the file, no crash.
    assert!(
        stdout.contains("open missing: status 1: '/nonexistent/model.gguf' is neither"),
        "{stdout}"
    );
    assert!(
        stdout.contains("null prompt: status 3: prompts[0] is null"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad option: status 1: --temperature"),
        "{stdout}"
    );
}

//! Build script: the CUDA kernels (kernels/) and their host check.
//!
//! 1. Always: compiles `kernels/host/host_check.cpp` with the host C++ compiler (the `cc` crate)
//!    into a static library. It includes the kernels' headers, so the tests in
//!    `src/cuda/host_check.rs` run the GPU's per-block math on the CPU; no nvcc needed.
//! 2. When nvcc is found: compiles `kernels/all.cu` once per GPU architecture (SASS for sm_75,
//!    sm_80, sm_86, sm_89, sm_90, plus compute_90 PTX for newer GPUs), in parallel, then packs
//!    the images into `$OUT_DIR/sluice_kernels.fatbin` with `fatbinary`, writes ptxas's
//!    register/spill report to `$OUT_DIR/sluice_kernels_ptxas.txt`, and sets
//!    `cfg(sluice_kernels)`. Without nvcc the build succeeds and `src/cuda/fatbin.rs` reports
//!    "built without kernels".
//!
//! nvcc is looked for in `NVCC`, `$CUDA_HOME/bin`, `PATH`, then the PyPI toolchain that
//! `scripts/install-cuda.sh` installs (`$SLUICE_CUDA_VENV`, default
//! `~/.cache/sluice/cuda-venv`). With `SLUICE_REQUIRE_NVCC=1` (CI) a missing nvcc, a compile
//! error or a register spill in a hot kernel fails the build; without it a compile error only
//! warns and the build goes on without kernels. The script reruns when kernels/ or one of those
//! variables changes (not on PATH changes: set `NVCC` or touch kernels/ after installing nvcc).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;

/// Real GPU architectures that get SASS.
const SASS_ARCHS: [u32; 5] = [75, 80, 86, 89, 90];
/// Virtual architecture whose PTX is embedded for GPUs newer than the newest SASS.
const PTX_ARCH: u32 = 90;
/// Kernel name prefixes on the decode/prefill path: a spill in one of these fails a required
/// build. (Only the one-off `dequant_*` converters are exempt; they still get a warning.)
const HOT_PREFIXES: [&str; 10] = [
    "matvec_",
    "matmul_",
    "quantize_",
    "attn_",
    "rms_norm",
    "rope_",
    "swiglu",
    "add_",
    "kv_store",
    "argmax",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(sluice_kernels)");
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-changed=build.rs");
    for var in [
        "NVCC",
        "CUDA_HOME",
        "SLUICE_REQUIRE_NVCC",
        "SLUICE_CUDA_VENV",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }

    build_host_check();

    let required = env::var("SLUICE_REQUIRE_NVCC").is_ok_and(|v| v == "1");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let Some(nvcc) = find_nvcc() else {
        if required {
            fail("SLUICE_REQUIRE_NVCC=1 but no nvcc was found (set NVCC, CUDA_HOME, or run scripts/install-cuda.sh)");
        }
        return;
    };
    match build_fatbin(&nvcc, &out_dir) {
        Ok(report) => {
            if let Some(msg) = spill_problem(&report, required) {
                fail(&msg);
            }
            println!("cargo::rustc-cfg=sluice_kernels");
        }
        Err(msg) if required => fail(&msg),
        Err(msg) => {
            let first = msg.lines().take(12).collect::<Vec<_>>().join(" | ");
            println!(
                "cargo::warning=CUDA kernels not built ({}): {first}",
                nvcc.display()
            );
        }
    }
}

/// Stops the build with one clear message.
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

/// The host replay of the kernels' math, linked into the library for the tests.
fn build_host_check() {
    cc::Build::new()
        .cpp(true)
        // Plain C++ with no runtime-library calls: nothing from libstdc++ to link.
        .cpp_link_stdlib(None)
        .file("kernels/host/host_check.cpp")
        .include("kernels")
        .flag("-std=c++17")
        // The kernels round each product and sum where the Rust reference does; the host
        // compiler must not fuse them either.
        .flag_if_supported("-ffp-contract=off")
        .flag_if_supported("-Wno-unknown-pragmas")
        .opt_level(2)
        .warnings(true)
        .compile("sluice_host_check");
}

/// The nvcc to use, in the documented order of precedence.
fn find_nvcc() -> Option<PathBuf> {
    if let Some(p) = env::var_os("NVCC") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    if let Some(home) = env::var_os("CUDA_HOME") {
        let p = Path::new(&home).join("bin/nvcc");
        if p.is_file() {
            return Some(p);
        }
    }
    if let Some(path) = env::var_os("PATH") {
        if let Some(p) = env::split_paths(&path)
            .map(|d| d.join("nvcc"))
            .find(|p| p.is_file())
        {
            return Some(p);
        }
    }
    let venv = env::var_os("SLUICE_CUDA_VENV")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sluice/cuda-venv")))?;
    // <venv>/lib/pythonX.Y/site-packages/nvidia/cu13/bin/nvcc
    fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("site-packages/nvidia/cu13/bin/nvcc"))
        .find(|p| p.is_file())
}

/// Include flags for nvcc's own headers: the PyPI layout keeps them beside `bin/` and CCCL's
/// under `include/cccl`, which its nvcc.profile does not name.
fn toolkit_includes(nvcc: &Path) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(root) = nvcc.parent().and_then(Path::parent) {
        let inc = root.join("include");
        if inc.is_dir() {
            flags.push(format!("-I{}", inc.display()));
        }
        let cccl = inc.join("cccl");
        if cccl.is_dir() {
            flags.push("-isystem".into());
            flags.push(cccl.display().to_string());
        }
    }
    flags
}

/// One nvcc job: its output file and arguments.
struct Job {
    out: PathBuf,
    args: Vec<String>,
    label: String,
}

/// Compiles every architecture (in parallel) and packs the fatbin; returns ptxas's report.
fn build_fatbin(nvcc: &Path, out_dir: &Path) -> Result<String, String> {
    let src = Path::new("kernels/all.cu");
    let common = {
        let mut v = vec![
            "-std=c++17".to_string(),
            "-O3".into(),
            "-Xptxas".into(),
            "-v".into(),
            "-Ikernels".into(),
        ];
        v.extend(toolkit_includes(nvcc));
        v
    };
    let mut jobs: Vec<Job> = SASS_ARCHS
        .iter()
        .map(|sm| {
            let out = out_dir.join(format!("sluice_sm{sm}.cubin"));
            let mut args = common.clone();
            args.extend([
                "-cubin".into(),
                format!("-arch=sm_{sm}"),
                "-o".into(),
                out.display().to_string(),
                src.display().to_string(),
            ]);
            Job {
                out,
                args,
                label: format!("sm_{sm}"),
            }
        })
        .collect();
    let ptx = out_dir.join(format!("sluice_compute{PTX_ARCH}.ptx"));
    let mut args = common.clone();
    args.retain(|a| a != "-Xptxas" && a != "-v");
    args.extend([
        "-ptx".into(),
        format!("-arch=compute_{PTX_ARCH}"),
        "-o".into(),
        ptx.display().to_string(),
        src.display().to_string(),
    ]);
    jobs.push(Job {
        out: ptx.clone(),
        args,
        label: format!("compute_{PTX_ARCH} PTX"),
    });

    let parallel = env::var("NUM_JOBS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(2)
        .max(1);
    let mut report = String::new();
    for wave in jobs.chunks(parallel) {
        let outputs: Vec<(String, std::io::Result<Output>)> = thread::scope(|s| {
            let handles: Vec<_> = wave
                .iter()
                .map(|job| {
                    s.spawn(|| {
                        let out = Command::new(nvcc).args(&job.args).output();
                        (job.label.clone(), out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("nvcc thread"))
                .collect()
        });
        for (label, out) in outputs {
            let out = out.map_err(|e| format!("could not run {}: {e}", nvcc.display()))?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                return Err(format!("nvcc failed for {label}:\n{stderr}"));
            }
            report.push_str(&format!("== {label}\n{}", summarise_ptxas(&stderr)));
        }
    }

    let fatbinary = nvcc.with_file_name("fatbinary");
    let fatbin = out_dir.join("sluice_kernels.fatbin");
    let mut cmd = Command::new(if fatbinary.is_file() {
        fatbinary
    } else {
        PathBuf::from("fatbinary")
    });
    cmd.arg(format!("--create={}", fatbin.display())).arg("-64");
    for (sm, job) in SASS_ARCHS.iter().zip(&jobs) {
        cmd.arg(format!(
            "--image3=kind=elf,sm={sm},file={}",
            job.out.display()
        ));
    }
    cmd.arg(format!(
        "--image3=kind=ptx,sm={PTX_ARCH},file={}",
        ptx.display()
    ));
    let out = cmd
        .output()
        .map_err(|e| format!("could not run fatbinary: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "fatbinary failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    fs::write(out_dir.join("sluice_kernels_ptxas.txt"), &report)
        .map_err(|e| format!("could not write the ptxas report: {e}"))?;
    Ok(report)
}

/// One line per kernel from `-Xptxas -v` output of one architecture:
/// `NAME regs=R stack=S spill_stores=A spill_loads=B`.
fn summarise_ptxas(stderr: &str) -> String {
    let mut lines = Vec::new();
    let mut name: Option<String> = None;
    let mut frame = String::new();
    for line in stderr.lines() {
        if let Some(rest) = line.split("Function properties for ").nth(1) {
            name = Some(rest.trim().to_string());
        } else if line.contains("bytes stack frame") {
            frame = line.trim().to_string();
        } else if let (Some(n), Some(rest)) = (&name, line.split("Used ").nth(1)) {
            let regs = rest.split_whitespace().next().unwrap_or("?");
            let num = |key: &str| {
                frame
                    .split(',')
                    .find(|p| p.contains(key))
                    .and_then(|p| p.split_whitespace().next())
                    .unwrap_or("?")
                    .to_string()
            };
            lines.push(format!(
                "{n} regs={regs} stack={} spill_stores={} spill_loads={}\n",
                num("stack frame"),
                num("spill stores"),
                num("spill loads")
            ));
            name = None;
        }
    }
    lines.sort();
    lines.concat()
}

/// A message if a kernel spills: an error for a hot kernel when the build is required,
/// otherwise a cargo warning.
fn spill_problem(report: &str, required: bool) -> Option<String> {
    let mut hot = Vec::new();
    let mut arch = "";
    for line in report.lines() {
        if let Some(a) = line.strip_prefix("== ") {
            arch = a;
            continue;
        }
        let spills = ["spill_stores=", "spill_loads="].iter().any(|k| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .is_some_and(|v| v != "0")
        });
        if !spills {
            continue;
        }
        let name = line.split_whitespace().next().unwrap_or("");
        if HOT_PREFIXES.iter().any(|p| name.starts_with(p)) {
            hot.push(format!("{arch}: {line}"));
        } else {
            println!("cargo::warning=register spill in {arch}: {line}");
        }
    }
    if hot.is_empty() {
        return None;
    }
    let msg = format!("register spills in hot kernels:\n{}", hot.join("\n"));
    if required {
        Some(msg)
    } else {
        println!("cargo::warning={}", msg.replace('\n', " | "));
        None
    }
}

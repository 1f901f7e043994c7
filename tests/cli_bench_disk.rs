//! `sluice bench disk` contracts: the JSON object (one cell per grid point, figures consistent
//! with one another, the best cell per pattern), the scratch file removed afterwards, a
//! `--file` only read, PNG and SVG plots, and bad usage exiting 2 with one sentence.
//!
//! Runs use a 64 MiB scratch file under the target directory (a disk, not tmpfs), a tiny grid
//! and 0.1 s per cell. Where that directory is on a file system without direct I/O the bench
//! refuses it, and these tests say so and skip.

mod common;

use std::path::Path;

use common::{path_arg, sluice, stderr, stdout};
use serde_json::Value;

/// A temporary directory on the disk the tests are built on.
fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir under CARGO_TARGET_TMPDIR")
}

/// Runs `sluice bench disk ARGS` with its scratch file in `home`; `None` (skip) when the
/// bench refuses `home` for lack of a disk under it.
fn bench_disk(home: &Path, args: &[&str]) -> Option<std::process::Output> {
    let mut all = vec!["bench", "disk"];
    all.extend_from_slice(args);
    let o = sluice(&all, &[("SLUICE_HOME", path_arg(home))]);
    if o.status.code() == Some(2) && stderr(&o).contains("would measure memory") {
        eprintln!("skipping: {}", stderr(&o).trim());
        return None;
    }
    Some(o)
}

fn json_of(o: &std::process::Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    serde_json::from_str(stdout(o).trim()).expect("one JSON object on stdout")
}

/// A measured cell's figures agree with one another and with the file.
fn check_measured(c: &Value, file_bytes: u64) {
    let f = |k: &str| {
        c[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {c}"))
    };
    let chunk = c["chunk_bytes"].as_u64().expect("chunk_bytes");
    let reads = c["reads"].as_u64().expect("reads");
    let bytes = c["bytes_read"].as_u64().expect("bytes_read");
    assert!(reads >= 1, "{c}");
    assert_eq!(bytes, reads * chunk, "{c}");
    assert!(bytes <= file_bytes, "a cell reads at most one pass: {c}");
    assert!(f("elapsed_s") > 0.0 && f("read_gb_per_s") > 0.0, "{c}");
    let gb = bytes as f64 / f("elapsed_s") / 1e9;
    assert!((f("read_gb_per_s") - gb).abs() <= 1e-9 * gb.max(1.0), "{c}");
    let iops = reads as f64 / f("elapsed_s");
    assert!((f("iops") - iops).abs() <= 1e-6 * iops, "{c}");
    assert!(
        f("latency_us_p50") > 0.0 && f("latency_us_p50") <= f("latency_us_p99"),
        "{c}"
    );
}

#[test]
fn json_has_every_cell_and_the_best_per_pattern() {
    let home = disk_dir();
    let args = [
        "--size",
        "64M",
        "--chunks",
        "256K,1M",
        "--depths",
        "1,32",
        "--seconds",
        "0.1",
        "--json",
    ];
    let Some(o) = bench_disk(home.path(), &args) else {
        return;
    };
    let v = json_of(&o);
    assert_eq!(v["file_bytes"], 64 << 20);
    assert_eq!(v["scratch"], true);
    assert_eq!(v["direct"], true, "{v}");
    let cells = v["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 2 * 2 * 2 * 2);
    for c in cells {
        assert!(["sequential", "random"].contains(&c["pattern"].as_str().expect("pattern")));
        let qd = c["queue_depth"].as_u64().expect("queue_depth");
        match c["reader"].as_str() {
            Some("pread") => assert_eq!(c["pread_threads"].as_u64(), Some(qd.min(16))),
            Some("uring") => assert!(c["pread_threads"].is_null()),
            other => panic!("reader {other:?}"),
        }
        match c["unavailable"].as_str() {
            Some(why) => {
                assert_eq!(
                    c["reader"], "uring",
                    "only io_uring may be unavailable: {why}"
                );
                assert!(c["read_gb_per_s"].is_null());
            }
            None => check_measured(c, 64 << 20),
        }
    }
    for pattern in ["sequential", "random"] {
        let fastest = cells
            .iter()
            .filter(|c| c["pattern"] == pattern)
            .filter_map(|c| c["read_gb_per_s"].as_f64())
            .fold(0.0, f64::max);
        let best = &v["best"][pattern];
        assert_eq!(best["pattern"], pattern);
        assert_eq!(best["read_gb_per_s"].as_f64(), Some(fastest), "{v}");
        assert!(cells.contains(best), "the best is one of the cells");
    }
    let left: Vec<_> = std::fs::read_dir(home.path()).expect("list").collect();
    assert!(left.is_empty(), "scratch file left behind: {left:?}");
}

#[test]
fn table_names_each_cell_and_the_best_settings() {
    let home = disk_dir();
    let args = [
        "--size",
        "64M",
        "--chunks",
        "1M",
        "--depths",
        "4",
        "--seconds",
        "0.1",
    ];
    let Some(o) = bench_disk(home.path(), &args) else {
        return;
    };
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let rows = out
        .lines()
        .filter(|l| l.starts_with("sequential ") || l.starts_with("random "))
        .count();
    assert_eq!(rows, 4, "{out}");
    assert!(out.contains("best sequential: "), "{out}");
    assert!(out.contains("best random: "), "{out}");
    assert!(out.contains("GB/s") && out.contains("p99 us"), "{out}");
}

#[test]
fn plots_are_written_as_png_and_svg() {
    let home = disk_dir();
    for (name, check) in [
        (
            "disk.png",
            (|b: &[u8]| b.starts_with(b"\x89PNG\r\n\x1a\n")) as fn(&[u8]) -> bool,
        ),
        ("disk.svg", |b: &[u8]| {
            String::from_utf8_lossy(b).contains("<svg")
        }),
    ] {
        let plot = home.path().join(name);
        let args = [
            "--size",
            "64M",
            "--chunks",
            "256K,1M",
            "--depths",
            "1",
            "--readers",
            "pread",
            "--seconds",
            "0.1",
            "--plot",
            path_arg(&plot),
        ];
        let Some(o) = bench_disk(home.path(), &args) else {
            return;
        };
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains(&format!("plot: {}", plot.display())));
        let bytes = std::fs::read(&plot).expect("plot written");
        assert!(check(&bytes), "{name} is not what its extension says");
    }
}

#[test]
fn a_named_file_is_read_and_left_as_it_was() {
    let dir = disk_dir();
    let file = dir.path().join("data.bin");
    let bytes: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    std::fs::write(&file, &bytes).expect("write the test file");
    let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
    let args = [
        "--file",
        path_arg(&file),
        "--chunks",
        "1M",
        "--depths",
        "2",
        "--seconds",
        "0.1",
        "--json",
    ];
    let Some(o) = bench_disk(dir.path(), &args) else {
        return;
    };
    let v = json_of(&o);
    assert_eq!(v["scratch"], false);
    assert_eq!(v["file"], path_arg(&file));
    assert_eq!(v["file_bytes"], 8 << 20);
    assert!(stderr(&o).contains("smaller than 1 GiB"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).expect("read back"), bytes);
    let after = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
    assert_eq!(modified, after);
    let entries = std::fs::read_dir(dir.path()).expect("list").count();
    assert_eq!(entries, 1, "nothing but the file in its directory");
}

#[test]
fn a_missing_file_exits_2_naming_it() {
    let dir = disk_dir();
    let missing = dir.path().join("no-such.bin");
    let o = sluice(&["bench", "disk", "--file", path_arg(&missing)], &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(o.stdout.is_empty());
    assert!(err.contains(path_arg(&missing)), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn bad_options_exit_2_with_one_sentence() {
    for (args, fragment) in [
        (&["--chunks", "5000"][..], "--chunks"),
        (&["--chunks", "1M,,4M"][..], "--chunks"),
        (&["--depths", "0"][..], "--depths"),
        (&["--depths", "1000"][..], "--depths"),
        (&["--readers", "mmap"][..], "--readers"),
        (&["--patterns", "zigzag"][..], "--patterns"),
        (&["--seconds", "0"][..], "--seconds"),
        (&["--seconds=-1"][..], "--seconds"),
        (&["--size", "1M"][..], "--size"),
        (&["--size", "lots"][..], "--size"),
        (&["--file", "/x", "--size", "64M"][..], "--file"),
        (&["--chunks", "64M", "--depths", "32"][..], "--depths"),
        (&["--plot", "disk.jpg"][..], "disk.jpg"),
        (&["--file", "/"][..], "not a regular file"),
    ] {
        let mut all = vec!["bench", "disk"];
        all.extend_from_slice(args);
        let o = sluice(&all, &[("SLUICE_HOME", "/nonexistent/never-written")]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(err.contains(fragment), "{fragment} not in {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

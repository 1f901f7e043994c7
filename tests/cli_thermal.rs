//! `sluice bench thermal --simulate` and `sluice run --thermal`: the JSON contract, the plot,
//! the bad-usage exits, and the thermal stats of a run.

mod common;

use common::{path_arg, sluice, stderr, stdout};
use serde_json::Value;
use sluice_loader::cache::require_model;

fn json_of(o: &std::process::Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_str(stdout(o).trim()).expect("one JSON object on stdout")
}

#[test]
fn bench_thermal_json_off_and_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plot = dir.path().join("thermal.svg");
    let o = sluice(
        &[
            "bench",
            "thermal",
            "--simulate",
            "--duration",
            "300",
            "--json",
            "--plot",
            path_arg(&plot),
        ],
        &[],
    );
    let v = json_of(&o);
    let f = |run: &str, key: &str| {
        v[run][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{run}.{key} missing in {v}"))
    };
    for run in ["off", "on"] {
        for key in [
            "peak_temp_c",
            "threshold_c",
            "mean_gb_per_s",
            "throttle_events",
        ] {
            assert!(f(run, key).is_finite());
        }
    }
    assert!(f("off", "peak_temp_c") >= f("off", "threshold_c"));
    assert!(f("off", "throttle_events") > 0.0);
    assert!(f("on", "peak_temp_c") < f("on", "threshold_c"));
    assert_eq!(f("on", "throttle_events"), 0.0);
    assert!(f("on", "mean_gb_per_s") > f("off", "mean_gb_per_s"), "{v}");
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    assert!(svg.starts_with("<svg") && svg.contains("prefetch depth"));
    assert!(svg.contains("governor off") && svg.contains("governor on"));
}

#[test]
fn bench_thermal_bad_usage() {
    let o = sluice(&["bench", "thermal"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--simulate"), "{}", stderr(&o));
    let o = sluice(&["bench", "thermal", "--simulate", "--plot", "x.jpg"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("x.jpg"), "{}", stderr(&o));
    assert!(stderr(&o).contains(".png or .svg"), "{}", stderr(&o));
}

#[test]
fn bench_thermal_png_plot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plot = dir.path().join("thermal.png");
    let o = sluice(
        &[
            "bench",
            "thermal",
            "--simulate",
            "--duration",
            "60",
            "--json",
            "--plot",
            path_arg(&plot),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let png = std::fs::read(&plot).expect("plot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "an empty image: {} bytes", png.len());
}

fn run_thermal(mode: &str) -> Value {
    let path = require_model("smollm2-135m");
    let o = sluice(
        &[
            "run",
            "-m",
            path_arg(&path),
            "--prompt",
            "Hi",
            "--raw",
            "--temperature",
            "0",
            "--max-tokens",
            "4",
            "--ram-budget",
            "0",
            "--thermal",
            mode,
            "--json",
        ],
        &[],
    );
    json_of(&o)["stats"]["thermal"].clone()
}

#[test]
fn run_reports_thermal_stats() {
    let off = run_thermal("off");
    assert_eq!(off["mode"], "off");
    assert!(off["governor"].is_null() && off["drive"].is_null());
    let sim = run_thermal("sim");
    assert_eq!(sim["mode"], "sim");
    assert_eq!(sim["drive"], "simulated drive");
    let g = &sim["governor"];
    assert!(g["polls"].as_u64().is_some_and(|n| n >= 1), "{sim}");
    assert!(g["depth_min"].as_u64().is_some_and(|d| d >= 1), "{sim}");
    assert!(sim["temp_c"].as_f64().is_some() && sim["warn_c"].as_f64().is_some());
    // auto: a drive sensor where the machine has one, else the reason there is none.
    let auto = run_thermal("auto");
    assert_eq!(auto["mode"], "auto");
    assert!(
        auto["drive"].is_string() || auto["no_sensor"].is_string(),
        "{auto}"
    );
}

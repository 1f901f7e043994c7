//! `sluice bench kernels` contracts: one JSON object with a figure per requested type, measured
//! against the memory bandwidth of the same run, and the GPU's figures or why there are none;
//! bad options exit 2 with one sentence.

use std::process::{Command, Output};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice")
}

#[test]
fn kernels_json_has_a_figure_per_type() {
    let o = sluice(&[
        "bench",
        "kernels",
        "--size",
        "2M",
        "--types",
        "q4_1,Q8_0,q4_k",
        "--seconds",
        "0.05",
        "--threads",
        "2",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stderr: {err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["threads"], 2);
    assert!(v["mem_gb_per_s"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    let ks = v["kernels"].as_array().expect("kernels array");
    let names: Vec<&str> = ks.iter().filter_map(|k| k["type"].as_str()).collect();
    assert_eq!(names, ["Q4_1", "Q8_0", "Q4_K"]);
    for k in ks {
        for field in [
            "dequant_gb_per_s",
            "matvec_gb_per_s",
            "matvec_fraction_of_mem",
            "batch_gb_per_s",
            "mem_gb_per_s",
        ] {
            assert!(k[field].as_f64().is_some_and(|x| x > 0.0), "{field} in {k}");
        }
        // Each fraction is against the memory probed around its own type.
        let (mv, mem, frac) = (
            k["matvec_gb_per_s"].as_f64().unwrap_or(f64::NAN),
            k["mem_gb_per_s"].as_f64().unwrap_or(f64::NAN),
            k["matvec_fraction_of_mem"].as_f64().unwrap_or(f64::NAN),
        );
        assert!((frac * mem - mv).abs() <= 1e-9 * mv.max(1.0), "{k}");
        assert!(
            k["weight_bytes"].as_u64().is_some_and(|b| b >= 1 << 20),
            "{k}"
        );
    }
    // Every tier the CPU has, scalar first and the engine's among them, each with a
    // decode and a batch figure per type; the top-level figures are the engine's tier's.
    let tiers = v["tiers"].as_array().expect("tiers array");
    assert_eq!(tiers[0]["isa"], "scalar", "{v}");
    assert!(tiers.iter().any(|t| t["isa"] == v["isa"]), "{v}");
    // The 16-row layout of the best SIMD tier is a tier row of its own: AVX-512's takes every
    // default type, AVX2's the 32-element types (Q4_1 and Q8_0 here).
    let has = |name: &str| tiers.iter().any(|t| t["isa"] == name);
    assert_eq!(has("avx512 rows16"), has("avx512"), "{v}");
    assert_eq!(has("avx2 rows16"), has("avx2") && !has("avx512"), "{v}");
    // It says whether the 16-row Q2_K/Q3_K kernels it ran use GFNI: only with AVX-512 and only
    // where the CPU lists the feature.
    let cpu_has_gfni = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.split_whitespace().any(|w| w == "gfni"))
        .unwrap_or(false);
    assert_eq!(
        v["rows16_gfni"].as_bool(),
        Some(has("avx512 rows16") && cpu_has_gfni),
        "{v}"
    );
    for t in tiers {
        let ks = t["kernels"].as_array().expect("tier kernels");
        let names: Vec<&str> = ks.iter().filter_map(|k| k["type"].as_str()).collect();
        let want: &[&str] = if t["isa"] == "avx2 rows16" {
            &["Q4_1", "Q8_0"]
        } else {
            &["Q4_1", "Q8_0", "Q4_K"]
        };
        assert_eq!(names, want, "{t}");
        for k in ks {
            for field in [
                "matvec_gb_per_s",
                "matvec_fraction_of_mem",
                "batch_gb_per_s",
            ] {
                assert!(k[field].as_f64().is_some_and(|x| x > 0.0), "{field} in {k}");
            }
        }
    }
    // The GPU's figures for the same types, or why there are none.
    if v["gpu"].is_null() {
        let why = v["gpu_reason"].as_str().unwrap_or("");
        assert!(!why.is_empty(), "no gpu and no gpu_reason: {v}");
    } else {
        let g = &v["gpu"];
        assert!(g["mem_gb_per_s"].as_f64().is_some_and(|x| x > 0.0), "{g}");
        let ks = g["kernels"].as_array().expect("gpu kernels array");
        let names: Vec<&str> = ks.iter().filter_map(|k| k["type"].as_str()).collect();
        assert_eq!(names, ["Q4_1", "Q8_0", "Q4_K"]);
        for k in ks {
            for field in ["dequant_gb_per_s", "matvec_gb_per_s"] {
                assert!(k[field].as_f64().is_some_and(|x| x > 0.0), "{field} in {k}");
            }
        }
    }
}

#[test]
fn kernels_row_elems_sets_the_matrices_rows_and_leaves_out_types_it_cannot_take() {
    // Qwen2.5-0.5B's 896-element rows: the 32-element types fit, the 256-element K-quants not.
    let o = sluice(&[
        "bench",
        "kernels",
        "--size",
        "1M",
        "--row-elems",
        "896",
        "--seconds",
        "0.02",
        "--threads",
        "1",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stderr: {err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["row_elems"], 896);
    let names: Vec<&str> = v["kernels"]
        .as_array()
        .expect("kernels array")
        .iter()
        .filter_map(|k| k["type"].as_str())
        .collect();
    for ty in ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"] {
        assert!(names.contains(&ty), "{ty} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.ends_with("_K")), "{names:?}");
}

#[test]
fn kernels_bad_options_exit_2_with_one_sentence() {
    for (args, fragment) in [
        (&["--types", "q9_9"][..], "unknown weight type \"q9_9\""),
        (&["--size", "0"][..], "--size"),
        (&["--seconds=-1"][..], "--seconds"),
        (&["--row-elems", "0"][..], "--row-elems must be in"),
        (
            &["--row-elems", "896", "--types", "q5_0,q4_k"][..],
            "--row-elems 896 is not a multiple of Q4_K's 256-element block",
        ),
    ] {
        let mut all = vec!["bench", "kernels"];
        all.extend_from_slice(args);
        let o = sluice(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty());
        assert!(err.contains(fragment), "{fragment} not in {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

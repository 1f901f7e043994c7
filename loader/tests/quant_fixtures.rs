//! Bit-exact check of `dequantize_row` against independent test vectors.
//!
//! `tests/fixtures/quant/` holds, per type, raw blocks and the f32 values gguf-py 0.19.0's
//! numpy `dequantize` gives for them (see `tests/fixtures/make_quant_fixtures.py` and its
//! `manifest.json`; Q8_1 and Q8_K, which gguf-py lacks, use the script's own numpy `q * d`).
//!
//! How values are compared: every type is compared **bit for bit** (`to_bits()` equality).
//! For the quant types this holds because gguf-py forms each value in the same float order as
//! ggml's scalar C reference, which the Rust code follows: `q·d` (Q4_0, Q5_0, Q8_0, Q8_1,
//! IQ4_NL, Q8_K), `q·d + m` (Q4_1, Q5_1), `(d·sc)·q − dmin·m` (Q2_K, Q4_K, Q5_K),
//! `(d·sc)·q` (Q3_K, Q6_K), each operation one IEEE f32 rounding with no fused multiply-add.
//! The sign of zero is part of the comparison (a negative quant times a zero scale is −0).
//! The one relaxation: where the expected value is a NaN, any NaN is accepted. F16 → f32
//! conversion of a signalling NaN keeps the payload in numpy and in the software path but is
//! quietened by hardware converters (F16C), so the NaN bits are not a property of the format.

use std::path::{Path, PathBuf};

use sluice_loader::quant::dequantize_row;
use sluice_loader::GgmlType;

/// Every type with a fixture, by file stem.
const TYPES: [(&str, GgmlType); 16] = [
    ("f32", GgmlType::F32),
    ("f16", GgmlType::F16),
    ("bf16", GgmlType::BF16),
    ("q4_0", GgmlType::Q4_0),
    ("q4_1", GgmlType::Q4_1),
    ("q5_0", GgmlType::Q5_0),
    ("q5_1", GgmlType::Q5_1),
    ("q8_0", GgmlType::Q8_0),
    ("q8_1", GgmlType::Q8_1),
    ("iq4_nl", GgmlType::IQ4NL),
    ("q2_k", GgmlType::Q2K),
    ("q3_k", GgmlType::Q3K),
    ("q4_k", GgmlType::Q4K),
    ("q5_k", GgmlType::Q5K),
    ("q6_k", GgmlType::Q6K),
    ("q8_k", GgmlType::Q8K),
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/quant")
}

fn read(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with `\"$(scripts/fixture-python.sh)\" tests/fixtures/make_quant_fixtures.py`)",
            path.display()
        )
    })
}

fn manifest() -> serde_json::Value {
    serde_json::from_slice(&read("manifest.json")).expect("manifest.json is valid JSON")
}

/// Equal bits, or both NaN.
fn same(got: f32, want: f32) -> bool {
    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan())
}

/// Dequantises one fixture: the values checked and how many were NaNs with other bits, or
/// the first mismatch.
fn check(stem: &str, ty: GgmlType, entry: &serde_json::Value) -> Result<(usize, usize), String> {
    let blocks = read(&format!("{stem}.blocks"));
    let want: Vec<f32> = read(&format!("{stem}.f32"))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let n_elems = entry["elements"]
        .as_u64()
        .ok_or("manifest: no element count")?;
    let meta = (entry["ggml_type"].as_str(), entry["type_id"].as_u64());
    if meta != (Some(ty.name()), Some(u64::from(ty.id()))) || n_elems != want.len() as u64 {
        return Err(format!(
            "manifest entry {entry} does not match {ty} with {} values",
            want.len()
        ));
    }
    let mut got = vec![f32::NAN; want.len()];
    dequantize_row(ty, &blocks, &mut got).map_err(|e| e.to_string())?;
    match got.iter().zip(&want).position(|(&g, &w)| !same(g, w)) {
        None => {
            let nan_only = got.iter().zip(&want).filter(|(g, w)| g.to_bits() != w.to_bits()).count();
            Ok((want.len(), nan_only))
        }
        Some(i) => Err(format!(
            "first mismatch at element {i} (block {}, element {} in it): got {} ({:#010x}), want {} ({:#010x})",
            i / ty.block_elems(),
            i % ty.block_elems(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        )),
    }
}

#[test]
fn every_type_matches_gguf_py_bit_for_bit() {
    let manifest = manifest();
    let mut failures = Vec::new();
    for (stem, ty) in TYPES {
        let entry = &manifest["types"][stem];
        match check(stem, ty, entry) {
            Ok((n, nan_only)) => eprintln!(
                "{:>6}: {n} values match, {} bit for bit, {nan_only} as NaN only",
                ty.name(),
                n - nan_only
            ),
            Err(e) => failures.push(format!("{ty}: {e}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn manifest_lists_exactly_the_tested_types() {
    let manifest = manifest();
    let types = manifest["types"]
        .as_object()
        .expect("manifest has a types object");
    let mut listed: Vec<&str> = types.keys().map(String::as_str).collect();
    let mut tested: Vec<&str> = TYPES.iter().map(|(s, _)| *s).collect();
    listed.sort_unstable();
    tested.sort_unstable();
    assert_eq!(listed, tested);
    assert_eq!(manifest["gguf_version"].as_str(), Some("0.19.0"));
    // Hand-built edge cases must be part of every fixture, not just random data.
    for (stem, ty) in TYPES {
        let key = if ty.block_elems() == 1 {
            "specials"
        } else {
            "edge"
        };
        let n = types[stem][key].as_u64().unwrap_or(0);
        assert!(n > 0, "{ty}: fixture has no {key} entries");
    }
}

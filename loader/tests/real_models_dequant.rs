//! Dequantises every tensor of both real models with the scalar reference and checks that
//! every value is finite.
//!
//! Tensors are read with plain positioned reads, a run of whole rows at a time, so memory stays
//! at a few MiB however large a tensor is (Qwen2.5's token embedding alone is 136 M values).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use sluice_loader::cache::require_model;
use sluice_loader::gguf::GgufFile;
use sluice_loader::quant::dequantize_row;
use sluice_loader::{GgmlType, TensorInfo};

/// Values dequantised per read, at most (whole rows; a longer row is read alone).
const CHUNK_ELEMS_MAX: u64 = 1 << 20;

/// Tensors and values seen per type.
#[derive(Default)]
struct Count {
    tensors: usize,
    values: u64,
}

/// Dequantises one tensor, a run of rows at a time; panics on the first non-finite value.
fn check_tensor(file: &File, t: &TensorInfo, bytes: &mut Vec<u8>, values: &mut Vec<f32>) {
    let row_elems = t.row_elems();
    let row_bytes = t.ty.row_bytes(row_elems).expect("rows are whole blocks");
    assert_eq!(row_bytes * t.n_rows(), t.n_bytes, "{}: byte size", t.name);
    let rows_per_chunk = (CHUNK_ELEMS_MAX / row_elems.max(1)).max(1);
    let mut row = 0;
    while row < t.n_rows() {
        let rows = rows_per_chunk.min(t.n_rows() - row);
        bytes.resize((rows * row_bytes) as usize, 0);
        values.resize((rows * row_elems) as usize, 0.0);
        file.read_exact_at(bytes, t.offset + row * row_bytes)
            .unwrap_or_else(|e| panic!("{}: read at row {row}: {e}", t.name));
        dequantize_row(t.ty, bytes, values).unwrap_or_else(|e| panic!("{}: {e}", t.name));
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let at = row * row_elems + i as u64;
            panic!("{} ({}): value {at} is {}", t.name, t.ty, values[i]);
        }
        row += rows;
    }
}

/// Dequantises every tensor of a cached model; returns per-type counts.
fn dequantize_model(alias: &str) -> BTreeMap<GgmlType, Count> {
    let path = require_model(alias);
    let gguf = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let files: Vec<File> = gguf
        .index
        .files
        .iter()
        .map(|p| File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    let (mut bytes, mut values) = (Vec::new(), Vec::new());
    let mut counts: BTreeMap<GgmlType, Count> = BTreeMap::new();
    for t in &gguf.index.tensors {
        check_tensor(&files[t.file], t, &mut bytes, &mut values);
        let c = counts.entry(t.ty).or_default();
        c.tensors += 1;
        c.values += t.n_elems();
    }
    for (ty, c) in &counts {
        eprintln!(
            "{alias}: {:>6} {:>4} tensors {:>11} values, all finite",
            ty.name(),
            c.tensors,
            c.values
        );
    }
    assert_eq!(
        counts.values().map(|c| c.tensors).sum::<usize>(),
        gguf.index.tensors.len()
    );
    counts
}

#[test]
fn smollm2_every_tensor_dequantises_to_finite_values() {
    let counts = dequantize_model("smollm2-135m");
    assert!(
        counts.keys().any(|ty| ty.block_elems() > 1),
        "expected quantised tensors"
    );
}

#[test]
fn qwen25_coder_every_tensor_dequantises_to_finite_values() {
    let counts = dequantize_model("qwen2.5-coder-0.5b");
    assert!(
        counts.keys().any(|ty| ty.block_elems() == 256),
        "expected K-quant tensors"
    );
}

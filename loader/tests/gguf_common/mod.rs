//! Fixture GGUF files for the gguf_* integration tests, built with `GgufWriter`.
#![allow(dead_code)] // each test crate uses a different part of this module

use std::io::Cursor;
use std::path::Path;

use sluice_loader::gguf::{GgufError, GgufFile, GgufWriter, MetaArray, MetaValue, RawTensorInfo};
use sluice_loader::GgmlType;

/// The path every in-memory fixture is parsed under (errors must name it).
pub const FIXTURE_PATH: &str = "fixture.gguf";

/// The sample's tensors: name, dims (ne0 first), type, exact byte size.
pub const SAMPLE_TENSORS: [(&str, &[u64], GgmlType, u64); 4] = [
    ("token_embd.weight", &[64, 4], GgmlType::Q8_0, 4 * 68),
    ("blk.0.attn_norm.weight", &[64], GgmlType::F32, 256),
    ("blk.0.ffn_down.weight", &[256, 2], GgmlType::Q4K, 2 * 144),
    ("output.weight", &[64, 3], GgmlType::F16, 3 * 128),
];

/// The sample's token strings (one non-ASCII, one empty).
pub const SAMPLE_TOKENS: [&str; 5] = ["<s>", "</s>", "hello", "wörld", ""];

/// Deterministic bytes for a tensor: every tensor gets distinct contents.
pub fn tensor_data(seed: u8, n_bytes: u64) -> Vec<u8> {
    (0..n_bytes)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A writer holding the sample: scalar KVs of every type, three arrays, four tensors.
pub fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", MetaValue::Str("llama".into()))
        .add_kv("general.name", MetaValue::Str("sluice fixture".into()))
        .add_kv("llama.block_count", MetaValue::U32(1))
        .add_kv("llama.rope.freq_base", MetaValue::F32(10000.0))
        .add_kv("test.u8", MetaValue::U8(200))
        .add_kv("test.i8", MetaValue::I8(-5))
        .add_kv("test.u16", MetaValue::U16(65535))
        .add_kv("test.i16", MetaValue::I16(-300))
        .add_kv("test.i32", MetaValue::I32(-70000))
        .add_kv("test.u64", MetaValue::U64(1 << 40))
        .add_kv("test.i64", MetaValue::I64(-(1 << 40)))
        .add_kv("test.f64", MetaValue::F64(0.125))
        .add_kv("test.bool", MetaValue::Bool(true))
        .add_kv(
            "tokenizer.ggml.tokens",
            MetaValue::Array(MetaArray::Str(
                SAMPLE_TOKENS.iter().map(|s| s.to_string()).collect(),
            )),
        )
        .add_kv(
            "tokenizer.ggml.scores",
            MetaValue::Array(MetaArray::F32(vec![0.0, -1.5, 2.25, 3.0, -4.0])),
        )
        .add_kv(
            "tokenizer.ggml.token_type",
            MetaValue::Array(MetaArray::I32(vec![3, 3, 1, 1, 1])),
        );
    for (i, (name, dims, ty, n_bytes)) in SAMPLE_TENSORS.iter().enumerate() {
        w.add_tensor(*name, dims, *ty, tensor_data(i as u8, *n_bytes))
            .expect("valid sample tensor");
    }
    w
}

/// The sample as bytes.
pub fn sample_bytes() -> Vec<u8> {
    sample_writer().to_bytes()
}

/// Parses in-memory bytes as a file of exactly their length.
pub fn parse(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    GgufFile::parse(
        Cursor::new(bytes),
        bytes.len() as u64,
        Path::new(FIXTURE_PATH),
    )
}

/// Parses bytes that must be rejected; checks that the message names the path and the offset.
pub fn reject(bytes: &[u8]) -> GgufError {
    let err = match parse(bytes) {
        Ok(f) => panic!(
            "hostile file parsed: {} tensors, {} kvs",
            f.index.tensors.len(),
            f.metadata.len()
        ),
        Err(e) => e,
    };
    let msg = err.to_string();
    let prefix = format!("{FIXTURE_PATH}: at byte {}: ", err.offset);
    assert!(msg.starts_with(&prefix), "message {msg:?} lacks {prefix:?}");
    assert!(
        msg.len() > prefix.len(),
        "message {msg:?} says nothing after the location"
    );
    err
}

/// A writer holding one KV pair and nothing else (for patching fields at known offsets).
pub fn one_kv(key: &str, value: MetaValue) -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_kv(key, value);
    w
}

/// Overwrites 8 bytes at `at` with a little-endian u64.
pub fn patch_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Overwrites 4 bytes at `at` with a little-endian u32.
pub fn patch_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// A file holding only the given raw tensor infos (no data).
pub fn with_infos(infos: &[RawTensorInfo]) -> Vec<u8> {
    let mut w = GgufWriter::new();
    for i in infos {
        w.add_raw_tensor_info(i.clone());
    }
    w.to_bytes()
}

pub fn info(name: &str, dims: &[u64], type_id: u32, offset: u64) -> RawTensorInfo {
    RawTensorInfo {
        name: name.as_bytes().to_vec(),
        dims: dims.to_vec(),
        type_id,
        offset,
    }
}

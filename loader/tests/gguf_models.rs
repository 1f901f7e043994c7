//! The real models: headers parse, and agree with what python's gguf package (0.19) reports.

use std::time::Instant;

use sluice_loader::cache::require_model;
use sluice_loader::gguf::GgufFile;
use sluice_loader::GgmlType;

/// Opens a cached model and reports the header parse time (a figure, never an assertion).
fn open_timed(alias: &str) -> GgufFile {
    let path = require_model(alias);
    let start = Instant::now();
    let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let ms = start.elapsed().as_secs_f64() * 1e3;
    eprintln!(
        "{alias}: header parsed in {ms:.1} ms ({} tensors, {} kvs, data at byte {})",
        f.index.tensors.len(),
        f.metadata.len(),
        f.data_offset
    );
    f
}

/// Checks a tensor's type, dims and absolute offset.
fn check_tensor(f: &GgufFile, name: &str, ty: GgmlType, dims: &[u64], offset: u64) {
    let t = f
        .index
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(
        (t.ty, t.dims.as_slice(), t.offset),
        (ty, dims, offset),
        "{name}"
    );
    assert_eq!(
        Some(t.n_bytes),
        ty.row_bytes(dims[0])
            .map(|r| r * dims[1..].iter().product::<u64>())
    );
}

/// Invariants of every well-formed file: tensors end inside it, the last one at its end.
fn check_layout(f: &GgufFile) {
    assert_eq!(f.alignment, 32);
    assert_eq!(f.index.files, vec![f.path.clone()]);
    let min_offset = f.index.tensors.iter().map(|t| t.offset).min();
    let max_end = f.index.tensors.iter().map(|t| t.end()).max();
    assert_eq!(min_offset, Some(f.data_offset));
    assert_eq!(max_end, Some(f.file_size));
}

#[test]
fn smollm2_header_matches_gguf_py() {
    let f = open_timed("smollm2-135m");
    assert_eq!(f.version, 3);
    assert_eq!(f.arch(), Some("llama"));
    assert_eq!(f.file_size, 98_362_432);
    assert_eq!(f.data_offset, 1_785_664);
    assert_eq!(f.index.tensors.len(), 272);
    assert_eq!(f.metadata.len(), 33);
    assert_eq!(f.metadata.get_u64("llama.block_count"), Some(30));
    assert_eq!(f.metadata.get_u64("llama.embedding_length"), Some(576));
    assert_eq!(f.metadata.get_str("tokenizer.ggml.pre"), Some("smollm"));
    assert_eq!(
        f.metadata
            .get_array("tokenizer.ggml.tokens")
            .map(|a| a.len()),
        Some(49152)
    );
    assert_eq!(
        f.metadata
            .get_array("tokenizer.ggml.token_type")
            .map(|a| a.len()),
        Some(49152)
    );
    assert_eq!(
        f.metadata
            .get_array("tokenizer.ggml.merges")
            .map(|a| a.len()),
        Some(48900)
    );
    check_tensor(
        &f,
        "token_embd.weight",
        GgmlType::Q8_0,
        &[576, 49152],
        1_785_664,
    );
    check_tensor(
        &f,
        "blk.0.attn_norm.weight",
        GgmlType::F32,
        &[576],
        31_866_688,
    );
    check_tensor(
        &f,
        "blk.0.ffn_down.weight",
        GgmlType::Q4_1,
        &[1536, 576],
        31_868_992,
    );
    check_tensor(
        &f,
        "blk.23.ffn_down.weight",
        GgmlType::Q4_1,
        &[1536, 576],
        67_332_160,
    );
    check_tensor(&f, "output_norm.weight", GgmlType::F32, &[576], 98_360_128);
    assert!(
        f.index.get("output.weight").is_none(),
        "SmolLM2 ties its embeddings"
    );
    check_layout(&f);
}

#[test]
fn qwen2_header_matches_gguf_py() {
    let f = open_timed("qwen2.5-coder-0.5b");
    assert_eq!(f.version, 3);
    assert_eq!(f.arch(), Some("qwen2"));
    assert_eq!(f.file_size, 491_400_064);
    assert_eq!(f.data_offset, 5_947_776);
    assert_eq!(f.index.tensors.len(), 291);
    assert_eq!(f.metadata.len(), 26);
    assert_eq!(f.metadata.get_u64("qwen2.block_count"), Some(24));
    assert_eq!(
        f.metadata
            .get_array("tokenizer.ggml.tokens")
            .map(|a| a.len()),
        Some(151936)
    );
    assert_eq!(
        f.metadata
            .get_array("tokenizer.ggml.merges")
            .map(|a| a.len()),
        Some(151387)
    );
    check_tensor(
        &f,
        "output.weight",
        GgmlType::Q8_0,
        &[896, 151936],
        5_947_776,
    );
    check_tensor(
        &f,
        "token_embd.weight",
        GgmlType::Q5_0,
        &[896, 151936],
        150_590_848,
    );
    check_tensor(
        &f,
        "blk.0.attn_norm.weight",
        GgmlType::F32,
        &[896],
        244_183_424,
    );
    check_tensor(
        &f,
        "blk.23.ffn_down.weight",
        GgmlType::Q4K,
        &[4864, 896],
        407_829_120,
    );
    check_tensor(&f, "output_norm.weight", GgmlType::F32, &[896], 491_396_480);
    let mut types: Vec<GgmlType> = f.index.tensors.iter().map(|t| t.ty).collect();
    types.sort();
    types.dedup();
    assert_eq!(
        types,
        [
            GgmlType::F32,
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q4K,
            GgmlType::Q6K
        ]
    );
    check_layout(&f);
}

//! Valid files: what the writer writes, the reader reads back field for field.

mod gguf_common;

use gguf_common::*;
use sluice_loader::gguf::{GgufFile, GgufWriter, MetaArray, MetaValue, WriteError};
use sluice_loader::GgmlType;

#[test]
fn sample_parses_with_every_field() {
    let bytes = sample_bytes();
    let f = parse(&bytes).expect("sample parses");
    assert_eq!(f.version, 3);
    assert_eq!(f.alignment, 32);
    assert_eq!(f.file_size, bytes.len() as u64);
    assert_eq!(f.path.to_str(), Some(FIXTURE_PATH));
    assert_eq!(f.arch(), Some("llama"));
    assert_eq!(f.data_offset % 32, 0);

    let m = &f.metadata;
    assert_eq!(m.len(), 16);
    assert_eq!(
        m.iter().next().map(|(k, _)| k),
        Some("general.architecture")
    );
    assert_eq!(m.get_str("general.name"), Some("sluice fixture"));
    assert_eq!(m.get("llama.block_count"), Some(&MetaValue::U32(1)));
    assert_eq!(
        m.get("llama.rope.freq_base"),
        Some(&MetaValue::F32(10000.0))
    );
    assert_eq!(m.get("test.u8"), Some(&MetaValue::U8(200)));
    assert_eq!(m.get("test.i8"), Some(&MetaValue::I8(-5)));
    assert_eq!(m.get("test.u16"), Some(&MetaValue::U16(65535)));
    assert_eq!(m.get("test.i16"), Some(&MetaValue::I16(-300)));
    assert_eq!(m.get("test.i32"), Some(&MetaValue::I32(-70000)));
    assert_eq!(m.get("test.u64"), Some(&MetaValue::U64(1 << 40)));
    assert_eq!(m.get("test.i64"), Some(&MetaValue::I64(-(1 << 40))));
    assert_eq!(m.get("test.f64"), Some(&MetaValue::F64(0.125)));
    assert_eq!(m.get("test.bool"), Some(&MetaValue::Bool(true)));
    let tokens: Vec<&str> = m
        .get_str_array("tokenizer.ggml.tokens")
        .expect("tokens")
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(tokens, SAMPLE_TOKENS);
    assert_eq!(
        m.get_array("tokenizer.ggml.scores"),
        Some(&MetaArray::F32(vec![0.0, -1.5, 2.25, 3.0, -4.0]))
    );
    assert_eq!(
        m.get_array("tokenizer.ggml.token_type"),
        Some(&MetaArray::I32(vec![3, 3, 1, 1, 1]))
    );

    assert_eq!(f.index.files, vec![std::path::PathBuf::from(FIXTURE_PATH)]);
    assert_eq!(f.index.tensors.len(), SAMPLE_TENSORS.len());
    let mut expected_offset = f.data_offset;
    for (i, (t, (name, dims, ty, n_bytes))) in
        f.index.tensors.iter().zip(SAMPLE_TENSORS).enumerate()
    {
        assert_eq!(
            (t.name.as_str(), t.dims.as_slice(), t.ty, t.n_bytes),
            (name, dims, ty, n_bytes)
        );
        assert_eq!(t.file, 0);
        assert_eq!(t.offset, expected_offset, "{name}");
        // The absolute offset really points at this tensor's bytes.
        let at = t.offset as usize;
        assert_eq!(
            &bytes[at..at + n_bytes as usize],
            tensor_data(i as u8, n_bytes).as_slice()
        );
        expected_offset = t.end().div_ceil(32) * 32;
    }
    assert_eq!(
        expected_offset,
        bytes.len() as u64,
        "the writer pads the last tensor too"
    );
}

#[test]
fn version_2_parses_the_same() {
    let mut w = sample_writer();
    w.set_version(2);
    let v2 = parse(&w.to_bytes()).expect("v2 parses");
    let v3 = parse(&sample_bytes()).expect("v3 parses");
    assert_eq!(v2.version, 2);
    assert_eq!(v2.metadata, v3.metadata);
    assert_eq!(v2.index.tensors, v3.index.tensors);
}

#[test]
fn custom_alignment_moves_the_data_section() {
    let mut w = sample_writer();
    w.set_alignment(4096).expect("power of two");
    let bytes = w.to_bytes();
    let f = parse(&bytes).expect("parses");
    assert_eq!(f.alignment, 4096);
    assert_eq!(
        f.metadata.get("general.alignment"),
        Some(&MetaValue::U32(4096))
    );
    assert_eq!(f.data_offset, 4096);
    for t in &f.index.tensors {
        assert_eq!(t.offset % 4096, 0, "{}", t.name);
    }
    assert!(matches!(
        GgufWriter::new().set_alignment(24),
        Err(WriteError::BadAlignment(24))
    ));
}

#[test]
fn writer_refuses_data_of_the_wrong_size() {
    let mut w = GgufWriter::new();
    let r = w.add_tensor("t", &[32, 2], GgmlType::Q8_0, vec![0; 67]);
    assert!(matches!(
        r,
        Err(WriteError::DataSize {
            expected_bytes: 68,
            got_bytes: 67,
            ..
        })
    ));
    let r = w.add_tensor("t", &[33], GgmlType::Q8_0, vec![0; 34]);
    assert!(matches!(r, Err(WriteError::BadShape { .. })));
}

#[test]
fn file_with_no_tensors_and_no_keys_parses() {
    let f = parse(&GgufWriter::new().to_bytes()).expect("empty GGUF parses");
    assert_eq!(
        (f.index.tensors.len(), f.metadata.len(), f.data_offset),
        (0, 0, 32)
    );
    assert_eq!(f.arch(), None);
    // A vocab-only file may end right after its infos, without padding.
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", MetaValue::Str("x".into()));
    let bytes = w.to_bytes();
    let end = 24 + 8 + 20 + 4 + 8 + 1;
    assert!(parse(&bytes[..end]).is_ok());
}

#[test]
fn non_canonical_offsets_are_accepted() {
    // Data in reverse order with gaps: llama.cpp insists on the running sum of aligned sizes,
    // sluice only on "aligned, inside the file, no overlap". Two 32-byte tensors in 64-byte
    // slots, then their offsets swapped.
    let mut w = GgufWriter::new();
    w.set_alignment(64).expect("power of two");
    w.add_tensor("a", &[8], GgmlType::F32, vec![1; 32])
        .expect("valid");
    w.add_tensor("b", &[8], GgmlType::F32, vec![2; 32])
        .expect("valid");
    let mut bytes = w.to_bytes();
    // KV "general.alignment" takes 8+17+4+4 bytes after the 24-byte preamble; each info record
    // is 8+1 (name) + 4+8 (dims) + 4 (type) + 8 (offset) = 33 bytes.
    let (a_offset_at, b_offset_at) = (24 + 33 + 25, 24 + 33 + 33 + 25);
    bytes[a_offset_at..a_offset_at + 8].copy_from_slice(&64u64.to_le_bytes());
    bytes[b_offset_at..b_offset_at + 8].copy_from_slice(&0u64.to_le_bytes());
    let f = parse(&bytes).expect("parses");
    let a = f.index.get("a").expect("a");
    let b = f.index.get("b").expect("b");
    assert_eq!(
        (a.offset - f.data_offset, b.offset - f.data_offset),
        (64, 0)
    );
    assert_eq!(bytes[a.offset as usize], 2, "a now points at b's bytes");
}

#[test]
fn zero_sized_and_scalar_tensors_parse() {
    let mut w = GgufWriter::new();
    w.add_tensor("empty", &[0, 7], GgmlType::Q4_0, vec![])
        .expect("valid");
    w.add_tensor("scalar", &[], GgmlType::F32, vec![1, 2, 3, 4])
        .expect("valid");
    let f = parse(&w.to_bytes()).expect("parses");
    assert_eq!(f.index.get("empty").map(|t| t.n_bytes), Some(0));
    assert_eq!(
        f.index.get("scalar").map(|t| (t.dims.len(), t.n_bytes)),
        Some((0, 4))
    );
}

#[test]
fn many_keys_parse_in_linear_time() {
    let mut w = GgufWriter::new();
    for i in 0..100_000u32 {
        w.add_kv(format!("k.{i}"), MetaValue::U32(i));
    }
    let f = parse(&w.to_bytes()).expect("parses");
    assert_eq!(f.metadata.len(), 100_000);
    assert_eq!(f.metadata.get_u64("k.99999"), Some(99_999));
}

#[test]
fn open_reads_a_file_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sample.gguf");
    sample_writer().write_file(&path).expect("write");
    let f = GgufFile::open(&path).expect("opens");
    assert_eq!(f.path, path);
    assert_eq!(f.index.files, vec![path.clone()]);
    assert_eq!(
        f.index.tensors,
        parse(&sample_bytes()).expect("parses").index.tensors
    );
}

#[test]
fn open_names_a_missing_file() {
    let err =
        GgufFile::open(std::path::Path::new("/nonexistent/dir/model.gguf")).expect_err("missing");
    assert!(matches!(
        err.kind,
        sluice_loader::gguf::GgufErrorKind::Io(_)
    ));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/dir/model.gguf: at byte 0: I/O error"),
        "{err}"
    );
}

/// The fuzzer's seed corpus: a few valid files. Each must parse; with `SLUICE_FUZZ_SEED_DIR`
/// set, they are also written there (`fuzz/README.md` says how).
#[test]
fn fuzz_seeds_parse_and_export() {
    let mut v2 = sample_writer();
    v2.set_version(2);
    let mut aligned = sample_writer();
    aligned.set_alignment(64).expect("power of two");
    let mut tiny = GgufWriter::new();
    tiny.set_alignment(16)
        .expect("power of two")
        .add_kv("general.architecture", MetaValue::Str("qwen2".into()))
        .add_tensor("w", &[32, 1], GgmlType::Q5_0, vec![7; 22])
        .expect("valid");
    let seeds = [
        ("sample_v3.gguf", sample_bytes()),
        ("sample_v2.gguf", v2.to_bytes()),
        ("sample_align64.gguf", aligned.to_bytes()),
        ("empty.gguf", GgufWriter::new().to_bytes()),
        ("tiny.gguf", tiny.to_bytes()),
    ];
    for (name, bytes) in &seeds {
        assert!(parse(bytes).is_ok(), "seed {name} must parse");
    }
    if let Some(dir) = std::env::var_os("SLUICE_FUZZ_SEED_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("seed dir");
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
}

//! The safetensors reader on files written in the test: a single file, a sharded directory,
//! and hostile headers (huge length, bad JSON, overlaps, bad dtype, offsets past the end).

use std::fs;
use std::path::{Path, PathBuf};

use sluice_loader::safetensors::{self, SafetensorsErrorKind as Kind};
use sluice_loader::GgmlType;

/// `(name, dtype, shape)`; data is packed in the given order, zero-filled.
type Entry<'a> = (&'a str, &'a str, &'a [u64]);

fn dtype_bytes(dtype: &str) -> u64 {
    match dtype {
        "F32" | "I32" => 4,
        "F16" | "BF16" => 2,
        _ => 1,
    }
}

/// The header JSON a well-behaved writer produces for `entries`, and the data length.
fn header_json(entries: &[Entry]) -> (String, u64) {
    let mut off = 0;
    let mut parts = vec![r#""__metadata__":{"format":"pt"}"#.to_string()];
    for (name, dtype, shape) in entries {
        let n = shape.iter().product::<u64>() * dtype_bytes(dtype);
        parts.push(format!(
            r#""{name}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{off},{}]}}"#,
            off + n
        ));
        off += n;
    }
    (format!("{{{}}}", parts.join(",")), off)
}

/// Writes a file from raw header text and a data length.
fn write_raw(path: &Path, header: &str, data_bytes: u64) {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + data_bytes as usize, 0);
    fs::write(path, bytes).expect("write");
}

fn write(path: &Path, entries: &[Entry]) {
    let (h, n) = header_json(entries);
    write_raw(path, &h, n);
}

fn kind(r: Result<sluice_loader::TensorIndex, safetensors::SafetensorsError>, file: &Path) -> Kind {
    let e = r.expect_err("should fail");
    let msg = e.to_string();
    assert!(msg.starts_with(&file.display().to_string()), "{msg}");
    e.kind
}

#[test]
fn single_file_offsets_dims_and_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("model.safetensors");
    let entries: &[Entry] = &[
        ("model.embed_tokens.weight", "BF16", &[10, 4]),
        ("model.layers.0.input_layernorm.weight", "F32", &[4]),
        ("model.layers.0.self_attn.q_proj.weight", "F16", &[4, 4]),
    ];
    write(&p, entries);
    let (h, _) = header_json(entries);
    let data_start = 8 + h.len() as u64;
    let idx = safetensors::open_file(&p).expect("open");
    assert_eq!(idx.files, vec![p.clone()]);
    let t: Vec<_> = idx
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.ty, t.dims.clone(), t.offset, t.n_bytes))
        .collect();
    assert_eq!(
        t,
        vec![
            (
                "model.embed_tokens.weight",
                GgmlType::BF16,
                vec![4, 10],
                data_start,
                80
            ),
            (
                "model.layers.0.input_layernorm.weight",
                GgmlType::F32,
                vec![4],
                data_start + 80,
                16
            ),
            (
                "model.layers.0.self_attn.q_proj.weight",
                GgmlType::F16,
                vec![4, 4],
                data_start + 96,
                32
            ),
        ]
    );
    // The same directory opens through open_dir.
    assert_eq!(
        safetensors::open_dir(dir.path())
            .expect("dir")
            .tensors
            .len(),
        3
    );
}

#[test]
fn sharded_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        &d.join("model-00001-of-00002.safetensors"),
        &[("a.weight", "F32", &[2, 3]), ("b.weight", "F16", &[8])],
    );
    write(
        &d.join("model-00002-of-00002.safetensors"),
        &[("c.weight", "BF16", &[5])],
    );
    let index = r#"{"metadata": {"total_size": 50}, "weight_map": {
        "a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00001-of-00002.safetensors",
        "c.weight": "model-00002-of-00002.safetensors"}}"#;
    fs::write(d.join("model.safetensors.index.json"), index).expect("index");
    let idx = safetensors::open_dir(d).expect("open");
    assert_eq!(idx.files.len(), 2);
    assert!(idx.files[1].ends_with("model-00002-of-00002.safetensors"));
    let c = idx.get("c.weight").expect("c");
    assert_eq!((c.file, c.dims.as_slice(), c.n_bytes), (1, &[5u64][..], 10));
    assert_eq!(idx.get("a.weight").expect("a").dims, vec![3, 2]);

    // A tensor the index places in a shard that lacks it.
    let bad = index.replace(r#""c.weight": "model-00002"#, r#""d.weight": "model-00002"#);
    let bad = bad.replace(
        "}}",
        r#", "c.weight": "model-00001-of-00002.safetensors"}}"#,
    );
    fs::write(d.join("model.safetensors.index.json"), bad).expect("index");
    let k = kind(
        safetensors::open_dir(d),
        &d.join("model-00001-of-00002.safetensors"),
    );
    assert!(
        matches!(k, Kind::MissingFromShard { ref tensor } if tensor == "c.weight"),
        "{k}"
    );

    // Escaping shard names and a missing weight_map.
    let idx_path = d.join("model.safetensors.index.json");
    fs::write(
        &idx_path,
        r#"{"weight_map": {"a.weight": "../etc/passwd"}}"#,
    )
    .expect("index");
    assert!(matches!(
        kind(safetensors::open_dir(d), &idx_path),
        Kind::BadIndex { .. }
    ));
    fs::write(&idx_path, r#"{"metadata": {}}"#).expect("index");
    assert!(matches!(
        kind(safetensors::open_dir(d), &idx_path),
        Kind::BadIndex { .. }
    ));
    fs::write(&idx_path, "not json").expect("index");
    assert!(matches!(
        kind(safetensors::open_dir(d), &idx_path),
        Kind::BadIndex { .. }
    ));
}

#[test]
fn duplicate_across_shards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(&d.join("s1.safetensors"), &[("a.weight", "F32", &[2])]);
    write(
        &d.join("s2.safetensors"),
        &[("a.weight", "F32", &[2]), ("b.weight", "F32", &[2])],
    );
    let index = r#"{"weight_map": {"a.weight": "s1.safetensors", "b.weight": "s2.safetensors"}}"#;
    fs::write(d.join("model.safetensors.index.json"), index).expect("index");
    let k = kind(safetensors::open_dir(d), &d.join("s2.safetensors"));
    assert!(matches!(k, Kind::Duplicate { .. }), "{k}");
}

#[test]
fn empty_dir_says_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = kind(safetensors::open_dir(dir.path()), dir.path());
    assert!(k.to_string().contains("model.safetensors"));
}

/// A file in a fresh temp dir: `(dir guard, path)`.
fn temp_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("x.safetensors");
    (dir, p)
}

#[test]
fn hostile_lengths() {
    let (_d, p) = temp_file();
    fs::write(&p, [1u8, 2, 3]).expect("write");
    assert!(matches!(
        kind(safetensors::open_file(&p), &p),
        Kind::TooShort { file_bytes: 3 }
    ));
    // A length past the end of the file.
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    fs::write(&p, &bytes).expect("write");
    assert!(matches!(
        kind(safetensors::open_file(&p), &p),
        Kind::HeaderTooLarge { .. }
    ));
    // A length inside a (sparse) file but over the 100 MB bound.
    let f = fs::File::create(&p).expect("create");
    f.set_len(200_000_000).expect("set_len");
    drop(f);
    let mut head = fs::OpenOptions::new().write(true).open(&p).expect("open");
    std::io::Write::write_all(&mut head, &150_000_000u64.to_le_bytes()).expect("write");
    drop(head);
    let k = kind(safetensors::open_file(&p), &p);
    assert!(
        matches!(
            k,
            Kind::HeaderTooLarge {
                limit_bytes: 100_000_000,
                ..
            }
        ),
        "{k}"
    );
}

/// `(header JSON, data bytes, what the error must be)`.
type Case = (&'static str, u64, fn(&Kind) -> bool);

#[test]
fn hostile_headers() {
    let (_d, p) = temp_file();
    let cases: &[Case] = &[
        ("{\"a\": ", 0, |k| matches!(k, Kind::BadJson { .. })),
        ("[1,2]", 0, |k| matches!(k, Kind::BadJson { .. })),
        (
            r#"{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}"#,
            2,
            |k| matches!(k, Kind::UnsupportedDtype { tensor, dtype } if tensor == "a" && dtype == "I8"),
        ),
        (
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            4,
            |k| {
                matches!(
                    k,
                    Kind::OutOfBounds {
                        end: 8,
                        data_bytes: 4,
                        ..
                    }
                )
            },
        ),
        (
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            8,
            |k| {
                matches!(
                    k,
                    Kind::SizeMismatch {
                        span_bytes: 8,
                        expected_bytes: 12,
                        ..
                    }
                )
            },
        ),
        (
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            12,
            |k| matches!(k, Kind::Overlap { first, second } if first == "a" && second == "b"),
        ),
        (
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
            8,
            |k| matches!(k, Kind::BadEntry { .. }),
        ),
        (
            r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
            8,
            |k| matches!(k, Kind::BadEntry { .. }),
        ),
        (r#"{"a":{"shape":[2],"data_offsets":[0,8]}}"#, 8, |k| {
            matches!(k, Kind::BadEntry { .. })
        }),
        (r#"{"a":[1]}"#, 8, |k| matches!(k, Kind::BadEntry { .. })),
        (
            r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#,
            8,
            |k| matches!(k, Kind::BadEntry { .. }),
        ),
    ];
    for (header, data_bytes, check) in cases {
        write_raw(&p, header, *data_bytes);
        let k = kind(safetensors::open_file(&p), &p);
        assert!(check(&k), "{header}: {k}");
    }
}

#[test]
fn zero_sized_and_scalar_tensors() {
    let (_d, p) = temp_file();
    write(
        &p,
        &[
            ("empty", "F32", &[0, 4]),
            ("scalar", "F32", &[]),
            ("v", "F16", &[3]),
        ],
    );
    let idx = safetensors::open_file(&p).expect("open");
    let s = idx.get("scalar").expect("scalar");
    assert_eq!((s.dims.len(), s.n_bytes), (0, 4));
    assert_eq!(idx.get("empty").expect("empty").n_bytes, 0);
}

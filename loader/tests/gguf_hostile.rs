//! Hostile files: each one lies in one way and must be refused with the precise error, located
//! at the right byte, without panicking or allocating what the lie asks for.

mod gguf_common;

use gguf_common::*;
use sluice_loader::gguf::{
    GgufErrorKind as K, GgufWriter, MetaArray, MetaValue, RawTensorInfo, Section,
};

const HUGE: [u64; 2] = [1 << 60, u64::MAX];

#[test]
fn bad_magic_says_what_was_found() {
    let mut bytes = sample_bytes();
    bytes[..4].copy_from_slice(b"GGML");
    let err = reject(&bytes);
    assert!(matches!(err.kind, K::BadMagic { found } if &found == b"GGML"));
    assert_eq!(err.offset, 0);
    assert!(err.to_string().contains("\"GGML\""), "{err}");
    bytes[..4].copy_from_slice(&[0x7f, b'E', b'L', b'F']);
    assert!(reject(&bytes).to_string().contains("7f 45 4c 46"));
}

#[test]
fn unsupported_versions_are_refused() {
    for version in [0u32, 1, 4, 0xFFFF] {
        let mut bytes = sample_bytes();
        patch_u32(&mut bytes, 4, version);
        let err = reject(&bytes);
        assert!(
            matches!(err.kind, K::UnsupportedVersion { version: v } if v == version),
            "{err}"
        );
        assert_eq!(err.offset, 4);
        assert!(
            err.to_string()
                .contains(&format!("unsupported GGUF version {version}")),
            "{err}"
        );
    }
}

#[test]
fn big_endian_files_are_detected() {
    let mut bytes = sample_bytes();
    bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
    let err = reject(&bytes);
    assert!(
        matches!(
            err.kind,
            K::BigEndian {
                version: 0x0300_0000
            }
        ),
        "{err}"
    );
    assert_eq!(err.offset, 4);
    assert!(
        err.to_string().contains("big-endian GGUF is not supported"),
        "{err}"
    );
}

#[test]
fn huge_tensor_and_kv_counts_fail_before_allocating() {
    for huge in HUGE {
        let mut bytes = sample_bytes();
        patch_u64(&mut bytes, 8, huge);
        let err = reject(&bytes);
        assert!(
            matches!(err.kind, K::CountTooLarge { what: "tensor", count, .. } if count == huge),
            "{err}"
        );
        assert_eq!(err.offset, 8);
        let mut bytes = sample_bytes();
        patch_u64(&mut bytes, 16, huge);
        let err = reject(&bytes);
        assert!(
            matches!(err.kind, K::CountTooLarge { what: "kv", count, .. } if count == huge),
            "{err}"
        );
        assert_eq!(err.offset, 16);
    }
    // A 1 KiB file claiming 2^60 tensors: the bound is what 1000 bytes can hold.
    let mut bytes = vec![0u8; 1024];
    bytes[..4].copy_from_slice(b"GGUF");
    patch_u32(&mut bytes, 4, 3);
    patch_u64(&mut bytes, 8, 1 << 60);
    let err = reject(&bytes);
    assert!(
        matches!(
            err.kind,
            K::CountTooLarge {
                max: 41,
                remaining_bytes: 1000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn huge_string_lengths_fail_before_allocating() {
    for huge in HUGE {
        // The first key's length (offset 24).
        let mut bytes = sample_bytes();
        patch_u64(&mut bytes, 24, huge);
        let err = reject(&bytes);
        assert!(
            matches!(&err.kind, K::Truncated { section: Section::KvKey { index: 0, .. }, needed_bytes, .. } if *needed_bytes == huge),
            "{err}"
        );
        assert_eq!(err.offset, 32);
        // The first value's length: key "general.architecture" (20 bytes), then the type id.
        let mut bytes = sample_bytes();
        patch_u64(&mut bytes, 56, huge);
        let err = reject(&bytes);
        assert!(
            matches!(&err.kind, K::Truncated { section: Section::KvValue { key, .. }, .. } if key == "general.architecture"),
            "{err}"
        );
    }
}

#[test]
fn huge_array_lengths_fail_before_allocating() {
    let arrays = [
        MetaArray::Str(vec!["x".into(), "y".into()]),
        MetaArray::U8(vec![1, 2]),
        MetaArray::F64(vec![1.0]),
    ];
    for array in arrays {
        for huge in HUGE {
            // key "a": length @24, bytes @32, value type @33, element type @37, count @41.
            let mut bytes = one_kv("a", MetaValue::Array(array.clone())).to_bytes();
            patch_u64(&mut bytes, 41, huge);
            let err = reject(&bytes);
            assert!(
                matches!(err.kind, K::CountTooLarge { what: "array element", count, .. } if count == huge),
                "{err}"
            );
            assert_eq!(err.offset, 41);
        }
    }
}

#[test]
fn bad_alignments_are_refused() {
    // key "general.alignment" (17 bytes): the value's type id is at 24 + 8 + 17 = 49.
    for value in [0u32, 3, 48] {
        let err = reject(&one_kv("general.alignment", MetaValue::U32(value)).to_bytes());
        assert!(
            matches!(err.kind, K::AlignmentValue { value: v } if v == value),
            "{err}"
        );
        assert_eq!(err.offset, 49);
    }
    for (value, found) in [
        (MetaValue::U64(32), "u64"),
        (MetaValue::I32(32), "i32"),
        (MetaValue::Str("32".into()), "string"),
    ] {
        let err = reject(&one_kv("general.alignment", value).to_bytes());
        assert!(
            matches!(err.kind, K::AlignmentType { found: f } if f == found),
            "{err}"
        );
    }
}

#[test]
fn nested_arrays_are_refused() {
    let mut payload = 9u32.to_le_bytes().to_vec(); // elements are arrays
    payload.extend_from_slice(&1u64.to_le_bytes());
    payload.extend_from_slice(&4u32.to_le_bytes()); // inner: one u32
    payload.extend_from_slice(&1u64.to_le_bytes());
    payload.extend_from_slice(&7u32.to_le_bytes());
    let mut w = GgufWriter::new();
    w.add_raw_kv("nest", 9, payload);
    let err = reject(&w.to_bytes());
    assert!(
        matches!(&err.kind, K::NestedArray { section: Section::KvValue { key, .. } } if key == "nest"),
        "{err}"
    );
    assert_eq!(err.offset, 24 + 8 + 4 + 4);
}

#[test]
fn unknown_value_types_are_refused() {
    let mut w = GgufWriter::new();
    w.add_raw_kv("k", 13, vec![0; 8]);
    let err = reject(&w.to_bytes());
    assert!(
        matches!(err.kind, K::UnknownValueType { id: 13, .. }),
        "{err}"
    );
    let mut w = GgufWriter::new();
    w.add_raw_kv(
        "k",
        9,
        [200u32.to_le_bytes().as_slice(), &0u64.to_le_bytes()].concat(),
    );
    assert!(matches!(
        reject(&w.to_bytes()).kind,
        K::UnknownValueType { id: 200, .. }
    ));
}

#[test]
fn duplicate_keys_are_refused() {
    let mut w = GgufWriter::new();
    w.add_kv("a", MetaValue::U8(1))
        .add_kv("a", MetaValue::U8(2));
    let err = reject(&w.to_bytes());
    assert!(
        matches!(&err.kind, K::DuplicateKey { key } if key == "a"),
        "{err}"
    );
    assert_eq!(err.offset, 24 + 8 + 1 + 4 + 1);
}

#[test]
fn invalid_utf8_is_refused_wherever_it_appears() {
    let mut w = GgufWriter::new();
    w.add_raw_kv(vec![0xff, 0xfe], 0, vec![1]);
    let err = reject(&w.to_bytes());
    assert!(
        matches!(
            err.kind,
            K::InvalidUtf8 {
                section: Section::KvKey { index: 0, count: 1 }
            }
        ),
        "{err}"
    );
    assert_eq!(err.offset, 32);
    let mut w = GgufWriter::new();
    w.add_raw_kv(
        "s",
        8,
        [2u64.to_le_bytes().as_slice(), &[0xc3, 0x28]].concat(),
    );
    assert!(matches!(
        reject(&w.to_bytes()).kind,
        K::InvalidUtf8 {
            section: Section::KvValue { .. }
        }
    ));
    let bad_name = RawTensorInfo {
        name: vec![b'w', 0x80],
        dims: vec![8],
        type_id: 0,
        offset: 0,
    };
    let err = reject(&with_infos(&[bad_name]));
    assert!(
        matches!(
            err.kind,
            K::InvalidUtf8 {
                section: Section::TensorInfo { index: 0, count: 1 }
            }
        ),
        "{err}"
    );
}

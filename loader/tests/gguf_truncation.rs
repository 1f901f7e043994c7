//! Truncated files: every cut, at any byte of the header or the data, is an error that says
//! "truncated" in the header and names the section being read.

mod gguf_common;

use gguf_common::*;
use sluice_loader::gguf::{GgufErrorKind as K, MetaValue, Section};

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample_bytes();
    let full = parse(&bytes).expect("sample parses");
    let data_end = full
        .index
        .tensors
        .iter()
        .map(|t| t.end())
        .max()
        .expect("tensors") as usize;
    for len in 0..data_end {
        let err = reject(&bytes[..len]);
        assert!(err.offset <= len as u64, "len {len}: {err}");
        if (len as u64) < full.data_offset {
            assert!(err.to_string().contains("truncated"), "len {len}: {err}");
        } else {
            assert!(
                matches!(err.kind, K::TensorOutOfFile { .. }),
                "len {len}: {err}"
            );
        }
    }
    // Past the last tensor's bytes only its padding is left: not needed, still valid.
    for len in data_end..=bytes.len() {
        assert!(parse(&bytes[..len]).is_ok(), "len {len}");
    }
}

#[test]
fn truncation_names_the_section() {
    let bytes = sample_bytes();
    let full = parse(&bytes).expect("sample parses");
    // D - 32 lies in the last 32 bytes of the infos: inside the last record (53 bytes long).
    let err = reject(&bytes[..full.data_offset as usize - 32]);
    assert!(
        err.to_string()
            .contains("truncated while reading tensor info 3 of 4"),
        "{err}"
    );
    // Cut 5 bytes into a 16-byte key: the 13 bytes left could hold a KV pair, not this key.
    let short = one_kv("abcdefghijklmnop", MetaValue::U8(1)).to_bytes();
    let err = reject(&short[..37]);
    let section = Section::KvKey { index: 0, count: 1 };
    assert!(
        matches!(&err.kind, K::Truncated { section: s, needed_bytes: 16, remaining_bytes: 5 } if *s == section),
        "{err}"
    );
    assert_eq!(err.offset, 32);
    // Cut in the first key of the sample: the count bound speaks first, and says so.
    let err = reject(&bytes[..30]);
    assert!(
        matches!(
            err.kind,
            K::CountTooLarge {
                what: "tensor",
                count: 4,
                max: 0,
                ..
            }
        ),
        "{err}"
    );
    let err = reject(&bytes[..2]);
    assert!(matches!(
        err.kind,
        K::Truncated {
            section: Section::Magic,
            needed_bytes: 4,
            remaining_bytes: 2
        }
    ));
}

#[test]
fn stream_shorter_than_declared_size_is_truncated() {
    let bytes = sample_bytes();
    let cut = &bytes[..100];
    let err = sluice_loader::gguf::GgufFile::parse(
        std::io::Cursor::new(cut),
        bytes.len() as u64,
        std::path::Path::new(FIXTURE_PATH),
    )
    .expect_err("short stream");
    assert!(matches!(err.kind, K::Truncated { .. }), "{err}");
}

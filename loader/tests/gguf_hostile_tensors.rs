//! Hostile tensor infos: each file lies about one tensor and must be refused with the precise
//! error, located at the right byte, without allocating what the lie asks for.

mod gguf_common;

use gguf_common::*;
use sluice_loader::gguf::{GgufErrorKind as K, GgufWriter};
use sluice_loader::GgmlType;

const HUGE: [u64; 2] = [1 << 60, u64::MAX];

#[test]
fn too_many_dims_are_refused() {
    let err = reject(&with_infos(&[info("t", &[1, 1, 1, 1, 1], 0, 0)]));
    assert!(
        matches!(
            err.kind,
            K::TooManyDims {
                n_dims: 5,
                max_dims: 4,
                ..
            }
        ),
        "{err}"
    );
    // n_dims = u32::MAX must not allocate 4 billion dims: offset of n_dims is 24 + 8 + 1.
    let mut bytes = with_infos(&[info("t", &[32], 0, 0)]);
    patch_u32(&mut bytes, 33, u32::MAX);
    let err = reject(&bytes);
    assert!(
        matches!(
            err.kind,
            K::TooManyDims {
                n_dims: u32::MAX,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.offset, 33);
}

#[test]
fn element_and_byte_count_overflows_are_refused() {
    let err = reject(&with_infos(&[info("t", &[1 << 32, 1 << 32], 0, 0)]));
    assert!(matches!(err.kind, K::ElementCountOverflow { .. }), "{err}");
    let err = reject(&with_infos(&[info("t", &[1 << 62, 2], 0, 0)]));
    assert!(matches!(err.kind, K::ElementCountOverflow { .. }), "{err}");
    let err = reject(&with_infos(&[info("t", &[32, u64::MAX], 0, 0)]));
    assert!(
        matches!(
            err.kind,
            K::DimOutOfRange {
                axis: 1,
                value: u64::MAX,
                ..
            }
        ),
        "{err}"
    );
    let err = reject(&with_infos(&[info("t", &[1 << 31, 1 << 31], 0, 0)]));
    assert!(matches!(err.kind, K::ByteSizeOverflow { .. }), "{err}");
}

#[test]
fn rows_must_be_whole_blocks() {
    let err = reject(&with_infos(&[info("t", &[33, 2], GgmlType::Q4_0.id(), 0)]));
    assert!(
        matches!(
            err.kind,
            K::RowNotWholeBlocks {
                ne0: 33,
                ty: GgmlType::Q4_0,
                block_elems: 32,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn tensors_outside_the_file_are_refused() {
    for offset in [1 << 40, u64::MAX - 31, 0] {
        // Offset 0 with 1 MiB of f32: also outside.
        let dims: &[u64] = if offset == 0 { &[1 << 18] } else { &[8] };
        let err = reject(&with_infos(&[info("far", dims, 0, offset)]));
        assert!(
            matches!(&err.kind, K::TensorOutOfFile { name, .. } if name == "far"),
            "{err}"
        );
        assert_eq!(err.offset, 24, "located at the tensor info record");
    }
}

#[test]
fn overlapping_tensors_are_refused() {
    // A second view of token_embd's bytes, and one starting in their middle.
    for (dims, ty, offset) in [
        ([64u64, 4], GgmlType::Q8_0, 0u64),
        ([64, 1], GgmlType::F32, 64),
    ] {
        let mut w = sample_writer();
        w.add_raw_tensor_info(info("alias", &dims, ty.id(), offset));
        let err = reject(&w.to_bytes());
        assert!(
            matches!(&err.kind, K::TensorsOverlap { name, other, .. } if name == "alias" && other == "token_embd.weight"),
            "{err}"
        );
    }
}

#[test]
fn misaligned_offsets_are_refused() {
    let err = reject(&with_infos(&[info("t", &[8], 0, 16)]));
    assert!(
        matches!(
            err.kind,
            K::MisalignedOffset {
                offset: 16,
                alignment: 32,
                ..
            }
        ),
        "{err}"
    );
    // name "t": record at 24, n_dims @33, dim @37, type @45, offset @49.
    assert_eq!(err.offset, 49);
}

#[test]
fn unknown_and_activation_types_are_refused() {
    for id in [4u32, 31, 99] {
        let err = reject(&with_infos(&[info("t", &[32], id, 0)]));
        assert!(
            matches!(err.kind, K::UnknownTensorType { id: got, .. } if got == id),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("type id {id}")), "{err}");
        assert_eq!(err.offset, 45);
    }
    let err = reject(&with_infos(&[info("t", &[32], 16, 0)]));
    assert!(err.to_string().contains("IQ2_XXS"), "{err}");
    for ty in [GgmlType::Q8_1, GgmlType::Q8K] {
        let err = reject(&with_infos(&[info("t", &[256], ty.id(), 0)]));
        assert!(
            matches!(err.kind, K::ActivationOnlyType { ty: got, .. } if got == ty),
            "{err}"
        );
    }
}

#[test]
fn tensor_names_over_63_bytes_are_refused() {
    let ok = "n".repeat(63);
    assert!(
        parse(&with_infos(&[info(&ok, &[8], 0, 0)])).is_err(),
        "no data: out of file"
    );
    let mut w = GgufWriter::new();
    w.add_tensor(ok.clone(), &[8], GgmlType::F32, vec![0; 32])
        .expect("valid");
    assert!(parse(&w.to_bytes()).is_ok(), "63 bytes is the limit");
    let long = "n".repeat(64);
    let err = reject(&with_infos(&[info(&long, &[8], 0, 0)]));
    assert!(
        matches!(
            err.kind,
            K::TensorNameTooLong {
                len_bytes: 64,
                max_bytes: 63
            }
        ),
        "{err}"
    );
    for huge in HUGE {
        let mut bytes = with_infos(&[info("t", &[8], 0, 0)]);
        patch_u64(&mut bytes, 24, huge);
        assert!(
            matches!(reject(&bytes).kind, K::TensorNameTooLong { len_bytes, .. } if len_bytes == huge)
        );
    }
}
#[test]
fn duplicate_tensor_names_are_refused() {
    let err = reject(&with_infos(&[
        info("t", &[8], 0, 0),
        info("t", &[8], 0, 32),
    ]));
    assert!(
        matches!(&err.kind, K::DuplicateTensor { name } if name == "t"),
        "{err}"
    );
}

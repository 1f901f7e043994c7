//! Reads tensor info records and checks each one on its own: name, dims, type, size, alignment.
//!
//! Placement in the file (inside it, no overlaps) needs the data-section start and is checked
//! afterwards in `layout`.

use std::collections::HashSet;
use std::io::Read;

use super::cursor::BoundedReader;
use super::error::{Fault, GgufErrorKind, ParseResult, Section};
use super::limits::{MAX_DIMS, MAX_TENSOR_NAME_BYTES};
use crate::ggml_type::GgmlType;
use crate::tensor::TensorInfo;

/// A tensor info as read: `info.offset` is still relative to the data section.
pub(crate) struct ParsedTensor {
    /// The tensor, with a data-relative offset.
    pub info: TensorInfo,
    /// Absolute offset of its info record, for error messages.
    pub info_at: u64,
}

/// Reads `count` tensor infos (the count was already bounded by the bytes left).
pub(crate) fn read_tensor_infos<R: Read>(
    r: &mut BoundedReader<R>,
    count: u64,
    alignment: u64,
) -> ParseResult<Vec<ParsedTensor>> {
    let capacity = usize::try_from(count).unwrap_or(0);
    let mut tensors = Vec::with_capacity(capacity);
    let mut names = HashSet::with_capacity(capacity);
    for index in 0..count {
        r.set_section(Section::TensorInfo { index, count });
        let t = read_one(r, alignment)?;
        if !names.insert(t.info.name.clone()) {
            let name = t.info.name;
            return Err(Fault::at(
                t.info_at,
                GgufErrorKind::DuplicateTensor { name },
            ));
        }
        tensors.push(t);
    }
    Ok(tensors)
}

/// Reads and checks one record: name, n_dims, dims (ne0 first), type id, relative offset.
fn read_one<R: Read>(r: &mut BoundedReader<R>, alignment: u64) -> ParseResult<ParsedTensor> {
    let info_at = r.pos();
    let name_len = r.u64()?;
    if name_len > MAX_TENSOR_NAME_BYTES {
        let kind = GgufErrorKind::TensorNameTooLong {
            len_bytes: name_len,
            max_bytes: MAX_TENSOR_NAME_BYTES,
        };
        return Err(Fault::at(info_at, kind));
    }
    let name = r.string_body(name_len)?;
    let dims_at = r.pos();
    let n_dims = r.u32()?;
    if n_dims > MAX_DIMS {
        let kind = GgufErrorKind::TooManyDims {
            name,
            n_dims,
            max_dims: MAX_DIMS,
        };
        return Err(Fault::at(dims_at, kind));
    }
    let mut dims = Vec::with_capacity(MAX_DIMS as usize);
    for _ in 0..n_dims {
        dims.push(r.u64()?);
    }
    let type_at = r.pos();
    let type_id = r.u32()?;
    let offset_at = r.pos();
    let offset = r.u64()?;
    let ty = weight_type(&name, type_id).map_err(|kind| Fault::at(type_at, kind))?;
    let n_bytes = data_bytes(&name, &dims, ty).map_err(|kind| Fault::at(dims_at, kind))?;
    if offset % alignment != 0 {
        let kind = GgufErrorKind::MisalignedOffset {
            name,
            offset,
            alignment,
        };
        return Err(Fault::at(offset_at, kind));
    }
    Ok(ParsedTensor {
        info: TensorInfo {
            name,
            dims,
            ty,
            file: 0,
            offset,
            n_bytes,
        },
        info_at,
    })
}

/// The type for a stored id, if it is one sluice reads and one that model files may hold.
fn weight_type(name: &str, id: u32) -> Result<GgmlType, GgufErrorKind> {
    let name = name.to_string();
    let ty = GgmlType::from_id(id).ok_or_else(|| GgufErrorKind::UnknownTensorType {
        name: name.clone(),
        id,
    })?;
    if !ty.is_weight_type() {
        return Err(GgufErrorKind::ActivationOnlyType { name, ty });
    }
    Ok(ty)
}

/// Exact data size: dims in ggml's i64 range, element count without overflow, whole blocks
/// per row, then `row_bytes(ne0) * rows`.
fn data_bytes(name: &str, dims: &[u64], ty: GgmlType) -> Result<u64, GgufErrorKind> {
    let i64_max = i64::MAX as u64;
    if let Some((axis, &value)) = dims.iter().enumerate().find(|(_, &d)| d > i64_max) {
        return Err(GgufErrorKind::DimOutOfRange {
            name: name.to_string(),
            axis,
            value,
        });
    }
    let n_elems = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64_max)
        .ok_or_else(|| GgufErrorKind::ElementCountOverflow {
            name: name.to_string(),
            dims: dims.to_vec(),
        })?;
    let ne0 = dims.first().copied().unwrap_or(1);
    let block_elems = ty.block_elems() as u64;
    if ne0 % block_elems != 0 {
        return Err(GgufErrorKind::RowNotWholeBlocks {
            name: name.to_string(),
            ne0,
            ty,
            block_elems,
        });
    }
    if n_elems == 0 {
        return Ok(0);
    }
    let n_rows = n_elems / ne0;
    ty.row_bytes(ne0)
        .and_then(|row| row.checked_mul(n_rows))
        .ok_or_else(|| GgufErrorKind::ByteSizeOverflow {
            name: name.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_bytes_uses_whole_blocks() {
        assert_eq!(
            data_bytes("t", &[576, 49152], GgmlType::Q8_0).ok(),
            Some(30_081_024)
        );
        assert_eq!(data_bytes("t", &[576], GgmlType::F32).ok(), Some(2304));
        assert_eq!(data_bytes("t", &[], GgmlType::F32).ok(), Some(4));
        assert_eq!(
            data_bytes("t", &[0, 1 << 40, 1 << 40], GgmlType::F32).ok(),
            Some(0)
        );
        assert!(matches!(
            data_bytes("t", &[33], GgmlType::Q4_0),
            Err(GgufErrorKind::RowNotWholeBlocks {
                ne0: 33,
                block_elems: 32,
                ..
            })
        ));
    }

    #[test]
    fn data_bytes_rejects_overflow_and_negative_dims() {
        assert!(matches!(
            data_bytes("t", &[1 << 32, 1 << 32], GgmlType::F32),
            Err(GgufErrorKind::ElementCountOverflow { .. })
        ));
        assert!(matches!(
            data_bytes("t", &[32, u64::MAX], GgmlType::F32),
            Err(GgufErrorKind::DimOutOfRange { axis: 1, .. })
        ));
        // 2^62 f32 elements fit i64 but their 2^64 bytes do not fit u64.
        assert!(matches!(
            data_bytes("t", &[1 << 31, 1 << 31], GgmlType::F32),
            Err(GgufErrorKind::ByteSizeOverflow { .. })
        ));
    }

    #[test]
    fn activation_types_are_refused() {
        assert!(matches!(
            weight_type("t", 9),
            Err(GgufErrorKind::ActivationOnlyType { .. })
        ));
        assert!(matches!(
            weight_type("t", 15),
            Err(GgufErrorKind::ActivationOnlyType { .. })
        ));
        assert!(matches!(
            weight_type("t", 4),
            Err(GgufErrorKind::UnknownTensorType { id: 4, .. })
        ));
        assert_eq!(weight_type("t", 12).ok(), Some(GgmlType::Q4K));
    }
}

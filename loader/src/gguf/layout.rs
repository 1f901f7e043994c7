//! The data section: alignment, its start D, and where each tensor lands in the file.
//!
//! llama.cpp also requires each offset to be exactly the running sum of aligned sizes; sluice
//! does not (other writers exist). It requires only that every tensor lies inside the file and
//! that no two tensors share a byte.

use super::error::{Fault, GgufErrorKind, ParseResult};
use super::tensors::ParsedTensor;
use super::value::MetaValue;
use crate::tensor::TensorInfo;

/// `x` rounded up to a multiple of `alignment` (a power of two), or `None` on overflow.
pub fn align_up(x: u64, alignment: u64) -> Option<u64> {
    let mask = alignment.checked_sub(1)?;
    x.checked_add(mask).map(|v| v & !mask)
}

/// The alignment a `general.alignment` value sets: a u32, nonzero, a power of two.
pub(crate) fn alignment_from(value: &MetaValue) -> Result<u64, GgufErrorKind> {
    match *value {
        MetaValue::U32(v) if v.is_power_of_two() => Ok(u64::from(v)),
        MetaValue::U32(v) => Err(GgufErrorKind::AlignmentValue { value: v }),
        ref other => Err(GgufErrorKind::AlignmentType {
            found: other.type_name(),
        }),
    }
}

/// Turns data-relative offsets into absolute ones; every tensor must end inside the file.
pub(crate) fn place_tensors(
    parsed: Vec<ParsedTensor>,
    data_offset: u64,
    file_size: u64,
) -> ParseResult<Vec<TensorInfo>> {
    let mut placed = Vec::with_capacity(parsed.len());
    let mut info_at = Vec::with_capacity(parsed.len());
    for ParsedTensor {
        mut info,
        info_at: at,
    } in parsed
    {
        let start = data_offset.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(info.n_bytes));
        let Some(start_abs) = start.filter(|_| end.is_some_and(|e| e <= file_size)) else {
            let kind = GgufErrorKind::TensorOutOfFile {
                name: info.name,
                offset: info.offset,
                n_bytes: info.n_bytes,
                data_offset,
                file_size,
            };
            return Err(Fault::at(at, kind));
        };
        info.offset = start_abs;
        placed.push(info);
        info_at.push(at);
    }
    check_no_overlap(&placed, &info_at)?;
    Ok(placed)
}

/// Sorts the non-empty tensors by start; with sorted starts, any overlap shows between
/// neighbours. Reported at the info record of the later tensor.
fn check_no_overlap(tensors: &[TensorInfo], info_at: &[u64]) -> ParseResult<()> {
    let mut order: Vec<(&TensorInfo, u64)> = tensors
        .iter()
        .zip(info_at.iter().copied())
        .filter(|(t, _)| t.n_bytes > 0)
        .collect();
    order.sort_unstable_by_key(|(t, _)| (t.offset, t.n_bytes));
    for pair in order.windows(2) {
        let [(a, _), (b, b_at)] = pair else {
            continue;
        };
        // Both lie inside the file, so offset + n_bytes cannot overflow.
        let a_end = a.offset + a.n_bytes;
        if b.offset < a_end {
            let kind = GgufErrorKind::TensorsOverlap {
                name: b.name.clone(),
                start: b.offset,
                end: b.offset + b.n_bytes,
                other: a.name.clone(),
                other_start: a.offset,
                other_end: a_end,
            };
            return Err(Fault::at(*b_at, kind));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_up_rounds_to_power_of_two() {
        assert_eq!(align_up(0, 32), Some(0));
        assert_eq!(align_up(1, 32), Some(32));
        assert_eq!(align_up(64, 32), Some(64));
        assert_eq!(align_up(u64::MAX, 32), None);
        assert_eq!(align_up(5, 0), None);
    }

    #[test]
    fn alignment_must_be_u32_power_of_two() {
        assert_eq!(alignment_from(&MetaValue::U32(64)).ok(), Some(64));
        assert!(matches!(
            alignment_from(&MetaValue::U32(0)),
            Err(GgufErrorKind::AlignmentValue { value: 0 })
        ));
        assert!(matches!(
            alignment_from(&MetaValue::U32(3)),
            Err(GgufErrorKind::AlignmentValue { value: 3 })
        ));
        assert!(matches!(
            alignment_from(&MetaValue::U64(32)),
            Err(GgufErrorKind::AlignmentType { found: "u64" })
        ));
    }
}

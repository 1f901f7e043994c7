//! One safetensors file's header: `u64` LE length N, N bytes of JSON, then the data section
//! (gguf-facts.md §8). Every entry is validated before it becomes a [`TensorInfo`].

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

use super::error::{SafetensorsError, SafetensorsErrorKind as Kind};
use crate::ggml_type::GgmlType;
use crate::tensor::TensorInfo;

/// Largest header sluice parses (the reference implementation's bound, too).
pub const HEADER_BYTES_MAX: u64 = 100_000_000;
/// Bytes of the little-endian header length that opens every file.
const LEN_PREFIX_BYTES: u64 = 8;

/// Reads and validates the header of the file at `path`; tensors get `file` as their file
/// index and absolute offsets, and come back sorted by offset.
pub fn read_header(path: &Path, file: usize) -> Result<Vec<TensorInfo>, SafetensorsError> {
    let err = |kind| SafetensorsError {
        path: path.to_path_buf(),
        kind,
    };
    let mut f = File::open(path).map_err(|e| err(Kind::Io(e)))?;
    let file_bytes = f.metadata().map_err(|e| err(Kind::Io(e)))?.len();
    if file_bytes < LEN_PREFIX_BYTES {
        return Err(err(Kind::TooShort { file_bytes }));
    }
    let mut prefix = [0u8; LEN_PREFIX_BYTES as usize];
    f.read_exact(&mut prefix).map_err(|e| err(Kind::Io(e)))?;
    let header_bytes = u64::from_le_bytes(prefix);
    let room_bytes = file_bytes - LEN_PREFIX_BYTES;
    if header_bytes > room_bytes {
        let why = "the file is shorter";
        return Err(err(Kind::HeaderTooLarge {
            header_bytes,
            limit_bytes: room_bytes,
            why,
        }));
    }
    if header_bytes > HEADER_BYTES_MAX {
        let why = "sluice's limit";
        return Err(err(Kind::HeaderTooLarge {
            header_bytes,
            limit_bytes: HEADER_BYTES_MAX,
            why,
        }));
    }
    let mut json = vec![0u8; header_bytes as usize];
    f.read_exact(&mut json).map_err(|e| err(Kind::Io(e)))?;
    let data_start = LEN_PREFIX_BYTES + header_bytes;
    parse_header(&json, data_start, file_bytes - data_start, file).map_err(err)
}

/// Parses header JSON whose data section starts at absolute `data_start` and holds `data_bytes`.
pub fn parse_header(
    json: &[u8],
    data_start: u64,
    data_bytes: u64,
    file: usize,
) -> Result<Vec<TensorInfo>, Kind> {
    let value: Value = serde_json::from_slice(json).map_err(|e| Kind::BadJson {
        detail: e.to_string(),
    })?;
    let Value::Object(entries) = value else {
        return Err(Kind::BadJson {
            detail: "the top level is not an object".into(),
        });
    };
    let mut spans = Vec::with_capacity(entries.len());
    for (name, entry) in &entries {
        if name == "__metadata__" {
            continue;
        }
        spans.push(parse_entry(name, entry, data_bytes)?);
    }
    spans.sort_by_key(|s| (s.begin, s.end));
    for pair in spans.windows(2) {
        if pair[1].begin < pair[0].end {
            let (first, second) = (pair[0].info.name.clone(), pair[1].info.name.clone());
            return Err(Kind::Overlap { first, second });
        }
    }
    Ok(spans
        .into_iter()
        .map(|s| TensorInfo {
            file,
            offset: data_start + s.begin,
            ..s.info
        })
        .collect())
}

/// A validated entry: its info (offset still unset) and its span in the data section.
struct Span {
    info: TensorInfo,
    begin: u64,
    end: u64,
}

fn parse_entry(name: &str, entry: &Value, data_bytes: u64) -> Result<Span, Kind> {
    let bad = |problem: &str| Kind::BadEntry {
        tensor: name.into(),
        problem: problem.into(),
    };
    let obj: &Map<String, Value> = entry
        .as_object()
        .ok_or_else(|| bad("is not a JSON object"))?;
    let dtype = obj
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("has no dtype string"))?;
    let ty = match dtype {
        "F32" => GgmlType::F32,
        "F16" => GgmlType::F16,
        "BF16" => GgmlType::BF16,
        _ => {
            return Err(Kind::UnsupportedDtype {
                tensor: name.into(),
                dtype: dtype.into(),
            })
        }
    };
    let shape =
        u64_list(obj.get("shape")).ok_or_else(|| bad("has no shape of non-negative integers"))?;
    let (begin, end) = match u64_list(obj.get("data_offsets")).as_deref() {
        Some(&[begin, end]) if begin <= end => (begin, end),
        _ => return Err(bad("has no data_offsets [begin, end] with begin <= end")),
    };
    if end > data_bytes {
        return Err(Kind::OutOfBounds {
            tensor: name.into(),
            end,
            data_bytes,
        });
    }
    let too_big = || bad("has a shape whose byte size overflows 64 bits");
    let n_elems = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(too_big)?;
    let expected_bytes = n_elems
        .checked_mul(ty.block_bytes() as u64)
        .ok_or_else(too_big)?;
    if end - begin != expected_bytes {
        return Err(Kind::SizeMismatch {
            tensor: name.into(),
            span_bytes: end - begin,
            expected_bytes,
        });
    }
    let dims = shape.into_iter().rev().collect();
    let info = TensorInfo {
        name: name.into(),
        dims,
        ty,
        file: 0,
        offset: 0,
        n_bytes: expected_bytes,
    };
    Ok(Span { info, begin, end })
}

/// A JSON array of non-negative integers.
fn u64_list(v: Option<&Value>) -> Option<Vec<u64>> {
    v?.as_array()?.iter().map(Value::as_u64).collect()
}

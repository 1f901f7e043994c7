//! A minimal GGUF writer: builds valid fixture files for tests, and, through the `raw` methods,
//! files that lie in exactly one chosen way.
//!
//! Layout as gguf-py writes it: preamble, KV pairs, tensor infos, zero padding to the alignment,
//! then each tensor's bytes padded to the alignment (the last one too). Offsets are the running
//! sum of aligned sizes. The whole file is built in memory: fixtures are small.

use std::io::{self, Write};
use std::path::Path;

use super::encode::{put_str, put_tensor_info, put_u32, put_u64, put_value};
use super::layout::align_up;
use super::limits::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, DEFAULT_VERSION, GGUF_MAGIC};
use super::value::MetaValue;
use super::value_type::ValueType;
use crate::ggml_type::GgmlType;

/// A tensor info written verbatim and without data, for files that lie about their tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawTensorInfo {
    /// Name bytes (need not be UTF-8 or short).
    pub name: Vec<u8>,
    /// Dims, ne0 first, any count.
    pub dims: Vec<u64>,
    /// ggml type id, any value.
    pub type_id: u32,
    /// Offset relative to the data section, any value.
    pub offset: u64,
}

/// What the writer refuses: arguments that cannot describe a valid tensor or layout.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Data alignment zero or not a power of two.
    #[error("alignment {0} is not a nonzero power of two")]
    BadAlignment(u32),
    /// Dims that are not a whole number of blocks per row, or overflow.
    #[error("tensor '{name}': dims {dims:?} are not a valid {ty} shape")]
    BadShape {
        name: String,
        dims: Vec<u64>,
        ty: GgmlType,
    },
    /// Data whose length does not match the dims and type.
    #[error("tensor '{name}': {got_bytes} data bytes given, {expected_bytes} expected")]
    DataSize {
        name: String,
        expected_bytes: u64,
        got_bytes: u64,
    },
    /// Writing the file failed.
    #[error("writing GGUF: {0}")]
    Io(#[from] io::Error),
}

/// One KV pair to write.
#[derive(Clone, Debug)]
enum KvEntry {
    Value {
        key: String,
        value: MetaValue,
    },
    Raw {
        key: Vec<u8>,
        type_id: u32,
        payload: Vec<u8>,
    },
}

/// One tensor to write.
#[derive(Clone, Debug)]
enum TensorEntry {
    Data {
        name: String,
        dims: Vec<u64>,
        ty: GgmlType,
        data: Vec<u8>,
    },
    Raw(RawTensorInfo),
}

/// Builds a GGUF file in memory.
#[derive(Clone, Debug)]
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    kvs: Vec<KvEntry>,
    tensors: Vec<TensorEntry>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter {
            version: DEFAULT_VERSION,
            alignment: DEFAULT_ALIGNMENT,
            kvs: vec![],
            tensors: vec![],
        }
    }
}

impl GgufWriter {
    /// A v3 writer with the default alignment (32) and no `general.alignment` key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the version field (any value, so tests can write unsupported ones).
    pub fn set_version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Aligns the data section to `alignment` and records it as `general.alignment` (u32).
    pub fn set_alignment(&mut self, alignment: u32) -> Result<&mut Self, WriteError> {
        if !alignment.is_power_of_two() {
            return Err(WriteError::BadAlignment(alignment));
        }
        self.alignment = u64::from(alignment);
        self.kvs
            .retain(|kv| !matches!(kv, KvEntry::Value { key, .. } if key == ALIGNMENT_KEY));
        Ok(self.add_kv(ALIGNMENT_KEY, MetaValue::U32(alignment)))
    }

    /// Appends a KV pair (duplicates are written as given).
    pub fn add_kv(&mut self, key: impl Into<String>, value: MetaValue) -> &mut Self {
        self.kvs.push(KvEntry::Value {
            key: key.into(),
            value,
        });
        self
    }

    /// Appends a KV pair from raw parts: key bytes, value type id, encoded value bytes.
    pub fn add_raw_kv(
        &mut self,
        key: impl Into<Vec<u8>>,
        type_id: u32,
        payload: Vec<u8>,
    ) -> &mut Self {
        self.kvs.push(KvEntry::Raw {
            key: key.into(),
            type_id,
            payload,
        });
        self
    }

    /// Appends a tensor with its data; `dims` are ne0 first and `data` must be its exact size.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> Result<&mut Self, WriteError> {
        let name = name.into();
        let expected_bytes = tensor_bytes(dims, ty).ok_or_else(|| WriteError::BadShape {
            name: name.clone(),
            dims: dims.to_vec(),
            ty,
        })?;
        let got_bytes = data.len() as u64;
        if got_bytes != expected_bytes {
            return Err(WriteError::DataSize {
                name,
                expected_bytes,
                got_bytes,
            });
        }
        self.tensors.push(TensorEntry::Data {
            name,
            dims: dims.to_vec(),
            ty,
            data,
        });
        Ok(self)
    }

    /// Appends a tensor info written verbatim, with no data of its own.
    pub fn add_raw_tensor_info(&mut self, info: RawTensorInfo) -> &mut Self {
        self.tensors.push(TensorEntry::Raw(info));
        self
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        put_u32(&mut out, self.version);
        put_u64(&mut out, self.tensors.len() as u64);
        put_u64(&mut out, self.kvs.len() as u64);
        for kv in &self.kvs {
            write_kv(&mut out, kv);
        }
        let mut next_offset = 0u64;
        for t in &self.tensors {
            match t {
                TensorEntry::Data {
                    name,
                    dims,
                    ty,
                    data,
                } => {
                    put_tensor_info(&mut out, name.as_bytes(), dims, ty.id(), next_offset);
                    next_offset = self.padded(next_offset + data.len() as u64);
                }
                TensorEntry::Raw(r) => {
                    put_tensor_info(&mut out, &r.name, &r.dims, r.type_id, r.offset)
                }
            }
        }
        self.pad(&mut out);
        for t in &self.tensors {
            if let TensorEntry::Data { data, .. } = t {
                out.extend_from_slice(data);
                self.pad(&mut out);
            }
        }
        out
    }

    /// Writes the file to `w`.
    pub fn write_to<W: Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(&self.to_bytes())
    }

    /// Writes the file at `path`.
    pub fn write_file(&self, path: &Path) -> Result<(), WriteError> {
        std::fs::write(path, self.to_bytes())?;
        Ok(())
    }

    /// `x` rounded up to the alignment (sizes here are tiny; saturate rather than overflow).
    fn padded(&self, x: u64) -> u64 {
        align_up(x, self.alignment).unwrap_or(u64::MAX)
    }

    /// Zero bytes up to the next multiple of the alignment.
    fn pad(&self, out: &mut Vec<u8>) {
        let len = out.len() as u64;
        out.resize(self.padded(len) as usize, 0);
    }
}

/// Exact data size of a tensor, if its dims are a valid shape for `ty`.
fn tensor_bytes(dims: &[u64], ty: GgmlType) -> Option<u64> {
    let ne0 = dims.first().copied().unwrap_or(1);
    let rows = dims
        .iter()
        .skip(1)
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
    ty.row_bytes(ne0)?.checked_mul(rows)
}

/// Appends a KV pair.
fn write_kv(out: &mut Vec<u8>, kv: &KvEntry) {
    match kv {
        KvEntry::Value { key, value } => {
            put_str(out, key.as_bytes());
            put_u32(out, ValueType::of_value(value).id());
            put_value(out, value);
        }
        KvEntry::Raw {
            key,
            type_id,
            payload,
        } => {
            put_str(out, key);
            put_u32(out, *type_id);
            out.extend_from_slice(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_preamble_and_padding() {
        let mut expected = b"GGUF".to_vec();
        expected.extend_from_slice(&3u32.to_le_bytes());
        expected.extend_from_slice(&[0; 16]); // no tensors, no KV pairs
        expected.extend_from_slice(&[0; 8]); // padding to 32
        assert_eq!(GgufWriter::new().to_bytes(), expected);
    }
}

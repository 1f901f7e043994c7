//! The tensor index shared by every file format: where each tensor's bytes lie on disk.
//!
//! Offsets here are absolute byte offsets in the file named by `file` (an index into
//! `TensorIndex::files`), so GGUF, single-file and sharded safetensors look the same downstream.

use std::path::PathBuf;

use crate::ggml_type::GgmlType;

/// One tensor's place on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name as stored in the file (GGUF names, e.g. `blk.3.attn_q.weight`; safetensors names
    /// are kept as the HF checkpoint spells them).
    pub name: String,
    /// Dimensions, innermost (contiguous) first, as ggml's `ne`: a Linear weight is
    /// `[in_features, out_features]`. Missing trailing dims are omitted, not stored as 1.
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Index into `TensorIndex::files`.
    pub file: usize,
    /// Absolute byte offset of the first byte in that file.
    pub offset: u64,
    /// Exact byte length of the tensor's data (no padding).
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Total element count (1 for a scalar with no dims).
    pub fn n_elems(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Elements per row (`ne[0]`).
    pub fn row_elems(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows (product of every dim but the first).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.n_bytes
    }
}

/// All tensors of a model, with the files they live in.
#[derive(Clone, Debug, Default)]
pub struct TensorIndex {
    /// The model's files (one for GGUF, one per shard for safetensors).
    pub files: Vec<PathBuf>,
    /// Every tensor, in file order.
    pub tensors: Vec<TensorInfo>,
}

impl TensorIndex {
    /// Looks a tensor up by name.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Total bytes of tensor data.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_bytes).sum()
    }
}

//! [`LayerExtents`]: the aligned byte ranges the runtime reads to get each layer's tensors.
//!
//! Each layer's tensors are found by role, whatever the file order (numeric, or lexicographic
//! 0, 1, 10, 11, … as `convert_hf_to_gguf.py` writes), and grouped into maximal runs that no
//! other tensor interrupts: a contiguous layer is one [`Extent`], one split by a foreign tensor
//! or across shards is several. Alignment padding between tensors stays inside a run. Each
//! extent's start is rounded down and its end up to the direct-I/O alignment (gguf-facts.md
//! §7.2); the rounded end may lie past the end of the file, and the reader handles the short
//! read. Global tensors (embeddings, output norm, output, rope freqs) get one extent each.
//! Tensors whose names are unknown belong to no extent and are listed in
//! [`LayerExtents::unknown`].
//!
//! An [`Extent`] maps 1:1 onto the runtime's `Extent { file, offset, len, payload_offset,
//! payload_len }`. [`TensorSlice::offset_in_payload`] is relative to `payload_offset`; inside
//! a buffer holding the aligned read, a tensor starts at
//! [`Extent::head_bytes`]` + offset_in_payload`.

mod build;
mod dio;

pub use dio::{
    dio_alignment_bytes, dio_alignment_for, DIO_ALIGN_DEFAULT_BYTES, DIO_ALIGN_MAX_BYTES,
};

use std::path::PathBuf;

use crate::ggml_type::GgmlType;
use crate::roles::TensorRole;

/// One tensor inside an extent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSlice {
    /// What the tensor is for.
    pub role: TensorRole,
    /// Its name in the file.
    pub name: String,
    /// Element type.
    pub ty: GgmlType,
    /// Dims, ne0 first.
    pub dims: Vec<u64>,
    /// Byte offset of the tensor's first byte from the extent's `payload_offset`.
    pub offset_in_payload: u64,
    /// Exact byte length.
    pub n_bytes: u64,
}

/// One aligned read: `len` bytes at `offset` of file `file`, of which the wanted bytes are
/// `payload_len` bytes at `payload_offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Index into `TensorIndex::files`.
    pub file: usize,
    /// Start of the read: `payload_offset` rounded down to the alignment.
    pub offset: u64,
    /// Length of the read: a multiple of the alignment covering the payload.
    pub len: u64,
    /// Absolute offset of the first wanted byte (the first tensor's first byte).
    pub payload_offset: u64,
    /// Bytes from the first tensor's start to the last tensor's end.
    pub payload_len: u64,
    /// The tensors, in file order.
    pub tensors: Vec<TensorSlice>,
}

impl Extent {
    /// Where the payload starts inside a buffer holding the aligned read.
    pub fn head_bytes(&self) -> u64 {
        self.payload_offset - self.offset
    }

    /// The slice of `role`, if this extent holds it.
    pub fn slice(&self, role: TensorRole) -> Option<&TensorSlice> {
        self.tensors.iter().find(|t| t.role == role)
    }
}

/// Every layer's extents, the global tensors' extents, and the tensors left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerExtents {
    /// The direct-I/O alignment every extent is rounded to (a power of two).
    pub alignment_bytes: u64,
    /// `layers[i]`: layer i's extents in file order (one when the layer is contiguous).
    pub layers: Vec<Vec<Extent>>,
    /// One extent per global tensor, in file order.
    pub globals: Vec<Extent>,
    /// Names of tensors with no known role, which no extent covers.
    pub unknown: Vec<String>,
}

impl LayerExtents {
    /// Bytes read for layer `layer` (its extents' aligned lengths, summed).
    pub fn layer_bytes(&self, layer: usize) -> u64 {
        self.layers
            .get(layer)
            .map_or(0, |l| l.iter().map(|e| e.len).sum())
    }

    /// Bytes of layer `layer`'s tensors without alignment rounding (payloads, summed).
    pub fn layer_payload_bytes(&self, layer: usize) -> u64 {
        self.layers
            .get(layer)
            .map_or(0, |l| l.iter().map(|e| e.payload_len).sum())
    }

    /// [`layer_bytes`](Self::layer_bytes) of every layer, in layer order.
    pub fn layer_bytes_all(&self) -> Vec<u64> {
        (0..self.layers.len())
            .map(|l| self.layer_bytes(l))
            .collect()
    }

    /// The largest single layer extent (a ring slot must hold it).
    pub fn extent_bytes_max(&self) -> u64 {
        self.layers
            .iter()
            .flatten()
            .map(|e| e.len)
            .max()
            .unwrap_or(0)
    }

    /// Whether layer `layer` is one run on disk (one extent).
    pub fn is_contiguous(&self, layer: usize) -> bool {
        self.layers.get(layer).is_some_and(|l| l.len() == 1)
    }

    /// Bytes read per token when every layer streams (`--ram-budget 0`).
    pub fn streamed_bytes_per_token(&self) -> u64 {
        self.layers.iter().flatten().map(|e| e.len).sum()
    }

    /// Bytes read for the global tensors (aligned).
    pub fn global_bytes(&self) -> u64 {
        self.globals.iter().map(|e| e.len).sum()
    }

    /// The extent and slice holding `role` of `layer` (`None` for a global role).
    pub fn find(&self, layer: Option<usize>, role: TensorRole) -> Option<(&Extent, &TensorSlice)> {
        let extents = match layer {
            Some(l) => self.layers.get(l)?.as_slice(),
            None => self.globals.as_slice(),
        };
        extents.iter().find_map(|e| e.slice(role).map(|s| (e, s)))
    }
}

/// Extents that cannot be built from a tensor index.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct ExtentsError {
    /// The file holding the tensor at fault.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: ExtentsErrorKind,
}

/// What is wrong when building extents.
#[derive(Debug, thiserror::Error)]
pub enum ExtentsErrorKind {
    /// The alignment is zero or not a power of two.
    #[error("direct-I/O alignment {alignment_bytes} is not a power of two")]
    BadAlignment {
        /// The alignment asked for.
        alignment_bytes: u64,
    },
    /// A tensor belongs to a layer past the model's layer count.
    #[error("tensor '{name}' belongs to layer {layer} but the model has {n_layer} layers")]
    LayerOutOfRange {
        /// The tensor's name.
        name: String,
        /// Its layer.
        layer: usize,
        /// The model's layer count.
        n_layer: usize,
    },
    /// A layer below the layer count has no known tensor.
    #[error("layer {layer} has no tensors")]
    EmptyLayer {
        /// The empty layer.
        layer: usize,
    },
    /// A tensor's byte range overflows 64 bits once aligned.
    #[error("tensor '{name}' lies beyond the largest addressable offset")]
    Overflow {
        /// The tensor's name.
        name: String,
    },
}

//! Errors from reading safetensors files: which file, and what is wrong with it.

use std::path::PathBuf;

/// A safetensors file or shard index that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct SafetensorsError {
    /// The file at fault (a shard, or `model.safetensors.index.json`).
    pub path: PathBuf,
    /// What is wrong.
    pub kind: SafetensorsErrorKind,
}

/// What is wrong with a safetensors file.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsErrorKind {
    /// Opening or reading failed.
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
    /// Shorter than the 8-byte header length.
    #[error("is {file_bytes} bytes long, too short to hold a safetensors header")]
    TooShort {
        /// The file's size.
        file_bytes: u64,
    },
    /// The declared header length exceeds the file or the sanity limit.
    #[error("declares a {header_bytes}-byte header, more than {limit_bytes} bytes ({why})")]
    HeaderTooLarge {
        /// The declared length.
        header_bytes: u64,
        /// The bound it broke.
        limit_bytes: u64,
        /// Which bound.
        why: &'static str,
    },
    /// The header (or the shard index) is not the JSON object it should be.
    #[error("has a header that is not a valid safetensors JSON object: {detail}")]
    BadJson {
        /// The parser's message or the structural problem.
        detail: String,
    },
    /// A tensor entry is malformed.
    #[error("tensor '{tensor}' {problem}")]
    BadEntry {
        /// The tensor's name.
        tensor: String,
        /// What is wrong, as a sentence fragment.
        problem: String,
    },
    /// A tensor's element type is not one sluice reads.
    #[error("tensor '{tensor}' has dtype {dtype}; sluice reads F32, F16 and BF16 safetensors")]
    UnsupportedDtype {
        /// The tensor's name.
        tensor: String,
        /// The dtype as written.
        dtype: String,
    },
    /// A tensor's bytes lie past the end of the data section.
    #[error("tensor '{tensor}' ends at data byte {end} but the data section holds only {data_bytes} bytes")]
    OutOfBounds {
        /// The tensor's name.
        tensor: String,
        /// Its end offset, relative to the data section.
        end: u64,
        /// The data section's size.
        data_bytes: u64,
    },
    /// A tensor's byte span disagrees with its shape and dtype.
    #[error(
        "tensor '{tensor}' spans {span_bytes} bytes but its shape and dtype need {expected_bytes}"
    )]
    SizeMismatch {
        /// The tensor's name.
        tensor: String,
        /// `end - begin`.
        span_bytes: u64,
        /// Elements × dtype size.
        expected_bytes: u64,
    },
    /// Two tensors share bytes.
    #[error("tensors '{first}' and '{second}' overlap")]
    Overlap {
        /// The tensor that starts first.
        first: String,
        /// The tensor that starts inside it.
        second: String,
    },
    /// `model.safetensors.index.json` is malformed.
    #[error("is not a valid shard index: {detail}")]
    BadIndex {
        /// What is wrong.
        detail: String,
    },
    /// A tensor the shard index places in this shard is not there.
    #[error("does not contain tensor '{tensor}', which the shard index places in it")]
    MissingFromShard {
        /// The tensor's name.
        tensor: String,
    },
    /// A tensor name appears in two shards.
    #[error("holds tensor '{tensor}', which an earlier shard holds too")]
    Duplicate {
        /// The tensor's name.
        tensor: String,
    },
    /// A directory with no weights sluice recognises.
    #[error("contains neither model.safetensors nor model.safetensors.index.json")]
    NoWeights,
}

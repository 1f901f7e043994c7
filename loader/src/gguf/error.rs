//! Typed GGUF parse errors: which file, which byte, and what exactly is wrong there.
//!
//! Indexes in messages ("tensor info 17 of 272") are 0-based, like `TensorIndex::tensors`.

use std::fmt;
use std::path::PathBuf;

use crate::ggml_type::GgmlType;

/// A GGUF file that cannot be used, located to the byte where the problem was found.
#[derive(Debug, thiserror::Error)]
#[error("{}: at byte {offset}: {kind}", path.display())]
pub struct GgufError {
    /// The file (as given to `open`/`parse`).
    pub path: PathBuf,
    /// Absolute byte offset of the field (or tensor info record) at fault.
    pub offset: u64,
    /// What is wrong.
    pub kind: GgufErrorKind,
}

/// The part of the header being read, so truncation and encoding errors can say where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Section {
    /// The 4-byte magic.
    Magic,
    /// The u32 version.
    Version,
    /// The tensor and KV counts.
    Counts,
    /// The key string of a KV pair.
    KvKey { index: u64, count: u64 },
    /// The value (type id and payload) of a KV pair whose key is known.
    KvValue { index: u64, count: u64, key: String },
    /// A tensor info record.
    TensorInfo { index: u64, count: u64 },
    /// The zero padding between the tensor infos and the data section.
    Padding,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Section::Magic => f.write_str("the magic"),
            Section::Version => f.write_str("the version"),
            Section::Counts => f.write_str("the tensor and kv counts"),
            Section::KvKey { index, count } => write!(f, "the key of kv {index} of {count}"),
            Section::KvValue { index, count, key } => {
                write!(f, "the value of kv {index} of {count} ('{key}')")
            }
            Section::TensorInfo { index, count } => write!(f, "tensor info {index} of {count}"),
            Section::Padding => f.write_str("the padding before the data section"),
        }
    }
}

/// Everything that can be wrong with a GGUF header.
#[derive(Debug, thiserror::Error)]
pub enum GgufErrorKind {
    /// The operating system refused a read or open.
    #[error("I/O error: {0}")]
    Io(#[source] std::io::Error),
    /// The first four bytes are not `GGUF`.
    #[error("bad magic {}: not a GGUF file (expected \"GGUF\")", show_bytes(found))]
    BadMagic { found: [u8; 4] },
    /// Version 0, 1 or newer than 3.
    #[error("unsupported GGUF version {version} (sluice reads versions 2 and 3)")]
    UnsupportedVersion { version: u32 },
    /// The version's low 16 bits are zero: a byte-swapped (big-endian) file.
    #[error("big-endian GGUF is not supported (version field reads {version:#010x})")]
    BigEndian { version: u32 },
    /// A read needs more bytes than the file has left.
    #[error("file truncated while reading {section}: {needed_bytes} bytes needed, {remaining_bytes} left")]
    Truncated {
        section: Section,
        needed_bytes: u64,
        remaining_bytes: u64,
    },
    /// A count that could not fit in what is left of the file even with the smallest records.
    #[error(
        "while reading {section}: {what} count {count} cannot fit in the {remaining_bytes} bytes \
         left (at most {max}); the file is truncated or corrupt"
    )]
    CountTooLarge {
        section: Section,
        what: &'static str,
        count: u64,
        max: u64,
        remaining_bytes: u64,
    },
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in {section}")]
    InvalidUtf8 { section: Section },
    /// A value type id outside 0..=12.
    #[error("unknown value type id {id} in {section}")]
    UnknownValueType { section: Section, id: u32 },
    /// An array whose elements are arrays.
    #[error(
        "nested array in {section}: arrays of arrays are not supported (llama.cpp rejects them)"
    )]
    NestedArray { section: Section },
    /// The same key twice.
    #[error("duplicate key '{key}'")]
    DuplicateKey { key: String },
    /// `general.alignment` stored with a type other than u32.
    #[error("general.alignment must be a u32, found a {found}")]
    AlignmentType { found: &'static str },
    /// `general.alignment` zero or not a power of two.
    #[error("general.alignment is {value}: it must be a nonzero power of two")]
    AlignmentValue { value: u32 },
    /// A tensor name longer than ggml allows.
    #[error("tensor name is {len_bytes} bytes; ggml allows at most {max_bytes}")]
    TensorNameTooLong { len_bytes: u64, max_bytes: u64 },
    /// The same tensor name twice.
    #[error("duplicate tensor name '{name}'")]
    DuplicateTensor { name: String },
    /// More dimensions than ggml has.
    #[error("tensor '{name}' has {n_dims} dimensions; at most {max_dims} are allowed")]
    TooManyDims {
        name: String,
        n_dims: u32,
        max_dims: u32,
    },
    /// A dimension that is negative as ggml's i64.
    #[error("tensor '{name}': dimension {axis} is {value}, above i64::MAX (negative to ggml)")]
    DimOutOfRange {
        name: String,
        axis: usize,
        value: u64,
    },
    /// A type id sluice does not read (removed, unknown, or a ggml type sluice lacks).
    #[error("tensor '{name}' has {}", describe_type_id(*id))]
    UnknownTensorType { name: String, id: u32 },
    /// Q8_1 / Q8_K: activation formats that never belong in a model file.
    #[error(
        "tensor '{name}' has type {ty}, an activation-only format that model files never hold"
    )]
    ActivationOnlyType { name: String, ty: GgmlType },
    /// The product of the dims does not fit ggml's i64 element count.
    #[error("tensor '{name}': element count of dims {dims:?} overflows i64")]
    ElementCountOverflow { name: String, dims: Vec<u64> },
    /// `ne[0]` is not a whole number of the type's blocks.
    #[error(
        "tensor '{name}': row length {ne0} is not a multiple of the {ty} block size {block_elems}"
    )]
    RowNotWholeBlocks {
        name: String,
        ne0: u64,
        ty: GgmlType,
        block_elems: u64,
    },
    /// The byte size of the tensor overflows u64.
    #[error("tensor '{name}': byte size overflows u64")]
    ByteSizeOverflow { name: String },
    /// A data offset that is not a multiple of the alignment.
    #[error(
        "tensor '{name}': data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedOffset {
        name: String,
        offset: u64,
        alignment: u64,
    },
    /// Tensor bytes that lie (partly) past the end of the file.
    #[error(
        "tensor '{name}' ({n_bytes} bytes at data offset {offset}, data section at byte \
         {data_offset}) ends past the end of the {file_size}-byte file"
    )]
    TensorOutOfFile {
        name: String,
        offset: u64,
        n_bytes: u64,
        data_offset: u64,
        file_size: u64,
    },
    /// Two tensors sharing bytes.
    #[error("tensor '{name}' (bytes {start}..{end}) overlaps tensor '{other}' (bytes {other_start}..{other_end})")]
    TensorsOverlap {
        name: String,
        start: u64,
        end: u64,
        other: String,
        other_start: u64,
        other_end: u64,
    },
}

/// Four header bytes as text when printable, hex otherwise.
fn show_bytes(b: &[u8; 4]) -> String {
    if b.iter().all(|c| c.is_ascii_graphic()) {
        format!("\"{}\"", String::from_utf8_lossy(b))
    } else {
        let [b0, b1, b2, b3] = *b;
        format!("{b0:02x} {b1:02x} {b2:02x} {b3:02x}")
    }
}

/// Names ggml types that exist upstream but that sluice does not read (gguf-facts.md §2.1).
fn describe_type_id(id: u32) -> String {
    let upstream = match id {
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return format!("unknown or removed ggml type id {id}"),
    };
    format!("ggml type id {id} ({upstream}), which sluice does not support")
}

/// A parse failure before the path is attached (inner parsing code does not carry the path).
#[derive(Debug)]
pub(crate) struct Fault {
    /// Absolute byte offset of the problem.
    pub offset: u64,
    /// What is wrong.
    pub kind: GgufErrorKind,
}

impl Fault {
    /// A failure at `offset`.
    pub fn at(offset: u64, kind: GgufErrorKind) -> Fault {
        Fault { offset, kind }
    }

    /// Attaches the file path.
    pub fn with_path(self, path: PathBuf) -> GgufError {
        GgufError {
            path,
            offset: self.offset,
            kind: self.kind,
        }
    }
}

/// Result of the inner parsing steps.
pub(crate) type ParseResult<T> = Result<T, Fault>;

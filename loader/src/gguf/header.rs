//! [`GgufFile`]: a parsed GGUF header (v2 and v3, little-endian) and its tensor index.
//!
//! Parsing reads the header alone, front to back, with plain buffered reads; tensor data is
//! never read or mapped. Every count and length is bounded by the bytes left in the file before
//! anything is allocated, so hostile files fail fast and small.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::cursor::BoundedReader;
use super::error::{Fault, GgufError, GgufErrorKind, ParseResult, Section};
use super::kv::read_metadata;
use super::layout::{align_up, place_tensors};
use super::limits::{
    ARCHITECTURE_KEY, GGUF_MAGIC, MAX_VERSION, MIN_KV_BYTES, MIN_TENSOR_INFO_BYTES, MIN_VERSION,
    OPEN_BUFFER_BYTES,
};
use super::tensors::read_tensor_infos;
use super::value::Metadata;
use crate::tensor::TensorIndex;

/// A GGUF file's header: what the loader needs to build a model spec and stream its tensors.
#[derive(Clone, Debug)]
pub struct GgufFile {
    /// The file this header was read from.
    pub path: PathBuf,
    /// Format version (2 or 3).
    pub version: u32,
    /// Data-section alignment (`general.alignment`, default 32).
    pub alignment: u64,
    /// Absolute offset D of the data section: the end of the tensor infos, aligned up.
    pub data_offset: u64,
    /// File size in bytes; every tensor lies inside it.
    pub file_size: u64,
    /// The key/value table, in file order.
    pub metadata: Metadata,
    /// The tensors, in header order, with absolute offsets into `path` (file index 0).
    pub index: TensorIndex,
}

impl GgufFile {
    /// Opens and parses a GGUF file's header.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io_error = |e| GgufError {
            path: path.to_path_buf(),
            offset: 0,
            kind: GgufErrorKind::Io(e),
        };
        let file = File::open(path).map_err(io_error)?;
        let file_size = file.metadata().map_err(io_error)?.len();
        Self::parse(
            BufReader::with_capacity(OPEN_BUFFER_BYTES, file),
            file_size,
            path,
        )
    }

    /// Parses a header from `r`, positioned at byte 0 of a file of `file_size` bytes (files,
    /// in-memory images, the fuzzer). Never reads past the header or past `file_size`.
    pub fn parse<R: Read>(r: R, file_size: u64, path: &Path) -> Result<GgufFile, GgufError> {
        let mut reader = BoundedReader::new(r, file_size);
        parse_header(&mut reader, file_size, path).map_err(|f| f.with_path(path.to_path_buf()))
    }

    /// The model architecture (`general.architecture`), e.g. `llama`.
    pub fn arch(&self) -> Option<&str> {
        self.metadata.get_str(ARCHITECTURE_KEY)
    }
}

/// The whole header, section by section.
fn parse_header<R: Read>(
    r: &mut BoundedReader<R>,
    file_size: u64,
    path: &Path,
) -> ParseResult<GgufFile> {
    let version = read_magic_and_version(r)?;
    let (tensor_count, kv_count) = read_counts(r)?;
    let (metadata, alignment) = read_metadata(r, kv_count)?;
    let parsed = read_tensor_infos(r, tensor_count, alignment)?;
    let data_offset = data_section_start(r, alignment, tensor_count)?;
    let tensors = place_tensors(parsed, data_offset, file_size)?;
    Ok(GgufFile {
        path: path.to_path_buf(),
        version,
        alignment,
        data_offset,
        file_size,
        metadata,
        index: TensorIndex {
            files: vec![path.to_path_buf()],
            tensors,
        },
    })
}

/// Checks the magic and returns the version (2 or 3).
fn read_magic_and_version<R: Read>(r: &mut BoundedReader<R>) -> ParseResult<u32> {
    r.set_section(Section::Magic);
    let magic_at = r.pos();
    let found = r.array::<4>()?;
    if found != GGUF_MAGIC {
        return Err(Fault::at(magic_at, GgufErrorKind::BadMagic { found }));
    }
    r.set_section(Section::Version);
    let version_at = r.pos();
    let version = r.u32()?;
    // gguf-py's heuristic: a byte-swapped small version has its low 16 bits zero.
    if version != 0 && version & 0xFFFF == 0 {
        return Err(Fault::at(version_at, GgufErrorKind::BigEndian { version }));
    }
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(Fault::at(
            version_at,
            GgufErrorKind::UnsupportedVersion { version },
        ));
    }
    Ok(version)
}

/// Reads the tensor and KV counts and bounds both by the bytes left: every tensor info and
/// every KV pair takes at least its minimal record size.
fn read_counts<R: Read>(r: &mut BoundedReader<R>) -> ParseResult<(u64, u64)> {
    r.set_section(Section::Counts);
    let tensor_count_at = r.pos();
    let tensor_count = r.u64()?;
    let kv_count_at = r.pos();
    let kv_count = r.u64()?;
    r.check_count(
        tensor_count_at,
        "tensor",
        tensor_count,
        MIN_TENSOR_INFO_BYTES,
    )?;
    let left_for_kvs = r
        .remaining()
        .saturating_sub(tensor_count.saturating_mul(MIN_TENSOR_INFO_BYTES));
    r.check_count_within(kv_count_at, "kv", kv_count, MIN_KV_BYTES, left_for_kvs)?;
    Ok((tensor_count, kv_count))
}

/// D = align_up(end of tensor infos, alignment). A file with tensors must reach D.
fn data_section_start<R: Read>(
    r: &mut BoundedReader<R>,
    alignment: u64,
    tensor_count: u64,
) -> ParseResult<u64> {
    r.set_section(Section::Padding);
    let infos_end = r.pos();
    let Some(data_offset) = align_up(infos_end, alignment) else {
        return Err(r.fault(GgufErrorKind::Truncated {
            section: Section::Padding,
            needed_bytes: u64::MAX,
            remaining_bytes: r.remaining(),
        }));
    };
    if tensor_count > 0 {
        r.ensure(data_offset - infos_end)?;
    }
    Ok(data_offset)
}

//! The runtime's error type.
//!
//! Every error names what failed (file and offset, extent index, setting) and why; errno values
//! are mapped explicitly, TigerBeetle style, instead of being passed through as bare numbers.

use std::path::PathBuf;

use crate::ring::SlotStateError;

/// Result alias for the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong between a file on disk and a slot handed to the consumer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// `SLUICE_IO` holds a value other than `uring`, `pread` or `auto`.
    #[error("SLUICE_IO={value:?} is not understood: use \"uring\", \"pread\" or \"auto\"")]
    EnvChoice {
        /// The value found in the environment.
        value: String,
    },
    /// `SLUICE_IO_DEPTH` holds something other than a queue depth in range.
    #[error(
        "SLUICE_IO_DEPTH={value:?} is not a queue depth: use a whole number from 1 to {max}",
        max = crate::limits::QUEUE_DEPTH_MAX
    )]
    EnvDepth {
        /// The value found in the environment.
        value: String,
    },
    /// io_uring could not be set up.
    #[error("io_uring setup failed (errno {errno}): {cause}")]
    UringSetup {
        /// The errno returned by io_uring_setup or io_uring_register.
        errno: i32,
        /// What it most likely means.
        cause: &'static str,
    },
    /// io_uring_enter failed in a way that retrying does not fix.
    #[error("io_uring_enter failed (errno {errno}): {cause}")]
    UringEnter {
        /// The errno returned by io_uring_enter.
        errno: i32,
        /// What it most likely means.
        cause: &'static str,
    },
    /// The anonymous memory for the ring could not be mapped.
    #[error("cannot map {bytes} bytes for the host ring (errno {errno}): {cause}")]
    SlabMap {
        /// The size requested.
        bytes: usize,
        /// The errno returned by mmap.
        errno: i32,
        /// What it most likely means.
        cause: &'static str,
    },
    /// The slab registrar (e.g. a GPU backend page-locking the slab) refused the slab.
    #[error("cannot register the {bytes}-byte host ring with the device: {source}")]
    SlabRegister {
        /// The size of the slab.
        bytes: usize,
        /// The registrar's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A model file could not be opened or queried.
    #[error("cannot open {path}: {cause} (errno {errno})")]
    Open {
        /// The file.
        path: PathBuf,
        /// The errno returned by open or statx.
        errno: i32,
        /// What it most likely means.
        cause: &'static str,
    },
    /// A file needs a direct-I/O alignment coarser than the slots provide.
    #[error(
        "{path} needs {align_bytes}-byte direct-I/O alignment; sluice supports at most {max_bytes}"
    )]
    Alignment {
        /// The file.
        path: PathBuf,
        /// The alignment statx reported.
        align_bytes: u64,
        /// The largest alignment the ring guarantees.
        max_bytes: u64,
    },
    /// More files were opened than the reader's file table holds.
    #[error("cannot open more than {max} files in one reader")]
    TooManyFiles {
        /// The size of the table.
        max: usize,
    },
    /// An extent names a file id that this reader never returned.
    #[error("extent {index} names file id {file}, which this reader did not open")]
    UnknownFile {
        /// Position of the extent in the sweep.
        index: usize,
        /// The unknown id.
        file: u32,
    },
    /// An extent is malformed (empty, or its payload lies outside it).
    #[error("extent {index} ({offset}+{len_bytes}) is invalid: {reason}")]
    ExtentInvalid {
        /// Position of the extent in the sweep.
        index: usize,
        /// Its file offset.
        offset: u64,
        /// Its length.
        len_bytes: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An extent's offset or length is not a multiple of its file's direct-I/O alignment.
    #[error(
        "extent {index} of {path} ({offset}+{len_bytes}) is not aligned to {align_bytes} bytes"
    )]
    ExtentMisaligned {
        /// Position of the extent in the sweep.
        index: usize,
        /// The file.
        path: PathBuf,
        /// Its file offset.
        offset: u64,
        /// Its length.
        len_bytes: u64,
        /// The required alignment.
        align_bytes: u64,
    },
    /// An extent does not fit in one slot; the ring must be sized from the largest extent.
    #[error("extent {index} is {len_bytes} bytes but ring slots hold {slot_bytes}: size slots from the largest extent")]
    ExtentTooLarge {
        /// Position of the extent in the sweep.
        index: usize,
        /// Its length.
        len_bytes: u64,
        /// The ring's slot size.
        slot_bytes: usize,
    },
    /// The file is shorter than an extent's payload needs: it was truncated or is not the file
    /// the extents were computed from.
    #[error("{path} is truncated: the extent at offset {offset} needs {needed_bytes} bytes of file but it holds {size_bytes}")]
    FileTruncated {
        /// The file.
        path: PathBuf,
        /// The extent's file offset.
        offset: u64,
        /// File size the extent's payload needs.
        needed_bytes: u64,
        /// File size found (or the position where reads hit the end of the file).
        size_bytes: u64,
    },
    /// The path now names a different file than the one opened (it was replaced).
    #[error("{path} was replaced by another file after it was opened: reload the model")]
    FileReplaced {
        /// The file.
        path: PathBuf,
    },
    /// The path no longer exists (the file was deleted after it was opened).
    #[error("{path} was deleted after it was opened: reload the model")]
    FileDeleted {
        /// The file.
        path: PathBuf,
    },
    /// Checking a file's size or identity failed.
    #[error("cannot check {path}: {cause} (errno {errno})")]
    FileStat {
        /// The file.
        path: PathBuf,
        /// The errno returned by stat or fstat.
        errno: i32,
        /// What it most likely means.
        cause: &'static str,
    },
    /// A read failed.
    #[error("read of {path} at offset {offset} failed: {cause} (errno {errno})")]
    Read {
        /// The file.
        path: PathBuf,
        /// The file offset of the failed chunk.
        offset: u64,
        /// The errno of the read.
        errno: i32,
        /// What it most likely means.
        cause: &'static str,
    },
    /// A slot was moved through an illegal state transition (a bug in the caller or in sluice).
    #[error(transparent)]
    SlotState(#[from] SlotStateError),
    /// The consumer holds every slot, so the next extent has nowhere to go.
    #[error(
        "the consumer holds all {slots} slots: release one before waiting for the next extent"
    )]
    RingExhausted {
        /// Number of slots in the ring.
        slots: usize,
    },
    /// The sweep has no extents.
    #[error("the sweep order has no extents")]
    EmptySweep,
    /// The prefetcher was cancelled.
    #[error("the prefetcher was cancelled")]
    Cancelled,
    /// The prefetcher stopped after an earlier error; build a new one.
    #[error("the prefetcher stopped after an earlier error; build a new one")]
    Stopped,
    /// A reader thread could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno::read_cause;

    #[test]
    fn messages_name_file_and_offset() {
        let e = Error::Read {
            path: PathBuf::from("/m/model.gguf"),
            offset: 8192,
            errno: libc::EIO,
            cause: read_cause(libc::EIO),
        };
        let text = e.to_string();
        assert!(text.contains("/m/model.gguf") && text.contains("8192") && text.contains("dmesg"));
    }
}

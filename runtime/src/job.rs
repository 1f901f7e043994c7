//! One extent being read into one slot: how it is cut into chunks, and what each read result
//! means. Shared by the io_uring loop and the pread pool so both readers agree byte for byte.
//!
//! An extent is cut into chunks of `chunk_bytes` (never crossing a 1 GiB boundary of the slot,
//! the largest io_uring fixed buffer), all of which may be in flight together. A short read is
//! resubmitted for the rest, except at the end of the file: a read that returns 0, or (direct
//! I/O) stops at an unaligned position, marks where the file ends. The extent succeeds only if
//! its payload lies before the first such end; otherwise the file was truncated.

use std::sync::Arc;
use std::time::Instant;

use crate::guard::ReadSpan;

use crate::errno::read_cause;
use crate::error::{Error, Result};
use crate::extent::Extent;
use crate::file::OpenFile;
use crate::limits::IOVEC_BYTES_MAX;

/// A range of an extent to read: `len` bytes starting `pos` bytes into the extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Offset inside the extent (and inside the slot).
    pub pos: u64,
    /// Bytes still to read.
    pub len: u64,
}

/// What the result of one read means for its chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The chunk is complete.
    Done,
    /// The file ends at this offset inside the extent; the chunk is complete.
    Eof(u64),
    /// A short read: read this remainder next.
    More(Chunk),
    /// Interrupted or would block: submit the same chunk again.
    Retry,
    /// Failed with this errno.
    Failed(i32),
}

/// Interprets `result` (bytes read, or a negated errno) of a read of `chunk`.
pub(crate) fn step(chunk: Chunk, result: i64, direct: bool, align_bytes: u64) -> Step {
    if result < 0 {
        let errno = i32::try_from(-result).unwrap_or(libc::EIO);
        return match errno {
            libc::EINTR | libc::EAGAIN => Step::Retry,
            _ => Step::Failed(errno),
        };
    }
    let got = (result as u64).min(chunk.len);
    debug_assert_eq!(
        got, result as u64,
        "the kernel returned more than was asked"
    );
    let pos = chunk.pos + got;
    if got == chunk.len {
        Step::Done
    } else if got == 0 || (direct && !pos.is_multiple_of(align_bytes)) {
        Step::Eof(pos)
    } else {
        Step::More(Chunk {
            pos,
            len: chunk.len - got,
        })
    }
}

/// The reader-side record of one extent in flight.
pub(crate) struct Job {
    /// The slot the extent is read into.
    pub slot: usize,
    /// The extent.
    pub extent: Extent,
    /// Its file.
    pub file: Arc<OpenFile>,
    queued_at: Instant,
    next_pos: u64,
    chunks_in_flight: u32,
    eof_pos: u64,
    checked: bool,
    error: Option<Error>,
}

impl Job {
    /// A job for `extent` into `slot`, queued at `queued_at`.
    pub(crate) fn new(slot: usize, extent: Extent, file: Arc<OpenFile>, queued_at: Instant) -> Job {
        Job {
            slot,
            extent,
            file,
            queued_at,
            next_pos: 0,
            chunks_in_flight: 0,
            eof_pos: extent.len,
            checked: false,
            error: None,
        }
    }

    /// True exactly once: whoever gets it checks the file before its first read.
    pub(crate) fn take_check(&mut self) -> bool {
        !std::mem::replace(&mut self.checked, true)
    }

    /// Hands out the next chunk, or `None` when all are handed out or the job failed.
    pub(crate) fn next_chunk(&mut self, chunk_bytes: u64) -> Option<Chunk> {
        if self.error.is_some() || self.next_pos >= self.extent.len {
            return None;
        }
        let pos = self.next_pos;
        let iovec_end = (pos / IOVEC_BYTES_MAX as u64 + 1) * IOVEC_BYTES_MAX as u64;
        let end = (pos + chunk_bytes).min(self.extent.len).min(iovec_end);
        self.next_pos = end;
        self.chunks_in_flight += 1;
        Some(Chunk {
            pos,
            len: end - pos,
        })
    }

    /// Whether chunks remain to be handed out.
    pub(crate) fn has_chunks(&self) -> bool {
        self.error.is_none() && self.next_pos < self.extent.len
    }

    /// File offset of a position inside the extent.
    pub(crate) fn file_offset(&self, pos: u64) -> u64 {
        self.extent.offset + pos
    }

    /// Records a finished chunk: complete, or ended by the end of the file at `eof_pos`.
    pub(crate) fn chunk_finished(&mut self, eof_pos: Option<u64>) {
        assert!(self.chunks_in_flight > 0, "chunk finished twice");
        self.chunks_in_flight -= 1;
        if let Some(pos) = eof_pos {
            self.eof_pos = self.eof_pos.min(pos);
        }
    }

    /// Records a chunk that failed with `errno` at `pos`.
    pub(crate) fn chunk_failed(&mut self, pos: u64, errno: i32) {
        let offset = self.file_offset(pos);
        let path = self.file.path().to_path_buf();
        self.chunk_finished(None);
        self.fail(Error::Read {
            path,
            offset,
            errno,
            cause: read_cause(errno),
        });
    }

    /// Fails the job (the first error wins); no further chunks are handed out.
    pub(crate) fn fail(&mut self, error: Error) {
        self.error.get_or_insert(error);
    }

    /// Whether the job has failed (or was cancelled).
    pub(crate) fn is_failed(&self) -> bool {
        self.error.is_some()
    }

    /// Whether every chunk handed out has finished and no more will be.
    pub(crate) fn is_finished(&self) -> bool {
        self.chunks_in_flight == 0 && !self.has_chunks()
    }

    /// The outcome of a finished job and when it was queued and finished.
    pub(crate) fn finish(self) -> (Result<()>, ReadSpan) {
        assert!(self.is_finished(), "job finished with chunks in flight");
        let span = ReadSpan {
            queued_at: self.queued_at,
            done_at: Instant::now(),
        };
        if let Some(error) = self.error {
            return (Err(error), span);
        }
        let payload_end = self.extent.payload_offset + self.extent.payload_len;
        if self.eof_pos < payload_end {
            let size_bytes = self.file_offset(self.eof_pos);
            return (Err(self.file.truncated(&self.extent, size_bytes)), span);
        }
        (Ok(()), span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Chunk = Chunk {
        pos: 8192,
        len: 8192,
    };

    #[test]
    fn full_short_eof_and_errors() {
        assert_eq!(step(C, 8192, true, 4096), Step::Done);
        assert_eq!(
            step(C, 4096, true, 4096),
            Step::More(Chunk {
                pos: 12288,
                len: 4096
            })
        );
        assert_eq!(
            step(C, 100, true, 4096),
            Step::Eof(8292),
            "unaligned short direct read is EOF"
        );
        assert_eq!(
            step(C, 100, false, 4096),
            Step::More(Chunk {
                pos: 8292,
                len: 8092
            })
        );
        assert_eq!(step(C, 0, false, 4096), Step::Eof(8192));
        assert_eq!(step(C, -i64::from(libc::EINTR), true, 4096), Step::Retry);
        assert_eq!(step(C, -i64::from(libc::EAGAIN), true, 4096), Step::Retry);
        assert_eq!(
            step(C, -i64::from(libc::EIO), true, 4096),
            Step::Failed(libc::EIO)
        );
    }
}

//! Embedding rows read on demand: when the token embeddings are not resident, each batch
//! reads only the rows of its tokens, a few disk blocks each.
//!
//! The reads are synchronous `pread`s with O_DIRECT into one aligned buffer allocated at load,
//! sized for a single row's aligned span (a row straddles at most `ceil(row/align) + 1` blocks).
//! They are far too small for the runtime's ring and prefetcher to help: a few KiB per token.
//! But a drive serves reads in order, so a row asked for after the next sweep's layer reads
//! are queued waits behind them (9 ms a token with 32 MiB in flight at 3.4 GB/s). So a row can
//! be read ahead ([`RowReader::prefetch_row`], from a streamed untied head's candidates, see
//! `head_rows`): `posix_fadvise(WILLNEED)` on a second, buffered descriptor starts the read at
//! once, and the later read of that row copies it from the page cache and drops its pages.
//! A file system that refuses O_DIRECT (tmpfs) is read buffered, logged once.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sluice_loader::GgmlType;
use sluice_runtime::Advice;

use super::rows::MatrixOnDisk;
use crate::model::forward::{EmbeddingRows, ForwardError};

/// Reads single rows of a matrix from disk into a buffer it owns.
pub struct RowReader {
    file: File,
    path: PathBuf,
    matrix: MatrixOnDisk,
    ty: GgmlType,
    align_bytes: u64,
    /// Aligned storage: `buf[start..start + span_bytes_max]` is the read buffer.
    buf: Vec<u8>,
    start: usize,
    span_bytes_max: usize,
    bytes_read: u64,
    /// The same file without O_DIRECT, for rows read ahead into the page cache.
    cached: Option<File>,
    /// The last rows read ahead and not yet asked for (`u32::MAX`: none), most recent at
    /// `prefetched_next - 1`.
    prefetched: [u32; PREFETCHED_MAX],
    prefetched_next: usize,
    rows_read: u64,
    rows_read_ahead: u64,
}

/// Rows read ahead that a reader remembers: a few candidates for each sequence of a batch.
/// An older hint is forgotten and its pages dropped, so the page cache holds at most these.
const PREFETCHED_MAX: usize = 256;

impl RowReader {
    /// Opens `path` for reading rows of `matrix` (elements of type `ty`) with reads aligned to
    /// `align_bytes`.
    pub fn open(
        path: &Path,
        matrix: MatrixOnDisk,
        ty: GgmlType,
        align_bytes: u64,
    ) -> std::io::Result<RowReader> {
        assert!(align_bytes.is_power_of_two(), "alignment {align_bytes}");
        let named = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("{}: opening: {e}", path.display()))
        };
        let direct = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path);
        let file = match direct {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                log::warn!(
                    "{}: the file system refuses O_DIRECT; reading embedding rows buffered",
                    path.display()
                );
                File::open(path).map_err(named)?
            }
            Err(e) => return Err(named(e)),
        };
        let span_bytes_max = (matrix.row_bytes.div_ceil(align_bytes) + 1) * align_bytes;
        let span_bytes_max = usize::try_from(span_bytes_max).map_err(|_| {
            std::io::Error::other(format!(
                "{}: rows of {} bytes are too large",
                path.display(),
                matrix.row_bytes
            ))
        })?;
        let align = align_bytes as usize;
        let buf = vec![0u8; span_bytes_max + align];
        let start = buf.as_ptr().align_offset(align);
        assert!(start < align, "no aligned start in the row buffer");
        Ok(RowReader {
            file,
            path: path.to_path_buf(),
            matrix,
            ty,
            align_bytes,
            buf,
            start,
            span_bytes_max,
            bytes_read: 0,
            cached: File::open(path).ok(),
            prefetched: [u32::MAX; PREFETCHED_MAX],
            prefetched_next: 0,
            rows_read: 0,
            rows_read_ahead: 0,
        })
    }

    /// Bytes read from disk so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Rows read so far, and how many of them had been read ahead ([`prefetch_row`]).
    pub fn rows_read(&self) -> (u64, u64) {
        (self.rows_read, self.rows_read_ahead)
    }

    /// Bytes of the buffer the rows are read into.
    pub fn buffer_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The aligned span holding row `id`: its offset, its length and where the row starts
    /// in it.
    fn span_of(&self, id: usize) -> (u64, usize, usize) {
        let row_bytes = self.matrix.row_bytes;
        let first = self.matrix.offset + id as u64 * row_bytes;
        let offset = first / self.align_bytes * self.align_bytes;
        let end = (first + row_bytes).next_multiple_of(self.align_bytes);
        let span = (end - offset) as usize;
        debug_assert!(span <= self.span_bytes_max);
        (offset, span, (first - offset) as usize)
    }

    /// Reads row `id` and returns its bytes: from the page cache when it was prefetched,
    /// else directly from the disk.
    pub fn read_row(&mut self, id: usize) -> std::io::Result<&[u8]> {
        let row_bytes = self.matrix.row_bytes;
        let (offset, span, head) = self.span_of(id);
        let first = offset + head as u64;
        let want = head + row_bytes as usize;
        let ahead = self.prefetched.iter().position(|&p| p == id as u32);
        let file = match (ahead, &self.cached) {
            (Some(k), Some(cached)) => {
                self.prefetched[k] = u32::MAX;
                cached
            }
            _ => &self.file,
        };
        let buf = &mut self.buf[self.start..self.start + span];
        let mut got = 0usize;
        // The aligned end may lie past the end of the file: a short read is fine once the
        // row's bytes are in.
        while got < want {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: the file ends before row {id} at offset {first} (truncated?)",
                            self.path.display()
                        ),
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!(
                            "{}: reading {span} bytes at offset {offset}: {e}",
                            self.path.display()
                        ),
                    ))
                }
            }
            // O_DIRECT reads return whole blocks, so a partial one leaves the next read aligned.
        }
        self.bytes_read += got as u64;
        self.rows_read += 1;
        if ahead.is_some() {
            self.rows_read_ahead += 1;
            // The page cache held the row for this read only.
            advise(file, offset, span as u64, Advice::DontNeed);
        }
        Ok(&self.buf[self.start + head..self.start + want])
    }

    /// Starts reading row `id` into the page cache through the buffered descriptor
    /// (`posix_fadvise(WILLNEED)` returns at once), so that a later [`read_row`] of it finds
    /// it there instead of queueing behind the reads then in flight.
    pub fn prefetch_row(&mut self, id: usize) {
        let Some(cached) = &self.cached else { return };
        let slot = self.prefetched_next % PREFETCHED_MAX;
        let forgotten = self.prefetched[slot];
        if forgotten != u32::MAX {
            let (offset, span, _) = self.span_of(forgotten as usize);
            advise(cached, offset, span as u64, Advice::DontNeed);
        }
        let (offset, span, _) = self.span_of(id);
        advise(cached, offset, span as u64, Advice::WillNeed);
        self.prefetched[slot] = id as u32;
        self.prefetched_next += 1;
    }
}

/// Passes `advice` for a byte range of `file` to the kernel; a refusal only costs speed.
fn advise(file: &File, offset: u64, len: u64, advice: Advice) {
    if let Err(rc) = sluice_runtime::advise(file.as_raw_fd(), offset, len, advice) {
        log::debug!("posix_fadvise({advice:?}) failed with errno {rc}");
    }
}

impl EmbeddingRows for RowReader {
    fn ty(&self) -> GgmlType {
        self.ty
    }

    fn n_rows(&self) -> usize {
        self.matrix.n_rows as usize
    }

    fn prefetch(&mut self, id: usize) {
        self.prefetch_row(id);
    }

    fn row(&mut self, id: usize) -> Result<&[u8], ForwardError> {
        self.read_row(id)
            .map_err(|source| ForwardError::EmbeddingRead {
                token: id as u32,
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rows_come_back_whatever_their_alignment() {
        // A file of 3 × 4096 + 100 bytes, byte i = i mod 251; rows of 1000 bytes from 77.
        let n = 3 * 4096 + 100;
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(&data).expect("write");
        f.flush().expect("flush");
        let m = MatrixOnDisk {
            offset: 77,
            row_bytes: 1000,
            n_rows: 12,
        };
        let mut r = RowReader::open(f.path(), m, GgmlType::Q8_0, 4096).expect("open");
        for id in [0usize, 3, 4, 11, 7] {
            let first = 77 + id * 1000;
            let row = r.read_row(id).expect("row").to_vec();
            assert_eq!(row, data[first..first + 1000], "row {id}");
        }
        assert!(r.bytes_read() >= 5 * 1000);
        assert_eq!(r.rows_read(), (5, 0));
        // A row read ahead comes back the same, through the page cache.
        r.prefetch_row(9);
        assert_eq!(r.read_row(9).expect("row"), &data[77 + 9000..77 + 10_000]);
        assert_eq!(r.read_row(9).expect("row"), &data[77 + 9000..77 + 10_000]);
        assert_eq!(
            r.rows_read(),
            (7, 1),
            "the second read of row 9 was not read ahead"
        );
        // More hints than the reader remembers: the oldest are forgotten, the rest serve.
        for id in 0..PREFETCHED_MAX + 3 {
            r.prefetch_row(id % 12);
        }
        assert_eq!(
            r.read_row(11).expect("row"),
            &data[77 + 11_000..77 + 12_000]
        );
        assert_eq!(r.rows_read(), (8, 2));
        let past = MatrixOnDisk { n_rows: 20, ..m };
        let mut r = RowReader::open(f.path(), past, GgmlType::Q8_0, 4096).expect("open");
        let err = r.read_row(19).expect_err("past the end");
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}

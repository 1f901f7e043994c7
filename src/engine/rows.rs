//! Row ranges of a matrix on disk: how a global matrix too big to keep resident (the LM head)
//! is cut into pieces that each fit a ring slot, so it streams like a layer.
//!
//! A range is a run of whole rows; its read is the run rounded out to the direct-I/O alignment.
//! Multiplying a range of rows is the same computation as multiplying the whole matrix and
//! keeping those rows of the result, so a streamed head gives bit-identical logits.

/// A row-major matrix as it lies in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixOnDisk {
    /// Absolute file offset of the first row's first byte.
    pub offset: u64,
    /// Bytes of one row (quantised blocks included).
    pub row_bytes: u64,
    /// Number of rows.
    pub n_rows: u64,
}

impl MatrixOnDisk {
    /// Bytes of every row.
    pub fn payload_bytes(&self) -> u64 {
        self.row_bytes * self.n_rows
    }

    /// Smallest slot that holds the aligned read of any one row.
    pub fn row_slot_bytes_min(&self, align_bytes: u64) -> u64 {
        (self.row_bytes + align_bytes).next_multiple_of(align_bytes)
    }
}

/// Rows `row0..row0 + n_rows` and the aligned read that covers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowRange {
    /// First row.
    pub row0: usize,
    /// Number of rows.
    pub n_rows: usize,
    /// File offset of the read (aligned).
    pub offset: u64,
    /// Length of the read (a multiple of the alignment).
    pub len: u64,
    /// Where the first row starts inside the read.
    pub head_bytes: u64,
    /// Bytes of the rows.
    pub payload_len: u64,
}

impl RowRange {
    /// The aligned read of the `len` bytes at `start`, as one row (a vector, or a group of
    /// whole matrices read together).
    pub fn covering(start: u64, len: u64, align_bytes: u64) -> RowRange {
        let offset = start / align_bytes * align_bytes;
        let end = (start + len).next_multiple_of(align_bytes);
        RowRange {
            row0: 0,
            n_rows: 1,
            offset,
            len: end - offset,
            head_bytes: start - offset,
            payload_len: len,
        }
    }
}

/// Cuts `m` into the fewest ranges whose aligned reads fit `slot_bytes`, with row counts as
/// even as possible. Empty when a single row's read does not fit (see
/// [`MatrixOnDisk::row_slot_bytes_min`]) or the matrix has no rows.
pub fn split_rows(m: &MatrixOnDisk, align_bytes: u64, slot_bytes: u64) -> Vec<RowRange> {
    assert!(align_bytes.is_power_of_two(), "alignment {align_bytes}");
    // A payload of p bytes, wherever it starts, is covered by an aligned read of at most
    // p + 2·(align − 1) bytes rounded down to the alignment; p ≤ slot − align keeps that ≤ slot
    // for a slot that is a multiple of the alignment.
    let slot_bytes = slot_bytes / align_bytes * align_bytes;
    let rows_max = slot_bytes.saturating_sub(align_bytes) / m.row_bytes.max(1);
    if rows_max == 0 || m.n_rows == 0 || m.row_bytes == 0 {
        return Vec::new();
    }
    let n_ranges = m.n_rows.div_ceil(rows_max);
    let rows_per_range = m.n_rows.div_ceil(n_ranges);
    let mut ranges = Vec::with_capacity(n_ranges as usize);
    let mut row0 = 0u64;
    while row0 < m.n_rows {
        let n_rows = rows_per_range.min(m.n_rows - row0);
        let start = m.offset + row0 * m.row_bytes;
        let mut r = RowRange::covering(start, n_rows * m.row_bytes, align_bytes);
        (r.row0, r.n_rows) = (row0 as usize, n_rows as usize);
        ranges.push(r);
        row0 += n_rows;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIGN: u64 = 4096;

    fn check_cover(m: &MatrixOnDisk, ranges: &[RowRange], slot_bytes: u64) {
        let mut next = 0usize;
        for r in ranges {
            assert_eq!(r.row0, next, "ranges are consecutive");
            assert!(r.n_rows > 0);
            assert!(r.len <= slot_bytes, "{r:?} fits a slot of {slot_bytes}");
            assert_eq!(r.offset % ALIGN, 0);
            assert_eq!(r.len % ALIGN, 0);
            assert_eq!(
                r.offset + r.head_bytes,
                m.offset + r.row0 as u64 * m.row_bytes
            );
            assert_eq!(r.payload_len, r.n_rows as u64 * m.row_bytes);
            assert!(r.head_bytes + r.payload_len <= r.len);
            next += r.n_rows;
        }
        assert_eq!(next as u64, m.n_rows, "every row is covered once");
    }

    #[test]
    fn qwen_sized_head_splits_into_even_slot_sized_ranges() {
        // Qwen2.5-0.5B's output: 151936 rows of 896 Q8_0 elements (952 bytes), 10.89 MB slots.
        let m = MatrixOnDisk {
            offset: 3_153_952 + 17,
            row_bytes: 952,
            n_rows: 151_936,
        };
        let slot = 10_891_264;
        let ranges = split_rows(&m, ALIGN, slot);
        check_cover(&m, &ranges, slot);
        assert_eq!(ranges.len(), 14);
        let first = ranges[0].n_rows;
        assert!(ranges[..13].iter().all(|r| r.n_rows == first));
        assert!(ranges[13].n_rows <= first);
    }

    #[test]
    fn ranges_fit_whatever_the_offset_and_row_size() {
        for (row_bytes, n_rows, slot) in [
            (952, 1000, 3 * ALIGN),
            (20, 7, ALIGN * 2),
            (4097, 9, 3 * ALIGN),
        ] {
            for offset in [0, 1, 4095, 4096, 12_345] {
                let m = MatrixOnDisk {
                    offset,
                    row_bytes,
                    n_rows,
                };
                let ranges = split_rows(&m, ALIGN, slot);
                check_cover(&m, &ranges, slot);
            }
        }
    }

    #[test]
    fn whole_matrix_is_one_range_when_it_fits() {
        let m = MatrixOnDisk {
            offset: 100,
            row_bytes: 360,
            n_rows: 10,
        };
        let ranges = split_rows(&m, ALIGN, ALIGN * 2);
        assert_eq!(ranges.len(), 1);
        assert_eq!((ranges[0].offset, ranges[0].len), (0, ALIGN));
        assert_eq!(ranges[0].head_bytes, 100);
    }

    #[test]
    fn a_slot_smaller_than_a_row_gives_no_ranges() {
        let m = MatrixOnDisk {
            offset: 0,
            row_bytes: 5000,
            n_rows: 4,
        };
        assert!(split_rows(&m, ALIGN, 2 * ALIGN).is_empty());
        let slot = m.row_slot_bytes_min(ALIGN);
        assert_eq!(slot, 3 * ALIGN);
        check_cover(&m, &split_rows(&m, ALIGN, slot), slot);
    }
}

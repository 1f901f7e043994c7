//! `Extent`: an aligned byte range of a registered file, and the payload wanted inside it.
//!
//! Extents are what the loader's layer extents are converted to. The aligned range is what is
//! read (O_DIRECT needs aligned offset and length); the payload is what the consumer sees.
//! The end of the aligned range may lie past the end of the file (the last tensor of a file):
//! that read comes back short, which is fine as long as the payload lies inside the file.
//!
//! An extent larger than a slot is an error ([`Error::ExtentTooLarge`]), reported when the
//! prefetcher is built, before any read: the engine sizes slots from the model's largest extent,
//! so splitting an extent across slots would only add a copy or a scatter view for a case the
//! engine never produces.

use std::path::Path;

use crate::error::{Error, Result};

/// Handle of a file opened by a reader (an index into its file table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub(crate) u32);

impl FileId {
    /// Position of the file in its reader's file table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An aligned range of a file to read into one slot, and the payload inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// The file, as returned by `Reader::open_file`.
    pub file: FileId,
    /// File offset of the range; a multiple of the file's alignment.
    pub offset: u64,
    /// Length of the range; a non-zero multiple of the file's alignment.
    pub len: u64,
    /// Where the wanted bytes start inside the range.
    pub payload_offset: u64,
    /// Number of wanted bytes.
    pub payload_len: u64,
}

impl Extent {
    /// An extent whose payload is the whole aligned range.
    pub fn whole(file: FileId, offset: u64, len: u64) -> Extent {
        Extent {
            file,
            offset,
            len,
            payload_offset: 0,
            payload_len: len,
        }
    }

    /// File size the payload needs: `offset + payload_offset + payload_len`.
    pub fn payload_end(&self) -> u64 {
        self.offset
            .saturating_add(self.payload_offset)
            .saturating_add(self.payload_len)
    }

    /// Checks the extent's shape against its file's alignment and the slot size.
    /// `index` is the extent's position in the sweep, used in error messages.
    pub(crate) fn validate(
        &self,
        index: usize,
        align_bytes: u64,
        slot_bytes: usize,
        path: &Path,
    ) -> Result<()> {
        let invalid = |reason| Error::ExtentInvalid {
            index,
            offset: self.offset,
            len_bytes: self.len,
            reason,
        };
        if self.len == 0 {
            return Err(invalid("zero length"));
        }
        let payload_end = self.payload_offset.checked_add(self.payload_len);
        if payload_end.is_none_or(|end| end > self.len) {
            return Err(invalid("payload extends past the end of the extent"));
        }
        if self.offset.checked_add(self.len).is_none() {
            return Err(invalid("offset + length overflows"));
        }
        if self.len > slot_bytes as u64 {
            return Err(Error::ExtentTooLarge {
                index,
                len_bytes: self.len,
                slot_bytes,
            });
        }
        debug_assert!(align_bytes.is_power_of_two());
        if !self.offset.is_multiple_of(align_bytes) || !self.len.is_multiple_of(align_bytes) {
            return Err(Error::ExtentMisaligned {
                index,
                path: path.to_path_buf(),
                offset: self.offset,
                len_bytes: self.len,
                align_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: FileId = FileId(0);
    const P: &str = "/m/x";

    #[test]
    fn validate_accepts_aligned_and_rejects_the_rest() {
        let ok = Extent {
            file: F,
            offset: 8192,
            len: 8192,
            payload_offset: 100,
            payload_len: 8000,
        };
        ok.validate(0, 4096, 8192, P.as_ref()).expect("valid");
        assert_eq!(ok.payload_end(), 8192 + 8100);
        let too_big = Extent::whole(F, 0, 12288);
        assert!(matches!(
            too_big.validate(3, 4096, 8192, P.as_ref()),
            Err(Error::ExtentTooLarge { index: 3, .. })
        ));
        let misaligned = Extent::whole(F, 512, 4096);
        assert!(matches!(
            misaligned.validate(0, 4096, 8192, P.as_ref()),
            Err(Error::ExtentMisaligned { .. })
        ));
        misaligned
            .validate(0, 512, 8192, P.as_ref())
            .expect("512-aligned file");
        let empty = Extent::whole(F, 0, 0);
        assert!(matches!(
            empty.validate(0, 4096, 8192, P.as_ref()),
            Err(Error::ExtentInvalid { .. })
        ));
        let spill = Extent {
            payload_offset: 4000,
            payload_len: 200,
            ..Extent::whole(F, 0, 4096)
        };
        assert!(matches!(
            spill.validate(0, 4096, 8192, P.as_ref()),
            Err(Error::ExtentInvalid { .. })
        ));
    }
}

//! Bounded little-endian reads over any `Read`, never past the declared file size.
//!
//! Every read checks the bytes it needs against the bytes left *before* allocating or reading,
//! so a length field of 2^60 fails at once instead of asking the allocator for exabytes. The
//! reader carries the [`Section`] being parsed, and a short read says which one it was.

use std::io::{ErrorKind, Read};

use super::error::{Fault, GgufErrorKind, ParseResult, Section};

/// A `Read` with a position, a hard end, and the section being read.
pub(crate) struct BoundedReader<R> {
    inner: R,
    pos_bytes: u64,
    size_bytes: u64,
    section: Section,
}

impl<R: Read> BoundedReader<R> {
    /// Reads `inner` from byte 0 of a file of `size_bytes` bytes.
    pub fn new(inner: R, size_bytes: u64) -> Self {
        BoundedReader {
            inner,
            pos_bytes: 0,
            size_bytes,
            section: Section::Magic,
        }
    }

    /// Absolute offset of the next byte.
    pub fn pos(&self) -> u64 {
        self.pos_bytes
    }

    /// Bytes between the position and the end of the file.
    pub fn remaining(&self) -> u64 {
        self.size_bytes.saturating_sub(self.pos_bytes)
    }

    /// Names the section that the following reads belong to.
    pub fn set_section(&mut self, section: Section) {
        self.section = section;
    }

    /// The section being read.
    pub fn section(&self) -> &Section {
        &self.section
    }

    /// A failure at the current position.
    pub fn fault(&self, kind: GgufErrorKind) -> Fault {
        Fault::at(self.pos_bytes, kind)
    }

    /// Fails with `Truncated` unless `needed_bytes` are left.
    pub fn ensure(&self, needed_bytes: u64) -> ParseResult<()> {
        let remaining_bytes = self.remaining();
        if needed_bytes <= remaining_bytes {
            return Ok(());
        }
        Err(self.fault(GgufErrorKind::Truncated {
            section: self.section.clone(),
            needed_bytes,
            remaining_bytes,
        }))
    }

    /// Fills `buf` completely; a file shorter than declared reads as truncated.
    fn fill(&mut self, buf: &mut [u8]) -> ParseResult<()> {
        let len = buf.len() as u64;
        self.ensure(len)?;
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.pos_bytes += len;
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                Err(self.fault(GgufErrorKind::Truncated {
                    section: self.section.clone(),
                    needed_bytes: len,
                    remaining_bytes: 0,
                }))
            }
            Err(e) => Err(self.fault(GgufErrorKind::Io(e))),
        }
    }

    /// `N` raw bytes.
    pub fn array<const N: usize>(&mut self) -> ParseResult<[u8; N]> {
        let mut buf = [0u8; N];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    /// A u8.
    pub fn u8(&mut self) -> ParseResult<u8> {
        self.array().map(u8::from_le_bytes)
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> ParseResult<u16> {
        self.array().map(u16::from_le_bytes)
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> ParseResult<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> ParseResult<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// `len` bytes, checked against the bytes left before anything is allocated.
    pub fn bytes(&mut self, len: u64) -> ParseResult<Vec<u8>> {
        self.ensure(len)?;
        let len_usize = usize::try_from(len).map_err(|_| {
            self.fault(GgufErrorKind::Truncated {
                section: self.section.clone(),
                needed_bytes: len,
                remaining_bytes: self.remaining(),
            })
        })?;
        let mut buf = vec![0u8; len_usize];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    /// A GGUF string: u64 length, then that many bytes of UTF-8.
    pub fn string(&mut self) -> ParseResult<String> {
        let len = self.u64()?;
        self.string_body(len)
    }

    /// The bytes of a string whose length was already read.
    pub fn string_body(&mut self, len: u64) -> ParseResult<String> {
        let start = self.pos_bytes;
        let bytes = self.bytes(len)?;
        String::from_utf8(bytes).map_err(|_| {
            Fault::at(
                start,
                GgufErrorKind::InvalidUtf8 {
                    section: self.section.clone(),
                },
            )
        })
    }

    /// Checks that `count` records of at least `min_record_bytes` each can fit in what is left;
    /// a failure is reported at `count_at`, the offset of the count field.
    pub fn check_count(
        &self,
        count_at: u64,
        what: &'static str,
        count: u64,
        min_record_bytes: u64,
    ) -> ParseResult<()> {
        self.check_count_within(count_at, what, count, min_record_bytes, self.remaining())
    }

    /// Like [`Self::check_count`] against `budget_bytes` (bytes left minus what is reserved).
    pub fn check_count_within(
        &self,
        count_at: u64,
        what: &'static str,
        count: u64,
        min_record_bytes: u64,
        budget_bytes: u64,
    ) -> ParseResult<()> {
        let max = budget_bytes / min_record_bytes.max(1);
        if count <= max {
            return Ok(());
        }
        Err(Fault::at(
            count_at,
            GgufErrorKind::CountTooLarge {
                section: self.section.clone(),
                what,
                count,
                max,
                remaining_bytes: self.remaining(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_little_endian_and_tracks_position() {
        let data = [1u8, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0];
        let mut r = BoundedReader::new(Cursor::new(&data[..]), data.len() as u64);
        assert_eq!(r.u16().ok(), Some(1));
        assert_eq!(r.u32().ok(), Some(2));
        assert_eq!(r.u64().ok(), Some(3));
        assert_eq!(r.pos(), 14);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn never_reads_past_declared_size() {
        let data = [0u8; 16];
        let mut r = BoundedReader::new(Cursor::new(&data[..]), 6);
        assert!(r.u32().is_ok());
        let f = r.u32().err().map(|f| (f.offset, f.kind));
        assert!(matches!(
            f,
            Some((
                4,
                GgufErrorKind::Truncated {
                    needed_bytes: 4,
                    remaining_bytes: 2,
                    ..
                }
            ))
        ));
    }

    #[test]
    fn huge_string_length_fails_before_allocating() {
        let mut data = (1u64 << 60).to_le_bytes().to_vec();
        data.extend_from_slice(b"abc");
        let mut r = BoundedReader::new(Cursor::new(&data[..]), data.len() as u64);
        let f = r.string().err().map(|f| f.kind);
        assert!(
            matches!(f, Some(GgufErrorKind::Truncated { needed_bytes, .. }) if needed_bytes == 1 << 60)
        );
    }

    #[test]
    fn short_stream_reads_as_truncated() {
        let data = [0u8; 3];
        let mut r = BoundedReader::new(Cursor::new(&data[..]), 100);
        assert!(matches!(
            r.u32().err().map(|f| f.kind),
            Some(GgufErrorKind::Truncated { .. })
        ));
    }
}

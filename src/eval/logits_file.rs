//! llama-perplexity's base-logits file (`--kl-divergence-base`), read and written byte for byte
//! so files move between the two tools both ways: `_logits_`, i32 n_ctx, n_vocab and n_chunk,
//! the evaluated tokens, then one row of `row_words(n_vocab)` u16 words per scored position,
//! chunk after chunk, all little-endian.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::logprob::row_words;

/// The file's first eight bytes.
pub const MAGIC: &[u8; 8] = b"_logits_";
/// Bytes before the tokens: the magic and three i32s.
const HEADER_BYTES: u64 = 20;

/// What is wrong with a base-logits file; every variant names it.
#[derive(Debug, Error)]
pub enum LogitsFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a file of base log-probabilities (it does not start with \"_logits_\")")]
    NotLogits { path: PathBuf },
    #[error("{path}: {problem}")]
    Header { path: PathBuf, problem: String },
    #[error("{path}: truncated: {have} bytes where {n_chunk} chunks of {n_ctx} tokens over a vocabulary of {n_vocab} need {need}")]
    Truncated {
        path: PathBuf,
        have: u64,
        need: u64,
        n_chunk: usize,
        n_ctx: usize,
        n_vocab: usize,
    },
    #[error("{path}: {have} bytes, {extra} more than its {n_chunk} chunks of {n_ctx} tokens need: not a file llama-perplexity or sluice wrote")]
    TrailingBytes {
        path: PathBuf,
        have: u64,
        extra: u64,
        n_chunk: usize,
        n_ctx: usize,
    },
    #[error("{path}: token {token} at position {at} is outside the vocabulary of {n_vocab}")]
    BadToken {
        path: PathBuf,
        token: u32,
        at: usize,
        n_vocab: usize,
    },
}

/// The shape of a base-logits file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogitsHeader {
    /// Tokens per chunk (the `-c` of the run that wrote it).
    pub n_ctx: usize,
    pub n_vocab: usize,
    pub n_chunk: usize,
}

impl LogitsHeader {
    /// Scored rows per chunk: positions n_ctx/2 … n_ctx−2.
    pub fn rows_per_chunk(&self) -> usize {
        self.n_ctx - 1 - self.n_ctx / 2
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> u64 {
        2 * row_words(self.n_vocab) as u64
    }

    fn rows_offset(&self) -> u64 {
        HEADER_BYTES + 4 * (self.n_chunk * self.n_ctx) as u64
    }

    /// Where row `r` of chunk `c` starts.
    fn row_offset(&self, c: usize, r: usize) -> u64 {
        self.rows_offset() + (c * self.rows_per_chunk() + r) as u64 * self.row_bytes()
    }

    /// The whole file's size.
    pub fn file_bytes(&self) -> u64 {
        self.row_offset(self.n_chunk, 0)
    }

    /// The whole file's size without overflow, for headers a hostile file may hold.
    fn file_bytes_wide(&self) -> u128 {
        let rows = (self.n_chunk as u128) * (self.rows_per_chunk() as u128);
        u128::from(HEADER_BYTES)
            + 4 * (self.n_chunk as u128) * (self.n_ctx as u128)
            + rows * u128::from(self.row_bytes())
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LogitsFileError + '_ {
    move |source| LogitsFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a base-logits file; rows may come in any order (each goes to its own offset).
pub struct LogitsWriter {
    file: File,
    path: PathBuf,
    header: LogitsHeader,
    bytes: Vec<u8>,
}

impl LogitsWriter {
    /// Creates `path` (replacing it) with the header and `tokens` (n_chunk·n_ctx of them).
    pub fn create(
        path: &Path,
        header: LogitsHeader,
        tokens: &[u32],
    ) -> Result<LogitsWriter, LogitsFileError> {
        assert_eq!(tokens.len(), header.n_chunk * header.n_ctx);
        let i32_of = |v: usize, what: &str| {
            i32::try_from(v).map_err(|_| LogitsFileError::Header {
                path: path.to_path_buf(),
                problem: format!("{what} {v} does not fit the file's 32-bit field"),
            })
        };
        let mut head = Vec::with_capacity(HEADER_BYTES as usize + 4 * tokens.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&i32_of(header.n_ctx, "n_ctx")?.to_le_bytes());
        head.extend_from_slice(&i32_of(header.n_vocab, "n_vocab")?.to_le_bytes());
        head.extend_from_slice(&i32_of(header.n_chunk, "n_chunk")?.to_le_bytes());
        for t in tokens {
            head.extend_from_slice(&t.to_le_bytes());
        }
        let file = File::create(path).map_err(io(path))?;
        file.write_all_at(&head, 0).map_err(io(path))?;
        file.set_len(header.file_bytes()).map_err(io(path))?;
        Ok(LogitsWriter {
            file,
            path: path.to_path_buf(),
            header,
            bytes: vec![0; header.row_bytes() as usize],
        })
    }

    /// Writes row `r` of chunk `c`.
    pub fn write_row(&mut self, c: usize, r: usize, words: &[u16]) -> Result<(), LogitsFileError> {
        debug_assert!(c < self.header.n_chunk && r < self.header.rows_per_chunk());
        for (b, w) in self.bytes.chunks_exact_mut(2).zip(words) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        self.file
            .write_all_at(&self.bytes, self.header.row_offset(c, r))
            .map_err(io(&self.path))
    }

    /// Flushes the file to disk.
    pub fn finish(self) -> Result<(), LogitsFileError> {
        self.file.sync_all().map_err(io(&self.path))
    }
}

/// Reads a base-logits file, checked whole before any row is read.
pub struct LogitsReader {
    file: File,
    path: PathBuf,
    header: LogitsHeader,
    tokens: Vec<u32>,
    bytes: Vec<u8>,
}

impl LogitsReader {
    /// Opens `path` and checks its magic, header, size and tokens.
    pub fn open(path: &Path) -> Result<LogitsReader, LogitsFileError> {
        let file = File::open(path).map_err(io(path))?;
        let have = file.metadata().map_err(io(path))?.len();
        let mut head = [0u8; HEADER_BYTES as usize];
        if have < HEADER_BYTES {
            if have >= 8 {
                file.read_exact_at(&mut head[..8], 0).map_err(io(path))?;
            }
            if have < 8 || &head[..8] != MAGIC {
                return Err(LogitsFileError::NotLogits {
                    path: path.to_path_buf(),
                });
            }
            return Err(LogitsFileError::Header {
                path: path.to_path_buf(),
                problem: format!("{have} bytes: cut off inside the 20-byte header"),
            });
        }
        file.read_exact_at(&mut head, 0).map_err(io(path))?;
        if &head[..8] != MAGIC {
            return Err(LogitsFileError::NotLogits {
                path: path.to_path_buf(),
            });
        }
        let field = |at: usize, what: &str, min: i32| -> Result<usize, LogitsFileError> {
            let v = i32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
            if v < min {
                return Err(LogitsFileError::Header {
                    path: path.to_path_buf(),
                    problem: format!("{what} is {v}; it must be at least {min}"),
                });
            }
            Ok(v as usize)
        };
        let header = LogitsHeader {
            n_ctx: field(8, "n_ctx", 4)?,
            n_vocab: field(12, "n_vocab", 1)?,
            n_chunk: field(16, "n_chunk", 1)?,
        };
        let need = u64::try_from(header.file_bytes_wide()).unwrap_or(u64::MAX);
        let shape_err = |have: u64| LogitsFileError::Truncated {
            path: path.to_path_buf(),
            have,
            need,
            n_chunk: header.n_chunk,
            n_ctx: header.n_ctx,
            n_vocab: header.n_vocab,
        };
        if have < need {
            return Err(shape_err(have));
        }
        if have > need {
            return Err(LogitsFileError::TrailingBytes {
                path: path.to_path_buf(),
                have,
                extra: have - need,
                n_chunk: header.n_chunk,
                n_ctx: header.n_ctx,
            });
        }
        let n_tok = header.n_chunk * header.n_ctx;
        let mut raw = vec![0u8; 4 * n_tok];
        file.read_exact_at(&mut raw, HEADER_BYTES)
            .map_err(io(path))?;
        let tokens: Vec<u32> = raw
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some((at, &token)) = tokens
            .iter()
            .enumerate()
            .find(|(_, &t)| t as usize >= header.n_vocab)
        {
            return Err(LogitsFileError::BadToken {
                path: path.to_path_buf(),
                token,
                at,
                n_vocab: header.n_vocab,
            });
        }
        Ok(LogitsReader {
            file,
            path: path.to_path_buf(),
            header,
            tokens,
            bytes: vec![0; header.row_bytes() as usize],
        })
    }

    /// The file's shape.
    pub fn header(&self) -> LogitsHeader {
        self.header
    }

    /// The evaluated tokens, chunk after chunk (the per-chunk BOS not applied).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads row `r` of chunk `c` into `words` (`row_words(n_vocab)` of them).
    pub fn read_row(
        &mut self,
        c: usize,
        r: usize,
        words: &mut [u16],
    ) -> Result<(), LogitsFileError> {
        debug_assert!(c < self.header.n_chunk && r < self.header.rows_per_chunk());
        self.file
            .read_exact_at(&mut self.bytes, self.header.row_offset(c, r))
            .map_err(io(&self.path))?;
        for (w, b) in words.iter_mut().zip(self.bytes.chunks_exact(2)) {
            *w = u16::from_le_bytes([b[0], b[1]]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sluice-logits-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_written_file_reads_back() {
        let p = tmp("roundtrip");
        let h = LogitsHeader {
            n_ctx: 8,
            n_vocab: 5,
            n_chunk: 2,
        };
        let toks: Vec<u32> = (0..16).map(|i| i % 5).collect();
        let mut w = LogitsWriter::create(&p, h, &toks).expect("create");
        let words = row_words(5);
        assert_eq!(words, 10);
        for c in (0..2).rev() {
            for r in 0..h.rows_per_chunk() {
                let row: Vec<u16> = (0..words).map(|i| (c * 100 + r * 10 + i) as u16).collect();
                w.write_row(c, r, &row).expect("write");
            }
        }
        w.finish().expect("finish");
        assert_eq!(
            std::fs::metadata(&p).map(|m| m.len()).ok(),
            Some(20 + 64 + 2 * 3 * 20)
        );
        let mut rd = LogitsReader::open(&p).expect("open");
        assert_eq!(rd.header(), h);
        assert_eq!(rd.tokens(), &toks[..]);
        let mut got = vec![0u16; words];
        rd.read_row(1, 2, &mut got).expect("read");
        assert_eq!(got[0], 120);
        assert_eq!(got[9], 129);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn bad_files_are_named_and_explained() {
        let p = tmp("bad");
        std::fs::write(&p, b"GGUFxxxxxxxxxxxxxxxxxxxx").expect("write");
        let e = LogitsReader::open(&p).err().expect("refused").to_string();
        assert!(e.contains("not a file of base log-probabilities"), "{e}");
        assert!(e.contains(&p.display().to_string()), "{e}");

        let h = LogitsHeader {
            n_ctx: 8,
            n_vocab: 5,
            n_chunk: 1,
        };
        LogitsWriter::create(&p, h, &[0; 8])
            .expect("create")
            .finish()
            .expect("finish");
        let full = std::fs::read(&p).expect("read");
        std::fs::write(&p, &full[..full.len() - 3]).expect("cut");
        let e = LogitsReader::open(&p).err().expect("refused").to_string();
        assert!(e.contains("truncated"), "{e}");
        let mut long = full.clone();
        long.push(0);
        std::fs::write(&p, &long).expect("extend");
        let e = LogitsReader::open(&p).err().expect("refused").to_string();
        assert!(e.contains("1 more than"), "{e}");
        let mut bad_tok = full.clone();
        bad_tok[20] = 9;
        std::fs::write(&p, &bad_tok).expect("token");
        let e = LogitsReader::open(&p).err().expect("refused").to_string();
        assert!(e.contains("outside the vocabulary"), "{e}");
        let mut neg = full;
        neg[8..12].copy_from_slice(&(-1i32).to_le_bytes());
        std::fs::write(&p, &neg).expect("neg");
        let e = LogitsReader::open(&p).err().expect("refused").to_string();
        assert!(e.contains("n_ctx is -1"), "{e}");
        // A header whose sizes overflow 64 bits is a truncated file, not a panic.
        let mut huge = b"_logits_".to_vec();
        for v in [i32::MAX, i32::MAX, i32::MAX] {
            huge.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&p, &huge).expect("huge");
        let e = LogitsReader::open(&p).err().expect("refused").to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&p, b"_logits_\x08\0").expect("short");
        let e = LogitsReader::open(&p).err().expect("refused").to_string();
        assert!(e.contains("header"), "{e}");
        let _ = std::fs::remove_file(&p);
    }

    /// Every truncation of a valid file and every byte of its header overwritten: opening
    /// never panics, and reading the rows of whatever opens stays inside the file.
    #[test]
    fn cut_or_corrupted_files_never_panic() {
        let p = tmp("mutate");
        let h = LogitsHeader {
            n_ctx: 6,
            n_vocab: 3,
            n_chunk: 2,
        };
        LogitsWriter::create(&p, h, &[0, 1, 2, 0, 1, 2, 2, 1, 0, 2, 1, 0])
            .expect("create")
            .finish()
            .expect("finish");
        let full = std::fs::read(&p).expect("read");
        let q = tmp("mutated");
        for len in 0..full.len() {
            std::fs::write(&q, &full[..len]).expect("write");
            assert!(
                LogitsReader::open(&q).is_err(),
                "{len} of {} bytes",
                full.len()
            );
        }
        for at in 0..HEADER_BYTES as usize + 8 {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut m = full.clone();
                m[at] = v;
                std::fs::write(&q, &m).expect("write");
                if let Ok(mut r) = LogitsReader::open(&q) {
                    let h = r.header();
                    let mut w = vec![0u16; row_words(h.n_vocab)];
                    for c in 0..h.n_chunk {
                        for row in 0..h.rows_per_chunk() {
                            r.read_row(c, row, &mut w).expect("a row inside the file");
                        }
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(&q);
    }
}

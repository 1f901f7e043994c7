//! Helpers shared by the runtime's integration tests: test files with known content on the real
//! disk, and the readers this machine can run.
#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_runtime::{Error, HostRing, Reader, ReaderChoice, ReaderConfig};

/// A temporary directory on the real disk (never tmpfs), removed on drop.
pub fn disk_tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir under CARGO_TARGET_TMPDIR")
}

/// Deterministic pseudo-random bytes (xorshift64*), different for each seed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `len` random bytes to `dir/name` and returns the path and the bytes.
pub fn write_random_file(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let bytes = random_bytes(len, seed);
    let mut file = File::create(&path).expect("create test file");
    file.write_all(&bytes).expect("write test file");
    file.sync_all().expect("sync test file");
    (path, bytes)
}

/// Reads `len` bytes at `offset` with std::fs, the reference the readers are checked against.
pub fn std_read(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    File::open(path)
        .expect("open")
        .read_exact_at(&mut buf, offset)
        .expect("std read");
    buf
}

/// The readers this machine can run: always pread; io_uring unless the kernel refuses it
/// (then the test says so on stderr and covers pread only).
pub fn choices() -> Vec<ReaderChoice> {
    let ring = HostRing::new(1, 4096).expect("ring");
    let config = ReaderConfig {
        choice: ReaderChoice::Uring,
        ..ReaderConfig::default()
    };
    match Reader::new(ring, &config) {
        Ok(_) => vec![ReaderChoice::Uring, ReaderChoice::Pread],
        Err(e @ Error::UringSetup { .. }) => {
            eprintln!("io_uring unavailable here ({e}); testing the pread reader only");
            vec![ReaderChoice::Pread]
        }
        Err(e) => panic!("unexpected error probing io_uring: {e}"),
    }
}

/// A reader of `choice` over a new ring.
pub fn reader(
    choice: ReaderChoice,
    slots: usize,
    slot_bytes: usize,
    queue_depth: usize,
    chunk_bytes: usize,
) -> Reader {
    let ring: Arc<HostRing> = HostRing::new(slots, slot_bytes).expect("ring");
    let config = ReaderConfig {
        choice,
        queue_depth,
        chunk_bytes,
        pread_threads: 4,
        fixed: true,
    };
    let reader = Reader::new(ring, &config).expect("reader");
    assert_eq!(
        reader.kind().name(),
        if choice == ReaderChoice::Uring {
            "uring"
        } else {
            "pread"
        }
    );
    reader
}

/// Current and peak resident set size of this process, in bytes (VmRSS, VmHWM).
pub fn rss_bytes() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .expect("field in status");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("kB value");
        kib * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A tiny deterministic generator for random extents.
pub struct Rng(pub u64);

impl Rng {
    /// Next value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

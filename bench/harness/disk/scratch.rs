//! The scratch file `sluice bench disk` reads when no `--file` is given.
//!
//! A directory on tmpfs or ramfs is refused (statfs, see `fs`). The file is written with
//! O_DIRECT (so it does not sit in the page cache afterwards, and a file system that refuses
//! direct I/O is found before anything is written), filled with
//! pseudo-random bytes (never sparse, never zero: some drives and virtual disks answer reads of
//! unwritten or zero blocks without touching the media), and fsync'd. Whether reads of it are
//! really direct is then asked of the runtime's own probe (`Reader::is_direct`) by the caller.
//!
//! The file is removed when the [`ScratchFile`] is dropped, on success, on error and on Ctrl-C
//! (which the harness turns into an error); only a second Ctrl-C or a kill leaves it behind,
//! under a name that says what it is (`bench-disk-PID.scratch`).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::Failure;
use crate::cli::bench::progress;

/// Bytes per write(2): a multiple of every direct-I/O alignment.
const WRITE_BYTES: usize = 8 << 20;
/// Alignment of the write buffer (the largest direct-I/O alignment the runtime accepts).
const WRITE_ALIGN_BYTES: usize = sluice_runtime::limits::SLOT_ALIGN_BYTES;
/// Seed of the file's contents.
const FILL_SEED: u64 = 0xD15C_F111;

const _: () = assert!(WRITE_BYTES.is_multiple_of(WRITE_ALIGN_BYTES));

/// A file of pseudo-random bytes on a disk, removed on drop.
#[derive(Debug)]
pub(crate) struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    /// Writes a `bytes`-long scratch file (a multiple of 4 KiB) in `dir`, creating `dir` if
    /// needed; `stop` is polled between writes (Ctrl-C).
    pub(crate) fn create(
        dir: &Path,
        bytes: u64,
        stop: &dyn Fn() -> bool,
    ) -> Result<ScratchFile, Failure> {
        assert!(
            bytes.is_multiple_of(WRITE_ALIGN_BYTES as u64),
            "scratch size is aligned"
        );
        let existing = dir
            .ancestors()
            .find(|d| d.is_dir())
            .unwrap_or(Path::new("."));
        if let Ok(Some(fs)) = super::fs::memory_file_system(existing) {
            return Err(not_on_a_disk(dir, fs));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::bad_input(format!(
                "cannot create the scratch directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(format!("bench-disk-{}.scratch", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path);
        let file = match file {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // Some file systems create the file before refusing the flag.
                let _ = std::fs::remove_file(&path);
                return Err(not_on_a_disk(dir, "a file system without direct I/O"));
            }
            Err(e) => {
                return Err(Failure::bad_input(format!(
                    "cannot create the scratch file {}: {e}",
                    path.display()
                )))
            }
        };
        let scratch = ScratchFile { path };
        scratch.fill(file, bytes, stop)?;
        Ok(scratch)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn fill(&self, mut file: File, bytes: u64, stop: &dyn Fn() -> bool) -> Result<(), Failure> {
        let mut storage = vec![0u8; WRITE_BYTES + WRITE_ALIGN_BYTES];
        let start = storage.as_ptr().align_offset(WRITE_ALIGN_BYTES);
        let block = &mut storage[start..start + WRITE_BYTES];
        let mut rng = FILL_SEED;
        let bar = progress::bar(bytes.div_ceil(1 << 20), "writing scratch MiB");
        let mut written = 0u64;
        while written < bytes {
            if stop() {
                return Err(Failure::runtime(
                    "interrupted by Ctrl-C; scratch file removed",
                ));
            }
            let len = (bytes - written).min(WRITE_BYTES as u64) as usize;
            fill_random(&mut block[..len], &mut rng);
            file.write_all(&block[..len])
                .map_err(|e| self.write_failure(&e, bytes))?;
            written += len as u64;
            bar.set_position(written >> 20);
        }
        file.sync_all().map_err(|e| self.write_failure(&e, bytes))?;
        bar.finish_and_clear();
        Ok(())
    }

    fn write_failure(&self, e: &std::io::Error, bytes: u64) -> Failure {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if e.kind() == ErrorKind::StorageFull {
            return Failure::runtime(format!(
                "{} has no room for a {} MiB scratch file: pass a smaller --size, another --dir, \
                 or --file",
                dir.display(),
                bytes >> 20
            ));
        }
        if e.raw_os_error() == Some(libc::EINVAL) {
            return not_on_a_disk(dir, "a file system without direct I/O");
        }
        Failure::runtime(format!(
            "cannot write the scratch file {}: {e}",
            self.path.display()
        ))
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => eprintln!(
                "warning: cannot remove the scratch file {}: {e}",
                self.path.display()
            ),
        }
    }
}

/// The sentence for a scratch directory on `what` (tmpfs, a file system without direct I/O).
pub(crate) fn not_on_a_disk(dir: &Path, what: &str) -> Failure {
    Failure::bad_input(format!(
        "{} is on {what}, where reads would measure memory, not a disk: pass --dir on a disk, \
         or --file",
        dir.display()
    ))
}

/// Fills `out` with xorshift64* bytes, continuing from `state`.
fn fill_random(out: &mut [u8], state: &mut u64) {
    for word in out.chunks_mut(8) {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let bytes = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        word.copy_from_slice(&bytes[..word.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_not_zero_and_continues() {
        let mut state = FILL_SEED;
        let mut a = vec![0u8; 4096];
        fill_random(&mut a, &mut state);
        let mut b = vec![0u8; 4096];
        fill_random(&mut b, &mut state);
        assert_ne!(a, b);
        assert!(a.iter().filter(|&&x| x == 0).count() < 64);
    }

    #[test]
    fn scratch_is_written_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a/b");
        let scratch = match ScratchFile::create(&sub, 3 << 20, &|| false) {
            Ok(s) => s,
            Err(f) if f.sentence.contains("measure memory") => {
                eprintln!("skipping: {}", f.sentence);
                return;
            }
            Err(f) => panic!("{}", f.sentence),
        };
        let path = scratch.path().to_path_buf();
        let bytes = std::fs::read(&path).expect("read back");
        assert_eq!(bytes.len(), 3 << 20);
        assert!(bytes.iter().filter(|&&x| x == 0).count() < 3 << 16);
        drop(scratch);
        assert!(!path.exists());
    }

    #[test]
    fn an_interrupted_fill_removes_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = ScratchFile::create(dir.path(), 16 << 20, &|| true);
        assert!(r.is_err());
        let left = std::fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(left, 0);
    }
}

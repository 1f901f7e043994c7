//! Whether a path lives in memory (tmpfs, ramfs) rather than on a disk, from statfs(2).
//!
//! Opening with O_DIRECT is no such test any more: since Linux 6.6 tmpfs accepts the flag, so
//! the runtime's probe calls a tmpfs file direct although every read of it is a memory copy.
//! Leaf module for `unsafe`: the one statfs call.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// File-system magic numbers (linux/magic.h) of the file systems that keep files in memory.
const MEMORY_FILE_SYSTEMS: [(u32, &str); 2] = [(0x0102_1994, "tmpfs"), (0x8584_58f6, "ramfs")];

/// The name of the in-memory file system holding `path`, or `None` for any other.
pub(crate) fn memory_file_system(path: &Path) -> io::Result<Option<&'static str>> {
    let magic = file_system_magic(path)?;
    Ok(MEMORY_FILE_SYSTEMS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|&(_, name)| name))
}

/// statfs(2)'s `f_type` for `path` (the width of the field varies by target; the magic
/// numbers fit in 32 bits).
fn file_system_magic(path: &Path) -> io::Result<u32> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut buf = MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call, and `buf` points to
    // writable memory of the size of `struct statfs`, which statfs fills on success.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it initialised the whole struct.
    let stat = unsafe { buf.assume_init() };
    Ok(stat.f_type as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_shm_is_memory_and_a_missing_path_is_an_error() {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            assert_eq!(memory_file_system(shm).ok().flatten(), Some("tmpfs"));
        }
        assert!(memory_file_system(Path::new("/no/such/dir")).is_err());
    }
}

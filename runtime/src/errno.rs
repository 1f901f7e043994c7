//! errno values mapped to causes a person can act on (TigerBeetle style): which setting to
//! change, which command to run, or that it is a bug in sluice.

/// Why io_uring_setup or io_uring_register refused, for a person to act on.
pub(crate) fn setup_cause(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => {
            "io_uring is disabled by sysctl kernel.io_uring_disabled or blocked by a seccomp \
             profile (Docker >= 25 blocks it by default); allow it, or use SLUICE_IO=pread"
        }
        libc::ENOSYS => {
            "the kernel has no io_uring (CONFIG_IO_URING off) or seccomp hides it; use SLUICE_IO=pread"
        }
        libc::ENOMEM => "not enough lockable memory for the ring: raise `ulimit -l` (RLIMIT_MEMLOCK)",
        libc::EINVAL => "the kernel does not support a requested io_uring feature (kernel too old)",
        libc::EMFILE | libc::ENFILE => "too many open files: raise `ulimit -n`",
        libc::EFAULT => "the kernel could not access the ring parameters (a bug in sluice)",
        _ => "unexpected error from io_uring setup",
    }
}

/// Why a read failed, for a person to act on.
pub(crate) fn read_cause(errno: i32) -> &'static str {
    match errno {
        libc::EIO => "the device reported an I/O error: check `dmesg` and the drive's SMART log",
        libc::EINVAL => {
            "direct I/O refused: offset, length or buffer not aligned to the file's \
             direct-I/O alignment (check the extents' alignment)"
        }
        libc::EFAULT => "the buffer lies outside the registered memory (a bug in sluice)",
        libc::EBADF => "the file is not open for reading (a bug in sluice)",
        libc::ENOMEM => "the kernel is out of memory",
        libc::ENXIO | libc::ENODEV => "the device went away: check the drive and its connection",
        libc::ESTALE => "the file handle is stale (network file system): reopen the model",
        libc::EOPNOTSUPP => "the file system does not support this kind of read",
        libc::ECANCELED => "the read was cancelled",
        libc::ENOSPC => "the device reports no space (thin provisioning exhausted?)",
        _ => "unexpected error from the kernel",
    }
}

/// Why io_uring_enter failed in a way that retrying does not fix.
pub(crate) fn enter_cause(errno: i32) -> &'static str {
    match errno {
        libc::EBADF | libc::EBADFD => "the ring's descriptor is no longer valid (a bug in sluice)",
        libc::EFAULT => "the kernel could not access the ring's memory (a bug in sluice)",
        libc::EINVAL => "the kernel rejected the submission (a bug in sluice or a kernel too old)",
        libc::EOPNOTSUPP => "the descriptor is not an io_uring (a bug in sluice)",
        libc::ENXIO => "the ring is being torn down",
        _ => "unexpected error from io_uring_enter",
    }
}

/// Why opening or statting a file failed, for a person to act on.
pub(crate) fn open_cause(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => "no such file: check the path",
        libc::EACCES | libc::EPERM => "permission denied: check the file's permissions",
        libc::EISDIR => "it is a directory, not a file",
        libc::ENOTDIR => "a component of the path is not a directory",
        libc::EMFILE | libc::ENFILE => "too many open files: raise `ulimit -n`",
        libc::ELOOP => "too many symbolic links in the path",
        libc::ENAMETOOLONG => "the path is too long",
        libc::EINVAL => "the file system refuses this way of opening the file",
        libc::EIO => "the device reported an I/O error: check `dmesg`",
        _ => "unexpected error from the kernel",
    }
}

/// Why mapping memory failed, for a person to act on.
pub(crate) fn map_cause(errno: i32) -> &'static str {
    match errno {
        libc::ENOMEM => "not enough memory: lower the slot count or the slot size",
        libc::EINVAL => "invalid size (a bug in sluice)",
        libc::EAGAIN => "locked-memory limit reached: raise `ulimit -l`",
        _ => "unexpected error from the kernel",
    }
}

/// The errno of an I/O error, or EIO when it carries none.
pub(crate) fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_name_the_fix() {
        assert!(setup_cause(libc::EPERM).contains("io_uring_disabled"));
        assert!(setup_cause(libc::ENOSYS).contains("SLUICE_IO=pread"));
        assert!(read_cause(libc::EINVAL).contains("aligned"));
        assert!(open_cause(libc::ENOENT).contains("no such file"));
        assert!(map_cause(libc::ENOMEM).contains("slot"));
    }
}

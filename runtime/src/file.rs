//! Files registered with a reader: opened once with O_DIRECT, identified, checked before reads.
//!
//! Direct I/O is a policy plus a probe: the file is opened with `O_DIRECT`; a file system that
//! refuses it (tmpfs before Linux 6.6 answers EINVAL; newer tmpfs accepts it) gets a buffered
//! descriptor instead, logged once, and its pages are dropped from the page cache after each
//! read (`posix_fadvise(DONTNEED)`).
//! The alignment comes from `statx(STATX_DIOALIGN)`, 4096 when the kernel does not say.
//!
//! Identity: the device and inode are recorded at open. Before each extent is read the path is
//! stat'ed (a different inode means the file was replaced, none means it was deleted) and the
//! descriptor is fstat'ed (a size below the extent's payload end means it was truncated), so a
//! changed file is an error, never garbage. A truncation racing with the read itself shows up
//! as a short read and is caught the same way (see `job.rs`).

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::errno::{errno_of, open_cause};
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId};
use crate::limits::{ALIGN_BYTES_DEFAULT, FILES_MAX, SLOT_ALIGN_BYTES};

/// One open model file.
pub(crate) struct OpenFile {
    file: File,
    path: PathBuf,
    dev: u64,
    ino: u64,
    direct: bool,
    align_bytes: u64,
}

impl OpenFile {
    fn open(path: &Path) -> Result<OpenFile> {
        let open_err = |e: std::io::Error| {
            let errno = errno_of(&e);
            Error::Open {
                path: path.to_path_buf(),
                errno,
                cause: open_cause(errno),
            }
        };
        let direct = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path);
        let (file, mut direct) = match direct {
            Ok(file) => (file, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (
                OpenOptions::new().read(true).open(path).map_err(open_err)?,
                false,
            ),
            Err(e) => return Err(open_err(e)),
        };
        let meta = file.metadata().map_err(open_err)?;
        if !(meta.file_type().is_file() || meta.file_type().is_block_device()) {
            return Err(open_err(std::io::Error::from_raw_os_error(libc::EISDIR)));
        }
        let mut align_bytes = ALIGN_BYTES_DEFAULT;
        match dio_align(&file) {
            Some(0) => direct = false,
            Some(statx_align) if direct => align_bytes = statx_align,
            _ => {}
        }
        let file = if direct {
            file
        } else {
            clear_direct(file).map_err(open_err)?
        };
        if !direct {
            log::warn!(
                "{}: the file system refuses O_DIRECT; reading it buffered and dropping its pages \
                 from the page cache after each read",
                path.display()
            );
        }
        if align_bytes > SLOT_ALIGN_BYTES as u64 || !align_bytes.is_power_of_two() {
            return Err(Error::Alignment {
                path: path.to_path_buf(),
                align_bytes,
                max_bytes: SLOT_ALIGN_BYTES as u64,
            });
        }
        let (dev, ino) = (meta.dev(), meta.ino());
        Ok(OpenFile {
            file,
            path: path.to_path_buf(),
            dev,
            ino,
            direct,
            align_bytes,
        })
    }

    /// The raw descriptor.
    pub(crate) fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// The path the file was opened under.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether reads bypass the page cache.
    pub(crate) fn direct(&self) -> bool {
        self.direct
    }

    /// Alignment of offsets and lengths for this file.
    pub(crate) fn align_bytes(&self) -> u64 {
        self.align_bytes
    }

    /// Fails if the file was deleted, replaced or truncated below `extent`'s payload.
    pub(crate) fn check(&self, extent: &Extent) -> Result<()> {
        let stat_err = |e: std::io::Error| {
            let errno = errno_of(&e);
            Error::FileStat {
                path: self.path.clone(),
                errno,
                cause: open_cause(errno),
            }
        };
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::FileDeleted {
                    path: self.path.clone(),
                })
            }
            Err(e) => return Err(stat_err(e)),
            Ok(m) if (m.dev(), m.ino()) != (self.dev, self.ino) => {
                return Err(Error::FileReplaced {
                    path: self.path.clone(),
                })
            }
            Ok(_) => {}
        }
        let size_bytes = self.file.metadata().map_err(stat_err)?.len();
        if size_bytes < extent.payload_end() {
            return Err(self.truncated(extent, size_bytes));
        }
        Ok(())
    }

    /// The error for `extent` when the file ends at `size_bytes`.
    pub(crate) fn truncated(&self, extent: &Extent, size_bytes: u64) -> Error {
        Error::FileTruncated {
            path: self.path.clone(),
            offset: extent.offset,
            needed_bytes: extent.payload_end(),
            size_bytes,
        }
    }

    /// Drops a buffered file's pages for a range just read; a no-op for direct files.
    pub(crate) fn drop_cached(&self, offset: u64, len_bytes: u64) {
        if self.direct {
            return;
        }
        if let Err(rc) = advise(self.fd(), offset, len_bytes, Advice::DontNeed) {
            log::debug!(
                "{}: posix_fadvise(DONTNEED) failed with errno {rc}",
                self.path.display()
            );
        }
    }
}

/// What [`advise`] tells the kernel about a byte range of a buffered file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// Start reading the range into the page cache now (returns at once).
    WillNeed,
    /// Drop the range's pages from the page cache.
    DontNeed,
}

/// `posix_fadvise` on `len_bytes` at `offset` of descriptor `fd`: a hint, so a refusal (its
/// errno is returned) only costs speed. Ranges beyond `i64` are not advised.
pub fn advise(
    fd: std::os::fd::RawFd,
    offset: u64,
    len_bytes: u64,
    advice: Advice,
) -> std::result::Result<(), i32> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len_bytes)) else {
        return Ok(());
    };
    let advice = match advice {
        Advice::WillNeed => libc::POSIX_FADV_WILLNEED,
        Advice::DontNeed => libc::POSIX_FADV_DONTNEED,
    };
    // SAFETY: posix_fadvise only reads its integer arguments; an invalid descriptor is an
    // error (EBADF), not undefined behaviour.
    match unsafe { libc::posix_fadvise(fd, offset, len, advice) } {
        0 => Ok(()),
        rc => Err(rc),
    }
}

/// Clears O_DIRECT on `file` (statx said the file system cannot do direct I/O on it).
fn clear_direct(file: File) -> std::io::Result<File> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL takes no pointer argument; the descriptor is open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if flags & libc::O_DIRECT != 0 {
        // SAFETY: F_SETFL takes an integer flag set; the descriptor is open.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(file)
}

/// The direct-I/O alignment statx reports (`Some(0)`: direct I/O unsupported), or `None`.
fn dio_align(file: &File) -> Option<u64> {
    // SAFETY: statx is a plain C struct of integers, valid when zeroed.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the path is an empty NUL-terminated string used with AT_EMPTY_PATH on an open
    // descriptor, and `stx` is a valid, writable statx buffer.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    if rc != 0 || stx.stx_mask & libc::STATX_DIOALIGN == 0 {
        return None;
    }
    if stx.stx_dio_offset_align == 0 || stx.stx_dio_mem_align == 0 {
        return Some(0);
    }
    Some(u64::from(
        stx.stx_dio_offset_align.max(stx.stx_dio_mem_align),
    ))
}

/// The files of one reader, indexed by [`FileId`]; entries are only ever appended.
pub(crate) struct FileTable {
    files: RwLock<Vec<Arc<OpenFile>>>,
}

impl FileTable {
    /// An empty table with room for [`FILES_MAX`] files.
    pub(crate) fn new() -> FileTable {
        FileTable {
            files: RwLock::new(Vec::with_capacity(FILES_MAX)),
        }
    }

    /// Opens `path` and appends it to the table.
    pub(crate) fn open(&self, path: &Path) -> Result<FileId> {
        let file = Arc::new(OpenFile::open(path)?);
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        if files.len() >= FILES_MAX {
            return Err(Error::TooManyFiles { max: FILES_MAX });
        }
        files.push(file);
        let id =
            u32::try_from(files.len() - 1).map_err(|_| Error::TooManyFiles { max: FILES_MAX })?;
        Ok(FileId(id))
    }

    /// The file behind `id`, if this table issued it.
    pub(crate) fn get(&self, id: FileId) -> Option<Arc<OpenFile>> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        files.get(id.index()).cloned()
    }
}

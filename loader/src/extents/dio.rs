//! The alignment direct I/O needs for a file: the kernel's `STATX_DIOALIGN` answer when it
//! gives one, never less than 4096 bytes.

use std::path::Path;

use crate::tensor::TensorIndex;

/// Alignment used when the kernel reports none (the common logical block and page size).
pub const DIO_ALIGN_DEFAULT_BYTES: u64 = 4096;
/// Larger reported alignments are treated as bogus and ignored.
pub const DIO_ALIGN_MAX_BYTES: u64 = 1 << 20;

/// Offset and length alignment for `O_DIRECT` reads of `path`:
/// `max(4096, dio_offset_align, dio_mem_align)`, or 4096 when the kernel does not say.
pub fn dio_alignment_bytes(path: &Path) -> u64 {
    let reported = statx_dio_align(path).map_or(0, |(offset, mem)| offset.max(mem) as u64);
    if reported.is_power_of_two() && reported <= DIO_ALIGN_MAX_BYTES {
        reported.max(DIO_ALIGN_DEFAULT_BYTES)
    } else {
        DIO_ALIGN_DEFAULT_BYTES
    }
}

/// The largest direct-I/O alignment among a model's files.
pub fn dio_alignment_for(index: &TensorIndex) -> u64 {
    index
        .files
        .iter()
        .map(|f| dio_alignment_bytes(f))
        .max()
        .unwrap_or(DIO_ALIGN_DEFAULT_BYTES)
}

/// `(stx_dio_offset_align, stx_dio_mem_align)` when the kernel (6.1+) reports them.
#[cfg(target_os = "linux")]
fn statx_dio_align(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero `statx` is a valid value of this plain C struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call, and `stx` is a
    // writable `statx` the kernel fills; neither pointer is kept after the call returns.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_STATX_SYNC_AS_STAT,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    if rc != 0 || stx.stx_mask & libc::STATX_DIOALIGN == 0 {
        return None;
    }
    Some((stx.stx_dio_offset_align, stx.stx_dio_mem_align))
}

/// Other systems: no report, so the default applies.
#[cfg(not(target_os = "linux"))]
fn statx_dio_align(_path: &Path) -> Option<(u32, u32)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_the_default_and_a_power_of_two() {
        let here = std::env::current_exe().expect("exe");
        let a = dio_alignment_bytes(&here);
        assert!(a >= DIO_ALIGN_DEFAULT_BYTES && a.is_power_of_two(), "{a}");
        assert_eq!(
            dio_alignment_bytes(Path::new("/no/such/file")),
            DIO_ALIGN_DEFAULT_BYTES
        );
    }
}

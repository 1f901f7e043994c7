//! One slab of page-aligned anonymous memory: the only allocation the I/O path ever makes.
//!
//! The slab is mapped once (2 MiB aligned with `MADV_HUGEPAGE` when it is at least a huge page,
//! and then backed to a whole number of huge pages), pre-faulted so no page fault happens in the
//! steady state, and handed to an optional
//! [`SlabRegistrar`] (a GPU backend page-locking it with `cuMemHostRegister`). Anonymous memory is
//! what both io_uring fixed buffers and CUDA host registration accept (APIS.md §1).
//!
//! Why whole huge pages: a slab of 3 MiB used to get one huge page and a 1 MiB tail of 4 KiB
//! pages. A direct read into 4 KiB pages reaches the disk as one segment per page (a virtio disk
//! takes 254 per request), and the slot on the tail slowed the whole ring: 1 MiB slots x 3 read
//! at 0.99 GB/s where x 2 and x 4 read at 2.1 on the same VM. The tail now costs under 2 MiB of
//! memory instead.
//! This is a leaf module for `unsafe`: mmap, madvise, munmap and raw views of the bytes.

use std::ptr::NonNull;
use std::sync::Arc;

use crate::errno::map_cause;
use crate::error::{Error, Result};
use crate::limits::{HUGE_PAGE_BYTES, SLOT_ALIGN_BYTES};

/// Error type a registrar returns.
pub type RegistrarError = Box<dyn std::error::Error + Send + Sync>;

/// Hook through which a device backend registers (page-locks) the slab after it is mapped.
pub trait SlabRegistrar: Send + Sync {
    /// Registers `len_bytes` of memory starting at `ptr`; called once, before any read.
    fn register(&self, ptr: *mut u8, len_bytes: usize) -> Result<(), RegistrarError>;
    /// Undoes [`SlabRegistrar::register`]; called once, after the last read, before unmapping.
    fn unregister(&self, ptr: *mut u8, len_bytes: usize);
}

/// Page-aligned anonymous memory, unmapped on drop.
pub(crate) struct Slab {
    ptr: NonNull<u8>,
    len_bytes: usize,
    map_ptr: *mut libc::c_void,
    map_len_bytes: usize,
    /// Bytes from `ptr` advised and pre-faulted: `len_bytes`, rounded up to whole huge pages
    /// when `huge_pages`.
    backed_bytes: usize,
    huge_pages: bool,
    registrar: Option<Arc<dyn SlabRegistrar>>,
}

// SAFETY: the slab is plain memory owned by this value; who may touch which bytes when is decided
// by the ring's slot states, not by the thread that holds the `Slab`.
unsafe impl Send for Slab {}
// SAFETY: as above; shared references only hand out raw pointers or state-checked views.
unsafe impl Sync for Slab {}

impl Slab {
    /// Maps `len_bytes` (a multiple of the page size), pre-faults it, and registers it.
    pub(crate) fn new(len_bytes: usize, registrar: Option<Arc<dyn SlabRegistrar>>) -> Result<Slab> {
        assert!(len_bytes > 0 && len_bytes.is_multiple_of(SLOT_ALIGN_BYTES));
        let huge_pages = len_bytes >= HUGE_PAGE_BYTES;
        let too_large = || Error::Config(format!("slab of {len_bytes} bytes is too large"));
        let (align_bytes, backed_bytes) = if huge_pages {
            let backed_bytes = len_bytes
                .checked_next_multiple_of(HUGE_PAGE_BYTES)
                .ok_or_else(too_large)?;
            (HUGE_PAGE_BYTES, backed_bytes)
        } else {
            (SLOT_ALIGN_BYTES, len_bytes)
        };
        let map_len_bytes = backed_bytes
            .checked_add(align_bytes - SLOT_ALIGN_BYTES)
            .ok_or_else(too_large)?;
        let map_ptr = map_anonymous(map_len_bytes)?;
        let pad_bytes = (map_ptr as usize).next_multiple_of(align_bytes) - map_ptr as usize;
        // SAFETY: pad_bytes < align_bytes, so the aligned start lies inside the mapping and
        // leaves at least backed_bytes (>= len_bytes) after it.
        let start = unsafe { map_ptr.cast::<u8>().add(pad_bytes) };
        let ptr = NonNull::new(start).ok_or(Error::SlabMap {
            bytes: len_bytes,
            errno: 0,
            cause: "null",
        })?;
        let mut slab = Slab {
            ptr,
            len_bytes,
            map_ptr,
            map_len_bytes,
            backed_bytes,
            huge_pages,
            registrar: None,
        };
        if huge_pages {
            slab.advise(libc::MADV_HUGEPAGE);
        }
        slab.populate();
        if let Some(registrar) = registrar {
            registrar
                .register(slab.ptr.as_ptr(), len_bytes)
                .map_err(|source| Error::SlabRegister {
                    bytes: len_bytes,
                    source,
                })?;
            slab.registrar = Some(registrar);
        }
        Ok(slab)
    }

    /// Start of the slab.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Size of the slab in bytes.
    pub(crate) fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    /// Whether the slab was aligned and advised for transparent huge pages.
    pub(crate) fn huge_pages(&self) -> bool {
        self.huge_pages
    }

    /// Views `len` bytes at `offset`.
    ///
    /// # Safety
    /// Nobody (thread or kernel) may write to that range while the returned slice lives.
    #[cfg(test)]
    pub(crate) unsafe fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset <= self.len_bytes && len <= self.len_bytes - offset);
        // SAFETY: the range lies inside the mapping (asserted), the mapping lives as long as
        // `self`, and the caller guarantees there is no concurrent writer.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) }
    }

    /// Bytes advised and pre-faulted (the slab rounded up to whole huge pages when it uses them).
    #[cfg(test)]
    fn backed_bytes(&self) -> usize {
        self.backed_bytes
    }

    fn advise(&self, advice: libc::c_int) -> bool {
        // SAFETY: the range is our own mapping (backed_bytes fit after ptr); madvise does not
        // invalidate anonymous memory for the advice values used here (HUGEPAGE, POPULATE_WRITE).
        let rc = unsafe { libc::madvise(self.ptr.as_ptr().cast(), self.backed_bytes, advice) };
        rc == 0
    }

    /// Faults every page in now, so reads never fault in the steady state.
    fn populate(&mut self) {
        if self.advise(libc::MADV_POPULATE_WRITE) {
            return;
        }
        // Kernels before 5.14: touch one byte per page.
        for offset in (0..self.backed_bytes).step_by(SLOT_ALIGN_BYTES) {
            // SAFETY: offset < backed_bytes lies inside our mapping, which nobody else uses yet.
            unsafe { self.ptr.as_ptr().add(offset).write_volatile(0) };
        }
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        if let Some(registrar) = self.registrar.take() {
            registrar.unregister(self.ptr.as_ptr(), self.len_bytes);
        }
        // SAFETY: map_ptr/map_len_bytes are exactly what mmap returned; by the time the slab is
        // dropped every reader thread has drained its reads (the ring outlives them).
        let rc = unsafe { libc::munmap(self.map_ptr, self.map_len_bytes) };
        debug_assert_eq!(rc, 0, "munmap of the slab failed");
    }
}

fn map_anonymous(len_bytes: usize) -> Result<*mut libc::c_void> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing aliases no
    // existing memory.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len_bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(Error::SlabMap {
            bytes: len_bytes,
            errno,
            cause: map_cause(errno),
        });
    }
    Ok(ptr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting {
        registered: AtomicUsize,
        unregistered: AtomicUsize,
    }

    impl SlabRegistrar for Counting {
        fn register(&self, _ptr: *mut u8, len_bytes: usize) -> Result<(), RegistrarError> {
            self.registered.fetch_add(len_bytes, Ordering::SeqCst);
            Ok(())
        }
        fn unregister(&self, _ptr: *mut u8, len_bytes: usize) {
            self.unregistered.fetch_add(len_bytes, Ordering::SeqCst);
        }
    }

    #[test]
    fn huge_slab_is_2mib_aligned_and_registered_once() {
        let registrar = Arc::new(Counting::default());
        let slab = Slab::new(4 << 20, Some(registrar.clone())).expect("map");
        assert_eq!(slab.ptr() as usize % HUGE_PAGE_BYTES, 0);
        assert!(slab.huge_pages());
        assert_eq!(registrar.registered.load(Ordering::SeqCst), 4 << 20);
        drop(slab);
        assert_eq!(registrar.unregistered.load(Ordering::SeqCst), 4 << 20);
    }

    #[test]
    fn huge_slab_is_backed_to_whole_huge_pages() {
        let slab = Slab::new(3 << 20, None).expect("map");
        assert_eq!(slab.len_bytes(), 3 << 20);
        assert_eq!(slab.backed_bytes(), 4 << 20, "no tail of 4 KiB pages");
        assert_eq!(slab.ptr() as usize % HUGE_PAGE_BYTES, 0);
        let exact = Slab::new(4 << 20, None).expect("map");
        assert_eq!(exact.backed_bytes(), 4 << 20);
    }

    #[test]
    fn small_slab_is_page_aligned_and_zeroed() {
        let slab = Slab::new(3 * 4096, None).expect("map");
        assert_eq!(slab.ptr() as usize % 4096, 0);
        assert!(!slab.huge_pages());
        assert_eq!(slab.backed_bytes(), slab.len_bytes());
        // SAFETY: nobody writes to the slab in this test.
        let bytes = unsafe { slab.bytes(0, slab.len_bytes()) };
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    fn refused_registration_is_an_error() {
        struct Refuse;
        impl SlabRegistrar for Refuse {
            fn register(&self, _: *mut u8, _: usize) -> Result<(), RegistrarError> {
                Err("no device".into())
            }
            fn unregister(&self, _: *mut u8, _: usize) {
                unreachable!("never registered");
            }
        }
        let err = Slab::new(4096, Some(Arc::new(Refuse)))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("no device"));
    }
}

//! Device measurements behind `sluice bench`: PCIe copy bandwidth here, kernel throughput in
//! `kernels`.
//!
//! Copies go both ways between device memory and host memory of two kinds: page-locked (a
//! page-aligned buffer registered with `cuMemHostRegister`, as the host ring's slab is) and
//! ordinary pageable memory, which the driver stages through its own pinned buffers. Each
//! series is one untimed warm-up copy, then `reps` copies on the copy stream between two timing
//! events; the rate is bytes copied over the time between the events (the stream is in order,
//! so the end event completes only after the last copy). Host and device buffers are allocated
//! once, for the largest size, and smaller sizes copy a prefix of them.
//!
//! This module and its child make raw copies and launches, so they hold `unsafe` blocks of
//! their own (each with its reasoning); the public API is safe.

mod kernels;

use std::sync::Arc;

use cudarc::driver::{result, CudaEvent, CudaStream};
use sluice_runtime::SlabRegistrar;

use super::device::{driver, probe, Device, DeviceBuffer, DeviceInfo};
use super::error::CudaError;

pub use super::figures::{
    CopyFigures, Direction, H2dFigures, HostMemory, KernelFigures, LinkFigures,
    DEVICE_RESERVE_BYTES,
};
pub use kernels::KernelBench;

/// Alignment of the page-locked host buffer: a page, as the ring's slots are.
const HOST_ALIGN_BYTES: usize = 4096;

/// Page-locked host → device and device → host GB/s, `reps` copies of `bytes` each way (less
/// than `bytes` when the device has less free memory; [`LinkFigures::bytes`] says).
pub fn pcie_link(bytes: usize, reps: usize) -> Result<LinkFigures, CudaError> {
    let mut bench = PcieBench::open(bytes)?;
    let (bytes, reps) = (bench.usable(bytes)?, reps.max(1));
    Ok(LinkFigures {
        bytes,
        h2d_gb_per_s: bench.rate(Direction::HostToDevice, HostMemory::PageLocked, bytes, reps)?,
        d2h_gb_per_s: bench.rate(Direction::DeviceToHost, HostMemory::PageLocked, bytes, reps)?,
    })
}

/// Copies `bytes` to the device `reps` times from each kind of memory (less than `bytes` when
/// the device has less free memory; [`H2dFigures::bytes`] says).
pub fn h2d(bytes: usize, reps: usize) -> Result<H2dFigures, CudaError> {
    use HostMemory::{PageLocked, Pageable};
    let mut bench = PcieBench::open(bytes)?;
    let (bytes, reps) = (bench.usable(bytes)?, reps.max(1));
    let mut rate = |mem| bench.rate(Direction::HostToDevice, mem, bytes, reps);
    Ok(H2dFigures {
        bytes,
        pinned_gb_per_s: rate(PageLocked)?,
        pageable_gb_per_s: rate(Pageable)?,
    })
}

/// Buffers for copies of up to [`PcieBench::bytes_max`] bytes on device 0.
pub struct PcieBench {
    info: DeviceInfo,
    free_device_bytes: u64,
    device_buf: DeviceBuffer,
    pinned: PinnedHost,
    pageable: Vec<u8>,
    // Last, so the buffers above are freed while its context is still held.
    dev: Device,
}

impl PcieBench {
    /// Opens device 0 and allocates `bytes_wanted` on it (less if less is free, keeping
    /// [`DEVICE_RESERVE_BYTES`] free) and twice that on the host, half of it page-locked.
    pub fn open(bytes_wanted: usize) -> Result<PcieBench, CudaError> {
        let info = probe()?;
        let dev = Device::open(info.ordinal)?;
        let (free_device_bytes, _) = dev.mem_info()?;
        let fit_bytes = free_device_bytes.saturating_sub(DEVICE_RESERVE_BYTES);
        let bytes_max = bytes_wanted.min(usize::try_from(fit_bytes).unwrap_or(usize::MAX));
        let device_buf = dev.alloc(bytes_max)?;
        let pinned = PinnedHost::new(&dev, bytes_max)?;
        Ok(PcieBench {
            info,
            free_device_bytes,
            device_buf,
            pinned,
            pageable: vec![1u8; bytes_max],
            dev,
        })
    }

    /// The device measured.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Free device memory when the bench was opened (before its own buffer).
    pub fn free_device_bytes(&self) -> u64 {
        self.free_device_bytes
    }

    /// The largest copy the buffers hold.
    pub fn bytes_max(&self) -> usize {
        self.device_buf.bytes()
    }

    /// `bytes` (at least 1) cut to what the buffers hold; an error when they hold nothing.
    fn usable(&self, bytes: usize) -> Result<usize, CudaError> {
        assert!(bytes > 0, "a copy of 0 bytes measures nothing");
        match bytes.min(self.bytes_max()) {
            0 => Err(CudaError::OutOfMemory(format!(
                "{} bytes are free and {DEVICE_RESERVE_BYTES} are kept in reserve, which leaves \
                 nothing to copy into",
                self.free_device_bytes
            ))),
            n => Ok(n),
        }
    }

    /// All four series at one size.
    pub fn measure(&mut self, bytes: usize, reps: usize) -> Result<CopyFigures, CudaError> {
        use Direction::{DeviceToHost as D2h, HostToDevice as H2d};
        use HostMemory::{PageLocked, Pageable};
        Ok(CopyFigures {
            bytes,
            reps,
            h2d_pinned_gb_per_s: self.rate(H2d, PageLocked, bytes, reps)?,
            h2d_pageable_gb_per_s: self.rate(H2d, Pageable, bytes, reps)?,
            d2h_pinned_gb_per_s: self.rate(D2h, PageLocked, bytes, reps)?,
            d2h_pageable_gb_per_s: self.rate(D2h, Pageable, bytes, reps)?,
        })
    }

    /// GB/s of `reps` copies of `bytes` (1..=[`Self::bytes_max`]) one way, after one untimed
    /// copy (first-touch and staging-buffer setup are not bandwidth).
    pub fn rate(
        &mut self,
        dir: Direction,
        mem: HostMemory,
        bytes: usize,
        reps: usize,
    ) -> Result<f64, CudaError> {
        assert!(bytes > 0 && bytes <= self.bytes_max() && reps > 0);
        self.dev
            .ctx
            .bind_to_thread()
            .map_err(driver("cuCtxSetCurrent"))?;
        let timed = self.timed_copies(dir, mem, bytes, reps);
        // Every copy has finished before any buffer can be reused or freed, even on an error.
        let synced = self
            .dev
            .copy
            .synchronize()
            .map_err(driver("cuStreamSynchronize"));
        let ms = timed?;
        synced?;
        gb_per_s(bytes as f64 * reps as f64, ms)
    }

    /// Milliseconds between events around `reps` copies, after one untimed copy.
    fn timed_copies(
        &mut self,
        dir: Direction,
        mem: HostMemory,
        bytes: usize,
        reps: usize,
    ) -> Result<f32, CudaError> {
        self.copy(dir, mem, bytes)?;
        let (start, end) = self.events()?;
        start
            .record(&self.dev.copy)
            .map_err(driver("cuEventRecord"))?;
        for _ in 0..reps {
            self.copy(dir, mem, bytes)?;
        }
        end.record(&self.dev.copy)
            .map_err(driver("cuEventRecord"))?;
        start.elapsed_ms(&end).map_err(driver("cuEventElapsedTime"))
    }

    fn events(&self) -> Result<(CudaEvent, CudaEvent), CudaError> {
        Ok((self.dev.timing_event()?, self.dev.timing_event()?))
    }

    /// Queues one copy of the first `bytes` on the copy stream.
    fn copy(&mut self, dir: Direction, mem: HostMemory, bytes: usize) -> Result<(), CudaError> {
        let host = match mem {
            HostMemory::PageLocked => &mut self.pinned.bytes_mut()[..bytes],
            HostMemory::Pageable => &mut self.pageable[..bytes],
        };
        let stream: &CudaStream = &self.dev.copy;
        match dir {
            Direction::HostToDevice => self.device_buf.copy_in(stream, 0, host),
            Direction::DeviceToHost => {
                // SAFETY: the source is the first `bytes` of `device_buf` (bytes <= its size,
                // asserted in `rate`); the destination is memory `self` owns, which nothing else
                // touches while `rate` holds `&mut self`, and `rate` synchronises the stream
                // before returning (on errors too), so the copy ends before the memory can be
                // reused; `Drop` synchronises once more before freeing it.
                unsafe {
                    result::memcpy_dtoh_async(host, self.device_buf.at(0), stream.cu_stream())
                }
                .map_err(driver("cuMemcpyDtoHAsync"))
            }
        }
    }
}

impl Drop for PcieBench {
    fn drop(&mut self) {
        if let Err(e) = self.dev.copy.synchronize() {
            log::warn!("waiting for the PCIe bench's copies: {e}");
        }
    }
}

/// A page-aligned host buffer page-locked with `cuMemHostRegister` (through the device's
/// registrar, as the host ring's slab is), unregistered on drop.
struct PinnedHost {
    /// Never resized: the registration covers its storage.
    buf: Vec<u8>,
    offset: usize,
    len: usize,
    registered_bytes: usize,
    registrar: Arc<dyn SlabRegistrar>,
}

impl PinnedHost {
    /// `len` bytes (at least one page is locked).
    fn new(dev: &Device, len: usize) -> Result<PinnedHost, CudaError> {
        let registered_bytes = len.max(1).next_multiple_of(HOST_ALIGN_BYTES);
        let mut buf = vec![1u8; registered_bytes + HOST_ALIGN_BYTES];
        let misalign_bytes = buf.as_ptr() as usize % HOST_ALIGN_BYTES;
        let offset = (HOST_ALIGN_BYTES - misalign_bytes) % HOST_ALIGN_BYTES;
        let registrar = dev.registrar();
        registrar
            .register(buf[offset..].as_mut_ptr(), registered_bytes)
            .map_err(|e| CudaError::Driver {
                call: "cuMemHostRegister",
                detail: e.to_string(),
            })?;
        Ok(PinnedHost {
            buf,
            offset,
            len,
            registered_bytes,
            registrar,
        })
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.offset..self.offset + self.len]
    }
}

impl Drop for PinnedHost {
    fn drop(&mut self) {
        let ptr = self.buf[self.offset..].as_mut_ptr();
        self.registrar.unregister(ptr, self.registered_bytes);
    }
}

/// GB/s of `bytes` moved in `ms` milliseconds (an error for a clock that did not advance).
fn gb_per_s(bytes: f64, ms: f32) -> Result<f64, CudaError> {
    if ms.is_nan() || ms <= 0.0 {
        return Err(CudaError::Driver {
            call: "cuEventElapsedTime",
            detail: format!("{ms} ms elapsed for {bytes} bytes"),
        });
    }
    Ok(bytes / 1e9 / (f64::from(ms) / 1e3))
}

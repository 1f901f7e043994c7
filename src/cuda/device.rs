//! The CUDA leaf module: driver probe, context and streams, device buffers, the kernel module,
//! raw launches and host-memory registration. Every `unsafe` block of the backend is here.
//!
//! The driver is loaded with dlopen at first use (cudarc's `dynamic-loading`), and cudarc
//! panics when the library is missing, so [`probe`] checks for it before anything else touches
//! the driver. Event tracking is switched off: the backend orders its two streams itself with
//! events, and device memory is raw [`DeviceBuffer`]s.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use cudarc::driver::sys::{self, CUevent_flags};
use cudarc::driver::{result, CudaContext, CudaEvent, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;
use sluice_runtime::{RegistrarError, SlabRegistrar};

use super::error::CudaError;
use super::fatbin;
use super::launch::Launch;

/// What [`probe`] found.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Device ordinal used (always 0 for now).
    pub ordinal: usize,
    /// The device's name.
    pub name: String,
    /// (major, minor).
    pub compute_capability: (i32, i32),
    /// Total device memory.
    pub total_bytes: u64,
}

/// Maps a driver error to [`CudaError::Driver`].
pub(crate) fn driver(call: &'static str) -> impl FnOnce(result::DriverError) -> CudaError {
    move |e| CudaError::Driver {
        call,
        detail: e.to_string(),
    }
}

/// Whether the driver library can be loaded; cudarc panics on first use otherwise.
fn driver_present() -> bool {
    // SAFETY: only tries to dlopen libcuda under its usual names and drops the handle; no
    // symbol of it is called.
    unsafe { sys::is_culib_present() }
}

/// Checks, without panicking, that kernels were built in, a driver is installed and it sees a
/// device; returns the first device's description.
pub fn probe() -> Result<DeviceInfo, CudaError> {
    if let Some(why) = fatbin::missing_reason() {
        return Err(CudaError::Unavailable(why.into()));
    }
    if !driver_present() {
        return Err(CudaError::Unavailable(
            "no CUDA driver (libcuda.so) is installed".into(),
        ));
    }
    let count = CudaContext::device_count()
        .map_err(|e| CudaError::Unavailable(format!("the CUDA driver reports {e}")))?;
    if count < 1 {
        return Err(CudaError::Unavailable(
            "the CUDA driver sees no device".into(),
        ));
    }
    let ctx = CudaContext::new(0).map_err(|e| {
        CudaError::Unavailable(format!("creating a context on device 0 failed: {e}"))
    })?;
    Ok(DeviceInfo {
        ordinal: 0,
        name: ctx.name().map_err(driver("cuDeviceGetName"))?,
        compute_capability: ctx
            .compute_capability()
            .map_err(driver("cuDeviceGetAttribute"))?,
        total_bytes: ctx.total_mem().map_err(driver("cuDeviceTotalMem"))? as u64,
    })
}

/// A context with a copy stream and a compute stream, and the kernels loaded.
pub struct Device {
    pub(crate) ctx: Arc<CudaContext>,
    /// Host→device weight copies.
    pub(crate) copy: Arc<CudaStream>,
    /// Kernels and activation transfers.
    pub(crate) compute: Arc<CudaStream>,
    _module: Arc<CudaModule>,
    functions: HashMap<String, CudaFunction>,
}

impl Device {
    /// Opens device `ordinal` (after [`probe`] succeeded) and loads every kernel.
    pub fn open(ordinal: usize) -> Result<Device, CudaError> {
        if !driver_present() {
            return Err(CudaError::Unavailable(
                "no CUDA driver (libcuda.so) is installed".into(),
            ));
        }
        let image = fatbin::FATBIN
            .ok_or_else(|| CudaError::Unavailable(fatbin::missing_reason().unwrap_or("").into()))?;
        let ctx = CudaContext::new(ordinal).map_err(driver("cuCtxRetain"))?;
        // SAFETY: called before any slice or stream exists; the backend orders its streams with
        // its own events and never hands cudarc slices across streams.
        unsafe { ctx.disable_event_tracking() };
        let copy = ctx.new_stream().map_err(driver("cuStreamCreate"))?;
        let compute = ctx.new_stream().map_err(driver("cuStreamCreate"))?;
        let module = ctx
            .load_module(Ptx::from_binary(image.to_vec()))
            .map_err(driver("cuModuleLoadData"))?;
        let mut functions = HashMap::new();
        for name in fatbin::kernel_names() {
            let f = module
                .load_function(&name)
                .map_err(driver("cuModuleGetFunction"))?;
            functions.insert(name, f);
        }
        Ok(Device {
            ctx,
            copy,
            compute,
            _module: module,
            functions,
        })
    }

    /// The compute stream (kernels and activation transfers).
    pub fn compute(&self) -> &Arc<CudaStream> {
        &self.compute
    }

    /// The copy stream (weights, host to device).
    pub fn copy(&self) -> &Arc<CudaStream> {
        &self.copy
    }

    /// Free and total device memory.
    pub fn mem_info(&self) -> Result<(u64, u64), CudaError> {
        let (free, total) = self.ctx.mem_get_info().map_err(driver("cuMemGetInfo"))?;
        Ok((free as u64, total as u64))
    }

    /// Resolves a launch shape to its function, once, for launching many times.
    pub fn kernel(&self, l: &Launch) -> Result<Kernel, CudaError> {
        let f =
            self.functions.get(&l.name).cloned().ok_or_else(|| {
                CudaError::Unsupported(format!("the kernel image has no {}", l.name))
            })?;
        Ok(Kernel {
            f,
            grid: l.grid,
            block: l.block,
            shared_mem_bytes: l.shared_mem_bytes,
        })
    }

    /// An event for ordering only (no timing).
    pub fn event(&self) -> Result<CudaEvent, CudaError> {
        self.ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DISABLE_TIMING))
            .map_err(driver("cuEventCreate"))
    }

    /// An event that can time.
    pub fn timing_event(&self) -> Result<CudaEvent, CudaError> {
        self.ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(driver("cuEventCreate"))
    }

    /// Allocates `bytes` of device memory (uninitialised).
    pub fn alloc(&self, bytes: usize) -> Result<DeviceBuffer, CudaError> {
        self.ctx
            .bind_to_thread()
            .map_err(driver("cuCtxSetCurrent"))?;
        // SAFETY: plain allocation on the bound context; the buffer frees it on drop.
        let ptr = unsafe { result::malloc_sync(bytes.max(1)) }.map_err(driver("cuMemAlloc"))?;
        Ok(DeviceBuffer {
            ptr,
            bytes,
            ctx: self.ctx.clone(),
        })
    }

    /// A registrar that page-locks host ring slabs for this device's context.
    pub fn registrar(&self) -> Arc<dyn SlabRegistrar> {
        Arc::new(PageLocker {
            ctx: self.ctx.clone(),
        })
    }
}

/// A device allocation, freed on drop.
pub struct DeviceBuffer {
    ptr: sys::CUdeviceptr,
    bytes: usize,
    ctx: Arc<CudaContext>,
}

impl DeviceBuffer {
    /// Device address of byte `offset` (checked against the size).
    pub fn at(&self, offset: u64) -> sys::CUdeviceptr {
        assert!(
            offset <= self.bytes as u64,
            "offset {offset} past {} bytes",
            self.bytes
        );
        self.ptr + offset
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Copies `src` to byte `offset` on `stream`. `src` must stay unchanged until an event
    /// recorded after this call completes (it may be page-locked and read asynchronously).
    pub fn copy_in<T: Copy>(
        &self,
        stream: &CudaStream,
        offset: u64,
        src: &[T],
    ) -> Result<(), CudaError> {
        let len = std::mem::size_of_val(src) as u64;
        assert!(offset + len <= self.bytes as u64, "copy past the buffer");
        if src.is_empty() {
            return Ok(());
        }
        // SAFETY: the destination range lies inside this allocation (asserted); the caller keeps
        // `src` alive and unmodified until the copy's event completes (see `Loans`).
        unsafe { result::memcpy_htod_async(self.ptr + offset, src, stream.cu_stream()) }
            .map_err(driver("cuMemcpyHtoDAsync"))
    }

    /// Copies `dst.len()` elements from byte `offset` to the host and waits for them.
    pub fn copy_out<T: Copy>(
        &self,
        stream: &CudaStream,
        offset: u64,
        dst: &mut [T],
    ) -> Result<(), CudaError> {
        assert!(offset + std::mem::size_of_val(dst) as u64 <= self.bytes as u64);
        // SAFETY: the source range lies inside this allocation; `dst` is exclusively borrowed
        // until the stream is synchronised below.
        unsafe { result::memcpy_dtoh_async(dst, self.ptr + offset, stream.cu_stream()) }
            .map_err(driver("cuMemcpyDtoHAsync"))?;
        stream.synchronize().map_err(driver("cuStreamSynchronize"))
    }

    /// Zeroes the buffer on `stream`.
    pub fn zero(&self, stream: &CudaStream) -> Result<(), CudaError> {
        // SAFETY: the whole range is this allocation.
        unsafe { result::memset_d8_async(self.ptr, 0, self.bytes, stream.cu_stream()) }
            .map_err(driver("cuMemsetD8Async"))
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_err() {
            return;
        }
        // SAFETY: `ptr` came from cuMemAlloc on this context and is freed once; callers
        // synchronise the streams that use it before dropping (the backend does on drop).
        if let Err(e) = unsafe { result::free_sync(self.ptr) } {
            log::warn!("freeing {} bytes of device memory: {e}", self.bytes);
        }
    }
}

/// A launch shape resolved to its function.
pub struct Kernel {
    f: CudaFunction,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    shared_mem_bytes: u32,
}

/// A kernel argument: a pointer to the value, as `cuLaunchKernel` takes them.
pub fn arg<T>(v: &T) -> *mut c_void {
    (v as *const T).cast_mut().cast()
}

impl Kernel {
    /// Launches on `stream` with `args` (pointers to each argument, from [`arg`]).
    ///
    /// # Safety
    /// `args` must match the kernel's parameter list in `kernels/README.md` in number, order and
    /// type, every device pointer must cover what the kernel reads and writes for this shape,
    /// and the values pointed to must live until this call returns.
    pub unsafe fn launch(
        &self,
        stream: &CudaStream,
        args: &mut [*mut c_void],
    ) -> Result<(), CudaError> {
        // SAFETY: the caller guarantees the argument list; the function belongs to a module
        // loaded on the stream's context.
        unsafe {
            result::launch_kernel(
                self.f.cu_function(),
                self.grid,
                self.block,
                self.shared_mem_bytes,
                stream.cu_stream(),
                args,
            )
        }
        .map_err(driver("cuLaunchKernel"))
    }
}

/// Page-locks a host ring's slab with `cuMemHostRegister` (not `cuMemHostAlloc`, whose
/// write-combined memory is slow for the CPU to read), so the copy stream DMAs from it directly.
struct PageLocker {
    ctx: Arc<CudaContext>,
}

impl SlabRegistrar for PageLocker {
    fn register(&self, ptr: *mut u8, len_bytes: usize) -> Result<(), RegistrarError> {
        self.ctx.bind_to_thread()?;
        // SAFETY: the runtime passes its own mapped, page-aligned slab, which stays mapped until
        // `unregister` is called.
        unsafe {
            sys::cuMemHostRegister_v2(ptr.cast(), len_bytes, sys::CU_MEMHOSTREGISTER_PORTABLE)
                .result()?
        };
        Ok(())
    }

    fn unregister(&self, ptr: *mut u8, len_bytes: usize) {
        if self.ctx.bind_to_thread().is_err() {
            return;
        }
        // SAFETY: `ptr` was registered by `register` above and is unregistered once.
        if let Err(e) = unsafe { sys::cuMemHostUnregister(ptr.cast()).result() } {
            log::warn!("unregistering {len_bytes} bytes of host memory: {e}");
        }
    }
}

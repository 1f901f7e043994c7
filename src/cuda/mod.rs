//! The CUDA backend.
//!
//! Device side: the embedded kernel image ([`fatbin`]) and the launch shapes of every kernel
//! ([`launch`]); the kernels live in `kernels/` (ABI in `kernels/README.md`), and their
//! per-block math is also compiled for the host and checked against the CPU reference by the
//! tests in `host_check`.
//!
//! Host side (cudarc, driver loaded at run time): [`device`] probes for a driver and a GPU
//! without panicking, owns the context, the copy and compute streams, device buffers, raw
//! launches and `cuMemHostRegister` page-locking of the host ring; [`layout`] places a layer's
//! tensors in a device buffer and rotates the device ring (pure); [`release`] holds streamed
//! host slots until their copies complete (pure); [`backend`] runs the forward pass; [`bench`](mod@bench)
//! measures the PCIe link and the kernels' throughput for `sluice bench`. Without the `cuda`
//! feature a stub twin with the same names reports why there is no GPU, so the engine, the
//! bench harness and their tests build everywhere.

pub mod error;
pub mod fatbin;
mod figures;
pub mod launch;
pub mod layout;
pub mod release;
pub use crate::engine::layer_times as timing;

#[cfg(feature = "cuda")]
pub mod backend;
#[cfg(feature = "cuda")]
pub mod bench;
#[cfg(feature = "cuda")]
mod clock;
#[cfg(feature = "cuda")]
pub mod device;
#[cfg(not(feature = "cuda"))]
mod stub;

#[cfg(feature = "cuda")]
pub use backend::{CudaBackend, DeviceState};
#[cfg(feature = "cuda")]
pub use device::{probe, DeviceInfo};
pub use error::CudaError;
#[cfg(not(feature = "cuda"))]
pub use stub::{bench, probe, CudaBackend, DeviceInfo, DeviceState};

#[cfg(test)]
mod host_check;

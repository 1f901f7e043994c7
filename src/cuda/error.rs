//! The CUDA backend's error type, shared by the real backend and its stub twin (driver errors
//! are carried as text so the stub needs no cudarc).

use super::launch::ShapeError;
use super::layout::LayoutError;

/// Why the CUDA backend cannot start or failed while running.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// No usable GPU: no driver, no device, no kernels, or a build without the `cuda` feature.
    #[error("no usable CUDA device: {0}")]
    Unavailable(String),
    /// A CUDA driver call failed.
    #[error("CUDA {call} failed: {detail}")]
    Driver {
        /// What was being done.
        call: &'static str,
        /// The driver's error.
        detail: String,
    },
    /// The model has something the device kernels do not take.
    #[error("the CUDA backend cannot run this model: {0}")]
    Unsupported(String),
    /// Too little device memory is free for what was asked (a measurement's buffers).
    #[error("not enough free device memory: {0}")]
    OutOfMemory(String),
    /// A kernel refused the model's dimensions.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// A layer's tensors cannot be placed on the device.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Reading weights failed.
    #[error("reading weights: {0}")]
    Io(#[from] sluice_runtime::Error),
}

impl CudaError {
    /// Whether this means "there is no GPU to use" rather than a failure while using one.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CudaError::Unavailable(_))
    }
}

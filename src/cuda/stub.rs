//! The stub twin of the CUDA backend for builds without the `cuda` feature: the same names and
//! signatures, and a probe that says why there is no GPU. No value of [`CudaBackend`] or
//! [`DeviceState`] (nor of the benches in [`bench`]) can exist, so their methods are never
//! reached.

use std::convert::Infallible;
use std::sync::Arc;

use sluice_loader::extents::LayerExtents;
use sluice_runtime::{SlabRegistrar, SlotGuard};

use super::error::CudaError;
use super::release::Loans;
use crate::engine::executor::{Globals, SweepTimes};
use crate::engine::store::{Held, WeightStore};
use crate::engine::tiers::TierPlan;
use crate::model::forward::Config;
use crate::model::weights::Tensor;

const NOT_BUILT: &str = "sluice was built without the `cuda` feature";

/// What a probe found (never constructed in this build).
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// The device's name.
    pub name: String,
    /// (major, minor).
    pub compute_capability: (i32, i32),
    /// Total device memory.
    pub total_bytes: u64,
}

/// Always "unavailable": this build has no CUDA support.
pub fn probe() -> Result<DeviceInfo, CudaError> {
    Err(CudaError::Unavailable(NOT_BUILT.into()))
}

/// The CUDA backend's stand-in; cannot be created.
pub struct CudaBackend {
    never: Infallible,
}

/// Device buffers of a generation; cannot be created.
pub struct DeviceState {
    _never: Infallible,
}

impl CudaBackend {
    /// Always fails: this build has no CUDA support.
    pub fn new(_extents: &LayerExtents, _cfg: &Config) -> Result<CudaBackend, CudaError> {
        Err(CudaError::Unavailable(NOT_BUILT.into()))
    }

    /// Unreachable.
    pub fn info(&self) -> &DeviceInfo {
        match self.never {}
    }

    /// Unreachable.
    pub fn registrar(&self) -> Arc<dyn SlabRegistrar> {
        match self.never {}
    }

    /// Unreachable.
    pub fn layer_bytes(&self) -> &[u64] {
        match self.never {}
    }

    /// Unreachable.
    pub fn plan_tiers(
        &mut self,
        _cfg: &Config,
        _n_ctx: usize,
        _global_bytes: u64,
        _vram_budget: Option<u64>,
        _ram_budget: u64,
    ) -> Result<&TierPlan, CudaError> {
        match self.never {}
    }

    /// Unreachable.
    pub fn tiers(&self) -> Option<&TierPlan> {
        match self.never {}
    }

    /// Unreachable.
    pub fn time_layers(&mut self) -> Result<(), CudaError> {
        match self.never {}
    }

    /// Unreachable.
    pub fn layer_times(&self) -> Option<&crate::engine::layer_times::PipelineTimes> {
        match self.never {}
    }

    /// Unreachable.
    pub fn start(
        &mut self,
        _cfg: &Config,
        _globals: &Globals<'_>,
        _batch_max: usize,
        _n_ctx: usize,
    ) -> Result<DeviceState, CudaError> {
        match self.never {}
    }

    /// Unreachable.
    #[allow(clippy::too_many_arguments)]
    pub fn sweep<'s>(
        &mut self,
        _cfg: &Config,
        _extents: &LayerExtents,
        _store: &'s WeightStore,
        _held: &Held<'_>,
        _token_embd: &Tensor<'_>,
        _tokens: &[u32],
        _pos0: usize,
        _st: &mut DeviceState,
        _loans: &mut Loans<SlotGuard<'s>>,
        _logits: &mut [f32],
        _times: &mut SweepTimes,
    ) -> Result<(), CudaError> {
        match self.never {}
    }
}

/// The stub twin of `cuda::bench`: the same names; opening a bench says why there is no GPU.
pub mod bench {
    use std::convert::Infallible;

    use sluice_loader::GgmlType;

    use super::{DeviceInfo, NOT_BUILT};
    use crate::cuda::error::CudaError;
    pub use crate::cuda::figures::{
        CopyFigures, Direction, H2dFigures, HostMemory, KernelFigures, LinkFigures,
        DEVICE_RESERVE_BYTES,
    };

    fn unavailable() -> CudaError {
        CudaError::Unavailable(NOT_BUILT.into())
    }

    /// Always "unavailable": this build has no CUDA support.
    pub fn pcie_link(_bytes: usize, _reps: usize) -> Result<LinkFigures, CudaError> {
        Err(unavailable())
    }

    /// Always "unavailable": this build has no CUDA support.
    pub fn h2d(_bytes: usize, _reps: usize) -> Result<H2dFigures, CudaError> {
        Err(unavailable())
    }

    /// The PCIe bench's stand-in; cannot be created.
    pub struct PcieBench {
        never: Infallible,
    }

    impl PcieBench {
        /// Always fails: this build has no CUDA support.
        pub fn open(_bytes_wanted: usize) -> Result<PcieBench, CudaError> {
            Err(unavailable())
        }

        /// Unreachable.
        pub fn info(&self) -> &DeviceInfo {
            match self.never {}
        }

        /// Unreachable.
        pub fn free_device_bytes(&self) -> u64 {
            match self.never {}
        }

        /// Unreachable.
        pub fn bytes_max(&self) -> usize {
            match self.never {}
        }

        /// Unreachable.
        pub fn measure(&mut self, _bytes: usize, _reps: usize) -> Result<CopyFigures, CudaError> {
            match self.never {}
        }

        /// Unreachable.
        pub fn rate(
            &mut self,
            _dir: Direction,
            _mem: HostMemory,
            _bytes: usize,
            _reps: usize,
        ) -> Result<f64, CudaError> {
            match self.never {}
        }
    }

    /// The kernel bench's stand-in; cannot be created.
    pub struct KernelBench {
        never: Infallible,
    }

    impl KernelBench {
        /// Always fails: this build has no CUDA support.
        pub fn open() -> Result<KernelBench, CudaError> {
            Err(unavailable())
        }

        /// Unreachable.
        pub fn info(&self) -> &DeviceInfo {
            match self.never {}
        }

        /// Unreachable.
        pub fn mem_gb_per_s(&self, _bytes: usize, _seconds: f64) -> Result<f64, CudaError> {
            match self.never {}
        }

        /// Unreachable.
        pub fn measure(
            &self,
            _ty: GgmlType,
            _row_elems: usize,
            _n_rows: usize,
            _weights: &[u8],
            _seconds: f64,
        ) -> Result<KernelFigures, CudaError> {
            match self.never {}
        }
    }
}

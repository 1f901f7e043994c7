//! Plain results of the device measurements in [`super::bench`], shared by it and its stub
//! twin so that the `sluice bench` harness reads the same types in every build.

use sluice_loader::GgmlType;

/// Device memory left free when sizing the copy buffer (what the driver, the kernel image and
/// other processes may still need).
pub const DEVICE_RESERVE_BYTES: u64 = 256 << 20;

/// Which way a copy goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Host memory to device memory.
    HostToDevice,
    /// Device memory to host memory.
    DeviceToHost,
}

/// Which kind of host memory a copy reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMemory {
    /// Registered with `cuMemHostRegister`: the device DMAs to and from it directly.
    PageLocked,
    /// Ordinary memory: the driver stages each copy through a pinned buffer of its own.
    Pageable,
}

/// The four rates at one copy size.
#[derive(Clone, Copy, Debug)]
pub struct CopyFigures {
    /// Bytes per copy.
    pub bytes: usize,
    /// Copies timed per series.
    pub reps: usize,
    /// Host → device from page-locked memory.
    pub h2d_pinned_gb_per_s: f64,
    /// Host → device from pageable memory.
    pub h2d_pageable_gb_per_s: f64,
    /// Device → host into page-locked memory.
    pub d2h_pinned_gb_per_s: f64,
    /// Device → host into pageable memory.
    pub d2h_pageable_gb_per_s: f64,
}

/// The link as the engine uses it: page-locked copies both ways at one size.
#[derive(Clone, Copy, Debug)]
pub struct LinkFigures {
    /// Bytes per copy (the size asked for, or less where the device had less free memory).
    pub bytes: usize,
    /// Host → device from page-locked memory (the weight stream's direction).
    pub h2d_gb_per_s: f64,
    /// Device → host into page-locked memory.
    pub d2h_gb_per_s: f64,
}

/// Measured host → device rates (the older, H2D-only form of [`CopyFigures`]).
#[derive(Clone, Copy, Debug)]
pub struct H2dFigures {
    /// Bytes per copy.
    pub bytes: usize,
    /// From registered (page-locked) memory.
    pub pinned_gb_per_s: f64,
    /// From ordinary pageable memory.
    pub pageable_gb_per_s: f64,
}

/// One weight type's device figures.
#[derive(Clone, Copy, Debug)]
pub struct KernelFigures {
    /// The weight type.
    pub ty: GgmlType,
    /// Bytes of the weight matrix.
    pub weight_bytes: usize,
    /// Weight bytes per second turned into f16 by `dequant_<t>_f16`.
    pub dequant_gb_per_s: f64,
    /// Weight bytes per second through the one-token matvec.
    pub matvec_gb_per_s: f64,
}

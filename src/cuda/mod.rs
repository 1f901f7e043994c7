//! The CUDA backend's device side: the embedded kernel image ([`fatbin`]) and the launch
//! shapes of every kernel ([`launch`]). The kernels live in `kernels/` (ABI in
//! `kernels/README.md`); their per-block math is also compiled for the host and checked
//! against the CPU reference by the tests in `host_check`. The host side (contexts, streams,
//! memory) is not here yet.

pub mod fatbin;
pub mod launch;

#[cfg(test)]
mod host_check;

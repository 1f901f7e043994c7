//! sluice: run LLMs larger than memory by streaming their layers from NVMe.
//!
//! Data flows disk → `sluice_runtime` (extents into a ring of host buffers) → backend
//! (`cpu`) → engine (model graph, executor, sampler) → the user (`api` for programs, `cli`,
//! `serve`).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod api;
pub mod cli;
pub mod cpu;
pub mod cuda;
pub mod engine;
pub mod eval;
pub mod model;
pub mod serve;

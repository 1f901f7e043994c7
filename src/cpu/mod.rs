//! The CPU backend's numeric kernels: activation quantisers, quantised dot products with bit-
//! identical scalar and AVX2 paths, and a threaded matrix × activations product.
//!
//! Numerics mirror llama.cpp's x86 AVX2 CPU path (gguf-facts §3): the same activation formats
//! and rounding, exact integer block sums, and the same f32 operations in the same order, so
//! greedy decoding can reproduce llama.cpp's tokens.

mod acts;
mod dispatch;
pub mod dot;
mod error;
pub mod quantize;
#[cfg(target_arch = "x86_64")]
mod simd;

#[cfg(test)]
mod tests;

pub use acts::{quantize_acts, quantize_acts_with, QuantizedActs, ACT_BYTES_PER_ELEM_MAX};
pub use dispatch::{Isa, SIMD_ENV};
pub use dot::{vec_dot_type, vec_dot_with};
pub use error::CpuError;

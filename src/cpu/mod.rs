//! The CPU backend's numeric kernels: activation quantisers, quantised dot products with bit-
//! identical scalar and AVX2 paths, and a threaded matrix × activations product.
//!
//! Numerics mirror llama.cpp's x86 AVX2 CPU path (gguf-facts §3): the same activation formats
//! and rounding, exact integer block sums, and the same f32 operations in the same order, so
//! greedy decoding can reproduce llama.cpp's tokens.

mod dispatch;
pub mod quantize;
#[cfg(target_arch = "x86_64")]
mod simd;

#[cfg(test)]
mod tests;

pub use dispatch::{Isa, SIMD_ENV};

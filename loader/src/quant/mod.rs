//! Quantised block formats and scalar reference dequantisation to f32.
//!
//! The scalar code here is the reference every SIMD and CUDA kernel is tested against.

pub mod blocks;
pub mod dequant;

pub use blocks::{
    as_blocks, as_blocks_mut, bf16_le, block_bytes, f16_le, q3k_scales, scale_min_k4, Block,
};
pub use dequant::{dequantize_row, DequantError};

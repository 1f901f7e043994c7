//! The CPU backend's numeric kernels: activation quantisers, quantised dot products with bit-
//! identical scalar and AVX2 paths, and a threaded matrix × activations product.
//!
//! Numerics mirror llama.cpp's x86 AVX2 CPU path (gguf-facts §3): the same activation formats
//! and rounding, exact integer block sums, and the same f32 operations in the same order, so
//! greedy decoding can reproduce llama.cpp's tokens. How the engine runs one layer's weight:
//!
//! ```no_run
//! # use sluice::cpu::{quantize_acts, matmul, QuantizedActs, ThreadPool, WeightView};
//! # use sluice_loader::GgmlType;
//! # fn demo(bytes: &[u8], x: &[f32], out: &mut [f32]) -> Result<(), sluice::cpu::CpuError> {
//! let pool = ThreadPool::new(2);                      // once per process
//! let mut acts = QuantizedActs::for_shape(512, 1536); // once: max tokens × max row length
//! let w = WeightView::file(GgmlType::Q4_1, 576, 1536, bytes);
//! quantize_acts(w.ty, x, 5, &mut acts)?;              // x: 5 tokens × 576, row-major
//! matmul(&w, &acts, out, &pool)?;                     // out: 5 tokens × 1536
//! # Ok(()) }
//! ```

mod acts;
mod dispatch;
pub mod dot;
mod error;
mod f16_table;
pub mod gemm_f16;
mod matmul;
pub mod membw;
mod pool;
pub mod quantize;
pub mod rows16;
#[cfg(target_arch = "x86_64")]
mod simd;
pub mod synth;

#[cfg(test)]
mod tests;

pub use acts::{quantize_acts, quantize_acts_with, QuantizedActs, ACT_BYTES_PER_ELEM_MAX};
pub use dispatch::{Isa, SIMD_ENV};
pub use dot::{vec_dot_multi_with, vec_dot_type, vec_dot_with};
pub use error::CpuError;
pub use matmul::{
    matmul, matmul_many_with, matmul_pair_with, matmul_with, WeightView, DECODE_ROWS_PER_CHUNK,
    ROWS_PER_CHUNK, TOKENS_PER_TILE,
};
pub use pool::{ThreadPool, SPIN_BEFORE_PARK};
pub use rows16::{Rows16Form, WeightLayout};

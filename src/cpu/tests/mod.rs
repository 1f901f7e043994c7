//! Tests of the CPU kernels: scalar/AVX2 identity, agreement with an independent f64
//! reference, matmul invariance under thread count and batch size.

mod dots;
mod gen;
mod llama_fixture;
mod llama_oracle;
mod matmul;
mod multi;
mod quantizers;
mod reference;
mod rng;
mod rows16;

use super::Isa;

/// The AVX2 path, or `None` with a note saying why SIMD comparisons are skipped.
fn avx2_or_skip(test: &str) -> Option<Isa> {
    let isa = Isa::avx2();
    if isa.is_none() {
        eprintln!("{test}: skipped SIMD comparison: this CPU lacks AVX2/FMA/F16C");
    }
    isa
}

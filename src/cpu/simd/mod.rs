//! AVX2+FMA+F16C kernels: the only place in `cpu` with `unsafe`.
//!
//! Every kernel is a `#[target_feature]` `unsafe fn` whose one precondition is that the CPU has
//! the features; it is reached only through a safe wrapper that takes an [`Avx2`] token, which
//! exists only once the features were detected. Each kernel performs, lane for lane, the same
//! integer sums and the same f32 operations in the same order as its scalar twin in `cpu::dot`
//! or `cpu::quantize`, so the two give bit-identical results.

mod util;

pub(crate) mod float;
pub(crate) mod k23;
pub(crate) mod k456;
pub(crate) mod k456_multi;
pub(crate) mod legacy;
mod legacy_batch;
pub(crate) mod legacy_multi;
pub(crate) mod membw;
pub(crate) mod ops;
pub(crate) mod quantize;
pub(crate) mod rows16;
mod tile;

pub(crate) mod avx512;
pub use avx512::Avx512;

/// Proof that this CPU supports AVX2, FMA and F16C; only [`Avx2::detect`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx2 {
    _private: (),
}

impl Avx2 {
    /// Returns the token if the running CPU has AVX2, FMA and F16C.
    pub fn detect() -> Option<Avx2> {
        let ok = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c");
        ok.then_some(Avx2 { _private: () })
    }
}

/// Runs `f` in a function compiled with FMA, so the `f32::mul_add`s that `f` inlines become
/// single instructions instead of calls to libm's `fmaf` (the results are the same: both are
/// exactly rounded).
pub(crate) fn with_fma<R>(_proof: Avx2, f: impl FnOnce() -> R) -> R {
    /// The FMA-enabled frame that `f` is inlined into.
    #[target_feature(enable = "fma")]
    unsafe fn imp<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
    // SAFETY: an `Avx2` token exists only after FMA (with AVX2 and F16C) was detected.
    unsafe { imp(f) }
}

/// Defines a safe, token-gated wrapper around an AVX2 `unsafe fn` kernel.
macro_rules! safe_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $imp:path; ($($arg:ident : $ty:ty),*) -> $ret:ty) => {
        $(#[$m])*
        $vis fn $name(_proof: $crate::cpu::simd::Avx2, $($arg: $ty),*) -> $ret {
            // SAFETY: an `Avx2` token exists only after AVX2, FMA and F16C were detected, which
            // is the kernel's only precondition.
            unsafe { $imp($($arg),*) }
        }
    };
}
pub(crate) use safe_kernel;

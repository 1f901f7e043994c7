//! Which kernel path the CPU backend runs: chosen once per process, overridable by environment.
//!
//! `SLUICE_SIMD=scalar` forces the scalar reference kernels (the engine's tests run every model
//! on both paths); `SLUICE_SIMD=avx2` asks for AVX2 and falls back to scalar, logged once, when
//! the CPU lacks it; unset or `auto` picks the best path the CPU supports.

use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
use super::simd::Avx2;

/// The environment variable that selects the kernel path (`scalar`, `avx2` or `auto`).
pub const SIMD_ENV: &str = "SLUICE_SIMD";

/// A kernel path. A value naming AVX2 can only be built after AVX2, FMA and F16C were detected,
/// so safe code holding one may call the AVX2 kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa {
    kind: IsaKind,
}

/// The path an [`Isa`] selects, with the CPU-feature proof for SIMD paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IsaKind {
    /// Portable scalar kernels (the reference twins).
    Scalar,
    /// AVX2 + FMA + F16C kernels.
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
}

impl Isa {
    /// The scalar reference path, available everywhere.
    pub fn scalar() -> Isa {
        Isa {
            kind: IsaKind::Scalar,
        }
    }

    /// The AVX2+FMA+F16C path, if this CPU supports it.
    pub fn avx2() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            Avx2::detect().map(|t| Isa {
                kind: IsaKind::Avx2(t),
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// The fastest path this CPU supports, ignoring the environment.
    pub fn best() -> Isa {
        Isa::avx2().unwrap_or_else(Isa::scalar)
    }

    /// The process-wide path: `SLUICE_SIMD` if set, else [`Isa::best`]; decided on first call.
    pub fn current() -> Isa {
        static CURRENT: OnceLock<Isa> = OnceLock::new();
        *CURRENT.get_or_init(|| Isa::from_setting(std::env::var(SIMD_ENV).ok().as_deref()))
    }

    /// Resolves a `SLUICE_SIMD` value; unknown values and unsupported requests fall back (logged).
    pub fn from_setting(value: Option<&str>) -> Isa {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Isa::best(),
            Some("scalar") => Isa::scalar(),
            Some("avx2") => Isa::avx2().unwrap_or_else(|| {
                log::warn!(
                    "{SIMD_ENV}=avx2 but this CPU lacks AVX2/FMA/F16C; using scalar kernels"
                );
                Isa::scalar()
            }),
            Some(other) => {
                log::warn!(
                    "{SIMD_ENV}={other:?} is not scalar, avx2 or auto; picking automatically"
                );
                Isa::best()
            }
        }
    }

    /// A short name for logs and bench labels (`scalar`, `avx2`).
    pub fn name(self) -> &'static str {
        match self.kind {
            IsaKind::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2(_) => "avx2",
        }
    }

    /// Runs `f` compiled with FMA where this path has it: `f32::mul_add` inside `f` becomes one
    /// instruction instead of a libm call, with identical results (both round exactly once).
    #[inline(always)]
    pub fn with_fma<R>(self, f: impl FnOnce() -> R) -> R {
        match self.kind {
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2(proof) => super::simd::with_fma(proof, f),
            IsaKind::Scalar => f(),
        }
    }

    /// The selected path with its feature proof.
    pub(crate) fn kind(self) -> IsaKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_resolve() {
        assert_eq!(Isa::from_setting(Some("scalar")), Isa::scalar());
        assert_eq!(Isa::from_setting(None), Isa::best());
        assert_eq!(Isa::from_setting(Some("auto")), Isa::best());
        assert_eq!(Isa::from_setting(Some("bogus")), Isa::best());
        assert_eq!(Isa::from_setting(Some("avx2")), Isa::best());
        assert_eq!(Isa::scalar().name(), "scalar");
    }
}

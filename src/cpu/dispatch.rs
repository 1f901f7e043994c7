//! Which kernel path the CPU backend runs: chosen once per process, overridable by environment.
//!
//! `SLUICE_SIMD=scalar` forces the scalar reference kernels (the engine's tests run every model
//! on every path); `SLUICE_SIMD=avx2` or `avx512` asks for that tier and falls back to the best
//! lower one, logged once, when the CPU lacks it; unset or `auto` picks the best path the CPU
//! supports; `amx` says why there is no such tier and picks the best. Every tier gives
//! bit-identical results (the kernels keep the AVX2 path's order).

use std::sync::OnceLock;

use super::rows16::Rows16Form;

#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512};

/// The environment variable that selects the kernel path (`scalar`, `avx2`, `avx512` or `auto`).
pub const SIMD_ENV: &str = "SLUICE_SIMD";

/// The environment variable that keeps resident weights in file layout (`file`) instead of
/// the interleaved layout the SIMD kernels read fastest (`auto`, the default).
pub const LAYOUT_ENV: &str = "SLUICE_LAYOUT";

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
    /// AVX-512 F/BW/VL/VNNI row-pair kernels where a type has one, AVX2 for the rest.
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
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

    /// The AVX-512 (F/BW/VL/VNNI) path, if this CPU supports it.
    pub fn avx512() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            Avx512::detect().map(|t| Isa {
                kind: IsaKind::Avx512(t),
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// This path as a CPU with AVX-512 VNNI but without GFNI runs it (the same path where it
    /// is not AVX-512), for the tests of the kernels such CPUs take.
    #[cfg(test)]
    pub(crate) fn without_gfni(self) -> Isa {
        match self.kind {
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx512(t) => Isa {
                kind: IsaKind::Avx512(t.without_gfni()),
            },
            _ => self,
        }
    }

    /// The fastest path this CPU supports, ignoring the environment.
    pub fn best() -> Isa {
        Isa::avx512().or_else(Isa::avx2).unwrap_or_else(Isa::scalar)
    }

    /// Every path this CPU supports, slowest first (scalar, then each SIMD tier present): what
    /// the tests compare and `sluice bench kernels` measures.
    pub fn all_present() -> Vec<Isa> {
        [Some(Isa::scalar()), Isa::avx2(), Isa::avx512()]
            .into_iter()
            .flatten()
            .collect()
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
            Some("avx512") => Isa::avx512().unwrap_or_else(|| {
                let fallback = Isa::avx2().unwrap_or_else(Isa::scalar);
                log::warn!(
                    "{SIMD_ENV}=avx512 but this CPU lacks AVX-512 F/BW/VL/VNNI; using {}",
                    fallback.name()
                );
                fallback
            }),
            Some("amx") => {
                let best = Isa::best();
                log::warn!(
                    "{SIMD_ENV}=amx: there is no AMX tier, because tile products cannot keep \
                     llama.cpp's AVX2 sum order at a useful rate (README, \"Why no AMX tier\"); \
                     using {}",
                    best.name()
                );
                best
            }
            Some(other) => {
                log::warn!(
                    "{SIMD_ENV}={other:?} is not scalar, avx2, avx512 or auto; picking automatically"
                );
                Isa::best()
            }
        }
    }

    /// A short name for logs and bench labels (`scalar`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self.kind {
            IsaKind::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2(_) => "avx2",
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx512(_) => "avx512",
        }
    }

    /// The AVX2 proof of a SIMD path (every x86 tier includes AVX2, FMA and F16C), for the
    /// operations that have no kernel of their own on the higher tiers.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn avx2_proof(self) -> Option<Avx2> {
        match self.kind {
            IsaKind::Scalar => None,
            IsaKind::Avx2(t) => Some(t),
            IsaKind::Avx512(t) => Some(t.avx2()),
        }
    }

    /// Runs `f` compiled with FMA where this path has it: `f32::mul_add` inside `f` becomes one
    /// instruction instead of a libm call, with identical results (both round exactly once).
    #[inline(always)]
    pub fn with_fma<R>(self, f: impl FnOnce() -> R) -> R {
        match self.kind {
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2(proof) => super::simd::with_fma(proof, f),
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx512(proof) => super::simd::with_fma(proof.avx2(), f),
            IsaKind::Scalar => f(),
        }
    }

    /// Runs the AVX-512 or AVX2 softmax (bit-identical to `model::ops`'s scalar loop) when this
    /// path has one; returns false, having done nothing, otherwise.
    pub(crate) fn softmax_simd(self, x: &mut [f32], scale: f32, n_valid: usize) -> bool {
        match self.kind {
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx512(t) => {
                super::simd::avx512::ops::softmax(t, x, scale, n_valid);
                true
            }
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2(t) => {
                super::simd::ops::softmax(t, x, scale, n_valid);
                true
            }
            _ => false,
        }
    }

    /// Runs the AVX-512 or AVX2 SwiGLU of one row chunk (bit-identical to `model::ops`'s
    /// scalar loop) when this path has one; returns false, having done nothing, otherwise.
    pub(crate) fn swiglu_simd(
        self,
        col0: usize,
        row_len: usize,
        gate: &mut [f32],
        up: &[f32],
    ) -> bool {
        match self.kind {
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx512(t) => {
                super::simd::avx512::ops::swiglu(t, col0, row_len, gate, up);
                true
            }
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2(t) => {
                super::simd::ops::swiglu(t, col0, row_len, gate, up);
                true
            }
            _ => false,
        }
    }

    /// Whether this path has kernels for the 16-row interleaved layout (`cpu::rows16`), so that
    /// resident weights are worth rearranging for it.
    pub fn reads_rows16(self) -> bool {
        self.rows16_form().is_some()
    }

    /// The form of the 16-row layout this path's kernels read, if it has such kernels.
    pub fn rows16_form(self) -> Option<Rows16Form> {
        match self.kind {
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx512(_) => Some(Rows16Form::Wide),
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx2(_) => Some(Rows16Form::Halves),
            _ => None,
        }
    }

    /// Whether this path's Q2_K and Q3_K 16-row kernels take their 2-bit fields out with GFNI
    /// (`sluice bench kernels` says which of the two variants it measured).
    pub fn uses_gfni(self) -> bool {
        match self.kind {
            #[cfg(target_arch = "x86_64")]
            IsaKind::Avx512(t) => t.gfni(),
            _ => false,
        }
    }

    /// Whether the engine rearranges resident weights for this path: [`Isa::reads_rows16`],
    /// unless `SLUICE_LAYOUT=file` keeps the file layout (to measure what the layout gains).
    pub fn interleaves_resident(self) -> bool {
        static KEEP_FILE: OnceLock<bool> = OnceLock::new();
        let keep_file = *KEEP_FILE.get_or_init(|| {
            match std::env::var(LAYOUT_ENV).ok().as_deref().map(str::trim) {
                None | Some("") | Some("auto") => false,
                Some("file") => true,
                Some(other) => {
                    log::warn!("{LAYOUT_ENV}={other:?} is not file or auto; using auto");
                    false
                }
            }
        });
        self.reads_rows16() && !keep_file
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
        assert_eq!(Isa::from_setting(Some("amx")), Isa::best());
        let avx2 = Isa::avx2().unwrap_or_else(Isa::scalar);
        assert_eq!(Isa::from_setting(Some("avx2")), avx2);
        let avx512 = Isa::avx512().unwrap_or(avx2);
        assert_eq!(Isa::from_setting(Some("avx512")), avx512);
        assert_eq!(Isa::scalar().name(), "scalar");
        let names: Vec<&str> = Isa::all_present().iter().map(|i| i.name()).collect();
        assert_eq!(names[0], "scalar");
        assert_eq!(*names.last().unwrap_or(&""), Isa::best().name());
    }
}

//! AVX-512 (F/BW/VL/VNNI) kernels: two weight rows per zmm register.
//!
//! The AVX2 kernels keep 8 f32 lanes per row, each lane summing its 4-element integer partials
//! block after block; that order is what makes sluice's tokens llama.cpp's. Here the low 256 bits
//! of every register carry one row and the high 256 bits the next, and each half performs its
//! row's AVX2 arithmetic exactly: `vpdpbusd` gives the same exact 4-element sums as AVX2's
//! `maddubs`+`madd` (no pair of products can saturate for these types), and the f32 steps are the
//! same operations in the same order, lane for lane. So every output is bit-identical to the
//! AVX2 and scalar twins, while a zmm does two rows' work per instruction and VNNI saves the
//! widening step.

mod kquants;
mod legacy;
pub(crate) mod ops;
mod pair;
mod rows16;
mod util;

use super::Avx2;

pub(crate) use kquants::{
    q2k_pair_tile, q3k_pair_tile, q4k_pair_tile, q5k_pair_tile, q6k_pair_tile,
};
pub(crate) use legacy::{
    iq4_nl_pair_tile, q4_0_pair_tile, q4_1_pair_tile, q5_0_pair_tile, q5_1_pair_tile,
    q8_0_pair_tile,
};
pub(crate) use rows16::{
    q2k_rows16_tile, q3k_rows16_tile, q4_0_rows16_tile, q4_1_rows16_tile, q4k_rows16_tile,
    q5_0_rows16_tile, q5_1_rows16_tile, q5k_rows16_tile, q6k_rows16_tile, q8_0_rows16_tile,
};

/// Proof that this CPU supports AVX-512 F/BW/VL/VNNI on top of AVX2, FMA and F16C; only
/// [`Avx512::detect`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx512 {
    avx2: Avx2,
    /// Whether GFNI is present too: the 2- and 3-bit K-quant kernels then take each 2-bit field
    /// out of its byte with one `vgf2p8affineqb` instead of a shift and a mask.
    gfni: bool,
}

impl Avx512 {
    /// Returns the token if the running CPU (and OS, which must save zmm state) has every
    /// feature the kernels use.
    pub fn detect() -> Option<Avx512> {
        let avx2 = Avx2::detect()?;
        let ok = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni");
        let gfni = std::arch::is_x86_feature_detected!("gfni");
        ok.then_some(Avx512 { avx2, gfni })
    }

    /// Whether this CPU has GFNI as well (Ice Lake and later Xeons; not Skylake-SP or Cascade
    /// Lake, which have AVX-512 VNNI without it).
    pub fn gfni(self) -> bool {
        self.gfni
    }

    /// The same proof with GFNI left unused: what a CPU with AVX-512 VNNI but no GFNI runs, so
    /// that those kernels are tested here too.
    #[cfg(test)]
    pub(crate) fn without_gfni(self) -> Avx512 {
        Avx512 {
            gfni: false,
            ..self
        }
    }

    /// The AVX2 proof this one implies (the types and operations without an AVX-512 kernel
    /// run their AVX2 kernels).
    pub fn avx2(self) -> Avx2 {
        self.avx2
    }
}

/// Defines a safe, token-gated wrapper around an AVX-512 `unsafe fn` kernel.
macro_rules! safe_kernel512 {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $imp:path; ($($arg:ident : $ty:ty),*) -> $ret:ty) => {
        $(#[$m])*
        $vis fn $name(_proof: $crate::cpu::simd::avx512::Avx512, $($arg: $ty),*) -> $ret {
            // SAFETY: an `Avx512` token exists only after AVX-512 F/BW/VL/VNNI, AVX2, FMA and
            // F16C were detected, which is the kernel's only precondition.
            unsafe { $imp($($arg),*) }
        }
    };
}
pub(crate) use safe_kernel512;

//! Multi-token dots: weight rows dotted with several activation rows per call. On AVX2 the hot
//! types have tile kernels (`cpu::simd::tile`) that unpack each weight block once per group of
//! activation rows; elsewhere (the scalar path, the other types) each output is one plain dot.
//! Either way every output is bit-identical to the single-token dot of its row pair.

use sluice_loader::GgmlType;

use super::RowDot;
use crate::cpu::dispatch::Isa;
#[cfg(target_arch = "x86_64")]
use crate::cpu::dispatch::IsaKind;
use crate::cpu::error::CpuError;
#[cfg(target_arch = "x86_64")]
use crate::cpu::simd::{
    avx512 as zm, k456_multi as km, legacy_multi as lm, rows16 as r16, Avx2, Avx512,
};

/// An AVX2 tile kernel: `outs[k][i] = dot(weight row i of w, activation row k of a)`.
#[cfg(target_arch = "x86_64")]
pub(super) type TileFn = fn(Avx2, &[u8], &[u8], &mut [&mut [f32]]);

/// An AVX-512 row-pair tile kernel, same contract as [`TileFn`].
#[cfg(target_arch = "x86_64")]
pub(super) type PairTileFn = fn(Avx512, &[u8], &[u8], &mut [&mut [f32]]);

/// Activation rows per [`RowDot::tile`] call in [`vec_dot_multi_with`].
const TOKENS_PER_CALL: usize = 8;

/// The AVX2 tile kernel of a weight type, if it has one.
#[cfg(target_arch = "x86_64")]
pub(super) fn avx2_tile(weight: GgmlType) -> Option<TileFn> {
    use GgmlType as T;
    Some(match weight {
        T::Q4_0 => lm::q4_0_tile,
        T::Q4_1 => lm::q4_1_tile,
        T::Q5_0 => lm::q5_0_tile,
        T::Q5_1 => lm::q5_1_tile,
        T::Q8_0 => lm::q8_0_tile,
        T::IQ4NL => lm::iq4_nl_tile,
        T::Q4K => km::q4k_tile,
        T::Q5K => km::q5k_tile,
        T::Q6K => km::q6k_tile,
        _ => return None,
    })
}

/// The AVX-512 row-pair tile kernel of a weight type, if it has one.
#[cfg(target_arch = "x86_64")]
pub(super) fn avx512_tile(weight: GgmlType) -> Option<PairTileFn> {
    use GgmlType as T;
    Some(match weight {
        T::Q4_0 => zm::q4_0_pair_tile,
        T::Q4_1 => zm::q4_1_pair_tile,
        T::Q5_0 => zm::q5_0_pair_tile,
        T::Q5_1 => zm::q5_1_pair_tile,
        T::Q8_0 => zm::q8_0_pair_tile,
        T::IQ4NL => zm::iq4_nl_pair_tile,
        T::Q2K => zm::q2k_pair_tile,
        T::Q3K => zm::q3k_pair_tile,
        T::Q4K => zm::q4k_pair_tile,
        T::Q5K => zm::q5k_pair_tile,
        T::Q6K => zm::q6k_pair_tile,
        _ => return None,
    })
}

/// A tile kernel over 16-row interleaved weights (`cpu::rows16`) with the proof its path
/// needs: AVX-512 has one for every type the layout takes, AVX2 for the 32-element types
/// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
#[derive(Clone, Copy)]
pub(crate) struct Rows16Tile {
    #[cfg(target_arch = "x86_64")]
    kernel: Rows16Kernel,
}

/// The kernel of a [`Rows16Tile`] with its path's proof.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Rows16Kernel {
    Avx2(Avx2, TileFn),
    Avx512(Avx512, PairTileFn),
}

impl Rows16Tile {
    /// The kernel for interleaved `weight` matrices on `isa`, if that path has one.
    pub(crate) fn for_weight(isa: Isa, weight: GgmlType) -> Option<Rows16Tile> {
        #[cfg(target_arch = "x86_64")]
        {
            let kernel = match isa.kind() {
                IsaKind::Avx512(proof) => Rows16Kernel::Avx512(
                    proof,
                    match weight {
                        GgmlType::Q4_0 => zm::q4_0_rows16_tile,
                        GgmlType::Q4_1 => zm::q4_1_rows16_tile,
                        GgmlType::Q5_0 => zm::q5_0_rows16_tile,
                        GgmlType::Q5_1 => zm::q5_1_rows16_tile,
                        GgmlType::Q8_0 => zm::q8_0_rows16_tile,
                        GgmlType::Q2K => zm::q2k_rows16_tile,
                        GgmlType::Q3K => zm::q3k_rows16_tile,
                        GgmlType::Q4K => zm::q4k_rows16_tile,
                        GgmlType::Q5K => zm::q5k_rows16_tile,
                        GgmlType::Q6K => zm::q6k_rows16_tile,
                        _ => return None,
                    },
                ),
                IsaKind::Avx2(proof) => Rows16Kernel::Avx2(
                    proof,
                    match weight {
                        GgmlType::Q4_0 => r16::q4_0_rows16_tile,
                        GgmlType::Q4_1 => r16::q4_1_rows16_tile,
                        GgmlType::Q5_0 => r16::q5_0_rows16_tile,
                        GgmlType::Q5_1 => r16::q5_1_rows16_tile,
                        GgmlType::Q8_0 => r16::q8_0_rows16_tile,
                        _ => return None,
                    },
                ),
                IsaKind::Scalar => return None,
            };
            Some(Rows16Tile { kernel })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (isa, weight);
            None
        }
    }

    /// `outs[k][i] = dot(row i of w, activation row k of a)`: `w` holds whole 16-row groups,
    /// `outs[k]` one value per row of `w`.
    pub(crate) fn run(&self, w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
        #[cfg(target_arch = "x86_64")]
        match self.kernel {
            Rows16Kernel::Avx2(proof, f) => f(proof, w, a, outs),
            Rows16Kernel::Avx512(proof, f) => f(proof, w, a, outs),
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (w, a, outs);
            unreachable!("no Rows16Tile exists off x86-64");
        }
    }
}

impl RowDot {
    /// `outs[k][i] = dot(weight row i of w, activation row k of a)` over a tile: `w` holds
    /// `outs[0].len()` whole weight rows, `a` holds `outs.len()` whole activation rows, and every
    /// `outs[k]` has the same length. One dispatch per tile, not per dot.
    pub(crate) fn tile(&self, isa: Isa, w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
        #[cfg(target_arch = "x86_64")]
        {
            if let (IsaKind::Avx512(proof), Some(f)) = (isa.kind(), self.pair_tile) {
                return f(proof, w, a, outs);
            }
            // A higher tier without its own kernel for this type runs the AVX2 one.
            if let (Some(proof), Some(f)) = (isa.avx2_proof(), self.tile) {
                return f(proof, w, a, outs);
            }
        }
        self.tile_by_dots(isa, w, a, outs);
    }

    /// [`RowDot::tile`] as one single-token dot per output (the scalar twin of every tile).
    fn tile_by_dots(&self, isa: Isa, w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
        let n_tok = outs.len();
        let rows = outs.first().map_or(0, |o| o.len());
        if n_tok == 0 || rows == 0 {
            return;
        }
        let (w_bytes, a_bytes) = (w.len() / rows, a.len() / n_tok);
        for i in 0..rows {
            let w_row = &w[i * w_bytes..(i + 1) * w_bytes];
            for (k, out) in outs.iter_mut().enumerate() {
                out[i] = self.dot(isa, w_row, &a[k * a_bytes..(k + 1) * a_bytes]);
            }
        }
    }
}

/// Dots one weight row of type `weight` (`n` elements) with `out.len()` activation rows stored
/// back to back in `a_rows` (each in the weight's `vec_dot_type`): `out[k]` is bit-identical to
/// [`super::vec_dot_with`] on row k. Errors on a type or length mismatch.
pub fn vec_dot_multi_with(
    isa: Isa,
    weight: GgmlType,
    n: usize,
    w_row: &[u8],
    a_rows: &[u8],
    out: &mut [f32],
) -> Result<(), CpuError> {
    let kernel = RowDot::for_weight(weight)?;
    let w_bytes = weight.row_bytes(n as u64);
    let a_bytes = kernel.act.row_bytes(n as u64);
    let a_row_bytes = match (w_bytes, a_bytes) {
        (Some(wb), Some(ab))
            if wb == w_row.len() as u64
                && (ab as usize).checked_mul(out.len()) == Some(a_rows.len()) =>
        {
            ab as usize
        }
        _ => {
            return Err(CpuError::RowLength {
                ty: weight,
                n,
                w_bytes: w_row.len(),
                a_bytes: a_rows.len(),
            })
        }
    };
    if a_row_bytes == 0 {
        out.fill(kernel.dot(isa, w_row, a_rows));
        return Ok(());
    }
    for (a_grp, o_grp) in a_rows
        .chunks(TOKENS_PER_CALL * a_row_bytes)
        .zip(out.chunks_mut(TOKENS_PER_CALL))
    {
        let n_tok = o_grp.len();
        let mut each = o_grp.chunks_mut(1);
        let mut outs: [&mut [f32]; TOKENS_PER_CALL] =
            std::array::from_fn(|_| each.next().unwrap_or_default());
        kernel.tile(isa, w_row, a_grp, &mut outs[..n_tok]);
    }
    Ok(())
}

//! Multi-token tiles: each weight row of a tile is dotted with a group of activation rows per
//! pass, unpacking each weight block once and keeping one accumulator per activation row.
//!
//! A [`MultiDot`] kernel performs, for each of its `N` outputs, exactly the integer sums and f32
//! operations (same lanes, same order) of the single-token kernel, so every output is
//! bit-identical to the plain dot whatever `N`, the tile shape or the thread count.

use sluice_loader::quant::blocks::{as_blocks, Block};

/// Activation rows dotted per pass over a weight row (the remainder uses 1..3).
pub(super) const GROUP: usize = 4;

/// A block dot of one weight row with `N` activation rows at once.
pub(super) trait MultiDot {
    /// Weight block type.
    type W: Block;
    /// Activation block type.
    type A: Block;

    /// Output n is the single-token dot of `x` with `y[n]`, bit for bit.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; every `y[n]` is at least as long as `x`.
    unsafe fn dots<const N: usize>(x: &[Self::W], y: [&[Self::A]; N]) -> [f32; N];
}

/// Writes the results of one group (tokens `k..k + N`) for weight row `i`.
#[inline(always)]
fn put<const N: usize>(outs: &mut [&mut [f32]], k: usize, i: usize, r: [f32; N]) {
    for (o, v) in outs[k..k + N].iter_mut().zip(r) {
        o[i] = v;
    }
}

/// `outs[k][i] = dot(weight row i of w, activation row k of a)`; `w` holds whole rows as long
/// as the activation rows, `a` holds `outs.len()` rows, each `outs[k]` one value per weight row.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C (called from a kernel compiled with them).
#[inline(always)]
pub(super) unsafe fn drive<K: MultiDot>(w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
    let n_tok = outs.len();
    let (Some(x), Some(y)) = (as_blocks::<K::W>(w), as_blocks::<K::A>(a)) else {
        return;
    };
    let nb = y.len().checked_div(n_tok).unwrap_or(0);
    if nb == 0 {
        return;
    }
    let act = |k: usize| &y[k * nb..(k + 1) * nb];
    for (i, row) in x.chunks_exact(nb).enumerate() {
        let mut k = 0;
        // SAFETY (all calls below): features per this fn's contract; each activation row
        // has `nb` blocks, as does `row`.
        while k + GROUP <= n_tok {
            let r = unsafe { K::dots::<GROUP>(row, std::array::from_fn(|j| act(k + j))) };
            put(outs, k, i, r);
            k += GROUP;
        }
        match n_tok - k {
            3 => put(outs, k, i, unsafe {
                K::dots::<3>(row, [act(k), act(k + 1), act(k + 2)])
            }),
            2 => put(outs, k, i, unsafe {
                K::dots::<2>(row, [act(k), act(k + 1)])
            }),
            1 => put(outs, k, i, unsafe { K::dots::<1>(row, [act(k)]) }),
            _ => {}
        }
    }
}

/// Defines a `#[target_feature]` tile kernel over a [`MultiDot`] and its safe, token-gated
/// wrapper `fn(Avx2, w, a, outs)`.
macro_rules! tile_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $imp:ident, $K:ty) => {
        /// A whole tile of one weight type (see `tile::drive`).
        ///
        /// # Safety
        /// The CPU must support AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $imp(w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
            // SAFETY: the features are present (fn contract).
            unsafe { $crate::cpu::simd::tile::drive::<$K>(w, a, outs) }
        }

        $crate::cpu::simd::safe_kernel!(
            $(#[$m])* $vis fn $name = $imp; (w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) -> ());
    };
}
pub(super) use tile_kernel;

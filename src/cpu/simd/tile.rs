//! Multi-token tiles: each weight row of a tile is dotted with a group of activation rows per
//! pass, unpacking each weight block once and keeping one accumulator per activation row.
//!
//! A [`MultiDot`] kernel performs, for each of its `N` outputs, exactly the integer sums and f32
//! operations (same lanes, same order) of the single-token kernel, so every output is
//! bit-identical to the plain dot whatever `N`, the tile shape or the thread count.

use std::array::from_fn;

use sluice_loader::quant::blocks::{as_blocks, Block};

/// Activation rows dotted per pass over a weight row (the remainder uses 1..7): a batch tile's
/// 8 tokens unpack each block once (8 tokens, 4864-element rows, EPYC: Q4_K 37.2 → 42.7 GB/s ×
/// tokens, Q6_K 43.0 → 45.9 against 4 per pass).
pub(super) const GROUP: usize = 8;

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

    /// Whether a one-token product dots two weight rows per pass ([`MultiDot::dots_rows`]):
    /// one row's dot waits on its own FMA's latency every block. Many-token products take one
    /// row per pass, their activation rows already giving independent chains.
    const DECODE_ROW_PAIRS: bool = false;

    /// Output `[r][n]` is the single-token dot of `x[r]` with `y[n]`, bit for bit: `R` rows
    /// at once give the CPU `R` independent accumulator chains (a one-token dot waits on its
    /// own FMA's latency every block) and share each activation block's loads. The default
    /// runs the rows one after another.
    ///
    /// # Safety
    /// As [`MultiDot::dots`]; every `x[r]` has the length of `x[0]`.
    #[inline(always)]
    unsafe fn dots_rows<const R: usize, const N: usize>(
        x: [&[Self::W]; R],
        y: [&[Self::A]; N],
    ) -> [[f32; N]; R] {
        let mut out = [[0.0; N]; R];
        for (o, row) in out.iter_mut().zip(x) {
            // SAFETY: forwarded contract. (A loop, not a closure: closures do not inherit the
            // caller's target features, and the intrinsics inside would not inline.)
            *o = unsafe { Self::dots::<N>(row, y) };
        }
        out
    }
}

/// Writes the results of one pass (rows `i..i + R`, tokens `k..k + N`).
#[inline(always)]
fn put<const R: usize, const N: usize>(
    outs: &mut [&mut [f32]],
    k: usize,
    i: usize,
    r: [[f32; N]; R],
) {
    for (di, row) in r.into_iter().enumerate() {
        for (o, v) in outs[k..k + N].iter_mut().zip(row) {
            o[i + di] = v;
        }
    }
}

/// Dots weight rows `i..i + R` (`rows`) with every activation row, `GROUP` tokens per pass.
///
/// # Safety
/// As [`drive`]; each of `rows` and of the activation rows has `nb` blocks.
#[inline(always)]
unsafe fn row_group<K: MultiDot, const R: usize>(
    rows: [&[K::W]; R],
    y: &[K::A],
    nb: usize,
    i: usize,
    outs: &mut [&mut [f32]],
) {
    let n_tok = outs.len();
    let act = |k: usize| &y[k * nb..(k + 1) * nb];
    let mut k = 0;
    // SAFETY (all calls below): features per this fn's contract; lengths as documented.
    while k + GROUP <= n_tok {
        let r = unsafe { K::dots_rows::<R, GROUP>(rows, from_fn(|j| act(k + j))) };
        put(outs, k, i, r);
        k += GROUP;
    }
    match n_tok - k {
        7 => put(outs, k, i, unsafe {
            K::dots_rows::<R, 7>(rows, from_fn(|j| act(k + j)))
        }),
        6 => put(outs, k, i, unsafe {
            K::dots_rows::<R, 6>(rows, from_fn(|j| act(k + j)))
        }),
        5 => put(outs, k, i, unsafe {
            K::dots_rows::<R, 5>(rows, from_fn(|j| act(k + j)))
        }),
        4 => put(outs, k, i, unsafe {
            K::dots_rows::<R, 4>(rows, from_fn(|j| act(k + j)))
        }),
        3 => put(outs, k, i, unsafe {
            K::dots_rows::<R, 3>(rows, from_fn(|j| act(k + j)))
        }),
        2 => put(outs, k, i, unsafe {
            K::dots_rows::<R, 2>(rows, from_fn(|j| act(k + j)))
        }),
        1 => put(outs, k, i, unsafe { K::dots_rows::<R, 1>(rows, [act(k)]) }),
        _ => {}
    }
}

/// Runs rows `*i..` in passes of `R` while whole passes remain, advancing `*i`.
///
/// # Safety
/// As [`row_group`].
#[inline(always)]
unsafe fn rows_by<K: MultiDot, const R: usize>(
    x: &[K::W],
    y: &[K::A],
    nb: usize,
    i: &mut usize,
    outs: &mut [&mut [f32]],
) {
    let n_rows = x.len() / nb;
    while *i + R <= n_rows {
        let at = *i;
        let rows = std::array::from_fn(|d| &x[(at + d) * nb..(at + d + 1) * nb]);
        // SAFETY: forwarded contract; each row slice holds `nb` blocks.
        unsafe { row_group::<K, R>(rows, y, nb, at, outs) };
        *i += R;
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
    let mut i = 0;
    // SAFETY (all calls below): features per this fn's contract; `x` holds whole rows of
    // `nb` blocks and `y` `n_tok` rows of `nb` blocks.
    unsafe {
        if n_tok == 1 && K::DECODE_ROW_PAIRS {
            rows_by::<K, 2>(x, y, nb, &mut i, outs);
        }
        rows_by::<K, 1>(x, y, nb, &mut i, outs);
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

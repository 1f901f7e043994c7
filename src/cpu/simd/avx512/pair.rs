//! Row-pair tiles: weight rows are taken two at a time (one per zmm half), `P` pairs per pass,
//! and dotted with a group of activation rows, unpacking each weight block once.
//!
//! A [`PairDot`] kernel performs, for each (row, token) output, exactly the integer sums and f32
//! operations of the AVX2 single-token kernel, so every output is bit-identical to the plain dot
//! whatever the tile shape, the pairing or the thread count.

use sluice_loader::quant::blocks::{as_blocks, Block};

/// A block dot of `P` weight-row pairs with `N` activation rows at once.
pub(super) trait PairDot {
    /// Weight block type.
    type W: Block;
    /// Activation block type.
    type A: Block;

    /// Output `[p][r][n]` is the single-token dot of `x[p][r]` with `y[n]`, bit for bit.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; every row in `x` and
    /// `y` has the same number of blocks.
    unsafe fn dots<const P: usize, const N: usize>(
        x: [[&[Self::W]; 2]; P],
        y: [&[Self::A]; N],
    ) -> [[[f32; N]; 2]; P];
}

/// Token rows per kernel call (the remainder runs as groups of 1..3).
const GROUP: usize = 4;

/// A kernel's `[p][r][n]` outputs (`P` row pairs, `N` tokens: the kernel's const generics),
/// each `$e` with `$p`, `$r`, `$n` bound: the per-row reductions. A macro, so they compile in
/// the kernel with its target features; in a closure (which does not inherit them) their
/// intrinsics were left as calls.
macro_rules! collect {
    (|$p:ident, $r:ident, $n:ident| $e:expr) => {{
        let mut out = [[[0.0f32; N]; 2]; P];
        for $p in 0..P {
            for $r in 0..2 {
                for $n in 0..N {
                    out[$p][$r][$n] = $e;
                }
            }
        }
        out
    }};
}
pub(super) use collect;

/// Writes one pass's results: tokens `k..k + N`, weight rows from `i` (`rows` of them, ≤ 2P).
#[inline(always)]
fn put<const P: usize, const N: usize>(
    outs: &mut [&mut [f32]],
    k: usize,
    i: usize,
    rows: usize,
    r: [[[f32; N]; 2]; P],
) {
    for (j, o) in outs[k..k + N].iter_mut().enumerate() {
        for (q, v) in o[i..i + rows].iter_mut().enumerate() {
            *v = r[q / 2][q % 2][j];
        }
    }
}

/// One pass of `P` pairs over every token group of [`GROUP`] (the remainder by its size).
#[inline(always)]
unsafe fn pass<K: PairDot, const P: usize>(
    x: [[&[K::W]; 2]; P],
    y: &[K::A],
    outs: &mut [&mut [f32]],
    i: usize,
    rows: usize,
) {
    let n_tok = outs.len();
    let nb = x[0][0].len();
    let act = |k: usize| &y[k * nb..(k + 1) * nb];
    let mut k = 0;
    // SAFETY (all calls): features per the caller's contract; all rows have the same blocks.
    while k + GROUP <= n_tok {
        let r = unsafe { K::dots::<P, GROUP>(x, std::array::from_fn(|j| act(k + j))) };
        put(outs, k, i, rows, r);
        k += GROUP;
    }
    match n_tok - k {
        1 => put(outs, k, i, rows, unsafe { K::dots::<P, 1>(x, [act(k)]) }),
        2 => put(outs, k, i, rows, unsafe {
            K::dots::<P, 2>(x, [act(k), act(k + 1)])
        }),
        3 => put(outs, k, i, rows, unsafe {
            K::dots::<P, 3>(x, [act(k), act(k + 1), act(k + 2)])
        }),
        _ => {}
    }
}

/// `outs[k][i] = dot(weight row i of w, activation row k of a)`, `P` row pairs per pass; `w` holds whole rows as long as the activation rows, `a` holds
/// `outs.len()` rows, each `outs[k]` one value per weight row. A last odd row is paired with
/// itself and its twin result dropped.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[inline(always)]
pub(super) unsafe fn drive<K: PairDot, const P: usize>(
    w: &[u8],
    a: &[u8],
    outs: &mut [&mut [f32]],
) {
    let n_tok = outs.len();
    let (Some(x), Some(y)) = (as_blocks::<K::W>(w), as_blocks::<K::A>(a)) else {
        return;
    };
    let nb = y.len().checked_div(n_tok).unwrap_or(0);
    if nb == 0 {
        return;
    }
    let n_rows = x.len() / nb;
    let row = |i: usize| &x[i.min(n_rows - 1) * nb..][..nb];
    let mut i = 0;
    while i + 2 * P <= n_rows {
        let rows = std::array::from_fn(|p| [row(i + 2 * p), row(i + 2 * p + 1)]);
        // SAFETY: features per this fn's contract; every row has `nb` blocks.
        unsafe { pass::<K, P>(rows, y, outs, i, 2 * P) };
        i += 2 * P;
    }
    while i < n_rows {
        let rows = (n_rows - i).min(2);
        // SAFETY: as above; `row` clamps a missing twin to the last row.
        unsafe { pass::<K, 1>([[row(i), row(i + 1)]], y, outs, i, rows) };
        i += 2;
    }
}

/// Defines a `#[target_feature]` tile kernel over a [`PairDot`] (`P` pairs per pass) and its
/// safe, token-gated wrapper `fn(Avx512, w, a, outs)`.
macro_rules! pair_tile {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $imp:ident, $K:ty, $P:expr) => {
        /// A whole tile of one weight type (see `pair::drive`).
        ///
        /// # Safety
        /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $imp(w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) {
            // SAFETY: the features are present (fn contract).
            unsafe { $crate::cpu::simd::avx512::pair::drive::<$K, { $P }>(w, a, outs) }
        }

        $crate::cpu::simd::avx512::safe_kernel512!(
            $(#[$m])* $vis fn $name = $imp; (w: &[u8], a: &[u8], outs: &mut [&mut [f32]]) -> ());
    };
}
pub(super) use pair_tile;

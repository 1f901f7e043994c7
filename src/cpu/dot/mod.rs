//! Dot products of one weight row with one activation row, for every weight type sluice runs,
//! with the per-block formulas of gguf-facts §3.3. Each pair has a scalar twin (here) and an
//! AVX2 kernel (`cpu::simd`) that return bit-identical results; [`Isa`] picks one.

pub(crate) mod float;
pub(crate) mod kquants;
pub(crate) mod kscales;
pub(crate) mod lanes;
pub(crate) mod legacy;
mod multi;

use sluice_loader::quant::blocks::{
    as_blocks, Block, BlockIQ4NL, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K,
    BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use sluice_loader::GgmlType;

use super::dispatch::{Isa, IsaKind};
use super::error::CpuError;
#[cfg(target_arch = "x86_64")]
use super::simd;

/// The activation format a weight type is dotted against (gguf-facts §3.1); `None` for the
/// activation-only formats Q8_1 and Q8_K.
pub fn vec_dot_type(weight: GgmlType) -> Option<GgmlType> {
    use GgmlType as T;
    Some(match weight {
        T::F32 => T::F32,
        T::F16 => T::F16,
        T::BF16 => T::BF16,
        T::Q4_0 | T::Q5_0 | T::Q8_0 | T::IQ4NL => T::Q8_0,
        T::Q4_1 | T::Q5_1 => T::Q8_1,
        T::Q2K | T::Q3K | T::Q4K | T::Q5K | T::Q6K => T::Q8K,
        T::Q8_1 | T::Q8K => return None,
    })
}

/// A row dot over raw bytes whose lengths the caller has checked.
type RowFn = fn(Isa, &[u8], &[u8]) -> f32;

pub use multi::vec_dot_multi_with;
pub(crate) use multi::Rows16Tile;

/// Views both rows as blocks and runs `f`; NaN if a length is not whole blocks (callers check
/// lengths first, so this is unreachable from the public API).
#[inline]
fn on_blocks<W: Block, A: Block>(w: &[u8], a: &[u8], f: impl FnOnce(&[W], &[A]) -> f32) -> f32 {
    match (as_blocks::<W>(w), as_blocks::<A>(a)) {
        (Some(x), Some(y)) => f(x, y),
        _ => f32::NAN,
    }
}

/// Defines, for one weight/activation pair: the typed dispatcher, its byte-row form, and the
/// public `vec_dot_*` entry point.
macro_rules! pair {
    ($(#[$doc:meta])* $public:ident, $typed:ident, $row:ident, $W:ty, $A:ty, $scalar:path, $avx2:path) => {
        #[inline]
        fn $typed(isa: Isa, x: &[$W], y: &[$A]) -> f32 {
            match isa.kind() {
                IsaKind::Scalar => $scalar(x, y),
                #[cfg(target_arch = "x86_64")]
                IsaKind::Avx2(t) => $avx2(t, x, y),
                #[cfg(target_arch = "x86_64")]
                IsaKind::Avx512(t) => $avx2(t.avx2(), x, y),
            }
        }

        fn $row(isa: Isa, w: &[u8], a: &[u8]) -> f32 {
            on_blocks::<$W, $A>(w, a, |x, y| $typed(isa, x, y))
        }

        $(#[$doc])*
        ///
        /// `n` is the row length in elements. Panics if `n` is not a whole number of blocks or a
        /// row's length does not match it. Uses [`Isa::current`].
        pub fn $public(n: usize, w_row: &[u8], a_row: &[$A]) -> f32 {
            let blocks = n / <$W>::ELEMS;
            assert!(
                n % <$W>::ELEMS == 0 && w_row.len() == blocks * <$W>::BYTES && a_row.len() == blocks,
                "{}: n={n} does not match rows of {} weight bytes and {} activation blocks",
                stringify!($public),
                w_row.len(),
                a_row.len()
            );
            let x = as_blocks::<$W>(w_row).unwrap_or(&[]);
            $typed(Isa::current(), x, a_row)
        }
    };
}

pair!(
    /// Q4_0 weights · Q8_0 activations.
    vec_dot_q4_0_q8_0, q4_0, q4_0_row, BlockQ4_0, BlockQ8_0, legacy::q4_0_q8_0, simd::legacy::q4_0_q8_0);
pair!(
    /// Q4_1 weights · Q8_1 activations.
    vec_dot_q4_1_q8_1, q4_1, q4_1_row, BlockQ4_1, BlockQ8_1, legacy::q4_1_q8_1, simd::legacy::q4_1_q8_1);
pair!(
    /// Q5_0 weights · Q8_0 activations.
    vec_dot_q5_0_q8_0, q5_0, q5_0_row, BlockQ5_0, BlockQ8_0, legacy::q5_0_q8_0, simd::legacy::q5_0_q8_0);
pair!(
    /// Q5_1 weights · Q8_1 activations.
    vec_dot_q5_1_q8_1, q5_1, q5_1_row, BlockQ5_1, BlockQ8_1, legacy::q5_1_q8_1, simd::legacy::q5_1_q8_1);
pair!(
    /// Q8_0 weights · Q8_0 activations.
    vec_dot_q8_0_q8_0, q8_0, q8_0_row, BlockQ8_0, BlockQ8_0, legacy::q8_0_q8_0, simd::legacy::q8_0_q8_0);
pair!(
    /// IQ4_NL weights · Q8_0 activations.
    vec_dot_iq4_nl_q8_0, iq4_nl, iq4_nl_row, BlockIQ4NL, BlockQ8_0, legacy::iq4_nl_q8_0, simd::legacy::iq4_nl_q8_0);
pair!(
    /// Q2_K weights · Q8_K activations.
    vec_dot_q2_k_q8_k, q2k, q2k_row, BlockQ2K, BlockQ8K, kquants::q2k_q8k, simd::k23::q2k_q8k);
pair!(
    /// Q3_K weights · Q8_K activations.
    vec_dot_q3_k_q8_k, q3k, q3k_row, BlockQ3K, BlockQ8K, kquants::q3k_q8k, simd::k23::q3k_q8k);
pair!(
    /// Q4_K weights · Q8_K activations.
    vec_dot_q4_k_q8_k, q4k, q4k_row, BlockQ4K, BlockQ8K, kquants::q4k_q8k, simd::k456::q4k_q8k);
pair!(
    /// Q5_K weights · Q8_K activations.
    vec_dot_q5_k_q8_k, q5k, q5k_row, BlockQ5K, BlockQ8K, kquants::q5k_q8k, simd::k456::q5k_q8k);
pair!(
    /// Q6_K weights · Q8_K activations.
    vec_dot_q6_k_q8_k, q6k, q6k_row, BlockQ6K, BlockQ8K, kquants::q6k_q8k, simd::k456::q6k_q8k);

/// Defines the byte-row dispatcher and public entry point of a float pair.
macro_rules! float_pair {
    ($(#[$doc:meta])* $public:ident, $row:ident, $bytes:expr, $scalar:path, $avx2:path) => {
        fn $row(isa: Isa, w: &[u8], a: &[u8]) -> f32 {
            match isa.kind() {
                IsaKind::Scalar => $scalar(w, a),
                #[cfg(target_arch = "x86_64")]
                IsaKind::Avx2(t) => $avx2(t, w, a),
                #[cfg(target_arch = "x86_64")]
                IsaKind::Avx512(t) => $avx2(t.avx2(), w, a),
            }
        }

        $(#[$doc])*
        ///
        /// `n` is the row length in elements; both rows are little-endian bytes. Panics if a
        /// row's length does not match `n`. Uses [`Isa::current`].
        pub fn $public(n: usize, w_row: &[u8], a_row: &[u8]) -> f32 {
            assert!(
                w_row.len() == n * $bytes && a_row.len() == n * $bytes,
                "{}: n={n} does not match rows of {} and {} bytes",
                stringify!($public),
                w_row.len(),
                a_row.len()
            );
            $row(Isa::current(), w_row, a_row)
        }
    };
}

float_pair!(
    /// F16 weights · F16 activations.
    vec_dot_f16_f16, f16_row, 2, float::f16_f16, simd::float::f16_f16);
/// `out[j] = ` [`vec_dot_f16_f16`]`(n, row j, y)` for `out.len()` f16 rows of `n` elements,
/// row j starting at byte `stride · j` of `rows` (a head's cached keys): the same bits as one
/// call per row, without a dispatch per row. Panics if the rows or `y` do not fit. Uses
/// [`Isa::current`].
pub fn vec_dot_f16_f16_rows(n: usize, rows: &[u8], stride: usize, y: &[u8], out: &mut [f32]) {
    vec_dot_f16_f16_rows_with(Isa::current(), n, rows, stride, y, out);
}

/// [`vec_dot_f16_f16_rows`] on an explicit kernel path (every path gives the same bits).
pub fn vec_dot_f16_f16_rows_with(
    isa: Isa,
    n: usize,
    rows: &[u8],
    stride: usize,
    y: &[u8],
    out: &mut [f32],
) {
    let row_bytes = 2 * n;
    assert!(
        y.len() == row_bytes,
        "vec_dot_f16_f16_rows: y is not {n} f16 values"
    );
    if let Some(last) = out.len().checked_sub(1) {
        assert!(
            stride >= row_bytes && rows.len() >= last * stride + row_bytes,
            "vec_dot_f16_f16_rows: {} rows of {row_bytes} bytes at a stride of {stride} do not fit in {} bytes",
            out.len(),
            rows.len()
        );
    }
    match isa.kind() {
        IsaKind::Scalar => {
            for (j, o) in out.iter_mut().enumerate() {
                *o = float::f16_f16(&rows[j * stride..j * stride + row_bytes], y);
            }
        }
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2(t) => simd::float::f16_rows_f16(t, rows, stride, y, out),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512(t) => simd::float::f16_rows_f16(t.avx2(), rows, stride, y, out),
    }
}

float_pair!(
    /// BF16 weights · BF16 activations.
    vec_dot_bf16_bf16, bf16_row, 2, float::bf16_bf16, simd::float::bf16_bf16);
float_pair!(
    /// F32 weights · F32 activations.
    vec_dot_f32_f32, f32_row, 4, float::f32_f32, simd::float::f32_f32);

/// The dot kernel for one weight type: its activation format, its byte-row function and, where
/// they exist, its multi-token AVX2 tile kernel and its AVX-512 row-pair tile kernel.
#[derive(Clone, Copy)]
pub(crate) struct RowDot {
    /// The activation format the rows must be in.
    pub(crate) act: GgmlType,
    f: RowFn,
    #[cfg(target_arch = "x86_64")]
    tile: Option<multi::TileFn>,
    #[cfg(target_arch = "x86_64")]
    pair_tile: Option<multi::PairTileFn>,
}

impl RowDot {
    /// The kernel for weights of type `weight`, or an error for activation-only types.
    pub(crate) fn for_weight(weight: GgmlType) -> Result<RowDot, CpuError> {
        use GgmlType as T;
        let act = vec_dot_type(weight).ok_or(CpuError::NotAWeightType(weight))?;
        let f: RowFn = match weight {
            T::Q4_0 => q4_0_row,
            T::Q4_1 => q4_1_row,
            T::Q5_0 => q5_0_row,
            T::Q5_1 => q5_1_row,
            T::Q8_0 => q8_0_row,
            T::IQ4NL => iq4_nl_row,
            T::Q2K => q2k_row,
            T::Q3K => q3k_row,
            T::Q4K => q4k_row,
            T::Q5K => q5k_row,
            T::Q6K => q6k_row,
            T::F16 => f16_row,
            T::BF16 => bf16_row,
            T::F32 => f32_row,
            T::Q8_1 | T::Q8K => return Err(CpuError::NotAWeightType(weight)),
        };
        Ok(RowDot {
            act,
            f,
            #[cfg(target_arch = "x86_64")]
            tile: multi::avx2_tile(weight),
            #[cfg(target_arch = "x86_64")]
            pair_tile: multi::avx512_tile(weight),
        })
    }

    /// Dots one weight row with one activation row (both whole rows of the right types).
    #[inline]
    pub(crate) fn dot(&self, isa: Isa, w_row: &[u8], a_row: &[u8]) -> f32 {
        (self.f)(isa, w_row, a_row)
    }
}

/// Dots one weight row of type `weight` (`n` elements) with an activation row already in the
/// weight's [`vec_dot_type`], on the given path. Errors on a type or length mismatch.
pub fn vec_dot_with(
    isa: Isa,
    weight: GgmlType,
    n: usize,
    w_row: &[u8],
    a_row: &[u8],
) -> Result<f32, CpuError> {
    let kernel = RowDot::for_weight(weight)?;
    let w_bytes = weight.row_bytes(n as u64);
    let a_bytes = kernel.act.row_bytes(n as u64);
    match (w_bytes, a_bytes) {
        (Some(wb), Some(ab)) if wb == w_row.len() as u64 && ab == a_row.len() as u64 => {
            Ok(kernel.dot(isa, w_row, a_row))
        }
        _ => Err(CpuError::RowLength {
            ty: weight,
            n,
            w_bytes: w_row.len(),
            a_bytes: a_row.len(),
        }),
    }
}

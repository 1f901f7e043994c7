//! Scalar twins of the F16, BF16 and F32 dots, mirroring ggml's x86 float dots.
//!
//! F16 and F32: four 8-lane accumulators over 32-element steps (`fma`), folded as
//! `(a0+a2)+(a1+a3)`, reduced with two `hadd`s; the tail of fewer than 32 elements is added in
//! f64 (F16) or by f32 `fma` (F32). BF16: four accumulators (`fma`), folded `(c0+c2)+(c1+c3)`,
//! reduced like `hsum_float_8`, the tail added in f64. Rows are raw little-endian bytes.

use half::{bf16, f16};

use super::lanes::Lanes8;

/// Elements handled by one step of the vector loop (4 accumulators × 8 lanes).
pub(crate) const FLOAT_STEP: usize = 32;

/// Element `i` of a little-endian f16 row, as f32.
#[inline]
pub(crate) fn f16_at(row: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([row[2 * i], row[2 * i + 1]])).to_f32()
}

/// Element `i` of a little-endian bf16 row, as f32.
#[inline]
pub(crate) fn bf16_at(row: &[u8], i: usize) -> f32 {
    bf16::from_bits(u16::from_le_bytes([row[2 * i], row[2 * i + 1]])).to_f32()
}

/// Element `i` of a little-endian f32 row.
#[inline]
pub(crate) fn f32_at(row: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([row[4 * i], row[4 * i + 1], row[4 * i + 2], row[4 * i + 3]])
}

/// The vector part over the first `n & !31` elements: four accumulators of fused products.
#[inline]
fn four_accumulators(n: usize, load: impl Fn(usize) -> (f32, f32)) -> [Lanes8; 4] {
    let mut acc = [Lanes8::default(); 4];
    for i in (0..tail_start(n)).step_by(FLOAT_STEP) {
        for (j, a) in acc.iter_mut().enumerate() {
            let (mut x, mut y) = ([0.0f32; 8], [0.0f32; 8]);
            for k in 0..8 {
                (x[k], y[k]) = load(i + 8 * j + k);
            }
            a.fma(&x, &y);
        }
    }
    acc
}

/// F16 · F16 over `x.len() / 2` elements.
pub(crate) fn f16_f16(x: &[u8], y: &[u8]) -> f32 {
    let n = x.len().min(y.len()) / 2;
    let acc = four_accumulators(n, |i| (f16_at(x, i), f16_at(y, i)));
    f16_finish(
        x,
        y,
        n,
        acc[0].add(acc[2]).add(acc[1].add(acc[3])).hsum_hadd(),
    )
}

/// BF16 · BF16 over `x.len() / 2` elements.
pub(crate) fn bf16_bf16(x: &[u8], y: &[u8]) -> f32 {
    let n = x.len().min(y.len()) / 2;
    let acc = four_accumulators(n, |i| (bf16_at(x, i), bf16_at(y, i)));
    bf16_finish(x, y, n, acc[0].add(acc[2]).add(acc[1].add(acc[3])).hsum8())
}

/// F32 · F32 over `x.len() / 4` elements.
pub(crate) fn f32_f32(x: &[u8], y: &[u8]) -> f32 {
    let n = x.len().min(y.len()) / 4;
    let acc = four_accumulators(n, |i| (f32_at(x, i), f32_at(y, i)));
    f32_finish(
        x,
        y,
        n,
        acc[0].add(acc[2]).add(acc[1].add(acc[3])).hsum_hadd(),
    )
}

/// Start of the tail that the 32-element vector loop leaves.
#[inline]
pub(crate) fn tail_start(n: usize) -> usize {
    n - n % FLOAT_STEP
}

/// F16 result from the reduced vector part: the tail is added in f64 (shared with AVX2).
pub(crate) fn f16_finish(x: &[u8], y: &[u8], n: usize, vec_sum: f32) -> f32 {
    let mut sumf = f64::from(vec_sum);
    for i in tail_start(n)..n {
        sumf += f64::from(f16_at(x, i) * f16_at(y, i));
    }
    sumf as f32
}

/// BF16 result from the reduced vector part: `0.0 + vec_sum`, tail in f64 (shared with AVX2).
pub(crate) fn bf16_finish(x: &[u8], y: &[u8], n: usize, vec_sum: f32) -> f32 {
    let mut sumf = 0.0f64;
    sumf += f64::from(vec_sum);
    for i in tail_start(n)..n {
        sumf += f64::from(bf16_at(x, i) * bf16_at(y, i));
    }
    sumf as f32
}

/// F32 result from the reduced vector part: tail by f32 `fma` (shared with AVX2).
pub(crate) fn f32_finish(x: &[u8], y: &[u8], n: usize, vec_sum: f32) -> f32 {
    let mut sumf = vec_sum;
    for i in tail_start(n)..n {
        sumf = f32_at(x, i).mul_add(f32_at(y, i), sumf);
    }
    sumf
}

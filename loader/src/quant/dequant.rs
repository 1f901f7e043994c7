//! Scalar reference dequantisation to f32: one function per block format plus
//! [`dequantize_row`], which checks lengths and dispatches on the [`GgmlType`].
//!
//! Every value is computed in the float order of ggml's scalar reference code, so results are
//! bit-exact against it and against gguf-py's numpy `dequantize` (checked by
//! `loader/tests/quant_fixtures.rs`). SIMD and CUDA kernels are tested against these functions.

mod kquant;
mod legacy;

pub use kquant::{
    dequantize_block_q2_k, dequantize_block_q3_k, dequantize_block_q4_k, dequantize_block_q5_k,
    dequantize_block_q6_k, dequantize_block_q8_k, QK_K,
};
pub use legacy::{
    dequantize_block_iq4_nl, dequantize_block_q4_0, dequantize_block_q4_1, dequantize_block_q5_0,
    dequantize_block_q5_1, dequantize_block_q8_0, dequantize_block_q8_1, QK,
};

use crate::quant::blocks::{as_blocks, bf16_le, f16_le, Block};
use crate::GgmlType;

/// Why a row could not be dequantised; nothing is written to `dst` in either case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    /// The output length is not a whole number of blocks of the type.
    #[error("{ty}: {n_elems} elements is not a whole number of {block_elems}-element blocks")]
    PartialBlock {
        /// The element type.
        ty: GgmlType,
        /// Elements asked for (`dst.len()`).
        n_elems: usize,
        /// Elements per block of `ty`.
        block_elems: usize,
    },
    /// The source is not exactly the bytes of the blocks that hold `n_elems` elements.
    #[error("{ty}: {n_elems} elements take {want_bytes} bytes, but the source has {got_bytes}")]
    LengthMismatch {
        /// The element type.
        ty: GgmlType,
        /// Elements asked for (`dst.len()`).
        n_elems: usize,
        /// Bytes that `n_elems` elements of `ty` occupy.
        want_bytes: usize,
        /// Bytes given (`src.len()`).
        got_bytes: usize,
    },
}

/// Dequantises `dst.len()` elements of type `ty` from `src`, which must hold exactly their blocks.
///
/// Every [`GgmlType`] is supported; a type added to the enum must be added here to compile.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), DequantError> {
    check_lengths(ty, src.len(), dst.len())?;
    match ty {
        GgmlType::F32 => per_element(src, dst, f32::from_le_bytes),
        GgmlType::F16 => per_element(src, dst, f16_le),
        GgmlType::BF16 => per_element(src, dst, bf16_le),
        GgmlType::Q4_0 => per_block(src, dst, dequantize_block_q4_0),
        GgmlType::Q4_1 => per_block(src, dst, dequantize_block_q4_1),
        GgmlType::Q5_0 => per_block(src, dst, dequantize_block_q5_0),
        GgmlType::Q5_1 => per_block(src, dst, dequantize_block_q5_1),
        GgmlType::Q8_0 => per_block(src, dst, dequantize_block_q8_0),
        GgmlType::Q8_1 => per_block(src, dst, dequantize_block_q8_1),
        GgmlType::IQ4NL => per_block(src, dst, dequantize_block_iq4_nl),
        GgmlType::Q2K => per_block(src, dst, dequantize_block_q2_k),
        GgmlType::Q3K => per_block(src, dst, dequantize_block_q3_k),
        GgmlType::Q4K => per_block(src, dst, dequantize_block_q4_k),
        GgmlType::Q5K => per_block(src, dst, dequantize_block_q5_k),
        GgmlType::Q6K => per_block(src, dst, dequantize_block_q6_k),
        GgmlType::Q8K => per_block(src, dst, dequantize_block_q8_k),
    }
    Ok(())
}

/// Checks that `n_elems` is whole blocks of `ty` and that `src_bytes` is exactly their size.
fn check_lengths(ty: GgmlType, src_bytes: usize, n_elems: usize) -> Result<(), DequantError> {
    let block_elems = ty.block_elems();
    if !n_elems.is_multiple_of(block_elems) {
        return Err(DequantError::PartialBlock {
            ty,
            n_elems,
            block_elems,
        });
    }
    let want_bytes = (n_elems / block_elems).checked_mul(ty.block_bytes());
    if want_bytes != Some(src_bytes) {
        return Err(DequantError::LengthMismatch {
            ty,
            n_elems,
            want_bytes: want_bytes.unwrap_or(usize::MAX),
            got_bytes: src_bytes,
        });
    }
    Ok(())
}

/// Plain float types: one `N`-byte element at a time (lengths already checked).
fn per_element<const N: usize>(src: &[u8], dst: &mut [f32], f: fn([u8; N]) -> f32) {
    for (o, bytes) in dst.iter_mut().zip(src.chunks_exact(N)) {
        let mut raw = [0u8; N];
        raw.copy_from_slice(bytes);
        *o = f(raw);
    }
}

/// Block types: one block into `N` outputs at a time (lengths already checked).
fn per_block<B: Block, const N: usize>(src: &[u8], dst: &mut [f32], f: fn(&B, &mut [f32; N])) {
    const { assert!(N == B::ELEMS, "block function writes one block's elements") };
    // `check_lengths` made `src` whole blocks, so the view exists; the fallback is never taken.
    let blocks = as_blocks::<B>(src).unwrap_or(&[]);
    for (b, chunk) in blocks.iter().zip(dst.chunks_exact_mut(N)) {
        let mut out = [0.0f32; N];
        f(b, &mut out);
        chunk.copy_from_slice(&out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_convert_exactly() {
        let src = [0x01, 0x00, 0x00, 0xFC, 0x00, 0x3C]; // f16 subnormal, -inf, 1.0
        let mut dst = [0.0; 3];
        dequantize_row(GgmlType::F16, &src, &mut dst).unwrap();
        assert_eq!(dst, [2f32.powi(-24), f32::NEG_INFINITY, 1.0]);

        let src = [0x80, 0x3F, 0x01, 0x00, 0xC0, 0x7F]; // bf16 1.0, subnormal, quiet NaN
        dequantize_row(GgmlType::BF16, &src, &mut dst).unwrap();
        assert_eq!(
            dst.map(f32::to_bits),
            [0x3F80_0000, 0x0001_0000, 0x7FC0_0000]
        );

        let src: Vec<u8> = [1.5f32, -0.0, f32::MIN_POSITIVE / 2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        dequantize_row(GgmlType::F32, &src, &mut dst).unwrap();
        assert_eq!(
            dst.map(f32::to_bits),
            [1.5f32.to_bits(), 0x8000_0000, 0x0040_0000]
        );
    }

    #[test]
    fn rows_of_several_blocks_go_in_order() {
        // Two Q4_0 blocks: d = 1 then d = 2, all nibbles 9 → 1, then 2.
        let mut src = vec![0x00, 0x3C];
        src.extend([0x99; 16]);
        src.extend([0x00, 0x40]);
        src.extend([0x99; 16]);
        let mut dst = [0.0; 64];
        dequantize_row(GgmlType::Q4_0, &src, &mut dst).unwrap();
        assert!(dst[..32].iter().all(|&v| v == 1.0));
        assert!(dst[32..].iter().all(|&v| v == 2.0));
    }

    #[test]
    fn wrong_lengths_are_typed_errors() {
        let mut dst = [7.0f32; 48];
        let err = dequantize_row(GgmlType::Q4_0, &[0; 18], &mut dst).unwrap_err();
        assert_eq!(
            err,
            DequantError::PartialBlock {
                ty: GgmlType::Q4_0,
                n_elems: 48,
                block_elems: 32
            }
        );
        let err = dequantize_row(GgmlType::Q4K, &[0; 143], &mut dst[..0]).unwrap_err();
        assert!(matches!(
            err,
            DequantError::LengthMismatch {
                want_bytes: 0,
                got_bytes: 143,
                ..
            }
        ));
        for ty in GgmlType::ALL {
            let n = ty.block_elems();
            let mut dst = vec![0.0; n];
            for bad in [0, ty.block_bytes() - 1, ty.block_bytes() + 1] {
                let err = dequantize_row(ty, &vec![0; bad], &mut dst).unwrap_err();
                let want = DequantError::LengthMismatch {
                    ty,
                    n_elems: n,
                    want_bytes: ty.block_bytes(),
                    got_bytes: bad,
                };
                assert_eq!(err, want, "{ty}");
            }
        }
        assert!(dst.iter().all(|&v| v == 7.0), "dst untouched on error");
    }

    #[test]
    fn empty_rows_are_fine() {
        for ty in GgmlType::ALL {
            assert_eq!(dequantize_row(ty, &[], &mut []), Ok(()));
        }
    }
}

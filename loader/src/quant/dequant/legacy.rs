//! The 32-element block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 and IQ4_NL
//! (gguf-facts.md §2.3).
//!
//! Nibble placement is shared by all 4-bit formats: element `j < 16` is the low nibble of
//! `qs[j]`, element `j + 16` the high nibble of the same byte. Products are formed in ggml's
//! reference order (`q * d`, then `+ m` as a separate rounding), so results are bit-exact
//! against ggml's scalar `dequantize_row_*` and gguf-py's numpy `dequantize`.

use crate::quant::blocks::{
    f16_le, BlockIQ4NL, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1,
    KVALUES_IQ4NL,
};

/// Elements in one block of every format in this file.
pub const QK: usize = 32;

/// The 32 4-bit values of a 16-byte `qs`, in element order.
#[inline]
fn nibbles(qs: &[u8; 16]) -> [u8; QK] {
    let mut n = [0u8; QK];
    for (j, &byte) in qs.iter().enumerate() {
        n[j] = byte & 0x0F;
        n[j + 16] = byte >> 4;
    }
    n
}

/// The 32 5-bit values of a Q5 block: nibbles plus bit `e` of the little-endian `qh` as bit 4.
#[inline]
fn five_bit(qh: [u8; 4], qs: &[u8; 16]) -> [u8; QK] {
    let high = u32::from_le_bytes(qh);
    let mut q = nibbles(qs);
    for (e, v) in q.iter_mut().enumerate() {
        *v |= (((high >> e) & 1) as u8) << 4;
    }
    q
}

/// Q4_0: `(nibble − 8) · d`.
pub fn dequantize_block_q4_0(b: &BlockQ4_0, out: &mut [f32; QK]) {
    let d = f16_le(b.d);
    for (o, n) in out.iter_mut().zip(nibbles(&b.qs)) {
        *o = f32::from(n as i8 - 8) * d;
    }
}

/// Q4_1: `nibble · d + m`.
pub fn dequantize_block_q4_1(b: &BlockQ4_1, out: &mut [f32; QK]) {
    let (d, m) = (f16_le(b.d), f16_le(b.m));
    for (o, n) in out.iter_mut().zip(nibbles(&b.qs)) {
        *o = f32::from(n) * d + m;
    }
}

/// Q5_0: `(q − 16) · d` with `q = nibble | high_bit << 4`.
pub fn dequantize_block_q5_0(b: &BlockQ5_0, out: &mut [f32; QK]) {
    let d = f16_le(b.d);
    for (o, q) in out.iter_mut().zip(five_bit(b.qh, &b.qs)) {
        *o = f32::from(q as i8 - 16) * d;
    }
}

/// Q5_1: `q · d + m` with `q = nibble | high_bit << 4`.
pub fn dequantize_block_q5_1(b: &BlockQ5_1, out: &mut [f32; QK]) {
    let (d, m) = (f16_le(b.d), f16_le(b.m));
    for (o, q) in out.iter_mut().zip(five_bit(b.qh, &b.qs)) {
        *o = f32::from(q) * d + m;
    }
}

/// Q8_0: `q · d`.
pub fn dequantize_block_q8_0(b: &BlockQ8_0, out: &mut [f32; QK]) {
    let d = f16_le(b.d);
    for (o, &q) in out.iter_mut().zip(&b.qs) {
        *o = f32::from(q) * d;
    }
}

/// Q8_1 (activation format): `q · d`; the stored sum `s` plays no part.
pub fn dequantize_block_q8_1(b: &BlockQ8_1, out: &mut [f32; QK]) {
    let d = f16_le(b.d);
    for (o, &q) in out.iter_mut().zip(&b.qs) {
        *o = f32::from(q) * d;
    }
}

/// IQ4_NL: `d · KVALUES_IQ4NL[nibble]`.
pub fn dequantize_block_iq4_nl(b: &BlockIQ4NL, out: &mut [f32; QK]) {
    let d = f16_le(b.d);
    for (o, n) in out.iter_mut().zip(nibbles(&b.qs)) {
        *o = d * f32::from(KVALUES_IQ4NL[usize::from(n)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: [u8; 2] = [0x00, 0x3C]; // f16 1.0
    const HALF: [u8; 2] = [0x00, 0x38]; // f16 0.5
    const MINUS_TWO: [u8; 2] = [0x00, 0xC0]; // f16 -2.0

    fn run<B>(f: fn(&B, &mut [f32; QK]), b: &B) -> [f32; QK] {
        let mut out = [f32::NAN; QK];
        f(b, &mut out);
        out
    }

    #[test]
    fn q4_0_elements_j_and_j_plus_16_share_byte_j() {
        let b = BlockQ4_0 {
            d: ONE,
            qs: [0x10; 16],
        };
        let out = run(dequantize_block_q4_0, &b);
        assert_eq!(out[0], -8.0);
        assert_eq!(out[15], -8.0);
        assert_eq!(out[16], -7.0);
        assert_eq!(out[31], -7.0);

        let mut qs = [0u8; 16];
        qs[3] = 0xF2; // element 3 = 2 - 8, element 19 = 15 - 8
        let out = run(dequantize_block_q4_0, &BlockQ4_0 { d: MINUS_TWO, qs });
        assert_eq!(out[3], 12.0);
        assert_eq!(out[19], -14.0);
        assert_eq!(out[4], 16.0);
    }

    #[test]
    fn q4_1_adds_min_after_scaling() {
        let b = BlockQ4_1 {
            d: HALF,
            m: MINUS_TWO,
            qs: [0xF0; 16],
        };
        let out = run(dequantize_block_q4_1, &b);
        assert_eq!(out[0], -2.0); // 0 * 0.5 - 2
        assert_eq!(out[16], 5.5); // 15 * 0.5 - 2
    }

    #[test]
    fn q5_0_high_bit_e_is_bit_e_of_little_endian_qh() {
        // qh bit 0 and bit 17 set: element 0 has q = 16 + nibble, element 17 too.
        let qh = (1u32 | 1 << 17).to_le_bytes();
        let b = BlockQ5_0 {
            d: ONE,
            qh,
            qs: [0x31; 16],
        };
        let out = run(dequantize_block_q5_0, &b);
        assert_eq!(out[0], 1.0); // (1 | 16) - 16
        assert_eq!(out[1], -15.0); // 1 - 16
        assert_eq!(out[16], -13.0); // 3 - 16
        assert_eq!(out[17], 3.0); // (3 | 16) - 16
    }

    #[test]
    fn q5_1_full_range() {
        let b = BlockQ5_1 {
            d: ONE,
            m: HALF,
            qh: [0xFF; 4],
            qs: [0xFF; 16],
        };
        assert!(run(dequantize_block_q5_1, &b).iter().all(|&v| v == 31.5));
        let b = BlockQ5_1 {
            d: ONE,
            m: HALF,
            qh: [0; 4],
            qs: [0; 16],
        };
        assert!(run(dequantize_block_q5_1, &b).iter().all(|&v| v == 0.5));
    }

    #[test]
    fn q8_formats_are_signed_bytes_times_d() {
        let mut qs = [0i8; 32];
        qs[0] = -128;
        qs[31] = 127;
        let out = run(dequantize_block_q8_0, &BlockQ8_0 { d: HALF, qs });
        assert_eq!((out[0], out[1], out[31]), (-64.0, 0.0, 63.5));
        let out = run(
            dequantize_block_q8_1,
            &BlockQ8_1 {
                d: MINUS_TWO,
                s: ONE,
                qs,
            },
        );
        assert_eq!((out[0], out[31]), (256.0, -254.0));
    }

    #[test]
    fn iq4_nl_uses_the_code_book() {
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = j as u8 | (15 - j as u8) << 4;
        }
        let out = run(dequantize_block_iq4_nl, &BlockIQ4NL { d: HALF, qs });
        assert_eq!(out[0], -63.5); // T[0] = -127
        assert_eq!(out[15], 56.5); // T[15] = 113
        assert_eq!(out[16], 56.5); // high nibble of byte 0 is 15
        assert_eq!(out[24], -5.0); // high nibble of byte 8 is 7: T[7] = -10
    }

    #[test]
    fn zero_scale_keeps_the_sign_of_zero() {
        // ggml multiplies, so a negative quant times +0 gives -0; bit-exact tests rely on it.
        let out = run(
            dequantize_block_q4_0,
            &BlockQ4_0 {
                d: [0, 0],
                qs: [0; 16],
            },
        );
        assert!(out.iter().all(|v| v.to_bits() == (-0.0f32).to_bits()));
    }
}

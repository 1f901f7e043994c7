//! The 256-element super-block formats: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K
//! (gguf-facts.md §2.3).
//!
//! Each function computes element `e` straight from the index formulas of the fact sheet.
//! The group scale is formed first (`d · sc`, `dmin · m`), then `scale · q − min`, the order of
//! ggml's scalar `dequantize_row_*` and of gguf-py's numpy `dequantize`, so both agree bit for
//! bit with this code.

use crate::quant::blocks::{
    f16_le, q3k_scales, scale_min_k4, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K,
};

/// Elements in one super-block.
pub const QK_K: usize = 256;

/// Q2_K: `d · (sc & 15) · q − dmin · (sc >> 4)` with a 2-bit `q` and `sc = scales[e / 16]`.
pub fn dequantize_block_q2_k(b: &BlockQ2K, out: &mut [f32; QK_K]) {
    let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
    for (e, o) in out.iter_mut().enumerate() {
        let sc = b.scales[e / 16];
        let (dl, ml) = (d * f32::from(sc & 0x0F), dmin * f32::from(sc >> 4));
        let q = (b.qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
        *o = dl * f32::from(q) - ml;
    }
}

/// Q3_K: `d · s · q` with a signed 6-bit scale `s` and `q = low2 − 4` unless the hmask bit is set.
pub fn dequantize_block_q3_k(b: &BlockQ3K, out: &mut [f32; QK_K]) {
    let d = f16_le(b.d);
    let scales = q3k_scales(&b.scales);
    for (e, o) in out.iter_mut().enumerate() {
        let dl = d * f32::from(scales[e / 16]);
        let low2 = (b.qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
        let high_set = (b.hmask[e % 32] >> (e / 32)) & 1 == 1;
        let q = low2 as i8 - if high_set { 0 } else { 4 };
        *o = dl * f32::from(q);
    }
}

/// Q4_K: `d · sc · nibble − dmin · m` with 6-bit `(sc, m)` per group of 32.
pub fn dequantize_block_q4_k(b: &BlockQ4K, out: &mut [f32; QK_K]) {
    let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
    for (e, o) in out.iter_mut().enumerate() {
        let (sc, m) = scale_min_k4(e / 32, &b.scales);
        let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
        let byte = b.qs[32 * (e / 64) + e % 32];
        let nibble = if (e / 32) % 2 == 0 {
            byte & 0x0F
        } else {
            byte >> 4
        };
        *o = d1 * f32::from(nibble) - m1;
    }
}

/// Q5_K: Q4_K with a fifth bit, `(qh[e % 32] >> (e / 32)) & 1`, worth 16.
pub fn dequantize_block_q5_k(b: &BlockQ5K, out: &mut [f32; QK_K]) {
    let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
    for (e, o) in out.iter_mut().enumerate() {
        let (sc, m) = scale_min_k4(e / 32, &b.scales);
        let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
        let byte = b.qs[32 * (e / 64) + e % 32];
        let nibble = if (e / 32) % 2 == 0 {
            byte & 0x0F
        } else {
            byte >> 4
        };
        let high = (b.qh[e % 32] >> (e / 32)) & 1;
        *o = d1 * f32::from(nibble | high << 4) - m1;
    }
}

/// Q6_K: `d · scales[e / 16] · (q − 32)` with 4 low bits from `ql` and 2 high bits from `qh`.
pub fn dequantize_block_q6_k(b: &BlockQ6K, out: &mut [f32; QK_K]) {
    let d = f16_le(b.d);
    for (e, o) in out.iter_mut().enumerate() {
        let (h, k, l) = (e / 128, (e / 32) % 4, e % 32);
        let byte = b.ql[64 * h + 32 * (k % 2) + l];
        let low4 = if k < 2 { byte & 0x0F } else { byte >> 4 };
        let high2 = (b.qh[32 * h + l] >> (2 * k)) & 3;
        let q = (low4 | high2 << 4) as i8 - 32;
        *o = d * f32::from(b.scales[e / 16]) * f32::from(q);
    }
}

/// Q8_K (activation format): `d · q` with an f32 `d`; `bsums` play no part.
pub fn dequantize_block_q8_k(b: &BlockQ8K, out: &mut [f32; QK_K]) {
    let d = f32::from_le_bytes(b.d);
    for (o, &q) in out.iter_mut().zip(&b.qs) {
        *o = d * f32::from(q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: [u8; 2] = [0x00, 0x3C]; // f16 1.0
    const HALF: [u8; 2] = [0x00, 0x38]; // f16 0.5
    const MINUS_TWO: [u8; 2] = [0x00, 0xC0]; // f16 -2.0

    fn run<B>(f: fn(&B, &mut [f32; QK_K]), b: &B) -> [f32; QK_K] {
        let mut out = [f32::NAN; QK_K];
        f(b, &mut out);
        out
    }

    #[test]
    fn q2_k_shifts_walk_the_same_32_bytes() {
        let mut b = BlockQ2K {
            scales: [0; 16],
            qs: [0; 64],
            d: ONE,
            dmin: HALF,
        };
        b.scales[0] = 0x21; // scale 1, min 2 for elements 0..16
        b.scales[2] = 0x03; // scale 3, min 0 for elements 32..48
        b.scales[8] = 0x15; // scale 5, min 1 for elements 128..144
        b.qs[0] = 0b11_10_01_11; // element 0: 3, element 32: 1, 64: 2, 96: 3
        b.qs[32] = 0b10; // element 128: 2
        let out = run(dequantize_block_q2_k, &b);
        assert_eq!(out[0], 3.0 - 1.0); // 1·3 − 0.5·2
        assert_eq!(out[1], -1.0); // 1·0 − 0.5·2
        assert_eq!(out[32], 3.0); // 3·1 − 0
        assert_eq!(out[128], 10.0 - 0.5); // 5·2 − 0.5·1
        assert_eq!(out[64], 0.0); // scales[4] = 0
    }

    #[test]
    fn q3_k_unset_high_bit_subtracts_four() {
        let mut b = BlockQ3K {
            hmask: [0; 32],
            qs: [0; 64],
            scales: [0; 12],
            d: ONE,
        };
        // All raw scales 0 → effective −32; q = 0 − 4 → value 128.
        assert!(run(dequantize_block_q3_k, &b).iter().all(|&v| v == 128.0));
        // Low nibbles 1 and every 2-bit high part 1: each scale is 17, i.e. 17 − 32 = −15.
        b.scales = [
            0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x55, 0x55, 0x55, 0x55,
        ];
        b.hmask[5] = 0b0000_0010; // bit 1: element 32 + 5 keeps q = low2
        b.qs[5] = 0b0000_1100; // element 5: low2 = 0, element 37: low2 = 3
        let out = run(dequantize_block_q3_k, &b);
        assert_eq!(out[5], -15.0 * -4.0);
        assert_eq!(out[37], -15.0 * 3.0);
        assert_eq!(out[6], 60.0);
    }

    #[test]
    fn q4_k_groups_use_split_six_bit_scales() {
        let mut b = BlockQ4K {
            d: ONE,
            dmin: ONE,
            scales: [0; 12],
            qs: [0; 128],
        };
        b.scales[0] = 0b01_000011; // sc0 = 3; top bits 1 go to sc4
        b.scales[4] = 0b10_000001; // m0 = 1; top bits 2 go to m4
        b.scales[8] = 0x52; // sc4 low nibble 2, m4 low nibble 5
        b.qs[0] = 0x72; // element 0: 2, element 32: 7
        b.qs[64] = 0x09; // element 128 (group 4): 9
        let out = run(dequantize_block_q4_k, &b);
        assert_eq!(out[0], 3.0 * 2.0 - 1.0);
        assert_eq!(out[32], 0.0); // group 1: scale 0, min 0
        assert_eq!(out[128], 18.0 * 9.0 - 37.0); // sc4 = 2 | 1 << 4, m4 = 5 | 2 << 4
    }

    #[test]
    fn q5_k_high_bit_index_is_e_over_32() {
        let mut b = BlockQ5K {
            d: HALF,
            dmin: ONE,
            scales: [0; 12],
            qh: [0; 32],
            qs: [0; 128],
        };
        b.scales[1] = 2; // group 1: scale 2
        b.scales[5] = 1; // group 1: min 1
        b.qh[3] = 0b10; // element 32 + 3
        b.qs[3] = 0x40; // element 35 (group 1, high nibble): 4
        let out = run(dequantize_block_q5_k, &b);
        assert_eq!(out[35], 1.0 * 20.0 - 1.0);
        assert_eq!(out[3], 0.0);
    }

    #[test]
    fn q6_k_signed_scales_and_offset() {
        let mut b = BlockQ6K {
            ql: [0; 128],
            qh: [0; 64],
            scales: [0; 16],
            d: MINUS_TWO,
        };
        b.scales = [-1; 16];
        b.scales[15] = 127;
        b.ql[64 + 32 + 31] = 0xF0; // element 128 + 96 + 31 = 255 (k = 3): low4 = 15
        b.qh[32 + 31] = 0b11_000000; // its high2 = 3
        let out = run(dequantize_block_q6_k, &b);
        assert_eq!(out[0], 2.0 * -32.0); // (−2·−1)·(0 − 32)
        assert_eq!(out[255], -2.0 * 127.0 * 31.0);
    }

    #[test]
    fn q8_k_uses_an_f32_scale() {
        let mut b = BlockQ8K {
            d: (-0.25f32).to_le_bytes(),
            qs: [0; 256],
            bsums: [[0; 2]; 16],
        };
        b.qs[200] = -128;
        let out = run(dequantize_block_q8_k, &b);
        assert_eq!(out[200], 32.0);
        assert_eq!(out[0].to_bits(), (-0.0f32).to_bits());
    }
}

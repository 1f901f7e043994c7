//! Quantised block layouts, byte for byte as ggml stores them (gguf-facts.md §2.2).
//!
//! Every struct is `#[repr(C)]` with only byte-sized fields, so its alignment is 1 and a slice
//! of file bytes can be viewed as a slice of blocks with no alignment requirement (several
//! block sizes, 18, 22, 34, 110, 210, are not multiples of 4). Half-precision scales are stored
//! as raw little-endian `[u8; 2]` and read with [`f16_le`]. The same layouts are declared in
//! `kernels/` with `static_assert`s on their sizes.

use half::f16;

/// Reads a little-endian IEEE half as f32 (exact).
#[inline]
pub fn f16_le(b: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// Reads a little-endian bfloat16 as f32 (exact: the bits become the top half of an f32).
#[inline]
pub fn bf16_le(b: [u8; 2]) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
}

/// Q4_K/Q5_K: the 6-bit `(scale, min)` of group `j` (`j < 8`) from the 12 packed scale bytes.
///
/// Bytes 0–3 hold scales 0–3 in their low 6 bits, bytes 4–7 mins 0–3; the top two bits of
/// those eight bytes and the two nibbles of bytes 8–11 make up scales and mins 4–7.
#[inline]
pub fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        let sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        let m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        (sc, m)
    }
}

/// Q3_K: the 16 signed group scales, already offset by −32 (range −32..=31), from 12 bytes.
///
/// Bytes 0–7 give the low four bits (scales 0–7 in the low nibbles, 8–15 in the high ones);
/// bytes 8–11 give the top two bits, byte `8 + k` for scales `k`, `4 + k`, `8 + k`, `12 + k`.
#[inline]
pub fn q3k_scales(b: &[u8; 12]) -> [i8; 16] {
    let mut s = [0i8; 16];
    for k in 0..4 {
        let hi = b[8 + k];
        let six_bit = [
            (b[k] & 0x0F) | ((hi & 3) << 4),
            (b[4 + k] & 0x0F) | (((hi >> 2) & 3) << 4),
            (b[k] >> 4) | (((hi >> 4) & 3) << 4),
            (b[4 + k] >> 4) | (((hi >> 6) & 3) << 4),
        ];
        for (i, v) in six_bit.into_iter().enumerate() {
            // v < 64, so the cast is lossless and the subtraction cannot overflow.
            s[4 * i + k] = v as i8 - 32;
        }
    }
    s
}

/// Q4_0: 32 weights, `(nibble - 8) * d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; 16],
}

/// Q4_1: 32 weights, `nibble * d + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ4_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qs: [u8; 16],
}

/// Q5_0: 32 weights, `((nibble | hbit << 4) - 16) * d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// Q5_1: 32 weights, `(nibble | hbit << 4) * d + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockQ5_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// Q8_0: 32 weights, `q * d`. Also the activation format for Q4_0/Q5_0/Q8_0/IQ4_NL dots.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [i8; 32],
}

/// Q8_1: 32 activations, `q * d`, with `s = d * Σq` (CPU convention). Activation-only.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_1 {
    pub d: [u8; 2],
    pub s: [u8; 2],
    pub qs: [i8; 32],
}

/// Q2_K: 256 weights in 16 groups of 16, 4-bit scale and min per group.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ2K {
    pub scales: [u8; 16],
    pub qs: [u8; 64],
    pub d: [u8; 2],
    pub dmin: [u8; 2],
}

/// Q3_K: 256 weights, 2 low bits + inverted high bit, 16 signed 6-bit scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ3K {
    pub hmask: [u8; 32],
    pub qs: [u8; 64],
    pub scales: [u8; 12],
    pub d: [u8; 2],
}

/// Q4_K: 256 weights in 8 groups of 32, 6-bit scale and min per group.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}

/// Q5_K: Q4_K plus one high bit per weight.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}

/// Q6_K: 256 weights, 4 low + 2 high bits, 16 signed 8-bit scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: [u8; 2],
}

/// Q8_K: 256 activations, f32 scale (may be negative), group sums of 16. Activation-only.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8K {
    pub d: [u8; 4],
    pub qs: [i8; 256],
    pub bsums: [[u8; 2]; 16],
}

/// IQ4_NL: 32 weights, `d * KVALUES_IQ4NL[nibble]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockIQ4NL {
    pub d: [u8; 2],
    pub qs: [u8; 16],
}

/// The non-linear code book of IQ4_NL.
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// A block type: its size and element count are part of the type, so byte slices can be
/// reinterpreted safely.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain only `u8`/`i8` (arrays), have no padding, and
/// every bit pattern must be a valid value.
pub unsafe trait Block: Copy + 'static {
    /// Elements in one block.
    const ELEMS: usize;
    /// Bytes in one block.
    const BYTES: usize = std::mem::size_of::<Self>();
}

macro_rules! block {
    ($t:ty, $elems:expr, $bytes:expr) => {
        const _: () = assert!(std::mem::size_of::<$t>() == $bytes);
        const _: () = assert!(std::mem::align_of::<$t>() == 1);
        // SAFETY: byte-only #[repr(C)] struct, no padding (size asserted), any bits valid.
        unsafe impl Block for $t {
            const ELEMS: usize = $elems;
        }
    };
}

block!(BlockQ4_0, 32, 18);
block!(BlockQ4_1, 32, 20);
block!(BlockQ5_0, 32, 22);
block!(BlockQ5_1, 32, 24);
block!(BlockQ8_0, 32, 34);
block!(BlockQ8_1, 32, 36);
block!(BlockQ2K, 256, 84);
block!(BlockQ3K, 256, 110);
block!(BlockQ4K, 256, 144);
block!(BlockQ5K, 256, 176);
block!(BlockQ6K, 256, 210);
block!(BlockQ8K, 256, 292);
block!(BlockIQ4NL, 32, 18);

/// Views a byte slice as blocks; `None` unless the length is a whole number of blocks.
pub fn as_blocks<B: Block>(bytes: &[u8]) -> Option<&[B]> {
    if !bytes.len().is_multiple_of(B::BYTES) {
        return None;
    }
    let n = bytes.len() / B::BYTES;
    // SAFETY: B has alignment 1, size B::BYTES, and every bit pattern valid (Block contract);
    // the slice covers exactly n * B::BYTES initialised bytes borrowed for the same lifetime.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), n) })
}

/// Views a mutable byte slice as blocks; `None` unless the length is a whole number of blocks.
pub fn as_blocks_mut<B: Block>(bytes: &mut [u8]) -> Option<&mut [B]> {
    if !bytes.len().is_multiple_of(B::BYTES) {
        return None;
    }
    let n = bytes.len() / B::BYTES;
    // SAFETY: as in `as_blocks`; the exclusive borrow is carried over to the result.
    Some(unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<B>(), n) })
}

/// Views blocks as bytes (for writing fixtures and copying to devices).
pub fn block_bytes<B: Block>(blocks: &[B]) -> &[u8] {
    // SAFETY: B is plain bytes without padding (Block contract), so every byte is initialised.
    unsafe {
        std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GgmlType;

    #[test]
    fn sizes_match_ggml_type_table() {
        assert_eq!(BlockQ4_0::BYTES, GgmlType::Q4_0.block_bytes());
        assert_eq!(BlockQ4_1::BYTES, GgmlType::Q4_1.block_bytes());
        assert_eq!(BlockQ5_0::BYTES, GgmlType::Q5_0.block_bytes());
        assert_eq!(BlockQ5_1::BYTES, GgmlType::Q5_1.block_bytes());
        assert_eq!(BlockQ8_0::BYTES, GgmlType::Q8_0.block_bytes());
        assert_eq!(BlockQ8_1::BYTES, GgmlType::Q8_1.block_bytes());
        assert_eq!(BlockQ2K::BYTES, GgmlType::Q2K.block_bytes());
        assert_eq!(BlockQ3K::BYTES, GgmlType::Q3K.block_bytes());
        assert_eq!(BlockQ4K::BYTES, GgmlType::Q4K.block_bytes());
        assert_eq!(BlockQ5K::BYTES, GgmlType::Q5K.block_bytes());
        assert_eq!(BlockQ6K::BYTES, GgmlType::Q6K.block_bytes());
        assert_eq!(BlockQ8K::BYTES, GgmlType::Q8K.block_bytes());
        assert_eq!(BlockIQ4NL::BYTES, GgmlType::IQ4NL.block_bytes());
    }

    #[test]
    fn bf16_is_the_top_half_of_an_f32() {
        assert_eq!(bf16_le([0x80, 0x3F]), 1.0);
        assert_eq!(bf16_le([0x00, 0xC0]), -2.0);
        assert_eq!(bf16_le([0x81, 0x7F]).to_bits(), 0x7F81_0000); // signalling NaN kept
    }

    #[test]
    fn k4_scales_split_across_three_byte_groups() {
        let s = [
            0xC1, 0x02, 0x03, 0x3F, 0x84, 0x05, 0x06, 0x07, 0xA9, 0x00, 0x00, 0xFF,
        ];
        assert_eq!(scale_min_k4(0, &s), (1, 4));
        assert_eq!(scale_min_k4(3, &s), (63, 7));
        // Group 4: low nibble of byte 8 and top bits of byte 0 (scale), byte 4 (min).
        assert_eq!(scale_min_k4(4, &s), (0x9 | 3 << 4, 0xA | 2 << 4));
        assert_eq!(scale_min_k4(7, &s), (15, 15));
    }

    #[test]
    fn q3k_scales_are_offset_six_bit_values() {
        assert_eq!(q3k_scales(&[0; 12]), [-32; 16]);
        assert_eq!(q3k_scales(&[0xFF; 12]), [31; 16]);
        let mut b = [0u8; 12];
        b[1] = 0x5A; // scale 1: low nibble 0xA; scale 9: low nibble 5
        b[9] = 0b00_10_00_01; // scale 1: high bits 1; scale 9: high bits 2
        let s = q3k_scales(&b);
        assert_eq!(s[1], 0x1A - 32);
        assert_eq!(s[9], 0x25 - 32);
        assert_eq!(s[5], -32);
    }

    #[test]
    fn views_check_length() {
        let bytes = [0u8; 36];
        assert_eq!(as_blocks::<BlockQ4_0>(&bytes).map(|b| b.len()), Some(2));
        assert!(as_blocks::<BlockQ4_0>(&bytes[..35]).is_none());
        // Unaligned start is fine: alignment is 1.
        assert_eq!(
            as_blocks::<BlockQ4_0>(&bytes[..18]).map(|b| b.len()),
            Some(1)
        );
    }
}

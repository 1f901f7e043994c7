//! The 16-row interleaved weight layout: resident matrices rearranged once, in place, so that an
//! AVX-512 kernel holds one weight row per f32 lane (`simd::avx512::rows16`), and an AVX2
//! kernel one row of each 8-row half per lane (`simd::rows16`, the 32-element types).
//!
//! The file layout stores each row's blocks back to back, which makes a zmm carry two rows'
//! 8-lane partial sums (the AVX2 order) and spend a scale multiply, a widening and a reduction
//! on every pair. Interleaved, 16 rows share every instruction: lane r of a register is row r
//! of the group, and the 8 AVX2 partial lanes of a block become 8 registers, so each row still
//! performs exactly its AVX2 arithmetic in its AVX2 order (bit-identical outputs) while the
//! scale products, the `m·s` terms and the final sums are done once per 16 rows.
//!
//! Layout of a matrix whose row count is a multiple of 16: groups of 16 rows, each the same size
//! as its 16 file rows (`16 × row_bytes`), so any run of whole groups is still one contiguous
//! byte range. Inside a group, block after block (16 blocks' bytes each):
//! - Q4_1: the 16 rows' `d` (f16), then their `m` (f16); then `qs` as 4 runs of 64 bytes: run
//!   `l` holds bytes `4l..4l + 4` of each row's `qs`, row after row (the bytes whose low nibbles
//!   feed AVX2 lane `l` and whose high nibbles feed lane `l + 4`).
//! - Q4_0: the 16 rows' `d`, then `qs` as for Q4_1 (the kernel takes the nibbles as `q + 8`).
//! - Q5_1: Q4_1's `d` and `m`, then Q5_0's fifth-bit masks, then `qs` as for Q4_1.
//! - Q5_0: the 16 rows' `d`; their fifth bits as 8 masks of 64 bits (mask `l`: bit `4r + j`
//!   is row r's bit `4l + j`), the byte-select masks of AVX2 lane `l`'s elements; `qs` as for
//!   Q4_1. That is the [`Rows16Form::Wide`] form (AVX-512); in the [`Rows16Form::Halves`] form
//!   (AVX2) the masks and runs of Q5_0 and Q5_1 are instead, per 8-row half, five vectors of
//!   32 bytes holding each lane's 5-bit operands whole ([`legacy::FIVE_PIECES`]).
//! - Q8_0: the 16 rows' `d` (f16); then `qs` as 8 runs of 64 bytes, run `l` holding bytes
//!   `4l..4l + 4` of each row, each stored as `q + 128` (`q ^ 0x80`) so that it is the unsigned
//!   operand `vpdpbusd` takes (the kernel subtracts `128 · Σy` exactly).
//! - Q4_K ([`q4k`]): the 16 rows' `d`, their `dmin`; the 12 packed scale bytes as runs of 16
//!   (run i: row r's byte i, unpacked in the kernel); `qs` as 32 runs of 64 bytes, run `4l + j`
//!   holding bytes `32j + 4l..+4` of each row (low nibbles: AVX2 lane l of sub-block 2j, high
//!   nibbles: of sub-block 2j + 1).
//! - Q2_K ([`q2k`]): the 16 rows' `d`, their `dmin`; the 16 scales and 16 mins as four words
//!   per row of 4-bit fields (`q2k::SCALES`); `qs` as 16 runs of 64 bytes, run `2l + h`
//!   holding bytes `32h + 4l..+4` of each row (its 4 two-bit fields: AVX2 lane l of
//!   sub-blocks `4h..4h + 4`).
//! - Q3_K ([`q3k`]): the 16 rows' `d`; the 16 scales as three words per row of 6-bit two's
//!   complement fields (`q3k::SCALES`); the high bits as 64 masks of 64 bits (mask `8l + g`:
//!   bit `4r + c` is row r's bit of element `32g + 4l + c`); `qs` as for Q2_K.
//! - Q5_K ([`q5k`]): Q4_K's scale fields; the fifth bits as 64 masks of 64 bits (mask
//!   `8l + k`: bit `4r + c` is row r's bit of element `32k + 4l + c`); Q4_K's quant runs.
//! - Q6_K ([`q6k`]): the 16 rows' `d`; the 16 scales as runs of 16 bytes (run s: row r's scale
//!   s); then per AVX2 lane l and half h, a run of `qh` bytes `32h + 4l..+4` and two runs of
//!   `ql` bytes `64h + 32g + 4l..+4` (g = 0, 1), 4 bytes per row.
//!
//! Every layout fills exactly the bytes of its 16 file blocks.

use sluice_loader::quant::blocks::{
    q3k_scales, Block, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0,
    BlockQ5_1, BlockQ6K, BlockQ8_0,
};
use sluice_loader::GgmlType;

use super::dispatch::Isa;
use super::dot::Rows16Tile;

/// Rows per interleaved group (one per f32 lane of a zmm register).
pub const GROUP_ROWS: usize = 16;

/// How a matrix's bytes are arranged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightLayout {
    /// As in the model file: each row's blocks back to back.
    #[default]
    File,
    /// Rearranged by [`repack`]: groups of [`GROUP_ROWS`] rows, block by block (module docs),
    /// in the form one kernel family reads.
    Rows16(Rows16Form),
}

/// Which kernels a 16-row matrix is arranged for. The two forms differ only in Q5_0's and
/// Q5_1's quants: the AVX-512 kernels select fifth bits with 64-bit masks, while AVX2 has no
/// mask registers and spent more instructions spreading those bits than on the products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows16Form {
    /// All 16 rows in one register (AVX-512): fifth bits as 64-bit lane masks.
    Wide,
    /// Two 8-row halves (AVX2): each lane's 5-bit operands packed whole, five vectors a half.
    Halves,
}

/// The layout the engine gives a matrix of `ty` and `n_rows` rows for path `isa`: interleaved
/// in that path's form where [`interleaves`] says so, the file's otherwise.
pub fn layout(isa: Isa, ty: GgmlType, n_rows: usize) -> WeightLayout {
    match isa.rows16_form() {
        Some(form) if interleaves(isa, ty, n_rows) => WeightLayout::Rows16(form),
        _ => WeightLayout::File,
    }
}

/// Whether [`repack`] rearranges a matrix of this type and row count (the others stay in file
/// layout): the engine and the views it builds ask the same question, so they always agree.
pub fn applies(ty: GgmlType, n_rows: usize) -> bool {
    Packing::of(ty).is_some() && n_rows > 0 && n_rows.is_multiple_of(GROUP_ROWS)
}

/// Whether the engine rearranges such a matrix for kernel path `isa`: the layout takes it
/// ([`applies`]) and the path has a kernel that reads it (AVX2 has them for fewer types than
/// AVX-512). Every engine site asks this with the process's path, so they always agree.
pub fn interleaves(isa: Isa, ty: GgmlType, n_rows: usize) -> bool {
    applies(ty, n_rows) && Rows16Tile::for_weight(isa, ty).is_some()
}

/// Offsets inside one block group of the 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0),
/// derived from the packer's own shapes so that the kernels cannot drift from it.
pub(crate) mod legacy {
    use super::{GgmlType, Rows16Form, Shape, GROUP_ROWS};

    /// The 16 rows' `d` (f16).
    pub(crate) const D: usize = 0;
    /// Q4_1's and Q5_1's 16 `m` (f16), after the `d`.
    pub(crate) const M: usize = 2 * GROUP_ROWS;

    /// Where one type's fields sit in its block group.
    #[derive(Clone, Copy)]
    pub(crate) struct Offsets {
        /// Bytes of one block group (16 rows' block b).
        pub(crate) group_block: usize,
        /// Where the quants sit.
        pub(crate) quants: Quants,
    }

    /// How a block group holds its quants.
    #[derive(Clone, Copy)]
    pub(crate) enum Quants {
        /// Runs of 64 bytes, 4 per row: run `l` at `at + 64l`; with `masks`, the fifth bits
        /// as 8 masks of 64 bits, mask `l` at `masks + 8l` (Q5_0, Q5_1 in the wide form).
        Runs { at: usize, masks: Option<usize> },
        /// Q5_0's and Q5_1's 5-bit operands in the halves form: half h's five vectors of 32
        /// bytes at `at + FIVES_HALF · h + 32v`, laid out as [`FIVE_PIECES`] says.
        Fives { at: usize },
    }

    /// Bytes of one half's five vectors (halves form).
    pub(crate) const FIVES_HALF: usize = 5 * 32;

    /// Halves form: where AVX2 lane L's operand (5 bits: the nibble, then the fifth bit) sits
    /// in the five vectors of a half, as pieces (vector, first bit, width) from the operand's
    /// bit 0 up. Byte `4r + j` of every vector belongs to row r of the half and element
    /// `4L + j`. Lanes 0-4 fill a vector's low 5 bits, so one mask gives them; lanes 5-7 are
    /// spread over the 3 bits left in each byte, a shift and a mask a piece.
    pub(crate) const FIVE_PIECES: [&[(usize, u32, u32)]; 8] = [
        &[(0, 0, 5)],
        &[(1, 0, 5)],
        &[(2, 0, 5)],
        &[(3, 0, 5)],
        &[(4, 0, 5)],
        &[(0, 5, 3), (1, 5, 2)],
        &[(1, 7, 1), (2, 5, 3), (3, 5, 1)],
        &[(3, 6, 2), (4, 5, 3)],
    ];

    /// The offsets of `ty` in `form`, if it is one of the 32-element types.
    pub(crate) const fn offsets(ty: GgmlType, form: Rows16Form) -> Option<Offsets> {
        let Some(s) = Shape::of(ty) else {
            return None;
        };
        let quants = match (s.qh, form) {
            (true, Rows16Form::Halves) => Quants::Fives {
                at: GROUP_ROWS * s.scales,
            },
            (true, Rows16Form::Wide) => Quants::Runs {
                at: s.runs_at(),
                masks: Some(GROUP_ROWS * s.scales),
            },
            (false, _) => Quants::Runs {
                at: s.runs_at(),
                masks: None,
            },
        };
        Some(Offsets {
            group_block: GROUP_ROWS * s.block,
            quants,
        })
    }
}

/// Offsets inside one Q4_K block group (16 rows' block b, 2,304 bytes), shared by the packer
/// and the kernel.
pub(crate) mod q4k {
    /// The 16 rows' `d` (f16).
    pub(crate) const D: usize = 0;
    /// The 16 rows' `dmin` (f16).
    pub(crate) const DMIN: usize = 32;
    /// 12 runs of 16 bytes: run i, byte r = row r's packed `scales[i]` (the file's bytes).
    pub(crate) const SCALES: usize = 64;
    /// 32 runs of 64 bytes: run `4l + j`, bytes `4r..4r + 4` = row r's `qs[32j + 4l..+4]`.
    pub(crate) const QS: usize = 256;
    /// Bytes of one block group.
    pub(crate) const GROUP_BLOCK: usize =
        super::GROUP_ROWS * <super::BlockQ4K as super::Block>::BYTES;
    const _: () = assert!(QS + 32 * 64 == GROUP_BLOCK);
}

/// Offsets inside one Q2_K block group (16 rows' block b, 1,344 bytes).
pub(crate) mod q2k {
    /// The 16 rows' `d` (f16).
    pub(crate) const D: usize = 0;
    /// The 16 rows' `dmin` (f16).
    pub(crate) const DMIN: usize = 32;
    /// 4 runs of 64 bytes: run j, bytes `4r..4r + 4` = a little-endian word of row r's
    /// 4-bit fields (the file's `scales[s]` is scale | min << 4): runs 0, 1 hold scale
    /// `8j + k` at bits `4k`; runs 2, 3 hold the mins of sub-blocks `8(j − 2)..+8` as pairs,
    /// min `2i` at bits `4i` and min `2i + 1` at bits `16 + 4i` (i in 0..4), so that one shift
    /// and one mask give a pair in the i16 halves `vpdpwssd` multiplies (the file's bytes
    /// took six instructions a pair).
    pub(crate) const SCALES: usize = 64;
    /// 16 runs of 64 bytes: run `2l + h`, bytes `4r..4r + 4` = row r's `qs[32h + 4l..+4]`.
    pub(crate) const QS: usize = 320;
    /// Bytes of one block group.
    pub(crate) const GROUP_BLOCK: usize =
        super::GROUP_ROWS * <super::BlockQ2K as super::Block>::BYTES;
    const _: () = assert!(SCALES + 4 * 64 == QS && QS + 16 * 64 == GROUP_BLOCK);

    /// Row r's four words at [`SCALES`] from its 16 file bytes `scales`.
    pub(crate) fn scale_words(scales: &[u8]) -> [u32; 4] {
        std::array::from_fn(|j| {
            let half = &scales[8 * (j % 2)..][..8];
            (0..8).fold(0u32, |acc, k| {
                acc | if j < 2 {
                    u32::from(half[k] & 0x0F) << (4 * k)
                } else {
                    u32::from(half[k] >> 4) << (4 * (k / 2) + 16 * (k % 2))
                }
            })
        })
    }

    /// The 16 file bytes `scales` of row r's four words (the inverse of [`scale_words`]).
    pub(crate) fn words_scales(words: &[u32; 4]) -> [u8; 16] {
        std::array::from_fn(|s| {
            let (half, k) = (s / 8, s % 8);
            let scale = words[half] >> (4 * k) & 0x0F;
            let min = words[2 + half] >> (4 * (k / 2) + 16 * (k % 2)) & 0x0F;
            (scale | min << 4) as u8
        })
    }
}

/// Offsets inside one Q3_K block group (16 rows' block b, 1,760 bytes).
pub(crate) mod q3k {
    /// The 16 rows' `d` (f16).
    pub(crate) const D: usize = 0;
    /// 3 runs of 64 bytes: run j, bytes `4r..4r + 4` = a little-endian word of row r's 6-bit
    /// scales as two's complement (`raw ^ 0x20` is `raw − 32`): scale `5j + i` at bits
    /// `6i..6i + 6` for i in 0..5, and bits `2j, 2j + 1` of scale 15 at bits 30, 31. The
    /// kernel gets a scale with two shifts and a mask (the file's split nibbles and 2-bit
    /// fields took seven instructions).
    pub(crate) const SCALES: usize = 32;
    /// 64 masks of 64 bits: mask `8l + g` at `QH + 8 · (8l + g)`, bit `4r + c` = row r's high
    /// bit of element `32g + 4l + c` (bit g of `hmask[4l + c]`).
    pub(crate) const QH: usize = 224;
    /// Quant runs as Q2_K's (`q2k::QS`).
    pub(crate) const QS: usize = 736;
    /// Bytes of one block group.
    pub(crate) const GROUP_BLOCK: usize =
        super::GROUP_ROWS * <super::BlockQ3K as super::Block>::BYTES;
    const _: () = assert!(SCALES + 3 * 64 == QH && QH + 64 * 8 == QS);
    const _: () = assert!(QS + 16 * 64 == GROUP_BLOCK);

    /// The file's 12 packed bytes of the 16 signed scales (the inverse of
    /// `sluice_loader::quant::blocks::q3k_scales`, which the packer reads them with).
    pub(crate) fn packed_scales(scales: &[i8; 16]) -> [u8; 12] {
        let raw = scales.map(|v| (v + 32) as u8);
        std::array::from_fn(|k| {
            if k < 8 {
                (raw[k] & 0x0F) | (raw[k + 8] & 0x0F) << 4
            } else {
                (0..4).fold(0u8, |acc, q| acc | (raw[4 * q + k - 8] >> 4 & 3) << (2 * q))
            }
        })
    }

    /// Row r's three words at [`SCALES`] from its 16 signed scales (−32..32, each stored as
    /// its 6 low bits).
    pub(crate) fn scale_words(scales: &[i8; 16]) -> [u32; 3] {
        let f = |s: usize| u32::from(scales[s] as u8 & 0x3F);
        std::array::from_fn(|j| {
            (0..5).fold(0u32, |acc, i| acc | f(5 * j + i) << (6 * i)) | (f(15) >> (2 * j) & 3) << 30
        })
    }

    /// The signed scales of row r's three words (the inverse of [`scale_words`]).
    pub(crate) fn words_scales(words: &[u32; 3]) -> [i8; 16] {
        std::array::from_fn(|s| {
            let f = if s < 15 {
                words[s / 5] >> (6 * (s % 5)) & 0x3F
            } else {
                (0..3).fold(0u32, |acc, j| acc | (words[j] >> 30) << (2 * j))
            };
            // The 6-bit field's sign bit moved to the top of a byte, then shifted back.
            ((f as u8) << 2) as i8 >> 2
        })
    }
}

/// Offsets inside one Q5_K block group (2,816 bytes): Q4_K's scale fields at Q4_K's offsets
/// (`q4k::D`..`q4k::SCALES`), then the fifth bits, then Q4_K's quant runs.
pub(crate) mod q5k {
    /// 64 masks of 64 bits: mask `8l + k` at `QH + 8 · (8l + k)`, bit `4r + c` = row r's fifth
    /// bit of element `32k + 4l + c` (bit k of `qh[4l + c]`).
    pub(crate) const QH: usize = 256;
    /// Quant runs as Q4_K's (`q4k::QS`).
    pub(crate) const QS: usize = 768;
    /// Bytes of one block group.
    pub(crate) const GROUP_BLOCK: usize =
        super::GROUP_ROWS * <super::BlockQ5K as super::Block>::BYTES;
    const _: () = assert!(QH + 64 * 8 == QS && QS + 32 * 64 == GROUP_BLOCK);
}

/// Offsets inside one Q6_K block group (16 rows' block b, 3,360 bytes).
pub(crate) mod q6k {
    /// The 16 rows' `d` (f16).
    pub(crate) const D: usize = 0;
    /// 16 runs of 16 bytes: run s, byte r = row r's scale s (i8).
    pub(crate) const SCALES: usize = 32;
    /// Per lane l and half h, at `QUANTS + 192 · (2l + h)`: a 64-byte run of row r's
    /// `qh[32h + 4l..+4]` at `4r`, then runs of `ql[64h + 4l..+4]` and `ql[64h + 32 + 4l..+4]`.
    pub(crate) const QUANTS: usize = 288;
    /// Bytes of one (lane, half) chunk of quants.
    pub(crate) const CHUNK: usize = 192;
    /// Bytes of one block group.
    pub(crate) const GROUP_BLOCK: usize =
        super::GROUP_ROWS * <super::BlockQ6K as super::Block>::BYTES;
    const _: () = assert!(QUANTS + 16 * CHUNK == GROUP_BLOCK);
}

/// How one type's block group is arranged.
#[derive(Clone, Copy)]
enum Packing {
    /// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: scales, optional fifth-bit masks, 4-byte runs.
    Legacy(Shape),
    /// Q4_K (module [`q4k`]) or, with the fifth bits, Q5_K (module [`q5k`]).
    K4 { fifth: bool },
    /// Q6_K (module [`q6k`]).
    Q6K,
    /// Q2_K (module [`q2k`]) or, with the high bits and 6-bit scales, Q3_K (module [`q3k`]).
    K23 { q3: bool },
}

impl Packing {
    fn of(ty: GgmlType) -> Option<Packing> {
        match ty {
            GgmlType::Q4K => Some(Packing::K4 { fifth: false }),
            GgmlType::Q5K => Some(Packing::K4 { fifth: true }),
            GgmlType::Q6K => Some(Packing::Q6K),
            GgmlType::Q2K => Some(Packing::K23 { q3: false }),
            GgmlType::Q3K => Some(Packing::K23 { q3: true }),
            _ => Shape::of(ty).map(Packing::Legacy),
        }
    }

    /// Bytes of one file block.
    fn block(self) -> usize {
        match self {
            Packing::Legacy(s) => s.block,
            Packing::K4 { fifth: false } => BlockQ4K::BYTES,
            Packing::K4 { fifth: true } => BlockQ5K::BYTES,
            Packing::Q6K => BlockQ6K::BYTES,
            Packing::K23 { q3: false } => BlockQ2K::BYTES,
            Packing::K23 { q3: true } => BlockQ3K::BYTES,
        }
    }

    /// Writes one block group (`out`) in `form` from the 16 rows' blocks in file layout.
    fn pack_block(self, form: Rows16Form, rows: [&[u8]; GROUP_ROWS], out: &mut [u8]) {
        match self {
            Packing::Legacy(s) => s.pack_block(form, rows, out),
            Packing::K4 { fifth } => {
                let (qs_file, qs_packed) = if fifth { (48, q5k::QS) } else { (16, q4k::QS) };
                let mut masks = [0u64; 64];
                for (r, src) in rows.iter().enumerate() {
                    out[q4k::D + 2 * r..][..2].copy_from_slice(&src[0..2]);
                    out[q4k::DMIN + 2 * r..][..2].copy_from_slice(&src[2..4]);
                    for i in 0..12 {
                        out[q4k::SCALES + 16 * i + r] = src[4 + i];
                    }
                    for l in 0..8 {
                        for j in 0..4 {
                            let at = qs_packed + 64 * (4 * l + j) + 4 * r;
                            out[at..at + 4].copy_from_slice(&src[qs_file + 32 * j + 4 * l..][..4]);
                        }
                        if fifth {
                            for (k, m) in masks[8 * l..8 * l + 8].iter_mut().enumerate() {
                                for c in 0..4 {
                                    let bit = src[16 + 4 * l + c] >> k & 1;
                                    *m |= u64::from(bit) << (4 * r + c);
                                }
                            }
                        }
                    }
                }
                if fifth {
                    for (i, m) in masks.iter().enumerate() {
                        out[q5k::QH + 8 * i..][..8].copy_from_slice(&m.to_le_bytes());
                    }
                }
            }
            Packing::K23 { q3: false } => {
                for (r, src) in rows.iter().enumerate() {
                    out[q2k::D + 2 * r..][..2].copy_from_slice(&src[80..82]);
                    out[q2k::DMIN + 2 * r..][..2].copy_from_slice(&src[82..84]);
                    for (j, w) in q2k::scale_words(&src[..16]).iter().enumerate() {
                        out[q2k::SCALES + 64 * j + 4 * r..][..4].copy_from_slice(&w.to_le_bytes());
                    }
                    k23_pack_qs(&src[16..80], q2k::QS, r, out);
                }
            }
            Packing::K23 { q3: true } => {
                let mut masks = [0u64; 64];
                for (r, src) in rows.iter().enumerate() {
                    out[q3k::D + 2 * r..][..2].copy_from_slice(&src[108..110]);
                    let words = q3k::scale_words(&q3k_scales(&array(&src[96..108])));
                    for (j, w) in words.iter().enumerate() {
                        out[q3k::SCALES + 64 * j + 4 * r..][..4].copy_from_slice(&w.to_le_bytes());
                    }
                    for (i, m) in masks.iter_mut().enumerate() {
                        let (l, g) = (i / 8, i % 8);
                        for c in 0..4 {
                            *m |= u64::from(src[4 * l + c] >> g & 1) << (4 * r + c);
                        }
                    }
                    k23_pack_qs(&src[32..96], q3k::QS, r, out);
                }
                for (i, m) in masks.iter().enumerate() {
                    out[q3k::QH + 8 * i..][..8].copy_from_slice(&m.to_le_bytes());
                }
            }
            Packing::Q6K => {
                for (r, src) in rows.iter().enumerate() {
                    out[q6k::D + 2 * r..][..2].copy_from_slice(&src[208..210]);
                    for s in 0..16 {
                        out[q6k::SCALES + 16 * s + r] = src[192 + s];
                    }
                    for (l, h) in (0..8).flat_map(|l| [(l, 0), (l, 1)]) {
                        let chunk = q6k::QUANTS + q6k::CHUNK * (2 * l + h) + 4 * r;
                        out[chunk..][..4].copy_from_slice(&src[128 + 32 * h + 4 * l..][..4]);
                        for g in 0..2 {
                            out[chunk + 64 * (1 + g)..][..4]
                                .copy_from_slice(&src[64 * h + 32 * g + 4 * l..][..4]);
                        }
                    }
                }
            }
        }
    }

    /// Writes row `r`'s block in file layout (`out`) from a block group packed in `form`: the
    /// inverse of [`Packing::pack_block`] for one row.
    fn unpack_block(self, form: Rows16Form, packed: &[u8], r: usize, out: &mut [u8]) {
        match self {
            Packing::Legacy(s) => s.unpack_block(form, packed, r, out),
            Packing::K4 { fifth } => {
                let (qs_file, qs_packed) = if fifth { (48, q5k::QS) } else { (16, q4k::QS) };
                out[0..2].copy_from_slice(&packed[q4k::D + 2 * r..][..2]);
                out[2..4].copy_from_slice(&packed[q4k::DMIN + 2 * r..][..2]);
                for i in 0..12 {
                    out[4 + i] = packed[q4k::SCALES + 16 * i + r];
                }
                for l in 0..8 {
                    for j in 0..4 {
                        let at = qs_packed + 64 * (4 * l + j) + 4 * r;
                        out[qs_file + 32 * j + 4 * l..][..4].copy_from_slice(&packed[at..at + 4]);
                    }
                    if fifth {
                        for c in 0..4 {
                            let mut qh = 0u8;
                            for k in 0..8 {
                                let m =
                                    u64::from_le_bytes(array(&packed[q5k::QH + 8 * (8 * l + k)..]));
                                qh |= ((m >> (4 * r + c)) as u8 & 1) << k;
                            }
                            out[16 + 4 * l + c] = qh;
                        }
                    }
                }
            }
            Packing::K23 { q3: false } => {
                out[80..82].copy_from_slice(&packed[q2k::D + 2 * r..][..2]);
                out[82..84].copy_from_slice(&packed[q2k::DMIN + 2 * r..][..2]);
                let words: [u32; 4] =
                    std::array::from_fn(|j| word(packed, q2k::SCALES + 64 * j + 4 * r));
                out[..16].copy_from_slice(&q2k::words_scales(&words));
                k23_unpack_qs(packed, q2k::QS, r, &mut out[16..80]);
            }
            Packing::K23 { q3: true } => {
                out[108..110].copy_from_slice(&packed[q3k::D + 2 * r..][..2]);
                let words: [u32; 3] =
                    std::array::from_fn(|j| word(packed, q3k::SCALES + 64 * j + 4 * r));
                out[96..108].copy_from_slice(&q3k::packed_scales(&q3k::words_scales(&words)));
                for (at, byte) in out[..32].iter_mut().enumerate() {
                    let (l, c) = (at / 4, at % 4);
                    *byte = (0..8).fold(0u8, |acc, g| {
                        let m = u64::from_le_bytes(array(&packed[q3k::QH + 8 * (8 * l + g)..]));
                        acc | ((m >> (4 * r + c)) as u8 & 1) << g
                    });
                }
                k23_unpack_qs(packed, q3k::QS, r, &mut out[32..96]);
            }
            Packing::Q6K => {
                out[208..210].copy_from_slice(&packed[q6k::D + 2 * r..][..2]);
                for s in 0..16 {
                    out[192 + s] = packed[q6k::SCALES + 16 * s + r];
                }
                for (l, h) in (0..8).flat_map(|l| [(l, 0), (l, 1)]) {
                    let chunk = q6k::QUANTS + q6k::CHUNK * (2 * l + h) + 4 * r;
                    out[128 + 32 * h + 4 * l..][..4].copy_from_slice(&packed[chunk..][..4]);
                    for g in 0..2 {
                        out[64 * h + 32 * g + 4 * l..][..4]
                            .copy_from_slice(&packed[chunk + 64 * (1 + g)..][..4]);
                    }
                }
            }
        }
    }
}

/// Row r's 64 bytes of 2-bit quants (`qs`) into the runs at `at` (run `2l + h` holds
/// `qs[32h + 4l..+4]` at `4r`), shared by Q2_K and Q3_K.
fn k23_pack_qs(qs: &[u8], at: usize, r: usize, out: &mut [u8]) {
    for (l, h) in (0..8).flat_map(|l| [(l, 0), (l, 1)]) {
        out[at + 64 * (2 * l + h) + 4 * r..][..4].copy_from_slice(&qs[32 * h + 4 * l..][..4]);
    }
}

/// The inverse of [`k23_pack_qs`] for row r.
fn k23_unpack_qs(packed: &[u8], at: usize, r: usize, qs: &mut [u8]) {
    for (l, h) in (0..8).flat_map(|l| [(l, 0), (l, 1)]) {
        qs[32 * h + 4 * l..][..4].copy_from_slice(&packed[at + 64 * (2 * l + h) + 4 * r..][..4]);
    }
}

/// Where one block's fields go: `scales` leading bytes (f16 fields, each gathered into a run of
/// 16); with `qh`, the 32 fifth bits as 8 masks of 64 bits (mask `l`: bit `4r + j` is row r's
/// bit `4l + j`, the byte-select mask of AVX2 lane l's 4 elements in all 16 rows); then `runs`
/// runs of 64 bytes of quants, 4 bytes per row, XORed with `flip`.
#[derive(Clone, Copy)]
struct Shape {
    block: usize,
    scales: usize,
    qh: bool,
    runs: usize,
    flip: u8,
}

impl Shape {
    const fn of(ty: GgmlType) -> Option<Shape> {
        match ty {
            GgmlType::Q4_1 => Some(Shape {
                block: BlockQ4_1::BYTES,
                scales: 4,
                qh: false,
                runs: 4,
                flip: 0,
            }),
            GgmlType::Q4_0 => Some(Shape {
                block: BlockQ4_0::BYTES,
                scales: 2,
                qh: false,
                runs: 4,
                flip: 0,
            }),
            GgmlType::Q5_1 => Some(Shape {
                block: BlockQ5_1::BYTES,
                scales: 4,
                qh: true,
                runs: 4,
                flip: 0,
            }),
            GgmlType::Q5_0 => Some(Shape {
                block: BlockQ5_0::BYTES,
                scales: 2,
                qh: true,
                runs: 4,
                flip: 0,
            }),
            GgmlType::Q8_0 => Some(Shape {
                block: BlockQ8_0::BYTES,
                scales: 2,
                qh: false,
                runs: 8,
                flip: 0x80,
            }),
            _ => None,
        }
    }

    /// Bytes of the fifth-bit field in a file block and in a packed block group.
    const fn qh_bytes(self) -> (usize, usize) {
        if self.qh {
            (4, 64)
        } else {
            (0, 0)
        }
    }

    /// Offset of the quant runs in a packed block group.
    const fn runs_at(self) -> usize {
        GROUP_ROWS * self.scales + self.qh_bytes().1
    }

    /// Writes one block group (`out`) in `form` from the 16 rows' blocks in file layout.
    fn pack_block(self, form: Rows16Form, rows: [&[u8]; GROUP_ROWS], out: &mut [u8]) {
        for (r, src) in rows.iter().enumerate() {
            for h in (0..self.scales).step_by(2) {
                out[GROUP_ROWS * h + 2 * r..][..2].copy_from_slice(&src[h..h + 2]);
            }
        }
        if self.qh && form == Rows16Form::Halves {
            let at = GROUP_ROWS * self.scales;
            out[at..].fill(0);
            for (r, src) in rows.iter().enumerate() {
                let half = &mut out[at + legacy::FIVES_HALF * (r / 8)..][..legacy::FIVES_HALF];
                for e in 0..32 {
                    let byte = 4 * (r % 8) + e % 4;
                    let mut u = u32::from(self.operand(src, e));
                    for &(v, first, width) in legacy::FIVE_PIECES[e / 4] {
                        half[32 * v + byte] |= ((u & ((1 << width) - 1)) << first) as u8;
                        u >>= width;
                    }
                }
            }
            return;
        }
        let flip = u32::from_ne_bytes([self.flip; 4]);
        let qh_file = self.qh_bytes().0;
        let mut masks = [0u64; 8];
        for (r, src) in rows.iter().enumerate() {
            if self.qh {
                let bits = word(src, self.scales);
                for (l, m) in masks.iter_mut().enumerate() {
                    *m |= u64::from(bits >> (4 * l) & 0xF) << (4 * r);
                }
            }
            for l in 0..self.runs {
                let q = word(src, self.scales + qh_file + 4 * l) ^ flip;
                out[self.runs_at() + 64 * l + 4 * r..][..4].copy_from_slice(&q.to_le_bytes());
            }
        }
        if self.qh {
            for (l, m) in masks.iter().enumerate() {
                out[GROUP_ROWS * self.scales + 8 * l..][..8].copy_from_slice(&m.to_le_bytes());
            }
        }
    }

    /// Element `e`'s 5-bit operand (nibble, then fifth bit) in a Q5_0 or Q5_1 file block.
    fn operand(self, src: &[u8], e: usize) -> u8 {
        let qs = &src[self.scales + 4..];
        let nibble = if e < 16 {
            qs[e] & 0x0F
        } else {
            qs[e - 16] >> 4
        };
        let fifth = (word(src, self.scales) >> e & 1) as u8;
        nibble | fifth << 4
    }

    /// Writes row `r`'s block in file layout (`out`) from a block group packed in `form`: the
    /// inverse of [`Shape::pack_block`] for one row.
    fn unpack_block(self, form: Rows16Form, packed: &[u8], r: usize, out: &mut [u8]) {
        for h in (0..self.scales).step_by(2) {
            out[h..h + 2].copy_from_slice(&packed[GROUP_ROWS * h + 2 * r..][..2]);
        }
        if self.qh && form == Rows16Form::Halves {
            let at = GROUP_ROWS * self.scales;
            let half = &packed[at + legacy::FIVES_HALF * (r / 8)..][..legacy::FIVES_HALF];
            let mut bits = 0u32;
            let mut qs = [0u8; 16];
            for e in 0..32 {
                let byte = 4 * (r % 8) + e % 4;
                let (mut u, mut shift) = (0u32, 0);
                for &(v, first, width) in legacy::FIVE_PIECES[e / 4] {
                    u |= (u32::from(half[32 * v + byte]) >> first & ((1 << width) - 1)) << shift;
                    shift += width;
                }
                bits |= (u >> 4 & 1) << e;
                qs[e % 16] |= ((u & 0x0F) as u8) << (4 * (e / 16));
            }
            out[self.scales..self.scales + 4].copy_from_slice(&bits.to_le_bytes());
            out[self.scales + 4..self.scales + 20].copy_from_slice(&qs);
            return;
        }
        let flip = u32::from_ne_bytes([self.flip; 4]);
        let qh_file = self.qh_bytes().0;
        if self.qh {
            let mut bits = 0u32;
            for l in 0..8 {
                let m = u64::from_le_bytes(array(&packed[GROUP_ROWS * self.scales + 8 * l..]));
                bits |= ((m >> (4 * r) & 0xF) as u32) << (4 * l);
            }
            out[self.scales..self.scales + 4].copy_from_slice(&bits.to_le_bytes());
        }
        for l in 0..self.runs {
            let q = word(packed, self.runs_at() + 64 * l + 4 * r) ^ flip;
            out[self.scales + qh_file + 4 * l..][..4].copy_from_slice(&q.to_le_bytes());
        }
    }
}

/// The first `N` bytes of `b` as an array. Panics if `b` is shorter.
fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    std::array::from_fn(|i| b[i])
}

/// The little-endian u32 at `at`.
fn word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array(&b[at..]))
}

/// A matrix the layout cannot be applied to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot interleave a {ty} matrix of {n_rows} rows in {len} bytes into 16-row groups")]
pub struct RepackError {
    /// Weight type.
    pub ty: GgmlType,
    /// Rows claimed.
    pub n_rows: usize,
    /// Bytes given.
    pub len: usize,
}

/// Rearranges `bytes` (a whole `ty` matrix of `n_rows` rows in file layout) into [`Rows16`]
/// order, in `form`, in place, using `scratch` (grown to one group's bytes; reuse it across
/// matrices).
///
/// [`Rows16`]: WeightLayout::Rows16
pub fn repack(
    form: Rows16Form,
    ty: GgmlType,
    n_rows: usize,
    bytes: &mut [u8],
    scratch: &mut Vec<u8>,
) -> Result<(), RepackError> {
    let (packing, row_bytes) = checked(ty, n_rows, bytes.len())?;
    let group = GROUP_ROWS * row_bytes;
    let block = packing.block();
    scratch.resize(group, 0);
    for g in bytes.chunks_exact_mut(group) {
        scratch.copy_from_slice(g);
        for (b, out) in g.chunks_exact_mut(GROUP_ROWS * block).enumerate() {
            let rows = std::array::from_fn(|r| &scratch[r * row_bytes + b * block..][..block]);
            packing.pack_block(form, rows, out);
        }
    }
    Ok(())
}

/// The shape of `ty` and the row length, if a matrix of `n_rows` rows in `len` bytes takes
/// the layout.
fn checked(ty: GgmlType, n_rows: usize, len: usize) -> Result<(Packing, usize), RepackError> {
    let err = RepackError { ty, n_rows, len };
    let packing = Packing::of(ty).ok_or(err.clone())?;
    if !applies(ty, n_rows) || !len.is_multiple_of(n_rows) {
        return Err(err);
    }
    let row_bytes = len / n_rows;
    if !row_bytes.is_multiple_of(packing.block()) {
        return Err(err);
    }
    Ok((packing, row_bytes))
}

/// Row `id` of an interleaved matrix (`bytes`, `n_rows` rows of `ty` in `form`) in file
/// layout, into `out` (one row's bytes): what an embedding lookup in a rearranged, tied matrix
/// reads.
pub fn unpack_row(
    form: Rows16Form,
    ty: GgmlType,
    n_rows: usize,
    bytes: &[u8],
    id: usize,
    out: &mut [u8],
) -> Result<(), RepackError> {
    let (packing, row_bytes) = checked(ty, n_rows, bytes.len())?;
    if id >= n_rows || out.len() != row_bytes {
        return Err(RepackError {
            ty,
            n_rows,
            len: bytes.len(),
        });
    }
    let (g, r) = (id / GROUP_ROWS, id % GROUP_ROWS);
    let src = &bytes[g * GROUP_ROWS * row_bytes..][..GROUP_ROWS * row_bytes];
    let block = packing.block();
    for (packed, blk) in src
        .chunks_exact(GROUP_ROWS * block)
        .zip(out.chunks_exact_mut(block))
    {
        packing.unpack_block(form, packed, r, blk);
    }
    Ok(())
}

/// The inverse of [`repack`] on one whole matrix: file layout again.
#[cfg(test)]
fn unpack(
    form: Rows16Form,
    ty: GgmlType,
    n_rows: usize,
    bytes: &[u8],
) -> Result<Vec<u8>, RepackError> {
    let mut out = vec![0u8; bytes.len()];
    let row_bytes = bytes.len() / n_rows.max(1);
    for (id, row) in out.chunks_exact_mut(row_bytes.max(1)).enumerate() {
        unpack_row(form, ty, n_rows, bytes, id, row)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repack_then_unpack_is_the_identity() {
        for (ty, block) in [
            (GgmlType::Q4_1, BlockQ4_1::BYTES),
            (GgmlType::Q5_0, BlockQ5_0::BYTES),
            (GgmlType::Q8_0, BlockQ8_0::BYTES),
            (GgmlType::Q4_0, BlockQ4_0::BYTES),
            (GgmlType::Q5_1, BlockQ5_1::BYTES),
            (GgmlType::Q2K, BlockQ2K::BYTES),
            (GgmlType::Q3K, BlockQ3K::BYTES),
            (GgmlType::Q4K, BlockQ4K::BYTES),
            (GgmlType::Q5K, BlockQ5K::BYTES),
            (GgmlType::Q6K, BlockQ6K::BYTES),
        ] {
            let n_rows = 48;
            let row_bytes = 3 * block;
            let file: Vec<u8> = (0..n_rows * row_bytes)
                .map(|i| (i * 7 + i / 13) as u8)
                .collect();
            for form in [Rows16Form::Wide, Rows16Form::Halves] {
                let mut packed = file.clone();
                repack(form, ty, n_rows, &mut packed, &mut Vec::new()).expect("repack");
                assert_ne!(packed, file);
                let back = unpack(form, ty, n_rows, &packed).expect("unpack");
                assert_eq!(back, file, "{ty} {form:?}");
                let mut row = vec![0u8; row_bytes];
                unpack_row(form, ty, n_rows, &packed, 37, &mut row).expect("row");
                assert_eq!(row, file[37 * row_bytes..38 * row_bytes]);
            }
        }
    }

    #[test]
    fn the_forms_differ_in_the_fifth_bit_types_only() {
        let n_rows = 32;
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
            GgmlType::Q4K,
            GgmlType::Q5K,
            GgmlType::Q6K,
        ] {
            let row_bytes = ty.row_bytes(2 * ty.block_elems() as u64).expect("row") as usize;
            let file: Vec<u8> = (0..n_rows * row_bytes)
                .map(|i| (i * 29 + i / 7) as u8)
                .collect();
            let packed = [Rows16Form::Wide, Rows16Form::Halves].map(|form| {
                let mut b = file.clone();
                repack(form, ty, n_rows, &mut b, &mut Vec::new()).expect("repack");
                b
            });
            let q5 = matches!(ty, GgmlType::Q5_0 | GgmlType::Q5_1);
            assert_eq!(packed[0] != packed[1], q5, "{ty}");
        }
    }

    #[test]
    fn q5_0_operands_land_where_the_halves_kernel_reads_them() {
        // Row 9 (half 1, row 1 of it), element 4·6 + 2 (lane 6, byte 4·1 + 2 of each vector):
        // its operand is the nibble plus 16 times the fifth bit, split as FIVE_PIECES[6] says:
        // bit 0 in vector 1's bit 7, bits 1-3 in vector 2's bits 5-7, bit 4 in vector 3's bit 5.
        let n_rows = 16;
        let mut file = vec![0u8; n_rows * BlockQ5_0::BYTES];
        let row9 = &mut file[9 * BlockQ5_0::BYTES..][..BlockQ5_0::BYTES];
        let e = 26; // a high nibble: qs[10] >> 4
        row9[2..6].copy_from_slice(&(1u32 << e).to_le_bytes());
        row9[6 + e - 16] = 0xB0; // nibble 0b1011, operand 0b1_1011
        let mut packed = file.clone();
        repack(
            Rows16Form::Halves,
            GgmlType::Q5_0,
            n_rows,
            &mut packed,
            &mut Vec::new(),
        )
        .expect("repack");
        let half1 = &packed[32 + legacy::FIVES_HALF..][..legacy::FIVES_HALF];
        let byte = 4 + 2;
        assert_eq!(half1[32 + byte] >> 7, 1);
        assert_eq!(half1[64 + byte] >> 5, 0b101);
        assert_eq!(half1[96 + byte] >> 5 & 1, 1);
        // Nothing else is set: the operand's four 1 bits and no others.
        let set: usize = half1.iter().map(|b| b.count_ones() as usize).sum();
        assert_eq!(set, 4);
        assert!(packed[32..32 + legacy::FIVES_HALF].iter().all(|&b| b == 0));
    }

    #[test]
    fn q4_1_fields_land_where_the_kernel_reads_them() {
        let n_rows = 48;
        let row_bytes = 3 * BlockQ4_1::BYTES;
        let file: Vec<u8> = (0..n_rows * row_bytes)
            .map(|i| (i * 7 + i / 13) as u8)
            .collect();
        let mut packed = file.clone();
        let mut scratch = Vec::new();
        repack(
            Rows16Form::Wide,
            GgmlType::Q4_1,
            n_rows,
            &mut packed,
            &mut scratch,
        )
        .expect("repack");
        assert_ne!(packed, file);
        // Row 1's d sits right after row 0's in the first block; its third qs run 128 bytes on.
        assert_eq!(packed[2..4], file[row_bytes..row_bytes + 2]);
        assert_eq!(packed[64 + 128 + 4..][..4], file[row_bytes + 4 + 8..][..4]);
        assert_eq!(
            unpack(Rows16Form::Wide, GgmlType::Q4_1, n_rows, &packed).expect("unpack"),
            file
        );
    }

    #[test]
    fn refuses_what_it_cannot_interleave() {
        let mut s = Vec::new();
        let mut b = vec![0u8; 20 * 8];
        let form = Rows16Form::Halves;
        assert!(repack(form, GgmlType::Q4_1, 8, &mut b, &mut s).is_err()); // 8 rows: no group
        let mut b = vec![0u8; 32 * 16];
        assert!(repack(form, GgmlType::IQ4NL, 16, &mut b, &mut s).is_err()); // no IQ4_NL layout
        let mut row = vec![0u8; 20];
        let b = vec![0u8; 20 * 16];
        assert!(unpack_row(form, GgmlType::Q4_1, 16, &b, 16, &mut row).is_err()); // no row 16
        let mut b = vec![0u8; 20 * 16 + 1];
        let e = repack(form, GgmlType::Q4_1, 16, &mut b, &mut s).unwrap_err();
        assert!(
            e.to_string()
                .contains("Q4_1 matrix of 16 rows in 321 bytes"),
            "{e}"
        );
        assert!(!applies(GgmlType::Q4_1, 0) && applies(GgmlType::Q4_1, 32));
    }
}

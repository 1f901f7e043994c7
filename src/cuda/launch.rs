//! Launch shapes of every kernel in `kernels/`, as plain functions of the model's dimensions.
//!
//! Each function checks the dimensions against the kernel's limits and returns the entry name
//! and its grid/block. The constants mirror the `constexpr`s in the kernel sources (a test
//! reads them back from there). Argument order per kernel is in `kernels/README.md`.

use sluice_loader::GgmlType;

/// Rows (one warp each) per CUDA block of the matvec kernels (`MV_WARPS`).
pub const MATVEC_ROWS_PER_BLOCK: u32 = 4;
/// Weight rows per CUDA block of the prefill matmul (`MM_ROWS`).
pub const MATMUL_ROWS_PER_BLOCK: u32 = 64;
/// Tokens per CUDA block of the prefill matmul (`MM_TOKS`).
pub const MATMUL_TOKENS_PER_BLOCK: u32 = 32;
/// Threads per CUDA block of the prefill matmul (`MM_THREADS`).
pub const MATMUL_THREADS: u32 = 256;
/// Halves written per thread by the dequant kernels (`DQ_PER_THREAD`).
pub const DEQUANT_PER_THREAD: u64 = 8;
/// Threads per CUDA block of the dequant, quantise, RMSNorm and element-wise kernels.
pub const THREADS_256: u32 = 256;
/// Threads of the single argmax block (`ARGMAX_THREADS`).
pub const ARGMAX_THREADS: u32 = 1024;
/// Warps per attention block (`AT_WARPS`).
pub const ATTENTION_WARPS: u32 = 4;
/// Largest head dimension the attention kernel supports (`AT_HEAD_DIM_MAX`).
pub const HEAD_DIM_MAX: u32 = 256;
/// Elements per Q8_1 activation block, the unit every quantised row is cut into.
pub const QK8_1: u32 = 32;
/// CUDA's limit on grid.y and grid.z.
pub const GRID_YZ_MAX: u32 = 65_535;
/// CUDA's limit on grid.x.
pub const GRID_X_MAX: u64 = (1 << 31) - 1;

const _: () = assert!(MATVEC_ROWS_PER_BLOCK * 32 <= 1024);
const _: () = assert!(MATMUL_ROWS_PER_BLOCK * MATMUL_TOKENS_PER_BLOCK == MATMUL_THREADS * 8);
const _: () = assert!(HEAD_DIM_MAX.is_multiple_of(32) && HEAD_DIM_MAX / 2 <= 1024);

/// A kernel launch: the entry name in the fatbin and its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The `extern "C"` name.
    pub name: String,
    /// Grid dimensions (blocks).
    pub grid: (u32, u32, u32),
    /// Block dimensions (threads).
    pub block: (u32, u32, u32),
    /// Dynamic shared memory in bytes (every kernel here uses static shared memory only).
    pub shared_mem_bytes: u32,
}

/// Dimensions a kernel cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The type has no kernel for this operation (Q8_1/Q8_K are activation formats).
    #[error("{ty} weights have no {op} kernel")]
    NoKernel {
        /// The operation asked for.
        op: &'static str,
        /// The element type.
        ty: GgmlType,
    },
    /// A row length that is not whole blocks of the type (and of 32 for the quantised paths).
    #[error("{ty}: a row of {row_elems} elements is not a whole number of {unit}-element blocks")]
    PartialBlock {
        /// The element type.
        ty: GgmlType,
        /// Elements per row.
        row_elems: u64,
        /// The block length required.
        unit: u64,
    },
    /// A dimension that is zero or beyond what the kernel's grid or block can cover.
    #[error("{what} = {value} is outside 1..={max}")]
    OutOfRange {
        /// Which dimension.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The largest value the kernel takes.
        max: u64,
    },
    /// Attention dimensions the kernel does not take.
    #[error("attention with {n_head} heads over {n_head_kv} kv heads of dim {head_dim}: n_head must be a multiple of n_head_kv and head_dim a multiple of 32 up to 256")]
    Attention {
        /// Query heads.
        n_head: u32,
        /// Key/value heads.
        n_head_kv: u32,
        /// Elements per head.
        head_dim: u32,
    },
    /// Rotary dimensions the kernel does not take.
    #[error("RoPE over {n_rot} of {head_dim} dims: n_rot must be even, at most head_dim and at most 256")]
    Rope {
        /// Rotated dimensions per head.
        n_rot: u32,
        /// Elements per head.
        head_dim: u32,
    },
}

/// The suffix naming a type in kernel names (`q4_k`, `iq4_nl`, …).
pub fn type_suffix(ty: GgmlType) -> &'static str {
    use GgmlType as T;
    match ty {
        T::F32 => "f32",
        T::F16 => "f16",
        T::BF16 => "bf16",
        T::Q4_0 => "q4_0",
        T::Q4_1 => "q4_1",
        T::Q5_0 => "q5_0",
        T::Q5_1 => "q5_1",
        T::Q8_0 => "q8_0",
        T::Q8_1 => "q8_1",
        T::Q2K => "q2_k",
        T::Q3K => "q3_k",
        T::Q4K => "q4_k",
        T::Q5K => "q5_k",
        T::Q6K => "q6_k",
        T::Q8K => "q8_k",
        T::IQ4NL => "iq4_nl",
    }
}

/// Whether a type's weights use the plain-float matvec (f32 activations) rather than Q8_1.
pub fn is_float_type(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// Checks `1 <= value <= max`.
fn in_range(what: &'static str, value: u64, max: u64) -> Result<u32, ShapeError> {
    if value == 0 || value > max {
        return Err(ShapeError::OutOfRange { what, value, max });
    }
    // max never exceeds GRID_X_MAX < u32::MAX.
    Ok(value as u32)
}

/// Checks that a weight row is whole blocks and whole Q8_1 blocks (for the quantised paths).
fn check_row(ty: GgmlType, row_elems: u64) -> Result<(), ShapeError> {
    let unit = if is_float_type(ty) {
        1
    } else {
        (ty.block_elems() as u64).max(u64::from(QK8_1))
    };
    if row_elems == 0 || !row_elems.is_multiple_of(unit) {
        return Err(ShapeError::PartialBlock {
            ty,
            row_elems,
            unit,
        });
    }
    in_range("row_elems", row_elems, i32::MAX as u64).map(|_| ())
}

fn launch(name: String, grid: (u32, u32, u32), block: (u32, u32, u32)) -> Launch {
    Launch {
        name,
        grid,
        block,
        shared_mem_bytes: 0,
    }
}

/// `dequant_<ty>_f16` over `n_elems` elements (whole blocks).
pub fn dequant(ty: GgmlType, n_elems: u64) -> Result<Launch, ShapeError> {
    let unit = ty.block_elems() as u64;
    if !n_elems.is_multiple_of(unit) {
        return Err(ShapeError::PartialBlock {
            ty,
            row_elems: n_elems,
            unit,
        });
    }
    let per_block = DEQUANT_PER_THREAD * u64::from(THREADS_256);
    let blocks = in_range("dequant blocks", n_elems.div_ceil(per_block), GRID_X_MAX)?;
    Ok(launch(
        format!("dequant_{}_f16", type_suffix(ty)),
        (blocks, 1, 1),
        (THREADS_256, 1, 1),
    ))
}

/// `quantize_q8_1_f32` for `n_tok` rows of `row_elems` activations (a multiple of 32).
pub fn quantize_q8_1(row_elems: u64, n_tok: u32) -> Result<Launch, ShapeError> {
    if !row_elems.is_multiple_of(u64::from(QK8_1)) {
        return Err(ShapeError::PartialBlock {
            ty: GgmlType::Q8_1,
            row_elems,
            unit: u64::from(QK8_1),
        });
    }
    let row_elems = in_range("row_elems", row_elems, i32::MAX as u64)?;
    let n_tok = in_range("n_tok", u64::from(n_tok), u64::from(GRID_YZ_MAX))?;
    Ok(launch(
        "quantize_q8_1_f32".into(),
        (row_elems.div_ceil(THREADS_256), n_tok, 1),
        (THREADS_256, 1, 1),
    ))
}

/// The decode matvec for `n_tok` tokens: `matvec_<ty>_q8_1` (activations quantised first with
/// [`quantize_q8_1`]) or, for F32/F16/BF16 weights, `matvec_<ty>_f32`.
pub fn matvec(ty: GgmlType, n_rows: u64, row_elems: u64, n_tok: u32) -> Result<Launch, ShapeError> {
    if !ty.is_weight_type() {
        return Err(ShapeError::NoKernel { op: "matvec", ty });
    }
    check_row(ty, row_elems)?;
    let n_rows = in_range("n_rows", n_rows, i32::MAX as u64)?;
    let n_tok = in_range("n_tok", u64::from(n_tok), u64::from(GRID_YZ_MAX))?;
    let act = if is_float_type(ty) { "f32" } else { "q8_1" };
    Ok(launch(
        format!("matvec_{}_{act}", type_suffix(ty)),
        (n_rows.div_ceil(MATVEC_ROWS_PER_BLOCK), n_tok, 1),
        (32, MATVEC_ROWS_PER_BLOCK, 1),
    ))
}

/// The prefill matmul `matmul_<ty>_f32` for `n_tok` tokens of f32 activations.
pub fn matmul(ty: GgmlType, n_rows: u64, row_elems: u64, n_tok: u32) -> Result<Launch, ShapeError> {
    if !ty.is_weight_type() {
        return Err(ShapeError::NoKernel { op: "matmul", ty });
    }
    check_row(ty, row_elems)?;
    if !row_elems.is_multiple_of(u64::from(QK8_1)) {
        return Err(ShapeError::PartialBlock {
            ty,
            row_elems,
            unit: u64::from(QK8_1),
        });
    }
    let n_rows = in_range("n_rows", n_rows, i32::MAX as u64)?;
    let tiles = u64::from(n_tok).div_ceil(u64::from(MATMUL_TOKENS_PER_BLOCK));
    let tok_tiles = in_range("token tiles", tiles, u64::from(GRID_YZ_MAX))?;
    Ok(launch(
        format!("matmul_{}_f32", type_suffix(ty)),
        (n_rows.div_ceil(MATMUL_ROWS_PER_BLOCK), tok_tiles, 1),
        (MATMUL_THREADS, 1, 1),
    ))
}

/// `rms_norm_f32` over `n_tok` rows of `n` elements.
pub fn rms_norm(n: u64, n_tok: u32) -> Result<Launch, ShapeError> {
    in_range("n", n, i32::MAX as u64)?;
    let n_tok = in_range("n_tok", u64::from(n_tok), GRID_X_MAX)?;
    Ok(launch(
        "rms_norm_f32".into(),
        (n_tok, 1, 1),
        (THREADS_256, 1, 1),
    ))
}

/// `rope_norm_f32` (adjacent pairs) or `rope_neox_f32` (half-split pairs).
pub fn rope(
    n_heads: u32,
    head_dim: u32,
    n_rot: u32,
    n_tok: u32,
    neox: bool,
) -> Result<Launch, ShapeError> {
    if n_rot == 0 || !n_rot.is_multiple_of(2) || n_rot > head_dim || n_rot > HEAD_DIM_MAX {
        return Err(ShapeError::Rope { n_rot, head_dim });
    }
    let n_heads = in_range("n_heads", u64::from(n_heads), GRID_X_MAX)?;
    let n_tok = in_range("n_tok", u64::from(n_tok), u64::from(GRID_YZ_MAX))?;
    let name = if neox {
        "rope_neox_f32"
    } else {
        "rope_norm_f32"
    };
    Ok(launch(name.into(), (n_heads, n_tok, 1), (n_rot / 2, 1, 1)))
}

/// `attn_decode_f16kv` for `n_tok` query tokens.
pub fn attention(
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    n_tok: u32,
) -> Result<Launch, ShapeError> {
    let bad = n_head == 0
        || n_head_kv == 0
        || !n_head.is_multiple_of(n_head_kv)
        || head_dim == 0
        || !head_dim.is_multiple_of(32)
        || head_dim > HEAD_DIM_MAX;
    if bad {
        return Err(ShapeError::Attention {
            n_head,
            n_head_kv,
            head_dim,
        });
    }
    let n_tok = in_range("n_tok", u64::from(n_tok), u64::from(GRID_YZ_MAX))?;
    Ok(launch(
        "attn_decode_f16kv".into(),
        (n_head, n_tok, 1),
        (32, ATTENTION_WARPS, 1),
    ))
}

/// An element-wise kernel (`swiglu_f32`, `add_f32`, `add_rows_f32`) over `n` elements.
pub fn elementwise(name: &'static str, n: u64) -> Result<Launch, ShapeError> {
    let blocks = in_range(
        "elementwise blocks",
        n.div_ceil(u64::from(THREADS_256)),
        GRID_X_MAX,
    )?;
    Ok(launch(name.into(), (blocks, 1, 1), (THREADS_256, 1, 1)))
}

/// `kv_store_f16` for `n_tok` tokens of `kv_dim` keys and values.
pub fn kv_store(kv_dim: u32, n_tok: u32) -> Result<Launch, ShapeError> {
    let kv_dim = in_range("kv_dim", u64::from(kv_dim), i32::MAX as u64)?;
    let n_tok = in_range("n_tok", u64::from(n_tok), u64::from(GRID_YZ_MAX))?;
    Ok(launch(
        "kv_store_f16".into(),
        (kv_dim.div_ceil(THREADS_256), n_tok, 1),
        (THREADS_256, 1, 1),
    ))
}

/// `argmax_f32` over `n` logits: a single block.
pub fn argmax(n: u64) -> Result<Launch, ShapeError> {
    in_range("n", n, i32::MAX as u64)?;
    Ok(launch(
        "argmax_f32".into(),
        (1, 1, 1),
        (ARGMAX_THREADS, 1, 1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::fatbin::kernel_names;

    /// `constexpr int NAME = VALUE;` read back from a kernel source file.
    fn constexpr_in(file: &str, name: &str) -> u64 {
        let path = format!("{}/kernels/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let pat = format!("constexpr int {name} = ");
        let rest = text
            .split(&pat)
            .nth(1)
            .unwrap_or_else(|| panic!("{name} in {file}"));
        rest.split(';').next().unwrap().trim().parse().unwrap()
    }

    #[test]
    fn constants_match_the_kernel_sources() {
        let pairs: [(&str, &str, u64); 10] = [
            ("matvec.cuh", "MV_WARPS", MATVEC_ROWS_PER_BLOCK.into()),
            ("matmul.cuh", "MM_ROWS", MATMUL_ROWS_PER_BLOCK.into()),
            ("matmul.cuh", "MM_TOKS", MATMUL_TOKENS_PER_BLOCK.into()),
            ("matmul.cuh", "MM_THREADS", MATMUL_THREADS.into()),
            ("dequant.cu", "DQ_THREADS", THREADS_256.into()),
            ("dequant.cu", "DQ_PER_THREAD", DEQUANT_PER_THREAD),
            ("quantize.cu", "QZ_THREADS", THREADS_256.into()),
            ("elementwise.cu", "ARGMAX_THREADS", ARGMAX_THREADS.into()),
            ("attention.cu", "AT_WARPS", ATTENTION_WARPS.into()),
            ("attention.cu", "AT_HEAD_DIM_MAX", HEAD_DIM_MAX.into()),
        ];
        for (file, name, want) in pairs {
            assert_eq!(constexpr_in(file, name), want, "{file}: {name}");
        }
        assert_eq!(
            constexpr_in("norm.cu", "RMS_THREADS"),
            u64::from(THREADS_256)
        );
        assert_eq!(
            constexpr_in("elementwise.cu", "EW_THREADS"),
            u64::from(THREADS_256)
        );
    }

    #[test]
    fn every_shape_names_a_real_kernel() {
        let names = kernel_names();
        let known = |l: Launch| assert!(names.contains(&l.name), "{}", l.name);
        for ty in GgmlType::ALL {
            known(dequant(ty, ty.block_elems() as u64 * 64).unwrap());
            if ty.is_weight_type() {
                known(matvec(ty, 576, 1536, 1).unwrap());
                known(matmul(ty, 576, 1536, 7).unwrap());
            }
        }
        known(quantize_q8_1(576, 3).unwrap());
        known(rms_norm(576, 3).unwrap());
        known(rope(9, 64, 64, 1, false).unwrap());
        known(rope(14, 64, 64, 1, true).unwrap());
        known(attention(9, 3, 64, 1).unwrap());
        for name in ["swiglu_f32", "add_f32", "add_rows_f32"] {
            known(elementwise(name, 1536).unwrap());
        }
        known(kv_store(192, 1).unwrap());
        known(argmax(49152).unwrap());
    }

    #[test]
    fn matvec_shapes_cover_every_row_and_token() {
        // SmolLM2-135M's ffn_up (1536 × 576, Q4_1), one token.
        let l = matvec(GgmlType::Q4_1, 1536, 576, 1).unwrap();
        assert_eq!(l.name, "matvec_q4_1_q8_1");
        assert_eq!((l.grid, l.block), ((384, 1, 1), (32, 4, 1)));
        // Rows not a multiple of 4, 5 tokens; F16 weights take f32 activations.
        let l = matvec(GgmlType::F16, 49_153, 576, 5).unwrap();
        assert_eq!(l.name, "matvec_f16_f32");
        assert_eq!(l.grid, (12_289, 5, 1));
        // K-quant rows must be whole super-blocks; legacy rows whole 32-blocks.
        assert!(matches!(
            matvec(GgmlType::Q4K, 896, 576, 1),
            Err(ShapeError::PartialBlock { unit: 256, .. })
        ));
        assert!(matvec(GgmlType::Q4K, 896, 4864, 1).is_ok());
        assert!(matches!(
            matvec(GgmlType::Q8_1, 1, 32, 1),
            Err(ShapeError::NoKernel { .. })
        ));
        assert!(matches!(
            matvec(GgmlType::Q4_0, 1, 32, 65_536),
            Err(ShapeError::OutOfRange { what: "n_tok", .. })
        ));
        assert!(matvec(GgmlType::Q4_0, 0, 32, 1).is_err());
    }

    #[test]
    fn matmul_tiles_rows_by_64_and_tokens_by_32() {
        let l = matmul(GgmlType::Q6K, 151_936, 896, 100).unwrap_err();
        assert!(matches!(l, ShapeError::PartialBlock { unit: 256, .. }));
        let l = matmul(GgmlType::Q8_0, 151_936, 896, 100).unwrap();
        assert_eq!((l.grid, l.block), ((2374, 4, 1), (256, 1, 1)));
        let l = matmul(GgmlType::F32, 65, 32, 1).unwrap();
        assert_eq!(l.grid, (2, 1, 1));
        // F32 rows that are not whole 32-element steps have no matmul.
        assert!(matmul(GgmlType::F32, 65, 48, 1).is_err());
    }

    #[test]
    fn attention_and_rope_shapes() {
        // Qwen2.5-0.5B: 14 heads over 2 kv heads of 64.
        let l = attention(14, 2, 64, 1).unwrap();
        assert_eq!((l.grid, l.block), ((14, 1, 1), (32, 4, 1)));
        assert_eq!(attention(32, 8, 128, 512).unwrap().grid, (32, 512, 1));
        for (h, kv, d) in [(14, 3, 64), (8, 8, 80), (8, 8, 512), (0, 1, 64)] {
            assert!(attention(h, kv, d, 1).is_err(), "{h} {kv} {d}");
        }
        let l = rope(32, 128, 128, 7, true).unwrap();
        assert_eq!(
            (l.name.as_str(), l.grid, l.block),
            ("rope_neox_f32", (32, 7, 1), (64, 1, 1))
        );
        assert!(rope(32, 128, 130, 1, false).is_err());
        assert!(rope(32, 128, 63, 1, false).is_err());
    }

    #[test]
    fn small_kernels() {
        assert_eq!(dequant(GgmlType::Q4_0, 2048 * 3).unwrap().grid, (3, 1, 1));
        assert_eq!(dequant(GgmlType::F16, 2049).unwrap().grid, (2, 1, 1));
        assert!(dequant(GgmlType::Q4K, 128).is_err());
        assert_eq!(quantize_q8_1(576, 2).unwrap().grid, (3, 2, 1));
        assert!(quantize_q8_1(40, 1).is_err());
        assert_eq!(rms_norm(576, 9).unwrap().grid, (9, 1, 1));
        assert_eq!(elementwise("add_f32", 257).unwrap().grid, (2, 1, 1));
        assert!(elementwise("add_f32", 0).is_err());
        assert_eq!(kv_store(128, 4).unwrap().grid, (1, 4, 1));
        assert_eq!(argmax(151_936).unwrap().block, (1024, 1, 1));
    }
}

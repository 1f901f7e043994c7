//! Activations converted to a weight type's dot format, in a buffer allocated once.
//!
//! The engine quantises each activation matrix once per weight type it meets (all tokens of a
//! prefill at once) and hands the result to [`crate::cpu::matmul`]. The buffer never grows: a
//! too-small one is an error that names the capacity to ask for.

use sluice_loader::quant::blocks::{as_blocks_mut, BlockQ8K, BlockQ8_0, BlockQ8_1};
use sluice_loader::GgmlType;

use super::dispatch::Isa;
use super::dot::vec_dot_type;
use super::error::CpuError;
use super::quantize::{
    convert_row_bf16, convert_row_f16, quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k,
};

/// Bytes per element of the widest activation format (F32); sizes a buffer for any weight type.
pub const ACT_BYTES_PER_ELEM_MAX: usize = 4;

/// `rows` activation rows in one dot format, stored back to back in a reusable buffer.
#[derive(Debug)]
pub struct QuantizedActs {
    /// The buffer, allocated once; only the first `rows * row_bytes` bytes are meaningful.
    bytes: Vec<u8>,
    /// The dot format of the rows.
    ty: GgmlType,
    /// Number of rows (tokens) held.
    rows: usize,
    /// Elements per row.
    row_elems: usize,
    /// Bytes per row in `ty`.
    row_bytes: usize,
}

impl QuantizedActs {
    /// An empty buffer of `capacity_bytes` bytes (allocated now, never again).
    pub fn with_capacity(capacity_bytes: usize) -> QuantizedActs {
        QuantizedActs {
            bytes: vec![0; capacity_bytes],
            ty: GgmlType::F32,
            rows: 0,
            row_elems: 0,
            row_bytes: 0,
        }
    }

    /// A buffer big enough for `rows_max` rows of `row_elems_max` elements in any dot format.
    pub fn for_shape(rows_max: usize, row_elems_max: usize) -> QuantizedActs {
        QuantizedActs::with_capacity(rows_max * row_elems_max * ACT_BYTES_PER_ELEM_MAX)
    }

    /// The buffer's size in bytes.
    pub fn capacity_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The dot format of the rows held.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Number of rows (tokens) held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row.
    pub fn row_elems(&self) -> usize {
        self.row_elems
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// Row `t` as raw bytes of [`QuantizedActs::ty`]. Panics if `t >= rows()`.
    pub fn row(&self, t: usize) -> &[u8] {
        assert!(t < self.rows, "activation row {t} of {}", self.rows);
        &self.bytes[t * self.row_bytes..(t + 1) * self.row_bytes]
    }

    /// Rows `t0..t0 + n` back to back. Panics if `t0 + n > rows()`.
    pub fn rows_bytes(&self, t0: usize, n: usize) -> &[u8] {
        assert!(
            t0 + n <= self.rows,
            "activation rows {t0}..{} of {}",
            t0 + n,
            self.rows
        );
        &self.bytes[t0 * self.row_bytes..(t0 + n) * self.row_bytes]
    }
}

/// Converts `rows` rows of f32 activations (`x`, row-major) into the dot format of weights of
/// type `weight_ty`, on the process-wide kernel path.
pub fn quantize_acts(
    weight_ty: GgmlType,
    x: &[f32],
    rows: usize,
    into: &mut QuantizedActs,
) -> Result<(), CpuError> {
    quantize_acts_with(Isa::current(), weight_ty, x, rows, into)
}

/// [`quantize_acts`] on an explicit kernel path.
pub fn quantize_acts_with(
    isa: Isa,
    weight_ty: GgmlType,
    x: &[f32],
    rows: usize,
    into: &mut QuantizedActs,
) -> Result<(), CpuError> {
    let ty = vec_dot_type(weight_ty).ok_or(CpuError::NotAWeightType(weight_ty))?;
    let block = ty.block_elems();
    let shape_err = CpuError::ActsShape {
        len: x.len(),
        rows,
        ty,
        block,
    };
    if rows == 0 || !x.len().is_multiple_of(rows) || !(x.len() / rows).is_multiple_of(block) {
        return Err(shape_err);
    }
    let row_elems = x.len() / rows;
    let row_bytes = ty.row_bytes(row_elems as u64).ok_or(shape_err.clone())? as usize;
    let needed = row_bytes * rows;
    if needed > into.bytes.len() {
        return Err(CpuError::ActsCapacity {
            needed,
            capacity: into.bytes.len(),
        });
    }
    for (src, dst) in x
        .chunks_exact(row_elems)
        .zip(into.bytes[..needed].chunks_exact_mut(row_bytes))
    {
        convert_row(isa, ty, src, dst).ok_or(shape_err.clone())?;
    }
    *into = QuantizedActs {
        bytes: std::mem::take(&mut into.bytes),
        ty,
        rows,
        row_elems,
        row_bytes,
    };
    Ok(())
}

/// Converts one row into `dst` (exactly one row of `ty`); `None` if `dst` is not whole blocks.
fn convert_row(isa: Isa, ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Option<()> {
    match ty {
        GgmlType::Q8_0 => quantize_row_q8_0(isa, src, as_blocks_mut::<BlockQ8_0>(dst)?),
        GgmlType::Q8_1 => quantize_row_q8_1(isa, src, as_blocks_mut::<BlockQ8_1>(dst)?),
        GgmlType::Q8K => quantize_row_q8_k(isa, src, as_blocks_mut::<BlockQ8K>(dst)?),
        GgmlType::F16 => convert_row_f16(isa, src, dst),
        GgmlType::BF16 => convert_row_bf16(isa, src, dst),
        GgmlType::F32 => {
            for (v, o) in src.iter().zip(dst.chunks_exact_mut(4)) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => return None,
    }
    Some(())
}

//! Errors of the CPU backend: each names the tensor shape or setting a person should check.

use sluice_loader::GgmlType;

/// A CPU kernel could not run on the arguments it was given.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuError {
    /// The type is an activation-only format (Q8_1, Q8_K) and cannot be a weight.
    #[error("{0} is an activation-only format and cannot be used as a weight type")]
    NotAWeightType(GgmlType),
    /// A row's byte length does not match its element count.
    #[error(
        "{ty} row of {n} elements: got {w_bytes} weight bytes and {a_bytes} activation bytes, \
         which do not match (is n a multiple of the block size?)"
    )]
    RowLength {
        /// Weight type.
        ty: GgmlType,
        /// Elements per row.
        n: usize,
        /// Bytes of the weight row given.
        w_bytes: usize,
        /// Bytes of the activation row given.
        a_bytes: usize,
    },
    /// The weight matrix bytes do not hold `n_rows` rows of `row_elems` elements.
    #[error(
        "{ty} weight of {n_rows} rows × {row_elems} elements needs {expected:?} bytes, got {got} \
         (check the tensor's shape and type)"
    )]
    WeightSize {
        /// Weight type.
        ty: GgmlType,
        /// Rows claimed.
        n_rows: usize,
        /// Elements per row claimed.
        row_elems: usize,
        /// Bytes those rows take (`None` if not whole blocks or overflowing).
        expected: Option<u64>,
        /// Bytes given.
        got: usize,
    },
    /// The activations were quantised for another weight type or row length.
    #[error(
        "activations are {acts_ty} rows of {acts_elems} elements, but a {weight_ty} weight with \
         rows of {row_elems} needs {needed_ty} (call quantize_acts with this weight's type)"
    )]
    ActsMismatch {
        /// Format of the activations given.
        acts_ty: GgmlType,
        /// Elements per activation row given.
        acts_elems: usize,
        /// Weight type.
        weight_ty: GgmlType,
        /// Activation format the weight type needs.
        needed_ty: GgmlType,
        /// Elements per weight row.
        row_elems: usize,
    },
    /// The input to quantise is not `rows` whole rows of a block-multiple length.
    #[error(
        "cannot split {len} activations into {rows} rows of whole {ty} blocks of {block} elements"
    )]
    ActsShape {
        /// Number of f32 values given.
        len: usize,
        /// Rows requested.
        rows: usize,
        /// Target activation format.
        ty: GgmlType,
        /// Elements per block of that format.
        block: usize,
    },
    /// The activation buffer is too small; it never grows on the hot path.
    #[error(
        "activation buffer holds {capacity} bytes but {needed} are needed \
         (create QuantizedActs with a larger capacity)"
    )]
    ActsCapacity {
        /// Bytes the quantised rows need.
        needed: usize,
        /// Bytes the buffer holds.
        capacity: usize,
    },
    /// The output slice does not hold `tokens × n_rows` values.
    #[error(
        "output holds {got} values but {tokens} tokens × {n_rows} rows = {expected} are needed"
    )]
    OutputSize {
        /// Values in the output slice.
        got: usize,
        /// Activation rows (tokens).
        tokens: usize,
        /// Weight rows.
        n_rows: usize,
        /// Values needed.
        expected: usize,
    },
    /// A matrix in the 16-row interleaved layout reached a path without a kernel for it.
    #[error(
        "{ty} matrix of {n_rows} rows is in the 16-row interleaved layout, which the {isa} \
         kernels cannot read (AVX-512 reads it for every type it takes, AVX2 for the 32-element \
         types; weights are interleaved only where the path reads them)"
    )]
    Layout {
        /// Weight type.
        ty: GgmlType,
        /// Rows of the matrix.
        n_rows: usize,
        /// The kernel path asked to run it.
        isa: &'static str,
    },
    /// A paired product (gate and up) was given matrices with different row counts.
    #[error("paired matrices must have the same rows, got {a_rows} and {b_rows}")]
    PairShape {
        /// Rows of the first matrix.
        a_rows: usize,
        /// Rows of the second matrix.
        b_rows: usize,
    },
}

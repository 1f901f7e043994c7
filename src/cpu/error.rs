//! Errors of the CPU backend: each names the tensor shape or setting a person should check.

use sluice_loader::GgmlType;

/// A CPU kernel could not run on the arguments it was given.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuError {
    /// The type is an activation-only format (Q8_1, Q8_K) and cannot be a weight.
    #[error("{0} is an activation-only format and cannot be used as a weight type")]
    NotAWeightType(GgmlType),
    /// A row's byte length does not match its element count.
    #[error("{ty} row of {n} elements: got {w_bytes} weight bytes and {a_bytes} activation bytes, which do not match (is n a multiple of the block size?)")]
    RowLength {
        ty: GgmlType,
        n: usize,
        w_bytes: usize,
        a_bytes: usize,
    },
    /// The weight matrix bytes do not hold `n_rows` rows of `row_elems` elements.
    #[error("{ty} weight of {n_rows} rows × {row_elems} elements needs {expected:?} bytes, got {got} (check the tensor's shape and type)")]
    WeightSize {
        ty: GgmlType,
        n_rows: usize,
        row_elems: usize,
        expected: Option<u64>,
        got: usize,
    },
    /// The activations were quantised for another weight type or row length.
    #[error("activations are {acts_ty} rows of {acts_elems} elements, but a {weight_ty} weight with rows of {row_elems} needs {needed_ty} (call quantize_acts with this weight's type)")]
    ActsMismatch {
        acts_ty: GgmlType,
        acts_elems: usize,
        weight_ty: GgmlType,
        needed_ty: GgmlType,
        row_elems: usize,
    },
    /// The input to quantise is not `rows` whole rows of a block-multiple length.
    #[error(
        "cannot split {len} activations into {rows} rows of whole {ty} blocks of {block} elements"
    )]
    ActsShape {
        len: usize,
        rows: usize,
        ty: GgmlType,
        block: usize,
    },
    /// The activation buffer is too small; it never grows on the hot path.
    #[error("activation buffer holds {capacity} bytes but {needed} are needed (create QuantizedActs with a larger capacity)")]
    ActsCapacity { needed: usize, capacity: usize },
    /// The output slice does not hold `tokens × n_rows` values.
    #[error(
        "output holds {got} values but {tokens} tokens × {n_rows} rows = {expected} are needed"
    )]
    OutputSize {
        got: usize,
        tokens: usize,
        n_rows: usize,
        expected: usize,
    },
}

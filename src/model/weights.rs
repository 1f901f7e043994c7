//! Layer weights as views into the bytes of a layer's extents (a ring slot or a resident
//! buffer): nothing is copied or dequantised; matrices are handed to the kernels as they lie.

use sluice_loader::extents::{Extent, LayerExtents, TensorSlice};
use sluice_loader::roles::TensorRole;
use sluice_loader::spec::ModelSpec;
use sluice_loader::GgmlType;
use thiserror::Error;

use crate::cpu::rows16;
use crate::cpu::{Isa, WeightLayout, WeightView};

/// A tensor the model needs is missing or has the wrong shape or type.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WeightError {
    /// A required tensor is absent.
    #[error("the model has no {role:?} tensor{}", layer_suffix(*.layer))]
    Missing {
        layer: Option<usize>,
        role: TensorRole,
    },
    /// A tensor's dims differ from what the hyper-parameters imply.
    #[error("tensor {name} has dims {got:?}, but the model's hyper-parameters imply {want:?}")]
    Shape {
        name: String,
        got: Vec<u64>,
        want: Vec<u64>,
    },
    /// A vector (norm, bias) is stored in a type sluice cannot read as floats.
    #[error("tensor {name} has type {ty}, which this engine cannot compute with")]
    Type { name: String, ty: GgmlType },
}

fn layer_suffix(layer: Option<usize>) -> String {
    layer.map(|l| format!(" in layer {l}")).unwrap_or_default()
}

/// One tensor's bytes and shape.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    pub ty: GgmlType,
    /// Elements per row (`ne[0]`).
    pub row_elems: usize,
    /// Rows (1 for vectors).
    pub n_rows: usize,
    pub bytes: &'a [u8],
    /// How a matrix's rows are arranged (vectors are always in file layout).
    pub layout: WeightLayout,
}

impl<'a> Tensor<'a> {
    /// The view the matmul kernels take.
    pub fn matrix(&self) -> WeightView<'a> {
        WeightView {
            ty: self.ty,
            row_elems: self.row_elems,
            n_rows: self.n_rows,
            bytes: self.bytes,
            layout: self.layout,
        }
    }
}

/// Every tensor of one transformer block.
#[derive(Clone, Copy, Debug)]
pub struct LayerWeights<'a> {
    pub attn_norm: Tensor<'a>,
    pub q: Tensor<'a>,
    pub k: Tensor<'a>,
    pub v: Tensor<'a>,
    pub q_bias: Option<Tensor<'a>>,
    pub k_bias: Option<Tensor<'a>>,
    pub v_bias: Option<Tensor<'a>>,
    pub o: Tensor<'a>,
    pub ffn_norm: Tensor<'a>,
    pub gate: Tensor<'a>,
    pub up: Tensor<'a>,
    pub down: Tensor<'a>,
}

/// Finds `role` among a layer's extents; `payloads[i]` are the bytes of extent i's payload.
fn find<'a, 'e>(
    extents: &'e [Extent],
    payloads: &[&'a [u8]],
    role: TensorRole,
) -> Option<(&'a [u8], &'e TensorSlice)> {
    for (e, p) in extents.iter().zip(payloads) {
        if let Some(s) = e.slice(role) {
            let start = s.offset_in_payload as usize;
            return p.get(start..start + s.n_bytes as usize).map(|b| (b, s));
        }
    }
    None
}

/// The matrices of a transformer block (everything else in it is a vector), in the order the
/// forward pass multiplies them.
pub const MATRICES: [TensorRole; 7] = [
    TensorRole::Q,
    TensorRole::K,
    TensorRole::V,
    TensorRole::O,
    TensorRole::Gate,
    TensorRole::Up,
    TensorRole::Down,
];

/// Rows of a tensor slice (1 for vectors).
fn slice_rows(slice: &TensorSlice) -> usize {
    slice.dims.iter().skip(1).product::<u64>() as usize
}

/// Whether [`interleave_jobs`] picks this slice: a matrix of a type and shape the 16-row
/// layout takes. [`LayerWeights::view`] asks the same, so the two always agree.
fn interleaves(slice: &TensorSlice) -> bool {
    MATRICES.contains(&slice.role)
        && rows16::interleaves(Isa::current(), slice.ty, slice_rows(slice))
}

fn tensor<'a>(slice: &TensorSlice, bytes: &'a [u8], interleaved: bool) -> Tensor<'a> {
    let row_elems = slice.dims.first().copied().unwrap_or(1) as usize;
    Tensor {
        ty: slice.ty,
        row_elems,
        n_rows: slice_rows(slice),
        bytes,
        layout: if interleaved && MATRICES.contains(&slice.role) {
            rows16::layout(Isa::current(), slice.ty, slice_rows(slice))
        } else {
            WeightLayout::File
        },
    }
}

/// A matrix to rearrange into the 16-row layout: its type, rows and bytes.
pub type InterleaveJob<'p> = (GgmlType, usize, &'p mut [u8]);

/// The matrices of one layer's payloads that the 16-row layout takes (`cpu::rows16`), as
/// disjoint byte ranges to rearrange in place, so that [`LayerWeights::view`] with
/// `interleaved` reads them as such (resident layers on the SIMD paths, once per load).
pub fn interleave_jobs<'p>(
    extents: &[Extent],
    payloads: Vec<&'p mut [u8]>,
) -> Vec<InterleaveJob<'p>> {
    let mut jobs = Vec::new();
    for (e, p) in extents.iter().zip(payloads) {
        let mut wanted: Vec<&TensorSlice> = e.tensors.iter().filter(|s| interleaves(s)).collect();
        wanted.sort_by_key(|s| s.offset_in_payload);
        let (mut rest, mut at) = (p, 0usize);
        for s in wanted {
            let start = s.offset_in_payload as usize;
            let Some(skip) = start.checked_sub(at).filter(|k| *k <= rest.len()) else {
                continue; // overlapping tensors: the GGUF loader refuses them at load
            };
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(skip);
            let len = s.n_bytes as usize;
            if len > tail.len() {
                rest = tail;
                at = start;
                continue; // `view` reports the missing bytes
            }
            let (bytes, tail) = tail.split_at_mut(len);
            jobs.push((s.ty, slice_rows(s), bytes));
            rest = tail;
            at = start + len;
        }
    }
    jobs
}

impl<'a> LayerWeights<'a> {
    /// Views layer `layer`'s tensors in the payloads of its extents (checked once at load by
    /// [`check_tensors`]); `interleaved`: the matrices of [`interleave_jobs`] were rearranged.
    pub fn view(
        layer: usize,
        extents: &[Extent],
        payloads: &[&'a [u8]],
        interleaved: bool,
    ) -> Result<LayerWeights<'a>, WeightError> {
        let get = |role| find(extents, payloads, role).map(|(b, s)| tensor(s, b, interleaved));
        LayerWeights::assemble(layer, get)
    }

    /// The block's tensors as `get` finds them; the norms and every matrix are required.
    fn assemble(
        layer: usize,
        get: impl Fn(TensorRole) -> Option<Tensor<'a>>,
    ) -> Result<LayerWeights<'a>, WeightError> {
        let need = |role| {
            get(role).ok_or(WeightError::Missing {
                layer: Some(layer),
                role,
            })
        };
        Ok(LayerWeights {
            attn_norm: need(TensorRole::AttnNorm)?,
            q: need(TensorRole::Q)?,
            k: need(TensorRole::K)?,
            v: need(TensorRole::V)?,
            q_bias: get(TensorRole::QBias),
            k_bias: get(TensorRole::KBias),
            v_bias: get(TensorRole::VBias),
            o: need(TensorRole::O)?,
            ffn_norm: need(TensorRole::FfnNorm)?,
            gate: need(TensorRole::Gate)?,
            up: need(TensorRole::Up)?,
            down: need(TensorRole::Down)?,
        })
    }
}

impl<'a> LayerWeights<'a> {
    /// Layer `layer` when it streams in row pieces: its matrices' types and shapes with no
    /// bytes (the pieces bring those), its norms and biases from `vector` (their bytes by
    /// role).
    pub fn pieced(
        layer: usize,
        extents: &[Extent],
        vector: impl Fn(TensorRole) -> Option<&'a [u8]>,
    ) -> Result<LayerWeights<'a>, WeightError> {
        let get = |role| {
            let s = extents.iter().find_map(|e| e.slice(role))?;
            if MATRICES.contains(&role) {
                return Some(tensor(s, &[], false));
            }
            let bytes = vector(role).filter(|b| b.len() as u64 == s.n_bytes)?;
            Some(tensor(s, bytes, false))
        };
        LayerWeights::assemble(layer, get)
    }
}

/// Checks, once at load, that every layer has every tensor the forward pass needs, that
/// vectors (norms, biases) are float types and that matrices have a CPU kernel. Shapes were
/// already checked against the hyper-parameters when the [`ModelSpec`] was built.
pub fn check_tensors(spec: &ModelSpec, extents: &LayerExtents) -> Result<(), WeightError> {
    use TensorRole as R;
    let vectors: &[TensorRole] = if spec.qkv_bias {
        &[R::AttnNorm, R::FfnNorm, R::QBias, R::KBias, R::VBias]
    } else {
        &[R::AttnNorm, R::FfnNorm]
    };
    for (layer, ext) in extents.layers.iter().enumerate() {
        let roles = MATRICES
            .iter()
            .map(|r| (r, false))
            .chain(vectors.iter().map(|r| (r, true)));
        for (&role, is_vector) in roles {
            let Some(s) = ext.iter().find_map(|x| x.slice(role)) else {
                return Err(WeightError::Missing {
                    layer: Some(layer),
                    role,
                });
            };
            let ok = if is_vector {
                matches!(s.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
            } else {
                crate::cpu::vec_dot_type(s.ty).is_some()
            };
            if !ok {
                return Err(WeightError::Type {
                    name: s.name.clone(),
                    ty: s.ty,
                });
            }
        }
    }
    Ok(())
}

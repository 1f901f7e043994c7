//! Where a layer's tensors lie on the device, and which device ring slot each streamed layer
//! uses. Pure index arithmetic, tested without a GPU.
//!
//! A layer's extents are copied payload by payload (alignment padding skipped) into one device
//! buffer — a resident allocation or a ring slot — each payload starting on a
//! [`DEVICE_ALIGN_BYTES`] boundary. A tensor then lies at its extent's device offset plus its
//! offset in the payload, the same bytes the CPU reads in place.

use sluice_loader::extents::{Extent, TensorSlice};
use sluice_loader::roles::TensorRole;
use sluice_loader::GgmlType;

/// Alignment of every payload in a device buffer (what `cuMemAlloc` guarantees for a base).
pub const DEVICE_ALIGN_BYTES: u64 = 256;
/// Alignment every tensor must have on the device: f32 vectors are read as `float`.
pub const TENSOR_ALIGN_BYTES: u64 = 4;

/// One tensor in a device buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceTensor {
    /// Element type.
    pub ty: GgmlType,
    /// Elements per row (`ne[0]`).
    pub row_elems: u64,
    /// Rows (1 for vectors).
    pub n_rows: u64,
    /// Byte offset from the buffer's start.
    pub offset: u64,
    /// Exact byte length.
    pub bytes: u64,
}

/// Every tensor of one transformer block, as offsets into its device buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerLayout {
    pub attn_norm: DeviceTensor,
    pub q: DeviceTensor,
    pub k: DeviceTensor,
    pub v: DeviceTensor,
    pub q_bias: Option<DeviceTensor>,
    pub k_bias: Option<DeviceTensor>,
    pub v_bias: Option<DeviceTensor>,
    pub o: DeviceTensor,
    pub ffn_norm: DeviceTensor,
    pub gate: DeviceTensor,
    pub up: DeviceTensor,
    pub down: DeviceTensor,
}

/// A layer the device backend cannot lay out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A tensor the forward pass needs is missing.
    #[error("layer {layer} has no {role:?} tensor")]
    Missing {
        /// The layer.
        layer: usize,
        /// The role missing.
        role: TensorRole,
    },
    /// A tensor whose start is not aligned enough for the kernels.
    #[error("tensor {name} starts at byte {offset} of its layer, not a multiple of {TENSOR_ALIGN_BYTES}")]
    Misaligned {
        /// The tensor's name.
        name: String,
        /// Its device offset.
        offset: u64,
    },
    /// A norm or bias vector that is not f32 (the kernels read `float` vectors).
    #[error("tensor {name} is {ty}; the CUDA backend needs f32 norms and biases")]
    VectorType {
        /// The tensor's name.
        name: String,
        /// Its type.
        ty: GgmlType,
    },
}

/// Device offset of each of `extents`' payloads, and the bytes the whole layer needs.
pub fn extent_offsets(extents: &[Extent]) -> (Vec<u64>, u64) {
    let mut offsets = Vec::with_capacity(extents.len());
    let mut end = 0u64;
    for e in extents {
        let start = end.next_multiple_of(DEVICE_ALIGN_BYTES);
        offsets.push(start);
        end = start + e.payload_len;
    }
    (offsets, end)
}

/// Device bytes a layer needs (its payloads, each aligned).
pub fn layer_device_bytes(extents: &[Extent]) -> u64 {
    extent_offsets(extents).1
}

fn device_tensor(s: &TensorSlice, extent_offset: u64) -> Result<DeviceTensor, LayoutError> {
    let offset = extent_offset + s.offset_in_payload;
    if !offset.is_multiple_of(TENSOR_ALIGN_BYTES) {
        return Err(LayoutError::Misaligned {
            name: s.name.clone(),
            offset,
        });
    }
    Ok(DeviceTensor {
        ty: s.ty,
        row_elems: s.dims.first().copied().unwrap_or(1),
        n_rows: s.dims.iter().skip(1).product(),
        offset,
        bytes: s.n_bytes,
    })
}

impl LayerLayout {
    /// Lays out layer `layer`'s tensors as [`extent_offsets`] places its payloads.
    pub fn new(layer: usize, extents: &[Extent]) -> Result<LayerLayout, LayoutError> {
        let (offsets, _) = extent_offsets(extents);
        let find = |role: TensorRole| -> Result<Option<DeviceTensor>, LayoutError> {
            for (e, &off) in extents.iter().zip(&offsets) {
                if let Some(s) = e.slice(role) {
                    return device_tensor(s, off).map(Some);
                }
            }
            Ok(None)
        };
        let get = |role| find(role)?.ok_or(LayoutError::Missing { layer, role });
        let vector = |role| -> Result<Option<DeviceTensor>, LayoutError> {
            let t = find(role)?;
            match t {
                Some(t) if t.ty != GgmlType::F32 => Err(LayoutError::VectorType {
                    name: name_of(extents, role),
                    ty: t.ty,
                }),
                _ => Ok(t),
            }
        };
        let required_vector = |role| vector(role)?.ok_or(LayoutError::Missing { layer, role });
        use TensorRole as R;
        Ok(LayerLayout {
            attn_norm: required_vector(R::AttnNorm)?,
            q: get(R::Q)?,
            k: get(R::K)?,
            v: get(R::V)?,
            q_bias: vector(R::QBias)?,
            k_bias: vector(R::KBias)?,
            v_bias: vector(R::VBias)?,
            o: get(R::O)?,
            ffn_norm: required_vector(R::FfnNorm)?,
            gate: get(R::Gate)?,
            up: get(R::Up)?,
            down: get(R::Down)?,
        })
    }

    /// The matrices, for checking their shapes against the kernels once at load.
    pub fn matrices(&self) -> [DeviceTensor; 7] {
        [
            self.q, self.k, self.v, self.o, self.gate, self.up, self.down,
        ]
    }
}

fn name_of(extents: &[Extent], role: TensorRole) -> String {
    extents
        .iter()
        .find_map(|e| e.slice(role))
        .map_or_else(|| format!("{role:?}"), |s| s.name.clone())
}

/// The device ring that streamed (and RAM-tier) layers are copied into: the `seq`-th copy of a
/// sweep sequence goes to slot `seq % slots`. Before a copy may overwrite a slot, the compute
/// that read the slot's previous occupant (copy `seq - slots`) must be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRing {
    slots: usize,
}

impl DeviceRing {
    /// A ring of `slots` slots (at least 2, so a copy can overlap the compute of the previous
    /// layer).
    pub fn new(slots: usize) -> DeviceRing {
        assert!(slots >= 2, "a device ring needs at least two slots");
        DeviceRing { slots }
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The slot copy number `seq` lands in.
    pub fn slot(&self, seq: u64) -> usize {
        (seq % self.slots as u64) as usize
    }

    /// The earlier copy whose compute must finish before copy `seq` overwrites its slot.
    pub fn previous_occupant(&self, seq: u64) -> Option<u64> {
        seq.checked_sub(self.slots as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(role: TensorRole, ty: GgmlType, dims: &[u64], at: u64, n: u64) -> TensorSlice {
        TensorSlice {
            role,
            name: format!("{role:?}"),
            ty,
            dims: dims.to_vec(),
            offset_in_payload: at,
            n_bytes: n,
        }
    }

    fn extent(payload_len: u64, tensors: Vec<TensorSlice>) -> Extent {
        Extent {
            file: 0,
            offset: 0,
            len: payload_len.next_multiple_of(4096),
            payload_offset: 0,
            payload_len,
            tensors,
        }
    }

    /// A SmolLM2-shaped layer split into two extents.
    fn layer() -> Vec<Extent> {
        use GgmlType::{F32, Q4_1};
        use TensorRole as R;
        let q4 = |rows: u64, cols: u64| rows * cols / 32 * 20;
        let a = extent(
            2304 + q4(576, 576) * 2 + q4(192, 576) * 2,
            vec![
                slice(R::AttnNorm, F32, &[576], 0, 2304),
                slice(R::Q, Q4_1, &[576, 576], 2304, q4(576, 576)),
                slice(R::K, Q4_1, &[576, 192], 2304 + q4(576, 576), q4(192, 576)),
                slice(
                    R::V,
                    Q4_1,
                    &[576, 192],
                    2304 + q4(576, 576) + q4(192, 576),
                    q4(192, 576),
                ),
                slice(
                    R::O,
                    Q4_1,
                    &[576, 576],
                    2304 + q4(576, 576) + 2 * q4(192, 576),
                    q4(576, 576),
                ),
            ],
        );
        let ffn = q4(1536, 576);
        let b = extent(
            2304 + 3 * ffn,
            vec![
                slice(R::FfnNorm, F32, &[576], 0, 2304),
                slice(R::Gate, Q4_1, &[576, 1536], 2304, ffn),
                slice(R::Up, Q4_1, &[576, 1536], 2304 + ffn, ffn),
                slice(R::Down, Q4_1, &[1536, 576], 2304 + 2 * ffn, ffn),
            ],
        );
        vec![a, b]
    }

    #[test]
    fn payloads_are_placed_back_to_back_on_256_byte_boundaries() {
        let l = layer();
        let (offsets, total) = extent_offsets(&l);
        assert_eq!(offsets[0], 0);
        assert_eq!(offsets[1], l[0].payload_len.next_multiple_of(256));
        assert_eq!(total, offsets[1] + l[1].payload_len);
        assert_eq!(layer_device_bytes(&l), total);
        assert_eq!(extent_offsets(&[]), (vec![], 0));
    }

    #[test]
    fn tensors_lie_at_extent_offset_plus_payload_offset() {
        let l = layer();
        let (offsets, _) = extent_offsets(&l);
        let lay = LayerLayout::new(3, &l).unwrap();
        assert_eq!(lay.q.offset, 2304);
        assert_eq!((lay.q.row_elems, lay.q.n_rows), (576, 576));
        assert_eq!(lay.ffn_norm.offset, offsets[1]);
        assert_eq!(
            lay.down.offset,
            offsets[1] + 2304 + 2 * (1536 * 576 / 32 * 20)
        );
        assert_eq!((lay.down.row_elems, lay.down.n_rows), (1536, 576));
        assert!(lay.q_bias.is_none());
        assert_eq!(lay.matrices().len(), 7);
    }

    #[test]
    fn missing_misaligned_and_non_f32_vectors_are_refused() {
        let mut l = layer();
        l[1].tensors.retain(|t| t.role != TensorRole::Up);
        assert_eq!(
            LayerLayout::new(2, &l),
            Err(LayoutError::Missing {
                layer: 2,
                role: TensorRole::Up
            })
        );
        let mut l = layer();
        l[0].tensors[1].offset_in_payload += 2;
        assert!(matches!(
            LayerLayout::new(0, &l),
            Err(LayoutError::Misaligned { offset: 2306, .. })
        ));
        let mut l = layer();
        l[0].tensors[0].ty = GgmlType::BF16;
        assert!(matches!(
            LayerLayout::new(0, &l),
            Err(LayoutError::VectorType { .. })
        ));
    }

    #[test]
    fn ring_rotates_and_names_the_copy_to_wait_for() {
        let r = DeviceRing::new(2);
        let slots: Vec<usize> = (0..5).map(|s| r.slot(s)).collect();
        assert_eq!(slots, [0, 1, 0, 1, 0]);
        assert_eq!(r.previous_occupant(0), None);
        assert_eq!(r.previous_occupant(1), None);
        assert_eq!(r.previous_occupant(2), Some(0));
        assert_eq!(r.previous_occupant(7), Some(5));
        let r = DeviceRing::new(3);
        for seq in 0..20u64 {
            // Consecutive copies never share a slot; the previous occupant shares it.
            assert_ne!(r.slot(seq), r.slot(seq + 1));
            if let Some(p) = r.previous_occupant(seq) {
                assert_eq!(r.slot(p), r.slot(seq));
            }
        }
    }

    #[test]
    #[should_panic(expected = "at least two slots")]
    fn a_one_slot_ring_cannot_overlap() {
        DeviceRing::new(1);
    }
}

//! Streamed layers cut into row pieces, in the order the forward pass multiplies them.
//!
//! A ring of whole layers holds several layer-sized slots: tens of MB for a 0.5B model. The
//! drive's writes into a ring that big land slower than into one that fits the caches
//! (session 14, `bench io` on the Qwen2.5 file: 2.7-2.9 GB/s into 4 MiB of slots, 2.5 into
//! 8 MiB, 2.0 into 64 MiB). So on the CPU each streamed matrix is cut into runs of whole rows
//! that fit a small slot ([`split_rows`]), read in the order q, k, v, o, gate, up, down, and
//! multiplied piece by piece as they arrive; each slot is freed as soon as its rows are done.
//! A row's dot product does not depend on the other rows, so the products are bit-identical
//! to the whole matrix's. The norms and biases, a few KB per layer, are read once and stay
//! resident ([`layer_vectors`]).

use sluice_loader::extents::{Extent, LayerExtents, TensorSlice};
use sluice_loader::roles::TensorRole;
use sluice_loader::GgmlType;

use super::planner::DEFAULT_PREFETCH_DEPTH;
use super::rows::{split_rows, MatrixOnDisk, RowRange};
use crate::model::weights::MATRICES;

/// Slot size of the piece ring: small enough that a ring of a few fits the caches, large
/// enough that a read costs little more per byte than a long one (session 14, Qwen2.5
/// streamed on one thread, alternating, q/k/v/o not yet grouped: 1-2 MiB slots in rings of
/// 5-10 MiB 2.26-2.44 GB/s, 3 and 4 MiB slots in rings of 15 and 20 MiB 2.10-2.20, whole 10.9
/// MB layers in a 55 MB ring 1.99-2.04; SmolLM2's in 512 KiB pieces 1.9).
pub const PIECE_BYTES: u64 = 2 << 20;
/// Bytes of the piece ring: five slots, the default read-ahead's ring.
pub const PIECE_RING_BYTES: u64 = PIECE_BYTES * (DEFAULT_PREFETCH_DEPTH as u64 + 1);
/// Bytes a piece may read that no item of it uses (norms and biases between the matrices it
/// groups).
const GROUP_WASTE_MAX: u64 = 64 << 10;

/// The matrices of a layer in the order the forward pass multiplies them.
pub const PIECE_ORDER: [TensorRole; 7] = MATRICES;

/// Rows of one layer matrix that a piece holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    pub role: TensorRole,
    pub ty: GgmlType,
    /// Elements per row (`ne[0]`).
    pub row_elems: usize,
    /// First row and number of rows.
    pub row0: usize,
    pub n_rows: usize,
    /// Where the rows start in the piece's payload, and their bytes.
    pub offset: usize,
    pub len: usize,
}

/// One read into a slot of its own: whole matrices that lie together in the file (q, k, v and
/// o usually do) or a run of rows of one large matrix, used in [`PIECE_ORDER`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Index into the model's files.
    pub file: usize,
    /// The aligned read; its payload starts at the first item's first byte in the file.
    pub range: RowRange,
    /// What the forward pass takes from it, in order.
    pub items: Vec<Item>,
}

/// Where a tensor's rows lie in its extent's file, if its bytes split into whole rows.
pub fn matrix_on_disk(e: &Extent, s: &TensorSlice) -> Option<MatrixOnDisk> {
    let n_rows: u64 = s.dims.iter().skip(1).product();
    if n_rows == 0 || !s.n_bytes.is_multiple_of(n_rows) {
        return None;
    }
    Some(MatrixOnDisk {
        offset: e.payload_offset + s.offset_in_payload,
        row_bytes: s.n_bytes / n_rows,
        n_rows,
    })
}

/// Bytes of the longest row of any layer matrix (a piece slot must hold one row's read).
pub fn row_bytes_max(ext: &LayerExtents) -> u64 {
    ext.layers
        .iter()
        .flatten()
        .flat_map(|e| e.tensors.iter().map(move |s| (e, s)))
        .filter(|(_, s)| PIECE_ORDER.contains(&s.role))
        .filter_map(|(e, s)| matrix_on_disk(e, s))
        .map(|m| m.row_bytes)
        .max()
        .unwrap_or(0)
}

/// One matrix of a layer as it lies on disk.
struct OnDisk<'e> {
    role: TensorRole,
    ty: GgmlType,
    row_elems: usize,
    file: usize,
    m: MatrixOnDisk,
    name: &'e str,
}

/// Layer `layer`'s matrices as pieces whose reads fit `slot_bytes`, in [`PIECE_ORDER`]:
/// consecutive matrices that lie together in one file share a piece while its read fits and
/// wastes at most [`GROUP_WASTE_MAX`]; a matrix that does not fit alone is cut into runs of
/// rows. An error names the matrix that cannot be cut (missing, not whole rows, or a row too
/// long for a slot).
pub fn layer_pieces(
    ext: &LayerExtents,
    layer: usize,
    slot_bytes: u64,
) -> Result<Vec<Piece>, String> {
    let align = ext.alignment_bytes;
    let slot = slot_bytes / align * align;
    let mut mats = Vec::with_capacity(PIECE_ORDER.len());
    for role in PIECE_ORDER {
        let Some((e, s)) = ext.find(Some(layer), role) else {
            return Err(format!("layer {layer} has no {role:?} matrix"));
        };
        let m = matrix_on_disk(e, s)
            .ok_or_else(|| format!("tensor {} does not split into whole rows", s.name))?;
        mats.push(OnDisk {
            role,
            ty: s.ty,
            row_elems: s.dims.first().copied().unwrap_or(1) as usize,
            file: e.file,
            m,
            name: &s.name,
        });
    }
    // The read covering matrices `run`, if one slot holds it and it wastes little.
    let group_read = |run: &[OnDisk]| -> Option<RowRange> {
        let file = run.first()?.file;
        let lo = run.iter().map(|d| d.m.offset).min()?;
        let hi = run.iter().map(|d| d.m.offset + d.m.payload_bytes()).max()?;
        let used: u64 = run.iter().map(|d| d.m.payload_bytes()).sum();
        let read = RowRange::covering(lo, hi - lo, align);
        let ok = run.iter().all(|d| d.file == file)
            && read.len <= slot
            && hi - lo <= used + GROUP_WASTE_MAX;
        ok.then_some(read)
    };
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < mats.len() {
        // The longest run from i that one read serves (q, k, v and o lie together in the
        // file, in another order, so a shorter run may waste more than a longer one).
        let grouped = (i + 1..=mats.len())
            .rev()
            .find_map(|j| group_read(&mats[i..j]).map(|read| (j, read)));
        if let Some((j, read)) = grouped {
            let lo = read.offset + read.head_bytes;
            let items = mats[i..j]
                .iter()
                .map(|d| Item {
                    role: d.role,
                    ty: d.ty,
                    row_elems: d.row_elems,
                    row0: 0,
                    n_rows: d.m.n_rows as usize,
                    offset: (d.m.offset - lo) as usize,
                    len: d.m.payload_bytes() as usize,
                })
                .collect();
            pieces.push(Piece {
                file: mats[i].file,
                range: read,
                items,
            });
            i = j;
            continue;
        }
        let d = &mats[i];
        let ranges = split_rows(&d.m, align, slot);
        if ranges.is_empty() {
            return Err(format!(
                "a row of tensor {} ({} bytes) does not fit a {slot_bytes}-byte ring slot",
                d.name, d.m.row_bytes
            ));
        }
        pieces.extend(ranges.into_iter().map(|range| Piece {
            file: d.file,
            range,
            items: vec![Item {
                role: d.role,
                ty: d.ty,
                row_elems: d.row_elems,
                row0: range.row0,
                n_rows: range.n_rows,
                offset: 0,
                len: range.payload_len as usize,
            }],
        }));
        i += 1;
    }
    Ok(pieces)
}

/// Every tensor of layer `layer` that is not a piece matrix (norms, biases), as one aligned
/// read each: its role, its file and the read.
pub fn layer_vectors(ext: &LayerExtents, layer: usize) -> Vec<(TensorRole, usize, RowRange)> {
    let align = ext.alignment_bytes;
    let Some(extents) = ext.layers.get(layer) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in extents {
        for s in e.tensors.iter().filter(|s| !PIECE_ORDER.contains(&s.role)) {
            let start = e.payload_offset + s.offset_in_payload;
            out.push((s.role, e.file, RowRange::covering(start, s.n_bytes, align)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(role: TensorRole, dims: &[u64], offset: u64, n_bytes: u64) -> TensorSlice {
        TensorSlice {
            role,
            name: format!("{role:?}"),
            ty: GgmlType::Q8_0,
            dims: dims.to_vec(),
            offset_in_payload: offset,
            n_bytes,
        }
    }

    /// One layer in the file order llama.cpp writes (norm, FFN, then attention), Q8_0 rows of
    /// 64 elements (68 bytes).
    fn layer() -> LayerExtents {
        layer_with_gate_rows(64)
    }

    /// [`layer`] with a gate of `gate_rows` rows (the tensors after it move along).
    fn layer_with_gate_rows(gate_rows: u64) -> LayerExtents {
        use TensorRole as R;
        let rows = |n: u64| 68 * n;
        let mut at = 0;
        let mut t = |role, dims: &[u64], bytes: u64| {
            let s = slice(role, dims, at, bytes);
            at += bytes.next_multiple_of(32);
            s
        };
        let tensors = vec![
            t(R::AttnNorm, &[64], 256),
            t(R::Down, &[64, 64], rows(64)),
            t(R::Gate, &[64, gate_rows], rows(gate_rows)),
            t(R::Up, &[64, 64], rows(64)),
            t(R::FfnNorm, &[64], 256),
            t(R::K, &[64, 16], rows(16)),
            t(R::O, &[64, 64], rows(64)),
            t(R::Q, &[64, 64], rows(64)),
            t(R::V, &[64, 16], rows(16)),
        ];
        let payload_len = at;
        LayerExtents {
            alignment_bytes: 4096,
            layers: vec![vec![Extent {
                file: 0,
                offset: 8192,
                len: (8192 + 100 + payload_len).next_multiple_of(4096) - 8192,
                payload_offset: 8192 + 100,
                payload_len,
                tensors,
            }]],
            globals: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Every item of `pieces` in order: (role, first row, rows, file offset of its bytes).
    fn items(pieces: &[Piece]) -> Vec<(TensorRole, usize, usize, u64)> {
        let mut out = Vec::new();
        for p in pieces {
            let payload = p.range.offset + p.range.head_bytes;
            let mut end = 0;
            for it in &p.items {
                out.push((it.role, it.row0, it.n_rows, payload + it.offset as u64));
                assert_eq!(it.len, 68 * it.n_rows, "{:?}", it.role);
                assert_eq!((it.ty, it.row_elems), (GgmlType::Q8_0, 64));
                end = end.max(it.offset + it.len);
            }
            assert_eq!(
                p.range.payload_len, end as u64,
                "the read ends with its last item"
            );
            assert!(p.range.offset % 4096 == 0 && p.range.len % 4096 == 0);
        }
        out
    }

    #[test]
    fn pieces_cover_every_matrix_row_in_use_order() {
        let ext = layer();
        for slot in [8192, 16384, 1 << 20] {
            let pieces = layer_pieces(&ext, 0, slot).expect("pieces");
            let mut want = Vec::new();
            for role in PIECE_ORDER {
                let (e, s) = ext.find(Some(0), role).expect("slice");
                let at = e.payload_offset + s.offset_in_payload;
                want.push((role, s.dims[1] as usize, at));
            }
            let mut next = want
                .iter()
                .map(|&(r, _, _)| (r, 0usize))
                .collect::<Vec<_>>();
            let mut k = 0;
            for (role, row0, n_rows, at) in items(&pieces) {
                while next[k].0 != role {
                    assert_eq!(next[k].1, want[k].1, "{:?} rows all taken", next[k].0);
                    k += 1;
                }
                assert_eq!(row0, next[k].1, "{role:?} rows are consecutive");
                assert_eq!(at, want[k].2 + 68 * row0 as u64);
                next[k].1 += n_rows;
            }
            assert_eq!(k, PIECE_ORDER.len() - 1);
            assert_eq!(next[k].1, want[k].1);
            assert!(pieces.iter().all(|p| p.range.len <= slot), "slot {slot}");
        }
        assert_eq!(row_bytes_max(&ext), 68);
    }

    #[test]
    fn matrices_that_lie_together_share_a_piece_and_large_ones_are_cut() {
        let ext = layer();
        // 16 KiB slots: q, k, v and o (4352 + 1088 + 1088 + 4352 bytes, stored k, o, q, v) are
        // one read, gate, up and down (stored down, gate, up) another; the FFN norm between
        // the two groups in the file joins neither.
        let pieces = layer_pieces(&ext, 0, 16384).expect("pieces");
        let roles: Vec<Vec<TensorRole>> = pieces
            .iter()
            .map(|p| p.items.iter().map(|i| i.role).collect())
            .collect();
        use TensorRole as R;
        assert_eq!(
            roles,
            [vec![R::Q, R::K, R::V, R::O], vec![R::Gate, R::Up, R::Down]]
        );
        // 8 KiB slots: neither group's read fits (10.6 and 12.8 KB), every matrix's does: each
        // alone, whole.
        let pieces = layer_pieces(&ext, 0, 8192).expect("pieces");
        let roles: Vec<Vec<TensorRole>> = pieces
            .iter()
            .map(|p| p.items.iter().map(|i| i.role).collect())
            .collect();
        assert_eq!(roles, PIECE_ORDER.map(|r| vec![r]));
        assert!(pieces.iter().all(|p| p.items[0].row0 == 0));
    }

    #[test]
    fn a_matrix_larger_than_a_slot_is_cut_into_runs_of_rows() {
        // A gate of 512 rows (34.8 KB): an 8 KiB slot takes at most 60 of its rows.
        let ext = layer_with_gate_rows(512);
        let pieces = layer_pieces(&ext, 0, 8192).expect("pieces");
        let gate: Vec<&Item> = pieces
            .iter()
            .flat_map(|p| &p.items)
            .filter(|i| i.role == TensorRole::Gate)
            .collect();
        assert!(gate.len() >= 5, "{} pieces", gate.len());
        let mut row = 0;
        for it in gate {
            assert_eq!(it.row0, row);
            row += it.n_rows;
        }
        assert_eq!(row, 512);
        assert!(pieces.iter().all(|p| p.range.len <= 8192));
    }

    #[test]
    fn a_row_longer_than_a_slot_is_an_error_naming_it() {
        let err = layer_pieces(&layer(), 0, 64).expect_err("too small");
        assert!(err.contains("Q") && err.contains("68 bytes"), "{err}");
    }

    #[test]
    fn vectors_are_the_layer_tensors_that_are_not_pieces() {
        let ext = layer();
        let v = layer_vectors(&ext, 0);
        let roles: Vec<_> = v.iter().map(|(r, _, _)| *r).collect();
        assert_eq!(roles, [TensorRole::AttnNorm, TensorRole::FfnNorm]);
        for (role, file, r) in v {
            let (e, s) = ext.find(Some(0), role).expect("slice");
            assert_eq!(file, 0);
            assert_eq!(
                r.offset + r.head_bytes,
                e.payload_offset + s.offset_in_payload
            );
            assert_eq!(r.payload_len, 256);
        }
    }
}

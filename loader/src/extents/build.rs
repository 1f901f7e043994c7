//! Building [`LayerExtents`]: sort tensors by position, cut runs, round each run out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Extent, ExtentsError, ExtentsErrorKind, LayerExtents, TensorSlice};
use crate::roles::{classify, TensorRole};
use crate::tensor::{TensorIndex, TensorInfo};

impl LayerExtents {
    /// Groups the tensors of `index` into extents for a model of `n_layer` layers, rounded to
    /// `alignment_bytes` (a power of two; see [`super::dio_alignment_for`]).
    ///
    /// Every layer below `n_layer` must have at least one known tensor; a tensor of a layer at
    /// or past `n_layer` is an error.
    pub fn build(
        index: &TensorIndex,
        n_layer: usize,
        alignment_bytes: u64,
    ) -> Result<LayerExtents, ExtentsError> {
        if !alignment_bytes.is_power_of_two() {
            let path = index.files.first().cloned().unwrap_or_default();
            return Err(ExtentsError {
                path,
                kind: ExtentsErrorKind::BadAlignment { alignment_bytes },
            });
        }
        let mut order: Vec<&TensorInfo> = index.tensors.iter().collect();
        order.sort_by_key(|t| (t.file, t.offset, t.n_bytes));
        let mut b = Builder {
            index,
            alignment_bytes,
            layers: BTreeMap::new(),
            globals: Vec::new(),
            run: None,
        };
        let mut unknown = Vec::new();
        for t in order {
            match classify(&t.name) {
                None => {
                    b.close_run()?;
                    unknown.push(t.name.clone());
                }
                Some((None, role)) => {
                    b.close_run()?;
                    let e = b.extent(&[(t, role)])?;
                    b.globals.push(e);
                }
                Some((Some(layer), _)) if layer >= n_layer => {
                    let kind = ExtentsErrorKind::LayerOutOfRange {
                        name: t.name.clone(),
                        layer,
                        n_layer,
                    };
                    return Err(ExtentsError {
                        path: b.path_of(t),
                        kind,
                    });
                }
                Some((Some(layer), role)) => b.extend_run(layer, t, role)?,
            }
        }
        b.close_run()?;
        let layers = into_dense(b.layers, n_layer, index)?;
        Ok(LayerExtents {
            alignment_bytes,
            layers,
            globals: b.globals,
            unknown,
        })
    }
}

/// A layer's uninterrupted run of tensors in one file.
type Run<'a> = (usize, Vec<(&'a TensorInfo, TensorRole)>);

/// State while walking the tensors in file order.
struct Builder<'a> {
    index: &'a TensorIndex,
    alignment_bytes: u64,
    layers: BTreeMap<usize, Vec<Extent>>,
    globals: Vec<Extent>,
    run: Option<Run<'a>>,
}

impl<'a> Builder<'a> {
    fn path_of(&self, t: &TensorInfo) -> PathBuf {
        self.index.files.get(t.file).cloned().unwrap_or_default()
    }

    /// Adds a layer tensor to the open run, or closes that run and opens a new one.
    fn extend_run(
        &mut self,
        layer: usize,
        t: &'a TensorInfo,
        role: TensorRole,
    ) -> Result<(), ExtentsError> {
        match &mut self.run {
            Some((l, tensors)) if *l == layer && tensors[0].0.file == t.file => {
                tensors.push((t, role))
            }
            _ => {
                self.close_run()?;
                self.run = Some((layer, vec![(t, role)]));
            }
        }
        Ok(())
    }

    /// Turns the open run, if any, into an extent of its layer.
    fn close_run(&mut self) -> Result<(), ExtentsError> {
        if let Some((layer, tensors)) = self.run.take() {
            let e = self.extent(&tensors)?;
            self.layers.entry(layer).or_default().push(e);
        }
        Ok(())
    }

    /// One extent covering `tensors` (sorted by offset, all in one file), rounded out.
    fn extent(&self, tensors: &[(&TensorInfo, TensorRole)]) -> Result<Extent, ExtentsError> {
        let first = tensors[0].0;
        let payload_offset = first.offset;
        let overflow = |t: &TensorInfo| ExtentsError {
            path: self.path_of(t),
            kind: ExtentsErrorKind::Overflow {
                name: t.name.clone(),
            },
        };
        let mut payload_end = payload_offset;
        for (t, _) in tensors {
            payload_end =
                payload_end.max(t.offset.checked_add(t.n_bytes).ok_or_else(|| overflow(t))?);
        }
        let mask = self.alignment_bytes - 1;
        let offset = payload_offset & !mask;
        let end = payload_end
            .checked_add(mask)
            .ok_or_else(|| overflow(first))?
            & !mask;
        let slices = tensors
            .iter()
            .map(|(t, role)| TensorSlice {
                role: *role,
                name: t.name.clone(),
                ty: t.ty,
                dims: t.dims.clone(),
                offset_in_payload: t.offset - payload_offset,
                n_bytes: t.n_bytes,
            })
            .collect();
        Ok(Extent {
            file: first.file,
            offset,
            len: end - offset,
            payload_offset,
            payload_len: payload_end - payload_offset,
            tensors: slices,
        })
    }
}

/// The per-layer map as a vector, checking that no layer below `n_layer` is empty.
fn into_dense(
    layers: BTreeMap<usize, Vec<Extent>>,
    n_layer: usize,
    index: &TensorIndex,
) -> Result<Vec<Vec<Extent>>, ExtentsError> {
    if let Some(missing) = (0..n_layer).find(|l| !layers.contains_key(l)) {
        let path = index.files.first().cloned().unwrap_or_default();
        let kind = ExtentsErrorKind::EmptyLayer { layer: missing };
        return Err(ExtentsError { path, kind });
    }
    Ok(layers.into_values().collect())
}

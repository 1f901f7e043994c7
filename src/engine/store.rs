//! Where the weights come from during a sweep: resident extents (read once through the
//! runtime into RAM and held) and streamed extents (read every token through the prefetcher).
//!
//! Each resident global tensor (embeddings, output, output norm) gets a ring of one slot of its
//! own size, resident layers share one ring sized to their largest extent, and streamed layers
//! and a streamed LM head's row ranges share the prefetch ring the planner sized, in that sweep
//! order. Embeddings that are not resident are read row by row ([`RowReader`]). Nothing here is
//! mapped: every byte comes through O_DIRECT reads.

use sluice_loader::extents::{Extent as LoaderExtent, LayerExtents, TensorSlice};
use sluice_loader::model::ModelFiles;
use std::sync::Arc;

use sluice_loader::roles::TensorRole;
use sluice_runtime::{
    Extent, FileId, HostRing, Prefetcher, Reader, ReaderConfig, SlabRegistrar, SlotGuard,
};

use super::pieces::{layer_pieces, layer_vectors, matrix_on_disk, Piece};
use super::planner::Plan;
use super::row_reader::RowReader;
use super::rows::{MatrixOnDisk, RowRange};
use crate::cpu::rows16::{self, RepackError};
use crate::cpu::{Isa, ThreadPool};
use crate::model::weights::interleave_jobs;
use std::sync::{Mutex, PoisonError};

/// A global matrix (the embeddings or the LM head) as it lies in the model's files.
#[derive(Clone, Copy, Debug)]
pub struct GlobalMatrix<'m> {
    /// Its extent in [`LayerExtents::globals`] (one tensor per global extent).
    pub extent: &'m LoaderExtent,
    pub slice: &'m TensorSlice,
    /// Where its rows lie in the extent's file.
    pub on_disk: MatrixOnDisk,
}

impl<'m> GlobalMatrix<'m> {
    /// The global tensor of `role`, if the model has it and its bytes split into whole rows.
    pub fn find(ext: &'m LayerExtents, role: TensorRole) -> Option<GlobalMatrix<'m>> {
        let (extent, slice) = ext.find(None, role)?;
        Some(GlobalMatrix {
            extent,
            slice,
            on_disk: matrix_on_disk(extent, slice)?,
        })
    }

    /// The LM head: the output matrix, or the embeddings when they are tied.
    pub fn head(ext: &'m LayerExtents) -> Option<GlobalMatrix<'m>> {
        Self::find(ext, TensorRole::Output).or_else(|| Self::find(ext, TensorRole::TokenEmbd))
    }

    /// Whether the LM head is the token embedding matrix (the model has no output matrix).
    pub fn tied(ext: &LayerExtents) -> bool {
        ext.find(None, TensorRole::Output).is_none()
    }

    /// Elements per row (`ne[0]`).
    pub fn row_elems(&self) -> usize {
        self.slice.dims.first().copied().unwrap_or(1) as usize
    }
}

/// The runtime extent of one row range of a matrix in file `file`.
fn range_extent(r: &RowRange, file: FileId) -> Extent {
    Extent {
        file,
        offset: r.offset,
        len: r.len,
        payload_offset: r.head_bytes,
        payload_len: r.payload_len,
    }
}

/// Whether the plan keeps global extent `e` resident: the head and the embeddings as planned,
/// the small vectors always.
fn global_is_resident(e: &LoaderExtent, plan: &Plan) -> bool {
    let has = |role| e.slice(role).is_some();
    if has(TensorRole::Output) {
        plan.head_resident
    } else if has(TensorRole::TokenEmbd) {
        plan.embd_resident
    } else {
        true
    }
}

/// Converts a loader extent into the runtime's shape (payload offset relative to the range).
pub fn runtime_extent(e: &LoaderExtent, files: &[FileId]) -> Extent {
    Extent {
        file: files[e.file],
        offset: e.offset,
        len: e.len,
        payload_offset: e.head_bytes(),
        payload_len: e.payload_len,
    }
}

/// A prefetcher over the extents `sweep` lists for the reader's file ids, with a ring of
/// `slots` slots of `slot_bytes` each.
fn prefetcher_for(
    model: &ModelFiles,
    sweep: impl FnOnce(&[FileId]) -> Vec<Extent>,
    (slots, slot_bytes): (usize, u64),
    depth: usize,
    cfg: &ReaderConfig,
    registrar: Option<&Arc<dyn SlabRegistrar>>,
) -> sluice_runtime::Result<Prefetcher> {
    let ring = match registrar {
        Some(r) => HostRing::with_registrar(slots, slot_bytes as usize, r.clone())?,
        None => HostRing::new(slots, slot_bytes as usize)?,
    };
    let reader = Reader::new(ring, cfg)?;
    let mut files = Vec::with_capacity(model.index.files.len());
    for path in &model.index.files {
        files.push(reader.open_file(path)?);
    }
    let sweep = sweep(&files);
    Prefetcher::new(reader, sweep, depth)
}

/// The streamed sweep: each streamed layer whole (its extents) or in row pieces, then the
/// head's row ranges.
fn streamed_sweep(
    ext: &LayerExtents,
    plan: &Plan,
    pieces: &[Vec<Piece>],
    head: Option<(&GlobalMatrix<'_>, &[RowRange])>,
    files: &[FileId],
) -> Vec<Extent> {
    let mut sweep = Vec::new();
    for (layer, extents) in ext.layers.iter().enumerate() {
        if plan.resident[layer] {
            continue;
        }
        if plan.pieces {
            let ranges = pieces[layer]
                .iter()
                .map(|p| range_extent(&p.range, files[p.file]));
            sweep.extend(ranges);
        } else {
            sweep.extend(extents.iter().map(|e| runtime_extent(e, files)));
        }
    }
    if let Some((m, ranges)) = head {
        let file = files[m.extent.file];
        sweep.extend(ranges.iter().map(|r| range_extent(r, file)));
    }
    sweep
}

/// A prefetcher that reads `extents` once, each into a slot of its own.
fn resident_prefetcher(
    model: &ModelFiles,
    extents: &[&LoaderExtent],
    cfg: &ReaderConfig,
    registrar: Option<&Arc<dyn SlabRegistrar>>,
) -> sluice_runtime::Result<Prefetcher> {
    let slot_bytes = extents.iter().map(|e| e.len).max().unwrap_or(0);
    let n = extents.len();
    let sweep = |files: &[FileId]| extents.iter().map(|e| runtime_extent(e, files)).collect();
    prefetcher_for(model, sweep, (n, slot_bytes), n, cfg, registrar)
}

/// A prefetcher that reads the norms and biases of the piece-streamed layers once, each into
/// a slot of its own; their roles per layer (empty for other layers), in sweep order.
fn vector_prefetcher(
    model: &ModelFiles,
    plan: &Plan,
    cfg: &ReaderConfig,
) -> sluice_runtime::Result<(Option<Prefetcher>, Vec<Vec<TensorRole>>)> {
    let ext = &model.extents;
    let mut roles = vec![Vec::new(); ext.layers.len()];
    let mut reads = Vec::new();
    for layer in (0..ext.layers.len()).filter(|&l| plan.pieces && !plan.resident[l]) {
        for (role, file, range) in layer_vectors(ext, layer) {
            roles[layer].push(role);
            reads.push((file, range));
        }
    }
    if reads.is_empty() {
        return Ok((None, roles));
    }
    let n = reads.len();
    let slot_bytes = reads.iter().map(|(_, r)| r.len).max().unwrap_or(0);
    let sweep = |files: &[FileId]| {
        let each = reads.iter().map(|(f, r)| range_extent(r, files[*f]));
        each.collect()
    };
    let p = prefetcher_for(model, sweep, (n, slot_bytes), n, cfg, None)?;
    Ok((Some(p), roles))
}

/// Where each layer's bytes live.
pub struct WeightStore {
    /// Resident global extents (their index in [`LayerExtents::globals`]) and a prefetcher for
    /// each, read once.
    globals: Vec<(usize, Prefetcher)>,
    /// Resident layers' extents in layer order, read once; `None` when no layer is resident.
    resident: Option<Prefetcher>,
    /// Streamed layers' extents (or their row pieces) in layer order, then a streamed head's
    /// row ranges, read every token.
    pub streamer: Option<Prefetcher>,
    /// `pieces[layer]`: the row pieces a streamed layer arrives in (empty when it is resident
    /// or streams whole).
    pieces: Vec<Vec<Piece>>,
    /// The norms and biases of piece-streamed layers, read once.
    vectors: Option<Prefetcher>,
    /// `vector_roles[layer]`: the roles of layer's vectors, in the order `vectors` reads them.
    vector_roles: Vec<Vec<TensorRole>>,
}

/// The resident bytes, held for one generation: guards on every resident slot.
pub struct Held<'a> {
    /// Resident global extents: their index in [`LayerExtents::globals`] and their payload.
    pub globals: Vec<(usize, SlotGuard<'a>)>,
    /// Payloads of resident layers' extents, in sweep order.
    pub layers: Vec<SlotGuard<'a>>,
    /// Whether [`Held::interleave`] rearranged the resident layers' matrices.
    pub interleaved: bool,
    /// `vectors[layer]`: the norms and biases of a piece-streamed layer, by role (empty for
    /// other layers).
    pub vectors: Vec<Vec<(TensorRole, SlotGuard<'a>)>>,
}

impl Held<'_> {
    /// Rearranges every resident layer's matrices and a resident LM head that the 16-row
    /// layout takes, in place (`cpu::rows16`), on the pool's threads, for kernels that read
    /// them faster so; returns the bytes rearranged. Streamed layers and head ranges stay as
    /// read: they arrive anew every sweep. Tied embeddings are read through
    /// `forward::ResidentRows`, which knows.
    pub fn interleave(
        &mut self,
        ext: &LayerExtents,
        resident: &[bool],
        pool: &ThreadPool,
    ) -> Result<u64, RepackError> {
        // The form the process's path reads; a path without one interleaves nothing.
        let Some(form) = Isa::current().rows16_form() else {
            return Ok(0);
        };
        let mut jobs = Vec::new();
        let head = GlobalMatrix::head(ext);
        let held_head = head.and_then(|m| {
            let guard = self
                .globals
                .iter_mut()
                .find_map(|(i, g)| std::ptr::eq(ext.globals.get(*i)?, m.extent).then_some(g))?;
            Some((m, guard))
        });
        if let Some((m, guard)) = held_head {
            let (s, n_rows) = (m.slice, m.on_disk.n_rows as usize);
            let start = s.offset_in_payload as usize;
            let bytes = guard.bytes_mut().get_mut(start..start + s.n_bytes as usize);
            if let Some(bytes) = bytes.filter(|_| rows16::interleaves(Isa::current(), s.ty, n_rows))
            {
                jobs.push((s.ty, n_rows, bytes));
            }
        }
        let mut guards = self.layers.iter_mut();
        for (extents, _) in ext.layers.iter().zip(resident).filter(|(_, &r)| r) {
            let payloads: Vec<&mut [u8]> = guards
                .by_ref()
                .take(extents.len())
                .map(SlotGuard::bytes_mut)
                .collect();
            jobs.extend(interleave_jobs(extents, payloads));
        }
        let done = jobs.iter().map(|(_, _, b)| b.len() as u64).sum();
        let queue = Mutex::new(jobs);
        let failed = Mutex::new(None);
        pool.run(pool.n_threads(), |_| {
            let mut scratch = Vec::new();
            loop {
                let job = queue.lock().unwrap_or_else(PoisonError::into_inner).pop();
                let Some((ty, n_rows, bytes)) = job else {
                    break;
                };
                if let Err(e) = rows16::repack(form, ty, n_rows, bytes, &mut scratch) {
                    failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(e);
                }
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
            return Err(e);
        }
        self.interleaved = true;
        Ok(done)
    }
}

impl WeightStore {
    /// Builds the rings and readers the plan asks for; nothing is read until [`hold`](Self::hold)
    /// and the first streamed layer. A `registrar` (a GPU backend) page-locks the layer rings,
    /// whose slots the device copies from every token.
    pub fn new(
        model: &ModelFiles,
        plan: &Plan,
        cfg: &ReaderConfig,
        registrar: Option<&Arc<dyn SlabRegistrar>>,
    ) -> sluice_runtime::Result<WeightStore> {
        let ext: &LayerExtents = &model.extents;
        let mut globals = Vec::with_capacity(ext.globals.len());
        for (i, g) in ext.globals.iter().enumerate() {
            if global_is_resident(g, plan) {
                globals.push((i, resident_prefetcher(model, &[g], cfg, None)?));
            }
        }
        let layer_extents = |resident: bool| -> Vec<&LoaderExtent> {
            ext.layers
                .iter()
                .zip(&plan.resident)
                .filter(|(_, &r)| r == resident)
                .flat_map(|(l, _)| l.iter())
                .collect()
        };
        let res = layer_extents(true);
        let resident = if res.is_empty() {
            None
        } else {
            Some(resident_prefetcher(model, &res, cfg, registrar)?)
        };
        let streamed = layer_extents(false);
        let head = GlobalMatrix::head(ext)
            .filter(|_| !plan.head_ranges.is_empty())
            .map(|m| (m, plan.head_ranges.as_slice()));
        let mut pieces = vec![Vec::new(); ext.layers.len()];
        for layer in (0..ext.layers.len()).filter(|&l| plan.pieces && !plan.resident[l]) {
            pieces[layer] =
                layer_pieces(ext, layer, plan.slot_bytes).map_err(sluice_runtime::Error::Config)?;
        }
        let streamer = if streamed.is_empty() && head.is_none() {
            None
        } else {
            let head = head.as_ref().map(|(m, r)| (m, *r));
            let sweep = |files: &[FileId]| streamed_sweep(ext, plan, &pieces, head, files);
            Some(prefetcher_for(
                model,
                sweep,
                (plan.ring_slots, plan.slot_bytes),
                plan.depth,
                cfg,
                registrar,
            )?)
        };
        let (vectors, vector_roles) = vector_prefetcher(model, plan, cfg)?;
        Ok(WeightStore {
            globals,
            resident,
            streamer,
            pieces,
            vectors,
            vector_roles,
        })
    }

    /// Reads every resident extent and holds it. The guards do not borrow the store, so the
    /// engine keeps them from one batch to the next: resident weights are read (and
    /// rearranged) once, and their prefetchers, every slot held, read nothing more.
    pub fn hold(&self) -> sluice_runtime::Result<Held<'static>> {
        let mut globals = Vec::with_capacity(self.globals.len());
        for (i, p) in &self.globals {
            globals.push((*i, p.next_owned()?));
        }
        let mut layers = Vec::new();
        if let Some(p) = &self.resident {
            layers.reserve_exact(p.sweep().len());
            for _ in 0..p.sweep().len() {
                layers.push(p.next_owned()?);
            }
        }
        let mut vectors = Vec::with_capacity(self.vector_roles.len());
        for roles in &self.vector_roles {
            let mut layer = Vec::with_capacity(roles.len());
            for &role in roles {
                let Some(p) = &self.vectors else {
                    unreachable!("vector roles imply their prefetcher")
                };
                layer.push((role, p.next_owned()?));
            }
            vectors.push(layer);
        }
        Ok(Held {
            globals,
            layers,
            interleaved: false,
            vectors,
        })
    }

    /// The row pieces streamed layer `layer` arrives in; `None` when it is resident or
    /// streams whole.
    pub fn pieces(&self, layer: usize) -> Option<&[Piece]> {
        self.pieces
            .get(layer)
            .filter(|p| !p.is_empty())
            .map(Vec::as_slice)
    }

    /// Rows of the largest piece of any streamed layer (0 when none streams in pieces).
    pub fn piece_rows_max(&self) -> usize {
        let items = self.pieces.iter().flatten().flat_map(|p| &p.items);
        let rows = items.map(|i| i.n_rows);
        rows.max().unwrap_or(0)
    }

    /// Bytes read from disk so far by every reader.
    pub fn bytes_read(&self) -> u64 {
        let g: u64 = self.globals.iter().map(|(_, p)| p.stats().bytes_read).sum();
        let r = self.resident.as_ref().map_or(0, |p| p.stats().bytes_read);
        g + r + self.streamed_bytes_read()
    }

    /// Bytes read by the streaming prefetcher.
    pub fn streamed_bytes_read(&self) -> u64 {
        self.streamer.as_ref().map_or(0, |p| p.stats().bytes_read)
    }

    /// Bytes of the streaming ring's slab (0 when nothing streams).
    pub fn ring_bytes(&self) -> u64 {
        self.streamer
            .as_ref()
            .map_or(0, |p| p.reader().ring().slab_bytes() as u64)
    }

    /// The streaming reader's configuration, as it runs (`None` when nothing streams).
    pub fn streaming_reader(&self) -> Option<ReaderConfig> {
        self.streamer.as_ref().map(|p| *p.reader().config())
    }

    /// The on-demand embedding reader the plan needs, if the embeddings are not resident.
    pub fn embedding_reader(model: &ModelFiles, plan: &Plan) -> std::io::Result<Option<RowReader>> {
        if plan.embd_resident {
            return Ok(None);
        }
        let Some(m) = GlobalMatrix::find(&model.extents, TensorRole::TokenEmbd) else {
            return Ok(None);
        };
        let path = &model.index.files[m.extent.file];
        let align = model.extents.alignment_bytes;
        RowReader::open(path, m.on_disk, m.slice.ty, align).map(Some)
    }
}

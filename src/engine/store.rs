//! Where the weights come from during a sweep: resident extents (read once through the
//! runtime into RAM and held) and streamed extents (read every token through the prefetcher).
//!
//! Each global tensor (embeddings, output, output norm) gets a ring of one slot of its own
//! size, resident layers share one ring sized to their largest extent, and streamed layers
//! share the prefetch ring the planner sized. Nothing here is mapped: every byte comes through
//! `sluice_runtime`'s O_DIRECT readers.

use sluice_loader::extents::{Extent as LoaderExtent, LayerExtents};
use sluice_loader::model::ModelFiles;
use std::sync::Arc;

use sluice_runtime::{
    Extent, FileId, HostRing, Prefetcher, Reader, ReaderConfig, SlabRegistrar, SlotGuard,
};

use super::planner::Plan;

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

/// A prefetcher over a fixed list of extents, with a ring of exactly that many slots.
fn prefetcher_for(
    model: &ModelFiles,
    extents: &[&LoaderExtent],
    slots: usize,
    depth: usize,
    cfg: &ReaderConfig,
    registrar: Option<&Arc<dyn SlabRegistrar>>,
) -> sluice_runtime::Result<Prefetcher> {
    let slot_bytes = extents.iter().map(|e| e.len).max().unwrap_or(0) as usize;
    let ring = match registrar {
        Some(r) => HostRing::with_registrar(slots, slot_bytes, r.clone())?,
        None => HostRing::new(slots, slot_bytes)?,
    };
    let reader = Reader::new(ring, cfg)?;
    let mut files = Vec::with_capacity(model.index.files.len());
    for path in &model.index.files {
        files.push(reader.open_file(path)?);
    }
    let sweep = extents.iter().map(|e| runtime_extent(e, &files)).collect();
    Prefetcher::new(reader, sweep, depth)
}

/// Where each layer's bytes live.
pub struct WeightStore {
    /// One prefetcher per global extent, read once.
    globals: Vec<Prefetcher>,
    /// Resident layers' extents in layer order, read once; `None` when no layer is resident.
    resident: Option<Prefetcher>,
    /// Streamed layers' extents in layer order, read every token.
    pub streamer: Option<Prefetcher>,
}

/// The resident bytes, held for one generation: guards on every resident slot.
pub struct Held<'a> {
    /// Payload of each global extent, in `LayerExtents::globals` order.
    pub globals: Vec<SlotGuard<'a>>,
    /// Payloads of resident layers' extents, in sweep order.
    pub layers: Vec<SlotGuard<'a>>,
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
        for g in &ext.globals {
            globals.push(prefetcher_for(model, &[g], 1, 1, cfg, None)?);
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
            Some(prefetcher_for(
                model,
                &res,
                res.len(),
                res.len(),
                cfg,
                registrar,
            )?)
        };
        let streamed = layer_extents(false);
        let streamer = if streamed.is_empty() {
            None
        } else {
            Some(prefetcher_for(
                model,
                &streamed,
                plan.ring_slots,
                plan.depth,
                cfg,
                registrar,
            )?)
        };
        Ok(WeightStore {
            globals,
            resident,
            streamer,
        })
    }

    /// Reads (once per call) every resident extent and holds it.
    pub fn hold(&self) -> sluice_runtime::Result<Held<'_>> {
        let mut globals = Vec::with_capacity(self.globals.len());
        for p in &self.globals {
            globals.push(p.next()?);
        }
        let mut layers = Vec::new();
        if let Some(p) = &self.resident {
            layers.reserve_exact(p.sweep().len());
            for _ in 0..p.sweep().len() {
                layers.push(p.next()?);
            }
        }
        Ok(Held { globals, layers })
    }

    /// Bytes read from disk so far by every reader.
    pub fn bytes_read(&self) -> u64 {
        let g: u64 = self.globals.iter().map(|p| p.stats().bytes_read).sum();
        let r = self.resident.as_ref().map_or(0, |p| p.stats().bytes_read);
        g + r + self.streamed_bytes_read()
    }

    /// Bytes read by the streaming prefetcher.
    pub fn streamed_bytes_read(&self) -> u64 {
        self.streamer.as_ref().map_or(0, |p| p.stats().bytes_read)
    }
}

//! The executor: sweeps the layers in order for a batch of tokens, taking each layer's bytes
//! from where the planner put it (resident slots held for the generation, or the streaming
//! prefetcher) and computing on them in place while the next layers are being read.

use std::time::{Duration, Instant};

use sluice_loader::extents::LayerExtents;
use sluice_loader::model::ModelFiles;
use sluice_loader::roles::TensorRole;
use sluice_runtime::SlotGuard;
use thiserror::Error;

use super::store::{Held, WeightStore};
use crate::cpu::ThreadPool;
use crate::model::forward::{embed, forward_head, forward_layer, Config, ForwardError, RunState};
use crate::model::kv_cache::KvCache;
use crate::model::weights::{LayerWeights, Tensor, WeightError};

/// Most extents one layer may be split into (a layer straddling shards or interleaved with
/// foreign tensors); checked at load.
pub const EXTENTS_PER_LAYER_MAX: usize = 8;

/// A failure while running the model.
#[derive(Debug, Error)]
pub enum ExecError {
    #[error("reading weights: {0}")]
    Io(#[from] sluice_runtime::Error),
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error(transparent)]
    Weights(#[from] WeightError),
}

/// Time spent waiting for streamed layers, and computing.
#[derive(Clone, Copy, Debug, Default)]
pub struct SweepTimes {
    pub io_wait: Duration,
    pub compute: Duration,
}

/// The slices of one tensor of a global extent.
fn global_tensor<'a>(
    ext: &LayerExtents,
    held: &'a Held<'_>,
    role: TensorRole,
) -> Option<Tensor<'a>> {
    let (i, e) = ext
        .globals
        .iter()
        .enumerate()
        .find(|(_, e)| e.slice(role).is_some())?;
    let s = e.slice(role)?;
    let payload = held.globals.get(i)?.bytes();
    let start = s.offset_in_payload as usize;
    let bytes = payload.get(start..start + s.n_bytes as usize)?;
    let row_elems = s.dims.first().copied().unwrap_or(1) as usize;
    let n_rows = s.dims.iter().skip(1).product::<u64>() as usize;
    Some(Tensor {
        ty: s.ty,
        row_elems,
        n_rows,
        bytes,
    })
}

/// The global tensors the forward pass needs, viewed in held slots.
pub struct Globals<'a> {
    pub token_embd: Tensor<'a>,
    pub output_norm: Tensor<'a>,
    /// The LM head (the embeddings when tied).
    pub output: Tensor<'a>,
}

impl<'a> Globals<'a> {
    /// Finds the globals in the held slots.
    pub fn view(ext: &LayerExtents, held: &'a Held<'_>) -> Result<Globals<'a>, WeightError> {
        let get =
            |role| global_tensor(ext, held, role).ok_or(WeightError::Missing { layer: None, role });
        let token_embd = get(TensorRole::TokenEmbd)?;
        let output_norm = get(TensorRole::OutputNorm)?;
        let output = global_tensor(ext, held, TensorRole::Output).unwrap_or(token_embd);
        Ok(Globals {
            token_embd,
            output_norm,
            output,
        })
    }
}

/// Everything one sweep touches.
pub struct Sweep<'s, 'h> {
    pub model: &'s ModelFiles,
    pub cfg: &'s Config,
    pub resident: &'s [bool],
    pub store: &'s WeightStore,
    pub held: &'h Held<'h>,
    pub globals: &'h Globals<'h>,
    pub pool: &'s ThreadPool,
}

impl Sweep<'_, '_> {
    /// Runs `tokens` (at positions `pos0..`) through every layer and the LM head; the logits
    /// of the last token land in `st.logits`.
    pub fn run(
        &self,
        tokens: &[u32],
        pos0: usize,
        st: &mut RunState,
        cache: &mut KvCache,
        times: &mut SweepTimes,
    ) -> Result<(), ExecError> {
        let n = tokens.len();
        let started = Instant::now();
        let mut io_wait = Duration::ZERO;
        embed(self.cfg, &self.globals.token_embd, tokens, st)?;
        let mut resident_next = 0usize;
        for (layer, extents) in self.model.extents.layers.iter().enumerate() {
            let mut guards: [Option<SlotGuard<'_>>; EXTENTS_PER_LAYER_MAX] = Default::default();
            let mut payloads: [&[u8]; EXTENTS_PER_LAYER_MAX] = [&[]; EXTENTS_PER_LAYER_MAX];
            let k = extents.len();
            if self.resident[layer] {
                for (p, g) in payloads
                    .iter_mut()
                    .zip(&self.held.layers[resident_next..resident_next + k])
                {
                    *p = g.bytes();
                }
                resident_next += k;
            } else {
                let Some(streamer) = self.store.streamer.as_ref() else {
                    unreachable!("a streamed layer implies a streamer")
                };
                let waited = Instant::now();
                for g in guards.iter_mut().take(k) {
                    *g = Some(streamer.next()?);
                }
                io_wait += waited.elapsed();
                for (p, g) in payloads.iter_mut().zip(guards.iter()) {
                    if let Some(g) = g {
                        *p = g.bytes();
                    }
                }
            }
            let w = LayerWeights::view(layer, extents, &payloads[..k])?;
            forward_layer(self.cfg, &w, layer, pos0, n, st, cache, self.pool)?;
            drop(guards);
        }
        forward_head(
            self.cfg,
            &self.globals.output_norm,
            &self.globals.output,
            n,
            st,
            self.pool,
        )?;
        times.io_wait += io_wait;
        times.compute += started.elapsed().saturating_sub(io_wait);
        Ok(())
    }
}

/// Checks that no layer is split into more extents than the executor handles.
pub fn check_extent_counts(ext: &LayerExtents) -> Result<(), String> {
    for (i, l) in ext.layers.iter().enumerate() {
        if l.len() > EXTENTS_PER_LAYER_MAX {
            return Err(format!(
                "layer {i} is split into {} runs on disk; at most {EXTENTS_PER_LAYER_MAX} are supported",
                l.len()
            ));
        }
    }
    Ok(())
}

//! The executor: sweeps the layers in order for a batch of tokens, taking each layer's bytes
//! from where the planner put it (resident slots held for the generation, or the streaming
//! prefetcher) and computing on them in place while the next layers are being read.

use std::time::{Duration, Instant};

use sluice_loader::extents::LayerExtents;
use sluice_loader::model::ModelFiles;
use sluice_loader::roles::TensorRole;
use sluice_loader::GgmlType;
use sluice_runtime::{ReadSpan, SlotGuard};
use thiserror::Error;

use super::head_rows::HeadRows;
use super::layer_times::{RowRecord, SweepRecorder};
use super::rows::RowRange;
use super::store::{GlobalMatrix, Held, WeightStore};
use crate::cpu::{rows16, ThreadPool, WeightLayout};
use crate::model::forward::{
    embed, forward_head, forward_layer, head_input, head_rows, Config, EmbeddingRows, ForwardError,
    RunState,
};
use crate::model::kv_slabs::KvCaches;
use crate::model::segment::Segment;
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
    #[error("rearranging resident weights: {0}")]
    Interleave(#[from] crate::cpu::rows16::RepackError),
}

/// Time spent waiting for streamed layers, and computing.
#[derive(Clone, Copy, Debug, Default)]
pub struct SweepTimes {
    pub io_wait: Duration,
    pub compute: Duration,
}

/// The slices of one tensor of a held global extent; `interleaved`: [`Held::interleave`]
/// rearranged it (the LM head's matrix).
fn global_tensor<'a>(
    ext: &LayerExtents,
    held: &'a Held<'_>,
    role: TensorRole,
    interleaved: bool,
) -> Option<Tensor<'a>> {
    let (s, guard) = held
        .globals
        .iter()
        .find_map(|(i, g)| ext.globals.get(*i)?.slice(role).map(|s| (s, g)))?;
    let start = s.offset_in_payload as usize;
    let bytes = guard.bytes().get(start..start + s.n_bytes as usize)?;
    let row_elems = s.dims.first().copied().unwrap_or(1) as usize;
    let n_rows = s.dims.iter().skip(1).product::<u64>() as usize;
    Some(Tensor {
        ty: s.ty,
        row_elems,
        n_rows,
        bytes,
        layout: if interleaved && rows16::applies(s.ty, n_rows) {
            WeightLayout::Rows16
        } else {
            WeightLayout::File
        },
    })
}

/// The global tensors the forward pass needs, viewed in held slots.
pub struct Globals<'a> {
    pub output_norm: Tensor<'a>,
    /// The token embeddings, when resident (otherwise their rows are read on demand).
    pub token_embd: Option<Tensor<'a>>,
    /// The LM head (the embeddings when tied), when resident (otherwise it streams).
    pub output: Option<Tensor<'a>>,
}

impl<'a> Globals<'a> {
    /// Finds the resident globals in the held slots.
    pub fn view(ext: &LayerExtents, held: &'a Held<'_>) -> Result<Globals<'a>, WeightError> {
        let output_norm = global_tensor(ext, held, TensorRole::OutputNorm, false).ok_or(
            WeightError::Missing {
                layer: None,
                role: TensorRole::OutputNorm,
            },
        )?;
        let tied = GlobalMatrix::tied(ext);
        let token_embd = global_tensor(ext, held, TensorRole::TokenEmbd, held.interleaved && tied);
        let output = if !tied {
            global_tensor(ext, held, TensorRole::Output, held.interleaved)
        } else {
            token_embd
        };
        Ok(Globals {
            output_norm,
            token_embd,
            output,
        })
    }
}

/// The LM head when it streams: the shape of its rows and its row ranges, which the streamer
/// delivers after the last layer.
#[derive(Clone, Copy, Debug)]
pub struct StreamedHead<'s> {
    pub ty: GgmlType,
    pub row_elems: usize,
    pub ranges: &'s [RowRange],
}

/// What one sweep computes: the step's tokens, which sequence each run of them belongs to,
/// and the rows whose logits the head computes.
#[derive(Clone, Copy, Debug)]
pub struct StepBatch<'b> {
    /// Every token of the step, segment after segment.
    pub tokens: &'b [u32],
    /// The runs of `tokens`, one sequence each, sorted and tiling `tokens`.
    pub segs: &'b [Segment],
    /// The batch rows the head computes logits for, in the order they land in the run state.
    pub logit_rows: &'b [usize],
}

impl<'b> StepBatch<'b> {
    /// One sequence's `tokens` at `pos0` in KV slot 0, with the logits of the last token.
    pub fn alone(tokens: &'b [u32], seg: &'b [Segment; 1], last: &'b [usize; 1]) -> StepBatch<'b> {
        debug_assert_eq!(seg[0].n, tokens.len());
        debug_assert_eq!(last[0] + 1, tokens.len());
        StepBatch {
            tokens,
            segs: seg,
            logit_rows: last,
        }
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
    /// The head's row ranges when it is not in `globals`.
    pub head: Option<StreamedHead<'s>>,
    pub pool: &'s ThreadPool,
}

impl Sweep<'_, '_> {
    /// Runs the batch's tokens, embedded from `embd`, through every layer (each segment over
    /// its own sequence's cache) and the LM head; the logits of `batch.logit_rows[i]` land in
    /// `st.logits(i)` (no logits asked, no head computed). With `kept` (a streamed head and
    /// embeddings read on demand), this sweep's head tracks its best candidates for the next
    /// step: a tied head keeps their rows, which this sweep's embedding lookups use first; an
    /// untied one has `embd` read them ahead. With `rec`, every row's read, stall and compute
    /// is recorded.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        embd: &mut dyn EmbeddingRows,
        kept: Option<&mut HeadRows>,
        batch: &StepBatch<'_>,
        st: &mut RunState,
        caches: &mut impl KvCaches,
        times: &mut SweepTimes,
        mut rec: Option<&mut SweepRecorder>,
    ) -> Result<(), ExecError> {
        let n = batch.tokens.len();
        let started = Instant::now();
        let mut io_wait = Duration::ZERO;
        match kept.as_deref() {
            Some(k) => embed(self.cfg, &mut k.with_fallback(embd), batch.tokens, st)?,
            None => embed(self.cfg, embd, batch.tokens, st)?,
        }
        if let Some(r) = rec.as_deref_mut() {
            r.begin(started);
            // Rows read on demand block the host on the disk; resident rows are a copy.
            let elapsed = started.elapsed();
            let on_demand = self.globals.token_embd.is_none();
            r.embed(&ReadTally::default().record(
                if on_demand { elapsed } else { Duration::ZERO },
                started,
                started + elapsed,
            ));
        }
        let mut resident_next = 0usize;
        for (layer, extents) in self.model.extents.layers.iter().enumerate() {
            let mut guards: [Option<SlotGuard<'_>>; EXTENTS_PER_LAYER_MAX] = Default::default();
            let mut payloads: [&[u8]; EXTENTS_PER_LAYER_MAX] = [&[]; EXTENTS_PER_LAYER_MAX];
            let k = extents.len();
            let row_start = Instant::now();
            let mut stall = Duration::ZERO;
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
                for g in guards.iter_mut().take(k) {
                    *g = Some(streamer.next()?);
                }
                stall = row_start.elapsed();
                io_wait += stall;
                for (p, g) in payloads.iter_mut().zip(guards.iter()) {
                    if let Some(g) = g {
                        *p = g.bytes();
                    }
                }
            }
            let interleaved = self.resident[layer] && self.held.interleaved;
            let w = LayerWeights::view(layer, extents, &payloads[..k], interleaved)?;
            forward_layer(self.cfg, &w, layer, batch.segs, st, caches, self.pool)?;
            if let Some(r) = rec.as_deref_mut() {
                let mut reads = ReadTally::default();
                for g in guards.iter().flatten() {
                    reads.add(g.read_span());
                }
                r.layer(layer, &reads.record(stall, row_start, Instant::now()));
            }
            drop(guards);
        }
        io_wait += self.head(batch.logit_rows, st, kept, embd, rec.as_deref_mut())?;
        if let Some(r) = rec {
            r.end(n);
        }
        times.io_wait += io_wait;
        times.compute += started.elapsed().saturating_sub(io_wait);
        Ok(())
    }

    /// The final norm and the LM head, resident or streamed range by range; returns the time
    /// spent waiting for streamed ranges. The head is `rec`'s last row; its ranges alternate
    /// waits and compute, recorded as the summed wait followed by the rest. A streamed head
    /// offers each range to `kept` while the range is in its slot.
    fn head(
        &self,
        rows: &[usize],
        st: &mut RunState,
        mut kept: Option<&mut HeadRows>,
        embd: &mut dyn EmbeddingRows,
        rec: Option<&mut SweepRecorder>,
    ) -> Result<Duration, ExecError> {
        let norm = &self.globals.output_norm;
        let row_start = Instant::now();
        if let Some(output) = &self.globals.output {
            if !rows.is_empty() {
                forward_head(self.cfg, norm, output, rows, st, self.pool)?;
            }
            if let Some(r) = rec {
                let reads = ReadTally::default();
                r.head(&reads.record(Duration::ZERO, row_start, Instant::now()));
            }
            return Ok(Duration::ZERO);
        }
        let (Some(head), Some(streamer)) = (self.head, self.store.streamer.as_ref()) else {
            unreachable!("a head that is not resident streams")
        };
        // A step that needs no logits (a prompt chunk that does not end its prompt) still
        // takes the head's ranges off the streamer, which delivers them every sweep.
        if !rows.is_empty() {
            head_input(self.cfg, norm, head.ty, rows, st)?;
        }
        if let Some(k) = kept.as_deref_mut() {
            k.begin(rows.len());
        }
        let mut io_wait = Duration::ZERO;
        let mut reads = ReadTally::default();
        for r in head.ranges {
            let waited = Instant::now();
            let guard = streamer.next()?;
            io_wait += waited.elapsed();
            reads.add(guard.read_span());
            let range = Tensor {
                ty: head.ty,
                row_elems: head.row_elems,
                n_rows: r.n_rows,
                bytes: guard.bytes(),
                layout: WeightLayout::File,
            };
            if !rows.is_empty() {
                head_rows(&range, r.row0, rows.len(), st, self.pool)?;
                if let Some(k) = kept.as_deref_mut() {
                    k.offer(r.row0, r.n_rows, guard.bytes(), |i| st.logits(i));
                    for &id in k.fresh() {
                        embd.prefetch(id as usize);
                    }
                }
            }
        }
        if let Some(r) = rec {
            r.head(&reads.record(io_wait, row_start, Instant::now()));
        }
        Ok(io_wait)
    }
}

/// The reads of one row's extents: first queued, last done, and their durations summed.
#[derive(Default)]
struct ReadTally {
    span: Option<(Instant, Instant)>,
    total: Duration,
}

impl ReadTally {
    fn add(&mut self, s: ReadSpan) {
        self.total += s.duration();
        self.span = Some(match self.span {
            None => (s.queued_at, s.done_at),
            Some((q, d)) => (q.min(s.queued_at), d.max(s.done_at)),
        });
    }

    fn record(&self, stall: Duration, start: Instant, end: Instant) -> RowRecord {
        RowRecord {
            read: self.span,
            read_total: self.total,
            stall,
            start,
            end,
        }
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

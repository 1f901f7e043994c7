//! The executor: sweeps the layers in order for a batch of tokens, taking each layer's bytes
//! from where the planner put it (resident slots held for the generation, or the streaming
//! prefetcher) and computing on them in place while the next layers are being read.

use std::cell::Cell;
use std::time::{Duration, Instant};

use sluice_loader::extents::LayerExtents;
use sluice_loader::model::ModelFiles;
use sluice_loader::roles::TensorRole;
use sluice_loader::GgmlType;
use sluice_runtime::{Prefetcher, ReadSpan, SlotGuard};
use thiserror::Error;

use super::head_rows::HeadRows;
use super::layer_times::{RowRecord, SweepRecorder};
use super::pieces::{Item, Piece};
use super::rows::RowRange;
use super::store::{GlobalMatrix, Held, WeightStore};
use crate::cpu::{rows16, Isa, ThreadPool, WeightLayout};
use crate::model::forward::{
    embed, forward_head, forward_layer, head_input, head_rows, Config, EmbeddingRows, FedPiece,
    ForwardError, PieceFeed, RunState,
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
        layout: if interleaved {
            rows16::layout(Isa::current(), s.ty, n_rows)
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

/// Share of a streamed sweep's time spent waiting on reads from which later sweeps of as many
/// tokens or fewer compute on one thread fewer: the second compute thread then takes CPU time
/// from the reader and the drive's completions without shortening the sweep (session 14, 2
/// vCPUs, streamed, alternating: SmolLM2 one sequence 30.6-31.1 tok/s on one thread against
/// 24-29 on two, 8 sequences 206-216 against 166-197; 16 sequences, which compute more than
/// they wait, 253 against 310).
pub const NARROW_STALL: f64 = 0.25;
/// Share of a narrowed sweep's time spent waiting on reads under which sweeps get every
/// thread back: computing has become the bottleneck.
pub const WIDEN_STALL: f64 = 0.05;

/// Whether streamed sweeps compute on one thread fewer, decided from the sweeps before.
#[derive(Debug, Default)]
pub struct Narrowing {
    /// Tokens of the sweep that narrowed: sweeps of no more tokens stay narrowed.
    tokens: Cell<Option<usize>>,
}

impl Narrowing {
    /// Whether a sweep of `n` tokens runs narrowed.
    pub fn narrows(&self, n: usize) -> bool {
        self.tokens.get().is_some_and(|t| n <= t)
    }

    /// Takes in a finished sweep of `n` tokens (`narrowed` or not) that waited `waited` on
    /// reads out of `took`.
    pub fn observe(&self, n: usize, narrowed: bool, waited: Duration, took: Duration) {
        let share = waited.as_secs_f64() / took.as_secs_f64().max(1e-9);
        if narrowed && share < WIDEN_STALL {
            self.tokens.set(None);
        } else if !narrowed && share >= NARROW_STALL {
            self.tokens.set(Some(n));
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
    /// Whether this run's streamed sweeps compute on one thread fewer.
    pub narrowing: Narrowing,
}

impl Sweep<'_, '_> {
    /// Runs the batch's tokens, embedded from `embd`, through every layer (each segment over
    /// its own sequence's cache) and the LM head; the logits of `batch.logit_rows[i]` land in
    /// `st.logits(i)` (no logits asked, no head computed). With `kept` (a streamed head and
    /// embeddings read on demand), this sweep's head tracks its best candidates for the next
    /// step: a tied head keeps their rows, which this sweep's embedding lookups use first; an
    /// untied one has `embd` read them ahead. With `rec`, every row's read, stall and compute
    /// is recorded.
    ///
    /// A sweep that streams computes on one thread fewer than the pool has while the sweeps
    /// before it waited on the disk ([`Narrowing`]).
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
        let full = self.pool.n_threads();
        let streams = self.store.streamer.is_some() && full > 1;
        let narrowed = streams && self.narrowing.narrows(n);
        let _width = self.pool.narrowed(if narrowed { full - 1 } else { full });
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
            let pieces = if self.resident[layer] {
                None
            } else {
                self.store.pieces(layer)
            };
            if let Some(pieces) = pieces {
                let Some(streamer) = self.store.streamer.as_ref() else {
                    unreachable!("a streamed layer implies a streamer")
                };
                let held = &self.held.vectors[layer];
                let vector = |role| {
                    let (_, g) = held.iter().find(|(r, _)| *r == role)?;
                    Some(g.bytes())
                };
                let w = LayerWeights::pieced(layer, extents, vector)?;
                let mut feed = StreamFeed {
                    streamer,
                    pieces,
                    taken: 0,
                    left: &[],
                    guard: None,
                    stall: Duration::ZERO,
                    reads: ReadTally::default(),
                };
                let segs = batch.segs;
                forward_layer(
                    self.cfg,
                    &w,
                    Some(&mut feed),
                    layer,
                    segs,
                    st,
                    caches,
                    self.pool,
                )?;
                feed.guard = None;
                if !feed.done() {
                    return Err(ForwardError::PieceCount {
                        count: pieces.len(),
                        taken: feed.taken,
                    }
                    .into());
                }
                io_wait += feed.stall;
                if let Some(r) = rec.as_deref_mut() {
                    r.layer(
                        layer,
                        &feed.reads.record(feed.stall, row_start, Instant::now()),
                    );
                }
                continue;
            }
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
            forward_layer(self.cfg, &w, None, layer, batch.segs, st, caches, self.pool)?;
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
        let took = started.elapsed();
        if streams {
            self.narrowing.observe(n, narrowed, io_wait, took);
        }
        times.io_wait += io_wait;
        times.compute += took.saturating_sub(io_wait);
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

/// A piece-streamed layer's matrices as the streamer delivers them, with the time spent
/// waiting for them and their reads.
struct StreamFeed<'p, 's> {
    streamer: &'s Prefetcher,
    pieces: &'p [Piece],
    /// Pieces taken off the streamer so far; the last one's slot is `guard`.
    taken: usize,
    /// Items of the last piece not yet handed out.
    left: &'p [Item],
    guard: Option<SlotGuard<'s>>,
    stall: Duration,
    reads: ReadTally,
}

impl StreamFeed<'_, '_> {
    /// Whether every item of every piece was handed out.
    fn done(&self) -> bool {
        self.taken == self.pieces.len() && self.left.is_empty()
    }
}

impl PieceFeed for StreamFeed<'_, '_> {
    fn next_piece(&mut self) -> Result<FedPiece<'_>, ForwardError> {
        if self.left.is_empty() {
            // Free the last piece's slot first: the ring may be no deeper than the read-ahead.
            self.guard = None;
            let Some(piece) = self.pieces.get(self.taken) else {
                return Err(ForwardError::PieceCount {
                    count: self.pieces.len(),
                    taken: self.taken + 1,
                });
            };
            let waited = Instant::now();
            let g = self.streamer.next()?;
            self.stall += waited.elapsed();
            self.reads.add(g.read_span());
            self.guard = Some(g);
            self.taken += 1;
            self.left = &piece.items;
        }
        let (item, rest) = self.left.split_first().expect("a piece has items");
        self.left = rest;
        let Some(g) = self.guard.as_ref() else {
            unreachable!("the slot of a piece with items left is held")
        };
        let bytes = g.bytes().get(item.offset..item.offset + item.len);
        let Some(bytes) = bytes else {
            return Err(ForwardError::PieceCount {
                count: self.pieces.len(),
                taken: self.taken,
            });
        };
        Ok(FedPiece {
            role: item.role,
            row0: item.row0,
            tensor: Tensor {
                ty: item.ty,
                row_elems: item.row_elems,
                n_rows: item.n_rows,
                bytes,
                layout: WeightLayout::File,
            },
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn sweeps_that_wait_on_the_disk_narrow_until_computing_is_the_bottleneck() {
        let n = Narrowing::default();
        assert!(!n.narrows(1), "full width until a sweep has waited");
        n.observe(1, false, ms(20), ms(100));
        assert!(
            !n.narrows(1),
            "a fifth of the time waiting: below the threshold"
        );
        n.observe(1, false, ms(60), ms(100));
        assert!(
            n.narrows(1) && !n.narrows(2),
            "narrowed for sweeps of up to one token"
        );
        n.observe(1, true, ms(10), ms(100));
        assert!(
            n.narrows(1),
            "still waiting a tenth of the time: stays narrowed"
        );
        n.observe(1, true, ms(2), ms(100));
        assert!(!n.narrows(1), "hardly waiting: every thread back");
        n.observe(8, false, ms(40), ms(100));
        assert!(n.narrows(8) && n.narrows(3) && !n.narrows(9));
    }
}

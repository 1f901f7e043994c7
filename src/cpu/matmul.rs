//! `out[t][r] = dot(row r of W, activation row t)` for one weight matrix and a batch of tokens,
//! split across the thread pool.
//!
//! A batch's work items are (tile of up to [`TOKENS_PER_TILE`] tokens) × (chunk of
//! [`ROWS_PER_CHUNK`] to `MAX_BATCH_ROWS` weight rows), handed out in order by a locked queue. A one-token product
//! is bound by memory instead: each task owns a contiguous share of the rows and streams it
//! front to back in [`DECODE_ROWS_PER_CHUNK`]-row items, so each core reads one sequential
//! range (what the hardware prefetcher and the kernels' own prefetches follow); a task whose
//! share is done takes over a share whose task has not started, or else takes
//! [`STEAL_ROWS`]-row items from the far end of the longest share left. A task hands its whole
//! item to the weight type's tile kernel in one call (one dispatch per item), which dots each
//! row of the item with the tile's tokens a few at a time while the row is in L1, writing
//! straight into the caller's output through disjoint `&mut` sub-slices. Every output element is
//! bit-identical to the single dot of its row pair, so results do not depend on the thread
//! count, on which task computed it or on how many tokens are batched.

use std::slice::ChunksMut;
use std::sync::{Mutex, PoisonError};

use sluice_loader::GgmlType;

use super::acts::QuantizedActs;
use super::dispatch::Isa;
use super::dot::{RowDot, Rows16Tile};
use super::error::CpuError;
use super::pool::ThreadPool;
use super::rows16::{self, WeightLayout};

/// Weight rows per work item of a batch, at least (a multiple of 16, the interleaved layout's
/// group; 16 keeps 2–16 threads balanced on small layers).
pub const ROWS_PER_CHUNK: usize = 16;
/// Weight rows per work item of a batch, at most: long items spread each tile's setup (the
/// activations' layout, `simd::legacy_batch`) over more rows.
const MAX_BATCH_ROWS: usize = 64;
/// Items per task a batch's matrix is cut into, at least, while items stay within
/// [`ROWS_PER_CHUNK`, `MAX_BATCH_ROWS`]: enough for the tasks to finish together.
const BATCH_ITEMS_PER_TASK: usize = 4;
/// Weight rows per item a task takes from its own share in a one-token product (a multiple of
/// 16): long items keep the kernels' prefetches running ahead inside them.
pub const DECODE_ROWS_PER_CHUNK: usize = 256;
/// Weight rows per item taken from the far end of another task's share (a multiple of 16):
/// short, so the shares finish together.
const STEAL_ROWS: usize = 64;
/// Tokens per work item: each weight row is dotted with this many tokens while hot in cache
/// (the kernels take them 8 at a time; 16 rather than 8 reads a 16-token batch's weights from
/// memory once, not twice: streamed SmolLM2, 16 sequences, EPYC, 242-247 → 260 tok/s).
pub const TOKENS_PER_TILE: usize = 16;

const _: () = assert!(
    ROWS_PER_CHUNK.is_multiple_of(rows16::GROUP_ROWS)
        && DECODE_ROWS_PER_CHUNK.is_multiple_of(rows16::GROUP_ROWS)
        && STEAL_ROWS.is_multiple_of(rows16::GROUP_ROWS)
        && MAX_BATCH_ROWS.is_multiple_of(rows16::GROUP_ROWS)
        && MAX_BATCH_ROWS >= ROWS_PER_CHUNK
);

/// A weight matrix of `n_rows` rows of `row_elems` elements of type `ty`, in `layout`.
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    /// Element type of the weights.
    pub ty: GgmlType,
    /// Elements per row (ggml `ne[0]`).
    pub row_elems: usize,
    /// Number of rows (ggml `ne[1]`), i.e. output features.
    pub n_rows: usize,
    /// The rows, `n_rows * row_bytes` bytes.
    pub bytes: &'a [u8],
    /// How the rows are arranged: as in the file, or interleaved in 16-row groups.
    pub layout: WeightLayout,
}

impl<'a> WeightView<'a> {
    /// A matrix in file layout (each row's blocks back to back).
    pub fn file(ty: GgmlType, row_elems: usize, n_rows: usize, bytes: &'a [u8]) -> Self {
        WeightView {
            ty,
            row_elems,
            n_rows,
            bytes,
            layout: WeightLayout::File,
        }
    }
}

/// One work item: rows `r0..r0 + len` for tokens `t0..t0 + n_tok`.
struct Item<'o> {
    t0: usize,
    r0: usize,
    n_tok: usize,
    outs: [&'o mut [f32]; TOKENS_PER_TILE],
}

/// Hands out disjoint output pieces, tile by tile, chunk by chunk. The tokens split into as
/// few tiles as [`TOKENS_PER_TILE`] allows, of sizes within one of each other (33 tokens:
/// 11, 11, 11, not 16, 16, 1, whose last tile would read every weight again for one token).
struct Queue<'o> {
    /// The output strips of the tiles not yet opened.
    rest: &'o mut [f32],
    /// Tiles not yet opened.
    tiles_left: usize,
    strips: [ChunksMut<'o, f32>; TOKENS_PER_TILE],
    n_rows: usize,
    /// Weight rows per item.
    chunk: usize,
    t_next: usize,
    t0: usize,
    n_tok: usize,
    r_next: usize,
}

impl<'o> Queue<'o> {
    /// A queue over `out`, which holds whole strips of `n_rows` values (`n_rows > 0`), for
    /// `tasks` tasks.
    fn new(out: &'o mut [f32], n_rows: usize, tasks: usize) -> Queue<'o> {
        let per_item = n_rows / (tasks.max(1) * BATCH_ITEMS_PER_TASK);
        let chunk = (per_item / rows16::GROUP_ROWS * rows16::GROUP_ROWS)
            .clamp(ROWS_PER_CHUNK, MAX_BATCH_ROWS);
        let tiles_left = (out.len() / n_rows).div_ceil(TOKENS_PER_TILE);
        Queue {
            rest: out,
            tiles_left,
            strips: std::array::from_fn(|_| <&mut [f32]>::default().chunks_mut(chunk)),
            n_rows,
            chunk,
            t_next: 0,
            t0: 0,
            n_tok: 0,
            r_next: n_rows, // "current tile done": the first call opens tile 0
        }
    }

    /// The next work item, or `None` when every output element has been handed out.
    fn next_item(&mut self) -> Option<Item<'o>> {
        if self.r_next >= self.n_rows {
            if self.tiles_left == 0 {
                return None;
            }
            // The next tile: an even share of the tokens left among the tiles left.
            let n_tok = (self.rest.len() / self.n_rows).div_ceil(self.tiles_left);
            let (tile, rest) = std::mem::take(&mut self.rest).split_at_mut(n_tok * self.n_rows);
            self.rest = rest;
            self.tiles_left -= 1;
            self.n_tok = n_tok;
            for (slot, strip) in self.strips.iter_mut().zip(tile.chunks_mut(self.n_rows)) {
                *slot = strip.chunks_mut(self.chunk);
            }
            self.t0 = self.t_next;
            self.t_next += self.n_tok;
            self.r_next = 0;
        }
        let r0 = self.r_next;
        self.r_next = (r0 + self.chunk).min(self.n_rows);
        // Strips beyond `n_tok` were not refilled for this tile; they stay exhausted (empty).
        let outs = std::array::from_fn(|k| self.strips[k].next().unwrap_or_default());
        Some(Item {
            t0: self.t0,
            r0,
            n_tok: self.n_tok,
            outs,
        })
    }
}

/// Most shares a one-token product is cut into; tasks past it share the first shares (bounded,
/// so that handing out allocates nothing).
const MAX_SHARES: usize = 32;

/// A one-token product's rows shared out among the tasks (module docs).
struct Shares<'o> {
    /// Per share: the first row not yet handed out, and the share's outputs from there on.
    left: [(usize, &'o mut [f32]); MAX_SHARES],
    /// Whether each share's task has asked for work (a share whose task has not is taken
    /// whole).
    started: [bool; MAX_SHARES],
    /// Shares in use (`1..=MAX_SHARES`).
    count: usize,
}

impl<'o> Shares<'o> {
    /// Shares of `out` (one token's `out.len()` rows) for `tasks` tasks: contiguous, in whole
    /// 16-row groups, as even as that allows.
    fn new(out: &'o mut [f32], tasks: usize) -> Shares<'o> {
        let count = tasks.clamp(1, MAX_SHARES);
        let groups = out.len().div_ceil(rows16::GROUP_ROWS);
        let per = groups.div_ceil(count) * rows16::GROUP_ROWS;
        let mut left: [(usize, &'o mut [f32]); MAX_SHARES] = Default::default();
        let mut rest = out;
        let mut r0 = 0;
        for slot in &mut left[..count] {
            let (share, tail) = rest.split_at_mut(per.min(rest.len()));
            let len = share.len();
            *slot = (r0, share);
            r0 += len;
            rest = tail;
        }
        Shares {
            left,
            started: [false; MAX_SHARES],
            count,
        }
    }

    /// The next item for task `task`, or `None` when every row has been handed out.
    fn next_item(&mut self, task: usize) -> Option<Item<'o>> {
        let task = task % self.count;
        self.started[task] = true;
        if self.left[task].1.is_empty() {
            // A share whose task has not started is taken whole, front to back.
            if let Some(j) =
                (0..self.count).find(|&j| !self.started[j] && !self.left[j].1.is_empty())
            {
                self.started[j] = true;
                self.left.swap(task, j);
            }
        }
        let (r0, out) = if !self.left[task].1.is_empty() {
            let (r0, share) = std::mem::take(&mut self.left[task]);
            let (head, tail) = share.split_at_mut(DECODE_ROWS_PER_CHUNK.min(share.len()));
            self.left[task] = (r0 + head.len(), tail);
            (r0, head)
        } else {
            // The far end of the longest share left.
            let j = (0..self.count).max_by_key(|&j| self.left[j].1.len())?;
            let (r0, share) = std::mem::take(&mut self.left[j]);
            if share.is_empty() {
                return None;
            }
            // Both pieces in whole groups: every share starts on a group boundary.
            let keep = share.len().saturating_sub(STEAL_ROWS);
            let keep = keep - keep % rows16::GROUP_ROWS;
            let (front, back) = share.split_at_mut(keep);
            self.left[j] = (r0, front);
            (r0 + keep, back)
        };
        let mut outs: [&'o mut [f32]; TOKENS_PER_TILE] = Default::default();
        outs[0] = out;
        Some(Item {
            t0: 0,
            r0,
            n_tok: 1,
            outs,
        })
    }
}

/// How one product's outputs are handed out: a one-token product's shares, or a batch's queue.
// The shares are the larger: one per product, on the stack (boxing would allocate per token).
#[allow(clippy::large_enum_variant)]
enum Hand<'o> {
    Shares(Shares<'o>),
    Queue(Queue<'o>),
}

impl<'o> Hand<'o> {
    /// The hand for `out`, which holds whole strips of `n_rows` values (`n_rows > 0`), shared
    /// among `tasks` tasks.
    fn new(out: &'o mut [f32], n_rows: usize, tasks: usize) -> Hand<'o> {
        if out.len() == n_rows {
            Hand::Shares(Shares::new(out, tasks))
        } else {
            Hand::Queue(Queue::new(out, n_rows, tasks))
        }
    }

    /// The next item for task `task`, or `None` when every output element has been handed out.
    fn next_item(&mut self, task: usize) -> Option<Item<'o>> {
        match self {
            Hand::Shares(s) => s.next_item(task),
            Hand::Queue(q) => q.next_item(),
        }
    }
}

/// Computes `out[t * n_rows + r] = dot(row r of w, row t of x_q)` for every token t of `x_q`,
/// on the process-wide kernel path. `x_q` must come from `quantize_acts` with `w.ty`.
pub fn matmul(
    w: &WeightView<'_>,
    x_q: &QuantizedActs,
    out: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), CpuError> {
    matmul_with(Isa::current(), w, x_q, out, pool)
}

/// [`matmul`] on an explicit kernel path.
pub fn matmul_with(
    isa: Isa,
    w: &WeightView<'_>,
    x_q: &QuantizedActs,
    out: &mut [f32],
    pool: &ThreadPool,
) -> Result<(), CpuError> {
    let kernel = check(isa, w, x_q, out.len())?;
    if w.row_elems == 0 {
        out.fill(0.0);
        return Ok(());
    }
    if w.n_rows == 0 || x_q.rows() == 0 {
        return Ok(());
    }
    let tasks = pool.n_threads();
    let queue = Mutex::new(Hand::new(out, w.n_rows, tasks));
    pool.run(tasks, |task| loop {
        let item = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_item(task);
        let Some(mut item) = item else { break };
        item.compute(isa, kernel, w, x_q);
    });
    Ok(())
}

/// Several matrices over the same activations (q, k and v of one layer) in one pass over the
/// pool, so their work is shared out together: `outs[m]` gets `ws[m] · x_q` exactly as
/// [`matmul_with`] computes it.
pub fn matmul_many_with<const N: usize>(
    isa: Isa,
    ws: [&WeightView<'_>; N],
    x_q: &QuantizedActs,
    outs: [&mut [f32]; N],
    pool: &ThreadPool,
) -> Result<(), CpuError> {
    let mut kernels = [None; N];
    for (m, (w, out)) in ws.iter().zip(&outs).enumerate() {
        kernels[m] = Some(check(isa, w, x_q, out.len())?);
    }
    if x_q.rows() == 0 {
        return Ok(());
    }
    let mut queues = outs.map(Some);
    let tasks = pool.n_threads();
    let mut live: [Option<Hand<'_>>; N] = std::array::from_fn(|_| None);
    for (m, w) in ws.iter().enumerate() {
        let Some(out) = queues[m].take() else {
            continue;
        };
        if w.row_elems == 0 {
            out.fill(0.0);
        } else if w.n_rows > 0 {
            live[m] = Some(Hand::new(out, w.n_rows, tasks));
        }
    }
    let queue = Mutex::new((live, 0usize));
    pool.run(tasks, |task| loop {
        let next = {
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            let (live, cur) = &mut *q;
            let mut found = None;
            while *cur < N {
                if let Some(item) = live[*cur].as_mut().and_then(|h| h.next_item(task)) {
                    found = Some((*cur, item));
                    break;
                }
                *cur += 1;
            }
            found
        };
        let Some((m, mut item)) = next else { break };
        if let Some(kernel) = kernels[m] {
            item.compute(isa, kernel, ws[m], x_q);
        }
    });
    Ok(())
}

/// Two matrices of the same shape over the same activations (gate and up), computed chunk by
/// chunk together, with `join(row0, a_chunk, b_chunk)` applied to each token's chunk of both
/// outputs as soon as they are done (SwiGLU while the values are in cache). `row0` is the first
/// weight row of the chunk. The products are exactly [`matmul_with`]'s.
#[allow(clippy::too_many_arguments)]
pub fn matmul_pair_with(
    isa: Isa,
    wa: &WeightView<'_>,
    wb: &WeightView<'_>,
    x_q: &QuantizedActs,
    out_a: &mut [f32],
    out_b: &mut [f32],
    pool: &ThreadPool,
    join: impl Fn(usize, &mut [f32], &[f32]) + Sync,
) -> Result<(), CpuError> {
    let ka = check(isa, wa, x_q, out_a.len())?;
    let kb = check(isa, wb, x_q, out_b.len())?;
    if wa.n_rows != wb.n_rows {
        return Err(CpuError::PairShape {
            a_rows: wa.n_rows,
            b_rows: wb.n_rows,
        });
    }
    if wa.n_rows == 0 || x_q.rows() == 0 {
        return Ok(());
    }
    let tasks = pool.n_threads();
    let queue = Mutex::new((
        Hand::new(out_a, wa.n_rows, tasks),
        Hand::new(out_b, wb.n_rows, tasks),
    ));
    pool.run(tasks, |task| loop {
        let next = {
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            let (qa, qb) = &mut *q;
            // Same shapes, same calls: both hands give the same rows each time.
            qa.next_item(task).zip(qb.next_item(task))
        };
        let Some((mut a, mut b)) = next else { break };
        if wa.row_elems == 0 {
            a.outs.iter_mut().for_each(|o| o.fill(0.0));
            b.outs.iter_mut().for_each(|o| o.fill(0.0));
        } else {
            a.compute(isa, ka, wa, x_q);
            b.compute(isa, kb, wb, x_q);
        }
        for (oa, ob) in a.outs[..a.n_tok].iter_mut().zip(&b.outs[..b.n_tok]) {
            join(a.r0, oa, ob);
        }
    });
    Ok(())
}

impl Item<'_> {
    /// Fills this item's outputs with the dots of its weight rows and tokens.
    fn compute(&mut self, isa: Isa, kernel: Kernel, w: &WeightView<'_>, x_q: &QuantizedActs) {
        let n_rows = self.outs[0].len();
        let row_bytes = w.bytes.len() / w.n_rows;
        let w_rows = &w.bytes[self.r0 * row_bytes..(self.r0 + n_rows) * row_bytes];
        let a_rows = x_q.rows_bytes(self.t0, self.n_tok);
        let outs = &mut self.outs[..self.n_tok];
        match kernel {
            Kernel::File(k) => k.tile(isa, w_rows, a_rows, outs),
            // Items start and end on group boundaries: chunks are multiples of 16 rows and
            // the matrix holds whole groups (checked).
            Kernel::Rows16(k) => k.run(w_rows, a_rows, outs),
        }
    }
}

/// The kernel a checked product runs: a file-layout row dot, or an interleaved-layout tile.
#[derive(Clone, Copy)]
enum Kernel {
    File(RowDot),
    Rows16(Rows16Tile),
}

/// Checks that the weight, the activations and the output fit together; returns the kernel.
fn check(
    isa: Isa,
    w: &WeightView<'_>,
    x_q: &QuantizedActs,
    out_len: usize,
) -> Result<Kernel, CpuError> {
    let row_dot = RowDot::for_weight(w.ty)?;
    let kernel = match w.layout {
        WeightLayout::File => Kernel::File(row_dot),
        WeightLayout::Rows16(form) => {
            // A path reads its own form only (they differ for Q5_0 and Q5_1).
            let tile = Rows16Tile::for_weight(isa, w.ty)
                .filter(|_| rows16::applies(w.ty, w.n_rows) && isa.rows16_form() == Some(form));
            Kernel::Rows16(tile.ok_or(CpuError::Layout {
                ty: w.ty,
                n_rows: w.n_rows,
                isa: isa.name(),
            })?)
        }
    };
    let kernel_act = row_dot.act;
    if x_q.ty() != kernel_act || x_q.row_elems() != w.row_elems {
        return Err(CpuError::ActsMismatch {
            acts_ty: x_q.ty(),
            acts_elems: x_q.row_elems(),
            weight_ty: w.ty,
            needed_ty: kernel_act,
            row_elems: w.row_elems,
        });
    }
    let expected =
        w.ty.row_bytes(w.row_elems as u64)
            .and_then(|b| b.checked_mul(w.n_rows as u64));
    if expected != Some(w.bytes.len() as u64) {
        return Err(CpuError::WeightSize {
            ty: w.ty,
            n_rows: w.n_rows,
            row_elems: w.row_elems,
            expected,
            got: w.bytes.len(),
        });
    }
    let tokens = x_q.rows();
    if tokens.checked_mul(w.n_rows) != Some(out_len) {
        return Err(CpuError::OutputSize {
            got: out_len,
            tokens,
            n_rows: w.n_rows,
            expected: tokens.saturating_mul(w.n_rows),
        });
    }
    Ok(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out every item of a one-token product of `n_rows` rows among `tasks` tasks, asking
    /// in the order `order` gives (cycled; a task whose call got nothing stops asking; tasks
    /// not in `order` never ask); returns each task's items as (first row, rows).
    fn hand_out(n_rows: usize, tasks: usize, order: &[usize]) -> Vec<Vec<(usize, usize)>> {
        let mut out = vec![0.0f32; n_rows];
        let mut shares = Shares::new(&mut out, tasks);
        let mut got = vec![Vec::new(); tasks];
        let mut done = vec![false; tasks];
        for &task in order.iter().cycle() {
            if order.iter().all(|&t| done[t]) {
                break;
            }
            if done[task] {
                continue;
            }
            match shares.next_item(task) {
                Some(item) => got[task].push((item.r0, item.outs[0].len())),
                None => done[task] = true,
            }
        }
        got
    }

    #[test]
    fn a_batch_queue_hands_out_every_output_once_in_even_tiles() {
        let t = TOKENS_PER_TILE;
        for n_tok in [
            1,
            2,
            t - 1,
            t,
            t + 1,
            2 * t,
            2 * t + 1,
            3 * t - 1,
            5 * t + 3,
        ] {
            for (n_rows, tasks) in [(37, 2), (576, 2), (4864, 3)] {
                let mut out = vec![0.0f32; n_tok * n_rows];
                let mut queue = Queue::new(&mut out, n_rows, tasks);
                let mut tiles = Vec::new();
                let mut covered = vec![0u32; n_tok * n_rows];
                while let Some(item) = queue.next_item() {
                    let rows = item.outs[0].len();
                    assert!(rows >= ROWS_PER_CHUNK.min(n_rows) || item.r0 + rows == n_rows);
                    assert!(rows <= MAX_BATCH_ROWS);
                    if item.r0 == 0 {
                        tiles.push(item.n_tok);
                    }
                    for (k, o) in item.outs.iter().enumerate() {
                        assert_eq!(o.len(), if k < item.n_tok { rows } else { 0 });
                    }
                    for k in 0..item.n_tok {
                        for r in item.r0..item.r0 + rows {
                            covered[(item.t0 + k) * n_rows + r] += 1;
                        }
                    }
                }
                // As few tiles as the tile size allows, within one token of each other.
                assert_eq!(tiles.len(), n_tok.div_ceil(t), "{n_tok} tokens: {tiles:?}");
                let (lo, hi) = (tiles.iter().min(), tiles.iter().max());
                assert!(hi <= Some(&t) && hi.zip(lo).is_some_and(|(h, l)| h - l <= 1));
                assert!(
                    covered.iter().all(|&c| c == 1),
                    "{n_tok} tokens, {n_rows} rows"
                );
            }
        }
    }

    #[test]
    fn shares_hand_out_every_row_once_in_whole_groups() {
        for n_rows in [1, 15, 16, 37, 64, 300, 896, 1003, 4864] {
            for tasks in [1, 2, 3, 4, MAX_SHARES + 8] {
                let orders: Vec<Vec<usize>> = vec![
                    (0..tasks).collect(),
                    (0..tasks).rev().collect(),
                    vec![0],
                    [vec![0; 3], (0..tasks).collect()].concat(),
                ];
                for order in orders {
                    let got = hand_out(n_rows, tasks, &order);
                    let mut items: Vec<(usize, usize)> = got.concat();
                    items.sort();
                    let mut next = 0;
                    for &(r0, len) in &items {
                        assert_eq!(r0, next, "{n_rows} rows, {tasks} tasks, {order:?}");
                        assert!(len > 0 && r0 % rows16::GROUP_ROWS == 0);
                        assert!(len % rows16::GROUP_ROWS == 0 || r0 + len == n_rows);
                        next = r0 + len;
                    }
                    assert_eq!(next, n_rows, "{n_rows} rows, {tasks} tasks, {order:?}");
                }
            }
        }
    }

    #[test]
    fn each_task_streams_its_own_share_from_the_front() {
        // Two tasks asking in turn: each reads its half front to back, in long items.
        let got = hand_out(4096, 2, &[0, 1]);
        let items = |ks: std::ops::Range<usize>| ks.map(|k| (256 * k, 256)).collect::<Vec<_>>();
        assert_eq!(got[0], items(0..8));
        assert_eq!(got[1], items(8..16));
        // One task alone (a narrowed pool) takes the other's untouched share whole, front to
        // back, rather than item by item from its far end.
        let got = hand_out(4096, 2, &[0]);
        let firsts: Vec<usize> = got[0].iter().map(|&(r0, _)| r0).collect();
        assert_eq!(firsts, (0..16).map(|k| 256 * k).collect::<Vec<_>>());
        // A task that finishes first helps from the far end of the other's share.
        let got = hand_out(1024, 2, &[1, 0, 0, 0]);
        assert!(got[0].contains(&(1024 - STEAL_ROWS, STEAL_ROWS)), "{got:?}");
    }
}

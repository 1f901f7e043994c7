//! Residency planning: which weights stay in RAM and which stream from disk every token, and
//! how big the streaming ring is.
//!
//! The budget covers every weight that can be big: the layers, the LM head (the output matrix,
//! or the token embeddings when tied) and the token embeddings. It is spent in order of what a
//! resident byte saves:
//! 1. the LM head: read in full every token when it streams;
//! 2. the layers, first ones in sweep order: while the executor computes them, the prefetcher
//!    is already reading the first streamed layers, so the disk never waits for the CPU at the
//!    start of a token;
//! 3. untied token embeddings last: when they are not resident only the rows of the batch's
//!    tokens are read, a few KiB per token.
//!
//! A streamed head is cut into row ranges that fit a ring slot ([`split_rows`]) and read by the
//! prefetcher after the last layer. The small global vectors (output norm, RoPE factors) are
//! always resident: they hold one value per embedding dimension, like an activation buffer.
//! The KV cache and the ring are accounted for separately and reported.

use super::pieces::{PIECE_BYTES, PIECE_RING_BYTES};
use super::rows::{split_rows, MatrixOnDisk, RowRange};

/// Fraction of available memory the default budget may use.
pub const DEFAULT_BUDGET_FRACTION: f64 = 0.75;
/// Extents the prefetcher keeps in flight ahead of the consumer by default.
pub const DEFAULT_PREFETCH_DEPTH: usize = 4;
/// The ring is grown to at least this many bytes of slots when layers are small, so the drive
/// always has enough work queued. Kept small: the drive's writes into a ring that fits in the
/// caches land faster when the host's memory is slow (session 13, SmolLM2 streamed, 2.2 MB
/// layers: 64 MiB → 8 MiB took 19.8-20.6 to 25.7-26.7 tok/s, 0.66-0.69 → 0.87-0.91 of the
/// drive's rate around the decode, five alternating pairs; 16 MiB gave 22.8-24.5).
pub const RING_BYTES_MIN: u64 = 8 << 20;
/// Upper bound on ring slots whatever the layer size.
pub const RING_SLOTS_MAX: usize = 64;
/// Fewest ring slots when memory is tight: one being computed, two being read.
pub const RING_SLOTS_MIN: usize = 3;
/// Most of the memory the process may take that the ring may hold: under a tight limit (a
/// small container) the ring shrinks towards [`RING_SLOTS_MIN`] slots rather than push the
/// process over its limit.
pub const RING_FRACTION_MAX: f64 = 0.4;

/// What the planner needs to know about the model and the machine.
#[derive(Clone, Debug)]
pub struct PlanInput {
    /// Bytes each layer occupies once read (its extents' aligned lengths, summed).
    pub layer_bytes: Vec<u64>,
    /// Largest single extent among all layers (a ring slot must hold it).
    pub extent_bytes_max: u64,
    /// The LM head: the output matrix, or the token embeddings when tied.
    pub head: MatrixOnDisk,
    /// Bytes of the head's aligned extent when read whole.
    pub head_extent_bytes: u64,
    /// Bytes of the token embeddings' aligned extent; `None` when they are the head (tied).
    pub embd_extent_bytes: Option<u64>,
    /// Bytes of the small global vectors (output norm, RoPE factors), always resident.
    pub vector_bytes: u64,
    /// The direct-I/O alignment of the model's extents.
    pub alignment_bytes: u64,
    /// Bytes of the KV cache.
    pub kv_cache_bytes: u64,
    /// `--ram-budget`, if given: bytes of weights allowed to stay resident.
    pub ram_budget: Option<u64>,
    /// Memory this process may still take: the tightest of MemAvailable and its cgroups'
    /// limits ([`super::memory_limit`]).
    pub mem_available: u64,
    /// Streamed layers arrive in row pieces ([`super::pieces`]) through a small ring, rather
    /// than whole (the CPU computes piece by piece; the GPU path copies whole layers).
    pub pieces: bool,
    /// Bytes of the longest row of any layer matrix (a piece slot holds at least one).
    pub matrix_row_bytes_max: u64,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `resident[i]`: layer i is read once at load and kept in RAM.
    pub resident: Vec<bool>,
    /// The LM head is read once and kept; otherwise it streams in `head_ranges`.
    pub head_resident: bool,
    /// Embedding rows come from a resident matrix (the head when tied); otherwise each batch's
    /// rows are read on demand.
    pub embd_resident: bool,
    /// The head's row ranges, in sweep order after the last layer; empty when it is resident.
    pub head_ranges: Vec<RowRange>,
    /// The budget that was applied to weights.
    pub budget_bytes: u64,
    /// Bytes of resident weights (layers, globals and the small vectors).
    pub resident_bytes: u64,
    /// Bytes streamed from disk per token (layers and head ranges; embedding rows aside).
    pub streamed_bytes_per_token: u64,
    /// Ring slots (0 when nothing streams) and the size of each.
    pub ring_slots: usize,
    pub slot_bytes: u64,
    /// Prefetch depth (extents read ahead of the consumer).
    pub depth: usize,
    /// Streamed layers are read in row pieces of at most `slot_bytes`, in the order the
    /// forward pass uses them ([`super::pieces`]).
    pub pieces: bool,
}

impl Plan {
    /// Number of resident layers.
    pub fn n_resident(&self) -> usize {
        self.resident.iter().filter(|&&r| r).count()
    }

    /// Number of streamed layers.
    pub fn n_streamed(&self) -> usize {
        self.resident.len() - self.n_resident()
    }

    /// Bytes of the streaming ring (its slots, before rounding to pages).
    pub fn ring_bytes(&self) -> u64 {
        self.ring_slots as u64 * self.slot_bytes
    }
}

/// Takes `bytes` out of `left` if they fit.
fn take(left: &mut u64, bytes: u64) -> bool {
    let fits = bytes <= *left;
    if fits {
        *left -= bytes;
    }
    fits
}

/// Decides residency and sizes the ring.
pub fn plan(input: &PlanInput) -> Plan {
    let budget_bytes = input.ram_budget.unwrap_or_else(|| default_budget(input));
    let mut left = budget_bytes;
    let head_resident = take(&mut left, input.head_extent_bytes);
    let mut resident = vec![false; input.layer_bytes.len()];
    for (r, &b) in resident.iter_mut().zip(&input.layer_bytes) {
        if !take(&mut left, b) {
            break;
        }
        *r = true;
    }
    let embd_resident = match input.embd_extent_bytes {
        Some(b) => take(&mut left, b),
        None => head_resident,
    };
    let streamed_layers = resident.iter().filter(|&&r| !r).count();
    let streams = streamed_layers > 0 || !head_resident;
    let pieces = uses_pieces(input);
    let mut slot_bytes = match (streams, pieces) {
        (false, _) => 0,
        (true, false) => input.extent_bytes_max,
        (true, true) => piece_slot_bytes(input),
    };
    let head_ranges = if head_resident {
        Vec::new()
    } else {
        let align = input.alignment_bytes;
        slot_bytes = slot_bytes.max(input.head.row_slot_bytes_min(align));
        split_rows(&input.head, align, slot_bytes)
    };
    // Extents streamed per token (a piece layer is many; counting it as one only caps the
    // ring at fewer slots than extents, which pieces never reach).
    let n_streamed = if pieces && streamed_layers > 0 {
        RING_SLOTS_MAX
    } else {
        streamed_layers + head_ranges.len()
    };
    let (ring_slots, depth) = if n_streamed == 0 {
        (0, 0)
    } else {
        let ring_bytes = if pieces {
            PIECE_RING_BYTES
        } else {
            RING_BYTES_MIN
        };
        let by_bytes = ring_bytes.div_ceil(slot_bytes.max(1)) as usize;
        let fit = if input.mem_available > 0 {
            let cap = (input.mem_available as f64 * RING_FRACTION_MAX) as u64;
            (cap / slot_bytes.max(1)).max(RING_SLOTS_MIN as u64) as usize
        } else {
            RING_SLOTS_MAX
        };
        // One slot is held by the consumer while `depth` are read ahead; more slots than
        // streamed extents would only hold a second copy of the same one.
        let slots = by_bytes
            .clamp(DEFAULT_PREFETCH_DEPTH + 1, RING_SLOTS_MAX)
            .min(fit)
            .min(n_streamed.max(2));
        (slots, slots - 1)
    };
    let layer_bytes = |want: bool| -> u64 {
        let zipped = input.layer_bytes.iter().zip(&resident);
        zipped.filter(|(_, &r)| r == want).map(|(&b, _)| b).sum()
    };
    let head_streamed: u64 = head_ranges.iter().map(|r| r.len).sum();
    let resident_globals = [
        (head_resident, input.head_extent_bytes),
        (
            embd_resident && input.embd_extent_bytes.is_some(),
            input.embd_extent_bytes.unwrap_or(0),
        ),
    ];
    let globals: u64 = resident_globals
        .iter()
        .filter(|(r, _)| *r)
        .map(|(_, b)| b)
        .sum();
    let resident_bytes = layer_bytes(true) + globals + input.vector_bytes;
    let streamed_bytes_per_token = layer_bytes(false) + head_streamed;
    Plan {
        resident,
        head_resident,
        embd_resident,
        budget_bytes,
        resident_bytes,
        streamed_bytes_per_token,
        ring_slots,
        slot_bytes: if ring_slots == 0 { 0 } else { slot_bytes },
        head_ranges,
        depth,
        pieces,
    }
}

/// Bytes of KV cache to plan for: `max_batch` sequences of `n_ctx` positions each.
pub fn kv_plan_bytes(n_layer: usize, kv_dim: usize, n_ctx: usize, max_batch: usize) -> u64 {
    crate::model::kv_cache::KvCache::bytes_for(n_layer, kv_dim, n_ctx)
        .saturating_mul(max_batch.max(1) as u64)
}

/// Whether streamed layers arrive in row pieces: where the caller computes piece by piece
/// and a ring of whole layers ([`RING_SLOTS_MIN`] of them) would outgrow [`RING_BYTES_MIN`].
/// Smaller layers stream whole: one long read costs less than several short ones (session 14,
/// SmolLM2's 2.2 MB layers on one thread: whole 2.8-2.9 GB/s, in pieces 1.9-2.0).
fn uses_pieces(input: &PlanInput) -> bool {
    input.pieces && input.extent_bytes_max * RING_SLOTS_MIN as u64 > RING_BYTES_MIN
}

/// A piece ring's slot: [`PIECE_BYTES`], or the read of the longest matrix row if larger.
fn piece_slot_bytes(input: &PlanInput) -> u64 {
    let row = MatrixOnDisk {
        offset: 0,
        row_bytes: input.matrix_row_bytes_max,
        n_rows: 1,
    };
    PIECE_BYTES.max(row.row_slot_bytes_min(input.alignment_bytes))
}

/// 75% of available memory, less the KV cache, the small vectors and a worst-case ring.
fn default_budget(input: &PlanInput) -> u64 {
    let usable = (input.mem_available as f64 * DEFAULT_BUDGET_FRACTION) as u64;
    let ring = if uses_pieces(input) {
        let slot =
            piece_slot_bytes(input).max(input.head.row_slot_bytes_min(input.alignment_bytes));
        PIECE_RING_BYTES.max(slot * (DEFAULT_PREFETCH_DEPTH as u64 + 1))
    } else {
        (input.extent_bytes_max * (DEFAULT_PREFETCH_DEPTH as u64 + 1)).max(RING_BYTES_MIN)
    };
    usable
        .saturating_sub(input.kv_cache_bytes)
        .saturating_sub(input.vector_bytes)
        .saturating_sub(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Ten 100 MiB layers, a 40 MiB head of 4 KiB rows and untied 25 MiB embeddings.
    fn input(budget: Option<u64>) -> PlanInput {
        PlanInput {
            layer_bytes: vec![100 * MIB; 10],
            extent_bytes_max: 100 * MIB,
            head: MatrixOnDisk {
                offset: 1000 * MIB + 100,
                row_bytes: 4000,
                n_rows: 10 * 1024,
            },
            head_extent_bytes: 40 * MIB,
            embd_extent_bytes: Some(25 * MIB),
            vector_bytes: 4096,
            alignment_bytes: 4096,
            kv_cache_bytes: 10 * MIB,
            ram_budget: budget,
            mem_available: 4 << 30,
            pieces: false,
            matrix_row_bytes_max: 4000,
        }
    }

    #[test]
    fn zero_budget_streams_everything_model_sized() {
        let p = plan(&input(Some(0)));
        assert_eq!(p.n_resident(), 0);
        assert!(!p.head_resident && !p.embd_resident);
        assert_eq!(p.resident_bytes, 4096, "only the small vectors");
        // The 40 MB head fits one 100 MiB slot: one range, after the layers.
        assert_eq!(p.head_ranges.len(), 1);
        assert_eq!(p.head_ranges[0].n_rows, 10 * 1024);
        let head_read = p.head_ranges[0].len;
        assert!((4000 * 10 * 1024..=4000 * 10 * 1024 + 8192).contains(&head_read));
        assert_eq!(p.streamed_bytes_per_token, 1000 * MIB + head_read);
        assert_eq!(p.ring_slots, DEFAULT_PREFETCH_DEPTH + 1);
        assert_eq!(p.depth, DEFAULT_PREFETCH_DEPTH);
        assert_eq!(p.slot_bytes, 100 * MIB);
    }

    #[test]
    fn budget_goes_to_the_head_then_the_first_layers_then_the_embeddings() {
        let p = plan(&input(Some(350 * MIB)));
        assert!(p.head_resident);
        assert!(p.head_ranges.is_empty());
        assert_eq!(
            p.resident,
            [true, true, true, false, false, false, false, false, false, false]
        );
        // 350 − 40 head − 300 layers leaves 10 MiB: too little for the 25 MiB embeddings.
        assert!(!p.embd_resident);
        assert_eq!(p.resident_bytes, 340 * MIB + 4096);
        assert_eq!(p.streamed_bytes_per_token, 700 * MIB);

        let p = plan(&input(Some(370 * MIB)));
        assert!(p.head_resident && p.embd_resident);
        assert_eq!(p.n_resident(), 3);
    }

    #[test]
    fn a_budget_below_the_head_keeps_what_still_fits() {
        // 30 MiB: no head (40), no layer (100), but the embeddings (25).
        let p = plan(&input(Some(30 * MIB)));
        assert!(!p.head_resident && p.embd_resident);
        assert_eq!(p.n_resident(), 0);
        assert_eq!(p.head_ranges.len(), 1);
    }

    #[test]
    fn tied_embeddings_follow_the_head() {
        let mut i = input(Some(0));
        i.embd_extent_bytes = None;
        let p = plan(&i);
        assert!(!p.head_resident && !p.embd_resident);
        i.ram_budget = Some(40 * MIB);
        let p = plan(&i);
        assert!(p.head_resident && p.embd_resident);
        assert_eq!(p.resident_bytes, 40 * MIB + 4096);
    }

    #[test]
    fn default_budget_keeps_everything_that_fits_in_memory() {
        let p = plan(&input(None));
        assert_eq!(p.n_streamed(), 0);
        assert!(p.head_resident && p.embd_resident);
        assert_eq!((p.ring_slots, p.slot_bytes), (0, 0));
        let mut small = input(None);
        small.mem_available = 1 << 30;
        let p = plan(&small);
        // 768 MiB usable − 10 KV − 4 KiB vectors − 500 ring ≈ 258 MiB: the head, two layers,
        // and 18 MiB left, too little for the embeddings.
        assert!(p.head_resident);
        assert_eq!(p.n_resident(), 2);
        assert!(!p.embd_resident);
    }

    #[test]
    fn a_big_head_is_cut_into_slot_sized_ranges() {
        let mut i = input(Some(0));
        i.layer_bytes = vec![2 * MIB; 30];
        i.extent_bytes_max = 2 * MIB;
        let p = plan(&i);
        // 40 MB of 4000-byte rows in 2 MiB slots: (2 MiB − 4 KiB) / 4000 = 523 rows a range.
        assert_eq!(p.head_ranges.len(), (10 * 1024usize).div_ceil(523));
        assert!(p.head_ranges.iter().all(|r| r.len <= p.slot_bytes));
        let rows: usize = p.head_ranges.iter().map(|r| r.n_rows).sum();
        assert_eq!(rows, 10 * 1024);
        // 8 MiB of 2 MiB slots is 4, raised to the default depth's 5.
        assert_eq!(
            (p.ring_slots, p.depth),
            (DEFAULT_PREFETCH_DEPTH + 1, DEFAULT_PREFETCH_DEPTH)
        );
    }

    #[test]
    fn slots_grow_to_hold_one_head_row() {
        let mut i = input(Some(0));
        i.layer_bytes = vec![4096; 4];
        i.extent_bytes_max = 4096;
        i.head.row_bytes = 5000;
        let p = plan(&i);
        assert_eq!(p.slot_bytes, 3 * 4096);
        assert_eq!(p.head_ranges.len(), 10 * 1024);
    }

    #[test]
    fn ring_never_exceeds_the_streamed_extents() {
        let mut i = input(None);
        i.layer_bytes = vec![2 * MIB; 30];
        i.extent_bytes_max = 2 * MIB;
        i.ram_budget = Some(40 * MIB + 27 * 2 * MIB);
        let p = plan(&i);
        assert!(p.head_resident);
        assert_eq!(p.n_streamed(), 3);
        assert_eq!((p.ring_slots, p.depth), (3, 2));
    }

    #[test]
    fn small_layers_get_a_deeper_ring() {
        let mut i = input(Some(40 * MIB));
        i.layer_bytes = vec![MIB / 2; 30];
        i.extent_bytes_max = MIB / 2;
        let p = plan(&i);
        // 8 MiB of 512 KiB slots: 16.
        assert_eq!(p.ring_slots, 16);
        assert_eq!(p.depth, 15);
        // 8 MiB of 256 KiB slots would be 32, capped at the 30 streamed layers.
        i.layer_bytes = vec![MIB / 4; 30];
        i.extent_bytes_max = MIB / 4;
        let p = plan(&i);
        assert_eq!((p.ring_slots, p.depth), (30, 29));
    }

    #[test]
    fn large_layers_stream_in_pieces_through_a_small_ring_and_small_ones_whole() {
        // 100 MiB layers: a ring of three would be 300 MiB; pieces of 2 MiB, 5 slots.
        let mut i = input(Some(0));
        i.pieces = true;
        let p = plan(&i);
        assert!(p.pieces);
        assert_eq!(p.slot_bytes, PIECE_BYTES);
        assert_eq!(p.ring_slots, DEFAULT_PREFETCH_DEPTH + 1);
        assert_eq!(p.depth, DEFAULT_PREFETCH_DEPTH);
        assert_eq!(p.ring_bytes(), PIECE_RING_BYTES);
        // The head streams in ranges of the same slots.
        assert!(p.head_ranges.len() > 1);
        assert!(p.head_ranges.iter().all(|r| r.len <= PIECE_BYTES));
        // A row longer than a piece slot widens the slot to hold it.
        i.matrix_row_bytes_max = 3 * MIB;
        let p = plan(&i);
        assert!(p.slot_bytes > 3 * MIB && p.slot_bytes <= 3 * MIB + 2 * i.alignment_bytes);
        // Layers whose ring of three fits RING_BYTES_MIN stream whole.
        i.layer_bytes = vec![2 * MIB; 10];
        i.extent_bytes_max = 2 * MIB;
        i.matrix_row_bytes_max = 4000;
        let p = plan(&i);
        assert!(!p.pieces);
        assert_eq!(p.slot_bytes, 2 * MIB);
        // The GPU path (no pieces asked) streams whole layers whatever their size.
        let mut g = input(Some(0));
        g.pieces = false;
        assert!(!plan(&g).pieces);
        assert_eq!(plan(&g).slot_bytes, 100 * MIB);
    }

    #[test]
    fn the_default_budget_counts_the_ring_it_will_get() {
        let (mut whole, mut pieces) = (input(None), input(None));
        whole.mem_available = 2 << 30;
        pieces.mem_available = 2 << 30;
        pieces.pieces = true;
        let (w, p) = (plan(&whole), plan(&pieces));
        // Five 100 MiB slots reserved for whole layers, five 2 MiB ones for pieces.
        assert_eq!(
            p.budget_bytes - w.budget_bytes,
            5 * (100 * MIB - PIECE_BYTES)
        );
    }

    #[test]
    fn the_default_budget_leaves_room_for_every_sequence_of_a_batch() {
        // 30 layers of 64 KiB-wide KV per position: 2 MiB per 32 positions per sequence.
        let one = kv_plan_bytes(30, 512, 2048, 1);
        assert_eq!(kv_plan_bytes(30, 512, 2048, 16), 16 * one);
        let mut alone = input(None);
        alone.kv_cache_bytes = one;
        let mut batch = input(None);
        batch.kv_cache_bytes = kv_plan_bytes(30, 512, 2048, 16);
        let (a, b) = (plan(&alone), plan(&batch));
        assert!(b.budget_bytes + 15 * one <= a.budget_bytes + 1);
        assert!(
            b.n_resident() < a.n_resident(),
            "16 sequences' KV ({} MiB) leaves room for fewer layers",
            batch.kv_cache_bytes / MIB
        );
    }

    #[test]
    fn a_tight_memory_limit_shrinks_the_ring_to_three_slots() {
        let mut tight = input(Some(0));
        tight.mem_available = 600 * MIB;
        let p = plan(&tight);
        assert_eq!(
            p.ring_slots, 3,
            "240 MiB of ring holds two 100 MiB slots: the floor is 3"
        );
        tight.mem_available = 1300 * MIB;
        assert_eq!(plan(&tight).ring_slots, 5, "the default depth when it fits");
        tight.mem_available = 0;
        assert_eq!(plan(&tight).ring_slots, 5, "no figure: the default");
    }
}

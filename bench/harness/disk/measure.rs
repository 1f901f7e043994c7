//! The measurement core of `sluice bench disk`: one cell of the grid (pattern, reader, chunk
//! size, queue depth) read through the runtime's own `Reader` and `Prefetcher`.
//!
//! Both patterns use the same machinery, so they differ only in their offsets: a ring of `qd`
//! slots of one chunk each, a reader whose queue depth is `qd`, and a prefetcher `qd` extents
//! deep, so every read request is one chunk and `qd` of them are in flight. The consumer
//! releases each slot as soon as it is lent. The prefetcher hands extents out in order, so a
//! read that completes before the one at the head waits for it (head-of-line blocking); with
//! random reads this keeps the effective depth a little below `qd`, which is what the engine,
//! which also consumes in order, would see.
//!
//! A cell stops after `seconds` or after `passes_max` passes over its sweep (whichever comes
//! first; the grid makes one pass), so its time and bytes are both bounded. Latency is each extent's read span (queued to the
//! reader → last byte in), recorded exactly for the first [`LATENCY_SAMPLES_MAX`] reads.

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_runtime::limits::{PREAD_THREADS_MAX, QUEUE_DEPTH_MAX, SLOTS_MAX, SLOT_ALIGN_BYTES};
use sluice_runtime::{Error, Extent, HostRing, Prefetcher, Reader, ReaderChoice, ReaderConfig};

/// Most extents in one sweep (40 bytes each): a sequential sweep covers the first
/// `SWEEP_EXTENTS_MAX` chunks of a larger file, a random one draws this many offsets.
pub(crate) const SWEEP_EXTENTS_MAX: usize = 1 << 18;
/// Most read latencies kept per cell for the quantiles (8 bytes each).
pub(crate) const LATENCY_SAMPLES_MAX: usize = 1 << 20;
/// Seed of the random offsets: every reader and run sees the same offsets for a chunk size.
pub(crate) const RANDOM_SEED: u64 = 0x5EED_D15C;

// A ring has one slot per read in flight.
const _: () = assert!(QUEUE_DEPTH_MAX <= SLOTS_MAX);

/// The order extents are read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Pattern {
    /// The file swept from its start, one chunk after the other.
    Sequential,
    /// Chunk-aligned chunks at pseudo-random offsets.
    Random,
}

impl Pattern {
    /// Lower-case name, as in the table and the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pattern::Sequential => "sequential",
            Pattern::Random => "random",
        }
    }
}

/// The reader a cell forces (never `Auto`: a cell measures one reader or says why it cannot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ReaderSel {
    /// io_uring with O_DIRECT and fixed buffers.
    Uring,
    /// The pool of pread threads.
    Pread,
}

impl ReaderSel {
    /// Lower-case name, as `ReaderKind::name` spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReaderSel::Uring => "uring",
            ReaderSel::Pread => "pread",
        }
    }

    fn choice(self) -> ReaderChoice {
        match self {
            ReaderSel::Uring => ReaderChoice::Uring,
            ReaderSel::Pread => ReaderChoice::Pread,
        }
    }
}

/// One point of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Setting {
    pub(crate) pattern: Pattern,
    pub(crate) reader: ReaderSel,
    pub(crate) chunk_bytes: usize,
    pub(crate) queue_depth: usize,
}

impl Setting {
    /// Worker threads of the pread pool (its parallelism), `None` for io_uring: the queue depth,
    /// clamped to `PREAD_THREADS_MAX`.
    pub(crate) fn pread_threads(&self) -> Option<usize> {
        (self.reader == ReaderSel::Pread).then(|| self.queue_depth.clamp(1, PREAD_THREADS_MAX))
    }
}

/// What one cell measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Figures {
    pub(crate) bytes_read: u64,
    pub(crate) reads: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) read_gb_per_s: f64,
    pub(crate) iops: f64,
    pub(crate) latency_us_p50: f64,
    pub(crate) latency_us_p99: f64,
}

/// A cell's outcome: figures, or why its reader could not run here.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    Measured(Figures),
    Unavailable(String),
}

/// One cell of the grid and its outcome.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cell {
    pub(crate) setting: Setting,
    pub(crate) outcome: Outcome,
}

impl Cell {
    /// The figures, when the cell was measured.
    pub(crate) fn figures(&self) -> Option<&Figures> {
        match &self.outcome {
            Outcome::Measured(f) => Some(f),
            Outcome::Unavailable(_) => None,
        }
    }

    /// Read throughput in GB/s (10^9 bytes), when the cell was measured.
    pub(crate) fn read_gb_per_s(&self) -> Option<f64> {
        self.figures().map(|f| f.read_gb_per_s)
    }
}

/// The measured cell of `pattern` with the highest throughput (the first of equals).
pub(crate) fn best_of(cells: &[Cell], pattern: Pattern) -> Option<&Cell> {
    cells
        .iter()
        .filter(|c| c.setting.pattern == pattern)
        .filter_map(|c| c.read_gb_per_s().map(|g| (c, g)))
        .fold(None, |best: Option<(&Cell, f64)>, (c, g)| match best {
            Some((_, b)) if b >= g => best,
            _ => Some((c, g)),
        })
        .map(|(c, _)| c)
}

/// Measures one cell on `path` (`file_bytes` long). `stop` is polled between reads (Ctrl-C).
///
/// An io_uring the kernel refuses is an `Outcome::Unavailable` with the reason; every other
/// error (the file, the ring, a failed read) is returned.
pub(crate) fn measure(
    path: &Path,
    file_bytes: u64,
    setting: Setting,
    seconds: f64,
    passes_max: u64,
    stop: &dyn Fn() -> bool,
) -> Result<Outcome, Error> {
    let Setting {
        chunk_bytes,
        queue_depth,
        ..
    } = setting;
    let config = ReaderConfig {
        choice: setting.reader.choice(),
        queue_depth,
        chunk_bytes,
        pread_threads: setting.pread_threads().unwrap_or(1),
        ..ReaderConfig::default()
    };
    let ring = HostRing::new(queue_depth, chunk_bytes)?;
    let reader = match Reader::new(ring, &config) {
        Ok(reader) => reader,
        Err(e @ Error::UringSetup { .. }) => return Ok(Outcome::Unavailable(e.to_string())),
        Err(e) => return Err(e),
    };
    let file = reader.open_file(path)?;
    let align_bytes = reader.alignment_bytes(file)?;
    assert!(align_bytes <= SLOT_ALIGN_BYTES as u64 && chunk_bytes % SLOT_ALIGN_BYTES == 0);
    let chunk = chunk_bytes as u64;
    let offsets = match setting.pattern {
        Pattern::Sequential => sequential_offsets(file_bytes, chunk),
        Pattern::Random => random_offsets(file_bytes, chunk, RANDOM_SEED),
    };
    let sweep: Vec<Extent> = offsets
        .into_iter()
        .map(|offset| Extent::whole(file, offset, chunk))
        .collect();
    let started = Instant::now();
    let prefetcher = Prefetcher::new(reader, sweep, queue_depth)?;
    let pass_reads = prefetcher.sweep().len() as u64;
    let reads_max = pass_reads.saturating_mul(passes_max.max(1));
    let mut latencies = Vec::with_capacity((pass_reads as usize).min(LATENCY_SAMPLES_MAX));
    let mut reads = 0u64;
    let budget = Duration::from_secs_f64(seconds);
    while reads < reads_max && started.elapsed() < budget && !stop() {
        let slot = prefetcher.next()?;
        if latencies.len() < LATENCY_SAMPLES_MAX {
            latencies.push(slot.read_span().duration());
        }
        reads += 1;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    drop(prefetcher);
    Ok(Outcome::Measured(figures(
        reads,
        chunk_bytes as u64,
        elapsed_s,
        &mut latencies,
    )))
}

fn figures(reads: u64, chunk_bytes: u64, elapsed_s: f64, latencies: &mut [Duration]) -> Figures {
    latencies.sort_unstable();
    let bytes_read = reads * chunk_bytes;
    Figures {
        bytes_read,
        reads,
        elapsed_s,
        read_gb_per_s: bytes_read as f64 / elapsed_s / 1e9,
        iops: reads as f64 / elapsed_s,
        latency_us_p50: quantile_us(latencies, 0.50),
        latency_us_p99: quantile_us(latencies, 0.99),
    }
}

/// The `q` quantile (nearest rank) of sorted `latencies`, in microseconds to 0.1; 0 when empty.
fn quantile_us(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    (sorted[rank - 1].as_secs_f64() * 1e7).round() / 10.0
}

/// Whole chunks of the file that a sweep may read.
fn file_chunks(file_bytes: u64, chunk_bytes: u64) -> u64 {
    assert!(chunk_bytes > 0);
    file_bytes / chunk_bytes
}

/// Offsets of the first `SWEEP_EXTENTS_MAX` whole chunks of the file, in order.
pub(crate) fn sequential_offsets(file_bytes: u64, chunk_bytes: u64) -> Vec<u64> {
    let count = file_chunks(file_bytes, chunk_bytes).min(SWEEP_EXTENTS_MAX as u64);
    (0..count).map(|i| i * chunk_bytes).collect()
}

/// As many offsets as the file holds chunks (at most `SWEEP_EXTENTS_MAX`), each chunk-aligned
/// and drawn uniformly (with replacement) from the file's whole chunks.
pub(crate) fn random_offsets(file_bytes: u64, chunk_bytes: u64, seed: u64) -> Vec<u64> {
    let chunks = file_chunks(file_bytes, chunk_bytes);
    let count = chunks.min(SWEEP_EXTENTS_MAX as u64) as usize;
    random_indices(chunks, count, seed)
        .map(|i| i * chunk_bytes)
        .collect()
}

/// `count` indices in `0..range` from a splitmix64 stream seeded with `seed`.
pub(crate) fn random_indices(range: u64, count: usize, seed: u64) -> impl Iterator<Item = u64> {
    let mut state = seed;
    (0..count).map(move |_| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // Multiply-shift maps 64 random bits onto 0..range (bias below 2^-40 for our ranges).
        ((u128::from(z) * u128::from(range)) >> 64) as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(pattern: Pattern, chunk_bytes: usize, gb: Option<f64>) -> Cell {
        let setting = Setting {
            pattern,
            reader: ReaderSel::Uring,
            chunk_bytes,
            queue_depth: 4,
        };
        let outcome = match gb {
            Some(read_gb_per_s) => Outcome::Measured(Figures {
                bytes_read: 1,
                reads: 1,
                elapsed_s: 1.0,
                read_gb_per_s,
                iops: 1.0,
                latency_us_p50: 1.0,
                latency_us_p99: 1.0,
            }),
            None => Outcome::Unavailable("no".into()),
        };
        Cell { setting, outcome }
    }

    #[test]
    fn random_offsets_are_in_range_aligned_and_deterministic() {
        let (file_bytes, chunk) = ((64 << 20) + 12_345, 256 << 10);
        let a = random_offsets(file_bytes, chunk, RANDOM_SEED);
        let b = random_offsets(file_bytes, chunk, RANDOM_SEED);
        assert_eq!(a.len(), 256);
        assert_eq!(a, b);
        for &offset in &a {
            assert_eq!(offset % chunk, 0);
            assert!(offset + chunk <= file_bytes);
        }
        let distinct: std::collections::BTreeSet<u64> = a.iter().copied().collect();
        assert!(distinct.len() > 128, "{} distinct offsets", distinct.len());
        let c = random_offsets(file_bytes, chunk, RANDOM_SEED + 1);
        assert_ne!(a, c);
    }

    #[test]
    fn random_indices_cover_their_range() {
        let mut seen = [0u32; 8];
        for i in random_indices(8, 8000, 1) {
            seen[i as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }

    #[test]
    fn sweeps_are_bounded() {
        let s = sequential_offsets((10 << 20) + 5, 1 << 20);
        assert_eq!(s.len(), 10);
        assert_eq!(s[3], 3 << 20);
        assert!(sequential_offsets(4095, 4096).is_empty());
        assert_eq!(sequential_offsets(1 << 40, 4096).len(), SWEEP_EXTENTS_MAX);
        assert_eq!(random_offsets(1 << 40, 4096, 7).len(), SWEEP_EXTENTS_MAX);
    }

    #[test]
    fn best_is_the_fastest_measured_cell_of_its_pattern() {
        let cells = [
            cell(Pattern::Sequential, 1 << 20, Some(1.0)),
            cell(Pattern::Random, 1 << 20, Some(9.0)),
            cell(Pattern::Sequential, 4 << 20, Some(2.5)),
            cell(Pattern::Sequential, 8 << 20, None),
            cell(Pattern::Sequential, 2 << 20, Some(2.5)),
        ];
        let best = best_of(&cells, Pattern::Sequential).map(|c| c.setting.chunk_bytes);
        assert_eq!(best, Some(4 << 20));
        let best = best_of(&cells, Pattern::Random).and_then(Cell::read_gb_per_s);
        assert_eq!(best, Some(9.0));
        assert!(best_of(&cells[3..4], Pattern::Sequential).is_none());
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut l: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let f = figures(100, 4096, 2.0, &mut l);
        assert_eq!(f.latency_us_p50, 50.0);
        assert_eq!(f.latency_us_p99, 99.0);
        assert_eq!(f.iops, 50.0);
        assert_eq!(f.bytes_read, 409_600);
        assert_eq!(quantile_us(&[], 0.5), 0.0);
    }

    #[test]
    fn pread_parallelism_is_clamped() {
        let s = Setting {
            pattern: Pattern::Random,
            reader: ReaderSel::Pread,
            chunk_bytes: 4096,
            queue_depth: QUEUE_DEPTH_MAX,
        };
        assert_eq!(s.pread_threads(), Some(PREAD_THREADS_MAX));
        let u = Setting {
            reader: ReaderSel::Uring,
            ..s
        };
        assert_eq!(u.pread_threads(), None);
    }
}

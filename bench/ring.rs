//! The ring's and prefetcher's own cost, without the disk: the extents per second that slot
//! bookkeeping (claim, arm, submit, complete, wait, lend, release, top up) sustains, so that a
//! regression there shows apart from the drive's speed (`bench/io.rs` measures the disk).
//!
//! - `ring_sim`: the real `Prefetcher` over `Reader::simulated`, whose reads move no bytes and
//!   complete when the bench advances the simulated drive's clock: no thread, no copy, only the
//!   bookkeeping (plus the drive model's arithmetic, a few hundred ns per read). In extents/s.
//! - `ring_tmpfs`: the real readers (io_uring, pread pool) on a file in /dev/shm (a tmpfs: every
//!   read is a copy from memory, with or without O_DIRECT, which Linux 6.6+ tmpfs accepts):
//!   small extents show the per-extent cost of the reader threads and completions, large ones
//!   the copy. In extents/s and bytes/s.
//!
//! `cargo bench --bench ring` (about 20 s)

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "common.rs"]
mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_runtime::thermal::{DriveModelParams, SimDrive};
use sluice_runtime::{
    Extent, FileId, HostRing, Prefetcher, Reader, ReaderChoice, ReaderConfig, ReaderKind,
};

/// Extents in one sweep (one benchmark iteration consumes them all).
const SWEEP_EXTENTS: usize = 32;
/// Extents kept in flight ahead of the consumer; the ring has one slot more, as the engine's.
const DEPTH: usize = 4;
const SLOTS: usize = DEPTH + 1;
/// Extent sizes: one 64 KiB chunk (bookkeeping-bound), and 4 MiB in four 1 MiB chunks
/// (the default chunk size; copy-bound on tmpfs).
const SMALL_BYTES: usize = 64 << 10;
const LARGE_BYTES: usize = 4 << 20;
/// Where a page-cache file lives: a tmpfs, so reads come from memory.
const TMPFS: &str = "/dev/shm";

fn sweep(file: FileId, extent_bytes: usize) -> Vec<Extent> {
    common::extents_from_start(file, extent_bytes, SWEEP_EXTENTS)
}

/// Per-iteration throughput: the sweep's extents (and their bytes, where bytes move).
fn extents(extent_bytes: Option<usize>) -> Throughput {
    let elements = SWEEP_EXTENTS as u64;
    match extent_bytes {
        Some(bytes) => Throughput::ElementsAndBytes {
            elements,
            bytes: elements * bytes as u64,
        },
        None => Throughput::Elements(elements),
    }
}

/// The prefetcher over a simulated drive, one sweep of `extent_bytes` extents per iteration.
fn ring_sim(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut group = c.benchmark_group("ring_sim");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(extents(None));
    for extent_bytes in [SMALL_BYTES, LARGE_BYTES] {
        let drive = SimDrive::new(DriveModelParams::default());
        let ring = HostRing::new(SLOTS, extent_bytes).expect("ring");
        let reader =
            Reader::simulated(ring, &ReaderConfig::default(), &drive).expect("simulated reader");
        // A sparse backing file: the simulated drive never reads it.
        let path = dir.path().join(format!("sim-{extent_bytes}.bin"));
        let file = std::fs::File::create(&path).expect("create backing file");
        file.set_len((SWEEP_EXTENTS * extent_bytes) as u64)
            .expect("size backing file");
        let id = reader.open_file(&path).expect("open backing file");
        let prefetcher =
            Prefetcher::new(reader, sweep(id, extent_bytes), DEPTH).expect("prefetcher");
        let mut seq = 0u64;
        let name = BenchmarkId::new("extent", format!("{}KiB", extent_bytes >> 10));
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..SWEEP_EXTENTS {
                    drive
                        .advance(f64::INFINITY, Some(seq))
                        .expect("simulated read completes");
                    let slot = prefetcher.next().expect("extent");
                    black_box(slot.bytes().len());
                    seq += 1;
                }
            })
        });
    }
    group.finish();
}

/// A file of `bytes` in `dir`.
fn tmpfs_file(dir: &Path, bytes: usize) -> PathBuf {
    let path = dir.join(format!("ring-{bytes}.bin"));
    let mut file = std::fs::File::create(&path).expect("create tmpfs file");
    let block: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
    for _ in 0..bytes.div_ceil(block.len()) {
        file.write_all(&block).expect("write tmpfs file");
    }
    path
}

/// Whether `dir` is the mount point of a tmpfs (from /proc/mounts).
fn is_tmpfs(dir: &str) -> bool {
    std::fs::read_to_string("/proc/mounts").is_ok_and(|mounts| {
        mounts.lines().any(|line| {
            let mut fields = line.split_whitespace().skip(1);
            fields.next() == Some(dir) && fields.next() == Some("tmpfs")
        })
    })
}

/// Both readers sweeping a tmpfs file, small and large extents.
fn ring_tmpfs(c: &mut Criterion) {
    if !is_tmpfs(TMPFS) {
        eprintln!("ring_tmpfs: skipped, {TMPFS} is not a tmpfs on this machine");
        return;
    }
    let dir = tempfile::tempdir_in(TMPFS).expect("tempdir on tmpfs");
    let mut group = c.benchmark_group("ring_tmpfs");
    // Ten samples: a sweep of 4 MiB extents takes 10-30 ms.
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for extent_bytes in [SMALL_BYTES, LARGE_BYTES] {
        let path = tmpfs_file(dir.path(), SWEEP_EXTENTS * extent_bytes);
        group.throughput(extents(Some(extent_bytes)));
        for choice in [ReaderChoice::Uring, ReaderChoice::Pread] {
            let shape = (SLOTS, extent_bytes, SWEEP_EXTENTS, DEPTH);
            let Some(prefetcher) = common::prefetcher("ring_tmpfs", choice, &path, shape) else {
                continue;
            };
            let kind: ReaderKind = prefetcher.reader().kind();
            let name = BenchmarkId::new(kind.name(), format!("{}KiB", extent_bytes >> 10));
            group.bench_function(name, |b| {
                b.iter(|| {
                    for _ in 0..SWEEP_EXTENTS {
                        let slot = prefetcher.next().expect("extent");
                        black_box(slot.bytes()[0]);
                    }
                })
            });
        }
        std::fs::remove_file(&path).expect("remove tmpfs file");
    }
    group.finish();
}

criterion_group!(benches, ring_sim, ring_tmpfs);
criterion_main!(benches);

//! Criterion bench of the runtime's ring and readers: sweeping a 256 MiB file on the real disk
//! through a `Prefetcher`, for both readers, at the default chunk size and queue depth.
//! Throughput is reported in bytes. (`sluice bench io` measures a 2 GiB+ file against fio;
//! `bench/ring.rs` measures the ring's own per-extent cost without the disk.)
//!
//! `cargo bench --bench io` (about 30 s; the file is written to target/tmp first)

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_runtime::ReaderChoice;

#[path = "common.rs"]
mod common;

const FILE_BYTES: usize = 256 << 20;
const SLOT_BYTES: usize = 16 << 20;
const SLOTS: usize = 4;

fn write_file(path: &std::path::Path) {
    let mut file = std::fs::File::create(path).expect("create bench file");
    let block: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
    for _ in 0..FILE_BYTES / block.len() {
        file.write_all(&block).expect("write bench file");
    }
    file.sync_all().expect("sync bench file");
}

fn sweep_file(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir on disk");
    let path = dir.path().join("bench-io.bin");
    write_file(&path);
    let mut group = c.benchmark_group("io");
    group.throughput(Throughput::Bytes(FILE_BYTES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for choice in [ReaderChoice::Uring, ReaderChoice::Pread] {
        let shape = (SLOTS, SLOT_BYTES, FILE_BYTES / SLOT_BYTES, SLOTS);
        let Some(prefetcher) = common::prefetcher("io", choice, &path, shape) else {
            continue;
        };
        let name = format!("sweep-256MiB/{}", prefetcher.reader().kind().name());
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..prefetcher.sweep().len() {
                    let slot = prefetcher.next().expect("extent");
                    black_box(slot.bytes()[0]);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sweep_file);
criterion_main!(benches);

//! The one big-file test: a 2 GiB file swept three times by each reader with flat memory.
//!
//! Kept alone in its own test binary so the RSS it measures is its own. Every 8-byte word of
//! the file holds its own word index, so checking content is a cheap comparison, not a
//! second read of the file.

mod common;

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use common::{choices, disk_tempdir, reader, rss_bytes};
use sluice_runtime::{Extent, Prefetcher};

const MIB: usize = 1 << 20;
const FILE_BYTES: usize = 2 << 30;
const SLOT_BYTES: usize = 8 * MIB;
const SLOTS: usize = 8;
const PASSES: usize = 3;
/// Allowed RSS growth on top of the ring while sweeping.
const RSS_SLACK_BYTES: u64 = 16 * MIB as u64;

/// Writes the pattern file block by block (1 MiB at a time) and drops it from the page cache.
fn write_pattern_file(path: &Path) {
    let mut file = File::create(path).expect("create");
    file.set_len(FILE_BYTES as u64).expect("set_len");
    let mut block = vec![0u8; MIB];
    for b in 0..FILE_BYTES / MIB {
        let first_word = (b * MIB / 8) as u64;
        for (w, word) in block.chunks_exact_mut(8).enumerate() {
            word.copy_from_slice(&(first_word + w as u64).to_le_bytes());
        }
        file.write_all(&block).expect("write block");
    }
    file.sync_all().expect("sync");
    // SAFETY: posix_fadvise takes integers only; the descriptor is open.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// Whether `bytes`, read from `file_offset`, hold the pattern.
fn holds_pattern(bytes: &[u8], file_offset: u64) -> bool {
    let first_word = file_offset / 8;
    bytes.chunks_exact(8).enumerate().all(|(w, word)| {
        u64::from_le_bytes(word.try_into().expect("8 bytes")) == first_word + w as u64
    })
}

#[test]
fn two_gib_file_swept_three_times_with_flat_memory() {
    let dir = disk_tempdir();
    let path = dir.path().join("two_gib.bin");
    write_pattern_file(&path);
    for choice in choices() {
        let reader = reader(choice, SLOTS, SLOT_BYTES, 32, MIB);
        let ring_bytes = reader.ring().slab_bytes() as u64;
        let file = reader.open_file(&path).expect("open");
        let extents = FILE_BYTES / SLOT_BYTES;
        let sweep = (0..extents)
            .map(|i| Extent::whole(file, (i * SLOT_BYTES) as u64, SLOT_BYTES as u64))
            .collect();
        let prefetcher = Prefetcher::new(reader, sweep, SLOTS - 1).expect("prefetcher");
        let (rss_start, _) = rss_bytes();
        let mut rss_max = rss_start;
        for n in 0..PASSES * extents {
            let slot = prefetcher.next().expect("extent");
            let offset = ((n % extents) * SLOT_BYTES) as u64;
            assert!(
                holds_pattern(slot.bytes(), offset),
                "{choice:?}: extent {n} differs"
            );
            if n % 16 == 0 {
                rss_max = rss_max.max(rss_bytes().0);
            }
        }
        let stats = prefetcher.stats();
        drop(prefetcher);
        let (_, hwm) = rss_bytes();
        let growth = rss_max.saturating_sub(rss_start);
        eprintln!(
            "{choice:?}: {} GiB read, rss at start {} MiB, growth {} KiB, hwm {} MiB, ring {} MiB, \
             latency p50 {} us",
            stats.bytes_read >> 30,
            rss_start >> 20,
            growth >> 10,
            hwm >> 20,
            ring_bytes >> 20,
            stats.latency_us_quantile(0.5)
        );
        assert!(stats.bytes_read >= (PASSES * FILE_BYTES) as u64);
        assert!(
            growth <= ring_bytes + RSS_SLACK_BYTES,
            "{choice:?}: RSS grew {growth} bytes"
        );
        assert!(
            hwm <= rss_start + ring_bytes + RSS_SLACK_BYTES,
            "{choice:?}: peak RSS {hwm}"
        );
    }
    std::fs::remove_file(&path).expect("delete the 2 GiB file");
}

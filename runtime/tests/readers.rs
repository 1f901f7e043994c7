//! Both readers against std::fs on real files: random extents, files much larger than the ring,
//! extents past EOF, extents larger than a slot, tmpfs (buffered) files.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{choices, disk_tempdir, reader, std_read, write_random_file, Rng};
use sluice_runtime::{
    Error, Extent, HostRing, Prefetcher, Reader, ReaderChoice, ReaderConfig, RegistrarError,
    SlabRegistrar, SlotState,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// Random aligned extents, with random payloads inside them, some reaching past EOF.
fn random_sweep(
    rng: &mut Rng,
    file: sluice_runtime::FileId,
    file_len: u64,
    align: u64,
    slot_bytes: u64,
) -> Vec<Extent> {
    (0..48)
        .map(|i| {
            let len = (1 + rng.below(slot_bytes / align)) * align;
            // Every eighth extent is the file's tail, its aligned end past EOF.
            let offset = if i % 8 == 7 {
                (file_len - 1) / align * align
            } else {
                rng.below((file_len - len) / align + 1) * align
            };
            let readable = (file_len - offset).min(len);
            let payload_offset = rng.below(readable);
            let payload_len = 1 + rng.below(readable - payload_offset);
            Extent {
                file,
                offset,
                len,
                payload_offset,
                payload_len,
            }
        })
        .collect()
}

#[test]
fn random_extents_match_std_fs_for_both_readers() {
    let dir = disk_tempdir();
    // An odd size, so the last page of the file is partial.
    let (path, bytes) = write_random_file(dir.path(), "random.bin", 24 * MIB + 12_345, 1);
    for choice in choices() {
        for (queue_depth, chunk_bytes) in [(1, 4 * KIB), (4, 64 * KIB), (32, 256 * KIB)] {
            let reader = reader(choice, 4, 3 * MIB, queue_depth, chunk_bytes);
            let file = reader.open_file(&path).expect("open");
            let align = reader.alignment_bytes(file).expect("alignment");
            assert!(
                align.is_power_of_two() && align <= 4096,
                "alignment {align}"
            );
            assert!(
                reader.is_direct(file).expect("known file"),
                "ext4 does O_DIRECT"
            );
            let fixed = reader.fixed_registration();
            eprintln!("{choice:?}: fixed (buffers, files) = {fixed:?}");
            let mut rng = Rng(queue_depth as u64 * 7919 + chunk_bytes as u64);
            let sweep = random_sweep(&mut rng, file, bytes.len() as u64, align, 3 * MIB as u64);
            let prefetcher = Prefetcher::new(reader, sweep.clone(), 3).expect("prefetcher");
            for n in 0..2 * sweep.len() {
                let slot = prefetcher.next().expect("extent");
                let e = sweep[n % sweep.len()];
                assert_eq!(slot.sweep_index(), n % sweep.len());
                assert_eq!(slot.sequence(), n as u64);
                let start = (e.offset + e.payload_offset) as usize;
                let want = &bytes[start..start + e.payload_len as usize];
                assert!(
                    slot.bytes() == want,
                    "{choice:?} qd {queue_depth} chunk {chunk_bytes}: extent {n} differs"
                );
            }
            let stats = prefetcher.stats();
            assert_eq!(stats.extents_consumed, 2 * sweep.len() as u64);
            assert_eq!(stats.extents_failed, 0);
            assert!(stats.bytes_read > 0);
        }
    }
    // The reference itself reads the same bytes.
    assert_eq!(std_read(&path, 4096, 100), bytes[4096..4196]);
}

#[test]
fn file_much_larger_than_the_ring() {
    let dir = disk_tempdir();
    let (path, bytes) = write_random_file(dir.path(), "large.bin", 64 * MIB, 2);
    for choice in choices() {
        let reader = reader(choice, 3, MIB, 8, 256 * KIB);
        let file = reader.open_file(&path).expect("open");
        let sweep: Vec<Extent> = (0..64)
            .map(|i| Extent::whole(file, (i * MIB) as u64, MIB as u64))
            .collect();
        let prefetcher = Prefetcher::new(reader, sweep, 3).expect("prefetcher");
        for n in 0..128 {
            let slot = prefetcher.next().expect("extent");
            let i = n % 64;
            assert!(
                slot.bytes() == &bytes[i * MIB..(i + 1) * MIB],
                "{choice:?}: block {i} pass {}",
                n / 64
            );
        }
        // Everything consumed was read, plus at most the three extents kept ahead.
        let bytes_read = prefetcher.stats().bytes_read;
        assert!(
            (128 * MIB as u64..=131 * MIB as u64).contains(&bytes_read),
            "{bytes_read}"
        );
    }
}

#[test]
fn extent_larger_than_a_slot_is_rejected_before_reading() {
    let dir = disk_tempdir();
    let (path, _) = write_random_file(dir.path(), "small.bin", 4 * MIB, 3);
    for choice in choices() {
        let reader = reader(choice, 2, MIB, 4, 256 * KIB);
        let file = reader.open_file(&path).expect("open");
        let sweep = vec![
            Extent::whole(file, 0, MIB as u64),
            Extent::whole(file, 0, 2 * MIB as u64),
        ];
        match Prefetcher::new(reader, sweep, 2) {
            Err(Error::ExtentTooLarge {
                index: 1,
                len_bytes,
                slot_bytes,
            }) => {
                assert_eq!((len_bytes, slot_bytes), (2 * MIB as u64, MIB));
            }
            other => panic!("expected ExtentTooLarge, got {:?}", other.err()),
        }
    }
}

#[test]
fn malformed_sweeps_are_rejected() {
    let dir = disk_tempdir();
    let (path, _) = write_random_file(dir.path(), "small.bin", MIB, 4);
    let reader = reader(ReaderChoice::Pread, 2, MIB, 4, 256 * KIB);
    let file = reader.open_file(&path).expect("open");
    let misaligned = vec![Extent::whole(file, 100, 4096)];
    assert!(matches!(
        Prefetcher::new(reader, misaligned, 1),
        Err(Error::ExtentMisaligned { .. })
    ));
    let reader = common::reader(ReaderChoice::Pread, 2, MIB, 4, 256 * KIB);
    assert!(matches!(
        Prefetcher::new(reader, vec![], 1),
        Err(Error::EmptySweep)
    ));
    let reader = common::reader(ReaderChoice::Pread, 2, MIB, 4, 256 * KIB);
    let other = common::reader(ReaderChoice::Pread, 1, 4096, 1, 4096);
    let foreign = other.open_file(&path).expect("open");
    let _ = other.open_file(&path).expect("open twice");
    let unknown = other.open_file(&path).expect("open thrice");
    assert_eq!(foreign.index(), 0);
    let sweep = vec![Extent::whole(unknown, 0, 4096)];
    assert!(matches!(
        Prefetcher::new(reader, sweep, 1),
        Err(Error::UnknownFile { index: 0, .. })
    ));
    let missing = other.open_file(dir.path().join("absent.bin"));
    assert!(matches!(
        missing,
        Err(Error::Open {
            errno: libc::ENOENT,
            ..
        })
    ));
}

#[test]
fn payload_past_end_of_file_is_truncation() {
    let dir = disk_tempdir();
    let (path, _) = write_random_file(dir.path(), "short.bin", MIB + 100, 5);
    for choice in choices() {
        let reader = reader(choice, 2, MIB, 4, 256 * KIB);
        let file = reader.open_file(&path).expect("open");
        // The tail extent may reach past EOF, but its payload may not.
        let fine = Extent {
            payload_offset: 0,
            payload_len: 100,
            ..Extent::whole(file, MIB as u64, 4096)
        };
        let bad = Extent {
            payload_offset: 0,
            payload_len: 101,
            ..fine
        };
        let prefetcher = Prefetcher::new(reader, vec![fine, bad], 2).expect("prefetcher");
        assert_eq!(prefetcher.next().expect("tail extent").bytes().len(), 100);
        match prefetcher.next() {
            Err(Error::FileTruncated {
                needed_bytes,
                size_bytes,
                ..
            }) => {
                assert_eq!(
                    (needed_bytes, size_bytes),
                    (MIB as u64 + 101, MIB as u64 + 100)
                );
            }
            other => panic!("expected FileTruncated, got {:?}", other.err()),
        }
        assert!(matches!(prefetcher.next(), Err(Error::Stopped)));
    }
}

#[test]
fn tmpfs_files_are_read_buffered() {
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("no /dev/shm here; skipping the buffered (tmpfs) path");
        return;
    }
    let dir = tempfile::tempdir_in(shm).expect("tempdir on tmpfs");
    let (path, bytes) = write_random_file(dir.path(), "tmpfs.bin", 4 * MIB + 7, 6);
    for choice in choices() {
        let reader = reader(choice, 2, MIB, 4, 256 * KIB);
        let file = reader.open_file(&path).expect("open");
        let direct = reader.is_direct(file).expect("known file");
        let sweep: Vec<Extent> = (0..5)
            .map(|i| Extent::whole(file, (i * MIB) as u64, MIB as u64))
            .collect();
        let tail = Extent {
            payload_len: 7,
            ..sweep[4]
        };
        let sweep = [&sweep[..4], &[tail]].concat();
        let prefetcher = Prefetcher::new(reader, sweep, 2).expect("prefetcher");
        for i in 0..5 {
            let slot = prefetcher.next().expect("extent");
            let end = ((i + 1) * MIB).min(bytes.len());
            assert!(
                slot.bytes() == &bytes[i * MIB..end],
                "{choice:?} direct={direct}: block {i}"
            );
        }
    }
}

#[derive(Default)]
struct CountingRegistrar {
    registered: AtomicUsize,
    unregistered: AtomicUsize,
}

impl SlabRegistrar for CountingRegistrar {
    fn register(&self, ptr: *mut u8, len_bytes: usize) -> Result<(), RegistrarError> {
        assert_eq!(ptr as usize % 4096, 0);
        self.registered.fetch_add(len_bytes, Ordering::SeqCst);
        Ok(())
    }
    fn unregister(&self, _ptr: *mut u8, len_bytes: usize) {
        self.unregistered.fetch_add(len_bytes, Ordering::SeqCst);
    }
}

#[test]
fn registrar_sees_the_slab_once_and_reads_still_work() {
    let dir = disk_tempdir();
    let (path, bytes) = write_random_file(dir.path(), "reg.bin", 2 * MIB, 7);
    for choice in choices() {
        let registrar = Arc::new(CountingRegistrar::default());
        let ring = HostRing::with_registrar(2, MIB, registrar.clone()).expect("ring");
        let config = ReaderConfig {
            choice,
            ..ReaderConfig::default()
        };
        let reader = Reader::new(Arc::clone(&ring), &config).expect("reader");
        let file = reader.open_file(&path).expect("open");
        let prefetcher =
            Prefetcher::new(reader, vec![Extent::whole(file, MIB as u64, MIB as u64)], 1)
                .expect("p");
        assert!(prefetcher.next().expect("extent").bytes() == &bytes[MIB..]);
        drop(prefetcher);
        assert_eq!(ring.count(SlotState::Free), 2);
        assert_eq!(
            registrar.unregistered.load(Ordering::SeqCst),
            0,
            "ring still alive"
        );
        drop(ring);
        assert_eq!(registrar.registered.load(Ordering::SeqCst), 2 * MIB);
        assert_eq!(registrar.unregistered.load(Ordering::SeqCst), 2 * MIB);
    }
}

#[test]
fn uring_without_fixed_buffers_reads_the_same() {
    if !choices().contains(&ReaderChoice::Uring) {
        return;
    }
    let dir = disk_tempdir();
    let (path, bytes) = write_random_file(dir.path(), "plain.bin", 8 * MIB + 4096 + 17, 8);
    let ring = HostRing::new(3, 2 * MIB).expect("ring");
    let config = ReaderConfig {
        choice: ReaderChoice::Uring,
        fixed: false,
        queue_depth: 16,
        chunk_bytes: 128 * KIB,
        ..ReaderConfig::default()
    };
    let reader = Reader::new(ring, &config).expect("reader");
    assert_eq!(reader.fixed_registration(), (false, false));
    let file = reader.open_file(&path).expect("open");
    let len = bytes.len() as u64;
    let mut sweep: Vec<Extent> = (0..4)
        .map(|i| Extent::whole(file, i * 2 * MIB as u64, 2 * MIB as u64))
        .collect();
    let tail_offset = 8 * MIB as u64;
    sweep.push(Extent {
        payload_offset: 3,
        payload_len: len - tail_offset - 3,
        ..Extent::whole(file, tail_offset, 8192)
    });
    let prefetcher = Prefetcher::new(reader, sweep.clone(), 3).expect("prefetcher");
    for n in 0..10 {
        let e = sweep[n % sweep.len()];
        let start = (e.offset + e.payload_offset) as usize;
        let slot = prefetcher.next().expect("extent");
        assert!(
            slot.bytes() == &bytes[start..start + e.payload_len as usize],
            "extent {n}"
        );
    }
}

#[test]
fn handles_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Prefetcher>();
    send_sync::<Reader>();
    send_sync::<HostRing>();
    send_sync::<sluice_runtime::PrefetchControl>();
    send::<sluice_runtime::SlotGuard<'static>>();
}

//! The prefetcher under change: files truncated, deleted or replaced mid-run, depth changed
//! mid-sweep from another thread, a slow consumer, cancellation and teardown.

mod common;

use std::fs::OpenOptions;
use std::time::{Duration, Instant};

use common::{choices, disk_tempdir, reader, write_random_file};
use sluice_runtime::{Error, Extent, Prefetcher, ReaderChoice, SlotState};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A prefetcher over `path` cut into `count` whole extents of `MIB` bytes.
fn blocks(
    choice: ReaderChoice,
    path: &std::path::Path,
    count: usize,
    slots: usize,
    depth: usize,
) -> Prefetcher {
    let reader = reader(choice, slots, MIB, 8, 256 * KIB);
    let file = reader.open_file(path).expect("open");
    let sweep = (0..count)
        .map(|i| Extent::whole(file, (i * MIB) as u64, MIB as u64))
        .collect();
    Prefetcher::new(reader, sweep, depth).expect("prefetcher")
}

/// Consumes until an error; every extent handed out must hold the original bytes.
/// `start` is the stream position of the next extent; returns the error and its position.
fn consume_until_error(
    prefetcher: &Prefetcher,
    original: &[u8],
    count: usize,
    start: usize,
) -> (Error, usize) {
    for n in start..start + 4 * count {
        match prefetcher.next() {
            Ok(slot) => {
                let i = n % count;
                assert!(
                    slot.bytes() == &original[i * MIB..(i + 1) * MIB],
                    "extent {n} is not the original"
                );
            }
            Err(e) => return (e, n),
        }
    }
    panic!("the change to the file was never noticed");
}

#[test]
fn file_truncated_mid_run_is_an_error_not_garbage() {
    let dir = disk_tempdir();
    for choice in choices() {
        let (path, original) = write_random_file(dir.path(), "trunc.bin", 16 * MIB, 11);
        let prefetcher = blocks(choice, &path, 16, 4, 2);
        for i in 0..4 {
            assert!(
                prefetcher.next().expect("before truncation").bytes()
                    == &original[i * MIB..(i + 1) * MIB]
            );
        }
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open for truncation")
            .set_len(8 * MIB as u64)
            .expect("truncate");
        let (e, n) = consume_until_error(&prefetcher, &original, 16, 4);
        assert!(
            matches!(e, Error::FileTruncated { size_bytes, .. } if size_bytes <= 8 * MIB as u64),
            "{choice:?}: {e}"
        );
        assert!(
            n <= 8,
            "{choice:?}: extent 8 lies past the new end but the error came at {n}"
        );
        assert!(
            e.to_string().contains("trunc.bin"),
            "the message names the file: {e}"
        );
        assert!(matches!(prefetcher.next(), Err(Error::Stopped)));
    }
}

#[test]
fn file_deleted_mid_run_is_an_error() {
    let dir = disk_tempdir();
    for choice in choices() {
        let (path, original) = write_random_file(dir.path(), "deleted.bin", 8 * MIB, 12);
        let prefetcher = blocks(choice, &path, 8, 4, 2);
        prefetcher.next().expect("before deletion");
        std::fs::remove_file(&path).expect("delete");
        let (e, n) = consume_until_error(&prefetcher, &original, 8, 1);
        assert!(matches!(e, Error::FileDeleted { .. }), "{choice:?}: {e}");
        assert!(n <= 1 + 4, "{choice:?}: noticed only at {n}");
    }
}

#[test]
fn file_replaced_mid_run_is_an_error() {
    let dir = disk_tempdir();
    for choice in choices() {
        let (path, original) = write_random_file(dir.path(), "replaced.bin", 8 * MIB, 13);
        let prefetcher = blocks(choice, &path, 8, 4, 2);
        prefetcher.next().expect("before replacement");
        let (new_path, _) = write_random_file(dir.path(), "new.bin", 8 * MIB, 14);
        std::fs::rename(&new_path, &path).expect("replace by rename");
        let (e, n) = consume_until_error(&prefetcher, &original, 8, 1);
        assert!(matches!(e, Error::FileReplaced { .. }), "{choice:?}: {e}");
        assert!(n <= 1 + 4, "{choice:?}: noticed only at {n}");
    }
}

/// Waits until `cond` holds, up to 10 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn depth_changes_mid_sweep_from_another_thread() {
    let dir = disk_tempdir();
    let (path, original) = write_random_file(dir.path(), "depth.bin", 16 * MIB, 15);
    for choice in choices() {
        let prefetcher = blocks(choice, &path, 16, 8, 1);
        let control = prefetcher.control();
        let ahead = || {
            let s = prefetcher.stats();
            (
                s.extents_issued - s.extents_consumed,
                s.extents_read - s.extents_consumed,
            )
        };
        eventually("one extent read ahead", || ahead().1 == 1);
        std::thread::scope(|scope| {
            scope
                .spawn(|| assert_eq!(control.set_depth(6), Some(6)))
                .join()
                .expect("governor thread");
        });
        eventually("six extents read ahead", || ahead().1 == 6);
        assert_eq!(control.set_depth(100), Some(8), "clamped to the slot count");
        eventually("eight extents read ahead", || ahead().1 == 8);
        assert_eq!(prefetcher.set_depth(1), 1);
        for n in 0..24 {
            let slot = prefetcher.next().expect("extent");
            let i = n % 16;
            assert!(
                slot.bytes() == &original[i * MIB..(i + 1) * MIB],
                "{choice:?}: extent {n}"
            );
            drop(slot);
            if n >= 8 {
                assert!(
                    ahead().0 <= 1,
                    "{choice:?}: depth 1 but {} ahead",
                    ahead().0
                );
            }
        }
        assert_eq!(prefetcher.set_depth(0), 0);
        // The one extent already ahead is still delivered; after it nothing is read ahead.
        assert!(prefetcher.next().expect("extent 24").bytes() == &original[8 * MIB..9 * MIB]);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(ahead().0, 0, "depth 0 reads on demand only");
        let slot = prefetcher.next().expect("demand read");
        assert!(slot.bytes() == &original[9 * MIB..10 * MIB]);
    }
}

#[test]
fn slow_consumer_gets_back_pressure() {
    let dir = disk_tempdir();
    let (path, original) = write_random_file(dir.path(), "slow.bin", 32 * MIB, 16);
    for choice in choices() {
        let prefetcher = blocks(choice, &path, 32, 4, 4);
        let ring = std::sync::Arc::clone(prefetcher.reader().ring());
        let mut held = Vec::new();
        for n in 0..40 {
            let slot = prefetcher.next().expect("extent");
            let i = n % 32;
            assert!(slot.bytes() == &original[i * MIB..(i + 1) * MIB]);
            held.push(slot);
            if held.len() > 2 {
                held.remove(0);
            }
            std::thread::sleep(Duration::from_millis(3));
            let s = prefetcher.stats();
            assert!(
                s.extents_issued - s.extents_consumed <= 4,
                "at most depth ahead"
            );
            assert!(
                s.bytes_read <= (s.extents_consumed + 4) * MIB as u64,
                "reader ran ahead of the ring"
            );
            assert_eq!(ring.count(SlotState::InUse), held.len());
        }
        // Holding every slot: the next extent has nowhere to go, which is an error, not a hang.
        let mut all = vec![
            prefetcher.next().expect("third"),
            prefetcher.next().expect("fourth"),
        ];
        all.append(&mut held);
        assert!(matches!(
            prefetcher.next(),
            Err(Error::RingExhausted { slots: 4 })
        ));
        drop(all);
        prefetcher.next().expect("slots released");
    }
}

#[test]
fn dropping_mid_sweep_joins_threads_and_frees_every_slot() {
    let dir = disk_tempdir();
    let (path, _) = write_random_file(dir.path(), "cancel.bin", 32 * MIB, 17);
    for choice in choices() {
        for consumed in [0, 3] {
            let prefetcher = blocks(choice, &path, 32, 8, 8);
            let ring = std::sync::Arc::clone(prefetcher.reader().ring());
            let threads = prefetcher.reader().live_threads();
            assert!(threads.count() >= 1);
            for _ in 0..consumed {
                prefetcher.next().expect("extent");
            }
            drop(prefetcher); // reads are in flight here
            assert_eq!(threads.count(), 0, "{choice:?}: reader threads left behind");
            assert_eq!(ring.count(SlotState::Free), 8, "{choice:?}: slot leaked");
        }
    }
}

#[test]
fn cancel_from_another_thread_stops_the_consumer() {
    let dir = disk_tempdir();
    let (path, _) = write_random_file(dir.path(), "cancel2.bin", 8 * MIB, 18);
    for choice in choices() {
        let prefetcher = blocks(choice, &path, 8, 4, 4);
        let control = prefetcher.control();
        let ring = std::sync::Arc::clone(prefetcher.reader().ring());
        let threads = prefetcher.reader().live_threads();
        std::thread::scope(|scope| {
            let watched = &prefetcher;
            scope.spawn(move || {
                eventually("two extents consumed", || {
                    watched.stats().extents_consumed >= 2
                });
                control.cancel();
            });
            let mut consumed = 0;
            let e = loop {
                match prefetcher.next() {
                    Ok(_) => consumed += 1,
                    Err(e) => break e,
                }
            };
            assert!(matches!(e, Error::Cancelled), "{choice:?}: {e}");
            assert!(consumed > 0);
        });
        assert!(matches!(prefetcher.next(), Err(Error::Cancelled)));
        let control = prefetcher.control();
        drop(prefetcher);
        assert_eq!(
            control.set_depth(2),
            None,
            "control outlives the prefetcher harmlessly"
        );
        assert_eq!(threads.count(), 0);
        assert_eq!(ring.count(SlotState::Free), 4);
    }
}

#[test]
fn each_slot_carries_the_span_of_its_read() {
    let dir = disk_tempdir();
    let (path, _) = write_random_file(dir.path(), "spans.bin", 8 * MIB, 8);
    for choice in choices() {
        let before = Instant::now();
        let prefetcher = blocks(choice, &path, 8, 4, 4);
        let mut last_queued = before;
        for _ in 0..16 {
            let slot = prefetcher.next().expect("extent");
            let taken = Instant::now();
            let span = slot.read_span();
            assert!(
                span.queued_at >= before,
                "{choice:?}: queued before the run"
            );
            assert!(
                span.queued_at <= span.done_at,
                "{choice:?}: done before queued"
            );
            assert!(span.done_at <= taken, "{choice:?}: handed out before done");
            assert!(
                span.queued_at >= last_queued,
                "{choice:?}: extents are queued in sweep order"
            );
            assert_eq!(span.duration(), span.done_at - span.queued_at);
            last_queued = span.queued_at;
        }
    }
}

#[test]
fn owned_guards_keep_their_bytes_and_stop_rereads() {
    // Resident weights: every extent read once into a slot of its own and kept, across calls
    // and past the prefetcher itself.
    let dir = disk_tempdir();
    let (path, data) = write_random_file(dir.path(), "owned.bin", 4 * MIB, 23);
    for choice in choices() {
        let prefetcher = blocks(choice, &path, 4, 4, 4);
        let ring = std::sync::Arc::clone(prefetcher.reader().ring());
        let guards: Vec<_> = (0..4)
            .map(|_| prefetcher.next_owned().expect("extent"))
            .collect();
        let issued = prefetcher.stats().bytes_read;
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            prefetcher.stats().bytes_read,
            issued,
            "{choice:?}: read again while held"
        );
        drop(prefetcher);
        for (i, g) in guards.iter().enumerate() {
            assert_eq!(
                g.bytes(),
                &data[i * MIB..(i + 1) * MIB],
                "{choice:?}: extent {i}"
            );
        }
        assert_eq!(ring.count(SlotState::InUse), 4, "{choice:?}");
        drop(guards);
        assert_eq!(ring.count(SlotState::Free), 4, "{choice:?}: slot leaked");
    }
}

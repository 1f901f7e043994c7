//! I/O statistics: relaxed atomic counters, cheap enough to bump on every read, and a snapshot.
//!
//! Latencies go into log2 buckets: bucket 0 holds 0–1 µs, bucket `i > 0` holds
//! `[2^i, 2^(i+1))` µs, and the last bucket also holds everything slower.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Number of log2 latency buckets (the last one reaches past 2^31 µs, about 36 minutes).
pub const LATENCY_BUCKETS: usize = 32;

/// The bucket a latency of `latency_us` microseconds falls into.
pub fn latency_bucket(latency_us: u64) -> usize {
    let log2 = (u64::BITS - 1).saturating_sub(latency_us.max(1).leading_zeros()) as usize;
    log2.min(LATENCY_BUCKETS - 1)
}

/// Smallest latency in microseconds that falls into bucket `bucket`.
pub fn bucket_floor_us(bucket: usize) -> u64 {
    assert!(bucket < LATENCY_BUCKETS);
    if bucket == 0 {
        0
    } else {
        1 << bucket
    }
}

/// Live counters shared by a reader, its threads and the prefetcher.
#[derive(Debug, Default)]
pub struct Stats {
    bytes_read: AtomicU64,
    extents_read: AtomicU64,
    extents_failed: AtomicU64,
    extents_issued: AtomicU64,
    extents_consumed: AtomicU64,
    io_busy_ns: AtomicU64,
    consumer_stall_ns: AtomicU64,
    latency_us: [AtomicU64; LATENCY_BUCKETS],
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Bytes the kernel returned into slots.
    pub bytes_read: u64,
    /// Extents read completely.
    pub extents_read: u64,
    /// Extents whose read failed.
    pub extents_failed: u64,
    /// Extents handed to the reader by the prefetcher.
    pub extents_issued: u64,
    /// Extents handed to the consumer by the prefetcher.
    pub extents_consumed: u64,
    /// Wall time during which at least one read was in flight.
    pub io_busy_ns: u64,
    /// Wall time the consumer spent waiting for an extent that was not ready.
    pub consumer_stall_ns: u64,
    /// Per-extent read latency (queued to complete), in log2 microsecond buckets.
    pub latency_us_buckets: [u64; LATENCY_BUCKETS],
}

impl Stats {
    /// Counts `bytes` returned by a read.
    pub(crate) fn add_bytes_read(&self, bytes: u64) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts one finished extent and its latency.
    pub(crate) fn add_extent(&self, ok: bool, latency: Duration) {
        let counter = if ok {
            &self.extents_read
        } else {
            &self.extents_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us[latency_bucket(latency_us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one extent handed to the reader.
    pub(crate) fn add_issued(&self) {
        self.extents_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one extent handed to the consumer, and how long it waited for it.
    pub(crate) fn add_consumed(&self, stall: Duration) {
        self.extents_consumed.fetch_add(1, Ordering::Relaxed);
        self.consumer_stall_ns
            .fetch_add(duration_ns(stall), Ordering::Relaxed);
    }

    fn add_busy(&self, busy: Duration) {
        self.io_busy_ns
            .fetch_add(duration_ns(busy), Ordering::Relaxed);
    }

    /// Copies the counters (each one atomically; the set is not a single atomic picture).
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            bytes_read: load(&self.bytes_read),
            extents_read: load(&self.extents_read),
            extents_failed: load(&self.extents_failed),
            extents_issued: load(&self.extents_issued),
            extents_consumed: load(&self.extents_consumed),
            io_busy_ns: load(&self.io_busy_ns),
            consumer_stall_ns: load(&self.consumer_stall_ns),
            latency_us_buckets: std::array::from_fn(|i| load(&self.latency_us[i])),
        }
    }
}

impl StatsSnapshot {
    /// Seconds with I/O in flight.
    pub fn io_busy_s(&self) -> f64 {
        self.io_busy_ns as f64 * 1e-9
    }

    /// Seconds the consumer stalled.
    pub fn consumer_stall_s(&self) -> f64 {
        self.consumer_stall_ns as f64 * 1e-9
    }

    /// Lower bound (bucket floor) in µs of the latency below which a fraction `q` of extents fell.
    pub fn latency_us_quantile(&self, q: f64) -> u64 {
        let total: u64 = self.latency_us_buckets.iter().sum();
        let want = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, &count) in self.latency_us_buckets.iter().enumerate() {
            seen += count;
            if seen >= want {
                return bucket_floor_us(bucket);
            }
        }
        0
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Tracks the time during which at least one read is in flight; owned by one reader's state.
#[derive(Debug, Default)]
pub(crate) struct BusyClock {
    reads_in_flight: usize,
    busy_since: Option<Instant>,
}

impl BusyClock {
    /// One read started.
    pub(crate) fn start(&mut self) {
        if self.reads_in_flight == 0 {
            self.busy_since = Some(Instant::now());
        }
        self.reads_in_flight += 1;
    }

    /// One read finished; adds the busy interval to `stats` when the last one does.
    pub(crate) fn finish(&mut self, stats: &Stats) {
        assert!(self.reads_in_flight > 0, "more reads finished than started");
        self.reads_in_flight -= 1;
        if self.reads_in_flight == 0 {
            if let Some(since) = self.busy_since.take() {
                stats.add_busy(since.elapsed());
            }
        }
    }

    /// Reads in flight now.
    pub(crate) fn reads_in_flight(&self) -> usize {
        self.reads_in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log2_microseconds() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(1), 0);
        assert_eq!(latency_bucket(2), 1);
        assert_eq!(latency_bucket(3), 1);
        assert_eq!(latency_bucket(4), 2);
        assert_eq!(latency_bucket(1023), 9);
        assert_eq!(latency_bucket(1024), 10);
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
        for bucket in 1..LATENCY_BUCKETS {
            assert_eq!(latency_bucket(bucket_floor_us(bucket)), bucket);
            assert_eq!(latency_bucket(bucket_floor_us(bucket) - 1), bucket - 1);
        }
    }

    #[test]
    fn snapshot_and_quantiles() {
        let stats = Stats::default();
        for us in [10, 10, 10, 5000] {
            stats.add_extent(true, Duration::from_micros(us));
        }
        stats.add_extent(false, Duration::from_micros(1));
        stats.add_bytes_read(4096);
        let s = stats.snapshot();
        assert_eq!(
            (s.extents_read, s.extents_failed, s.bytes_read),
            (4, 1, 4096)
        );
        assert_eq!(s.latency_us_buckets[latency_bucket(10)], 3);
        assert_eq!(s.latency_us_quantile(0.5), 8);
        assert_eq!(s.latency_us_quantile(1.0), 4096);
    }

    #[test]
    fn busy_clock_counts_only_while_reads_are_in_flight() {
        let stats = Stats::default();
        let mut clock = BusyClock::default();
        clock.start();
        clock.start();
        std::thread::sleep(Duration::from_millis(2));
        clock.finish(&stats);
        assert_eq!(stats.snapshot().io_busy_ns, 0, "one read still in flight");
        clock.finish(&stats);
        assert!(stats.snapshot().io_busy_ns >= 2_000_000);
        assert_eq!(clock.reads_in_flight(), 0);
    }
}

//! The machine's memory read bandwidth as the kernels see it: every pool thread streams its
//! share of a buffer larger than the caches. Matrix-vector products on the CPU are bounded by
//! this rate, so `sluice bench kernels` reports each kernel as a fraction of it.

use std::time::Instant;

use super::dispatch::IsaKind;
use super::{Isa, ThreadPool};

/// Bytes each task sums per work item.
const STRIDE: usize = 1 << 20;

/// Reads all of `buf` across `pool` `passes` times; returns (bytes per second, a checksum that
/// keeps the reads from being optimised away). It reads with the widest loads the CPU has,
/// whatever kernel tier the process runs: it measures the memory, not the kernels.
pub fn read_bandwidth(buf: &[u8], pool: &ThreadPool, passes: usize) -> (f64, u64) {
    let isa = Isa::best();
    let n_items = buf.len().div_ceil(STRIDE);
    let sums: Vec<std::sync::atomic::AtomicU64> = (0..pool.n_threads())
        .map(|_| std::sync::atomic::AtomicU64::new(0))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    for _ in 0..passes.max(1) {
        next.store(0, std::sync::atomic::Ordering::Relaxed);
        pool.run(pool.n_threads(), |task| {
            let mut acc = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n_items {
                    break;
                }
                let part = &buf[i * STRIDE..((i + 1) * STRIDE).min(buf.len())];
                acc = acc.wrapping_add(sum_words(isa, part));
            }
            sums[task].fetch_add(acc, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let bytes = (buf.len() * passes.max(1)) as f64;
    let check = sums.iter().fold(0u64, |x, y| {
        x.wrapping_add(y.load(std::sync::atomic::Ordering::Relaxed))
    });
    (bytes / secs, check)
}

/// Σ of the little-endian u64 words of `part`'s whole 128-byte chunks, with `isa`'s loads (a
/// scalar loop is add-bound well below the memory's rate).
fn sum_words(isa: Isa, part: &[u8]) -> u64 {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512(t) => super::simd::membw::sum_avx512(t, part),
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2(t) => super::simd::membw::sum_avx2(t, part),
        IsaKind::Scalar => {
            let mut acc = [0u64; 16];
            for w in part.chunks_exact(128) {
                for (k, a) in acc.iter_mut().enumerate() {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&w[8 * k..8 * k + 8]);
                    *a = a.wrapping_add(u64::from_le_bytes(b));
                }
            }
            acc.iter().fold(0u64, |x, &y| x.wrapping_add(y))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_byte_once_per_pass() {
        // All ones, read as u64 words: the checksum counts the words read.
        let buf = vec![0u8; 3 * STRIDE + 128];
        let pool = ThreadPool::new(2);
        let (rate, sum) = read_bandwidth(&buf, &pool, 2);
        assert!(rate > 0.0);
        assert_eq!(sum, 0);
        let ones: Vec<u8> = (0..3 * STRIDE + 128)
            .map(|i| if i % 8 == 0 { 1 } else { 0 })
            .collect();
        let (_, sum) = read_bandwidth(&ones, &pool, 2);
        assert_eq!(sum, 2 * (ones.len() / 8) as u64);
        for isa in Isa::all_present() {
            for len in [0, 128, 256, 384, 1000] {
                let words = (len / 128 * 128 / 8) as u64;
                assert_eq!(sum_words(isa, &ones[..len]), words, "{} {len}", isa.name());
            }
        }
    }
}

//! `/metrics` in Prometheus' text format: request counts, queue depth, live sequences, tokens,
//! time to first token and inter-token latency histograms (vLLM's buckets), and bytes read from
//! disk. Updated from the handlers and the engine thread with atomics and one small lock per
//! histogram; rendered on demand.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Bucket bounds (seconds) of the time-to-first-token histogram.
const TTFT_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bucket bounds (seconds) of the inter-token latency histogram.
const ITL_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

/// A histogram with fixed bucket bounds.
struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket counts (not cumulative), the +Inf bucket last; the sum; the count.
    state: Mutex<(Vec<u64>, f64, u64)>,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            state: Mutex::new((vec![0; bounds.len() + 1], 0.0, 0)),
        }
    }

    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(self.bounds.len());
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0[i] += 1;
        st.1 += s;
        st.2 += 1;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&st.0) {
            cum += c;
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        cum += st.0[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", st.1, st.2);
    }
}

/// Every figure `/metrics` shows.
pub struct Metrics {
    pub requests: AtomicU64,
    pub requests_rejected: AtomicU64,
    pub requests_failed: AtomicU64,
    pub requests_cancelled: AtomicU64,
    pub queue_depth: AtomicU64,
    pub active_sequences: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub steps: AtomicU64,
    pub bytes_read: AtomicU64,
    pub kv_bytes: AtomicU64,
    ttft: Histogram,
    itl: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let z = || AtomicU64::new(0);
        Metrics {
            requests: z(),
            requests_rejected: z(),
            requests_failed: z(),
            requests_cancelled: z(),
            queue_depth: z(),
            active_sequences: z(),
            prompt_tokens: z(),
            generated_tokens: z(),
            steps: z(),
            bytes_read: z(),
            kv_bytes: z(),
            ttft: Histogram::new(&TTFT_BUCKETS),
            itl: Histogram::new(&ITL_BUCKETS),
        }
    }
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` from a gauge, never below zero.
    pub fn sub(c: &AtomicU64, n: u64) {
        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
    }

    /// Records a time to first token.
    pub fn first_token(&self, d: Duration) {
        self.ttft.observe(d);
    }

    /// Records a gap between two tokens of one sequence.
    pub fn inter_token(&self, d: Duration) {
        self.itl.observe(d);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (name, kind, help, v) in [
            (
                "sluice_requests_total",
                "counter",
                "Generation requests admitted to the queue.",
                get(&self.requests),
            ),
            (
                "sluice_requests_rejected_total",
                "counter",
                "Requests refused because the queue was full (503).",
                get(&self.requests_rejected),
            ),
            (
                "sluice_requests_failed_total",
                "counter",
                "Requests that ended in an engine error.",
                get(&self.requests_failed),
            ),
            (
                "sluice_requests_cancelled_total",
                "counter",
                "Requests whose client left before the end.",
                get(&self.requests_cancelled),
            ),
            (
                "sluice_queue_depth",
                "gauge",
                "Requests waiting for a sequence slot.",
                get(&self.queue_depth),
            ),
            (
                "sluice_active_sequences",
                "gauge",
                "Sequences advanced by each layer sweep.",
                get(&self.active_sequences),
            ),
            (
                "sluice_prompt_tokens_total",
                "counter",
                "Prompt tokens computed.",
                get(&self.prompt_tokens),
            ),
            (
                "sluice_generated_tokens_total",
                "counter",
                "Tokens generated.",
                get(&self.generated_tokens),
            ),
            (
                "sluice_steps_total",
                "counter",
                "Sweeps over the layers.",
                get(&self.steps),
            ),
            (
                "sluice_disk_read_bytes_total",
                "counter",
                "Weight bytes streamed from disk while serving.",
                get(&self.bytes_read),
            ),
            (
                "sluice_kv_cache_bytes",
                "gauge",
                "Bytes of the live sequences' KV caches.",
                get(&self.kv_bytes),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        self.ttft.render(
            "sluice_time_to_first_token_seconds",
            "From admission to the queue to the first generated token.",
            &mut out,
        );
        self.itl.render(
            "sluice_inter_token_latency_seconds",
            "Between consecutive tokens of one sequence.",
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_render() {
        let m = Metrics::default();
        Metrics::add(&m.requests, 3);
        Metrics::sub(&m.queue_depth, 1);
        m.first_token(Duration::from_millis(30));
        m.first_token(Duration::from_secs(60));
        let t = m.render();
        assert!(t.contains("sluice_requests_total 3\n"), "{t}");
        assert!(t.contains("sluice_queue_depth 0\n"));
        assert!(t.contains("sluice_time_to_first_token_seconds_bucket{le=\"0.04\"} 1\n"));
        assert!(t.contains("sluice_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(t.contains("sluice_time_to_first_token_seconds_count 2\n"));
    }
}

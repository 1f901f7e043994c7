//! Per-layer times of the pipeline, for both backends (pure accumulation: the CPU executor
//! samples `Instant`s, the CUDA backend's device events live in `cuda::clock`).
//!
//! With [`LAYER_TIMES_ENV`]`=1` (or `EngineOptions::layer_times`, which `sluice bench model`
//! sets) every layer of every sweep is timed: the disk read of its streamed extents (queued to
//! done, from the reader), the copy of its weights to the device, its compute, how long the
//! device's compute stream sat waiting for that copy, and how long the host was blocked on it
//! (waiting on the prefetcher for a streamed slot, or on an earlier copy's event to free a host
//! slot). The samples are summed here per row (layer; on the CPU also a first row for the token
//! embedding lookup and a last one for the LM head),
//! separately for decode (one token) and prefill sweeps, in vectors sized once for the model;
//! the last decode sweep's spans are kept as a timeline. The default path records nothing.

use std::fmt;
use std::time::{Duration, Instant};

/// Environment variable that turns per-layer timing on (`1`).
pub const LAYER_TIMES_ENV: &str = "SLUICE_LAYER_TIMES";

/// Whether [`LAYER_TIMES_ENV`] asks for per-layer timing.
pub fn layer_times_requested() -> bool {
    std::env::var(LAYER_TIMES_ENV).is_ok_and(|v| v == "1")
}

/// One layer's times in one sweep (or their sums), in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerSample {
    /// Disk reads of the layer's streamed extents, queued to done, summed (0 when resident).
    pub read_ms: f64,
    /// Host→device copy of the layer's weights on the copy stream (0 for a VRAM-tier layer).
    pub copy_ms: f64,
    /// The layer's kernels on the compute stream, from after its copy was waited for.
    pub compute_ms: f64,
    /// Compute stream idle waiting for the layer's copy (the pipeline's device-side stall).
    pub device_wait_ms: f64,
    /// Host blocked while staging the layer: on the prefetcher or on a copy event.
    pub stall_ms: f64,
}

impl LayerSample {
    fn add(&mut self, o: &LayerSample) {
        self.read_ms += o.read_ms;
        self.copy_ms += o.copy_ms;
        self.compute_ms += o.compute_ms;
        self.device_wait_ms += o.device_wait_ms;
        self.stall_ms += o.stall_ms;
    }

    fn scaled(&self, by: f64) -> LayerSample {
        LayerSample {
            read_ms: self.read_ms * by,
            copy_ms: self.copy_ms * by,
            compute_ms: self.compute_ms * by,
            device_wait_ms: self.device_wait_ms * by,
            stall_ms: self.stall_ms * by,
        }
    }

    fn is_valid(&self) -> bool {
        [
            self.read_ms,
            self.copy_ms,
            self.compute_ms,
            self.device_wait_ms,
            self.stall_ms,
        ]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0)
    }
}

/// Per-layer sums over the sweeps of one kind.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTimes {
    /// Sum over sweeps, per row.
    totals: Vec<LayerSample>,
    sweeps: u64,
    /// Whether the first row is the embedding lookup and the last the LM head.
    ends: bool,
}

impl LayerTimes {
    /// Empty sums for `n_layer` layers (the only allocation).
    pub fn new(n_layer: usize) -> LayerTimes {
        LayerTimes {
            totals: vec![LayerSample::default(); n_layer],
            sweeps: 0,
            ends: false,
        }
    }

    /// Empty sums for a first row (the embedding lookup), `n_layer` layers and a last row
    /// (the LM head).
    pub fn with_ends(n_layer: usize) -> LayerTimes {
        LayerTimes {
            totals: vec![LayerSample::default(); n_layer + 2],
            sweeps: 0,
            ends: true,
        }
    }

    /// Rows covered: the layers, and the embedding and head rows when there are.
    pub fn n_layer(&self) -> usize {
        self.totals.len()
    }

    /// Whether the first row is the embedding lookup and the last the LM head.
    pub fn has_ends(&self) -> bool {
        self.ends
    }

    /// The layer row `row` holds, `None` for the embedding and head rows.
    pub fn layer_of(&self, row: usize) -> Option<usize> {
        match (self.ends, row) {
            (false, r) => Some(r),
            (true, 0) => None,
            (true, r) if r + 1 == self.totals.len() => None,
            (true, r) => Some(r - 1),
        }
    }

    /// The name of row `row`: the layer's index, "embd" or "head".
    pub fn row_name(&self, row: usize) -> String {
        match self.layer_of(row) {
            Some(l) => l.to_string(),
            None if row == 0 => "embd".into(),
            None => "head".into(),
        }
    }

    /// Sweeps summed.
    pub fn sweeps(&self) -> u64 {
        self.sweeps
    }

    /// Adds one sweep's samples, one per layer in order.
    pub fn add_sweep(&mut self, samples: &[LayerSample]) {
        assert_eq!(samples.len(), self.totals.len(), "one sample per layer");
        for (t, s) in self.totals.iter_mut().zip(samples) {
            debug_assert!(s.is_valid(), "{s:?}");
            t.add(s);
        }
        self.sweeps += 1;
    }

    /// Layer `layer`'s mean per sweep (zeros before the first sweep).
    pub fn mean(&self, layer: usize) -> LayerSample {
        let by = if self.sweeps == 0 {
            0.0
        } else {
            1.0 / self.sweeps as f64
        };
        self.totals[layer].scaled(by)
    }

    /// The means summed over layers: one sweep's totals.
    pub fn mean_sweep(&self) -> LayerSample {
        let mut sum = LayerSample::default();
        for l in 0..self.n_layer() {
            sum.add(&self.mean(l));
        }
        sum
    }
}

/// A table of the means per sweep: one row per layer, then the sum.
impl fmt::Display for LayerTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "layer   read ms   copy ms  compute ms  device wait ms  host stall ms   (mean of {} sweeps)",
            self.sweeps
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, s: LayerSample| {
            writeln!(
                f,
                "{name:>5} {:>9.4} {:>9.4} {:>11.4} {:>15.4} {:>14.4}",
                s.read_ms, s.copy_ms, s.compute_ms, s.device_wait_ms, s.stall_ms
            )
        };
        for l in 0..self.n_layer() {
            row(f, &self.row_name(l), self.mean(l))?;
        }
        row(f, "all", self.mean_sweep())
    }
}

/// Where one row's work fell in time within one sweep, in milliseconds from the sweep's start
/// (a read queued during the previous sweep starts before 0).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowSpans {
    /// From the first of the row's extents being queued to the last being read; `None` when
    /// the row is resident.
    pub read_ms: Option<(f64, f64)>,
    /// The host blocked waiting for the row's weights.
    pub stall_ms: (f64, f64),
    /// The row's compute.
    pub compute_ms: (f64, f64),
}

/// Decode and prefill sums, kept apart (a prefill sweep's compute is a batch's), and the last
/// decode sweep's timeline where the backend can place its work on the host's clock.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineTimes {
    /// One-token sweeps.
    pub decode: LayerTimes,
    /// Prompt batches of two or more tokens.
    pub prefill: LayerTimes,
    /// The last decode sweep, one entry per row (empty until one is recorded).
    pub last_decode: Vec<RowSpans>,
}

impl PipelineTimes {
    /// Empty sums for `n_layer` layers.
    pub fn new(n_layer: usize) -> PipelineTimes {
        PipelineTimes {
            decode: LayerTimes::new(n_layer),
            prefill: LayerTimes::new(n_layer),
            last_decode: Vec::new(),
        }
    }

    /// Empty sums for the embedding lookup, `n_layer` layers and the LM head, with room for a
    /// decode timeline.
    pub fn with_ends(n_layer: usize) -> PipelineTimes {
        PipelineTimes {
            decode: LayerTimes::with_ends(n_layer),
            prefill: LayerTimes::with_ends(n_layer),
            last_decode: Vec::with_capacity(n_layer + 2),
        }
    }

    /// Keeps `spans` as the last decode sweep's timeline (no allocation after the first).
    pub fn set_last_decode(&mut self, spans: &[RowSpans]) {
        self.last_decode.clear();
        self.last_decode.extend_from_slice(spans);
    }

    /// The sums a sweep of `n_tok` tokens goes to.
    pub fn for_batch(&mut self, n_tok: usize) -> &mut LayerTimes {
        if n_tok == 1 {
            &mut self.decode
        } else {
            &mut self.prefill
        }
    }
}

/// What the host saw of one row of a sweep.
#[derive(Clone, Copy, Debug)]
pub struct RowRecord {
    /// First extent queued to last extent read, for a streamed row.
    pub read: Option<(Instant, Instant)>,
    /// The extents' read times summed (they may overlap each other).
    pub read_total: Duration,
    /// Host time blocked waiting for the row's weights.
    pub stall: Duration,
    /// When the row's stall began (its work, stall then compute, starts here).
    pub start: Instant,
    /// When its compute ended.
    pub end: Instant,
}

/// Records sweeps on the host clock (the CPU executor): one [`RowRecord`] for the embedding
/// lookup, one per layer and one for the head, into buffers sized once for the model.
#[derive(Clone, Debug)]
pub struct SweepRecorder {
    /// The sums and the last decode timeline.
    pub times: PipelineTimes,
    samples: Vec<LayerSample>,
    spans: Vec<RowSpans>,
    started: Option<Instant>,
}

impl SweepRecorder {
    /// A recorder for the embedding lookup, `n_layer` layers and the head.
    pub fn new(n_layer: usize) -> SweepRecorder {
        SweepRecorder {
            times: PipelineTimes::with_ends(n_layer),
            samples: vec![LayerSample::default(); n_layer + 2],
            spans: vec![RowSpans::default(); n_layer + 2],
            started: None,
        }
    }

    /// The embedding lookup of the current sweep.
    pub fn embed(&mut self, r: &RowRecord) {
        self.row(0, r);
    }

    /// Layer `layer` of the current sweep.
    pub fn layer(&mut self, layer: usize, r: &RowRecord) {
        self.row(layer + 1, r);
    }

    /// The LM head of the current sweep.
    pub fn head(&mut self, r: &RowRecord) {
        self.row(self.samples.len() - 1, r);
    }

    /// A sweep starts now.
    pub fn begin(&mut self, at: Instant) {
        self.started = Some(at);
    }

    fn row(&mut self, row: usize, r: &RowRecord) {
        let Some(t0) = self.started else {
            debug_assert!(false, "row recorded outside a sweep");
            return;
        };
        // Milliseconds from the sweep's start, negative for reads queued before it.
        let at = |t: Instant| match t.checked_duration_since(t0) {
            Some(d) => d.as_secs_f64() * 1e3,
            None => -(t0.duration_since(t).as_secs_f64() * 1e3),
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let span = r.end.saturating_duration_since(r.start);
        self.samples[row] = LayerSample {
            read_ms: ms(r.read_total),
            copy_ms: 0.0,
            compute_ms: ms(span.saturating_sub(r.stall)),
            device_wait_ms: 0.0,
            stall_ms: ms(r.stall),
        };
        let (start, end) = (at(r.start), at(r.end));
        let stall_end = (start + ms(r.stall)).min(end);
        self.spans[row] = RowSpans {
            read_ms: r.read.map(|(q, d)| (at(q), at(d))),
            stall_ms: (start, stall_end),
            compute_ms: (stall_end, end),
        };
    }

    /// The sweep of `n_tok` tokens is over: adds it to the sums.
    pub fn end(&mut self, n_tok: usize) {
        self.started = None;
        self.times.for_batch(n_tok).add_sweep(&self.samples);
        if n_tok == 1 {
            self.times.set_last_decode(&self.spans);
        }
    }
}

impl fmt::Display for PipelineTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "decode sweeps, per layer:")?;
        write!(f, "{}", self.decode)?;
        if self.prefill.sweeps() > 0 {
            writeln!(f, "prefill sweeps, per layer:")?;
            write!(f, "{}", self.prefill)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(c: f64, k: f64, w: f64, s: f64) -> LayerSample {
        LayerSample {
            read_ms: 0.0,
            copy_ms: c,
            compute_ms: k,
            device_wait_ms: w,
            stall_ms: s,
        }
    }

    #[test]
    fn means_are_per_sweep_and_per_layer() {
        let mut t = LayerTimes::new(2);
        assert_eq!(t.mean(1), LayerSample::default());
        t.add_sweep(&[sample(1.0, 2.0, 0.5, 0.0), sample(3.0, 4.0, 0.0, 1.0)]);
        t.add_sweep(&[sample(3.0, 2.0, 1.5, 0.0), sample(1.0, 0.0, 0.0, 3.0)]);
        assert_eq!(t.sweeps(), 2);
        assert_eq!(t.mean(0), sample(2.0, 2.0, 1.0, 0.0));
        assert_eq!(t.mean(1), sample(2.0, 2.0, 0.0, 2.0));
        assert_eq!(t.mean_sweep(), sample(4.0, 4.0, 1.0, 2.0));
    }

    #[test]
    fn accumulating_does_not_grow_anything() {
        let mut t = LayerTimes::new(30);
        let cap = t.totals.capacity();
        let s = [sample(0.1, 0.2, 0.0, 0.01); 30];
        for _ in 0..1000 {
            t.add_sweep(&s);
        }
        assert_eq!(t.totals.capacity(), cap);
        assert!((t.mean(29).compute_ms - 0.2).abs() < 1e-12);
        assert!((t.mean_sweep().copy_ms - 3.0).abs() < 1e-9);
    }

    #[test]
    #[should_panic(expected = "one sample per layer")]
    fn a_sweep_needs_every_layer() {
        LayerTimes::new(3).add_sweep(&[LayerSample::default(); 2]);
    }

    #[test]
    fn decode_and_prefill_are_kept_apart_and_printed() {
        let mut p = PipelineTimes::new(2);
        p.for_batch(1).add_sweep(&[sample(1.0, 1.0, 0.0, 0.0); 2]);
        p.for_batch(7).add_sweep(&[sample(1.0, 9.0, 0.0, 0.0); 2]);
        assert_eq!(p.decode.mean(0).compute_ms, 1.0);
        assert_eq!(p.prefill.mean(0).compute_ms, 9.0);
        let text = p.to_string();
        assert!(text.starts_with("decode sweeps, per layer:\nlayer   read ms   copy ms"));
        assert!(text.contains("prefill sweeps"));
        assert_eq!(text.lines().count(), 2 * (1 + 1 + 2 + 1));
        let decode_only = PipelineTimes::new(1).to_string();
        assert!(!decode_only.contains("prefill"));
    }

    #[test]
    fn the_embedding_and_the_head_have_the_first_and_last_rows() {
        let mut p = PipelineTimes::with_ends(2);
        assert_eq!(p.decode.n_layer(), 4);
        assert!(p.decode.has_ends());
        let names: Vec<String> = (0..4).map(|r| p.decode.row_name(r)).collect();
        assert_eq!(names, ["embd", "0", "1", "head"]);
        assert_eq!(p.decode.layer_of(2), Some(1));
        assert_eq!(p.decode.layer_of(3), None);
        let mut s = sample(0.0, 2.0, 0.0, 0.5);
        s.read_ms = 1.5;
        p.for_batch(1).add_sweep(&[s; 4]);
        assert_eq!(p.decode.mean_sweep().read_ms, 6.0);
        let text = p.to_string();
        for name in ["embd", "head"] {
            assert!(
                text.lines().any(|l| l.trim_start().starts_with(name)),
                "{text}"
            );
        }
        let plain = PipelineTimes::new(2);
        assert!(!plain.decode.has_ends());
        assert_eq!(plain.decode.layer_of(1), Some(1));
        assert_eq!(plain.decode.row_name(1), "1");
    }

    #[test]
    fn a_recorded_sweep_places_reads_stalls_and_compute_on_the_sweep_clock() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut r = SweepRecorder::new(1);
        r.begin(ms(10));
        r.embed(&RowRecord {
            read: None,
            read_total: Duration::ZERO,
            stall: Duration::ZERO,
            start: ms(10),
            end: ms(10),
        });
        r.layer(
            0,
            &RowRecord {
                read: Some((ms(4), ms(12))),
                read_total: Duration::from_millis(8),
                stall: Duration::from_millis(2),
                start: ms(10),
                end: ms(15),
            },
        );
        r.head(&RowRecord {
            read: None,
            read_total: Duration::ZERO,
            stall: Duration::ZERO,
            start: ms(15),
            end: ms(16),
        });
        r.end(1);
        let near = |a: f64, b: f64| (a - b).abs() < 1e-6;
        let s = r.times.decode.mean(1);
        assert!(near(s.read_ms, 8.0) && near(s.stall_ms, 2.0) && near(s.compute_ms, 3.0));
        let spans = &r.times.last_decode;
        let (q, d) = spans[1].read_ms.expect("layer 0 streamed");
        assert!(near(q, -6.0) && near(d, 2.0), "{q} {d}");
        assert!(near(spans[1].stall_ms.1, 2.0) && near(spans[1].compute_ms.1, 5.0));
        assert_eq!(spans[2].read_ms, None);
        assert!(near(spans[2].compute_ms.0, 5.0) && near(spans[2].compute_ms.1, 6.0));
        // A prefill sweep adds to its own sums and leaves the decode timeline alone.
        let resident = |a, b| RowRecord {
            read: None,
            read_total: Duration::ZERO,
            stall: Duration::ZERO,
            start: ms(a),
            end: ms(b),
        };
        r.begin(ms(20));
        r.embed(&resident(20, 20));
        r.layer(0, &resident(20, 30));
        r.head(&resident(30, 31));
        r.end(4);
        assert_eq!(r.times.prefill.sweeps(), 1);
        assert!(near(r.times.prefill.mean(1).compute_ms, 10.0));
        assert!(near(r.times.last_decode[1].compute_ms.1, 5.0));
    }

    #[test]
    fn the_last_decode_timeline_is_replaced_in_place() {
        let mut p = PipelineTimes::with_ends(2);
        let cap = p.last_decode.capacity();
        let spans = [RowSpans {
            read_ms: Some((-1.0, 0.5)),
            stall_ms: (0.0, 0.5),
            compute_ms: (0.5, 2.0),
        }; 4];
        p.set_last_decode(&spans);
        p.set_last_decode(&spans);
        assert_eq!(p.last_decode.len(), 4);
        assert_eq!(p.last_decode.capacity(), cap);
    }
}

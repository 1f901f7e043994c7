//! Per-layer times of the device pipeline (pure accumulation; the events live in `clock`).
//!
//! With [`LAYER_TIMES_ENV`]`=1` the CUDA backend times every layer of every sweep: the copy of
//! its weights on the copy stream, its kernels on the compute stream, how long the compute
//! stream sat waiting for that copy, and how long the host was blocked staging it (waiting on
//! the prefetcher for a streamed slot, or on an earlier copy's event to free a host slot). The
//! samples are summed here per layer, separately for decode (one token) and prefill sweeps, in
//! vectors sized once for the model; the default path creates no events and records nothing.

use std::fmt;

/// Environment variable that turns per-layer timing on (`1`).
pub const LAYER_TIMES_ENV: &str = "SLUICE_LAYER_TIMES";

/// Whether [`LAYER_TIMES_ENV`] asks for per-layer timing.
pub fn layer_times_requested() -> bool {
    std::env::var(LAYER_TIMES_ENV).is_ok_and(|v| v == "1")
}

/// One layer's times in one sweep (or their sums), in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerSample {
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
        self.copy_ms += o.copy_ms;
        self.compute_ms += o.compute_ms;
        self.device_wait_ms += o.device_wait_ms;
        self.stall_ms += o.stall_ms;
    }

    fn scaled(&self, by: f64) -> LayerSample {
        LayerSample {
            copy_ms: self.copy_ms * by,
            compute_ms: self.compute_ms * by,
            device_wait_ms: self.device_wait_ms * by,
            stall_ms: self.stall_ms * by,
        }
    }

    fn is_valid(&self) -> bool {
        [
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
    /// Sum over sweeps, per layer.
    totals: Vec<LayerSample>,
    sweeps: u64,
}

impl LayerTimes {
    /// Empty sums for `n_layer` layers (the only allocation).
    pub fn new(n_layer: usize) -> LayerTimes {
        LayerTimes {
            totals: vec![LayerSample::default(); n_layer],
            sweeps: 0,
        }
    }

    /// Layers covered.
    pub fn n_layer(&self) -> usize {
        self.totals.len()
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
            "layer   copy ms  compute ms  device wait ms  host stall ms   (mean of {} sweeps)",
            self.sweeps
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, s: LayerSample| {
            writeln!(
                f,
                "{name:>5} {:>9.4} {:>11.4} {:>15.4} {:>14.4}",
                s.copy_ms, s.compute_ms, s.device_wait_ms, s.stall_ms
            )
        };
        for l in 0..self.n_layer() {
            row(f, &l.to_string(), self.mean(l))?;
        }
        row(f, "all", self.mean_sweep())
    }
}

/// Decode and prefill sums, kept apart (a prefill sweep's compute is a batch's).
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineTimes {
    /// One-token sweeps.
    pub decode: LayerTimes,
    /// Prompt batches of two or more tokens.
    pub prefill: LayerTimes,
}

impl PipelineTimes {
    /// Empty sums for `n_layer` layers.
    pub fn new(n_layer: usize) -> PipelineTimes {
        PipelineTimes {
            decode: LayerTimes::new(n_layer),
            prefill: LayerTimes::new(n_layer),
        }
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
        assert!(text.starts_with("decode sweeps, per layer:\nlayer   copy ms"));
        assert!(text.contains("prefill sweeps"));
        assert_eq!(text.lines().count(), 2 * (1 + 1 + 2 + 1));
        let decode_only = PipelineTimes::new(1).to_string();
        assert!(!decode_only.contains("prefill"));
    }
}

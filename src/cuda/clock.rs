//! The events behind [`LayerTimes`](crate::engine::layer_times::LayerTimes): five timing events
//! per layer, created once when layer times are asked for, recorded
//! around each layer's copy (copy stream) and compute (compute stream) and read back once per
//! sweep, after the head has synchronised the compute stream.

use std::time::Duration;

use cudarc::driver::{CudaEvent, CudaStream};

use super::device::{driver, Device};
use super::error::CudaError;
use crate::engine::layer_times::{LayerSample, PipelineTimes};

/// Indices into a layer's events.
const COPY_START: usize = 0;
const COPY_END: usize = 1;
/// Recorded on the compute stream before it waits for the layer's copy.
const WAIT_START: usize = 2;
/// Recorded after that wait: the layer's kernels start here.
const COMPUTE_START: usize = 3;
const COMPUTE_END: usize = 4;
const EVENTS_PER_LAYER: usize = 5;

/// Timing events and this sweep's host-side figures, all sized once for the model.
pub(crate) struct LayerClock {
    events: Vec<[CudaEvent; EVENTS_PER_LAYER]>,
    /// Whether the layer was copied in this sweep (VRAM-tier layers are not).
    copied: Vec<bool>,
    /// Host time blocked staging each layer in this sweep.
    stall: Vec<Duration>,
    /// Disk read time of each streamed layer's extents in this sweep.
    read: Vec<Duration>,
    samples: Vec<LayerSample>,
    pub(crate) times: PipelineTimes,
}

impl LayerClock {
    /// Events for `n_layer` layers.
    pub(crate) fn new(dev: &Device, n_layer: usize) -> Result<LayerClock, CudaError> {
        let mut events = Vec::with_capacity(n_layer);
        for _ in 0..n_layer {
            events.push([
                dev.timing_event()?,
                dev.timing_event()?,
                dev.timing_event()?,
                dev.timing_event()?,
                dev.timing_event()?,
            ]);
        }
        Ok(LayerClock {
            events,
            copied: vec![false; n_layer],
            stall: vec![Duration::ZERO; n_layer],
            read: vec![Duration::ZERO; n_layer],
            samples: vec![LayerSample::default(); n_layer],
            times: PipelineTimes::new(n_layer),
        })
    }

    /// Forgets the previous sweep's copies and stalls.
    pub(crate) fn begin_sweep(&mut self) {
        self.copied.fill(false);
        self.stall.fill(Duration::ZERO);
        self.read.fill(Duration::ZERO);
    }

    fn record(&self, layer: usize, which: usize, s: &CudaStream) -> Result<(), CudaError> {
        self.events[layer][which]
            .record(s)
            .map_err(driver("cuEventRecord"))
    }

    /// Before layer `layer`'s copy is queued on the copy stream `s`.
    pub(crate) fn copy_start(&self, layer: usize, s: &CudaStream) -> Result<(), CudaError> {
        self.record(layer, COPY_START, s)
    }

    /// After layer `layer`'s copy is queued.
    pub(crate) fn copy_end(&mut self, layer: usize, s: &CudaStream) -> Result<(), CudaError> {
        self.copied[layer] = true;
        self.record(layer, COPY_END, s)
    }

    /// Disk read time (queued to done) of one of layer `layer`'s streamed extents.
    pub(crate) fn add_read(&mut self, layer: usize, d: Duration) {
        self.read[layer] += d;
    }

    /// Host time blocked while staging layer `layer`.
    pub(crate) fn add_stall(&mut self, layer: usize, d: Duration) {
        self.stall[layer] += d;
    }

    /// On the compute stream `s`, before it waits for layer `layer`'s copy.
    pub(crate) fn wait_start(&self, layer: usize, s: &CudaStream) -> Result<(), CudaError> {
        self.record(layer, WAIT_START, s)
    }

    /// After that wait, before the layer's first kernel.
    pub(crate) fn compute_start(&self, layer: usize, s: &CudaStream) -> Result<(), CudaError> {
        self.record(layer, COMPUTE_START, s)
    }

    /// After the layer's last kernel.
    pub(crate) fn compute_end(&self, layer: usize, s: &CudaStream) -> Result<(), CudaError> {
        self.record(layer, COMPUTE_END, s)
    }

    /// Reads the sweep's events (waiting for any not yet complete) and adds the sweep of
    /// `n_tok` tokens to the sums.
    pub(crate) fn end_sweep(&mut self, n_tok: usize) -> Result<(), CudaError> {
        let ms = |ev: &[CudaEvent; EVENTS_PER_LAYER], a: usize, b: usize| {
            ev[a]
                .elapsed_ms(&ev[b])
                .map(|v| f64::from(v).max(0.0))
                .map_err(driver("cuEventElapsedTime"))
        };
        for (layer, s) in self.samples.iter_mut().enumerate() {
            let ev = &self.events[layer];
            *s = LayerSample {
                read_ms: self.read[layer].as_secs_f64() * 1e3,
                copy_ms: if self.copied[layer] {
                    ms(ev, COPY_START, COPY_END)?
                } else {
                    0.0
                },
                compute_ms: ms(ev, COMPUTE_START, COMPUTE_END)?,
                device_wait_ms: ms(ev, WAIT_START, COMPUTE_START)?,
                stall_ms: self.stall[layer].as_secs_f64() * 1e3,
            };
        }
        self.times.for_batch(n_tok).add_sweep(&self.samples);
        Ok(())
    }
}

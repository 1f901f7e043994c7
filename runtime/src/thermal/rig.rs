//! The simulated streaming workload behind `sluice bench thermal --simulate` and the governor's
//! tests: a real [`Prefetcher`] over a [`SimDrive`], a consumer that spends a fixed simulated
//! time on each layer, and (optionally) the [`Governor`] polled once per simulated second and
//! applied through the prefetcher's [`PrefetchControl`], as the
//! governor thread does on real hardware.

use std::path::Path;

use crate::config::ReaderConfig;
use crate::error::{Error, Result};
use crate::extent::Extent;
use crate::guard::PrefetchControl;
use crate::prefetch::Prefetcher;
use crate::reader::Reader;
use crate::ring::HostRing;

use super::governor::{Decision, Governor, GovernorConfig, GovernorHistory};
use super::model::DriveModelParams;
use super::sim::{Advanced, SimDrive};
use super::thread::apply;

/// The streaming workload to simulate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimWorkload {
    /// Extents (layers) in one sweep.
    pub layers: usize,
    /// Bytes of each layer (a multiple of 4096).
    pub layer_bytes: u64,
    /// Simulated compute time per layer (s).
    pub compute_s_per_layer: f64,
    /// Prefetch depth without thermal pressure; the ring gets one slot more.
    pub depth_max: usize,
    /// Length of the run (simulated s).
    pub duration_s: f64,
    /// Time between two samples of the trace (s).
    pub sample_interval_s: f64,
    /// Time between two sensor polls by the governor (s).
    pub poll_interval_s: f64,
    /// Chunking and queue depth of the reader whose request pattern is simulated.
    pub reader: ReaderConfig,
}

impl Default for SimWorkload {
    /// A small model streamed flat out: 30 layers of 4 MiB, 0.1 ms of compute each, depth 8,
    /// the default reader (1 MiB chunks, 32 in flight), ten simulated minutes.
    fn default() -> Self {
        SimWorkload {
            layers: 30,
            layer_bytes: 4 << 20,
            compute_s_per_layer: 0.0001,
            depth_max: 8,
            duration_s: 600.0,
            sample_interval_s: 1.0,
            poll_interval_s: 1.0,
            reader: ReaderConfig::default(),
        }
    }
}

/// One point of the trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimSample {
    /// Simulated time (s).
    pub t_s: f64,
    /// The drive's temperature (°C).
    pub temp_c: f64,
    /// The prefetch depth.
    pub depth: usize,
    /// Bytes handed to the consumer over the last interval (GB/s).
    pub gb_per_s: f64,
    /// Whether the drive is throttling itself.
    pub drive_throttled: bool,
}

/// The outcome of one simulated run.
#[derive(Clone, Debug)]
pub struct SimRun {
    /// The trace, one sample per `sample_interval_s`.
    pub samples: Vec<SimSample>,
    /// Every change of depth the governor made.
    pub decisions: Vec<Decision>,
    /// Hottest the drive got (°C).
    pub peak_temp_c: f64,
    /// The drive's warning temperature, where it throttles itself (°C).
    pub threshold_c: f64,
    /// Bytes handed to the consumer over the run ÷ its length (GB/s).
    pub mean_gb_per_s: f64,
    /// Times the drive throttled itself.
    pub throttle_events: u32,
    /// Seconds the drive spent throttling itself.
    pub drive_throttled_s: f64,
    /// What the governor did, when it ran.
    pub governor: Option<GovernorHistory>,
    /// Bytes handed to the consumer.
    pub bytes_consumed: u64,
    /// Simulated length of the run (s).
    pub duration_s: f64,
}

/// Runs `workload` against a drive with `params`, governed when `governor` is given. A sparse
/// backing file (never read) is created in `scratch_dir` and removed at once.
pub fn simulate(
    workload: &SimWorkload,
    params: DriveModelParams,
    governor: Option<GovernorConfig>,
    scratch_dir: &Path,
) -> Result<SimRun> {
    if workload.layers == 0
        || workload.depth_max == 0
        || workload.duration_s.is_nan()
        || workload.duration_s <= 0.0
    {
        return Err(Error::Config(
            "a simulated workload needs layers, a depth and a duration".to_string(),
        ));
    }
    let drive = SimDrive::new(params);
    let slot_bytes = usize::try_from(workload.layer_bytes)
        .map_err(|_| Error::Config("simulated layer too large".to_string()))?;
    let ring = HostRing::new(workload.depth_max + 1, slot_bytes)?;
    let reader = Reader::simulated(ring, &workload.reader, &drive)?;
    let file = backing_file(&reader, scratch_dir, workload)?;
    let sweep = (0..workload.layers as u64)
        .map(|i| Extent::whole(file, i * workload.layer_bytes, workload.layer_bytes))
        .collect();
    let prefetcher = Prefetcher::new(reader, sweep, workload.depth_max)?;
    let mut rig = Rig {
        drive: &drive,
        control: prefetcher.control(),
        governor: governor.map(|c| {
            Governor::new(GovernorConfig {
                depth_max: workload.depth_max,
                ..c
            })
        }),
        workload,
        next_poll_s: 0.0,
        next_sample_s: workload.sample_interval_s,
        bytes_consumed: 0,
        bytes_sampled: 0,
        samples: Vec::with_capacity(
            (workload.duration_s / workload.sample_interval_s) as usize + 1,
        ),
        decisions: Vec::new(),
    };
    let mut seq = 0u64;
    while drive.now_s() < workload.duration_s {
        rig.run_until(f64::INFINITY, Some(seq))?;
        let slot = prefetcher.next()?;
        rig.bytes_consumed += slot.bytes().len() as u64;
        let compute_end_s = drive.now_s() + workload.compute_s_per_layer;
        rig.run_until(compute_end_s, None)?;
        drop(slot);
        seq += 1;
    }
    let duration_s = drive.now_s();
    drop(prefetcher);
    let model = drive.model();
    Ok(SimRun {
        samples: rig.samples,
        decisions: rig.decisions,
        peak_temp_c: model.peak_temp_c(),
        threshold_c: model.params().warn_c,
        mean_gb_per_s: rig.bytes_consumed as f64 / duration_s / 1e9,
        throttle_events: model.transitions(),
        drive_throttled_s: model.throttled_s(),
        governor: rig.governor.map(|g| g.history()),
        bytes_consumed: rig.bytes_consumed,
        duration_s,
    })
}

/// A sparse file as long as the sweep, opened by the reader and unlinked straight away.
fn backing_file(
    reader: &Reader,
    dir: &Path,
    workload: &SimWorkload,
) -> Result<crate::extent::FileId> {
    let path = dir.join(format!("sluice-thermal-sim-{}", std::process::id()));
    let io_err = |e: std::io::Error| Error::Config(format!("{}: {e}", path.display()));
    let file = std::fs::File::create(&path).map_err(io_err)?;
    let opened = file
        .set_len(workload.layers as u64 * workload.layer_bytes)
        .map_err(io_err)
        .and_then(|()| reader.open_file(&path));
    let removed = std::fs::remove_file(&path);
    let id = opened?;
    removed.map_err(io_err)?;
    Ok(id)
}

struct Rig<'a> {
    drive: &'a SimDrive,
    control: PrefetchControl,
    governor: Option<Governor>,
    workload: &'a SimWorkload,
    next_poll_s: f64,
    next_sample_s: f64,
    bytes_consumed: u64,
    bytes_sampled: u64,
    samples: Vec<SimSample>,
    decisions: Vec<Decision>,
}

impl Rig<'_> {
    /// Advances the drive to `deadline_s` (or until read `wait_for` completes), stopping at
    /// each governor poll and trace sample on the way.
    fn run_until(&mut self, deadline_s: f64, wait_for: Option<u64>) -> Result<()> {
        loop {
            let stop_s = deadline_s.min(self.next_poll_s).min(self.next_sample_s);
            let advanced = self.drive.advance(stop_s, wait_for)?;
            let now_s = self.drive.now_s();
            if now_s >= self.next_poll_s {
                self.poll(now_s);
                self.next_poll_s += self.workload.poll_interval_s;
            }
            if now_s >= self.next_sample_s {
                self.sample(now_s);
                self.next_sample_s += self.workload.sample_interval_s;
            }
            if advanced == Advanced::Done || now_s >= deadline_s {
                return Ok(());
            }
        }
    }

    fn poll(&mut self, now_s: f64) {
        let Some(governor) = &mut self.governor else {
            return;
        };
        let reading = self.drive.reading();
        if let Some(decision) = governor.update(now_s, &reading) {
            apply(&self.control, &decision);
            self.decisions.push(decision);
        }
    }

    fn sample(&mut self, now_s: f64) {
        let model = self.drive.model();
        let bytes = self.bytes_consumed - self.bytes_sampled;
        self.bytes_sampled = self.bytes_consumed;
        self.samples.push(SimSample {
            t_s: now_s,
            temp_c: model.temp_c(),
            depth: self.control.depth().unwrap_or(0),
            gb_per_s: bytes as f64 / self.workload.sample_interval_s / 1e9,
            drive_throttled: model.throttled(),
        });
    }
}

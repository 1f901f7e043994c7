//! `sluice run --thermal off|auto|sim`: sensor readings for the run and the thermal governor
//! on the streaming prefetcher.
//!
//! - `auto` (default): the NVMe drive holding the model file, when it has a sensor, is shown
//!   and governs the streamed layers' prefetch depth; a GPU NVML can see is shown too. No
//!   sensor is not an error: the run goes on at its planned depth and says nothing.
//! - `sim`: the governor steers against the drive thermal model heated by the bytes this run
//!   really reads (the plumbing, on a machine without sensors).
//! - `off`: no sensors, no governor.

use std::path::Path;

use clap::ValueEnum;
use serde_json::{json, Value};
use sluice_runtime::thermal::{
    DriveModelParams, DriveReading, DriveSensor, GovernorConfig, GovernorReport, GovernorThread,
    GpuReading, GpuSensor, ModelSensor, NvmeSensor, POLL_INTERVAL_MIN,
};
use sluice_runtime::PrefetchControl;

/// `--thermal`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ThermalArg {
    /// No sensors, no governor.
    Off,
    /// Real sensors when present; the governor runs when the model's drive has one.
    #[default]
    Auto,
    /// The governor against a simulated drive heated by this run's reads.
    Sim,
}

impl ThermalArg {
    fn name(self) -> &'static str {
        match self {
            ThermalArg::Off => "off",
            ThermalArg::Auto => "auto",
            ThermalArg::Sim => "sim",
        }
    }
}

/// The sensors and governor of one run.
pub struct Thermal {
    mode: ThermalArg,
    drive: Option<String>,
    first: Option<DriveReading>,
    no_sensor: Option<String>,
    governor: Option<GovernorThread>,
    gpu: Option<(String, GpuReading)>,
}

/// Starts what `mode` asks for; `stream` is the streamed layers' prefetcher and its depth.
pub fn start(
    mode: ThermalArg,
    model_file: &Path,
    stream: Option<(PrefetchControl, usize)>,
) -> Thermal {
    let mut t = Thermal {
        mode,
        drive: None,
        first: None,
        no_sensor: None,
        governor: None,
        gpu: None,
    };
    let sensor: Box<dyn DriveSensor> = match mode {
        ThermalArg::Off => return t,
        ThermalArg::Auto => {
            t.gpu = GpuSensor::open(None).ok().map(|g| (g.name(), g.read()));
            match NvmeSensor::for_file(model_file) {
                Ok(s) => Box::new(s),
                Err(e) => {
                    log::debug!("{}: {e}", model_file.display());
                    t.no_sensor = Some(e.reason);
                    return t;
                }
            }
        }
        ThermalArg::Sim => {
            let control = stream.as_ref().map(|(c, _)| c.clone());
            let bytes = move || {
                control
                    .as_ref()
                    .and_then(|c| c.stats())
                    .map_or(0, |s| s.bytes_read)
            };
            Box::new(ModelSensor::new(
                DriveModelParams::default(),
                Box::new(bytes),
            ))
        }
    };
    t.drive = Some(sensor.name());
    let mut sensor = sensor;
    t.first = Some(sensor.read());
    if let Some((control, depth)) = stream {
        let config = GovernorConfig::new(depth);
        match GovernorThread::spawn(sensor, control, config, POLL_INTERVAL_MIN) {
            Ok(thread) => t.governor = Some(thread),
            Err(e) => log::warn!("the thermal governor did not start: {e}"),
        }
    }
    t
}

impl Thermal {
    /// Lines for stderr at the start of a run: each sensor found and its reading.
    pub fn start_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let (Some(name), Some(r)) = (&self.drive, &self.first) {
            let governed = if self.governor.is_some() {
                "; the thermal governor steers the prefetch depth"
            } else {
                ""
            };
            lines.push(format!("drive {name}: {}{governed}", r.summary()));
        }
        if let Some((name, r)) = &self.gpu {
            lines.push(format!("GPU {name}: {}", r.summary()));
        }
        lines
    }

    /// Stops the governor; returns the `stats.thermal` object and a line for stderr.
    pub fn finish(mut self) -> (Value, Option<String>) {
        let report = self.governor.take().map(GovernorThread::stop);
        let last = report.as_ref().and_then(|r| r.last).or(self.first);
        let line = report.as_ref().map(governor_line);
        let governor = report.as_ref().map(|r| {
            let h = &r.history;
            json!({
                "throttle_events": h.throttle_events,
                "throttled_s": h.throttled_s,
                "depth_min": h.depth_min,
                "peak_temp_c": h.peak_temp_c,
                "changes": h.changes,
                "polls": h.polls,
            })
        });
        let gpu = self.gpu.as_ref().map(|(name, r)| {
            json!({
                "name": name,
                "temp_c": r.temp_c,
                "power_w": r.power_w,
                "pcie_rx_bytes_per_s": r.pcie_rx_bytes_per_s,
                "pcie_tx_bytes_per_s": r.pcie_tx_bytes_per_s,
                "thermal_throttle": r.thermal_throttle,
            })
        });
        let value = json!({
            "mode": self.mode.name(),
            "drive": self.drive,
            "no_sensor": self.no_sensor,
            "temp_c": last.and_then(|r| r.temp_c),
            "warn_c": last.and_then(|r| r.warn_c),
            "crit_c": last.and_then(|r| r.crit_c),
            "governor": governor,
            "gpu": gpu,
        });
        (value, line)
    }
}

fn governor_line(r: &GovernorReport) -> String {
    let h = &r.history;
    let peak = h
        .peak_temp_c
        .map_or("no temperature".to_string(), |t| format!("peak {t:.0} °C"));
    format!(
        "thermal governor on {}: {peak}, {} back-offs, {:.0} s below the planned depth, minimum depth {}",
        r.sensor, h.throttle_events, h.throttled_s, h.depth_min
    )
}

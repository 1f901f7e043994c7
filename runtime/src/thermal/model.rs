//! A drive thermal model for tests and demos: bandwidth that grows with the commands in flight,
//! heat that grows with bandwidth, and the drive's own throttle above its warning temperature.
//!
//! Physics, deliberately first-order:
//! - **Bandwidth.** With `q` chunk reads outstanding the drive moves
//!   `peak · q / (q + q_half)` bytes/s, where `q_half = peak · command_latency / chunk_bytes`
//!   (Little's law with a fixed per-command latency): deep queues saturate, a queue of one chunk
//!   does not. The prefetch depth sets `q` for layers of a few chunks, which is how the governor
//!   reaches the drive.
//! - **Heat.** The temperature relaxes towards `ambient + idle_rise + rise_at_peak ·
//!   (bw / peak)^power_exponent` with time constant `tau` (exact exponential over each step).
//!   The exponent is above 1 because a drive reaches higher bandwidth by running its
//!   controller and NAND interfaces at higher clocks and voltages (dynamic power ∝ f·V²), so a
//!   steady pace moves more bytes per joule than bursts at full speed between crawls at the
//!   same mean: that, and the deep cut of its own throttle, is what a drive loses by
//!   throttling itself and what the governor wins by pacing it. With an exponent of 1 the two
//!   would come out about even (the mean temperature would fix the mean bandwidth).
//! - **Self-throttle.** At or above `warn_c` (WCTEMP, the drive's TMT1) the drive cuts its
//!   bandwidth to `throttle_fraction` and keeps it cut until it has cooled `release_c` below;
//!   each entry counts as one thermal-management transition, as the SMART log would.

use std::time::Instant;

use super::reading::{DriveReading, DriveSensor, SmartThermal};

/// Parameters of the simulated drive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriveModelParams {
    /// Air temperature around the drive (°C).
    pub ambient_c: f64,
    /// Rise above ambient of an idle drive (°C).
    pub idle_rise_c: f64,
    /// Extra steady-state rise when reading at `peak_bytes_per_s` (°C).
    pub rise_c_at_peak: f64,
    /// How steeply heat grows with bandwidth (1: in proportion).
    pub power_exponent: f64,
    /// Thermal time constant (s).
    pub tau_s: f64,
    /// Bandwidth with an unbounded queue (bytes/s).
    pub peak_bytes_per_s: f64,
    /// Fixed latency of one command (s); with the chunk size it sets how deep a queue must be.
    pub command_latency_s: f64,
    /// Warning composite temperature (WCTEMP): the drive throttles itself here (°C).
    pub warn_c: f64,
    /// Critical composite temperature (CCTEMP) (°C).
    pub crit_c: f64,
    /// Share of its bandwidth the drive keeps while throttled.
    pub throttle_fraction: f64,
    /// How far below `warn_c` the drive must cool before it stops throttling (°C).
    pub release_c: f64,
    /// Temperature at the start (°C); `None`: idle (`ambient + idle_rise`).
    pub start_c: Option<f64>,
}

impl Default for DriveModelParams {
    /// A fast PCIe 4.0 drive in a warm case: 7 GB/s peak, ~90 °C if read flat out at queue
    /// depth 32, WCTEMP 80 °C; it keeps 30% of its bandwidth while throttled.
    fn default() -> Self {
        DriveModelParams {
            ambient_c: 38.0,
            idle_rise_c: 4.0,
            rise_c_at_peak: 65.0,
            power_exponent: 2.0,
            tau_s: 45.0,
            peak_bytes_per_s: 7.0e9,
            command_latency_s: 0.0008,
            warn_c: 80.0,
            crit_c: 86.0,
            throttle_fraction: 0.3,
            release_c: 6.0,
            start_c: None,
        }
    }
}

/// The state of one simulated drive.
#[derive(Clone, Debug)]
pub struct DriveModel {
    params: DriveModelParams,
    temp_c: f64,
    throttled: bool,
    /// Entries into the throttled state (SMART TMT1 transition count).
    transitions: u32,
    throttled_s: f64,
    warn_s: f64,
    peak_temp_c: f64,
}

impl DriveModel {
    /// A drive at its idle temperature.
    pub fn new(params: DriveModelParams) -> DriveModel {
        let temp_c = params
            .start_c
            .unwrap_or(params.ambient_c + params.idle_rise_c);
        DriveModel {
            params,
            temp_c,
            throttled: false,
            transitions: 0,
            throttled_s: 0.0,
            warn_s: 0.0,
            peak_temp_c: temp_c,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &DriveModelParams {
        &self.params
    }

    /// Composite temperature (°C).
    pub fn temp_c(&self) -> f64 {
        self.temp_c
    }

    /// Highest temperature so far (°C).
    pub fn peak_temp_c(&self) -> f64 {
        self.peak_temp_c
    }

    /// Whether the drive is throttling itself now.
    pub fn throttled(&self) -> bool {
        self.throttled
    }

    /// Times the drive started throttling itself.
    pub fn transitions(&self) -> u32 {
        self.transitions
    }

    /// Seconds spent throttled.
    pub fn throttled_s(&self) -> f64 {
        self.throttled_s
    }

    /// Seconds spent at or above the warning temperature.
    pub fn warn_s(&self) -> f64 {
        self.warn_s
    }

    /// Bandwidth (bytes/s) with `queued` chunk reads of `chunk_bytes` outstanding.
    pub fn bandwidth_bytes_per_s(&self, queued: usize, chunk_bytes: u64) -> f64 {
        if queued == 0 || chunk_bytes == 0 {
            return 0.0;
        }
        let p = &self.params;
        let q_half = p.peak_bytes_per_s * p.command_latency_s / chunk_bytes as f64;
        let q = queued as f64;
        let full = p.peak_bytes_per_s * q / (q + q_half);
        if self.throttled {
            full * p.throttle_fraction
        } else {
            full
        }
    }

    /// What the drive's sensors would report: the composite temperature in whole kelvins (as
    /// NVMe reports it), WCTEMP, CCTEMP, the alarm bit and the SMART throttle counters.
    pub fn reading(&self) -> DriveReading {
        let p = &self.params;
        let temp_c = (self.temp_c + 273.15).round() - 273.15;
        let over = temp_c >= p.warn_c;
        let smart = SmartThermal {
            critical_warning: if over { 0x02 } else { 0 },
            temp_c: Some(temp_c),
            warn_time_min: (self.warn_s / 60.0) as u32,
            tmt_transitions: [self.transitions, 0],
            tmt_time_s: [self.throttled_s as u32, 0],
            ..SmartThermal::default()
        };
        DriveReading {
            temp_c: Some(temp_c),
            warn_c: Some(p.warn_c),
            crit_c: Some(p.crit_c),
            alarm: Some(over),
            smart: Some(smart),
            ..DriveReading::default()
        }
    }

    /// Advances `dt_s` seconds during which the drive moved `bytes_per_s`.
    pub fn advance(&mut self, dt_s: f64, bytes_per_s: f64) {
        if dt_s <= 0.0 {
            return;
        }
        let p = &self.params;
        let load = (bytes_per_s / p.peak_bytes_per_s).clamp(0.0, 1.0);
        let steady_c = p.ambient_c + p.idle_rise_c + p.rise_c_at_peak * load.powf(p.power_exponent);
        let decay = (-dt_s / p.tau_s).exp();
        self.temp_c = steady_c + (self.temp_c - steady_c) * decay;
        self.peak_temp_c = self.peak_temp_c.max(self.temp_c);
        if self.throttled {
            self.throttled_s += dt_s;
        }
        if self.temp_c >= p.warn_c {
            self.warn_s += dt_s;
        }
        if !self.throttled && self.temp_c >= p.warn_c {
            self.throttled = true;
            self.transitions += 1;
        } else if self.throttled && self.temp_c < p.warn_c - p.release_c {
            self.throttled = false;
        }
    }
}

/// A [`DriveSensor`] over the model, heated by the bytes a real reader moves on the real
/// clock (`sluice run --thermal sim`): the governor's plumbing on a machine without sensors.
pub struct ModelSensor {
    model: DriveModel,
    bytes_read: Box<dyn FnMut() -> u64 + Send>,
    last: Option<(Instant, u64)>,
}

impl ModelSensor {
    /// A model sensor; `bytes_read` returns the reader's running byte count.
    pub fn new(params: DriveModelParams, bytes_read: Box<dyn FnMut() -> u64 + Send>) -> Self {
        ModelSensor {
            model: DriveModel::new(params),
            bytes_read,
            last: None,
        }
    }
}

impl DriveSensor for ModelSensor {
    fn read(&mut self) -> DriveReading {
        let (now, bytes) = (Instant::now(), (self.bytes_read)());
        if let Some((then, before)) = self.last {
            let dt_s = now.duration_since(then).as_secs_f64();
            if dt_s > 0.0 {
                let bytes_per_s = bytes.saturating_sub(before) as f64 / dt_s;
                self.model.advance(dt_s, bytes_per_s);
            }
        }
        self.last = Some((now, bytes));
        self.model.reading()
    }

    fn name(&self) -> String {
        "simulated drive".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heats_under_load_and_cools_when_idle() {
        let mut drive = DriveModel::new(DriveModelParams::default());
        let idle = drive.temp_c();
        drive.advance(30.0, 5e9);
        let hot = drive.temp_c();
        assert!(hot > idle + 10.0, "30 s at 5 GB/s heats: {idle} -> {hot}");
        drive.advance(300.0, 0.0);
        assert!((drive.temp_c() - idle).abs() < 0.5, "cools back to idle");
        assert_eq!(drive.peak_temp_c(), hot);
    }

    #[test]
    fn model_sensor_heats_with_the_bytes_read() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&bytes);
        let params = DriveModelParams {
            tau_s: 0.01,
            ..DriveModelParams::default()
        };
        let mut sensor =
            ModelSensor::new(params, Box::new(move || counter.load(Ordering::Relaxed)));
        let idle = sensor.read().temp_c.unwrap_or(0.0);
        bytes.store(200_000_000, Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(40));
        let hot = sensor.read().temp_c.unwrap_or(0.0);
        assert!(hot > idle + 5.0, "{idle} -> {hot}");
        assert_eq!(sensor.read().warn_c, Some(params.warn_c));
    }

    #[test]
    fn bandwidth_saturates_with_queue_depth() {
        let drive = DriveModel::new(DriveModelParams::default());
        let chunk = 1 << 20;
        let b = |q| drive.bandwidth_bytes_per_s(q, chunk);
        assert_eq!(b(0), 0.0);
        assert!(b(1) < b(4) && b(4) < b(32) && b(32) < 7e9);
        assert!(b(32) > 0.8 * 7e9);
    }

    #[test]
    fn throttles_above_warning_with_hysteresis() {
        let p = DriveModelParams::default();
        let mut drive = DriveModel::new(p);
        let full = drive.bandwidth_bytes_per_s(32, 1 << 20);
        let mut t = 0.0;
        while !drive.throttled() {
            drive.advance(0.1, full);
            t += 0.1;
            assert!(t < 600.0, "never reached the warning temperature");
        }
        assert!(drive.temp_c() >= p.warn_c);
        assert_eq!(drive.transitions(), 1);
        let cut = drive.bandwidth_bytes_per_s(32, 1 << 20);
        assert!((cut - full * p.throttle_fraction).abs() < 1.0);
        // Cooling a little is not enough to release it; cooling past the release point is.
        drive.advance(0.5, cut);
        assert!(drive.throttled());
        while drive.throttled() {
            drive.advance(0.1, cut);
        }
        assert!(drive.temp_c() < p.warn_c - p.release_c);
        assert!(drive.throttled_s() > 0.0);
    }
}

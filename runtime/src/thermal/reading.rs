//! What the sensors report: one [`DriveReading`] per poll, every field optional, because every
//! source (hwmon, the SMART log, Identify, a model) may lack any of them.

/// Temperature sensors a drive reports besides its composite one (SMART sensors 1..8).
pub const DRIVE_SENSORS_MAX: usize = 8;

/// The SMART / Health log's thermal fields (log page 0x02).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SmartThermal {
    /// `critical_warning` bits (bit 1: temperature beyond a threshold).
    pub critical_warning: u8,
    /// Composite temperature (°C); `None` when the drive reports 0 K.
    pub temp_c: Option<f64>,
    /// Minutes spent above the warning composite temperature.
    pub warn_time_min: u32,
    /// Minutes spent above the critical composite temperature.
    pub crit_time_min: u32,
    /// Temperature sensors 1..8 (°C), `None` where not implemented.
    pub sensors_c: [Option<f64>; DRIVE_SENSORS_MAX],
    /// Thermal-management transitions into TMT1 and TMT2: the drive's own throttle events.
    pub tmt_transitions: [u32; 2],
    /// Seconds spent throttled at TMT1 and TMT2.
    pub tmt_time_s: [u32; 2],
}

impl SmartThermal {
    /// Whether `critical_warning` flags the temperature.
    pub fn temp_warning(&self) -> bool {
        self.critical_warning & 0x02 != 0
    }

    /// Total thermal-management transitions (TMT1 + TMT2).
    pub fn transitions_total(&self) -> u64 {
        u64::from(self.tmt_transitions[0]) + u64::from(self.tmt_transitions[1])
    }
}

/// One poll of a drive's thermal state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DriveReading {
    /// Composite temperature (°C).
    pub temp_c: Option<f64>,
    /// Other temperature sensors (°C), hwmon `temp2..temp9` or SMART sensors 1..8.
    pub sensors_c: [Option<f64>; DRIVE_SENSORS_MAX],
    /// The over-temperature threshold the drive throttles at (hwmon `temp1_max`, else WCTEMP).
    pub warn_c: Option<f64>,
    /// The critical temperature (hwmon `temp1_crit`, else CCTEMP).
    pub crit_c: Option<f64>,
    /// hwmon `temp1_alarm`: the temperature is beyond a threshold.
    pub alarm: Option<bool>,
    /// The SMART log's thermal fields, when the log could be read.
    pub smart: Option<SmartThermal>,
}

impl DriveReading {
    /// Whether this reading carries any temperature at all.
    pub fn has_temp(&self) -> bool {
        self.temp_c.is_some()
    }

    /// Whether the drive itself says it is too hot now (alarm file or SMART warning bit).
    pub fn drive_alarm(&self) -> bool {
        self.alarm == Some(true) || self.smart.is_some_and(|s| s.temp_warning())
    }

    /// One line for people: `47 °C (warning 80 °C, critical 86 °C)`.
    pub fn summary(&self) -> String {
        let Some(temp_c) = self.temp_c else {
            return "no temperature reported".to_string();
        };
        let mut line = format!("{temp_c:.0} °C");
        let mut limits = Vec::new();
        if let Some(w) = self.warn_c {
            limits.push(format!("warning {w:.0} °C"));
        }
        if let Some(c) = self.crit_c {
            limits.push(format!("critical {c:.0} °C"));
        }
        if let Some(s) = &self.smart {
            limits.push(format!(
                "{} thermal throttle transitions",
                s.transitions_total()
            ));
        }
        if self.drive_alarm() {
            limits.push("ALARM".to_string());
        }
        if !limits.is_empty() {
            line.push_str(&format!(" ({})", limits.join(", ")));
        }
        line
    }
}

/// A source of drive readings: a real NVMe drive, a fixture, or the thermal model.
pub trait DriveSensor: Send {
    /// Polls the sensor. A command to the drive on real hardware: call it about once a second.
    fn read(&mut self) -> DriveReading;
    /// What is being read, for people (`nvme0 (Samsung SSD 990 PRO)`).
    fn name(&self) -> String;
}

//! The thermal governor's decisions: a pure state machine from `(time, reading)` to a prefetch
//! depth, so that step response, hysteresis and recovery are unit-testable without threads.
//!
//! Policy (all temperatures of the composite sensor):
//! - `ceiling = warn − margin`, where `warn` is the drive's own over-temperature threshold
//!   (hwmon `temp1_max`, else WCTEMP, else `warn_default_c`).
//! - The temperature is projected `lookahead_s` ahead along its recent rise (a window of
//!   readings, so the 1 K steps of NVMe sensors do not read as spikes).
//! - The target depth falls linearly from `depth_max` at `ceiling − band` to 1 at `ceiling`;
//!   when the target is below the depth, the depth drops to it at once (back off just enough).
//! - The drive reporting its own throttling (alarm bit, SMART warning bit, a new thermal-
//!   management transition) halves the depth at once; at the warning or near the critical
//!   temperature the depth goes to 1. It never goes below 1.
//! - Recovery is gradual: one step up per `recover_interval_s`, and only while the projected
//!   temperature stays `hysteresis_c` below the ceiling. With depths this coarse the governor
//!   thus alternates between the two depths around the one the drive can sustain, holding the
//!   temperature just under the ceiling rather than somewhere down in the band.
//! - Without a temperature (no sensor, a failed read) the depth is left where it is.

use std::fmt;

use super::reading::DriveReading;

/// Readings kept to estimate how fast the temperature rises.
const TREND_READINGS_MAX: usize = 16;
/// Shortest span of readings from which a rise is estimated (s).
const TREND_SPAN_MIN_S: f64 = 3.0;

/// How the governor behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GovernorConfig {
    /// The depth without thermal pressure (the configured prefetch depth).
    pub depth_max: usize,
    /// How far below the warning threshold the temperature is held (°C).
    pub margin_c: f64,
    /// Width of the band below the ceiling over which the depth is reduced (°C).
    pub band_c: f64,
    /// How much cooler it must be before the depth steps back up (°C).
    pub hysteresis_c: f64,
    /// How far ahead the temperature is projected along its trend (s).
    pub lookahead_s: f64,
    /// Shortest time between two steps up (s).
    pub recover_interval_s: f64,
    /// Distance below the critical temperature at which the depth goes to 1 (°C).
    pub crit_guard_c: f64,
    /// Warning threshold assumed when the drive reports none (°C); `None`: do not govern.
    pub warn_default_c: Option<f64>,
}

impl GovernorConfig {
    /// Defaults for a prefetcher whose configured depth is `depth_max`.
    pub fn new(depth_max: usize) -> GovernorConfig {
        GovernorConfig {
            depth_max: depth_max.max(1),
            margin_c: 2.0,
            band_c: 4.0,
            hysteresis_c: 1.0,
            lookahead_s: 4.0,
            recover_interval_s: 5.0,
            crit_guard_c: 3.0,
            warn_default_c: Some(70.0),
        }
    }
}

/// Why the depth changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reason {
    /// The drive says it is throttling itself (alarm, SMART warning or a new TMT transition).
    DriveThrottling {
        /// Composite temperature (°C).
        temp_c: f64,
    },
    /// At the warning threshold or within `crit_guard_c` of the critical one.
    AtLimit {
        /// Composite temperature (°C).
        temp_c: f64,
        /// The limit reached (°C).
        limit_c: f64,
    },
    /// The projected temperature entered the band below the ceiling.
    NearWarning {
        /// Composite temperature (°C).
        temp_c: f64,
        /// Rise rate (°C per minute).
        rising_c_per_min: f64,
        /// The warning threshold (°C).
        warn_c: f64,
    },
    /// Cooled enough to step back up.
    Cooled {
        /// Composite temperature (°C).
        temp_c: f64,
        /// The warning threshold (°C).
        warn_c: f64,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::DriveThrottling { temp_c } => {
                write!(f, "the drive reports thermal throttling at {temp_c:.1} °C")
            }
            Reason::AtLimit { temp_c, limit_c } => {
                write!(f, "{temp_c:.1} °C reached the {limit_c:.0} °C limit")
            }
            Reason::NearWarning {
                temp_c,
                rising_c_per_min,
                warn_c,
            } => write!(
                f,
                "{temp_c:.1} °C, rising {rising_c_per_min:.1} °C/min, near the {warn_c:.0} °C warning threshold"
            ),
            Reason::Cooled { temp_c, warn_c } => {
                write!(f, "cooled to {temp_c:.1} °C ({warn_c:.0} °C warning threshold)")
            }
        }
    }
}

/// One change of depth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// When (s, on the governor's clock).
    pub at_s: f64,
    /// Depth before.
    pub from: usize,
    /// Depth after.
    pub to: usize,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "prefetch depth {} -> {}: {}",
            self.from, self.to, self.reason
        )
    }
}

/// What the governor did over a run (the `--json` stats).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GovernorHistory {
    /// Times the depth left `depth_max` (entered the throttled state).
    pub throttle_events: u64,
    /// Depth changes of any kind.
    pub changes: u64,
    /// Seconds spent below `depth_max`.
    pub throttled_s: f64,
    /// Smallest depth set.
    pub depth_min: usize,
    /// Hottest composite temperature read (°C).
    pub peak_temp_c: Option<f64>,
    /// Readings taken.
    pub polls: u64,
    /// Readings that carried no temperature.
    pub polls_without_temp: u64,
}

/// The governor's state.
#[derive(Clone, Debug)]
pub struct Governor {
    config: GovernorConfig,
    depth: usize,
    trend: [(f64, f64); TREND_READINGS_MAX],
    trend_len: usize,
    trend_next: usize,
    last_poll_s: Option<f64>,
    last_change_s: f64,
    transitions_seen: Option<u64>,
    history: GovernorHistory,
}

impl Governor {
    /// A governor starting at `config.depth_max`.
    pub fn new(config: GovernorConfig) -> Governor {
        let depth = config.depth_max.max(1);
        Governor {
            config,
            depth,
            trend: [(0.0, 0.0); TREND_READINGS_MAX],
            trend_len: 0,
            trend_next: 0,
            last_poll_s: None,
            last_change_s: f64::NEG_INFINITY,
            transitions_seen: None,
            history: GovernorHistory {
                depth_min: depth,
                ..GovernorHistory::default()
            },
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GovernorConfig {
        &self.config
    }

    /// The depth decided last.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// What happened so far.
    pub fn history(&self) -> GovernorHistory {
        self.history
    }

    /// Takes one reading made at `now_s`; returns the change of depth it calls for, if any.
    pub fn update(&mut self, now_s: f64, reading: &DriveReading) -> Option<Decision> {
        let h = &mut self.history;
        h.polls += 1;
        if let Some(last) = self.last_poll_s {
            if self.depth < self.config.depth_max {
                h.throttled_s += (now_s - last).max(0.0);
            }
        }
        self.last_poll_s = Some(now_s);
        let new_transitions = self.new_transitions(reading);
        let Some(temp_c) = reading.temp_c else {
            self.history.polls_without_temp += 1;
            return None;
        };
        self.history.peak_temp_c = Some(self.history.peak_temp_c.map_or(temp_c, |p| p.max(temp_c)));
        self.push_trend(now_s, temp_c);
        let (to, reason) = self.decide(now_s, temp_c, reading, new_transitions)?;
        let to = to.clamp(1, self.config.depth_max);
        if to == self.depth {
            return None;
        }
        Some(self.apply(now_s, to, reason))
    }

    fn decide(
        &self,
        now_s: f64,
        temp_c: f64,
        reading: &DriveReading,
        new_transitions: bool,
    ) -> Option<(usize, Reason)> {
        let c = &self.config;
        if reading.drive_alarm() || new_transitions {
            return Some((self.depth / 2, Reason::DriveThrottling { temp_c }));
        }
        if let Some(crit_c) = reading.crit_c {
            if temp_c >= crit_c - c.crit_guard_c {
                let limit_c = crit_c - c.crit_guard_c;
                return Some((1, Reason::AtLimit { temp_c, limit_c }));
            }
        }
        let warn_c = reading
            .warn_c
            .or(reading
                .crit_c
                .map(|crit| crit - c.crit_guard_c - c.margin_c))
            .or(c.warn_default_c)?;
        if temp_c >= warn_c {
            return Some((
                1,
                Reason::AtLimit {
                    temp_c,
                    limit_c: warn_c,
                },
            ));
        }
        let rising_c_per_s = self.rise_c_per_s().max(0.0);
        let projected_c = temp_c + rising_c_per_s * c.lookahead_s;
        let target = self.target(projected_c, warn_c);
        if target < self.depth {
            let rising_c_per_min = rising_c_per_s * 60.0;
            return Some((
                target,
                Reason::NearWarning {
                    temp_c,
                    rising_c_per_min,
                    warn_c,
                },
            ));
        }
        let cool_enough = projected_c + c.hysteresis_c < warn_c - c.margin_c;
        if cool_enough && now_s - self.last_change_s >= c.recover_interval_s {
            return Some((self.depth + 1, Reason::Cooled { temp_c, warn_c }));
        }
        None
    }

    /// The depth the band allows at `temp_c`: `depth_max` below it, 1 at the ceiling.
    fn target(&self, temp_c: f64, warn_c: f64) -> usize {
        let c = &self.config;
        let ceiling_c = warn_c - c.margin_c;
        let low_c = ceiling_c - c.band_c.max(f64::EPSILON);
        if temp_c <= low_c {
            return c.depth_max;
        }
        if temp_c >= ceiling_c {
            return 1;
        }
        let room = (ceiling_c - temp_c) / (ceiling_c - low_c);
        1 + (room * (c.depth_max - 1) as f64).floor() as usize
    }

    fn apply(&mut self, now_s: f64, to: usize, reason: Reason) -> Decision {
        let from = self.depth;
        let h = &mut self.history;
        if from == self.config.depth_max && to < from {
            h.throttle_events += 1;
        }
        h.changes += 1;
        h.depth_min = h.depth_min.min(to);
        self.depth = to;
        self.last_change_s = now_s;
        Decision {
            at_s: now_s,
            from,
            to,
            reason,
        }
    }

    /// Whether the drive's thermal-management transition count rose since the last reading.
    fn new_transitions(&mut self, reading: &DriveReading) -> bool {
        let Some(now) = reading.smart.map(|s| s.transitions_total()) else {
            return false;
        };
        let before = self.transitions_seen.replace(now);
        before.is_some_and(|b| now > b)
    }

    fn push_trend(&mut self, now_s: f64, temp_c: f64) {
        self.trend[self.trend_next] = (now_s, temp_c);
        self.trend_next = (self.trend_next + 1) % TREND_READINGS_MAX;
        self.trend_len = (self.trend_len + 1).min(TREND_READINGS_MAX);
    }

    /// Rise rate over the readings kept (°C/s); 0 until they span `TREND_SPAN_MIN_S`.
    fn rise_c_per_s(&self) -> f64 {
        if self.trend_len < 2 {
            return 0.0;
        }
        let newest = (self.trend_next + TREND_READINGS_MAX - 1) % TREND_READINGS_MAX;
        let oldest = (self.trend_next + TREND_READINGS_MAX - self.trend_len) % TREND_READINGS_MAX;
        let ((t0, c0), (t1, c1)) = (self.trend[oldest], self.trend[newest]);
        if t1 - t0 < TREND_SPAN_MIN_S {
            return 0.0;
        }
        (c1 - c0) / (t1 - t0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thermal::reading::SmartThermal;

    fn at(temp_c: f64) -> DriveReading {
        DriveReading {
            temp_c: Some(temp_c),
            warn_c: Some(80.0),
            crit_c: Some(86.0),
            ..DriveReading::default()
        }
    }

    fn governor() -> Governor {
        Governor::new(GovernorConfig::new(8))
    }

    #[test]
    fn cool_drive_keeps_full_depth() {
        let mut g = governor();
        for s in 0..60 {
            assert_eq!(g.update(f64::from(s), &at(50.0)), None);
        }
        assert_eq!(g.depth(), 8);
        assert_eq!(g.history().throttle_events, 0);
        assert_eq!(g.history().peak_temp_c, Some(50.0));
    }

    #[test]
    fn step_into_the_band_backs_off_in_proportion() {
        let mut g = governor();
        // Ceiling 78 °C, band 74..78: 76 °C is half-way, so about half the depth.
        let d = g.update(0.0, &at(76.0)).expect("a change");
        assert_eq!((d.from, d.to), (8, 4));
        assert!(matches!(d.reason, Reason::NearWarning { .. }));
        assert!(d.to_string().contains("8 -> 4"), "{d}");
        // Hotter: further down, never below 1.
        assert_eq!(g.update(1.0, &at(77.9)).map(|d| d.to), Some(1));
        assert_eq!(g.update(2.0, &at(79.0)), None, "already at 1");
        assert_eq!(g.depth(), 1);
        assert_eq!(g.history().throttle_events, 1);
        assert_eq!(g.history().depth_min, 1);
    }

    #[test]
    fn warning_and_critical_go_to_one() {
        let mut g = governor();
        let d = g.update(0.0, &at(80.0)).expect("a change");
        assert_eq!(d.to, 1);
        assert!(matches!(d.reason, Reason::AtLimit { limit_c, .. } if limit_c == 80.0));
        let mut g = governor();
        let reading = DriveReading {
            warn_c: None,
            ..at(84.0)
        };
        let d = g.update(0.0, &reading).expect("a change");
        assert!(matches!(d.reason, Reason::AtLimit { limit_c, .. } if limit_c == 83.0));
    }

    #[test]
    fn drive_throttling_halves_at_once() {
        let mut g = governor();
        let mut reading = at(60.0);
        let smart = SmartThermal {
            tmt_transitions: [3, 0],
            ..SmartThermal::default()
        };
        reading.smart = Some(smart);
        assert_eq!(
            g.update(0.0, &reading),
            None,
            "old transitions are not news"
        );
        reading.smart = Some(SmartThermal {
            tmt_transitions: [4, 0],
            ..smart
        });
        let d = g.update(1.0, &reading).expect("a change");
        assert_eq!((d.from, d.to), (8, 4));
        assert!(matches!(d.reason, Reason::DriveThrottling { .. }));
        reading.alarm = Some(true);
        assert_eq!(g.update(2.0, &reading).map(|d| d.to), Some(2));
        assert_eq!(g.update(3.0, &reading).map(|d| d.to), Some(1));
        assert_eq!(g.update(4.0, &reading), None, "never below 1");
    }

    #[test]
    fn rising_temperature_backs_off_before_the_band() {
        let mut g = governor();
        // 1 °C every 2 s, well below the band (74 °C) at first: the projection sees it coming.
        let mut first = None;
        for s in 0..40 {
            let temp_c = 60.0 + f64::from(s) * 0.5;
            if let Some(d) = g.update(f64::from(s), &at(temp_c)) {
                first.get_or_insert((temp_c, d));
            }
        }
        let (temp_c, d) = first.expect("backed off");
        assert!(temp_c < 74.0, "backed off at {temp_c} °C, before the band");
        assert!(
            matches!(d.reason, Reason::NearWarning { rising_c_per_min, .. } if rising_c_per_min > 20.0)
        );
    }

    #[test]
    fn recovery_is_gradual_and_has_hysteresis() {
        let mut g = governor();
        g.update(0.0, &at(77.0));
        let low = g.depth();
        assert!(low < 4);
        // Just below the temperature that would allow one more step: hysteresis holds the depth.
        let mut t = 1.0;
        for _ in 0..30 {
            assert_eq!(g.update(t, &at(77.0)), None);
            t += 1.0;
        }
        // Cool: one step per recover interval, up to the maximum and no further.
        let mut ups = Vec::new();
        for _ in 0..120 {
            if let Some(d) = g.update(t, &at(55.0)) {
                assert_eq!(d.to, d.from + 1);
                assert!(matches!(d.reason, Reason::Cooled { .. }));
                ups.push(d.at_s);
            }
            t += 1.0;
        }
        assert_eq!(g.depth(), 8);
        assert_eq!(ups.len(), 8 - low);
        for w in ups.windows(2) {
            assert!(
                w[1] - w[0] >= 5.0,
                "steps {w:?} closer than the recover interval"
            );
        }
        let h = g.history();
        assert!(h.throttled_s >= 30.0, "{h:?}");
        assert_eq!(h.throttle_events, 1);
    }

    #[test]
    fn no_temperature_holds_and_no_threshold_uses_the_default() {
        let mut g = governor();
        assert_eq!(g.update(0.0, &DriveReading::default()), None);
        assert_eq!(g.history().polls_without_temp, 1);
        let bare = DriveReading {
            temp_c: Some(69.0),
            ..DriveReading::default()
        };
        // Default warning 70 °C: ceiling 68, so 69 °C means depth 1.
        assert_eq!(g.update(1.0, &bare).map(|d| d.to), Some(1));
        let mut off = Governor::new(GovernorConfig {
            warn_default_c: None,
            ..GovernorConfig::new(8)
        });
        assert_eq!(off.update(0.0, &bare), None);
    }
}

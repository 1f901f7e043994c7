//! The block device under a file, as the kernel counts it in `/proc/diskstats`: how long it
//! was busy and how much it read over a window, so `sluice bench model` can say whether the
//! drive ever waited for the engine while it decoded.
//!
//! A file's `st_dev` names its device (a partition or a whole disk: both have a line). A file
//! on a file system with no block device of its own (overlayfs, tmpfs, NFS) has no line, and
//! the figures are absent.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

/// `/proc/diskstats` fields, counted from 0: the device's name, sectors read, and the time
/// it had I/O in flight (`io_ticks`, ms).
const FIELD_NAME: usize = 2;
const FIELD_SECTORS_READ: usize = 5;
const FIELD_IO_TICKS_MS: usize = 12;
/// `/proc/diskstats` counts 512-byte sectors whatever the device's own sector size.
const SECTOR_BYTES: u64 = 512;

/// The device a file lies on.
#[derive(Clone, Debug)]
pub(super) struct Device {
    major: u64,
    minor: u64,
    name: String,
}

/// One reading of a device's counters.
#[derive(Clone, Copy, Debug)]
pub(super) struct Counters {
    at: Instant,
    sectors_read: u64,
    io_ticks_ms: u64,
}

/// What a device did between two readings.
#[derive(Clone, Debug, serde::Serialize)]
pub(super) struct Activity {
    /// The kernel's name for the device (`nvme0n1p2`, `vda`).
    pub device: String,
    /// Share of the window with at least one request in flight.
    pub busy: f64,
    /// Bytes read from the device per second over the window (every reader's).
    pub read_gb_per_s: f64,
}

impl Device {
    /// The device `path` lies on, if `/proc/diskstats` lists it.
    pub(super) fn of(path: &Path) -> Option<Device> {
        let dev = std::fs::metadata(path).ok()?.dev();
        // Linux's encoding of dev_t (the glibc `major`/`minor` macros).
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let name = find_line(major, minor)?.get(FIELD_NAME)?.clone();
        Some(Device { major, minor, name })
    }

    /// The device's counters now; `None` if its line went away or does not parse.
    pub(super) fn read(&self) -> Option<Counters> {
        let at = Instant::now();
        let fields = find_line(self.major, self.minor)?;
        let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
        Some(Counters {
            at,
            sectors_read: field(FIELD_SECTORS_READ)?,
            io_ticks_ms: field(FIELD_IO_TICKS_MS)?,
        })
    }

    /// What the device did from `before` to `after`.
    pub(super) fn activity(&self, before: &Counters, after: &Counters) -> Option<Activity> {
        let seconds = after.at.duration_since(before.at).as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        let busy_ms = after.io_ticks_ms.checked_sub(before.io_ticks_ms)?;
        let sectors = after.sectors_read.checked_sub(before.sectors_read)?;
        Some(Activity {
            device: self.name.clone(),
            busy: (busy_ms as f64 / 1e3 / seconds).min(1.0),
            read_gb_per_s: (sectors * SECTOR_BYTES) as f64 / 1e9 / seconds,
        })
    }
}

/// The whitespace-separated fields of the `/proc/diskstats` line of device `major:minor`.
fn find_line(major: u64, minor: u64) -> Option<Vec<String>> {
    let text = std::fs::read_to_string("/proc/diskstats").ok()?;
    parse_line(&text, major, minor)
}

fn parse_line(text: &str, major: u64, minor: u64) -> Option<Vec<String>> {
    text.lines().find_map(|line| {
        let fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        (num(0)? == major && num(1)? == minor && fields.len() > FIELD_IO_TICKS_MS).then_some(fields)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
 254       0 vda 26422327 1616716 44130050996 294550140 335892 418696 515718600 2791051 0 11387408 297425326 297235 6 457249368 82888 3833 1245
 254       1 vda1 100 0 800 10 0 0 0 0 0 9 10 0 0 0 0 0 0
 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0";

    #[test]
    fn finds_a_device_by_number() {
        let vda = parse_line(SAMPLE, 254, 0).expect("vda");
        assert_eq!(vda[FIELD_NAME], "vda");
        assert_eq!(vda[FIELD_SECTORS_READ], "44130050996");
        assert_eq!(vda[FIELD_IO_TICKS_MS], "11387408");
        assert_eq!(
            parse_line(SAMPLE, 254, 1).expect("vda1")[FIELD_NAME],
            "vda1"
        );
        assert!(parse_line(SAMPLE, 8, 0).is_none());
        assert!(parse_line("254 0 short 1 2", 254, 0).is_none());
    }

    #[test]
    fn activity_over_a_window() {
        let d = Device {
            major: 1,
            minor: 2,
            name: "nvme0n1".into(),
        };
        let t0 = Instant::now();
        let before = Counters {
            at: t0,
            sectors_read: 1000,
            io_ticks_ms: 5000,
        };
        let after = Counters {
            at: t0 + std::time::Duration::from_secs(2),
            sectors_read: 1000 + 2 * 3_000_000_000 / SECTOR_BYTES,
            io_ticks_ms: 5000 + 1900,
        };
        let a = d.activity(&before, &after).expect("activity");
        assert!((a.busy - 0.95).abs() < 1e-9, "{a:?}");
        assert!((a.read_gb_per_s - 3.0).abs() < 1e-9, "{a:?}");
        assert!(
            d.activity(&after, &before).is_none(),
            "counters never run backwards"
        );
    }

    #[test]
    fn the_file_systems_device_is_found_or_absent() {
        // Whatever this machine is, a file's device either has a line with counters or none.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").expect("write");
        if let Some(d) = Device::of(&path) {
            assert!(d.read().is_some(), "{d:?} has a line but no counters");
        }
    }
}

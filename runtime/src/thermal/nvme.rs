//! The NVMe drive that holds a file, and its temperature sensors.
//!
//! Resolution, all through sysfs under an injectable root (`/` on a real system, a fixture tree
//! in tests): the file's `st_dev` → `/sys/dev/block/MAJ:MIN` → the whole disk (the parent
//! of a partition; the single slave of a device-mapper volume) → the disk's controller
//! (`device`, or with native multipath the first `nvmeN` of its subsystem) → the controller's
//! hwmon device named `nvme` (under the PCI function's `hwmon/`, else the matching
//! `/sys/class/hwmon/*`).
//!
//! Reading: hwmon's `temp1_input` (composite), `temp1_max` (over-temperature threshold),
//! `temp1_crit` (CCTEMP), `temp1_alarm`, `temp2..9_input`; the SMART log and Identify through
//! an [`AdminSource`] when permitted. Each hwmon temperature read is a Get Log Page command to
//! the drive, so a poll reads only the composite temperature and the alarm (or, when the SMART
//! log is readable, that log alone); thresholds and the extra sensors are re-read every
//! [`REFRESH_POLLS`] polls. A file whose contents are not a number reads as absent, with one
//! warning. No sensor at all is [`NoSensor`], never an error of the run.

use std::fs;
use std::path::{Path, PathBuf};

use super::reading::{DriveReading, DriveSensor, DRIVE_SENSORS_MAX};
use super::smart::{parse_identify_temps, parse_smart_log, AdminRead, AdminSource, NvmeIoctl};
use super::smart::{IDENTIFY_BYTES, SMART_LOG_BYTES};

/// Polls between two reads of the thresholds and the extra sensors.
pub const REFRESH_POLLS: u64 = 60;
/// Device-mapper layers followed from a volume to its disk.
const SLAVE_DEPTH_MAX: usize = 4;

/// Why there is no sensor (not on NVMe, no hwmon, no NVML, no GPU). Not an error of the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct NoSensor {
    /// What was missing.
    pub reason: String,
}

fn no(reason: impl Into<String>) -> NoSensor {
    NoSensor {
        reason: reason.into(),
    }
}

/// Where a drive's sensors live in sysfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvmeLocation {
    /// The whole disk (`nvme0n1`).
    pub disk: String,
    /// The controller (`nvme0`); its admin device is `/dev/<controller>`.
    pub controller: String,
    /// The controller's sysfs directory.
    pub controller_dir: PathBuf,
    /// The hwmon directory named `nvme`, if the kernel registered one.
    pub hwmon_dir: Option<PathBuf>,
    /// The drive's model string.
    pub model: Option<String>,
}

fn is_controller_name(name: &str) -> bool {
    name.strip_prefix("nvme")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Finds the NVMe drive behind block device `major:minor` in the sysfs under `root`.
pub fn locate(root: &Path, major: u32, minor: u32) -> Result<NvmeLocation, NoSensor> {
    let sys = root.join("sys");
    let dev_link = sys.join(format!("dev/block/{major}:{minor}"));
    let mut disk = fs::canonicalize(&dev_link).map_err(|_| {
        no(format!(
            "device {major}:{minor} is not a block device in sysfs"
        ))
    })?;
    for _ in 0..SLAVE_DEPTH_MAX {
        if disk.join("partition").exists() {
            disk = disk
                .parent()
                .map(Path::to_path_buf)
                .ok_or_else(|| no("a partition without a parent disk"))?;
        }
        let slaves: Vec<PathBuf> = fs::read_dir(disk.join("slaves"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        match slaves.as_slice() {
            [] => break,
            [one] => disk = fs::canonicalize(one).map_err(|_| no("unreadable dm slave"))?,
            _ => {
                return Err(no(format!(
                    "{} spans {} devices",
                    file_name(&disk),
                    slaves.len()
                )))
            }
        }
    }
    let disk_name = file_name(&disk);
    if !disk_name.starts_with("nvme") {
        return Err(no(format!("{disk_name} is not an NVMe drive")));
    }
    let controller_dir = controller_of(&disk)?;
    let controller = file_name(&controller_dir);
    let hwmon_dir = hwmon_of(&sys, &controller_dir);
    let model = read_trimmed(&controller_dir.join("model"));
    Ok(NvmeLocation {
        disk: disk_name,
        controller,
        controller_dir,
        hwmon_dir,
        model,
    })
}

/// The controller of an NVMe disk: its `device`, or the first controller of its subsystem.
fn controller_of(disk: &Path) -> Result<PathBuf, NoSensor> {
    let device = fs::canonicalize(disk.join("device"))
        .map_err(|_| no(format!("{} has no controller link", file_name(disk))))?;
    if is_controller_name(&file_name(&device)) {
        return Ok(device);
    }
    let mut controllers: Vec<PathBuf> = fs::read_dir(&device)
        .map_err(|_| no("unreadable NVMe subsystem"))?
        .filter_map(|e| e.ok())
        .filter(|e| is_controller_name(&e.file_name().to_string_lossy()))
        .filter_map(|e| fs::canonicalize(e.path()).ok())
        .collect();
    controllers.sort();
    controllers
        .into_iter()
        .next()
        .ok_or_else(|| no(format!("no controller for {}", file_name(disk))))
}

/// The hwmon named `nvme` registered on the controller's parent (the PCI function).
fn hwmon_of(sys: &Path, controller_dir: &Path) -> Option<PathBuf> {
    let parent = fs::canonicalize(controller_dir.join("device")).ok()?;
    let named_nvme = |dir: &Path| read_trimmed(&dir.join("name")).as_deref() == Some("nvme");
    let mut candidates: Vec<PathBuf> = fs::read_dir(parent.join("hwmon"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    candidates.sort();
    if let Some(found) = candidates.into_iter().find(|d| named_nvme(d)) {
        return Some(found);
    }
    let mut all: Vec<PathBuf> = fs::read_dir(sys.join("class/hwmon"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    all.sort();
    all.into_iter().find(|d| {
        named_nvme(d) && fs::canonicalize(d.join("device")).ok().as_deref() == Some(&parent)
    })
}

/// One hwmon temperature file: millidegrees Celsius, or `None` (absent, unreadable, garbage).
struct HwmonFile {
    path: PathBuf,
    warned: bool,
}

impl HwmonFile {
    fn new(dir: &Path, name: &str) -> HwmonFile {
        HwmonFile {
            path: dir.join(name),
            warned: false,
        }
    }

    fn read_i64(&mut self) -> Option<i64> {
        let text = fs::read_to_string(&self.path).ok()?;
        match text.trim().parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                if !std::mem::replace(&mut self.warned, true) {
                    log::warn!(
                        "{}: {:?} is not a number; ignoring it",
                        self.path.display(),
                        text.trim()
                    );
                }
                None
            }
        }
    }

    fn read_c(&mut self) -> Option<f64> {
        self.read_i64().map(|mc| mc as f64 / 1000.0)
    }
}

struct Hwmon {
    input: HwmonFile,
    max: HwmonFile,
    crit: HwmonFile,
    alarm: HwmonFile,
    sensors: Vec<HwmonFile>,
}

impl Hwmon {
    fn new(dir: &Path) -> Hwmon {
        Hwmon {
            input: HwmonFile::new(dir, "temp1_input"),
            max: HwmonFile::new(dir, "temp1_max"),
            crit: HwmonFile::new(dir, "temp1_crit"),
            alarm: HwmonFile::new(dir, "temp1_alarm"),
            sensors: (2..2 + DRIVE_SENSORS_MAX)
                .map(|n| HwmonFile::new(dir, &format!("temp{n}_input")))
                .collect(),
        }
    }
}

/// The temperature sensors of one NVMe drive.
pub struct NvmeSensor {
    location: NvmeLocation,
    hwmon: Option<Hwmon>,
    admin: Option<Box<dyn AdminSource>>,
    identify: (Option<f64>, Option<f64>),
    /// What the slow-changing files said at the last refresh.
    cached: DriveReading,
    polls: u64,
}

impl NvmeSensor {
    /// The sensor of the drive holding `file`, with the SMART log read through `/dev/nvmeN`
    /// when this process may.
    pub fn for_file(file: &Path) -> Result<NvmeSensor, NoSensor> {
        use std::os::unix::fs::MetadataExt;
        let meta =
            fs::metadata(file).map_err(|e| no(format!("cannot stat {}: {e}", file.display())))?;
        let dev = meta.dev();
        let root = Path::new("/");
        let location = locate(root, libc::major(dev), libc::minor(dev))?;
        let admin_path = root.join("dev").join(&location.controller);
        let admin = match NvmeIoctl::open(&admin_path) {
            Ok(ioctl) => Some(Box::new(ioctl) as Box<dyn AdminSource>),
            Err(e) => {
                log::debug!(
                    "{}: {e}; the SMART log is not read (it needs CAP_SYS_ADMIN)",
                    admin_path.display()
                );
                None
            }
        };
        NvmeSensor::new(location, admin)
    }

    /// A sensor for a located drive, with an optional admin source for SMART and Identify.
    pub fn new(
        location: NvmeLocation,
        admin: Option<Box<dyn AdminSource>>,
    ) -> Result<NvmeSensor, NoSensor> {
        if location.hwmon_dir.is_none() && admin.is_none() {
            return Err(no(format!(
                "{} has no hwmon sensor (CONFIG_NVME_HWMON) and its SMART log is not readable",
                location.controller
            )));
        }
        let hwmon = location.hwmon_dir.as_deref().map(Hwmon::new);
        let mut sensor = NvmeSensor {
            location,
            hwmon,
            admin,
            identify: (None, None),
            cached: DriveReading::default(),
            polls: 0,
        };
        let mut id = vec![0u8; IDENTIFY_BYTES];
        if sensor.admin_read(AdminRead::IdentifyController, &mut id) {
            sensor.identify = parse_identify_temps(&id);
        }
        Ok(sensor)
    }

    /// Where the drive was found.
    pub fn location(&self) -> &NvmeLocation {
        &self.location
    }

    /// Runs an admin read; on failure logs once and stops using the admin source.
    fn admin_read(&mut self, cmd: AdminRead, buf: &mut [u8]) -> bool {
        let Some(admin) = self.admin.as_mut() else {
            return false;
        };
        match admin.admin_read(cmd, buf) {
            Ok(()) => true,
            Err(e) => {
                log::debug!(
                    "{}: {cmd:?} failed ({e}); using hwmon only",
                    self.location.controller
                );
                self.admin = None;
                false
            }
        }
    }

    fn refresh(&mut self) {
        let (wctemp, cctemp) = self.identify;
        let mut cached = DriveReading::default();
        if let Some(h) = self.hwmon.as_mut() {
            cached.warn_c = h.max.read_c();
            cached.crit_c = h.crit.read_c();
            for (slot, file) in cached.sensors_c.iter_mut().zip(h.sensors.iter_mut()) {
                *slot = file.read_c();
            }
        }
        cached.warn_c = cached.warn_c.or(wctemp);
        cached.crit_c = cached.crit_c.or(cctemp);
        self.cached = cached;
    }
}

impl DriveSensor for NvmeSensor {
    fn read(&mut self) -> DriveReading {
        if self.polls.is_multiple_of(REFRESH_POLLS) {
            self.refresh();
        }
        self.polls += 1;
        let mut reading = self.cached;
        let mut log = [0u8; SMART_LOG_BYTES];
        if self.admin_read(AdminRead::SmartLog, &mut log) {
            reading.smart = parse_smart_log(&log);
        }
        if let Some(smart) = reading.smart {
            reading.temp_c = smart.temp_c;
            for (slot, s) in reading.sensors_c.iter_mut().zip(smart.sensors_c) {
                *slot = slot.or(s);
            }
        } else if let Some(h) = self.hwmon.as_mut() {
            reading.temp_c = h.input.read_c();
            reading.alarm = h.alarm.read_i64().map(|v| v != 0);
        }
        reading
    }

    fn name(&self) -> String {
        match &self.location.model {
            Some(model) => format!("{} ({model})", self.location.controller),
            None => self.location.controller.clone(),
        }
    }
}

//! NVMe sensors on fixture sysfs trees: resolution from a block device to its controller's
//! hwmon, thresholds present or not, two drives, missing sensors, garbage in a file, the SMART
//! log and Identify through a fixture admin source.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use sluice_runtime::thermal::{
    locate, AdminRead, AdminSource, DriveSensor, NvmeLocation, NvmeSensor,
};

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).expect("mkdir");
        p
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }

    fn link(&self, rel: &str, target_rel: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        symlink(self.path(target_rel), p).expect("symlink");
    }

    /// A PCI NVMe controller `nvmeN` with namespace `nvmeNn1` (block 259:10N) and partition
    /// `nvmeNn1p1` (259:10N+1); returns the PCI function's directory.
    fn drive(&self, n: u32, model: &str) -> String {
        let pci = format!("sys/devices/pci0000:00/0000:0{n}:00.0");
        let ctrl = format!("{pci}/nvme/nvme{n}");
        let disk = format!("{ctrl}/nvme{n}n1");
        self.mkdir(&pci);
        self.link(&format!("{ctrl}/device"), &pci);
        self.write(&format!("{ctrl}/model"), &format!("{model}\n"));
        self.link(&format!("{disk}/device"), &ctrl);
        self.write(&format!("{disk}/nvme{n}n1p1/partition"), "1\n");
        let (disk_minor, part_minor) = (100 * n, 100 * n + 1);
        self.link(&format!("sys/dev/block/259:{disk_minor}"), &disk);
        self.link(
            &format!("sys/dev/block/259:{part_minor}"),
            &format!("{disk}/nvme{n}n1p1"),
        );
        pci
    }

    /// An hwmon device named `nvme` at `dir`, whose `device` is `pci`, with `files`.
    fn hwmon(&self, dir: &str, pci: &str, files: &[(&str, &str)]) {
        self.write(&format!("{dir}/name"), "nvme\n");
        self.link(&format!("{dir}/device"), pci);
        let name = Path::new(dir)
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        self.link(&format!("sys/class/hwmon/{name}"), dir);
        for (file, text) in files {
            self.write(&format!("{dir}/{file}"), text);
        }
    }
}

const FULL: &[(&str, &str)] = &[
    ("temp1_label", "Composite\n"),
    ("temp1_input", "45850\n"),
    ("temp1_max", "81850\n"),
    ("temp1_crit", "84850\n"),
    ("temp1_alarm", "0\n"),
    ("temp2_input", "50850\n"),
];

fn sensor(tree: &Tree, minor: u32) -> NvmeSensor {
    let at = locate(tree.root(), 259, minor).expect("located");
    NvmeSensor::new(at, None).expect("a sensor")
}

#[test]
fn drive_with_thresholds_through_its_partition() {
    let tree = Tree::new();
    let pci = tree.drive(1, "Fixture SSD 990");
    tree.hwmon(&format!("{pci}/hwmon/hwmon3"), &pci, FULL);
    let at = locate(tree.root(), 259, 101).expect("located");
    assert_eq!(at.disk, "nvme1n1");
    assert_eq!(at.controller, "nvme1");
    assert_eq!(at.model.as_deref(), Some("Fixture SSD 990"));
    assert!(at.hwmon_dir.is_some_and(|d| d.ends_with("hwmon3")));
    let mut s = sensor(&tree, 101);
    assert_eq!(s.name(), "nvme1 (Fixture SSD 990)");
    let r = s.read();
    assert_eq!(r.temp_c, Some(45.85));
    assert_eq!(r.warn_c, Some(81.85));
    assert_eq!(r.crit_c, Some(84.85));
    assert_eq!(r.alarm, Some(false));
    assert_eq!(r.sensors_c[0], Some(50.85));
    assert_eq!(r.sensors_c[1], None);
    assert!(
        r.summary()
            .contains("46 °C (warning 82 °C, critical 85 °C)"),
        "{}",
        r.summary()
    );
    // The sensor follows the drive: a new temperature shows on the next poll.
    tree.write(&format!("{pci}/hwmon/hwmon3/temp1_input"), "60850\n");
    tree.write(&format!("{pci}/hwmon/hwmon3/temp1_alarm"), "1\n");
    let r = s.read();
    assert_eq!(r.temp_c, Some(60.85));
    assert!(r.drive_alarm());
}

#[test]
fn drive_without_thresholds() {
    let tree = Tree::new();
    let pci = tree.drive(0, "Bare");
    tree.hwmon(
        &format!("{pci}/hwmon/hwmon0"),
        &pci,
        &[("temp1_input", "38850\n")],
    );
    let r = sensor(&tree, 0).read();
    assert_eq!(r.temp_c, Some(38.85));
    assert_eq!((r.warn_c, r.crit_c, r.alarm), (None, None, None));
    assert_eq!(r.summary(), "39 °C");
}

#[test]
fn two_drives_each_get_their_own_sensor() {
    let tree = Tree::new();
    let pci1 = tree.drive(1, "First");
    let pci2 = tree.drive(2, "Second");
    tree.hwmon(
        &format!("{pci1}/hwmon/hwmon1"),
        &pci1,
        &[("temp1_input", "41000\n")],
    );
    // The second drive's hwmon is found only through /sys/class/hwmon and its device link.
    tree.hwmon(
        "sys/devices/virtual/hwmon/hwmon9",
        &pci2,
        &[("temp1_input", "52000\n")],
    );
    assert_eq!(sensor(&tree, 101).read().temp_c, Some(41.0));
    assert_eq!(sensor(&tree, 201).read().temp_c, Some(52.0));
    assert_eq!(
        sensor(&tree, 200).read().temp_c,
        Some(52.0),
        "whole disk too"
    );
}

#[test]
fn missing_sensors_are_no_sensor_not_errors() {
    let tree = Tree::new();
    // Not in sysfs at all.
    let e = locate(tree.root(), 8, 0).expect_err("no such device");
    assert!(e.reason.contains("8:0"), "{e}");
    // A virtio disk.
    tree.mkdir("sys/devices/virtual/block/vda");
    tree.link("sys/dev/block/253:0", "sys/devices/virtual/block/vda");
    let e = locate(tree.root(), 253, 0).expect_err("not nvme");
    assert!(e.to_string().contains("vda is not an NVMe drive"), "{e}");
    // An NVMe drive without hwmon and without SMART access.
    tree.drive(3, "NoHwmon");
    let at = locate(tree.root(), 259, 301).expect("located");
    assert_eq!(at.hwmon_dir, None);
    let e = NvmeSensor::new(at, None).err().expect("no sensor");
    assert!(e.reason.contains("nvme3 has no hwmon sensor"), "{e}");
    // An hwmon without a composite temperature file reads as "no temperature".
    let pci = tree.drive(4, "Empty");
    tree.hwmon(
        &format!("{pci}/hwmon/hwmon4"),
        &pci,
        &[("temp1_max", "80000\n")],
    );
    let r = sensor(&tree, 401).read();
    assert_eq!(r.temp_c, None);
    assert_eq!(r.warn_c, Some(80.0));
    assert_eq!(r.summary(), "no temperature reported");
}

#[test]
fn garbage_in_a_file_reads_as_absent() {
    let tree = Tree::new();
    let pci = tree.drive(1, "Garbled");
    tree.hwmon(
        &format!("{pci}/hwmon/hwmon1"),
        &pci,
        &[
            ("temp1_input", "hot\n"),
            ("temp1_max", "\u{0}\u{1}garbage"),
            ("temp1_crit", "84850\n"),
            ("temp1_alarm", "maybe\n"),
        ],
    );
    let mut s = sensor(&tree, 101);
    for _ in 0..3 {
        let r = s.read();
        assert_eq!((r.temp_c, r.warn_c, r.alarm), (None, None, None));
        assert_eq!(r.crit_c, Some(84.85));
    }
}

#[test]
fn multipath_and_device_mapper_reach_the_controller() {
    let tree = Tree::new();
    let pci = tree.drive(0, "Multi");
    tree.hwmon(&format!("{pci}/hwmon/hwmon0"), &pci, FULL);
    // Native multipath: the namespace head hangs off the subsystem, which links its controllers.
    let subsys = "sys/devices/virtual/nvme-subsystem/nvme-subsys0";
    tree.link(&format!("{subsys}/nvme0"), &format!("{pci}/nvme/nvme0"));
    tree.link(&format!("{subsys}/nvme0c0n1/device"), subsys);
    tree.link("sys/dev/block/259:7", &format!("{subsys}/nvme0c0n1"));
    let at = locate(tree.root(), 259, 7).expect("multipath");
    assert_eq!(at.controller, "nvme0");
    // dm-crypt over a partition: one slave.
    tree.link(
        "sys/devices/virtual/block/dm-0/slaves/nvme0n1p1",
        &format!("{pci}/nvme/nvme0/nvme0n1/nvme0n1p1"),
    );
    tree.link("sys/dev/block/254:0", "sys/devices/virtual/block/dm-0");
    let at = locate(tree.root(), 254, 0).expect("dm");
    assert_eq!(
        (at.disk.as_str(), at.controller.as_str()),
        ("nvme0n1", "nvme0")
    );
}

/// SMART log and Identify bytes served as a drive would, or a permission error.
struct FixtureAdmin {
    smart: Option<Vec<u8>>,
    identify: Option<Vec<u8>>,
}

impl AdminSource for FixtureAdmin {
    fn admin_read(&mut self, cmd: AdminRead, buf: &mut [u8]) -> io::Result<()> {
        let data = match cmd {
            AdminRead::SmartLog => &self.smart,
            AdminRead::IdentifyController => &self.identify,
        };
        let data = data
            .as_ref()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EACCES))?;
        buf.copy_from_slice(&data[..buf.len()]);
        Ok(())
    }
}

fn smart_log(kelvin: u16, transitions: u32) -> Vec<u8> {
    let mut log = vec![0u8; 512];
    log[1..3].copy_from_slice(&kelvin.to_le_bytes());
    log[216..220].copy_from_slice(&transitions.to_le_bytes());
    log
}

fn identify(wctemp_k: u16, cctemp_k: u16) -> Vec<u8> {
    let mut id = vec![0u8; 4096];
    id[266..268].copy_from_slice(&wctemp_k.to_le_bytes());
    id[268..270].copy_from_slice(&cctemp_k.to_le_bytes());
    id
}

fn located(tree: &Tree, files: &[(&str, &str)]) -> NvmeLocation {
    let pci = tree.drive(0, "Admin");
    tree.hwmon(&format!("{pci}/hwmon/hwmon0"), &pci, files);
    locate(tree.root(), 259, 1).expect("located")
}

#[test]
fn smart_log_and_identify_when_permitted() {
    let tree = Tree::new();
    let at = located(&tree, &[("temp1_input", "40000\n")]);
    let admin = FixtureAdmin {
        smart: Some(smart_log(340, 5)),
        identify: Some(identify(353, 358)),
    };
    let mut s = NvmeSensor::new(at, Some(Box::new(admin))).expect("sensor");
    let r = s.read();
    // The SMART log's composite temperature replaces the hwmon read; WCTEMP/CCTEMP fill in
    // for the missing hwmon thresholds.
    assert!((r.temp_c.unwrap_or(0.0) - 66.85).abs() < 1e-9);
    assert!((r.warn_c.unwrap_or(0.0) - 79.85).abs() < 1e-9);
    assert!((r.crit_c.unwrap_or(0.0) - 84.85).abs() < 1e-9);
    assert_eq!(r.smart.map(|s| s.tmt_transitions), Some([5, 0]));
}

#[test]
fn refused_admin_commands_fall_back_to_hwmon() {
    let tree = Tree::new();
    let at = located(&tree, FULL);
    let admin = FixtureAdmin {
        smart: None,
        identify: None,
    };
    let mut s = NvmeSensor::new(at, Some(Box::new(admin))).expect("sensor");
    let r = s.read();
    assert_eq!(r.temp_c, Some(45.85));
    assert_eq!(r.smart, None);
    assert_eq!(r.warn_c, Some(81.85));
}

#[test]
fn this_machine_degrades_cleanly() {
    // Probes the real sysfs: on a VM (virtio disk, no hwmon) there is no sensor; on an NVMe
    // machine there is one and it reads.
    let file = tempfile::NamedTempFile::new().expect("file");
    match NvmeSensor::for_file(file.path()) {
        Ok(mut s) => {
            let r = s.read();
            eprintln!("{}: {}", s.name(), r.summary());
        }
        Err(e) => eprintln!("skipping the read: {e}"),
    }
}

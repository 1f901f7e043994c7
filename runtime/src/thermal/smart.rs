//! The NVMe SMART / Health log (page 0x02) and Identify Controller's WCTEMP / CCTEMP, read with
//! admin commands through `NVME_IOCTL_ADMIN_CMD`, and parsed from bytes so fixtures can stand in
//! for a drive. The kernel allows Get Log Page only with CAP_SYS_ADMIN: without it the source
//! reports a permission error and the sensor carries on with hwmon alone.
//! Leaf module for `unsafe`: the ioctl.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::reading::{SmartThermal, DRIVE_SENSORS_MAX};

/// Bytes of the SMART / Health log page.
pub const SMART_LOG_BYTES: usize = 512;
/// Bytes of the Identify Controller data structure.
pub const IDENTIFY_BYTES: usize = 4096;

/// The admin reads the thermal sensor issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminRead {
    /// Get Log Page, LID 0x02 (SMART / Health), 512 bytes.
    SmartLog,
    /// Identify, CNS 0x01 (controller), 4096 bytes.
    IdentifyController,
}

impl AdminRead {
    /// Bytes the command returns.
    pub fn len_bytes(self) -> usize {
        match self {
            AdminRead::SmartLog => SMART_LOG_BYTES,
            AdminRead::IdentifyController => IDENTIFY_BYTES,
        }
    }
}

/// Where admin commands go: the controller's character device, or a fixture in tests.
pub trait AdminSource: Send {
    /// Runs `cmd`, filling `buf` (exactly `cmd.len_bytes()` long).
    fn admin_read(&mut self, cmd: AdminRead, buf: &mut [u8]) -> io::Result<()>;
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Kelvin as NVMe reports it (0: not implemented) to °C.
fn kelvin_c(k: u16) -> Option<f64> {
    (k != 0).then(|| f64::from(k) - 273.15)
}

/// Parses the thermal fields of a SMART / Health log page; `None` if it is too short.
pub fn parse_smart_log(log: &[u8]) -> Option<SmartThermal> {
    if log.len() < SMART_LOG_BYTES {
        return None;
    }
    let mut sensors_c = [None; DRIVE_SENSORS_MAX];
    for (i, s) in sensors_c.iter_mut().enumerate() {
        *s = kelvin_c(u16_at(log, 200 + 2 * i));
    }
    Some(SmartThermal {
        critical_warning: log[0],
        temp_c: kelvin_c(u16_at(log, 1)),
        warn_time_min: u32_at(log, 192),
        crit_time_min: u32_at(log, 196),
        sensors_c,
        tmt_transitions: [u32_at(log, 216), u32_at(log, 220)],
        tmt_time_s: [u32_at(log, 224), u32_at(log, 228)],
    })
}

/// WCTEMP and CCTEMP (°C) from Identify Controller data; `None` where not reported.
pub fn parse_identify_temps(id: &[u8]) -> (Option<f64>, Option<f64>) {
    if id.len() < IDENTIFY_BYTES {
        return (None, None);
    }
    (kelvin_c(u16_at(id, 266)), kelvin_c(u16_at(id, 268)))
}

/// `struct nvme_passthru_cmd` from `<linux/nvme_ioctl.h>`.
#[repr(C)]
#[derive(Default)]
struct PassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

const _: () = assert!(std::mem::size_of::<PassthruCmd>() == 72);

/// `_IOWR('N', 0x41, struct nvme_passthru_cmd)`.
const NVME_IOCTL_ADMIN_CMD: libc::c_ulong = 0xC048_4E41;
const OPCODE_GET_LOG_PAGE: u8 = 0x02;
const OPCODE_IDENTIFY: u8 = 0x06;
const ADMIN_TIMEOUT_MS: u32 = 1000;

/// Admin commands through the controller's character device (`/dev/nvme0`).
pub struct NvmeIoctl {
    file: File,
}

impl NvmeIoctl {
    /// Opens the controller device; fails with EACCES/EPERM without privileges.
    pub fn open(path: &Path) -> io::Result<NvmeIoctl> {
        Ok(NvmeIoctl {
            file: File::open(path)?,
        })
    }
}

impl AdminSource for NvmeIoctl {
    fn admin_read(&mut self, cmd: AdminRead, buf: &mut [u8]) -> io::Result<()> {
        if buf.len() != cmd.len_bytes() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let data_len = cmd.len_bytes() as u32;
        let mut pt = PassthruCmd {
            addr: buf.as_mut_ptr() as u64,
            data_len,
            timeout_ms: ADMIN_TIMEOUT_MS,
            ..PassthruCmd::default()
        };
        match cmd {
            AdminRead::SmartLog => {
                pt.opcode = OPCODE_GET_LOG_PAGE;
                pt.nsid = 0xFFFF_FFFF;
                // LID 0x02; NUMDL (dwords − 1) in bits 31:16.
                pt.cdw10 = 0x02 | ((data_len / 4 - 1) << 16);
            }
            AdminRead::IdentifyController => {
                pt.opcode = OPCODE_IDENTIFY;
                pt.cdw10 = 0x01;
            }
        }
        // SAFETY: `pt` is a valid nvme_passthru_cmd that outlives the call; `addr` points at
        // `buf`, which is exactly `data_len` writable bytes and stays borrowed until the ioctl
        // returns (the kernel completes admin passthrough synchronously).
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), NVME_IOCTL_ADMIN_CMD, &mut pt) };
        match rc {
            0 => Ok(()),
            r if r < 0 => Err(io::Error::last_os_error()),
            // A positive value is the NVMe status code of a failed command.
            status => Err(io::Error::other(format!(
                "NVMe admin command failed with status {status:#x}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_log_fields() {
        let mut log = [0u8; SMART_LOG_BYTES];
        log[0] = 0x02;
        log[1..3].copy_from_slice(&323u16.to_le_bytes()); // 49.85 °C
        log[192..196].copy_from_slice(&7u32.to_le_bytes());
        log[196..200].copy_from_slice(&1u32.to_le_bytes());
        log[200..202].copy_from_slice(&330u16.to_le_bytes());
        log[216..220].copy_from_slice(&12u32.to_le_bytes());
        log[220..224].copy_from_slice(&3u32.to_le_bytes());
        log[224..228].copy_from_slice(&600u32.to_le_bytes());
        let s = parse_smart_log(&log).expect("parsed");
        assert!(s.temp_warning());
        assert!((s.temp_c.unwrap_or(0.0) - 49.85).abs() < 1e-9);
        assert_eq!((s.warn_time_min, s.crit_time_min), (7, 1));
        assert!(s.sensors_c[0].is_some() && s.sensors_c[1].is_none());
        assert_eq!(s.tmt_transitions, [12, 3]);
        assert_eq!(s.transitions_total(), 15);
        assert_eq!(s.tmt_time_s, [600, 0]);
        assert_eq!(parse_smart_log(&log[..100]), None);
    }

    #[test]
    fn identify_temps() {
        let mut id = vec![0u8; IDENTIFY_BYTES];
        id[266..268].copy_from_slice(&356u16.to_le_bytes());
        let (w, c) = parse_identify_temps(&id);
        assert!((w.unwrap_or(0.0) - 82.85).abs() < 1e-9);
        assert_eq!(c, None, "0 K means not reported");
    }
}

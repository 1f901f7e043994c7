//! GPU sensors through NVML (`nvml-wrapper`, which loads `libnvidia-ml.so.1` at run time): no
//! library, no driver or no device is [`NoSensor`], not an error. Every reading is optional,
//! since boards answer `NotSupported` to any of them. NVML's device order is not CUDA's, so the
//! device is found by PCI bus id when the caller knows the CUDA device's.

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{PcieUtilCounter, TemperatureSensor};
use nvml_wrapper::{Device, Nvml};

use super::nvme::NoSensor;

/// One poll of a GPU.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuReading {
    /// Die temperature (°C).
    pub temp_c: Option<u32>,
    /// Board power (W).
    pub power_w: Option<f64>,
    /// PCIe transmit (GPU → host) throughput over NVML's 20 ms window (bytes/s).
    pub pcie_tx_bytes_per_s: Option<u64>,
    /// PCIe receive (host → GPU, our copies) throughput (bytes/s).
    pub pcie_rx_bytes_per_s: Option<u64>,
    /// Whether the clocks are held down for heat (software or hardware thermal slowdown).
    pub thermal_throttle: Option<bool>,
    /// Every active clock-throttle reason, for people.
    pub throttle_reasons: Option<String>,
}

impl GpuReading {
    /// One line for people.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.temp_c {
            parts.push(format!("{t} °C"));
        }
        if let Some(w) = self.power_w {
            parts.push(format!("{w:.0} W"));
        }
        if let (Some(tx), Some(rx)) = (self.pcie_tx_bytes_per_s, self.pcie_rx_bytes_per_s) {
            parts.push(format!(
                "PCIe rx {:.2} GB/s tx {:.2} GB/s",
                rx as f64 / 1e9,
                tx as f64 / 1e9
            ));
        }
        if let Some(r) = &self.throttle_reasons {
            parts.push(format!("throttle: {r}"));
        }
        if parts.is_empty() {
            "no readings".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// One GPU's sensors.
pub struct GpuSensor {
    nvml: Nvml,
    index: u32,
    name: String,
    pci_bus_id: String,
}

impl GpuSensor {
    /// The GPU with `pci_bus_id` (as CUDA reports it), else NVML's first device.
    pub fn open(pci_bus_id: Option<&str>) -> Result<GpuSensor, NoSensor> {
        let nvml = Nvml::init().map_err(|e| NoSensor {
            reason: format!("NVML is unavailable ({e})"),
        })?;
        let (index, name, bus_id) = {
            let device = match pci_bus_id {
                Some(id) => nvml.device_by_pci_bus_id(id),
                None => nvml.device_by_index(0),
            }
            .map_err(|e| NoSensor {
                reason: format!("no GPU for NVML ({e})"),
            })?;
            let index = device.index().map_err(|e| NoSensor {
                reason: format!("NVML device index: {e}"),
            })?;
            let name = device.name().unwrap_or_else(|_| "GPU".to_string());
            let bus_id = device.pci_info().map(|p| p.bus_id).unwrap_or_default();
            (index, name, bus_id)
        };
        Ok(GpuSensor {
            nvml,
            index,
            name,
            pci_bus_id: bus_id,
        })
    }

    /// The device name and PCI bus id.
    pub fn name(&self) -> String {
        format!("{} ({})", self.name, self.pci_bus_id)
    }

    /// Polls the GPU; a reading that fails is `None`.
    pub fn read(&self) -> GpuReading {
        let Ok(device) = self.nvml.device_by_index(self.index) else {
            return GpuReading::default();
        };
        read_device(&device)
    }
}

fn read_device(device: &Device<'_>) -> GpuReading {
    let kb = |c| {
        device
            .pcie_throughput(c)
            .ok()
            .map(|kb_per_s| u64::from(kb_per_s) * 1000)
    };
    let reasons = device.current_throttle_reasons().ok();
    let thermal = ThrottleReasons::SW_THERMAL_SLOWDOWN | ThrottleReasons::HW_THERMAL_SLOWDOWN;
    GpuReading {
        temp_c: device.temperature(TemperatureSensor::Gpu).ok(),
        power_w: device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
        pcie_tx_bytes_per_s: kb(PcieUtilCounter::Send),
        pcie_rx_bytes_per_s: kb(PcieUtilCounter::Receive),
        thermal_throttle: reasons.map(|r| r.intersects(thermal)),
        throttle_reasons: reasons.map(|r| format!("{r:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_driver_is_no_sensor() {
        // Probes for the hardware: on a machine with a GPU this opens it instead.
        match GpuSensor::open(None) {
            Ok(gpu) => {
                let r = gpu.read();
                assert!(!gpu.name().is_empty());
                assert!(!r.summary().is_empty());
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

//! Thermal sensors and the prefetch governor.
//!
//! Sustained reads heat an NVMe drive; past its warning temperature (WCTEMP) the drive
//! throttles itself and its bandwidth halves or worse. The governor backs off first, just
//! enough, by lowering the [`Prefetcher`](crate::Prefetcher)'s depth, and recovers as the
//! drive cools.
//!
//! - [`reading`]: what a sensor reports ([`DriveReading`]) and the [`DriveSensor`] trait.
//! - [`nvme`], [`smart`]: the NVMe drive behind a file (hwmon through sysfs, the SMART log and
//!   Identify through admin commands); [`gpu`]: GPU sensors through NVML.
//! - [`governor`]: the policy, a pure function of (readings, time) → depth.
//! - [`thread`]: the low-rate thread that polls a sensor and applies the policy.
//! - [`model`], [`sim`], [`rig`]: a drive thermal model, a reader backend it paces on a
//!   simulated clock, and the streaming workload run on it (tests, `sluice bench thermal`).

pub mod governor;
pub mod gpu;
pub mod model;
pub mod nvme;
pub mod reading;
pub mod rig;
pub mod sim;
pub mod smart;
pub mod thread;

pub use governor::{Decision, Governor, GovernorConfig, GovernorHistory, Reason};
pub use gpu::{GpuReading, GpuSensor};
pub use model::{DriveModel, DriveModelParams, ModelSensor};
pub use nvme::{locate, NoSensor, NvmeLocation, NvmeSensor};
pub use reading::{DriveReading, DriveSensor, SmartThermal, DRIVE_SENSORS_MAX};
pub use rig::{simulate, SimRun, SimSample, SimWorkload};
pub use sim::{Advanced, SimDrive};
pub use smart::{AdminRead, AdminSource, NvmeIoctl};
pub use thread::{GovernorReport, GovernorThread, POLL_INTERVAL_MIN};

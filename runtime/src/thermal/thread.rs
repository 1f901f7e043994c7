//! The governor thread: polls a [`DriveSensor`] at most once a second (each hwmon or SMART read
//! is a command to the drive), feeds the pure [`Governor`], and applies its decisions through a
//! [`PrefetchControl`]. It stops when asked (promptly: the wait is a condition variable) or
//! when the prefetcher is gone, and is joined on drop, so none is left behind.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::guard::PrefetchControl;

use super::governor::{Decision, Governor, GovernorConfig, GovernorHistory};
use super::reading::{DriveReading, DriveSensor};

/// Shortest time between two sensor polls.
pub const POLL_INTERVAL_MIN: Duration = Duration::from_secs(1);

/// Applies a decision to the prefetcher and logs it with its reason; false once the
/// prefetcher is gone.
pub(crate) fn apply(control: &PrefetchControl, decision: &Decision) -> bool {
    match control.set_depth(decision.to) {
        Some(_) => {
            log::info!("thermal: {decision}");
            true
        }
        None => false,
    }
}

/// What the governor thread has seen and done so far.
#[derive(Clone, Debug, Default)]
pub struct GovernorReport {
    /// The sensor's name.
    pub sensor: String,
    /// The latest reading.
    pub last: Option<DriveReading>,
    /// The governor's history.
    pub history: GovernorHistory,
}

struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn lock(&self) -> MutexGuard<'_, bool> {
        self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running governor thread; dropping it stops and joins the thread.
pub struct GovernorThread {
    stop: Arc<Stop>,
    report: Arc<Mutex<GovernorReport>>,
    handle: Option<JoinHandle<()>>,
}

impl GovernorThread {
    /// Starts polling `sensor` every `poll_interval` (at least [`POLL_INTERVAL_MIN`]), the first
    /// time at once, and steering `control`'s depth.
    pub fn spawn(
        mut sensor: Box<dyn DriveSensor>,
        control: PrefetchControl,
        config: GovernorConfig,
        poll_interval: Duration,
    ) -> Result<GovernorThread> {
        let poll_interval = poll_interval.max(POLL_INTERVAL_MIN);
        let stop = Arc::new(Stop {
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        });
        let report = Arc::new(Mutex::new(GovernorReport {
            sensor: sensor.name(),
            ..GovernorReport::default()
        }));
        let (thread_stop, thread_report) = (Arc::clone(&stop), Arc::clone(&report));
        let handle = std::thread::Builder::new()
            .name("sluice-thermal".to_string())
            .spawn(move || {
                let mut governor = Governor::new(config);
                let started = Instant::now();
                loop {
                    if control.depth().is_none() {
                        return;
                    }
                    let reading = sensor.read();
                    let now_s = started.elapsed().as_secs_f64();
                    let decision = governor.update(now_s, &reading);
                    {
                        let mut r = thread_report.lock().unwrap_or_else(|p| p.into_inner());
                        r.last = Some(reading);
                        r.history = governor.history();
                    }
                    if decision.is_some_and(|d| !apply(&control, &d)) {
                        return;
                    }
                    let stopped = thread_stop.lock();
                    let (stopped, _) = thread_stop
                        .wake
                        .wait_timeout_while(stopped, poll_interval, |s| !*s)
                        .unwrap_or_else(|p| p.into_inner());
                    if *stopped {
                        return;
                    }
                }
            })
            .map_err(|source| Error::Spawn {
                what: "thermal governor",
                source,
            })?;
        Ok(GovernorThread {
            stop,
            report,
            handle: Some(handle),
        })
    }

    /// A copy of what the thread has seen and done so far.
    pub fn report(&self) -> GovernorReport {
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the thread is still running (it ends when its prefetcher is dropped).
    pub fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Stops and joins the thread; returns its final report.
    pub fn stop(mut self) -> GovernorReport {
        self.shut_down();
        self.report()
    }

    fn shut_down(&mut self) {
        *self.stop.lock() = true;
        self.stop.wake.notify_all();
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                log::error!("the thermal governor thread panicked");
            }
        }
    }
}

impl Drop for GovernorThread {
    fn drop(&mut self) {
        self.shut_down();
    }
}

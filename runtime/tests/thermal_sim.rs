//! The governor on the simulated drive: the real Prefetcher over a `SimDrive`, on a simulated
//! clock, so minutes of streaming take a fraction of a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_runtime::thermal::{
    simulate, Decision, DriveModelParams, DriveReading, DriveSensor, GovernorConfig,
    GovernorThread, Reason, SimDrive, SimRun, SimWorkload,
};
use sluice_runtime::{Extent, HostRing, Prefetcher, Reader, ReaderConfig};

fn run(workload: &SimWorkload, params: DriveModelParams, governed: bool) -> SimRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let governor = governed.then(|| GovernorConfig::new(workload.depth_max));
    simulate(workload, params, governor, dir.path()).expect("simulation runs")
}

fn five_minutes() -> SimWorkload {
    SimWorkload {
        duration_s: 300.0,
        ..SimWorkload::default()
    }
}

#[test]
fn governed_drive_stays_below_its_threshold_and_streams_more() {
    let w = five_minutes();
    let off = run(&w, DriveModelParams::default(), false);
    let on = run(&w, DriveModelParams::default(), true);
    assert!(
        off.throttle_events > 0,
        "ungoverned drive must throttle itself"
    );
    assert!(off.peak_temp_c >= off.threshold_c);
    assert_eq!(
        on.throttle_events, 0,
        "governed drive never throttles itself"
    );
    assert!(on.peak_temp_c < on.threshold_c, "peak {}", on.peak_temp_c);
    assert!(
        on.mean_gb_per_s > off.mean_gb_per_s,
        "on {} GB/s vs off {} GB/s",
        on.mean_gb_per_s,
        off.mean_gb_per_s
    );
    let h = on.governor.expect("governor history");
    assert!(h.throttle_events >= 1 && h.depth_min >= 1 && h.throttled_s > 0.0);
    assert_eq!(h.changes as usize, on.decisions.len());
    // The trace is one sample a second with the depth the prefetcher really ran at.
    assert_eq!(on.samples.len(), 300);
    assert!(off.samples.iter().all(|s| s.depth == w.depth_max));
    assert!(on.samples.iter().any(|s| s.depth < w.depth_max));
}

#[test]
fn step_response_backs_off_before_the_threshold_and_never_below_one() {
    let w = five_minutes();
    let on = run(&w, DriveModelParams::default(), true);
    let first = on.decisions.first().expect("the governor acted");
    let temp_then = on
        .samples
        .iter()
        .find(|s| s.t_s >= first.at_s)
        .map(|s| s.temp_c)
        .expect("sampled");
    let warn_c = DriveModelParams::default().warn_c;
    assert!(first.to < first.from);
    assert!(temp_then < warn_c - 2.0, "first back-off at {temp_then} °C");
    assert!(matches!(first.reason, Reason::NearWarning { .. }));
    assert!(on.samples.iter().all(|s| s.depth >= 1));
    // Before the first back-off the governed run streamed as fast as the ungoverned one.
    let off = run(&w, DriveModelParams::default(), false);
    let early = |r: &SimRun| r.samples[..20].iter().map(|s| s.gb_per_s).sum::<f64>();
    assert!((early(&on) - early(&off)).abs() < 1e-9);
}

#[test]
fn recovery_is_gradual_with_hysteresis() {
    // A drive still hot from earlier work, and a consumer slow enough that the drive cools.
    let params = DriveModelParams {
        start_c: Some(79.0),
        ..DriveModelParams::default()
    };
    let w = SimWorkload {
        duration_s: 120.0,
        compute_s_per_layer: 0.005,
        ..SimWorkload::default()
    };
    let on = run(&w, params, true);
    let (down, ups): (Vec<&Decision>, Vec<&Decision>) =
        on.decisions.iter().partition(|d| d.to < d.from);
    assert_eq!(
        down.first().map(|d| d.to),
        Some(1),
        "hot start: straight to 1"
    );
    assert!(
        ups.len() >= w.depth_max - 1,
        "recovered: {:?}",
        on.decisions
    );
    assert_eq!(on.samples.last().map(|s| s.depth), Some(w.depth_max));
    for pair in ups.windows(2) {
        assert!(pair[1].at_s - pair[0].at_s >= 5.0, "{pair:?}");
        assert_eq!(pair[1].to, pair[0].to + 1);
    }
    let ceiling_c = params.warn_c - GovernorConfig::new(8).margin_c;
    for up in &ups {
        let Reason::Cooled { temp_c, .. } = up.reason else {
            panic!("step up for {:?}", up.reason)
        };
        assert!(temp_c < ceiling_c - 1.0, "stepped up at {temp_c} °C");
    }
}

#[test]
fn simulation_is_deterministic() {
    let w = SimWorkload {
        duration_s: 60.0,
        ..SimWorkload::default()
    };
    let a = run(&w, DriveModelParams::default(), true);
    let b = run(&w, DriveModelParams::default(), true);
    assert_eq!(a.bytes_consumed, b.bytes_consumed);
    assert_eq!(a.decisions, b.decisions);
}

/// A sensor that reports a fixed hot reading and holds a token while it lives.
struct Hot(#[allow(dead_code)] Arc<()>);

impl DriveSensor for Hot {
    fn read(&mut self) -> DriveReading {
        DriveReading {
            temp_c: Some(79.0),
            warn_c: Some(80.0),
            ..DriveReading::default()
        }
    }
    fn name(&self) -> String {
        "fixture".to_string()
    }
}

fn sim_prefetcher(dir: &std::path::Path) -> Prefetcher {
    let drive = SimDrive::new(DriveModelParams::default());
    let ring = HostRing::new(5, 1 << 20).expect("ring");
    let reader = Reader::simulated(ring, &ReaderConfig::default(), &drive).expect("reader");
    let path = dir.join("backing");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(4 << 20))
        .expect("backing file");
    let file = reader.open_file(&path).expect("open");
    let sweep = (0..4)
        .map(|i| Extent::whole(file, i << 20, 1 << 20))
        .collect();
    Prefetcher::new(reader, sweep, 4).expect("prefetcher")
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn governor_thread_steers_and_is_joined_on_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefetcher = sim_prefetcher(dir.path());
    let token = Arc::new(());
    let thread = GovernorThread::spawn(
        Box::new(Hot(Arc::clone(&token))),
        prefetcher.control(),
        GovernorConfig::new(4),
        Duration::from_secs(1),
    )
    .expect("spawn");
    wait_for("depth 1", || prefetcher.depth() == 1);
    let started = Instant::now();
    let report = thread.stop();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "stop waits out no poll"
    );
    assert_eq!(report.history.depth_min, 1);
    assert_eq!(report.last.and_then(|r| r.temp_c), Some(79.0));
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "the thread and its sensor are gone"
    );
}

#[test]
fn governor_thread_ends_when_its_prefetcher_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefetcher = sim_prefetcher(dir.path());
    let token = Arc::new(());
    let thread = GovernorThread::spawn(
        Box::new(Hot(Arc::clone(&token))),
        prefetcher.control(),
        GovernorConfig::new(4),
        Duration::from_secs(1),
    )
    .expect("spawn");
    wait_for("first poll", || prefetcher.depth() == 1);
    drop(prefetcher);
    wait_for("thread exit", || !thread.is_running());
    assert_eq!(Arc::strong_count(&token), 1);
    drop(thread);
}

#[test]
fn dropping_mid_read_cancels_partly_dispatched_reads() {
    // One chunk in flight at a time, four chunks per extent: at drop, reads are half issued.
    let dir = tempfile::tempdir().expect("tempdir");
    let drive = SimDrive::new(DriveModelParams::default());
    let ring = HostRing::new(3, 4 << 20).expect("ring");
    let config = ReaderConfig {
        queue_depth: 1,
        ..ReaderConfig::default()
    };
    let reader = Reader::simulated(ring, &config, &drive).expect("reader");
    let path = dir.path().join("backing");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(8 << 20))
        .expect("backing file");
    let file = reader.open_file(&path).expect("open");
    let sweep = (0..2)
        .map(|i| Extent::whole(file, i << 22, 4 << 20))
        .collect();
    let prefetcher = Prefetcher::new(reader, sweep, 2).expect("prefetcher");
    assert_eq!(drive.submitted(), 2);
    drive.advance(0.0005, None).expect("advance");
    assert!(drive.bytes_moved() < 4 << 20, "still mid-read");
    drive.advance(f64::INFINITY, Some(0)).expect("first read");
    assert!(drive.is_done(0) && !drive.is_done(1));
    let slot = prefetcher.next().expect("first extent");
    assert_eq!(slot.bytes().len(), 4 << 20);
    drop(slot);
    drop(prefetcher);
    assert!(
        drive.advance(f64::INFINITY, None).is_err(),
        "nothing left to wait for"
    );
}

//! `sluice bench thermal --simulate [--json] [--plot FILE]`: the same long streaming workload
//! on the simulated drive (`sluice_runtime::thermal`), with the governor off and on. The drive,
//! the reader's request pattern and the Prefetcher are the runtime's own; only the clock and
//! the NVMe device are simulated, so ten minutes take about a second.
//!
//! `throttle_events` counts the drive's own throttle episodes (its SMART thermal-management
//! transitions); the governor's own back-offs are `governor_throttle_events`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{json, Value};
use sluice_runtime::thermal::{
    simulate, DriveModelParams, GovernorConfig, NvmeSensor, SimRun, SimSample, SimWorkload,
};

use super::plot::{draw_err, draw_legend, Figure, Format};
use crate::cli::{EXIT_BAD_INPUT, EXIT_RUNTIME};

/// Arguments of `sluice bench thermal`.
#[derive(Args, Debug)]
pub struct ThermalArgs {
    /// Run on the simulated drive (the only mode: a real drive would need minutes of heat).
    #[arg(long)]
    simulate: bool,
    /// Simulated length of each run, in seconds.
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// Prefetch depth without thermal pressure.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    depth: u16,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Draw temperature, depth and throughput over time for both runs (.png or .svg).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// Runs `sluice bench thermal`; returns the exit status.
pub fn run(args: &ThermalArgs) -> i32 {
    if !args.simulate {
        eprintln!("sluice bench thermal: only --simulate is implemented; add --simulate");
        return EXIT_BAD_INPUT;
    }
    if let Some(Err(e)) = args.plot.as_deref().map(Format::of) {
        eprintln!("sluice bench thermal: {e}");
        return EXIT_BAD_INPUT;
    }
    if !(args.duration >= 10.0 && args.duration <= 86_400.0) {
        eprintln!("sluice bench thermal: --duration must be between 10 and 86400 seconds");
        return EXIT_BAD_INPUT;
    }
    match bench(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sluice bench thermal: {e:#}");
            EXIT_RUNTIME
        }
    }
}

fn bench(args: &ThermalArgs) -> anyhow::Result<()> {
    let workload = SimWorkload {
        duration_s: args.duration,
        depth_max: usize::from(args.depth),
        ..SimWorkload::default()
    };
    let params = DriveModelParams::default();
    let scratch = std::env::temp_dir();
    let off = simulate(&workload, params, None, &scratch).context("governor off")?;
    let governor = GovernorConfig::new(workload.depth_max);
    let on = simulate(&workload, params, Some(governor), &scratch).context("governor on")?;
    if let Some(path) = &args.plot {
        let figure = ThermalFigure { off: &off, on: &on };
        super::plot::save(path, &figure)?;
    }
    if args.json {
        let report = json!({
            "workload": {
                "layers": workload.layers,
                "layer_bytes": workload.layer_bytes,
                "compute_s_per_layer": workload.compute_s_per_layer,
                "depth_max": workload.depth_max,
                "queue_depth": workload.reader.queue_depth,
                "chunk_bytes": workload.reader.chunk_bytes,
                "duration_s": workload.duration_s,
            },
            "off": summary(&off),
            "on": summary(&on),
        });
        println!("{report}");
    } else {
        print_text(&off, &on, &workload);
        if let Some(path) = &args.plot {
            println!("plot: {}", path.display());
        }
    }
    Ok(())
}

fn summary(r: &SimRun) -> Value {
    let g = r.governor.unwrap_or_default();
    json!({
        "peak_temp_c": r.peak_temp_c,
        "threshold_c": r.threshold_c,
        "mean_gb_per_s": r.mean_gb_per_s,
        "throttle_events": r.throttle_events,
        "drive_throttled_s": r.drive_throttled_s,
        "governor_throttle_events": g.throttle_events,
        "governor_throttled_s": g.throttled_s,
        "depth_min": r.governor.map(|g| g.depth_min),
        "depth_changes": g.changes,
        "bytes_read": r.bytes_consumed,
        "duration_s": r.duration_s,
    })
}

fn print_text(off: &SimRun, on: &SimRun, w: &SimWorkload) {
    println!(
        "simulated drive, {} layers of {} MiB streamed at depth {} for {:.0} s ({} KiB chunks, {} in flight)",
        w.layers,
        w.layer_bytes >> 20,
        w.depth_max,
        w.duration_s,
        w.reader.chunk_bytes >> 10,
        w.reader.queue_depth
    );
    for (name, r) in [("governor off", off), ("governor on ", on)] {
        println!(
            "{name}: {:.3} GB/s sustained, peak {:.1} °C (drive throttles at {:.0} °C), drive throttled itself {} times for {:.0} s",
            r.mean_gb_per_s, r.peak_temp_c, r.threshold_c, r.throttle_events, r.drive_throttled_s
        );
    }
    if let Some(g) = on.governor {
        println!(
            "governor: {} back-offs, {} depth changes, {:.0} s below depth {}, minimum depth {}",
            g.throttle_events, g.changes, g.throttled_s, w.depth_max, g.depth_min
        );
    }
    println!(
        "throughput with the governor: {:+.1}%",
        (on.mean_gb_per_s / off.mean_gb_per_s - 1.0) * 100.0
    );
}

/// One panel of the plot: a title, a unit, a y range and what to draw from each sample.
struct Panel {
    title: &'static str,
    unit: &'static str,
    range: std::ops::Range<f64>,
    value: fn(&SimSample) -> f64,
}

impl Panel {
    fn new(
        title: &'static str,
        unit: &'static str,
        range: std::ops::Range<f64>,
        value: fn(&SimSample) -> f64,
    ) -> Panel {
        Panel {
            title,
            unit,
            range,
            value,
        }
    }
}

const OFF_COLOR: RGBColor = RGBColor(214, 39, 40);
const ON_COLOR: RGBColor = RGBColor(31, 119, 180);

/// Three stacked panels over time: temperature (with the threshold), depth, throughput.
struct ThermalFigure<'a> {
    off: &'a SimRun,
    on: &'a SimRun,
}

impl Figure for ThermalFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 900)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        draw(root, self.off, self.on)
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    off: &SimRun,
    on: &SimRun,
) -> anyhow::Result<()> {
    let panels = root.split_evenly((3, 1));
    let t_max = off.duration_s.max(on.duration_s);
    let series = |r: &SimRun, f: fn(&SimSample) -> f64| {
        r.samples.iter().map(|s| (s.t_s, f(s))).collect::<Vec<_>>()
    };
    let temp_lo = off
        .samples
        .iter()
        .map(|s| s.temp_c)
        .fold(f64::INFINITY, f64::min)
        - 2.0;
    let temp_hi = off.peak_temp_c.max(on.peak_temp_c).max(off.threshold_c) + 3.0;
    let depth_hi = off.samples.iter().map(|s| s.depth).max().unwrap_or(1) as f64 + 1.0;
    let gbps_hi = off
        .samples
        .iter()
        .chain(&on.samples)
        .map(|s| s.gb_per_s)
        .fold(0.0, f64::max)
        * 1.15;
    let panels_spec = [
        Panel::new("drive temperature", "°C", temp_lo..temp_hi, |s| s.temp_c),
        Panel::new("prefetch depth", "depth", 0.0..depth_hi, |s| s.depth as f64),
        Panel::new("throughput", "GB/s", 0.0..gbps_hi, |s| s.gb_per_s),
    ];
    for (i, (panel, spec)) in panels.iter().zip(panels_spec).enumerate() {
        let f = spec.value;
        let mut chart = ChartBuilder::on(panel)
            .caption(spec.title, ("sans-serif", 20))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..t_max, spec.range)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc(spec.unit)
            .draw()
            .map_err(draw_err)?;
        for (name, r, color) in [
            ("governor off", off, OFF_COLOR),
            ("governor on", on, ON_COLOR),
        ] {
            chart
                .draw_series(LineSeries::new(series(r, f), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        if i == 0 {
            let threshold = off.threshold_c;
            chart
                .draw_series(LineSeries::new(
                    [(0.0, threshold), (t_max, threshold)],
                    BLACK.stroke_width(1),
                ))
                .map_err(draw_err)?
                .label("drive throttles here (WCTEMP)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    }
    Ok(())
}

/// One stderr line with the drive temperature of `file`'s drive, when it has a sensor.
pub fn print_drive_sensor(file: &Path) {
    use sluice_runtime::thermal::DriveSensor;
    match NvmeSensor::for_file(file) {
        Ok(mut sensor) => eprintln!("drive {}: {}", sensor.name(), sensor.read().summary()),
        Err(e) => log::debug!("{}: {e}", file.display()),
    }
}

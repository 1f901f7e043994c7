//! `sluice bench pcie [--sizes 64K,...] [--reps N] [--json] [--plot FILE]`: host → device and
//! device → host GB/s over a range of copy sizes, from page-locked memory (registered as the
//! host ring is) and from pageable memory, measured by `cuda::bench::PcieBench` with events on
//! the copy stream.
//!
//! Without a GPU (no driver, no device, no kernels, or a build without `cuda`) there is nothing
//! to measure, which is a finding rather than a failure: one sentence says why and the exit
//! status is 0 (`{"gpu": null, "reason": ...}` with `--json`). Sizes that do not fit in device
//! memory (keeping `DEVICE_RESERVE_BYTES` free) or host memory (the copy needs twice its size
//! there, one page-locked buffer and one pageable) are skipped, and the output says so.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{json, Value};

use super::plot::{draw_err, draw_legend, palette, Figure, Format};
use super::progress::bar;
use crate::cli::size::parse_size;
use crate::cli::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::cuda::bench::{CopyFigures, Direction, HostMemory, PcieBench, DEVICE_RESERVE_BYTES};
use crate::cuda::{CudaError, DeviceInfo};
use crate::engine::memory_limit::memory_limit;

/// Sizes measured when `--sizes` is not given: 64 KiB to 1 GiB in steps of four.
const DEFAULT_SIZES: [u64; 8] = [
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
    64 << 20,
    256 << 20,
    1 << 30,
];
/// Smallest copy accepted.
const SIZE_MIN_BYTES: u64 = 4 << 10;
/// Largest copy accepted (device memory bounds it further).
const SIZE_MAX_BYTES: u64 = 16 << 30;
/// Most copies per series `--reps` accepts.
const REPS_MAX: usize = 100_000;
/// Without `--reps`, each series copies about this many bytes ...
const AUTO_BYTES_PER_SERIES: u64 = 1 << 30;
/// ... in at least this many copies ...
const AUTO_REPS_MIN: usize = 3;
/// ... and at most this many (small copies are bound by latency, not bytes).
const AUTO_REPS_MAX: usize = 2_000;
/// Host memory left available when deciding which sizes fit.
const HOST_RESERVE_BYTES: u64 = 1 << 30;

const _: () = assert!(SIZE_MIN_BYTES <= DEFAULT_SIZES[0]);
const _: () = assert!(DEFAULT_SIZES[DEFAULT_SIZES.len() - 1] <= SIZE_MAX_BYTES);
const _: () = assert!(AUTO_REPS_MIN <= AUTO_REPS_MAX && AUTO_REPS_MAX <= REPS_MAX);

/// The four series, in table and plot order.
const SERIES: [(Direction, HostMemory, &str); 4] = [
    (
        Direction::HostToDevice,
        HostMemory::PageLocked,
        "H2D page-locked",
    ),
    (
        Direction::HostToDevice,
        HostMemory::Pageable,
        "H2D pageable",
    ),
    (
        Direction::DeviceToHost,
        HostMemory::PageLocked,
        "D2H page-locked",
    ),
    (
        Direction::DeviceToHost,
        HostMemory::Pageable,
        "D2H pageable",
    ),
];
/// JSON names of the series, in the order of [`SERIES`].
const SERIES_KEYS: [&str; 4] = [
    "h2d_pinned_gb_per_s",
    "h2d_pageable_gb_per_s",
    "d2h_pinned_gb_per_s",
    "d2h_pageable_gb_per_s",
];

/// Arguments of `sluice bench pcie`.
#[derive(Args, Debug)]
pub struct PcieArgs {
    /// Copy sizes, comma-separated (bytes or K/M/G; default 64K,256K,1M,4M,16M,64M,256M,1G).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
    /// Copies timed per size and series (default: about 1 GiB per series, 3 to 2000 copies).
    #[arg(long)]
    reps: Option<usize>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Draw GB/s against copy size for the four series (.png or .svg).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// A size left out, and why.
struct Skipped {
    bytes: u64,
    reason: String,
}

/// Runs `sluice bench pcie`; returns the exit status.
pub fn run(args: &PcieArgs) -> i32 {
    let sizes = match check_args(args) {
        Ok(sizes) => sizes,
        Err(e) => {
            eprintln!("sluice bench pcie: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    match bench(args, &sizes) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sluice bench pcie: {e:#}");
            EXIT_RUNTIME
        }
    }
}

/// The sizes asked for, ascending and without repeats; an error for any bad option.
fn check_args(args: &PcieArgs) -> Result<Vec<u64>> {
    if let Some(path) = &args.plot {
        Format::of(path)?;
    }
    if let Some(reps) = args.reps {
        if !(1..=REPS_MAX).contains(&reps) {
            bail!("--reps must be in 1..={REPS_MAX}, got {reps}");
        }
    }
    let mut sizes = Vec::new();
    for s in &args.sizes {
        let bytes = parse_size(s).map_err(|e| anyhow::anyhow!("--sizes: {e}"))?;
        if !(SIZE_MIN_BYTES..=SIZE_MAX_BYTES).contains(&bytes) {
            bail!(
                "--sizes: each size must be between {} and {}, got {}",
                size_label(SIZE_MIN_BYTES),
                size_label(SIZE_MAX_BYTES),
                s.trim()
            );
        }
        sizes.push(bytes);
    }
    if sizes.is_empty() {
        sizes = DEFAULT_SIZES.to_vec();
    }
    sizes.sort_unstable();
    sizes.dedup();
    Ok(sizes)
}

fn bench(args: &PcieArgs, sizes: &[u64]) -> Result<()> {
    if let Err(e) = crate::cuda::probe() {
        return absent(args.json, &e);
    }
    let (mut fit, mut skipped) = host_fit(sizes);
    let Some(&want) = fit.last() else {
        bail!(
            "{}",
            skipped.first().map_or("no size to measure", |s| &s.reason)
        );
    };
    let mut bench = match PcieBench::open(usize::try_from(want)?) {
        Ok(b) => b,
        Err(e) if e.is_unavailable() => return absent(args.json, &e),
        Err(e) => return Err(e.into()),
    };
    let (free, max) = (bench.free_device_bytes(), bench.bytes_max() as u64);
    fit.retain(|&bytes| {
        let fits = bytes <= max;
        if !fits {
            skipped.push(Skipped {
                bytes,
                reason: format!(
                    "a copy of {} needs that much device memory; {} are free and {} are kept \
                     in reserve",
                    size_label(bytes),
                    size_label(free),
                    size_label(DEVICE_RESERVE_BYTES)
                ),
            });
        }
        fits
    });
    if fit.is_empty() {
        let why = skipped.first().map_or("", |s| s.reason.as_str());
        bail!("no size fits: {why}");
    }
    skipped.sort_by_key(|s| s.bytes);
    let rows = measure(&mut bench, &fit, args)?;
    if let Some(path) = &args.plot {
        let figure = PcieFigure {
            gpu: &bench.info().name,
            rows: &rows,
        };
        super::plot::save(path, &figure)?;
    }
    if args.json {
        println!("{}", report(bench.info(), free, &rows, &skipped));
    } else {
        print_summary(&rows, &skipped);
        if let Some(path) = &args.plot {
            println!("plot: {}", path.display());
        }
    }
    Ok(())
}

/// No GPU: one sentence (or `{"gpu": null, "reason": ...}`), and nothing failed.
fn absent(json: bool, e: &CudaError) -> Result<()> {
    let reason = match e {
        CudaError::Unavailable(why) => why.clone(),
        other => other.to_string(),
    };
    if json {
        println!("{}", json!({ "gpu": null, "reason": reason }));
    } else {
        println!("no GPU, so no PCIe link to measure: {reason}");
    }
    Ok(())
}

/// The sizes whose two host buffers fit in available memory (less a reserve), and the others.
fn host_fit(sizes: &[u64]) -> (Vec<u64>, Vec<Skipped>) {
    let Some(available) = memory_limit().map(|l| l.available) else {
        return (sizes.to_vec(), Vec::new());
    };
    let room = available.saturating_sub(HOST_RESERVE_BYTES);
    let (fit, over): (Vec<u64>, Vec<u64>) = sizes.iter().partition(|&&b| 2 * b <= room);
    let skipped = over
        .into_iter()
        .map(|bytes| Skipped {
            bytes,
            reason: format!(
                "a copy of {} needs twice that in host memory (page-locked and pageable); {} \
                 are available and {} are kept in reserve",
                size_label(bytes),
                size_label(available),
                size_label(HOST_RESERVE_BYTES)
            ),
        })
        .collect();
    (fit, skipped)
}

/// Copies per series for `bytes`: `--reps`, else about [`AUTO_BYTES_PER_SERIES`].
fn reps_for(bytes: u64, reps: Option<usize>) -> usize {
    reps.unwrap_or_else(|| {
        let n = usize::try_from(AUTO_BYTES_PER_SERIES / bytes.max(1)).unwrap_or(AUTO_REPS_MAX);
        n.clamp(AUTO_REPS_MIN, AUTO_REPS_MAX)
    })
}

/// Every series at every size, with a progress bar on stderr and, in text mode, a row per size
/// as it is done.
fn measure(bench: &mut PcieBench, sizes: &[u64], args: &PcieArgs) -> Result<Vec<CopyFigures>> {
    let bar = bar((sizes.len() * SERIES.len()) as u64, "PCIe copies");
    if !args.json {
        print_header(bench.info(), bench.free_device_bytes());
    }
    let mut rows = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let bytes = usize::try_from(size)?;
        let reps = reps_for(size, args.reps);
        let mut rates = [0.0; SERIES.len()];
        for (rate, (dir, mem, name)) in rates.iter_mut().zip(SERIES) {
            bar.set_message(format!("{} {name}", size_label(size)));
            *rate = bench.rate(dir, mem, bytes, reps)?;
            bar.inc(1);
        }
        let row = CopyFigures {
            bytes,
            reps,
            h2d_pinned_gb_per_s: rates[0],
            h2d_pageable_gb_per_s: rates[1],
            d2h_pinned_gb_per_s: rates[2],
            d2h_pageable_gb_per_s: rates[3],
        };
        if !args.json {
            bar.suspend(|| print_row(&row));
        }
        rows.push(row);
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// The series of a row, in the order of [`SERIES`].
fn rates(r: &CopyFigures) -> [f64; 4] {
    [
        r.h2d_pinned_gb_per_s,
        r.h2d_pageable_gb_per_s,
        r.d2h_pinned_gb_per_s,
        r.d2h_pageable_gb_per_s,
    ]
}

/// The best rate of each series over all sizes.
fn best(rows: &[CopyFigures]) -> [f64; 4] {
    rows.iter().map(rates).fold([0.0; 4], |mut acc, r| {
        for (a, x) in acc.iter_mut().zip(r) {
            *a = a.max(x);
        }
        acc
    })
}

fn report(info: &DeviceInfo, free: u64, rows: &[CopyFigures], skipped: &[Skipped]) -> Value {
    let series = |r: [f64; 4]| -> serde_json::Map<String, Value> {
        SERIES_KEYS
            .iter()
            .zip(r)
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect()
    };
    let results: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut m = series(rates(r));
            m.insert("bytes".into(), json!(r.bytes));
            m.insert("reps".into(), json!(r.reps));
            Value::Object(m)
        })
        .collect();
    let skipped: Vec<Value> = skipped
        .iter()
        .map(|s| json!({ "bytes": s.bytes, "reason": s.reason }))
        .collect();
    let (major, minor) = info.compute_capability;
    json!({
        "gpu": {
            "name": info.name,
            "compute_capability": format!("{major}.{minor}"),
            "total_bytes": info.total_bytes,
            "free_bytes": free,
        },
        "results": results,
        "best": Value::Object(series(best(rows))),
        "skipped": skipped,
    })
}

fn print_header(info: &DeviceInfo, free: u64) {
    let (major, minor) = info.compute_capability;
    println!(
        "{} (compute {major}.{minor}, {} of memory, {} free): copies on the copy stream, GB/s",
        info.name,
        size_label(info.total_bytes),
        size_label(free)
    );
    print!("{:>9} {:>6}", "size", "reps");
    for (_, _, name) in SERIES {
        print!(" {name:>16}");
    }
    println!();
}

fn print_row(r: &CopyFigures) {
    print!("{:>9} {:>6}", size_label(r.bytes as u64), r.reps);
    for rate in rates(r) {
        print!(" {rate:>16.2}");
    }
    println!();
}

fn print_summary(rows: &[CopyFigures], skipped: &[Skipped]) {
    let [h2d_pinned, h2d_pageable, d2h_pinned, d2h_pageable] = best(rows);
    println!(
        "best: H2D {h2d_pinned:.2} GB/s page-locked, {h2d_pageable:.2} pageable; \
         D2H {d2h_pinned:.2} page-locked, {d2h_pageable:.2} pageable"
    );
    for s in skipped {
        println!("skipped {}: {}", size_label(s.bytes), s.reason);
    }
}

/// `bytes` in binary units: `64 KiB`, `1 GiB`, `1.5 MiB`.
fn size_label(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut value = bytes as f64;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// GB/s against log2 of the copy size, one line per series.
struct PcieFigure<'a> {
    gpu: &'a str,
    rows: &'a [CopyFigures],
}

impl Figure for PcieFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (1000, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let log2 = |r: &CopyFigures| (r.bytes as f64).log2();
        let x_lo = self.rows.iter().map(log2).fold(f64::INFINITY, f64::min) - 0.5;
        let x_hi = self.rows.iter().map(log2).fold(f64::NEG_INFINITY, f64::max) + 0.5;
        let y_hi = best(self.rows).into_iter().fold(0.0, f64::max).max(1e-3) * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(format!("PCIe copies, {}", self.gpu), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("copy size")
            .y_desc("GB/s")
            .x_label_formatter(&|x| size_label(x.exp2().round() as u64))
            .draw()
            .map_err(draw_err)?;
        for (i, (_, _, name)) in SERIES.iter().enumerate() {
            let color = palette(i);
            let points: Vec<(f64, f64)> =
                self.rows.iter().map(|r| (log2(r), rates(r)[i])).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(draw_err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sizes: &[&str], reps: Option<usize>, plot: Option<&str>) -> PcieArgs {
        PcieArgs {
            sizes: sizes.iter().map(|s| s.to_string()).collect(),
            reps,
            json: false,
            plot: plot.map(PathBuf::from),
        }
    }

    #[test]
    fn sizes_are_checked_sorted_and_deduplicated() {
        let got = check_args(&args(&["1M", "64K", "1m"], None, None)).ok();
        assert_eq!(got, Some(vec![64 << 10, 1 << 20]));
        assert_eq!(
            check_args(&args(&[], None, None)).ok(),
            Some(DEFAULT_SIZES.to_vec())
        );
        for bad in ["0", "1K", "17G", "12Q", ""] {
            assert!(check_args(&args(&[bad], None, None)).is_err(), "{bad:?}");
        }
        assert!(check_args(&args(&[], Some(0), None)).is_err());
        assert!(check_args(&args(&[], Some(REPS_MAX + 1), None)).is_err());
        assert!(check_args(&args(&[], None, Some("a.jpg"))).is_err());
        assert!(check_args(&args(&[], Some(5), Some("a.svg"))).is_ok());
    }

    #[test]
    fn automatic_reps_bound_the_bytes_per_series() {
        assert_eq!(reps_for(64 << 10, None), AUTO_REPS_MAX);
        assert_eq!(reps_for(1 << 20, None), 1024);
        assert_eq!(reps_for(1 << 30, None), AUTO_REPS_MIN);
        assert_eq!(reps_for(1 << 30, Some(7)), 7);
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size_label(64 << 10), "64 KiB");
        assert_eq!(size_label(1 << 30), "1 GiB");
        assert_eq!(size_label(3 << 19), "1.5 MiB");
        assert_eq!(size_label(100), "100 B");
    }

    #[test]
    fn best_takes_each_series_maximum() {
        let row = |bytes, a, b, c, d| CopyFigures {
            bytes,
            reps: 1,
            h2d_pinned_gb_per_s: a,
            h2d_pageable_gb_per_s: b,
            d2h_pinned_gb_per_s: c,
            d2h_pageable_gb_per_s: d,
        };
        let rows = [row(1, 1.0, 5.0, 2.0, 0.5), row(2, 3.0, 4.0, 1.0, 0.7)];
        assert_eq!(best(&rows), [3.0, 5.0, 2.0, 0.7]);
    }

    #[test]
    fn a_figure_draws_to_svg() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pcie.svg");
        let rows: Vec<CopyFigures> = DEFAULT_SIZES
            .iter()
            .map(|&b| CopyFigures {
                bytes: b as usize,
                reps: 3,
                h2d_pinned_gb_per_s: 20.0,
                h2d_pageable_gb_per_s: 8.0,
                d2h_pinned_gb_per_s: 21.0,
                d2h_pageable_gb_per_s: 6.0,
            })
            .collect();
        let figure = PcieFigure {
            gpu: "test GPU",
            rows: &rows,
        };
        match super::super::plot::save(&path, &figure) {
            Ok(()) => assert!(std::fs::metadata(&path).is_ok_and(|m| m.len() > 0)),
            // No font on this machine: the error says which package provides one.
            Err(e) => assert!(format!("{e:#}").contains("font"), "{e:#}"),
        }
    }
}

//! `sluice bench disk [--file F]`: O_DIRECT sequential and random reads over a grid of chunk
//! sizes × queue depths, io_uring against the pread fallback, and the best setting per pattern.
//!
//! Each cell (pattern, reader, chunk, qd) is read through the runtime's own reader and
//! prefetcher: a ring of `qd` one-chunk slots, `qd` reads in flight (see `measure` for the
//! details and what a cell's latency is). The pread pool's parallelism is its thread count, so
//! its cells run `min(qd, PREAD_THREADS_MAX)` threads, and the output says when that clamps.
//! A cell ends after `--seconds` or one pass over its sweep, whichever comes first. When the
//! kernel refuses io_uring, its cells are reported as unavailable, with the reason, and the run
//! goes on with pread.
//!
//! Without `--file`, a scratch file of `--size` bytes is written in `--dir` (default
//! `$SLUICE_HOME`, else `~/.cache/sluice`), read, and removed, even on error or Ctrl-C (see
//! `scratch`). A directory on tmpfs or ramfs (statfs, see `fs`: recent kernels let tmpfs accept
//! O_DIRECT) or on a file system without direct I/O is refused, since its figures would be
//! memory's. With `--file`, the file (a regular file) is only read; if it is in memory or cannot be read
//! directly the figures are still taken, with a warning, and `direct` is false.
//!
//! Output: a table with one row per cell and a "best sequential / best random" line each;
//! `--json` prints one object instead (`file`, `file_bytes`, `scratch`, `direct`: reads bypass
//! the page cache and reach a device, `seconds_per_cell`, `cells`, and `best`: the fastest cell
//! per pattern, or null when none of its cells was measured; a cell holds its setting and
//! either its figures or `unavailable`: the reason, with null figures);
//! `--plot FILE` draws GB/s against chunk size per (reader, qd), one panel per pattern. A
//! progress bar over the cells is drawn on stderr when it is a terminal.
//!
//! `sluice bench model` measures the disk link of a model file in the same run through
//! [`sequential_best`], which shares the grid runner with the subcommand.

mod figure;
mod fs;
mod measure;
mod scratch;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure};
use clap::Args;
use serde_json::{json, Value};
use sluice_runtime::limits::{
    CHUNK_BYTES_MAX, CHUNK_BYTES_MIN, PREAD_THREADS_MAX, QUEUE_DEPTH_MAX, SLOT_ALIGN_BYTES,
};
use sluice_runtime::{Error, HostRing, Reader, ReaderChoice, ReaderConfig};

use super::plot::{self, Format};
use super::progress;
use crate::cli::{interrupt, size::parse_size, EXIT_BAD_INPUT, EXIT_RUNTIME};
use measure::measure;
#[allow(unused_imports, reason = "the API `sluice bench model` builds on")]
pub(super) use measure::{best_of, Cell, Figures, Outcome, Pattern, ReaderSel, Setting};
use scratch::ScratchFile;

/// Chunk sizes of the default grid.
const CHUNKS_DEFAULT: [usize; 4] = [128 << 10, 256 << 10, 1 << 20, 4 << 20];
/// Queue depths of the default grid.
const DEPTHS_DEFAULT: [usize; 4] = [1, 4, 16, 32];
/// Chunk sizes and depths of [`sequential_best`]'s small io_uring grid.
const LINK_CHUNKS: [usize; 2] = [1 << 20, 4 << 20];
const LINK_DEPTHS: [usize; 3] = [4, 16, 32];
/// Size of the scratch file when `--size` is not given.
const SCRATCH_BYTES_DEFAULT: u64 = 1 << 30;
/// Smallest and largest scratch file.
const SCRATCH_BYTES_MIN: u64 = 16 << 20;
const SCRATCH_BYTES_MAX: u64 = 1 << 40;
/// Files smaller than this are measured with a warning: drive and host caches flatter them.
const FILE_BYTES_WARN: u64 = 1 << 30;
/// Largest ring one cell may map (`qd` slots of one chunk).
const RING_BYTES_MAX: usize = 1 << 30;
/// Range of `--seconds` (per cell).
const SECONDS_MIN: f64 = 0.01;
const SECONDS_MAX: f64 = 60.0;

const _: () = assert!(CHUNKS_DEFAULT[3] * DEPTHS_DEFAULT[3] <= RING_BYTES_MAX);
const _: () = assert!(LINK_CHUNKS[1] * LINK_DEPTHS[2] <= RING_BYTES_MAX);
const _: () = assert!(SCRATCH_BYTES_MIN >= CHUNK_BYTES_MAX as u64 / 4);
const _: () = assert!(SCRATCH_BYTES_DEFAULT % SLOT_ALIGN_BYTES as u64 == 0);

/// Arguments of `sluice bench disk`.
#[derive(Args, Debug)]
pub struct DiskArgs {
    /// Regular file to read (only read, never written); without it a scratch file is used.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Size of the scratch file (default 1G; 16M to 1T, a multiple of 4K).
    #[arg(long)]
    size: Option<String>,
    /// Directory of the scratch file, on a disk (default: $SLUICE_HOME, else ~/.cache/sluice).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Chunk (request) sizes, comma-separated (default 128K,256K,1M,4M).
    #[arg(long)]
    chunks: Option<String>,
    /// Queue depths (reads in flight), comma-separated (default 1,4,16,32).
    #[arg(long)]
    depths: Option<String>,
    /// Readers, comma-separated: uring, pread (default both).
    #[arg(long)]
    readers: Option<String>,
    /// Access patterns, comma-separated: seq, rand (default both).
    #[arg(long)]
    patterns: Option<String>,
    /// Seconds per cell at most (a cell also ends after one pass over its extents).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Draw GB/s against chunk size per reader and depth (.png or .svg).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// Why a run ended early: the exit status and one sentence.
#[derive(Debug)]
pub(crate) struct Failure {
    status: i32,
    sentence: String,
}

impl Failure {
    fn bad_input(sentence: impl Into<String>) -> Failure {
        Failure {
            status: EXIT_BAD_INPUT,
            sentence: sentence.into(),
        }
    }

    fn runtime(sentence: impl Into<String>) -> Failure {
        Failure {
            status: EXIT_RUNTIME,
            sentence: sentence.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sentence)
    }
}

impl std::error::Error for Failure {}

/// The cells to measure: every combination of these, in this nesting order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Grid {
    patterns: Vec<Pattern>,
    readers: Vec<ReaderSel>,
    chunks: Vec<usize>,
    depths: Vec<usize>,
}

impl Grid {
    fn settings(&self) -> Vec<Setting> {
        let mut out = Vec::new();
        for &pattern in &self.patterns {
            for &reader in &self.readers {
                for &chunk_bytes in &self.chunks {
                    for &queue_depth in &self.depths {
                        out.push(Setting {
                            pattern,
                            reader,
                            chunk_bytes,
                            queue_depth,
                        });
                    }
                }
            }
        }
        out
    }

    fn chunk_max(&self) -> usize {
        self.chunks.iter().copied().max().unwrap_or(0)
    }
}

/// What to read.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    File(PathBuf),
    Scratch { dir: PathBuf, bytes: u64 },
}

/// A validated command line.
#[derive(Debug)]
struct Plan {
    source: Source,
    grid: Grid,
    seconds: f64,
    json: bool,
    plot: Option<PathBuf>,
}

/// Runs `sluice bench disk`; returns the exit status.
pub fn run(args: &DiskArgs) -> i32 {
    let outcome = plan(args).and_then(|plan| {
        interrupt::install();
        bench(&plan)
    });
    match outcome {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("sluice bench disk: {}", f.sentence);
            f.status
        }
    }
}

fn plan(args: &DiskArgs) -> Result<Plan, Failure> {
    if let Some(Err(e)) = args.plot.as_deref().map(Format::of) {
        return Err(Failure::bad_input(e.to_string()));
    }
    if !(SECONDS_MIN..=SECONDS_MAX).contains(&args.seconds) {
        return Err(Failure::bad_input(format!(
            "--seconds must be between {SECONDS_MIN} and {SECONDS_MAX}, got {}",
            args.seconds
        )));
    }
    let grid = grid(args).map_err(Failure::bad_input)?;
    let source = match (&args.file, &args.size, &args.dir) {
        (Some(file), None, None) => Source::File(file.clone()),
        (Some(_), _, _) => {
            return Err(Failure::bad_input(
                "--size and --dir describe the scratch file; they cannot be used with --file",
            ))
        }
        (None, size, dir) => Source::Scratch {
            dir: match dir {
                Some(dir) => dir.clone(),
                None => default_dir().map_err(Failure::bad_input)?,
            },
            bytes: scratch_bytes(size.as_deref(), grid.chunk_max()).map_err(Failure::bad_input)?,
        },
    };
    Ok(Plan {
        source,
        grid,
        seconds: args.seconds,
        json: args.json,
        plot: args.plot.clone(),
    })
}

fn grid(args: &DiskArgs) -> Result<Grid, String> {
    let grid = Grid {
        patterns: list(args.patterns.as_deref(), "--patterns", parse_pattern)?
            .unwrap_or(vec![Pattern::Sequential, Pattern::Random]),
        readers: list(args.readers.as_deref(), "--readers", parse_reader)?
            .unwrap_or(vec![ReaderSel::Uring, ReaderSel::Pread]),
        chunks: list(args.chunks.as_deref(), "--chunks", parse_chunk)?
            .unwrap_or(CHUNKS_DEFAULT.to_vec()),
        depths: list(args.depths.as_deref(), "--depths", parse_depth)?
            .unwrap_or(DEPTHS_DEFAULT.to_vec()),
    };
    let depth_max = grid.depths.iter().copied().max().unwrap_or(0);
    let ring_bytes = grid.chunk_max().saturating_mul(depth_max);
    if ring_bytes > RING_BYTES_MAX {
        return Err(format!(
            "--chunks × --depths: a ring of {depth_max} chunks of {} is {} MiB, more than the \
             {} MiB a cell may use; lower the largest chunk or depth",
            size_label(grid.chunk_max() as u64),
            ring_bytes >> 20,
            RING_BYTES_MAX >> 20
        ));
    }
    Ok(grid)
}

/// A comma-separated option parsed item by item, sorted, without repeats; `None` when absent.
fn list<T: Ord>(
    value: Option<&str>,
    option: &str,
    item: fn(&str) -> Result<T, String>,
) -> Result<Option<Vec<T>>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let mut items = value
        .split(',')
        .map(|s| match s.trim() {
            "" => Err(format!("{option} has an empty item in '{value}'")),
            s => item(s).map_err(|e| format!("{option}: {e}")),
        })
        .collect::<Result<Vec<T>, String>>()?;
    items.sort();
    items.dedup();
    Ok(Some(items))
}

fn parse_pattern(s: &str) -> Result<Pattern, String> {
    match s.to_ascii_lowercase().as_str() {
        "seq" | "sequential" => Ok(Pattern::Sequential),
        "rand" | "random" => Ok(Pattern::Random),
        _ => Err(format!("'{s}' is not a pattern (use seq or rand)")),
    }
}

fn parse_reader(s: &str) -> Result<ReaderSel, String> {
    match s.to_ascii_lowercase().as_str() {
        "uring" | "io_uring" => Ok(ReaderSel::Uring),
        "pread" => Ok(ReaderSel::Pread),
        _ => Err(format!("'{s}' is not a reader (use uring or pread)")),
    }
}

fn parse_chunk(s: &str) -> Result<usize, String> {
    let bytes = parse_size(s)?;
    if !(CHUNK_BYTES_MIN as u64..=CHUNK_BYTES_MAX as u64).contains(&bytes)
        || bytes % SLOT_ALIGN_BYTES as u64 != 0
    {
        return Err(format!(
            "chunk '{s}' must be a multiple of 4K between {} and {}",
            size_label(CHUNK_BYTES_MIN as u64),
            size_label(CHUNK_BYTES_MAX as u64)
        ));
    }
    usize::try_from(bytes).map_err(|_| format!("chunk '{s}' is too large"))
}

fn parse_depth(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(d) if (1..=QUEUE_DEPTH_MAX).contains(&d) => Ok(d),
        _ => Err(format!(
            "depth '{s}' must be a whole number from 1 to {QUEUE_DEPTH_MAX}"
        )),
    }
}

fn scratch_bytes(size: Option<&str>, chunk_max: usize) -> Result<u64, String> {
    let Some(size) = size else {
        return Ok(SCRATCH_BYTES_DEFAULT.max(chunk_max as u64));
    };
    let bytes = parse_size(size).map_err(|e| format!("--size: {e}"))?;
    if !(SCRATCH_BYTES_MIN..=SCRATCH_BYTES_MAX).contains(&bytes)
        || bytes % SLOT_ALIGN_BYTES as u64 != 0
    {
        return Err(format!(
            "--size must be a multiple of 4K between 16M and 1T, got {size}"
        ));
    }
    if bytes < chunk_max as u64 {
        return Err(format!(
            "--size {size} is smaller than the largest chunk, {}",
            size_label(chunk_max as u64)
        ));
    }
    Ok(bytes)
}

/// `$SLUICE_HOME`, else `~/.cache/sluice`.
fn default_dir() -> Result<PathBuf, String> {
    if let Some(home) = std::env::var_os("SLUICE_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("sluice")),
        None => Err("neither SLUICE_HOME nor HOME is set: pass --dir for the scratch file".into()),
    }
}

fn bench(plan: &Plan) -> Result<(), Failure> {
    let stop: &dyn Fn() -> bool = &interrupt::requested;
    let (scratch, path) = match &plan.source {
        Source::Scratch { dir, bytes } => {
            let scratch = ScratchFile::create(dir, *bytes, stop)?;
            let path = scratch.path().to_path_buf();
            (Some(scratch), path)
        }
        Source::File(file) => (None, file.clone()),
    };
    let path = path.as_path();
    let file_bytes = file_size(path)?;
    if file_bytes < plan.grid.chunk_max() as u64 {
        return Err(Failure::bad_input(format!(
            "{}: {file_bytes} bytes is less than the largest chunk, {}; read a larger file or \
             pass smaller --chunks",
            path.display(),
            size_label(plan.grid.chunk_max() as u64)
        )));
    }
    let memory = fs::memory_file_system(path).ok().flatten();
    let direct = probe_direct(path)? && memory.is_none();
    match (&plan.source, memory, direct) {
        (Source::Scratch { dir, .. }, _, false) => {
            return Err(scratch::not_on_a_disk(
                dir,
                memory.unwrap_or("a file system without direct I/O"),
            ))
        }
        (Source::File(_), Some(fs), _) => eprintln!(
            "warning: {} is on {fs}: its figures are memory's, not a disk's",
            path.display()
        ),
        (Source::File(_), None, false) => eprintln!(
            "warning: {} cannot be read with direct I/O; its figures include the page cache",
            path.display()
        ),
        _ => {}
    }
    if file_bytes < FILE_BYTES_WARN {
        eprintln!(
            "warning: {} is smaller than 1 GiB; drive and host caches make its figures optimistic",
            path.display()
        );
    }
    let cells = run_grid(
        path,
        file_bytes,
        &plan.grid,
        plan.seconds,
        stop,
        "disk cells",
    )?;
    let report = Report {
        path,
        file_bytes,
        scratch: scratch.is_some(),
        direct,
        seconds: plan.seconds,
        cells: &cells,
    };
    if let Some(plot_path) = &plan.plot {
        let figure = figure::DiskFigure::new(&cells, &plan.grid.patterns);
        plot::save(plot_path, &figure).map_err(|e| Failure::runtime(format!("{e:#}")))?;
    }
    if plan.json {
        println!("{}", report.json());
    } else {
        report.print_table();
        if let Some(plot_path) = &plan.plot {
            println!("plot: {}", plot_path.display());
        }
    }
    Ok(())
}

/// The size of the regular file `path`, or a sentence naming it. Block devices are refused:
/// the runtime checks a file's size before each read, and a device's inode says 0.
fn file_size(path: &Path) -> Result<u64, Failure> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Failure::bad_input(format!(
            "{} is not a regular file; to measure a drive, name a large file on it, or pass \
             --dir on it for a scratch file",
            path.display()
        )));
    }
    Ok(meta.len())
}

/// Whether the runtime reads `path` with direct I/O (its own probe, on a one-slot reader).
fn probe_direct(path: &Path) -> Result<bool, Failure> {
    let config = ReaderConfig {
        choice: ReaderChoice::Pread,
        queue_depth: 1,
        chunk_bytes: CHUNK_BYTES_MIN,
        pread_threads: 1,
        ..ReaderConfig::default()
    };
    let probe = || -> Result<bool, Error> {
        let reader = Reader::new(HostRing::new(1, CHUNK_BYTES_MIN)?, &config)?;
        let file = reader.open_file(path)?;
        reader.is_direct(file)
    };
    probe().map_err(|e| match e {
        Error::Open { .. } | Error::Alignment { .. } => Failure::bad_input(e.to_string()),
        e => Failure::runtime(e.to_string()),
    })
}

/// Measures every cell of `grid` on `path` (`file_bytes` long), with a progress bar labelled
/// `what`. After the kernel refuses io_uring once, its later cells are marked unavailable
/// without asking again. `stop` ends the run between reads (Ctrl-C).
pub(crate) fn run_grid(
    path: &Path,
    file_bytes: u64,
    grid: &Grid,
    seconds: f64,
    stop: &dyn Fn() -> bool,
    what: &str,
) -> Result<Vec<Cell>, Failure> {
    let settings = grid.settings();
    let bar = progress::bar(settings.len() as u64, what);
    let mut uring_refused: Option<String> = None;
    let mut cells = Vec::with_capacity(settings.len());
    for setting in settings {
        bar.set_message(format!("{what}: {}", setting_label(&setting)));
        let outcome = match (&uring_refused, setting.reader) {
            (Some(why), ReaderSel::Uring) => Outcome::Unavailable(why.clone()),
            _ => measure(path, file_bytes, setting, seconds, stop).map_err(|e| {
                Failure::runtime(format!(
                    "{} ({}): {e}",
                    path.display(),
                    setting_label(&setting)
                ))
            })?,
        };
        if stop() {
            return Err(Failure::runtime("interrupted by Ctrl-C"));
        }
        if let (Outcome::Unavailable(why), None) = (&outcome, &uring_refused) {
            bar.suspend(|| {
                eprintln!("warning: io_uring is unavailable ({why}); its cells are left empty")
            });
            uring_refused = Some(why.clone());
        }
        cells.push(Cell { setting, outcome });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(cells)
}

/// The best io_uring sequential setting for `file` over a small grid (chunks 1M and 4M × qd
/// 4, 16, 32; chunks larger than the file are left out), `seconds_per_cell` each; the pread
/// pool's grid when the kernel refuses io_uring. The returned cell is always measured.
#[allow(dead_code, reason = "called by `sluice bench model`")]
pub(super) fn sequential_best(file: &Path, seconds_per_cell: f64) -> anyhow::Result<Cell> {
    ensure!(
        (SECONDS_MIN..=SECONDS_MAX).contains(&seconds_per_cell),
        "seconds per cell must be between {SECONDS_MIN} and {SECONDS_MAX}, got {seconds_per_cell}"
    );
    let file_bytes = file_size(file)?;
    let chunks: Vec<usize> = LINK_CHUNKS
        .into_iter()
        .filter(|&c| c as u64 <= file_bytes)
        .collect();
    if chunks.is_empty() {
        bail!(
            "{}: {file_bytes} bytes is too small to measure the disk on (at least 1 MiB)",
            file.display()
        );
    }
    for reader in [ReaderSel::Uring, ReaderSel::Pread] {
        let grid = Grid {
            patterns: vec![Pattern::Sequential],
            readers: vec![reader],
            chunks: chunks.clone(),
            depths: LINK_DEPTHS.to_vec(),
        };
        let stop: &dyn Fn() -> bool = &interrupt::requested;
        let cells = run_grid(file, file_bytes, &grid, seconds_per_cell, stop, "disk link")?;
        if let Some(best) = best_of(&cells, Pattern::Sequential) {
            return Ok(best.clone());
        }
    }
    Err(anyhow!("{}: neither reader could read it", file.display()))
}

/// `128K`, `1M`, `2G`: the largest binary unit that divides `bytes`.
pub(crate) fn size_label(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}G", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => format!("{b}"),
    }
}

/// `sequential, uring, chunk 1M, qd 32` (with the pread thread count when it clamps).
fn setting_label(s: &Setting) -> String {
    let threads = match s.pread_threads() {
        Some(t) if t < s.queue_depth => format!(" ({t} threads)"),
        _ => String::new(),
    };
    format!(
        "{}, {}, chunk {}, qd {}{threads}",
        s.pattern.name(),
        s.reader.name(),
        size_label(s.chunk_bytes as u64),
        s.queue_depth
    )
}

/// Everything the table and the JSON show.
struct Report<'a> {
    path: &'a Path,
    file_bytes: u64,
    scratch: bool,
    direct: bool,
    seconds: f64,
    cells: &'a [Cell],
}

impl Report<'_> {
    fn json(&self) -> Value {
        let best = |p| best_of(self.cells, p).map_or(Value::Null, cell_json);
        json!({
            "file": self.path.display().to_string(),
            "file_bytes": self.file_bytes,
            "scratch": self.scratch,
            "direct": self.direct,
            "seconds_per_cell": self.seconds,
            "pread_threads_max": PREAD_THREADS_MAX,
            "cells": self.cells.iter().map(cell_json).collect::<Vec<_>>(),
            "best": {
                "sequential": best(Pattern::Sequential),
                "random": best(Pattern::Random),
            },
        })
    }

    fn print_table(&self) {
        println!(
            "{}: {} MiB, {}{}; each cell at most {} s or one pass",
            self.path.display(),
            self.file_bytes >> 20,
            if self.direct {
                "direct I/O"
            } else {
                "buffered (no direct I/O)"
            },
            if self.scratch {
                ", scratch file (removed)"
            } else {
                ""
            },
            self.seconds
        );
        println!(
            "{:<10}  {:<6}  {:>5}  {:>3}  {:>7}  {:>9}  {:>9}  {:>9}",
            "pattern", "reader", "chunk", "qd", "GB/s", "IOPS", "p50 us", "p99 us"
        );
        for cell in self.cells {
            print_row(cell);
        }
        print_notes(self.cells);
        for pattern in [Pattern::Sequential, Pattern::Random] {
            if let Some(best) = best_of(self.cells, pattern) {
                let gb = best.read_gb_per_s().unwrap_or(0.0);
                let s = &best.setting;
                println!(
                    "best {}: {}, chunk {}, qd {}: {gb:.3} GB/s",
                    pattern.name(),
                    s.reader.name(),
                    size_label(s.chunk_bytes as u64),
                    s.queue_depth
                );
            }
        }
    }
}

fn print_row(cell: &Cell) {
    let s = &cell.setting;
    let head = format!(
        "{:<10}  {:<6}  {:>5}  {:>3}",
        s.pattern.name(),
        s.reader.name(),
        size_label(s.chunk_bytes as u64),
        s.queue_depth
    );
    match &cell.outcome {
        Outcome::Measured(f) => println!(
            "{head}  {:>7.3}  {:>9.0}  {:>9.0}  {:>9.0}",
            f.read_gb_per_s, f.iops, f.latency_us_p50, f.latency_us_p99
        ),
        Outcome::Unavailable(_) => println!("{head}  unavailable"),
    }
}

/// Why cells are unavailable, and where pread's thread count clamps its depth.
fn print_notes(cells: &[Cell]) {
    if let Some(why) = cells.iter().find_map(|c| match &c.outcome {
        Outcome::Unavailable(why) => Some(why),
        Outcome::Measured(_) => None,
    }) {
        println!("unavailable: {why}");
    }
    let clamped = cells.iter().any(|c| {
        c.setting
            .pread_threads()
            .is_some_and(|t| t < c.setting.queue_depth)
    });
    if clamped {
        println!(
            "pread runs at most {PREAD_THREADS_MAX} threads: at a deeper qd it has \
             {PREAD_THREADS_MAX} reads in flight"
        );
    }
}

fn cell_json(cell: &Cell) -> Value {
    let s = &cell.setting;
    let f = cell.figures();
    json!({
        "pattern": s.pattern.name(),
        "reader": s.reader.name(),
        "chunk_bytes": s.chunk_bytes,
        "queue_depth": s.queue_depth,
        "pread_threads": s.pread_threads(),
        "unavailable": match &cell.outcome {
            Outcome::Unavailable(why) => Some(why.as_str()),
            Outcome::Measured(_) => None,
        },
        "bytes_read": f.map(|f| f.bytes_read),
        "reads": f.map(|f| f.reads),
        "elapsed_s": f.map(|f| f.elapsed_s),
        "read_gb_per_s": f.map(|f| f.read_gb_per_s),
        "iops": f.map(|f| f.iops),
        "latency_us_p50": f.map(|f| f.latency_us_p50),
        "latency_us_p99": f.map(|f| f.latency_us_p99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> DiskArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            disk: DiskArgs,
        }
        let mut argv = vec!["disk"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("clap accepts these").disk
    }

    #[test]
    fn the_default_grid_is_the_documented_one() {
        let g = grid(&args(&[])).expect("default grid");
        assert_eq!(g.chunks, CHUNKS_DEFAULT);
        assert_eq!(g.depths, DEPTHS_DEFAULT);
        assert_eq!(g.settings().len(), 64);
        let first = g.settings()[0];
        assert_eq!(
            (
                first.pattern,
                first.reader,
                first.chunk_bytes,
                first.queue_depth
            ),
            (Pattern::Sequential, ReaderSel::Uring, 128 << 10, 1)
        );
    }

    #[test]
    fn grid_options_parse_sorted_and_without_repeats() {
        let a = args(&[
            "--chunks",
            "1M,256K,1m",
            "--depths",
            "8, 1",
            "--readers",
            "pread",
            "--patterns",
            "rand,seq",
        ]);
        let g = grid(&a).expect("grid");
        assert_eq!(g.chunks, [256 << 10, 1 << 20]);
        assert_eq!(g.depths, [1, 8]);
        assert_eq!(g.readers, [ReaderSel::Pread]);
        assert_eq!(g.patterns, [Pattern::Sequential, Pattern::Random]);
    }

    #[test]
    fn bad_grid_options_are_one_sentence_naming_the_option() {
        for (extra, fragment) in [
            (&["--chunks", "5000"][..], "--chunks"),
            (&["--chunks", "128M"][..], "--chunks"),
            (&["--chunks", "1M,,4M"][..], "empty item"),
            (&["--depths", "0"][..], "--depths"),
            (&["--depths", "257"][..], "--depths"),
            (&["--depths", "x"][..], "--depths"),
            (&["--readers", "mmap"][..], "--readers"),
            (&["--patterns", "zigzag"][..], "--patterns"),
            (&["--chunks", "64M", "--depths", "32"][..], "--depths"),
        ] {
            let e = grid(&args(extra)).expect_err("rejected");
            assert!(e.contains(fragment), "{extra:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn plans_check_the_source_and_the_seconds() {
        let p = plan(&args(&["--file", "/x", "--size", "64M"]));
        assert!(p.is_err_and(|f| f.status == EXIT_BAD_INPUT && f.sentence.contains("--file")));
        let p = plan(&args(&["--seconds", "0"]));
        assert!(p.is_err_and(|f| f.sentence.contains("--seconds")));
        let p = plan(&args(&["--plot", "a.jpg"]));
        assert!(p.is_err_and(|f| f.sentence.contains("a.jpg")));
        let p = plan(&args(&["--dir", "/d", "--size", "64M"])).expect("plan");
        let want = Source::Scratch {
            dir: "/d".into(),
            bytes: 64 << 20,
        };
        assert_eq!(p.source, want);
    }

    #[test]
    fn scratch_sizes_are_checked() {
        assert_eq!(scratch_bytes(None, 1 << 20), Ok(SCRATCH_BYTES_DEFAULT));
        assert_eq!(scratch_bytes(Some("64M"), 4 << 20), Ok(64 << 20));
        assert!(scratch_bytes(Some("1M"), 1 << 20).is_err());
        assert!(scratch_bytes(Some("2T"), 1 << 20).is_err());
        assert!(scratch_bytes(Some("16M"), 32 << 20).is_err());
        assert!(scratch_bytes(Some("20000001"), 1 << 20).is_err());
    }

    #[test]
    fn sequential_best_returns_a_measured_cell_of_its_grid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.bin");
        std::fs::write(&path, vec![7u8; 8 << 20]).expect("write");
        let best = sequential_best(&path, 0.05).expect("measured");
        assert_eq!(best.setting.pattern, Pattern::Sequential);
        assert!(best.read_gb_per_s().is_some_and(|g| g > 0.0));
        assert!(LINK_CHUNKS.contains(&best.setting.chunk_bytes));
        assert!(LINK_DEPTHS.contains(&best.setting.queue_depth));
        std::fs::write(&path, vec![7u8; 4096]).expect("write");
        let e = sequential_best(&path, 0.05).expect_err("too small");
        assert!(e.to_string().contains("too small"), "{e}");
        let missing = dir.path().join("missing.bin");
        let e = sequential_best(&missing, 0.05).expect_err("missing");
        assert!(e.to_string().contains("missing.bin"), "{e}");
    }

    #[test]
    fn sizes_are_labelled_in_the_largest_unit() {
        assert_eq!(size_label(128 << 10), "128K");
        assert_eq!(size_label(4 << 20), "4M");
        assert_eq!(size_label(2 << 30), "2G");
        assert_eq!(size_label(1536 << 10), "1536K");
        assert_eq!(size_label(100), "100");
    }
}

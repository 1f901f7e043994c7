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
//! memory's. With `--file`, the file (a regular file) is only read; if it is in memory or
//! cannot be read directly the figures are still taken, with a warning, and `direct` is false.
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
//!
//! Parts: `options` (arguments → checked plan), `measure` (one cell), `scratch` (the scratch
//! file), `fs` (statfs), `report` (table and JSON), `figure` (the plot); this file runs them.

mod figure;
mod fs;
mod measure;
mod options;
mod report;
mod scratch;

use std::path::Path;

use anyhow::{anyhow, bail, ensure};
use sluice_runtime::limits::CHUNK_BYTES_MIN;
use sluice_runtime::{Error, HostRing, Reader, ReaderChoice, ReaderConfig};

use super::plot;
use super::progress;
use crate::cli::{interrupt, EXIT_BAD_INPUT, EXIT_RUNTIME};
use measure::measure;
#[allow(unused_imports, reason = "the API `sluice bench model` builds on")]
pub(super) use measure::{best_of, Cell, Figures, Outcome, Pattern, ReaderSel, Setting};
pub use options::DiskArgs;
use options::{plan, Grid, Plan, Source, RING_BYTES_MAX, SECONDS_MAX, SECONDS_MIN};
use report::{setting_label, size_label, Report};
use scratch::ScratchFile;

/// Chunk sizes and depths of [`sequential_best`]'s small io_uring grid.
const LINK_CHUNKS: [usize; 2] = [1 << 20, 4 << 20];
const LINK_DEPTHS: [usize; 3] = [4, 16, 32];
/// Files smaller than this are measured with a warning: drive and host caches flatter them.
const FILE_BYTES_WARN: u64 = 1 << 30;

const _: () = assert!(LINK_CHUNKS[1] * LINK_DEPTHS[2] <= RING_BYTES_MAX);

/// Why a run ended early: the exit status and one sentence.
#[derive(Debug)]
pub(crate) struct Failure {
    status: i32,
    sentence: String,
}

impl Failure {
    pub(crate) fn bad_input(sentence: impl Into<String>) -> Failure {
        Failure {
            status: EXIT_BAD_INPUT,
            sentence: sentence.into(),
        }
    }

    pub(crate) fn runtime(sentence: impl Into<String>) -> Failure {
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
    let direct = check_file(plan, path, file_bytes)?;
    let cells = run_grid(
        path,
        file_bytes,
        &plan.grid,
        plan.seconds,
        1,
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

/// Whether reads of `path` (`file_bytes` long) will reach a disk directly; refuses a file too
/// small for the grid, and a scratch file that is not on a disk, and warns about the rest.
fn check_file(plan: &Plan, path: &Path, file_bytes: u64) -> Result<bool, Failure> {
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
    Ok(direct)
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

/// Measures every cell of `grid` on `path` (`file_bytes` long) for `seconds` or `passes_max`
/// passes over its sweep, whichever ends first, with a progress bar labelled `what`. After the kernel refuses io_uring once, its later cells are marked unavailable
/// without asking again. `stop` ends the run between reads (Ctrl-C).
pub(crate) fn run_grid(
    path: &Path,
    file_bytes: u64,
    grid: &Grid,
    seconds: f64,
    passes_max: u64,
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
            _ => measure(path, file_bytes, setting, seconds, passes_max, stop).map_err(|e| {
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
/// 4, 16, 32; chunks larger than the file are left out), `seconds_per_cell` each, sweeping the
/// file again as often as that allows (a model file can be read in a few tens of ms, too short
/// for a steady figure); the pread pool's grid when the kernel refuses io_uring. The returned
/// cell is always measured.
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
        let cells = run_grid(
            file,
            file_bytes,
            &grid,
            seconds_per_cell,
            u64::MAX,
            stop,
            "disk link",
        )?;
        if let Some(best) = best_of(&cells, Pattern::Sequential) {
            return Ok(best.clone());
        }
    }
    Err(anyhow!("{}: neither reader could read it", file.display()))
}

/// `setting` measured again on `file` for `seconds_per_cell` (sweeping the file as often as
/// that allows): the same link a few seconds later, to set beside the first figure.
pub(super) fn remeasure(
    file: &Path,
    setting: Setting,
    seconds_per_cell: f64,
) -> anyhow::Result<Cell> {
    let grid = Grid {
        patterns: vec![setting.pattern],
        readers: vec![setting.reader],
        chunks: vec![setting.chunk_bytes],
        depths: vec![setting.queue_depth],
    };
    let stop: &dyn Fn() -> bool = &interrupt::requested;
    let cells = run_grid(
        file,
        file_size(file)?,
        &grid,
        seconds_per_cell,
        u64::MAX,
        stop,
        "disk link again",
    )?;
    cells
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{}: no cell measured", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

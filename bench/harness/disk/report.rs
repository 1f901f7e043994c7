//! What `sluice bench disk` prints: a table with one row per cell, notes (why cells are
//! unavailable, where pread's thread count clamps its depth) and the best setting per pattern,
//! or with `--json` one object holding the same.

use std::path::Path;

use serde_json::{json, Value};
use sluice_runtime::limits::PREAD_THREADS_MAX;

use super::measure::{best_of, Cell, Outcome, Pattern, Setting};

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
pub(crate) fn setting_label(s: &Setting) -> String {
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
pub(crate) struct Report<'a> {
    pub(crate) path: &'a Path,
    pub(crate) file_bytes: u64,
    pub(crate) scratch: bool,
    pub(crate) direct: bool,
    pub(crate) seconds: f64,
    pub(crate) cells: &'a [Cell],
}

impl Report<'_> {
    /// The `--json` object.
    pub(crate) fn json(&self) -> Value {
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

    /// The table, its notes and the best settings, on stdout.
    pub(crate) fn print_table(&self) {
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

    #[test]
    fn sizes_are_labelled_in_the_largest_unit() {
        assert_eq!(size_label(128 << 10), "128K");
        assert_eq!(size_label(4 << 20), "4M");
        assert_eq!(size_label(2 << 30), "2G");
        assert_eq!(size_label(1536 << 10), "1536K");
        assert_eq!(size_label(100), "100");
    }
}

//! `sluice bench io`: the runtime reader's sequential throughput on a file (use one of 2 GiB or
//! more), for comparison with fio's O_DIRECT io_uring read of the same file
//! (`scripts/bench-io.sh` runs both over a grid of chunk sizes and queue depths).
//!
//! The file is cut into slot-sized extents swept in order by a `Prefetcher` whose consumer
//! releases each slot at once, so the figure is what the reader and the ring sustain.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use sluice_runtime::limits::PREAD_THREADS_MAX;
use sluice_runtime::{Error, Extent, HostRing, Prefetcher, Reader, ReaderChoice, ReaderConfig};

use crate::cli::{EXIT_BAD_INPUT, EXIT_RUNTIME};

/// Files smaller than this are read anyway, with a warning: the page cache and start-up costs
/// distort figures on small files.
const FILE_BYTES_MIN: u64 = 2 << 30;

/// Arguments of `sluice bench io`.
#[derive(Args, Debug)]
pub struct IoArgs {
    /// File to read (2 GiB or more for meaningful figures).
    #[arg(long)]
    file: PathBuf,
    /// Chunk reads in flight at once (pread: worker threads, at most 16).
    #[arg(long, default_value_t = 32)]
    queue_depth: usize,
    /// Size of each chunk read (256K, 1M, 4M, or bytes).
    #[arg(long, default_value = "1M", value_parser = parse_bytes)]
    chunk: usize,
    /// Size of each ring slot, i.e. of each extent read.
    #[arg(long, default_value = "64M", value_parser = parse_bytes)]
    slot: usize,
    /// Number of ring slots (the prefetch depth).
    #[arg(long, default_value_t = 4)]
    slots: usize,
    /// Times to read the whole file.
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Which reader (default: SLUICE_IO, else io_uring with pread as fallback).
    #[arg(long, value_enum)]
    reader: Option<ReaderArg>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReaderArg {
    Uring,
    Pread,
}

/// What one run measured.
#[derive(Debug, serde::Serialize)]
struct IoReport {
    file: String,
    file_bytes: u64,
    reader: &'static str,
    fixed_buffers: bool,
    fixed_files: bool,
    direct: bool,
    queue_depth: usize,
    chunk_bytes: usize,
    slot_bytes: usize,
    slots: usize,
    passes: usize,
    bytes_read: u64,
    elapsed_s: f64,
    read_gb_per_s: f64,
    io_busy_s: f64,
    latency_us_p50: u64,
    latency_us_p99: u64,
}

/// Runs `sluice bench io`; returns the exit status.
pub fn run(io: &IoArgs) -> i32 {
    match bench_io(io) {
        Ok(report) => {
            print_report(&report, io.json);
            if !io.json {
                super::thermal::print_drive_sensor(&io.file);
            }
            0
        }
        Err(e) => {
            eprintln!("sluice bench io: {e}");
            match e {
                Error::Open { .. } | Error::Config(_) | Error::EnvChoice { .. } => EXIT_BAD_INPUT,
                _ => EXIT_RUNTIME,
            }
        }
    }
}

fn bench_io(args: &IoArgs) -> Result<IoReport, Error> {
    let choice = match args.reader {
        Some(ReaderArg::Uring) => ReaderChoice::Uring,
        Some(ReaderArg::Pread) => ReaderChoice::Pread,
        None => ReaderChoice::Auto,
    };
    let config = ReaderConfig {
        choice,
        queue_depth: args.queue_depth,
        chunk_bytes: args.chunk,
        // The pread pool's parallelism is its thread count: one read in flight per thread.
        pread_threads: args.queue_depth.clamp(1, PREAD_THREADS_MAX),
        ..ReaderConfig::default()
    };
    let ring = HostRing::new(args.slots, args.slot)?;
    let reader = Reader::new(ring, &config)?;
    let file = reader.open_file(&args.file)?;
    let file_bytes = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    if file_bytes < FILE_BYTES_MIN {
        eprintln!(
            "warning: {} is smaller than 2 GiB; figures will be optimistic",
            args.file.display()
        );
    }
    let sweep = sweep_of(
        file,
        file_bytes,
        reader.ring().slot_bytes() as u64,
        reader.alignment_bytes(file)?,
    );
    if sweep.is_empty() {
        return Err(Error::EmptySweep);
    }
    let (reader_name, fixed, direct) = (
        reader.kind().name(),
        reader.fixed_registration(),
        reader.is_direct(file)?,
    );
    let slot_bytes = reader.ring().slot_bytes();
    let started = Instant::now();
    let prefetcher = Prefetcher::new(reader, sweep, args.slots)?;
    for _ in 0..args.passes * prefetcher.sweep().len() {
        drop(prefetcher.next()?);
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let stats = prefetcher.stats();
    let bytes_read = file_bytes * args.passes as u64;
    Ok(IoReport {
        file: args.file.display().to_string(),
        file_bytes,
        reader: reader_name,
        fixed_buffers: fixed.0,
        fixed_files: fixed.1,
        direct,
        queue_depth: args.queue_depth,
        chunk_bytes: args.chunk,
        slot_bytes,
        slots: args.slots,
        passes: args.passes,
        bytes_read,
        elapsed_s,
        read_gb_per_s: bytes_read as f64 / elapsed_s / 1e9,
        io_busy_s: stats.io_busy_s(),
        latency_us_p50: stats.latency_us_quantile(0.5),
        latency_us_p99: stats.latency_us_quantile(0.99),
    })
}

/// The file cut into slot-sized extents; the last one is aligned up, its payload the rest.
fn sweep_of(
    file: sluice_runtime::FileId,
    file_bytes: u64,
    slot_bytes: u64,
    align_bytes: u64,
) -> Vec<Extent> {
    (0..file_bytes.div_ceil(slot_bytes))
        .map(|i| {
            let offset = i * slot_bytes;
            let payload_len = slot_bytes.min(file_bytes - offset);
            let len = payload_len.next_multiple_of(align_bytes);
            Extent {
                file,
                offset,
                len,
                payload_offset: 0,
                payload_len,
            }
        })
        .collect()
}

fn print_report(r: &IoReport, json: bool) {
    if json {
        match serde_json::to_string(r) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("sluice bench io: cannot encode the report: {e}"),
        }
        return;
    }
    println!(
        "{}: {:.3} GB/s  ({} reader, fixed buffers {}, qd {}, chunk {} KiB, {} slots of {} MiB, \
         {:.2} s for {} MiB; extent latency p50 {} us, p99 {} us)",
        r.file,
        r.read_gb_per_s,
        r.reader,
        r.fixed_buffers,
        r.queue_depth,
        r.chunk_bytes >> 10,
        r.slots,
        r.slot_bytes >> 20,
        r.elapsed_s,
        r.bytes_read >> 20,
        r.latency_us_p50,
        r.latency_us_p99
    );
}

/// A byte size (`256K`, `1M`, bytes) as usize, through the CLI's shared size parser.
pub(super) fn parse_bytes(s: &str) -> Result<usize, String> {
    let n = crate::cli::size::parse_size(s)?;
    usize::try_from(n).map_err(|_| format!("size '{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("256K"), Ok(256 << 10));
        assert_eq!(parse_bytes("1M"), Ok(1 << 20));
        assert_eq!(parse_bytes("4MiB"), Ok(4 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("1X").is_err());
        assert!(parse_bytes("M").is_err());
    }
}

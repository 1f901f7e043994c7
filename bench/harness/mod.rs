//! The harness behind `sluice bench`: one module per measured link or part, each parsing its
//! own arguments and printing a table, or one JSON object with `--json`.

mod batch;
mod bound;
mod cpustat;
mod disk;
mod diskstats;
mod io;
mod kernels;
mod model;
mod model_plot;
mod pcie;
mod plot;
pub(crate) mod progress;
mod thermal;

use clap::{Args, Subcommand};

/// Arguments of `sluice bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// Aggregate decode tokens/s against the number of sequences per layer sweep.
    Batch(batch::BatchBenchArgs),
    /// O_DIRECT sequential and random reads over chunk sizes × queue depths, io_uring vs pread.
    Disk(disk::DiskArgs),
    /// Sequential read throughput of the runtime's reader on a file.
    Io(io::IoArgs),
    /// CPU (and GPU) dequantisation and matrix × vector throughput per weight type vs memory
    /// bandwidth.
    Kernels(kernels::KernelsArgs),
    /// The whole pipeline on a model: per-layer times, the links measured in the same run, the
    /// bound they predict and the bottleneck.
    Model(model::ModelArgs),
    /// Host → device and device → host copy GB/s by size, page-locked vs pageable memory.
    Pcie(pcie::PcieArgs),
    /// The thermal governor off and on over a long streaming run on a simulated drive.
    Thermal(thermal::ThermalArgs),
}

/// Runs `sluice bench …` and returns the exit status.
pub fn run(args: BenchArgs) -> i32 {
    match args.what {
        BenchWhat::Batch(b) => batch::run(&b),
        BenchWhat::Disk(disk) => disk::run(&disk),
        BenchWhat::Io(io) => io::run(&io),
        BenchWhat::Kernels(k) => kernels::run(&k),
        BenchWhat::Model(m) => model::run(&m),
        BenchWhat::Pcie(pcie) => pcie::run(&pcie),
        BenchWhat::Thermal(thermal) => thermal::run(&thermal),
    }
}

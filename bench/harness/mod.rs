//! The harness behind `sluice bench`: one module per measured link or part, each parsing its
//! own arguments and printing a table, or one JSON object with `--json`.

mod io;
mod kernels;
mod pcie;
mod plot;
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
    /// Sequential read throughput of the runtime's reader on a file.
    Io(io::IoArgs),
    /// CPU (and GPU) dequantisation and matrix × vector throughput per weight type vs memory
    /// bandwidth.
    Kernels(kernels::KernelsArgs),
    /// Host → device and device → host copy GB/s by size, page-locked vs pageable memory.
    Pcie(pcie::PcieArgs),
    /// The thermal governor off and on over a long streaming run on a simulated drive.
    Thermal(thermal::ThermalArgs),
}

/// Runs `sluice bench …` and returns the exit status.
pub fn run(args: BenchArgs) -> i32 {
    match args.what {
        BenchWhat::Io(io) => io::run(&io),
        BenchWhat::Kernels(k) => kernels::run(&k),
        BenchWhat::Pcie(pcie) => pcie::run(&pcie),
        BenchWhat::Thermal(thermal) => thermal::run(&thermal),
    }
}

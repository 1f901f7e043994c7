//! The `sluice` command line.

fn main() {
    std::process::exit(sluice::cli::main());
}

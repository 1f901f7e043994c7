//! The command line of `sluice bench disk`: its arguments, and the checked plan they make (the
//! grid of cells, what file to read, for how long). Every bad value is one sentence naming the
//! option; lists are comma-separated, sorted and stripped of repeats.

use std::path::PathBuf;

use clap::Args;
use sluice_runtime::limits::{CHUNK_BYTES_MAX, CHUNK_BYTES_MIN, QUEUE_DEPTH_MAX, SLOT_ALIGN_BYTES};

use super::measure::{Pattern, ReaderSel, Setting};
use super::report::size_label;
use super::Failure;
use crate::cli::bench::plot::Format;
use crate::cli::size::parse_size;

/// Chunk sizes of the default grid.
pub(crate) const CHUNKS_DEFAULT: [usize; 4] = [128 << 10, 256 << 10, 1 << 20, 4 << 20];
/// Queue depths of the default grid.
pub(crate) const DEPTHS_DEFAULT: [usize; 4] = [1, 4, 16, 32];
/// Size of the scratch file when `--size` is not given.
const SCRATCH_BYTES_DEFAULT: u64 = 1 << 30;
/// Smallest and largest scratch file.
const SCRATCH_BYTES_MIN: u64 = 16 << 20;
const SCRATCH_BYTES_MAX: u64 = 1 << 40;
/// Largest ring one cell may map (`qd` slots of one chunk).
pub(crate) const RING_BYTES_MAX: usize = 1 << 30;
/// Range of `--seconds` (per cell).
pub(crate) const SECONDS_MIN: f64 = 0.01;
pub(crate) const SECONDS_MAX: f64 = 60.0;

const _: () = assert!(CHUNKS_DEFAULT[3] * DEPTHS_DEFAULT[3] <= RING_BYTES_MAX);
const _: () = assert!(SCRATCH_BYTES_MIN >= CHUNK_BYTES_MAX as u64 / 4);
const _: () = assert!(SCRATCH_BYTES_DEFAULT.is_multiple_of(SLOT_ALIGN_BYTES as u64));

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

/// The cells to measure: every combination of these, in this nesting order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Grid {
    pub(crate) patterns: Vec<Pattern>,
    pub(crate) readers: Vec<ReaderSel>,
    pub(crate) chunks: Vec<usize>,
    pub(crate) depths: Vec<usize>,
}

impl Grid {
    pub(crate) fn settings(&self) -> Vec<Setting> {
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

    /// The largest chunk size (0 for an empty grid).
    pub(crate) fn chunk_max(&self) -> usize {
        self.chunks.iter().copied().max().unwrap_or(0)
    }
}

/// What to read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Source {
    File(PathBuf),
    Scratch { dir: PathBuf, bytes: u64 },
}

/// A validated command line.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) source: Source,
    pub(crate) grid: Grid,
    pub(crate) seconds: f64,
    pub(crate) json: bool,
    pub(crate) plot: Option<PathBuf>,
}

/// Checks every option; a failure is one sentence with exit status 2.
pub(crate) fn plan(args: &DiskArgs) -> Result<Plan, Failure> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::EXIT_BAD_INPUT;

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
}

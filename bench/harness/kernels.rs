//! `sluice bench kernels`: CPU dequantisation and matrix × vector throughput per weight type, in
//! GB/s of weights and as a fraction of the memory read bandwidth measured in the same run (a
//! decode step streams every weight once, so that bandwidth is the roof; it is probed just
//! before and just after each type's products, and that type's fractions are against the mean of
//! the two, because a shared VM's memory rate drifts by up to a third within a run), on every
//! kernel tier the CPU has (scalar, AVX2, AVX-512): the one-token product (decode) and an
//! 8-token product (prefill and batched decode, in weight GB/s times tokens).
//!
//! Where a GPU is present the same matrices go through its dequantisation and fused matvec
//! kernels too (`cuda::bench::KernelBench`), against the device memory bandwidth of the same run
//! (a device-to-device copy, bytes read plus written per second). Without one, the report says
//! why (`"gpu": null` and `"gpu_reason"` in JSON); that is not a failure.

use std::hint::black_box;
use std::time::Instant;

use crate::cpu::membw::read_bandwidth;
use crate::cpu::rows16;
use crate::cpu::synth::{self, Rng, WEIGHT_TYPES};
use crate::cpu::{matmul_with, Isa, ThreadPool, WeightLayout, WeightView};
use anyhow::{bail, Context, Result};
use clap::Args;
use sluice_loader::quant::dequantize_row;
use sluice_loader::GgmlType;

use crate::cli::size::parse_size;
use crate::cli::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::cuda::bench::KernelBench;
use crate::cuda::CudaError;

/// Elements per weight row (a 7B-class projection's width).
const ROW_ELEMS: usize = 4096;

/// The longest row `--row-elems` takes (the largest hidden sizes of today's models, with room).
const ROW_ELEMS_MAX: usize = 1 << 16;
/// Largest matrix accepted (the machine must hold it and the bandwidth buffer).
const SIZE_MAX: u64 = 8 << 30;
/// Tokens of the batched product (one pass of the batch kernels).
const BATCH_TOKENS: usize = 8;

/// Arguments of `sluice bench kernels`.
#[derive(Args, Debug)]
pub struct KernelsArgs {
    /// Threads for the matrix products and the bandwidth probe (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Weight bytes per matrix; larger than the last-level cache so it streams from memory.
    #[arg(long, default_value = "256M")]
    size: String,
    /// Weight types to measure, comma-separated (default: every type the CPU backend runs).
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Seconds to spend on each measurement (at least one pass is always made).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Elements per weight row: a model's own row length (short rows cost more per byte);
    /// types whose block does not divide it are left out, or refused if named in --types.
    #[arg(long, default_value_t = ROW_ELEMS)]
    row_elems: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// One weight type's figures.
#[derive(Debug, serde::Serialize)]
struct KernelFigures {
    #[serde(rename = "type")]
    ty: String,
    weight_bytes: usize,
    dequant_gb_per_s: f64,
    matvec_gb_per_s: f64,
    matvec_fraction_of_mem: f64,
    /// The 8-token product: weight bytes × tokens per second (CPU only).
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_gb_per_s: Option<f64>,
    /// The memory rate this type's fractions are against: the mean of the probes just before
    /// and just after its products (CPU only; the GPU's is the report's device figure).
    #[serde(skip_serializing_if = "Option::is_none")]
    mem_gb_per_s: Option<f64>,
}

/// One kernel tier's products over the same matrices.
#[derive(Debug, serde::Serialize)]
struct TierFigures {
    isa: &'static str,
    kernels: Vec<TierKernel>,
}

/// One weight type on one tier.
#[derive(Debug, serde::Serialize)]
struct TierKernel {
    #[serde(rename = "type")]
    ty: String,
    matvec_gb_per_s: f64,
    matvec_fraction_of_mem: f64,
    batch_gb_per_s: f64,
}

/// The whole report.
#[derive(Debug, serde::Serialize)]
struct KernelsReport {
    isa: &'static str,
    threads: usize,
    /// Elements per weight row of every matrix measured.
    row_elems: usize,
    /// The probe at the start of the run; each type's fractions are against its own
    /// `mem_gb_per_s`.
    mem_gb_per_s: f64,
    /// The figures of `isa`, the tier the engine runs.
    kernels: Vec<KernelFigures>,
    /// Every tier this CPU has, slowest first.
    tiers: Vec<TierFigures>,
    /// Whether the 16-row Q2_K and Q3_K kernels measured extract their fields with GFNI.
    rows16_gfni: bool,
    /// The device's figures, or `None` with `gpu_reason` saying why there are none.
    gpu: Option<GpuReport>,
    gpu_reason: Option<String>,
}

/// The device's figures over the same matrices.
#[derive(Debug, serde::Serialize)]
struct GpuReport {
    name: String,
    compute_capability: String,
    /// Device-to-device copy: bytes read plus bytes written per second.
    mem_gb_per_s: f64,
    kernels: Vec<KernelFigures>,
}

/// Checked arguments.
struct Plan {
    size: u64,
    threads: usize,
    types: Vec<GgmlType>,
    row_elems: usize,
}

/// Runs `sluice bench kernels`; returns the exit status.
pub fn run(args: &KernelsArgs) -> i32 {
    let plan = match check_args(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("sluice bench kernels: {e:#}");
            return EXIT_BAD_INPUT;
        }
    };
    match bench(args, plan) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sluice bench kernels: {e:#}");
            EXIT_RUNTIME
        }
    }
}

fn check_args(args: &KernelsArgs) -> Result<Plan> {
    let size = parse_size(&args.size).map_err(|e| anyhow::anyhow!("--size: {e}"))?;
    if !(1 << 20..=SIZE_MAX).contains(&size) {
        bail!("--size must be between 1M and 8G, got {}", args.size);
    }
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600], got {}", args.seconds);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    if !(1..=1024).contains(&threads) {
        bail!("--threads must be in 1..=1024, got {threads}");
    }
    let row_elems = args.row_elems;
    if !(1..=ROW_ELEMS_MAX).contains(&row_elems) {
        bail!("--row-elems must be in 1..={ROW_ELEMS_MAX}, got {row_elems}");
    }
    let fits = |ty: &GgmlType| row_elems.is_multiple_of(ty.block_elems());
    let types = if args.types.is_empty() {
        let types: Vec<GgmlType> = WEIGHT_TYPES.iter().copied().filter(fits).collect();
        if types.is_empty() {
            bail!("--row-elems {row_elems}: no weight type's block divides it");
        }
        types
    } else {
        let types = args
            .types
            .iter()
            .map(|t| parse_type(t))
            .collect::<Result<Vec<_>>>()?;
        if let Some(ty) = types.iter().find(|ty| !fits(ty)) {
            bail!(
                "--row-elems {row_elems} is not a multiple of {ty}'s {}-element block",
                ty.block_elems()
            );
        }
        types
    };
    Ok(Plan {
        size,
        threads,
        types,
        row_elems,
    })
}

fn bench(args: &KernelsArgs, plan: Plan) -> Result<()> {
    let Plan {
        size,
        threads,
        types,
        row_elems,
    } = plan;
    let pool = ThreadPool::new(threads);
    let isa = Isa::current();
    let mut rng = Rng::new(0x5EED);

    let probe = MemProbe::new(size as usize, &pool, args.seconds);
    let first_bps = probe.bytes_per_s();
    let mut gpu = Gpu::open(size as usize, args.seconds)?;
    if !args.json {
        println!(
            "memory read bandwidth, {threads} threads: {:.2} GB/s (probed again around each \
             type's products; \"of mem\" is against the mean of those two probes)",
            first_bps / 1e9
        );
        println!(
            "{:<8} {:>12} {:>14} {:>14} {:>9} {:>8} {:>12}",
            "type", "weights", "dequant GB/s", "matvec GB/s", "mem GB/s", "of mem", "batch GB/s"
        );
    }

    let tiers_present = Isa::all_present();
    let mut tiers: Vec<TierFigures> = tiers_present
        .iter()
        .map(|t| TierFigures {
            isa: t.name(),
            kernels: Vec::new(),
        })
        .collect();
    // Resident matrices of some types are rearranged for the best tier (`cpu::rows16`): that
    // layout gets a row of its own, over a rearranged copy of the same matrix.
    let rows16_tier = Isa::best();
    let rows16_at = rows16_tier.reads_rows16().then(|| {
        tiers.push(TierFigures {
            isa: if rows16_tier.name() == "avx512" {
                "avx512 rows16"
            } else {
                "avx2 rows16"
            },
            kernels: Vec::new(),
        });
        tiers.len() - 1
    });
    let mut scratch = Vec::new();
    let mut kernels = Vec::new();
    let bar = super::progress::bar(types.len() as u64, "weight types");
    for ty in types {
        bar.set_message(format!("weight types: {ty}"));
        let row_bytes = ty.row_bytes(row_elems as u64).unwrap_or(0) as usize;
        // Whole 16-row groups, so the interleaved layout applies to the same matrix.
        let n_rows = (size as usize / row_bytes.max(1) / 16 * 16).max(16);
        let bytes = synth::weights(&mut rng, ty, row_elems, n_rows);
        let w = WeightView::file(ty, row_elems, n_rows, &bytes);
        let gb = |s: f64, tokens: usize| (bytes.len() * tokens) as f64 / s / 1e9;
        // The probes just before and just after this type's products bracket them.
        let mem_before = probe.bytes_per_s();
        // `Isa::current()` is always one of the tiers present: its figures are that tier's.
        let mut current = (f64::NAN, f64::NAN);
        // (tier row, one-token pass s, batch pass s), turned into figures once the probe after
        // this type has run.
        let mut passes = Vec::with_capacity(tiers.len());
        for (at, tier) in tiers_present.iter().enumerate() {
            let mv = matvec_pass_s(*tier, &w, &mut rng, &pool, args.seconds, 1)?;
            let bt = matvec_pass_s(*tier, &w, &mut rng, &pool, args.seconds, BATCH_TOKENS)?;
            passes.push((at, mv, bt));
            if *tier == isa {
                current = (mv, bt);
            }
        }
        if let Some(at) = rows16_at.filter(|_| rows16::interleaves(rows16_tier, ty, n_rows)) {
            let mut packed = bytes.clone();
            let form = rows16_tier
                .rows16_form()
                .context("the 16-row tier has no layout form")?;
            rows16::repack(form, ty, n_rows, &mut packed, &mut scratch)?;
            let w = WeightView {
                layout: WeightLayout::Rows16(form),
                ..WeightView::file(ty, row_elems, n_rows, &packed)
            };
            let mv = matvec_pass_s(rows16_tier, &w, &mut rng, &pool, args.seconds, 1)?;
            let bt = matvec_pass_s(rows16_tier, &w, &mut rng, &pool, args.seconds, BATCH_TOKENS)?;
            passes.push((at, mv, bt));
        }
        let mem_bps = (mem_before + probe.bytes_per_s()) / 2.0;
        let (mv, bt) = current;
        let mut row = vec![0.0f32; row_elems];
        let mut deq_err = None;
        let (dq, _) = timed_passes(args.seconds, |passes| {
            for _ in 0..passes {
                for r in bytes.chunks_exact(row_bytes) {
                    if let Err(e) = dequantize_row(ty, r, &mut row) {
                        deq_err.get_or_insert(e);
                    }
                }
                black_box(&row);
            }
        });
        if let Some(e) = deq_err {
            bail!("{ty} dequantisation failed: {e}");
        }
        for (at, mv, bt) in passes {
            tiers[at].kernels.push(TierKernel {
                ty: ty.to_string(),
                matvec_gb_per_s: gb(mv, 1),
                matvec_fraction_of_mem: gb(mv, 1) * 1e9 / mem_bps,
                batch_gb_per_s: gb(bt, BATCH_TOKENS),
            });
        }
        let fig = KernelFigures {
            ty: ty.to_string(),
            weight_bytes: bytes.len(),
            dequant_gb_per_s: bytes.len() as f64 / dq / 1e9,
            matvec_gb_per_s: gb(mv, 1),
            matvec_fraction_of_mem: gb(mv, 1) * 1e9 / mem_bps,
            batch_gb_per_s: Some(gb(bt, BATCH_TOKENS)),
            mem_gb_per_s: Some(mem_bps / 1e9),
        };
        if !args.json {
            bar.suspend(|| print_row(&fig));
        }
        kernels.push(fig);
        gpu.measure(ty, row_elems, n_rows, &bytes, args.seconds)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (gpu, gpu_reason) = gpu.report();
    if args.json {
        let report = KernelsReport {
            isa: isa.name(),
            threads,
            row_elems,
            mem_gb_per_s: first_bps / 1e9,
            kernels,
            tiers,
            rows16_gfni: rows16_tier.uses_gfni(),
            gpu,
            gpu_reason,
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "rows of {row_elems} elements; dequant is one thread; matvec uses {threads}; batch is {BATCH_TOKENS} tokens (weight GB/s × tokens). Kernel path: {}.",
            isa.name()
        );
        print_tiers(&tiers);
        // Only a tier with 16-row Q2_K kernels has the GFNI choice to report.
        if rows16_at.is_some()
            && rows16::interleaves(rows16_tier, GgmlType::Q2K, rows16::GROUP_ROWS)
        {
            let how = if rows16_tier.uses_gfni() {
                "with GFNI"
            } else {
                "with shifts and masks (no GFNI)"
            };
            println!("avx512 rows16: Q2_K and Q3_K take their 2-bit fields out {how}.");
        }
        print_gpu(gpu.as_ref(), gpu_reason.as_deref());
    }
    Ok(())
}

/// The GPU half: device 0 and its figures so far, or why there is none.
enum Gpu {
    Present {
        bench: KernelBench,
        mem_gb_per_s: f64,
        kernels: Vec<KernelFigures>,
    },
    Absent(String),
}

impl Gpu {
    /// Opens device 0 and measures its memory bandwidth over a copy of `size` bytes; a device
    /// that is there but fails is an error.
    fn open(size: usize, seconds: f64) -> Result<Gpu> {
        let bench = match KernelBench::open() {
            Ok(bench) => bench,
            Err(CudaError::Unavailable(why)) => return Ok(Gpu::Absent(why)),
            Err(e) => return Err(e).context("opening the GPU"),
        };
        let mem_gb_per_s = bench
            .mem_gb_per_s(size, seconds)
            .context("measuring the GPU's memory bandwidth")?;
        Ok(Gpu::Present {
            bench,
            mem_gb_per_s,
            kernels: Vec::new(),
        })
    }

    /// Times `ty`'s device kernels over `weights` (rows of `row_elems`), when there is a GPU.
    fn measure(
        &mut self,
        ty: GgmlType,
        row_elems: usize,
        n_rows: usize,
        weights: &[u8],
        seconds: f64,
    ) -> Result<()> {
        let Gpu::Present {
            bench,
            mem_gb_per_s,
            kernels,
        } = self
        else {
            return Ok(());
        };
        let f = bench
            .measure(ty, row_elems, n_rows, weights, seconds)
            .with_context(|| format!("{ty} on the GPU"))?;
        kernels.push(KernelFigures {
            ty: ty.to_string(),
            weight_bytes: f.weight_bytes,
            dequant_gb_per_s: f.dequant_gb_per_s,
            matvec_gb_per_s: f.matvec_gb_per_s,
            matvec_fraction_of_mem: f.matvec_gb_per_s / *mem_gb_per_s,
            batch_gb_per_s: None,
            mem_gb_per_s: None,
        });
        Ok(())
    }

    /// The report's `gpu` and `gpu_reason`.
    fn report(self) -> (Option<GpuReport>, Option<String>) {
        match self {
            Gpu::Present {
                bench,
                mem_gb_per_s,
                kernels,
            } => {
                let info = bench.info();
                let (major, minor) = info.compute_capability;
                let report = GpuReport {
                    name: info.name.clone(),
                    compute_capability: format!("{major}.{minor}"),
                    mem_gb_per_s,
                    kernels,
                };
                (Some(report), None)
            }
            Gpu::Absent(why) => (None, Some(why)),
        }
    }
}

/// The GPU's table after the CPU's, or one line saying why there is none.
fn print_gpu(gpu: Option<&GpuReport>, reason: Option<&str>) {
    let Some(g) = gpu else {
        println!("gpu: none ({})", reason.unwrap_or("not probed"));
        return;
    };
    println!(
        "gpu {} (compute {}): memory bandwidth {:.2} GB/s (device-to-device copy, read + written)",
        g.name, g.compute_capability, g.mem_gb_per_s
    );
    println!(
        "{:<8} {:>12} {:>14} {:>14} {:>8}",
        "type", "weights", "dequant GB/s", "matvec GB/s", "of mem"
    );
    for fig in &g.kernels {
        print_row(fig);
    }
}

/// One type's row of the CPU or GPU table.
fn print_row(fig: &KernelFigures) {
    let batch = fig
        .batch_gb_per_s
        .map_or_else(String::new, |b| format!("{b:>12.2}"));
    let mem = fig
        .mem_gb_per_s
        .map_or_else(|| format!("{:>9}", "-"), |m| format!("{m:>9.2}"));
    println!(
        "{:<8} {:>9.0} MB {:>14.2} {:>14.2} {mem} {:>7.0}% {batch}",
        fig.ty,
        fig.weight_bytes as f64 / 1e6,
        fig.dequant_gb_per_s,
        fig.matvec_gb_per_s,
        100.0 * fig.matvec_fraction_of_mem
    );
}

/// Every tier's matvec (and fraction of memory bandwidth) and batch figures, a column pair
/// per tier.
fn print_tiers(tiers: &[TierFigures]) {
    print!("{:<8}", "tier:");
    for t in tiers {
        print!(" {:>24}", format!("{} matvec / batch", t.isa));
    }
    println!();
    let n_types = tiers.first().map_or(0, |t| t.kernels.len());
    for i in 0..n_types {
        print!("{:<8}", tiers[0].kernels[i].ty);
        let ty = &tiers[0].kernels[i].ty;
        for t in tiers {
            // A layout's tier lists only the types it takes.
            let Some(k) = t.kernels.iter().find(|k| &k.ty == ty) else {
                print!(" {:>24}", "-");
                continue;
            };
            print!(
                " {:>24}",
                format!(
                    "{:.2} ({:.0}%) / {:.2}",
                    k.matvec_gb_per_s,
                    100.0 * k.matvec_fraction_of_mem,
                    k.batch_gb_per_s
                )
            );
        }
        println!();
    }
}

/// Runs `f(passes)` with growing pass counts until one call lasts `seconds`; returns the best
/// seconds per pass seen and the passes of the final call.
fn timed_passes(seconds: f64, mut f: impl FnMut(usize)) -> (f64, usize) {
    let mut passes = 1;
    let mut best = f64::INFINITY;
    let deadline = Instant::now();
    loop {
        let t = Instant::now();
        f(passes);
        let dt = t.elapsed().as_secs_f64();
        best = best.min(dt / passes as f64);
        if deadline.elapsed().as_secs_f64() >= seconds {
            return (best, passes);
        }
        passes = (passes * 2).min(1 << 20);
    }
}

/// A weight type by its GGUF name (`q4_1`, `Q4_K`, `f16`, …).
fn parse_type(name: &str) -> Result<GgmlType> {
    let want = name.trim().to_ascii_uppercase().replace('_', "");
    WEIGHT_TYPES
        .iter()
        .copied()
        .find(|t| t.to_string().to_ascii_uppercase().replace('_', "") == want)
        .with_context(|| {
            let known: Vec<String> = WEIGHT_TYPES.iter().map(|t| t.to_string()).collect();
            format!("unknown weight type {name:?} (known: {})", known.join(", "))
        })
}

/// Memory read bandwidth in GB/s over a buffer of `size` bytes across `pool`, best pass over
/// about `seconds` (the roof of every CPU matrix × vector product).
pub(super) fn mem_gb_per_s(size: usize, pool: &ThreadPool, seconds: f64) -> f64 {
    MemProbe::new(size, pool, seconds).bytes_per_s() / 1e9
}

/// The memory read probe, its buffer allocated once so that it can run again between the
/// products it is the roof of.
struct MemProbe<'p> {
    buf: Vec<u8>,
    pool: &'p ThreadPool,
    seconds: f64,
}

impl<'p> MemProbe<'p> {
    /// A probe over `size` bytes across `pool`, each measurement about `seconds`.
    fn new(size: usize, pool: &'p ThreadPool, seconds: f64) -> MemProbe<'p> {
        MemProbe {
            buf: (0..size).map(|i| i as u8).collect(),
            pool,
            seconds,
        }
    }

    /// Bytes read per second now, best pass.
    fn bytes_per_s(&self) -> f64 {
        let (per_pass, _) = timed_passes(self.seconds, |passes| {
            black_box(read_bandwidth(&self.buf, self.pool, passes));
        });
        self.buf.len() as f64 / per_pass
    }
}

/// Matrix × one-token throughput of weight type `ty` in GB/s of weights, over a random matrix of
/// about `size` bytes in rows of `row_elems` (a model's own row length: short rows cost more per
/// byte), best pass over about `seconds`.
pub(super) fn matvec_gb_per_s(
    ty: GgmlType,
    row_elems: usize,
    size: usize,
    pool: &ThreadPool,
    seconds: f64,
) -> Result<f64> {
    let isa = Isa::current();
    let mut rng = Rng::new(0x5EED);
    let (n_rows, bytes) = random_matrix(&mut rng, ty, row_elems, size)?;
    let w = WeightView::file(ty, row_elems, n_rows, &bytes);
    let per_pass = matvec_pass_s(isa, &w, &mut rng, pool, seconds, 1)?;
    Ok(bytes.len() as f64 / per_pass / 1e9)
}

/// The device's one-token matvec throughput of `ty` in GB/s of weights, over a random matrix of
/// about `size` bytes in rows of `row_elems`, best over about `seconds`.
pub(super) fn gpu_matvec_gb_per_s(
    bench: &KernelBench,
    ty: GgmlType,
    row_elems: usize,
    size: usize,
    seconds: f64,
) -> Result<f64> {
    let mut rng = Rng::new(0x5EED);
    let (n_rows, bytes) = random_matrix(&mut rng, ty, row_elems, size)?;
    let f = bench.measure(ty, row_elems, n_rows, &bytes, seconds)?;
    Ok(f.matvec_gb_per_s)
}

/// A random matrix of `ty` with rows of `row_elems` and about `size` bytes: (rows, bytes).
fn random_matrix(
    rng: &mut Rng,
    ty: GgmlType,
    row_elems: usize,
    size: usize,
) -> Result<(usize, Vec<u8>)> {
    let row_bytes = match ty.row_bytes(row_elems as u64) {
        Some(b) if b > 0 => b as usize,
        _ => bail!("{ty}: rows of {row_elems} elements are not whole blocks"),
    };
    let n_rows = (size / row_bytes).max(1);
    Ok((n_rows, synth::weights(rng, ty, row_elems, n_rows)))
}

/// Best seconds per product of `w` with `tokens` activation rows on `pool` (one token: the
/// matrix × vector of decode), over about `seconds`.
fn matvec_pass_s(
    isa: Isa,
    w: &WeightView<'_>,
    rng: &mut Rng,
    pool: &ThreadPool,
    seconds: f64,
    tokens: usize,
) -> Result<f64> {
    let ty = w.ty;
    let q = synth::acts(rng, isa, ty, w.row_elems, tokens)?;
    let mut out = vec![0.0f32; w.n_rows * tokens];
    let mut first_err = None;
    let (per_pass, _) = timed_passes(seconds, |passes| {
        for _ in 0..passes {
            if let Err(e) = matmul_with(isa, w, &q, &mut out, pool) {
                first_err.get_or_insert(e);
            }
        }
        black_box(&out);
    });
    if let Some(e) = first_err {
        bail!("{ty} matvec failed: {e}");
    }
    Ok(per_pass)
}

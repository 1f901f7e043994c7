//! `sluice bench model -m M [--ram-budget SIZE] [--tokens N] [--json] [--plot FILE]`: the whole
//! pipeline on a real model, explained by the links measured in the same run.
//!
//! Steps: load the model with per-layer timing on; measure the disk link (the best sequential
//! O_DIRECT setting on the model's own file, as `sluice bench disk` measures it), the host link
//! (memory read bandwidth), the PCIe link when a GPU computes (`sluice bench pcie`'s page-locked
//! copies), and the compute link (each weight type's matrix × vector rate on the side that
//! computes, as `sluice bench kernels` measures it); then generate `--tokens`
//! greedy tokens after a synthetic prompt. The bound per token is max(streamed bytes / disk,
//! copied bytes / PCIe, compute time) (`bound`); the report sets the achieved decode rate against
//! it, names the link that sets the pace, and shows each layer's read, copy, compute and stall.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use sluice_loader::roles::TensorRole;
use sluice_loader::GgmlType;

use super::bound::{bound, compute_seconds, Bound, Demand, Link, Rates};
use super::cpustat;
use super::diskstats;
use super::model_plot::ModelFigure;
use super::progress;
use crate::cli::run_args::{DeviceArg, EngineArgs};
use crate::cli::size::parse_size;
use crate::cli::Failure;
use crate::cpu::synth::WEIGHT_TYPES;
use crate::cpu::ThreadPool;
use crate::cuda::bench::KernelBench;
use crate::engine::layer_times::{LayerSample, PipelineTimes, RowSpans};
use crate::engine::sampler::{Sampler, SamplerConfig};
use crate::engine::session::{Engine, EngineError};
use crate::engine::store::GlobalMatrix;
use crate::engine::tiers::Tier;

/// Matrices measured for the compute link: larger than the caches, small enough to be quick.
const KERNEL_BYTES: usize = 128 << 20;
/// Buffer for the memory bandwidth probe: the kernels' size, so the two compare.
const MEM_PROBE_BYTES: usize = KERNEL_BYTES;
/// Weight types holding less than this share of a token's bytes are not measured on their
/// own; they are charged at memory bandwidth (norm vectors, biases).
const TYPE_SHARE_MIN: f64 = 0.01;
/// Copies timed for the PCIe link: page-locked host → device, as the ring's copies are.
const PCIE_LINK_BYTES: usize = 64 << 20;
const PCIE_LINK_REPS: usize = 8;
/// Bounds of `--seconds` (the disk grid's own bounds per cell).
const SECONDS_MIN: f64 = 0.01;
const SECONDS_MAX: f64 = 60.0;
/// Most decode tokens one run may ask for.
const TOKENS_MAX: u32 = 4096;
/// Most prompt tokens.
const PROMPT_TOKENS_MAX: u32 = 512;

/// Arguments of `sluice bench model`.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Model: a GGUF file, an HF directory, or a cache alias.
    #[arg(long, short = 'm', default_value = sluice_loader::cache::DEFAULT_ALIAS)]
    model: String,
    /// Bytes of weights kept resident in RAM (`0` streams every layer and the head).
    #[arg(long, value_parser = parse_size)]
    ram_budget: Option<u64>,
    /// Bytes of layer weights kept on the GPU.
    #[arg(long, value_parser = parse_size)]
    vram_budget: Option<u64>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Compute threads (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Tokens to decode after the prompt (the achieved rate is over all but the first).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=i64::from(TOKENS_MAX)))]
    tokens: u32,
    /// Prompt length in tokens (a fixed synthetic prompt: the speed does not depend on it).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=i64::from(PROMPT_TOKENS_MAX)))]
    prompt_tokens: u32,
    /// Seconds spent measuring each link setting and each kernel.
    #[arg(long, default_value_t = 0.5)]
    seconds: f64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Write the bandwidth waterfall and the per-layer timeline (.png or .svg).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// Runs `sluice bench model`; returns the exit status.
pub fn run(args: &ModelArgs) -> i32 {
    crate::cli::exit_status(bench(args), "sluice bench model")
}

/// The links as measured in this run.
#[derive(Debug)]
pub(super) struct Links {
    /// Best sequential O_DIRECT read of the model's file.
    pub disk_gb_per_s: f64,
    /// How that figure was read (reader, chunk, queue depth).
    pub disk_setting: String,
    /// Memory read bandwidth.
    pub host_gb_per_s: f64,
    /// Page-locked host → device copies, when a GPU computes.
    pub pcie_gb_per_s: Option<f64>,
    /// Why there is no PCIe figure.
    pub pcie_absent: Option<String>,
    /// Weight bytes per token over the compute time per token.
    pub compute_gb_per_s: f64,
    /// Where the compute rate comes from.
    pub compute_source: String,
}

/// One weight type's share of a token and its measured rate.
#[derive(Debug, serde::Serialize)]
struct TypeRate {
    #[serde(rename = "type")]
    ty: String,
    bytes_per_token: u64,
    /// The row length measured (the one carrying most of the type's bytes).
    row_elems: usize,
    /// `None`: charged at memory bandwidth.
    matvec_gb_per_s: Option<f64>,
}

fn bench(args: &ModelArgs) -> Result<(), Failure> {
    let bad = Failure::BadInput;
    let runtime = Failure::Runtime;
    if !(SECONDS_MIN..=SECONDS_MAX).contains(&args.seconds) {
        return Err(bad(anyhow!(
            "--seconds must be between {SECONDS_MIN} and {SECONDS_MAX}, got {}",
            args.seconds
        )));
    }
    if let Some(plot) = &args.plot {
        super::plot::Format::of(plot).map_err(bad)?;
    }
    let (path, opts) = EngineArgs {
        model: &args.model,
        device: args.device,
        threads: args.threads,
        ram_budget: args.ram_budget,
        vram_budget: args.vram_budget,
        layer_times: true,
        max_batch: 1,
    }
    .resolve()?;
    let threads = opts.threads;
    let n_ctx = (args.prompt_tokens + args.tokens) as usize;
    let steps = 4;
    let bar = progress::bar(steps, "loading the model");
    let mut engine = Engine::load(&path, n_ctx, &opts).map_err(|e| match e {
        e if e.is_bad_input() => bad(e.into()),
        e => runtime(e.into()),
    })?;
    let on_gpu = engine.tiers().is_some();
    bar.inc(1);

    bar.set_message("measuring the disk link");
    let file = largest_file(&engine).map_err(bad)?;
    let disk = super::disk::sequential_best(&file, args.seconds).map_err(runtime)?;
    let Some(disk_gb_per_s) = disk.read_gb_per_s() else {
        return Err(runtime(anyhow!(
            "{}: the disk link could not be measured",
            file.display()
        )));
    };
    let s = disk.setting;
    let disk_setting = format!(
        "best sequential O_DIRECT read of {}: {}, {} KiB chunks, qd {}",
        file_name(&file.display().to_string()),
        s.reader.name(),
        s.chunk_bytes >> 10,
        s.queue_depth
    );
    bar.set_message("measuring memory and kernels");
    let pool = ThreadPool::new(threads);
    let host_gb_per_s = super::kernels::mem_gb_per_s(MEM_PROBE_BYTES, &pool, args.seconds);
    let by_type = bytes_by_type(&engine);
    let weight_bytes: u64 = by_type.iter().map(|s| s.bytes).sum();
    let measured: Vec<TypeShare> = by_type
        .iter()
        .filter(|s| {
            s.bytes as f64 / weight_bytes.max(1) as f64 >= TYPE_SHARE_MIN
                && WEIGHT_TYPES.contains(&s.ty)
        })
        .copied()
        .collect();
    let device = if on_gpu {
        Some(KernelBench::open().map_err(|e| runtime(e.into()))?)
    } else {
        None
    };
    // Small tensors run at the memory bandwidth of whichever side computes.
    let fallback_gb_per_s = match &device {
        Some(d) => d
            .mem_gb_per_s(KERNEL_BYTES, args.seconds)
            .map_err(|e| runtime(e.into()))?,
        None => host_gb_per_s,
    };
    let mut rates = Vec::with_capacity(measured.len());
    for s in measured {
        let (ty, rows) = (s.ty, s.row_elems);
        let r = match &device {
            Some(d) => super::kernels::gpu_matvec_gb_per_s(d, ty, rows, KERNEL_BYTES, args.seconds),
            None => super::kernels::matvec_gb_per_s(ty, rows, KERNEL_BYTES, &pool, args.seconds),
        };
        rates.push((ty, r.map_err(runtime)?));
    }
    drop((pool, device));
    let (pcie_gb_per_s, pcie_absent) = pcie_link(on_gpu);
    bar.inc(1);

    // The grid's best cell is the highest of up to six noisy figures; the chosen setting measured
    // again just before and just after the decode brackets the drive's rate while it ran.
    let remeasure = || -> Result<Option<f64>, Failure> {
        let cell = super::disk::remeasure(&file, s, args.seconds).map_err(runtime)?;
        Ok(cell.read_gb_per_s())
    };
    let disk_before = remeasure()?;
    bar.set_message("generating");
    let device = diskstats::Device::of(&file);
    let generation = generate(&mut engine, args, device.as_ref()).map_err(|e| match e {
        e if e.is_bad_input() => bad(e.into()),
        e => runtime(e.into()),
    })?;
    let disk_after = remeasure()?;
    bar.inc(1);
    let Some(times) = engine.layer_times().cloned() else {
        return Err(runtime(anyhow!("the engine recorded no layer times")));
    };
    if times.decode.sweeps() == 0 {
        return Err(runtime(anyhow!("no decode sweep was timed")));
    }

    let side = if on_gpu { "device" } else { "CPU" };
    let type_bytes: Vec<(GgmlType, u64)> = by_type.iter().map(|s| (s.ty, s.bytes)).collect();
    let compute_s = compute_seconds(&type_bytes, &rates, fallback_gb_per_s);
    let compute_source = format!("each weight type's {side} matrix × vector rate, measured above");
    let copied_bytes = engine
        .tiers()
        .map_or(0, |t| t.ram_bytes.saturating_add(t.disk_bytes));
    let demand = Demand {
        streamed_bytes: engine.plan.streamed_bytes_per_token,
        copied_bytes,
        compute_s,
    };
    let links = Links {
        disk_gb_per_s,
        disk_setting,
        host_gb_per_s,
        pcie_gb_per_s,
        pcie_absent,
        compute_gb_per_s: weight_bytes as f64 / compute_s.max(f64::MIN_POSITIVE) / 1e9,
        compute_source,
    };
    let b = bound(
        &demand,
        &Rates {
            disk_gb_per_s: Some(links.disk_gb_per_s),
            pcie_gb_per_s: links.pcie_gb_per_s,
        },
    )
    .map_err(|e| runtime(anyhow!(e)))?;
    let achieved = generation.decode_steps as f64 / generation.decode_s.max(f64::MIN_POSITIVE);
    let tiers = row_tiers(&engine, &times);
    let rows = layer_rows(&engine, &times, &tiers);
    bar.inc(1);
    bar.finish_and_clear();

    let kernels: Vec<TypeRate> = by_type
        .iter()
        .map(|s| TypeRate {
            ty: s.ty.to_string(),
            bytes_per_token: s.bytes,
            row_elems: s.row_elems,
            matvec_gb_per_s: rates.iter().find(|(t, _)| *t == s.ty).map(|&(_, r)| r),
        })
        .collect();
    let report = Report {
        model: engine.model.path.display().to_string(),
        arch: engine.spec().arch.name().to_string(),
        backend: engine.backend_name(),
        threads,
        ram_budget: args.ram_budget,
        prompt_tokens: args.prompt_tokens as usize,
        decode_tokens: generation.decode_steps,
        demand,
        weight_bytes,
        links: &links,
        bound: b,
        achieved_tok_per_s: achieved,
        disk_before_gb_per_s: disk_before,
        disk_after_gb_per_s: disk_after,
        decode_disk: generation.disk.as_ref(),
        decode_cpu: generation.cpu,
        times: &times,
        rows: &rows,
        kernels: &kernels,
    };
    if let Some(plot) = &args.plot {
        let figure = ModelFigure {
            title: format!(
                "{} on {} — {}",
                file_name(&report.model),
                report.backend,
                budget_label(args.ram_budget)
            ),
            links: &links,
            demand: &demand,
            bound: &b,
            achieved_tok_per_s: achieved,
            spans: &times.last_decode,
            row_names: &rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        };
        super::plot::save(plot, &figure).map_err(runtime)?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        report.print();
        if let Some(plot) = &args.plot {
            println!("plot: {}", plot.display());
        }
    }
    Ok(())
}

/// What the generation measured.
struct Decoded {
    decode_steps: usize,
    decode_s: f64,
    /// What the model file's drive did while the engine decoded (from the first generated
    /// token on), when the kernel counts it.
    disk: Option<diskstats::Activity>,
    /// How the machine's CPUs spent the same window, when counted.
    cpu: Option<cpustat::Shares>,
}

/// A fixed synthetic prompt, then `--tokens` greedy tokens; end-of-generation tokens do not
/// stop it, so every run decodes the same number of tokens.
fn generate(
    engine: &mut Engine,
    args: &ModelArgs,
    device: Option<&diskstats::Device>,
) -> Result<Decoded, EngineError> {
    let n_vocab = engine.spec().n_vocab;
    let prompt: Vec<u32> = (0..args.prompt_tokens as usize)
        .map(|i| ((i * 7919 + 13) % n_vocab.max(1)) as u32)
        .collect();
    let cfg = SamplerConfig {
        temperature: 0.0,
        ..SamplerConfig::default()
    };
    let sampler = Sampler::new(cfg, n_vocab);
    let tokens_bar = progress::bar(u64::from(args.tokens), "decoding");
    // The decode window opens at the first token, as `Generation::decode` does.
    let mut decode_start = None;
    let mut cpu_start = None;
    let mut opened = false;
    let g = engine.generate(
        &prompt,
        args.tokens as usize,
        sampler,
        |_| false,
        |_| {
            if !opened {
                opened = true;
                decode_start = device.and_then(diskstats::Device::read);
                cpu_start = cpustat::Counters::read();
            }
            tokens_bar.inc(1);
            true
        },
    )?;
    let decode_end = device.and_then(diskstats::Device::read);
    let cpu_end = cpustat::Counters::read();
    tokens_bar.finish_and_clear();
    let disk = match (device, decode_start, decode_end) {
        (Some(d), Some(a), Some(b)) => d.activity(&a, &b),
        _ => None,
    };
    let cpu = cpu_start.zip(cpu_end).and_then(|(a, b)| a.shares_until(&b));
    Ok(Decoded {
        decode_steps: g.decode_steps,
        decode_s: g.decode.as_secs_f64(),
        disk,
        cpu,
    })
}

/// The model's largest file: the one the disk link is measured on.
fn largest_file(engine: &Engine) -> Result<PathBuf> {
    let files = &engine.model.index.files;
    let sized: Vec<(u64, &PathBuf)> = files
        .iter()
        .map(|f| {
            Ok((
                std::fs::metadata(f)
                    .with_context(|| f.display().to_string())?
                    .len(),
                f,
            ))
        })
        .collect::<Result<_>>()?;
    match sized.into_iter().max_by_key(|(len, _)| *len) {
        Some((_, f)) => Ok(f.clone()),
        None => bail!("{}: the model has no files", engine.model.path.display()),
    }
}

/// One weight type's bytes per token and the row length that carries most of them.
#[derive(Clone, Copy, Debug)]
struct TypeShare {
    ty: GgmlType,
    bytes: u64,
    row_elems: usize,
}

/// Weight bytes one token runs through, per type (largest first): every layer tensor and the
/// LM head.
fn bytes_by_type(engine: &Engine) -> Vec<TypeShare> {
    let ext = &engine.model.extents;
    // (type, row length) → bytes.
    let mut by_shape: Vec<(GgmlType, usize, u64)> = Vec::new();
    let mut add = |ty: GgmlType, dims: &[u64], n: u64| {
        let row_elems = dims.first().copied().unwrap_or(1) as usize;
        match by_shape
            .iter_mut()
            .find(|(t, r, _)| *t == ty && *r == row_elems)
        {
            Some((_, _, b)) => *b += n,
            None => by_shape.push((ty, row_elems, n)),
        }
    };
    for t in ext.layers.iter().flatten().flat_map(|e| &e.tensors) {
        add(t.ty, &t.dims, t.n_bytes);
    }
    if let Some(head) = GlobalMatrix::head(ext) {
        add(head.slice.ty, &head.slice.dims, head.slice.n_bytes);
    }
    let mut by: Vec<TypeShare> = Vec::new();
    for &(ty, row_elems, bytes) in &by_shape {
        match by.iter_mut().find(|s| s.ty == ty) {
            Some(s) => {
                let kept = by_shape
                    .iter()
                    .find(|(t, r, _)| *t == ty && *r == s.row_elems)
                    .map_or(0, |x| x.2);
                if bytes > kept {
                    s.row_elems = row_elems;
                }
                s.bytes += bytes;
            }
            None => by.push(TypeShare {
                ty,
                bytes,
                row_elems,
            }),
        }
    }
    by.sort_by_key(|s| std::cmp::Reverse(s.bytes));
    by
}

/// The PCIe link: page-locked host → device GB/s when a GPU computes, else why there is none.
fn pcie_link(on_gpu: bool) -> (Option<f64>, Option<String>) {
    if !on_gpu {
        let why = match crate::cuda::probe() {
            Ok(_) => "the CPU computes".to_string(),
            Err(e) => format!("no GPU ({e})"),
        };
        return (None, Some(why));
    }
    match crate::cuda::bench::pcie_link(PCIE_LINK_BYTES, PCIE_LINK_REPS) {
        Ok(f) => (Some(f.h2d_gb_per_s), None),
        Err(e) => (None, Some(format!("PCIe not measured: {e}"))),
    }
}

/// Where each row lives: the GPU's tiers, or resident/streamed on the CPU; the head last.
fn row_tiers(engine: &Engine, times: &PipelineTimes) -> Vec<&'static str> {
    let n_layer = engine.plan.resident.len();
    let mut tiers: Vec<&'static str> = (0..n_layer)
        .map(|l| match engine.tiers().map(|t| t.tiers[l]) {
            Some(Tier::Vram) => "vram",
            Some(Tier::Ram) => "ram",
            Some(Tier::Disk) => "disk",
            None if engine.plan.resident[l] => "ram",
            None => "disk",
        })
        .collect();
    if !times.decode.has_ends() {
        return tiers;
    }
    let embd = if engine.plan.embd_resident {
        "ram"
    } else {
        "disk"
    };
    let head = if engine.plan.head_resident {
        "ram"
    } else {
        "disk"
    };
    tiers.insert(0, embd);
    tiers.push(head);
    tiers
}

/// One row of the per-layer table.
#[derive(Debug, serde::Serialize)]
struct Row {
    name: String,
    tier: &'static str,
    bytes: u64,
    #[serde(flatten)]
    mean: SampleJson,
}

#[derive(Debug, serde::Serialize)]
struct SampleJson {
    read_ms: f64,
    copy_ms: f64,
    compute_ms: f64,
    device_wait_ms: f64,
    stall_ms: f64,
}

impl From<LayerSample> for SampleJson {
    fn from(s: LayerSample) -> SampleJson {
        SampleJson {
            read_ms: s.read_ms,
            copy_ms: s.copy_ms,
            compute_ms: s.compute_ms,
            device_wait_ms: s.device_wait_ms,
            stall_ms: s.stall_ms,
        }
    }
}

fn layer_rows(engine: &Engine, times: &PipelineTimes, tiers: &[&'static str]) -> Vec<Row> {
    let ext = &engine.model.extents;
    let head_bytes = GlobalMatrix::head(ext).map_or(0, |h| h.slice.n_bytes);
    // One embedding row per token.
    let embd_bytes = GlobalMatrix::find(ext, TensorRole::TokenEmbd).map_or(0, |m| {
        m.slice.n_bytes / m.slice.dims.get(1).copied().unwrap_or(1).max(1)
    });
    let t = &times.decode;
    (0..t.n_layer())
        .map(|r| Row {
            name: t.row_name(r),
            tier: tiers.get(r).copied().unwrap_or("?"),
            bytes: match t.layer_of(r) {
                Some(l) => ext.layer_bytes(l),
                None if r == 0 => embd_bytes,
                None => head_bytes,
            },
            mean: t.mean(r).into(),
        })
        .collect()
}

/// Everything the table, the JSON and the plot say.
struct Report<'a> {
    model: String,
    arch: String,
    backend: String,
    threads: usize,
    ram_budget: Option<u64>,
    prompt_tokens: usize,
    decode_tokens: usize,
    demand: Demand,
    weight_bytes: u64,
    links: &'a Links,
    bound: Bound,
    achieved_tok_per_s: f64,
    /// The disk link's setting measured again right before the decode.
    disk_before_gb_per_s: Option<f64>,
    /// The disk link's setting measured again right after the decode.
    disk_after_gb_per_s: Option<f64>,
    /// The model file's drive while decoding: busy share and read rate.
    decode_disk: Option<&'a diskstats::Activity>,
    /// The machine's CPUs while decoding: busy, idle and stolen shares.
    decode_cpu: Option<cpustat::Shares>,
    times: &'a PipelineTimes,
    rows: &'a [Row],
    kernels: &'a [TypeRate],
}

impl Report<'_> {
    /// The drive's read rate while decoding over the mean of the setting's rate just before
    /// and just after: the same-time comparison, free of the grid's pick of its best cell.
    fn decode_over_disk_around(&self) -> Option<f64> {
        let around = (self.disk_before_gb_per_s? + self.disk_after_gb_per_s?) / 2.0;
        let decode = self.decode_disk?.read_gb_per_s;
        (around > 0.0).then(|| decode / around)
    }

    fn to_json(&self) -> Value {
        let l = self.links;
        let b = &self.bound;
        let measured = self.times.decode.mean_sweep();
        let span = |s: (f64, f64)| json!([s.0, s.1]);
        let timeline: Vec<Value> = self
            .times
            .last_decode
            .iter()
            .zip(self.rows)
            .map(|(s, r): (&RowSpans, &Row)| {
                json!({
                    "layer": r.name,
                    "read_ms": s.read_ms.map(span),
                    "stall_ms": span(s.stall_ms),
                    "compute_ms": span(s.compute_ms),
                })
            })
            .collect();
        json!({
            "model": self.model,
            "arch": self.arch,
            "backend": self.backend,
            "threads": self.threads,
            "ram_budget": self.ram_budget,
            "prompt_tokens": self.prompt_tokens,
            "decode_tokens": self.decode_tokens,
            "bottleneck": b.bottleneck,
            "predicted_tok_per_s": b.predicted_tok_per_s,
            "achieved_tok_per_s": self.achieved_tok_per_s,
            "achieved_over_predicted": self.achieved_tok_per_s / b.predicted_tok_per_s,
            "decode_disk": self.decode_disk,
            "decode_cpu": self.decode_cpu,
            "disk_before_gb_per_s": self.disk_before_gb_per_s,
            "disk_after_gb_per_s": self.disk_after_gb_per_s,
            "decode_over_disk_around": self.decode_over_disk_around(),
            "links": {
                "disk_gb_per_s": l.disk_gb_per_s,
                "host_gb_per_s": l.host_gb_per_s,
                "pcie_gb_per_s": l.pcie_gb_per_s,
                "compute_gb_per_s": l.compute_gb_per_s,
            },
            "link_notes": {
                "disk": l.disk_setting,
                "pcie": l.pcie_absent,
                "compute": l.compute_source,
            },
            "per_token": {
                "streamed_bytes": self.demand.streamed_bytes,
                "copied_bytes": self.demand.copied_bytes,
                "weight_bytes": self.weight_bytes,
                "disk_s": b.disk_s,
                "pcie_s": b.pcie_s,
                "compute_s": b.compute_s,
                "bound_s": b.bound_s,
            },
            "measured_per_token": {
                "sweeps": self.times.decode.sweeps(),
                "read_ms": measured.read_ms,
                "copy_ms": measured.copy_ms,
                "compute_ms": measured.compute_ms,
                "device_wait_ms": measured.device_wait_ms,
                "stall_ms": measured.stall_ms,
                "wall_ms": 1e3 / self.achieved_tok_per_s.max(f64::MIN_POSITIVE),
            },
            "kernels": self.kernels,
            "layers": self.rows,
            "timeline": timeline,
        })
    }

    fn print(&self) {
        let l = self.links;
        let b = &self.bound;
        println!(
            "{} ({}), {}, {} threads, {}",
            self.model,
            self.arch,
            self.backend,
            self.threads,
            budget_label(self.ram_budget)
        );
        println!("links, measured in this run:");
        println!(
            "  disk    {:>8.2} GB/s  {}",
            l.disk_gb_per_s, l.disk_setting
        );
        println!(
            "  host    {:>8.2} GB/s  memory read bandwidth",
            l.host_gb_per_s
        );
        match (l.pcie_gb_per_s, &l.pcie_absent) {
            (Some(r), _) => println!("  pcie    {r:>8.2} GB/s  page-locked host → device"),
            (None, why) => println!("  pcie           -       {}", why.as_deref().unwrap_or("")),
        }
        println!(
            "  compute {:>8.2} GB/s  {}",
            l.compute_gb_per_s, l.compute_source
        );
        for k in self.kernels {
            match k.matvec_gb_per_s {
                Some(r) => println!(
                    "          {:<6} {:>8.1} MB/token at {r:.2} GB/s (rows of {})",
                    k.ty,
                    k.bytes_per_token as f64 / 1e6,
                    k.row_elems
                ),
                None => println!(
                    "          {:<6} {:>8.1} MB/token at memory bandwidth",
                    k.ty,
                    k.bytes_per_token as f64 / 1e6
                ),
            }
        }
        println!("per token:       bytes        time");
        let line = |name: &str, link: Link, bytes: u64, s: f64| {
            let mark = if b.bottleneck == link {
                "  <- bottleneck"
            } else {
                ""
            };
            println!(
                "  {name:<8} {:>9.1} MB {:>9.3} ms{mark}",
                bytes as f64 / 1e6,
                s * 1e3
            );
        };
        line("disk", Link::Disk, self.demand.streamed_bytes, b.disk_s);
        line("pcie", Link::Pcie, self.demand.copied_bytes, b.pcie_s);
        line("compute", Link::Compute, self.weight_bytes, b.compute_s);
        println!(
            "predicted {:.2} tok/s ({}-bound); achieved {:.2} tok/s over {} decode steps ({:.0}% of the bound)",
            b.predicted_tok_per_s,
            b.bottleneck,
            self.achieved_tok_per_s,
            self.decode_tokens,
            100.0 * self.achieved_tok_per_s / b.predicted_tok_per_s
        );
        if let (Some(before), Some(after)) = (self.disk_before_gb_per_s, self.disk_after_gb_per_s) {
            println!(
                "disk link again, same setting: {before:.2} GB/s just before the decode, {after:.2} GB/s just after"
            );
        }
        if let Some(r) = self.decode_over_disk_around() {
            println!("the decode read at {r:.2}x the mean of those two");
        }
        match self.decode_disk {
            Some(d) => println!(
                "disk while decoding: {} busy {:.1}% of the time, reading {:.2} GB/s (all readers)",
                d.device,
                100.0 * d.busy,
                d.read_gb_per_s
            ),
            None => println!(
                "disk while decoding: not counted (the file's device has no /proc/diskstats line)"
            ),
        }
        if let Some(c) = self.decode_cpu {
            println!(
                "CPUs while decoding (all processes): busy {:.1}%, idle {:.1}%, stolen by the hypervisor {:.1}%",
                100.0 * c.busy,
                100.0 * c.idle,
                100.0 * c.stolen
            );
        }
        println!(
            "per-layer decode times, mean of {} sweeps (read: queued to done, overlapping compute):",
            self.times.decode.sweeps()
        );
        println!(
            "{:>5} {:>5} {:>9} {:>9} {:>9} {:>10} {:>9}",
            "layer", "tier", "MB", "read ms", "copy ms", "compute ms", "stall ms"
        );
        for r in self.rows {
            println!(
                "{:>5} {:>5} {:>9.2} {:>9.3} {:>9.3} {:>10.3} {:>9.3}",
                r.name,
                r.tier,
                r.bytes as f64 / 1e6,
                r.mean.read_ms,
                r.mean.copy_ms,
                r.mean.compute_ms,
                r.mean.stall_ms
            );
        }
        let m = self.times.decode.mean_sweep();
        println!(
            "{:>5} {:>5} {:>9.2} {:>9.3} {:>9.3} {:>10.3} {:>9.3}",
            "all",
            "",
            self.rows.iter().map(|r| r.bytes).sum::<u64>() as f64 / 1e6,
            m.read_ms,
            m.copy_ms,
            m.compute_ms,
            m.stall_ms
        );
    }
}

/// `--ram-budget` as the user wrote it, for titles.
fn budget_label(ram_budget: Option<u64>) -> String {
    match ram_budget {
        None => "default RAM budget".into(),
        Some(0) => "--ram-budget 0 (everything streams)".into(),
        Some(b) => format!("--ram-budget {:.0} MB", b as f64 / 1e6),
    }
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

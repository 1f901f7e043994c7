//! `sluice inspect PATH [--json] [--disk-gb-per-s X]`: what a model is and what streaming it
//! costs, from its headers alone.
//!
//! The predicted cost per token is the bytes of every layer extent and of the LM head (what
//! `--ram-budget 0` reads per token; embedding rows are read on demand and left out) divided by
//! the disk rate; without `--disk-gb-per-s` the rate is an assumed 3 GB/s
//! NVMe, and the output says so. `--json` prints one object whose field names are stable:
//! `path, format, arch, open_ms, hparams{…}, types[{type, count, bytes}], tensor_count,
//! tensor_bytes, alignment_bytes, layers[{layer, extents, bytes, payload_bytes, contiguous}],
//! globals[{name, type, dims, bytes}], unknown_tensors, streaming{bytes_per_token, head_bytes,
//! extents_per_token, extent_bytes_max, disk_gb_per_s, disk_rate_assumed, seconds_per_token,
//! tokens_per_s_max}`.

mod text;

use crate::engine::store::GlobalMatrix;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use sluice_loader::cache::resolve;
use sluice_loader::extents::LayerExtents;
use sluice_loader::model::{Model, ModelFiles};
use sluice_loader::spec::ModelSpec;

use super::EXIT_BAD_INPUT;

/// Disk rate assumed when `--disk-gb-per-s` is not given (a mid-range NVMe drive).
pub const DISK_GB_PER_S_DEFAULT: f64 = 3.0;

/// Arguments of `sluice inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// A GGUF file, an HF directory or .safetensors file with config.json, or a model alias.
    pub path: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Sequential read rate of the disk in GB/s, for the streaming prediction (default: an
    /// assumed 3.0).
    #[arg(long, value_name = "X")]
    pub disk_gb_per_s: Option<f64>,
}

/// Runs `sluice inspect` and returns the exit status.
pub fn run(args: &InspectArgs) -> i32 {
    match report(args) {
        Ok(r) => {
            if args.json {
                match serde_json::to_string_pretty(&r) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("sluice inspect: cannot encode the report as JSON: {e}.");
                        return super::EXIT_RUNTIME;
                    }
                }
            } else {
                print!("{}", text::render(&r));
            }
            0
        }
        Err(msg) => {
            eprintln!("sluice inspect: {msg}");
            EXIT_BAD_INPUT
        }
    }
}

/// Opens the model and gathers the report; errors are one sentence.
fn report(args: &InspectArgs) -> Result<Report, String> {
    let rate = args.disk_gb_per_s.unwrap_or(DISK_GB_PER_S_DEFAULT);
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!(
            "--disk-gb-per-s must be a positive number of GB/s, not {rate}"
        ));
    }
    let path = resolve(&args.path).into_path()?;
    let t0 = Instant::now();
    let m = Model::open(&path).map_err(|e| e.to_string())?;
    let open_ms = t0.elapsed().as_secs_f64() * 1e3;
    Ok(Report::new(
        &path,
        &m,
        open_ms,
        rate,
        args.disk_gb_per_s.is_none(),
    ))
}

/// Everything `inspect` prints; the JSON field names are a contract.
#[derive(Serialize, Debug)]
struct Report {
    path: String,
    format: &'static str,
    arch: &'static str,
    open_ms: f64,
    hparams: Hparams,
    types: Vec<TypeCount>,
    tensor_count: usize,
    tensor_bytes: u64,
    alignment_bytes: u64,
    layers: Vec<LayerRow>,
    globals: Vec<GlobalRow>,
    unknown_tensors: Vec<String>,
    streaming: Streaming,
}

/// The spec, flattened for printing.
#[derive(Serialize, Debug)]
struct Hparams {
    n_layer: usize,
    n_embd: usize,
    n_ff: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    n_rot: usize,
    n_vocab: usize,
    context_length: usize,
    rope_freq_base: f32,
    rope_style: &'static str,
    rope_scaling: Option<RopeScalingRow>,
    rms_eps: f32,
    tied_output: bool,
    qkv_bias: bool,
    has_rope_freqs: bool,
}

/// RoPE scaling, when present.
#[derive(Serialize, Debug)]
struct RopeScalingRow {
    kind: &'static str,
    factor: f32,
    original_context_length: Option<usize>,
}

/// One line of the tensor-type histogram.
#[derive(Serialize, Debug)]
struct TypeCount {
    #[serde(rename = "type")]
    ty: &'static str,
    count: usize,
    bytes: u64,
}

/// One layer's extents.
#[derive(Serialize, Debug)]
struct LayerRow {
    layer: usize,
    extents: usize,
    bytes: u64,
    payload_bytes: u64,
    contiguous: bool,
}

/// One global tensor.
#[derive(Serialize, Debug)]
struct GlobalRow {
    name: String,
    #[serde(rename = "type")]
    ty: &'static str,
    dims: Vec<u64>,
    bytes: u64,
}

/// The predicted streaming cost per token with every layer and the head streamed.
#[derive(Serialize, Debug)]
struct Streaming {
    bytes_per_token: u64,
    /// The LM head's share of `bytes_per_token` (the embeddings when they are tied).
    head_bytes: u64,
    extents_per_token: usize,
    extent_bytes_max: u64,
    disk_gb_per_s: f64,
    disk_rate_assumed: bool,
    seconds_per_token: f64,
    tokens_per_s_max: f64,
}

impl Report {
    fn new(path: &Path, m: &ModelFiles, open_ms: f64, rate: f64, assumed: bool) -> Report {
        let mut types: BTreeMap<_, (usize, u64)> = BTreeMap::new();
        for t in &m.index.tensors {
            let e = types.entry(t.ty).or_default();
            e.0 += 1;
            e.1 += t.n_bytes;
        }
        let mut types: Vec<TypeCount> = types
            .into_iter()
            .map(|(ty, (count, bytes))| TypeCount {
                ty: ty.name(),
                count,
                bytes,
            })
            .collect();
        types.sort_by_key(|t| std::cmp::Reverse(t.bytes));
        let x = &m.extents;
        Report {
            path: path.display().to_string(),
            format: m.format.name(),
            arch: m.spec.arch.name(),
            open_ms,
            hparams: hparams(&m.spec),
            types,
            tensor_count: m.index.tensors.len(),
            tensor_bytes: m.index.total_bytes(),
            alignment_bytes: x.alignment_bytes,
            layers: layer_rows(x),
            globals: x
                .globals
                .iter()
                .flat_map(|e| &e.tensors)
                .map(|s| GlobalRow {
                    name: s.name.clone(),
                    ty: s.ty.name(),
                    dims: s.dims.clone(),
                    bytes: s.n_bytes,
                })
                .collect(),
            unknown_tensors: x.unknown.clone(),
            streaming: streaming(x, rate, assumed),
        }
    }
}

fn hparams(s: &ModelSpec) -> Hparams {
    Hparams {
        n_layer: s.n_layer,
        n_embd: s.n_embd,
        n_ff: s.n_ff,
        n_head: s.n_head,
        n_head_kv: s.n_head_kv,
        head_dim: s.head_dim,
        n_rot: s.n_rot,
        n_vocab: s.n_vocab,
        context_length: s.context_length,
        rope_freq_base: s.rope_freq_base,
        rope_style: s.rope_style.name(),
        rope_scaling: s.rope_scaling.map(|r| RopeScalingRow {
            kind: r.kind.name(),
            factor: r.factor,
            original_context_length: r.original_context_length,
        }),
        rms_eps: s.rms_eps,
        tied_output: s.tied_output,
        qkv_bias: s.qkv_bias,
        has_rope_freqs: s.has_rope_freqs,
    }
}

fn layer_rows(x: &LayerExtents) -> Vec<LayerRow> {
    (0..x.layers.len())
        .map(|l| LayerRow {
            layer: l,
            extents: x.layers[l].len(),
            bytes: x.layer_bytes(l),
            payload_bytes: x.layer_payload_bytes(l),
            contiguous: x.is_contiguous(l),
        })
        .collect()
}

fn streaming(x: &LayerExtents, rate: f64, assumed: bool) -> Streaming {
    let head_bytes = GlobalMatrix::head(x).map_or(0, |h| h.extent.len);
    let bytes = x.streamed_bytes_per_token() + head_bytes;
    let seconds = bytes as f64 / (rate * 1e9);
    Streaming {
        bytes_per_token: bytes,
        head_bytes,
        extents_per_token: x.layers.iter().map(Vec::len).sum::<usize>()
            + usize::from(head_bytes > 0),
        extent_bytes_max: x.extent_bytes_max(),
        disk_gb_per_s: rate,
        disk_rate_assumed: assumed,
        seconds_per_token: seconds,
        tokens_per_s_max: if seconds > 0.0 {
            1.0 / seconds
        } else {
            f64::INFINITY
        },
    }
}

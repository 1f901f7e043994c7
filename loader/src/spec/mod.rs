//! [`ModelSpec`]: every hyper-parameter the llama/qwen2 forward pass needs, from GGUF metadata
//! or an HF `config.json`, checked against the tensors actually present.
//!
//! Both sources go through the same path: a reader fills `RawSpec` with what the source
//! declares, then `derive` applies llama.cpp's defaults and derivations (gguf-facts.md §4.1)
//! and `check` validates every tensor's shape. Ground truths come from the tensors where the
//! metadata can be missing or wrong: `n_vocab` is `token_embd` ne\[1\], the output is tied
//! exactly when no output tensor exists, and q/k/v biases exist exactly when their tensors do.

mod check;
mod derive;
mod error;
mod gguf;
mod hf;
mod raw;

use std::fmt;

pub use error::{SpecError, SpecErrorKind};

/// A model architecture sluice can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `llama`: SmolLM2, Llama 2/3, Mistral.
    Llama,
    /// `qwen2`: Qwen2, Qwen2.5 (q/k/v biases, half-split RoPE).
    Qwen2,
}

impl Arch {
    /// GGUF architecture names sluice supports, for error messages.
    pub const SUPPORTED: &'static str = "llama, qwen2";

    /// The GGUF `general.architecture` name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }

    /// Parses a GGUF `general.architecture` value.
    pub fn from_gguf_name(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the weights come from: it decides tensor names and the RoPE pairing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    /// A llama.cpp GGUF file.
    Gguf,
    /// HF safetensors (one file or a sharded directory) with `config.json`.
    Safetensors,
}

impl SourceFormat {
    /// Short lower-case name (`gguf`, `safetensors`).
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Gguf => "gguf",
            SourceFormat::Safetensors => "safetensors",
        }
    }
}

/// Which elements of a head RoPE rotates together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopeStyle {
    /// Adjacent pairs `(x[2i], x[2i+1])` (llama.cpp NORM).
    Norm,
    /// Half split `(x[i], x[i + n_rot/2])` (llama.cpp NEOX, HF `rotate_half`).
    Neox,
}

impl RopeStyle {
    /// The pairing for an architecture read from a format (gguf-facts.md §4.4): llama GGUF
    /// files hold Q/K rows permuted for adjacent pairs; HF llama and every qwen2 use half split.
    pub fn for_model(arch: Arch, source: SourceFormat) -> RopeStyle {
        match (arch, source) {
            (Arch::Llama, SourceFormat::Gguf) => RopeStyle::Norm,
            (Arch::Llama, SourceFormat::Safetensors) | (Arch::Qwen2, _) => RopeStyle::Neox,
        }
    }

    /// Short lower-case name (`norm`, `neox`).
    pub fn name(self) -> &'static str {
        match self {
            RopeStyle::Norm => "norm",
            RopeStyle::Neox => "neox",
        }
    }
}

/// The kind of RoPE context extension a model was trained with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopeScalingKind {
    /// Positions divided by `factor`.
    Linear,
    /// YaRN (qwen2 long-context configs).
    Yarn,
    /// Llama-3.1 per-frequency scaling (in GGUF files baked into `rope_freqs.weight`).
    Llama3,
}

impl RopeScalingKind {
    /// The name as GGUF and HF configs spell it.
    pub fn name(self) -> &'static str {
        match self {
            RopeScalingKind::Linear => "linear",
            RopeScalingKind::Yarn => "yarn",
            RopeScalingKind::Llama3 => "llama3",
        }
    }
}

/// RoPE scaling parameters, when the model declares any.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeScaling {
    /// Which scheme.
    pub kind: RopeScalingKind,
    /// The scaling factor (> 0).
    pub factor: f32,
    /// The context length the model was pre-trained with, when given.
    pub original_context_length: Option<usize>,
    /// Llama-3 low-frequency factor (HF configs only).
    pub low_freq_factor: Option<f32>,
    /// Llama-3 high-frequency factor (HF configs only).
    pub high_freq_factor: Option<f32>,
}

/// Everything the forward pass needs to know about a model's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Architecture.
    pub arch: Arch,
    /// Source format (decides tensor names and RoPE pairing).
    pub source: SourceFormat,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// FFN inner size.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (divides `n_head`).
    pub n_head_kv: usize,
    /// Elements per head (for keys and values alike).
    pub head_dim: usize,
    /// Elements of each head that RoPE rotates (even, ≤ `head_dim`).
    pub n_rot: usize,
    /// RoPE base frequency θ.
    pub rope_freq_base: f32,
    /// RoPE context extension, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// RoPE pairing for this architecture and source format.
    pub rope_style: RopeStyle,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Vocabulary size (rows of the token embedding).
    pub n_vocab: usize,
    /// Training context length.
    pub context_length: usize,
    /// The LM head is the token embedding (no separate output tensor).
    pub tied_output: bool,
    /// Q, K and V projections carry biases.
    pub qkv_bias: bool,
    /// Whether a `rope_freqs.weight` tensor divides the RoPE frequencies.
    pub has_rope_freqs: bool,
}

impl ModelSpec {
    /// Query heads that share one key/value head.
    pub fn gqa_group(&self) -> usize {
        self.n_head / self.n_head_kv
    }

    /// Width of the concatenated query heads (`n_head · head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of the concatenated key (or value) heads (`n_head_kv · head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

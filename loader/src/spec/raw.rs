//! What a source declares, before defaults and derivations: filled by the GGUF and HF readers.

use std::path::PathBuf;

use super::{Arch, RopeScaling, SourceFormat};

/// A hyper-parameter, for naming its key in either source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    NLayer,
    NEmbd,
    NFf,
    NHead,
    NHeadKv,
    HeadDim,
    ValueDim,
    NRot,
    RopeBase,
    RmsEps,
    Vocab,
    Ctx,
}

impl Field {
    /// The key as the source spells it (`llama.block_count`, `num_hidden_layers`).
    pub(super) fn key(self, arch: Arch, source: SourceFormat) -> String {
        let (gguf, hf) = match self {
            Field::NLayer => ("block_count", "num_hidden_layers"),
            Field::NEmbd => ("embedding_length", "hidden_size"),
            Field::NFf => ("feed_forward_length", "intermediate_size"),
            Field::NHead => ("attention.head_count", "num_attention_heads"),
            Field::NHeadKv => ("attention.head_count_kv", "num_key_value_heads"),
            Field::HeadDim => ("attention.key_length", "head_dim"),
            Field::ValueDim => ("attention.value_length", "head_dim"),
            Field::NRot => ("rope.dimension_count", "head_dim"),
            Field::RopeBase => ("rope.freq_base", "rope_theta"),
            Field::RmsEps => ("attention.layer_norm_rms_epsilon", "rms_norm_eps"),
            Field::Vocab => ("vocab_size", "vocab_size"),
            Field::Ctx => ("context_length", "max_position_embeddings"),
        };
        match source {
            SourceFormat::Gguf => format!("{}.{gguf}", arch.name()),
            SourceFormat::Safetensors => hf.to_string(),
        }
    }
}

/// The declared values; `None` where the source has no such key.
#[derive(Clone, Debug)]
pub(super) struct RawSpec {
    pub arch: Arch,
    pub source: SourceFormat,
    /// The file the keys were read from (GGUF file or `config.json`).
    pub keys_path: PathBuf,
    pub n_layer: Option<u64>,
    pub n_embd: Option<u64>,
    pub n_ff: Option<u64>,
    pub n_head: Option<u64>,
    pub n_head_kv: Option<u64>,
    pub head_dim: Option<u64>,
    pub value_dim: Option<u64>,
    pub n_rot: Option<u64>,
    pub rope_freq_base: Option<f64>,
    pub rope_scaling: Option<RopeScaling>,
    pub rms_eps: Option<f64>,
    pub n_vocab: Option<u64>,
    pub context_length: Option<u64>,
    /// HF `tie_word_embeddings`; GGUF has no such key.
    pub tied_declared: Option<bool>,
    /// HF `attention_bias`; GGUF has no such key.
    pub bias_declared: Option<bool>,
}

impl RawSpec {
    /// An empty declaration for `arch` read from `source`.
    pub(super) fn new(arch: Arch, source: SourceFormat, keys_path: PathBuf) -> RawSpec {
        RawSpec {
            arch,
            source,
            keys_path,
            n_layer: None,
            n_embd: None,
            n_ff: None,
            n_head: None,
            n_head_kv: None,
            head_dim: None,
            value_dim: None,
            n_rot: None,
            rope_freq_base: None,
            rope_scaling: None,
            rms_eps: None,
            n_vocab: None,
            context_length: None,
            tied_declared: None,
            bias_declared: None,
        }
    }

    /// The key for `field` in this source.
    pub(super) fn key(&self, field: Field) -> String {
        field.key(self.arch, self.source)
    }
}

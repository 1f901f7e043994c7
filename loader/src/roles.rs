//! What each tensor is for: GGUF and HF names mapped to a layer and a [`TensorRole`].
//!
//! Both naming conventions map onto the same roles, so everything downstream (spec checks,
//! extents, the model graph) looks tensors up by `(layer, role)` and never by name. Names that
//! match neither convention are kept aside in [`RoleIndex::unknown`] so `sluice inspect` can
//! list them; they are never silently dropped.

use std::collections::BTreeMap;
use std::fmt;

use crate::tensor::TensorIndex;

/// The job a tensor does in the llama/qwen2 forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorRole {
    /// Token embedding table `[n_embd, n_vocab]`.
    TokenEmbd,
    /// Final RMSNorm weight `[n_embd]`.
    OutputNorm,
    /// LM head `[n_embd, n_vocab]` (absent when tied to the embeddings).
    Output,
    /// Per-frequency RoPE divisors `[n_rot/2]` (Llama-3.1 style scaling).
    RopeFreqs,
    /// Pre-attention RMSNorm weight.
    AttnNorm,
    /// Query projection.
    Q,
    /// Key projection.
    K,
    /// Value projection.
    V,
    /// Query bias.
    QBias,
    /// Key bias.
    KBias,
    /// Value bias.
    VBias,
    /// Attention output projection.
    O,
    /// Attention output bias.
    OBias,
    /// Pre-FFN RMSNorm weight.
    FfnNorm,
    /// FFN gate projection (SiLU branch).
    Gate,
    /// FFN up projection.
    Up,
    /// FFN down projection.
    Down,
}

/// `(GGUF suffix after "blk.N.", HF suffix after "model.layers.N.", role)` for per-layer tensors.
const LAYER_NAMES: [(&str, &str, TensorRole); 13] = [
    (
        "attn_norm.weight",
        "input_layernorm.weight",
        TensorRole::AttnNorm,
    ),
    ("attn_q.weight", "self_attn.q_proj.weight", TensorRole::Q),
    ("attn_k.weight", "self_attn.k_proj.weight", TensorRole::K),
    ("attn_v.weight", "self_attn.v_proj.weight", TensorRole::V),
    ("attn_q.bias", "self_attn.q_proj.bias", TensorRole::QBias),
    ("attn_k.bias", "self_attn.k_proj.bias", TensorRole::KBias),
    ("attn_v.bias", "self_attn.v_proj.bias", TensorRole::VBias),
    (
        "attn_output.weight",
        "self_attn.o_proj.weight",
        TensorRole::O,
    ),
    (
        "attn_output.bias",
        "self_attn.o_proj.bias",
        TensorRole::OBias,
    ),
    (
        "ffn_norm.weight",
        "post_attention_layernorm.weight",
        TensorRole::FfnNorm,
    ),
    ("ffn_gate.weight", "mlp.gate_proj.weight", TensorRole::Gate),
    ("ffn_up.weight", "mlp.up_proj.weight", TensorRole::Up),
    ("ffn_down.weight", "mlp.down_proj.weight", TensorRole::Down),
];

/// `(GGUF name, HF name, role)` for tensors outside the layers.
const GLOBAL_NAMES: [(&str, &str, TensorRole); 4] = [
    (
        "token_embd.weight",
        "model.embed_tokens.weight",
        TensorRole::TokenEmbd,
    ),
    (
        "output_norm.weight",
        "model.norm.weight",
        TensorRole::OutputNorm,
    ),
    ("output.weight", "lm_head.weight", TensorRole::Output),
    (
        "rope_freqs.weight",
        "model.rope_freqs.weight",
        TensorRole::RopeFreqs,
    ),
];

impl TensorRole {
    /// Whether the role belongs to a layer (as opposed to the model's global tensors).
    pub fn is_layer_role(self) -> bool {
        !matches!(
            self,
            TensorRole::TokenEmbd
                | TensorRole::OutputNorm
                | TensorRole::Output
                | TensorRole::RopeFreqs
        )
    }

    /// The role's GGUF name suffix (`attn_q.weight`) or full global name (`token_embd.weight`).
    pub fn gguf_name(self) -> &'static str {
        self.names().0
    }

    /// The role's HF name suffix (`self_attn.q_proj.weight`) or full global name (`lm_head.weight`).
    pub fn hf_name(self) -> &'static str {
        self.names().1
    }

    /// The tensor's full name in one convention: `blk.3.attn_q.weight` or
    /// `model.layers.3.self_attn.q_proj.weight` (`layer` is ignored for global roles).
    pub fn full_name(self, layer: usize, gguf: bool) -> String {
        match (self.is_layer_role(), gguf) {
            (true, true) => format!("blk.{layer}.{}", self.gguf_name()),
            (true, false) => format!("model.layers.{layer}.{}", self.hf_name()),
            (false, true) => self.gguf_name().to_string(),
            (false, false) => self.hf_name().to_string(),
        }
    }

    fn names(self) -> (&'static str, &'static str) {
        let mut all = LAYER_NAMES.iter().chain(GLOBAL_NAMES.iter());
        all.find(|(_, _, r)| *r == self)
            .map_or(("?", "?"), |(g, h, _)| (*g, *h))
    }
}

impl fmt::Display for TensorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.gguf_name())
    }
}

/// Splits `blk.N.rest` or `model.layers.N.rest` into `(N, rest, is_gguf)`.
fn split_layer(name: &str) -> Option<(usize, &str, bool)> {
    let (tail, is_gguf) = if let Some(t) = name.strip_prefix("blk.") {
        (t, true)
    } else {
        (name.strip_prefix("model.layers.")?, false)
    };
    let (num, rest) = tail.split_once('.')?;
    if num.is_empty()
        || !num.bytes().all(|b| b.is_ascii_digit())
        || (num.len() > 1 && num.starts_with('0'))
    {
        return None;
    }
    Some((num.parse().ok()?, rest, is_gguf))
}

/// Maps a tensor name of either convention to `(layer, role)`; `None` for names sluice does not use.
pub fn classify(name: &str) -> Option<(Option<usize>, TensorRole)> {
    if let Some((layer, rest, is_gguf)) = split_layer(name) {
        let role = LAYER_NAMES
            .iter()
            .find(|(g, h, _)| rest == if is_gguf { *g } else { *h })
            .map(|(_, _, r)| *r)?;
        return Some((Some(layer), role));
    }
    GLOBAL_NAMES
        .iter()
        .find(|(g, h, _)| name == *g || name == *h)
        .map(|(_, _, r)| (None, *r))
}

/// The layer number a tensor name carries, even when its role is unknown.
pub fn layer_of(name: &str) -> Option<usize> {
    split_layer(name).map(|(layer, _, _)| layer)
}

/// Two tensors claim the same `(layer, role)` (for example a file mixing both conventions).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("tensors '{first}' and '{second}' both hold {role}{}", layer.map(|l| format!(" of layer {l}")).unwrap_or_default())]
pub struct DuplicateRole {
    /// The layer, `None` for a global tensor.
    pub layer: Option<usize>,
    /// The role both claim.
    pub role: TensorRole,
    /// The first tensor's name.
    pub first: String,
    /// The second tensor's name.
    pub second: String,
}

/// Every tensor of a [`TensorIndex`] by `(layer, role)`, plus the names that matched nothing.
#[derive(Clone, Debug, Default)]
pub struct RoleIndex {
    by_role: BTreeMap<(Option<usize>, TensorRole), usize>,
    /// Positions in `TensorIndex::tensors` of tensors whose names are not known.
    pub unknown: Vec<usize>,
}

impl RoleIndex {
    /// Classifies every tensor; fails when two tensors claim the same role.
    pub fn build(index: &TensorIndex) -> Result<RoleIndex, DuplicateRole> {
        let mut out = RoleIndex::default();
        for (i, t) in index.tensors.iter().enumerate() {
            let Some(key) = classify(&t.name) else {
                out.unknown.push(i);
                continue;
            };
            if let Some(&first) = out.by_role.get(&key) {
                return Err(DuplicateRole {
                    layer: key.0,
                    role: key.1,
                    first: index.tensors[first].name.clone(),
                    second: t.name.clone(),
                });
            }
            out.by_role.insert(key, i);
        }
        Ok(out)
    }

    /// Position in `TensorIndex::tensors` of the tensor with this role.
    pub fn get(&self, layer: Option<usize>, role: TensorRole) -> Option<usize> {
        self.by_role.get(&(layer, role)).copied()
    }

    /// One past the highest layer number seen among known tensors (0 when there are none).
    pub fn n_layer_seen(&self) -> usize {
        self.by_role
            .keys()
            .filter_map(|(l, _)| *l)
            .max()
            .map_or(0, |l| l + 1)
    }

    /// Every classified tensor as `((layer, role), position)`, layers in numeric order.
    pub fn iter(&self) -> impl Iterator<Item = ((Option<usize>, TensorRole), usize)> + '_ {
        self.by_role.iter().map(|(k, v)| (*k, *v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_conventions() {
        assert_eq!(
            classify("blk.7.attn_q.weight"),
            Some((Some(7), TensorRole::Q))
        );
        assert_eq!(
            classify("model.layers.7.self_attn.q_proj.weight"),
            Some((Some(7), TensorRole::Q))
        );
        assert_eq!(
            classify("model.layers.12.self_attn.k_proj.bias"),
            Some((Some(12), TensorRole::KBias))
        );
        assert_eq!(
            classify("blk.0.ffn_down.weight"),
            Some((Some(0), TensorRole::Down))
        );
        assert_eq!(
            classify("model.layers.3.post_attention_layernorm.weight"),
            Some((Some(3), TensorRole::FfnNorm))
        );
        assert_eq!(
            classify("token_embd.weight"),
            Some((None, TensorRole::TokenEmbd))
        );
        assert_eq!(
            classify("model.embed_tokens.weight"),
            Some((None, TensorRole::TokenEmbd))
        );
        assert_eq!(classify("lm_head.weight"), Some((None, TensorRole::Output)));
        assert_eq!(
            classify("model.norm.weight"),
            Some((None, TensorRole::OutputNorm))
        );
        assert_eq!(
            classify("rope_freqs.weight"),
            Some((None, TensorRole::RopeFreqs))
        );
    }

    #[test]
    fn unknown_names() {
        for n in [
            "blk.x.attn_q.weight",
            "blk.01.attn_q.weight",
            "blk..attn_q.weight",
            "blk.3.ffn_gate_inp.weight",
            "model.layers.3.self_attn.rotary_emb.inv_freq",
            "blk.3.attn_q.weight.extra",
            "model.layers.3.attn_q.weight",
            "output",
        ] {
            assert_eq!(classify(n), None, "{n}");
        }
        assert_eq!(
            layer_of("model.layers.3.self_attn.rotary_emb.inv_freq"),
            Some(3)
        );
    }

    #[test]
    fn role_names_round_trip() {
        for (g, _, r) in LAYER_NAMES {
            assert_eq!(r.gguf_name(), g);
        }
        assert_eq!(TensorRole::Output.gguf_name(), "output.weight");
    }
}

//! [`ModelSpec`] from an HF `config.json` (`LlamaForCausalLM`, `MistralForCausalLM`,
//! `Qwen2ForCausalLM`). Keys that are `null` count as absent, as `transformers` treats them.

use std::path::Path;

use serde_json::{Map, Value};

use super::derive::derive;
use super::raw::{Field, RawSpec};
use super::{
    Arch, ModelSpec, RopeScaling, RopeScalingKind, SourceFormat, SpecError, SpecErrorKind,
};
use crate::tensor::TensorIndex;

/// HF architecture classes sluice supports, for error messages.
const SUPPORTED_HF: &str = "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM";

impl ModelSpec {
    /// Reads the spec from the text of `config.json` at `config_path` and the safetensors
    /// index; `tensors_path` (the model directory or file) names the model in tensor errors.
    pub fn from_hf_config(
        config_path: &Path,
        config_text: &str,
        index: &TensorIndex,
        tensors_path: &Path,
    ) -> Result<ModelSpec, SpecError> {
        let err = |kind| SpecError {
            path: config_path.to_path_buf(),
            kind,
        };
        let value: Value = serde_json::from_str(config_text).map_err(|e| {
            err(SpecErrorKind::BadConfig {
                detail: e.to_string(),
            })
        })?;
        let cfg = value.as_object().ok_or_else(|| {
            err(SpecErrorKind::BadConfig {
                detail: "the top level is not an object".into(),
            })
        })?;
        let arch = arch(cfg).map_err(err)?;
        let key = |f: Field| f.key(arch, SourceFormat::Safetensors);
        let count = |f: Field| count(cfg, &key(f)).map_err(err);
        let float = |k: &str| float(cfg, k).map_err(err);
        let mut raw = RawSpec::new(arch, SourceFormat::Safetensors, config_path.to_path_buf());
        raw.n_layer = count(Field::NLayer)?;
        raw.n_embd = count(Field::NEmbd)?;
        raw.n_ff = count(Field::NFf)?;
        raw.n_head = count(Field::NHead)?;
        raw.n_head_kv = count(Field::NHeadKv)?;
        raw.head_dim = count(Field::HeadDim)?;
        raw.n_vocab = count(Field::Vocab)?;
        raw.context_length = count(Field::Ctx)?;
        raw.rope_freq_base = float(&key(Field::RopeBase))?;
        raw.rms_eps = float(&key(Field::RmsEps))?;
        raw.tied_declared = boolean(cfg, "tie_word_embeddings").map_err(err)?;
        raw.bias_declared = boolean(cfg, "attention_bias").map_err(err)?;
        raw.rope_scaling = rope_scaling(cfg).map_err(err)?;
        derive(&raw, index, tensors_path)
    }
}

/// The architecture from `architectures` (first entry sluice knows), else from `model_type`.
fn arch(cfg: &Map<String, Value>) -> Result<Arch, SpecErrorKind> {
    let from_class = |name: &str| match name {
        "LlamaForCausalLM" | "MistralForCausalLM" => Some(Arch::Llama),
        "Qwen2ForCausalLM" => Some(Arch::Qwen2),
        _ => None,
    };
    if let Some(list) = cfg.get("architectures").and_then(Value::as_array) {
        let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
        if let Some(a) = names.iter().find_map(|n| from_class(n)) {
            return Ok(a);
        }
        if !names.is_empty() {
            return Err(SpecErrorKind::UnsupportedArch {
                arch: names.join(", "),
                supported: SUPPORTED_HF,
            });
        }
    }
    match cfg.get("model_type").and_then(Value::as_str) {
        Some("llama" | "mistral") => Ok(Arch::Llama),
        Some("qwen2") => Ok(Arch::Qwen2),
        Some(other) => Err(SpecErrorKind::UnsupportedArch {
            arch: other.into(),
            supported: SUPPORTED_HF,
        }),
        None => Err(SpecErrorKind::MissingKey {
            key: "architectures".into(),
        }),
    }
}

fn bad(key: &str, want: &str, v: &Value) -> SpecErrorKind {
    SpecErrorKind::BadValue {
        key: key.into(),
        problem: format!("= {v} is not {want}"),
    }
}

/// A non-negative integer key.
fn count(cfg: &Map<String, Value>, key: &str) -> Result<Option<u64>, SpecErrorKind> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(key, "a non-negative integer", v)),
    }
}

/// A number key.
fn float(cfg: &Map<String, Value>, key: &str) -> Result<Option<f64>, SpecErrorKind> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| bad(key, "a number", v)),
    }
}

/// A boolean key.
fn boolean(cfg: &Map<String, Value>, key: &str) -> Result<Option<bool>, SpecErrorKind> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| bad(key, "true or false", v)),
    }
}

/// `rope_scaling`: `null`, or an object with `type`/`rope_type`, `factor` and optional extras.
fn rope_scaling(cfg: &Map<String, Value>) -> Result<Option<RopeScaling>, SpecErrorKind> {
    let key = "rope_scaling";
    let obj = match cfg.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(obj)) => obj,
        Some(v) => return Err(bad(key, "an object", v)),
    };
    let kind_name = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(Value::as_str);
    let kind = match kind_name {
        None | Some("default") => return Ok(None),
        Some("linear") => RopeScalingKind::Linear,
        Some("yarn") => RopeScalingKind::Yarn,
        Some("llama3") => RopeScalingKind::Llama3,
        Some(other) => {
            return Err(SpecErrorKind::BadValue {
                key: "rope_scaling.rope_type".into(),
                problem: format!(
                    "= '{other}' is not supported (supported: default, linear, yarn, llama3)"
                ),
            })
        }
    };
    let factor = float(obj, "factor")?
        .filter(|f| f.is_finite() && *f > 0.0)
        .ok_or_else(|| SpecErrorKind::BadValue {
            key: "rope_scaling.factor".into(),
            problem: "must be a positive number".into(),
        })?;
    let orig = count(obj, "original_max_position_embeddings")?;
    Ok(Some(RopeScaling {
        kind,
        factor: factor as f32,
        original_context_length: orig.and_then(|o| usize::try_from(o).ok()),
        low_freq_factor: float(obj, "low_freq_factor")?.map(|f| f as f32),
        high_freq_factor: float(obj, "high_freq_factor")?.map(|f| f as f32),
    }))
}

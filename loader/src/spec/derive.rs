//! From declared values to a [`ModelSpec`]: llama.cpp's defaults and derivations, then the
//! tensor ground truths (vocabulary, tied output, biases) and the shape checks.

use std::path::Path;

use super::check::{check_tensors, tensor_path};
use super::raw::{Field, RawSpec};
use super::{Arch, ModelSpec, RopeStyle, SpecError, SpecErrorKind};
use crate::roles::{RoleIndex, TensorRole};
use crate::tensor::TensorIndex;

/// RoPE base frequency when the source declares none (llama.cpp and HF both use 10000).
pub(super) const ROPE_FREQ_BASE_DEFAULT: f64 = 10_000.0;

/// Builds and validates the spec; `tensors_path` names the model when a tensor is missing.
pub(super) fn derive(
    raw: &RawSpec,
    index: &TensorIndex,
    tensors_path: &Path,
) -> Result<ModelSpec, SpecError> {
    let key_err = |kind| SpecError {
        path: raw.keys_path.clone(),
        kind,
    };
    let roles = RoleIndex::build(index).map_err(|e| SpecError {
        path: tensors_path.to_path_buf(),
        kind: e.into(),
    })?;

    let n_layer = positive(raw, Field::NLayer, raw.n_layer)?;
    let n_embd = positive(raw, Field::NEmbd, raw.n_embd)?;
    let n_ff = positive(raw, Field::NFf, raw.n_ff)?;
    let n_head = positive(raw, Field::NHead, raw.n_head)?;
    let n_head_kv = positive(raw, Field::NHeadKv, raw.n_head_kv.or(Some(n_head as u64)))?;
    if n_head % n_head_kv != 0 {
        return Err(key_err(SpecErrorKind::Inconsistent {
            problem: format!(
                "'{}' = {n_head} is not a multiple of '{}' = {n_head_kv}",
                raw.key(Field::NHead),
                raw.key(Field::NHeadKv)
            ),
        }));
    }
    let head_dim = match raw.head_dim {
        Some(_) => positive(raw, Field::HeadDim, raw.head_dim)?,
        None if n_embd % n_head == 0 => n_embd / n_head,
        None => {
            return Err(key_err(SpecErrorKind::Inconsistent {
                problem: format!(
                    "'{}' = {n_embd} is not a multiple of '{}' = {n_head} and '{}' is absent",
                    raw.key(Field::NEmbd),
                    raw.key(Field::NHead),
                    raw.key(Field::HeadDim)
                ),
            }))
        }
    };
    if let Some(v) = raw.value_dim.filter(|&v| v != head_dim as u64) {
        return Err(key_err(SpecErrorKind::Inconsistent {
            problem: format!(
                "'{}' = {v} differs from the key head size {head_dim}; sluice needs them equal",
                raw.key(Field::ValueDim)
            ),
        }));
    }
    let n_rot = n_rot(raw, head_dim)?;
    let rope_freq_base = finite_positive(
        raw,
        Field::RopeBase,
        raw.rope_freq_base.or(Some(ROPE_FREQ_BASE_DEFAULT)),
    )?;
    let rms_eps = finite_positive(raw, Field::RmsEps, raw.rms_eps)?;
    let context_length = positive(raw, Field::Ctx, raw.context_length)?;

    let n_vocab = vocab(raw, index, &roles, n_embd, tensors_path)?;
    let tied_output = roles.get(None, TensorRole::Output).is_none();
    if tied_output && raw.tied_declared == Some(false) {
        return Err(SpecError {
            path: tensors_path.to_path_buf(),
            kind: SpecErrorKind::MissingTensor {
                name: TensorRole::Output.full_name(0, false),
            },
        });
    }
    let qkv_bias = raw.arch == Arch::Qwen2
        || raw.bias_declared == Some(true)
        || roles.get(Some(0), TensorRole::QBias).is_some();

    let spec = ModelSpec {
        arch: raw.arch,
        source: raw.source,
        n_layer,
        n_embd,
        n_ff,
        n_head,
        n_head_kv,
        head_dim,
        n_rot,
        rope_freq_base: rope_freq_base as f32,
        rope_scaling: raw.rope_scaling,
        rope_style: RopeStyle::for_model(raw.arch, raw.source),
        rms_eps: rms_eps as f32,
        n_vocab,
        context_length,
        tied_output,
        qkv_bias,
        has_rope_freqs: roles.get(None, TensorRole::RopeFreqs).is_some(),
    };
    check_tensors(&spec, index, &roles, tensors_path)?;
    Ok(spec)
}

/// A required count: present, non-zero, and fitting a `usize`.
fn positive(raw: &RawSpec, field: Field, value: Option<u64>) -> Result<usize, SpecError> {
    let err = |kind| SpecError {
        path: raw.keys_path.clone(),
        kind,
    };
    let key = raw.key(field);
    let v = value.ok_or_else(|| err(SpecErrorKind::MissingKey { key: key.clone() }))?;
    if v == 0 {
        return Err(err(SpecErrorKind::BadValue {
            key,
            problem: "must be positive, not 0".into(),
        }));
    }
    usize::try_from(v).map_err(|_| {
        err(SpecErrorKind::BadValue {
            key,
            problem: format!("= {v} is too large"),
        })
    })
}

/// A required float: present, finite and > 0.
fn finite_positive(raw: &RawSpec, field: Field, value: Option<f64>) -> Result<f64, SpecError> {
    let err = |kind| SpecError {
        path: raw.keys_path.clone(),
        kind,
    };
    let key = raw.key(field);
    let v = value.ok_or_else(|| err(SpecErrorKind::MissingKey { key: key.clone() }))?;
    if !(v.is_finite() && v > 0.0 && (v as f32) > 0.0) {
        return Err(err(SpecErrorKind::BadValue {
            key,
            problem: format!("must be a positive number, not {v}"),
        }));
    }
    Ok(v)
}

/// The rotated dims per head: declared or `head_dim`; llama requires exactly `head_dim`.
fn n_rot(raw: &RawSpec, head_dim: usize) -> Result<usize, SpecError> {
    let Some(declared) = raw.n_rot else {
        return Ok(head_dim);
    };
    let ok = match raw.arch {
        Arch::Llama => declared == head_dim as u64,
        Arch::Qwen2 => declared > 0 && declared % 2 == 0 && declared <= head_dim as u64,
    };
    if !ok {
        let want = match raw.arch {
            Arch::Llama => format!("must equal the head size {head_dim}"),
            Arch::Qwen2 => format!("must be even and at most the head size {head_dim}"),
        };
        return Err(SpecError {
            path: raw.keys_path.clone(),
            kind: SpecErrorKind::BadValue {
                key: raw.key(Field::NRot),
                problem: format!("= {declared} {want}"),
            },
        });
    }
    Ok(declared as usize)
}

/// The vocabulary: the token embedding's row count, which a declared size must agree with.
fn vocab(
    raw: &RawSpec,
    index: &TensorIndex,
    roles: &RoleIndex,
    n_embd: usize,
    tensors_path: &Path,
) -> Result<usize, SpecError> {
    let gguf = raw.source == super::SourceFormat::Gguf;
    let Some(pos) = roles.get(None, TensorRole::TokenEmbd) else {
        return Err(SpecError {
            path: tensors_path.to_path_buf(),
            kind: SpecErrorKind::MissingTensor {
                name: TensorRole::TokenEmbd.full_name(0, gguf),
            },
        });
    };
    let t = &index.tensors[pos];
    let rows = match t.dims[..] {
        [ne0, ne1] if ne0 == n_embd as u64 && ne1 > 0 => ne1,
        _ => {
            return Err(SpecError {
                path: tensor_path(index, t, tensors_path),
                kind: SpecErrorKind::BadShape {
                    name: t.name.clone(),
                    dims: t.dims.clone(),
                    expected: vec![n_embd as u64, raw.n_vocab.unwrap_or(0)],
                },
            })
        }
    };
    if let Some(declared) = raw.n_vocab.filter(|&v| v != rows) {
        return Err(SpecError {
            path: raw.keys_path.clone(),
            kind: SpecErrorKind::Inconsistent {
                problem: format!(
                    "'{}' = {declared} but tensor '{}' has {rows} rows",
                    raw.key(Field::Vocab),
                    t.name
                ),
            },
        });
    }
    usize::try_from(rows).map_err(|_| SpecError {
        path: tensor_path(index, t, tensors_path),
        kind: SpecErrorKind::BadShape {
            name: t.name.clone(),
            dims: t.dims.clone(),
            expected: vec![n_embd as u64],
        },
    })
}

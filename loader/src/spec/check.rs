//! Shape checks: every tensor the forward pass reads exists with the dims the spec implies.

use std::path::{Path, PathBuf};

use super::{ModelSpec, SourceFormat, SpecError, SpecErrorKind};
use crate::roles::{RoleIndex, TensorRole};
use crate::tensor::{TensorIndex, TensorInfo};

/// The file holding `t`, for naming it in an error.
pub(super) fn tensor_path(index: &TensorIndex, t: &TensorInfo, fallback: &Path) -> PathBuf {
    index
        .files
        .get(t.file)
        .cloned()
        .unwrap_or_else(|| fallback.to_path_buf())
}

/// Checks every known tensor against the spec; unknown names are left to the caller to report.
pub(super) fn check_tensors(
    spec: &ModelSpec,
    index: &TensorIndex,
    roles: &RoleIndex,
    model_path: &Path,
) -> Result<(), SpecError> {
    let ctx = Ctx {
        spec,
        index,
        roles,
        model_path,
    };
    for ((layer, _), pos) in roles.iter() {
        if let Some(layer) = layer.filter(|&l| l >= spec.n_layer) {
            let t = &index.tensors[pos];
            return Err(ctx.err(
                t,
                SpecErrorKind::LayerOutOfRange {
                    name: t.name.clone(),
                    layer,
                    n_layer: spec.n_layer,
                },
            ));
        }
    }
    let d = Dims::new(spec).ok_or_else(|| SpecError {
        path: model_path.to_path_buf(),
        kind: SpecErrorKind::Inconsistent {
            problem: "the hyper-parameters overflow a 64-bit size".into(),
        },
    })?;
    ctx.expect(None, TensorRole::OutputNorm, Need::Required, &[d.embd])?;
    ctx.expect(None, TensorRole::Output, Need::Optional, &[d.embd, d.vocab])?;
    ctx.expect(None, TensorRole::RopeFreqs, Need::Optional, &[d.rot_half])?;
    let bias = if spec.qkv_bias {
        Need::Required
    } else {
        Need::Forbidden
    };
    for layer in 0..spec.n_layer {
        let l = Some(layer);
        ctx.expect(l, TensorRole::AttnNorm, Need::Required, &[d.embd])?;
        ctx.expect(l, TensorRole::Q, Need::Required, &[d.embd, d.q])?;
        ctx.expect(l, TensorRole::K, Need::Required, &[d.embd, d.kv])?;
        ctx.expect(l, TensorRole::V, Need::Required, &[d.embd, d.kv])?;
        ctx.expect(l, TensorRole::QBias, bias, &[d.q])?;
        ctx.expect(l, TensorRole::KBias, bias, &[d.kv])?;
        ctx.expect(l, TensorRole::VBias, bias, &[d.kv])?;
        ctx.expect(l, TensorRole::O, Need::Required, &[d.q, d.embd])?;
        ctx.expect(l, TensorRole::OBias, Need::Unsupported, &[d.embd])?;
        ctx.expect(l, TensorRole::FfnNorm, Need::Required, &[d.embd])?;
        ctx.expect(l, TensorRole::Gate, Need::Required, &[d.embd, d.ff])?;
        ctx.expect(l, TensorRole::Up, Need::Required, &[d.embd, d.ff])?;
        ctx.expect(l, TensorRole::Down, Need::Required, &[d.ff, d.embd])?;
    }
    Ok(())
}

/// The widths tensors are checked against, computed once without overflow.
struct Dims {
    embd: u64,
    vocab: u64,
    ff: u64,
    q: u64,
    kv: u64,
    rot_half: u64,
}

impl Dims {
    fn new(spec: &ModelSpec) -> Option<Dims> {
        let hd = spec.head_dim as u64;
        Some(Dims {
            embd: spec.n_embd as u64,
            vocab: spec.n_vocab as u64,
            ff: spec.n_ff as u64,
            q: hd.checked_mul(spec.n_head as u64)?,
            kv: hd.checked_mul(spec.n_head_kv as u64)?,
            rot_half: spec.n_rot as u64 / 2,
        })
    }
}

/// Dims without trailing 1s (writers differ on whether they store them).
fn trim_ones(mut dims: &[u64]) -> &[u64] {
    while let [rest @ .., 1] = dims {
        dims = rest;
    }
    dims
}

/// Whether a role must, may, or must not be present.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Optional,
    Forbidden,
    Unsupported,
}

struct Ctx<'a> {
    spec: &'a ModelSpec,
    index: &'a TensorIndex,
    roles: &'a RoleIndex,
    model_path: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, t: &TensorInfo, kind: SpecErrorKind) -> SpecError {
        SpecError {
            path: tensor_path(self.index, t, self.model_path),
            kind,
        }
    }

    fn expect(
        &self,
        layer: Option<usize>,
        role: TensorRole,
        need: Need,
        want: &[u64],
    ) -> Result<(), SpecError> {
        let gguf = self.spec.source == SourceFormat::Gguf;
        let Some(pos) = self.roles.get(layer, role) else {
            if need != Need::Required {
                return Ok(());
            }
            let name = role.full_name(layer.unwrap_or(0), gguf);
            return Err(SpecError {
                path: self.model_path.to_path_buf(),
                kind: SpecErrorKind::MissingTensor { name },
            });
        };
        let t = &self.index.tensors[pos];
        let why = match need {
            Need::Forbidden => {
                Some("layer 0 has no q/k/v biases, so every layer must have none".to_string())
            }
            Need::Unsupported => Some(format!(
                "the {} forward pass has no {role} term",
                self.spec.arch
            )),
            Need::Required | Need::Optional => None,
        };
        if let Some(why) = why {
            return Err(self.err(
                t,
                SpecErrorKind::UnsupportedTensor {
                    name: t.name.clone(),
                    why,
                },
            ));
        }
        if trim_ones(&t.dims) != trim_ones(want) {
            return Err(self.err(
                t,
                SpecErrorKind::BadShape {
                    name: t.name.clone(),
                    dims: t.dims.clone(),
                    expected: want.to_vec(),
                },
            ));
        }
        Ok(())
    }
}

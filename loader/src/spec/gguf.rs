//! [`ModelSpec`] from GGUF metadata (gguf-facts.md §4.1): `{arch}.*` keys, any integer width.

use std::path::Path;

use super::derive::derive;
use super::raw::{Field, RawSpec};
use super::{
    Arch, ModelSpec, RopeScaling, RopeScalingKind, SourceFormat, SpecError, SpecErrorKind,
};
use crate::gguf::{MetaArray, MetaValue, Metadata};
use crate::tensor::TensorIndex;

impl ModelSpec {
    /// Reads the spec of the GGUF file at `path` from its metadata and tensor index.
    pub fn from_gguf(
        path: &Path,
        meta: &Metadata,
        index: &TensorIndex,
    ) -> Result<ModelSpec, SpecError> {
        let err = |kind| SpecError {
            path: path.to_path_buf(),
            kind,
        };
        let arch_key = "general.architecture";
        let arch_name = match meta.get(arch_key) {
            None => {
                return Err(err(SpecErrorKind::MissingKey {
                    key: arch_key.into(),
                }))
            }
            Some(v) => v
                .as_str()
                .ok_or_else(|| err(bad_type(arch_key, v, "a string")))?,
        };
        let arch = Arch::from_gguf_name(arch_name).ok_or_else(|| {
            err(SpecErrorKind::UnsupportedArch {
                arch: arch_name.into(),
                supported: Arch::SUPPORTED,
            })
        })?;
        let key = |f: Field| f.key(arch, SourceFormat::Gguf);
        let count = |f: Field| count(meta, &key(f)).map_err(err);
        let float = |f: Field| float(meta, &key(f)).map_err(err);
        let mut raw = RawSpec::new(arch, SourceFormat::Gguf, path.to_path_buf());
        raw.n_layer = count(Field::NLayer)?;
        raw.n_embd = count(Field::NEmbd)?;
        raw.n_ff = count(Field::NFf)?;
        raw.n_head = count(Field::NHead)?;
        raw.n_head_kv = count(Field::NHeadKv)?;
        raw.head_dim = count(Field::HeadDim)?;
        raw.value_dim = count(Field::ValueDim)?;
        raw.n_rot = count(Field::NRot)?;
        raw.n_vocab = count(Field::Vocab)?;
        raw.context_length = count(Field::Ctx)?;
        raw.rope_freq_base = float(Field::RopeBase)?;
        raw.rms_eps = float(Field::RmsEps)?;
        raw.rope_scaling = rope_scaling(meta, arch).map_err(err)?;
        derive(&raw, index, path)
    }
}

fn bad_type(key: &str, v: &MetaValue, want: &str) -> SpecErrorKind {
    SpecErrorKind::BadValue {
        key: key.into(),
        problem: format!("has type {}, expected {want}", v.type_name()),
    }
}

/// An integer key, also accepted as a per-layer array whose entries are all equal.
fn count(meta: &Metadata, key: &str) -> Result<Option<u64>, SpecErrorKind> {
    let Some(v) = meta.get(key) else {
        return Ok(None);
    };
    if let Some(x) = v.as_u64() {
        return Ok(Some(x));
    }
    let values = match v.as_array().map(MetaArray::to_i64_vec) {
        Some(Some(values)) => values,
        _ => return Err(bad_type(key, v, "a non-negative integer")),
    };
    match values[..] {
        [first, ..] if first >= 0 && values.iter().all(|&x| x == first) => Ok(Some(first as u64)),
        _ => Err(SpecErrorKind::BadValue {
            key: key.into(),
            problem: "varies per layer or is empty; sluice needs one value for every layer".into(),
        }),
    }
}

/// A float key (f32, f64 or an integer).
fn float(meta: &Metadata, key: &str) -> Result<Option<f64>, SpecErrorKind> {
    match meta.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad_type(key, v, "a number")),
    }
}

/// `{arch}.rope.scaling.*`, or the legacy `{arch}.rope.scale_linear`.
fn rope_scaling(meta: &Metadata, arch: Arch) -> Result<Option<RopeScaling>, SpecErrorKind> {
    let a = arch.name();
    let type_key = format!("{a}.rope.scaling.type");
    let factor_key = format!("{a}.rope.scaling.factor");
    let kind = match meta.get(&type_key) {
        None => {
            let legacy = float(meta, &format!("{a}.rope.scale_linear"))?;
            return Ok(legacy.filter(|&f| f != 1.0).map(|f| linear(f as f32)));
        }
        Some(v) => match v.as_str() {
            Some("none") => return Ok(None),
            Some("linear") => RopeScalingKind::Linear,
            Some("yarn") => RopeScalingKind::Yarn,
            Some(other) => {
                return Err(SpecErrorKind::BadValue {
                    key: type_key,
                    problem: format!(
                        "= '{other}' is not supported (supported: none, linear, yarn)"
                    ),
                })
            }
            None => return Err(bad_type(&type_key, v, "a string")),
        },
    };
    let factor = float(meta, &factor_key)?
        .filter(|f| f.is_finite() && *f > 0.0)
        .ok_or_else(|| SpecErrorKind::BadValue {
            key: factor_key.clone(),
            problem: "must be a positive number when a scaling type is set".into(),
        })?;
    let orig = count(meta, &format!("{a}.rope.scaling.original_context_length"))?;
    Ok(Some(RopeScaling {
        kind,
        factor: factor as f32,
        original_context_length: orig.and_then(|o| usize::try_from(o).ok()),
        low_freq_factor: None,
        high_freq_factor: None,
    }))
}

fn linear(factor: f32) -> RopeScaling {
    RopeScaling {
        kind: RopeScalingKind::Linear,
        factor,
        original_context_length: None,
        low_freq_factor: None,
        high_freq_factor: None,
    }
}

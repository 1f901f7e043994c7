//! HF safetensors reader: one `.safetensors` file, or a directory sharded by
//! `model.safetensors.index.json`, turned into a [`TensorIndex`].
//!
//! Only headers are read. Offsets become absolute (`8 + N + begin`), dims are reversed to
//! ne0-first like GGUF's, and names stay as the checkpoint spells them
//! (`model.layers.0.self_attn.q_proj.weight`); [`crate::roles`] maps them to roles. Tensors are
//! ordered by file (shard names sorted) and then by offset. F32, F16 and BF16 are accepted.

mod error;
mod header;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::Value;

pub use error::{SafetensorsError, SafetensorsErrorKind};
pub use header::{parse_header, read_header, HEADER_BYTES_MAX};

use crate::tensor::TensorIndex;

/// The single-file weights name inside an HF model directory.
pub const SINGLE_FILE_NAME: &str = "model.safetensors";
/// The shard index name inside an HF model directory.
pub const INDEX_FILE_NAME: &str = "model.safetensors.index.json";

/// Reads one `.safetensors` file.
pub fn open_file(path: &Path) -> Result<TensorIndex, SafetensorsError> {
    let tensors = read_header(path, 0)?;
    Ok(TensorIndex {
        files: vec![path.to_path_buf()],
        tensors,
    })
}

/// Reads an HF model directory: its shard index when present, else `model.safetensors`.
pub fn open_dir(dir: &Path) -> Result<TensorIndex, SafetensorsError> {
    let index = dir.join(INDEX_FILE_NAME);
    if index.is_file() {
        return open_sharded(&index);
    }
    let single = dir.join(SINGLE_FILE_NAME);
    if single.is_file() {
        return open_file(&single);
    }
    Err(SafetensorsError {
        path: dir.to_path_buf(),
        kind: SafetensorsErrorKind::NoWeights,
    })
}

/// Reads every shard named by a `model.safetensors.index.json` (shards live next to it).
pub fn open_sharded(index_path: &Path) -> Result<TensorIndex, SafetensorsError> {
    let weight_map = read_weight_map(index_path)?;
    let dir = index_path.parent().unwrap_or(Path::new("."));
    let mut by_shard: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (tensor, shard) in &weight_map {
        by_shard
            .entry(shard.as_str())
            .or_default()
            .push(tensor.as_str());
    }
    let mut out = TensorIndex::default();
    let mut seen: HashSet<String> = HashSet::new();
    for (file, (shard, wanted)) in by_shard.into_iter().enumerate() {
        let path = dir.join(shard);
        let tensors = read_header(&path, file)?;
        let err = |kind| SafetensorsError {
            path: path.clone(),
            kind,
        };
        let here: HashSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        if let Some(missing) = wanted.iter().find(|t| !here.contains(*t)) {
            return Err(err(SafetensorsErrorKind::MissingFromShard {
                tensor: missing.to_string(),
            }));
        }
        for t in &tensors {
            if !seen.insert(t.name.clone()) {
                return Err(err(SafetensorsErrorKind::Duplicate {
                    tensor: t.name.clone(),
                }));
            }
        }
        out.files.push(path);
        out.tensors.extend(tensors);
    }
    Ok(out)
}

/// The index's `weight_map`: tensor name → shard file name (checked to be a plain file name).
fn read_weight_map(index_path: &Path) -> Result<BTreeMap<String, String>, SafetensorsError> {
    let err = |kind| SafetensorsError {
        path: index_path.to_path_buf(),
        kind,
    };
    let bad = |detail: String| err(SafetensorsErrorKind::BadIndex { detail });
    let len = std::fs::metadata(index_path)
        .map_err(|e| err(e.into()))?
        .len();
    if len > HEADER_BYTES_MAX {
        return Err(bad(format!(
            "it is {len} bytes, more than the {HEADER_BYTES_MAX}-byte limit"
        )));
    }
    let text = std::fs::read(index_path).map_err(|e| err(e.into()))?;
    let value: Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let Some(map) = value.get("weight_map").and_then(Value::as_object) else {
        return Err(bad("it has no \"weight_map\" object".into()));
    };
    let mut out = BTreeMap::new();
    for (tensor, shard) in map {
        let Some(shard) = shard.as_str() else {
            return Err(bad(format!("the shard of '{tensor}' is not a string")));
        };
        let plain = !shard.is_empty()
            && shard != "."
            && shard != ".."
            && !shard.contains(['/', '\\', '\0']);
        if !plain {
            return Err(bad(format!(
                "the shard of '{tensor}' ('{shard}') is not a plain file name"
            )));
        }
        out.insert(tensor.clone(), shard.to_string());
    }
    if out.is_empty() {
        return Err(bad("its weight_map is empty".into()));
    }
    Ok(out)
}

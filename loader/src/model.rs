//! Opening a model from whatever path the user gives: a GGUF file, an HF directory
//! (`config.json` with `model.safetensors` or a sharded `model.safetensors.index.json`), or a
//! `.safetensors` file (or shard index) with a `config.json` beside it.
//!
//! Out comes a [`ModelFiles`]: the [`ModelSpec`], the [`TensorIndex`], and the
//! [`LayerExtents`] rounded to the files' direct-I/O alignment. Only headers are read.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::extents::{dio_alignment_for, ExtentsError, LayerExtents};
use crate::gguf::{GgufError, GgufFile, Metadata};
use crate::safetensors::{self, SafetensorsError};
use crate::spec::{ModelSpec, SourceFormat, SpecError};
use crate::tensor::TensorIndex;

/// The HF configuration file name.
pub const CONFIG_FILE_NAME: &str = "config.json";
/// Largest `config.json` read (real ones are a few kilobytes).
pub const CONFIG_BYTES_MAX: u64 = 16 << 20;
/// The four bytes that open every GGUF file.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Everything the engine needs to know about a model's files, from their headers.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    /// The path as given (file or directory).
    pub path: PathBuf,
    /// GGUF or safetensors.
    pub format: SourceFormat,
    /// Hyper-parameters, validated against the tensors.
    pub spec: ModelSpec,
    /// Every tensor and the files they live in.
    pub index: TensorIndex,
    /// The aligned reads that fetch each layer and each global tensor.
    pub extents: LayerExtents,
    /// The GGUF key/value table (tokenizer, chat template); `None` for safetensors.
    pub metadata: Option<Metadata>,
    /// The HF model directory (tokenizer.json and friends live there); `None` for GGUF.
    pub hf_dir: Option<PathBuf>,
}

/// The name most callers use: `Model::open(path)`.
pub type Model = ModelFiles;

/// Why a model could not be opened; every message names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Nothing exists at the path.
    #[error("{}: no such file or directory", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The path is not a kind of model sluice reads.
    #[error("{}: {why}", path.display())]
    Unrecognised {
        /// The path given.
        path: PathBuf,
        /// What sluice expected instead.
        why: String,
    },
    /// Reading a file failed.
    #[error("{}: cannot be read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The GGUF header is invalid.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A safetensors file or shard index is invalid.
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    /// The hyper-parameters are missing, inconsistent or unsupported.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The tensors cannot be grouped into extents.
    #[error(transparent)]
    Extents(#[from] ExtentsError),
}

impl ModelFiles {
    /// Opens the model at `path`, deciding its format from what the path is.
    pub fn open(path: &Path) -> Result<ModelFiles, LoadError> {
        if !path.exists() {
            return Err(LoadError::NotFound {
                path: path.to_path_buf(),
            });
        }
        if path.is_dir() {
            return open_hf(path, path, safetensors::open_dir(path)?);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if name.ends_with(".safetensors") {
            return open_hf(path, &parent(path), safetensors::open_file(path)?);
        }
        if name.ends_with(".safetensors.index.json") {
            return open_hf(path, &parent(path), safetensors::open_sharded(path)?);
        }
        if name.ends_with(".gguf") || starts_with_gguf_magic(path)? {
            return open_gguf(path);
        }
        Err(LoadError::Unrecognised {
            path: path.to_path_buf(),
            why: "is neither a GGUF file, a .safetensors file, nor a directory with config.json \
                  and safetensors weights"
                .into(),
        })
    }
}

fn open_gguf(path: &Path) -> Result<ModelFiles, LoadError> {
    let file = GgufFile::open(path)?;
    let spec = ModelSpec::from_gguf(path, &file.metadata, &file.index)?;
    let extents = LayerExtents::build(&file.index, spec.n_layer, dio_alignment_for(&file.index))?;
    Ok(ModelFiles {
        path: path.to_path_buf(),
        format: SourceFormat::Gguf,
        spec,
        index: file.index,
        extents,
        metadata: Some(file.metadata),
        hf_dir: None,
    })
}

/// Finishes an HF model whose tensors are indexed: reads `dir/config.json`, derives the spec.
fn open_hf(path: &Path, dir: &Path, index: TensorIndex) -> Result<ModelFiles, LoadError> {
    let config_path = dir.join(CONFIG_FILE_NAME);
    if !config_path.is_file() {
        return Err(LoadError::Unrecognised {
            path: path.to_path_buf(),
            why: format!(
                "has safetensors weights but no {} beside them",
                CONFIG_FILE_NAME
            ),
        });
    }
    let text = read_config(&config_path)?;
    let spec = ModelSpec::from_hf_config(&config_path, &text, &index, path)?;
    let extents = LayerExtents::build(&index, spec.n_layer, dio_alignment_for(&index))?;
    Ok(ModelFiles {
        path: path.to_path_buf(),
        format: SourceFormat::Safetensors,
        spec,
        index,
        extents,
        metadata: None,
        hf_dir: Some(dir.to_path_buf()),
    })
}

/// The text of a `config.json`, bounded in size.
fn read_config(path: &Path) -> Result<String, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut text = String::new();
    file.take(CONFIG_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > CONFIG_BYTES_MAX {
        return Err(LoadError::Unrecognised {
            path: path.to_path_buf(),
            why: format!("is larger than the {CONFIG_BYTES_MAX}-byte limit for a config file"),
        });
    }
    Ok(text)
}

/// Whether the file opens with the GGUF magic (for GGUF files without the extension).
fn starts_with_gguf_magic(path: &Path) -> Result<bool, LoadError> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(f.read_exact(&mut magic).is_ok() && &magic == GGUF_MAGIC)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

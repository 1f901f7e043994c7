//! Errors from building a [`ModelSpec`](super::ModelSpec): which file, which key or tensor, what is wrong.

use std::path::PathBuf;

use crate::roles::DuplicateRole;

/// A model whose description is incomplete, inconsistent or unsupported.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct SpecError {
    /// The file at fault (the GGUF file, `config.json`, or the file holding a bad tensor).
    pub path: PathBuf,
    /// What is wrong.
    pub kind: SpecErrorKind,
}

/// What is wrong with a model description.
#[derive(Debug, thiserror::Error)]
pub enum SpecErrorKind {
    /// The architecture is not one sluice runs.
    #[error("architecture '{arch}' is not supported (supported: {supported})")]
    UnsupportedArch {
        /// The architecture the file names.
        arch: String,
        /// The names sluice supports, in the same source's spelling.
        supported: &'static str,
    },
    /// A required key is absent.
    #[error("required key '{key}' is missing")]
    MissingKey {
        /// The key as the source spells it.
        key: String,
    },
    /// A key has the wrong type or an impossible value.
    #[error("key '{key}' {problem}")]
    BadValue {
        /// The key as the source spells it.
        key: String,
        /// What is wrong with it, as a sentence fragment.
        problem: String,
    },
    /// Values that cannot all hold at once.
    #[error("{problem}")]
    Inconsistent {
        /// What disagrees with what.
        problem: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("required tensor '{name}' is missing")]
    MissingTensor {
        /// The tensor's name in the source's convention.
        name: String,
    },
    /// A tensor's shape disagrees with the hyper-parameters.
    #[error(
        "tensor '{name}' has dims {dims:?} (ne0 first) but the hyper-parameters say {expected:?}"
    )]
    BadShape {
        /// The tensor's name.
        name: String,
        /// Its dims, ne0 first.
        dims: Vec<u64>,
        /// The dims the hyper-parameters imply.
        expected: Vec<u64>,
    },
    /// A tensor the forward pass has no use for, whose absence would change the model's output.
    #[error("tensor '{name}' is not supported: {why}")]
    UnsupportedTensor {
        /// The tensor's name.
        name: String,
        /// Why it cannot be ignored.
        why: String,
    },
    /// A tensor belongs to a layer past the declared layer count.
    #[error("tensor '{name}' belongs to layer {layer} but the model declares {n_layer} layers")]
    LayerOutOfRange {
        /// The tensor's name.
        name: String,
        /// Its layer.
        layer: usize,
        /// The declared layer count.
        n_layer: usize,
    },
    /// Two tensors claim the same role.
    #[error(transparent)]
    DuplicateRole(#[from] DuplicateRole),
    /// `config.json` is not a JSON object.
    #[error("is not a valid config.json: {detail}")]
    BadConfig {
        /// The parser's message.
        detail: String,
    },
}

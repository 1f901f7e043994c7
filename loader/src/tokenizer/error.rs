//! Errors raised while building a tokenizer, encoding text or rendering a chat template.

use std::path::PathBuf;

/// Everything that can go wrong in [`crate::tokenizer`]; each variant names the key or file.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required metadata key is absent.
    #[error("tokenizer metadata key '{key}' is missing")]
    MissingKey {
        /// The GGUF key.
        key: &'static str,
    },
    /// A metadata key holds a value of the wrong type or shape.
    #[error("tokenizer metadata key '{key}': {problem}")]
    BadKey {
        /// The GGUF key.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// `tokenizer.ggml.model` names a tokenizer kind this crate does not implement.
    #[error("tokenizer.ggml.model = '{model}' is not supported (supported: gpt2, llama)")]
    UnsupportedModel {
        /// The value found.
        model: String,
    },
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not know.
    #[error(
        "tokenizer.ggml.pre = '{pre}' is not a supported pre-tokenizer (supported: {supported})"
    )]
    UnknownPreTokenizer {
        /// The value found.
        pre: String,
        /// Comma-separated list of the names that are supported.
        supported: String,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A tokenizer file could not be parsed or describes something unsupported.
    #[error("{}: {problem}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The HF `tokenizers` crate refused to build or run the tokenizer.
    #[error("tokenizer backend: {0}")]
    Backend(String),
    /// BOS was requested but the vocabulary defines none.
    #[error("add_bos was requested but the tokenizer has no BOS token (tokenizer.ggml.bos_token_id / bos_token)")]
    NoBosToken,
    /// A byte could not be encoded: the SPM vocabulary has neither its `<0xNN>` token nor `<unk>`.
    #[error(
        "byte 0x{byte:02X} has no <0x{byte:02X}> token and the vocabulary has no unknown token"
    )]
    NoByteToken {
        /// The byte.
        byte: u8,
    },
    /// The model has no chat template (`tokenizer.chat_template` / `chat_template`).
    #[error("the model has no chat template")]
    NoChatTemplate,
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    Template(String),
}

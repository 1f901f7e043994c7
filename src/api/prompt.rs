//! The tokenizer and prompt building every frontend shares (`sluice run`, `batch`, `serve`,
//! the library, C and Python): where the tokenizer comes from, and how a prompt or a list of
//! chat messages becomes token ids.

use std::path::{Path, PathBuf};

use sluice_loader::gguf::{GgufError, GgufFile};
use sluice_loader::model::ModelFiles;
use sluice_loader::tokenizer::{ChatMessage, Tokenizer, TokenizerError};
use thiserror::Error;

/// Why a tokenizer could not be built or a prompt could not be turned into tokens.
#[derive(Debug, Error)]
pub enum PromptError {
    /// The tokenizer's source (a GGUF file, a tokenizer.json) is unusable.
    #[error("{path}: {source}")]
    Tokenizer {
        path: String,
        #[source]
        source: TokenizerError,
    },
    /// The file named as the tokenizer is not a readable GGUF.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// An HF directory without a tokenizer.json, and no tokenizer named.
    #[error("{0}: the directory has no tokenizer.json; name a tokenizer with --tokenizer (a GGUF file of the same model, or a tokenizer.json)")]
    NoTokenizerJson(String),
    /// Chat messages given to a model without a chat template.
    #[error(
        "chat messages need a chat template, and the model has none (give a \"prompt\" instead)"
    )]
    NoChatTemplate,
    /// Rendering the chat template failed.
    #[error(transparent)]
    Template(TokenizerError),
    /// Tokenizing the prompt failed.
    #[error("tokenising the prompt: {0}")]
    Encode(#[source] TokenizerError),
}

/// The tokenizer: `explicit` (a GGUF file or a tokenizer.json), else the GGUF's metadata (whose
/// vocabulary arrays it then takes out of the model's copy: call it once per model, before the
/// engine reads weights), else the HF directory's files.
pub fn load_tokenizer(
    model: &mut ModelFiles,
    explicit: Option<&Path>,
) -> Result<Tokenizer, PromptError> {
    let named = |path: &Path| {
        let path = path.display().to_string();
        move |source| PromptError::Tokenizer { path, source }
    };
    if let Some(p) = explicit {
        if p.extension().is_some_and(|e| e == "json") {
            return Tokenizer::from_hf_files(p, None).map_err(named(p));
        }
        let g = GgufFile::open(p)?;
        return Tokenizer::from_gguf_metadata(&g.metadata).map_err(named(p));
    }
    if let Some(md) = model.metadata.as_mut() {
        let t = Tokenizer::from_gguf_metadata_taking(md).map_err(named(&model.path));
        crate::engine::memory_limit::return_freed_memory();
        return t;
    }
    let dir: PathBuf = model.hf_dir.clone().unwrap_or_else(|| model.path.clone());
    let json = dir.join("tokenizer.json");
    if !json.exists() {
        return Err(PromptError::NoTokenizerJson(dir.display().to_string()));
    }
    let cfg = dir.join("tokenizer_config.json");
    Tokenizer::from_hf_files(&json, cfg.exists().then_some(cfg.as_path())).map_err(named(&json))
}

/// The prompt's token ids: raw, or wrapped in the model's chat template as one user turn (raw
/// too when the model has no template); BOS as the model's metadata asks.
pub fn prompt_tokens(tok: &Tokenizer, prompt: &str, raw: bool) -> Result<Vec<u32>, PromptError> {
    let text = match (raw, tok.chat_template()) {
        (false, Some(_)) => tok
            .apply_chat_template(&[ChatMessage::user(prompt)], true)
            .map_err(PromptError::Template)?,
        _ => prompt.to_string(),
    };
    tok.encode(&text, tok.add_bos_default(), true)
        .map_err(PromptError::Encode)
}

/// The token ids of chat messages put through the model's chat template (an error when the
/// model has none), ending with the assistant's turn opened.
pub fn messages_tokens(tok: &Tokenizer, messages: &[ChatMessage]) -> Result<Vec<u32>, PromptError> {
    if tok.chat_template().is_none() {
        return Err(PromptError::NoChatTemplate);
    }
    let text = tok
        .apply_chat_template(messages, true)
        .map_err(PromptError::Template)?;
    tok.encode(&text, tok.add_bos_default(), true)
        .map_err(PromptError::Encode)
}

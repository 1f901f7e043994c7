//! The tokenizer and prompt building that `sluice run`, `sluice batch` and `sluice serve`
//! share: where the tokenizer comes from, and how a prompt or a list of chat messages becomes
//! token ids.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use sluice_loader::gguf::GgufFile;
use sluice_loader::tokenizer::{ChatMessage, Tokenizer};

use sluice_loader::model::ModelFiles;

/// The tokenizer: `--tokenizer`, else the GGUF's metadata (whose vocabulary arrays it then
/// takes out of the model's copy: call it once per model, before the engine reads weights),
/// else the HF directory's files.
pub(crate) fn load_tokenizer(
    model: &mut ModelFiles,
    explicit: Option<&Path>,
) -> anyhow::Result<Tokenizer> {
    if let Some(p) = explicit {
        if p.extension().is_some_and(|e| e == "json") {
            return Tokenizer::from_hf_files(p, None).with_context(|| format!("{}", p.display()));
        }
        let g = GgufFile::open(p)?;
        return Tokenizer::from_gguf_metadata(&g.metadata)
            .with_context(|| format!("{}", p.display()));
    }
    if let Some(md) = model.metadata.as_mut() {
        let t = Tokenizer::from_gguf_metadata_taking(md)
            .with_context(|| format!("{}", model.path.display()));
        crate::engine::memory_limit::return_freed_memory();
        return t;
    }
    let dir: PathBuf = model.hf_dir.clone().unwrap_or_else(|| model.path.clone());
    let json = dir.join("tokenizer.json");
    if !json.exists() {
        return Err(anyhow!(
            "{}: the directory has no tokenizer.json; name a tokenizer with --tokenizer (a GGUF file of the same model, or a tokenizer.json)",
            dir.display()
        ));
    }
    let cfg = dir.join("tokenizer_config.json");
    Tokenizer::from_hf_files(&json, cfg.exists().then_some(cfg.as_path()))
        .with_context(|| format!("{}", json.display()))
}

/// The prompt's token ids: raw, or wrapped in the model's chat template as one user turn (raw
/// too when the model has no template); BOS as the model's metadata asks.
pub(crate) fn prompt_tokens(tok: &Tokenizer, prompt: &str, raw: bool) -> anyhow::Result<Vec<u32>> {
    let text = match (raw, tok.chat_template()) {
        (false, Some(_)) => tok
            .apply_chat_template(&[ChatMessage::user(prompt)], true)
            .context("the chat template failed")?,
        _ => prompt.to_string(),
    };
    tok.encode(&text, tok.add_bos_default(), true)
        .context("tokenising the prompt")
}

/// The token ids of chat messages put through the model's chat template (an error when the
/// model has none), ending with the assistant's turn opened.
pub(crate) fn messages_tokens(
    tok: &Tokenizer,
    messages: &[ChatMessage],
) -> anyhow::Result<Vec<u32>> {
    if tok.chat_template().is_none() {
        return Err(anyhow!(
            "chat messages need a chat template, and the model has none (give a \"prompt\" instead)"
        ));
    }
    let text = tok
        .apply_chat_template(messages, true)
        .context("the chat template failed")?;
    tok.encode(&text, tok.add_bos_default(), true)
        .context("tokenising the prompt")
}

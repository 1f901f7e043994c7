//! Tokenizer and chat template, from GGUF metadata or an HF `tokenizer.json`.
//!
//! Encoding follows llama.cpp (gguf-facts.md §5): special tokens are split out first
//! (module `special`), then each text fragment goes through the model: byte-level BPE with a
//! pre-tokenizer chosen by `tokenizer.ggml.pre` (module `bpe`; an HF `tokenizer.json` runs
//! on the `tokenizers` crate), or
//! SentencePiece-style score-ordered merges (module `spm`). Decoding concatenates each token's raw
//! bytes, so byte-level BPE round-trips exactly; [`StreamDecoder`] does the same incrementally.
#![warn(missing_docs)]

mod bpe;
mod bytelevel;
mod chat;
mod error;
mod gguf_vocab;
mod hf_json;
mod jinja_py;
mod panic_guard;
mod pretok;
mod py_json;
mod py_time;
mod special;
mod spm;
mod stream;
mod token_index;
mod vocab;

use std::path::Path;

pub use bytelevel::encode_bytes as byte_level_encode;
pub use chat::ChatMessage;
pub use error::TokenizerError;
pub use pretok::supported_names as supported_pre_tokenizers;
pub use stream::StreamDecoder;
pub use vocab::TokenKind;

use chat::ChatTemplate;
use special::{Fragment, SpecialIds, SpecialTokens};
use spm::SpmModel;
use vocab::Pieces;

/// What turns a text fragment into ids.
#[derive(Clone)]
enum Model {
    /// Byte-level BPE from GGUF metadata, on tables that share `Tokenizer::pieces`.
    Bpe(Box<bpe::BpeModel>),
    /// An HF `tokenizers` pipeline (a `tokenizer.json`).
    Hf(Box<tokenizers::Tokenizer>),
    /// llama.cpp's SentencePiece-style BPE.
    Spm(Box<SpmModel>),
}

/// A text tokenizer: encode, decode, special ids and chat template.
#[derive(Clone)]
pub struct Tokenizer {
    model: Model,
    pieces: Pieces,
    kinds: Vec<TokenKind>,
    specials: SpecialTokens,
    ids: SpecialIds,
    add_bos: bool,
    /// SPM-style: each text fragment is encoded with a leading `▁`, which decoding drops.
    add_space_prefix: bool,
    chat: Option<ChatTemplate>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &self.model_name())
            .field("vocab_size", &self.vocab_size())
            .field("special_tokens", &self.specials.len())
            .field("bos", &self.ids.bos)
            .field("eos", &self.ids.eos)
            .field("eot", &self.ids.eot)
            .field("add_bos", &self.add_bos)
            .finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` keys.
    pub fn from_gguf_metadata(md: &crate::gguf::Metadata) -> Result<Tokenizer, TokenizerError> {
        gguf_vocab::build(md)
    }

    /// Builds the tokenizer from a GGUF file's keys, then removes the vocabulary-sized arrays
    /// (pieces, types, scores, merges) from `md`: the tokenizer holds its own tables, and a
    /// second copy of a 150k-token vocabulary costs a streamed run tens of MB.
    pub fn from_gguf_metadata_taking(
        md: &mut crate::gguf::Metadata,
    ) -> Result<Tokenizer, TokenizerError> {
        let t = gguf_vocab::build(md)?;
        for k in gguf_vocab::ARRAY_KEYS {
            md.remove(k);
        }
        Ok(t)
    }

    /// Builds the tokenizer from an HF `tokenizer.json`, with BOS/EOS, `add_bos_token` and the
    /// chat template from `tokenizer_config.json` when given.
    pub fn from_hf_files(
        tokenizer_json: &Path,
        tokenizer_config_json: Option<&Path>,
    ) -> Result<Tokenizer, TokenizerError> {
        hf_json::build(tokenizer_json, tokenizer_config_json)
    }

    /// Encodes text. `add_bos` prepends BOS; `parse_special` lets CONTROL tokens written in the
    /// text (`<|im_start|>`) become their ids instead of being tokenized as text.
    pub fn encode(
        &self,
        text: &str,
        add_bos: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_bos {
            out.push(self.ids.bos.ok_or(TokenizerError::NoBosToken)?);
        }
        let mut prev_special = true;
        for frag in self.specials.partition(text, parse_special) {
            match frag {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    self.encode_fragment(t, self.add_space_prefix && prev_special, &mut out)?;
                    prev_special = false;
                }
            }
        }
        Ok(out)
    }

    fn encode_fragment(
        &self,
        text: &str,
        prefix_space: bool,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        match &self.model {
            Model::Spm(spm) => spm.encode(text, prefix_space, &self.pieces, out),
            Model::Bpe(bpe) => bpe.encode(text, &self.pieces, out),
            Model::Hf(hf) => {
                let enc = panic_guard::guarded(|| hf.encode_fast(text, false))
                    .map_err(|p| {
                        TokenizerError::Backend(format!(
                            "encoding failed inside the tokenizer's own rules (a pre-tokenizer \
                             regex of tokenizer.json that backtracks without end?): {p}"
                        ))
                    })?
                    .map_err(|e| TokenizerError::Backend(format!("encoding failed: {e}")))?;
                out.extend_from_slice(enc.get_ids());
                Ok(())
            }
        }
    }

    /// Decodes ids to text: every token's raw bytes, special tokens as their text, invalid
    /// UTF-8 replaced by U+FFFD and unknown ids by U+FFFD. `decode(encode(t)) == t` for
    /// byte-level BPE.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut after_special = true;
        for &id in ids {
            self.append_token(id, &mut after_special, &mut bytes);
        }
        match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// Appends the bytes `decode` writes for one token; `after_special` tracks whether the
    /// next text piece starts a fragment (whose SPM space prefix is dropped).
    pub(crate) fn append_token(&self, id: u32, after_special: &mut bool, out: &mut Vec<u8>) {
        let Some(piece) = self.pieces.get(id) else {
            out.extend_from_slice("\u{FFFD}".as_bytes());
            return;
        };
        let kind = self.kinds[id as usize];
        if matches!(kind, TokenKind::Control | TokenKind::UserDefined) {
            *after_special = true;
            out.extend_from_slice(piece);
            return;
        }
        let piece = match piece.strip_prefix(b" ") {
            Some(rest) if self.add_space_prefix && *after_special => rest,
            _ => piece,
        };
        *after_special = false;
        out.extend_from_slice(piece);
    }

    /// The raw bytes of token `id` (special tokens: their text), or `None` if out of range.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id)
    }

    /// The kind of token `id`, or `None` if out of range.
    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    /// The id of a token given its vocabulary text (byte-level form for gpt2 vocabularies).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        match &self.model {
            Model::Spm(spm) => spm.token_id(text, &self.pieces),
            Model::Bpe(bpe) => bpe.token_id(text, &self.pieces),
            Model::Hf(hf) => hf.token_to_id(text),
        }
    }

    /// Bytes held by the tables that encode and decode (the token pieces, their kinds, the
    /// token index, and the merges or scores); `None` for a `tokenizer.json` pipeline, whose
    /// tables live inside the `tokenizers` crate.
    pub fn table_bytes(&self) -> Option<usize> {
        let shared = self.pieces.bytes() + self.kinds.len() * std::mem::size_of::<TokenKind>();
        match &self.model {
            Model::Bpe(bpe) => Some(shared + bpe.table_bytes()),
            Model::Spm(spm) => Some(shared + spm.table_bytes()),
            Model::Hf(_) => None,
        }
    }

    /// The beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.ids.bos
    }

    /// The end-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.ids.eos
    }

    /// The end-of-turn token (from metadata, else detected by its text, e.g. `<|im_end|>`).
    pub fn eot_id(&self) -> Option<u32> {
        self.ids.eot
    }

    /// Whether the model expects BOS at the start of a prompt (metadata or per-type default).
    pub fn add_bos_default(&self) -> bool {
        self.add_bos
    }

    /// Whether generating `id` ends generation (EOS, EOT, EOM or an end-like token's text).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.ids.eog.binary_search(&id).is_ok()
    }

    /// Every id that ends generation, sorted.
    pub fn end_of_generation_ids(&self) -> &[u32] {
        &self.ids.eog
    }

    /// Number of token ids (including special and unused ones).
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The Jinja chat template, if the model has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat.as_ref().map(ChatTemplate::source)
    }

    /// Renders the chat template over `messages`, with `bos_token`/`eos_token` set to those
    /// tokens' texts; `add_generation_prompt` opens the assistant's turn.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        let chat = self.chat.as_ref().ok_or(TokenizerError::NoChatTemplate)?;
        let text_of = |id: Option<u32>| {
            id.and_then(|id| self.pieces.get(id))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        chat.render(
            messages,
            add_generation_prompt,
            &text_of(self.ids.bos),
            &text_of(self.ids.eos),
        )
    }

    fn model_name(&self) -> &'static str {
        match self.model {
            Model::Bpe(_) => "bpe",
            Model::Hf(_) => "bpe (tokenizers)",
            Model::Spm(_) => "spm",
        }
    }
}

/// What a builder hands to [`Tokenizer::assemble`].
struct Parts {
    model: Model,
    pieces: Pieces,
    kinds: Vec<TokenKind>,
    ids: SpecialIds,
    add_bos: bool,
    add_space_prefix: bool,
    chat_template: Option<String>,
}

impl Tokenizer {
    /// Finishes construction: detects EOT/EOG by text (which may turn tokens CONTROL), then
    /// collects the special tokens. `texts(i)` is token i's vocabulary text.
    fn assemble<'a>(mut parts: Parts, texts: impl Fn(usize) -> &'a str) -> Tokenizer {
        let n = parts.kinds.len();
        debug_assert_eq!(n, parts.pieces.len(), "one kind and one piece per token");
        parts.ids.detect(n, &texts, &mut parts.kinds);
        let specials = SpecialTokens::new((0..n).map(|i| (i as u32, texts(i), parts.kinds[i])));
        Tokenizer {
            model: parts.model,
            pieces: parts.pieces,
            kinds: parts.kinds,
            specials,
            ids: parts.ids,
            add_bos: parts.add_bos,
            add_space_prefix: parts.add_space_prefix,
            chat: parts.chat_template.map(ChatTemplate::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Tokenizer>();
    }
}

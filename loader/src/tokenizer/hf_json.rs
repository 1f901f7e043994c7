//! Building a [`Tokenizer`] from an HF model directory's `tokenizer.json` and
//! `tokenizer_config.json` (gguf-facts.md §5.3: the reference for HF models).
//!
//! The `tokenizers` pipeline encodes each text fragment; special added tokens are split out by
//! [`super::special`] as for GGUF (so `parse_special` behaves the same), which is why the
//! pipeline is told never to match them itself.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::error::TokenizerError;
use super::special::SpecialIds;
use super::spm::SPACE_MARK;
use super::vocab::{parse_byte_token, Pieces, TokenKind};
use super::{bytelevel, Model, Parts, Tokenizer};

/// How ordinary pieces map to bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceStyle {
    /// GPT-2 byte-level alphabet.
    ByteLevel,
    /// SentencePiece: `▁` is a space, `<0xNN>` a byte.
    Metaspace,
    /// The piece text is the text.
    Raw,
}

/// What `tokenizer_config.json` contributes.
#[derive(Debug, Default)]
struct Config {
    bos: Option<String>,
    eos: Option<String>,
    add_bos: Option<bool>,
    chat_template: Option<String>,
}

/// Builds the tokenizer from the files.
pub(super) fn build(
    json_path: &Path,
    config_path: Option<&Path>,
) -> Result<Tokenizer, TokenizerError> {
    let bytes = read(json_path)?;
    // Guarded too: the file's regexes and sizes are the file's to choose.
    let mut hf = super::panic_guard::guarded(|| tokenizers::Tokenizer::from_bytes(&bytes))
        .map_err(|p| {
            bad_file(
                json_path,
                format!("the tokenizers library failed on it: {p}"),
            )
        })?
        .map_err(|e| bad_file(json_path, e.to_string()))?;
    hf.set_encode_special_tokens(true);
    hf.with_truncation(None)
        .map_err(|e| bad_file(json_path, e.to_string()))?;
    hf.with_padding(None);
    let mut config = match config_path {
        Some(p) => read_config(p)?,
        None => Config::default(),
    };
    if config.chat_template.is_none() {
        config.chat_template = sibling_template(json_path, config_path)?;
    }

    let style = piece_style(&hf);
    let (texts, kinds) = vocabulary(&hf, style).map_err(|problem| bad_file(json_path, problem))?;
    let mut pieces = Pieces::with_capacity(texts.len(), 8);
    for (t, kind) in texts.iter().zip(&kinds) {
        pieces.push_with(|out| piece_bytes(t, *kind, style, out));
    }
    let id_of = |t: &Option<String>, what: &str| {
        let t = t.as_deref()?;
        let id = hf.token_to_id(t);
        if id.is_none() {
            log::warn!("tokenizer_config.json: {what} {t:?} is not a token");
        }
        id
    };
    let ids = SpecialIds {
        bos: id_of(&config.bos, "bos_token"),
        eos: id_of(&config.eos, "eos_token"),
        ..Default::default()
    };
    let add_bos = match config.add_bos {
        Some(b) => b,
        None => post_processor_adds(&hf, ids.bos),
    };
    let parts = Parts {
        add_space_prefix: style == PieceStyle::Metaspace && prepends_space(&hf),
        model: Model::Hf(Box::new(hf)),
        pieces,
        kinds,
        ids,
        add_bos,
        chat_template: config.chat_template,
    };
    Ok(Tokenizer::assemble(parts, |i| texts[i].as_str()))
}

/// Ids may leave holes, but no more than this many per token (a hostile file could otherwise
/// name id 4e9 and make the tables huge).
const ID_SPAN_PER_TOKEN_MAX: usize = 2;

/// Every id's text and kind; ids without a token get an empty UNUSED entry.
fn vocabulary(
    hf: &tokenizers::Tokenizer,
    style: PieceStyle,
) -> Result<(Vec<String>, Vec<TokenKind>), String> {
    let vocab = hf.get_vocab(true);
    let n = vocab.values().max().map_or(0, |&m| m as usize + 1);
    if n > vocab.len() * ID_SPAN_PER_TOKEN_MAX + 1024 {
        return Err(format!(
            "token ids run to {} for only {} tokens",
            n - 1,
            vocab.len()
        ));
    }
    let mut texts = vec![String::new(); n];
    let mut kinds = vec![TokenKind::Unused; n];
    for (text, id) in vocab {
        let kind = match style {
            PieceStyle::Metaspace if parse_byte_token(&text).is_some() => TokenKind::Byte,
            _ => TokenKind::Normal,
        };
        kinds[id as usize] = kind;
        texts[id as usize] = text;
    }
    for (id, tok) in hf.get_added_tokens_decoder() {
        if let Some(k) = kinds.get_mut(id as usize) {
            *k = if tok.special {
                TokenKind::Control
            } else {
                TokenKind::UserDefined
            };
            texts[id as usize] = tok.content;
        }
    }
    Ok((texts, kinds))
}

fn piece_bytes(text: &str, kind: TokenKind, style: PieceStyle, out: &mut Vec<u8>) {
    match (kind, style) {
        (TokenKind::Byte, _) => match parse_byte_token(text) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(text.as_bytes()),
        },
        (TokenKind::Normal, PieceStyle::ByteLevel) => bytelevel::decode_piece_into(text, out),
        (TokenKind::Normal, PieceStyle::Metaspace) => {
            for c in text.chars() {
                let c = if c == SPACE_MARK { ' ' } else { c };
                out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
            }
        }
        _ => out.extend_from_slice(text.as_bytes()),
    }
}

/// Reads the piece style off the decoder (else the pre-tokenizer).
fn piece_style(hf: &tokenizers::Tokenizer) -> PieceStyle {
    let decoder = hf.get_decoder().and_then(|d| serde_json::to_value(d).ok());
    let pre = hf
        .get_pre_tokenizer()
        .and_then(|p| serde_json::to_value(p).ok());
    for part in [decoder, pre].iter().flatten() {
        if has_type(part, &|o| {
            o.get("type").and_then(Json::as_str) == Some("ByteLevel")
        }) {
            return PieceStyle::ByteLevel;
        }
        let metaspace = |o: &serde_json::Map<String, Json>| {
            let ty = o.get("type").and_then(Json::as_str);
            let replaces_mark = ty == Some("Replace")
                && o.get("pattern")
                    .and_then(|p| p.get("String"))
                    .and_then(Json::as_str)
                    == Some("▁");
            matches!(ty, Some("Metaspace") | Some("ByteFallback")) || replaces_mark
        };
        if has_type(part, &metaspace) {
            return PieceStyle::Metaspace;
        }
    }
    PieceStyle::Raw
}

/// Whether the pipeline writes a `▁` before each fragment (Metaspace prepend, or a
/// `Prepend("▁")` normalizer).
fn prepends_space(hf: &tokenizers::Tokenizer) -> bool {
    let normalizer = hf
        .get_normalizer()
        .and_then(|n| serde_json::to_value(n).ok());
    let pre = hf
        .get_pre_tokenizer()
        .and_then(|p| serde_json::to_value(p).ok());
    let prepend = |o: &serde_json::Map<String, Json>| {
        o.get("type").and_then(Json::as_str) == Some("Prepend")
            && o.get("prepend").and_then(Json::as_str) == Some("▁")
    };
    let metaspace_prefix = |o: &serde_json::Map<String, Json>| {
        o.get("type").and_then(Json::as_str) == Some("Metaspace")
            && (matches!(
                o.get("prepend_scheme").and_then(Json::as_str),
                Some("always" | "first")
            ) || o.get("add_prefix_space").and_then(Json::as_bool) == Some(true))
    };
    normalizer.is_some_and(|n| has_type(&n, &prepend))
        || pre.is_some_and(|p| has_type(&p, &metaspace_prefix))
}

/// Whether any object in `v` satisfies `pred`.
fn has_type(v: &Json, pred: &dyn Fn(&serde_json::Map<String, Json>) -> bool) -> bool {
    match v {
        Json::Object(o) => pred(o) || o.values().any(|x| has_type(x, pred)),
        Json::Array(a) => a.iter().any(|x| has_type(x, pred)),
        _ => false,
    }
}

/// Whether the post-processor puts BOS first (used when `add_bos_token` is not given).
fn post_processor_adds(hf: &tokenizers::Tokenizer, bos: Option<u32>) -> bool {
    let Some(bos) = bos else {
        return false;
    };
    hf.encode_fast("", true)
        .is_ok_and(|e| e.get_ids().first() == Some(&bos))
}

fn read_config(path: &Path) -> Result<Config, TokenizerError> {
    let json: Json =
        serde_json::from_slice(&read(path)?).map_err(|e| bad_file(path, e.to_string()))?;
    let token_text = |key: &str| -> Option<String> {
        let v = json.get(key)?;
        v.as_str()
            .or_else(|| v.get("content").and_then(Json::as_str))
            .map(str::to_string)
    };
    let chat_template = match json.get("chat_template") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Array(named)) => {
            let pick = named
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                .or_else(|| named.first());
            pick.and_then(|t| t.get("template"))
                .and_then(Json::as_str)
                .map(str::to_string)
        }
        Some(_) => {
            return Err(bad_file(
                path,
                "chat_template is neither a string nor a list".into(),
            ))
        }
    };
    Ok(Config {
        bos: token_text("bos_token"),
        eos: token_text("eos_token"),
        add_bos: json.get("add_bos_token").and_then(Json::as_bool),
        chat_template,
    })
}

/// `chat_template.jinja` beside the config or `tokenizer.json` (newer HF repositories).
fn sibling_template(
    json_path: &Path,
    config_path: Option<&Path>,
) -> Result<Option<String>, TokenizerError> {
    let dirs = [config_path.and_then(Path::parent), json_path.parent()];
    for dir in dirs.into_iter().flatten() {
        let p = dir.join("chat_template.jinja");
        if p.is_file() {
            let bytes = read(&p)?;
            return String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| bad_file(&p, "not UTF-8".into()));
        }
    }
    Ok(None)
}

fn read(path: &Path) -> Result<Vec<u8>, TokenizerError> {
    std::fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn bad_file(path: &Path, problem: String) -> TokenizerError {
    TokenizerError::BadFile {
        path: PathBuf::from(path),
        problem,
    }
}

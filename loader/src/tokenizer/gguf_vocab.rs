//! Building a [`Tokenizer`] from GGUF `tokenizer.ggml.*` metadata (gguf-facts.md §5).

use super::bpe::BpeModel;
use super::error::TokenizerError;
use super::special::SpecialIds;
use super::spm::{SpmModel, SPACE_MARK};
use super::vocab::{parse_byte_token, Pieces, TokenKind};
use super::{bytelevel, pretok, Model, Parts, Tokenizer};
use crate::gguf::{MetaValue, Metadata};

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_MERGES: &str = "tokenizer.ggml.merges";
/// The vocabulary-sized arrays a built tokenizer no longer needs from the metadata.
pub(super) const ARRAY_KEYS: [&str; 4] = [KEY_TOKENS, KEY_TYPES, KEY_SCORES, KEY_MERGES];
const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";
const KEY_EOT: &str = "tokenizer.ggml.eot_token_id";
const KEY_EOM: &str = "tokenizer.ggml.eom_token_id";
const KEY_UNK: &str = "tokenizer.ggml.unknown_token_id";
const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
const KEY_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// Builds the tokenizer the metadata describes.
pub(super) fn build(md: &Metadata) -> Result<Tokenizer, TokenizerError> {
    let model = get_str(md, KEY_MODEL)?.ok_or(TokenizerError::MissingKey { key: KEY_MODEL })?;
    let tokens =
        get_str_array(md, KEY_TOKENS)?.ok_or(TokenizerError::MissingKey { key: KEY_TOKENS })?;
    if tokens.len() >= u32::MAX as usize {
        return Err(TokenizerError::BadKey {
            key: KEY_TOKENS,
            problem: format!("{} tokens do not fit 32-bit ids", tokens.len()),
        });
    }
    let kinds = token_kinds(md, tokens.len())?;
    let chat_template = get_str(md, KEY_CHAT_TEMPLATE)?.map(str::to_string);
    let parts = match model {
        "gpt2" => bpe_parts(md, tokens, kinds, chat_template)?,
        "llama" => spm_parts(md, tokens, kinds, chat_template)?,
        other => {
            return Err(TokenizerError::UnsupportedModel {
                model: other.to_string(),
            })
        }
    };
    Ok(Tokenizer::assemble(parts, |i| tokens[i].as_str()))
}

/// Byte-level BPE (`gpt2`): our own tables behind the family's pre-tokenizer.
fn bpe_parts(
    md: &Metadata,
    tokens: &[String],
    kinds: Vec<TokenKind>,
    chat_template: Option<String>,
) -> Result<Parts, TokenizerError> {
    let pre = get_str(md, KEY_PRE)?.unwrap_or_else(|| {
        log::warn!("{KEY_PRE} is missing: using llama.cpp's degraded 'default' pre-tokenizer");
        "default"
    });
    let family = pretok::family(pre)?;
    let mut pieces = Pieces::with_capacity(tokens.len(), 8);
    for (t, kind) in tokens.iter().zip(&kinds) {
        pieces.push_with(|out| match kind {
            TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown => {
                out.extend_from_slice(t.as_bytes())
            }
            _ => bytelevel::decode_piece_into(t, out),
        });
    }
    let merges =
        get_str_array(md, KEY_MERGES)?.ok_or(TokenizerError::MissingKey { key: KEY_MERGES })?;
    let bpe = BpeModel::build(
        tokens,
        &pieces,
        merges,
        KEY_MERGES,
        family.ignore_merges,
        pretok::build(family)?,
    )?;
    let n = tokens.len();
    let ids = SpecialIds {
        bos: token_id(md, KEY_BOS, n, None),
        eos: token_id(md, KEY_EOS, n, None),
        eot: token_id(md, KEY_EOT, n, None),
        eom: token_id(md, KEY_EOM, n, None),
        eog: Vec::new(),
    };
    Ok(Parts {
        model: Model::Bpe(Box::new(bpe)),
        pieces,
        kinds,
        ids,
        add_bos: get_bool(md, KEY_ADD_BOS)?.unwrap_or(family.add_bos),
        add_space_prefix: false,
        chat_template,
    })
}

/// SentencePiece-style vocabulary (`llama`): scores, `▁` for spaces, `<0xNN>` byte tokens.
fn spm_parts(
    md: &Metadata,
    tokens: &[String],
    kinds: Vec<TokenKind>,
    chat_template: Option<String>,
) -> Result<Parts, TokenizerError> {
    let n = tokens.len();
    let scores = match md.get(KEY_SCORES) {
        None => vec![0.0; n],
        Some(v) => {
            let s = v
                .as_array()
                .and_then(|a| a.to_f32_vec())
                .ok_or_else(|| bad(KEY_SCORES, v, "f32 array"))?;
            if s.len() != n {
                return Err(TokenizerError::BadKey {
                    key: KEY_SCORES,
                    problem: format!("{} scores for {n} tokens", s.len()),
                });
            }
            s
        }
    };
    let mut pieces = Pieces::with_capacity(n, 6);
    for (t, kind) in tokens.iter().zip(&kinds) {
        pieces.push_with(|out| match kind {
            TokenKind::Byte => match parse_byte_token(t) {
                Some(b) => out.push(b),
                None => out.extend_from_slice(t.as_bytes()),
            },
            TokenKind::Normal | TokenKind::Unused => {
                for c in t.chars() {
                    let c = if c == SPACE_MARK { ' ' } else { c };
                    out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
                }
            }
            _ => out.extend_from_slice(t.as_bytes()),
        });
    }
    let unk = token_id(md, KEY_UNK, n, Some(0));
    let ids = SpecialIds {
        bos: token_id(md, KEY_BOS, n, Some(1)),
        eos: token_id(md, KEY_EOS, n, Some(2)),
        eot: token_id(md, KEY_EOT, n, None),
        eom: token_id(md, KEY_EOM, n, None),
        eog: Vec::new(),
    };
    Ok(Parts {
        model: Model::Spm(Box::new(SpmModel::new(tokens, &pieces, scores, unk))),
        pieces,
        kinds,
        ids,
        add_bos: get_bool(md, KEY_ADD_BOS)?.unwrap_or(true),
        add_space_prefix: get_bool(md, KEY_ADD_SPACE_PREFIX)?.unwrap_or(true),
        chat_template,
    })
}

/// Token kinds from `tokenizer.ggml.token_type` (all NORMAL when absent).
fn token_kinds(md: &Metadata, n: usize) -> Result<Vec<TokenKind>, TokenizerError> {
    let Some(v) = md.get(KEY_TYPES) else {
        return Ok(vec![TokenKind::Normal; n]);
    };
    let codes = v
        .as_array()
        .and_then(|a| a.to_i64_vec())
        .ok_or_else(|| bad(KEY_TYPES, v, "integer array"))?;
    if codes.len() != n {
        return Err(TokenizerError::BadKey {
            key: KEY_TYPES,
            problem: format!("{} types for {n} tokens", codes.len()),
        });
    }
    Ok(codes.into_iter().map(TokenKind::from_gguf).collect())
}

/// A special-token id key: absent, non-integer or out-of-range values give `default`
/// (itself dropped when out of range), as llama.cpp does.
fn token_id(md: &Metadata, key: &'static str, n: usize, default: Option<u32>) -> Option<u32> {
    let in_range = |id: u64| (id < n as u64).then_some(id as u32);
    let fallback = default.and_then(|d| in_range(u64::from(d)));
    let Some(v) = md.get(key) else {
        return fallback;
    };
    let id = v.as_u64().and_then(in_range);
    if id.is_none() {
        log::warn!("{key} = {v:?} is not a token id below {n}; ignoring it");
    }
    id.or(fallback)
}

fn bad(key: &'static str, v: &MetaValue, want: &str) -> TokenizerError {
    TokenizerError::BadKey {
        key,
        problem: format!("expected {want}, found {}", v.type_name()),
    }
}

fn get_str<'a>(md: &'a Metadata, key: &'static str) -> Result<Option<&'a str>, TokenizerError> {
    md.get(key)
        .map(|v| v.as_str().ok_or_else(|| bad(key, v, "string")))
        .transpose()
}

fn get_bool(md: &Metadata, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    md.get(key)
        .map(|v| v.as_bool().ok_or_else(|| bad(key, v, "bool")))
        .transpose()
}

fn get_str_array<'a>(
    md: &'a Metadata,
    key: &'static str,
) -> Result<Option<&'a [String]>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => md
            .get_str_array(key)
            .map(Some)
            .ok_or_else(|| bad(key, v, "string array")),
    }
}

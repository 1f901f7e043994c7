//! Tokenizers from HF `tokenizer.json` + `tokenizer_config.json` files written by the test:
//! a byte-level BPE (GPT-2/Qwen style) and a SentencePiece-style BPE with byte fallback.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sluice_loader::tokenizer::{
    byte_level_encode, ChatMessage, TokenKind, Tokenizer, TokenizerError,
};

const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn added(id: u32, content: &str, special: bool) -> Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false,
           "rstrip": false, "normalized": false, "special": special})
}

fn bpe_model(vocab: serde_json::Map<String, Value>, merges: &[&str], byte_fallback: bool) -> Value {
    json!({"type": "BPE", "dropout": null, "unk_token": if byte_fallback { json!("<unk>") } else { json!(null) },
           "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": byte_fallback,
           "byte_fallback": byte_fallback, "ignore_merges": false, "vocab": vocab, "merges": merges})
}

/// Byte-level BPE: ids 0..=255 bytes, 256..=260 merges, 261.. added tokens.
fn byte_level_json() -> Value {
    let mut vocab = serde_json::Map::new();
    for b in 0..=255u8 {
        vocab.insert(byte_level_encode(&[b]), json!(b));
    }
    for (i, t) in ["he", "Ġt", "the", "Ġthe", "12"].iter().enumerate() {
        vocab.insert(t.to_string(), json!(256 + i));
    }
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [added(261, "<|endoftext|>", true), added(262, "<|im_start|>", true),
                         added(263, "<|im_end|>", true), added(264, "<tool>", false)],
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": false},
            byte_level]},
        "post_processor": null,
        "decoder": byte_level,
        "model": bpe_model(vocab, &["h e", "Ġ t", "t he", "Ġt he", "1 2"], false),
    })
}

/// SentencePiece-style BPE (Llama-2's layout): `▁` prepended, byte fallback.
fn spm_json() -> Value {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    for b in 0..=255u32 {
        vocab.insert(format!("<0x{b:02X}>"), json!(3 + b));
    }
    for (i, t) in ["▁", "h", "e", "l", "o", "he", "ll", "▁he", "llo"]
        .iter()
        .enumerate()
    {
        vocab.insert(t.to_string(), json!(259 + i));
    }
    let replace = |from: &str, to: &str| json!({"type": "Replace", "pattern": {"String": from}, "content": to});
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true)],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, replace(" ", "▁")]},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [replace("▁", " "), {"type": "ByteFallback"}, {"type": "Fuse"},
                    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": bpe_model(vocab, &["h e", "l l", "▁ he", "ll o"], true),
    })
}

const TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content.strip() }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
    p
}

fn byte_level(config: Option<Value>) -> (tempfile::TempDir, Tokenizer) {
    let dir = tempfile::tempdir().unwrap();
    let tj = write(dir.path(), "tokenizer.json", &byte_level_json());
    let cfg = config.map(|c| write(dir.path(), "tokenizer_config.json", &c));
    let t = Tokenizer::from_hf_files(&tj, cfg.as_deref()).expect("byte-level tokenizer.json");
    (dir, t)
}

#[test]
fn byte_level_encodes_like_gguf() {
    let (_dir, t) = byte_level(None);
    assert_eq!(t.encode("the the", false, false).unwrap(), [258, 259]);
    assert_eq!(t.encode("x 12", false, false).unwrap(), [120, 32, 49, 50]);
    assert_eq!(t.vocab_size(), 265);
    assert_eq!(t.token_kind(262), Some(TokenKind::Control));
    assert_eq!(t.token_kind(264), Some(TokenKind::UserDefined));
    assert_eq!(t.token_bytes(259), Some(&b" the"[..]));
    let text = "naïve 🦙\r\n\tlet x = 1234567; 'VE";
    assert_eq!(t.decode(&t.encode(text, false, false).unwrap()), text);
}

#[test]
fn special_added_tokens_follow_parse_special() {
    let (_dir, t) = byte_level(None);
    let text = "<|im_start|>he<tool><|im_end|>";
    assert_eq!(t.encode(text, false, true).unwrap(), [262, 256, 264, 263]);
    let plain = t.encode(text, false, false).unwrap();
    assert!(
        plain.contains(&264) && !plain.contains(&262) && !plain.contains(&263),
        "{plain:?}"
    );
    assert_eq!(t.decode(&plain), text);
}

#[test]
fn config_supplies_bos_eos_and_template() {
    let config = json!({
        "bos_token": null,
        "eos_token": {"content": "<|im_end|>", "special": true},
        "add_bos_token": false,
        "chat_template": TEMPLATE,
    });
    let (_dir, t) = byte_level(Some(config));
    assert_eq!(
        (t.bos_id(), t.eos_id(), t.eot_id()),
        (None, Some(263), Some(263))
    );
    assert!(!t.add_bos_default());
    assert!(t.is_end_of_generation(261) && t.is_end_of_generation(263));
    let msgs = [ChatMessage::user("  Hi there \n")];
    assert_eq!(
        t.apply_chat_template(&msgs, true).unwrap(),
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    );
    assert!(matches!(
        t.encode("x", true, false),
        Err(TokenizerError::NoBosToken)
    ));
}

#[test]
fn named_templates_and_jinja_file() {
    let config = json!({"bos_token": "<|endoftext|>", "chat_template": [
        {"name": "tool_use", "template": "tools"}, {"name": "default", "template": "{{ bos_token }}default"}]});
    let (_dir, t) = byte_level(Some(config));
    assert_eq!(t.bos_id(), Some(261));
    assert_eq!(
        t.apply_chat_template(&[], false).unwrap(),
        "<|endoftext|>default"
    );

    let dir = tempfile::tempdir().unwrap();
    let tj = write(dir.path(), "tokenizer.json", &byte_level_json());
    std::fs::write(dir.path().join("chat_template.jinja"), "jinja file").unwrap();
    let t = Tokenizer::from_hf_files(&tj, None).unwrap();
    assert_eq!(t.chat_template(), Some("jinja file"));
}

#[test]
fn no_template_is_an_error() {
    let (_dir, t) = byte_level(None);
    assert!(t.chat_template().is_none());
    assert!(matches!(
        t.apply_chat_template(&[ChatMessage::user("x")], true),
        Err(TokenizerError::NoChatTemplate)
    ));
}

#[test]
fn spm_style_tokenizer_json() {
    let dir = tempfile::tempdir().unwrap();
    let tj = write(dir.path(), "tokenizer.json", &spm_json());
    let cfg = write(
        dir.path(),
        "tokenizer_config.json",
        &json!({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true}),
    );
    let t = Tokenizer::from_hf_files(&tj, Some(&cfg)).unwrap();
    assert_eq!((t.bos_id(), t.eos_id()), (Some(1), Some(2)));
    assert!(t.add_bos_default());
    // ▁ h e l l o by merge rank: he, ll, ▁he, llo.
    assert_eq!(t.encode("hello", true, false).unwrap(), [1, 266, 267]);
    assert_eq!(t.token_kind(3 + 0xC3), Some(TokenKind::Byte));
    let ids = t.encode("hé", false, false).unwrap();
    assert_eq!(ids, [259, 260, 3 + 0xC3, 3 + 0xA9]);
    for text in ["hello", "héllo  wörld\n", " lead"] {
        assert_eq!(t.decode(&t.encode(text, false, false).unwrap()), text);
    }
    let ids = t.encode("<s>hello</s>", false, true).unwrap();
    assert_eq!(ids, [1, 266, 267, 2]);
    assert_eq!(t.decode(&ids), "<s>hello</s>");
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("tokenizer.json");
    let err = Tokenizer::from_hf_files(&missing, None).unwrap_err();
    assert!(matches!(err, TokenizerError::Io { .. }));
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    std::fs::write(&missing, "{ not json").unwrap();
    let err = Tokenizer::from_hf_files(&missing, None).unwrap_err();
    assert!(matches!(err, TokenizerError::BadFile { .. }), "{err}");

    let tj = write(dir.path(), "tokenizer.json", &byte_level_json());
    let cfg = dir.path().join("tokenizer_config.json");
    std::fs::write(&cfg, "[1, 2").unwrap();
    let err = Tokenizer::from_hf_files(&tj, Some(&cfg)).unwrap_err();
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
}

#[test]
fn sparse_ids_are_refused() {
    let mut vocab = serde_json::Map::new();
    vocab.insert("a".into(), json!(0));
    vocab.insert("b".into(), json!(4_000_000_000u32));
    let tj = json!({"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
                    "post_processor": null, "decoder": null, "model": bpe_model(vocab, &[], false)});
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "tokenizer.json", &tj);
    let err = Tokenizer::from_hf_files(&path, None).unwrap_err();
    assert!(err.to_string().contains("4000000000"), "{err}");
}

#[test]
fn a_regex_that_backtracks_without_end_is_an_error_not_a_panic() {
    // Oniguruma gives up on `(a+)+b` over a long run of `a`s (its retry limit) and the `onig`
    // crate panics; the tokenizer turns that into an error and stays usable.
    let mut tj = byte_level_json();
    tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = json!("(a|a)+$|(a+)+b");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "tokenizer.json", &tj);
    let t = Tokenizer::from_hf_files(&path, None).expect("the pattern compiles");
    let hostile = format!("{}c", "a".repeat(32));
    let e = t.encode(&hostile, false, false).unwrap_err();
    assert!(matches!(e, TokenizerError::Backend(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("retry-limit") && msg.contains("tokenizer.json"),
        "{msg}"
    );
    assert_eq!(t.decode(&t.encode("abc", false, false).unwrap()), "abc");
}

//! Byte-level BPE (`tokenizer.ggml.model = gpt2`) on a small hand-made vocabulary: the
//! pre-tokenizer families, merges, special tokens, special ids and streaming.

use sluice_loader::gguf::{MetaArray, MetaValue, Metadata};
use sluice_loader::tokenizer::{
    byte_level_encode, StreamDecoder, TokenKind, Tokenizer, TokenizerError,
};

// Ids 0..=255 are the single bytes, in byte order.
const HE: u32 = 256;
const SP_T: u32 = 257;
const THE: u32 = 258;
const SP_THE: u32 = 259;
const N12: u32 = 260;
const XYZ: u32 = 261;
const ENDOFTEXT: u32 = 262;
const IM_START: u32 = 263;
const IM_END: u32 = 264;
const TOOL: u32 = 265;
const PAD: u32 = 266;

/// Pieces after the bytes, with their GGUF token types.
const EXTRA: &[(&str, i32)] = &[
    ("he", 1),
    ("Ġt", 1),
    ("the", 1),
    ("Ġthe", 1),
    ("12", 1),
    ("xyz", 1),
    ("<|endoftext|>", 3),
    ("<|im_start|>", 3),
    ("<|im_end|>", 3),
    ("<tool>", 4),
    ("[PAD266]", 5),
];

const MERGES: &[&str] = &["h e", "Ġ t", "t he", "Ġt he", "1 2"];

/// Mixed Unicode, code and whitespace for round trips.
const PAGE: &str = "日本語のテキスト 中文 한국어 🦙🚀😶\u{200d}🌫️ e\u{301}\u{302} café\n\
    fn main() {\r\n\tlet x = 1234567;  // it's\n}\n\n   \t \u{a0}x 'VE 'RE I'm we'll\n";

fn metadata(pre: Option<&str>) -> Metadata {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_level_encode(&[b])).collect();
    let mut types = vec![1i32; 256];
    for (t, ty) in EXTRA {
        tokens.push(t.to_string());
        types.push(*ty);
    }
    let merges = MERGES.iter().map(|m| m.to_string()).collect();
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", MetaValue::Str("gpt2".into()));
    if let Some(pre) = pre {
        md.insert("tokenizer.ggml.pre", MetaValue::Str(pre.into()));
    }
    md.insert(
        "tokenizer.ggml.tokens",
        MetaValue::Array(MetaArray::Str(tokens)),
    );
    md.insert(
        "tokenizer.ggml.token_type",
        MetaValue::Array(MetaArray::I32(types)),
    );
    md.insert(
        "tokenizer.ggml.merges",
        MetaValue::Array(MetaArray::Str(merges)),
    );
    md.insert("tokenizer.ggml.bos_token_id", MetaValue::U32(ENDOFTEXT));
    md.insert("tokenizer.ggml.eos_token_id", MetaValue::U32(ENDOFTEXT));
    md
}

fn tokenizer(pre: &str) -> Tokenizer {
    Tokenizer::from_gguf_metadata(&metadata(Some(pre))).expect("hand-made BPE vocabulary")
}

fn bytes(s: &str) -> Vec<u32> {
    s.bytes().map(u32::from).collect()
}

#[test]
fn merges_apply_by_rank() {
    let t = tokenizer("gpt-2");
    assert_eq!(t.encode("the the", false, false).unwrap(), [THE, SP_THE]);
    assert_eq!(t.encode("hex", false, false).unwrap(), [HE, 120]);
    assert_eq!(t.encode(" tx", false, false).unwrap(), [SP_T, 120]);
    assert_eq!(t.token_id("Ġthe"), Some(SP_THE));
    assert_eq!(t.token_bytes(SP_THE), Some(&b" the"[..]));
}

#[test]
fn digits_by_family() {
    // gpt-2 keeps " 12" whole, so the merge applies; smollm and qwen2 isolate each digit.
    assert_eq!(
        tokenizer("gpt-2").encode("x 12", false, false).unwrap(),
        [120, 32, N12]
    );
    for pre in ["smollm", "starcoder", "qwen2", "deepseek-r1-qwen"] {
        let ids = tokenizer(pre).encode("x 12", false, false).unwrap();
        assert_eq!(ids, bytes("x 12"), "{pre}");
    }
    // llama3 groups up to three digits: "12" is one pre-token, and the merge applies.
    assert_eq!(
        tokenizer("llama3").encode("x 12", false, false).unwrap(),
        [120, 32, N12]
    );
}

#[test]
fn llama3_ignores_merges_for_whole_tokens() {
    assert_eq!(
        tokenizer("llama-bpe").encode("xyz", false, false).unwrap(),
        [XYZ]
    );
    assert_eq!(
        tokenizer("dbrx").encode("xyz", false, false).unwrap(),
        bytes("xyz")
    );
    assert_eq!(
        tokenizer("gpt-2").encode("xyz", false, false).unwrap(),
        bytes("xyz")
    );
}

#[test]
fn add_bos_defaults_by_family() {
    assert!(tokenizer("llama3").add_bos_default());
    assert!(tokenizer("falcon3").add_bos_default());
    assert!(!tokenizer("qwen2").add_bos_default());
    assert!(!tokenizer("smollm").add_bos_default());
    let mut md = metadata(Some("llama3"));
    md.insert("tokenizer.ggml.add_bos_token", MetaValue::Bool(false));
    assert!(!Tokenizer::from_gguf_metadata(&md)
        .unwrap()
        .add_bos_default());
    let t = tokenizer("llama3");
    assert_eq!(t.encode("he", true, false).unwrap(), [ENDOFTEXT, HE]);
}

#[test]
fn control_tokens_need_parse_special_user_defined_do_not() {
    let t = tokenizer("qwen2");
    let text = "<|im_start|>he<tool><|im_end|>";
    assert_eq!(
        t.encode(text, false, true).unwrap(),
        [IM_START, HE, TOOL, IM_END]
    );
    let plain = t.encode(text, false, false).unwrap();
    assert!(plain.contains(&TOOL), "{plain:?}");
    assert!(
        !plain.contains(&IM_START) && !plain.contains(&IM_END),
        "{plain:?}"
    );
    for ids in [t.encode(text, false, true).unwrap(), plain] {
        assert_eq!(t.decode(&ids), text);
    }
}

#[test]
fn special_ids_and_end_of_generation() {
    let t = tokenizer("qwen2");
    assert_eq!(t.bos_id(), Some(ENDOFTEXT));
    assert_eq!(t.eos_id(), Some(ENDOFTEXT));
    // No eot key: <|im_end|> is preferred over <|endoftext|>.
    assert_eq!(t.eot_id(), Some(IM_END));
    assert_eq!(t.end_of_generation_ids(), [ENDOFTEXT, IM_END]);
    assert!(t.is_end_of_generation(IM_END) && !t.is_end_of_generation(IM_START));
    assert_eq!(t.token_kind(TOOL), Some(TokenKind::UserDefined));
    assert_eq!(t.token_kind(PAD), Some(TokenKind::Unused));
    assert_eq!(t.vocab_size(), 256 + EXTRA.len());
}

#[test]
fn explicit_eot_key_wins() {
    let mut md = metadata(Some("qwen2"));
    md.insert("tokenizer.ggml.eot_token_id", MetaValue::U32(ENDOFTEXT));
    let t = Tokenizer::from_gguf_metadata(&md).unwrap();
    assert_eq!(t.eot_id(), Some(ENDOFTEXT));
    assert!(
        t.is_end_of_generation(IM_END),
        "still ends generation by its text"
    );
}

#[test]
fn out_of_range_special_id_is_ignored() {
    let mut md = metadata(None);
    let mut fixed = Metadata::new();
    for (k, v) in md.iter() {
        if k != "tokenizer.ggml.bos_token_id" {
            fixed.insert(k, v.clone());
        }
    }
    fixed.insert("tokenizer.ggml.bos_token_id", MetaValue::U32(1_000_000));
    md = fixed;
    let t = Tokenizer::from_gguf_metadata(&md).unwrap();
    assert_eq!(t.bos_id(), None);
    assert!(matches!(
        t.encode("x", true, false),
        Err(TokenizerError::NoBosToken)
    ));
}

#[test]
fn every_family_round_trips_the_page() {
    let names = sluice_loader::tokenizer::supported_pre_tokenizers();
    for pre in names.split(", ") {
        let t = tokenizer(pre);
        let ids = t.encode(PAGE, false, false).unwrap();
        assert_eq!(t.decode(&ids), PAGE, "{pre}");
    }
    // A missing pre key falls back to the default family.
    let t = Tokenizer::from_gguf_metadata(&metadata(None)).unwrap();
    assert_eq!(t.decode(&t.encode(PAGE, false, true).unwrap()), PAGE);
}

#[test]
fn configuration_errors_name_the_key() {
    let err = Tokenizer::from_gguf_metadata(&metadata(Some("no-such-pre"))).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("'no-such-pre'") && msg.contains("llama3") && msg.contains("smollm"),
        "{msg}"
    );

    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", MetaValue::Str("gpt2".into()));
    let msg = Tokenizer::from_gguf_metadata(&md).unwrap_err().to_string();
    assert!(msg.contains("tokenizer.ggml.tokens"), "{msg}");

    md.insert(
        "tokenizer.ggml.tokens",
        MetaValue::Array(MetaArray::I32(vec![1])),
    );
    let msg = Tokenizer::from_gguf_metadata(&md).unwrap_err().to_string();
    assert!(
        msg.contains("tokenizer.ggml.tokens") && msg.contains("string array"),
        "{msg}"
    );

    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", MetaValue::Str("bert".into()));
    md.insert(
        "tokenizer.ggml.tokens",
        MetaValue::Array(MetaArray::Str(vec!["a".into()])),
    );
    let msg = Tokenizer::from_gguf_metadata(&md).unwrap_err().to_string();
    assert!(msg.contains("'bert'"), "{msg}");
}

#[test]
fn bad_merges_are_dropped_not_fatal() {
    let mut md = Metadata::new();
    for (k, v) in metadata(Some("gpt-2")).iter() {
        if k != "tokenizer.ggml.merges" {
            md.insert(k, v.clone());
        }
    }
    let merges = ["h e", "nospace", "q z", "h e", "t he"]
        .map(String::from)
        .to_vec();
    md.insert(
        "tokenizer.ggml.merges",
        MetaValue::Array(MetaArray::Str(merges)),
    );
    let t = Tokenizer::from_gguf_metadata(&md).unwrap();
    assert_eq!(t.encode("the", false, false).unwrap(), [THE]);
}

#[test]
fn stream_decoder_holds_partial_characters() {
    let t = tokenizer("qwen2");
    let ids = t.encode("a🦙", false, false).unwrap();
    assert_eq!(ids.len(), 5, "one token per byte in this vocabulary");
    let mut dec = StreamDecoder::new(&t);
    let got: Vec<Option<String>> = ids
        .iter()
        .map(|&id| dec.push(id).map(str::to_string))
        .collect();
    assert_eq!(got, [Some("a".into()), None, None, None, Some("🦙".into())]);
    assert_eq!(dec.finish(), None);

    // An unfinished character is flushed as U+FFFD; a stray continuation byte likewise.
    let mut dec = StreamDecoder::new(&t);
    assert_eq!(dec.push(0xF0), None);
    assert_eq!(dec.finish(), Some("\u{FFFD}"));
    assert_eq!(dec.push(0x80), Some("\u{FFFD}"));
    assert_eq!(
        t.decode(&[0x80, u32::from(b'a'), 99_999]),
        "\u{FFFD}a\u{FFFD}"
    );
}

#[test]
fn stream_decoder_can_skip_control_tokens() {
    let t = tokenizer("qwen2");
    let ids = t.encode("he<|im_end|><tool>", false, true).unwrap();
    let render = |skip: bool| {
        let mut dec = StreamDecoder::new(&t).skip_special(skip);
        let mut out = String::new();
        for &id in &ids {
            out.push_str(dec.push(id).unwrap_or(""));
        }
        out
    };
    assert_eq!(render(false), "he<|im_end|><tool>");
    assert_eq!(render(true), "he<tool>");
}

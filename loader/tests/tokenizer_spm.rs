//! SentencePiece-style (`tokenizer.ggml.model = llama`) tokenization on a hand-made vocabulary,
//! with expected ids worked out by hand from the score-ordered merge algorithm.

use sluice_loader::gguf::{MetaArray, MetaValue, Metadata};
use sluice_loader::tokenizer::{StreamDecoder, TokenKind, Tokenizer, TokenizerError};

const UNK: u32 = 0;
const BOS: u32 = 1;
const EOS: u32 = 2;
/// Id of byte token `<0xNN>`.
const fn byte(b: u8) -> u32 {
    3 + b as u32
}
// Ordinary pieces, from id 259.
const SPACE: u32 = 259;
const A: u32 = 260;
const AB: u32 = 267;
const BC: u32 = 268;
const AA: u32 = 269;
const LLO: u32 = 271;
const SP_HE: u32 = 274;
const SP_A: u32 = 275;
const SP_SP: u32 = 276;

/// `(piece, score)` for ids 259.. (single characters score low: they never result from a merge).
const PIECES: &[(&str, f32)] = &[
    ("▁", -10.0),
    ("a", -10.0),
    ("b", -10.0),
    ("c", -10.0),
    ("e", -10.0),
    ("h", -10.0),
    ("l", -10.0),
    ("o", -10.0),
    ("ab", -2.0),
    ("bc", -1.0),
    ("aa", -1.0),
    ("ll", -1.0),
    ("llo", -0.5),
    ("he", -2.0),
    ("▁h", -3.0),
    ("▁he", -2.5),
    ("▁a", -4.0),
    ("▁▁", -6.0),
];

fn vocab_metadata() -> Metadata {
    vocab_metadata_of(PIECES)
}

/// The metadata of the specials, the 256 byte tokens and `pieces` from id 259.
fn vocab_metadata_of(pieces: &[(&str, f32)]) -> Metadata {
    let mut tokens = vec!["<unk>".to_string(), "<s>".to_string(), "</s>".to_string()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0f32; 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (p, s) in pieces {
        tokens.push(p.to_string());
        types.push(1);
        scores.push(*s);
    }
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", MetaValue::Str("llama".into()));
    md.insert("tokenizer.ggml.pre", MetaValue::Str("default".into()));
    md.insert(
        "tokenizer.ggml.tokens",
        MetaValue::Array(MetaArray::Str(tokens)),
    );
    md.insert(
        "tokenizer.ggml.token_type",
        MetaValue::Array(MetaArray::I32(types)),
    );
    md.insert(
        "tokenizer.ggml.scores",
        MetaValue::Array(MetaArray::F32(scores)),
    );
    md
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_gguf_metadata(&vocab_metadata()).expect("hand-made SPM vocabulary")
}

#[test]
fn defaults_for_spm() {
    let t = tokenizer();
    assert_eq!(t.vocab_size(), 3 + 256 + PIECES.len());
    assert_eq!(
        (t.bos_id(), t.eos_id(), t.eot_id()),
        (Some(BOS), Some(EOS), None)
    );
    assert!(t.add_bos_default());
    assert!(t.is_end_of_generation(EOS));
    assert_eq!(t.token_kind(byte(0x41)), Some(TokenKind::Byte));
    assert_eq!(t.token_bytes(byte(0xC3)), Some(&[0xC3u8][..]));
    assert_eq!(t.token_bytes(SP_HE), Some(&b" he"[..]));
}

#[test]
fn highest_score_merges_first() {
    // ▁ h e l l o: ll(-1), then llo(-0.5), he(-2), ▁he(-2.5); ▁h(-3) is stale by then.
    assert_eq!(
        tokenizer().encode("hello", false, false).unwrap(),
        [SP_HE, LLO]
    );
    // ▁ a b c: bc(-1) beats ab(-2), which is then stale; ▁a(-4) last.
    assert_eq!(tokenizer().encode("abc", false, false).unwrap(), [SP_A, BC]);
}

#[test]
fn equal_scores_merge_leftmost() {
    // ▁ a a a: both aa pairs score -1; the left one wins, and ▁a no longer applies.
    assert_eq!(
        tokenizer().encode("aaa", false, false).unwrap(),
        [SPACE, AA, A]
    );
}

#[test]
fn spaces_and_byte_fallback() {
    // ▁a ▁▁ then é and \n have no pieces: their UTF-8 bytes as <0xNN> tokens.
    let ids = tokenizer().encode("a  é\n", false, false).unwrap();
    assert_eq!(ids, [SP_A, SP_SP, byte(0xC3), byte(0xA9), byte(0x0A)]);
    assert_eq!(tokenizer().decode(&ids), "a  é\n");
}

#[test]
fn bos_and_special_tokens() {
    let t = tokenizer();
    assert_eq!(t.encode("ab", true, false).unwrap(), [BOS, SPACE, AB]);
    // After a special token the next fragment gets its own space prefix, as in llama.cpp.
    let ids = t.encode("<s>ab</s>", false, true).unwrap();
    assert_eq!(ids, [BOS, SPACE, AB, EOS]);
    assert_eq!(t.decode(&ids), "<s>ab</s>");
    // Without parse_special the markers are text.
    let ids = t.encode("<s>ab</s>", false, false).unwrap();
    assert!(!ids.contains(&BOS) && !ids.contains(&EOS), "{ids:?}");
    assert_eq!(t.decode(&ids), "<s>ab</s>");
}

#[test]
fn round_trips_text() {
    let t = tokenizer();
    for text in [
        "hello",
        " hello",
        "héllo wörld\t\r\n",
        "日本語 🦙",
        "  ",
        "",
    ] {
        let ids = t.encode(text, false, false).unwrap();
        assert_eq!(t.decode(&ids), text, "{ids:?}");
    }
}

#[test]
fn stream_decoder_matches_decode() {
    let t = tokenizer();
    let text = "a 🦙 é";
    let ids = t.encode(text, false, false).unwrap();
    let mut dec = StreamDecoder::new(&t);
    let mut out = String::new();
    let mut chunks = 0;
    for &id in &ids {
        if let Some(s) = dec.push(id) {
            out.push_str(s);
            chunks += 1;
        }
    }
    assert!(dec.finish().is_none());
    assert_eq!(out, text);
    assert!(
        chunks < ids.len(),
        "the llama's four byte tokens come out as one chunk"
    );
}

#[test]
fn missing_byte_token_falls_back_to_unk() {
    let mut md = Metadata::new();
    let tokens: Vec<String> = ["<unk>", "<s>", "</s>", "▁", "a"]
        .map(String::from)
        .to_vec();
    md.insert("tokenizer.ggml.model", MetaValue::Str("llama".into()));
    md.insert(
        "tokenizer.ggml.tokens",
        MetaValue::Array(MetaArray::Str(tokens)),
    );
    let t = Tokenizer::from_gguf_metadata(&md).unwrap();
    assert_eq!(t.encode("aé", false, false).unwrap(), [3, 4, UNK, UNK]);
}

#[test]
fn mismatched_scores_are_an_error() {
    let mut md = vocab_metadata();
    let mut bad = Metadata::new();
    for (k, v) in md.iter() {
        if k != "tokenizer.ggml.scores" {
            bad.insert(k, v.clone());
        }
    }
    bad.insert(
        "tokenizer.ggml.scores",
        MetaValue::Array(MetaArray::F32(vec![0.0; 3])),
    );
    md = bad;
    match Tokenizer::from_gguf_metadata(&md) {
        Err(
            e @ TokenizerError::BadKey {
                key: "tokenizer.ggml.scores",
                ..
            },
        ) => {
            assert!(e.to_string().contains("3 scores"), "{e}")
        }
        other => panic!("expected a scores error, got {other:?}"),
    }
}

#[test]
fn a_space_with_no_piece_falls_back_to_the_marks_bytes() {
    // Without a `▁` piece a lone space is written as `▁`'s UTF-8 bytes, as llama.cpp does.
    let mut pieces = PIECES.to_vec();
    pieces[0] = ("[unused]", -10.0);
    let t = Tokenizer::from_gguf_metadata(&vocab_metadata_of(&pieces)).unwrap();
    // "▁o▁o": no piece holds `▁`, so each mark is three byte tokens; `o` is id 266.
    let mark = [byte(0xE2), byte(0x96), byte(0x81)];
    let want: Vec<u32> = [&mark[..], &[266], &mark[..], &[266]].concat();
    assert_eq!(t.encode("o o", false, false).unwrap(), want);
    // Byte tokens decode to their bytes, so the marks come back as marks (llama.cpp too).
    assert_eq!(t.decode(&want), "▁o▁o");
}

#[test]
fn token_ids_by_text_and_table_size() {
    let t = tokenizer();
    assert_eq!(t.token_id("▁he"), Some(SP_HE));
    assert_eq!(t.token_id("<0x41>"), Some(byte(0x41)));
    assert_eq!(t.token_id("</s>"), Some(EOS));
    assert_eq!(t.token_id("▁zz"), None);
    assert_eq!(t.token_id("a b"), None, "a real space never matches");
    let bytes = t.table_bytes().expect("SPM reports its tables");
    assert!(bytes > 0 && bytes < 64 * t.vocab_size(), "{bytes}");
}

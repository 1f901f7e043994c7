//! The real models' tokenizers (SmolLM2-135M: `smollm` pre; Qwen2.5-Coder-0.5B: `qwen2` pre)
//! against llama.cpp's reference tokenisations in `tests/reference/`, llama.cpp's `chktxt`,
//! round trips, their chat templates, and the same vocabularies loaded as `tokenizer.json`.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sluice_loader::cache::require_model;
use sluice_loader::gguf::{GgufFile, Metadata};
use sluice_loader::tokenizer::{ChatMessage, StreamDecoder, TokenKind, Tokenizer};

const SMOLLM: &str = "smollm2-135m";
const QWEN: &str = "qwen2.5-coder-0.5b";

/// llama.cpp's pre-tokenizer check string (`chktxt` in `convert_hf_to_gguf.py`).
const CHKTXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u{200d}🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/// SmolLM2's ids for `CHKTXT`. Hashed as `convert_hf_to_gguf.py` does (sha256 of Python's
/// `str(ids)`) they give 855059429035d75a…, the hash it records for `smollm`.
const SMOLLM_CHKTXT: &[u32] = &[
    3805, 8866, 1116, 3805, 197, 216, 1656, 216, 197, 11181, 472, 2367, 3914, 198, 10813, 244, 218,
    365, 5472, 25, 40303, 131, 321, 231, 10813, 230, 121, 31752, 365, 30404, 649, 21658, 271,
    46336, 483, 25, 4636, 246, 223, 15107, 116, 243, 10813, 116, 243, 216, 35, 216, 35, 35, 216,
    35, 35, 35, 216, 35, 35, 35, 35, 216, 35, 35, 35, 35, 35, 216, 35, 35, 35, 35, 35, 35, 216, 35,
    35, 35, 35, 35, 35, 35, 216, 35, 35, 35, 35, 35, 35, 35, 35, 216, 35, 30, 35, 216, 35, 950, 35,
    216, 35, 2026, 35, 15822, 248, 218, 40478, 131, 40478, 237, 172, 249, 229, 40478, 233, 172,
    249, 220, 40478, 240, 40478, 132, 40478, 249, 172, 249, 219, 40478, 249, 40478, 112, 40478,
    131, 40478, 223, 10813, 242, 219, 9148, 19805, 235, 177, 221, 128, 32632, 21949, 36149, 115,
    40994, 33, 35, 33, 36, 33, 37, 33, 18614, 119, 186, 138, 248, 216, 21771, 2031, 28733, 28050,
    6643, 46438, 6485, 40610, 5470, 235, 156, 228, 12681, 29441, 6511, 9175, 39511, 7872, 7855,
    11193, 1969, 1969, 3725, 1093, 1093, 5592, 950, 36689, 10095, 16693, 16693, 16693, 339, 3543,
    719, 637, 100, 793, 384, 506, 665, 28, 637, 3256, 346, 2090, 47, 637, 61, 441, 2090, 339, 3060,
    919, 357, 28, 637, 52, 346, 702, 634, 7188, 47, 1046, 23, 25917, 253, 23, 92, 60,
];

/// Qwen2.5's ids for `CHKTXT`; they hash to e636dc30a262dcc0…, the hash recorded for `qwen2`.
const QWEN_CHKTXT: &[u32] = &[
    198, 4710, 14731, 65497, 7847, 1572, 2303, 78672, 10947, 145836, 320, 8252, 8, 26525, 114, 378,
    235, 149921, 30543, 320, 35673, 99066, 97534, 8, 25521, 227, 11162, 99, 247, 149955, 220, 18,
    220, 18, 18, 220, 18, 18, 18, 220, 18, 18, 18, 18, 220, 18, 18, 18, 18, 18, 220, 18, 18, 18,
    18, 18, 18, 220, 18, 18, 18, 18, 18, 18, 18, 220, 18, 18, 18, 18, 18, 18, 18, 18, 220, 18, 13,
    18, 220, 18, 496, 18, 220, 18, 1112, 18, 220, 146394, 97529, 241, 44258, 233, 146568, 44258,
    224, 147603, 20879, 115, 146280, 44258, 223, 146280, 147272, 97529, 227, 144534, 937, 104100,
    18493, 22377, 99257, 16, 18, 16, 19, 16, 20, 16, 35727, 21216, 55460, 53237, 18658, 14144,
    1456, 13073, 63471, 33594, 3038, 133178, 79012, 3355, 4605, 4605, 13874, 13874, 73594, 3014,
    3014, 28149, 17085, 2928, 26610, 7646, 358, 3003, 1012, 364, 83, 813, 566, 594, 1052, 11, 364,
    787, 498, 2704, 30, 364, 44, 537, 2704, 358, 3278, 1281, 432, 11, 364, 35, 498, 1075, 1045,
    15243, 30, 1205, 6, 42612, 264, 63866, 43,
];

/// Mixed Unicode, code and whitespace for round trips.
const PAGE: &str = "Über naïve café — 日本語のテキスト、中文，한국어 🦙🚀👩\u{200d}💻🇫🇷 e\u{301}a\u{308}\u{20dd}\n\
    fn main() {\r\n\tlet n: u64 = 1234567;   // it's 'VE 'RE we'll I'M\r\n\t\treturn;\n}\n\n\
    \u{a0}\u{3000}x\u{2028}y\t\t  \n    indented\n$ echo \"a\\tb\" | tr -d '\\n' >> out.txt\n\
    <|im_start|>not parsed<|im_end|> <tool_call> 3.14159e-10 0x1F 1,000,000\n\u{feff}\u{0}\u{7f}end ";

/// The llama.cpp reference files, kept in the repository's `tests/reference` (one level above
/// this crate) so that a clone is self-sufficient.
fn reference_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("reference");
    assert!(
        dir.is_dir(),
        "the llama.cpp reference files were not found: expected the directory {}",
        dir.display()
    );
    dir
}

/// The model's GGUF metadata (the models are fetched by `scripts/fetch-models.sh`).
fn metadata(alias: &str) -> Metadata {
    let path = require_model(alias);
    GgufFile::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .metadata
}

/// Each model's tokenizer, built once for the whole test binary.
fn tokenizer(alias: &str) -> &'static Tokenizer {
    static SMOLLM_TOK: OnceLock<Tokenizer> = OnceLock::new();
    static QWEN_TOK: OnceLock<Tokenizer> = OnceLock::new();
    let cell = match alias {
        SMOLLM => &SMOLLM_TOK,
        QWEN => &QWEN_TOK,
        other => panic!("no tokenizer cell for {other}"),
    };
    cell.get_or_init(|| {
        Tokenizer::from_gguf_metadata(&metadata(alias)).unwrap_or_else(|e| panic!("{alias}: {e}"))
    })
}

/// `(prompt id, text, add_bos, expected ids)` from `tests/reference/<alias>.json`.
fn reference_prompts(alias: &str) -> Vec<(String, String, bool, Vec<u32>)> {
    let path = reference_dir().join(format!("{alias}.json"));
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let v: Value = serde_json::from_slice(&bytes).expect("reference JSON");
    let prompts = v["prompts"].as_object().expect("prompts object");
    assert!(!prompts.is_empty(), "{} has no prompts", path.display());
    prompts
        .iter()
        .map(|(id, p)| {
            let ids = p["prompt_token_ids"].as_array().expect("prompt_token_ids");
            let ids = ids.iter().map(|x| x.as_u64().expect("id") as u32).collect();
            let text = p["text"].as_str().expect("text").to_string();
            (
                id.clone(),
                text,
                p["add_bos"].as_bool().expect("add_bos"),
                ids,
            )
        })
        .collect()
}

fn check_reference_prompts(tok: &Tokenizer, alias: &str) {
    for (id, text, add_bos, want) in reference_prompts(alias) {
        let got = tok.encode(&text, add_bos, false).unwrap();
        assert_eq!(got, want, "{alias} prompt {id}: {text:?}");
        let got = tok.encode(&text, add_bos, true).unwrap();
        assert_eq!(got, want, "{alias} prompt {id} with parse_special");
        assert_eq!(tok.decode(&got), text, "{alias} prompt {id} decode");
    }
}

#[test]
fn smollm2_reference_prompts() {
    check_reference_prompts(tokenizer(SMOLLM), SMOLLM);
}

#[test]
fn qwen_reference_prompts() {
    check_reference_prompts(tokenizer(QWEN), QWEN);
}

#[test]
fn chktxt_matches_hf() {
    assert_eq!(
        tokenizer(SMOLLM).encode(CHKTXT, false, false).unwrap(),
        SMOLLM_CHKTXT
    );
    assert_eq!(
        tokenizer(QWEN).encode(CHKTXT, false, false).unwrap(),
        QWEN_CHKTXT
    );
}

#[test]
fn round_trips() {
    for alias in [SMOLLM, QWEN] {
        let tok = tokenizer(alias);
        for text in [PAGE, CHKTXT] {
            for parse_special in [false, true] {
                let ids = tok.encode(text, false, parse_special).unwrap();
                assert_eq!(
                    tok.decode(&ids),
                    text,
                    "{alias} parse_special={parse_special}"
                );
                let mut stream = StreamDecoder::new(tok);
                let mut out = String::new();
                for &id in &ids {
                    out.push_str(stream.push(id).unwrap_or(""));
                }
                out.push_str(stream.finish().unwrap_or(""));
                assert_eq!(out, text, "{alias} streamed");
            }
        }
    }
}

#[test]
fn byte_level_tables_stay_small() {
    // Pieces, kinds, the token index and the merges: about 50 bytes a token, where the
    // `tokenizers` BPE model kept each text twice plus string-keyed merges.
    for alias in [SMOLLM, QWEN] {
        let tok = tokenizer(alias);
        let bytes = tok
            .table_bytes()
            .expect("GGUF byte-level BPE reports its tables");
        let per_token = bytes / tok.vocab_size();
        eprintln!("{alias}: {bytes} bytes of tables, {per_token} a token");
        assert!(per_token <= 64, "{alias}: {per_token} bytes a token");
    }
}

#[test]
fn special_ids() {
    let s = tokenizer(SMOLLM);
    assert_eq!(s.vocab_size(), 49152);
    assert_eq!(
        (s.bos_id(), s.eos_id(), s.eot_id()),
        (Some(1), Some(2), Some(2))
    );
    assert!(!s.add_bos_default());
    assert_eq!(s.end_of_generation_ids(), [0, 2]);
    assert_eq!(s.token_kind(1), Some(TokenKind::Control));

    let q = tokenizer(QWEN);
    assert_eq!(q.vocab_size(), 151936);
    assert_eq!(
        (q.bos_id(), q.eos_id(), q.eot_id()),
        (Some(151643), Some(151645), Some(151645))
    );
    assert!(!q.add_bos_default());
    assert_eq!(q.end_of_generation_ids(), [151643, 151645]);
    assert_eq!(q.token_kind(151657), Some(TokenKind::UserDefined));
    assert_eq!(q.token_kind(151665), Some(TokenKind::Unused));
    // <tool_call> is USER_DEFINED: split out even without parse_special.
    assert_eq!(
        q.encode("a<tool_call>", false, false).unwrap(),
        [64, 151657]
    );
}

#[test]
fn chat_templates_render_like_hf() {
    let msgs = [ChatMessage::user("What is 2+2?")];
    assert_eq!(
        tokenizer(SMOLLM).apply_chat_template(&msgs, true).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        tokenizer(QWEN).apply_chat_template(&msgs, true).unwrap(),
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    let convo = [
        ChatMessage::system("Be brief."),
        ChatMessage::user("Hi"),
        ChatMessage::assistant("Hello!"),
        ChatMessage::user("Bye"),
    ];
    let want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
                <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n";
    for alias in [SMOLLM, QWEN] {
        assert_eq!(
            tokenizer(alias).apply_chat_template(&convo, false).unwrap(),
            want,
            "{alias}"
        );
    }
}

#[test]
fn rendered_chat_encodes_with_control_tokens() {
    for (alias, im_start, im_end) in [(SMOLLM, 1, 2), (QWEN, 151644, 151645)] {
        let tok = tokenizer(alias);
        let text = tok
            .apply_chat_template(&[ChatMessage::user("Hi")], true)
            .unwrap();
        let ids = tok.encode(&text, false, true).unwrap();
        assert_eq!(ids[0], im_start, "{alias}");
        assert_eq!(ids.iter().filter(|&&i| i == im_start).count(), 3, "{alias}");
        assert_eq!(ids.iter().filter(|&&i| i == im_end).count(), 2, "{alias}");
        assert_eq!(tok.decode(&ids), text);
        let plain = tok.encode(&text, false, false).unwrap();
        assert!(
            !plain.contains(&im_start),
            "{alias}: CONTROL tokens only with parse_special"
        );
    }
}

/// An HF `tokenizer.json` for the model's vocabulary, with the pre-tokenizer written the way
/// HF describes it (not through this crate's regex table).
fn hf_tokenizer_json(md: &Metadata, alias: &str) -> Value {
    let tokens = md.get_str_array("tokenizer.ggml.tokens").expect("tokens");
    let types = md
        .get_array("tokenizer.ggml.token_type")
        .and_then(|a| a.to_i64_vec())
        .expect("types");
    let merges = md.get_str_array("tokenizer.ggml.merges").expect("merges");
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (i, (t, ty)) in tokens.iter().zip(&types).enumerate() {
        // As in SmolLM2's file, added tokens are also in the model vocabulary (HF would
        // otherwise renumber them after it).
        if matches!(ty, 1 | 3 | 4) {
            vocab.insert(t.clone(), json!(i));
        }
        if matches!(ty, 3 | 4) {
            added.push(
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": *ty == 3}),
            );
        }
    }
    let pre = match alias {
        SMOLLM => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]}),
        _ => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex":
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"},
             "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]}),
    };
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": pre, "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges},
    })
}

#[test]
fn tokenizer_json_of_the_same_vocabulary_agrees() {
    // GGUF vocabularies run on this crate's own BPE tables, `tokenizer.json` on the
    // `tokenizers` crate: a long English text must give the same ids through both.
    let gpl = std::fs::read_to_string(reference_dir().join("../data/gpl-3.0.txt")).unwrap();
    for (alias, chk) in [(SMOLLM, SMOLLM_CHKTXT), (QWEN, QWEN_CHKTXT)] {
        let md = metadata(alias);
        let gguf_tok = tokenizer(alias);
        let dir = tempfile::tempdir().unwrap();
        let tj = dir.path().join("tokenizer.json");
        std::fs::write(
            &tj,
            serde_json::to_vec(&hf_tokenizer_json(&md, alias)).unwrap(),
        )
        .unwrap();
        let cfg = dir.path().join("tokenizer_config.json");
        let eos = gguf_tok
            .eos_id()
            .and_then(|id| gguf_tok.token_bytes(id))
            .unwrap();
        let config = json!({"eos_token": String::from_utf8_lossy(eos), "add_bos_token": false,
                            "chat_template": gguf_tok.chat_template().unwrap()});
        std::fs::write(&cfg, serde_json::to_vec(&config).unwrap()).unwrap();

        let hf = Tokenizer::from_hf_files(&tj, Some(&cfg)).unwrap();
        check_reference_prompts(&hf, alias);
        assert_eq!(hf.encode(CHKTXT, false, false).unwrap(), chk, "{alias}");
        for (text, name) in [(PAGE, "PAGE"), (gpl.as_str(), "gpl-3.0.txt")] {
            for parse_special in [false, true] {
                let ids = hf.encode(text, false, parse_special).unwrap();
                assert_eq!(
                    ids,
                    gguf_tok.encode(text, false, parse_special).unwrap(),
                    "{alias} {name}"
                );
                assert_eq!(hf.decode(&ids), text);
            }
        }
        assert_eq!(hf.eos_id(), gguf_tok.eos_id());
        assert_eq!(hf.eot_id(), gguf_tok.eot_id());
        let msgs = [ChatMessage::user("Hi")];
        assert_eq!(
            hf.apply_chat_template(&msgs, true).unwrap(),
            gguf_tok.apply_chat_template(&msgs, true).unwrap()
        );
    }
}

#[test]
fn long_conversations_render_within_the_template_bounds() {
    // The real templates take 10-50 instructions per message; 10 000 messages stay far inside
    // the fuel bound that stops templates without end.
    let n = 10_000;
    let msgs: Vec<ChatMessage> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                ChatMessage::user(format!("question {i}"))
            } else {
                ChatMessage::assistant(format!("answer {i}"))
            }
        })
        .collect();
    for alias in [SMOLLM, QWEN] {
        let text = tokenizer(alias).apply_chat_template(&msgs, true).unwrap();
        assert!(
            text.contains("question 0") && text.contains("answer 9999"),
            "{alias}"
        );
    }
}

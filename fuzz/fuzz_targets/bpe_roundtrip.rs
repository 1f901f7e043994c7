//! Fuzzes byte-level BPE encoding on arbitrary text, through each supported pre-tokenizer's
//! splits: encoding never panics, and decoding gives the text back byte for byte.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_loader::gguf::{MetaArray, MetaValue, Metadata};
use sluice_loader::tokenizer::{byte_level_encode, supported_pre_tokenizers, Tokenizer};

/// Merges for a few common pairs, so the BPE has work beyond single bytes.
const MERGES: [(&str, &str); 6] = [(" ", "t"), ("h", "e"), (" t", "he"), ("i", "n"), ("e", "r"), ("\n", "\n")];

/// One tokenizer per supported pre-tokenizer name, built once.
fn tokenizers() -> &'static [Tokenizer] {
    static T: OnceLock<Vec<Tokenizer>> = OnceLock::new();
    T.get_or_init(|| {
        let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_level_encode(&[b])).collect();
        let enc = |s: &str| byte_level_encode(s.as_bytes());
        let mut seen: HashMap<String, ()> = HashMap::new();
        let mut merges = Vec::new();
        for (a, b) in MERGES {
            merges.push(format!("{} {}", enc(a), enc(b)));
            let joined = enc(&format!("{a}{b}"));
            if seen.insert(joined.clone(), ()).is_none() {
                tokens.push(joined);
            }
        }
        let types = vec![1i32; tokens.len()];
        supported_pre_tokenizers()
            .split(", ")
            .map(|pre| {
                let mut md = Metadata::new();
                md.insert("tokenizer.ggml.model", MetaValue::Str("gpt2".into()));
                md.insert("tokenizer.ggml.pre", MetaValue::Str(pre.into()));
                md.insert("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::Str(tokens.clone())));
                md.insert("tokenizer.ggml.token_type", MetaValue::Array(MetaArray::I32(types.clone())));
                md.insert("tokenizer.ggml.merges", MetaValue::Array(MetaArray::Str(merges.clone())));
                Tokenizer::from_gguf_metadata(&md).unwrap_or_else(|e| panic!("{pre}: {e}"))
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let all = tokenizers();
    let tok = &all[pick as usize % all.len()];
    let ids = tok.encode(text, false, false).expect("byte-level BPE encodes any text");
    assert_eq!(tok.decode(&ids), text, "ids {ids:?}");
});

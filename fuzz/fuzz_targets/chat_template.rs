//! Fuzzes chat-template rendering on arbitrary template text, as a hostile model file could
//! carry it: the render must return Ok or Err, never panic or hang (the fuel and output bounds
//! in `tokenizer::chat` stop templates without end).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_loader::gguf::{MetaArray, MetaValue, Metadata};
use sluice_loader::tokenizer::{byte_level_encode, ChatMessage, Tokenizer};

/// A byte-level vocabulary with `<s>`/`</s>`, without a template.
fn base() -> &'static Metadata {
    static MD: OnceLock<Metadata> = OnceLock::new();
    MD.get_or_init(|| {
        let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_level_encode(&[b])).collect();
        tokens.extend(["<s>".to_string(), "</s>".to_string()]);
        let mut types = vec![1i32; 256];
        types.extend([3, 3]);
        let mut md = Metadata::new();
        md.insert("tokenizer.ggml.model", MetaValue::Str("gpt2".into()));
        md.insert("tokenizer.ggml.pre", MetaValue::Str("gpt-2".into()));
        md.insert("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::Str(tokens)));
        md.insert("tokenizer.ggml.token_type", MetaValue::Array(MetaArray::I32(types)));
        md.insert("tokenizer.ggml.merges", MetaValue::Array(MetaArray::Str(vec![])));
        md.insert("tokenizer.ggml.bos_token_id", MetaValue::U32(256));
        md.insert("tokenizer.ggml.eos_token_id", MetaValue::U32(257));
        md
    })
}

fuzz_target!(|data: &[u8]| {
    let mut md = base().clone();
    let template = String::from_utf8_lossy(data).into_owned();
    md.insert("tokenizer.chat_template", MetaValue::Str(template));
    let tok = Tokenizer::from_gguf_metadata(&md).expect("the fixed vocabulary builds");
    let messages = [
        ChatMessage::system("be brief"),
        ChatMessage::user("hi"),
        ChatMessage::assistant("hello"),
        ChatMessage::user("again"),
    ];
    for add_generation_prompt in [false, true] {
        if let Err(e) = tok.apply_chat_template(&messages, add_generation_prompt) {
            // Every error renders.
            assert!(!e.to_string().is_empty());
        }
    }
});

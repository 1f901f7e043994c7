//! Fuzzes `ModelSpec::from_gguf` on hostile hyper-parameters: each llama key of a toy model
//! (2 layers, 64 wide, 4 query heads of 16, 2 kv heads, 100 tokens) is kept, dropped, or given
//! a value and a type picked by the input. The derivations must refuse what does not fit with
//! an error naming the file, never panic on a division, an overflow or a cast.
#![no_main]

#[path = "toy_model.rs"]
mod toy_model;

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_loader::gguf::{MetaArray, MetaValue, Metadata};
use sluice_loader::spec::ModelSpec;
use sluice_loader::TensorIndex;

/// The keys and the toy's values for them.
const KEYS: [(&str, u64); 12] = [
    ("llama.block_count", 2),
    ("llama.context_length", 2048),
    ("llama.embedding_length", 64),
    ("llama.feed_forward_length", 128),
    ("llama.attention.head_count", 4),
    ("llama.attention.head_count_kv", 2),
    ("llama.rope.dimension_count", 16),
    ("llama.attention.key_length", 16),
    ("llama.attention.value_length", 16),
    ("llama.vocab_size", 100),
    ("llama.rope.freq_base", 10000),
    ("llama.attention.layer_norm_rms_epsilon", 0),
];

/// The toy model's tensors, built once.
fn index() -> &'static TensorIndex {
    static INDEX: OnceLock<TensorIndex> = OnceLock::new();
    INDEX.get_or_init(|| toy_model::index(toy_model::Names::Gguf, "/models/toy.gguf"))
}

/// A value for a key from 9 input bytes: the first picks the kind, the rest the number.
fn value(kind: u8, raw: u64, toy: u64) -> Option<MetaValue> {
    Some(match kind % 12 {
        0 => return None,
        1 => MetaValue::U32(raw as u32),
        2 => MetaValue::U64(raw),
        3 => MetaValue::I32(raw as i32),
        4 => MetaValue::I64(raw as i64),
        5 => MetaValue::F32(f32::from_bits(raw as u32)),
        6 => MetaValue::F64(f64::from_bits(raw)),
        7 => MetaValue::Str(format!("{raw}")),
        8 => MetaValue::Bool(raw & 1 == 1),
        9 => MetaValue::Array(MetaArray::U32(vec![raw as u32; (raw % 5) as usize])),
        10 => MetaValue::U32(toy.saturating_add(raw % 3).saturating_sub(1) as u32),
        _ => MetaValue::F32(toy as f32),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut md = Metadata::new();
    md.insert("general.architecture", MetaValue::Str("llama".into()));
    for (i, (key, toy)) in KEYS.iter().enumerate() {
        let chunk = data.get(i * 9..i * 9 + 9);
        let v = match chunk {
            // Past the input's end: the toy's own value.
            None => Some(MetaValue::U32(*toy as u32)),
            Some(c) => {
                let raw = u64::from_le_bytes(c[1..9].try_into().expect("8 bytes"));
                value(c[0], raw, *toy)
            }
        };
        if let Some(v) = v {
            md.insert(*key, v);
        }
    }
    match ModelSpec::from_gguf(Path::new("/models/toy.gguf"), &md, index()) {
        Ok(spec) => {
            assert!(spec.n_layer > 0 && spec.n_head > 0 && spec.n_head_kv > 0, "{spec:?}");
            assert_eq!(spec.n_head % spec.n_head_kv, 0, "{spec:?}");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("toy.gguf"), "the error names the file: {msg}");
        }
    }
});

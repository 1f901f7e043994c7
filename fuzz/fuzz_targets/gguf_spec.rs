//! Fuzzes `ModelSpec::from_gguf` on hostile hyper-parameters: each llama key of a toy model
//! (2 layers, 64 wide, 4 query heads of 16, 2 kv heads, 100 tokens) is kept, dropped, or given
//! a value and a type picked by the input. The derivations must refuse what does not fit with
//! an error naming the file, never panic on a division, an overflow or a cast.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_loader::gguf::{MetaArray, MetaValue, Metadata};
use sluice_loader::spec::ModelSpec;
use sluice_loader::{GgmlType, TensorIndex, TensorInfo};

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

/// The toy model's tensors under GGUF names, F32, back to back.
fn index() -> &'static TensorIndex {
    static INDEX: OnceLock<TensorIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let (embd, ff, q, kv, vocab) = (64u64, 128u64, 64u64, 32u64, 100u64);
        let mut names: Vec<(String, Vec<u64>)> = vec![("token_embd.weight".into(), vec![embd, vocab])];
        for l in 0..2 {
            let p = format!("blk.{l}");
            names.push((format!("{p}.attn_norm.weight"), vec![embd]));
            names.push((format!("{p}.attn_q.weight"), vec![embd, q]));
            names.push((format!("{p}.attn_k.weight"), vec![embd, kv]));
            names.push((format!("{p}.attn_v.weight"), vec![embd, kv]));
            names.push((format!("{p}.attn_output.weight"), vec![q, embd]));
            names.push((format!("{p}.ffn_norm.weight"), vec![embd]));
            names.push((format!("{p}.ffn_gate.weight"), vec![embd, ff]));
            names.push((format!("{p}.ffn_up.weight"), vec![embd, ff]));
            names.push((format!("{p}.ffn_down.weight"), vec![ff, embd]));
        }
        names.push(("output_norm.weight".into(), vec![embd]));
        let mut offset = 0;
        let tensors = names
            .into_iter()
            .map(|(name, dims)| {
                let n_bytes = dims.iter().product::<u64>() * 4;
                let info = TensorInfo { name, dims, ty: GgmlType::F32, file: 0, offset, n_bytes };
                offset += n_bytes;
                info
            })
            .collect();
        TensorIndex { files: vec![PathBuf::from("/models/toy.gguf")], tensors }
    })
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

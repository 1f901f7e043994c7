//! Fuzzes `ModelSpec::from_hf_config` on arbitrary `config.json` text against a fixed toy
//! model's tensors (2 layers, 64 wide, 4 query heads of 16, 2 kv heads, 100 tokens): the
//! derivations (head sizes, GQA groups, RoPE dims, scaling) must refuse hostile numbers with
//! an error naming the file, never panic on a division or an overflow.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_loader::spec::ModelSpec;
use sluice_loader::{GgmlType, TensorIndex, TensorInfo};

const CONFIG: &str = "/models/toy-hf/config.json";

/// The toy model's tensors under HF names, F32, back to back.
fn index() -> &'static TensorIndex {
    static INDEX: OnceLock<TensorIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let (embd, ff, q, kv, vocab) = (64u64, 128u64, 64u64, 32u64, 100u64);
        let mut names: Vec<(String, Vec<u64>)> = vec![("model.embed_tokens.weight".into(), vec![embd, vocab])];
        for l in 0..2 {
            let p = format!("model.layers.{l}");
            names.push((format!("{p}.input_layernorm.weight"), vec![embd]));
            names.push((format!("{p}.self_attn.q_proj.weight"), vec![embd, q]));
            names.push((format!("{p}.self_attn.k_proj.weight"), vec![embd, kv]));
            names.push((format!("{p}.self_attn.v_proj.weight"), vec![embd, kv]));
            names.push((format!("{p}.self_attn.o_proj.weight"), vec![q, embd]));
            names.push((format!("{p}.post_attention_layernorm.weight"), vec![embd]));
            names.push((format!("{p}.mlp.gate_proj.weight"), vec![embd, ff]));
            names.push((format!("{p}.mlp.up_proj.weight"), vec![embd, ff]));
            names.push((format!("{p}.mlp.down_proj.weight"), vec![ff, embd]));
        }
        names.push(("model.norm.weight".into(), vec![embd]));
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
        TensorIndex { files: vec![PathBuf::from("/models/toy-hf/model.safetensors")], tensors }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ModelSpec::from_hf_config(Path::new(CONFIG), text, index(), Path::new("/models/toy-hf")) {
        Ok(spec) => {
            // A spec the engine can size buffers from.
            assert!(spec.n_layer > 0 && spec.n_head > 0 && spec.n_head_kv > 0, "{spec:?}");
            assert_eq!(spec.n_head % spec.n_head_kv, 0, "{spec:?}");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("toy-hf"), "the error names the model: {msg}");
        }
    }
});

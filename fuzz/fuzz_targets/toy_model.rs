//! The toy model the spec targets derive from: 2 layers, 64 wide, 4 query heads of 16, 2 kv
//! heads, an FFN of 128, 100 tokens, tied embeddings; its tensors F32, back to back.
#![allow(dead_code)] // each target uses one of the two namings

use std::path::PathBuf;

use sluice_loader::{GgmlType, TensorIndex, TensorInfo};

/// How the tensors are named.
#[derive(Clone, Copy)]
pub enum Names {
    /// llama.cpp's (`blk.0.attn_q.weight`).
    Gguf,
    /// HF checkpoints' (`model.layers.0.self_attn.q_proj.weight`).
    Hf,
}

/// The toy's tensors under `names`, in the file `file`.
pub fn index(names: Names, file: &str) -> TensorIndex {
    let (embd, ff, q, kv, vocab) = (64u64, 128u64, 64u64, 32u64, 100u64);
    let gguf = matches!(names, Names::Gguf);
    let pick = |g: &str, h: &str| if gguf { g.to_string() } else { h.to_string() };
    let mut list: Vec<(String, Vec<u64>)> =
        vec![(pick("token_embd.weight", "model.embed_tokens.weight"), vec![embd, vocab])];
    for l in 0..2 {
        let n = |g: &str, h: &str| {
            if gguf {
                format!("blk.{l}.{g}")
            } else {
                format!("model.layers.{l}.{h}")
            }
        };
        list.push((n("attn_norm.weight", "input_layernorm.weight"), vec![embd]));
        list.push((n("attn_q.weight", "self_attn.q_proj.weight"), vec![embd, q]));
        list.push((n("attn_k.weight", "self_attn.k_proj.weight"), vec![embd, kv]));
        list.push((n("attn_v.weight", "self_attn.v_proj.weight"), vec![embd, kv]));
        list.push((n("attn_output.weight", "self_attn.o_proj.weight"), vec![q, embd]));
        list.push((n("ffn_norm.weight", "post_attention_layernorm.weight"), vec![embd]));
        list.push((n("ffn_gate.weight", "mlp.gate_proj.weight"), vec![embd, ff]));
        list.push((n("ffn_up.weight", "mlp.up_proj.weight"), vec![embd, ff]));
        list.push((n("ffn_down.weight", "mlp.down_proj.weight"), vec![ff, embd]));
    }
    list.push((pick("output_norm.weight", "model.norm.weight"), vec![embd]));
    let mut offset = 0;
    let tensors = list
        .into_iter()
        .map(|(name, dims)| {
            let n_bytes = dims.iter().product::<u64>() * 4;
            let info = TensorInfo { name, dims, ty: GgmlType::F32, file: 0, offset, n_bytes };
            offset += n_bytes;
            info
        })
        .collect();
    TensorIndex { files: vec![PathBuf::from(file)], tensors }
}

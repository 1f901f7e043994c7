//! ModelSpec from hand-built GGUF metadata and HF config.json text: derivations, defaults,
//! RoPE style per architecture and format, and the errors for broken descriptions.

use std::path::{Path, PathBuf};

use sluice_loader::gguf::{MetaArray, MetaValue, Metadata};
use sluice_loader::spec::{
    Arch, ModelSpec, RopeScalingKind, RopeStyle, SourceFormat, SpecErrorKind,
};
use sluice_loader::{GgmlType, TensorIndex, TensorInfo};

/// A toy model's shape: 2 layers, 64 wide, 4 query heads of 16, 2 kv heads, 100 tokens.
#[derive(Clone, Copy)]
struct Toy {
    n_layer: u64,
    n_embd: u64,
    n_ff: u64,
    n_head: u64,
    n_head_kv: u64,
    n_vocab: u64,
    /// 0: n_embd / n_head.
    head_dim: u64,
    bias: bool,
    output: bool,
}

const TOY: Toy = Toy {
    n_layer: 2,
    n_embd: 64,
    n_ff: 128,
    n_head: 4,
    n_head_kv: 2,
    n_vocab: 100,
    head_dim: 0,
    bias: false,
    output: false,
};

fn head_dim(t: Toy) -> u64 {
    if t.head_dim == 0 {
        t.n_embd / t.n_head
    } else {
        t.head_dim
    }
}

/// Tensors with the dims the toy's hyper-parameters imply, packed back to back as F32.
fn toy_index(t: Toy, gguf: bool) -> TensorIndex {
    let hd = head_dim(t);
    let (q, kv) = (t.n_head * hd, t.n_head_kv * hd);
    let mut names: Vec<(String, Vec<u64>)> = Vec::new();
    let g = |gguf_name: &str, hf: &str| {
        if gguf {
            gguf_name.to_string()
        } else {
            hf.to_string()
        }
    };
    names.push((
        g("token_embd.weight", "model.embed_tokens.weight"),
        vec![t.n_embd, t.n_vocab],
    ));
    for l in 0..t.n_layer {
        let n = |gs: &str, hs: &str| {
            if gguf {
                format!("blk.{l}.{gs}")
            } else {
                format!("model.layers.{l}.{hs}")
            }
        };
        names.push((
            n("attn_norm.weight", "input_layernorm.weight"),
            vec![t.n_embd],
        ));
        names.push((
            n("attn_q.weight", "self_attn.q_proj.weight"),
            vec![t.n_embd, q],
        ));
        names.push((
            n("attn_k.weight", "self_attn.k_proj.weight"),
            vec![t.n_embd, kv],
        ));
        names.push((
            n("attn_v.weight", "self_attn.v_proj.weight"),
            vec![t.n_embd, kv],
        ));
        if t.bias {
            names.push((n("attn_q.bias", "self_attn.q_proj.bias"), vec![q]));
            names.push((n("attn_k.bias", "self_attn.k_proj.bias"), vec![kv]));
            names.push((n("attn_v.bias", "self_attn.v_proj.bias"), vec![kv]));
        }
        names.push((
            n("attn_output.weight", "self_attn.o_proj.weight"),
            vec![q, t.n_embd],
        ));
        names.push((
            n("ffn_norm.weight", "post_attention_layernorm.weight"),
            vec![t.n_embd],
        ));
        names.push((
            n("ffn_gate.weight", "mlp.gate_proj.weight"),
            vec![t.n_embd, t.n_ff],
        ));
        names.push((
            n("ffn_up.weight", "mlp.up_proj.weight"),
            vec![t.n_embd, t.n_ff],
        ));
        names.push((
            n("ffn_down.weight", "mlp.down_proj.weight"),
            vec![t.n_ff, t.n_embd],
        ));
    }
    names.push((g("output_norm.weight", "model.norm.weight"), vec![t.n_embd]));
    if t.output {
        names.push((
            g("output.weight", "lm_head.weight"),
            vec![t.n_embd, t.n_vocab],
        ));
    }
    let mut offset = 0;
    let tensors = names
        .into_iter()
        .map(|(name, dims)| {
            let n_bytes = dims.iter().product::<u64>() * 4;
            let info = TensorInfo {
                name,
                dims,
                ty: GgmlType::F32,
                file: 0,
                offset,
                n_bytes,
            };
            offset += n_bytes;
            info
        })
        .collect();
    TensorIndex {
        files: vec![PathBuf::from("/models/toy")],
        tensors,
    }
}

fn meta(pairs: &[(&str, MetaValue)]) -> Metadata {
    let mut m = Metadata::new();
    for (k, v) in pairs {
        assert!(m.insert(*k, v.clone()));
    }
    m
}

fn llama_meta(t: Toy) -> Vec<(&'static str, MetaValue)> {
    vec![
        ("general.architecture", MetaValue::Str("llama".into())),
        ("llama.block_count", MetaValue::U32(t.n_layer as u32)),
        ("llama.context_length", MetaValue::U32(2048)),
        ("llama.embedding_length", MetaValue::U32(t.n_embd as u32)),
        ("llama.feed_forward_length", MetaValue::U32(t.n_ff as u32)),
        (
            "llama.attention.head_count",
            MetaValue::U32(t.n_head as u32),
        ),
        (
            "llama.attention.head_count_kv",
            MetaValue::U32(t.n_head_kv as u32),
        ),
        (
            "llama.rope.dimension_count",
            MetaValue::U32(head_dim(t) as u32),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon",
            MetaValue::F32(1e-5),
        ),
        ("llama.vocab_size", MetaValue::U32(t.n_vocab as u32)),
    ]
}

/// Qwen2 as converters write it: no rope dimension count, no vocab size.
fn qwen_meta(t: Toy) -> Vec<(&'static str, MetaValue)> {
    vec![
        ("general.architecture", MetaValue::Str("qwen2".into())),
        ("qwen2.block_count", MetaValue::U32(t.n_layer as u32)),
        ("qwen2.context_length", MetaValue::U32(32768)),
        ("qwen2.embedding_length", MetaValue::U32(t.n_embd as u32)),
        ("qwen2.feed_forward_length", MetaValue::U32(t.n_ff as u32)),
        (
            "qwen2.attention.head_count",
            MetaValue::U32(t.n_head as u32),
        ),
        (
            "qwen2.attention.head_count_kv",
            MetaValue::U32(t.n_head_kv as u32),
        ),
        ("qwen2.rope.freq_base", MetaValue::F32(1e6)),
        (
            "qwen2.attention.layer_norm_rms_epsilon",
            MetaValue::F32(1e-6),
        ),
    ]
}

fn gguf_spec(
    pairs: &[(&str, MetaValue)],
    t: Toy,
) -> Result<ModelSpec, sluice_loader::spec::SpecError> {
    ModelSpec::from_gguf(
        Path::new("/models/toy.gguf"),
        &meta(pairs),
        &toy_index(t, true),
    )
}

fn with(
    mut pairs: Vec<(&'static str, MetaValue)>,
    key: &'static str,
    v: Option<MetaValue>,
) -> Vec<(&'static str, MetaValue)> {
    pairs.retain(|(k, _)| *k != key);
    if let Some(v) = v {
        pairs.push((key, v));
    }
    pairs
}

#[test]
fn llama_gguf_defaults_and_ground_truths() {
    let s = gguf_spec(&llama_meta(TOY), TOY).expect("spec");
    assert_eq!((s.arch, s.source), (Arch::Llama, SourceFormat::Gguf));
    assert_eq!((s.n_layer, s.n_embd, s.n_ff), (2, 64, 128));
    assert_eq!((s.n_head, s.n_head_kv, s.head_dim, s.n_rot), (4, 2, 16, 16));
    assert_eq!((s.q_dim(), s.kv_dim(), s.gqa_group()), (64, 32, 2));
    assert_eq!(s.rope_freq_base, 10_000.0, "default base");
    assert_eq!(s.rope_scaling, None);
    assert_eq!(s.rope_style, RopeStyle::Norm);
    assert_eq!(s.rms_eps, 1e-5);
    assert_eq!((s.n_vocab, s.context_length), (100, 2048));
    assert!(s.tied_output && !s.qkv_bias && !s.has_rope_freqs);
}

#[test]
fn qwen2_gguf_derives_rope_dims_and_vocab() {
    let t = Toy {
        bias: true,
        output: true,
        ..TOY
    };
    let s = gguf_spec(&qwen_meta(t), t).expect("spec");
    assert_eq!(s.arch, Arch::Qwen2);
    assert_eq!((s.head_dim, s.n_rot, s.n_vocab), (16, 16, 100));
    assert_eq!(s.rope_freq_base, 1e6);
    assert_eq!(s.rope_style, RopeStyle::Neox);
    assert!(!s.tied_output && s.qkv_bias);
}

#[test]
fn key_length_overrides_derived_head_dim() {
    // 48 / 4 = 12, but key_length says 16: Q is [48, 64].
    let t = Toy {
        n_embd: 48,
        head_dim: 16,
        ..TOY
    };
    let pairs = with(
        llama_meta(t),
        "llama.attention.key_length",
        Some(MetaValue::U32(16)),
    );
    let s = gguf_spec(&pairs, t).expect("spec");
    assert_eq!(
        (s.head_dim, s.n_rot, s.q_dim(), s.kv_dim()),
        (16, 16, 64, 32)
    );
}

#[test]
fn rope_style_per_arch_and_format() {
    assert_eq!(
        RopeStyle::for_model(Arch::Llama, SourceFormat::Gguf),
        RopeStyle::Norm
    );
    assert_eq!(
        RopeStyle::for_model(Arch::Llama, SourceFormat::Safetensors),
        RopeStyle::Neox
    );
    assert_eq!(
        RopeStyle::for_model(Arch::Qwen2, SourceFormat::Gguf),
        RopeStyle::Neox
    );
    assert_eq!(
        RopeStyle::for_model(Arch::Qwen2, SourceFormat::Safetensors),
        RopeStyle::Neox
    );
    let hf = hf_spec(&llama_config(), TOY).expect("hf llama");
    assert_eq!(hf.rope_style, RopeStyle::Neox);
    let q = Toy { bias: true, ..TOY };
    assert_eq!(
        hf_spec(&qwen_config(), q).expect("hf qwen").rope_style,
        RopeStyle::Neox
    );
}

#[test]
fn per_layer_arrays_must_be_uniform() {
    let uniform = MetaValue::Array(MetaArray::I32(vec![4, 4]));
    let s = gguf_spec(
        &with(llama_meta(TOY), "llama.attention.head_count", Some(uniform)),
        TOY,
    )
    .expect("uniform");
    assert_eq!(s.n_head, 4);
    let varying = MetaValue::Array(MetaArray::U32(vec![4, 8]));
    let e = gguf_spec(
        &with(llama_meta(TOY), "llama.attention.head_count", Some(varying)),
        TOY,
    )
    .unwrap_err();
    assert!(e.to_string().contains("llama.attention.head_count"), "{e}");
}

#[test]
fn rope_scaling_from_gguf() {
    let pairs = with(
        llama_meta(TOY),
        "llama.rope.scaling.type",
        Some(MetaValue::Str("linear".into())),
    );
    let pairs = with(
        pairs,
        "llama.rope.scaling.factor",
        Some(MetaValue::F32(4.0)),
    );
    let sc = gguf_spec(&pairs, TOY)
        .expect("spec")
        .rope_scaling
        .expect("scaling");
    assert_eq!((sc.kind, sc.factor), (RopeScalingKind::Linear, 4.0));
    let none = with(
        llama_meta(TOY),
        "llama.rope.scaling.type",
        Some(MetaValue::Str("none".into())),
    );
    assert_eq!(gguf_spec(&none, TOY).expect("spec").rope_scaling, None);
    let bad = with(
        llama_meta(TOY),
        "llama.rope.scaling.type",
        Some(MetaValue::Str("longrope".into())),
    );
    assert!(gguf_spec(&bad, TOY)
        .unwrap_err()
        .to_string()
        .contains("longrope"));
}

/// Asserts the error names the file and contains every fragment.
fn assert_err(
    r: Result<ModelSpec, sluice_loader::spec::SpecError>,
    file: &str,
    fragments: &[&str],
) -> SpecErrorKind {
    let e = r.expect_err("should fail");
    let msg = e.to_string();
    assert!(msg.starts_with(file), "{msg}");
    for f in fragments {
        assert!(msg.contains(f), "'{f}' not in: {msg}");
    }
    e.kind
}

#[test]
fn gguf_errors_name_file_and_key() {
    let f = "/models/toy.gguf";
    let no_eps = with(
        llama_meta(TOY),
        "llama.attention.layer_norm_rms_epsilon",
        None,
    );
    assert_err(
        gguf_spec(&no_eps, TOY),
        f,
        &["llama.attention.layer_norm_rms_epsilon", "missing"],
    );
    let zero = with(
        llama_meta(TOY),
        "llama.attention.head_count",
        Some(MetaValue::U32(0)),
    );
    assert_err(
        gguf_spec(&zero, TOY),
        f,
        &["llama.attention.head_count", "positive"],
    );
    let kv3 = with(
        llama_meta(TOY),
        "llama.attention.head_count_kv",
        Some(MetaValue::U32(3)),
    );
    assert_err(gguf_spec(&kv3, TOY), f, &["multiple", "head_count_kv"]);
    let rot = with(
        llama_meta(TOY),
        "llama.rope.dimension_count",
        Some(MetaValue::U32(8)),
    );
    assert_err(
        gguf_spec(&rot, TOY),
        f,
        &["llama.rope.dimension_count", "16"],
    );
    let vocab = with(
        llama_meta(TOY),
        "llama.vocab_size",
        Some(MetaValue::U32(99)),
    );
    assert_err(
        gguf_spec(&vocab, TOY),
        f,
        &["llama.vocab_size", "token_embd.weight", "100"],
    );
    let arch = with(
        llama_meta(TOY),
        "general.architecture",
        Some(MetaValue::Str("gpt2".into())),
    );
    assert_err(gguf_spec(&arch, TOY), f, &["gpt2", "llama, qwen2"]);
    let wrong_type = with(
        llama_meta(TOY),
        "llama.block_count",
        Some(MetaValue::Str("2".into())),
    );
    assert_err(
        gguf_spec(&wrong_type, TOY),
        f,
        &["llama.block_count", "string"],
    );
    let no_arch = with(llama_meta(TOY), "general.architecture", None);
    assert_err(gguf_spec(&no_arch, TOY), f, &["general.architecture"]);
}

#[test]
fn shape_errors_name_the_tensor() {
    // 6 heads of 16 = 96, but Q is [64, 64].
    let pairs = with(
        llama_meta(TOY),
        "llama.attention.key_length",
        Some(MetaValue::U32(16)),
    );
    let pairs = with(pairs, "llama.attention.head_count", Some(MetaValue::U32(6)));
    let kind = assert_err(
        gguf_spec(&pairs, TOY),
        "/models/toy",
        &["blk.0.attn_q.weight", "[64, 64]", "[64, 96]"],
    );
    assert!(matches!(kind, SpecErrorKind::BadShape { .. }));
    // One layer more than the tensors hold.
    let more = with(
        llama_meta(TOY),
        "llama.block_count",
        Some(MetaValue::U32(3)),
    );
    assert_err(
        gguf_spec(&more, TOY),
        "/models/toy",
        &["blk.2.attn_norm.weight", "missing"],
    );
    // A tensor past the declared layers.
    let fewer = with(
        llama_meta(TOY),
        "llama.block_count",
        Some(MetaValue::U32(1)),
    );
    assert_err(
        gguf_spec(&fewer, TOY),
        "/models/toy",
        &["blk.1.", "layer 1", "1 layers"],
    );
}

#[test]
fn qwen2_requires_biases() {
    let t = Toy { bias: false, ..TOY };
    assert_err(
        gguf_spec(&qwen_meta(t), t),
        "/models/toy",
        &["blk.0.attn_q.bias", "missing"],
    );
}

#[test]
fn llama_biases_all_or_none() {
    let t = Toy { bias: true, ..TOY };
    assert!(gguf_spec(&llama_meta(t), t).expect("biased llama").qkv_bias);
    let mut index = toy_index(t, true);
    index.tensors.retain(|ti| ti.name != "blk.1.attn_k.bias");
    let r = ModelSpec::from_gguf(Path::new("/m.gguf"), &meta(&llama_meta(t)), &index);
    assert_err(r, "/m.gguf", &["blk.1.attn_k.bias", "missing"]);
}

fn llama_config() -> String {
    r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": null,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000.0,
        "vocab_size": 100, "tie_word_embeddings": true, "rope_scaling": null}"#
        .to_string()
}

fn qwen_config() -> String {
    r#"{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "vocab_size": 100, "tie_word_embeddings": true,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}"#
        .to_string()
}

fn hf_spec(config: &str, t: Toy) -> Result<ModelSpec, sluice_loader::spec::SpecError> {
    let cfg = Path::new("/models/toy-hf/config.json");
    ModelSpec::from_hf_config(
        cfg,
        config,
        &toy_index(t, false),
        Path::new("/models/toy-hf"),
    )
}

#[test]
fn hf_configs() {
    let s = hf_spec(&llama_config(), TOY).expect("llama");
    assert_eq!((s.arch, s.source), (Arch::Llama, SourceFormat::Safetensors));
    assert_eq!(
        (
            s.n_layer,
            s.n_embd,
            s.n_ff,
            s.n_head,
            s.n_head_kv,
            s.head_dim
        ),
        (2, 64, 128, 4, 2, 16)
    );
    assert_eq!(
        (s.rope_freq_base, s.rms_eps, s.n_vocab, s.context_length),
        (1e5, 1e-5, 100, 8192)
    );
    assert!(s.tied_output && !s.qkv_bias);
    let t = Toy { bias: true, ..TOY };
    let q = hf_spec(&qwen_config(), t).expect("qwen");
    assert!(q.qkv_bias && q.tied_output);
    let sc = q.rope_scaling.expect("yarn");
    assert_eq!(
        (sc.kind, sc.factor, sc.original_context_length),
        (RopeScalingKind::Yarn, 4.0, Some(32768))
    );
    let mistral = llama_config().replace("LlamaForCausalLM", "MistralForCausalLM");
    assert_eq!(hf_spec(&mistral, TOY).expect("mistral").arch, Arch::Llama);
}

#[test]
fn hf_errors() {
    let f = "/models/toy-hf/config.json";
    assert_err(hf_spec("{not json", TOY), f, &["config.json"]);
    assert_err(hf_spec("[1, 2]", TOY), f, &["not an object"]);
    let gpt2 = llama_config().replace("LlamaForCausalLM", "GPT2LMHeadModel");
    assert_err(
        hf_spec(&gpt2, TOY),
        f,
        &["GPT2LMHeadModel", "Qwen2ForCausalLM"],
    );
    let no_eps = llama_config().replace("\"rms_norm_eps\": 1e-05,", "");
    assert_err(hf_spec(&no_eps, TOY), f, &["rms_norm_eps", "missing"]);
    let bad_heads = llama_config().replace(
        "\"num_attention_heads\": 4",
        "\"num_attention_heads\": \"4\"",
    );
    assert_err(hf_spec(&bad_heads, TOY), f, &["num_attention_heads"]);
    let untied = llama_config().replace(
        "\"tie_word_embeddings\": true",
        "\"tie_word_embeddings\": false",
    );
    assert_err(
        hf_spec(&untied, TOY),
        "/models/toy-hf",
        &["lm_head.weight", "missing"],
    );
    let vocab = llama_config().replace("\"vocab_size\": 100", "\"vocab_size\": 128");
    assert_err(
        hf_spec(&vocab, TOY),
        f,
        &["vocab_size", "model.embed_tokens.weight"],
    );
    let t = Toy { bias: false, ..TOY };
    assert_err(
        hf_spec(&qwen_config(), t),
        "/models/toy-hf",
        &["model.layers.0.self_attn.q_proj.bias"],
    );
}

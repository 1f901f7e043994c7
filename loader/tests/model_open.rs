//! Model::open on the real models (GGUF and the F16 HF copy of SmolLM2), on HF directories
//! built in the test, and on paths that are not models.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sluice_loader::cache::{models_dir, require_model};
use sluice_loader::model::{LoadError, Model, ModelFiles};
use sluice_loader::spec::{Arch, ModelSpec, RopeStyle, SourceFormat};
use sluice_loader::GgmlType;

/// Opens a model, printing how long the headers took to read.
fn open_timed(path: &Path) -> ModelFiles {
    let t0 = Instant::now();
    let m = Model::open(path).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "Model::open({}) took {:.2} ms",
        path.display(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    m
}

/// Every layer is one extent, and every layer tensor is in some extent.
fn assert_all_layers_contiguous(m: &ModelFiles) {
    let x = &m.extents;
    assert_eq!(x.layers.len(), m.spec.n_layer);
    for l in 0..m.spec.n_layer {
        assert!(
            x.is_contiguous(l),
            "layer {l} has {} extents",
            x.layers[l].len()
        );
    }
    assert!(x.unknown.is_empty(), "{:?}", x.unknown);
    let covered: usize = x
        .layers
        .iter()
        .flatten()
        .chain(&x.globals)
        .map(|e| e.tensors.len())
        .sum();
    assert_eq!(covered, m.index.tensors.len());
    assert_eq!(x.alignment_bytes % 4096, 0);
}

fn smollm2_shape(s: &ModelSpec) {
    assert_eq!(s.arch, Arch::Llama);
    assert_eq!((s.n_layer, s.n_embd, s.n_ff), (30, 576, 1536));
    assert_eq!((s.n_head, s.n_head_kv, s.head_dim, s.n_rot), (9, 3, 64, 64));
    assert_eq!((s.n_vocab, s.rope_freq_base), (49152, 100_000.0));
    assert_eq!(s.rms_eps, 1e-5);
    assert!(s.tied_output && !s.qkv_bias);
}

#[test]
fn smollm2_gguf() {
    let m = open_timed(&require_model("smollm2-135m"));
    smollm2_shape(&m.spec);
    assert_eq!(
        (m.format, m.spec.rope_style),
        (SourceFormat::Gguf, RopeStyle::Norm)
    );
    assert!(m.metadata.is_some() && m.hf_dir.is_none());
    assert_all_layers_contiguous(&m);
    assert_eq!(m.extents.globals.len(), 2, "token_embd and output_norm");
}

#[test]
fn qwen25_coder_gguf() {
    let m = open_timed(&require_model("qwen2.5-coder-0.5b"));
    let s = &m.spec;
    assert_eq!(s.arch, Arch::Qwen2);
    assert_eq!((s.n_layer, s.n_embd, s.n_ff), (24, 896, 4864));
    assert_eq!(
        (s.n_head, s.n_head_kv, s.head_dim, s.n_rot),
        (14, 2, 64, 64)
    );
    assert_eq!((s.n_vocab, s.rope_freq_base), (151936, 1e6));
    assert!(!s.tied_output && s.qkv_bias);
    assert_eq!(s.rope_style, RopeStyle::Neox);
    assert_all_layers_contiguous(&m);
    assert_eq!(
        m.extents.globals.len(),
        3,
        "token_embd, output_norm and output"
    );
}

/// The F16 HF copy of SmolLM2 that `scripts/test.sh` makes with `tests/fixtures/make_f16_models.py`.
fn smollm2_hf_dir() -> PathBuf {
    let dir = models_dir().join("smollm2-135m-f16-hf");
    assert!(
        dir.join("model.safetensors").is_file(),
        "this test needs {}: run scripts/test.sh, which makes it (or \
         `\"$(scripts/fixture-python.sh)\" tests/fixtures/make_f16_models.py`)",
        dir.display()
    );
    dir
}

#[test]
fn smollm2_hf_directory_and_file() {
    let dir = smollm2_hf_dir();
    let m = open_timed(&dir);
    smollm2_shape(&m.spec);
    assert_eq!(
        (m.format, m.spec.rope_style),
        (SourceFormat::Safetensors, RopeStyle::Neox)
    );
    assert_eq!(m.hf_dir.as_deref(), Some(dir.as_path()));
    assert!(m.metadata.is_none());
    assert_eq!(m.spec.context_length, 8192);
    // safetensors' writer sorts by dtype (F32 before F16), then by name: each layer is one
    // run of its two F32 norms and one run of its seven F16 matrices.
    for (l, extents) in m.extents.layers.iter().enumerate() {
        let runs: Vec<(usize, GgmlType)> = extents
            .iter()
            .map(|e| (e.tensors.len(), e.tensors[0].ty))
            .collect();
        assert_eq!(
            runs,
            vec![(2, GgmlType::F32), (7, GgmlType::F16)],
            "layer {l}"
        );
    }
    assert!(m.extents.unknown.is_empty());
    let by_file = open_timed(&dir.join("model.safetensors"));
    assert_eq!(by_file.spec, m.spec);
    assert_eq!(by_file.extents, m.extents);
}

/// A two-layer toy llama with HF names: `(name, shape)` as PyTorch writes shapes.
fn toy_hf_tensors() -> Vec<(String, Vec<u64>)> {
    let mut v = vec![("model.embed_tokens.weight".to_string(), vec![10, 8])];
    for l in 0..2 {
        let p = format!("model.layers.{l}");
        v.push((format!("{p}.input_layernorm.weight"), vec![8]));
        v.push((format!("{p}.self_attn.q_proj.weight"), vec![8, 8]));
        v.push((format!("{p}.self_attn.k_proj.weight"), vec![4, 8]));
        v.push((format!("{p}.self_attn.v_proj.weight"), vec![4, 8]));
        v.push((format!("{p}.self_attn.o_proj.weight"), vec![8, 8]));
        v.push((format!("{p}.post_attention_layernorm.weight"), vec![8]));
        v.push((format!("{p}.mlp.gate_proj.weight"), vec![16, 8]));
        v.push((format!("{p}.mlp.up_proj.weight"), vec![16, 8]));
        v.push((format!("{p}.mlp.down_proj.weight"), vec![8, 16]));
    }
    v.push(("model.norm.weight".to_string(), vec![8]));
    v
}

const TOY_CONFIG: &str = r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 8,
  "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
  "num_key_value_heads": 1, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
  "tie_word_embeddings": true}"#;

/// Writes F32 tensors (zeros) as one safetensors file.
fn write_safetensors(path: &Path, tensors: &[(String, Vec<u64>)]) {
    let mut off = 0u64;
    let mut entries = Vec::new();
    for (name, shape) in tensors {
        let n = shape.iter().product::<u64>() * 4;
        entries.push(format!(
            r#""{name}":{{"dtype":"F32","shape":{shape:?},"data_offsets":[{off},{}]}}"#,
            off + n
        ));
        off += n;
    }
    let header = format!("{{{}}}", entries.join(","));
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + off as usize, 0);
    fs::write(path, bytes).expect("write safetensors");
}

#[test]
fn toy_hf_single_and_sharded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs::write(d.join("config.json"), TOY_CONFIG).expect("config");
    let tensors = toy_hf_tensors();
    write_safetensors(&d.join("model.safetensors"), &tensors);
    let single = Model::open(d).expect("single");
    assert_eq!(
        (
            single.spec.n_layer,
            single.spec.n_head_kv,
            single.spec.head_dim
        ),
        (2, 1, 4)
    );
    assert_eq!(single.spec.rope_freq_base, 10_000.0, "default base");
    fs::remove_file(d.join("model.safetensors")).expect("rm");

    // Shard so that layer 1 straddles the two files.
    let cut = 14;
    write_safetensors(&d.join("model-00001-of-00002.safetensors"), &tensors[..cut]);
    write_safetensors(&d.join("model-00002-of-00002.safetensors"), &tensors[cut..]);
    let map: Vec<String> = tensors
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            format!(
                r#""{n}": "model-0000{}-of-00002.safetensors""#,
                1 + usize::from(i >= cut)
            )
        })
        .collect();
    let index = format!(
        r#"{{"metadata": {{}}, "weight_map": {{{}}}}}"#,
        map.join(",")
    );
    fs::write(d.join("model.safetensors.index.json"), index).expect("index");
    let sharded = Model::open(d).expect("sharded");
    assert_eq!(sharded.spec, single.spec);
    assert_eq!(sharded.index.files.len(), 2);
    assert!(sharded.extents.is_contiguous(0));
    assert_eq!(
        sharded.extents.layers[1]
            .iter()
            .map(|e| e.file)
            .collect::<Vec<_>>(),
        vec![0, 1]
    );
    let via_index = Model::open(&d.join("model.safetensors.index.json")).expect("via index");
    assert_eq!(via_index.spec, single.spec);
}

/// The error's message, which must start with `file`.
fn err_naming(path: &Path, file: &Path) -> LoadError {
    let e = Model::open(path).expect_err("should fail");
    let msg = e.to_string();
    assert!(msg.starts_with(&file.display().to_string()), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    e
}

#[test]
fn paths_that_are_not_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let missing = d.join("nope.gguf");
    assert!(matches!(
        err_naming(&missing, &missing),
        LoadError::NotFound { .. }
    ));
    assert!(
        matches!(err_naming(d, d), LoadError::Safetensors(_)),
        "empty dir"
    );
    let txt = d.join("notes.txt");
    fs::write(&txt, "hello").expect("write");
    assert!(matches!(
        err_naming(&txt, &txt),
        LoadError::Unrecognised { .. }
    ));
    let st = d.join("model.safetensors");
    write_safetensors(&st, &toy_hf_tensors());
    let e = err_naming(&st, &st);
    assert!(e.to_string().contains("config.json"), "{e}");
    fs::write(d.join("config.json"), "{ broken").expect("config");
    assert!(matches!(
        err_naming(d, &d.join("config.json")),
        LoadError::Spec(_)
    ));
}

#[test]
fn truncated_gguf_names_the_file() {
    let src = require_model("smollm2-135m");
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, len) in [("head.gguf", 1000u64), ("body.gguf", 50_000_000)] {
        let p = dir.path().join(name);
        let mut f = fs::File::open(&src).expect("open");
        let mut out = fs::File::create(&p).expect("create");
        std::io::copy(&mut std::io::Read::take(&mut f, len), &mut out).expect("copy");
        let e = err_naming(&p, &p);
        assert!(matches!(e, LoadError::Gguf(_)), "{e}");
    }
}

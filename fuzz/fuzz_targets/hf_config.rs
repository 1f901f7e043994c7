//! Fuzzes `ModelSpec::from_hf_config` on arbitrary `config.json` text against a fixed toy
//! model's tensors (2 layers, 64 wide, 4 query heads of 16, 2 kv heads, 100 tokens): the
//! derivations (head sizes, GQA groups, RoPE dims, scaling) must refuse hostile numbers with
//! an error naming the file, never panic on a division or an overflow.
#![no_main]

#[path = "toy_model.rs"]
mod toy_model;

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_loader::spec::ModelSpec;
use sluice_loader::TensorIndex;

const CONFIG: &str = "/models/toy-hf/config.json";

/// The toy model's tensors, built once.
fn index() -> &'static TensorIndex {
    static INDEX: OnceLock<TensorIndex> = OnceLock::new();
    INDEX.get_or_init(|| toy_model::index(toy_model::Names::Hf, "/models/toy-hf/model.safetensors"))
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

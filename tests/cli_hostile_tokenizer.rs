//! Hostile tokenizer files given to `sluice run` (needs SmolLM2 in the cache; CI fetches it):
//! each fails with exit 2 and a message that names the file and the problem, instead of
//! hanging, filling memory or panicking.
//! - A chat template without end, from a GGUF that holds SmolLM2's tokenizer keys and a
//!   rewritten template, given as `--tokenizer`.
//! - A `tokenizer.json` whose pre-tokenizer regex backtracks without end on the prompt.

mod common;

use common::{path_arg, refused};
use serde_json::json;
use sluice_loader::cache::require_model;
use sluice_loader::gguf::{GgufFile, GgufWriter, MetaValue};

/// SmolLM2's tokenizer keys with `template` as the chat template, written to `path`.
fn tokenizer_gguf(path: &std::path::Path, template: &str) {
    let model = GgufFile::open(&require_model("smollm2-135m")).expect("SmolLM2 opens");
    let mut w = GgufWriter::new();
    for (key, value) in model.metadata.iter() {
        if key.starts_with("tokenizer.") && key != "tokenizer.chat_template" {
            w.add_kv(key, value.clone());
        }
    }
    w.add_kv("tokenizer.chat_template", MetaValue::Str(template.into()));
    w.write_file(path).expect("write the tokenizer GGUF");
}

#[test]
fn a_template_without_end_is_refused_naming_the_file() {
    let model = require_model("smollm2-135m");
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, template, says) in [
        (
            "endless.gguf",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "instructions without finishing",
        ),
        (
            "flood.gguf",
            "{% for i in range(1000) %}{{ 'x' * 100000000 }}{% endfor %}",
            "exceeds 64 MiB",
        ),
    ] {
        let tok = dir.path().join(name);
        tokenizer_gguf(&tok, template);
        // The message names the file the template came from.
        refused(
            &[
                "run",
                "-m",
                path_arg(&model),
                "--tokenizer",
                path_arg(&tok),
                "--prompt",
                "hi",
                "--max-tokens",
                "2",
                "--device",
                "cpu",
            ],
            &[says, name],
        );
    }
}

#[test]
fn a_pre_tokenizer_regex_that_backtracks_without_end_is_refused_not_a_panic() {
    let model = require_model("smollm2-135m");
    let dir = tempfile::tempdir().expect("tempdir");
    // A byte-level BPE over the 256 bytes, split first by a pattern oniguruma gives up on
    // (its retry limit) for a long run of `a`s.
    let vocab: serde_json::Map<String, serde_json::Value> = (0..=255u8)
        .map(|b| (sluice_loader::tokenizer::byte_level_encode(&[b]), json!(b)))
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
    let tj = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "(a|a)+$|(a+)+b"}, "behavior": "Isolated", "invert": false},
            byte_level]},
        "post_processor": null, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": []},
    });
    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, serde_json::to_vec(&tj).expect("json")).expect("write tokenizer.json");
    let prompt = format!("{}c", "a".repeat(40));
    // `refused` also checks that no panic report reaches the user.
    refused(
        &[
            "run",
            "-m",
            path_arg(&model),
            "--tokenizer",
            path_arg(&tok),
            "--raw",
            "--prompt",
            &prompt,
            "--max-tokens",
            "2",
            "--device",
            "cpu",
        ],
        &["retry-limit", "tokenizer.json"],
    );
}

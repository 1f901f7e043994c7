//! A hostile chat template in a model file: `sluice run` fails with exit 2 and a message that
//! names the file and the problem, instead of hanging or filling memory. The tokenizer (with the
//! template) comes from a GGUF that holds SmolLM2's tokenizer keys and a rewritten template,
//! given as `--tokenizer` (needs SmolLM2 in the cache; CI fetches it).

mod common;

use common::{path_arg, sluice, stderr};
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
        let o = sluice(
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
            &[],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: the message names the file: {err}"
        );
    }
}

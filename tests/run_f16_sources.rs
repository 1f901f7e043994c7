//! Unquantised sources: SmolLM2 dequantised to F16 (by tests/fixtures/make_f16_models.py, with
//! PyPI's gguf package) as a GGUF file and as an HF safetensors directory. The same weights in
//! two formats (the HF copy with Q/K rows un-permuted, as HF stores them) must give identical
//! greedy tokens, resident or streamed. How many match the Q4_1 model's llama.cpp reference is
//! printed for information only: F16 weights are not Q4_1 weights.

mod common;

use std::time::Instant;

use common::{
    common_prefix, load_reference, path_arg, require_fixture_model, run_json, F16_GGUF, F16_HF_DIR,
};

/// Greedy tokens from the GGUF, the HF directory, and the HF directory streamed, for one
/// reference prompt of SmolLM2.
fn check_prompt(id: &str) {
    let started = Instant::now();
    let gguf = require_fixture_model(F16_GGUF);
    let hf = require_fixture_model(F16_HF_DIR);
    let reference = load_reference("smollm2-135m");
    let p = reference
        .prompts
        .get(id)
        .unwrap_or_else(|| panic!("the smollm2-135m reference has no prompt {id}"));
    let max_tokens = reference.max_tokens.to_string();
    let run = |model: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "-m",
            model,
            "--prompt",
            &p.text,
            "--raw",
            "--temperature",
            "0",
            "--max-tokens",
            &max_tokens,
            "--json",
        ];
        args.extend_from_slice(extra);
        run_json(&args, &[])
    };
    let tokenizer = ["--tokenizer", path_arg(&gguf)];
    let from_gguf = run(path_arg(&gguf), &[]);
    let from_hf = run(path_arg(&hf), &tokenizer);
    let from_hf_streamed = run(
        path_arg(&hf),
        &[tokenizer[0], tokenizer[1], "--ram-budget", "0"],
    );

    for (name, r) in [
        ("f16 gguf", &from_gguf),
        ("hf", &from_hf),
        ("hf --ram-budget 0", &from_hf_streamed),
    ] {
        println!(
            "smollm2 f16 {id} {name:<18}: {} tokens, {:>2}/{} equal to the Q4_1 reference \
             (informational), {:.1} tok/s, resident {} streamed {}: {:?}",
            r.tokens.len(),
            common_prefix(&r.tokens, &p.greedy_ids),
            p.greedy_ids.len(),
            r.stats.decode_tok_per_s,
            r.stats.resident_layers,
            r.stats.streamed_layers,
            r.text
        );
    }
    println!("prompt {id}: {:.1} s", started.elapsed().as_secs_f64());
    // The tokenizer is the Q4_1 file's, copied into the F16 GGUF: the prompt ids are llama.cpp's.
    assert_eq!(from_gguf.prompt_tokens, p.prompt_token_ids, "f16 gguf");
    assert_eq!(from_hf.prompt_tokens, p.prompt_token_ids, "hf directory");
    assert!(!from_gguf.tokens.is_empty(), "f16 gguf generated nothing");
    assert_eq!(from_hf.tokens, from_gguf.tokens, "hf directory vs f16 gguf");
    assert_eq!(
        from_hf_streamed.tokens, from_gguf.tokens,
        "hf directory with --ram-budget 0 vs f16 gguf"
    );
    assert_eq!(from_hf_streamed.stats.resident_layers, 0);
}

#[test]
fn f16_gguf_and_hf_directory_agree_on_prompt_a() {
    check_prompt("A");
}

#[test]
fn f16_gguf_and_hf_directory_agree_on_prompt_c() {
    check_prompt("C");
}

//! GPU end to end (ignored unless asked for: `scripts/gpu-check.sh` runs them with `--ignored`):
//! greedy tokens from `--device cuda` equal the CPU backend's on both reference models, with every
//! layer in VRAM and with every layer streamed from disk through the page-locked ring and the
//! device ring. Fails, saying why, without a usable GPU or without the models.
#![cfg(feature = "cuda")]

mod common;

use common::{require_cuda, run_json, REFERENCE_MODELS};
use sluice_loader::cache::require_model;

const PROMPTS: [&str; 2] = [
    "The capital of France is",
    "Write a Python function that returns the factorial of n.",
];

fn greedy(model: &str, prompt: &str, extra: &[&str]) -> Vec<u32> {
    let mut args = vec![
        "run",
        "--model",
        model,
        "--prompt",
        prompt,
        "--temperature",
        "0",
        "--max-tokens",
        "32",
        "--json",
    ];
    args.extend_from_slice(extra);
    run_json(&args, &[]).tokens
}

fn check(model: &str) {
    require_cuda();
    require_model(model);
    for prompt in PROMPTS {
        let cpu = greedy(model, prompt, &["--device", "cpu"]);
        let vram = greedy(model, prompt, &["--device", "cuda"]);
        assert_eq!(vram, cpu, "{model}, all layers in VRAM: {prompt:?}");
        let streamed = greedy(
            model,
            prompt,
            &[
                "--device",
                "cuda",
                "--vram-budget",
                "0",
                "--ram-budget",
                "0",
            ],
        );
        assert_eq!(streamed, cpu, "{model}, every layer streamed: {prompt:?}");
        let mixed = greedy(
            model,
            prompt,
            &[
                "--device",
                "cuda",
                "--vram-budget",
                "20M",
                "--ram-budget",
                "20M",
            ],
        );
        assert_eq!(mixed, cpu, "{model}, three tiers: {prompt:?}");
    }
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn smollm2_cuda_tokens_equal_cpu() {
    check(REFERENCE_MODELS[0]);
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn qwen_cuda_tokens_equal_cpu() {
    check(REFERENCE_MODELS[1]);
}

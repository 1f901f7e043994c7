//! The library API (`sluice::api`) on the real SmolLM2 model: greedy generation gives the
//! llama.cpp reference tokens and `sluice run`'s; streamed pieces add up to the text; a batch
//! gives each request what it gets alone; stop strings, cancelling, perplexity; and bad input
//! is an error that names the problem. Needs `scripts/fetch-models.sh`.

mod common;

use common::{compare_greedy, greedy_args, load_reference, path_arg, run_json};
use sluice::api::{ApiError, Llm, LlmOptions, PerplexityOptions, Prompt, Request};
use sluice::engine::session::StopReason;
use sluice_loader::cache::require_model;
use sluice_loader::tokenizer::ChatMessage;

const MODEL: &str = "smollm2-135m";

fn open(max_batch: usize) -> Llm {
    let opts = LlmOptions {
        threads: Some(2),
        max_batch,
        ctx: 1024,
        ..LlmOptions::default()
    };
    Llm::open(require_model(MODEL), &opts).unwrap_or_else(|e| panic!("opening {MODEL}: {e}"))
}

fn raw_greedy(text: &str, max_tokens: usize) -> Request {
    let mut r = Request::new(text).greedy().max_tokens(max_tokens);
    r.raw = true;
    r
}

#[test]
fn greedy_generation_gives_the_reference_tokens_and_sluice_runs() {
    let reference = load_reference(MODEL);
    let mut llm = open(1);
    let mut failures = Vec::new();
    for (id, p) in &reference.prompts {
        let req = raw_greedy(&p.text, reference.max_tokens);
        assert_eq!(
            llm.prompt_tokens(&req).unwrap(),
            p.prompt_token_ids,
            "prompt {id}"
        );
        let done = llm.generate(&req, |_| true).unwrap();
        let cmp = compare_greedy(p, &done.tokens);
        if !cmp.passes() {
            failures.push(format!("prompt {id}: {}", cmp.describe()));
        }
        assert_eq!(done.prompt_tokens, p.prompt_token_ids);
    }
    common::assert_no_failures("library generate vs the llama.cpp reference", &failures);

    // The same request through the CLI, and a chat-templated one (the CLI's default).
    let path = require_model(MODEL);
    let p = &reference.prompts["A"];
    let cli = run_json(&greedy_args(path_arg(&path), &p.text, "16", "2"), &[]);
    let lib = llm.generate(&raw_greedy(&p.text, 16), |_| true).unwrap();
    assert_eq!(lib.tokens, cli.tokens, "library vs sluice run --raw");
    let chat_cli = run_json(
        &[
            "run",
            "-m",
            path_arg(&path),
            "--prompt",
            "What color is the sky?",
            "--temperature",
            "0",
            "--max-tokens",
            "24",
            "--json",
            "--threads",
            "2",
        ],
        &[],
    );
    let chat = llm
        .generate(
            &Request::new("What color is the sky?")
                .greedy()
                .max_tokens(24),
            |_| true,
        )
        .unwrap();
    assert_eq!(
        chat.tokens, chat_cli.tokens,
        "library vs sluice run (chat template)"
    );
    assert_eq!(chat.prompt_tokens, chat_cli.prompt_tokens);
}

#[test]
fn streamed_pieces_add_up_to_the_text_and_tokens() {
    let mut llm = open(1);
    let mut text = String::new();
    let mut tokens = Vec::new();
    let done = llm
        .generate(
            &Request::new("Name three colours.").greedy().max_tokens(40),
            |p| {
                assert_eq!(p.index, 0);
                text.push_str(p.text);
                tokens.extend(p.token);
                true
            },
        )
        .unwrap();
    assert!(!done.tokens.is_empty());
    assert_eq!(text, done.text);
    assert_eq!(tokens, done.tokens);
    assert_eq!(done.text, llm.tokenizer().decode(&done.tokens));
    assert!(done.prefill_s > 0.0 && done.decode_s >= 0.0);
    let run = llm.last_run().expect("the call's figures");
    assert_eq!(run.generated_tokens, done.tokens.len());
    assert_eq!(
        run.streamed_bytes, 0,
        "every layer of the model is resident here"
    );
}

#[test]
fn a_batch_gives_every_request_what_it_gets_alone() {
    let mut llm = open(3);
    let requests = vec![
        raw_greedy("The capital of France is", 20),
        Request::new("What color is the sky?")
            .greedy()
            .max_tokens(12),
        raw_greedy("def fibonacci(n):", 30),
        Request::from_prompt(Prompt::Messages(vec![
            ChatMessage::system("You are terse."),
            ChatMessage::user("Count to five."),
        ]))
        .greedy()
        .max_tokens(25),
        raw_greedy("1, 2, 3, 4, 5,", 8),
        {
            let mut r = Request::new("Tell me a story.").max_tokens(16);
            r.sampling.seed = 7;
            r
        },
    ];
    let mut streamed = vec![String::new(); requests.len()];
    let (batch, stats) = llm
        .generate_batch(&requests, |p| {
            streamed[p.index].push_str(p.text);
            true
        })
        .unwrap();
    assert_eq!(batch.len(), requests.len());
    assert!(stats.peak_live > 1 && stats.peak_live <= 3, "{stats:?}");
    let generated: usize = batch.iter().map(|c| c.tokens.len()).sum();
    assert_eq!(stats.generated_tokens, generated);
    for (i, (r, got)) in requests.iter().zip(&batch).enumerate() {
        let alone = llm.generate(r, |_| true).unwrap();
        assert_eq!(got.tokens, alone.tokens, "request {i}");
        assert_eq!(got.text, alone.text, "request {i}");
        assert_eq!(streamed[i], got.text, "request {i}");
    }
}

#[test]
fn stop_strings_and_cancelling_end_a_generation() {
    let mut llm = open(2);
    let base = raw_greedy("Once upon a time, in a small village by the sea,", 40);
    let full = llm.generate(&base, |_| true).unwrap();
    assert!(full.text.len() > 20, "{:?}", full.text);
    // A stop string taken from the middle of the greedy text: the text ends just before it.
    let mid = full
        .text
        .char_indices()
        .nth(full.text.chars().count() / 2)
        .unwrap()
        .0;
    let stop: String = full.text[mid..].chars().take(4).collect();
    let mut r = base.clone();
    r.stop = vec![stop.clone()];
    let stopped = llm.generate(&r, |_| true).unwrap();
    assert_eq!(stopped.stop_reason, StopReason::Stop);
    let cut = full.text.find(&stop).unwrap();
    assert_eq!(stopped.text, full.text[..cut]);

    // The callback returning false stops after that token.
    let mut seen = 0;
    let cancelled = llm
        .generate(&base, |p| {
            seen += usize::from(p.token.is_some());
            seen < 3
        })
        .unwrap();
    assert_eq!(cancelled.stop_reason, StopReason::Interrupted);
    assert_eq!(cancelled.tokens, full.tokens[..3]);

    // In a batch, it stops every request; those never started end with no tokens.
    let reqs = vec![base.clone(); 5];
    let (done, _) = llm
        .generate_batch(&reqs, |p| p.token.is_none() || p.index != 0)
        .unwrap();
    assert!(done
        .iter()
        .all(|c| c.stop_reason == StopReason::Interrupted));
    assert_eq!(done[0].tokens, full.tokens[..1]);
    assert!(done[2..].iter().all(|c| c.tokens.is_empty()));
}

#[test]
fn perplexity_matches_llama_cpps_per_chunk_figures() {
    let mut llm = open(4);
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gpl-3.0.txt"),
    )
    .unwrap();
    let opts = PerplexityOptions {
        chunks: Some(3),
        ..PerplexityOptions::default()
    };
    let p = llm.perplexity(&text, &opts).unwrap();
    let figures: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/reference/perplexity/figures.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let want: Vec<f64> = figures["perplexity"][MODEL]["chunk_ppl"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|v| v.as_f64().unwrap())
        .collect();
    let got: Vec<f64> = p
        .per_chunk
        .iter()
        .map(|x| (x * 1e4).round() / 1e4)
        .collect();
    assert_eq!(got, want, "llama.cpp prints these to 4 decimals");
    assert_eq!((p.n_chunk, p.n_ctx, p.scored_tokens), (3, 512, 3 * 255));
    assert!(p.uncertainty.is_some_and(|u| u > 0.0));
    assert_eq!(p.ppl, *p.per_chunk.last().unwrap());
}

#[test]
fn bad_input_is_an_error_that_names_the_problem() {
    let err = |e: ApiError| (e.is_bad_input(), e.to_string());
    let missing = Llm::open("/nonexistent/model.gguf", &LlmOptions::default())
        .err()
        .unwrap();
    let (bad, msg) = err(missing);
    assert!(bad && msg.contains("/nonexistent/model.gguf"), "{msg}");
    for (opts, needle) in [
        (
            LlmOptions {
                threads: Some(0),
                ..LlmOptions::default()
            },
            "threads",
        ),
        (
            LlmOptions {
                max_batch: 0,
                ..LlmOptions::default()
            },
            "max_batch",
        ),
        (
            LlmOptions {
                ctx: 1,
                ..LlmOptions::default()
            },
            "ctx",
        ),
    ] {
        let (bad, msg) = err(Llm::open(require_model(MODEL), &opts).err().unwrap());
        assert!(bad && msg.contains(needle), "{msg}");
    }

    let mut llm = open(2);
    let cases: Vec<(Request, &str)> = vec![
        (Request::from_prompt(Prompt::Tokens(vec![])), "empty"),
        (
            Request::from_prompt(Prompt::Tokens(vec![1, 999_999])),
            "999999",
        ),
        (
            Request::from_prompt(Prompt::Tokens(vec![1; 2000])),
            "context",
        ),
        (
            {
                let mut r = Request::new("hi");
                r.sampling.temperature = -1.0;
                r
            },
            "temperature",
        ),
        (Request::new("hi").max_tokens(0), "max_tokens"),
    ];
    for (r, needle) in &cases {
        let (bad, msg) = err(llm.generate(r, |_| true).err().unwrap());
        assert!(bad && msg.contains(needle), "{needle}: {msg}");
    }
    // One bad request fails a batch before anything runs, naming its index.
    let reqs = vec![Request::new("hi").max_tokens(2), cases[1].0.clone()];
    let mut pieces = 0;
    let e = llm
        .generate_batch(&reqs, |_| {
            pieces += 1;
            true
        })
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("request 1: "), "{e}");
    assert_eq!(pieces, 0);
    let text_err = llm
        .perplexity("too short", &PerplexityOptions::default())
        .err()
        .unwrap();
    assert!(text_err.is_bad_input(), "{text_err}");
    // The engine is still usable after every refusal.
    assert!(!llm
        .generate(&raw_greedy("Hello", 2), |_| true)
        .unwrap()
        .tokens
        .is_empty());
}

/// Resident weights are read and rearranged by the first call and kept: later calls read
/// nothing from disk (the resident prefetchers used to read every resident byte again after
/// each call, and each call rearranged them again) and give the same tokens.
#[test]
fn resident_weights_are_read_once_across_calls() {
    let mut llm = open(2);
    let req = raw_greedy("The capital of France is", 8);
    let first = llm.generate(&req, |_| true).expect("first call");
    let read = llm.engine().bytes_read();
    assert!(read > 0, "the first call reads the weights");
    assert_eq!(llm.engine().plan.n_streamed(), 0, "every layer resident");
    std::thread::sleep(std::time::Duration::from_millis(100));
    for _ in 0..2 {
        let again = llm.generate(&req, |_| true).expect("later call");
        assert_eq!(again.tokens, first.tokens);
    }
    assert_eq!(
        llm.engine().bytes_read(),
        read,
        "resident weights were read again"
    );
}

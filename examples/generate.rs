//! The library in a program: open a model, stream one answer, then answer several prompts in
//! one batch (each layer read once per step for all of them).
//!
//! ```sh
//! cargo run --release --example generate -- [MODEL] [PROMPT]
//! ```
//! MODEL is a GGUF file, an HF directory or a cache alias (default `smollm2-135m`, fetched by
//! `scripts/fetch-models.sh`).

use std::io::Write;

use sluice::api::{Llm, LlmOptions, Request};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| "smollm2-135m".into());
    let prompt = args
        .next()
        .unwrap_or_else(|| "What color is the sky?".into());

    let mut llm = Llm::open(&model, &LlmOptions::default())?;
    eprintln!(
        "{}: {} layers resident, {} streamed",
        model,
        llm.engine().plan.n_resident(),
        llm.engine().plan.n_streamed()
    );

    // One request, its text streamed as it comes.
    let request = Request::new(&prompt).greedy().max_tokens(64);
    let done = llm.generate(&request, |piece| {
        print!("{}", piece.text);
        let _ = std::io::stdout().flush();
        true
    })?;
    println!();
    eprintln!(
        "{} tokens ({}), prompt {:.3} s, decode {:.3} s",
        done.tokens.len(),
        done.stop_reason.name(),
        done.prefill_s,
        done.decode_s
    );

    // Several requests sharing every layer sweep.
    let questions = ["Name a planet.", "Name a colour.", "Name a river."];
    let requests: Vec<Request> = questions
        .iter()
        .map(|q| Request::new(*q).greedy().max_tokens(24))
        .collect();
    let (answers, stats) = llm.generate_batch(&requests, |_| true)?;
    for (q, a) in questions.iter().zip(&answers) {
        println!("{q} -> {}", a.text.trim());
    }
    eprintln!(
        "batch: {} tokens in {:.2} s over {} sweeps",
        stats.generated_tokens, stats.wall_s, stats.steps
    );
    Ok(())
}

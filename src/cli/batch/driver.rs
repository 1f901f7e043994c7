//! The scheduler's driver for `sluice batch`: it feeds input lines as the engine has room
//! (tokenising each only then), decodes each sequence's tokens, applies its stop strings, and
//! writes each result as it finishes.

use std::collections::HashMap;

use serde_json::{json, Value};
use sluice_loader::tokenizer::{ChatMessage, StreamDecoder, Tokenizer};

use super::input::{InputLine, PromptSpec};
use super::output::Output;
use crate::cli::interrupt;
use crate::engine::sampler::{Sampler, SamplerConfig};
use crate::engine::scheduler::{BatchStats, Driver, Finished, SeqRequest, Verdict};
use crate::engine::session::{EngineError, StopReason};
use crate::engine::stops::StopText;

/// A sequence in flight.
struct Running<'t> {
    line: InputLine,
    decoder: StreamDecoder<'t>,
    text: StopText,
}

/// What the run did, for the summary.
#[derive(Debug, Default)]
pub struct Tally {
    pub written: usize,
    pub completion_tokens: usize,
    pub prompt_tokens: usize,
    /// `(line, problem)` of each line that failed.
    pub failed: Vec<(usize, String)>,
    /// Sequences stopped by Ctrl-C (not written: a resumed run does them again).
    pub interrupted: usize,
}

/// Called after each finished sequence with the tally so far (progress).
pub type OnFinished<'t> = Box<dyn FnMut(&Tally) + 't>;
/// Called after each step with the run's figures so far.
pub type OnStep<'t> = Box<dyn FnMut(&BatchStats) + 't>;

/// How every line is generated unless it says otherwise.
pub struct Defaults {
    pub raw: bool,
    pub sampler: SamplerConfig,
    pub max_tokens: usize,
}

/// Feeds `lines` to the engine and writes results to `out`.
pub struct BatchDriver<'t> {
    lines: std::vec::IntoIter<InputLine>,
    tok: &'t Tokenizer,
    defaults: Defaults,
    n_vocab: usize,
    out: Output,
    running: HashMap<u64, Running<'t>>,
    next_id: u64,
    on_finished: OnFinished<'t>,
    on_step: OnStep<'t>,
    /// What happened so far.
    pub tally: Tally,
}

impl<'t> BatchDriver<'t> {
    /// A driver over `lines` for a model of `n_vocab` tokens.
    pub fn new(
        lines: Vec<InputLine>,
        tok: &'t Tokenizer,
        defaults: Defaults,
        n_vocab: usize,
        out: Output,
        on_finished: OnFinished<'t>,
        on_step: OnStep<'t>,
    ) -> BatchDriver<'t> {
        BatchDriver {
            lines: lines.into_iter(),
            tok,
            defaults,
            n_vocab,
            out,
            running: HashMap::new(),
            next_id: 0,
            on_finished,
            on_step,
            tally: Tally::default(),
        }
    }

    /// The prompt's token ids.
    fn tokens(&self, p: &PromptSpec) -> Result<Vec<u32>, String> {
        let tok = self.tok;
        let text = match (p, self.defaults.raw, tok.chat_template()) {
            (PromptSpec::Text(t), true, _) | (PromptSpec::Text(t), _, None) => t.clone(),
            (PromptSpec::Text(t), false, Some(_)) => tok
                .apply_chat_template(&[ChatMessage::user(t)], true)
                .map_err(|e| format!("the chat template failed: {e}"))?,
            (PromptSpec::Messages(m), _, Some(_)) => tok
                .apply_chat_template(m, true)
                .map_err(|e| format!("the chat template failed: {e}"))?,
            (PromptSpec::Messages(_), _, None) => {
                return Err("\"messages\" needs a chat template, and the model has none".into())
            }
        };
        tok.encode(&text, tok.add_bos_default(), true)
            .map_err(|e| format!("tokenising the prompt: {e}"))
    }

    fn fail(&mut self, line: usize, why: String) {
        self.tally.failed.push((line, why));
        (self.on_finished)(&self.tally);
    }
}

impl Driver for BatchDriver<'_> {
    fn next(&mut self, _idle: bool) -> Option<SeqRequest> {
        loop {
            if interrupt::requested() {
                return None;
            }
            let line = self.lines.next()?;
            let prompt = match self.tokens(&line.prompt) {
                Ok(p) => p,
                Err(e) => {
                    self.fail(line.line, e);
                    continue;
                }
            };
            let mut cfg = self.defaults.sampler.clone();
            if let Some(t) = line.temperature {
                cfg.temperature = t;
            }
            if let Some(s) = line.seed {
                cfg.seed = s;
            }
            let id = self.next_id;
            self.next_id += 1;
            let req = SeqRequest {
                id,
                prompt,
                max_tokens: line.max_tokens.unwrap_or(self.defaults.max_tokens),
                sampler: Sampler::new(cfg, self.n_vocab),
            };
            self.running.insert(
                id,
                Running {
                    text: StopText::new(line.stop.clone()),
                    line,
                    decoder: StreamDecoder::new(self.tok),
                },
            );
            return Some(req);
        }
    }

    fn is_eog(&self, token: u32) -> bool {
        self.tok.is_end_of_generation(token)
    }

    fn token(&mut self, id: u64, token: u32, _logits: &[f32]) -> Verdict {
        if interrupt::requested() {
            return Verdict::Stop(StopReason::Interrupted);
        }
        let Some(r) = self.running.get_mut(&id) else {
            return Verdict::Stop(StopReason::Interrupted);
        };
        let piece = r.decoder.push(token).unwrap_or("");
        if r.text.push(piece).1 {
            Verdict::Stop(StopReason::Stop)
        } else {
            Verdict::Continue
        }
    }

    fn finished(&mut self, id: u64, result: Result<Finished, EngineError>) {
        let Some(mut r) = self.running.remove(&id) else {
            return;
        };
        let f = match result {
            Ok(f) => f,
            Err(e) => return self.fail(r.line.line, e.to_string()),
        };
        if f.stop_reason == StopReason::Interrupted {
            self.tally.interrupted += 1;
            return;
        }
        if f.stop_reason != StopReason::Stop {
            let tail = r.decoder.finish().unwrap_or("").to_string();
            r.text.push(&tail);
            r.text.finish();
        }
        let v: Value = json!({
            "id": r.line.id,
            "text": r.text.released(),
            "tokens": f.tokens,
            "stop_reason": f.stop_reason.name(),
            "prompt_tokens": f.prompt_tokens,
            "completion_tokens": f.tokens.len(),
        });
        match self.out.write(&v) {
            Ok(()) => {
                self.tally.written += 1;
                self.tally.prompt_tokens += f.prompt_tokens;
                self.tally.completion_tokens += f.tokens.len();
                (self.on_finished)(&self.tally);
            }
            Err(e) => self.fail(r.line.line, e),
        }
    }

    fn step(&mut self, stats: &BatchStats, _kv_bytes: u64) {
        (self.on_step)(stats);
    }
}

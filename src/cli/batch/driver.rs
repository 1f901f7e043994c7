//! The scheduler's driver for `sluice batch`: it feeds input lines as the engine has room
//! (tokenising each only then), decodes each sequence's tokens, applies its stop strings, and
//! writes each result as it finishes. A sequence's engine id is the 0-based index of its input
//! line.

use std::collections::HashMap;

use serde_json::{json, Value};
use sluice_loader::tokenizer::Tokenizer;

use super::input::{InputLine, PromptSpec};
use super::output::Output;
use crate::api::prompt::{messages_tokens, prompt_tokens};
use crate::cli::interrupt;
use crate::engine::sampler::{Sampler, SamplerConfig};
use crate::engine::scheduler::{BatchStats, Driver, Finished, SeqRequest, Verdict};
use crate::engine::session::{EngineError, StopReason};
use crate::engine::stops::StopDecoder;

/// A sequence in flight.
struct Running<'t> {
    line: InputLine,
    text: StopDecoder<'t>,
}

/// What the run did, for the summary.
#[derive(Debug, Default)]
pub struct Tally {
    /// Lines written to the output.
    pub written: usize,
    /// Tokens generated for the written lines.
    pub completion_tokens: usize,
    /// Prompt tokens of the written lines.
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
    /// "prompt" lines skip the chat template.
    pub raw: bool,
    /// The command line's sampler (a line's "temperature" and "seed" override it).
    pub sampler: SamplerConfig,
    /// The command line's `--max-tokens` (a line's "max_tokens" overrides it).
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
    on_finished: OnFinished<'t>,
    on_step: OnStep<'t>,
    /// Why the output could not be written (the run then stops admitting).
    write_error: Option<String>,
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
            on_finished,
            on_step,
            write_error: None,
            tally: Tally::default(),
        }
    }

    /// Lines not written yet for want of time: those cut short by Ctrl-C (or a write error)
    /// and those never started.
    pub fn remaining(&self) -> usize {
        self.tally.interrupted + self.running.len() + self.lines.len()
    }

    /// Why writing the output failed, if it did.
    pub fn write_error(&self) -> Option<&str> {
        self.write_error.as_deref()
    }

    /// The prompt's token ids.
    fn tokens(&self, p: &PromptSpec) -> Result<Vec<u32>, String> {
        match p {
            PromptSpec::Text(t) => prompt_tokens(self.tok, t, self.defaults.raw),
            PromptSpec::Messages(m) => messages_tokens(self.tok, m),
        }
        .map_err(|e| format!("{e:#}"))
    }

    /// The line's sampler settings: the defaults with its overrides, checked.
    fn sampler_config(&self, line: &InputLine) -> Result<SamplerConfig, String> {
        let mut cfg = self.defaults.sampler.clone();
        if let Some(t) = line.temperature {
            cfg.temperature = t;
        }
        if let Some(s) = line.seed {
            cfg.seed = s;
        }
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    fn fail(&mut self, line: usize, why: String) {
        self.tally.failed.push((line, why));
        (self.on_finished)(&self.tally);
    }

    fn stopping(&self) -> bool {
        interrupt::requested() || self.write_error.is_some()
    }
}

impl Driver for BatchDriver<'_> {
    fn next(&mut self, _idle: bool) -> Option<SeqRequest> {
        loop {
            if self.stopping() {
                return None;
            }
            let line = self.lines.next()?;
            let prepared = self
                .sampler_config(&line)
                .and_then(|cfg| Ok((cfg, self.tokens(&line.prompt)?)));
            let (cfg, prompt) = match prepared {
                Ok(p) => p,
                Err(e) => {
                    self.fail(line.line, e);
                    continue;
                }
            };
            let id = (line.line - 1) as u64;
            let req = SeqRequest {
                id,
                prompt,
                max_tokens: line.max_tokens.unwrap_or(self.defaults.max_tokens),
                sampler: Sampler::new(cfg, self.n_vocab),
                score_from: None,
            };
            self.running.insert(
                id,
                Running {
                    text: StopDecoder::new(self.tok, line.stop.clone()),
                    line,
                },
            );
            return Some(req);
        }
    }

    fn is_eog(&self, token: u32) -> bool {
        self.tok.is_end_of_generation(token)
    }

    fn token(&mut self, id: u64, token: u32, _logits: &[f32]) -> Verdict {
        if self.stopping() {
            return Verdict::Stop(StopReason::Interrupted);
        }
        let Some(r) = self.running.get_mut(&id) else {
            return Verdict::Stop(StopReason::Interrupted);
        };
        if r.text.push(token).1 {
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
        r.text.finish();
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
            Err(e) => {
                // Not written: like an interrupted sequence, a rerun does it again.
                self.tally.interrupted += 1;
                self.write_error.get_or_insert(e);
            }
        }
    }

    fn step(&mut self, stats: &BatchStats, _kv_bytes: u64) {
        (self.on_step)(stats);
    }
}

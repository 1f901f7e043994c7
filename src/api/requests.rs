//! The scheduler's driver behind [`Llm::generate`](super::Llm::generate) and
//! [`Llm::generate_batch`](super::Llm::generate_batch): it admits prepared requests in order,
//! decodes each sequence's tokens through its stop strings, streams the released text to the
//! caller, and keeps each request's completion. A sequence's engine id is its request's index.

use sluice_loader::tokenizer::Tokenizer;

use super::{ApiError, Completion, Piece};
use crate::engine::sampler::{Sampler, SamplerConfig};
use crate::engine::scheduler::{Driver, Finished, SeqRequest, Verdict};
use crate::engine::session::{EngineError, StopReason};
use crate::engine::stops::StopDecoder;

/// A request checked and tokenized.
pub(super) struct Prepared {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplerConfig,
    pub stop: Vec<String>,
}

/// Where one request stands.
enum Slot<'t> {
    /// Not admitted yet (the prompt is kept for the completion of a cancelled run).
    Waiting(Prepared),
    /// In flight: its text so far.
    Running(StopDecoder<'t>, Vec<u32>),
    /// Ended.
    Done(Completion),
    /// Failed in the engine.
    Failed(EngineError),
    /// Taken for admission (never seen after `next` returns).
    Moved,
}

/// Feeds prepared requests to the engine and collects their completions.
pub(super) struct RequestsDriver<'t, 'c> {
    tok: &'t Tokenizer,
    n_vocab: usize,
    slots: Vec<Slot<'t>>,
    next: usize,
    on_piece: &'c mut dyn FnMut(&Piece) -> bool,
    /// The caller's callback returned false: every sequence stops, no more are admitted.
    cancelled: bool,
}

impl<'t, 'c> RequestsDriver<'t, 'c> {
    /// A driver over `requests`, streaming their text to `on_piece`.
    pub fn new(
        requests: Vec<Prepared>,
        tok: &'t Tokenizer,
        n_vocab: usize,
        on_piece: &'c mut dyn FnMut(&Piece) -> bool,
    ) -> RequestsDriver<'t, 'c> {
        RequestsDriver {
            tok,
            n_vocab,
            slots: requests.into_iter().map(Slot::Waiting).collect(),
            next: 0,
            on_piece,
            cancelled: false,
        }
    }

    /// The completions in request order; a request the caller's cancel kept from starting ends
    /// `Interrupted` with no tokens. The first engine failure fails the call.
    pub fn into_results(self) -> Result<Vec<Completion>, ApiError> {
        self.slots
            .into_iter()
            .map(|s| match s {
                Slot::Done(c) => Ok(c),
                Slot::Waiting(p) => Ok(Completion {
                    text: String::new(),
                    tokens: Vec::new(),
                    prompt_tokens: p.prompt,
                    stop_reason: StopReason::Interrupted,
                    prefill_s: 0.0,
                    decode_s: 0.0,
                    decode_steps: 0,
                }),
                Slot::Failed(e) => Err(e.into()),
                Slot::Running(..) | Slot::Moved => {
                    unreachable!("the batch core reports every admitted sequence before it returns")
                }
            })
            .collect()
    }

    /// Hands a piece to the caller; false from it cancels the run.
    fn emit(&mut self, index: usize, token: Option<u32>, text: &str) {
        let go_on = (self.on_piece)(&Piece { index, token, text });
        self.cancelled |= !go_on;
    }
}

impl Driver for RequestsDriver<'_, '_> {
    fn next(&mut self, _idle: bool) -> Option<SeqRequest> {
        if self.cancelled || self.next >= self.slots.len() {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let Slot::Waiting(p) = std::mem::replace(&mut self.slots[index], Slot::Moved) else {
            unreachable!("requests are admitted once, in order")
        };
        self.slots[index] = Slot::Running(StopDecoder::new(self.tok, p.stop), p.prompt.clone());
        Some(SeqRequest {
            id: index as u64,
            prompt: p.prompt,
            max_tokens: p.max_tokens,
            sampler: Sampler::new(p.sampling, self.n_vocab),
            score_from: None,
        })
    }

    fn is_eog(&self, token: u32) -> bool {
        self.tok.is_end_of_generation(token)
    }

    fn token(&mut self, id: u64, token: u32, _logits: &[f32]) -> Verdict {
        let index = id as usize;
        if self.cancelled {
            return Verdict::Stop(StopReason::Interrupted);
        }
        let Some(Slot::Running(text, _)) = self.slots.get_mut(index) else {
            return Verdict::Stop(StopReason::Interrupted);
        };
        let (piece, stopped) = text.push(token);
        let go_on = (self.on_piece)(&Piece {
            index,
            token: Some(token),
            text: piece,
        });
        self.cancelled |= !go_on;
        match (stopped, self.cancelled) {
            (true, _) => Verdict::Stop(StopReason::Stop),
            (false, true) => Verdict::Stop(StopReason::Interrupted),
            (false, false) => Verdict::Continue,
        }
    }

    fn finished(&mut self, id: u64, result: Result<Finished, EngineError>) {
        let index = id as usize;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Slot::Running(mut text, prompt) = std::mem::replace(slot, Slot::Moved) else {
            return;
        };
        let f = match result {
            Ok(f) => f,
            Err(e) => {
                self.slots[index] = Slot::Failed(e);
                return;
            }
        };
        let tail = text.finish().to_string();
        if !tail.is_empty() {
            self.emit(index, None, &tail);
        }
        self.slots[index] = Slot::Done(Completion {
            text: text.released().to_string(),
            tokens: f.tokens,
            prompt_tokens: prompt,
            stop_reason: f.stop_reason,
            prefill_s: f.prefilled.duration_since(f.started).as_secs_f64(),
            decode_s: f.ended.duration_since(f.prefilled).as_secs_f64(),
            decode_steps: f.decode_steps,
        });
    }
}

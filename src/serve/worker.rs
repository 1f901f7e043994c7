//! The engine thread: it owns the [`Engine`](crate::engine::session::Engine) and drives its batch scheduler with the requests
//! the HTTP handlers queue, so one layer sweep serves every live request. Handlers talk to it
//! over a bounded queue (a full queue is the handler's 503) and each request gets its events
//! (text, log-probabilities, the end) on a channel of its own. A request whose receiver is gone
//! (the client left) is cancelled at the next step boundary and its KV slab freed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_loader::tokenizer::Tokenizer;
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::Metrics;
use crate::engine::sampler::{Sampler, SamplerConfig};
use crate::engine::scheduler::{BatchStats, Driver, Finished, SeqRequest, Verdict};
use crate::engine::session::{EngineError, StopReason};
use crate::engine::stops::StopDecoder;

/// How often an idle engine thread looks up from its queue (for shutdown).
const IDLE_POLL: Duration = Duration::from_millis(100);

/// One request for the engine thread.
pub struct Job {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    pub stop: Vec<String>,
    /// `Some(n)`: send each token's log-probability and its `n` most likely alternatives.
    pub logprobs: Option<usize>,
    pub events: UnboundedSender<Event>,
    pub queued_at: Instant,
}

/// A token's log-probability as the API reports it.
#[derive(Clone, Debug)]
pub struct TokenLogprob {
    pub text: String,
    pub logprob: f32,
    /// The most likely tokens at this step, best first: (text, log-probability).
    pub top: Vec<(String, f32)>,
}

/// What a request hears from the engine.
#[derive(Clone, Debug)]
pub enum Event {
    /// The text one token releases (empty while a possible stop string is held back), and the
    /// token's log-probability when asked for.
    Token {
        text: String,
        logprob: Option<TokenLogprob>,
    },
    /// The end: OpenAI's finish reason and the token counts.
    Done {
        finish_reason: &'static str,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    /// The engine failed on this request.
    Failed(String),
}

/// State the handlers and the engine thread share.
#[derive(Default)]
pub struct Shared {
    pub metrics: Metrics,
    /// Cancel every live sequence at the next step (a shutdown's grace period ran out).
    pub cancel_all: AtomicBool,
}

/// One live request on the engine thread.
struct Seq<'t> {
    events: UnboundedSender<Event>,
    text: StopDecoder<'t>,
    logprobs: Option<usize>,
    queued_at: Instant,
    last_token: Option<Instant>,
    prompt_tokens: usize,
    generated: usize,
}

/// The scheduler's driver for the server.
pub struct Worker<'t> {
    rx: Receiver<Job>,
    shared: Arc<Shared>,
    tok: &'t Tokenizer,
    n_vocab: usize,
    seqs: HashMap<u64, Seq<'t>>,
    next_id: u64,
    /// Scratch for the top alternatives, sized to the vocabulary once.
    ranked: Vec<(f32, u32)>,
    streamed_seen: u64,
}

impl<'t> Worker<'t> {
    /// A driver over the queue `rx`, decoding with `tok`.
    pub fn new(rx: Receiver<Job>, shared: Arc<Shared>, tok: &'t Tokenizer, n_vocab: usize) -> Self {
        Worker {
            rx,
            shared,
            tok,
            n_vocab,
            seqs: HashMap::new(),
            next_id: 0,
            ranked: Vec::with_capacity(n_vocab),
            streamed_seen: 0,
        }
    }

    /// The log-probability of `token` under `logits`, and the `n` most likely tokens.
    fn logprob(&mut self, token: u32, logits: &[f32], n: usize) -> TokenLogprob {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
        let lse = max + sum.ln() as f32;
        let lp = |l: f32| l - lse;
        let mut top = Vec::with_capacity(n);
        if n > 0 {
            self.ranked.clear();
            self.ranked
                .extend(logits.iter().enumerate().map(|(i, &l)| (l, i as u32)));
            let by = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
            let k = n.min(self.ranked.len());
            self.ranked.select_nth_unstable_by(k - 1, by);
            self.ranked[..k].sort_unstable_by(by);
            for &(l, id) in &self.ranked[..k] {
                top.push((self.tok.decode(&[id]), lp(l)));
            }
        }
        TokenLogprob {
            text: self.tok.decode(&[token]),
            logprob: logits
                .get(token as usize)
                .map_or(f32::NEG_INFINITY, |&l| lp(l)),
            top,
        }
    }

    /// The next queued job whose client is still there; blocks when `idle`. `None` when none is
    /// waiting, or, idle, when the server has stopped taking requests.
    fn next_job(&mut self, idle: bool) -> Option<Job> {
        loop {
            let job = if idle {
                match self.rx.recv_timeout(IDLE_POLL) {
                    Ok(j) => j,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return None,
                }
            } else {
                match self.rx.try_recv() {
                    Ok(j) => j,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return None,
                }
            };
            let m = &self.shared.metrics;
            Metrics::sub(&m.queue_depth, 1);
            if job.events.is_closed() {
                Metrics::add(&m.requests_cancelled, 1);
                continue;
            }
            return Some(job);
        }
    }
}

impl Driver for Worker<'_> {
    fn next(&mut self, idle: bool) -> Option<SeqRequest> {
        let job = self.next_job(idle)?;
        let id = self.next_id;
        self.next_id += 1;
        let m = &self.shared.metrics;
        Metrics::add(&m.active_sequences, 1);
        Metrics::add(&m.prompt_tokens, job.prompt.len() as u64);
        self.seqs.insert(
            id,
            Seq {
                events: job.events,
                text: StopDecoder::new(self.tok, job.stop),
                logprobs: job.logprobs,
                queued_at: job.queued_at,
                last_token: None,
                prompt_tokens: job.prompt.len(),
                generated: 0,
            },
        );
        Some(SeqRequest {
            id,
            prompt: job.prompt,
            max_tokens: job.max_tokens,
            sampler: Sampler::new(job.sampler, self.n_vocab),
            score_from: None,
        })
    }

    fn is_eog(&self, token: u32) -> bool {
        self.tok.is_end_of_generation(token)
    }

    fn token(&mut self, id: u64, token: u32, logits: &[f32]) -> Verdict {
        let want = match self.seqs.get(&id) {
            Some(s) => s.logprobs,
            None => return Verdict::Stop(StopReason::Interrupted),
        };
        let logprob = want.map(|n| self.logprob(token, logits, n));
        let now = Instant::now();
        let metrics = &self.shared.metrics;
        let Some(s) = self.seqs.get_mut(&id) else {
            return Verdict::Stop(StopReason::Interrupted);
        };
        match s.last_token {
            None => metrics.first_token(now.duration_since(s.queued_at)),
            Some(t) => metrics.inter_token(now.duration_since(t)),
        }
        s.last_token = Some(now);
        s.generated += 1;
        Metrics::add(&metrics.generated_tokens, 1);
        let (text, hit) = s.text.push(token);
        let event = Event::Token {
            text: text.to_string(),
            logprob,
        };
        if s.events.send(event).is_err() {
            return Verdict::Stop(StopReason::Interrupted);
        }
        if hit {
            Verdict::Stop(StopReason::Stop)
        } else {
            Verdict::Continue
        }
    }

    fn finished(&mut self, id: u64, result: Result<Finished, EngineError>) {
        let m = &self.shared.metrics;
        let Some(mut s) = self.seqs.remove(&id) else {
            return;
        };
        Metrics::sub(&m.active_sequences, 1);
        let f = match result {
            Ok(f) => f,
            Err(e) => {
                Metrics::add(&m.requests_failed, 1);
                let _ = s.events.send(Event::Failed(e.to_string()));
                return;
            }
        };
        let finish_reason = match f.stop_reason {
            StopReason::Interrupted => {
                Metrics::add(&m.requests_cancelled, 1);
                return;
            }
            StopReason::Length => "length",
            StopReason::Eos | StopReason::Stop => "stop",
        };
        // Text held back as a possible stop string, bytes of an unfinished character.
        let rest = s.text.finish();
        if !rest.is_empty() {
            let _ = s.events.send(Event::Token {
                text: rest.to_string(),
                logprob: None,
            });
        }
        let _ = s.events.send(Event::Done {
            finish_reason,
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.generated,
        });
    }

    fn cancelled(&mut self, id: u64) -> bool {
        self.shared.cancel_all.load(Ordering::Relaxed)
            || self.seqs.get(&id).is_none_or(|s| s.events.is_closed())
    }

    fn step(&mut self, stats: &BatchStats, kv_bytes: u64) {
        let m = &self.shared.metrics;
        Metrics::add(&m.steps, 1);
        Metrics::add(&m.bytes_read, stats.streamed_bytes - self.streamed_seen);
        self.streamed_seen = stats.streamed_bytes;
        m.kv_bytes.store(kv_bytes, Ordering::Relaxed);
    }
}

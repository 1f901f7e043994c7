//! The HTTP endpoints: OpenAI's `/v1/models`, `/v1/chat/completions` and `/v1/completions`
//! (JSON or SSE framed exactly as OpenAI frames it), `/health`, `/metrics`, `/tokenize` and
//! `/detokenize`, behind an optional Bearer key. Handlers validate and tokenise, queue a
//! [`Job`] for the engine thread (503 with `Retry-After` when the queue is full) and turn its
//! events into the response.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sluice_loader::tokenizer::Tokenizer;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_stream::wrappers::ReceiverStream;

use super::errors::ApiError;
use super::metrics::Metrics;
use super::request::{self, Endpoint, GenRequest, PromptInput};
use super::worker::{Event, Job, Shared, TokenLogprob};

/// Everything the handlers share.
pub struct AppState {
    pub shared: Arc<Shared>,
    pub queue: SyncSender<Job>,
    pub tok: Arc<Tokenizer>,
    /// The id `/v1/models` lists, and other names a request's `model` may use.
    pub model_id: String,
    pub model_aliases: Vec<String>,
    /// Positions one sequence may hold (prompt and generated tokens).
    pub ctx: usize,
    pub api_key: Option<String>,
    pub started_unix: u64,
    /// Seconds between SSE keep-alive comments while a stream is silent.
    pub keep_alive: Duration,
    /// Counter behind response ids and unseeded requests' seeds.
    pub counter: AtomicU64,
}

type Shared_ = Arc<AppState>;

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let guarded = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model_one))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(guarded)
        .fallback(fallback)
        .with_state(state)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `--api-key`: every route but `/health` needs `Authorization: Bearer <key>`.
async fn auth(State(s): State<Shared_>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.api_key {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|k| k.trim() == key);
        if !ok {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn fallback(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

async fn embeddings() -> ApiError {
    ApiError {
        status: StatusCode::NOT_IMPLEMENTED,
        kind: "invalid_request_error",
        code: Some("not_supported"),
        ..ApiError::body("embeddings are not served: sluice serves generative models")
    }
}

fn model_card(s: &AppState) -> Value {
    json!({
        "id": s.model_id,
        "object": "model",
        "created": s.started_unix,
        "owned_by": "sluice",
        "max_model_len": s.ctx,
    })
}

async fn models(State(s): State<Shared_>) -> Json<Value> {
    Json(json!({"object": "list", "data": [model_card(&s)]}))
}

async fn model_one(
    State(s): State<Shared_>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_model(&s, Some(&id))?;
    Ok(Json(model_card(&s)))
}

async fn metrics(State(s): State<Shared_>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.shared.metrics.render(),
    )
        .into_response()
}

fn check_model(s: &AppState, model: Option<&str>) -> Result<(), ApiError> {
    match model {
        Some(m) if m != s.model_id && !s.model_aliases.iter().any(|a| a == m) => {
            Err(ApiError::unknown_model(m, &s.model_id))
        }
        _ => Ok(()),
    }
}

/// `/tokenize`: `{content, add_special?}` → `{tokens}`.
async fn tokenize(State(s): State<Shared_>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::body(format!("the request body is not valid JSON: {e}")))?;
    let content = v
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("content", "`content` must be a string"))?;
    let add_special = match v.get("add_special") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::invalid(
                "add_special",
                "`add_special` must be true or false",
            ))
        }
    };
    let ids = s
        .tok
        .encode(content, add_special && s.tok.add_bos_default(), true)
        .map_err(|e| ApiError::invalid("content", e.to_string()))?;
    Ok(Json(json!({ "tokens": ids })))
}

/// `/detokenize`: `{tokens}` → `{content}`.
async fn detokenize(State(s): State<Shared_>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::body(format!("the request body is not valid JSON: {e}")))?;
    let ids = token_ids(&s, v.get("tokens"), "tokens")?;
    Ok(Json(json!({ "content": s.tok.decode(&ids) })))
}

/// Token ids from a JSON array, each inside the vocabulary.
fn token_ids(s: &AppState, v: Option<&Value>, param: &str) -> Result<Vec<u32>, ApiError> {
    let n_vocab = s.tok.vocab_size();
    let bad = || {
        ApiError::invalid(
            param,
            format!("`{param}` must be an array of token ids below {n_vocab}"),
        )
    };
    v.and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|x| {
            x.as_u64()
                .filter(|&t| t < n_vocab as u64)
                .map(|t| t as u32)
                .ok_or_else(bad)
        })
        .collect()
}

async fn chat(State(s): State<Shared_>, body: Bytes) -> Response {
    generate(s, Endpoint::Chat, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn completions(State(s): State<Shared_>, body: Bytes) -> Response {
    generate(s, Endpoint::Completion, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The prompt's token ids.
fn prompt_ids(s: &AppState, r: &GenRequest) -> Result<Vec<u32>, ApiError> {
    let tok = &s.tok;
    match &r.prompt {
        PromptInput::Messages(m) => {
            let text = if tok.chat_template().is_some() {
                tok.apply_chat_template(m, true)
                    .map_err(|e| ApiError::invalid("messages", e.to_string()))?
            } else {
                m.iter()
                    .map(|m| m.content.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            tok.encode(&text, tok.add_bos_default(), true)
                .map_err(|e| ApiError::invalid("messages", e.to_string()))
        }
        PromptInput::Text(t) => tok
            .encode(t, tok.add_bos_default(), true)
            .map_err(|e| ApiError::invalid("prompt", e.to_string())),
        PromptInput::Tokens(ids) => {
            let v = Value::from(ids.clone());
            token_ids(s, Some(&v), "prompt")
        }
    }
}

/// Validates, queues and answers one generation request.
async fn generate(s: Shared_, endpoint: Endpoint, body: Bytes) -> Result<Response, ApiError> {
    let mut r = request::parse(endpoint, &body)?;
    check_model(&s, r.model.as_deref())?;
    let prompt = prompt_ids(&s, &r)?;
    let param = match endpoint {
        Endpoint::Chat => "messages",
        Endpoint::Completion => "prompt",
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid(
            param,
            "the prompt is empty: it must produce at least one token",
        ));
    }
    if prompt.len() >= s.ctx {
        return Err(ApiError::context(param, prompt.len(), s.ctx));
    }
    let room = s.ctx - prompt.len();
    let max_tokens = r.max_tokens.map_or(room, |m| m.min(room));
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    if !r.seeded {
        r.sampler.seed = unix_now() ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    let (events, rx) = unbounded_channel();
    let prompt_tokens = prompt.len();
    let job = Job {
        prompt,
        max_tokens,
        sampler: r.sampler.clone(),
        stop: r.stop.clone(),
        logprobs: r.logprobs,
        events,
        queued_at: Instant::now(),
    };
    let m = &s.shared.metrics;
    Metrics::add(&m.queue_depth, 1);
    match s.queue.try_send(job) {
        Ok(()) => Metrics::add(&m.requests, 1),
        Err(e) => {
            Metrics::sub(&m.queue_depth, 1);
            Metrics::add(&m.requests_rejected, 1);
            return Err(match e {
                TrySendError::Full(_) => ApiError::unavailable(
                    "the server is busy: every sequence slot is taken and the queue is full; retry later",
                    1,
                ),
                TrySendError::Disconnected(_) => {
                    ApiError::unavailable("the server is shutting down", 5)
                }
            });
        }
    }
    let meta = Meta {
        id: match endpoint {
            Endpoint::Chat => format!("chatcmpl-{}-{n}", s.started_unix),
            Endpoint::Completion => format!("cmpl-{}-{n}", s.started_unix),
        },
        created: unix_now(),
        model: s.model_id.clone(),
        endpoint,
        include_usage: r.include_usage,
        logprobs: r.logprobs.is_some(),
        prompt_tokens,
    };
    if r.stream {
        Ok(stream(meta, rx, s.keep_alive))
    } else {
        collect(meta, rx).await
    }
}

/// What every response and chunk of one request repeats.
struct Meta {
    id: String,
    created: u64,
    model: String,
    endpoint: Endpoint,
    include_usage: bool,
    logprobs: bool,
    prompt_tokens: usize,
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// The logprobs object of one choice from the tokens' log-probabilities.
fn logprobs_json(endpoint: Endpoint, lps: &[TokenLogprob], text_offset0: usize) -> Value {
    match endpoint {
        Endpoint::Chat => json!({
            "content": lps.iter().map(|t| json!({
                "token": t.text,
                "logprob": t.logprob,
                "bytes": t.text.as_bytes(),
                "top_logprobs": t.top.iter().map(|(s, l)| json!({
                    "token": s, "logprob": l, "bytes": s.as_bytes(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "refusal": null,
        }),
        Endpoint::Completion => {
            let mut offset = text_offset0;
            let mut offsets = Vec::with_capacity(lps.len());
            for t in lps {
                offsets.push(offset);
                offset += t.text.len();
            }
            json!({
                "tokens": lps.iter().map(|t| &t.text).collect::<Vec<_>>(),
                "token_logprobs": lps.iter().map(|t| t.logprob).collect::<Vec<_>>(),
                "top_logprobs": lps.iter().map(|t| {
                    t.top.iter().map(|(s, l)| (s.clone(), json!(l))).collect::<serde_json::Map<_, _>>()
                }).collect::<Vec<_>>(),
                "text_offset": offsets,
            })
        }
    }
}

/// A non-streamed answer: waits for the end (a client that leaves drops `rx`, which cancels).
async fn collect(meta: Meta, mut rx: UnboundedReceiver<Event>) -> Result<Response, ApiError> {
    let mut text = String::new();
    let mut lps = Vec::new();
    loop {
        match rx.recv().await {
            Some(Event::Token { text: t, logprob }) => {
                text.push_str(&t);
                lps.extend(logprob);
            }
            Some(Event::Done {
                finish_reason,
                completion_tokens,
                ..
            }) => {
                let logprobs = if meta.logprobs {
                    logprobs_json(meta.endpoint, &lps, 0)
                } else {
                    Value::Null
                };
                let (object, choice) = match meta.endpoint {
                    Endpoint::Chat => (
                        "chat.completion",
                        json!({"index": 0, "message": {"role": "assistant", "content": text},
                               "logprobs": logprobs, "finish_reason": finish_reason}),
                    ),
                    Endpoint::Completion => (
                        "text_completion",
                        json!({"index": 0, "text": text, "logprobs": logprobs,
                               "finish_reason": finish_reason}),
                    ),
                };
                return Ok(Json(json!({
                    "id": meta.id,
                    "object": object,
                    "created": meta.created,
                    "model": meta.model,
                    "choices": [choice],
                    "usage": usage(meta.prompt_tokens, completion_tokens),
                }))
                .into_response());
            }
            Some(Event::Failed(e)) => return Err(ApiError::internal(e)),
            None => {
                return Err(ApiError::internal(
                    "the engine stopped before the answer was complete",
                ))
            }
        }
    }
}

/// Builds the SSE chunks of one request.
struct Chunker {
    meta: Meta,
    text_offset: usize,
}

impl Chunker {
    fn chunk(&self, delta_or_text: Value, logprobs: Value, finish: Option<&str>) -> Value {
        let (object, choice) = match self.meta.endpoint {
            Endpoint::Chat => (
                "chat.completion.chunk",
                json!({"index": 0, "delta": delta_or_text, "logprobs": logprobs, "finish_reason": finish}),
            ),
            Endpoint::Completion => (
                "text_completion",
                json!({"index": 0, "text": delta_or_text, "logprobs": logprobs, "finish_reason": finish}),
            ),
        };
        let mut c = json!({
            "id": self.meta.id,
            "object": object,
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": [choice],
        });
        if self.meta.include_usage {
            c["usage"] = Value::Null;
        }
        c
    }

    /// The first chunk: the assistant role (chat only).
    fn first(&self) -> Option<Value> {
        (self.meta.endpoint == Endpoint::Chat).then(|| {
            self.chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
                None,
            )
        })
    }

    fn token(&mut self, text: String, lp: Option<TokenLogprob>) -> Option<Value> {
        if text.is_empty() && lp.is_none() {
            return None; // Held back as a possible stop string: nothing to send yet.
        }
        let logprobs = match lp {
            Some(l) if self.meta.logprobs => logprobs_json(
                self.meta.endpoint,
                std::slice::from_ref(&l),
                self.text_offset,
            ),
            _ => Value::Null,
        };
        self.text_offset += text.len();
        let body = match self.meta.endpoint {
            Endpoint::Chat => json!({ "content": text }),
            Endpoint::Completion => json!(text),
        };
        Some(self.chunk(body, logprobs, None))
    }

    fn last(&self, finish_reason: &str) -> Value {
        let body = match self.meta.endpoint {
            Endpoint::Chat => json!({}),
            Endpoint::Completion => json!(""),
        };
        self.chunk(body, Value::Null, Some(finish_reason))
    }

    fn usage(&self, completion: usize) -> Value {
        let object = match self.meta.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completion => "text_completion",
        };
        json!({
            "id": self.meta.id,
            "object": object,
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": [],
            "usage": usage(self.meta.prompt_tokens, completion),
        })
    }
}

/// A streamed answer: a task turns engine events into SSE events; when the client leaves, the
/// SSE stream is dropped, the task's send fails and it drops `rx`, which cancels the sequence.
fn stream(meta: Meta, mut rx: UnboundedReceiver<Event>, keep_alive: Duration) -> Response {
    let (tx, sse_rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(64);
    tokio::spawn(async move {
        let mut c = Chunker {
            meta,
            text_offset: 0,
        };
        let data = |v: Value| Ok(SseEvent::default().data(v.to_string()));
        if let Some(first) = c.first() {
            if tx.send(data(first)).await.is_err() {
                return;
            }
        }
        while let Some(ev) = rx.recv().await {
            let out: Vec<Value> = match ev {
                Event::Token { text, logprob } => c.token(text, logprob).into_iter().collect(),
                Event::Done {
                    finish_reason,
                    completion_tokens,
                    ..
                } => {
                    let mut v = vec![c.last(finish_reason)];
                    if c.meta.include_usage {
                        v.push(c.usage(completion_tokens));
                    }
                    v
                }
                Event::Failed(e) => vec![ApiError::internal(e).body_json()],
            };
            for v in out {
                if tx.send(data(v)).await.is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
    });
    Sse::new(ReceiverStream::new(sse_rx))
        .keep_alive(KeepAlive::new().interval(keep_alive).text(""))
        .into_response()
}

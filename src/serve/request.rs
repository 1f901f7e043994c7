//! The request bodies of `/v1/chat/completions` and `/v1/completions`, read field by field so
//! that every bad field gets a 400 naming it (`param`), the way OpenAI answers. Unknown fields
//! are ignored, as vLLM and llama-server do; fields we cannot honour are refused by name.

use serde_json::{Map, Value};
use sluice_loader::tokenizer::ChatMessage;

use super::errors::ApiError;
use crate::engine::sampler::SamplerConfig;

/// Which endpoint a request came to (the response shapes differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

/// What the prompt is before tokenisation.
#[derive(Clone, Debug)]
pub enum PromptInput {
    /// Chat messages, put through the model's chat template.
    Messages(Vec<ChatMessage>),
    /// Raw text (completions).
    Text(String),
    /// Token ids given by the client (completions).
    Tokens(Vec<u32>),
}

/// A generation request, validated.
#[derive(Clone, Debug)]
pub struct GenRequest {
    pub endpoint: Endpoint,
    pub model: Option<String>,
    pub prompt: PromptInput,
    /// `max_completion_tokens`, else `max_tokens`; `None`: what the context leaves.
    pub max_tokens: Option<usize>,
    pub sampler: SamplerConfig,
    /// Whether the client gave a seed (otherwise each request draws its own).
    pub seeded: bool,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    /// `Some(n)`: return each token's log-probability and the `n` most likely alternatives.
    pub logprobs: Option<usize>,
}

/// Most stop strings one request may give.
pub const STOP_MAX: usize = 16;
/// Most alternatives `top_logprobs` (chat) may ask for.
pub const TOP_LOGPROBS_MAX: usize = 20;
/// Most alternatives `logprobs` (completions) may ask for.
pub const COMPLETION_LOGPROBS_MAX: usize = 5;

type Obj = Map<String, Value>;

fn opt<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn opt_f32(o: &Obj, key: &str) -> Result<Option<f32>, ApiError> {
    match opt(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .map(|x| Some(x as f32))
            .ok_or_else(|| ApiError::invalid(key, format!("`{key}` must be a number"))),
    }
}

fn opt_uint(o: &Obj, key: &str, max: u64) -> Result<Option<u64>, ApiError> {
    match opt(o, key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(x) if x <= max => Ok(Some(x)),
            _ => Err(ApiError::invalid(
                key,
                format!("`{key}` must be an integer from 0 to {max}"),
            )),
        },
    }
}

fn opt_bool(o: &Obj, key: &str) -> Result<Option<bool>, ApiError> {
    match opt(o, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(
            key,
            format!("`{key}` must be true or false"),
        )),
    }
}

/// Parses a chat or completion request body.
pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<GenRequest, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::body(format!("the request body is not valid JSON: {e}")))?;
    let Value::Object(o) = v else {
        return Err(ApiError::body("the request body must be a JSON object"));
    };
    let model = match opt(&o, "model") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::invalid("model", "`model` must be a string")),
    };
    let prompt = match endpoint {
        Endpoint::Chat => PromptInput::Messages(messages(&o)?),
        Endpoint::Completion => completion_prompt(&o)?,
    };
    if let Some(n) = opt_uint(&o, "n", u64::MAX)? {
        if n != 1 {
            return Err(ApiError::invalid(
                "n",
                format!("only one choice per request is supported (`n` = 1), not {n}"),
            ));
        }
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        if opt_f32(&o, key)?.is_some_and(|x| x != 0.0) {
            return Err(ApiError::invalid(
                key,
                format!("`{key}` is not supported; use `repeat_penalty`"),
            ));
        }
    }
    if opt(&o, "logit_bias").is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty())) {
        return Err(ApiError::invalid(
            "logit_bias",
            "`logit_bias` is not supported",
        ));
    }
    if let Some(t) = opt(&o, "tools").and_then(Value::as_array) {
        if !t.is_empty() {
            return Err(ApiError::invalid("tools", "tool calls are not supported"));
        }
    }
    let max_completion = opt_uint(&o, "max_completion_tokens", u32::MAX as u64)?;
    let max_tokens = max_completion
        .or(opt_uint(&o, "max_tokens", u32::MAX as u64)?)
        .map(|n| n as usize);
    if max_tokens == Some(0) {
        let param = if max_completion.is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must be at least 1"),
        ));
    }
    let mut sampler = SamplerConfig::default();
    if let Some(t) = opt_f32(&o, "temperature")? {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::invalid(
                "temperature",
                "`temperature` must be from 0 to 2",
            ));
        }
        sampler.temperature = t;
    }
    if let Some(p) = opt_f32(&o, "top_p")? {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::invalid("top_p", "`top_p` must be in (0, 1]"));
        }
        sampler.top_p = p;
    }
    if let Some(p) = opt_f32(&o, "min_p")? {
        if !(0.0..1.0).contains(&p) {
            return Err(ApiError::invalid("min_p", "`min_p` must be in [0, 1)"));
        }
        sampler.min_p = p;
    }
    if let Some(k) = opt_uint(&o, "top_k", u32::MAX as u64)? {
        sampler.top_k = k as usize;
    }
    if let Some(r) = opt_f32(&o, "repeat_penalty")? {
        if r <= 0.0 {
            return Err(ApiError::invalid(
                "repeat_penalty",
                "`repeat_penalty` must be > 0",
            ));
        }
        sampler.repeat_penalty = r;
    }
    let seed = match opt(&o, "seed") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_i64().map(|x| x as u64))
                .ok_or_else(|| ApiError::invalid("seed", "`seed` must be an integer"))?,
        ),
    };
    if let Some(s) = seed {
        sampler.seed = s;
    }
    let stop = stops(&o)?;
    let stream = opt_bool(&o, "stream")?.unwrap_or(false);
    let include_usage = match opt(&o, "stream_options") {
        None => false,
        Some(Value::Object(so)) => {
            if !stream {
                return Err(ApiError::invalid(
                    "stream_options",
                    "`stream_options` is only allowed when `stream` is true",
                ));
            }
            opt_bool(so, "include_usage")
                .map_err(|_| {
                    ApiError::invalid(
                        "stream_options.include_usage",
                        "`include_usage` must be true or false",
                    )
                })?
                .unwrap_or(false)
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "stream_options",
                "`stream_options` must be an object",
            ))
        }
    };
    let logprobs = match endpoint {
        Endpoint::Chat => {
            let on = opt_bool(&o, "logprobs")?.unwrap_or(false);
            let top = opt_uint(&o, "top_logprobs", TOP_LOGPROBS_MAX as u64)?;
            if top.is_some() && !on {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    "`top_logprobs` requires `logprobs` to be true",
                ));
            }
            on.then_some(top.unwrap_or(0) as usize)
        }
        Endpoint::Completion => {
            opt_uint(&o, "logprobs", COMPLETION_LOGPROBS_MAX as u64)?.map(|n| n as usize)
        }
    };
    Ok(GenRequest {
        endpoint,
        model,
        prompt,
        max_tokens,
        sampler,
        seeded: seed.is_some(),
        stop,
        stream,
        include_usage,
        logprobs,
    })
}

/// `messages`: roles and text content (a string, or text parts).
fn messages(o: &Obj) -> Result<Vec<ChatMessage>, ApiError> {
    let Some(Value::Array(list)) = opt(o, "messages") else {
        return Err(ApiError::invalid(
            "messages",
            "`messages` is required: a non-empty array of {role, content}",
        ));
    };
    if list.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must not be empty",
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Value::Object(m) = m else {
            return Err(ApiError::invalid(
                &param,
                format!("`{param}` must be an object"),
            ));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) => match r.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                "tool" => "tool",
                other => {
                    return Err(ApiError::invalid(
                        &format!("{param}.role"),
                        format!(
                            "unknown role `{other}` (system, developer, user, assistant, tool)"
                        ),
                    ))
                }
            },
            _ => {
                return Err(ApiError::invalid(
                    &format!("{param}.role"),
                    "each message needs a string `role`",
                ))
            }
        };
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None if role == "assistant" => String::new(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.iter().enumerate() {
                    match (p.get("type").and_then(Value::as_str), p.get("text")) {
                        (Some("text"), Some(Value::String(t))) => text.push_str(t),
                        _ => {
                            return Err(ApiError::invalid(
                                &format!("{param}.content[{j}]"),
                                "only text content parts ({\"type\": \"text\", \"text\": …}) are supported",
                            ))
                        }
                    }
                }
                text
            }
            _ => {
                return Err(ApiError::invalid(
                    &format!("{param}.content"),
                    "`content` must be a string or an array of text parts",
                ))
            }
        };
        out.push(ChatMessage {
            role: role.to_string(),
            content,
        });
    }
    Ok(out)
}

/// The completions `prompt`: a string, one string in an array, or token ids.
fn completion_prompt(o: &Obj) -> Result<PromptInput, ApiError> {
    let bad = || {
        ApiError::invalid(
            "prompt",
            "`prompt` must be a string, an array of one string, or an array of token ids \
             (one prompt per request)",
        )
    };
    let ids = |a: &[Value]| -> Option<Vec<u32>> {
        a.iter()
            .map(|v| v.as_u64().and_then(|x| u32::try_from(x).ok()))
            .collect()
    };
    match opt(o, "prompt") {
        Some(Value::String(s)) => Ok(PromptInput::Text(s.clone())),
        Some(Value::Array(a)) => match a.as_slice() {
            [Value::String(s)] => Ok(PromptInput::Text(s.clone())),
            [Value::Array(inner)] => ids(inner).map(PromptInput::Tokens).ok_or_else(bad),
            _ => ids(a).map(PromptInput::Tokens).ok_or_else(bad),
        },
        None => Err(ApiError::invalid("prompt", "`prompt` is required")),
        Some(_) => Err(bad()),
    }
}

/// `stop`: a string or an array of strings.
fn stops(o: &Obj) -> Result<Vec<String>, ApiError> {
    let list = match opt(o, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            for v in a {
                match v {
                    Value::String(s) => out.push(s.clone()),
                    _ => {
                        return Err(ApiError::invalid(
                            "stop",
                            "`stop` must be a string or an array of strings",
                        ))
                    }
                }
            }
            out
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "stop",
                "`stop` must be a string or an array of strings",
            ))
        }
    };
    if list.len() > STOP_MAX {
        return Err(ApiError::invalid(
            "stop",
            format!("at most {STOP_MAX} stop strings, not {}", list.len()),
        ));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<GenRequest, ApiError> {
        parse(Endpoint::Chat, body.as_bytes())
    }

    #[test]
    fn a_full_chat_request_is_read() {
        let r = chat(
            r#"{"model":"m","messages":[{"role":"developer","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"hi"}]}],
                "max_tokens":5,"max_completion_tokens":7,"temperature":0,"top_k":3,
                "seed":-1,"stop":"\n","stream":true,"stream_options":{"include_usage":true},
                "logprobs":true,"top_logprobs":2,"unknown_field":{"x":1}}"#,
        )
        .expect("valid");
        assert_eq!(r.max_tokens, Some(7), "max_completion_tokens wins");
        assert_eq!(r.sampler.temperature, 0.0);
        assert_eq!(r.sampler.top_k, 3);
        assert_eq!(r.sampler.seed, u64::MAX);
        assert!(r.seeded && r.stream && r.include_usage);
        assert_eq!(r.stop, ["\n"]);
        assert_eq!(r.logprobs, Some(2));
        let PromptInput::Messages(m) = r.prompt else {
            panic!("messages")
        };
        assert_eq!(m[0].role, "system");
        assert_eq!(m[1].content, "hi");
    }

    #[test]
    fn bad_fields_are_named() {
        for (body, param) in [
            (r#"{"messages":[]}"#, "messages"),
            (
                r#"{"messages":[{"role":"user","content":1}]}"#,
                "messages[0].content",
            ),
            (
                r#"{"messages":[{"role":"boss","content":"x"}]}"#,
                "messages[0].role",
            ),
            (r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#, "n"),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
                "temperature",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"temperature":3}"#,
                "temperature",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
                "max_tokens",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                "max_tokens",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stop":[1]}"#,
                "stop",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}"#,
                "top_logprobs",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stream_options":{}}"#,
                "stream_options",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"model":5}"#,
                "model",
            ),
        ] {
            let e = chat(body).expect_err(body);
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
        let e = chat("{not json").expect_err("not JSON");
        assert!(e.message.contains("not valid JSON") && e.param.is_none());
        assert!(chat("[1]").expect_err("array").message.contains("object"));
    }

    #[test]
    fn completion_prompts_take_text_or_token_ids() {
        let p = |b: &str| parse(Endpoint::Completion, b.as_bytes());
        assert!(matches!(
            p(r#"{"prompt":"a"}"#).unwrap().prompt,
            PromptInput::Text(_)
        ));
        assert!(matches!(
            p(r#"{"prompt":["a"]}"#).unwrap().prompt,
            PromptInput::Text(_)
        ));
        let PromptInput::Tokens(t) = p(r#"{"prompt":[[1,2]]}"#).unwrap().prompt else {
            panic!("tokens")
        };
        assert_eq!(t, [1, 2]);
        assert_eq!(
            p(r#"{"prompt":["a","b"]}"#).unwrap_err().param.as_deref(),
            Some("prompt")
        );
        assert_eq!(
            p(r#"{"prompt":"a","logprobs":9}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("logprobs")
        );
        assert_eq!(
            p(r#"{"prompt":"a","logprobs":2}"#).unwrap().logprobs,
            Some(2)
        );
    }
}

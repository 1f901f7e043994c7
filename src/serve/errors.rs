//! Errors as OpenAI's API returns them: `{"error": {"message", "type", "param", "code"}}` with
//! the status code clients branch on (openai-python maps 400/401/404/429/5xx to its exceptions
//! and retries 429 and 5xx, honouring `Retry-After`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One API error: status, OpenAI error type, the offending parameter and a machine code.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds after which a retry may succeed (503 when the queue is full).
    pub retry_after: Option<u64>,
    /// Extra fields beside `message` (context overflow names the counts, as llama-server does).
    pub extra: Option<Value>,
}

impl ApiError {
    /// A 400 `invalid_request_error` about `param`.
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: Some(param.to_string()),
            code: None,
            retry_after: None,
            extra: None,
        }
    }

    /// A 400 about the request body as a whole (not JSON, not an object).
    pub fn body(message: impl Into<String>) -> ApiError {
        ApiError {
            param: None,
            ..ApiError::invalid("", message)
        }
    }

    /// The prompt does not fit the context.
    pub fn context(param: &str, prompt: usize, ctx: usize) -> ApiError {
        ApiError {
            code: Some("context_length_exceeded"),
            extra: Some(json!({"n_prompt_tokens": prompt, "n_ctx": ctx})),
            ..ApiError::invalid(
                param,
                format!(
                    "the request has {prompt} prompt tokens, but the context holds {ctx} \
                     (the prompt must leave room for at least one generated token)"
                ),
            )
        }
    }

    /// A 404 for a model this server does not serve.
    pub fn unknown_model(model: &str, served: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            ..ApiError::invalid(
                "model",
                format!("the model `{model}` does not exist; this server serves `{served}`"),
            )
        }
    }

    /// A 401 for a missing or wrong API key.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            message: "invalid or missing API key: send `Authorization: Bearer <key>`".into(),
            param: None,
            code: Some("invalid_api_key"),
            retry_after: None,
            extra: None,
        }
    }

    /// A 503 when the server cannot take the request now (queue full, model loading, stopping).
    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            message: message.into(),
            param: None,
            code: Some("server_busy"),
            retry_after: Some(retry_after),
            extra: None,
        }
    }

    /// A 404 for a path this server does not have.
    pub fn no_route(path: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            message: format!("no endpoint {path} on this server"),
            param: None,
            code: Some("unknown_url"),
            retry_after: None,
            extra: None,
        }
    }

    /// A 500: the engine failed while generating.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
            extra: None,
        }
    }

    /// The OpenAI error object.
    pub fn body_json(&self) -> Value {
        let mut e = json!({
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        });
        if let (Some(Value::Object(extra)), Some(obj)) = (&self.extra, e.as_object_mut()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        json!({ "error": e })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body_json())).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

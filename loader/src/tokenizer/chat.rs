//! Chat templates: the model's Jinja template rendered with `minijinja` as HF renders it.
//!
//! HF's environment sets `trim_blocks` and `lstrip_blocks` and passes `messages`,
//! `add_generation_prompt`, `bos_token` and `eos_token`; the Python-isms templates rely on
//! (`.strip()`, `raise_exception`, Python-style `tojson`, …) come from [`super::jinja_py`].

use std::sync::{Arc, OnceLock};

use minijinja::{context, Environment};

use super::error::TokenizerError;
use super::jinja_py;

/// The name the template is registered under (no extension, so no auto-escaping).
const TEMPLATE_NAME: &str = "chat";

/// One chat turn.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("assistant", content)
    }
}

/// A template source and, once first used, its compiled environment (or the parse error).
#[derive(Clone, Debug)]
pub(crate) struct ChatTemplate {
    source: Arc<str>,
    compiled: Arc<OnceLock<Result<Environment<'static>, String>>>,
}

impl ChatTemplate {
    /// Wraps a template source; it is parsed on first use.
    pub(crate) fn new(source: String) -> ChatTemplate {
        ChatTemplate {
            source: source.into(),
            compiled: Arc::new(OnceLock::new()),
        }
    }

    /// The Jinja source.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    fn environment(&self) -> Result<&Environment<'static>, TokenizerError> {
        self.compiled
            .get_or_init(|| {
                let mut env = Environment::new();
                jinja_py::configure(&mut env);
                env.add_template_owned(TEMPLATE_NAME, self.source.to_string())
                    .map_err(|e| describe(&e))?;
                Ok(env)
            })
            .as_ref()
            .map_err(|e| TokenizerError::Template(e.clone()))
    }

    /// Renders the template.
    pub(crate) fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, TokenizerError> {
        let env = self.environment()?;
        let tmpl = env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| TokenizerError::Template(describe(&e)))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        })
        .map_err(|e| TokenizerError::Template(describe(&e)))
    }
}

/// A minijinja error with its causes and location.
fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

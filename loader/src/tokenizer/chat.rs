//! Chat templates: the model's Jinja template rendered with `minijinja` as HF renders it.
//!
//! HF's environment sets `trim_blocks` and `lstrip_blocks` and passes `messages`,
//! `add_generation_prompt`, `bos_token` and `eos_token`; the Python-isms templates rely on
//! (`.strip()`, `raise_exception`, Python-style `tojson`, …) come from [`super::jinja_py`].
//!
//! A template is data from a model file, so a render is bounded: it may run at most
//! [`FUEL`] template instructions and write at most [`MAX_RENDERED_BYTES`]. A template that
//! loops without end or prints without end fails with an error instead of hanging or filling
//! memory. Not bounded: strings a template builds without printing them (minijinja caps `*`
//! repetition at 100 MB per string, but not `~` concatenation), so a template written to
//! exhaust memory still can.

use std::io;
use std::sync::{Arc, OnceLock};

use minijinja::{context, Environment, ErrorKind};

use super::error::TokenizerError;
use super::jinja_py;

/// The name the template is registered under (no extension, so no auto-escaping).
const TEMPLATE_NAME: &str = "chat";

/// Template instructions one render may run. The real templates here take 10-50 per message
/// (SmolLM2 and Qwen2.5, 1-100 messages), so this admits conversations of 400 000 messages
/// or more; a template that loops without end stops after about 0.5 s on the AMD EPYC.
pub const FUEL: u64 = 20_000_000;

/// Bytes one render may write: far beyond any context window's text (a 128K-token prompt is a
/// few MB), small enough that a template printing without end fails before memory runs out.
pub const MAX_RENDERED_BYTES: usize = 64 << 20;

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
                env.set_fuel(Some(FUEL));
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
        let mut out = Capped(Vec::new());
        let rendered = tmpl.render_captured_to(
            context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => bos_token,
                eos_token => eos_token,
            },
            &mut out,
        );
        match rendered {
            Ok(_) => String::from_utf8(out.0)
                .map_err(|_| TokenizerError::Template("the rendered prompt is not UTF-8".into())),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(TokenizerError::Template(format!(
                "ran more than {FUEL} instructions without finishing (a loop without end?)"
            ))),
            // `Capped` is the only writer, and it fails only at the cap.
            Err(e) if e.kind() == ErrorKind::WriteFailure => {
                Err(TokenizerError::Template(format!(
                    "the rendered prompt exceeds {} MiB; the template writes without end",
                    MAX_RENDERED_BYTES >> 20
                )))
            }
            Err(e) => Err(TokenizerError::Template(describe(&e))),
        }
    }
}

/// The render's output, refusing to grow past [`MAX_RENDERED_BYTES`].
struct Capped(Vec<u8>);

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED_BYTES {
            return Err(io::Error::other("the rendered prompt is too long"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

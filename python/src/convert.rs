//! Python values to library requests and back: prompts (text, chat messages, token ids),
//! generation keyword options, and the `Completion` a call returns.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use sluice::api::{ChatMessage, Completion as LibCompletion, Prompt, Request, RunStats};
use sluice::engine::sampler::SamplerConfig;

/// The keyword options every generation call takes, with the CLI's defaults.
pub const OPTION_NAMES: &[&str] = &[
    "max_tokens",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "seed",
    "stop",
    "raw",
];

/// A prompt: a str (through the chat template unless raw), a list of {"role", "content"}
/// dicts (chat messages), or a list of token ids.
pub fn prompt(obj: &Bound<'_, PyAny>) -> PyResult<Prompt> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Prompt::Text(s.to_cow()?.into_owned()));
    }
    if obj.cast::<PyList>().is_err() && obj.cast::<PyTuple>().is_err() {
        return Err(PyTypeError::new_err(
            "a prompt is a str, a list of {\"role\", \"content\"} dicts, or a list of token ids",
        ));
    }
    let items: Vec<Bound<'_, PyAny>> = obj.extract()?;
    if !items.is_empty() && items.iter().all(|i| i.cast::<PyDict>().is_ok()) {
        let messages = items
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let get = |key: &str| -> PyResult<String> {
                    m.get_item(key)
                        .and_then(|v| v.extract::<String>())
                        .map_err(|_| {
                            PyTypeError::new_err(format!("message {k}: \"{key}\" must be a str"))
                        })
                };
                Ok(ChatMessage::new(get("role")?, get("content")?))
            })
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(Prompt::Messages(messages));
    }
    let ids: Vec<u32> = obj.extract().map_err(|_| {
        PyTypeError::new_err(
            "a list prompt is chat messages (dicts) or token ids (ints from 0 to 2**32-1)",
        )
    })?;
    Ok(Prompt::Tokens(ids))
}

/// The request for `prompt` under the keyword `options` (unknown names are a TypeError).
pub fn request(
    prompt_obj: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Request> {
    let mut r = Request::from_prompt(prompt(prompt_obj)?);
    if let Some(opts) = options {
        apply_options(&mut r, opts, &[])?;
    }
    Ok(r)
}

/// One item of `generate_batch`: a prompt, or a dict with "prompt" or "messages" and any of
/// the options, which override the call's for that item (as a `sluice batch` line does).
pub fn batch_request(
    item: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Request> {
    let Ok(d) = item.cast::<PyDict>() else {
        return request(item, options);
    };
    let text = d.get_item("prompt")?.filter(|v| !v.is_none());
    let chat = d.get_item("messages")?.filter(|v| !v.is_none());
    let prompt_obj = match (text, chat) {
        (Some(t), None) => t,
        (None, Some(m)) => m,
        (Some(_), Some(_)) => {
            return Err(PyTypeError::new_err(
                "a request dict gives \"prompt\" or \"messages\", not both",
            ))
        }
        (None, None) => {
            return Err(PyTypeError::new_err(
                "a request dict needs \"prompt\" or \"messages\"",
            ))
        }
    };
    let mut r = request(&prompt_obj, options)?;
    apply_options(&mut r, d, &["prompt", "messages"])?;
    Ok(r)
}

/// Sets the options named in `opts` on `r`; `None` leaves an option as it was, and the keys in
/// `skip` are not options.
fn apply_options(r: &mut Request, opts: &Bound<'_, PyDict>, skip: &[&str]) -> PyResult<()> {
    for (k, v) in opts.iter() {
        let key: String = k.extract()?;
        if skip.contains(&key.as_str()) {
            continue;
        }
        if v.is_none() && OPTION_NAMES.contains(&key.as_str()) {
            continue;
        }
        let s: &mut SamplerConfig = &mut r.sampling;
        match key.as_str() {
            "max_tokens" => r.max_tokens = nonneg(&v, &key)?,
            "temperature" => s.temperature = v.extract()?,
            "top_k" => s.top_k = nonneg(&v, &key)?,
            "top_p" => s.top_p = v.extract()?,
            "min_p" => s.min_p = v.extract()?,
            "repeat_penalty" => s.repeat_penalty = v.extract()?,
            "repeat_last_n" => s.repeat_last_n = nonneg(&v, &key)?,
            "seed" => s.seed = v.extract()?,
            "raw" => r.raw = v.extract()?,
            "stop" => {
                r.stop = match v.cast::<PyString>() {
                    Ok(one) => vec![one.to_cow()?.into_owned()],
                    Err(_) => v
                        .extract()
                        .map_err(|_| PyTypeError::new_err("stop must be a str or a list of str"))?,
                }
            }
            other => {
                return Err(PyTypeError::new_err(format!(
                    "unexpected keyword argument '{other}' (the options are: {})",
                    OPTION_NAMES.join(", ")
                )))
            }
        }
    }
    Ok(())
}

/// A non-negative integer option.
fn nonneg(v: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    let n: i64 = v
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{name} must be an int")))?;
    usize::try_from(n).map_err(|_| PyValueError::new_err(format!("{name} must be ≥ 0, got {n}")))
}

/// What a generation produced: the text, the token ids, why it stopped, and its timings.
#[pyclass(module = "sluice", frozen)]
pub struct Completion {
    /// The generated text (cut before a stop string).
    #[pyo3(get)]
    pub text: String,
    /// The generated token ids (the end-of-generation token excluded).
    #[pyo3(get)]
    pub tokens: Vec<u32>,
    /// The prompt's token ids.
    #[pyo3(get)]
    pub prompt_tokens: Vec<u32>,
    /// "length", "eos", "stop" or "interrupted".
    #[pyo3(get)]
    pub stop_reason: String,
    /// Seconds on the prompt, and on the tokens after it.
    #[pyo3(get)]
    pub prefill_s: f64,
    #[pyo3(get)]
    pub decode_s: f64,
    /// Sweeps that generated a token after the prompt's.
    #[pyo3(get)]
    pub decode_steps: usize,
    /// The figures of the call (for a batch item: of the whole batch).
    run: Option<RunStats>,
}

impl Completion {
    /// The Python view of a completion and the figures of the call that made it.
    pub fn new(c: LibCompletion, run: Option<&RunStats>) -> Completion {
        Completion {
            text: c.text,
            tokens: c.tokens,
            prompt_tokens: c.prompt_tokens,
            stop_reason: c.stop_reason.name().to_string(),
            prefill_s: c.prefill_s,
            decode_s: c.decode_s,
            decode_steps: c.decode_steps,
            run: run.cloned(),
        }
    }
}

#[pymethods]
impl Completion {
    /// Token counts and rates, as `sluice run --json` reports them.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let d = PyDict::new(py);
        d.set_item("prompt_tokens", self.prompt_tokens.len())?;
        d.set_item("completion_tokens", self.tokens.len())?;
        d.set_item("prefill_s", self.prefill_s)?;
        d.set_item("decode_s", self.decode_s)?;
        d.set_item(
            "prefill_tok_per_s",
            rate(self.prompt_tokens.len(), self.prefill_s),
        )?;
        d.set_item("decode_tok_per_s", rate(self.decode_steps, self.decode_s))?;
        // The call's figures: this generation's, or the whole batch's for a batch item.
        if let Some(r) = &self.run {
            d.set_item("call_wall_s", r.wall_s)?;
            d.set_item("call_steps", r.steps)?;
            d.set_item("call_generated_tokens", r.generated_tokens)?;
            d.set_item("streamed_bytes", r.streamed_bytes)?;
            d.set_item("io_wait_s", r.io_wait_s)?;
            let gb_per_s = if r.wall_s > 0.0 {
                r.streamed_bytes as f64 / 1e9 / r.wall_s
            } else {
                0.0
            };
            d.set_item("read_gb_per_s", gb_per_s)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Completion(text={:?}, tokens={}, stop_reason={:?})",
            self.text,
            self.tokens.len(),
            self.stop_reason
        )
    }
}

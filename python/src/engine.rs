//! `sluice.Engine`: a loaded model behind a mutex, driven with the GIL released. One call runs
//! at a time per engine; other Python threads run meanwhile, and calls from several threads
//! wait for each other.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyKeyboardInterrupt, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use sluice::api::{ApiError, Llm, LlmOptions, PerplexityOptions, Request};
use sluice::engine::backend::DeviceChoice;

use crate::convert::{self, Completion};
use crate::py_err;
use crate::stream::TokenStream;

/// A model opened for generation: `sluice.Engine(model, ram_budget=None, threads=None,
/// ctx=4096, max_batch=8, device="auto", tokenizer=None)`.
#[pyclass(module = "sluice", frozen)]
pub struct Engine {
    llm: Arc<Mutex<Llm>>,
}

/// The engine, or the error of a call that panicked inside it earlier.
pub(crate) fn lock(llm: &Mutex<Llm>) -> Result<MutexGuard<'_, Llm>, ApiError> {
    llm.lock().map_err(|_| ApiError::Poisoned)
}

/// `ram_budget` as bytes: an int, or a size string such as "2G" or "512M".
fn budget(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(s) = v.cast::<PyString>() {
        return sluice::cli::size::parse_size(&s.to_cow()?)
            .map(Some)
            .map_err(|e| crate::BadInputError::new_err(format!("ram_budget: {e}")));
    }
    let n: i64 = v.extract().map_err(|_| {
        PyTypeError::new_err("ram_budget must be an int of bytes or a size string like \"2G\"")
    })?;
    u64::try_from(n)
        .map(Some)
        .map_err(|_| crate::BadInputError::new_err(format!("ram_budget must be ≥ 0, got {n}")))
}

impl Engine {
    /// Runs `f` on the locked engine with the GIL released. `f` gets a check to call at every
    /// token or layer sweep: it looks for Ctrl-C (taking the GIL for a moment) and returns
    /// false once one came; the run then raises KeyboardInterrupt.
    fn run_interruptible<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Llm, &dyn Fn() -> bool) -> Result<T, ApiError> + Send,
    ) -> PyResult<T> {
        let llm = self.llm.clone();
        let (done, interrupted) = py.detach(|| {
            let interrupted: RefCell<Option<PyErr>> = RefCell::new(None);
            let check = || match Python::attach(|py| py.check_signals()) {
                Ok(()) => interrupted.borrow().is_none(),
                Err(e) => {
                    interrupted.borrow_mut().get_or_insert(e);
                    false
                }
            };
            let done = lock(&llm).and_then(|mut llm| f(&mut llm, &check));
            (done, interrupted.into_inner())
        });
        match interrupted {
            Some(e) => Err(e),
            None => done.map_err(py_err),
        }
    }
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (model = "smollm2-135m", *, ram_budget = None, threads = None, ctx = 4096, max_batch = 8, device = "auto", tokenizer = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: &str,
        ram_budget: Option<&Bound<'_, PyAny>>,
        threads: Option<usize>,
        ctx: usize,
        max_batch: usize,
        device: &str,
        tokenizer: Option<std::path::PathBuf>,
    ) -> PyResult<Engine> {
        let device = match device {
            "auto" => DeviceChoice::Auto,
            "cpu" => DeviceChoice::Cpu,
            "cuda" => DeviceChoice::Cuda,
            other => {
                return Err(crate::BadInputError::new_err(format!(
                    "device must be \"auto\", \"cpu\" or \"cuda\", got {other:?}"
                )))
            }
        };
        let opts = LlmOptions {
            threads,
            ram_budget: budget(ram_budget)?,
            device,
            ctx,
            max_batch,
            tokenizer,
            ..LlmOptions::default()
        };
        let model = model.to_string();
        let llm = py
            .detach(move || Llm::open(&model, &opts))
            .map_err(py_err)?;
        Ok(Engine {
            llm: Arc::new(Mutex::new(llm)),
        })
    }

    /// Generates for one prompt; returns a `Completion`.
    #[pyo3(signature = (prompt, **options))]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Completion> {
        let request = convert::request(prompt, options)?;
        self.run_interruptible(py, |llm, check| {
            let done = llm.generate(&request, |_| check())?;
            Ok(Completion::new(done, llm.last_run()))
        })
    }

    /// Generates for one prompt, yielding the text piece by piece as tokens come; the
    /// iterator's `completion` holds the whole result once it is exhausted.
    #[pyo3(signature = (prompt, **options))]
    fn stream(
        &self,
        prompt: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<TokenStream> {
        let request = convert::request(prompt, options)?;
        TokenStream::start(self.llm.clone(), request)
    }

    /// Generates for every prompt, up to `max_batch` per layer sweep (each layer read once
    /// for all of them); returns a `Completion` per prompt, in order. The options apply to
    /// every prompt; an item may instead be a dict with "prompt" or "messages" and options of
    /// its own, which override them for that item.
    #[pyo3(signature = (prompts, **options))]
    fn generate_batch(
        &self,
        py: Python<'_>,
        prompts: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<Completion>> {
        if prompts.cast::<PyString>().is_ok() {
            return Err(PyTypeError::new_err(
                "generate_batch takes a list of prompts (use generate for one)",
            ));
        }
        let items: Vec<Bound<'_, PyAny>> = prompts
            .extract()
            .map_err(|_| PyTypeError::new_err("prompts must be a list"))?;
        let requests = items
            .iter()
            .map(|p| convert::batch_request(p, options))
            .collect::<PyResult<Vec<Request>>>()?;
        let (done, run) =
            self.run_interruptible(py, |llm, check| llm.generate_batch(&requests, |_| check()))?;
        Ok(done
            .into_iter()
            .map(|c| Completion::new(c, Some(&run)))
            .collect())
    }

    /// The perplexity of `text` as `sluice perplexity` computes it (llama-perplexity's
    /// chunks of `ctx`, the second half of each scored); a dict of the figures.
    #[pyo3(signature = (text, *, ctx = 512, chunks = None, batch = 2048))]
    fn perplexity<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        ctx: usize,
        chunks: Option<usize>,
        batch: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let opts = PerplexityOptions { ctx, chunks, batch };
        let text = text.to_string();
        let p = self.run_interruptible(py, |llm, check| {
            // Ctrl-C is looked for at every layer sweep.
            llm.perplexity_until(&text, &opts, &|| !check())
        })?;
        let d = PyDict::new(py);
        d.set_item("ppl", p.ppl)?;
        d.set_item("uncertainty", p.uncertainty)?;
        d.set_item("per_chunk", p.per_chunk)?;
        d.set_item("n_chunk", p.n_chunk)?;
        d.set_item("n_ctx", p.n_ctx)?;
        d.set_item("scored_tokens", p.scored_tokens)?;
        d.set_item("wall_s", p.wall_s)?;
        Ok(d)
    }

    /// The token ids of `prompt` as a generation would see them (chat template unless raw).
    #[pyo3(signature = (prompt, *, raw = false))]
    fn tokenize(&self, py: Python<'_>, prompt: &Bound<'_, PyAny>, raw: bool) -> PyResult<Vec<u32>> {
        let mut request = Request::from_prompt(convert::prompt(prompt)?);
        request.raw = raw;
        let llm = self.llm.clone();
        py.detach(move || lock(&llm)?.prompt_tokens(&request))
            .map_err(py_err)
    }

    /// The text of token ids.
    fn detokenize(&self, py: Python<'_>, tokens: Vec<u32>) -> PyResult<String> {
        let llm = self.llm.clone();
        py.detach(move || Ok(lock(&llm)?.tokenizer().decode(&tokens)))
            .map_err(py_err)
    }

    /// What was loaded and how: the model, backend, context, batch, and the residency plan.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        // The engine is locked without the GIL: a generation on another thread takes the GIL
        // for a moment at every token, so waiting for the lock while holding it could deadlock.
        let llm = self.llm.clone();
        let items = py
            .detach(move || {
                let llm = lock(&llm)?;
                let e = llm.engine();
                Ok::<_, ApiError>(vec![
                    ("model", Info::Text(e.model.path.display().to_string())),
                    ("arch", Info::Text(e.spec().arch.name().to_string())),
                    ("backend", Info::Text(e.backend_name())),
                    ("threads", Info::Int(e.threads() as u64)),
                    ("ctx", Info::Int(llm.ctx() as u64)),
                    ("max_batch", Info::Int(llm.max_batch() as u64)),
                    ("n_vocab", Info::Int(e.spec().n_vocab as u64)),
                    ("resident_layers", Info::Int(e.plan.n_resident() as u64)),
                    ("streamed_layers", Info::Int(e.plan.n_streamed() as u64)),
                    ("weights_budget_bytes", Info::Int(e.plan.budget_bytes)),
                    ("bytes_read", Info::Int(e.bytes_read())),
                ])
            })
            .map_err(py_err)?;
        let d = PyDict::new(py);
        for (k, v) in items {
            match v {
                Info::Int(n) => d.set_item(k, n)?,
                Info::Text(t) => d.set_item(k, t)?,
            }
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        match self.llm.try_lock() {
            Ok(llm) => format!(
                "sluice.Engine({:?})",
                llm.engine().model.path.display().to_string()
            ),
            Err(_) => "sluice.Engine(<busy>)".into(),
        }
    }
}

/// One value of `Engine.info`, gathered without the GIL.
enum Info {
    Int(u64),
    Text(String),
}

/// Raised by a stream whose generation Ctrl-C stopped.
pub(crate) fn keyboard_interrupt() -> PyErr {
    PyKeyboardInterrupt::new_err("generation interrupted")
}

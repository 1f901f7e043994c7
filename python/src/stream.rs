//! `sluice.TokenStream`: a generation running on its own thread, its text pieces handed to
//! Python through a channel as tokens come. Dropping the iterator stops the generation at the
//! next token; a stream never blocks the engine (the channel is unbounded, so a generation
//! runs to its end even if nobody reads it).

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

use sluice::api::{ApiError, Completion as LibCompletion, Llm, Request, RunStats};

use crate::convert::Completion;
use crate::engine::{keyboard_interrupt, lock};
use crate::py_err;

/// What the generating thread sends.
enum Msg {
    Piece(String),
    Done(Result<(LibCompletion, Option<RunStats>), ApiError>),
}

/// An iterator over a generation's text pieces (`str`); `completion` once it is exhausted.
#[pyclass(module = "sluice")]
pub struct TokenStream {
    rx: Mutex<Receiver<Msg>>,
    /// The finished generation, once the iterator has reached it.
    #[pyo3(get)]
    completion: Option<Py<Completion>>,
}

impl TokenStream {
    /// Starts generating `request` on its own thread.
    pub fn start(llm: Arc<Mutex<Llm>>, request: Request) -> PyResult<TokenStream> {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("sluice-stream".into())
            .spawn(move || {
                let result = lock(&llm).and_then(|mut llm| {
                    let done = llm.generate(&request, |p| {
                        p.text.is_empty() || tx.send(Msg::Piece(p.text.to_string())).is_ok()
                    })?;
                    Ok((done, llm.last_run().cloned()))
                });
                let _ = tx.send(Msg::Done(result));
            })
            .map_err(|e| crate::SluiceError::new_err(format!("starting the stream thread: {e}")))?;
        Ok(TokenStream {
            rx: Mutex::new(rx),
            completion: None,
        })
    }
}

#[pymethods]
impl TokenStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<String> {
        if self.completion.is_some() {
            return Err(PyStopIteration::new_err(()));
        }
        loop {
            // Wait without the GIL, a tenth of a second at a time so Ctrl-C is seen.
            let rx = &self.rx;
            let got = py.detach(|| match rx.lock() {
                Ok(rx) => rx.recv_timeout(Duration::from_millis(100)),
                Err(_) => Err(RecvTimeoutError::Disconnected),
            });
            match got {
                Ok(Msg::Piece(text)) => return Ok(text),
                Ok(Msg::Done(Ok((c, run)))) => {
                    self.completion = Some(Py::new(py, Completion::new(c, run.as_ref()))?);
                    return Err(PyStopIteration::new_err(()));
                }
                Ok(Msg::Done(Err(e))) => return Err(py_err(e)),
                Err(RecvTimeoutError::Timeout) => {
                    if py.check_signals().is_err() {
                        // Dropping the receiver stops the generation at its next token.
                        let (_tx, rx) = channel();
                        if let Ok(mut r) = self.rx.lock() {
                            *r = rx;
                        }
                        return Err(keyboard_interrupt());
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(crate::SluiceError::new_err(
                        "the generating thread ended without a result",
                    ))
                }
            }
        }
    }
}

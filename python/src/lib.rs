//! The `sluice` Python module: `sluice.Engine` over the library API (`sluice::api`), built by
//! maturin as an abi3 wheel. The engine runs with the GIL released; errors are
//! `sluice.SluiceError` (the machine) or `sluice.BadInputError` (the model, the prompt, an
//! option) carrying the engine's message; Ctrl-C stops a generation at the next token.

mod convert;
mod engine;
mod stream;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use sluice::api::ApiError;

create_exception!(
    sluice,
    SluiceError,
    PyException,
    "A sluice engine call failed; the message is the engine's."
);
create_exception!(
    sluice,
    BadInputError,
    SluiceError,
    "The input is at fault: the model file, the prompt, or an option out of range."
);

/// The Python exception for a library error.
pub(crate) fn py_err(e: ApiError) -> PyErr {
    if e.is_bad_input() {
        BadInputError::new_err(e.to_string())
    } else {
        SluiceError::new_err(e.to_string())
    }
}

/// The module: `Engine`, `Completion`, `TokenStream` and the two exceptions.
#[pymodule]
#[pyo3(name = "sluice")]
fn sluice_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::Engine>()?;
    m.add_class::<convert::Completion>()?;
    m.add_class::<stream::TokenStream>()?;
    m.add("SluiceError", m.py().get_type::<SluiceError>())?;
    m.add("BadInputError", m.py().get_type::<BadInputError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

//! GGUF (v2, v3) header reader: metadata, tensor infos, data-section start; and a small writer
//! for building test fixtures.
//!
//! Layout facts are in `shared/docs/gguf-facts.md` §1–2. The reader validates everything a
//! hostile file could lie about (see [`GgufErrorKind`]) and never reads tensor data.

mod cursor;
mod encode;
pub mod error;
pub mod header;
mod kv;
pub mod layout;
pub mod limits;
mod tensors;
pub mod value;
pub mod value_type;
pub mod writer;

pub use error::{GgufError, GgufErrorKind, Section};
pub use header::GgufFile;
pub use value::{MetaArray, MetaValue, Metadata};
pub use value_type::ValueType;
pub use writer::{GgufWriter, RawTensorInfo, WriteError};

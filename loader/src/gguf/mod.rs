//! GGUF (v2, v3) header reader: metadata, tensor infos, data-section start.

pub mod value;

pub use value::{MetaArray, MetaValue, Metadata};

//! sluice-loader: reads the model files users already have, in place.
//!
//! GGUF (llama.cpp quant types) and HF safetensors are parsed from their headers alone; tensor
//! data is never mapped or copied here. Out come a [`ModelSpec`](spec::ModelSpec) (what the
//! forward pass needs), a [`TensorIndex`] (where each tensor lies),
//! [`LayerExtents`](extents::LayerExtents) (the aligned byte ranges the runtime streams), the
//! quant block formats with scalar reference dequantisation, and the tokenizer.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cache;
pub mod extents;
pub mod ggml_type;
pub mod gguf;
pub mod model;
pub mod quant;
pub mod roles;
pub mod safetensors;
pub mod spec;
pub mod tensor;
pub mod tokenizer;

pub use ggml_type::GgmlType;
pub use tensor::{TensorIndex, TensorInfo};

//! The llama-family model graph (llama, qwen2): config, layer weights as views into a slot,
//! run state allocated once, and a forward pass that allocates nothing per token.

pub mod attention;
pub mod exp;
pub mod forward;
pub mod kv_cache;
pub mod kv_slabs;
pub mod ops;
pub mod segment;
pub mod weights;

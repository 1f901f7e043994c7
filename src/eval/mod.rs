//! Fidelity you can measure: perplexity over a text, and the KL divergence of a model's token
//! distributions against a base model's saved ones, computed as llama-perplexity computes them
//! (the same chunks, BOS rule, float/double choices and base-logits file), with the chunks run
//! as sequences of the engine's one batch core.

pub mod chunks;
pub mod evaluate;
pub mod logits_file;
pub mod logprob;
pub mod stats;

pub use chunks::{chunk_bos, text_plan, ChunkPlan, PlanError};
pub use evaluate::{
    chunks_per_sweep, evaluate, ChunkLine, EvalError, EvalMode, EvalOptions, EvalReport,
};
pub use logits_file::{LogitsFileError, LogitsHeader, LogitsReader, LogitsWriter};

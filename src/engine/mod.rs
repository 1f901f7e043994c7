//! The engine: sampler, executor and residency planner on top of the model graph.

pub mod planner;
pub mod sampler;

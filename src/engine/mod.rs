//! The engine: residency planner, weight store, executor and sampler on top of the model
//! graph, and the [`Engine`](session::Engine) a frontend drives.

pub mod backend;
pub mod executor;
pub mod head_rows;
pub mod layer_times;
pub mod memory_limit;
pub mod pieces;
pub mod planner;
pub mod row_reader;
pub mod rows;
pub mod sampler;
pub mod scheduler;
pub mod session;
pub mod stops;
pub mod store;
pub mod tiers;

//! sluice-runtime: moves aligned extents from NVMe into a ring of host buffers.
//!
//! It knows nothing about models. A [`HostRing`] is one slab of page-aligned anonymous memory
//! cut into fixed-size slots; a [`Reader`] (io_uring with O_DIRECT, fixed buffers and fixed
//! files, or a pread thread pool as fallback) reads [`Extent`]s of registered files into slots on
//! its own threads; a [`Prefetcher`] keeps `depth` extents of a repeating sweep in flight ahead
//! of the consumer and lends each slot through an RAII [`SlotGuard`]; [`Stats`] counts it all.
//!
//! ```no_run
//! use sluice_runtime::{Extent, HostRing, Prefetcher, Reader, ReaderConfig};
//! # fn main() -> sluice_runtime::Result<()> {
//! let ring = HostRing::new(4, 64 << 20)?;                   // 4 slots of 64 MiB
//! let reader = Reader::new(ring, &ReaderConfig::default())?; // io_uring, else pread
//! let file = reader.open_file("model.gguf")?;
//! let sweep = vec![Extent::whole(file, 0, 32 << 20), Extent::whole(file, 32 << 20, 32 << 20)];
//! let prefetcher = Prefetcher::new(reader, sweep, 3)?;       // 3 extents ahead
//! for _ in 0..10 {
//!     let slot = prefetcher.next()?;                          // waits for the next extent
//!     let _weights: &[u8] = slot.bytes();                     // payload, padding skipped
//! }                                                           // guard dropped: slot freed
//! # Ok(()) }
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod board;
mod config;
mod errno;
mod error;
mod extent;
mod file;
mod guard;
mod job;
pub mod limits;
mod pread;
mod prefetch;
mod reader;
mod ring;
mod slab;
mod stats;
pub mod thermal;
mod uring;
mod uring_loop;
mod waker;

pub use config::{ReaderChoice, ReaderConfig, ReaderKind, IO_DEPTH_ENV, IO_ENV};
pub use error::{Error, Result};
pub use extent::{Extent, FileId};
pub use file::{advise, Advice};
pub use guard::{PrefetchControl, ReadSpan, SlotGuard};
pub use prefetch::Prefetcher;
pub use reader::{LiveThreads, Reader};
pub use ring::{HostRing, SlotState, SlotStateError};
pub use slab::{RegistrarError, SlabRegistrar};
pub use stats::{bucket_floor_us, latency_bucket, Stats, StatsSnapshot, LATENCY_BUCKETS};

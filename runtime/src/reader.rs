//! `Reader`: reads extents into ring slots on its own threads, through io_uring or a pread pool.
//!
//! Both backends take the same [`Job`]s and post to the same completion board, so the
//! prefetcher cannot tell them apart. Which one runs is chosen once, at construction:
//! `ReaderChoice::Uring` / `Pread` force one; `Auto` reads `SLUICE_IO` (`uring`, `pread`,
//! `auto`) and otherwise tries io_uring, falling back to the pread pool with a log line that says
//! why when the kernel refuses it (ENOSYS, EPERM, `kernel.io_uring_disabled`).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::board::Board;
use crate::config::{ReaderChoice, ReaderConfig, ReaderKind};
use crate::error::{Error, Result};
use crate::extent::{Extent, FileId};
use crate::file::{FileTable, OpenFile};
use crate::job::Job;
use crate::pread::PreadPool;
use crate::ring::{HostRing, SlotState};
use crate::stats::{Stats, StatsSnapshot};
use crate::thermal::SimDrive;
use crate::uring::UringReader;

/// Counts a reader's live threads; stays readable after the reader is dropped.
#[derive(Clone, Debug, Default)]
pub struct LiveThreads(Arc<AtomicUsize>);

impl LiveThreads {
    /// Number of the reader's threads that have not exited yet.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

struct ThreadToken(Arc<AtomicUsize>);

impl Drop for ThreadToken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a reader's threads share with it.
pub(crate) struct Shared {
    pub ring: Arc<HostRing>,
    pub files: FileTable,
    pub board: Board,
    pub stats: Arc<Stats>,
    pub config: ReaderConfig,
    live_threads: LiveThreads,
}

impl Shared {
    fn new(ring: Arc<HostRing>, config: &ReaderConfig) -> Result<Arc<Shared>> {
        config.validate()?;
        Ok(Arc::new(Shared {
            board: Board::new(ring.slot_count()),
            ring,
            files: FileTable::new(),
            stats: Arc::new(Stats::default()),
            config: *config,
            live_threads: LiveThreads::default(),
        }))
    }

    /// Posts a finished job: slot Reading → Ready or Failed, outcome on the board.
    pub(crate) fn complete(&self, job: Job) {
        let slot = job.slot;
        job.file.drop_cached(job.extent.offset, job.extent.len);
        let (result, span) = job.finish();
        self.stats.add_extent(result.is_ok(), span.duration());
        let to = if result.is_ok() {
            SlotState::Ready
        } else {
            SlotState::Failed
        };
        let result = self
            .ring
            .transition(slot, SlotState::Reading, to)
            .map_err(Error::from)
            .and(result)
            .map(|()| span);
        self.board.post(slot, result);
    }

    /// Starts a named thread of this reader, counted in its [`LiveThreads`].
    pub(crate) fn spawn(
        &self,
        what: &'static str,
        name: String,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<JoinHandle<()>> {
        self.live_threads.0.fetch_add(1, Ordering::AcqRel);
        let token = ThreadToken(Arc::clone(&self.live_threads.0));
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let _token = token;
                f();
            })
            .map_err(|source| Error::Spawn { what, source })
    }
}

enum Backend {
    Uring(UringReader),
    Pread(PreadPool),
    /// A simulated drive on a simulated clock (thermal tests and `sluice bench thermal`).
    Sim(Arc<SimDrive>),
}

/// A handle to the reader threads; dropping it drains in-flight reads and joins them.
pub struct Reader {
    shared: Arc<Shared>,
    backend: Backend,
}

impl Reader {
    /// Starts a reader that fills slots of `ring`.
    pub fn new(ring: Arc<HostRing>, config: &ReaderConfig) -> Result<Reader> {
        let shared = Shared::new(ring, config)?;
        let choice = match config.choice {
            ReaderChoice::Auto => ReaderChoice::from_env()?,
            forced => forced,
        };
        let backend = match choice {
            ReaderChoice::Uring => Backend::Uring(UringReader::start(&shared)?),
            ReaderChoice::Pread => Backend::Pread(PreadPool::start(&shared)?),
            ReaderChoice::Auto => match uring_or_why(&shared)? {
                Ok(uring) => Backend::Uring(uring),
                Err(why) => {
                    log::warn!(
                        "io_uring is unavailable ({why}); reading with a pool of pread threads"
                    );
                    Backend::Pread(PreadPool::start(&shared)?)
                }
            },
        };
        Ok(Reader { shared, backend })
    }

    /// A reader whose reads `drive` serves on its simulated clock: no thread, no I/O, and a
    /// read completes only when the drive's clock is advanced past it (see `SimDrive`).
    pub fn simulated(
        ring: Arc<HostRing>,
        config: &ReaderConfig,
        drive: &Arc<SimDrive>,
    ) -> Result<Reader> {
        let shared = Shared::new(ring, config)?;
        drive.attach(&shared)?;
        Ok(Reader {
            shared,
            backend: Backend::Sim(Arc::clone(drive)),
        })
    }

    /// Which reader is running.
    pub fn kind(&self) -> ReaderKind {
        match self.backend {
            Backend::Uring(_) => ReaderKind::Uring,
            Backend::Pread(_) => ReaderKind::Pread,
            Backend::Sim(_) => ReaderKind::Simulated,
        }
    }

    /// Whether io_uring reads into fixed (registered) buffers and files: `(buffers, files)`;
    /// `(false, false)` for the pread pool.
    pub fn fixed_registration(&self) -> (bool, bool) {
        match &self.backend {
            Backend::Uring(uring) => uring.registered,
            Backend::Pread(_) | Backend::Sim(_) => (false, false),
        }
    }

    /// Opens `path` (O_DIRECT where the file system allows) for reading extents from it.
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<FileId> {
        self.shared.files.open(path.as_ref())
    }

    /// The alignment that `file`'s extents' offsets and lengths must have.
    pub fn alignment_bytes(&self, file: FileId) -> Result<u64> {
        Ok(self.file(file, 0)?.align_bytes())
    }

    /// Whether reads of `file` bypass the page cache (O_DIRECT).
    pub fn is_direct(&self, file: FileId) -> Result<bool> {
        Ok(self.file(file, 0)?.direct())
    }

    /// The ring the reader fills.
    pub fn ring(&self) -> &Arc<HostRing> {
        &self.shared.ring
    }

    /// The configuration the reader runs with.
    pub fn config(&self) -> &ReaderConfig {
        &self.shared.config
    }

    /// A copy of the I/O counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// A counter of this reader's live threads (zero once it is dropped).
    pub fn live_threads(&self) -> LiveThreads {
        self.shared.live_threads.clone()
    }

    pub(crate) fn stats_handle(&self) -> &Stats {
        &self.shared.stats
    }

    pub(crate) fn board(&self) -> &Board {
        &self.shared.board
    }

    /// The open file behind `id`; `index` names the extent in errors.
    pub(crate) fn file(&self, id: FileId, index: usize) -> Result<Arc<OpenFile>> {
        self.shared
            .files
            .get(id)
            .ok_or(Error::UnknownFile { index, file: id.0 })
    }

    /// Queues a read of `extent` into `slot`, which the caller moved to `Reading` and armed.
    pub(crate) fn submit(&self, slot: usize, extent: &Extent) -> Result<()> {
        debug_assert_eq!(self.shared.ring.state(slot), SlotState::Reading);
        let file = self.file(extent.file, 0)?;
        // Defence in depth: an extent past the slot would make the kernel write past it.
        extent.validate(
            0,
            file.align_bytes(),
            self.shared.ring.slot_bytes(),
            file.path(),
        )?;
        let job = Job::new(slot, *extent, file, Instant::now());
        match &self.backend {
            Backend::Uring(uring) => uring.push(job),
            Backend::Pread(pool) => pool.push(job),
            Backend::Sim(drive) => drive.push(job, &self.shared),
        }
        Ok(())
    }

    /// Stops the threads: queued reads are cancelled, in-flight reads drained, threads joined.
    pub(crate) fn shutdown(&self) {
        match &self.backend {
            Backend::Uring(uring) => uring.shutdown(),
            Backend::Pread(pool) => pool.shutdown(),
            Backend::Sim(drive) => drive.shutdown(&self.shared),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts io_uring, or says why the kernel refused it (`Ok(Err(why))`) so `Auto` can fall back.
fn uring_or_why(shared: &Arc<Shared>) -> Result<Result<UringReader, String>> {
    if let Ok(value) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if value.trim() == "2" {
            return Ok(Err("sysctl kernel.io_uring_disabled=2".to_string()));
        }
    }
    match UringReader::start(shared) {
        Ok(uring) => Ok(Ok(uring)),
        Err(e @ Error::UringSetup { .. }) => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
}

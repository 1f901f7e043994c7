//! The fallback reader: a small pool of threads calling pread(2) into slot memory.
//!
//! Jobs queue in order; each worker takes the next chunk of the oldest job that has chunks left,
//! so the chunks of one extent are read in parallel and extents finish roughly in order. Short
//! reads continue, EINTR/EAGAIN retry, other errors fail the job (see `job.rs`). Files opened
//! without O_DIRECT (tmpfs) get their pages dropped after each extent (in `Shared::complete`).
//! Leaf module for `unsafe`: the pread into raw slot memory.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::extent::Extent;
use crate::file::OpenFile;
use crate::job::{step, Chunk, Job, Step};
use crate::reader::Shared;
use crate::stats::BusyClock;

struct PoolState {
    jobs: Vec<Option<Job>>,
    order: VecDeque<usize>,
    busy: BusyClock,
    shutdown: bool,
}

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One chunk taken by a worker.
struct Task {
    slot: usize,
    chunk: Chunk,
    extent: Extent,
    file: Arc<OpenFile>,
    check: bool,
}

/// The pread worker threads.
pub(crate) struct PreadPool {
    pool: Arc<Pool>,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl PreadPool {
    /// Starts `config.pread_threads` workers.
    pub(crate) fn start(shared: &Arc<Shared>) -> Result<PreadPool> {
        let slot_count = shared.ring.slot_count();
        let state = PoolState {
            jobs: (0..slot_count).map(|_| None).collect(),
            order: VecDeque::with_capacity(slot_count),
            busy: BusyClock::default(),
            shutdown: false,
        };
        let pool = Arc::new(Pool {
            state: Mutex::new(state),
            work: Condvar::new(),
        });
        let this = PreadPool {
            pool,
            shared: Arc::clone(shared),
            threads: Mutex::new(Vec::new()),
        };
        for i in 0..shared.config.pread_threads {
            let (pool, worker_shared) = (Arc::clone(&this.pool), Arc::clone(shared));
            let handle = shared.spawn("pread worker", format!("sluice-pread{i}"), move || {
                work(&pool, &worker_shared);
            })?;
            this.threads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(handle);
        }
        Ok(this)
    }

    /// Queues a job.
    pub(crate) fn push(&self, job: Job) {
        let mut state = self.pool.lock();
        let slot = job.slot;
        assert!(state.jobs[slot].is_none(), "slot {slot} queued twice");
        assert!(
            state.order.len() < state.order.capacity(),
            "more jobs than slots"
        );
        if state.shutdown {
            drop(state);
            let mut job = job;
            job.fail(Error::Cancelled);
            self.shared.complete(job);
            return;
        }
        state.jobs[slot] = Some(job);
        state.order.push_back(slot);
        drop(state);
        self.pool.work.notify_all();
    }

    /// Stops the workers after their current chunk and cancels the jobs left.
    pub(crate) fn shutdown(&self) {
        self.pool.lock().shutdown = true;
        self.pool.work.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in threads {
            if handle.join().is_err() {
                log::error!("a pread worker panicked");
            }
        }
        let mut state = self.pool.lock();
        while let Some(slot) = state.order.pop_front() {
            if let Some(mut job) = state.jobs[slot].take() {
                job.fail(Error::Cancelled);
                if job.is_finished() {
                    self.shared.complete(job);
                } else {
                    // Only a panicked worker leaves a chunk in flight; keep the slot Reading
                    // forever rather than let it be reused.
                    log::error!("slot {slot} abandoned with a read in flight");
                }
            }
        }
    }
}

fn work(pool: &Pool, shared: &Shared) {
    let chunk_bytes = shared.config.chunk_bytes as u64;
    loop {
        let task = {
            let mut state = pool.lock();
            loop {
                if state.shutdown {
                    return;
                }
                if let Some(task) = take_chunk(&mut state, chunk_bytes) {
                    break task;
                }
                state = pool.work.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let outcome = run_task(&task, shared);
        let mut state = pool.lock();
        state.busy.finish(&shared.stats);
        let Some(job) = state.jobs[task.slot].as_mut() else {
            unreachable!("slot {} lost its job while a chunk was read", task.slot)
        };
        match outcome {
            Ok(eof_pos) => job.chunk_finished(eof_pos),
            Err(ChunkError::Errno(pos, errno)) => job.chunk_failed(pos, errno),
            Err(ChunkError::Check(e)) => {
                job.chunk_finished(None);
                job.fail(e);
            }
        }
        if job.is_finished() {
            let job = state.jobs[task.slot].take();
            state.order.retain(|&s| s != task.slot);
            drop(state);
            if let Some(job) = job {
                shared.complete(job);
            }
        }
    }
}

fn take_chunk(state: &mut PoolState, chunk_bytes: u64) -> Option<Task> {
    let PoolState {
        jobs, order, busy, ..
    } = state;
    for &slot in order.iter() {
        let Some(job) = jobs[slot].as_mut() else {
            continue;
        };
        if let Some(chunk) = job.next_chunk(chunk_bytes) {
            busy.start();
            let check = job.take_check();
            return Some(Task {
                slot,
                chunk,
                extent: job.extent,
                file: Arc::clone(&job.file),
                check,
            });
        }
    }
    None
}

enum ChunkError {
    Errno(u64, i32),
    Check(Error),
}

/// Checks the file if asked, then reads the chunk; returns where the file ended, if it did.
fn run_task(task: &Task, shared: &Shared) -> Result<Option<u64>, ChunkError> {
    if task.check {
        task.file.check(&task.extent).map_err(ChunkError::Check)?;
    }
    let (direct, align_bytes) = (task.file.direct(), task.file.align_bytes());
    let slot_ptr = shared.ring.slot_ptr(task.slot);
    let mut chunk = task.chunk;
    loop {
        let result = pread_into(&task.file, slot_ptr, chunk, task.extent.offset);
        if result > 0 {
            shared.stats.add_bytes_read(result as u64);
        }
        match step(chunk, result, direct, align_bytes) {
            Step::Done => return Ok(None),
            Step::Eof(pos) => return Ok(Some(pos)),
            Step::More(rest) => chunk = rest,
            Step::Retry => {}
            Step::Failed(errno) => return Err(ChunkError::Errno(chunk.pos, errno)),
        }
    }
}

/// One pread of `chunk` into the slot at `slot_ptr`; bytes read or a negated errno.
fn pread_into(file: &OpenFile, slot_ptr: *mut u8, chunk: Chunk, extent_offset: u64) -> i64 {
    let Ok(offset) = i64::try_from(extent_offset + chunk.pos) else {
        return -i64::from(libc::EINVAL);
    };
    // SAFETY: chunk.pos + chunk.len <= extent length <= slot size (validated when the
    // prefetcher was built), so the range lies inside this slot. The slot is Reading, and this
    // worker alone holds this chunk of it, so nothing else reads or writes these bytes.
    let n = unsafe {
        libc::pread(
            file.fd(),
            slot_ptr.add(chunk.pos as usize).cast(),
            chunk.len as usize,
            offset,
        )
    };
    if n < 0 {
        -i64::from(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    } else {
        n as i64
    }
}

//! The simulated drive as a reader backend: jobs from the real [`Prefetcher`](crate::Prefetcher)
//! are cut into chunks exactly as the io_uring and pread readers cut them (`Job::next_chunk`,
//! at most `queue_depth` in flight), and those chunks are served by a [`DriveModel`] on a
//! simulated clock. Nothing is read and no thread runs: a read completes only when the owner
//! of the [`SimDrive`] advances its clock past the read's end, so a ten-minute run takes
//! milliseconds and gives the same figures every time.
//!
//! Chunks in flight share the drive's bandwidth equally (processor sharing); the bandwidth
//! depends on how many are in flight (see `model.rs`), which is how the prefetch depth reaches
//! the drive's temperature.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::error::{Error, Result};
use crate::job::Job;
use crate::reader::Shared;

use super::model::{DriveModel, DriveModelParams};
use super::reading::DriveReading;

/// Longest simulated step (s): the temperature and the drive's throttle state are updated at
/// least this often, even while nothing completes.
const STEP_MAX_S: f64 = 0.05;
/// A chunk with fewer bytes left than this is complete (floating-point dust).
const CHUNK_DONE_BYTES: f64 = 0.5;

struct InFlight {
    seq: u64,
    len_bytes: u64,
    left_bytes: f64,
}

struct SimState {
    model: DriveModel,
    now_s: f64,
    queue_depth: usize,
    chunk_bytes: u64,
    shared: Option<Weak<Shared>>,
    /// Jobs not yet complete, in submission order, with their sequence numbers.
    jobs: VecDeque<(u64, Job)>,
    in_flight: Vec<InFlight>,
    submitted: u64,
    bytes_moved: u64,
    shut_down: bool,
}

/// A simulated NVMe drive with its own clock; see the module docs.
pub struct SimDrive {
    state: Mutex<SimState>,
}

/// Whether [`SimDrive::advance`] stopped because the awaited read completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advanced {
    /// The read waited for is complete.
    Done,
    /// The deadline was reached first.
    Deadline,
}

impl SimDrive {
    /// A drive at its idle temperature, its clock at 0 s.
    pub fn new(params: DriveModelParams) -> Arc<SimDrive> {
        Arc::new(SimDrive {
            state: Mutex::new(SimState {
                model: DriveModel::new(params),
                now_s: 0.0,
                queue_depth: 1,
                chunk_bytes: 1 << 20,
                shared: None,
                jobs: VecDeque::new(),
                in_flight: Vec::new(),
                submitted: 0,
                bytes_moved: 0,
                shut_down: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The simulated clock (s).
    pub fn now_s(&self) -> f64 {
        self.lock().now_s
    }

    /// A copy of the thermal model's state.
    pub fn model(&self) -> DriveModel {
        self.lock().model.clone()
    }

    /// Bytes the drive has delivered.
    pub fn bytes_moved(&self) -> u64 {
        self.lock().bytes_moved
    }

    /// Reads submitted so far; the `n`-th submitted has sequence number `n - 1`.
    pub fn submitted(&self) -> u64 {
        self.lock().submitted
    }

    /// Whether the read with sequence number `seq` has completed.
    pub fn is_done(&self, seq: u64) -> bool {
        self.lock().is_done(seq)
    }

    /// What the drive's sensors would report now (see [`DriveModel::reading`]).
    pub fn reading(&self) -> DriveReading {
        self.lock().model.reading()
    }

    /// Connects the drive to the reader that feeds it (done by `Reader::simulated`).
    pub(crate) fn attach(&self, shared: &Arc<Shared>) -> Result<()> {
        let mut st = self.lock();
        if st.shared.is_some() {
            return Err(Error::Config(
                "a simulated drive serves one reader".to_string(),
            ));
        }
        st.queue_depth = shared.config.queue_depth;
        st.chunk_bytes = shared.config.chunk_bytes as u64;
        st.shared = Some(Arc::downgrade(shared));
        Ok(())
    }

    /// Queues a job at the current simulated time.
    pub(crate) fn push(&self, job: Job, shared: &Shared) {
        let mut st = self.lock();
        if st.shut_down {
            drop(st);
            let mut job = job;
            job.fail(Error::Cancelled);
            shared.complete(job);
            return;
        }
        let seq = st.submitted;
        st.submitted += 1;
        st.jobs.push_back((seq, job));
        st.dispatch();
    }

    /// Cancels every job (reader shutdown): nothing is really in flight, so none is abandoned.
    pub(crate) fn shutdown(&self, shared: &Shared) {
        let jobs = {
            let mut st = self.lock();
            st.shut_down = true;
            st.in_flight.clear();
            std::mem::take(&mut st.jobs)
        };
        for (_, mut job) in jobs {
            // Failed first, so no chunk is left to hand out; then the simulated chunks in
            // flight are retired.
            job.fail(Error::Cancelled);
            while !job.is_finished() {
                job.chunk_finished(None);
            }
            shared.complete(job);
        }
    }

    /// Runs the clock up to `deadline_s`, or until read `wait_for` completes if that is sooner.
    /// Fails if asked to wait for a read that cannot complete (never submitted, nothing in
    /// flight), which would otherwise hang.
    pub fn advance(&self, deadline_s: f64, wait_for: Option<u64>) -> Result<Advanced> {
        loop {
            let (finished, shared) = {
                let mut st = self.lock();
                if wait_for.is_some_and(|seq| st.is_done(seq)) {
                    return Ok(Advanced::Done);
                }
                if st.now_s >= deadline_s {
                    return Ok(Advanced::Deadline);
                }
                if deadline_s.is_infinite() {
                    match wait_for {
                        Some(seq) if seq < st.submitted => {}
                        _ => {
                            return Err(Error::Config(format!(
                                "simulated drive: waiting without end for read {wait_for:?}, \
                                 {} submitted",
                                st.submitted
                            )))
                        }
                    }
                }
                let finished = st.step(deadline_s);
                (finished, st.shared.as_ref().and_then(Weak::upgrade))
            };
            if let Some(shared) = shared {
                for job in finished {
                    shared.complete(job);
                }
            }
        }
    }
}

impl SimState {
    fn is_done(&self, seq: u64) -> bool {
        seq < self.submitted && self.jobs.iter().all(|(s, _)| *s != seq)
    }

    /// Hands chunks to the drive, oldest job first, up to the queue depth.
    fn dispatch(&mut self) {
        let chunk_bytes = self.chunk_bytes;
        for (seq, job) in self.jobs.iter_mut() {
            while self.in_flight.len() < self.queue_depth {
                let Some(chunk) = job.next_chunk(chunk_bytes) else {
                    break;
                };
                let _ = job.take_check();
                self.in_flight.push(InFlight {
                    seq: *seq,
                    len_bytes: chunk.len,
                    left_bytes: chunk.len as f64,
                });
            }
        }
    }

    /// One step: to the next chunk completion, the deadline or `STEP_MAX_S`, whichever is first.
    /// Returns the jobs that finished.
    fn step(&mut self, deadline_s: f64) -> Vec<Job> {
        self.dispatch();
        let queued = self.in_flight.len();
        let bytes_per_s = self.model.bandwidth_bytes_per_s(queued, self.chunk_bytes);
        let per_chunk = if queued > 0 {
            bytes_per_s / queued as f64
        } else {
            0.0
        };
        let mut dt_s = (deadline_s - self.now_s).min(STEP_MAX_S);
        if per_chunk > 0.0 {
            let least = self
                .in_flight
                .iter()
                .map(|c| c.left_bytes)
                .fold(f64::INFINITY, f64::min);
            dt_s = dt_s.min(least / per_chunk);
        }
        let dt_s = dt_s.max(0.0);
        self.model.advance(dt_s, bytes_per_s);
        self.now_s += dt_s;
        for c in &mut self.in_flight {
            c.left_bytes -= per_chunk * dt_s;
        }
        let mut finished = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].left_bytes > CHUNK_DONE_BYTES {
                i += 1;
                continue;
            }
            let done = self.in_flight.swap_remove(i);
            self.bytes_moved += done.len_bytes;
            let Some(pos) = self.jobs.iter().position(|(s, _)| *s == done.seq) else {
                unreachable!("chunk of read {} without its job", done.seq)
            };
            let shared = self.shared.as_ref().and_then(Weak::upgrade);
            let job = &mut self.jobs[pos].1;
            job.chunk_finished(None);
            if let Some(shared) = shared {
                shared.stats.add_bytes_read(done.len_bytes);
            }
            if job.is_finished() {
                if let Some((_, job)) = self.jobs.remove(pos) {
                    finished.push(job);
                }
            }
        }
        self.dispatch();
        finished
    }
}

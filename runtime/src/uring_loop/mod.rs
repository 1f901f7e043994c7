//! The io_uring submission/completion loop (runs on the `sluice-uring` thread).
//!
//! TigerBeetle style: every read in flight is a preallocated `Op` owned by the loop and named by
//! its index in `user_data` (never a pointer); one extra `user_data` marks the eventfd poll
//! that wakes the loop. Each turn: take queued jobs (checking each file's identity and size),
//! fill the submission queue with chunks of the oldest jobs, enter the kernel waiting for one
//! completion, copy completions out in bounded batches and only then handle them. Short reads
//! and EINTR/EAGAIN are resubmitted; other errors fail the job once its other chunks are back.
//! The device comes first: after a batch of completions the freed ops are refilled and
//! submitted before the finished slots are posted to the consumer (a wake-up that may preempt
//! this thread on a busy machine) and before new jobs are taken (a stat of each file).
//! Each read is submitted on its own (`submit.rs` says why), so the device sees
//! `queue_depth` reads of `chunk_bytes`, as configured.
//! On shutdown queued jobs are cancelled and the loop exits only when no read is in flight.
//! The `unsafe` of pushing entries that point into slot memory lives in `submit.rs`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

mod submit;

use io_uring::{opcode, types, IoUring};

use crate::errno::{enter_cause, errno_of};
use crate::error::Error;
use crate::job::{step, Chunk, Job, Step};
use crate::limits::{CQE_BATCH_MAX, ENTER_FAILURES_MAX};
use crate::reader::Shared;
use crate::stats::BusyClock;
use crate::uring::{Queue, Setup};

/// `user_data` of the eventfd poll; chunk reads use their op index, always below this.
const WAKE_USER_DATA: u64 = u64::MAX;

/// One chunk read in flight.
#[derive(Clone, Copy)]
struct Op {
    slot: usize,
    chunk: Chunk,
}

/// State of the io_uring thread. Field order matters: `ring` drops (and unregisters the slab)
/// before `shared`, which keeps the slab alive.
pub(crate) struct UringLoop {
    ring: IoUring,
    iovecs_per_slot: Option<usize>,
    fixed_files: Option<Vec<bool>>,
    jobs: Vec<Option<Job>>,
    order: VecDeque<usize>,
    /// Jobs with nothing left in flight, to post once the submission queue is refilled.
    finished: Vec<Job>,
    ops: Vec<Op>,
    ops_free: Vec<usize>,
    busy: BusyClock,
    wake_armed: bool,
    shutting_down: bool,
    enter_failures: u32,
    cqes: [(u64, i32); CQE_BATCH_MAX],
    queue: Arc<Queue>,
    shared: Arc<Shared>,
}

impl UringLoop {
    /// A loop over a set-up ring.
    pub(crate) fn new(setup: Setup, shared: Arc<Shared>, queue: Arc<Queue>) -> UringLoop {
        let (slot_count, queue_depth) = (shared.ring.slot_count(), shared.config.queue_depth);
        assert!((queue_depth as u64) < WAKE_USER_DATA);
        UringLoop {
            ring: setup.ring,
            iovecs_per_slot: setup.iovecs_per_slot,
            fixed_files: setup
                .fixed_files
                .then(|| vec![false; crate::limits::FILES_MAX]),
            jobs: (0..slot_count).map(|_| None).collect(),
            order: VecDeque::with_capacity(slot_count),
            finished: Vec::with_capacity(slot_count),
            ops: vec![
                Op {
                    slot: 0,
                    chunk: Chunk { pos: 0, len: 0 }
                };
                queue_depth
            ],
            ops_free: (0..queue_depth).rev().collect(),
            busy: BusyClock::default(),
            wake_armed: false,
            shutting_down: false,
            enter_failures: 0,
            cqes: [(0, 0); CQE_BATCH_MAX],
            queue,
            shared,
        }
    }

    /// Runs until shutdown with nothing in flight.
    pub(crate) fn run(mut self) {
        loop {
            self.accept();
            self.fill();
            self.post_finished();
            if self.shutting_down && self.busy.reads_in_flight() == 0 {
                break;
            }
            if !self.may_wait() {
                continue;
            }
            if !self.enter() {
                return self.abandon();
            }
            self.reap();
            self.fill();
            self.submit();
            self.post_finished();
        }
        assert!(self.order.is_empty(), "jobs left after shutdown");
        assert!(self.finished.is_empty(), "finished jobs left unposted");
    }

    /// Takes queued jobs; on shutdown, cancels them and every job still handing out chunks.
    fn accept(&mut self) {
        let mut queue = self.queue.lock();
        self.shutting_down |= queue.shutdown;
        while let Some(mut job) = queue.jobs.pop_front() {
            if job.take_check() {
                if let Err(e) = job.file.check(&job.extent) {
                    job.fail(e);
                }
            }
            let slot = job.slot;
            assert!(self.jobs[slot].is_none(), "slot {slot} queued twice");
            self.jobs[slot] = Some(job);
            self.order.push_back(slot);
        }
        drop(queue);
        for i in (0..self.order.len()).rev() {
            let slot = self.order[i];
            if self.shutting_down {
                self.job_mut(slot).fail(Error::Cancelled);
            }
            self.finish_if_done(slot);
        }
    }

    /// Pushes the wake-up poll and as many chunks as there are free ops, oldest job first.
    fn fill(&mut self) {
        if !self.wake_armed {
            let poll = opcode::PollAdd::new(types::Fd(self.queue.waker.fd()), libc::POLLIN as u32);
            self.push(&poll.build().user_data(WAKE_USER_DATA));
            self.wake_armed = true;
        }
        let chunk_bytes = self.shared.config.chunk_bytes as u64;
        for i in 0..self.order.len() {
            let slot = self.order[i];
            while !self.ops_free.is_empty() {
                let Some(chunk) = self.job_mut(slot).next_chunk(chunk_bytes) else {
                    break;
                };
                let Some(op) = self.ops_free.pop() else {
                    unreachable!("checked non-empty")
                };
                self.ops[op] = Op { slot, chunk };
                self.push_read(op);
            }
        }
    }

    /// Tells submitters whether a new job must wake the loop (it has free ops, so `fill` found
    /// no chunk to hand out) and says whether the loop may sleep: not when it is starved and a
    /// job arrived after `accept`, whose submitter may have seen the flag still clear.
    fn may_wait(&mut self) -> bool {
        let starved = !self.ops_free.is_empty();
        let mut queue = self.queue.lock();
        queue.starved = starved;
        !starved || queue.jobs.is_empty()
    }

    /// Submits what is queued without waiting; a failure is left to the next `enter`, which
    /// submits the same entries again and handles its errors.
    pub(super) fn submit(&mut self) {
        if !self.ring.submission().is_empty() {
            let _ = self.ring.submit();
        }
    }

    /// Submits and waits for one completion; false when io_uring_enter keeps failing.
    fn enter(&mut self) -> bool {
        match self.ring.submit_and_wait(1) {
            Ok(_) => self.enter_failures = 0,
            Err(e) => match errno_of(&e) {
                libc::EINTR | libc::EAGAIN | libc::EBUSY | libc::ETIME => {}
                errno => {
                    self.enter_failures += 1;
                    log::error!(
                        "io_uring_enter failed (errno {errno}): {}",
                        enter_cause(errno)
                    );
                    for i in (0..self.order.len()).rev() {
                        let slot = self.order[i];
                        self.job_mut(slot).fail(Error::UringEnter {
                            errno,
                            cause: enter_cause(errno),
                        });
                        self.finish_if_done(slot);
                    }
                    self.post_finished();
                    std::thread::sleep(Duration::from_millis(1));
                    return self.enter_failures < ENTER_FAILURES_MAX;
                }
            },
        }
        true
    }

    /// Copies completions out in batches of at most CQE_BATCH_MAX, then handles them.
    fn reap(&mut self) {
        loop {
            let mut count = 0;
            for (slot, cqe) in self.cqes.iter_mut().zip(self.ring.completion()) {
                *slot = (cqe.user_data(), cqe.result());
                count += 1;
            }
            for i in 0..count {
                let (user_data, result) = self.cqes[i];
                self.handle(user_data, result);
            }
            if count < CQE_BATCH_MAX {
                return;
            }
        }
    }

    fn handle(&mut self, user_data: u64, result: i32) {
        if user_data == WAKE_USER_DATA {
            self.queue.waker.drain();
            self.wake_armed = false;
            return;
        }
        let op = usize::try_from(user_data).expect("op index fits usize");
        let Op { slot, chunk } = self.ops[op];
        self.busy.finish(&self.shared.stats);
        if result > 0 {
            self.shared.stats.add_bytes_read(result as u64);
        }
        let job = self.jobs[slot].as_mut().expect("completion for a live job");
        let (direct, align_bytes) = (job.file.direct(), job.file.align_bytes());
        let next = match step(chunk, i64::from(result), direct, align_bytes) {
            Step::More(rest) => Some(rest),
            Step::Retry => Some(chunk),
            Step::Done => {
                job.chunk_finished(None);
                None
            }
            Step::Eof(pos) => {
                job.chunk_finished(Some(pos));
                None
            }
            Step::Failed(errno) => {
                job.chunk_failed(chunk.pos, errno);
                None
            }
        };
        // A failed or cancelled job reads no further; its unfinished chunk simply ends.
        let next = match next {
            Some(_) if job.is_failed() => {
                job.chunk_finished(None);
                None
            }
            other => other,
        };
        match next {
            Some(rest) => {
                self.ops[op].chunk = rest;
                self.push_read(op);
            }
            None => {
                self.ops_free.push(op);
                self.finish_if_done(slot);
            }
        }
    }

    fn job_mut(&mut self, slot: usize) -> &mut Job {
        self.jobs[slot].as_mut().expect("slot in order has a job")
    }

    /// Sets `slot`'s job aside for posting if it has nothing left in flight or to hand out.
    fn finish_if_done(&mut self, slot: usize) {
        if !self.jobs[slot].as_ref().is_some_and(Job::is_finished) {
            return;
        }
        let Some(job) = self.jobs[slot].take() else {
            return;
        };
        self.order.retain(|&s| s != slot);
        assert!(
            self.finished.len() < self.jobs.len(),
            "more finished jobs than slots"
        );
        self.finished.push(job);
    }

    /// Posts the finished jobs: their slots become Ready or Failed and the consumer wakes.
    fn post_finished(&mut self) {
        for job in self.finished.drain(..) {
            self.shared.complete(job);
        }
    }

    /// io_uring_enter keeps failing: reads may still be in flight, so their slots and the slab
    /// must never be reused or freed. Post errors for the jobs, then leak the loop's state.
    fn abandon(mut self) {
        self.post_finished();
        log::error!("giving up on io_uring; the ring's memory is leaked so no read can land in reused memory");
        while let Some(slot) = self.order.pop_front() {
            if let Some(job) = self.jobs[slot].take() {
                let (errno, cause) = (libc::EIO, "io_uring_enter keeps failing");
                self.shared
                    .board
                    .post(slot, Err(Error::UringEnter { errno, cause }));
                std::mem::forget(job);
            }
        }
        std::mem::forget(self);
    }
}

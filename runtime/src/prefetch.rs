//! `Prefetcher`: keeps up to `depth` extents of a repeating sweep read or in flight ahead of
//! the consumer, strictly in sweep order.
//!
//! The sweep (the extents of one token, in the order the engine uses them) repeats forever;
//! extent number `n` of the stream is `sweep[n % sweep.len()]`. Reads are issued in that order
//! whenever fewer than `depth` extents are ahead of the consumer and a slot is free, so a slow
//! consumer gets back-pressure (no free slot, no read), never unbounded memory. `depth` may
//! change at any time from another thread ([`PrefetchControl`]); 0 means "read on demand".
//!
//! Consumer protocol: [`Prefetcher::next`] waits for the next extent and lends its slot as a
//! [`SlotGuard`]; dropping the guard releases the slot and tops the pipeline up. Several guards
//! may be held at once (e.g. while a device copy is in flight); if the consumer holds every
//! slot, `next` fails with [`Error::RingExhausted`] instead of deadlocking.
//!
//! After a read error `next` returns that error once and then [`Error::Stopped`]: extents are
//! consumed by position, so skipping one silently would hand the engine the wrong layer.
//! Dropping the prefetcher (or cancelling it) stops issuing, drains reads in flight, joins the
//! reader threads and returns every slot to `Free`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::extent::Extent;
use crate::guard::{InnerRef, PrefetchControl, SlotGuard};
use crate::reader::Reader;
use crate::ring::{HostRing, SlotState};
use crate::stats::StatsSnapshot;

pub(crate) struct Pipeline {
    pub(crate) depth: usize,
    /// Stream position of the next extent to issue.
    issued: u64,
    /// Stream position of the next extent to hand to the consumer.
    acquired: u64,
    /// Slots of the extents `acquired..issued`, in stream order.
    ahead: VecDeque<usize>,
    /// Set after a read error.
    stopped: bool,
}

pub(crate) struct Inner {
    reader: Reader,
    pub(crate) sweep: Vec<Extent>,
    pipeline: Mutex<Pipeline>,
    consumer: Mutex<()>,
    cancelled: AtomicBool,
}

/// Streams a repeating sweep of extents through the ring, `depth` extents ahead of the consumer.
pub struct Prefetcher {
    inner: Arc<Inner>,
}

impl Prefetcher {
    /// Validates every extent of `sweep` against the reader's files and slots, then starts
    /// reading up to `depth` (at most the slot count) extents ahead.
    pub fn new(reader: Reader, sweep: Vec<Extent>, depth: usize) -> Result<Prefetcher> {
        if sweep.is_empty() {
            return Err(Error::EmptySweep);
        }
        let slot_count = reader.ring().slot_count();
        if depth > slot_count {
            return Err(Error::Config(format!(
                "prefetch depth {depth} exceeds the {slot_count} ring slots"
            )));
        }
        for (index, extent) in sweep.iter().enumerate() {
            let file = reader.file(extent.file, index)?;
            extent.validate(
                index,
                file.align_bytes(),
                reader.ring().slot_bytes(),
                file.path(),
            )?;
        }
        let pipeline = Pipeline {
            depth,
            issued: 0,
            acquired: 0,
            ahead: VecDeque::with_capacity(slot_count),
            stopped: false,
        };
        let inner = Inner {
            reader,
            sweep,
            pipeline: Mutex::new(pipeline),
            consumer: Mutex::new(()),
            cancelled: AtomicBool::new(false),
        };
        let prefetcher = Prefetcher {
            inner: Arc::new(inner),
        };
        prefetcher.inner.top_up(&mut prefetcher.inner.lock())?;
        Ok(prefetcher)
    }

    /// Waits for the next extent of the sweep and lends its slot.
    pub fn next(&self) -> Result<SlotGuard<'_>> {
        self.lend(InnerRef::Borrowed(&self.inner))
    }

    /// As [`next`](Self::next), with a guard that does not borrow the prefetcher: bytes to keep
    /// across calls (resident weights read once). It holds the ring alive; dropping the
    /// prefetcher first stops its reads and leaves the slot to the guard.
    pub fn next_owned(&self) -> Result<SlotGuard<'static>> {
        self.lend(InnerRef::Owned(Arc::clone(&self.inner)))
    }

    /// Waits for the next extent, marks its slot in use and lends it through `handle`.
    fn lend<'a>(&self, handle: InnerRef<'a>) -> Result<SlotGuard<'a>> {
        let inner = &*self.inner;
        let _consumer = inner.consumer.lock().unwrap_or_else(|p| p.into_inner());
        let (slot, sequence) = {
            let mut pipeline = inner.lock();
            inner.check_running(&pipeline)?;
            if pipeline.ahead.is_empty() && !inner.issue_one(&mut pipeline)? {
                return Err(Error::RingExhausted {
                    slots: inner.ring().slot_count(),
                });
            }
            let Some(&slot) = pipeline.ahead.front() else {
                unreachable!("issued above")
            };
            (slot, pipeline.acquired)
        };
        let started = Instant::now();
        let outcome = inner.reader.board().wait(slot);
        let stall = started.elapsed();
        if let Err(Error::Cancelled) = outcome {
            return Err(Error::Cancelled);
        }
        let mut pipeline = inner.lock();
        assert_eq!(
            pipeline.ahead.pop_front(),
            Some(slot),
            "the head of the pipeline moved"
        );
        pipeline.acquired += 1;
        let read = match outcome {
            Ok(span) => span,
            Err(e) => {
                pipeline.stopped = true;
                inner.discard(slot);
                return Err(e);
            }
        };
        inner
            .ring()
            .transition(slot, SlotState::Ready, SlotState::InUse)?;
        inner.reader.stats_handle().add_consumed(stall);
        inner.top_up(&mut pipeline)?;
        let extent = inner.sweep[(sequence % inner.sweep.len() as u64) as usize];
        let len = extent.payload_len as usize;
        let start = inner
            .ring()
            .in_use_bytes(slot, extent.payload_offset as usize, len)?;
        Ok(SlotGuard::new(
            handle,
            slot,
            sequence,
            extent,
            (start, len),
            read,
        ))
    }

    /// Changes how many extents are kept ahead (clamped to the slot count); returns the depth set.
    pub fn set_depth(&self, depth: usize) -> usize {
        self.inner.set_depth(depth)
    }

    /// Current depth.
    pub fn depth(&self) -> usize {
        self.inner.lock().depth
    }

    /// Largest depth (the number of slots).
    pub fn depth_max(&self) -> usize {
        self.inner.ring().slot_count()
    }

    /// A handle for other threads (a governor, a signal handler).
    pub fn control(&self) -> PrefetchControl {
        PrefetchControl::new(Arc::downgrade(&self.inner))
    }

    /// Stops issuing reads and makes waiting and future `next` calls return [`Error::Cancelled`].
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// The reader (its kind, configuration, live threads).
    pub fn reader(&self) -> &Reader {
        &self.inner.reader
    }

    /// The sweep order.
    pub fn sweep(&self) -> &[Extent] {
        &self.inner.sweep
    }

    /// A copy of the I/O counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.reader.stats()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.inner.cancel();
        self.inner.reader.shutdown();
        let mut pipeline = self.inner.lock();
        while let Some(slot) = pipeline.ahead.pop_front() {
            self.inner.discard(slot);
        }
    }
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Pipeline> {
        self.pipeline.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ring(&self) -> &Arc<HostRing> {
        self.reader.ring()
    }

    fn check_running(&self, pipeline: &Pipeline) -> Result<()> {
        if self.cancelled.load(Ordering::Acquire) {
            return Err(Error::Cancelled);
        }
        if pipeline.stopped {
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// Issues reads while fewer than `depth` extents are ahead and slots are free.
    fn top_up(&self, pipeline: &mut Pipeline) -> Result<()> {
        while self.check_running(pipeline).is_ok() && pipeline.ahead.len() < pipeline.depth {
            if !self.issue_one(pipeline)? {
                break;
            }
        }
        Ok(())
    }

    /// Issues the next extent into a free slot; false if no slot is free.
    fn issue_one(&self, pipeline: &mut Pipeline) -> Result<bool> {
        let Some(slot) = self.ring().claim_free() else {
            return Ok(false);
        };
        let extent = self.sweep[(pipeline.issued % self.sweep.len() as u64) as usize];
        self.reader.board().arm(slot);
        if let Err(e) = self.reader.submit(slot, &extent) {
            self.ring()
                .transition(slot, SlotState::Reading, SlotState::Failed)?;
            self.ring()
                .transition(slot, SlotState::Failed, SlotState::Free)?;
            self.reader.board().clear(slot);
            pipeline.stopped = true;
            return Err(e);
        }
        assert!(
            pipeline.ahead.len() < pipeline.ahead.capacity(),
            "more extents ahead than slots"
        );
        pipeline.ahead.push_back(slot);
        pipeline.issued += 1;
        self.reader.stats_handle().add_issued();
        Ok(true)
    }

    /// Frees a slot whose read finished but which the consumer will never see.
    fn discard(&self, slot: usize) {
        self.reader.board().clear(slot);
        let state = self.ring().state(slot);
        let freed = match state {
            SlotState::Ready | SlotState::Failed => {
                self.ring().transition(slot, state, SlotState::Free)
            }
            // Only an abandoned io_uring leaves a slot Reading: the kernel may still write it.
            _ => return log::error!("slot {slot} is {state:?} at teardown; leaving it unused"),
        };
        if let Err(e) = freed {
            log::error!("{e}");
        }
    }

    pub(crate) fn release(&self, slot: usize) {
        if let Err(e) = self
            .ring()
            .transition(slot, SlotState::InUse, SlotState::Free)
        {
            debug_assert!(false, "{e}");
            log::error!("{e}");
        }
        let mut pipeline = self.lock();
        if let Err(e) = self.top_up(&mut pipeline) {
            log::error!("prefetch stopped: {e}");
        }
    }

    pub(crate) fn set_depth(&self, depth: usize) -> usize {
        let depth = depth.min(self.ring().slot_count());
        let mut pipeline = self.lock();
        pipeline.depth = depth;
        if let Err(e) = self.top_up(&mut pipeline) {
            log::error!("prefetch stopped: {e}");
        }
        depth
    }

    pub(crate) fn stats(&self) -> StatsSnapshot {
        self.reader.stats()
    }

    pub(crate) fn cancel(&self) {
        let _pipeline = self.lock();
        self.cancelled.store(true, Ordering::Release);
        self.reader.board().cancel();
    }
}

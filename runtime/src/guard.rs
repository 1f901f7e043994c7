//! What the prefetcher lends and hands out: [`SlotGuard`], the RAII loan of one ready slot, and
//! [`PrefetchControl`], the handle other threads (a thermal governor, a signal handler) use to
//! change the depth or cancel.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::extent::Extent;
use crate::prefetch::Inner;
use crate::stats::StatsSnapshot;

/// A cloneable, sendable handle to change a prefetcher's depth or cancel it from other threads.
#[derive(Clone)]
pub struct PrefetchControl {
    inner: Weak<Inner>,
}

/// When the read of an extent was queued to the reader and when its last chunk completed: what
/// per-layer timelines and read-time figures are built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadSpan {
    /// The extent was handed to the reader.
    pub queued_at: Instant,
    /// Its last chunk completed.
    pub done_at: Instant,
}

impl ReadSpan {
    /// Queued to done.
    pub fn duration(&self) -> Duration {
        self.done_at.saturating_duration_since(self.queued_at)
    }

    /// A zero-length span at the present instant (for tests).
    pub fn now() -> ReadSpan {
        let t = Instant::now();
        ReadSpan {
            queued_at: t,
            done_at: t,
        }
    }
}

/// How a guard reaches its prefetcher: borrowed for the common case, shared for a guard that
/// outlives the borrow ([`crate::Prefetcher::next_owned`]).
pub(crate) enum InnerRef<'a> {
    Borrowed(&'a Inner),
    Owned(Arc<Inner>),
}

impl std::ops::Deref for InnerRef<'_> {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        match self {
            InnerRef::Borrowed(i) => i,
            InnerRef::Owned(i) => i,
        }
    }
}

/// A slot lent to the consumer; dropping it frees the slot.
pub struct SlotGuard<'a> {
    inner: InnerRef<'a>,
    slot: usize,
    sequence: u64,
    extent: Extent,
    /// The payload's first byte and length, inside the `InUse` slot this guard owns.
    start: NonNull<u8>,
    len: usize,
    read: ReadSpan,
    _bytes: PhantomData<&'a mut [u8]>,
}

// SAFETY: a guard is the one owner of its slot's bytes, like a `&mut [u8]` (Send and Sync);
// `Inner` is Sync and Send (checked below), so `&Inner` and `Arc<Inner>` may cross threads. An
// owned guard's `Arc` keeps the ring, and so the bytes, alive.
unsafe impl Send for SlotGuard<'_> {}
// SAFETY: as above; `&SlotGuard` hands out only shared views.
unsafe impl Sync for SlotGuard<'_> {}

/// The guard's Send and Sync rest on `Inner` being Sync: this fails to compile otherwise.
const _: fn() = || {
    fn sync_send<T: Sync + Send>() {}
    sync_send::<Inner>();
};

impl<'a> SlotGuard<'a> {
    /// A guard over `len` payload bytes at `start` of `InUse` slot `slot`.
    pub(crate) fn new(
        inner: InnerRef<'a>,
        slot: usize,
        sequence: u64,
        extent: Extent,
        (start, len): (NonNull<u8>, usize),
        read: ReadSpan,
    ) -> Self {
        SlotGuard {
            inner,
            slot,
            sequence,
            extent,
            start,
            len,
            read,
            _bytes: PhantomData,
        }
    }
}

impl SlotGuard<'_> {
    /// The payload bytes (the extent without its alignment padding).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the range lies inside an `InUse` slot, which nobody else reads or writes
        // until this guard drops (readers write only `Reading` slots); shared for `&self`.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }

    /// The payload bytes, to rearrange in place before computing on them (the next read of
    /// this extent overwrites the slot with the file's bytes again).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes this the only view while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), self.len) }
    }

    /// The extent this slot holds.
    pub fn extent(&self) -> &Extent {
        &self.extent
    }

    /// Position of the extent in the sweep.
    pub fn sweep_index(&self) -> usize {
        (self.sequence % self.inner.sweep.len() as u64) as usize
    }

    /// Position of the extent in the endless stream (`sequence / sweep.len()` is the pass).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The ring slot lent.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// When the extent's read was queued and when it completed.
    pub fn read_span(&self) -> ReadSpan {
        self.read
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.inner.release(self.slot);
    }
}

impl PrefetchControl {
    pub(crate) fn new(inner: Weak<Inner>) -> Self {
        PrefetchControl { inner }
    }
}

impl PrefetchControl {
    /// Sets the depth (clamped to the slot count); `None` once the prefetcher is gone.
    pub fn set_depth(&self, depth: usize) -> Option<usize> {
        self.inner.upgrade().map(|inner| inner.set_depth(depth))
    }

    /// Current depth; `None` once the prefetcher is gone.
    pub fn depth(&self) -> Option<usize> {
        self.inner.upgrade().map(|inner| inner.lock().depth)
    }

    /// A copy of the prefetcher's I/O counters; `None` once the prefetcher is gone.
    pub fn stats(&self) -> Option<StatsSnapshot> {
        self.inner.upgrade().map(|inner| inner.stats())
    }

    /// Cancels the prefetcher (see `Prefetcher::cancel`).
    pub fn cancel(&self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.cancel();
        }
    }
}

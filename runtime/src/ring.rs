//! `HostRing`: one slab cut into N fixed-size slots, each moving through explicit states.
//!
//! ```text
//!   Free ──claim──▶ Reading ──complete──▶ Ready ──acquire──▶ InUse ──release──▶ Free
//!                      └──────fail──────▶ Failed ──discard──▶ Free      Ready ──discard──▶ Free
//! ```
//! Only a reader moves a slot out of `Reading`, and only after the kernel (or the pread worker)
//! is done with it, so a slot is never reused while something may still write to it. Every
//! transition is a compare-and-swap that checks the state it leaves; an illegal transition is a
//! [`SlotStateError`], never a silent overwrite.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::limits::{SLOTS_MAX, SLOT_ALIGN_BYTES, SLOT_BYTES_MAX};
use crate::slab::{Slab, SlabRegistrar};

/// Where a slot is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SlotState {
    /// Holds nothing; may be claimed for a read.
    Free = 0,
    /// A read into it is queued or in flight; only the reader may touch it.
    Reading = 1,
    /// Its read completed; waiting for the consumer.
    Ready = 2,
    /// Its read failed; its bytes are meaningless.
    Failed = 3,
    /// Lent to the consumer; read-only until released.
    InUse = 4,
}

impl SlotState {
    fn from_u8(v: u8) -> SlotState {
        match v {
            0 => SlotState::Free,
            1 => SlotState::Reading,
            2 => SlotState::Ready,
            3 => SlotState::Failed,
            4 => SlotState::InUse,
            _ => unreachable!("slot state byte {v} is never stored"),
        }
    }

    /// Whether the state machine allows `self → to`.
    pub fn can_become(self, to: SlotState) -> bool {
        use SlotState::*;
        matches!(
            (self, to),
            (Free, Reading)
                | (Reading, Ready)
                | (Reading, Failed)
                | (Ready, InUse)
                | (InUse, Free)
                | (Failed, Free)
                | (Ready, Free)
        )
    }
}

/// An attempted slot transition that the state machine forbids or that found another state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("slot {slot}: cannot move {from:?} -> {to:?}, the slot is {actual:?} (a bug in sluice or its caller)")]
pub struct SlotStateError {
    /// The slot index.
    pub slot: usize,
    /// The state the caller expected to leave.
    pub from: SlotState,
    /// The state the caller asked for.
    pub to: SlotState,
    /// The state the slot was actually in.
    pub actual: SlotState,
}

/// A ring of equally sized, page-aligned host buffers carved out of one slab.
pub struct HostRing {
    slab: Slab,
    slot_bytes: usize,
    states: Box<[AtomicU8]>,
}

impl HostRing {
    /// Maps a ring of `slot_count` slots of `slot_bytes` each (rounded up to 4 KiB).
    pub fn new(slot_count: usize, slot_bytes: usize) -> Result<Arc<HostRing>> {
        Self::build(slot_count, slot_bytes, None)
    }

    /// Like [`HostRing::new`], and hands the slab to `registrar` (e.g. to page-lock it for a GPU).
    pub fn with_registrar(
        slot_count: usize,
        slot_bytes: usize,
        registrar: Arc<dyn SlabRegistrar>,
    ) -> Result<Arc<HostRing>> {
        Self::build(slot_count, slot_bytes, Some(registrar))
    }

    fn build(
        slot_count: usize,
        slot_bytes: usize,
        registrar: Option<Arc<dyn SlabRegistrar>>,
    ) -> Result<Arc<HostRing>> {
        if slot_count == 0 || slot_count > SLOTS_MAX {
            return Err(Error::Config(format!(
                "slot count {slot_count} must be in 1..={SLOTS_MAX}"
            )));
        }
        if slot_bytes == 0 || slot_bytes > SLOT_BYTES_MAX {
            return Err(Error::Config(format!(
                "slot size {slot_bytes} must be in 1..={SLOT_BYTES_MAX}"
            )));
        }
        let slot_bytes = slot_bytes.next_multiple_of(SLOT_ALIGN_BYTES);
        let slab_bytes = slot_bytes.checked_mul(slot_count).ok_or_else(|| {
            Error::Config(format!("{slot_count} slots of {slot_bytes} bytes overflow"))
        })?;
        let slab = Slab::new(slab_bytes, registrar)?;
        let states = (0..slot_count)
            .map(|_| AtomicU8::new(SlotState::Free as u8))
            .collect();
        Ok(Arc::new(HostRing {
            slab,
            slot_bytes,
            states,
        }))
    }

    /// Number of slots.
    pub fn slot_count(&self) -> usize {
        self.states.len()
    }

    /// Size of each slot in bytes (a multiple of 4 KiB).
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Size of the whole slab in bytes.
    pub fn slab_bytes(&self) -> usize {
        self.slab.len_bytes()
    }

    /// Whether the slab is 2 MiB aligned and advised for transparent huge pages.
    pub fn huge_pages(&self) -> bool {
        self.slab.huge_pages()
    }

    /// Current state of `slot`.
    pub fn state(&self, slot: usize) -> SlotState {
        SlotState::from_u8(self.states[slot].load(Ordering::Acquire))
    }

    /// Number of slots currently in `state`.
    pub fn count(&self, state: SlotState) -> usize {
        (0..self.slot_count())
            .filter(|&s| self.state(s) == state)
            .count()
    }

    /// Moves `slot` from `from` to `to`, failing if the move is illegal or the slot is elsewhere.
    pub(crate) fn transition(
        &self,
        slot: usize,
        from: SlotState,
        to: SlotState,
    ) -> Result<(), SlotStateError> {
        let err = |actual| SlotStateError {
            slot,
            from,
            to,
            actual,
        };
        if !from.can_become(to) {
            return Err(err(self.state(slot)));
        }
        self.states[slot]
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(|actual| err(SlotState::from_u8(actual)))
    }

    /// Claims the lowest free slot for a read (Free → Reading).
    pub(crate) fn claim_free(&self) -> Option<usize> {
        (0..self.slot_count()).find(|&s| {
            self.transition(s, SlotState::Free, SlotState::Reading)
                .is_ok()
        })
    }

    /// Start of `slot`'s memory, for a reader to fill while the slot is `Reading`.
    pub(crate) fn slot_ptr(&self, slot: usize) -> *mut u8 {
        assert!(slot < self.slot_count());
        // SAFETY: slot * slot_bytes < slab length, so the pointer stays inside the mapping.
        unsafe { self.slab.ptr().add(slot * self.slot_bytes) }
    }

    /// Views `len` bytes at `offset` of an `InUse` slot, as the pointer to their start: the
    /// slot's one consumer (its guard) may read them, and write them through `&mut` to itself.
    pub(crate) fn in_use_bytes(
        &self,
        slot: usize,
        offset: usize,
        len: usize,
    ) -> Result<std::ptr::NonNull<u8>, SlotStateError> {
        let actual = self.state(slot);
        if actual != SlotState::InUse {
            return Err(SlotStateError {
                slot,
                from: SlotState::InUse,
                to: SlotState::InUse,
                actual,
            });
        }
        assert!(offset <= self.slot_bytes && len <= self.slot_bytes - offset);
        // SAFETY: the range lies inside the slot (asserted), hence inside the slab, whose
        // pointer is non-null, so the offset pointer is too.
        Ok(unsafe {
            std::ptr::NonNull::new_unchecked(self.slab.ptr().add(slot * self.slot_bytes + offset))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SlotState::*;

    #[test]
    fn slot_walks_its_life_cycle() {
        let ring = HostRing::new(2, 4096).expect("ring");
        let slot = ring.claim_free().expect("free slot");
        assert_eq!(ring.state(slot), Reading);
        assert!(
            ring.in_use_bytes(slot, 0, 16).is_err(),
            "no view while reading"
        );
        ring.transition(slot, Reading, Ready).expect("complete");
        ring.transition(slot, Ready, InUse).expect("acquire");
        assert!(ring.in_use_bytes(slot, 0, 16).is_ok());
        ring.transition(slot, InUse, Free).expect("release");
        assert_eq!(ring.count(Free), 2);
    }

    #[test]
    fn illegal_transitions_are_errors() {
        let ring = HostRing::new(1, 4096).expect("ring");
        let e = ring.transition(0, Free, InUse).expect_err("skips reading");
        assert_eq!((e.from, e.to, e.actual), (Free, InUse, Free));
        assert!(ring.transition(0, Free, Ready).is_err());
        assert!(
            ring.transition(0, Reading, Free).is_err(),
            "reads are never abandoned in flight"
        );
        ring.transition(0, Free, Reading).expect("claim");
        let e = ring.transition(0, Free, Reading).expect_err("double claim");
        assert_eq!(e.actual, Reading);
        assert!(ring.claim_free().is_none());
        assert!(ring.transition(0, Ready, InUse).is_err(), "not ready yet");
        ring.transition(0, Reading, Failed).expect("fail");
        assert!(
            ring.transition(0, Failed, InUse).is_err(),
            "failed slots are never lent"
        );
        ring.transition(0, Failed, Free).expect("discard");
    }

    #[test]
    fn slot_size_is_rounded_to_pages_and_limits_checked() {
        let ring = HostRing::new(3, 5000).expect("ring");
        assert_eq!(ring.slot_bytes(), 8192);
        assert_eq!(ring.slab_bytes(), 3 * 8192);
        assert_eq!(ring.slot_ptr(1) as usize - ring.slot_ptr(0) as usize, 8192);
        assert!(HostRing::new(0, 4096).is_err());
        assert!(HostRing::new(SLOTS_MAX + 1, 4096).is_err());
        assert!(HostRing::new(1, 0).is_err());
    }
}

//! The completion board: where reader threads post each slot's outcome and the consumer waits.
//!
//! One entry per slot, preallocated; posting and taking an outcome allocate nothing (an error
//! outcome carries its error, allocated on the failure path only).

use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::guard::ReadSpan;

/// The outcome of the read into one slot.
#[derive(Debug)]
enum Outcome {
    /// No read is armed for the slot.
    Idle,
    /// A read is queued or in flight.
    Pending,
    /// The read succeeded, queued and finished at these times.
    Ready(ReadSpan),
    /// The read failed.
    Failed(Error),
}

struct BoardState {
    outcomes: Vec<Outcome>,
    cancelled: bool,
}

/// Per-slot outcomes plus a condition variable to wait on them.
pub(crate) struct Board {
    state: Mutex<BoardState>,
    changed: Condvar,
}

impl Board {
    /// A board for `slot_count` slots, all idle.
    pub(crate) fn new(slot_count: usize) -> Board {
        let outcomes = (0..slot_count).map(|_| Outcome::Idle).collect();
        Board {
            state: Mutex::new(BoardState {
                outcomes,
                cancelled: false,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a read into `slot` as pending.
    pub(crate) fn arm(&self, slot: usize) {
        let mut state = self.lock();
        assert!(
            matches!(state.outcomes[slot], Outcome::Idle),
            "slot {slot} armed twice"
        );
        state.outcomes[slot] = Outcome::Pending;
    }

    /// Posts the outcome of the read into `slot` and wakes waiters.
    pub(crate) fn post(&self, slot: usize, result: Result<ReadSpan>) {
        let mut state = self.lock();
        assert!(
            matches!(state.outcomes[slot], Outcome::Pending),
            "slot {slot} posted twice"
        );
        state.outcomes[slot] = match result {
            Ok(span) => Outcome::Ready(span),
            Err(e) => Outcome::Failed(e),
        };
        drop(state);
        self.changed.notify_all();
    }

    /// Waits for the outcome of the read into `slot` and takes it (the slot becomes idle).
    /// Returns [`Error::Cancelled`] instead, leaving the outcome, once the board is cancelled.
    pub(crate) fn wait(&self, slot: usize) -> Result<ReadSpan> {
        let mut state = self.lock();
        loop {
            if state.cancelled {
                return Err(Error::Cancelled);
            }
            match std::mem::replace(&mut state.outcomes[slot], Outcome::Idle) {
                Outcome::Ready(span) => return Ok(span),
                Outcome::Failed(e) => return Err(e),
                Outcome::Pending => state.outcomes[slot] = Outcome::Pending,
                Outcome::Idle => unreachable!("waiting on slot {slot} with no read armed"),
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Forgets a posted outcome (teardown).
    pub(crate) fn clear(&self, slot: usize) {
        self.lock().outcomes[slot] = Outcome::Idle;
    }

    /// Makes every current and future [`Board::wait`] return [`Error::Cancelled`].
    pub(crate) fn cancel(&self) {
        self.lock().cancelled = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_sees_posts_from_another_thread() {
        let board = Arc::new(Board::new(2));
        board.arm(1);
        let poster = Arc::clone(&board);
        let t = std::thread::spawn(move || poster.post(1, Err(Error::EmptySweep)));
        assert!(matches!(board.wait(1), Err(Error::EmptySweep)));
        t.join().expect("poster");
        board.arm(1);
        board.post(1, Ok(ReadSpan::now()));
        board.wait(1).expect("ready");
    }

    #[test]
    fn cancel_wakes_a_waiter() {
        let board = Arc::new(Board::new(1));
        board.arm(0);
        let canceller = Arc::clone(&board);
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(10));
            canceller.cancel();
        });
        assert!(matches!(board.wait(0), Err(Error::Cancelled)));
        t.join().expect("canceller");
    }
}

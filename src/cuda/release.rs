//! Host ring slots lent to the copy stream: a bounded FIFO of loans, each returned only once
//! the copy that reads it has completed on the device.
//!
//! The copy stream reads page-locked host slots asynchronously, so dropping a slot's guard (which
//! lets io_uring overwrite it) right after queueing the copy would race the DMA. Each loan is
//! kept here with the sequence number of its copy; [`Loans::release_done`] drops those whose
//! copy event reports completion, oldest first, and [`Loans::make_room`] blocks on the oldest
//! copies when the host ring would otherwise run out of slots for the prefetcher.

use std::collections::VecDeque;

/// Loans of host slots awaiting their copies, oldest first.
pub struct Loans<G> {
    queue: VecDeque<(u64, G)>,
    capacity: usize,
}

impl<G> Loans<G> {
    /// Room for at most `capacity` loans (the host ring's slot count), allocated once.
    pub fn new(capacity: usize) -> Loans<G> {
        Loans {
            queue: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Loans outstanding.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no loan is outstanding.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Records that `guard` is read by copy `seq`.
    pub fn lend(&mut self, seq: u64, guard: G) {
        assert!(
            self.queue.len() < self.capacity,
            "more loans than host slots"
        );
        debug_assert!(self.queue.back().is_none_or(|(s, _)| *s <= seq));
        self.queue.push_back((seq, guard));
    }

    /// Releases, oldest first, every loan whose copy `done(seq)` reports complete; stops at the
    /// first that is not (copies on one stream complete in order).
    pub fn release_done<E>(
        &mut self,
        mut done: impl FnMut(u64) -> Result<bool, E>,
    ) -> Result<usize, E> {
        let mut released = 0;
        while let Some(&(seq, _)) = self.queue.front() {
            if !done(seq)? {
                break;
            }
            self.queue.pop_front();
            released += 1;
        }
        Ok(released)
    }

    /// Makes room for `wanted` more loans: waits (`wait(seq)` blocks until copy `seq` is done)
    /// on the oldest loans and releases them until `len() + wanted <= capacity`.
    pub fn make_room<E>(
        &mut self,
        wanted: usize,
        mut wait: impl FnMut(u64) -> Result<(), E>,
    ) -> Result<(), E> {
        assert!(
            wanted <= self.capacity,
            "{wanted} slots wanted at once, the ring has {}",
            self.capacity
        );
        while self.queue.len() + wanted > self.capacity {
            let Some(&(seq, _)) = self.queue.front() else {
                break;
            };
            wait(seq)?;
            self.queue.pop_front();
        }
        Ok(())
    }

    /// Waits for every outstanding copy and releases all loans.
    pub fn drain<E>(&mut self, wait: impl FnMut(u64) -> Result<(), E>) -> Result<(), E> {
        self.make_room(self.capacity, wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A guard that records its release.
    struct Guard(u64, Rc<RefCell<Vec<u64>>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.1.borrow_mut().push(self.0);
        }
    }

    #[test]
    fn loans_return_only_after_their_copy_completes_in_order() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut loans = Loans::new(4);
        for (seq, id) in [(0, 10), (0, 11), (1, 12)] {
            loans.lend(seq, Guard(id, log.clone()));
        }
        // Copy 0 is still running: nothing is released.
        let n = loans.release_done(|_| Ok::<_, ()>(false)).unwrap();
        assert_eq!((n, loans.len()), (0, 3));
        assert!(log.borrow().is_empty());
        // Copy 0 done, copy 1 not: both slots of copy 0 return, in lending order.
        let n = loans.release_done(|s| Ok::<_, ()>(s == 0)).unwrap();
        assert_eq!(n, 2);
        assert_eq!(*log.borrow(), [10, 11]);
        assert_eq!(loans.len(), 1);
    }

    #[test]
    fn make_room_waits_on_the_oldest_copies_only_as_needed() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut loans = Loans::new(3);
        for seq in 0..3 {
            loans.lend(seq, Guard(seq, log.clone()));
        }
        let mut waited = Vec::new();
        loans
            .make_room(2, |s| {
                waited.push(s);
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(waited, [0, 1]);
        assert_eq!(*log.borrow(), [0, 1]);
        assert_eq!(loans.len(), 1);
        loans.drain(|_| Ok::<_, ()>(())).unwrap();
        assert!(loans.is_empty());
        assert_eq!(*log.borrow(), [0, 1, 2]);
    }

    #[test]
    fn errors_keep_the_loan() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut loans = Loans::new(1);
        loans.lend(0, Guard(0, log.clone()));
        assert_eq!(
            loans.release_done(|_| Err::<bool, _>("driver")),
            Err("driver")
        );
        assert_eq!(loans.make_room(1, |_| Err("driver")), Err("driver"));
        assert_eq!(
            loans.len(),
            1,
            "a slot whose copy may still run is never released"
        );
        assert!(log.borrow().is_empty());
    }

    #[test]
    #[should_panic(expected = "more loans than host slots")]
    fn lending_past_capacity_is_a_bug() {
        let mut loans = Loans::new(1);
        loans.lend(0, ());
        loans.lend(1, ());
    }
}

//! The io_uring reader: set-up, registration, and the handle the rest of the crate talks to.
//!
//! The ring is built, registered and driven by one thread of its own (`sluice-uring`), so
//! `SINGLE_ISSUER` holds and no ring call ever crosses threads. The slab is registered as fixed
//! buffers (one or more iovecs per slot, each at most 1 GiB) for `ReadFixed`, and a sparse
//! fixed-file table is registered for the files; if the kernel refuses either, reads fall back
//! to plain `Read` / plain descriptors, logged once per process. Set-up errors are mapped to
//! causes (`setup_cause`), which `Reader::new` logs when it falls back to the pread pool.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use io_uring::{opcode, IoUring, Probe};

use crate::errno::{errno_of, setup_cause};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::limits::{FILES_MAX, FIXED_BUFFERS_MAX, IOVEC_BYTES_MAX};
use crate::reader::Shared;
use crate::uring_loop::UringLoop;
use crate::waker::Waker;

/// Work queued for the io_uring thread.
pub(crate) struct QueueState {
    /// Jobs not yet taken by the loop, oldest first.
    pub jobs: VecDeque<Job>,
    /// Set once: stop, cancel what is queued, drain what is in flight.
    pub shutdown: bool,
    /// The loop is asleep (or about to be) with reads it could submit but no chunks to hand
    /// out, so a new job must wake it. Otherwise every read is in flight and the loop takes
    /// new jobs when the next completion wakes it: no eventfd write, no extra wake-up.
    pub starved: bool,
}

/// The queue between submitters and the io_uring thread, and the eventfd that wakes it.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    /// Wakes the loop out of io_uring_enter.
    pub waker: Waker,
}

impl Queue {
    /// Locks the queue.
    pub(crate) fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle to the io_uring thread.
pub(crate) struct UringReader {
    /// What registration achieved: (fixed buffers, fixed files).
    pub registered: (bool, bool),
    queue: Arc<Queue>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl UringReader {
    /// Starts the io_uring thread; fails with [`Error::UringSetup`] if the kernel refuses.
    pub(crate) fn start(shared: &Arc<Shared>) -> Result<UringReader> {
        let waker = Waker::new().map_err(|e| Error::UringSetup {
            errno: errno_of(&e),
            cause: "cannot create the eventfd that wakes the io_uring loop",
        })?;
        let slot_count = shared.ring.slot_count();
        let state = QueueState {
            jobs: VecDeque::with_capacity(slot_count),
            shutdown: false,
            starved: true,
        };
        let queue = Arc::new(Queue {
            state: Mutex::new(state),
            waker,
        });
        let (ready_tx, ready_rx) = sync_channel::<Result<(bool, bool)>>(1);
        let (loop_shared, loop_queue) = (Arc::clone(shared), Arc::clone(&queue));
        let thread = shared.spawn("io_uring", "sluice-uring".to_string(), move || {
            thread_main(&loop_shared, loop_queue, &ready_tx);
        })?;
        let started = ready_rx.recv();
        let mut this = UringReader {
            registered: (false, false),
            queue,
            thread: Mutex::new(Some(thread)),
        };
        match started {
            Ok(Ok(registered)) => {
                this.registered = registered;
                Ok(this)
            }
            Ok(Err(e)) => {
                this.shutdown();
                Err(e)
            }
            Err(_) => {
                this.shutdown();
                Err(Error::UringSetup {
                    errno: 0,
                    cause: "the io_uring thread died during set-up",
                })
            }
        }
    }

    /// Queues a job, waking the loop if it waits for work.
    pub(crate) fn push(&self, job: Job) {
        let mut state = self.queue.lock();
        assert!(
            state.jobs.len() < state.jobs.capacity(),
            "more jobs than slots"
        );
        state.jobs.push_back(job);
        let wake = state.starved;
        drop(state);
        if wake {
            self.queue.waker.wake();
        }
    }

    /// Cancels queued jobs, drains in-flight reads and joins the thread.
    pub(crate) fn shutdown(&self) {
        self.queue.lock().shutdown = true;
        self.queue.waker.wake();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                log::error!("the io_uring thread panicked");
            }
        }
    }
}

/// Body of the io_uring thread: set up, report (fixed buffers, fixed files) or the error, run.
fn thread_main(shared: &Arc<Shared>, queue: Arc<Queue>, ready: &SyncSender<Result<(bool, bool)>>) {
    match setup(shared) {
        Ok(setup) => {
            let _ = ready.send(Ok((setup.iovecs_per_slot.is_some(), setup.fixed_files)));
            UringLoop::new(setup, Arc::clone(shared), queue).run();
        }
        Err(e) => {
            let _ = ready.send(Err(e));
        }
    }
}

/// A ring ready to run, with what registration achieved.
pub(crate) struct Setup {
    /// The ring.
    pub ring: IoUring,
    /// Fixed buffers per slot, if the slab is registered.
    pub iovecs_per_slot: Option<usize>,
    /// Whether a sparse fixed-file table is registered.
    pub fixed_files: bool,
}

fn setup(shared: &Shared) -> Result<Setup> {
    let ring = build_ring(shared.config.queue_depth)?;
    let mut probe = Probe::new();
    let probed = ring.submitter().register_probe(&mut probe);
    if probed.is_err()
        || !probe.is_supported(opcode::Read::CODE)
        || !probe.is_supported(opcode::PollAdd::CODE)
    {
        return Err(Error::UringSetup {
            errno: libc::EINVAL,
            cause: "the kernel's io_uring lacks READ (Linux < 5.6)",
        });
    }
    if !shared.config.fixed {
        return Ok(Setup {
            ring,
            iovecs_per_slot: None,
            fixed_files: false,
        });
    }
    let iovecs_per_slot = register_slab(&ring, shared);
    let fixed_files = match ring.submitter().register_files(&[-1; FILES_MAX]) {
        Ok(()) => true,
        Err(e) => {
            warn_once(&FILES_WARNED, "fixed files", &e);
            false
        }
    };
    Ok(Setup {
        ring,
        iovecs_per_slot,
        fixed_files,
    })
}

fn build_ring(queue_depth: usize) -> Result<IoUring> {
    // One entry more than the reads in flight, for the wake-up poll.
    let entries = (queue_depth + 1).next_power_of_two() as u32;
    let tuned: std::io::Result<IoUring> = IoUring::builder()
        .setup_coop_taskrun()
        .setup_single_issuer()
        .build(entries);
    let ring = match tuned {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::new(entries),
        other => other,
    };
    ring.map_err(|e| {
        let errno = errno_of(&e);
        Error::UringSetup {
            errno,
            cause: setup_cause(errno),
        }
    })
}

/// Registers every slot as fixed buffers; `None` (logged once) if the kernel refuses.
fn register_slab(ring: &IoUring, shared: &Shared) -> Option<usize> {
    let (slot_count, slot_bytes) = (shared.ring.slot_count(), shared.ring.slot_bytes());
    let per_slot = slot_bytes.div_ceil(IOVEC_BYTES_MAX);
    if per_slot * slot_count > FIXED_BUFFERS_MAX {
        let e = std::io::Error::from_raw_os_error(libc::E2BIG);
        warn_once(&BUFFERS_WARNED, "fixed buffers", &e);
        return None;
    }
    let mut iovecs = Vec::with_capacity(per_slot * slot_count);
    for slot in 0..slot_count {
        for piece in 0..per_slot {
            let start = piece * IOVEC_BYTES_MAX;
            // SAFETY: start < slot_bytes, so the pointer stays inside the slot.
            let base = unsafe { shared.ring.slot_ptr(slot).add(start) };
            iovecs.push(libc::iovec {
                iov_base: base.cast(),
                iov_len: IOVEC_BYTES_MAX.min(slot_bytes - start),
            });
        }
    }
    // SAFETY: the iovecs cover the slab, which outlives the ring: the loop owns an Arc of the
    // HostRing and drops the IoUring (unregistering the buffers) before it.
    match unsafe { ring.submitter().register_buffers(&iovecs) } {
        Ok(()) => Some(per_slot),
        Err(e) => {
            warn_once(&BUFFERS_WARNED, "fixed buffers", &e);
            None
        }
    }
}

static BUFFERS_WARNED: AtomicBool = AtomicBool::new(false);
static FILES_WARNED: AtomicBool = AtomicBool::new(false);

/// Logs a refused registration once per process.
pub(crate) fn warn_once(flag: &AtomicBool, what: &str, e: &std::io::Error) {
    if !flag.swap(true, Ordering::Relaxed) {
        let errno = errno_of(e);
        let cause = match errno {
            libc::ENOMEM | libc::EAGAIN => {
                "locked-memory limit: raise `ulimit -l` (RLIMIT_MEMLOCK)"
            }
            libc::E2BIG => "the ring has more slots than io_uring accepts as fixed buffers",
            libc::EOPNOTSUPP | libc::EFAULT => {
                "the memory cannot be pinned by io_uring on this kernel"
            }
            _ => "refused by the kernel",
        };
        log::warn!("io_uring {what} not registered ({cause}, errno {errno}); using plain reads");
    }
}

/// Whether registering `file`'s descriptor in the fixed table failed; logged once.
pub(crate) static FILE_UPDATE_WARNED: AtomicBool = AtomicBool::new(false);

//! A persistent thread pool for the CPU kernels: workers are spawned once, poll briefly for the
//! next job, then park on a condition variable; `run` hands them a borrowed closure without
//! allocating or spawning. The calling thread works too, so a pool of `n` threads has `n − 1`
//! workers and a pool of 1 runs everything inline.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker (or the waiting caller) polls before parking.
pub const SPIN_BEFORE_PARK: Duration = Duration::from_micros(50);
/// Polls between clock reads while spinning.
const POLLS_PER_CLOCK_READ: u32 = 64;

/// A job as the workers see it: a borrowed closure whose lifetime `run` erases (see there).
type Job = &'static (dyn Fn(usize) + Sync);

/// What the caller publishes under the lock.
struct State {
    job: Option<Job>,
    n_tasks: usize,
    /// Threads the current job runs on, the caller included: workers `width − 1..` sit it out.
    width: usize,
    generation: u64,
    sleepers: usize,
    shutdown: bool,
}

/// Shared between the caller and the workers.
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Mirror of `State::generation` for lock-free polling.
    generation: AtomicU64,
    next_task: AtomicUsize,
    /// Workers that took the current job and have not finished it.
    in_flight: AtomicUsize,
    /// Set while the caller sleeps waiting for `in_flight` to reach 0 (guarded by `done_lock`).
    done_lock: Mutex<bool>,
    done: Condvar,
    panicked: AtomicBool,
}

/// Locks a mutex; no code panics while holding these locks, so poisoning carries no meaning.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls `ready` for up to `budget`; true if it became true.
fn spin_until(budget: Duration, ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..POLLS_PER_CLOCK_READ {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= budget {
            return ready();
        }
    }
}

impl Shared {
    /// Claims and runs tasks until none are left; a panicking task is recorded, not propagated.
    fn drain(&self, job: Job, n_tasks: usize) {
        loop {
            let i = self.next_task.fetch_add(1, Ordering::Relaxed);
            if i >= n_tasks {
                return;
            }
            if catch_unwind(AssertUnwindSafe(|| job(i))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The worker thread's loop: wait for a new generation, take its job, drain, repeat.
    /// Worker `index` (the caller is 0) sits out jobs narrower than `index + 1` threads, and
    /// parks at once after one: it polls only after work of its own.
    fn worker(&self, index: usize, spin: Duration) {
        let mut seen = 0u64;
        let mut poll = true;
        loop {
            if poll {
                spin_until(spin, || self.generation.load(Ordering::Acquire) != seen);
            }
            let mut st = lock(&self.state);
            while st.generation == seen && !st.shutdown {
                st.sleepers += 1;
                st = self.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.sleepers -= 1;
            }
            if st.shutdown {
                return;
            }
            seen = st.generation;
            poll = index < st.width;
            if !poll {
                continue; // a narrower job: the threads before this one run it
            }
            let Some(job) = st.job else { continue }; // already retracted: nothing left to do
            let n_tasks = st.n_tasks;
            self.in_flight.fetch_add(1, Ordering::Relaxed); // under the lock: see `run`
            drop(st);
            self.drain(job, n_tasks);
            if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
                let caller_sleeping = lock(&self.done_lock);
                if *caller_sleeping {
                    self.done.notify_one();
                }
            }
        }
    }
}

/// A fixed set of worker threads that run indexed tasks on demand.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    spin: Duration,
    /// Threads `run` uses, the caller included (see [`ThreadPool::narrowed`]).
    width: AtomicUsize,
}

impl ThreadPool {
    /// A pool of `n_threads` threads in all (the caller counts as one; 0 is treated as 1).
    pub fn new(n_threads: usize) -> ThreadPool {
        ThreadPool::with_spin(n_threads, SPIN_BEFORE_PARK)
    }

    /// Like [`ThreadPool::new`], polling for `spin` before parking (zero parks at once).
    pub fn with_spin(n_threads: usize, spin: Duration) -> ThreadPool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                n_tasks: 0,
                width: n_threads.max(1),
                generation: 0,
                sleepers: 0,
                shutdown: false,
            }),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            next_task: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            done_lock: Mutex::new(false),
            done: Condvar::new(),
            panicked: AtomicBool::new(false),
        });
        let workers = (1..n_threads.max(1))
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("sluice-cpu-{i}"))
                    .spawn(move || s.worker(i, spin))
                    .unwrap_or_else(|e| panic!("cannot spawn CPU worker thread {i}: {e}"))
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            spin,
            width: AtomicUsize::new(n_threads.max(1)),
        }
    }

    /// Threads that run tasks, the caller included.
    pub fn n_threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs jobs on the first `threads` threads only (clamped to 1..=`n_threads`), the others
    /// parked, until the guard drops: a sweep that waits on the disk leaves a core to the
    /// reader.
    pub fn narrowed(&self, threads: usize) -> Narrowed<'_> {
        let w = threads.clamp(1, self.n_threads());
        self.width.store(w, Ordering::Relaxed);
        Narrowed { pool: self }
    }

    /// Threads jobs run on now ([`ThreadPool::narrowed`]).
    pub fn width(&self) -> usize {
        self.width.load(Ordering::Relaxed)
    }

    /// Runs `f(0) … f(n_tasks − 1)`, each exactly once, spread over the pool; returns when all
    /// are done. A panic in any task is re-raised here after every task has finished.
    pub fn run<F: Fn(usize) + Sync>(&self, n_tasks: usize, f: F) {
        let width = self.width();
        if self.workers.is_empty() || n_tasks <= 1 || width <= 1 {
            (0..n_tasks).for_each(f);
            return;
        }
        let s = &*self.shared;
        let job: &(dyn Fn(usize) + Sync) = &f;
        // SAFETY: only the lifetime is changed. Workers reach `job` solely through
        // `State::job`, registering in `in_flight` under the same lock; before returning, even
        // when a task panics, `run` clears `State::job` under that lock and waits until
        // `in_flight` is 0, so no worker can call `job` after `f` is dropped.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(job) };
        {
            let mut st = lock(&s.state);
            st.job = Some(job);
            st.n_tasks = n_tasks;
            st.width = width;
            s.next_task.store(0, Ordering::Relaxed);
            st.generation += 1;
            s.generation.store(st.generation, Ordering::Release);
            if st.sleepers > 0 {
                s.wake.notify_all();
            }
        }
        let mine = catch_unwind(AssertUnwindSafe(|| loop {
            let i = s.next_task.fetch_add(1, Ordering::Relaxed);
            if i >= n_tasks {
                break;
            }
            job(i);
        }));
        lock(&s.state).job = None;
        if !spin_until(self.spin, || s.in_flight.load(Ordering::Acquire) == 0) {
            let mut sleeping = lock(&s.done_lock);
            *sleeping = true;
            while s.in_flight.load(Ordering::Acquire) != 0 {
                sleeping = s
                    .done
                    .wait(sleeping)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            *sleeping = false;
        }
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if s.panicked.swap(false, Ordering::Relaxed) {
            panic!("a CPU pool task panicked (see the worker's message above)");
        }
    }
}

/// A pool narrowed by [`ThreadPool::narrowed`]; dropping it gives every thread back.
pub struct Narrowed<'p> {
    pool: &'p ThreadPool,
}

impl Drop for Narrowed<'_> {
    fn drop(&mut self) {
        let n = self.pool.n_threads();
        self.pool.width.store(n, Ordering::Relaxed);
    }
}

impl Drop for ThreadPool {
    /// Stops and joins every worker.
    fn drop(&mut self) {
        {
            let mut st = lock(&self.shared.state);
            st.shutdown = true;
            st.generation += 1;
            self.shared
                .generation
                .store(st.generation, Ordering::Release);
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            // A worker never panics outside `catch_unwind`, so join only fails if it was killed.
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("n_threads", &self.n_threads())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once_across_many_reuses() {
        for n_threads in [1, 2, 3, 5] {
            let pool = ThreadPool::new(n_threads);
            let counts: Vec<AtomicUsize> = (0..97).map(|_| AtomicUsize::new(0)).collect();
            for round in 0..3000 {
                let n_tasks = round % 97 + 1;
                pool.run(n_tasks, |i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            let expected = |i: usize| (0..3000).filter(|r| r % 97 >= i).count();
            for (i, c) in counts.iter().enumerate() {
                assert_eq!(
                    c.load(Ordering::Relaxed),
                    expected(i),
                    "task {i} with {n_threads} threads"
                );
            }
        }
    }

    #[test]
    fn a_narrowed_pool_runs_every_task_on_its_first_threads_only() {
        let pool = ThreadPool::new(4);
        for width in [2, 1, 3, 4, 9, 0] {
            let narrowed = pool.narrowed(width);
            assert_eq!(pool.width(), width.clamp(1, 4));
            let threads = Mutex::new(std::collections::HashSet::new());
            let ran = AtomicUsize::new(0);
            for _ in 0..50 {
                pool.run(64, |_| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    let name = std::thread::current().name().map(str::to_owned);
                    lock(&threads).insert(name);
                    std::thread::sleep(Duration::from_micros(20));
                });
            }
            assert_eq!(ran.load(Ordering::Relaxed), 50 * 64);
            let used = threads.into_inner().unwrap_or_else(PoisonError::into_inner);
            let w = width.clamp(1, 4);
            for name in used
                .iter()
                .flatten()
                .filter(|n| n.starts_with("sluice-cpu-"))
            {
                let i: usize = name["sluice-cpu-".len()..].parse().expect("worker index");
                assert!(i < w, "worker {i} ran a task of a {w}-thread job");
            }
            if w == 1 {
                assert!(used.iter().flatten().all(|n| !n.starts_with("sluice-cpu-")));
            }
            drop(narrowed);
            assert_eq!(pool.width(), 4, "every thread back");
        }
    }

    #[test]
    fn parked_workers_wake_up() {
        let pool = ThreadPool::with_spin(3, Duration::ZERO);
        let sum = AtomicUsize::new(0);
        for _ in 0..200 {
            std::thread::sleep(Duration::from_micros(50));
            pool.run(8, |i| {
                sum.fetch_add(i, Ordering::Relaxed);
            });
        }
        assert_eq!(sum.load(Ordering::Relaxed), 200 * 28);
    }

    #[test]
    fn a_panicking_task_is_reported_and_the_pool_stays_usable() {
        let pool = ThreadPool::new(3);
        let res = catch_unwind(AssertUnwindSafe(|| {
            pool.run(64, |i| assert!(i != 17, "task 17 fails"))
        }));
        assert!(res.is_err());
        let ran = AtomicUsize::new(0);
        pool.run(64, |_| {
            ran.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(ran.load(Ordering::Relaxed), 64);
    }

    #[test]
    fn drop_stops_and_joins_every_worker() {
        let pool = ThreadPool::new(4);
        assert_eq!(pool.n_threads(), 4);
        pool.run(10, |_| {});
        let shared = Arc::downgrade(&pool.shared);
        drop(pool);
        // Each worker held a strong reference until its thread ended and was joined.
        assert!(
            shared.upgrade().is_none(),
            "a worker thread outlived the pool"
        );
        assert_eq!(ThreadPool::new(0).n_threads(), 1);
    }
}

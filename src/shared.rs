//! The state every pool clone and worker shares: the job queue, the
//! workers and their places under `max_workers`, the pauses, the
//! lifecycle, and the events they wait on. (What a job and its handle share
//! with the pool is the pool's `Core`, `src/core.rs`; who searches the
//! queue and who sleeps is the `Scheduler`, `src/scheduler.rs`.)
//!
//! Counts that decide who runs, each private behind the methods that own
//! its orderings:
//! - `workers`: live worker futures, at most `max_workers` (a worker is
//!   reserved with a CAS *before* it is spawned).
//! - `busy`: workers about to take, or running, a job. A worker adds itself
//!   *before* it takes a job and looks at the pause; `pause` registers (and,
//!   to take hold, sets `hold_all`) *before* it looks at `busy`. With both
//!   sides SeqCst, either the worker sees the pause or the pause sees the
//!   worker: no job starts unseen by a pause.
//!
//! A **sub-pool** (`Pool::subpool`) is a pool of its own (queue, workers,
//! `max_workers`, ledger) whose workers run as jobs of its parent
//! (`Shared::forward`): each of its workers takes one of its jobs, runs it
//! in the parent's slot, and gives its place to a successor queued at the
//! back of the parent's queue (so a sub-pool's job waits in FIFO order in
//! both pools), or leaves when its queue is empty (a sub-pool's worker never
//! idles in a slot of its parent). A parent closes its sub-pools before it
//! closes its own queue, under the lock of its list of sub-pools, which a
//! forward takes too: a forward that finds the parent open always gets its
//! worker queued.

use std::time::Duration;

use event_listener::{Event, EventListener};

use crate::cell::QueueEntry;
use crate::core::Core;
use crate::header::Name;
use crate::runtime::BoxFuture;
use crate::runtime::Spawner;
use crate::scheduler::Scheduler;
use crate::sync::{lock_std, Arc, AtomicU8, AtomicUsize, Ordering};
use crate::view::{self, JobInfo, WorkerJobs};

/// How a sub-pool queues one of its workers as a job of its parent: makes
/// the worker and queues it if the parent is open (`true`), makes nothing
/// if it is closed (`false`).
pub(crate) type Forward = Arc<dyn Fn(&mut dyn FnMut() -> BoxFuture<()>) -> bool + Send + Sync>;

/// The job queue: the intrusive MPMC FIFO of `src/queue.rs`, or under loom
/// a lock-based stand-in whose synchronisation the models see.
#[cfg(not(workerpoolxt_loom))]
pub(crate) type JobQueue = crate::queue::Queue<QueueEntry>;
#[cfg(workerpoolxt_loom)]
pub(crate) type JobQueue = crate::sync::loom_queue::Queue<QueueEntry>;

/// Open: takes submissions.
pub(crate) const OPEN: u8 = 0;
/// Draining (`stop_wait`, or every `Pool` clone dropped): takes no
/// submission, runs what is queued, ignores pauses.
pub(crate) const DRAINING: u8 = 1;
/// Stopped (`stop`): takes no submission, drops what is queued.
pub(crate) const STOPPED: u8 = 2;

pub(crate) struct Shared {
    core: Arc<Core>,
    pub(crate) queue: JobQueue,
    max_workers: AtomicUsize,
    workers: AtomicUsize,
    /// Written by workers around every job (see the module docs).
    busy: crate::sync::Padded<AtomicUsize>,
    /// Who searches the queue and who sleeps (`src/scheduler.rs`).
    pub(crate) scheduler: Scheduler,
    /// Pauses requested or held.
    paused: AtomicUsize,
    /// The earliest queue ticket that a live pause holds back (`usize::MAX`
    /// when none): jobs queued before a pause still run, later ones wait.
    pause_barrier: AtomicUsize,
    /// The barriers of the live pauses (pauses are rare: a lock is fine).
    pause_barriers: std::sync::Mutex<Vec<usize>>,
    /// Live pause guards, plus pauses checking whether they can take hold:
    /// while above zero, no job starts.
    hold_all: AtomicUsize,
    /// Tickets of the jobs that workers hold back (only while paused).
    held: std::sync::Mutex<Vec<usize>>,
    /// Whether a pause guard is held (pauses are taken one at a time).
    pause_held: AtomicU8,
    /// Stops awaited inside jobs of this pool (`Stop`): each such job's
    /// worker stays until its job ends, so those stops wait only for the
    /// other workers.
    stops_inside: AtomicUsize,
    state: AtomicU8,
    /// `busy` or `workers` dropped, a held job was let go, or a stop began
    /// or ended inside a job.
    quiet: Event,
    /// A pause ended, or the pool began to stop.
    unpaused: Event,
    pub(crate) spawner: Spawner,
    pub(crate) idle_timeout: Option<Duration>,
    /// For a sub-pool: how its workers are queued in its parent.
    pub(crate) forward: Option<Forward>,
    /// For a sub-pool: the name its workers have as jobs of its parent
    /// (`Pool::jobs` of the parent leaves them out).
    pub(crate) worker_name: Option<Name>,
    /// Worker futures made and not polled yet (see `stops_resolved`).
    unpolled: AtomicUsize,
    /// This pool's sub-pools; its lock orders their forwards against this
    /// pool's close (see the module docs).
    subs: std::sync::Mutex<Vec<std::sync::Weak<Shared>>>,
    /// What each worker holds, for `Pool::jobs` (`src/view.rs`).
    pub(crate) worker_jobs: WorkerJobs,
}

impl Shared {
    pub(crate) fn new(
        core: Arc<Core>,
        max_workers: usize,
        spawner: Spawner,
        idle_timeout: Option<Duration>,
    ) -> Shared {
        Shared {
            core,
            queue: JobQueue::unbounded(),
            max_workers: AtomicUsize::new(max_workers),
            workers: AtomicUsize::new(0),
            busy: crate::sync::Padded(AtomicUsize::new(0)),
            scheduler: Scheduler::new(),
            paused: AtomicUsize::new(0),
            pause_barrier: AtomicUsize::new(usize::MAX),
            pause_barriers: std::sync::Mutex::new(Vec::new()),
            hold_all: AtomicUsize::new(0),
            held: std::sync::Mutex::new(Vec::new()),
            pause_held: AtomicU8::new(0),
            stops_inside: AtomicUsize::new(0),
            state: AtomicU8::new(OPEN),
            quiet: Event::new(),
            unpaused: Event::new(),
            spawner,
            idle_timeout,
            forward: None,
            worker_name: None,
            unpolled: AtomicUsize::new(0),
            subs: std::sync::Mutex::new(Vec::new()),
            worker_jobs: WorkerJobs::default(),
        }
    }

    /// A sub-pool's state: workers queued in its parent with `forward`.
    pub(crate) fn new_sub(
        core: Arc<Core>,
        max_workers: usize,
        spawner: Spawner,
        forward: Forward,
        worker_name: Name,
    ) -> Shared {
        let mut shared = Shared::new(core, max_workers, spawner, None);
        shared.forward = Some(forward);
        shared.worker_name = Some(worker_name);
        shared
    }

    /// Whether this is a sub-pool.
    pub(crate) fn is_sub(&self) -> bool {
        self.forward.is_some()
    }

    // ----- sub-pools -----

    /// Whether a job of the pool `pool` (as `current_job` names it) runs in
    /// this pool's slots: a job of this pool or of one of its sub-pools, at
    /// any depth. What would wait for this pool's workers from inside one
    /// of them asks (a stop, a pause).
    pub(crate) fn holds_jobs_of(&self, pool: usize) -> bool {
        self.id() == pool || self.subs().iter().any(|s| s.holds_jobs_of(pool))
    }

    /// Registers a sub-pool; `false` (nothing registered) if this pool is
    /// closed already.
    pub(crate) fn add_sub(&self, sub: &Arc<Shared>) -> bool {
        let mut subs = lock_std(&self.subs);
        if !self.is_open() {
            return false;
        }
        subs.retain(|s| s.strong_count() > 0);
        subs.push(Arc::downgrade(sub));
        true
    }

    /// The live sub-pools.
    pub(crate) fn subs(&self) -> Vec<Arc<Shared>> {
        lock_std(&self.subs)
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect()
    }

    /// Runs `push` (a sub-pool's worker queued as this pool's job) if this
    /// pool is open, under the lock its close takes: then the queue is open
    /// too, and the push succeeds. `false` if it is closed.
    pub(crate) fn forward_in(&self, push: impl FnOnce()) -> bool {
        let _closing = lock_std(&self.subs);
        if !self.is_open() {
            return false;
        }
        push();
        true
    }

    /// Cancels every running job of this pool and of its sub-pools (a
    /// shutdown's grace ended; see `Core::abort_running`). The sub-pools'
    /// workers, shielded, are not cancelled: the jobs they run are.
    pub(crate) fn abort_running(&self) {
        self.core.abort_running();
        for sub in self.subs() {
            sub.abort_running();
        }
    }

    /// A worker future was made (`true`) or polled or dropped unpolled.
    pub(crate) fn count_unpolled(&self, made: bool) {
        if made {
            self.unpolled.fetch_add(1, Ordering::SeqCst);
        } else {
            self.unpolled.fetch_sub(1, Ordering::SeqCst);
            self.quiet.notify(usize::MAX);
        }
    }

    /// What the pool's jobs and handles share with it.
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The pool, as `current_job` names it.
    pub(crate) fn id(&self) -> usize {
        self.core.id()
    }

    // ----- lifecycle -----

    pub(crate) fn state(&self) -> u8 {
        self.state.load(Ordering::SeqCst)
    }

    pub(crate) fn is_open(&self) -> bool {
        self.state() == OPEN
    }

    /// Moves to `DRAINING` or `STOPPED` (never back), closes the queue, and
    /// ends what is queued if stopped. The caller starts workers for what
    /// is left (`worker::spawn_for_queue`).
    pub(crate) fn begin_stop(&self, to: u8) {
        {
            // Under the lock a sub-pool's forward takes (see the module docs).
            let _closing = lock_std(&self.subs);
            self.state.fetch_max(to, Ordering::SeqCst);
            self.queue.close();
        }
        if to == STOPPED {
            // Queued jobs never start; dropping a task resolves its handle.
            self.drop_queued();
            // Nor do those that a worker holds while they wait for their
            // start time under the rate limit.
            self.core.stop_rate_waits();
        }
        // Sleeping and paused workers look again; room waiters give up.
        self.scheduler.wake_all();
        self.unpaused.notify(usize::MAX);
        self.core.no_more_room();
    }

    /// Ends every queued job unstarted: dropping an entry resolves its
    /// handle `Stopped`.
    pub(crate) fn drop_queued(&self) {
        while let Ok(task) = self.queue.pop() {
            drop(task);
        }
    }

    /// A stop awaited inside a job of this pool begins (`true`) or ends.
    pub(crate) fn stop_inside(&self, begins: bool) {
        if begins {
            self.stops_inside.fetch_add(1, Ordering::SeqCst);
        } else {
            self.stops_inside.fetch_sub(1, Ordering::SeqCst);
        }
        // Other stops awaited inside jobs may now have nothing left to wait
        // for, or something more.
        self.quiet.notify(usize::MAX);
    }

    /// Whether a stop has nothing left to wait for: no worker is left, or,
    /// for a stop awaited inside jobs of this pool (`inside`), only the
    /// workers of the jobs that await stops inside (`stops_inside`), which
    /// cannot leave before their own jobs end.
    ///
    /// A stopped sub-pool does not wait for its workers still queued in its
    /// parent: they find nothing to run and leave as soon as they start.
    pub(crate) fn stops_resolved(&self, inside: bool) -> bool {
        let mut workers = self.workers.load(Ordering::SeqCst);
        if self.is_sub() && self.state() == STOPPED {
            workers = workers.saturating_sub(self.unpolled.load(Ordering::SeqCst));
        }
        workers == 0 || (inside && workers <= self.stops_inside.load(Ordering::SeqCst))
    }

    /// Listens for what a stop or a pause waits for (see `quiet`).
    pub(crate) fn listen_quiet(&self) -> EventListener {
        self.quiet.listen()
    }

    // ----- the jobs, as `Pool::jobs` shows them -----

    /// Appends this pool's queued, running and draining jobs to `out`, each
    /// once, oldest (lowest id) first (see `Pool::jobs`). What was in `out`
    /// stays as it was: a pool can gather other pools' jobs beside its own.
    pub(crate) fn snapshot_into(&self, now: std::time::Instant, out: &mut Vec<JobInfo>) {
        let core = &*self.core;
        // Read by the caller before any lock is taken (the clock is user
        // code, which may panic or take its time), once for a pool and its
        // sub-pools, whose jobs are then ordered by age.
        let now = core.since_epoch(now);
        let mut queued = Vec::new();
        self.visit_queued(|header| queued.extend(view::of_queued(header, core, now)));
        let mut held = Vec::new();
        self.worker_jobs.read_into(core, now, &mut held);
        view::merge_into(queued, held, out);
    }

    /// Calls `f` with the header of every queued job, oldest first, while
    /// the queue's consumers wait (`Queue::visit`).
    #[cfg(not(workerpoolxt_loom))]
    fn visit_queued(&self, f: impl FnMut(&crate::header::Header)) {
        crate::cell::visit_headers(&self.queue, f);
    }

    #[cfg(workerpoolxt_loom)]
    fn visit_queued(&self, mut f: impl FnMut(&crate::header::Header)) {
        self.queue.visit(|entry| f(entry.header()));
    }

    // ----- workers -----

    pub(crate) fn max_workers(&self) -> usize {
        self.max_workers.load(Ordering::SeqCst)
    }

    /// Sets `max_workers`; returns the value before.
    pub(crate) fn set_max_workers(&self, n: usize) -> usize {
        self.max_workers.swap(n, Ordering::SeqCst)
    }

    /// Live workers, busy or idle.
    pub(crate) fn workers(&self) -> usize {
        self.workers.load(Ordering::SeqCst)
    }

    /// Reserves a worker's place if there is room under `max_workers`.
    pub(crate) fn try_reserve_worker(&self) -> bool {
        let mut n = self.workers.load(Ordering::SeqCst);
        loop {
            if n >= self.max_workers() {
                return false;
            }
            match self
                .workers
                .compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => n = actual,
            }
        }
    }

    /// A worker ended (its place is free). `true` if it was the last one.
    pub(crate) fn worker_gone(&self) -> bool {
        let last = self.workers.fetch_sub(1, Ordering::SeqCst) == 1;
        // Every worker that leaves is news to a stop awaited inside a job
        // (see `stops_resolved`); the last one to every stop.
        self.quiet.notify(usize::MAX);
        last
    }

    /// Whether a worker should leave because the pool shrank.
    pub(crate) fn too_many_workers(&self) -> bool {
        self.workers() > self.max_workers()
    }

    /// Leaves if the pool shrank below the live workers; `true` if this
    /// worker's place was given up.
    pub(crate) fn try_retire(&self) -> bool {
        let mut n = self.workers.load(Ordering::SeqCst);
        loop {
            if n <= self.max_workers() {
                return false;
            }
            match self
                .workers
                .compare_exchange_weak(n, n - 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    self.quiet.notify(usize::MAX);
                    return true;
                }
                Err(actual) => n = actual,
            }
        }
    }

    /// A worker is about to take a job (and look at the pause).
    pub(crate) fn busy_begins(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    /// A worker is done with a job (or found none, or holds one back).
    pub(crate) fn busy_done(&self) {
        let was = self.busy.fetch_sub(1, Ordering::SeqCst);
        if was == 1 && self.paused.load(Ordering::SeqCst) > 0 {
            self.quiet.notify(usize::MAX);
        }
    }

    // ----- pauses -----

    /// Whether any pause is requested or held (a worker works a popped
    /// job's whole ticket out only then).
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst) > 0
    }

    /// Whether a pause holds back the job with queue ticket `ticket`: a
    /// live guard (or a pause taking hold) holds every job, a pending pause
    /// the jobs submitted from its call on.
    pub(crate) fn holds_back(&self, ticket: usize) -> bool {
        self.is_paused()
            && (self.hold_all.load(Ordering::SeqCst) > 0
                || ticket >= self.pause_barrier.load(Ordering::SeqCst))
            && self.is_open()
    }

    /// Resolves once no pause holds back the job with `ticket`.
    pub(crate) async fn released(&self, ticket: usize) {
        wait_until(&self.unpaused, || !self.holds_back(ticket)).await;
    }

    /// A worker holds back the job with `ticket` (rare: only while paused):
    /// out of `busy`, listed as held.
    pub(crate) fn hold(&self, ticket: usize) {
        lock_std(&self.held).push(ticket);
        self.busy_done();
    }

    /// A worker's held job is released: counted busy again *before* it is
    /// no longer listed as held, so a pause never misses it.
    pub(crate) fn unhold(&self, ticket: usize) {
        self.busy_begins();
        self.unlist_held(ticket);
    }

    /// A held job's worker is gone (dropped while it waited): the job is no
    /// longer held, and a pause that waited for it looks again.
    pub(crate) fn forget_held(&self, ticket: usize) {
        self.unlist_held(ticket);
        self.quiet.notify(usize::MAX);
    }

    fn unlist_held(&self, ticket: usize) {
        let mut held = lock_std(&self.held);
        if let Some(i) = held.iter().position(|t| *t == ticket) {
            held.swap_remove(i);
        }
    }

    /// Registers a pause; returns its barrier: the ticket of the next job
    /// submitted. Jobs before it still run; it and later ones are held.
    pub(crate) fn add_pause(&self) -> usize {
        let mut barriers = lock_std(&self.pause_barriers);
        let barrier = self.core.next_ticket();
        barriers.push(barrier);
        let min = barriers.iter().copied().min().unwrap_or(usize::MAX);
        self.pause_barrier.store(min, Ordering::SeqCst);
        self.paused.fetch_add(1, Ordering::SeqCst);
        barrier
    }

    /// Ends a pause registered with [`add_pause`](Self::add_pause).
    pub(crate) fn remove_pause(&self, barrier: usize) {
        {
            let mut barriers = lock_std(&self.pause_barriers);
            if let Some(i) = barriers.iter().position(|b| *b == barrier) {
                barriers.swap_remove(i);
            }
            let min = barriers.iter().copied().min().unwrap_or(usize::MAX);
            self.pause_barrier.store(min, Ordering::SeqCst);
            self.paused.fetch_sub(1, Ordering::SeqCst);
        }
        self.unpaused.notify(usize::MAX);
    }

    /// Takes the pool's one pause guard, if no other pause holds it.
    pub(crate) fn try_hold_pause(&self) -> bool {
        self.pause_held
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Gives the pool's one pause guard back.
    pub(crate) fn release_pause(&self) {
        self.pause_held.store(0, Ordering::SeqCst);
    }

    /// Listens for the end of a pause (or the start of a stop).
    pub(crate) fn listen_unpaused(&self) -> EventListener {
        self.unpaused.listen()
    }

    /// Tries to take hold for a pause with `barrier`: every job queued
    /// before it has been taken out of the queue and has finished (none is
    /// running, none is held back by an earlier pause), and from now on no
    /// job starts. On `true` the caller owns one count of `hold_all`.
    pub(crate) fn try_take_hold(&self, barrier: usize) -> bool {
        let quiet = |s: &Shared| s.busy.load(Ordering::SeqCst) == 0 && s.queue.pops() >= barrier;
        if !quiet(self) {
            return false;
        }
        // Hold every job first, then check again: a worker that had not seen
        // the hold is counted busy by then (see the module docs).
        self.hold_all.fetch_add(1, Ordering::SeqCst);
        let earlier_held = lock_std(&self.held).iter().any(|t| *t < barrier);
        if !earlier_held && quiet(self) {
            return true;
        }
        self.release_hold();
        false
    }

    /// Gives back a count of `hold_all` and lets held workers look again.
    pub(crate) fn release_hold(&self) {
        self.hold_all.fetch_sub(1, Ordering::SeqCst);
        self.unpaused.notify(usize::MAX);
    }
}

/// The wait of a future written by hand for a condition of the pool: what
/// [`wait_until`] does, one poll at a time. The future checks its
/// condition, and while it does not hold calls [`wait`](Self::wait), which
/// listens first (the future checks again) and waits for the event after
/// (the future checks again once it is notified): no lost wake-up.
#[derive(Default)]
pub(crate) struct Listening(Option<EventListener>);

impl Listening {
    /// Listens for the event `listen` gives, or waits for the one listened
    /// to; `Ready`: check the condition again.
    pub(crate) fn wait(
        &mut self,
        cx: &mut std::task::Context<'_>,
        listen: impl FnOnce() -> EventListener,
    ) -> std::task::Poll<()> {
        use std::future::Future;
        match self.0.as_mut() {
            None => self.0 = Some(listen()),
            Some(l) => {
                if std::pin::Pin::new(l).poll(cx).is_pending() {
                    return std::task::Poll::Pending;
                }
                self.0 = None;
            }
        }
        std::task::Poll::Ready(())
    }

    /// Stops listening (the condition changed, or the wait is over).
    pub(crate) fn stop(&mut self) {
        self.0 = None;
    }
}

/// Resolves once `cond` holds, re-checked whenever `event` is notified: the
/// lost-wake-up-free loop (check, listen, check again, wait) that every wait
/// on a condition of the pool uses.
pub(crate) async fn wait_until(event: &Event, cond: impl Fn() -> bool) {
    loop {
        if cond() {
            return;
        }
        let listener = event.listen();
        if cond() {
            return;
        }
        listener.await;
    }
}

//! The state every pool clone, worker, job and handle shares: the queue, the
//! worker accounting, the lifecycle, and the conditions they wait on.
//!
//! Counts that decide who runs:
//! - `workers`: live worker futures, at most `max_workers` (a worker is
//!   reserved with a CAS *before* it is spawned).
//! - `busy`: workers about to take, or running, a job. A worker adds itself
//!   *before* it takes a job and looks at the pause; `pause` registers (and,
//!   to take hold, sets `hold_all`) *before* it looks at `busy`. With both
//!   sides SeqCst, either the worker sees the pause or the pause sees the
//!   worker: no job starts unseen by a pause.
//! - `running`: jobs started (taken out of the queue by a worker) whose
//!   handles have not resolved; `draining`: blocking closures whose handles
//!   resolved but which still run. Busy slots are `draining + running`,
//!   both halves of one word (`slots`), so a reader never counts a slot
//!   twice as it passes from a draining closure to its worker's next job.
//!   `running` is counted after `dequeued`, so a reader that reads `running`
//!   before `waiting` never sees one job in both.
//! - who searches the queue, who sleeps, and who is woken for a job: the
//!   wake-up protocol of `src/scheduler.rs` (`scheduler`).
//! - `waiting = enqueued - dequeued`: jobs in the queue that have not left
//!   it. Submitters count `enqueued` (on their own cache line); whoever takes
//!   a job out (a worker starting it, its handle cancelling it, a stop
//!   dropping it) counts `dequeued`, exactly once (see `Slot::try_start`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use event_listener::Event;

use crate::cancel::CancelToken;
use crate::cell::QueueEntry;
#[cfg(not(workerpoolxt_loom))]
use crate::deadlines::Deadlines;
use crate::error::Panic;
use crate::metrics::{Counters, Metrics};
use crate::options::Options;
use crate::runtime::{clock_hint, SharedClock, Sleep, Spawner};
use crate::scheduler::Scheduler;
use crate::sync::{Arc, AtomicU64, AtomicU8, AtomicUsize, JobQueue, Ordering, Padded};
use crate::watch::Watchers;
use crate::worker;

/// `Shared::slots`: `draining` in the high 32 bits, `running` in the low
/// 32 (each at most the live workers, far below 2³²).
const DRAINING_SHIFT: u32 = 32;
const DRAINING_ONE: u64 = 1 << DRAINING_SHIFT;
const RUNNING_MASK: u64 = DRAINING_ONE - 1;

/// Open: takes submissions.
pub(crate) const OPEN: u8 = 0;
/// Draining (`stop_wait`, or every `Pool` clone dropped): takes no
/// submission, runs what is queued, ignores pauses.
pub(crate) const DRAINING: u8 = 1;
/// Stopped (`stop`): takes no submission, drops what is queued.
pub(crate) const STOPPED: u8 = 2;

pub(crate) struct Shared {
    pub(crate) queue: JobQueue,
    pub(crate) capacity: Option<usize>,
    /// Written by submitters only.
    pub(crate) enqueued: Padded<AtomicUsize>,
    /// Written by whoever takes jobs out of the queue.
    pub(crate) dequeued: Padded<AtomicUsize>,
    pub(crate) max_workers: AtomicUsize,
    pub(crate) workers: AtomicUsize,
    /// Written by workers around every job (see the module docs).
    pub(crate) busy: Padded<AtomicUsize>,
    /// The busy slots, in one word so that a reader sees both halves at the
    /// same instant: jobs started whose handles have not resolved
    /// (`running`, the low 32 bits) and blocking closures whose handles
    /// resolved (cancel, timeout) but which still run (`draining`, the high
    /// 32 bits). As two counters, a reader could count one slot twice: a
    /// draining closure read before it returned, and its worker's next job
    /// read after it started.
    slots: Padded<AtomicU64>,
    /// Who searches the queue and who sleeps (`src/scheduler.rs`).
    pub(crate) scheduler: Scheduler,
    /// Pauses requested or held.
    pub(crate) paused: AtomicUsize,
    /// The earliest queue ticket that a live pause holds back (`usize::MAX`
    /// when none): jobs queued before a pause still run, later ones wait.
    pub(crate) pause_barrier: AtomicUsize,
    /// The barriers of the live pauses (pauses are rare: a lock is fine).
    pause_barriers: std::sync::Mutex<Vec<usize>>,
    /// Live pause guards, plus pauses checking whether they can take hold:
    /// while above zero, no job starts.
    pub(crate) hold_all: AtomicUsize,
    /// Tickets of the jobs that workers hold back (only while paused).
    held: std::sync::Mutex<Vec<usize>>,
    /// Whether a pause guard is held (pauses are taken one at a time).
    pub(crate) pause_held: AtomicU8,
    /// Stops awaited inside jobs of this pool (`Stop`): each such job's
    /// worker stays until its job ends, so those stops wait only for the
    /// other workers.
    pub(crate) stops_inside: AtomicUsize,
    pub(crate) state: AtomicU8,
    /// A job left a bounded queue.
    pub(crate) room: Event,
    /// `running` or `workers` dropped (to zero, for the waiters that care).
    pub(crate) quiet: Event,
    /// A pause ended, or the pool began to stop.
    pub(crate) unpaused: Event,
    pub(crate) counters: Counters,
    pub(crate) spawner: Spawner,
    pub(crate) clock: SharedClock,
    /// `true` when `clock` is the system clock (read without a virtual call).
    pub(crate) system_clock: bool,
    /// Jobs keep their times as nanoseconds since this instant (8 bytes
    /// instead of 16).
    pub(crate) epoch: Instant,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) default_options: Option<Options>,
    pub(crate) token: CancelToken,
    /// The workers' wakers, for cancels of running jobs (`src/watch.rs`).
    pub(crate) watchers: Watchers,
    /// The running jobs' deadlines under one timer (system clock only).
    #[cfg(not(workerpoolxt_loom))]
    pub(crate) deadlines: Option<Arc<Deadlines>>,
}

pub(crate) struct Config {
    pub(crate) max_workers: usize,
    pub(crate) capacity: Option<usize>,
    pub(crate) spawner: Spawner,
    pub(crate) clock: SharedClock,
    pub(crate) system_clock: bool,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) default_options: Option<Options>,
    pub(crate) token: CancelToken,
}

impl Shared {
    pub(crate) fn new(c: Config) -> Shared {
        let epoch = if c.system_clock {
            Instant::now()
        } else {
            c.clock.now()
        };
        Shared {
            queue: JobQueue::unbounded(),
            capacity: c.capacity,
            enqueued: Padded(AtomicUsize::new(0)),
            dequeued: Padded(AtomicUsize::new(0)),
            max_workers: AtomicUsize::new(c.max_workers),
            workers: AtomicUsize::new(0),
            busy: Padded(AtomicUsize::new(0)),
            slots: Padded(AtomicU64::new(0)),
            scheduler: Scheduler::new(),
            paused: AtomicUsize::new(0),
            pause_barrier: AtomicUsize::new(usize::MAX),
            pause_barriers: std::sync::Mutex::new(Vec::new()),
            hold_all: AtomicUsize::new(0),
            held: std::sync::Mutex::new(Vec::new()),
            pause_held: AtomicU8::new(0),
            stops_inside: AtomicUsize::new(0),
            state: AtomicU8::new(OPEN),
            room: Event::new(),
            quiet: Event::new(),
            unpaused: Event::new(),
            counters: Counters::default(),
            spawner: c.spawner,
            clock: c.clock,
            epoch,
            system_clock: c.system_clock,
            idle_timeout: c.idle_timeout,
            default_timeout: c.default_timeout,
            default_options: c.default_options,
            token: c.token,
            watchers: Watchers::default(),
            #[cfg(not(workerpoolxt_loom))]
            deadlines: c.system_clock.then(Deadlines::new),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        if self.system_clock {
            Instant::now()
        } else {
            self.clock.now()
        }
    }

    /// [`now`](Self::now), with a panic of the user's clock caught: for the
    /// places where a panic has nowhere to go (the end of a job, a stop).
    pub(crate) fn try_now(&self) -> Result<Instant, Panic> {
        if self.system_clock {
            return Ok(Instant::now());
        }
        catch_unwind(AssertUnwindSafe(|| self.clock.now())).map_err(|payload| {
            let p = Panic::of_hook("the pool's clock", &*payload);
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            p
        })
    }

    /// A sleep until `deadline` on the pool's clock.
    pub(crate) fn sleep_until(&self, deadline: Instant) -> Sleep {
        if self.system_clock {
            Sleep::Timer(async_io::Timer::at(deadline))
        } else {
            Sleep::Other(self.clock.sleep_until(deadline))
        }
    }

    /// `t` in nanoseconds since the pool's epoch (0 for earlier times).
    pub(crate) fn since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// The time in nanoseconds since the pool's epoch.
    pub(crate) fn now_ns(&self) -> u64 {
        self.since_epoch(self.now())
    }

    /// The start of a job's run, as a reading and in ns since the epoch: the
    /// worker's reading at the end of the job before, if it left one
    /// (`clock_hint`; converted already if it was this pool's), or now.
    pub(crate) fn start_time(&self) -> (Instant, u64) {
        let now = if self.system_clock {
            match clock_hint::take() {
                Some((now, ns, pool)) if pool == self.id() => return (now, ns),
                Some((now, _, _)) => now,
                None => Instant::now(),
            }
        } else {
            self.clock.now()
        };
        (now, self.since_epoch(now))
    }

    /// Leaves `now` (`ns` since the epoch) for the next job this thread
    /// starts, if the clock is the system's (another clock may not move
    /// between two readings of the same instant).
    pub(crate) fn leave_hint(&self, now: Instant, ns: u64) {
        if self.system_clock {
            clock_hint::set((now, ns, self.id()));
        }
    }

    /// This pool, for the clock hint and `current_job`.
    pub(crate) fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    pub(crate) fn state(&self) -> u8 {
        self.state.load(Ordering::SeqCst)
    }

    pub(crate) fn is_open(&self) -> bool {
        self.state() == OPEN
    }

    pub(crate) fn metrics(&self) -> Metrics {
        // `running` before `waiting`: see the module docs.
        let (running, draining) = self.running_and_draining();
        self.counters.snapshot(
            self.waiting() as u64,
            running as u64,
            draining as u64,
            || self.enqueued.load(Ordering::SeqCst) as u64,
        )
    }

    /// Busy slots: running jobs and draining closures, read at one instant,
    /// so never more than the workers that hold them (`max_workers`).
    pub(crate) fn busy_slots(&self) -> usize {
        let (running, draining) = self.running_and_draining();
        running + draining
    }

    /// `running` and `draining` (see `slots`), read at one instant.
    pub(crate) fn running_and_draining(&self) -> (usize, usize) {
        let slots = self.slots.load(Ordering::SeqCst);
        (
            (slots & RUNNING_MASK) as usize,
            (slots >> DRAINING_SHIFT) as usize,
        )
    }

    // ----- the queue -----

    /// Jobs queued and not taken out yet.
    pub(crate) fn waiting(&self) -> usize {
        // `enqueued` first: reading it before `dequeued` can only miss jobs
        // that arrive meanwhile, never count jobs that left, so the result
        // never exceeds the true count (nor a bounded queue's capacity). A
        // job counted out after the first read makes the difference
        // negative: that reads as zero.
        let queued = self.enqueued.load(Ordering::SeqCst);
        queued.saturating_sub(self.dequeued.load(Ordering::SeqCst))
    }

    /// Reserves a place in the queue and returns its ticket (the job's
    /// position in submission order), or `None` if a bounded queue is full.
    pub(crate) fn reserve_place(&self) -> Option<usize> {
        match self.capacity {
            None => Some(self.enqueued.fetch_add(1, Ordering::SeqCst)),
            Some(cap) => {
                let mut n = self.enqueued.load(Ordering::SeqCst);
                loop {
                    // `dequeued` only grows meanwhile: the check errs on the
                    // side of "full", never past the capacity.
                    // `n` may be older than `dequeued`: never below zero.
                    if n.saturating_sub(self.dequeued.load(Ordering::SeqCst)) >= cap {
                        return None;
                    }
                    match self.enqueued.compare_exchange_weak(
                        n,
                        n + 1,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    ) {
                        Ok(_) => return Some(n),
                        Err(actual) => n = actual,
                    }
                }
            }
        }
    }

    /// A job left the queue (started, cancelled or dropped unstarted).
    pub(crate) fn left_queue(&self) {
        self.dequeued.fetch_add(1, Ordering::SeqCst);
        if self.capacity.is_some() {
            self.room.notify_additional(1);
        }
    }

    /// Pushes a task whose place is reserved; gives it back if the pool
    /// stopped meanwhile. Finds a worker for it if no worker searches (see
    /// `src/scheduler.rs`).
    pub(crate) fn push(self: &Arc<Self>, task: QueueEntry) -> Result<(), QueueEntry> {
        self.queue.push(task)?;
        if self.scheduler.nobody_searches() {
            self.find_worker();
        }
        Ok(())
    }

    /// A searching worker stops searching (it took a job, or it goes to
    /// sleep, or it leaves). If it was the last searcher and jobs are still
    /// queued, it hands them over: another worker is woken or started for
    /// them. `true` if one was.
    pub(crate) fn stop_searching(self: &Arc<Self>) -> bool {
        self.scheduler.stop_searching() && !self.queue.is_empty() && self.find_worker()
    }

    /// Gets a worker to the queue: wakes a sleeping one, or starts one if
    /// there is room under `max_workers`. `true` if one was woken or
    /// started; either searches from then on.
    pub(crate) fn find_worker(self: &Arc<Self>) -> bool {
        self.scheduler.wake_one() || self.try_spawn_worker()
    }

    // ----- workers -----

    /// Reserves a worker slot if there is room under `max_workers`.
    pub(crate) fn try_reserve_worker(&self) -> bool {
        let mut n = self.workers.load(Ordering::SeqCst);
        loop {
            if n >= self.max_workers.load(Ordering::SeqCst) {
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

    /// Starts a worker if there is room under `max_workers`; `false` if
    /// there was none or the spawner panicked.
    pub(crate) fn try_spawn_worker(self: &Arc<Self>) -> bool {
        self.try_reserve_worker() && self.spawn_reserved()
    }

    /// Starts a worker for a slot already reserved; `false` if the spawner
    /// panicked.
    ///
    /// The worker's future owns the reservation from here on: it gives it
    /// back when it ends or is dropped, polled or not, so a spawner that
    /// panics (dropping the future, or after spawning it) never gives it
    /// back twice. Its panic is caught here: the spawner runs on behalf of
    /// whichever thread happened to submit, stop or resize, and a panic
    /// there must not unwind through the pool's bookkeeping.
    fn spawn_reserved(self: &Arc<Self>) -> bool {
        let worker = worker::new(self.clone());
        match catch_unwind(AssertUnwindSafe(|| (self.spawner)(worker))) {
            Ok(()) => true,
            Err(payload) => {
                let fault = Panic::of_hook("the pool's spawner", &*payload);
                let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                self.spawner_failed(&fault);
                false
            }
        }
    }

    /// The spawner panicked. While no worker is left to run them, the
    /// queued jobs could only wait for the next submit that gets one; they
    /// end `Panicked` with the spawner's panic instead (the pool stays open,
    /// and the next submit tries the spawner again).
    fn spawner_failed(&self, fault: &Panic) {
        while self.workers.load(Ordering::SeqCst) == 0 {
            match self.queue.pop() {
                Ok(entry) => entry.fail(fault.clone()),
                Err(_) => break,
            }
        }
    }

    /// Starts workers for the queued jobs, up to `max_workers`.
    pub(crate) fn spawn_for_queue(self: &Arc<Self>) {
        // Busy workers do not count: only sleeping ones can take a job now.
        let mut needed = self.waiting().saturating_sub(self.scheduler.idle());
        while needed > 0 && self.try_reserve_worker() {
            // Looked at after reserving: a worker that took the last job and
            // left meanwhile freed the slot that was just reserved, and no
            // worker is started for an empty queue.
            if self.queue.is_empty() {
                self.worker_gone();
                break;
            }
            if !self.spawn_reserved() {
                break;
            }
            needed -= 1;
        }
        if self.scheduler.idle() > 0 {
            self.scheduler.wake_all();
        }
    }

    /// A worker ended (its slot is free). `true` if it was the last one.
    pub(crate) fn worker_gone(&self) -> bool {
        let last = self.workers.fetch_sub(1, Ordering::SeqCst) == 1;
        // Every worker that leaves is news to a stop awaited inside a job
        // (see `stops_resolved`); the last one to every stop.
        self.quiet.notify(usize::MAX);
        last
    }

    /// Ends every queued job unstarted: dropping an entry resolves its
    /// handle `Stopped`.
    pub(crate) fn drop_queued(&self) {
        while let Ok(task) = self.queue.pop() {
            drop(task);
        }
    }

    /// A worker is done with a job (or found none, or holds one back).
    pub(crate) fn busy_done(&self) {
        let was = self.busy.fetch_sub(1, Ordering::SeqCst);
        if was == 1 && self.paused.load(Ordering::SeqCst) > 0 {
            self.quiet.notify(usize::MAX);
        }
    }

    /// The whole ticket of a queued job from the low 32 bits its cell keeps
    /// (`Slot::ticket`): the latest ticket handed out, less the distance
    /// between the two in 32 bits. Exact while fewer than 2³² jobs were
    /// submitted since this one, which holds for any job still queued or
    /// held by a pause (those later jobs are queued behind it, and 2³² of
    /// them would need hundreds of GiB).
    pub(crate) fn full_ticket(&self, low: u32) -> usize {
        let latest = self.enqueued.load(Ordering::SeqCst).wrapping_sub(1);
        latest.wrapping_sub((latest as u32).wrapping_sub(low) as usize)
    }

    /// Whether a pause holds back the job with queue ticket `ticket`: a
    /// live guard (or a pause taking hold) holds every job, a pending pause
    /// the jobs submitted from its call on.
    pub(crate) fn holds_back(&self, ticket: usize) -> bool {
        self.paused.load(Ordering::SeqCst) > 0
            && (self.hold_all.load(Ordering::SeqCst) > 0
                || ticket >= self.pause_barrier.load(Ordering::SeqCst))
            && self.is_open()
    }

    /// A worker holds back the job with `ticket` (rare: only while paused).
    pub(crate) fn hold(&self, ticket: usize) {
        crate::sync::lock_std(&self.held).push(ticket);
        self.busy_done();
    }

    /// A worker's held job is released: counted busy again *before* it is
    /// no longer listed as held, so a pause never misses it.
    pub(crate) fn unhold(&self, ticket: usize) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        let mut held = crate::sync::lock_std(&self.held);
        if let Some(i) = held.iter().position(|t| *t == ticket) {
            held.swap_remove(i);
        }
    }

    /// A held job's worker is gone (dropped while it waited): the job is no
    /// longer held, and a pause that waited for it looks again.
    pub(crate) fn forget_held(&self, ticket: usize) {
        {
            let mut held = crate::sync::lock_std(&self.held);
            if let Some(i) = held.iter().position(|t| *t == ticket) {
                held.swap_remove(i);
            }
        }
        self.quiet.notify(usize::MAX);
    }

    /// A job was taken out of the queue by a worker and started.
    pub(crate) fn job_started(&self) {
        self.slots.fetch_add(1, Ordering::SeqCst);
    }

    /// A started job is about to resolve its handle (its async body is
    /// gone).
    pub(crate) fn job_ended(&self) {
        self.slots.fetch_sub(1, Ordering::SeqCst);
    }

    /// An interrupted blocking closure resolves its handle but keeps its
    /// slot until it returns: out of `running` and into `draining`, in one
    /// step.
    pub(crate) fn drain_started(&self) {
        self.slots.fetch_add(DRAINING_ONE - 1, Ordering::SeqCst);
    }

    /// A draining closure returned (or its task was dropped): its slot is
    /// free.
    pub(crate) fn drain_ended(&self) {
        self.slots.fetch_sub(DRAINING_ONE, Ordering::SeqCst);
    }

    /// Registers a pause; returns its barrier: the ticket of the next job
    /// submitted. Jobs before it still run; it and later ones are held.
    pub(crate) fn add_pause(&self) -> usize {
        let mut barriers = crate::sync::lock_std(&self.pause_barriers);
        let barrier = self.enqueued.load(Ordering::SeqCst);
        barriers.push(barrier);
        let min = barriers.iter().copied().min().unwrap_or(usize::MAX);
        self.pause_barrier.store(min, Ordering::SeqCst);
        self.paused.fetch_add(1, Ordering::SeqCst);
        barrier
    }

    /// Ends a pause registered with [`add_pause`](Self::add_pause).
    pub(crate) fn remove_pause(&self, barrier: usize) {
        {
            let mut barriers = crate::sync::lock_std(&self.pause_barriers);
            if let Some(i) = barriers.iter().position(|b| *b == barrier) {
                barriers.swap_remove(i);
            }
            let min = barriers.iter().copied().min().unwrap_or(usize::MAX);
            self.pause_barrier.store(min, Ordering::SeqCst);
            self.paused.fetch_sub(1, Ordering::SeqCst);
        }
        self.unpaused.notify(usize::MAX);
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
        let earlier_held = crate::sync::lock_std(&self.held)
            .iter()
            .any(|t| *t < barrier);
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

    /// Whether a worker should leave because the pool shrank.
    pub(crate) fn too_many_workers(&self) -> bool {
        self.workers.load(Ordering::SeqCst) > self.max_workers.load(Ordering::SeqCst)
    }

    /// Leaves if the pool shrank below the live workers; `true` if this
    /// worker's slot was given up.
    pub(crate) fn try_retire(&self) -> bool {
        let mut n = self.workers.load(Ordering::SeqCst);
        loop {
            if n <= self.max_workers.load(Ordering::SeqCst) {
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

    // ----- lifecycle -----

    /// Moves to `DRAINING` or `STOPPED` (never back). Returns the state before.
    pub(crate) fn begin_stop(self: &Arc<Self>, to: u8) -> u8 {
        let before = self.state.fetch_max(to, Ordering::SeqCst);
        self.queue.close();
        if to == STOPPED {
            // Queued jobs never start; dropping a task resolves its handle.
            self.drop_queued();
        }
        // Sleeping and paused workers look again; room waiters give up.
        self.scheduler.wake_all();
        self.unpaused.notify(usize::MAX);
        self.room.notify(usize::MAX);
        self.spawn_for_queue();
        before
    }

    /// Whether a stop has nothing left to wait for: no worker is left, or,
    /// for a stop awaited inside jobs of this pool (`inside`), only the
    /// workers of the jobs that await stops inside (`stops_inside`), which
    /// cannot leave before their own jobs end.
    pub(crate) fn stops_resolved(&self, inside: bool) -> bool {
        let workers = self.workers.load(Ordering::SeqCst);
        workers == 0 || (inside && workers <= self.stops_inside.load(Ordering::SeqCst))
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

#[cfg(all(test, not(workerpoolxt_loom)))]
mod tests {
    use crate::sync::Ordering;
    use crate::Pool;

    /// The 32 bits a cell keeps of its ticket give the whole ticket back,
    /// across the 2³² boundary too, for any job behind the latest one by
    /// less than 2³².
    #[test]
    fn full_tickets_come_back_from_their_low_bits() {
        let pool = Pool::builder().spawner(drop).build();
        let shared = pool.shared();
        for latest in [0usize, 5, (1 << 32) - 1, 1 << 32, (1 << 32) + 3, 7 << 40] {
            shared.enqueued.store(latest + 1, Ordering::SeqCst);
            for behind in [0usize, 1, 4, 1 << 20, (1 << 32) - 1] {
                let Some(ticket) = latest.checked_sub(behind) else {
                    continue;
                };
                assert_eq!(
                    shared.full_ticket(ticket as u32),
                    ticket,
                    "latest {latest}, ticket {ticket}"
                );
            }
        }
    }
}

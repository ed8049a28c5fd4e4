//! What a job and its handle share with the pool, apart from the queue and
//! the workers: the pool's clock, its ledger (how many jobs are queued,
//! running, draining and finished: the metrics), the defaults a job starts
//! with, and where a running job is woken from (its worker's watch, the
//! pool's deadline timer), and its rate limit.
//!
//! Every job's header holds the pool's `Core` (`src/header.rs`), so a
//! handle can still read and count after the pool is gone.
//!
//! The ledger's counts:
//! - `waiting = enqueued - dequeued`: jobs in the queue that have not left
//!   it. Submitters count `enqueued` (on their own cache line) as they
//!   reserve a place; whoever takes a job out (a worker starting it, its
//!   handle cancelling it, a stop dropping it) counts `dequeued`, exactly
//!   once (see `Header::try_start`).
//! - `running`: jobs started whose handles have not resolved; `draining`:
//!   blocking closures whose handles resolved but which still run. Busy
//!   slots are `draining + running`, both halves of one word (`slots`), so
//!   a reader never counts a slot twice as it passes from a draining
//!   closure to its worker's next job. `running` is counted after
//!   `dequeued`, so a reader that reads `running` before `waiting` never
//!   sees one job in both.
//! - one final counter per way a job ends (`metrics::End`), counted before
//!   the job leaves its gauge, so `submitted = waiting + running + finished`
//!   never runs short.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener};

use crate::cancel::CancelToken;
#[cfg(not(workerpoolxt_loom))]
use crate::deadlines::Deadlines;
use crate::error::Panic;
use crate::metrics::{Counters, End, Metrics};
use crate::options::Options;
use crate::rate::RateLimit;
use crate::runtime::{clock_hint, SharedClock, Sleep};
#[cfg(not(workerpoolxt_loom))]
use crate::sync::Arc;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering, Padded};
use crate::watch::Watchers;

/// `Core::slots`: `draining` in the high 32 bits, `running` in the low 32
/// (each at most the live workers, far below 2³²).
const DRAINING_SHIFT: u32 = 32;
const DRAINING_ONE: u64 = 1 << DRAINING_SHIFT;
const RUNNING_MASK: u64 = DRAINING_ONE - 1;

pub(crate) struct Core {
    clock: SharedClock,
    /// `true` when `clock` is the system clock (read without a virtual call).
    system_clock: bool,
    /// Jobs keep their times as nanoseconds since this instant (8 bytes
    /// instead of 16).
    epoch: Instant,
    /// A bounded queue's capacity.
    capacity: Option<usize>,
    /// Places reserved in the queue: written by submitters only.
    enqueued: Padded<AtomicUsize>,
    /// Jobs taken out of the queue: written by whoever takes one out.
    dequeued: Padded<AtomicUsize>,
    /// The busy slots (see the module docs).
    slots: Padded<AtomicU64>,
    counters: Counters,
    /// A job left a bounded queue (room for a waiting submit).
    room: Event,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) default_options: Option<Options>,
    /// The pool's token: the token of every job without one of its own.
    pub(crate) token: CancelToken,
    /// The workers' wakers, for cancels of running jobs (`src/watch.rs`).
    pub(crate) watchers: Watchers,
    /// A shutdown's grace ended: every running job is cancelled (set once).
    aborted: AtomicBool,
    /// The jobs that ended cancelled by it.
    aborted_jobs: AtomicU64,
    /// At most `n` job starts in any window of `per` (`Builder::rate_limit`).
    pub(crate) rate: Option<RateLimit>,
    /// The pool stopped (set once, only with a rate limit): a job that
    /// waits for its start time ends `Stopped` (see `stop_rate_waits`).
    rate_stopped: AtomicBool,
    /// The running jobs' deadlines under one timer (system clock only).
    #[cfg(not(workerpoolxt_loom))]
    pub(crate) deadlines: Option<Arc<Deadlines>>,
}

/// What a [`Core`] is made from (the builder's settings).
pub(crate) struct CoreConfig {
    pub(crate) clock: SharedClock,
    pub(crate) system_clock: bool,
    pub(crate) capacity: Option<usize>,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) default_options: Option<Options>,
    pub(crate) token: CancelToken,
    /// `(n, per)`: at most `n` starts in any window of `per`.
    pub(crate) rate: Option<(usize, Duration)>,
}

impl Core {
    pub(crate) fn new(c: CoreConfig) -> Core {
        let epoch = if c.system_clock {
            Instant::now()
        } else {
            c.clock.now()
        };
        Core {
            clock: c.clock,
            system_clock: c.system_clock,
            epoch,
            capacity: c.capacity,
            enqueued: Padded(AtomicUsize::new(0)),
            dequeued: Padded(AtomicUsize::new(0)),
            slots: Padded(AtomicU64::new(0)),
            counters: Counters::default(),
            room: Event::new(),
            default_timeout: c.default_timeout,
            default_options: c.default_options,
            token: c.token,
            watchers: Watchers::default(),
            aborted: AtomicBool::new(false),
            aborted_jobs: AtomicU64::new(0),
            rate: c.rate.map(|(n, per)| RateLimit::new(n, per)),
            rate_stopped: AtomicBool::new(false),
            #[cfg(not(workerpoolxt_loom))]
            deadlines: c.system_clock.then(Deadlines::new),
        }
    }

    /// The pool (this core's address): for the clock hint and
    /// `current_job`.
    pub(crate) fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    // ----- the clock -----

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
        catch_unwind(AssertUnwindSafe(|| self.clock.now()))
            .map_err(|payload| Panic::caught_in("the pool's clock", payload))
    }

    /// A sleep for `duration` from now on the pool's clock; one too long
    /// to express sleeps for ever.
    pub(crate) fn sleep_for(&self, duration: Duration) -> Sleep {
        self.sleep_until_or_never(self.now().checked_add(duration))
    }

    /// A sleep until `at` on the pool's clock; `None` (a time too far to
    /// express) sleeps for ever.
    pub(crate) fn sleep_until_or_never(&self, at: Option<Instant>) -> Sleep {
        match at {
            Some(at) => self.sleep_until(at),
            None => Sleep::Other(Box::pin(std::future::pending())),
        }
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

    // ----- the ledger -----

    /// Reserves a place in the queue and returns its ticket (the job's
    /// position in submission order), or `None` if a bounded queue is full.
    pub(crate) fn reserve_place(&self) -> Option<usize> {
        let Some(cap) = self.capacity else {
            return Some(self.enqueued.fetch_add(1, Ordering::SeqCst));
        };
        let mut n = self.enqueued.load(Ordering::SeqCst);
        loop {
            // `dequeued` only grows meanwhile: the check errs on the side of
            // "full", never past the capacity. `n` may be older than
            // `dequeued`: never below zero.
            if n.saturating_sub(self.dequeued.load(Ordering::SeqCst)) >= cap {
                return None;
            }
            match self
                .enqueued
                .compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some(n),
                Err(actual) => n = actual,
            }
        }
    }

    /// A place whatever the capacity: for a sub-pool's worker
    /// (`Shared::forward`), whose job the sub-pool admitted already, and
    /// for a submit that was refused (a stopped pool, a full queue) but
    /// returns a handle: its job id. The refused one is counted as queued,
    /// and leaves the queue as its refusal is published
    /// ([`Leaves::Waiting`](crate::header::Leaves)), as a job cancelled in
    /// the queue would: the ledger stays exact. Meanwhile `waiting` may read
    /// one more than the queue holds (never more than a bounded queue's
    /// capacity, see [`waiting`](Self::waiting)), and a bounded queue may
    /// refuse a concurrent submit as full, which it was a moment before.
    pub(crate) fn take_ticket(&self) -> usize {
        self.enqueued.fetch_add(1, Ordering::SeqCst)
    }

    /// The settings of a sub-pool's core: this pool's clock and defaults,
    /// and a child of its token (cancelling this pool's token cancels the
    /// sub-pool's jobs too); an unbounded queue, no rate limit of its own.
    pub(crate) fn sub_config(&self) -> CoreConfig {
        CoreConfig {
            clock: self.clock.clone(),
            system_clock: self.system_clock,
            capacity: None,
            default_timeout: self.default_timeout,
            default_options: self.default_options.clone(),
            token: self.token.child(),
            // This pool's limit applies to the sub-pool's jobs as its workers
            // start here, one job each.
            rate: None,
        }
    }

    /// The ticket the next place reserved will get.
    pub(crate) fn next_ticket(&self) -> usize {
        self.enqueued.load(Ordering::SeqCst)
    }

    /// The whole ticket of a queued job from the low 32 bits its header
    /// keeps (`Header::ticket`): the latest ticket handed out, less the
    /// distance between the two in 32 bits. Exact while fewer than 2³² jobs
    /// were submitted since this one, which holds for any job still queued
    /// or held by a pause (those later jobs are queued behind it, and 2³² of
    /// them would need hundreds of GiB).
    pub(crate) fn full_ticket(&self, low: u32) -> usize {
        let latest = self.next_ticket().wrapping_sub(1);
        latest.wrapping_sub((latest as u32).wrapping_sub(low) as usize)
    }

    /// Jobs queued and not taken out yet.
    pub(crate) fn waiting(&self) -> usize {
        // `enqueued` first: reading it before `dequeued` can only miss jobs
        // that arrive meanwhile, never count jobs that left, so the result
        // never exceeds the true count (nor a bounded queue's capacity). A
        // job counted out after the first read makes the difference
        // negative: that reads as zero.
        let queued = self.enqueued.load(Ordering::SeqCst);
        let waiting = queued.saturating_sub(self.dequeued.load(Ordering::SeqCst));
        // A refused submit's ticket counts for a moment (`take_ticket`).
        self.capacity.map_or(waiting, |cap| waiting.min(cap))
    }

    // ----- a shutdown's cancel -----

    /// Cancels every running job (a shutdown's grace ended): each one's
    /// worker is woken and finds it aborted (the flag is set before the
    /// wake-ups, and a worker registers before it looks: see `src/watch.rs`).
    pub(crate) fn abort_running(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.watchers.wake_all();
    }

    /// Whether running jobs are to be cancelled (`abort_running`).
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    /// A job ended cancelled by `abort_running`.
    pub(crate) fn count_aborted(&self) {
        self.aborted_jobs.fetch_add(1, Ordering::SeqCst);
    }

    /// The jobs that ended cancelled by `abort_running`.
    pub(crate) fn aborted_jobs(&self) -> u64 {
        self.aborted_jobs.load(Ordering::SeqCst)
    }

    // ----- the rate limit -----

    /// The pool stops: every job that waits for its start time under the
    /// rate limit (a worker holds it, out of the queue's reach) ends
    /// `Stopped` now, not at that time. Its worker is woken and finds the
    /// flag (set before the wake-ups; a waiting job registers with its
    /// worker's watch before it looks, see `src/watch.rs`). Nothing without
    /// a rate limit.
    pub(crate) fn stop_rate_waits(&self) {
        if self.rate.is_some() {
            self.rate_stopped.store(true, Ordering::SeqCst);
            self.watchers.wake_all();
        }
    }

    /// Whether jobs that wait for their start time are to end `Stopped`.
    pub(crate) fn rate_waits_stopped(&self) -> bool {
        self.rate_stopped.load(Ordering::SeqCst)
    }

    /// A job that claimed its start at `at` ends without starting: its
    /// time goes back to the rate limit, for the next job.
    pub(crate) fn refund_start(&self, at: Option<Instant>) {
        if let (Some(rate), Some(at)) = (&self.rate, at) {
            rate.refund(at);
        }
    }

    /// The job with queue ticket `ticket`, which waited for its start time,
    /// ends without starting: its time goes back to the rate limit.
    pub(crate) fn withdraw_start(&self, ticket: usize) {
        if let Some(rate) = &self.rate {
            rate.withdraw(ticket);
        }
    }

    // ----- the ledger (continued) -----

    /// A job left the queue (started, cancelled or dropped unstarted).
    pub(crate) fn left_queue(&self) {
        self.dequeued.fetch_add(1, Ordering::SeqCst);
        if self.capacity.is_some() {
            self.room.notify_additional(1);
        }
    }

    /// Listens for room in a bounded queue (a job left it, or the pool
    /// stops).
    pub(crate) fn listen_for_room(&self) -> EventListener {
        self.room.listen()
    }

    /// Wakes every submit that waits for room (the pool stops).
    pub(crate) fn no_more_room(&self) {
        self.room.notify(usize::MAX);
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

    /// `running` and `draining` (see `slots`), read at one instant.
    pub(crate) fn running_and_draining(&self) -> (usize, usize) {
        let slots = self.slots.load(Ordering::SeqCst);
        (
            (slots & RUNNING_MASK) as usize,
            (slots >> DRAINING_SHIFT) as usize,
        )
    }

    /// Busy slots: running jobs and draining closures, read at one instant,
    /// so never more than the workers that hold them (`max_workers`).
    pub(crate) fn busy_slots(&self) -> usize {
        let (running, draining) = self.running_and_draining();
        running + draining
    }

    /// A job ended this way (its final counter).
    pub(crate) fn count(&self, end: End) {
        self.counters.count(end);
    }

    /// A submission was refused without taking a ticket (a `try_submit*`
    /// that gives its job back).
    pub(crate) fn count_refused(&self) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A job starts an attempt after its first.
    pub(crate) fn count_retry(&self) {
        self.counters.retried.fetch_add(1, Ordering::Relaxed);
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
}

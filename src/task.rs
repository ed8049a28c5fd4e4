//! One job on its way through the pool: the future a worker runs for it.
//!
//! A [`Task`] is what sits in the queue. Its first poll takes it out of the
//! queue for good (or finds it cancelled there), checks its token and
//! deadline, then runs attempts of its [`Body`] until one succeeds, the
//! retries run out, or it is interrupted (cancel, token, deadline). It
//! decides its outcome exactly once, including when it is dropped unstarted
//! (a stop) or mid-run (an executor shutting down), and its cell publishes
//! that outcome to the handle (`src/cell.rs`).
//!
//! The order that makes the pool's guarantees hold:
//! - an async attempt that is interrupted is **dropped before** the handle
//!   resolves, so `Cancelled`/`TimedOut` means its destructors have run;
//! - a blocking attempt that is interrupted resolves the handle at once and
//!   is then awaited to its end (`Draining`), so the worker (the slot) stays
//!   busy until the closure returns;
//! - no attempt starts after the handle has resolved;
//! - the whole task (the body, what it captured, its timers) is dropped
//!   before the handle resolves, except for the interrupted blocking closure
//!   above and a job cancelled in the queue by its handle (resolved at once,
//!   dropped when a worker reaches it or the pool stops): `src/cell.rs`
//!   publishes a finished job's result only after the task is gone.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::attempt::{Attempt, AttemptStore};
use crate::body::Body;
use crate::cancel::{CancelToken, Cancelled};
use crate::context::{JobContext, JobMeta};
use crate::error::{JobError, Panic};
use crate::header::{Header, Leaves, Record};
use crate::id::JobId;
use crate::metrics::End;
use crate::rate::RateLimit;
use crate::runtime::Sleep;
use crate::state::{ErrorCode, Start};
use crate::sync::Arc;
use crate::trace::Trace;
use crate::view::WorkerJob;
use crate::watch::Watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// In the queue, never polled.
    Queued,
    /// Taken out of the queue to start (its worker won it), not yet counted
    /// as running: only seen by a fault in the middle of the start.
    Starting,
    /// An attempt is running.
    Running,
    /// Between attempts, waiting out the backoff.
    Backoff,
    /// A blocking attempt ran past its attempt timeout and the job has
    /// attempts left: the closure has not returned yet. The next attempt
    /// waits for it (it holds the job's slot).
    Abandoned,
    /// Interrupted blocking closure: the closure has not returned yet. The
    /// handle has resolved, unless a fault is waiting for the closure's end
    /// (`Supervision::fault`).
    Draining,
    /// Finished: its outcome is decided (and published once the task is
    /// dropped, unless it was already).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    Cancelled,
    /// A shutdown's grace ended (`Core::abort_running`): a cancel, counted
    /// apart for its report.
    Aborted,
    TimedOut,
    /// The running attempt passed its own limit (`Job::attempt_timeout`).
    AttemptTimedOut,
}

impl Interrupt {
    fn into_error<E>(self) -> (JobError<E>, End) {
        match self {
            Interrupt::Cancelled | Interrupt::Aborted => (JobError::Cancelled, End::Cancelled),
            Interrupt::TimedOut | Interrupt::AttemptTimedOut => (JobError::TimedOut, End::TimedOut),
        }
    }
}

/// Why the last attempt gave no value, when the job may try again.
enum Last<E> {
    Failed(E),
    TimedOut,
}

/// The task's attempt, from its projection: `Pin<&mut Option<_>>` as
/// [`Attempt`] (the flag and the store are only changed through it).
macro_rules! attempt {
    ($this:expr) => {{
        #[allow(unsafe_code)]
        // SAFETY: `has_attempt` is the flag of `attempt`, kept by `Attempt`
        // alone (set in `Task::new` from the store's own answer).
        unsafe {
            Attempt::new(&mut *$this.has_attempt, $this.attempt.as_mut())
        }
    }};
}

pin_project! {
    /// A queued job and, once started, its run. See the module docs.
    #[project = TaskProj]
    pub(crate) struct Task<B: Body> {
        body: B,
        phase: Phase,
        // Counted in `running` (`Core::slots`): from its start until its
        // outcome is decided (or it moves to `draining`).
        counted_running: bool,
        deadline_passed: bool,
        // Whether `attempt` holds one (see `src/attempt.rs`).
        has_attempt: bool,
        attempts: u32,
        // First start, in ns since the pool's epoch.
        started: u64,
        // What only some jobs need (a deadline, a context, a wait): boxed,
        // so that a plain queued job stays small.
        supervision: Option<Box<Supervision>>,
        trace: Trace,
        #[pin]
        attempt: AttemptStore<B::Attempt>,
    }

    impl<B: Body> PinnedDrop for Task<B> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            attempt!(this).drop_in_place();
        }
    }
}

/// The part of a task that plain submits that finish at once never need.
#[derive(Default)]
struct Supervision {
    deadline: Option<Instant>,
    /// The clock reading that found the deadline passed, if one did.
    expired_at: Option<Instant>,
    deadline_wait: Option<DeadlineWait>,
    /// The running attempt's own deadline (`Job::attempt_timeout`), and
    /// its wait; cleared once the attempt ends.
    attempt_deadline: Option<Instant>,
    attempt_wait: Option<DeadlineWait>,
    token_wait: Option<Cancelled>,
    backoff_sleep: Option<Sleep>,
    ctx: Option<JobContext>,
    /// The wait for the context's own token (`JobContext::token`), which
    /// cancels the job too.
    ctx_wait: Option<Cancelled>,
    /// A panic of user code outside the attempt (a timer) while a blocking
    /// closure ran: the job ends `Panicked` with it once the closure returns.
    fault: Option<Panic>,
    /// The start time the job reserved under the pool's rate limit, while
    /// it waits for it (still queued); `None` once it leaves the queue.
    turn: Option<Box<Turn>>,
}

/// A queued job's wait for its start time under the rate limit
/// (`src/rate.rs`).
struct Turn {
    /// The job's queue ticket: its place in the rate limit's order.
    ticket: usize,
    /// The time reserved, as last read (`None`: none can be, it waits for
    /// ever); it only ever moves later (see `src/rate.rs`).
    at: Option<Instant>,
    /// Until the earlier of `at` and the job's own deadline.
    sleep: Option<Sleep>,
}

/// What a worker keeps from one job to the next (one pool's worker: it is
/// never used with the jobs of another pool).
#[derive(Default)]
pub(crate) struct WorkerLocal {
    /// The wait for the pool's token, shared by the jobs of this worker that
    /// use it: registered once with the token, not once per job that waits.
    pool_token: Option<Cancelled>,
    /// Where a handle's cancel wakes the job this worker runs (see
    /// `src/watch.rs`).
    watch: Option<Arc<Watch>>,
    /// Where this worker lists the job it holds, for `Pool::jobs` (see
    /// `src/view.rs`); `None` for a job driven by hand (tests).
    job: Option<Arc<WorkerJob>>,
}

impl WorkerLocal {
    /// The state of a worker that lists its jobs in `job`.
    pub(crate) fn listed_in(job: Arc<WorkerJob>) -> WorkerLocal {
        WorkerLocal {
            job: Some(job),
            ..WorkerLocal::default()
        }
    }

    /// The worker takes the job of `header` (it holds its entry).
    pub(crate) fn hold(&self, header: &Header) {
        if let Some(j) = &self.job {
            j.hold(header);
        }
    }

    /// The worker lets its job go; called before the job's entry gives its
    /// cell up (`src/view.rs`, rule 1).
    #[inline]
    pub(crate) fn let_go(&self) {
        if let Some(j) = &self.job {
            j.let_go();
        }
    }

    /// The held job starts at `ns`, its first attempt next.
    fn note_start(&self, ns: u64) {
        if let Some(j) = &self.job {
            j.started(ns);
            j.attempt(1);
        }
    }

    fn note_attempt(&self, n: u32) {
        if let Some(j) = &self.job {
            j.attempt(n);
        }
    }

    fn note_draining(&self, header: &Header, n: u32) {
        if let Some(j) = &self.job {
            j.draining(header.ticket(), n);
        }
    }
}

/// A job that is done, with a result to publish once its task is dropped
/// (see `src/cell.rs`). `None` instead if it was published already (a
/// drained blocking closure, a job cancelled in the queue).
pub(crate) struct Finished<B: Body> {
    pub(crate) result: Result<B::Output, JobError<B::Error>>,
    pub(crate) record: Record,
    pub(crate) how: End,
    /// The gauge it leaves once it is published.
    pub(crate) leaves: Leaves,
}

impl<B: Body> Finished<B> {
    /// The code of a result that carries nothing (published without being
    /// stored); `None` for a value or an error that carries one.
    pub(crate) fn code(&self) -> Option<ErrorCode> {
        self.result.as_ref().err().and_then(ErrorCode::of)
    }

    /// A job that leaves the queue unstarted, now.
    fn unstarted(header: &Header, error: JobError<B::Error>, how: End) -> Self {
        Finished {
            result: Err(error),
            record: header.unstarted_record(),
            how,
            leaves: Leaves::Waiting,
        }
    }
}

/// How far a poll got: `Ready` once the task is done for good.
pub(crate) type Step<B> = Poll<Option<Finished<B>>>;

/// How a running job waits for its deadline.
enum DeadlineWait {
    /// Its own sleep on the pool's clock.
    Sleep(Sleep),
    /// A place among the pool's deadlines, under one timer (system clock).
    #[cfg(not(workerpoolxt_loom))]
    Registered(crate::deadlines::Registration),
}

fn supervision(e: &mut Option<Box<Supervision>>) -> &mut Supervision {
    e.get_or_insert_with(Default::default)
}

/// The deadline of a job's run that starts `now`: its own deadline or
/// timeout (the earlier of the two), which replaces the pool's default
/// timeout.
fn run_deadline(
    meta: Option<&JobMeta>,
    default_timeout: Option<Duration>,
    now: Instant,
) -> Option<Instant> {
    match meta {
        Some(m) if m.timeout.is_some() || m.deadline.is_some() => {
            let from_timeout = m.timeout.and_then(|t| now.checked_add(t));
            match (from_timeout, m.deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        _ => default_timeout.and_then(|t| now.checked_add(t)),
    }
}

impl<B: Body> Task<B> {
    /// A task for `body`; `first` is the first attempt if it exists already
    /// (a submitted future).
    pub(crate) fn new(body: B, first: Option<B::Attempt>) -> Self {
        let (has_attempt, attempt) = AttemptStore::new(first);
        Task {
            body,
            phase: Phase::Queued,
            counted_running: false,
            deadline_passed: false,
            attempts: 0,
            started: 0,
            supervision: None,
            trace: Trace::none(),
            has_attempt,
            attempt,
        }
    }

    /// The token that cancels this job: its own, or the pool's.
    fn token<'a>(body: &'a B, header: &'a Header) -> &'a CancelToken {
        match body.meta().and_then(|m| m.token.as_ref()) {
            Some(t) => t,
            None => &header.core.token,
        }
    }

    /// Ends a task that will not be polled again: dropped from the queue
    /// unstarted (a stop, a refused push, a dropped executor), or mid-run
    /// (its worker's executor went away). Drops the body and returns the
    /// outcome if none was decided yet; the cell publishes it once the whole
    /// task is dropped (`TaskCell::finish`).
    ///
    /// `fault` is why a job that had not started ends (`Panicked`), if not
    /// `Stopped`: the spawner panicked and no worker is left to run it.
    pub(crate) fn abort(
        self: Pin<&mut Self>,
        header: &Header,
        fault: Option<Panic>,
    ) -> Option<Finished<B>> {
        let mut this = self.project();
        let (error, how) = match fault {
            Some(p) => (JobError::Panicked(p), End::Panicked),
            None => (JobError::Stopped, End::Stopped),
        };
        match *this.phase {
            Phase::Queued => {
                // Dropped unstarted: a stop, a refused push, or a dropped
                // executor. The job never runs; its handle learns why, and
                // a start time it waited for goes to the next job.
                Self::give_turn_back(&mut this, header);
                if header.try_start() == Start::Won {
                    // The unstarted future goes first (the rest of the task
                    // right after), then the handle resolves.
                    let _ = attempt!(this).clear();
                    return Some(Finished::unstarted(header, error, how));
                }
                None
            }
            Phase::Starting => {
                let _ = attempt!(this).clear();
                Some(Finished::unstarted(header, error, how))
            }
            Phase::Running | Phase::Backoff | Phase::Abandoned => {
                // Dropped mid-run: only when the executor running the worker
                // goes away. Body first, then the handle.
                let dropped = attempt!(this).clear();
                if let Some(ctx) = this.supervision.as_ref().and_then(|e| e.ctx.as_ref()) {
                    ctx.interrupt();
                }
                let (result, how) = match dropped {
                    Ok(()) => (Err(JobError::Stopped), End::Stopped),
                    Err(p) => (Err(JobError::Panicked(p)), End::Panicked),
                };
                Some(Self::complete(&mut this, header, result, how))
            }
            Phase::Draining => {
                let _ = attempt!(this).clear();
                match this.supervision.as_mut().and_then(|e| e.fault.take()) {
                    // Still counted in `running`: its handle waits for this.
                    Some(p) => Some(Self::complete(
                        &mut this,
                        header,
                        Err(JobError::Panicked(p)),
                        End::Panicked,
                    )),
                    None => {
                        header.core.drain_ended();
                        None
                    }
                }
            }
            Phase::Done => {
                let _ = attempt!(this).clear();
                None
            }
        }
    }
}

impl<B: Body> Task<B> {
    /// Runs the task as far as it can go; `Ready` once it is done for good
    /// (its outcome decided and, for a blocking closure, the closure returned);
    /// the outcome to publish once the task is dropped, if not published yet.
    ///
    /// `local` is the polling worker's, kept across its jobs.
    pub(crate) fn poll_task(
        self: Pin<&mut Self>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
    ) -> Step<B> {
        let mut this = self.project();
        // Once: a job that waits for its start time is polled in the queue
        // more than once.
        if *this.phase == Phase::Queued && this.trace.is_none() {
            *this.trace = Trace::start(header.name.as_deref().map(String::as_str));
        }
        #[allow(clippy::let_unit_value)]
        let _entered = this.trace.enter();
        // The attempt's own panics are caught where it is polled; this
        // catches those of the user code the task calls around it (the
        // clock, a timer, an error's `Drop`), so that they end the job
        // `Panicked` instead of unwinding through its worker.
        match catch_unwind(AssertUnwindSafe(|| {
            Self::step(&mut this, header, cx, local)
        })) {
            Ok(step) => step,
            Err(payload) => Self::fault(&mut this, header, cx, payload),
        }
    }

    /// Moves the task on as far as it can go: each phase's step either
    /// returns (the task waits, or is done) or moves to the next phase.
    fn step(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
    ) -> Step<B> {
        loop {
            let step = match *this.phase {
                Phase::Queued => Self::start(this, header, cx, local),
                Phase::Running => Self::run_attempt(this, header, cx, local),
                Phase::Backoff => Self::back_off(this, header, cx, local),
                Phase::Abandoned => Self::abandon(this, header, cx, local),
                Phase::Starting => unreachable!("a start ends within the step that began it"),
                Phase::Draining => Some(Self::drain(this, header, cx)),
                Phase::Done => Some(Poll::Ready(None)),
            };
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// The job leaves the queue and starts: it waits for its start time
    /// under the pool's rate limit if there is one, its deadline is set, its
    /// token and deadline are looked at (a job cancelled or past its
    /// deadline never starts its body), and its first attempt is made.
    /// `None` if it runs on (`Running`).
    fn start(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
    ) -> Option<Step<B>> {
        // The only cost of the rate limit to a pool without one.
        let (reserved, stopped) = match &header.core.rate {
            None => (None, false),
            Some(rate) => match Self::wait_for_turn(this, header, cx, local, rate) {
                Poll::Pending => return Some(Poll::Pending),
                Poll::Ready(at) => (at, header.core.rate_waits_stopped()),
            },
        };
        if header.try_start() == Start::CancelledFirst {
            // Cancelled while queued; the handle has resolved.
            header.core.refund_start(reserved);
            *this.phase = Phase::Done;
            let _ = attempt!(this).clear();
            return Some(Poll::Ready(None));
        }
        *this.phase = Phase::Starting;
        let core = &header.core;
        let (now, started) = core.start_time();
        *this.started = started;
        let meta = this.body.meta();
        let shielded = this.body.shielded();
        let deadline = if shielded {
            None
        } else {
            run_deadline(meta, core.default_timeout, now)
        };
        if let Some((err, how)) = Self::refusal(this, header, stopped, deadline, now) {
            // Never started: the body is not polled, not even once, and its
            // start time goes to the next job.
            core.refund_start(reserved);
            *this.phase = Phase::Done;
            let _ = attempt!(this).clear();
            this.trace.finished(how);
            return Some(Poll::Ready(Some(Finished::unstarted(header, err, how))));
        }
        // Listed as running before it counts as running: a reader that
        // sees `running` rise sees the job run (`Pool::jobs`).
        local.note_start(started);
        // Out of `waiting`, then into `running` (see `src/core.rs`).
        core.left_queue();
        core.job_started();
        *this.counted_running = true;
        if deadline.is_some() || meta.is_some() {
            let ctx = meta.map(|m| {
                let options = m.options.clone().or_else(|| core.default_options.clone());
                let id = JobId::of_ticket(core.full_ticket(header.ticket()));
                let options = options.unwrap_or_default();
                JobContext::new(m, options, deadline, core, header.id(), id)
            });
            // Merged into what the wait for its start time left (its
            // token's wait).
            let sup = supervision(this.supervision);
            sup.deadline = deadline;
            sup.ctx = ctx;
        }
        *this.phase = Phase::Running;
        if attempt!(this).is_some() {
            *this.attempts = 1;
            this.trace.attempt(1);
            return None;
        }
        Self::next_attempt(this, header, local)
    }

    /// Why a job leaving the queue at `now` does not start, if it does not:
    /// the pool stopped while it waited for its start time, its token is
    /// cancelled, or its deadline passed. A shielded job always starts.
    fn refusal(
        this: &Projected<'_, B>,
        header: &Header,
        stopped: bool,
        deadline: Option<Instant>,
        now: Instant,
    ) -> Option<(JobError<B::Error>, End)> {
        if stopped {
            Some((JobError::Stopped, End::Stopped))
        } else if this.body.shielded() {
            None
        } else if Self::token(this.body, header).is_cancelled() {
            Some(Interrupt::Cancelled.into_error())
        } else if deadline.is_some_and(|d| d <= now) {
            Some(Interrupt::TimedOut.into_error())
        } else {
            None
        }
    }

    /// Waits, still queued, for the job's start time under the pool's rate
    /// limit (`src/rate.rs`): `Ready` with the time it reserved once that
    /// time came, or once the job will not start anyway (its handle or
    /// token cancelled it, its own deadline passed, the pool stopped:
    /// `start` ends it then, and gives the time back).
    ///
    /// It waits in its worker (a slot), counted in `waiting`, not in
    /// `running`; a handle's cancel wins it the usual way and resolves the
    /// handle at once. Woken by its sleep (until the earlier of its time
    /// and its deadline: a timeout counts from the start), its token, and
    /// its worker's watch (the handle's cancel, a stop), each armed before
    /// the look that would miss it.
    fn wait_for_turn(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
        rate: &RateLimit,
    ) -> Poll<Option<Instant>> {
        let core = &header.core;
        let now = core.now();
        if this.supervision.as_ref().is_none_or(|s| s.turn.is_none()) {
            let ticket = core.full_ticket(header.ticket());
            if header.cancel_requested() {
                // Resolved already: what its worker reserved goes back.
                rate.withdraw(ticket);
                return Poll::Ready(None);
            }
            // Its worker reserved it as it took the job, in the queue's
            // order (`src/worker.rs`), unless the clock panicked there.
            let at = rate.time_of(ticket).or_else(|| rate.reserve(now, ticket));
            if let Some(at) = rate.claim(ticket, now) {
                return Poll::Ready(Some(at));
            }
            let turn = Turn {
                ticket,
                at,
                sleep: None,
            };
            supervision(this.supervision).turn = Some(Box::new(turn));
        }
        local
            .watch
            .get_or_insert_with(|| core.watchers.watch())
            .register(cx.waker(), header.id());
        // A shielded job (a sub-pool's worker) waits for its time whatever
        // its token says.
        let cancelled = !this.body.shielded() && Self::token_cancelled(this, header, cx, local);
        let deadline = this.body.meta().and_then(|m| m.deadline);
        let sup = supervision(this.supervision);
        let turn = sup.turn.as_mut().expect("reserved above");
        if cancelled || core.rate_waits_stopped() || deadline.is_some_and(|d| now >= d) {
            // It will not start: its time goes back now.
            rate.withdraw(turn.ticket);
            sup.turn = None;
            return Poll::Ready(None);
        }
        if let Some(at) = rate.claim(turn.ticket, now) {
            sup.turn = None;
            return Poll::Ready(Some(at));
        }
        // An earlier job that reserved after it may have moved its time.
        let at = rate.time_of(turn.ticket);
        if at != turn.at {
            turn.at = at;
            turn.sleep = None;
        }
        let wake_at = match (turn.at, deadline) {
            (Some(at), Some(d)) => Some(at.min(d)),
            (at, d) => at.or(d),
        };
        let sleep = turn
            .sleep
            .get_or_insert_with(|| core.sleep_until_or_never(wake_at));
        if Pin::new(sleep).poll(cx).is_ready() {
            // Its time came: the next poll reads the clock again.
            turn.sleep = None;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Whether the job's token (or its handle) cancelled it, arming the
    /// token's wait first: the pool's token is waited for by the worker (it
    /// outlives the job), a job's own token by the job.
    fn token_cancelled(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
    ) -> bool {
        let own_token = this.body.meta().and_then(|m| m.token.as_ref());
        let wait = match own_token {
            None => &mut local.pool_token,
            Some(_) => &mut supervision(this.supervision).token_wait,
        };
        let wait = wait.get_or_insert_with(|| Self::token(this.body, header).cancelled());
        Pin::new(wait).poll(cx).is_ready() || header.cancel_requested()
    }

    /// Gives back the start time a queued job waits for, if it waits for one
    /// (it will not start: see `wait_for_turn`).
    fn give_turn_back(this: &mut Projected<'_, B>, header: &Header) {
        let core = &header.core;
        match this.supervision.as_mut().and_then(|s| s.turn.take()) {
            Some(turn) => core.withdraw_start(turn.ticket),
            // Not polled yet: what its worker reserved, if anything.
            None if core.rate.is_some() => core.withdraw_start(core.full_ticket(header.ticket())),
            None => {}
        }
    }

    /// Polls the running attempt, after a look at the interrupts. `None` if
    /// it failed and the job backs off before its next attempt.
    fn run_attempt(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
    ) -> Option<Step<B>> {
        if let Some(why) = Self::interrupted(this, header) {
            return Some(Self::interrupt(this, header, cx, local, why));
        }
        let polled = match attempt!(this).into_pin_mut() {
            Some(a) => catch_unwind(AssertUnwindSafe(|| a.poll(cx))),
            None => Ok(Poll::Pending),
        };
        let step = match polled {
            Ok(Poll::Pending) => match Self::poll_interrupts(this, header, cx, local) {
                Some(why) => Self::interrupt(this, header, cx, local, why),
                None => Poll::Pending,
            },
            Ok(Poll::Ready(Ok(value))) => {
                let (result, how) = match attempt!(this).clear() {
                    Ok(()) => (Ok(value), End::Succeeded),
                    Err(p) => (Err(JobError::Panicked(p)), End::Panicked),
                };
                Self::finish(this, header, result, how)
            }
            Ok(Poll::Ready(Err(e))) => return Self::failed(this, header, cx, local, e),
            Err(payload) => {
                let p = Panic::caught(payload);
                let _ = attempt!(this).clear();
                this.trace.panicked(p.message());
                Self::finish(this, header, Err(JobError::Panicked(p)), End::Panicked)
            }
        };
        Some(step)
    }

    /// The attempt failed with `e`: the job ends `Failed` if it has no retry
    /// left or `e` is not retryable, or tries again (`retry_or_end`).
    fn failed(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
        e: B::Error,
    ) -> Option<Step<B>> {
        if let Err(p) = attempt!(this).clear() {
            let panicked = Err(JobError::Panicked(p));
            return Some(Self::finish(this, header, panicked, End::Panicked));
        }
        if let Some(sup) = this.supervision.as_mut() {
            sup.attempt_deadline = None;
            sup.attempt_wait = None;
        }
        if !Self::retry_left(this) || !this.body.retries(&e) {
            let failed = Err(JobError::Failed(e));
            return Some(Self::finish(this, header, failed, End::Failed));
        }
        Self::retry_or_end(this, header, cx, local, Last::Failed(e))
    }

    /// Whether the job may make another attempt after the one that ran.
    fn retry_left(this: &Projected<'_, B>) -> bool {
        *this.attempts <= this.body.meta().map_or(0, |m| m.retry)
    }

    /// The last attempt ended without a value (`last`) and the job may try
    /// again: it backs off (`None`), or ends at once, interrupted, or with
    /// `last` if the backoff would end at or after its deadline (a job
    /// never holds its slot waiting for an attempt it cannot start).
    fn retry_or_end(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
        last: Last<B::Error>,
    ) -> Option<Step<B>> {
        if let Some(why) = Self::interrupted(this, header) {
            return Some(Self::interrupt(this, header, cx, local, why));
        }
        let delay = this
            .body
            .meta()
            .map(|m| m.backoff.delay(*this.attempts))
            .unwrap_or_default();
        let core = &header.core;
        let wake_at = if delay.is_zero() {
            None
        } else {
            // A backoff too long to express waits for ever: past any deadline.
            Some(core.now().checked_add(delay))
        };
        let deadline = this.supervision.as_ref().and_then(|e| e.deadline);
        if let (Some(wake_at), Some(deadline)) = (wake_at, deadline) {
            if wake_at.is_none_or(|at| at >= deadline) {
                let (result, how) = match last {
                    Last::Failed(e) => (Err(JobError::Failed(e)), End::Failed),
                    Last::TimedOut => (Err(JobError::TimedOut), End::TimedOut),
                };
                return Some(Self::finish(this, header, result, how));
            }
        }
        this.trace.retry(*this.attempts, delay);
        // The error is dropped: the next attempt replaces it, and an
        // interrupted backoff ends the job TimedOut or Cancelled.
        drop(last);
        *this.phase = Phase::Backoff;
        let Some(wake_at) = wake_at else {
            // No sleep, but a yield: a job that fails at once must not keep
            // its executor thread from every other task. The next poll
            // starts the next attempt.
            cx.waker().wake_by_ref();
            return Some(Poll::Pending);
        };
        supervision(this.supervision).backoff_sleep = Some(core.sleep_until_or_never(wake_at));
        None
    }

    /// The attempt ran past its own timeout and the job has attempts left:
    /// an async attempt is dropped and the job tries again; a blocking one
    /// is told (its context) and awaited first (`Abandoned`).
    fn attempt_timed_out(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
    ) -> Step<B> {
        if let Some(ctx) = this.supervision.as_ref().and_then(|e| e.ctx.as_ref()) {
            ctx.attempt_timed_out(*this.attempts);
        }
        if this.body.is_blocking() && attempt!(this).is_some() {
            *this.phase = Phase::Abandoned;
        } else if let Err(p) = attempt!(this).clear() {
            return Self::finish(this, header, Err(JobError::Panicked(p)), End::Panicked);
        }
        if *this.phase == Phase::Running {
            if let Some(step) = Self::retry_or_end(this, header, cx, local, Last::TimedOut) {
                return step;
            }
        }
        // Backing off or awaiting the closure: the next poll goes on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Awaits a blocking attempt that ran past its own timeout, then tries
    /// again (`None`: it backs off). The job's own interrupts still apply.
    fn abandon(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
    ) -> Option<Step<B>> {
        if let Some(why) = Self::interrupted(this, header) {
            return Some(Self::interrupt(this, header, cx, local, why));
        }
        if let Some(a) = attempt!(this).into_pin_mut() {
            if let Ok(Poll::Pending) = catch_unwind(AssertUnwindSafe(|| a.poll(cx))) {
                return Some(match Self::poll_interrupts(this, header, cx, local) {
                    Some(why) => Self::interrupt(this, header, cx, local, why),
                    None => Poll::Pending,
                });
            }
        }
        // Returned (its value or panic is dropped): the next attempt may go.
        if let Err(p) = attempt!(this).clear() {
            return Some(Self::finish(
                this,
                header,
                Err(JobError::Panicked(p)),
                End::Panicked,
            ));
        }
        *this.phase = Phase::Running;
        Self::retry_or_end(this, header, cx, local, Last::TimedOut)
    }

    /// Waits out the backoff, then makes the next attempt (`None`: it runs).
    fn back_off(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
    ) -> Option<Step<B>> {
        let slept = match this
            .supervision
            .as_mut()
            .and_then(|e| e.backoff_sleep.as_mut())
        {
            Some(s) => Pin::new(s).poll(cx).is_ready(),
            None => true,
        };
        // Checked after the sleep: a backoff that ends with (or after) the
        // deadline starts no attempt.
        if let Some(why) = Self::interrupted(this, header) {
            return Some(Self::interrupt(this, header, cx, local, why));
        }
        if !slept {
            return Some(match Self::poll_interrupts(this, header, cx, local) {
                Some(why) => Self::interrupt(this, header, cx, local, why),
                None => Poll::Pending,
            });
        }
        supervision(this.supervision).backoff_sleep = None;
        *this.phase = Phase::Running;
        Self::next_attempt(this, header, local)
    }
}

type Projected<'a, B> = TaskProj<'a, B>;

impl<B: Body> Task<B> {
    /// Starts the next attempt. Returns `Some` if the task ended instead.
    fn next_attempt(
        this: &mut Projected<'_, B>,
        header: &Header,
        local: &mut WorkerLocal,
    ) -> Option<Step<B>> {
        let ctx = this
            .supervision
            .as_ref()
            .and_then(|e| e.ctx.as_ref())
            .map(|c| c.with_attempt(*this.attempts + 1));
        let made = catch_unwind(AssertUnwindSafe(|| this.body.attempt(ctx)));
        match made {
            Ok(Some(attempt)) => {
                *this.attempts += 1;
                if *this.attempts > 1 {
                    // (The first is noted as the job starts.)
                    local.note_attempt(*this.attempts);
                    header.core.count_retry();
                }
                if let Some(limit) = this.body.meta().and_then(|m| m.attempt_timeout) {
                    // A limit too long to express is no limit.
                    supervision(this.supervision).attempt_deadline =
                        header.core.now().checked_add(limit);
                }
                this.trace.attempt(*this.attempts);
                attempt!(this).set(attempt);
                None
            }
            Ok(None) => Some(Self::finish(
                this,
                header,
                Err(JobError::Stopped),
                End::Stopped,
            )),
            Err(payload) => {
                *this.attempts += 1;
                let p = Panic::caught(payload);
                Some(Self::finish(
                    this,
                    header,
                    Err(JobError::Panicked(p)),
                    End::Panicked,
                ))
            }
        }
    }

    /// The interrupts that are already known, without registering anything.
    ///
    /// The deadline is checked against the clock, not only through its
    /// timer: an attempt that fails without ever waiting, or a backoff that
    /// ends together with the deadline, must not start another attempt.
    fn interrupted(this: &mut Projected<'_, B>, header: &Header) -> Option<Interrupt> {
        if this.body.shielded() {
            return None;
        }
        if header.cancel_requested()
            || Self::token(this.body, header).is_cancelled()
            || this
                .supervision
                .as_ref()
                .and_then(|e| e.ctx.as_ref()?.made_token())
                .is_some_and(CancelToken::is_cancelled)
        {
            return Some(Interrupt::Cancelled);
        }
        if header.core.is_aborted() {
            return Some(Interrupt::Aborted);
        }
        if *this.deadline_passed {
            return Some(Interrupt::TimedOut);
        }
        let sup = this.supervision.as_mut()?;
        if sup.deadline.is_none() && sup.attempt_deadline.is_none() {
            return None;
        }
        let now = header.core.now();
        if sup.deadline.is_some_and(|d| now >= d) {
            *this.deadline_passed = true;
            // The job's run ends here: its record reuses this reading.
            sup.expired_at = Some(now);
            return Some(Interrupt::TimedOut);
        }
        if sup.attempt_deadline.is_some_and(|d| now >= d) {
            sup.attempt_deadline = None;
            sup.attempt_wait = None;
            return Some(Interrupt::AttemptTimedOut);
        }
        None
    }

    /// Arms `wait` for `deadline` (once): `true` if it is known to have
    /// passed. A registration with the pool's deadlines wakes the task,
    /// which then reads the clock (`interrupted`).
    fn arm(
        wait: &mut Option<DeadlineWait>,
        deadline: Instant,
        header: &Header,
        cx: &mut Context<'_>,
    ) -> bool {
        let wait = wait.get_or_insert_with(|| {
            #[cfg(not(workerpoolxt_loom))]
            if let Some(deadlines) = &header.core.deadlines {
                return DeadlineWait::Registered(deadlines.register(deadline, cx.waker()));
            }
            DeadlineWait::Sleep(header.core.sleep_until(deadline))
        });
        match wait {
            DeadlineWait::Sleep(sleep) => Pin::new(sleep).poll(cx).is_ready(),
            #[cfg(not(workerpoolxt_loom))]
            DeadlineWait::Registered(r) => {
                r.set_waker(cx.waker());
                false
            }
        }
    }

    /// Arms every interrupt source (cancel, token, deadline) so that any of
    /// them wakes the task, and returns the one that already fired. Arming
    /// before checking makes it free of lost wake-ups.
    fn poll_interrupts(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
    ) -> Option<Interrupt> {
        if this.body.shielded() {
            return None;
        }
        // A handle's cancel wakes this worker (registered first, then the
        // bit is looked at: no lost wake-up).
        local
            .watch
            .get_or_insert_with(|| header.core.watchers.watch())
            .register(cx.waker(), header.id());
        if header.cancel_requested() {
            return Some(Interrupt::Cancelled);
        }
        if header.core.is_aborted() {
            return Some(Interrupt::Aborted);
        }
        if Self::token_cancelled(this, header, cx, local) {
            return Some(Interrupt::Cancelled);
        }
        let sup = this.supervision.as_mut()?;
        // The job cancels itself through its context's token, once the job
        // has made it (the worker was registered above, before this look:
        // making the token wakes it, see `JobContext::token`).
        if let Some(token) = sup.ctx.as_ref().and_then(JobContext::made_token) {
            let wait = sup.ctx_wait.get_or_insert_with(|| token.cancelled());
            if Pin::new(wait).poll(cx).is_ready() {
                return Some(Interrupt::Cancelled);
            }
        }
        if let Some(deadline) = sup.deadline {
            if Self::arm(&mut sup.deadline_wait, deadline, header, cx) {
                *this.deadline_passed = true;
                sup.deadline_wait = None;
                return Some(Interrupt::TimedOut);
            }
        }
        if let Some(deadline) = sup.attempt_deadline {
            if Self::arm(&mut sup.attempt_wait, deadline, header, cx) {
                sup.attempt_deadline = None;
                sup.attempt_wait = None;
                return Some(Interrupt::AttemptTimedOut);
            }
        }
        None
    }

    fn interrupt(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
        why: Interrupt,
    ) -> Step<B> {
        if why == Interrupt::AttemptTimedOut && Self::retry_left(this) {
            return Self::attempt_timed_out(this, header, cx, local);
        }
        if let Some(sup) = this.supervision.as_mut() {
            sup.attempt_deadline = None;
            sup.attempt_wait = None;
            if let Some(ctx) = sup.ctx.as_ref() {
                ctx.interrupt();
            }
            sup.backoff_sleep = None;
        }
        let (err, how) = why.into_error();
        if why == Interrupt::Aborted {
            header.core.count_aborted();
        }
        this.trace.interrupted(how);
        let running = matches!(*this.phase, Phase::Running | Phase::Abandoned);
        if running && this.body.is_blocking() && attempt!(this).is_some() {
            // A blocking closure cannot be stopped: resolve now, keep the slot
            // until it returns. Counted as draining first (out of `running`
            // in the same step), so the ledger never shows it both running
            // and finished. (A running job is always counted in `running`:
            // it was counted as it started.)
            let counted = std::mem::take(this.counted_running);
            debug_assert!(counted, "a running job is counted in `running`");
            header.core.drain_started();
            // Published now, while the task lives on: an interrupt carries
            // nothing, so it needs no room in the cell.
            let f = Self::complete(this, header, Err(err), how);
            let code = f.code().expect("an interrupt carries nothing");
            // Before the publish, which hides the ticket (`src/view.rs`).
            local.note_draining(header, *this.attempts);
            header.publish(Some(code), f.record, f.how, Leaves::Nothing);
            *this.phase = Phase::Draining;
            return Self::drain(this, header, cx);
        }
        match attempt!(this).clear() {
            Ok(()) => Self::finish(this, header, Err(err), how),
            Err(p) => Self::finish(this, header, Err(JobError::Panicked(p)), End::Panicked),
        }
    }

    /// Awaits an interrupted blocking closure to its end; its result (or
    /// panic) is dropped, the handle has resolved already.
    fn drain(this: &mut Projected<'_, B>, header: &Header, cx: &mut Context<'_>) -> Step<B> {
        if let Some(a) = attempt!(this).into_pin_mut() {
            if let Ok(Poll::Pending) = catch_unwind(AssertUnwindSafe(|| a.poll(cx))) {
                return Poll::Pending;
            }
        }
        let _ = attempt!(this).clear();
        if let Some(p) = this.supervision.as_mut().and_then(|e| e.fault.take()) {
            // The handle waited for the closure's end: it resolves now.
            return Self::finish(this, header, Err(JobError::Panicked(p)), End::Panicked);
        }
        *this.phase = Phase::Done;
        header.core.drain_ended();
        Poll::Ready(None)
    }

    /// Ends the job's run with `result`: its outcome, which the cell
    /// publishes once the task is dropped (a draining closure's is published
    /// at once, see `interrupt`).
    fn complete(
        this: &mut Projected<'_, B>,
        header: &Header,
        result: Result<B::Output, JobError<B::Error>>,
        how: End,
    ) -> Finished<B> {
        if let Some(sup) = this.supervision.as_mut() {
            sup.deadline_wait = None;
            sup.token_wait = None;
            sup.ctx_wait = None;
        }
        let (record, clock_fault) = Self::record(
            *this.attempts,
            *this.started,
            this.supervision.as_mut().and_then(|e| e.expired_at.take()),
            header,
        );
        let carries_nothing = result.as_ref().err().and_then(ErrorCode::of).is_some();
        let (result, how) = match clock_fault {
            // The clock panicked as the job ended: it ends `Panicked` with
            // that panic (its value, if any, is dropped here); but an end
            // decided already (an interrupt, a stop) stands, with a run time
            // of zero.
            Some(p) if !carries_nothing => {
                let _ = catch_unwind(AssertUnwindSafe(move || drop(result)));
                (Err(JobError::Panicked(p)), End::Panicked)
            }
            _ => (result, how),
        };
        this.trace.finished(how);
        Finished {
            result,
            record,
            how,
            leaves: Self::leaves(this.counted_running),
        }
    }

    /// The gauge a started job leaves when it is published: `running`,
    /// unless it moved to `draining` already.
    fn leaves(counted_running: &mut bool) -> Leaves {
        if std::mem::take(counted_running) {
            Leaves::Running
        } else {
            Leaves::Nothing
        }
    }

    /// The record of a job that started at `started` and ends now (or when
    /// its deadline was found passed, `expired_at`: that reading is taken
    /// just before the job is ended).
    ///
    /// If the clock panics, the run time is zero and the panic comes back
    /// beside the record.
    fn record(
        attempts: u32,
        started: u64,
        expired_at: Option<Instant>,
        header: &Header,
    ) -> (Record, Option<Panic>) {
        let core = &header.core;
        let (ended, fault) = match expired_at.map_or_else(|| core.try_now(), Ok) {
            Ok(now) => {
                let ended = core.since_epoch(now);
                core.leave_hint(now, ended);
                (ended, None)
            }
            Err(p) => (started, Some(p)),
        };
        let record = Record {
            attempts,
            queued: started.saturating_sub(header.submitted()),
            run: ended.saturating_sub(started),
        };
        (record, fault)
    }

    /// Ends the job after a panic of user code that the task called outside
    /// the attempt's own guard (see `poll_task`): `Panicked` with that
    /// panic. An async attempt is dropped first; a blocking closure is
    /// awaited to its end first, since it cannot be stopped and the slot is
    /// its until then.
    fn fault(
        this: &mut Projected<'_, B>,
        header: &Header,
        cx: &mut Context<'_>,
        payload: Box<dyn std::any::Any + Send>,
    ) -> Step<B> {
        let p = Panic::caught(payload);
        this.trace.panicked(p.message());
        if let Some(sup) = this.supervision.as_mut() {
            sup.backoff_sleep = None;
            if let Some(ctx) = sup.ctx.as_ref() {
                ctx.interrupt();
            }
        }
        match *this.phase {
            // Waiting for its start time under the rate limit (the clock or
            // the timer panicked): it never starts.
            Phase::Queued => {
                Self::give_turn_back(this, header);
                *this.phase = Phase::Done;
                let _ = attempt!(this).clear();
                if header.try_start() == Start::CancelledFirst {
                    return Poll::Ready(None);
                }
                let f = Finished::unstarted(header, JobError::Panicked(p), End::Panicked);
                Poll::Ready(Some(f))
            }
            // A done task's step returns at once.
            Phase::Done => unreachable!("no user code runs once a job is done"),
            Phase::Starting => {
                *this.phase = Phase::Done;
                let _ = attempt!(this).clear();
                let f = Finished::unstarted(header, JobError::Panicked(p), End::Panicked);
                Poll::Ready(Some(f))
            }
            Phase::Running | Phase::Abandoned
                if this.body.is_blocking() && attempt!(this).is_some() =>
            {
                supervision(this.supervision).fault = Some(p);
                *this.phase = Phase::Draining;
                Self::drain(this, header, cx)
            }
            Phase::Running | Phase::Backoff | Phase::Abandoned => {
                let result = match attempt!(this).clear() {
                    Ok(()) => JobError::Panicked(p),
                    Err(dropped) => JobError::Panicked(dropped),
                };
                Self::finish(this, header, Err(result), End::Panicked)
            }
            Phase::Draining => {
                // A draining closure's poll catches its own panics, and its
                // handle has resolved (or waits for `Supervision::fault`): the
                // closure is dropped, its slot freed.
                let _ = attempt!(this).clear();
                *this.phase = Phase::Done;
                match this.supervision.as_mut().and_then(|e| e.fault.take()) {
                    Some(p) => {
                        Self::finish(this, header, Err(JobError::Panicked(p)), End::Panicked)
                    }
                    None => {
                        header.core.drain_ended();
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn finish(
        this: &mut Projected<'_, B>,
        header: &Header,
        result: Result<B::Output, JobError<B::Error>>,
        how: End,
    ) -> Step<B> {
        let finished = Self::complete(this, header, result, how);
        *this.phase = Phase::Done;
        Poll::Ready(Some(finished))
    }
}

//! One job on its way through the pool: the future a worker runs for it.
//!
//! A [`Task`] is what sits in the queue. Its first poll takes it out of the
//! queue for good (or finds it cancelled there), checks its token and
//! deadline, then runs attempts of its [`Body`] until one succeeds, the
//! retries run out, or it is interrupted (cancel, token, deadline). It always
//! resolves its handle exactly once, including when it is dropped unstarted
//! (a stop) or mid-run (an executor shutting down).
//!
//! The order that makes the pool's guarantees hold:
//! - an async attempt that is interrupted is **dropped before** the handle
//!   resolves, so `Cancelled`/`TimedOut` means its destructors have run;
//! - a blocking attempt that is interrupted resolves the handle at once and
//!   is then awaited to its end (`Draining`), so the worker, the slot, stays
//!   busy until the closure returns;
//! - no attempt starts after the handle has resolved.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;

use crate::cancel::{CancelToken, Cancelled};
use crate::error::{JobError, Panic};
use crate::handle::{Record, Slot};
use crate::job::{JobContext, JobMeta};
use crate::metrics::Final;
use crate::runtime::{unblock, Sleep};
use crate::sync::Ordering;
use crate::trace::Trace;

/// What a task runs: one attempt at a time.
pub(crate) trait Body: Send + 'static {
    type Output: Send + 'static;
    type Error: Send + 'static;
    type Attempt: Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// Creates the next attempt, or `None` if the body can make no more
    /// (a one-shot body whose only attempt was given at submit).
    fn attempt(&mut self, ctx: Option<JobContext>) -> Option<Self::Attempt>;

    /// Whether attempts are blocking closures (run to their end even when
    /// interrupted) rather than futures (dropped when interrupted).
    fn is_blocking(&self) -> bool;

    /// The job's own settings; `None` for plain submits, which use the pool's.
    fn meta(&self) -> Option<&JobMeta> {
        None
    }
}

/// The body of `Pool::submit`: its one future is the task's first attempt.
pub(crate) struct OnceFuture<F>(PhantomData<fn() -> F>);

impl<F> OnceFuture<F> {
    pub(crate) fn new() -> Self {
        OnceFuture(PhantomData)
    }
}

pin_project! {
    /// A future whose output is wrapped in `Ok`.
    pub(crate) struct OkFuture<F> {
        #[pin]
        fut: F,
    }
}

impl<F> OkFuture<F> {
    pub(crate) fn new(fut: F) -> Self {
        OkFuture { fut }
    }
}

impl<F: Future> Future for OkFuture<F> {
    type Output = Result<F::Output, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().fut.poll(cx).map(Ok)
    }
}

impl<F> Body for OnceFuture<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;
    type Error = std::convert::Infallible;
    type Attempt = OkFuture<F>;

    fn attempt(&mut self, _ctx: Option<JobContext>) -> Option<Self::Attempt> {
        None
    }

    fn is_blocking(&self) -> bool {
        false
    }
}

/// The body of `Pool::submit_blocking`: one closure, sent to the blocking
/// thread pool when the job starts (not before).
pub(crate) struct OnceBlocking<C>(pub(crate) Option<C>);

impl<C, T> Body for OnceBlocking<C>
where
    C: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;
    type Error = std::convert::Infallible;
    type Attempt = BlockingAttempt<Result<T, std::convert::Infallible>>;

    fn attempt(&mut self, _ctx: Option<JobContext>) -> Option<Self::Attempt> {
        let f = self.0.take()?;
        Some(BlockingAttempt::spawn(move || Ok(f())))
    }

    fn is_blocking(&self) -> bool {
        true
    }
}

/// A closure running on the blocking thread pool; resolves when it returns.
/// Its panic is re-raised when polled, to be caught like any job's panic.
pub(crate) struct BlockingAttempt<R> {
    task: blocking::Task<std::thread::Result<R>>,
}

impl<R: Send + 'static> BlockingAttempt<R> {
    pub(crate) fn spawn(f: impl FnOnce() -> R + Send + 'static) -> Self {
        BlockingAttempt { task: unblock(f) }
    }
}

impl<R> Future for BlockingAttempt<R> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        match Pin::new(&mut self.task).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(payload)) => std::panic::resume_unwind(payload),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// In the queue, never polled.
    Queued,
    /// An attempt is running.
    Running,
    /// Between attempts, waiting out the backoff.
    Backoff,
    /// Interrupted blocking closure: the handle has resolved, the closure has
    /// not returned yet.
    Draining,
    /// Finished; the handle has resolved.
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Interrupt {
    Cancelled,
    TimedOut,
}

impl Interrupt {
    fn into_error<E>(self) -> (JobError<E>, Final) {
        match self {
            Interrupt::Cancelled => (JobError::Cancelled, Final::Cancelled),
            Interrupt::TimedOut => (JobError::TimedOut, Final::TimedOut),
        }
    }
}

pin_project! {
    /// A queued job and, once started, its run. See the module docs.
    #[project = TaskProj]
    pub(crate) struct Task<B: Body> {
        body: B,
        phase: Phase,
        // Counted in `Shared::running`: from its start until its handle
        // resolves.
        counted_running: bool,
        deadline_passed: bool,
        attempts: u32,
        // First start, in ns since the pool's epoch.
        started: u64,
        // What only some jobs need (a deadline, a context, a wait): boxed,
        // so that a plain queued job stays small.
        extra: Option<Box<Extra>>,
        trace: Trace,
        #[pin]
        attempt: Option<B::Attempt>,
    }
}

/// The part of a task that plain submits that finish at once never need.
#[derive(Default)]
struct Extra {
    deadline: Option<Instant>,
    /// The clock reading that found the deadline passed, if one did.
    expired_at: Option<Instant>,
    deadline_wait: Option<DeadlineWait>,
    token_wait: Option<Cancelled>,
    backoff_sleep: Option<Sleep>,
    ctx: Option<JobContext>,
}

/// What a worker keeps from one job to the next.
#[derive(Default)]
pub(crate) struct WorkerLocal {
    /// The wait for the pool's token, shared by the jobs of this worker that
    /// use it: registered once with the token, not once per job that waits.
    pool_token: Option<Cancelled>,
}

/// How a running job waits for its deadline.
enum DeadlineWait {
    /// Its own sleep on the pool's clock.
    Sleep(Sleep),
    /// A place among the pool's deadlines, under one timer (system clock).
    #[cfg(not(workerpoolxt_loom))]
    Registered(crate::deadlines::Registration),
}

fn extra(e: &mut Option<Box<Extra>>) -> &mut Extra {
    e.get_or_insert_with(Default::default)
}

/// Drops a pinned attempt, catching a panic of its destructor.
fn drop_attempt<A>(attempt: Pin<&mut Option<A>>) -> Result<(), Panic> {
    let mut attempt = attempt;
    catch_unwind(AssertUnwindSafe(|| attempt.set(None)))
        .map_err(|payload| Panic::from_payload(&*payload))
}

impl<B: Body> Task<B> {
    /// A task for `body`; `first` is the first attempt if it exists already
    /// (a submitted future).
    pub(crate) fn new(body: B, first: Option<B::Attempt>) -> Self {
        Task {
            body,
            phase: Phase::Queued,
            counted_running: false,
            deadline_passed: false,
            attempts: 0,
            started: 0,
            extra: None,
            trace: Trace::none(),
            attempt: first,
        }
    }

    /// The token that cancels this job: its own, or the pool's.
    fn token<'a>(body: &'a B, slot: &'a SlotOf<B>) -> &'a CancelToken {
        match body.meta().and_then(|m| m.token.as_ref()) {
            Some(t) => t,
            None => &slot.shared.token,
        }
    }

    /// Ends a task that will not be polled again: dropped from the queue
    /// unstarted (a stop, a refused push, a dropped executor), or mid-run
    /// (its worker's executor went away). Resolves the handle if it has not
    /// resolved, after dropping the body.
    pub(crate) fn abort(self: Pin<&mut Self>, slot: &SlotOf<B>) {
        let this = self.project();
        match *this.phase {
            Phase::Queued => {
                // Dropped unstarted: a stop, a refused push, or a dropped
                // executor. The job never runs; its handle learns why.
                if slot.try_start() {
                    // The unstarted future goes first, then the handle resolves.
                    let _ = drop_attempt(this.attempt);
                    slot.complete_unstarted(JobError::Stopped, Final::Stopped);
                }
            }
            Phase::Running | Phase::Backoff => {
                // Dropped mid-run: only when the executor running the worker
                // goes away. Body first, then the handle.
                let dropped = drop_attempt(this.attempt);
                if let Some(ctx) = this.extra.as_ref().and_then(|e| e.ctx.as_ref()) {
                    ctx.interrupt();
                }
                let (result, how) = match dropped {
                    Ok(()) => (Err(JobError::Stopped), Final::Stopped),
                    Err(p) => (Err(JobError::Panicked(p)), Final::Panicked),
                };
                let record = Self::record(
                    *this.attempts,
                    *this.started,
                    this.extra.as_mut().and_then(|e| e.expired_at.take()),
                    slot,
                );
                Self::uncount(this.counted_running, slot);
                slot.complete(result, record, how);
            }
            Phase::Draining => {
                let _ = drop_attempt(this.attempt);
                slot.shared.draining.fetch_sub(1, Ordering::SeqCst);
            }
            Phase::Done => {
                let _ = drop_attempt(this.attempt);
            }
        }
    }
}

impl<B: Body> Task<B> {
    /// Runs the task as far as it can go; `Ready` once it is done for good
    /// (its handle resolved and, for a blocking closure, the closure returned).
    ///
    /// `local` is the polling worker's, if it keeps one across jobs.
    pub(crate) fn poll_task(
        self: Pin<&mut Self>,
        slot: &SlotOf<B>,
        cx: &mut Context<'_>,
        local: Option<&mut WorkerLocal>,
    ) -> Poll<()> {
        let mut this = self.project();
        if *this.phase == Phase::Queued {
            *this.trace = Trace::start(slot.name.as_deref().map(String::as_str));
        }
        #[allow(clippy::let_unit_value)]
        let _entered = this.trace.enter();
        Self::step(&mut this, slot, cx, local)
    }

    /// Moves the task on as far as it can go.
    fn step(
        this: &mut Projected<'_, B>,
        slot: &SlotOf<B>,
        cx: &mut Context<'_>,
        mut local: Option<&mut WorkerLocal>,
    ) -> Poll<()> {
        loop {
            match *this.phase {
                Phase::Queued => {
                    if !slot.try_start() {
                        // Cancelled while queued; the handle has resolved.
                        *this.phase = Phase::Done;
                        let _ = drop_attempt(this.attempt.as_mut());
                        return Poll::Ready(());
                    }
                    let shared = &slot.shared;
                    let (now, started) = shared.start_time();
                    *this.started = started;
                    let meta = this.body.meta();
                    // A job's own deadline or timeout replaces the pool's default.
                    let deadline = match meta {
                        Some(m) if m.timeout.is_some() || m.deadline.is_some() => {
                            let from_timeout = m.timeout.and_then(|t| now.checked_add(t));
                            match (from_timeout, m.deadline) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            }
                        }
                        _ => shared.default_timeout.and_then(|t| now.checked_add(t)),
                    };
                    let refused = if Self::token(this.body, slot).is_cancelled() {
                        Some(Interrupt::Cancelled)
                    } else if deadline.is_some_and(|d| d <= now) {
                        Some(Interrupt::TimedOut)
                    } else {
                        None
                    };
                    if let Some(why) = refused {
                        // Never started: the body is not polled, not even once.
                        *this.phase = Phase::Done;
                        let _ = drop_attempt(this.attempt.as_mut());
                        let (err, how) = why.into_error();
                        this.trace.finished(how);
                        slot.complete_unstarted(err, how);
                        return Poll::Ready(());
                    }
                    shared.job_started();
                    *this.counted_running = true;
                    if deadline.is_some() || meta.is_some() {
                        let ctx = meta.map(|m| {
                            JobContext::new(
                                m,
                                m.options
                                    .clone()
                                    .or_else(|| shared.default_options.clone())
                                    .unwrap_or_default(),
                                deadline,
                            )
                        });
                        *this.extra = Some(Box::new(Extra {
                            deadline,
                            ctx,
                            ..Extra::default()
                        }));
                    }
                    *this.phase = Phase::Running;
                    if this.attempt.is_none() {
                        if let Some(done) = Self::next_attempt(this, slot) {
                            return done;
                        }
                    } else {
                        *this.attempts = 1;
                        this.trace.attempt(1);
                    }
                }
                Phase::Running => {
                    if let Some(why) = Self::interrupted(this, slot) {
                        return Self::interrupt(this, slot, cx, why);
                    }
                    let polled = {
                        let attempt = this.attempt.as_mut().as_pin_mut();
                        match attempt {
                            Some(a) => catch_unwind(AssertUnwindSafe(|| a.poll(cx))),
                            None => Ok(Poll::Pending),
                        }
                    };
                    match polled {
                        Ok(Poll::Pending) => {
                            if let Some(why) =
                                Self::poll_interrupts(this, slot, cx, local.as_deref_mut())
                            {
                                return Self::interrupt(this, slot, cx, why);
                            }
                            return Poll::Pending;
                        }
                        Ok(Poll::Ready(Ok(value))) => {
                            let (result, how) = match drop_attempt(this.attempt.as_mut()) {
                                Ok(()) => (Ok(value), Final::Succeeded),
                                Err(p) => (Err(JobError::Panicked(p)), Final::Panicked),
                            };
                            return Self::finish(this, slot, result, how);
                        }
                        Ok(Poll::Ready(Err(e))) => {
                            if let Err(p) = drop_attempt(this.attempt.as_mut()) {
                                return Self::finish(
                                    this,
                                    slot,
                                    Err(JobError::Panicked(p)),
                                    Final::Panicked,
                                );
                            }
                            let retry = this.body.meta().map_or(0, |m| m.retry);
                            if *this.attempts > retry {
                                return Self::finish(
                                    this,
                                    slot,
                                    Err(JobError::Failed(e)),
                                    Final::Failed,
                                );
                            }
                            if let Some(why) = Self::interrupted(this, slot) {
                                return Self::interrupt(this, slot, cx, why);
                            }
                            let delay = this
                                .body
                                .meta()
                                .map(|m| m.backoff.delay(*this.attempts))
                                .unwrap_or_default();
                            this.trace.retry(*this.attempts, delay);
                            // The error is dropped: the next attempt replaces
                            // it, and an interrupted backoff ends the job
                            // TimedOut or Cancelled.
                            drop(e);
                            if delay.is_zero() {
                                if let Some(done) = Self::next_attempt(this, slot) {
                                    return done;
                                }
                            } else {
                                let shared = &slot.shared;
                                // A backoff too long to express waits for ever
                                // (until the deadline or a cancel).
                                let sleep = match shared.now().checked_add(delay) {
                                    Some(wake_at) => shared.sleep_until(wake_at),
                                    None => Sleep::Other(Box::pin(std::future::pending())),
                                };
                                extra(this.extra).backoff_sleep = Some(sleep);
                                *this.phase = Phase::Backoff;
                            }
                        }
                        Err(payload) => {
                            let p = Panic::from_payload(&*payload);
                            drop(payload);
                            let _ = drop_attempt(this.attempt.as_mut());
                            this.trace.panicked(p.message());
                            return Self::finish(
                                this,
                                slot,
                                Err(JobError::Panicked(p)),
                                Final::Panicked,
                            );
                        }
                    }
                }
                Phase::Backoff => {
                    let slept = match this.extra.as_mut().and_then(|e| e.backoff_sleep.as_mut()) {
                        Some(s) => Pin::new(s).poll(cx).is_ready(),
                        None => true,
                    };
                    // Checked after the sleep: a backoff that ends with (or
                    // after) the deadline starts no attempt.
                    if let Some(why) = Self::interrupted(this, slot) {
                        return Self::interrupt(this, slot, cx, why);
                    }
                    if !slept {
                        if let Some(why) =
                            Self::poll_interrupts(this, slot, cx, local.as_deref_mut())
                        {
                            return Self::interrupt(this, slot, cx, why);
                        }
                        return Poll::Pending;
                    }
                    extra(this.extra).backoff_sleep = None;
                    *this.phase = Phase::Running;
                    if let Some(done) = Self::next_attempt(this, slot) {
                        return done;
                    }
                }
                Phase::Draining => return Self::drain(this, slot, cx),
                Phase::Done => return Poll::Ready(()),
            }
        }
    }
}

type Projected<'a, B> = TaskProj<'a, B>;

/// The slot of a task's job.
pub(crate) type SlotOf<B> = Slot<<B as Body>::Output, <B as Body>::Error>;

impl<B: Body> Task<B> {
    /// Starts the next attempt. Returns `Some` if the task ended instead.
    fn next_attempt(this: &mut Projected<'_, B>, slot: &SlotOf<B>) -> Option<Poll<()>> {
        let ctx = this
            .extra
            .as_ref()
            .and_then(|e| e.ctx.as_ref())
            .map(|c| c.with_attempt(*this.attempts + 1));
        let made = catch_unwind(AssertUnwindSafe(|| this.body.attempt(ctx)));
        match made {
            Ok(Some(attempt)) => {
                *this.attempts += 1;
                if *this.attempts > 1 {
                    slot.shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                }
                this.trace.attempt(*this.attempts);
                this.attempt.set(Some(attempt));
                None
            }
            Ok(None) => Some(Self::finish(
                this,
                slot,
                Err(JobError::Stopped),
                Final::Stopped,
            )),
            Err(payload) => {
                *this.attempts += 1;
                let p = Panic::from_payload(&*payload);
                Some(Self::finish(
                    this,
                    slot,
                    Err(JobError::Panicked(p)),
                    Final::Panicked,
                ))
            }
        }
    }

    /// The interrupts that are already known, without registering anything.
    ///
    /// The deadline is checked against the clock, not only through its
    /// timer: an attempt that fails without ever waiting, or a backoff that
    /// ends together with the deadline, must not start another attempt.
    fn interrupted(this: &mut Projected<'_, B>, slot: &SlotOf<B>) -> Option<Interrupt> {
        if slot.cancel_requested() || Self::token(this.body, slot).is_cancelled() {
            return Some(Interrupt::Cancelled);
        }
        if !*this.deadline_passed {
            let extra = this.extra.as_mut()?;
            let deadline = extra.deadline?;
            let now = slot.shared.now();
            if now < deadline {
                return None;
            }
            *this.deadline_passed = true;
            // The job's run ends here: its record reuses this reading.
            extra.expired_at = Some(now);
        }
        Some(Interrupt::TimedOut)
    }

    /// Arms every interrupt source (cancel, token, deadline) so that any of
    /// them wakes the task, and returns the one that already fired. Arming
    /// before checking makes it free of lost wake-ups.
    fn poll_interrupts(
        this: &mut Projected<'_, B>,
        slot: &SlotOf<B>,
        cx: &mut Context<'_>,
        local: Option<&mut WorkerLocal>,
    ) -> Option<Interrupt> {
        slot.register_task_waker(cx.waker());
        if slot.cancel_requested() {
            return Some(Interrupt::Cancelled);
        }
        // The pool's token is waited for by the worker (it outlives the
        // job), a job's own token by the job.
        let own_token = this.body.meta().and_then(|m| m.token.as_ref());
        let wait = match (own_token, local) {
            (None, Some(local)) => &mut local.pool_token,
            _ => &mut extra(this.extra).token_wait,
        };
        let wait = wait.get_or_insert_with(|| Self::token(this.body, slot).cancelled());
        if Pin::new(wait).poll(cx).is_ready() {
            return Some(Interrupt::Cancelled);
        }
        let extra = this.extra.as_mut()?;
        let deadline = extra.deadline?;
        let wait = extra.deadline_wait.get_or_insert_with(|| {
            #[cfg(not(workerpoolxt_loom))]
            if let Some(deadlines) = &slot.shared.deadlines {
                // Wakes this task once the deadline passed (at once if it
                // has), which then reads the clock (`interrupted`).
                return DeadlineWait::Registered(deadlines.register(deadline, cx.waker()));
            }
            DeadlineWait::Sleep(slot.shared.sleep_until(deadline))
        });
        match wait {
            DeadlineWait::Sleep(sleep) => {
                if Pin::new(sleep).poll(cx).is_ready() {
                    *this.deadline_passed = true;
                    extra.deadline_wait = None;
                    return Some(Interrupt::TimedOut);
                }
            }
            #[cfg(not(workerpoolxt_loom))]
            DeadlineWait::Registered(r) => r.set_waker(cx.waker()),
        }
        None
    }

    fn interrupt(
        this: &mut Projected<'_, B>,
        slot: &SlotOf<B>,
        cx: &mut Context<'_>,
        why: Interrupt,
    ) -> Poll<()> {
        if let Some(extra) = this.extra.as_mut() {
            if let Some(ctx) = extra.ctx.as_ref() {
                ctx.interrupt();
            }
            extra.backoff_sleep = None;
        }
        let (err, how) = why.into_error();
        this.trace.interrupted(how);
        if *this.phase == Phase::Running && this.body.is_blocking() && this.attempt.is_some() {
            // A blocking closure cannot be stopped: resolve now, keep the slot
            // until it returns. Counted as draining first, so the ledger never
            // shows it both running and finished.
            Self::uncount(this.counted_running, slot);
            slot.shared.draining.fetch_add(1, Ordering::SeqCst);
            Self::complete(this, slot, Err(err), how);
            *this.phase = Phase::Draining;
            return Self::drain(this, slot, cx);
        }
        match drop_attempt(this.attempt.as_mut()) {
            Ok(()) => Self::finish(this, slot, Err(err), how),
            Err(p) => Self::finish(this, slot, Err(JobError::Panicked(p)), Final::Panicked),
        }
    }

    /// Awaits an interrupted blocking closure to its end; its result (or
    /// panic) is dropped, the handle has resolved already.
    fn drain(this: &mut Projected<'_, B>, slot: &SlotOf<B>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(a) = this.attempt.as_mut().as_pin_mut() {
            if let Ok(Poll::Pending) = catch_unwind(AssertUnwindSafe(|| a.poll(cx))) {
                return Poll::Pending;
            }
        }
        let _ = drop_attempt(this.attempt.as_mut());
        *this.phase = Phase::Done;
        slot.shared.draining.fetch_sub(1, Ordering::SeqCst);
        Poll::Ready(())
    }

    fn complete(
        this: &mut Projected<'_, B>,
        slot: &SlotOf<B>,
        result: Result<B::Output, JobError<B::Error>>,
        how: Final,
    ) {
        if let Some(extra) = this.extra.as_mut() {
            extra.deadline_wait = None;
            extra.token_wait = None;
        }
        let record = Self::record(
            *this.attempts,
            *this.started,
            this.extra.as_mut().and_then(|e| e.expired_at.take()),
            slot,
        );
        this.trace.finished(how);
        Self::uncount(this.counted_running, slot);
        slot.complete(result, record, how);
    }

    /// A started job's handle is about to resolve: it leaves `running`
    /// (a draining closure is counted in `draining` instead).
    fn uncount(counted: &mut bool, slot: &SlotOf<B>) {
        if std::mem::take(counted) {
            slot.shared.job_ended();
        }
    }

    /// The record of a job that started at `started` and ends now (or when
    /// its deadline was found passed, `expired_at`: that reading is taken
    /// just before the job is ended).
    fn record(
        attempts: u32,
        started: u64,
        expired_at: Option<Instant>,
        slot: &SlotOf<B>,
    ) -> Record {
        let shared = &slot.shared;
        let now = expired_at.unwrap_or_else(|| shared.now());
        let ended = shared.since_epoch(now);
        shared.leave_hint(now, ended);
        Record {
            attempts,
            queued: started.saturating_sub(slot.submitted),
            run: ended.saturating_sub(started),
        }
    }

    fn finish(
        this: &mut Projected<'_, B>,
        slot: &SlotOf<B>,
        result: Result<B::Output, JobError<B::Error>>,
        how: Final,
    ) -> Poll<()> {
        Self::complete(this, slot, result, how);
        *this.phase = Phase::Done;
        Poll::Ready(())
    }
}

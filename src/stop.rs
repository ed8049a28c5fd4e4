//! The ends of a pool: [`Stop`], the future of
//! [`Pool::stop`](crate::Pool::stop) and [`Pool::stop_wait`](crate::Pool::stop_wait),
//! and [`Shutdown`], of [`Pool::shutdown`](crate::Pool::shutdown): a stop
//! with a grace period, then a cancel of what still runs, and a report.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::future::FusedFuture;

use crate::handle::block_outside_async_jobs;
use crate::metrics::Metrics;
use crate::runtime::{current_job, Sleep};
use crate::shared::{Listening, Shared};
use crate::sync::Arc;

/// The future of [`Pool::stop`](crate::Pool::stop) and [`Pool::stop_wait`](crate::Pool::stop_wait): resolves once every
/// worker has left.
///
/// The stop itself began when it was created; dropping this future only
/// stops waiting.
///
/// Awaited inside a job of the same pool (an async job, or a blocking
/// closure that blocks on it), it cannot wait for its own job's worker: it
/// resolves once every *other* worker has left, except those whose jobs
/// await a stop of this pool too. Jobs still queued (after `stop_wait`)
/// then run once the calling job has ended.
#[must_use = "futures do nothing unless you .await or poll them (the stop has begun regardless)"]
pub struct Stop {
    shared: Arc<Shared>,
    listening: Listening,
    /// Counted in `Shared::stops_inside`: polled inside a job of this pool.
    inside: bool,
    done: bool,
}

impl Stop {
    pub(crate) fn new(shared: Arc<Shared>) -> Stop {
        Stop {
            shared,
            listening: Listening::default(),
            inside: false,
            done: false,
        }
    }

    /// Blocks the calling thread until the stop completes: for callers
    /// without an executor (a plain `main`, a blocking closure).
    ///
    /// # Panics
    ///
    /// Called inside an async job: it would block a thread that runs the
    /// pool's workers. Inside a blocking job of this pool, it waits for
    /// every other job, as awaiting the stop there does.
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// let pool = Pool::new(2);
    /// let handle = pool.submit_blocking(|| 6 * 7);
    /// pool.stop_wait().wait();
    /// assert!(handle.is_finished());
    /// ```
    pub fn wait(self) {
        block_outside_async_jobs("Stop::wait()", self);
    }

    /// No longer counted as a stop awaited inside a job.
    fn leave_inside(&mut self) {
        if std::mem::take(&mut self.inside) {
            self.shared.stop_inside(false);
        }
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.leave_inside();
    }
}

impl Future for Stop {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(());
        }
        if !this.inside && current_job::get().is_some_and(|job| this.shared.holds_jobs_of(job.pool))
        {
            this.inside = true;
            this.shared.stop_inside(true);
        }
        loop {
            if this.shared.stops_resolved(this.inside) {
                this.done = true;
                this.listening.stop();
                this.leave_inside();
                return Poll::Ready(());
            }
            let shared = &this.shared;
            if this
                .listening
                .wait(cx, || shared.listen_quiet())
                .is_pending()
            {
                return Poll::Pending;
            }
        }
    }
}

impl FusedFuture for Stop {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl fmt::Debug for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stop").field("done", &self.done).finish()
    }
}

/// What a [`Pool::shutdown`](crate::Pool::shutdown) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Jobs that ended on their own while the shutdown waited (any
    /// outcome: a value, an error, a timeout, a panic, a cancel by their
    /// handle or token), within the grace period or, for blocking
    /// closures told to stop, after it.
    pub finished: u64,
    /// Running jobs the shutdown cancelled when the grace period ended.
    pub cancelled: u64,
    /// Queued jobs that never started (their handles resolved
    /// [`JobError::Stopped`](crate::JobError::Stopped)), and submits
    /// refused while the shutdown ran.
    pub stopped: u64,
}

/// The future of [`Pool::shutdown`](crate::Pool::shutdown); resolves to a
/// [`ShutdownReport`] once every worker has left.
///
/// Dropping it before it resolves leaves the pool stopping, as a dropped
/// [`Stop`] does; running jobs are cancelled only if the grace period had
/// ended already.
#[must_use = "the shutdown's stop has begun; await it for its grace period, its cancel and its report"]
pub struct Shutdown {
    shared: Arc<Shared>,
    stop: Stop,
    /// The grace period's end; `None` once it ended (or was zero).
    grace: Option<Sleep>,
    /// The metrics just before the stop began, and the jobs cancelled by
    /// an earlier shutdown of the pool.
    start: Metrics,
    aborted_before: u64,
    /// The report, once done.
    report: ShutdownReport,
    done: bool,
}

impl Shutdown {
    /// Begins the shutdown: `stop` has begun already, with `before` the
    /// metrics read just before it.
    pub(crate) fn new(shared: Arc<Shared>, stop: Stop, before: Metrics, grace: Duration) -> Self {
        let core = shared.core();
        // Jobs may end while the stop drops the queue: measured from before
        // the stop, they count as finished.
        let start = before;
        // A grace too long to express lets the jobs run to their end.
        let grace = (!grace.is_zero()).then(|| core.sleep_for(grace));
        let report = ShutdownReport::default();
        let aborted_before = core.aborted_jobs();
        let shutdown = Shutdown {
            shared,
            stop,
            grace,
            start,
            aborted_before,
            report,
            done: false,
        };
        if shutdown.grace.is_none() {
            shutdown.shared.abort_running();
        }
        shutdown
    }

    /// The report, once the stop completed.
    fn report(&self) -> ShutdownReport {
        let core = self.shared.core();
        let end = core.metrics();
        let cancelled = core.aborted_jobs() - self.aborted_before;
        let ended = |m: &Metrics| m.succeeded + m.failed + m.timed_out + m.cancelled + m.panicked;
        ShutdownReport {
            finished: (ended(&end) - ended(&self.start)).saturating_sub(cancelled),
            cancelled,
            stopped: end.stopped - self.start.stopped,
        }
    }
}

impl Future for Shutdown {
    type Output = ShutdownReport;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ShutdownReport> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(this.report);
        }
        if let Some(grace) = &mut this.grace {
            if Pin::new(grace).poll(cx).is_ready() {
                this.grace = None;
                this.shared.abort_running();
            }
        }
        if Pin::new(&mut this.stop).poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.done = true;
        this.report = this.report();
        Poll::Ready(this.report)
    }
}

impl FusedFuture for Shutdown {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("grace_ended", &self.grace.is_none())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

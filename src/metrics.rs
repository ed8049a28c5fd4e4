//! [`Metrics`]: counters of what the pool did, read as a snapshot.

use crate::sync::{AtomicU64, Ordering};

/// A snapshot of a pool's counters, from [`Pool::metrics`](crate::Pool::metrics).
///
/// Every submission is counted once in `submitted` and, at any moment, in
/// exactly one of `waiting`, `running` or a final counter (`succeeded`,
/// `failed`, `timed_out`, `cancelled`, `panicked`, `stopped`, `rejected`).
/// A blocking closure that was cancelled or timed out while running is
/// final from the moment its handle resolves; while it still runs it is also
/// counted in `draining` (not in `running`), so busy slots are
/// `running + draining` ([`Pool::running`](crate::Pool::running)).
/// So when the pool is quiet (no submit, cancel or job in flight while the
/// snapshot is taken):
///
/// `submitted == waiting + running + succeeded + failed + timed_out + cancelled + panicked + stopped + rejected`
/// (the last seven summed are [`finished`](Metrics::finished))
///
/// The counters are read one by one, so a snapshot taken while jobs move may
/// be off by the jobs that moved during it. Taking a snapshot never blocks
/// or waits for the pool: it is cheap enough to take per job.
///
/// # Examples
///
/// ```
/// use workerpoolxt::Pool;
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(2);
/// pool.submit(async { 1 }).await.unwrap();
/// pool.stop_wait().await;
/// let m = pool.metrics();
/// assert_eq!((m.submitted, m.succeeded, m.waiting, m.running), (1, 1, 0, 0));
/// # });
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Submissions of any kind, accepted or refused.
    pub submitted: u64,
    /// Jobs queued and not started (nor cancelled, nor stopped) yet.
    pub waiting: u64,
    /// Jobs started whose handles have not resolved yet.
    pub running: u64,
    /// Blocking closures whose handles resolved (`Cancelled`, `TimedOut`)
    /// but which have not returned yet: they still hold their slots.
    pub draining: u64,
    /// Jobs that returned a value.
    pub succeeded: u64,
    /// Jobs whose last attempt returned an error.
    pub failed: u64,
    /// Jobs whose deadline or timeout passed.
    pub timed_out: u64,
    /// Jobs cancelled by their handle or token.
    pub cancelled: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs dropped unstarted by a stop, or submitted to a stopped pool.
    pub stopped: u64,
    /// Submissions refused because the bounded queue was full (whether the
    /// handle resolved [`JobError::QueueFull`](crate::JobError::QueueFull) or a
    /// `try_submit*` gave the job back).
    pub rejected: u64,
    /// Retries: attempts after the first, over all jobs (not a final counter).
    pub retried: u64,
}

impl Metrics {
    /// The submissions that have a final outcome: `succeeded + failed +
    /// timed_out + cancelled + panicked + stopped + rejected`. At a quiet
    /// point `submitted == waiting + running + finished()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{JobError, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let ok = pool.submit(async { 1 });
    /// let gone = pool.submit(std::future::pending::<()>());
    /// gone.cancel();
    /// assert_eq!(ok.await, Ok(1));
    /// assert_eq!(gone.await, Err(JobError::Cancelled));
    /// // A resolved handle is always counted.
    /// let m = pool.metrics();
    /// assert_eq!(m.finished(), 2);
    /// assert_eq!(m.submitted, m.waiting + m.running + m.finished());
    /// # });
    /// ```
    pub fn finished(&self) -> u64 {
        self.succeeded
            + self.failed
            + self.timed_out
            + self.cancelled
            + self.panicked
            + self.stopped
            + self.rejected
    }
}

/// How one job ended: which final counter it bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Panicked,
    Stopped,
    Rejected,
}

impl End {
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            End::Succeeded => "succeeded",
            End::Failed => "failed",
            End::TimedOut => "timed_out",
            End::Cancelled => "cancelled",
            End::Panicked => "panicked",
            End::Stopped => "stopped",
            End::Rejected => "rejected",
        }
    }
}

/// The live counters behind [`Metrics`]. `waiting` and `running` are the
/// gauges of the pool's ledger (`src/core.rs`), not here.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Submissions refused before they got a place in the queue (the pool
    /// had stopped, or a bounded queue was full). `submitted` is these plus
    /// the places handed out (`Core::enqueued`), which submits count
    /// anyway: no counter of its own to bump on every submit.
    pub(crate) refused: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    cancelled: AtomicU64,
    panicked: AtomicU64,
    stopped: AtomicU64,
    rejected: AtomicU64,
    pub(crate) retried: AtomicU64,
}

impl Counters {
    pub(crate) fn count(&self, end: End) {
        let c = match end {
            End::Succeeded => &self.succeeded,
            End::Failed => &self.failed,
            End::TimedOut => &self.timed_out,
            End::Cancelled => &self.cancelled,
            End::Panicked => &self.panicked,
            End::Stopped => &self.stopped,
            End::Rejected => &self.rejected,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `places` reads `Core::enqueued`, the places handed out in the queue.
    pub(crate) fn snapshot(
        &self,
        waiting: u64,
        running: u64,
        draining: u64,
        places: impl FnOnce() -> u64,
    ) -> Metrics {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        // Finals first and `submitted` last: a job counted in a final counter
        // was submitted before, so the snapshot never shows more finished
        // jobs than submitted ones.
        let mut m = Metrics {
            waiting,
            running,
            draining,
            succeeded: r(&self.succeeded),
            failed: r(&self.failed),
            timed_out: r(&self.timed_out),
            cancelled: r(&self.cancelled),
            panicked: r(&self.panicked),
            stopped: r(&self.stopped),
            rejected: r(&self.rejected),
            retried: r(&self.retried),
            submitted: 0,
        };
        m.submitted = places() + r(&self.refused);
        m
    }
}

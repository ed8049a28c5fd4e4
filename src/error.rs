//! Why a job produced no value.

use std::any::Any;
use std::convert::Infallible;
use std::error::Error;
use std::fmt;

/// Why a job's handle resolved without a value.
///
/// `E` is the job's own error type: [`Pool::submit`](crate::Pool::submit) and
/// [`Pool::submit_blocking`](crate::Pool::submit_blocking) jobs cannot fail on
/// their own, so theirs is [`Infallible`].
///
/// `JobError<E>` is `Error + Send + Sync` whenever `E` is.
///
/// # Examples
///
/// ```
/// use workerpoolxt::{Job, JobError, Pool};
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(2);
/// let handle = pool.submit_job(Job::new(|_ctx| async { Err::<(), _>("no route") }));
/// match handle.await {
///     Err(JobError::Failed(e)) => assert_eq!(e, "no route"),
///     other => panic!("unexpected {other:?}"),
/// }
/// # });
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError<E = Infallible> {
    /// The job returned `Err(e)` on its last attempt.
    Failed(E),
    /// The job's deadline or timeout passed before it finished (or before it
    /// started: a job whose deadline passes while it is queued never runs).
    TimedOut,
    /// The job was cancelled, through [`ResultHandle::cancel`](crate::ResultHandle::cancel)
    /// or its [`CancelToken`](crate::CancelToken).
    Cancelled,
    /// The job panicked (while being polled, created, run or dropped).
    Panicked(Panic),
    /// The pool stopped before the job could start, or the job was submitted
    /// to a pool that had already stopped, or the executor running the pool's
    /// workers dropped the job's worker (see [`Builder::spawner`](crate::Builder::spawner)).
    Stopped,
    /// The job was submitted with a plain `submit*` call while the pool's
    /// bounded queue ([`Builder::queue_capacity`](crate::Builder::queue_capacity))
    /// was full. The `try_submit*` calls give the job back instead, and the
    /// `*_wait` calls wait for room.
    QueueFull,
}

impl<E> JobError<E> {
    /// Returns `true` for [`JobError::TimedOut`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, JobError::TimedOut)
    }

    /// Returns `true` for [`JobError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JobError::Cancelled)
    }

    /// Returns `true` for [`JobError::Panicked`].
    pub fn is_panic(&self) -> bool {
        matches!(self, JobError::Panicked(_))
    }

    /// Returns `true` for [`JobError::Stopped`].
    pub fn is_stopped(&self) -> bool {
        matches!(self, JobError::Stopped)
    }

    /// Returns the job's own error, if it failed with one.
    pub fn into_failed(self) -> Option<E> {
        match self {
            JobError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for JobError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed(e) => write!(f, "job failed: {e}"),
            JobError::TimedOut => f.write_str("job timed out"),
            JobError::Cancelled => f.write_str("job was cancelled"),
            JobError::Panicked(p) => write!(f, "job panicked: {p}"),
            JobError::Stopped => f.write_str("pool stopped before the job could run"),
            JobError::QueueFull => f.write_str("the pool's queue was full"),
        }
    }
}

impl<E: Error + 'static> Error for JobError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            JobError::Failed(e) => Some(e),
            JobError::Panicked(p) => Some(p),
            _ => None,
        }
    }
}

/// The panic of a job: its message, kept so it can be reported.
///
/// The payload itself is dropped where the panic was caught (it need not be
/// `Sync`); a payload that is neither a `&str` nor a `String` has the message
/// `"Box<dyn Any>"`, as in the standard panic hook.
///
/// # Examples
///
/// ```
/// use workerpoolxt::{JobError, Pool};
///
/// let pool = Pool::new(1);
/// let err = pool.submit(async { panic!("boom") }).wait().unwrap_err();
/// # #[allow(unreachable_code)]
/// match err {
///     JobError::Panicked(p) => assert_eq!(p.message(), "boom"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    // Boxed twice on purpose: one pointer wide, so that `JobError` (in every
    // job's cell) stays small; the extra allocation happens only on a
    // panic.
    #[allow(clippy::box_collection)]
    message: Box<String>,
}

/// Drops what a `catch_unwind` caught, containing a panic of the payload's
/// own `Drop` (whose payload, a panic within a panic, is leaked rather than
/// dropped in turn).
pub(crate) fn discard(payload: Box<dyn Any + Send>) {
    if let Err(nested) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        drop(payload);
    })) {
        std::mem::forget(nested);
    }
}

impl Panic {
    pub(crate) fn from_payload(payload: &(dyn Any + Send)) -> Panic {
        let message: &str = if let Some(s) = payload.downcast_ref::<&'static str>() {
            s
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s
        } else {
            "Box<dyn Any>"
        };
        Panic {
            message: Box::new(message.to_owned()),
        }
    }

    /// The panic that a `catch_unwind` caught, its payload dropped (see
    /// [`discard`]).
    pub(crate) fn caught(payload: Box<dyn Any + Send>) -> Panic {
        let p = Panic::from_payload(&*payload);
        discard(payload);
        p
    }

    /// [`caught`](Self::caught), from user code that the pool called on a
    /// job's behalf outside the job: `what` names that code in the message.
    pub(crate) fn caught_in(what: &str, payload: Box<dyn Any + Send>) -> Panic {
        let inner = Panic::caught(payload);
        Panic {
            message: Box::new(format!("{what} panicked: {}", inner.message)),
        }
    }

    /// The panic's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for Panic {}

/// A pool configuration that cannot work, refused by
/// [`Builder::try_build`](crate::Builder::try_build) and [`Pool::resize`](crate::Pool::resize).
///
/// # Examples
///
/// ```
/// use workerpoolxt::Pool;
///
/// let err = Pool::builder().max_workers(0).try_build().unwrap_err();
/// assert!(err.to_string().contains("max_workers"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_workers` was 0: a pool without workers could never run a job.
    ZeroWorkers,
    /// `queue_capacity` was 0: no job could ever be queued.
    ZeroCapacity,
    /// `rate_limit(n, per)` had `n == 0` or a zero `per`: no job could
    /// ever start.
    ZeroRate,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroWorkers => f.write_str(
                "max_workers must be at least 1: a pool with no workers could never run a job",
            ),
            ConfigError::ZeroCapacity => f.write_str(
                "queue_capacity must be at least 1 (leave it unset for an unbounded queue)",
            ),
            ConfigError::ZeroRate => f.write_str(
                "rate_limit(n, per) needs n of at least 1 and a per longer than zero (leave it unset for no limit)",
            ),
        }
    }
}

impl Error for ConfigError {}

/// A job that a `try_submit*` call refused, given back.
///
/// # Examples
///
/// ```
/// use workerpoolxt::{Pool, TrySubmitError};
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(1);
/// pool.stop().await;
/// match pool.try_submit(async { 1 }) {
///     Err(TrySubmitError::Stopped(job)) => assert_eq!(job.await, 1),
///     _ => panic!("a stopped pool takes no job"),
/// }
/// # });
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum TrySubmitError<J> {
    /// The pool's bounded queue was full.
    Full(J),
    /// The pool has stopped (or is stopping).
    Stopped(J),
}

impl<J> TrySubmitError<J> {
    /// Gives the refused job back.
    pub fn into_inner(self) -> J {
        match self {
            TrySubmitError::Full(j) | TrySubmitError::Stopped(j) => j,
        }
    }

    /// Returns `true` if the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySubmitError::Full(_))
    }
}

impl<J> fmt::Debug for TrySubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySubmitError::Full(_) => f.write_str("Full(..)"),
            TrySubmitError::Stopped(_) => f.write_str("Stopped(..)"),
        }
    }
}

impl<J> fmt::Display for TrySubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySubmitError::Full(_) => f.write_str("the pool's queue is full"),
            TrySubmitError::Stopped(_) => f.write_str("the pool has stopped"),
        }
    }
}

impl<J> Error for TrySubmitError<J> {}

/// A job that a wait-for-room submit gave back because the pool stopped
/// while it waited.
///
/// # Examples
///
/// ```
/// use workerpoolxt::Pool;
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(1);
/// pool.stop().await;
/// let refused = pool.submit_wait(async { 1 }).await.unwrap_err();
/// assert_eq!(refused.into_inner().await, 1);
/// # });
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SubmitError<J>(pub J);

impl<J> SubmitError<J> {
    /// Gives the refused job back.
    pub fn into_inner(self) -> J {
        self.0
    }
}

impl<J> fmt::Debug for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubmitError(..)")
    }
}

impl<J> fmt::Display for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the pool has stopped")
    }
}

impl<J> Error for SubmitError<J> {}

#[allow(dead_code)]
fn _assert_error_send_sync() {
    fn is<T: Error + Send + Sync + 'static>() {}
    is::<JobError>();
    is::<JobError<std::io::Error>>();
    is::<ConfigError>();
    is::<TrySubmitError<()>>();
    is::<SubmitError<()>>();
}

//! [`ResultHandle`] and [`Outcome`]: the caller's side of a job.
//!
//! A handle owns one reference to its job's cell (`src/cell.rs`) and reads
//! the outcome through the cell's header (`src/header.rs`) once the job's
//! entry has published it.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::future::FusedFuture;

use crate::cell::{CancelRef, HandleRef};
use crate::error::JobError;
use crate::header::{Header, Name};
use crate::id::JobId;
use crate::runtime::current_job;

/// The caller's side of a submitted job: a future of its result.
///
/// `ResultHandle<T, E>` resolves to `Ok(T)` or to a [`JobError<E>`] that says
/// why there is no value. Every handle resolves exactly once, on every path:
/// success, failure, timeout, cancel, panic, or a stop of the pool.
///
/// It is `Send`, `Unpin` and a [`FusedFuture`], so it goes into
/// `futures::select!` without `.fuse()`, and `&mut handle` can be awaited in a
/// loop or a `select!` without losing the result.
///
/// # When it resolves
///
/// By the time a handle resolves, its job's future or closure, and
/// everything the job captured, has been dropped: its destructors have run.
/// Two cases resolve first, at once: a job cancelled while still queued (it
/// is dropped unstarted when a worker reaches it, or when the pool stops),
/// and a blocking closure interrupted while it runs (see
/// [`cancel`](Self::cancel)).
///
/// # Drop
///
/// Dropping a handle **abandons the result, not the job**: the job runs to its
/// end and keeps its worker (its slot) until then. Use [`cancel`](Self::cancel)
/// to stop the job.
///
/// # Cancel safety
///
/// Awaiting `&mut handle` is cancel-safe: if a `select!` picks another branch,
/// the result stays in the handle for a later poll, [`try_take`](Self::try_take)
/// or [`wait`](Self::wait).
///
/// Once the handle has produced its result (by `.await`, `try_take` or `wait`)
/// it is terminated: polling it again returns `Pending` and never panics, as
/// with `futures::future::Fuse`.
///
/// # Examples
///
/// ```
/// use workerpoolxt::Pool;
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(4);
/// let a = pool.submit(async { 1 });
/// let b = pool.submit_blocking(|| 2);
/// assert_eq!(a.await.unwrap() + b.await.unwrap(), 3);
/// # });
/// ```
#[must_use = "dropping a handle abandons the job's result (the job still runs)"]
pub struct ResultHandle<T, E = Infallible> {
    /// The job's cell, of which the handle owns the [`HANDLE_REF`] reference.
    cell: HandleRef<T, E>,
    id: JobId,
}

impl<T, E> ResultHandle<T, E> {
    pub(crate) fn new(cell: HandleRef<T, E>, id: JobId) -> Self {
        ResultHandle { cell, id }
    }

    /// The job's id: unique in its pool, increasing in submission order,
    /// the same as its [`JobContext::id`](crate::JobContext::id) and its
    /// [`Outcome::id`].
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// let pool = Pool::new(1);
    /// let first = pool.submit(async {});
    /// let second = pool.submit(async {});
    /// assert!(first.id() < second.id());
    /// ```
    pub fn id(&self) -> JobId {
        self.id
    }

    fn header(&self) -> &Header {
        self.cell.header()
    }

    /// The outcome, if the job is complete and it was not taken yet.
    #[allow(unsafe_code)]
    fn take(&mut self) -> Option<Outcome<T, E>> {
        let cell = &self.cell;
        // SAFETY: `Header::take` calls this at most once, only when the
        // result is stored and not taken, and marks it taken right after;
        // `&mut self` keeps another take of this handle from overlapping.
        let resolved = cell.header().take(|| unsafe { cell.read_stored() })?;
        Some(Outcome {
            id: self.id,
            name: cell.header().name.clone(),
            duration: resolved.run,
            queued: resolved.queued,
            attempts: resolved.attempts,
            result: resolved.result,
        })
    }

    fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcome<T, E>>> {
        if self.header().is_complete() {
            return Poll::Ready(self.take());
        }
        self.header().register(cx);
        // Completed meanwhile: the publish may have taken the waker before it
        // was stored, so look again rather than wait for a wake.
        if self.header().is_complete() {
            return Poll::Ready(self.take());
        }
        Poll::Pending
    }

    /// Cancels the job.
    ///
    /// - Queued: it will never start; the handle resolves
    ///   [`JobError::Cancelled`] at once.
    /// - Running async job: its future is dropped at the worker's next step,
    ///   then the handle resolves `Cancelled` (so when the handle reports
    ///   `Cancelled`, the job's destructors have run and its slot is free).
    /// - Running blocking closure: it cannot be stopped. Its
    ///   [`JobContext`](crate::JobContext) token is cancelled so it can notice,
    ///   the handle resolves `Cancelled` at once, and the slot stays busy until
    ///   the closure returns (its value is dropped).
    /// - Already finished: nothing changes; the result stays available.
    ///
    /// A cancel wakes only the worker that runs the job; no other job is
    /// polled for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{JobError, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(1);
    /// let forever = pool.submit(std::future::pending::<()>());
    /// forever.cancel();
    /// assert_eq!(forever.await, Err(JobError::Cancelled));
    /// # });
    /// ```
    pub fn cancel(&self) {
        self.header().cancel();
    }

    /// Whether the job has finished and its result is (or was) ready.
    ///
    /// This turns `true` as soon as the result is *ready*, before it is
    /// taken: to guard a `select!` branch on `&mut handle`, use
    /// [`FusedFuture::is_terminated`] (true once the result was *taken*),
    /// or the branch is switched off before it reads the result.
    pub fn is_finished(&self) -> bool {
        self.header().is_complete()
    }

    /// Takes the result if the job has finished, without waiting ("poll later").
    ///
    /// Returns `None` while the job is queued or running, and after the result
    /// has been taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(1);
    /// let mut handle = pool.submit(async { 5 });
    /// pool.stop_wait().await; // the job has run
    /// assert_eq!(handle.try_take(), Some(Ok(5)));
    /// assert_eq!(handle.try_take(), None);
    /// # });
    /// ```
    pub fn try_take(&mut self) -> Option<Result<T, JobError<E>>> {
        self.take().map(|o| o.result)
    }

    /// Blocks the calling thread until the job finishes, and returns its result.
    ///
    /// For synchronous callers, and for blocking jobs (`submit_blocking`,
    /// `Job::blocking`), which run on threads of their own. Inside async
    /// code, `.await` the handle instead.
    ///
    /// # Panics
    ///
    /// At once, without waiting, when called inside an async job of any
    /// pool (whatever runs its workers): blocking the thread that runs a
    /// pool's workers could keep the awaited job from ever running. Elsewhere on an executor's thread (a task of your own on
    /// tokio, smol or async-std) it blocks that thread until the job ends;
    /// if the pool's workers run on that same thread (a current-thread
    /// runtime), the job never runs and `wait` never returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// let pool = Pool::new(2);
    /// assert_eq!(pool.submit_blocking(|| 6 * 7).wait(), Ok(42));
    /// ```
    pub fn wait(self) -> Result<T, JobError<E>> {
        self.wait_outcome().result
    }

    fn wait_outcome(self) -> Outcome<T, E> {
        block_outside_async_jobs("ResultHandle::wait()", self.outcome())
    }

    /// A future of the job's full [`Outcome`]: its result with its name,
    /// attempts, run duration and queue wait.
    ///
    /// It consumes the handle; the future it returns is also `Unpin` and a
    /// [`FusedFuture`], so to `select!` on a job and still read its
    /// duration and attempts, turn the handle into its outcome future first.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{Job, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let job = Job::new(|_ctx| async { Ok::<_, String>("hi") }).name("greet");
    /// let outcome = pool.submit_job(job).outcome().await;
    /// assert_eq!(outcome.name(), Some("greet"));
    /// assert_eq!(outcome.attempts(), 1);
    /// assert_eq!(outcome.into_result(), Ok("hi"));
    /// # });
    /// ```
    pub fn outcome(self) -> OutcomeFuture<T, E> {
        OutcomeFuture { handle: self }
    }

    /// The job's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.header().name.as_deref().map(String::as_str)
    }

    /// A handle that can cancel the job from anywhere, and tell whether it
    /// finished, without its result: for when this handle moves into a
    /// [`ResultSet`](crate::ResultSet) or another task.
    ///
    /// ```
    /// use workerpoolxt::{JobError, Pool, ResultSet};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(1);
    /// let handle = pool.submit(std::future::pending::<()>());
    /// let canceller = handle.cancel_handle();
    /// let mut set = ResultSet::new();
    /// set.push(handle);
    /// canceller.cancel();
    /// let outcome = set.join_next().await.unwrap();
    /// assert_eq!(outcome.into_result(), Err(JobError::Cancelled));
    /// assert!(canceller.is_finished());
    /// # });
    /// ```
    pub fn cancel_handle(&self) -> CancelHandle
    where
        T: Send,
        E: Send,
    {
        CancelHandle {
            cell: self.cell.cancel_ref(),
            id: self.id,
        }
    }

    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Outcome<T, E>> {
        match self.poll_take(cx) {
            Poll::Ready(Some(outcome)) => Poll::Ready(outcome),
            // Taken before: a terminated (fused) handle stays pending.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn is_taken(&self) -> bool {
        self.header().is_taken()
    }
}

impl<T, E> Future for ResultHandle<T, E> {
    type Output = Result<T, JobError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_outcome(cx).map(|o| o.result)
    }
}

impl<T, E> FusedFuture for ResultHandle<T, E> {
    fn is_terminated(&self) -> bool {
        self.is_taken()
    }
}

impl<T, E> fmt::Debug for ResultHandle<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultHandle")
            .field("name", &self.header().name)
            .field("finished", &self.is_finished())
            .field("taken", &self.is_taken())
            .finish()
    }
}

/// The future returned by [`ResultHandle::outcome`]: the job's [`Outcome`].
///
/// `Unpin` and a [`FusedFuture`]; cancel-safe like the handle it wraps.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct OutcomeFuture<T, E = Infallible> {
    handle: ResultHandle<T, E>,
}

impl<T, E> OutcomeFuture<T, E> {
    /// Cancels the job; see [`ResultHandle::cancel`].
    pub fn cancel(&self) {
        self.handle.cancel();
    }

    /// Whether the job has finished; see [`ResultHandle::is_finished`].
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Takes the outcome if the job has finished, without waiting.
    pub fn try_take(&mut self) -> Option<Outcome<T, E>> {
        self.handle.take()
    }

    /// Blocks the calling thread until the job finishes; see [`ResultHandle::wait`].
    pub fn wait(self) -> Outcome<T, E> {
        self.handle.wait_outcome()
    }
}

impl<T, E> Future for OutcomeFuture<T, E> {
    type Output = Outcome<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T, E>> {
        self.get_mut().handle.poll_outcome(cx)
    }
}

impl<T, E> FusedFuture for OutcomeFuture<T, E> {
    fn is_terminated(&self) -> bool {
        self.handle.is_taken()
    }
}

impl<T, E> fmt::Debug for OutcomeFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutcomeFuture")
            .field("handle", &self.handle)
            .finish()
    }
}

/// Blocks the calling thread on `future` (the blocking `wait` of `what`).
///
/// # Panics
///
/// Inside an async job: it would block a thread that runs the pool's
/// workers, and what it waits for might never run.
pub(crate) fn block_outside_async_jobs<F: Future>(what: &str, future: F) -> F::Output {
    if current_job::get().is_some_and(|job| !job.blocking) {
        panic!(
            "workerpoolxt: {what} called inside an async job: it would block a thread \
             that runs the pool's workers, and what it waits for might never run; \
             `.await` it instead"
        );
    }
    futures_lite::future::block_on(future)
}

/// Cancels a job from anywhere: `Clone + Send + Sync`, from
/// [`ResultHandle::cancel_handle`]. Like tokio's `AbortHandle`.
///
/// [`cancel`](Self::cancel) does what [`ResultHandle::cancel`] does; the
/// job's handle (wherever it is) then resolves. Dropping a cancel handle
/// does nothing to the job. It keeps the job's small record alive, not its
/// result.
#[derive(Clone)]
pub struct CancelHandle {
    cell: CancelRef,
    id: JobId,
}

impl CancelHandle {
    /// Cancels the job, as [`ResultHandle::cancel`] does: a queued job never
    /// starts, a running async job is dropped, a running blocking closure
    /// is told through its context and its handle resolves at once; a
    /// finished job keeps its result.
    pub fn cancel(&self) {
        self.cell.header().cancel();
    }

    /// Whether the job's handle has resolved (or can resolve without
    /// waiting).
    pub fn is_finished(&self) -> bool {
        self.cell.header().is_complete()
    }

    /// The job's id ([`ResultHandle::id`]).
    pub fn id(&self) -> JobId {
        self.id
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The record of one finished job: workerpoolxt's `Result`.
///
/// Its name, run duration and attempts are kept on every path, errors
/// included: a timed-out, cancelled, panicked or stopped job still says what
/// it was and how long it ran.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use workerpoolxt::{Job, JobError, Pool};
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(1);
/// let job = Job::new(|_ctx| async { Err::<(), _>("nope") })
///     .name("flaky")
///     .retry(2)
///     .backoff(workerpoolxt::Backoff::none());
/// let o = pool.submit_job(job).outcome().await;
/// assert_eq!(o.name(), Some("flaky"));
/// assert_eq!(o.attempts(), 3);
/// assert_eq!(o.result(), Err(&JobError::Failed("nope")));
/// assert!(o.duration() < Duration::from_secs(5));
/// # });
/// ```
pub struct Outcome<T, E = Infallible> {
    pub(crate) id: JobId,
    pub(crate) name: Option<Name>,
    pub(crate) duration: Duration,
    pub(crate) queued: Duration,
    pub(crate) attempts: u32,
    pub(crate) result: Result<T, JobError<E>>,
}

impl<T, E> Outcome<T, E> {
    /// The job's id, as its handle gave it ([`ResultHandle::id`]).
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The job's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref().map(String::as_str)
    }

    /// From the job's first start to its end (to the moment its handle
    /// resolved). Zero for a job that never started.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// From the submit to the job's first start (or to the moment it left the
    /// queue unstarted).
    pub fn queued(&self) -> Duration {
        self.queued
    }

    /// How many attempts ran (0 if the job never started).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The result, borrowed.
    pub fn result(&self) -> Result<&T, &JobError<E>> {
        self.result.as_ref()
    }

    /// The result, owned.
    pub fn into_result(self) -> Result<T, JobError<E>> {
        self.result
    }

    /// Whether the job returned a value.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The error, if the job produced no value.
    pub fn error(&self) -> Option<&JobError<E>> {
        self.result.as_ref().err()
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Debug for Outcome<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcome")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("duration", &self.duration)
            .field("queued", &self.queued)
            .field("attempts", &self.attempts)
            .field("result", &self.result)
            .finish()
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Display for Outcome<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?} after {} attempt(s) in {:?}",
            self.name().unwrap_or("<unnamed>"),
            self.result,
            self.attempts,
            self.duration
        )
    }
}

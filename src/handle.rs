//! [`ResultHandle`] and [`Outcome`]: the caller's side of a job, and the
//! one-shot slot that the job's result travels through.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::future::FusedFuture;

use crate::cell::HandleRef;
use crate::error::JobError;
use crate::job::Name;
use crate::metrics::Final;
use crate::shared::Shared;
use crate::sync::{spin_wait, Arc, AtomicU32, AtomicU8, Ordering, UnsafeCell};

/// The job was taken by a worker (set once, by the job).
const STARTED: u8 = 1 << 0;
/// The handle asked for a cancel (set once, by the handle).
const CANCEL: u8 = 1 << 1;
/// The outcome is stored (set once, under the lock).
const COMPLETE: u8 = 1 << 2;
/// The handle took the outcome (set once, by the handle, under the lock):
/// the handle is terminated. Kept here rather than in the handle, so a
/// handle is one pointer wide.
const TAKEN: u8 = 1 << 3;
/// The job's cell is owned by its queue entry (cleared once, when the entry
/// lets go)...
pub(crate) const ENTRY_REF: u8 = 1 << 4;
/// ...and by its handle (cleared once, when the handle is dropped). Whoever
/// clears the last of the two frees the cell (`src/cell.rs`).
pub(crate) const HANDLE_REF: u8 = 1 << 5;
/// The slot's lock: its result, times and wakers are read and written only
/// while this bit is held (a few instructions at a time, so a waiting side
/// spins briefly, then yields its thread). Setting `COMPLETE` or `TAKEN`
/// happens in the same step that releases it.
const LOCKED: u8 = 1 << 6;

/// The one-shot slot shared by a job and its handle.
///
/// Whoever moves the job out of the queue first wins it: the worker that
/// starts it (`try_start`), the handle that cancels it while queued
/// (`cancel`), or a stop that drops it unstarted (`try_start` too). Both sides
/// set their bit with one `fetch_or` and look at the other's bit in the
/// previous value, so exactly one of them wins.
pub(crate) struct Slot<T, E> {
    /// Reached without a `&Slot` by [`release_ref`] (see there).
    pub(crate) state: AtomicU8,
    /// Attempts made, written before `COMPLETE` is set (beside `state`, in
    /// what would be padding).
    attempts: AtomicU32,
    pub(crate) shared: Arc<Shared>,
    pub(crate) name: Option<Name>,
    /// When it was submitted, in nanoseconds since the pool's epoch.
    pub(crate) submitted: u64,
    /// Guarded by [`LOCKED`] (see [`Slot::locked`]).
    inner: UnsafeCell<Inner<T, E>>,
}

// SAFETY: `inner` (which holds `T`, `E` and wakers, all `Send`) is only
// reached under the `LOCKED` bit of `state`, one thread at a time
// (`Slot::locked`); everything else in the slot is atomic or immutable.
#[allow(unsafe_code)]
unsafe impl<T: Send, E: Send> Sync for Slot<T, E> {}

/// Gives up the cell reference `bit` ([`ENTRY_REF`] or [`HANDLE_REF`]) of
/// the slot whose state word is `state`; `true` if it was the last one (the
/// caller then frees the cell: nothing else can reach it).
///
/// Takes the state word alone, not the slot: once the bit is cleared the
/// other owner may free the cell at any moment, so no reference to the rest
/// of the slot may be alive across this call (as in `Arc`'s drop).
pub(crate) fn release_ref(state: &AtomicU8, bit: u8) -> bool {
    let prev = state.fetch_and(!bit, Ordering::AcqRel);
    debug_assert_ne!(prev & bit, 0, "a reference given up twice");
    prev & (ENTRY_REF | HANDLE_REF) == bit
}

/// How a job went, besides its result: kept small, since every queued job
/// carries one.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Record {
    pub(crate) attempts: u32,
    /// Submit to first start (or to leaving the queue unstarted), in ns.
    pub(crate) queued: u64,
    /// First start to the end, in ns.
    pub(crate) run: u64,
}

struct Inner<T, E> {
    result: Option<Result<T, JobError<E>>>,
    /// Queue wait and run time, in ns.
    times: (u64, u64),
    /// Woken when the outcome is stored.
    handle_waker: Option<Waker>,
    /// Woken when the handle asks for a cancel while the job runs.
    task_waker: Option<Waker>,
}

impl<T, E> Slot<T, E> {
    /// A slot owned by the references in `refs` ([`ENTRY_REF`],
    /// [`HANDLE_REF`]).
    pub(crate) fn new(shared: Arc<Shared>, name: Option<Name>, submitted: u64, refs: u8) -> Self {
        debug_assert_eq!(refs & !(ENTRY_REF | HANDLE_REF), 0);
        Slot {
            state: AtomicU8::new(refs),
            attempts: AtomicU32::new(0),
            shared,
            name,
            submitted,
            inner: UnsafeCell::new(Inner {
                result: None,
                times: (0, 0),
                handle_waker: None,
                task_waker: None,
            }),
        }
    }

    /// Takes the job out of the queue to run it. `false` if the handle
    /// cancelled it first (the handle has then resolved it).
    pub(crate) fn try_start(&self) -> bool {
        let prev = self.state.fetch_or(STARTED, Ordering::AcqRel);
        debug_assert_eq!(prev & STARTED, 0);
        if prev & CANCEL != 0 {
            return false;
        }
        self.shared.left_queue();
        true
    }

    /// Runs `f` on the slot's guarded fields, under the `LOCKED` bit; sets
    /// `bits` (unset so far) in the step that releases it.
    #[allow(unsafe_code)]
    fn locked<R>(&self, bits: u8, f: impl FnOnce(&mut Inner<T, E>) -> R) -> R {
        let mut spins = 0;
        while self.state.fetch_or(LOCKED, Ordering::Acquire) & LOCKED != 0 {
            spin_wait(&mut spins);
        }
        /// Releases the bit even if `f` unwinds (a waker's clone or drop).
        struct Unlock<'a>(&'a AtomicU8, u8);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                let prev = self.0.fetch_xor(LOCKED | self.1, Ordering::Release);
                debug_assert_eq!(prev & (LOCKED | self.1), LOCKED);
            }
        }
        let unlock = Unlock(&self.state, bits);
        // SAFETY: the `LOCKED` bit is held until `unlock` drops: no other
        // access to `inner` overlaps this one.
        let r = self.inner.with_mut(|inner| f(unsafe { &mut *inner }));
        drop(unlock);
        r
    }

    /// Whether exactly the references in `refs` own the slot's cell.
    pub(crate) fn owned_by(&self, refs: u8) -> bool {
        self.state.load(Ordering::Acquire) & (ENTRY_REF | HANDLE_REF) == refs
    }

    /// Whether the handle asked for a cancel.
    pub(crate) fn cancel_requested(&self) -> bool {
        self.state.load(Ordering::Acquire) & CANCEL != 0
    }

    /// Asks the job to wake `waker` on a cancel. Lost-wake-up free: check
    /// [`cancel_requested`](Self::cancel_requested) after this.
    pub(crate) fn register_task_waker(&self, waker: &Waker) {
        self.locked(0, |inner| match &inner.task_waker {
            Some(w) if w.will_wake(waker) => {}
            _ => inner.task_waker = Some(waker.clone()),
        });
    }

    /// Stores the result and wakes the handle. The final counter is bumped
    /// first: a handle that has resolved is always in the metrics.
    pub(crate) fn complete(&self, result: Result<T, JobError<E>>, record: Record, how: Final) {
        self.shared.counters.count(how);
        self.attempts.store(record.attempts, Ordering::Relaxed);
        let (waker, task_waker) = self.locked(COMPLETE, |inner| {
            debug_assert!(inner.result.is_none());
            inner.result = Some(result);
            inner.times = (record.queued, record.run);
            (inner.handle_waker.take(), inner.task_waker.take())
        });
        // Dropped and woken outside the lock.
        drop(task_waker);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Resolves a job that never ran with `error`.
    pub(crate) fn complete_unstarted(&self, error: JobError<E>, how: Final) {
        let record = Record {
            attempts: 0,
            queued: self.shared.now_ns().saturating_sub(self.submitted),
            run: 0,
        };
        self.complete(Err(error), record, how);
    }

    fn outcome(&self, result: Result<T, JobError<E>>, record: Record) -> Outcome<T, E> {
        Outcome {
            name: self.name.clone(),
            duration: Duration::from_nanos(record.run),
            queued: Duration::from_nanos(record.queued),
            attempts: record.attempts,
            result,
        }
    }

    fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) & COMPLETE != 0
    }

    fn cancel(&self) {
        let prev = self.state.fetch_or(CANCEL, Ordering::AcqRel);
        if prev & (CANCEL | COMPLETE) != 0 {
            return;
        }
        if prev & STARTED == 0 {
            // Still queued: the job will never start. Resolve it here, at once,
            // rather than when a worker reaches it in the queue.
            self.shared.left_queue();
            self.complete_unstarted(JobError::Cancelled, Final::Cancelled);
        } else {
            let waker = self.locked(0, |inner| inner.task_waker.take());
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<Outcome<T, E>>> {
        if self.is_complete() {
            return Poll::Ready(self.try_take());
        }
        self.locked(0, |inner| match &inner.handle_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.handle_waker = Some(cx.waker().clone()),
        });
        // Completed meanwhile: `complete` may have taken the waker before it
        // was stored, so look again rather than wait for a wake.
        if self.is_complete() {
            return Poll::Ready(self.try_take());
        }
        Poll::Pending
    }

    /// The result, if the job is complete and it was not taken yet (a
    /// terminated handle gives `None`).
    fn try_take(&self) -> Option<Outcome<T, E>> {
        let state = self.state.load(Ordering::Acquire);
        if state & COMPLETE == 0 || state & TAKEN != 0 {
            return None;
        }
        let (result, times) = self.locked(TAKEN, |inner| (inner.result.take(), inner.times));
        let result = result.expect("a complete slot holds its result until taken");
        Some(self.outcome(result, self.record(times)))
    }

    fn is_taken(&self) -> bool {
        self.state.load(Ordering::Acquire) & TAKEN != 0
    }

    /// The record of a completed job (read under the lock that stored it).
    fn record(&self, (queued, run): (u64, u64)) -> Record {
        Record {
            attempts: self.attempts.load(Ordering::Relaxed),
            queued,
            run,
        }
    }
}

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
}

impl<T, E> ResultHandle<T, E> {
    pub(crate) fn new(cell: HandleRef<T, E>) -> Self {
        ResultHandle { cell }
    }

    fn slot(&self) -> &Slot<T, E> {
        self.cell.slot()
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
        self.slot().cancel();
    }

    /// Whether the job has finished and its result is (or was) ready.
    ///
    /// This turns `true` as soon as the result is *ready*, before it is
    /// taken: to guard a `select!` branch on `&mut handle`, use
    /// [`FusedFuture::is_terminated`] (true once the result was *taken*),
    /// or the branch is switched off before it reads the result.
    pub fn is_finished(&self) -> bool {
        self.slot().is_complete()
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
        self.slot().try_take().map(|o| o.result)
    }

    /// Blocks the calling thread until the job finishes, and returns its result.
    ///
    /// For synchronous callers. Inside async code, `.await` the handle instead:
    /// blocking an executor thread can stall other tasks.
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
        futures_lite::future::block_on(self.outcome())
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
        self.slot().name.as_deref().map(String::as_str)
    }

    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Outcome<T, E>> {
        match self.slot().poll_take(cx) {
            Poll::Ready(Some(outcome)) => Poll::Ready(outcome),
            // Taken before: a terminated (fused) handle stays pending.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn is_taken(&self) -> bool {
        self.slot().is_taken()
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
            .field("name", &self.slot().name)
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
        self.handle.slot().try_take()
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
    pub(crate) name: Option<Name>,
    pub(crate) duration: Duration,
    pub(crate) queued: Duration,
    pub(crate) attempts: u32,
    pub(crate) result: Result<T, JobError<E>>,
}

impl<T, E> Outcome<T, E> {
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

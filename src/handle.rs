//! [`ResultHandle`] and [`Outcome`]: the caller's side of a job, and the
//! job's slot: the state word, times and waker at the head of its cell,
//! which say when the result (stored in the cell, `src/cell.rs`) is there.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::future::FusedFuture;

use crate::cell::HandleRef;
use crate::error::JobError;
use crate::job::Name;
use crate::metrics::Final;
use crate::runtime::current_job;
use crate::shared::Shared;
use crate::sync::{spin_wait, Arc, AtomicU32, AtomicU64, Ordering, UnsafeCell};

/// The job was taken by a worker (set once, by the job).
const STARTED: u32 = 1 << 0;
/// The handle asked for a cancel (set once, by the handle).
const CANCEL: u32 = 1 << 1;
/// The outcome is published (set once, in the step that releases the lock).
const COMPLETE: u32 = 1 << 2;
/// The handle took the outcome (set once, by the handle): the handle is
/// terminated. Kept here rather than in the handle, so a handle is one
/// pointer wide.
const TAKEN: u32 = 1 << 3;
/// The job's cell is owned by its queue entry (cleared once, when the entry
/// lets go)...
pub(crate) const ENTRY_REF: u32 = 1 << 4;
/// ...and by its handle (cleared once, when the handle is dropped). Whoever
/// clears the last of the two frees the cell (`src/cell.rs`).
pub(crate) const HANDLE_REF: u32 = 1 << 5;
/// The slot's lock: the handle's waker (then the run time) is read and
/// written only while this bit is held (a few instructions at a time, so a
/// waiting side spins briefly, then yields its thread). Setting `COMPLETE`
/// happens in the same step that releases it; after that nothing writes the
/// run time, and the handle reads it without the lock (`Slot::take`).
const LOCKED: u32 = 1 << 6;
/// The result is in the cell, where the task was (a value, or an error that
/// carries one). Without it, a complete slot's result is the error that its
/// [code](ErrorCode) names.
const STORED: u32 = 1 << 7;
/// The job never started: no attempt, no run time.
const UNSTARTED: u32 = 1 << 8;
/// Where a result's [`ErrorCode`] sits in the state word (three bits).
const CODE_SHIFT: u32 = 9;

/// The errors that carry nothing, kept in the state word: a job that ends
/// with one needs no room for its result, so its handle can resolve while
/// the task still occupies the cell (a draining blocking closure), or
/// without a task at all (a refused submit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    TimedOut = 1,
    Cancelled = 2,
    Stopped = 3,
    QueueFull = 4,
}

impl ErrorCode {
    /// The code of `error`, if it carries nothing.
    pub(crate) fn of<E>(error: &JobError<E>) -> Option<ErrorCode> {
        match error {
            JobError::TimedOut => Some(ErrorCode::TimedOut),
            JobError::Cancelled => Some(ErrorCode::Cancelled),
            JobError::Stopped => Some(ErrorCode::Stopped),
            JobError::QueueFull => Some(ErrorCode::QueueFull),
            JobError::Failed(_) | JobError::Panicked(_) => None,
        }
    }

    fn bits(self) -> u32 {
        (self as u32) << CODE_SHIFT
    }

    /// The error whose code `state` holds (a complete slot without a stored
    /// result).
    fn error<E>(state: u32) -> JobError<E> {
        const TIMED_OUT: u32 = ErrorCode::TimedOut as u32;
        const CANCELLED: u32 = ErrorCode::Cancelled as u32;
        const STOPPED: u32 = ErrorCode::Stopped as u32;
        const QUEUE_FULL: u32 = ErrorCode::QueueFull as u32;
        match (state >> CODE_SHIFT) & 0b111 {
            TIMED_OUT => JobError::TimedOut,
            CANCELLED => JobError::Cancelled,
            STOPPED => JobError::Stopped,
            QUEUE_FULL => JobError::QueueFull,
            code => unreachable!("no error has code {code}"),
        }
    }
}

/// The one-shot slot shared by a job and its handle: the start of the job's
/// cell, the same for every job (the result itself is stored where the task
/// was, see `src/cell.rs`).
///
/// Whoever moves the job out of the queue first wins it: the worker that
/// starts it (`try_start`), the handle that cancels it while queued
/// (`cancel`), or a stop that drops it unstarted (`try_start` too). Both sides
/// set their bit with one `fetch_or` and look at the other's bit in the
/// previous value, so exactly one of them wins.
///
/// Its fields serve one purpose before the outcome is published and another
/// after, so that a queued job stays small: `aux` holds the queue ticket,
/// then the attempts; `time` the submit time, then the queue wait; `wait`
/// the handle's waker, then the run time.
pub(crate) struct Slot {
    /// Reached without a `&Slot` by [`release_ref`] (see there).
    pub(crate) state: AtomicU32,
    /// The queue ticket's low 32 bits while the job is queued (see
    /// `Shared::full_ticket`); the attempts once a started job is complete.
    /// Written only by the job's entry, which a worker reads the ticket
    /// through before the job starts.
    aux: AtomicU32,
    pub(crate) shared: Arc<Shared>,
    pub(crate) name: Option<Name>,
    /// When it was submitted (ns since the pool's epoch); once complete, how
    /// long it was queued (ns). Written by whoever won the job (`try_start`,
    /// `cancel`) before `COMPLETE`.
    time: AtomicU64,
    /// Guarded by [`LOCKED`] (see [`Slot::locked`]).
    wait: UnsafeCell<Wait>,
}

/// The handle's waker until the outcome is published; the run time (ns)
/// after. Never dropped: a slot is freed only once its outcome is published,
/// which takes the waker out, and a slot whose cell failed to be built
/// (before any handle could register) holds `None`.
union Wait {
    waker: ManuallyDrop<Option<Waker>>,
    run: u64,
}

// SAFETY: `wait` (a waker, which is `Send + Sync`, or a number) is only
// reached under the `LOCKED` bit of `state` (or, once `COMPLETE` is set, read
// alone: nothing writes it any more); everything else in the slot is atomic
// or immutable.
#[allow(unsafe_code)]
unsafe impl Sync for Slot {}

/// Gives up the cell reference `bit` ([`ENTRY_REF`] or [`HANDLE_REF`]) of
/// the slot whose state word is `state`; `true` if it was the last one (the
/// caller then frees the cell: nothing else can reach it).
///
/// Takes the state word alone, not the slot: once the bit is cleared the
/// other owner may free the cell at any moment, so no reference to the rest
/// of the slot may be alive across this call (as in `Arc`'s drop).
pub(crate) fn release_ref(state: &AtomicU32, bit: u32) -> bool {
    let prev = state.fetch_and(!bit, Ordering::AcqRel);
    debug_assert_ne!(prev & bit, 0, "a reference given up twice");
    prev & (ENTRY_REF | HANDLE_REF) == bit
}

/// [`release_ref`] of [`HANDLE_REF`], without the read-modify-write when
/// the entry has given its reference up already (the common case: a handle
/// awaited after its job ended). `true` if it was the last reference.
pub(crate) fn release_handle_ref(state: &AtomicU32) -> bool {
    handle_alone(state.load(Ordering::Acquire)) || release_ref(state, HANDLE_REF)
}

/// Whether the state word `state` (read with `Acquire`) says the handle owns
/// its cell alone: the entry has given its reference up. The entry's release
/// is `AcqRel`, and after it the entry never touches the cell again; nothing
/// else can reach the cell, so from then on the handle reads and writes it
/// (the state word included) without a word to anyone.
fn handle_alone(state: u32) -> bool {
    state & ENTRY_REF == 0
}

/// The gauge a job is counted in until its outcome is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// `waiting`: it never left the queue (it ends unstarted).
    Waiting,
    /// `running`: it started.
    Running,
    /// Neither: it was never queued (a refused submit), or it moved to
    /// `draining`.
    Neither,
}

/// How a job went, besides its result.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Record {
    pub(crate) attempts: u32,
    /// Submit to first start (or to leaving the queue unstarted), in ns.
    pub(crate) queued: u64,
    /// First start to the end, in ns.
    pub(crate) run: u64,
}

impl Slot {
    /// A slot owned by the references in `refs` ([`ENTRY_REF`],
    /// [`HANDLE_REF`]), for a job submitted at `submitted` with queue
    /// ticket `ticket`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        name: Option<Name>,
        submitted: u64,
        ticket: usize,
        refs: u32,
    ) -> Self {
        debug_assert_eq!(refs & !(ENTRY_REF | HANDLE_REF), 0);
        Slot {
            state: AtomicU32::new(refs),
            // Truncated on purpose: see `Shared::full_ticket`.
            aux: AtomicU32::new(ticket as u32),
            shared,
            name,
            time: AtomicU64::new(submitted),
            wait: UnsafeCell::new(Wait {
                waker: ManuallyDrop::new(None),
            }),
        }
    }

    /// The low 32 bits of the job's queue ticket (valid until it starts).
    pub(crate) fn ticket(&self) -> u32 {
        self.aux.load(Ordering::Relaxed)
    }

    /// Takes the job out of the queue, to run it or to end it unstarted.
    /// `false` if the handle cancelled it first (the handle has then
    /// resolved it). The caller counts it out of `waiting`: when it starts,
    /// or when its outcome is published ([`Counted::Waiting`]).
    pub(crate) fn try_start(&self) -> bool {
        let prev = self.state.fetch_or(STARTED, Ordering::AcqRel);
        debug_assert_eq!(prev & STARTED, 0);
        prev & CANCEL == 0
    }

    /// When the job was submitted, in ns since the pool's epoch (valid until
    /// it is complete).
    pub(crate) fn submitted(&self) -> u64 {
        self.time.load(Ordering::Relaxed)
    }

    /// Runs `f` on the slot's guarded field, under the `LOCKED` bit, with the
    /// state word as it was when the lock was taken; sets `bits` (unset so
    /// far) in the step that releases it.
    #[allow(unsafe_code)]
    fn locked<R>(&self, bits: u32, f: impl FnOnce(&mut Wait, u32) -> R) -> R {
        let mut spins = 0;
        let state = loop {
            let prev = self.state.fetch_or(LOCKED, Ordering::Acquire);
            if prev & LOCKED == 0 {
                break prev;
            }
            spin_wait(&mut spins);
        };
        /// Releases the bit even if `f` unwinds (a waker's clone or drop).
        struct Unlock<'a>(&'a AtomicU32, u32);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                let prev = self.0.fetch_xor(LOCKED | self.1, Ordering::Release);
                debug_assert_eq!(prev & (LOCKED | self.1), LOCKED);
            }
        }
        let unlock = Unlock(&self.state, bits);
        // SAFETY: the `LOCKED` bit is held until `unlock` drops: no other
        // access to `wait` overlaps this one.
        let r = self.wait.with_mut(|wait| f(unsafe { &mut *wait }, state));
        drop(unlock);
        r
    }

    /// Whether exactly the references in `refs` own the slot's cell.
    pub(crate) fn owned_by(&self, refs: u32) -> bool {
        self.state.load(Ordering::Acquire) & (ENTRY_REF | HANDLE_REF) == refs
    }

    /// The job's identity while its cell lives (the slot's address), for
    /// the worker waiting in it (`src/watch.rs`).
    pub(crate) fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Whether the handle asked for a cancel.
    pub(crate) fn cancel_requested(&self) -> bool {
        self.state.load(Ordering::Acquire) & CANCEL != 0
    }

    /// Whether the cell holds a result the handle did not take: what its
    /// last owner must drop when it frees the cell.
    pub(crate) fn stored_and_untaken(&self) -> bool {
        self.state.load(Ordering::Acquire) & (STORED | TAKEN) == STORED
    }

    /// Publishes the outcome: the error named by `code`, or (`None`) the
    /// result stored in the cell just before. The final counter is bumped
    /// first, then the job leaves the gauge it was `counted` in: a handle
    /// that has resolved is always in the metrics, and a reader that sees
    /// `running` or `waiting` drop sees the final count too (the ledger
    /// `submitted = waiting + running + finished` never runs short).
    ///
    /// A record without attempts is that of a job that never started: its
    /// ticket is still in `aux` (a worker may read it), and its outcome
    /// reports no attempt and no run time (`UNSTARTED`).
    #[allow(unsafe_code)]
    pub(crate) fn publish(
        &self,
        code: Option<ErrorCode>,
        record: Record,
        how: Final,
        counted: Counted,
    ) {
        self.shared.counters.count(how);
        match counted {
            Counted::Running => self.shared.job_ended(),
            Counted::Waiting => self.shared.left_queue(),
            Counted::Neither => {}
        }
        let unstarted = record.attempts == 0;
        self.time.store(record.queued, Ordering::Relaxed);
        if !unstarted {
            // The ticket is no longer read: the job started.
            self.aux.store(record.attempts, Ordering::Relaxed);
        }
        let bits = match code {
            Some(code) => code.bits(),
            None => STORED,
        } | if unstarted { UNSTARTED } else { 0 };
        let waker = self.locked(COMPLETE | bits, |wait, state| {
            debug_assert_eq!(state & COMPLETE, 0, "published twice");
            // SAFETY: before `COMPLETE` the union holds the waker; it is
            // taken out before the run time overwrites it.
            unsafe {
                let waker = ManuallyDrop::take(&mut wait.waker);
                wait.run = record.run;
                waker
            }
        });
        // Woken outside the lock.
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The record of a job that leaves the queue unstarted now.
    ///
    /// A clock that panics here (its panic contained: this runs where a
    /// panic has nowhere to go, a stop or a cancel) gives a queue wait of
    /// zero.
    pub(crate) fn unstarted_record(&self) -> Record {
        let queued = match self.shared.try_now() {
            Ok(now) => self
                .shared
                .since_epoch(now)
                .saturating_sub(self.submitted()),
            Err(_) => 0,
        };
        Record {
            attempts: 0,
            queued,
            run: 0,
        }
    }

    /// Resolves a job that never ran with `error`, at once.
    pub(crate) fn complete_unstarted(&self, error: ErrorCode, how: Final, counted: Counted) {
        self.publish(Some(error), self.unstarted_record(), how, counted);
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
            self.complete_unstarted(ErrorCode::Cancelled, Final::Cancelled, Counted::Waiting);
        } else {
            // Running: its worker looks at the `CANCEL` bit when woken.
            self.shared.watchers.wake(self.id());
        }
    }

    #[allow(unsafe_code)]
    fn register(&self, cx: &mut Context<'_>) {
        self.locked(0, |wait, state| {
            if state & COMPLETE != 0 {
                // The union holds the run time now.
                return;
            }
            // SAFETY: before `COMPLETE` the union holds the waker.
            let waker = unsafe { &mut *wait.waker };
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        });
    }

    /// The result, if the job is complete and it was not taken yet (a
    /// terminated handle gives `None`). `stored` reads a stored result out
    /// of the cell; it is called at most once per slot (the handle's
    /// methods that take are `&mut self`, and `TAKEN` is set after).
    #[allow(unsafe_code)]
    fn take<T, E>(&self, stored: impl FnOnce() -> Result<T, JobError<E>>) -> Option<Outcome<T, E>> {
        let state = self.state.load(Ordering::Acquire);
        if state & COMPLETE == 0 || state & TAKEN != 0 {
            return None;
        }
        let result = if state & STORED != 0 {
            stored()
        } else {
            Err(ErrorCode::error(state))
        };
        if handle_alone(state) {
            // No other thread reads or writes the word any more.
            self.state.store(state | TAKEN, Ordering::Relaxed);
        } else {
            // `Release`: the entry, if it frees the cell, sees the result
            // moved out (`stored_and_untaken`).
            self.state.fetch_or(TAKEN, Ordering::Release);
        }
        let started = state & UNSTARTED == 0;
        // SAFETY: `COMPLETE` was set (Acquire above) in the step that wrote
        // the run time under the lock; nothing writes it after.
        let run = self.wait.with_mut(|wait| unsafe { (*wait).run });
        Some(Outcome {
            name: self.name.clone(),
            duration: Duration::from_nanos(if started { run } else { 0 }),
            queued: Duration::from_nanos(self.time.load(Ordering::Relaxed)),
            attempts: if started {
                self.aux.load(Ordering::Relaxed)
            } else {
                0
            },
            result,
        })
    }

    fn is_taken(&self) -> bool {
        self.state.load(Ordering::Acquire) & TAKEN != 0
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
}

impl<T, E> ResultHandle<T, E> {
    pub(crate) fn new(cell: HandleRef<T, E>) -> Self {
        ResultHandle { cell }
    }

    fn slot(&self) -> &Slot {
        self.cell.slot()
    }

    /// The outcome, if the job is complete and it was not taken yet.
    #[allow(unsafe_code)]
    fn take(&mut self) -> Option<Outcome<T, E>> {
        let cell = &self.cell;
        // SAFETY: `Slot::take` calls this at most once, only when the result
        // is stored and not taken, and marks it taken right after; `&mut
        // self` keeps another take of this handle from overlapping.
        cell.slot().take(|| unsafe { cell.read_stored() })
    }

    fn poll_take(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcome<T, E>>> {
        if self.slot().is_complete() {
            return Poll::Ready(self.take());
        }
        self.slot().register(cx);
        // Completed meanwhile: the publish may have taken the waker before it
        // was stored, so look again rather than wait for a wake.
        if self.slot().is_complete() {
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
    /// A cancel reaches a running job through the worker waiting in it: the
    /// pool looks through its workers for that job (a lock each) and wakes
    /// that one worker. No other job is polled for it. (What every job pays
    /// for this: its worker records the job it waits in, under its watch's
    /// lock, each time the job returns `Pending`.)
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
    /// pool, or on a thread of the embedded executor: blocking the thread
    /// that runs a pool's workers could keep the awaited job from ever
    /// running. Elsewhere on an executor's thread (a task of your own on
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
        let in_async_job = current_job::get().is_some_and(|job| !job.blocking);
        if in_async_job || current_job::on_embedded_thread() {
            panic!(
                "workerpoolxt: ResultHandle::wait() called inside an async job: it would \
                 block a thread that runs the pool's workers, and the job it waits for \
                 might never run; `.await` the handle instead"
            );
        }
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
        match self.poll_take(cx) {
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

#[cfg(test)]
mod codes {
    use super::{ErrorCode, CODE_SHIFT, LOCKED, STARTED, UNSTARTED};
    use crate::JobError;

    /// Every error that carries nothing has a code, which names it back
    /// whatever other state bits are set; the others have none.
    #[test]
    fn codes_name_their_errors_back() {
        let all: [JobError<u8>; 4] = [
            JobError::TimedOut,
            JobError::Cancelled,
            JobError::Stopped,
            JobError::QueueFull,
        ];
        for e in all {
            let code = ErrorCode::of(&e).expect("carries nothing");
            for other in [0, STARTED | LOCKED, UNSTARTED] {
                assert_eq!(ErrorCode::error::<u8>(code.bits() | other), e);
            }
            assert_eq!(code.bits() >> CODE_SHIFT << CODE_SHIFT, code.bits());
        }
        assert_eq!(ErrorCode::of(&JobError::Failed(1u8)), None);
        let p = crate::error::Panic::from_payload(&"boom");
        assert_eq!(ErrorCode::of(&JobError::<u8>::Panicked(p)), None);
    }
}

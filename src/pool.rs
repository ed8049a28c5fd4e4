//! [`Pool`] and its [`Builder`]: submitting, stopping, pausing, resizing and
//! looking inside.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::future::FusedFuture;

use crate::body::{Body, OkFuture, OnceBlocking, OnceFuture, SubWorker};
use crate::cancel::CancelToken;
use crate::cell::{HandleRef, QueueEntry};
use crate::core::{Core, CoreConfig};
#[cfg(doc)]
use crate::error::JobError;
use crate::error::{ConfigError, SubmitError, TrySubmitError};
use crate::group::Group;
use crate::handle::ResultHandle;
use crate::header::{Header, Leaves, Name, Record};
use crate::id::JobId;
use crate::job::Job;
use crate::metrics::{End, Metrics};
use crate::options::Options;
use crate::pause::Pause;
use crate::runtime::{BoxFuture, Clock, FnTimer, Runtime, SharedClock, Spawner, SystemClock};
use crate::shared::{Forward, Listening, Shared, DRAINING, STOPPED};
use crate::state::{ErrorCode, ENTRY_REF, HANDLE_REF};
use crate::stop::{Shutdown, Stop};
use crate::sync::Arc;
use crate::task::Task;
use crate::view::JobInfo;
use crate::worker;

/// The panic message of [`Builder::build`] and [`Pool::new`] for `max_workers == 0`.
const ZERO_WORKERS: &str =
    "workerpoolxt: max_workers must be at least 1 (use Builder::try_build to get an error instead)";
/// The panic message of [`Pool::subpool`] for `max_workers == 0`.
const ZERO_SUB_WORKERS: &str =
    "workerpoolxt: a sub-pool's max_workers must be at least 1 (use Pool::try_subpool to get an error instead)";
/// The name of a sub-pool's worker while it runs as a job of its parent.
const SUB_WORKER: &str = "workerpoolxt::subpool";
/// The panic message of [`Builder::build`] for `queue_capacity == 0`.
const ZERO_CAPACITY: &str = "workerpoolxt: queue_capacity must be at least 1 (leave it unset for an unbounded queue; use Builder::try_build to get an error instead)";
/// The panic message of [`Builder::build`] for a `rate_limit` of 0 starts
/// or a zero window.
const ZERO_RATE: &str = "workerpoolxt: rate_limit(n, per) needs n of at least 1 and a per longer than zero (leave it unset for no limit; use Builder::try_build to get an error instead)";

/// A pool of at most `max_workers` concurrent jobs, with a FIFO queue and a
/// result handle per job.
///
/// `Pool` is `Clone + Send + Sync`; clones share one pool. Workers start as
/// soon as there is work (up to `max_workers` at once) and leave after the
/// idle timeout. See the [crate docs](crate) for a tour.
///
/// # Jobs that wait for jobs
///
/// A job that awaits the handle of another job of the same pool keeps its
/// slot while it waits. If every slot is taken by such a job, none of the
/// awaited jobs can start and the pool stalls — as any bounded pool would.
/// Use a second pool for the inner jobs, or `try_submit` and give up.
///
/// # Drop
///
/// Dropping the last clone does not lose anything: jobs already queued still
/// run, every handle still resolves, and the workers leave once the queue is
/// empty. [`stop`](Self::stop) and [`stop_wait`](Self::stop_wait) are the
/// explicit ends.
///
/// # Examples
///
/// ```
/// use workerpoolxt::Pool;
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(8);
/// let handles: Vec<_> = (0..100u64).map(|i| pool.submit(async move { i * i })).collect();
/// let mut sum = 0;
/// for h in handles {
///     sum += h.await.unwrap();
/// }
/// assert_eq!(sum, 328_350);
/// pool.stop_wait().await;
/// # });
/// ```
#[derive(Clone)]
pub struct Pool {
    owner: Arc<Owner>,
}

/// Dropped with the last `Pool` clone: lets the queue drain and the workers go.
struct Owner {
    shared: Arc<Shared>,
    /// A sub-pool keeps its parent open while it is.
    _parent: Option<Pool>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        begin_stop(&self.shared, DRAINING);
    }
}

/// Begins a stop (`DRAINING` or `STOPPED`) and starts workers for what is
/// left to run: the sub-pools' first, while this pool still takes their
/// workers (a draining sub-pool queues workers here for its queued jobs),
/// then its own. A sub-pool made as this pool closes is stopped after it.
fn begin_stop(shared: &Arc<Shared>, to: u8) {
    for sub in shared.subs() {
        begin_stop(&sub, to);
    }
    shared.begin_stop(to);
    worker::spawn_for_queue(shared);
    for sub in shared.subs() {
        if sub.state() < to {
            begin_stop(&sub, to);
        }
    }
}

/// Appends the jobs of `shared` and of its sub-pools (at any depth) to
/// `out`, as of `now` (one reading for all, so that their ages compare):
/// the sub-pools' jobs rather than their workers, which are jobs of
/// `shared` too.
fn jobs_of(shared: &Arc<Shared>, now: std::time::Instant, out: &mut Vec<JobInfo>) {
    let mut own = Vec::new();
    shared.snapshot_into(now, &mut own);
    let subs = shared.subs();
    own.retain(|j| {
        !subs
            .iter()
            .any(|sub| sub.worker_name.as_ref().is_some_and(|n| j.is_named(n)))
    });
    out.append(&mut own);
    for sub in &subs {
        jobs_of(sub, now, out);
    }
}

/// Queues a sub-pool's worker as a job of `parent` (see `Shared::forward`).
fn forward(parent: &Arc<Shared>, name: &Name, make: &mut dyn FnMut() -> BoxFuture<()>) -> bool {
    parent.forward_in(|| {
        let core = parent.core();
        let place = Place {
            ticket: core.take_ticket(),
            submitted: core.now_ns(),
        };
        let first = Some(OkFuture::new(make()));
        // Its handle is dropped: the worker's own jobs have theirs.
        drop(enqueue_on(
            parent,
            SubWorker,
            first,
            Some(name.clone()),
            place,
        ));
    })
}

/// A job's reserved place in the queue: its ticket (its position in
/// submission order) and when it was submitted (ns since the pool's epoch).
struct Place {
    ticket: usize,
    submitted: u64,
}

impl Place {
    /// Reserves a place, or `None` if a bounded queue is full.
    ///
    /// The clock is read first: a clock that panics makes the submit panic
    /// with nothing reserved (a place reserved and never filled would be
    /// counted as waiting for ever, and hold back every pause).
    fn reserve(shared: &Shared) -> Option<Place> {
        let submitted = shared.core().now_ns();
        let ticket = shared.core().reserve_place()?;
        Some(Place { ticket, submitted })
    }
}

/// Queues a job of `shared` whose place is reserved.
fn enqueue_on<B: Body>(
    shared: &Arc<Shared>,
    body: B,
    first: Option<B::Attempt>,
    name: Option<Name>,
    place: Place,
) -> ResultHandle<B::Output, B::Error> {
    let Place { ticket, submitted } = place;
    let header = Header::new(
        shared.core().clone(),
        name,
        submitted,
        ticket,
        ENTRY_REF | HANDLE_REF,
    );
    let (task, cell) = QueueEntry::new(header, Task::new(body, first));
    let handle = ResultHandle::new(cell, JobId::of_ticket(ticket));
    if let Err(task) = worker::push(shared, task) {
        // Stopped between the admission and the push: dropping the
        // unstarted task resolves its handle `Stopped`.
        drop(task);
    }
    handle
}

/// Why a submission was refused before its job was built.
enum Refused {
    Full,
    Stopped,
}

impl Pool {
    /// A pool of `max_workers`, with an unbounded queue and the defaults of
    /// [`Builder`].
    ///
    /// Its workers run where [`Runtime::current`](crate::Runtime::current)
    /// says when it is called: with the `tokio` feature, on the tokio
    /// runtime the caller is in (jobs can use its timers and I/O);
    /// otherwise on the embedded executor, where a job that uses
    /// `tokio::time` or tokio's I/O fails (tokio panics with "there is no
    /// reactor running", and the job resolves [`JobError::Panicked`]).
    /// [`Builder::runtime`] and [`Builder::embedded`] choose instead (for a
    /// pool that outlives the runtime it is built in, see
    /// [`Runtime::current`](crate::Runtime::current)).
    ///
    /// On a tokio current-thread runtime the workers run only while that
    /// runtime's thread is free to run them: `.await` the handles there, as
    /// [`ResultHandle::wait`](crate::ResultHandle::wait) on that thread
    /// would keep the job from ever running.
    ///
    /// # Panics
    ///
    /// If `max_workers` is 0. Use [`Builder::try_build`] to get an error instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// let pool = Pool::new(4); // outside any runtime: the embedded executor
    /// assert_eq!(pool.submit(async { 6 * 7 }).wait(), Ok(42));
    /// ```
    pub fn new(max_workers: usize) -> Pool {
        Pool::builder().max_workers(max_workers).build()
    }

    /// A builder for a pool with other settings.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.owner.shared
    }

    // ----- submitting -----

    /// Submits a future; returns its handle at once. Never blocks.
    ///
    /// The future runs on a worker, once (no retry), under the pool's default
    /// timeout and cancel token if it has them. Its handle resolves to its
    /// output, or to [`JobError::Cancelled`], [`JobError::TimedOut`],
    /// [`JobError::Panicked`], [`JobError::Stopped`] (the pool had stopped)
    /// or [`JobError::QueueFull`] (a bounded queue was full).
    ///
    /// The future's output is the job's value, whatever it is: a
    /// `Result` output counts as a success in the [`Metrics`] even when it
    /// is an `Err`. Submit [`Job::once`]`(future)` to have an `Err` count
    /// as a failure (and to give the job a name, a timeout or a token).
    ///
    /// Work that computes for long, or blocks its thread, belongs in
    /// [`submit_blocking`](Self::submit_blocking): a future that does it
    /// inside one poll holds an executor thread for that long. The jobs
    /// queued meanwhile still start at once on the pool's other workers, as
    /// long as the executor has another thread free.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// let pool = Pool::new(2);
    /// assert_eq!(pool.submit(async { "done" }).wait(), Ok("done"));
    /// ```
    pub fn submit<F>(&self, future: F) -> ResultHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.submit_with(future, None, |f| {
            (OnceFuture::new(), Some(OkFuture::new(f)))
        })
    }

    /// Submits a blocking closure; returns its handle at once. Never blocks.
    ///
    /// The closure runs on the blocking thread pool, never on an executor
    /// thread, while its worker waits for it. A running closure cannot be
    /// stopped: on cancel or timeout its handle resolves at once and its
    /// worker stays busy until it returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// let pool = Pool::new(2);
    /// let h = pool.submit_blocking(|| std::fs::metadata(".").is_ok());
    /// assert_eq!(h.wait(), Ok(true));
    /// ```
    pub fn submit_blocking<F, T>(&self, f: F) -> ResultHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_with(f, None, |f| (OnceBlocking(Some(f)), None))
    }

    /// Submits a [`Job`]; returns its handle at once. Never blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use workerpoolxt::{Job, JobError, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let slow = Job::new(|_ctx| async {
    ///     async_io::Timer::after(Duration::from_secs(10)).await;
    ///     Ok::<_, ()>(())
    /// })
    /// .timeout(Duration::from_millis(5));
    /// assert_eq!(pool.submit_job(slow).await, Err(JobError::TimedOut));
    /// # });
    /// ```
    pub fn submit_job<T, E, K>(&self, job: Job<T, E, K>) -> ResultHandle<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let name = job.name_arc();
        self.submit_with(job, name, |job| (job.into_parts().0, None))
    }

    /// Submits a future if the queue has room; gives it back otherwise.
    ///
    /// Fails fast, never waits: `Err(TrySubmitError::Full(future))` when a
    /// bounded queue is full, `Err(TrySubmitError::Stopped(future))` when the
    /// pool has stopped. Nothing is lost: the refused future comes back
    /// unpolled. Safe to call from inside a job (it cannot deadlock).
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{Pool, TrySubmitError};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::builder().max_workers(1).queue_capacity(1).build();
    /// let (open, latch) = async_channel::bounded::<()>(1);
    /// let first = pool.submit(async move { latch.recv().await.ok(); }); // runs
    /// # while pool.running() == 0 { futures_lite::future::yield_now().await; }
    /// let second = pool.try_submit(async {}).unwrap(); // waits in the queue
    /// match pool.try_submit(async { 3 }) {
    ///     Err(TrySubmitError::Full(job)) => assert_eq!(job.await, 3),
    ///     Ok(_) => panic!("the queue holds one job"),
    ///     Err(e) => panic!("{e}"),
    /// }
    /// open.send(()).await.unwrap();
    /// first.await.unwrap();
    /// second.await.unwrap();
    /// # });
    /// ```
    pub fn try_submit<F>(&self, future: F) -> Result<ResultHandle<F::Output>, TrySubmitError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.try_submit_counted(future, None, |f| {
            (OnceFuture::new(), Some(OkFuture::new(f)))
        })
    }

    /// [`try_submit`](Self::try_submit) for a blocking closure.
    pub fn try_submit_blocking<F, T>(&self, f: F) -> Result<ResultHandle<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.try_submit_counted(f, None, |f| (OnceBlocking(Some(f)), None))
    }

    /// [`try_submit`](Self::try_submit) for a [`Job`].
    // The job comes back by value in the error: that is the point of the
    // call, so the large `Err` is intended.
    #[allow(clippy::result_large_err, clippy::type_complexity)]
    pub fn try_submit_job<T, E, K>(
        &self,
        job: Job<T, E, K>,
    ) -> Result<ResultHandle<T, E>, TrySubmitError<Job<T, E, K>>>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let name = job.name_arc();
        self.try_submit_counted(job, name, |job| (job.into_parts().0, None))
    }

    /// Submits a future, waiting for room in a bounded queue.
    ///
    /// Resolves to the job's handle once the job is queued, or to
    /// `Err(SubmitError(future))` if the pool stops first. With an unbounded
    /// queue it resolves at once.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future before it resolves drops the future it
    /// holds, unsubmitted: its place in line for room is lost, nothing else.
    /// A job inside a pool that waits here for room in the same pool can
    /// wait for ever if every worker does the same; use
    /// [`try_submit`](Self::try_submit) inside jobs.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::builder().max_workers(1).queue_capacity(10).build();
    /// let mut handles = Vec::new();
    /// for i in 0..50 {
    ///     handles.push(pool.submit_wait(async move { i }).await.unwrap());
    /// }
    /// for (i, h) in handles.into_iter().enumerate() {
    ///     assert_eq!(h.await, Ok(i));
    /// }
    /// # });
    /// ```
    pub fn submit_wait<F>(&self, future: F) -> SubmitWait<F, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        SubmitWait::new(self.clone(), future, None, |pool, f, name, place| {
            pool.enqueue(OnceFuture::new(), Some(OkFuture::new(f)), name, place)
        })
    }

    /// [`submit_wait`](Self::submit_wait) for a blocking closure.
    pub fn submit_blocking_wait<F, T>(&self, f: F) -> SubmitWait<F, T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        SubmitWait::new(self.clone(), f, None, |pool, f, name, place| {
            pool.enqueue(OnceBlocking(Some(f)), None, name, place)
        })
    }

    /// [`submit_wait`](Self::submit_wait) for a [`Job`].
    pub fn submit_job_wait<T, E, K>(&self, job: Job<T, E, K>) -> SubmitWait<Job<T, E, K>, T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let name = job.name_arc();
        SubmitWait::new(self.clone(), job, name, |pool, job, name, place| {
            pool.enqueue(job.into_parts().0, None, name, place)
        })
    }

    /// A new, empty [`Group`] of jobs of this pool: submitted, awaited and
    /// cancelled together, optionally cancelled as a whole by the first
    /// error ([`Group::cancel_on_error`]).
    ///
    /// Its members are jobs of this pool: they share its `max_workers`
    /// bound and its FIFO order with every other job. The group keeps the
    /// pool open while it lives (see [`Group`]'s Drop section).
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let group = pool.group::<u32, String>();
    /// group.submit(async { Ok(1) });
    /// group.submit_blocking(|| Err("no".to_string()));
    /// let outcomes = group.wait().await.unwrap();
    /// assert_eq!(outcomes.len(), 2);
    /// assert!(outcomes[0].is_ok() && !outcomes[1].is_ok());
    /// # });
    /// ```
    pub fn group<T, E>(&self) -> Group<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let pool = self.clone();
        Group::new(Box::new(move |member, name| {
            pool.submit_with(member, name, |member| (member, None))
        }))
    }

    /// Counts a submission and reserves its place in the queue.
    /// A place in the queue, or why there is none.
    fn admit(&self) -> Result<Place, Refused> {
        let shared = self.shared();
        if !shared.is_open() {
            Err(Refused::Stopped)
        } else if let Some(place) = Place::reserve(shared) {
            // Counted as submitted by its place (see `Counters::refused`).
            Ok(place)
        } else {
            Err(Refused::Full)
        }
    }

    /// Queues a job whose place is reserved.
    fn enqueue<B: Body>(
        &self,
        body: B,
        first: Option<B::Attempt>,
        name: Option<Name>,
        place: Place,
    ) -> ResultHandle<B::Output, B::Error> {
        enqueue_on(self.shared(), body, first, name, place)
    }

    fn submit_with<I, B: Body>(
        &self,
        input: I,
        name: Option<Name>,
        build: impl FnOnce(I) -> (B, Option<B::Attempt>),
    ) -> ResultHandle<B::Output, B::Error> {
        match self.admit() {
            Ok(place) => {
                let (body, first) = build(input);
                self.enqueue(body, first, name, place)
            }
            Err(why) => {
                drop(input);
                let core = self.shared().core();
                // Its id: a ticket, which leaves the queue as it is published.
                let ticket = core.take_ticket();
                // Never queued: no queue wait, so no clock reading either.
                let header = Header::new(core.clone(), name, 0, ticket, HANDLE_REF);
                let (err, how) = match why {
                    Refused::Full => (ErrorCode::QueueFull, End::Rejected),
                    Refused::Stopped => (ErrorCode::Stopped, End::Stopped),
                };
                header.publish(Some(err), Record::default(), how, Leaves::Waiting);
                ResultHandle::new(HandleRef::without_task(header), JobId::of_ticket(ticket))
            }
        }
    }

    fn try_submit_counted<I, B: Body>(
        &self,
        input: I,
        name: Option<Name>,
        build: impl FnOnce(I) -> (B, Option<B::Attempt>),
    ) -> Result<ResultHandle<B::Output, B::Error>, TrySubmitError<I>> {
        match self.admit() {
            Ok(place) => {
                let (body, first) = build(input);
                Ok(self.enqueue(body, first, name, place))
            }
            Err(Refused::Full) => {
                self.shared().core().count_refused();
                self.shared().core().count(End::Rejected);
                Err(TrySubmitError::Full(input))
            }
            Err(Refused::Stopped) => {
                self.shared().core().count_refused();
                self.shared().core().count(End::Stopped);
                Err(TrySubmitError::Stopped(input))
            }
        }
    }

    // ----- lifecycle -----

    /// Stops the pool: queued jobs never start, running jobs finish.
    ///
    /// The stop begins when `stop` is called: from then on
    /// [`is_stopped`](Self::is_stopped) is `true`, new submissions resolve
    /// [`JobError::Stopped`], and every queued job is dropped unstarted, its
    /// handle resolving `Stopped`. The returned future resolves once every
    /// running job has ended (async jobs are not cancelled: cancel their
    /// handles or the pool's token for that) and every worker has left.
    ///
    /// Stopping twice, from several tasks at once, or after `stop_wait` is
    /// fine: each call resolves once the workers are gone. Awaited inside a
    /// job of this pool, it resolves once every *other* job has ended (see
    /// [`Stop`]); the calling job's worker leaves after that job.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{JobError, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(1);
    /// let (open, latch) = async_channel::bounded::<()>(1);
    /// let running = pool.submit(async move { latch.recv().await.ok(); 1 });
    /// # while pool.running() == 0 { futures_lite::future::yield_now().await; }
    /// let queued = pool.submit(async { 2 });
    /// let stop = pool.stop();
    /// assert!(pool.is_stopped());
    /// open.send(()).await.unwrap();
    /// stop.await;
    /// assert_eq!(running.await, Ok(1));
    /// assert_eq!(queued.await, Err(JobError::Stopped));
    /// # });
    /// ```
    pub fn stop(&self) -> Stop {
        let shared = self.shared().clone();
        begin_stop(&shared, STOPPED);
        Stop::new(shared)
    }

    /// Shuts the pool down gracefully: a [`stop`](Self::stop), then, once
    /// `grace` has passed on the pool's clock, a cancel of every job still
    /// running; resolves to a report of what happened.
    ///
    /// From the call on, new submissions resolve [`JobError::Stopped`] and
    /// queued jobs never start (their handles resolve `Stopped`). Running
    /// jobs get `grace` to finish. Then each one still running is cancelled,
    /// whatever its token: an async job is dropped, a blocking closure is
    /// told through its [`JobContext`](crate::JobContext) and its handle
    /// resolves [`JobError::Cancelled`] at once. The future resolves once
    /// every worker has left, blocking closures included (a closure that
    /// never looks at its context keeps the shutdown waiting until it
    /// returns). A zero `grace` cancels at once.
    ///
    /// Awaited inside a job of this pool, it waits for the other jobs, as
    /// [`stop`](Self::stop) does: if they end within the grace, it resolves
    /// then; if not, the calling job is cancelled with them when the grace
    /// ends.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use workerpoolxt::{JobError, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(1);
    /// let (started, running) = async_channel::bounded::<()>(1);
    /// let stuck = pool.submit(async move {
    ///     started.send(()).await.ok();
    ///     std::future::pending::<()>().await
    /// });
    /// let queued = pool.submit(async { 1 });
    /// running.recv().await.unwrap();
    /// let report = pool.shutdown(Duration::from_millis(10)).await;
    /// assert_eq!((report.finished, report.cancelled, report.stopped), (0, 1, 1));
    /// assert_eq!(stuck.await, Err(JobError::Cancelled));
    /// assert_eq!(queued.await, Err(JobError::Stopped));
    /// # });
    /// ```
    pub fn shutdown(&self, grace: Duration) -> Shutdown {
        let shared = self.shared().clone();
        let before = shared.core().metrics();
        let stop = self.stop();
        Shutdown::new(shared, stop, before, grace)
    }

    /// Stops the pool after running every queued job (Go's `StopWait`).
    ///
    /// From the call on, new submissions resolve [`JobError::Stopped`] and
    /// pauses no longer hold the workers back. The returned future resolves
    /// once the queue is empty and every worker has left. Jobs whose token
    /// is cancelled or whose deadline passed are skipped quickly, so a
    /// cancelled pool token with a long queue does not make it hang.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let mut handles: Vec<_> = (0..10).map(|i| pool.submit(async move { i })).collect();
    /// pool.stop_wait().await;
    /// assert!(handles.iter_mut().all(|h| h.try_take().is_some()));
    /// # });
    /// ```
    pub fn stop_wait(&self) -> Stop {
        let shared = self.shared().clone();
        begin_stop(&shared, DRAINING);
        Stop::new(shared)
    }

    /// Whether a stop (or stop_wait) has begun.
    pub fn is_stopped(&self) -> bool {
        !self.shared().is_open()
    }

    /// Pauses the pool: resolves, with a guard, once the jobs submitted
    /// before the call have run and no job is running.
    ///
    /// The pause takes its place in the queue, as in gammazero/workerpool:
    /// jobs submitted before `pause` was called still start (in FIFO order)
    /// and finish before the future resolves; jobs submitted from the call
    /// on wait in the queue (counted by [`waiting`](Self::waiting)) while the
    /// guard lives. Dropping the guard lets them start, in FIFO order.
    ///
    /// Pauses are taken one at a time: a second `pause` resolves after the
    /// first guard is dropped, and the jobs it holds back stay held in
    /// between. A pause of a stopped pool resolves at once, and
    /// [`stop_wait`](Self::stop_wait) ends every pause (it runs the queue).
    ///
    /// # Panics
    ///
    /// When the future is polled inside a job of this pool: a pause waits
    /// until no job runs, so it would wait for that job for ever. The panic
    /// ends the job `Panicked` (and withdraws the pause).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it resolves withdraws the pause.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let guard = pool.pause().await;
    /// let mut job = pool.submit(async { 1 });
    /// assert_eq!(pool.waiting(), 1);
    /// drop(guard);
    /// assert_eq!((&mut job).await, Ok(1));
    /// # });
    /// ```
    pub fn pause(&self) -> Pause {
        Pause::new(self.shared().clone())
    }

    /// Changes `max_workers`.
    ///
    /// Growing starts workers for queued jobs at once. Shrinking never
    /// pre-empts a running job: workers above the new maximum leave after
    /// their current job, and no job starts while `running() >= n`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroWorkers`] if `n` is 0 (nothing changes).
    pub fn resize(&self, n: usize) -> Result<(), ConfigError> {
        if n == 0 {
            return Err(ConfigError::ZeroWorkers);
        }
        let shared = self.shared();
        let before = shared.set_max_workers(n);
        if n > before {
            worker::spawn_for_queue(shared);
        } else if n < before {
            // Idle workers above the maximum look again and leave.
            shared.scheduler.wake_all();
        }
        Ok(())
    }

    /// A sub-pool: a [`Pool`] whose jobs run in this pool's slots, at most
    /// `max_workers` of them at once, and never more than this pool allows.
    ///
    /// Everything a pool does works on it (submits, handles, groups,
    /// `stop`, `pause`, `resize`, metrics, [`jobs`](Self::jobs), and
    /// sub-pools of its own). A job submitted to it waits in FIFO order for
    /// one of its `max_workers` places, then in FIFO order in this pool's
    /// queue, behind the jobs submitted here before, for one of this pool's
    /// slots; while it runs it counts in both pools' `running()`. The
    /// sub-pool's jobs take this pool's slots one job at a time: after each
    /// one, the next waits at the back of this pool's queue again.
    ///
    /// Its jobs keep this pool's clock, default timeout and default
    /// options; its token ([`cancel_token`](Self::cancel_token)) is a child
    /// of this pool's: cancelling this pool's token cancels the sub-pool's
    /// jobs too, cancelling the sub-pool's cancels only its own.
    ///
    /// # Stop and drop
    ///
    /// [`stop`](Self::stop) (and `stop_wait`, `shutdown`) of a sub-pool ends
    /// its jobs only. A stop of this pool stops its sub-pools too, first:
    /// `stop` drops their queued jobs, `stop_wait` runs them. A sub-pool
    /// keeps this pool open: dropping every clone of this pool while a
    /// sub-pool lives does not begin its drain. A sub-pool made from a
    /// stopped pool is stopped.
    ///
    /// This pool's [`metrics`](Self::metrics) count the sub-pool's jobs
    /// in `waiting` and `running` while they wait for or hold its slots;
    /// each such stretch is counted as one of its jobs, which succeeds. The
    /// sub-pool's own metrics say how its jobs ended.
    ///
    /// A paused sub-pool holds the slots of this pool that its workers had
    /// taken for jobs it now holds back, until the pause ends.
    ///
    /// # Panics
    ///
    /// If `max_workers` is 0 ([`try_subpool`](Self::try_subpool) returns an
    /// error instead).
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(4);
    /// let slow_host = pool.subpool(1); // at most one of its jobs at once
    /// let a = slow_host.submit(async { "a" });
    /// let b = pool.submit(async { "b" });
    /// assert_eq!((a.await, b.await), (Ok("a"), Ok("b")));
    /// assert_eq!(slow_host.metrics().succeeded, 1);
    /// # });
    /// ```
    pub fn subpool(&self, max_workers: usize) -> Pool {
        match self.try_subpool(max_workers) {
            Ok(pool) => pool,
            Err(_) => panic!("{}", ZERO_SUB_WORKERS),
        }
    }

    /// [`subpool`](Self::subpool), or an error for `max_workers == 0`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroWorkers`].
    pub fn try_subpool(&self, max_workers: usize) -> Result<Pool, ConfigError> {
        if max_workers == 0 {
            return Err(ConfigError::ZeroWorkers);
        }
        let parent = self.shared().clone();
        let core = Arc::new(Core::new(parent.core().sub_config()));
        let name: Name = Arc::new(SUB_WORKER.to_string());
        let worker_name = name.clone();
        let forward: Forward = Arc::new(move |make| forward(&parent, &name, make));
        let spawn = forward.clone();
        let spawner: Spawner = Arc::new(move |worker| {
            let mut worker = Some(worker);
            // Refused (the parent is closed): the worker is dropped
            // unpolled, which gives its place back.
            spawn(&mut || worker.take().expect("a worker is queued once"));
        });
        let shared = Arc::new(Shared::new_sub(
            core,
            max_workers,
            spawner,
            forward,
            worker_name,
        ));
        if !self.shared().add_sub(&shared) {
            begin_stop(&shared, STOPPED);
        }
        Ok(Pool {
            owner: Arc::new(Owner {
                shared,
                _parent: Some(self.clone()),
            }),
        })
    }

    /// The most jobs that run at once.
    pub fn max_workers(&self) -> usize {
        self.shared().max_workers()
    }

    /// Jobs queued and not started yet, including those that workers hold
    /// while they wait for their start time under a
    /// [rate limit](Builder::rate_limit).
    pub fn waiting(&self) -> usize {
        self.shared().core().waiting()
    }

    /// Busy slots: jobs started and not finished, including blocking
    /// closures whose handles already resolved (cancelled or timed out) but
    /// which have not returned. Never above [`max_workers`](Self::max_workers).
    pub fn running(&self) -> usize {
        self.shared().core().busy_slots()
    }

    /// Live workers, busy or idle.
    pub fn workers(&self) -> usize {
        self.shared().workers()
    }

    /// A snapshot of the pool's jobs: those queued, running or draining,
    /// oldest (lowest [`JobId`](crate::JobId)) first, to find a job that is
    /// stuck or slow.
    ///
    /// Each [`JobInfo`] gives the job's id and name, its [`JobState`](crate::JobState), the
    /// attempt that runs, how long it waited in the queue and how long it
    /// has run. A job is [`Queued`](crate::JobState::Queued) until it starts (also
    /// when a worker holds it back for a [`pause`](Self::pause)),
    /// [`Running`](crate::JobState::Running) from its start until its handle
    /// resolves, and [`Draining`](crate::JobState::Draining) while a blocking
    /// closure whose handle resolved (timed out or cancelled) still runs.
    ///
    /// It is a snapshot, not a pause: jobs start and finish while it is
    /// taken, so the list is a moment of each job, not one moment of the
    /// pool. It never shows a job twice, nor a job whose handle had resolved
    /// before it began (a draining closure apart), nor a job cancelled while
    /// queued; a job passing from the queue to a worker at that very
    /// instant may be missing. A job waiting for its start time under the
    /// [`rate_limit`](Builder::rate_limit) is `Queued`.
    ///
    /// The jobs of the pool's [sub-pools](Self::subpool) (at any depth) are
    /// in the list too, each with the id its own pool gave it (ids are per
    /// pool); the sub-pools' workers, which are jobs of this pool, are not.
    /// With sub-pools, oldest first means submitted longest ago.
    ///
    /// It costs nothing while no one calls it. A call reads the clock once,
    /// walks the queue with its consumers' end locked (workers wait that
    /// long to take their next job: for 1,000 queued jobs, tens of
    /// microseconds), then looks at each worker's job, and allocates the
    /// list.
    ///
    /// # Panics
    ///
    /// If the pool's clock ([`Builder::clock`]) panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use workerpoolxt::{Job, JobState, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(1);
    /// let (tx, rx) = async_channel::bounded::<()>(1);
    /// let slow = pool.submit(async move { rx.recv().await.ok() });
    /// let next = pool.submit_job(Job::new(|_ctx| async { Ok::<_, ()>(2) }).name("next"));
    /// while pool.running() == 0 {
    ///     futures_lite::future::yield_now().await;
    /// }
    ///
    /// let jobs = pool.jobs();
    /// assert_eq!(jobs.len(), 2);
    /// assert_eq!((jobs[0].id(), jobs[0].state()), (slow.id(), JobState::Running));
    /// assert_eq!(jobs[0].attempt(), 1);
    /// assert!(jobs[0].running_for().is_some());
    /// assert_eq!((jobs[1].name(), jobs[1].state()), (Some("next"), JobState::Queued));
    /// assert_eq!(jobs[1].running_for(), None);
    /// let stuck = jobs.iter().filter(|j| j.running_for() > Some(Duration::from_secs(60)));
    /// assert_eq!(stuck.count(), 0);
    ///
    /// tx.send(()).await.unwrap();
    /// slow.await.unwrap();
    /// next.await.unwrap();
    /// assert!(pool.jobs().is_empty());
    /// # });
    /// ```
    pub fn jobs(&self) -> Vec<JobInfo> {
        let mut out = Vec::new();
        let now = self.shared().core().now();
        jobs_of(self.shared(), now, &mut out);
        if !self.shared().subs().is_empty() {
            // Ids are per pool: across pools, oldest first is by age.
            out.sort_by_key(|j| std::cmp::Reverse(j.age()));
        }
        out
    }

    /// A snapshot of the pool's counters.
    pub fn metrics(&self) -> Metrics {
        self.shared().core().metrics()
    }

    /// The pool's default token: cancelling it cancels every job that uses
    /// it (every job without a token of its own), queued or running.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{JobError, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(1);
    /// let h = pool.submit(std::future::pending::<()>());
    /// pool.cancel_token().cancel();
    /// assert_eq!(h.await, Err(JobError::Cancelled));
    /// # });
    /// ```
    pub fn cancel_token(&self) -> CancelToken {
        self.shared().core().token.clone()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("max_workers", &self.max_workers())
            .field("workers", &self.workers())
            .field("running", &self.running())
            .field("waiting", &self.waiting())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// The future of the `*_wait` submits: resolves to the job's handle once it
/// is queued, or gives the job back if the pool stops first.
///
/// `I` is what was submitted (a future, a closure or a [`Job`]), `T` and `E`
/// the handle's types.
#[must_use = "futures do nothing unless you .await or poll them (the job is not submitted until then)"]
pub struct SubmitWait<I, T, E = std::convert::Infallible> {
    pool: Pool,
    input: Option<I>,
    name: Option<Name>,
    enqueue: Enqueue<I, T, E>,
    listening: Listening,
}

type Enqueue<I, T, E> = fn(&Pool, I, Option<Name>, Place) -> ResultHandle<T, E>;

// The input is only moved, never pinned or polled here.
impl<I, T, E> Unpin for SubmitWait<I, T, E> {}

impl<I, T, E> SubmitWait<I, T, E> {
    fn new(pool: Pool, input: I, name: Option<Name>, enqueue: Enqueue<I, T, E>) -> Self {
        SubmitWait {
            pool,
            input: Some(input),
            name,
            enqueue,
            listening: Listening::default(),
        }
    }
}

impl<I, T, E> Future for SubmitWait<I, T, E> {
    type Output = Result<ResultHandle<T, E>, SubmitError<I>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            let Some(input) = this.input.take() else {
                // Polled after it resolved.
                return Poll::Pending;
            };
            let shared = this.pool.shared().clone();
            if !shared.is_open() {
                shared.core().count_refused();
                shared.core().count(End::Stopped);
                return Poll::Ready(Err(SubmitError(input)));
            }
            if let Some(place) = Place::reserve(&shared) {
                // Counted as submitted by its place (see `Counters::refused`).
                let name = this.name.take();
                return Poll::Ready(Ok((this.enqueue)(&this.pool, input, name, place)));
            }
            this.input = Some(input);
            if this
                .listening
                .wait(cx, || shared.core().listen_for_room())
                .is_pending()
            {
                return Poll::Pending;
            }
        }
    }
}

impl<I, T, E> FusedFuture for SubmitWait<I, T, E> {
    fn is_terminated(&self) -> bool {
        self.input.is_none()
    }
}

impl<I, T, E> fmt::Debug for SubmitWait<I, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitWait")
            .field("submitted", &self.input.is_none())
            .finish()
    }
}

/// Settings for a [`Pool`]; from [`Pool::builder`].
///
/// | setting | default |
/// |---|---|
/// | [`max_workers`](Self::max_workers) | the machine's parallelism |
/// | [`queue_capacity`](Self::queue_capacity) | unbounded |
/// | [`idle_timeout`](Self::idle_timeout) | 2 s (as gammazero/workerpool) |
/// | [`runtime`](Self::runtime) / [`spawner`](Self::spawner) | [`Runtime::current`] when built: the caller's tokio runtime (feature `tokio`), else the embedded executor |
/// | [`timer`](Self::timer) / [`clock`](Self::clock) | `Instant::now` and `async-io` timers |
/// | [`default_timeout`](Self::default_timeout) | none |
/// | [`default_options`](Self::default_options) | none |
/// | [`cancel_token`](Self::cancel_token) | a new token |
/// | [`rate_limit`](Self::rate_limit) | none |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use workerpoolxt::{CancelToken, Options, Pool};
///
/// let token = CancelToken::new();
/// let pool = Pool::builder()
///     .max_workers(16)
///     .queue_capacity(1_000)
///     .idle_timeout(Duration::from_secs(5))
///     .default_timeout(Duration::from_secs(30))
///     .default_options(Options::new().with("user-agent/1.0"))
///     .cancel_token(token.clone())
///     .build();
/// assert_eq!(pool.max_workers(), 16);
/// ```
#[must_use = "a builder does nothing until .build()"]
pub struct Builder {
    max_workers: usize,
    capacity: Option<usize>,
    idle_timeout: Option<Duration>,
    /// `None`: [`Runtime::current`] at build time.
    runtime: Option<Runtime>,
    clock: Option<SharedClock>,
    default_timeout: Option<Duration>,
    default_options: Option<Options>,
    token: Option<CancelToken>,
    /// `(n, per)`: at most `n` starts in any window of `per`.
    rate: Option<(usize, Duration)>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            max_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            capacity: None,
            idle_timeout: Some(Duration::from_secs(2)),
            runtime: None,
            clock: None,
            default_timeout: None,
            default_options: None,
            token: None,
            rate: None,
        }
    }

    /// The most jobs that run at once (at least 1).
    pub fn max_workers(mut self, n: usize) -> Builder {
        self.max_workers = n;
        self
    }

    /// Bounds the waiting queue to `capacity` jobs (at least 1). Plain
    /// `submit*` calls into a full queue resolve [`JobError::QueueFull`];
    /// `try_submit*` calls give the job back; `submit*_wait` calls wait.
    pub fn queue_capacity(mut self, capacity: usize) -> Builder {
        self.capacity = Some(capacity);
        self
    }

    /// How long a worker stays without work before it leaves (default 2 s).
    ///
    /// Each idle worker leaves on its own once a whole period passed without
    /// a job for it, so after a burst all idle workers leave together. The
    /// next submit starts workers again at once. `Duration::MAX` keeps them.
    pub fn idle_timeout(mut self, timeout: Duration) -> Builder {
        self.idle_timeout = if timeout == Duration::MAX {
            None
        } else {
            Some(timeout)
        };
        self
    }

    /// Workers never leave for idleness (they leave when the pool stops).
    pub fn keep_idle_workers(mut self) -> Builder {
        self.idle_timeout = None;
        self
    }

    /// Runs the workers with `spawn` (see [`Runtime::spawner`]) instead of the
    /// runtime the pool would take when built ([`Runtime::current`]).
    ///
    /// `spawn` is called from whichever thread submits, so with tokio capture
    /// a `Handle` (`let h = Handle::current(); move |f| { h.spawn(f); }`)
    /// rather than call `tokio::spawn`.
    ///
    /// An executor may drop a worker's future (it shuts down, or refuses the
    /// task): the job it was running resolves [`JobError::Stopped`], and the
    /// queue gets another worker. Once the pool takes no more submissions
    /// (stopped, or its last clone dropped), queued jobs whose workers are all
    /// dropped, the last one before its first poll (an executor that cannot
    /// run workers any more), resolve `Stopped` too, rather than wait for
    /// ever. While the pool is open they wait for a worker that runs.
    ///
    /// A call of `spawn` that panics (`tokio::spawn` outside a runtime, say)
    /// is caught: the worker it was given never counts, the submit that
    /// called it returns its handle as usual, and the next submit calls
    /// `spawn` again. If no worker is left to run the queued jobs, they
    /// resolve [`JobError::Panicked`] with the spawner's panic message
    /// rather than wait for the next submit.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// smol::block_on(async {
    ///     let pool = Pool::builder().spawner(|f| smol::spawn(f).detach()).build();
    ///     assert_eq!(pool.submit(async { 2 }).await, Ok(2));
    /// });
    /// ```
    pub fn spawner<F>(self, spawn: F) -> Builder
    where
        F: Fn(BoxFuture<()>) + Send + Sync + 'static,
    {
        self.runtime(Runtime::spawner(spawn))
    }

    /// Runs the workers on `runtime` (see [`Runtime`]) instead of the one
    /// the pool would take when built ([`Runtime::current`]).
    ///
    /// It replaces an earlier [`spawner`](Self::spawner), [`embedded`](Self::embedded),
    /// `tokio()` or `smol()`; a [`timer`](Self::timer) or
    /// [`clock`](Self::clock) stays as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{Pool, Runtime};
    ///
    /// fn pool_for(rt: Runtime) -> Pool {
    ///     Pool::builder().max_workers(4).runtime(rt).build()
    /// }
    ///
    /// let pool = pool_for(Runtime::embedded());
    /// assert_eq!(pool.submit(async { 5 }).wait(), Ok(5));
    /// ```
    pub fn runtime(mut self, runtime: Runtime) -> Builder {
        self.runtime = Some(runtime);
        self
    }

    /// Runs the workers on the embedded executor even inside a tokio
    /// runtime (see [`Runtime::embedded`]): jobs are then not inside the
    /// caller's runtime, and cannot use its timers or I/O.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// tokio::runtime::Runtime::new().unwrap().block_on(async {
    ///     let pool = Pool::builder().embedded().build();
    ///     let in_tokio = pool.submit(async { tokio::runtime::Handle::try_current().is_ok() });
    ///     assert_eq!(in_tokio.await, Ok(false));
    /// });
    /// ```
    pub fn embedded(self) -> Builder {
        self.runtime(Runtime::embedded())
    }

    /// Sleeps with `sleep` (e.g. `|d| tokio::time::sleep(d)`) instead of
    /// `async-io` timers; the time is still `Instant::now`.
    pub fn timer<F, Fut>(mut self, sleep: F) -> Builder
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.clock = Some(Arc::new(FnTimer(sleep)));
        self
    }

    /// Tells time and sleeps with `clock` (a manual clock in tests).
    pub fn clock<C: Clock>(mut self, clock: C) -> Builder {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The timeout of every job that sets neither a timeout nor a deadline,
    /// from its start (plain `submit*` jobs included).
    pub fn default_timeout(mut self, timeout: Duration) -> Builder {
        self.default_timeout = Some(timeout);
        self
    }

    /// The options of every job that sets none.
    pub fn default_options(mut self, options: Options) -> Builder {
        self.default_options = Some(options);
        self
    }

    /// The pool's default token (see [`Pool::cancel_token`]).
    pub fn cancel_token(mut self, token: CancelToken) -> Builder {
        self.token = Some(token);
        self
    }

    /// Starts at most `n` jobs in any window of `per` on the pool's clock,
    /// in bursts of up to `n`: a token bucket, kept exact as a sliding
    /// window of start times.
    ///
    /// A *start* is a job's first start, when it leaves the queue; the
    /// later attempts of a job that retries ([`Job::retry`]) take no start
    /// of their own. The k-th start is never earlier than the (k − n)-th
    /// plus `per`, so every half-open window `[t, t + per)` holds at most
    /// `n` starts, and after a quiet spell of `per` the next `n` jobs start
    /// at once. Workers take jobs from the queue in submission order, and
    /// each job reserves its time as its worker takes it.
    ///
    /// A worker that takes a job from the queue reserves its start time and
    /// waits with it until then: up to [`max_workers`](Self::max_workers)
    /// jobs wait that way, each holding its worker. They still count as
    /// [`waiting`](Pool::waiting), not [`running`](Pool::running), and
    /// nothing about them has begun: [`ResultHandle::cancel`], the job's
    /// token (its own or the pool's) and its
    /// [`deadline`](crate::Job::deadline) end it at once, unstarted
    /// ([`JobError::Cancelled`], [`JobError::TimedOut`] at the deadline),
    /// and [`stop`](Pool::stop) ends it [`JobError::Stopped`] at once; its
    /// time goes to the next job if no later job reserved one yet (later
    /// reservations keep theirs: a gap, never a start over the rate). A
    /// [`timeout`](crate::Job::timeout) counts from the start, after the
    /// wait. [`pause`](Pool::pause) waits for the jobs already taken to get
    /// their turn and end, and holds the rest (they reserve nothing while
    /// held); [`resize`](Pool::resize) changes how many wait at once, not
    /// the rate.
    ///
    /// A window too long for the clock (`Duration::MAX`) allows `n` starts
    /// ever; the jobs after them wait until cancelled, past their deadline,
    /// or stopped. The pool keeps the time of each start for `per`: memory
    /// for up to `n` starts, plus the jobs waiting.
    ///
    /// # Panics
    ///
    /// [`build`](Self::build) panics, and [`try_build`](Self::try_build)
    /// returns [`ConfigError::ZeroRate`], if `n` is 0 or `per` is zero.
    ///
    /// # Examples
    ///
    /// At most 2 starts every 100 ms: of 5 jobs submitted at once, 2 start
    /// at once, 2 after 100 ms and the last after 200 ms, whatever
    /// `max_workers` is. The [`Metrics`] count the jobs that wait for their
    /// turn in `waiting`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use workerpoolxt::Pool;
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::builder()
    ///     .max_workers(8)
    ///     .rate_limit(2, Duration::from_millis(100))
    ///     .build();
    /// let t0 = Instant::now();
    /// let handles: Vec<_> = (0..5).map(|_| pool.submit(async move { t0.elapsed() })).collect();
    /// assert!(pool.metrics().waiting >= 1, "the last job waits for its turn");
    /// let mut started = Vec::new();
    /// for h in handles {
    ///     started.push(h.await.unwrap());
    /// }
    /// started.sort();
    /// assert!(started[2] >= Duration::from_millis(100));
    /// assert!(started[4] >= Duration::from_millis(200));
    /// # });
    /// ```
    pub fn rate_limit(mut self, n: usize, per: Duration) -> Builder {
        self.rate = Some((n, per));
        self
    }

    /// Runs the workers on the current tokio runtime, with tokio's timer for
    /// the pool's timeouts, deadlines, backoff and idle workers.
    ///
    /// Inside a tokio runtime a pool runs its workers there without this
    /// call too ([`Runtime::current`]), but keeps `async-io` timers, which
    /// work on a runtime without `enable_time()`.
    ///
    /// The runtime needs its timers (`enable_time()`, or `enable_all()`;
    /// `#[tokio::main]` has them). Without them, every job with a timeout,
    /// deadline or backoff resolves [`JobError::Panicked`] with tokio's
    /// message ("timers are disabled"), and idle workers stay instead of
    /// leaving after the idle timeout; jobs without timers run as usual.
    ///
    /// If the runtime shuts down, the job its worker was running resolves
    /// [`JobError::Stopped`], and jobs still queued resolve `Stopped` at the
    /// latest when the pool is stopped (or its last clone dropped).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime. [`Runtime::tokio`] takes a `Handle` and can
    /// be used anywhere.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use workerpoolxt::Pool;
    ///
    /// #[tokio::main]
    /// async fn main() {
    ///     let pool = Pool::builder().tokio().build();
    ///     let job = pool.submit(async {
    ///         tokio::time::sleep(Duration::from_millis(1)).await;
    ///         "slept"
    ///     });
    ///     assert_eq!(job.await, Ok("slept"));
    /// }
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn tokio(self) -> Builder {
        let handle = tokio::runtime::Handle::current();
        self.runtime(Runtime::tokio(handle))
            .timer(tokio::time::sleep)
    }

    /// Runs the workers on smol's global executor (see [`Runtime::smol`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// smol::block_on(async {
    ///     let pool = Pool::builder().smol().build();
    ///     assert_eq!(pool.submit(async { 1 + 1 }).await, Ok(2));
    /// });
    /// ```
    #[cfg(feature = "smol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
    pub fn smol(self) -> Builder {
        self.runtime(Runtime::smol())
    }

    /// Builds the pool.
    ///
    /// # Panics
    ///
    /// If `max_workers` or `queue_capacity` is 0, or a
    /// [`rate_limit`](Self::rate_limit) allows no start, with a message that
    /// says so. [`try_build`](Self::try_build) returns the error instead.
    pub fn build(self) -> Pool {
        match self.try_build() {
            Ok(pool) => pool,
            Err(ConfigError::ZeroCapacity) => panic!("{}", ZERO_CAPACITY),
            Err(ConfigError::ZeroRate) => panic!("{}", ZERO_RATE),
            Err(_) => panic!("{}", ZERO_WORKERS),
        }
    }

    /// Builds the pool, or says why it cannot work.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroWorkers`], [`ConfigError::ZeroCapacity`] or
    /// [`ConfigError::ZeroRate`].
    pub fn try_build(self) -> Result<Pool, ConfigError> {
        if self.max_workers == 0 {
            return Err(ConfigError::ZeroWorkers);
        }
        if self.capacity == Some(0) {
            return Err(ConfigError::ZeroCapacity);
        }
        if self.rate.is_some_and(|(n, per)| n == 0 || per.is_zero()) {
            return Err(ConfigError::ZeroRate);
        }
        let system_clock = self.clock.is_none();
        let core = Core::new(CoreConfig {
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            system_clock,
            capacity: self.capacity,
            default_timeout: self.default_timeout,
            default_options: self.default_options,
            token: self.token.unwrap_or_default(),
            rate: self.rate,
        });
        let shared = Shared::new(
            Arc::new(core),
            self.max_workers,
            self.runtime.unwrap_or_else(Runtime::current).into_spawner(),
            self.idle_timeout,
        );
        Ok(Pool {
            owner: Arc::new(Owner {
                shared: Arc::new(shared),
                _parent: None,
            }),
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("max_workers", &self.max_workers)
            .field("queue_capacity", &self.capacity)
            .field("idle_timeout", &self.idle_timeout)
            .field(
                "runtime",
                match &self.runtime {
                    Some(rt) => rt as &dyn fmt::Debug,
                    None => &"current (chosen when built)",
                },
            )
            .field("default_timeout", &self.default_timeout)
            .field("default_options", &self.default_options)
            .field(
                "rate_limit",
                &self.rate.map(|(n, per)| format!("{n} per {per:?}")),
            )
            .finish_non_exhaustive()
    }
}

//! The pool's only ties to a runtime: how workers are spawned, and how time
//! is told and waited for.
//!
//! - A **spawner** runs the pool's worker futures. A [`Runtime`] names one:
//!   the embedded executor shared by every pool of the process, whose threads
//!   number at most the machine's parallelism (started on first use, never
//!   one thread per worker), a tokio `Handle`, smol's global executor, or
//!   any `Fn(BoxFuture<()>)`. A pool built without one takes
//!   [`Runtime::current`] when it is built.
//! - A **clock** tells the time and sleeps. The default uses `std::time::Instant`
//!   and `async-io` timers, which work under every runtime and under none.
//!   [`Builder::timer`](crate::Builder::timer) swaps the sleep
//!   (`|d| tokio::time::sleep(d)`), [`Builder::clock`](crate::Builder::clock)
//!   swaps both (a manual clock in tests).
//! - Blocking closures run on the `blocking` crate's thread pool, never on an
//!   executor thread.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_executor::Executor;

use crate::sync::Arc;

/// A boxed, sendable future: what a spawner runs and what a clock's sleep is.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pub(crate) type Spawner = Arc<dyn Fn(BoxFuture<()>) + Send + Sync>;

/// Where the pool reads the time and how it sleeps.
///
/// Implement it to drive a pool with a manual clock in tests: `now` returns
/// the clock's time, and `sleep_until` returns a future that resolves once
/// the clock reaches `deadline`. The pool measures every duration, deadline,
/// backoff and idle timeout with its clock.
///
/// # Panics in a clock
///
/// A clock whose `now` or `sleep_until` (or whose sleep's poll) panics
/// never strands a job: read for a submit, the panic comes out of that
/// submit, with nothing queued; read for a job (its start, its deadline,
/// its backoff, its end), the job resolves [`JobError::Panicked`](crate::JobError::Panicked)
/// with the panic's message; read for an idle worker's timer, the worker
/// stays instead of leaving after the idle timeout.
///
/// # Examples
///
/// ```
/// use std::time::Instant;
/// use workerpoolxt::{BoxFuture, Clock, Pool};
///
/// struct SystemClock;
///
/// impl Clock for SystemClock {
///     fn now(&self) -> Instant {
///         Instant::now()
///     }
///     fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
///         Box::pin(async move {
///             async_io::Timer::at(deadline).await;
///         })
///     }
/// }
///
/// let pool = Pool::builder().max_workers(2).clock(SystemClock).build();
/// assert_eq!(pool.submit(async { 7 }).wait(), Ok(7));
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Instant;
    /// A future that resolves once [`now`](Self::now) has reached `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;
}

/// The default clock: `Instant::now` and `async-io` timers.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        let timer = async_io::Timer::at(deadline);
        Box::pin(async move {
            timer.await;
        })
    }
}

/// A sleep on a pool's clock: the system clock's `async-io` timer held
/// inline (no allocation), or another clock's boxed future.
pub(crate) enum Sleep {
    Timer(async_io::Timer),
    Other(BoxFuture<()>),
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.get_mut() {
            Sleep::Timer(t) => Pin::new(t).poll(cx).map(drop),
            Sleep::Other(f) => f.as_mut().poll(cx),
        }
    }
}

/// `Instant::now` with a user's sleep function (`Builder::timer`).
pub(crate) struct FnTimer<F>(pub(crate) F);

impl<F, Fut> Clock for FnTimer<F>
where
    F: Fn(Duration) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        let d = deadline.saturating_duration_since(Instant::now());
        Box::pin((self.0)(d))
    }
}

pub(crate) type SharedClock = Arc<dyn Clock>;

/// The embedded executor: shared by every pool without a spawner.
fn embedded() -> &'static Executor<'static> {
    static EXECUTOR: OnceLock<Executor<'static>> = OnceLock::new();
    static THREADS: OnceLock<()> = OnceLock::new();
    let ex = EXECUTOR.get_or_init(Executor::new);
    THREADS.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..n {
            std::thread::Builder::new()
                .name(format!("workerpoolxt-{i}"))
                .spawn(move || loop {
                    // Jobs catch their own panics; this keeps the thread alive
                    // should anything else unwind out of a worker.
                    let _ = std::panic::catch_unwind(|| {
                        async_io::block_on(ex.run(std::future::pending::<()>()))
                    });
                })
                .expect("workerpoolxt: could not start an executor thread");
        }
    });
    ex
}

pub(crate) fn embedded_spawner() -> Spawner {
    Arc::new(|f: BoxFuture<()>| embedded().spawn(f).detach())
}

/// Where a pool runs its workers: the runtime as one value, for a library
/// that embeds a pool and lets its caller choose.
///
/// Give it to [`Builder::runtime`](crate::Builder::runtime). A pool built
/// without one takes [`Runtime::current`]: the caller's tokio runtime when
/// the `tokio` feature is on and the pool is built inside one, the embedded
/// executor otherwise.
///
/// Only the workers run there. Blocking closures (`submit_blocking`,
/// `Job::blocking`) run on a blocking thread pool whatever the runtime, and
/// the pool's own timers (timeouts, deadlines, backoff, idle workers) are
/// `async-io` timers unless [`Builder::timer`](crate::Builder::timer) or
/// [`Builder::clock`](crate::Builder::clock) says otherwise, so they work
/// on a tokio runtime built without `enable_time()` too.
///
/// `Runtime` is `Clone` (cheap) and `Send + Sync`.
///
/// # Examples
///
/// A library that takes the runtime from its caller:
///
/// ```
/// use workerpoolxt::{Pool, Runtime};
///
/// struct Squarer {
///     pool: Pool,
/// }
///
/// impl Squarer {
///     fn new(rt: Runtime) -> Squarer {
///         Squarer { pool: Pool::builder().max_workers(2).runtime(rt).build() }
///     }
///
///     async fn square(&self, n: u64) -> u64 {
///         self.pool.submit(async move { n * n }).await.unwrap()
///     }
/// }
///
/// let squarer = Squarer::new(Runtime::embedded());
/// assert_eq!(futures_lite::future::block_on(squarer.square(7)), 49);
/// ```
#[derive(Clone)]
pub struct Runtime {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Embedded,
    #[cfg(feature = "tokio")]
    Tokio(tokio::runtime::Handle),
    #[cfg(feature = "smol")]
    Smol,
    Custom(Spawner),
}

impl Runtime {
    /// The embedded executor: threads of the crate's own, at most one per
    /// core, shared by every pool of the process and started on first use.
    ///
    /// It works under any runtime and under none, but a job on it is not
    /// inside the caller's runtime: a job that uses tokio's timers or I/O
    /// there fails (tokio panics with "there is no reactor running"; the
    /// job's handle resolves `Panicked`).
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{Pool, Runtime};
    ///
    /// let pool = Pool::builder().runtime(Runtime::embedded()).build();
    /// assert_eq!(pool.submit(async { 1 + 1 }).wait(), Ok(2));
    /// ```
    pub fn embedded() -> Runtime {
        Runtime {
            kind: Kind::Embedded,
        }
    }

    /// The tokio runtime of `handle`: workers are spawned with
    /// [`Handle::spawn`](tokio::runtime::Handle::spawn), so jobs can use
    /// that runtime's I/O and timers, and the pool can be built and used
    /// from any thread, inside the runtime or not.
    ///
    /// On a current-thread runtime the workers run only while that
    /// runtime's thread drives it (inside its `block_on`); a thread that
    /// blocks on a handle there ([`ResultHandle::wait`](crate::ResultHandle::wait))
    /// keeps the job from ever running. If the runtime shuts down, the job
    /// its worker was running resolves [`JobError::Stopped`](crate::JobError::Stopped),
    /// and jobs still queued resolve `Stopped` at the latest when the pool
    /// stops (or its last clone is dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{Pool, Runtime};
    ///
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// // Built and used from a thread outside the runtime.
    /// let pool = Pool::builder().runtime(Runtime::tokio(rt.handle().clone())).build();
    /// let job = pool.submit(async {
    ///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    ///     "slept on tokio"
    /// });
    /// assert_eq!(job.wait(), Ok("slept on tokio"));
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn tokio(handle: tokio::runtime::Handle) -> Runtime {
        Runtime {
            kind: Kind::Tokio(handle),
        }
    }

    /// smol's global executor: workers are spawned with `smol::spawn`.
    ///
    /// smol's global executor runs its tasks on threads of its own, so the
    /// jobs run whether or not the caller is inside `smol::block_on`.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{Pool, Runtime};
    ///
    /// smol::block_on(async {
    ///     let pool = Pool::builder().runtime(Runtime::smol()).build();
    ///     assert_eq!(pool.submit(async { 1 + 1 }).await, Ok(2));
    /// });
    /// ```
    #[cfg(feature = "smol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
    pub fn smol() -> Runtime {
        Runtime { kind: Kind::Smol }
    }

    /// Any executor: `spawn` runs each worker future, as
    /// [`Builder::spawner`](crate::Builder::spawner) does (async-std's
    /// `|f| { async_std::task::spawn(f); }`, say).
    ///
    /// `spawn` is called from whichever thread submits. If it panics, or its
    /// executor drops a worker, the pool behaves as `Builder::spawner`
    /// describes.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{Pool, Runtime};
    ///
    /// let rt = Runtime::spawner(|f| {
    ///     async_std::task::spawn(f);
    /// });
    /// let pool = Pool::builder().runtime(rt).build();
    /// assert_eq!(async_std::task::block_on(pool.submit(async { 3 })), Ok(3));
    /// ```
    pub fn spawner<F>(spawn: F) -> Runtime
    where
        F: Fn(BoxFuture<()>) + Send + Sync + 'static,
    {
        Runtime {
            kind: Kind::Custom(Arc::new(spawn)),
        }
    }

    /// The runtime the caller is in: with the `tokio` feature, the current
    /// tokio runtime if the calling thread is inside one
    /// (`tokio::runtime::Handle::try_current()` succeeds); otherwise the
    /// embedded executor.
    ///
    /// This is what a pool built without [`Builder::runtime`](crate::Builder::runtime),
    /// [`Builder::spawner`](crate::Builder::spawner) or
    /// [`Builder::embedded`](crate::Builder::embedded) takes, when it is built.
    /// smol and async-std cannot be told from outside, so their callers
    /// choose them.
    ///
    /// A pool keeps the runtime it took for its whole life. One that should
    /// outlive the runtime it is built in (a pool in a `static` first
    /// touched inside `#[tokio::test]`, say) needs another choice: once that
    /// runtime has shut down it runs no worker, and jobs submitted then wait
    /// until the pool is stopped and resolve [`JobError::Stopped`](crate::JobError::Stopped).
    /// [`Runtime::embedded`] lives as long as the process.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{Pool, Runtime};
    ///
    /// // Outside any runtime: the embedded executor.
    /// let pool = Pool::builder().runtime(Runtime::current()).build();
    /// assert_eq!(pool.submit(async { 4 }).wait(), Ok(4));
    /// ```
    pub fn current() -> Runtime {
        #[cfg(feature = "tokio")]
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            return Runtime::tokio(handle);
        }
        Runtime::embedded()
    }

    /// The spawner that runs the workers there.
    pub(crate) fn into_spawner(self) -> Spawner {
        match self.kind {
            Kind::Embedded => embedded_spawner(),
            #[cfg(feature = "tokio")]
            Kind::Tokio(handle) => Arc::new(move |f: BoxFuture<()>| {
                handle.spawn(f);
            }),
            #[cfg(feature = "smol")]
            Kind::Smol => Arc::new(|f: BoxFuture<()>| smol::spawn(f).detach()),
            Kind::Custom(spawn) => spawn,
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match &self.kind {
            Kind::Embedded => "embedded",
            #[cfg(feature = "tokio")]
            Kind::Tokio(_) => "tokio",
            #[cfg(feature = "smol")]
            Kind::Smol => "smol",
            Kind::Custom(_) => "spawner",
        };
        f.debug_tuple("Runtime")
            .field(&format_args!("{name}"))
            .finish()
    }
}

/// Runs `f` on the blocking thread pool; resolves to its result or its panic.
///
/// Called while a worker polls a job: the closure runs marked as that
/// pool's job (see [`current_job`]).
pub(crate) fn unblock<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> blocking::Task<std::thread::Result<T>> {
    let job = current_job::get().map(|job| current_job::InJob {
        blocking: true,
        ..job
    });
    blocking::unblock(move || {
        let _in = job.map(current_job::enter);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
    })
}

/// A reading of the system clock that a worker hands from the end of one job
/// to the start of the next, so that a worker running jobs back to back
/// reads the clock once per job instead of twice.
///
/// The end of a job sets it (on the worker's thread, in the poll that ends
/// the job); the start of a job takes it. The worker keeps it only while it
/// goes straight from one job to the next without waiting for anything; it
/// clears it otherwise (`worker.rs`), so a start never takes an old reading.
/// Only the system clock is handed on this way (a manual clock may be moved
/// by another thread between the two jobs). Under loom, whose threads share
/// thread-locals, there is no hint.
pub(crate) mod clock_hint {
    #[cfg(not(workerpoolxt_loom))]
    use std::cell::Cell;
    use std::time::Instant;

    /// A reading, the same reading in ns since the epoch of the pool that
    /// took it, and that pool (its state's address: the ns are only that
    /// pool's).
    pub(crate) type Hint = (Instant, u64, usize);

    #[cfg(not(workerpoolxt_loom))]
    thread_local! {
        static HINT: Cell<Option<Hint>> = const { Cell::new(None) };
    }

    /// The end of a job, read now.
    pub(crate) fn set(hint: Hint) {
        #[cfg(not(workerpoolxt_loom))]
        HINT.with(|h| h.set(Some(hint)));
        #[cfg(workerpoolxt_loom)]
        let _ = hint;
    }

    /// Takes the reading left by the job that ended just before, if any.
    pub(crate) fn take() -> Option<Hint> {
        #[cfg(not(workerpoolxt_loom))]
        return HINT.with(Cell::take);
        #[cfg(workerpoolxt_loom)]
        None
    }

    /// Forgets the reading: the worker is about to wait, or to poll a job
    /// that did not come straight after another one.
    pub(crate) fn clear() {
        #[cfg(not(workerpoolxt_loom))]
        HINT.with(|h| h.set(None));
    }
}

/// Which pool's job, if any, the current thread is running: set around
/// each poll of a worker (`worker::InPool`), and on the blocking thread
/// around a job's blocking closure. What would wait on itself from inside a job
/// looks here (`ResultHandle::wait`, `Pool::stop`, `Pool::pause`).
/// Under loom, whose threads share thread-locals, nothing is ever set.
pub(crate) mod current_job {
    #[cfg(not(workerpoolxt_loom))]
    use std::cell::Cell;

    /// Where the thread is: in a job of the pool with this id (its state's
    /// address), and whether that job is a blocking closure.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct InJob {
        pub(crate) pool: usize,
        pub(crate) blocking: bool,
    }

    #[cfg(not(workerpoolxt_loom))]
    thread_local! {
        static CURRENT: Cell<Option<InJob>> = const { Cell::new(None) };
    }

    /// Marks the thread as running a job of `pool` until dropped (what it
    /// was before comes back then, so nested polls of two pools' jobs
    /// nest).
    pub(crate) struct Enter {
        #[cfg(not(workerpoolxt_loom))]
        before: Option<InJob>,
    }

    pub(crate) fn enter(job: InJob) -> Enter {
        #[cfg(not(workerpoolxt_loom))]
        return Enter {
            before: CURRENT.with(|c| c.replace(Some(job))),
        };
        #[cfg(workerpoolxt_loom)]
        {
            let _ = job;
            Enter {}
        }
    }

    impl Drop for Enter {
        fn drop(&mut self) {
            #[cfg(not(workerpoolxt_loom))]
            CURRENT.with(|c| c.set(self.before));
        }
    }

    /// The job the current thread runs, if any.
    pub(crate) fn get() -> Option<InJob> {
        #[cfg(not(workerpoolxt_loom))]
        return CURRENT.with(Cell::get);
        #[cfg(workerpoolxt_loom)]
        None
    }
}

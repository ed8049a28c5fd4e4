//! The pool's only ties to a runtime: how workers are spawned, and how time
//! is told and waited for.
//!
//! - A **spawner** runs the pool's worker futures. By default they run on an
//!   embedded executor shared by every pool of the process, whose threads
//!   number at most the machine's parallelism (started on first use, never
//!   one thread per worker). Any `Fn(BoxFuture<'static, ()>)` can replace it,
//!   e.g. `|f| { handle.spawn(f); }` for tokio or `|f| smol::spawn(f).detach()`.
//! - A **clock** tells the time and sleeps. The default uses `std::time::Instant`
//!   and `async-io` timers, which work under every runtime and under none.
//!   [`Builder::timer`](crate::Builder::timer) swaps the sleep
//!   (`|d| tokio::time::sleep(d)`), [`Builder::clock`](crate::Builder::clock)
//!   swaps both (a manual clock in tests).
//! - Blocking closures run on the `blocking` crate's thread pool, never on an
//!   executor thread.

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

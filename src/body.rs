//! What a task runs for a job: its [`Body`], one attempt at a time, and
//! the bodies of the plain submits (one future, one blocking closure).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::context::{JobContext, JobMeta};
use crate::runtime::unblock;

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

    /// Whether `error` may be retried (if retries are left).
    fn retries(&self, _error: &Self::Error) -> bool {
        true
    }

    /// Whether nothing but the end of its future ends the job: no token, no
    /// default timeout, no shutdown's cancel. Only a sub-pool's worker is
    /// (`SubWorker`): the jobs it runs have their own, and dropping it
    /// mid-job would free its slot under a blocking closure still running.
    fn shielded(&self) -> bool {
        false
    }
}

/// The body of a sub-pool's worker, queued as a job of its parent
/// (`Pool::subpool`): its one future is the task's first attempt, and
/// nothing interrupts it (see [`Body::shielded`]).
pub(crate) struct SubWorker;

impl Body for SubWorker {
    type Output = ();
    type Error = std::convert::Infallible;
    type Attempt = OkFuture<crate::runtime::BoxFuture<()>>;

    fn attempt(&mut self, _ctx: Option<JobContext>) -> Option<Self::Attempt> {
        None
    }

    fn is_blocking(&self) -> bool {
        false
    }

    fn shielded(&self) -> bool {
        true
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

//! [`Job`]: one job of workerpoolxt's kind (a factory of attempts, with a
//! name, a timeout or deadline, retries, options and a token), and the body
//! a task runs for it (`JobBody`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::body::{BlockingAttempt, Body};
use crate::cancel::CancelToken;
use crate::context::{Backoff, JobContext, JobMeta};
use crate::header::Name;
use crate::options::Options;
use crate::runtime::BoxFuture;
use crate::sync::lock_std as lock;

/// A job with the workerpoolxt extras: a name, a timeout or deadline,
/// retries with backoff, options and its own cancel token.
///
/// Build one with [`Job::new`] (async) or [`Job::blocking`] (a closure for the
/// blocking thread pool), set what you need, and submit it with
/// [`Pool::submit_job`](crate::Pool::submit_job). Both take a *factory*,
/// called once per attempt with a fresh [`JobContext`], because a retry needs
/// a new future.
///
/// | setting | default | |
/// |---|---|---|
/// | [`name`](Self::name) | none | kept in the [`Outcome`](crate::Outcome) on every path |
/// | [`timeout`](Self::timeout) | the pool's [`default_timeout`](crate::Builder::default_timeout) | from the job's first start; covers every attempt and backoff |
/// | [`deadline`](Self::deadline) | none | absolute; if it passes while queued the job never starts |
/// | [`retry`](Self::retry) | 0 | more attempts after an `Err` (never after a panic, timeout or cancel) |
/// | [`backoff`](Self::backoff) | [`Backoff::default`] | wait between attempts |
/// | [`options`](Self::options) | the pool's [`default_options`](crate::Builder::default_options) | replaces them, never merged |
/// | [`cancel_token`](Self::cancel_token) | the pool's [`cancel_token`](crate::Pool::cancel_token) | replaces it, never merged |
///
/// A job's own timeout, deadline, options or token **replace** the pool's
/// defaults, as in workerpoolxt: setting a timeout or a deadline drops the
/// pool's default timeout for that job.
///
/// # Retries hold the slot
///
/// A job keeps its worker while it waits out its backoff between attempts:
/// the bound of `max_workers` counts jobs, whatever phase they are in.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use workerpoolxt::{Backoff, Job, Pool};
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(4);
/// let job = Job::new(|ctx| async move {
///     if ctx.attempt() < 3 { Err("not yet") } else { Ok(ctx.attempt()) }
/// })
/// .name("third time lucky")
/// .timeout(Duration::from_secs(5))
/// .retry(5)
/// .backoff(Backoff::fixed(Duration::from_millis(1)));
///
/// let outcome = pool.submit_job(job).outcome().await;
/// assert_eq!(outcome.attempts(), 3);
/// assert_eq!(outcome.into_result(), Ok(3));
/// # });
/// ```
#[must_use = "a job does nothing until it is submitted"]
pub struct Job<T, E> {
    factory: Factory<T, E>,
    meta: JobMeta,
}

type AsyncFactory<T, E> = Box<dyn FnMut(JobContext) -> BoxFuture<Result<T, E>> + Send>;
type BlockingFn<T, E> = Arc<Mutex<dyn FnMut(JobContext) -> Result<T, E> + Send>>;

enum Factory<T, E> {
    Async(AsyncFactory<T, E>),
    Blocking(BlockingFn<T, E>),
}

impl<T, E> Job<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    /// An async job: `factory` makes the future of one attempt.
    ///
    /// On cancel or timeout the attempt's future is dropped, then the handle
    /// resolves.
    pub fn new<F, Fut>(mut factory: F) -> Job<T, E>
    where
        F: FnMut(JobContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        Job::with_factory(Factory::Async(Box::new(move |ctx| Box::pin(factory(ctx)))))
    }

    /// A blocking job: `f` runs once per attempt on the blocking thread pool,
    /// never on an executor thread.
    ///
    /// A running closure cannot be stopped: on cancel or timeout its handle
    /// resolves at once, [`JobContext::is_cancelled`] turns `true` so it can
    /// notice, and its worker stays busy until it returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{Job, Pool};
    ///
    /// let pool = Pool::new(2);
    /// let job = Job::blocking(|ctx| {
    ///     let mut sum = 0u64;
    ///     for i in 0..1_000u64 {
    ///         if ctx.is_cancelled() { return Err("cancelled"); }
    ///         sum += i;
    ///     }
    ///     Ok(sum)
    /// });
    /// assert_eq!(pool.submit_job(job).wait(), Ok(499_500));
    /// ```
    pub fn blocking<F>(f: F) -> Job<T, E>
    where
        F: FnMut(JobContext) -> Result<T, E> + Send + 'static,
    {
        Job::with_factory(Factory::Blocking(Arc::new(Mutex::new(f))))
    }

    fn with_factory(factory: Factory<T, E>) -> Job<T, E> {
        Job {
            factory,
            meta: JobMeta {
                name: None,
                timeout: None,
                deadline: None,
                retry: 0,
                backoff: Backoff::default(),
                options: None,
                token: None,
            },
        }
    }
}

impl<T, E> Job<T, E> {
    /// Names the job; the name is in its [`JobContext`] and [`Outcome`](crate::Outcome).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.meta.name = Some(Arc::new(name.into()));
        self
    }

    /// Limits the job to `timeout` from its first start, over all its
    /// attempts and backoffs. Replaces the pool's default timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.meta.timeout = Some(timeout);
        self
    }

    /// An absolute deadline. If it passes while the job is queued, the job
    /// never starts and resolves [`JobError::TimedOut`](crate::JobError::TimedOut).
    /// With a [`timeout`](Self::timeout) too, the earlier of the two applies.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.meta.deadline = Some(deadline);
        self
    }

    /// Up to `retries` more attempts after an attempt returns `Err`.
    ///
    /// No retry follows a panic, a timeout or a cancel; no attempt starts
    /// once the deadline has passed or the job was cancelled, and none after
    /// its handle resolved.
    pub fn retry(mut self, retries: u32) -> Self {
        self.meta.retry = retries;
        self
    }

    /// How long to wait before each retry. The job keeps its worker meanwhile.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.meta.backoff = backoff;
        self
    }

    /// Options for this job only. They **replace** the pool's
    /// [`default_options`](crate::Builder::default_options); nothing is merged.
    pub fn options(mut self, options: Options) -> Self {
        self.meta.options = Some(options);
        self
    }

    /// A token for this job only. It **replaces** the pool's token: cancelling
    /// the pool's token no longer cancels this job.
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.meta.token = Some(token);
        self
    }

    /// The job's name, if set.
    pub fn get_name(&self) -> Option<&str> {
        self.meta.name.as_deref().map(String::as_str)
    }

    pub(crate) fn name_arc(&self) -> Option<Name> {
        self.meta.name.clone()
    }

    pub(crate) fn into_parts(self) -> (JobBody<T, E>, Option<Name>) {
        let name = self.meta.name.clone();
        (JobBody { job: self }, name)
    }
}

impl<T, E> fmt::Debug for Job<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.meta.name)
            .field(
                "kind",
                &match self.factory {
                    Factory::Async(_) => "async",
                    Factory::Blocking(_) => "blocking",
                },
            )
            .field("timeout", &self.meta.timeout)
            .field("deadline", &self.meta.deadline)
            .field("retry", &self.meta.retry)
            .field("backoff", &self.meta.backoff)
            .finish_non_exhaustive()
    }
}

/// A [`Job`] as the body of a task.
pub(crate) struct JobBody<T, E> {
    pub(crate) job: Job<T, E>,
}

/// One attempt of a [`Job`].
pub(crate) enum JobAttempt<T, E> {
    Async(BoxFuture<Result<T, E>>),
    Blocking(BlockingAttempt<Result<T, E>>),
}

impl<T, E> Future for JobAttempt<T, E> {
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            JobAttempt::Async(f) => f.as_mut().poll(cx),
            JobAttempt::Blocking(b) => Pin::new(b).poll(cx),
        }
    }
}

impl<T: Send + 'static, E: Send + 'static> Body for JobBody<T, E> {
    type Output = T;
    type Error = E;
    type Attempt = JobAttempt<T, E>;

    fn attempt(&mut self, ctx: Option<JobContext>) -> Option<Self::Attempt> {
        let ctx = ctx?;
        Some(match &mut self.job.factory {
            Factory::Async(factory) => JobAttempt::Async(factory(ctx)),
            Factory::Blocking(f) => {
                let f = f.clone();
                JobAttempt::Blocking(BlockingAttempt::spawn(move || {
                    let mut f = lock(&f);
                    (*f)(ctx)
                }))
            }
        })
    }

    fn is_blocking(&self) -> bool {
        matches!(self.job.factory, Factory::Blocking(_))
    }

    fn meta(&self) -> Option<&JobMeta> {
        Some(&self.job.meta)
    }
}

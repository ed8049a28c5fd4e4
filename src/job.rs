//! [`Job`]: one job of workerpoolxt's kind (a factory of attempts, with a
//! name, a timeout or deadline, retries, options and a token), and the body
//! a task runs for it (`JobBody`).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::body::{BlockingAttempt, Body, OkFuture};
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
/// a new future. [`Job::infallible`] is [`Job::new`] for values that cannot
/// fail. A job that runs once needs no factory: [`Job::once`] takes one
/// future, [`Job::blocking_once`] one closure (kind [`Once`]: no retry).
///
/// `K`, the job's kind, is [`Retryable`] or [`Once`]; it only decides which
/// settings exist.
///
/// | setting | default | |
/// |---|---|---|
/// | [`name`](Self::name) | none | kept in the [`Outcome`](crate::Outcome) on every path |
/// | [`timeout`](Self::timeout) | the pool's [`default_timeout`](crate::Builder::default_timeout) | from the job's first start; covers every attempt and backoff |
/// | [`deadline`](Self::deadline) | none | absolute; if it passes while queued the job never starts |
/// | [`retry`](Self::retry) | 0 | more attempts after an `Err` or an attempt timeout (never after a panic, the job's timeout or a cancel) |
/// | [`retry_if`](Self::retry_if) | every error | which errors are retried |
/// | [`attempt_timeout`](Self::attempt_timeout) | none | each attempt's own limit |
/// | [`backoff`](Self::backoff) | [`Backoff::default`] | wait between attempts; never past the deadline |
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
pub struct Job<T, E, K = Retryable> {
    factory: Factory<T, E>,
    meta: JobMeta,
    retry_if: Option<RetryIf<E>>,
    _kind: PhantomData<fn() -> K>,
}

/// The kind of a [`Job`] that can be retried: made by a factory
/// ([`Job::new`], [`Job::blocking`], [`Job::infallible`]), which makes a
/// new attempt per try.
#[derive(Debug)]
pub enum Retryable {}

/// The kind of a [`Job`] that runs once: one future ([`Job::once`]) or one
/// closure ([`Job::blocking_once`]). It has no `retry`, `retry_if`,
/// `backoff` or `attempt_timeout`: calling them does not compile.
///
/// ```compile_fail
/// use workerpoolxt::Job;
///
/// let job = Job::once(async { Ok::<_, ()>(1) }).retry(3);
/// ```
#[derive(Debug)]
pub enum Once {}

type AsyncFactory<T, E> = Box<dyn FnMut(JobContext) -> BoxFuture<Result<T, E>> + Send>;
type BlockingFn<T, E> = Arc<Mutex<dyn FnMut(JobContext) -> Result<T, E> + Send>>;
type BlockingOnce<T, E> = Box<dyn FnOnce(JobContext) -> Result<T, E> + Send>;
type RetryIf<E> = Box<dyn Fn(&E) -> bool + Send + Sync>;

enum Factory<T, E> {
    Async(AsyncFactory<T, E>),
    Blocking(BlockingFn<T, E>),
    /// `Job::once`'s future, until its one attempt takes it.
    OnceAsync(Option<BoxFuture<Result<T, E>>>),
    /// `Job::blocking_once`'s closure, until its one attempt takes it.
    OnceBlocking(Option<BlockingOnce<T, E>>),
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

    /// A job that runs `future` once (no retry; see [`Once`]).
    ///
    /// Unlike [`Pool::submit`](crate::Pool::submit), the job has a name,
    /// timeout, deadline, options and token, and an `Err` counts as a
    /// failure in the [`Metrics`](crate::Metrics) and resolves
    /// [`JobError::Failed`](crate::JobError::Failed). Being one future, not
    /// a factory, it may move what it captured.
    ///
    /// ```
    /// use workerpoolxt::{Job, JobError, Pool};
    ///
    /// let pool = Pool::new(2);
    /// let url = String::from("https://example.com");
    /// let job = Job::once(async move { Err::<(), _>(format!("{url}: 503")) }).name("fetch");
    /// assert_eq!(
    ///     pool.submit_job(job).wait(),
    ///     Err(JobError::Failed("https://example.com: 503".to_string()))
    /// );
    /// ```
    pub fn once<Fut>(future: Fut) -> Job<T, E, Once>
    where
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        Job::with_factory(Factory::OnceAsync(Some(Box::pin(future))))
    }

    /// A job that runs `f` once on the blocking thread pool (no retry; see
    /// [`Once`]); as [`Job::blocking`] otherwise.
    ///
    /// ```
    /// use workerpoolxt::{Job, Pool};
    ///
    /// let pool = Pool::new(2);
    /// let text = String::from("moved in, not cloned");
    /// let job = Job::blocking_once(move |_ctx| Ok::<_, ()>(text.len()));
    /// assert_eq!(pool.submit_job(job).wait(), Ok(20));
    /// ```
    pub fn blocking_once<F>(f: F) -> Job<T, E, Once>
    where
        F: FnOnce(JobContext) -> Result<T, E> + Send + 'static,
    {
        Job::with_factory(Factory::OnceBlocking(Some(Box::new(f))))
    }

    fn with_factory<K>(factory: Factory<T, E>) -> Job<T, E, K> {
        Job {
            factory,
            meta: JobMeta {
                name: None,
                timeout: None,
                deadline: None,
                attempt_timeout: None,
                retry: 0,
                backoff: Backoff::default(),
                options: None,
                token: None,
            },
            retry_if: None,
            _kind: PhantomData,
        }
    }
}

impl<T: Send + 'static> Job<T, Infallible> {
    /// An async job that cannot fail: `factory` makes the future of its
    /// value, without `Ok::<_, Infallible>`.
    ///
    /// ```
    /// use workerpoolxt::{Job, Pool};
    ///
    /// let pool = Pool::new(2);
    /// let job = Job::infallible(|ctx| async move { ctx.attempt() * 10 });
    /// assert_eq!(pool.submit_job(job).wait(), Ok(10));
    /// ```
    pub fn infallible<F, Fut>(mut factory: F) -> Job<T, Infallible>
    where
        F: FnMut(JobContext) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        Job::new(move |ctx| OkFuture::new(factory(ctx)))
    }
}

impl<T, E> Job<T, E, Retryable> {
    /// Up to `retries` more attempts after an attempt returns `Err` (or
    /// runs past its [`attempt_timeout`](Self::attempt_timeout)).
    ///
    /// No retry follows a panic, a cancel, or the job's own timeout or
    /// deadline; no attempt starts once the deadline has passed or the job
    /// was cancelled, and none after its handle resolved. If the wait
    /// before the next attempt (its [`backoff`](Self::backoff)) would end
    /// at or after the job's deadline, the job does not wait: it ends at
    /// once with the last attempt's error.
    pub fn retry(mut self, retries: u32) -> Self {
        self.meta.retry = retries;
        self
    }

    /// Retries only the errors `retryable` accepts (with
    /// [`retry`](Self::retry) attempts left); any other error ends the job
    /// at once, [`JobError::Failed`](crate::JobError::Failed). An attempt
    /// that runs past its [`attempt_timeout`](Self::attempt_timeout) is
    /// always retryable. A predicate that panics ends the job
    /// [`JobError::Panicked`](crate::JobError::Panicked).
    ///
    /// ```
    /// use workerpoolxt::{Backoff, Job, JobError, Pool};
    ///
    /// let pool = Pool::new(1);
    /// let job = Job::new(|_ctx| async { Err::<(), u16>(404) })
    ///     .retry(5)
    ///     .retry_if(|status| *status >= 500)
    ///     .backoff(Backoff::none());
    /// let outcome = pool.submit_job(job).outcome().wait();
    /// assert_eq!(outcome.attempts(), 1);
    /// assert_eq!(outcome.into_result(), Err(JobError::Failed(404)));
    /// ```
    pub fn retry_if(mut self, retryable: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.retry_if = Some(Box::new(retryable));
        self
    }

    /// How long to wait before each retry. The job keeps its worker meanwhile.
    ///
    /// The default ([`Backoff::default`]) waits 500 ms ± 50 % before the
    /// first retry: with a [`timeout`](Self::timeout) shorter than that, the
    /// backoff rarely fits, and a failed first attempt ends the job with its
    /// error instead of a retry. Choose a backoff that fits the timeout.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.meta.backoff = backoff;
        self
    }

    /// Limits each attempt to `timeout` from its own start.
    ///
    /// An async attempt that runs past it is dropped; a blocking one cannot
    /// be stopped: its context reports [`is_cancelled`](JobContext::is_cancelled)
    /// and the job waits for it to return (its value is dropped), keeping
    /// its worker. Either way the attempt counts as a failure that is
    /// retried (whatever [`retry_if`](Self::retry_if) says), and if it was
    /// the last attempt the handle resolves
    /// [`JobError::TimedOut`](crate::JobError::TimedOut) (a blocking last
    /// attempt at once, as on any timeout). [`timeout`](Self::timeout) and
    /// [`deadline`](Self::deadline) still bound the whole job.
    ///
    /// ```
    /// use std::time::Duration;
    /// use workerpoolxt::{Backoff, Job, Pool};
    ///
    /// let pool = Pool::new(1);
    /// let job = Job::new(|ctx| async move {
    ///     if ctx.attempt() == 1 {
    ///         std::future::pending::<()>().await; // the first attempt hangs
    ///     }
    ///     Ok::<_, ()>(ctx.attempt())
    /// })
    /// .attempt_timeout(Duration::from_millis(20))
    /// .retry(2)
    /// .backoff(Backoff::none());
    /// assert_eq!(pool.submit_job(job).wait(), Ok(2));
    /// ```
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.meta.attempt_timeout = Some(timeout);
        self
    }
}

impl<T, E, K> Job<T, E, K> {
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
        let body = JobBody {
            factory: self.factory,
            meta: self.meta,
            retry_if: self.retry_if,
        };
        (body, name)
    }
}

impl<T, E, K> fmt::Debug for Job<T, E, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.meta.name)
            .field(
                "kind",
                &match self.factory {
                    Factory::Async(_) => "async",
                    Factory::Blocking(_) => "blocking",
                    Factory::OnceAsync(_) => "async, once",
                    Factory::OnceBlocking(_) => "blocking, once",
                },
            )
            .field("timeout", &self.meta.timeout)
            .field("deadline", &self.meta.deadline)
            .field("attempt_timeout", &self.meta.attempt_timeout)
            .field("retry", &self.meta.retry)
            .field("retry_if", &self.retry_if.is_some())
            .field("backoff", &self.meta.backoff)
            .finish_non_exhaustive()
    }
}

/// A [`Job`] as the body of a task.
pub(crate) struct JobBody<T, E> {
    factory: Factory<T, E>,
    meta: JobMeta,
    retry_if: Option<RetryIf<E>>,
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
        Some(match &mut self.factory {
            Factory::Async(factory) => JobAttempt::Async(factory(ctx)),
            Factory::Blocking(f) => {
                let f = f.clone();
                JobAttempt::Blocking(BlockingAttempt::spawn(move || {
                    let mut f = lock(&f);
                    (*f)(ctx)
                }))
            }
            Factory::OnceAsync(future) => JobAttempt::Async(future.take()?),
            Factory::OnceBlocking(f) => {
                let f = f.take()?;
                JobAttempt::Blocking(BlockingAttempt::spawn(move || f(ctx)))
            }
        })
    }

    fn is_blocking(&self) -> bool {
        matches!(
            self.factory,
            Factory::Blocking(_) | Factory::OnceBlocking(_)
        )
    }

    fn meta(&self) -> Option<&JobMeta> {
        Some(&self.meta)
    }

    fn retries(&self, error: &E) -> bool {
        self.retry_if
            .as_ref()
            .is_none_or(|retryable| retryable(error))
    }
}

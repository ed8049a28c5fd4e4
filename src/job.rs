//! [`Job`], [`JobContext`] and [`Backoff`]: what one job is, what it sees
//! while it runs, and how long it waits between attempts.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::cancel::{CancelToken, Cancelled};
use crate::options::Options;
use crate::runtime::BoxFuture;
use std::sync::{Arc, Mutex};

use crate::sync::lock_std as lock;
use crate::task::{BlockingAttempt, Body};

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
    body: JobBody<T, E>,
    meta: JobMeta,
}

/// A job's name, shared by its job, context, slot and outcome. An
/// `Arc<String>` is one pointer wide (an `Arc<str>` two): every queued job
/// carries this field.
pub(crate) type Name = Arc<String>;

/// A job's settings, read by the task that runs it.
pub(crate) struct JobMeta {
    pub(crate) name: Option<Name>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) retry: u32,
    pub(crate) backoff: Backoff,
    pub(crate) options: Option<Options>,
    pub(crate) token: Option<CancelToken>,
}

type AsyncFactory<T, E> = Box<dyn FnMut(JobContext) -> BoxFuture<Result<T, E>> + Send>;
type BlockingFn<T, E> = Arc<Mutex<dyn FnMut(JobContext) -> Result<T, E> + Send>>;

enum JobBody<T, E> {
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
        Job::with_body(JobBody::Async(Box::new(move |ctx| Box::pin(factory(ctx)))))
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
        Job::with_body(JobBody::Blocking(Arc::new(Mutex::new(f))))
    }

    fn with_body(body: JobBody<T, E>) -> Job<T, E> {
        Job {
            body,
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

    pub(crate) fn into_parts(self) -> (JobBodyBox<T, E>, Option<Name>) {
        let name = self.meta.name.clone();
        (JobBodyBox { job: self }, name)
    }
}

impl<T, E> fmt::Debug for Job<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.meta.name)
            .field(
                "kind",
                &match self.body {
                    JobBody::Async(_) => "async",
                    JobBody::Blocking(_) => "blocking",
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
pub(crate) struct JobBodyBox<T, E> {
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

impl<T: Send + 'static, E: Send + 'static> Body for JobBodyBox<T, E> {
    type Output = T;
    type Error = E;
    type Attempt = JobAttempt<T, E>;

    fn attempt(&mut self, ctx: Option<JobContext>) -> Option<Self::Attempt> {
        let ctx = ctx?;
        Some(match &mut self.job.body {
            JobBody::Async(factory) => JobAttempt::Async(factory(ctx)),
            JobBody::Blocking(f) => {
                let f = f.clone();
                JobAttempt::Blocking(BlockingAttempt::spawn(move || {
                    let mut f = lock(&f);
                    (*f)(ctx)
                }))
            }
        })
    }

    fn is_blocking(&self) -> bool {
        matches!(self.job.body, JobBody::Blocking(_))
    }

    fn meta(&self) -> Option<&JobMeta> {
        Some(&self.job.meta)
    }
}

/// What a running [`Job`] knows about itself: workerpoolxt's per-job context.
///
/// Cheap to clone; `Send + Sync`. Each attempt gets its own, with its
/// [`attempt`](Self::attempt) number.
///
/// Its [`token`](Self::token) is the job's own, linked to the job both
/// ways: it is cancelled when the job is cancelled (by its handle, or by its
/// [`Job::cancel_token`] if it has one, or else by the pool's token) and
/// when its deadline passes; and cancelling it cancels this job, as its
/// handle's [`cancel`](crate::ResultHandle::cancel) would (an async job is
/// dropped, a blocking one's handle resolves at once), and nothing else:
/// not the token the job was given, nor the pool's. Async jobs are dropped
/// when cancelled anyway; blocking closures should check
/// [`is_cancelled`](Self::is_cancelled) to stop early.
///
/// # Examples
///
/// ```
/// use workerpoolxt::{Job, Options, Pool};
///
/// struct Greeting(&'static str);
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::builder()
///     .max_workers(2)
///     .default_options(Options::new().with(Greeting("hello")))
///     .build();
/// let job = Job::new(|ctx| async move {
///     let greeting = ctx.options().get::<Greeting>().map_or("?", |g| g.0);
///     Ok::<_, ()>(format!("{greeting} from {} #{}", ctx.name().unwrap_or("?"), ctx.attempt()))
/// })
/// .name("job-1");
/// assert_eq!(pool.submit_job(job).await.unwrap(), "hello from job-1 #1");
/// # });
/// ```
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<CtxInner>,
    attempt: u32,
}

struct CtxInner {
    name: Option<Name>,
    options: Options,
    deadline: Option<Instant>,
    /// The job's own token: cancelled by [`JobContext::interrupt`], and
    /// watched by the job's task, which ends `Cancelled` when the job
    /// cancels it itself.
    token: CancelToken,
}

impl JobContext {
    pub(crate) fn new(meta: &JobMeta, options: Options, deadline: Option<Instant>) -> JobContext {
        JobContext {
            inner: Arc::new(CtxInner {
                name: meta.name.clone(),
                options,
                deadline,
                token: CancelToken::new(),
            }),
            attempt: 0,
        }
    }

    pub(crate) fn with_attempt(&self, attempt: u32) -> JobContext {
        JobContext {
            inner: self.inner.clone(),
            attempt,
        }
    }

    /// The job's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref().map(String::as_str)
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The job's options: its own, or else the pool's defaults, or else none.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// When the job times out, if it has a deadline or timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// Whether the job has been cancelled or has timed out.
    pub fn is_cancelled(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// A future that resolves when the job is cancelled or times out.
    pub fn cancelled(&self) -> Cancelled {
        self.token().cancelled()
    }

    /// The job's own token (see the type's docs). Give it to work the job
    /// starts elsewhere so that it stops with the job; cancel it to cancel
    /// the job from inside.
    ///
    /// ```
    /// use workerpoolxt::{Job, JobError, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(1);
    /// let job = Job::new(|ctx| async move {
    ///     ctx.token().cancel(); // gives up: the job ends here
    ///     std::future::pending::<Result<(), ()>>().await
    /// });
    /// assert_eq!(pool.submit_job(job).await, Err(JobError::Cancelled));
    /// # });
    /// ```
    pub fn token(&self) -> &CancelToken {
        &self.inner.token
    }

    /// Whether the job's own token was cancelled (by the job, or by the
    /// pool as it ended the job).
    pub(crate) fn own_token_cancelled(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// The job was cancelled or timed out: its token is cancelled.
    pub(crate) fn interrupt(&self) {
        self.inner.token.cancel();
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("name", &self.inner.name)
            .field("attempt", &self.attempt)
            .field("deadline", &self.inner.deadline)
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// How long a [`Job`] waits before each retry.
///
/// The default is workerpoolxt's: exponential from 500 ms, ×1.5 per retry,
/// ±50 % jitter, capped at 60 s.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use workerpoolxt::Backoff;
///
/// let b = Backoff::exponential(Duration::from_millis(100))
///     .factor(2.0)
///     .max(Duration::from_secs(1))
///     .jitter(0.0);
/// assert_eq!(b.delay(1), Duration::from_millis(100));
/// assert_eq!(b.delay(2), Duration::from_millis(200));
/// assert_eq!(b.delay(10), Duration::from_secs(1));
/// assert_eq!(Backoff::none().delay(3), Duration::ZERO);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    initial: Duration,
    factor: f64,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// Retry at once.
    pub fn none() -> Backoff {
        Backoff::fixed(Duration::ZERO)
    }

    /// Wait `delay` before every retry.
    pub fn fixed(delay: Duration) -> Backoff {
        Backoff {
            initial: delay,
            factor: 1.0,
            max: delay,
            jitter: 0.0,
        }
    }

    /// Wait `initial` before the first retry, then ×1.5 each time (see
    /// [`factor`](Self::factor)), capped at 60 s (see [`max`](Self::max)),
    /// with ±50 % jitter (see [`jitter`](Self::jitter)).
    pub fn exponential(initial: Duration) -> Backoff {
        Backoff {
            initial,
            factor: 1.5,
            max: Duration::from_secs(60),
            jitter: 0.5,
        }
    }

    /// The growth per retry (values below 1, or not finite, count as 1).
    pub fn factor(mut self, factor: f64) -> Backoff {
        self.factor = if factor.is_finite() && factor >= 1.0 {
            factor
        } else {
            1.0
        };
        self
    }

    /// The longest wait, before jitter.
    pub fn max(mut self, max: Duration) -> Backoff {
        self.max = max;
        self
    }

    /// The random spread: each wait is multiplied by a factor drawn from
    /// `1 - jitter ..= 1 + jitter` (clamped to `0..=1`).
    pub fn jitter(mut self, jitter: f64) -> Backoff {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The wait before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        if self.initial.is_zero() {
            return Duration::ZERO;
        }
        let exp = retry.saturating_sub(1).min(1_000) as i32;
        let base = self.initial.as_secs_f64() * self.factor.powi(exp);
        let capped = base.min(self.max.as_secs_f64());
        let spread = if self.jitter > 0.0 {
            1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0)
        } else {
            1.0
        };
        Duration::try_from_secs_f64(capped * spread).unwrap_or(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::exponential(Duration::from_millis(500))
    }
}

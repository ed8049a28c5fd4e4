//! What a running job sees ([`JobContext`]), the settings a task reads
//! from its job (`JobMeta`), and how long it waits between attempts
//! ([`Backoff`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::cancel::{CancelToken, Cancelled};
use crate::core::Core;
use crate::header::Name;
use crate::id::JobId;
use crate::options::Options;
use crate::runtime::Sleep;
use crate::sync::{fence, Arc, AtomicBool, AtomicU32, Ordering};

/// A job's settings, read by the task that runs it.
pub(crate) struct JobMeta {
    pub(crate) name: Option<Name>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) retry: u32,
    pub(crate) backoff: Backoff,
    pub(crate) options: Option<Options>,
    pub(crate) token: Option<CancelToken>,
}

/// What a running [`Job`](crate::Job) knows about itself: workerpoolxt's per-job context.
///
/// Cheap to clone; `Send + Sync`. Each attempt gets its own, with its
/// [`attempt`](Self::attempt) number.
///
/// Its [`token`](Self::token) is the job's own, linked to the job both
/// ways: it is cancelled when the job is cancelled (by its handle, or by its
/// [`Job::cancel_token`](crate::Job::cancel_token) if it has one, or else by the pool's token) and
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
    /// Set when the job is interrupted (cancelled or timed out).
    interrupted: AtomicBool,
    /// The last attempt that ran past its own timeout (0: none did).
    timed_out_attempt: AtomicU32,
    /// The job's own token, made when first asked for (most jobs never
    /// ask): cancelled by [`JobContext::interrupt`], or at once if made
    /// after it; watched by the job's task once made, which ends the job
    /// `Cancelled` when the job cancels it itself.
    token: OnceLock<CancelToken>,
    /// Where the job's worker waits: the pool's core (its watches) and the
    /// job (its header's address). Making the token wakes that worker, so
    /// that a job waiting already starts watching it.
    core: Arc<Core>,
    job: usize,
    id: JobId,
}

impl JobContext {
    /// The context of the job `job` (its header's address) of the pool
    /// whose core is `core`.
    pub(crate) fn new(
        meta: &JobMeta,
        options: Options,
        deadline: Option<Instant>,
        core: &Arc<Core>,
        job: usize,
        id: JobId,
    ) -> JobContext {
        JobContext {
            inner: Arc::new(CtxInner {
                name: meta.name.clone(),
                options,
                deadline,
                interrupted: AtomicBool::new(false),
                timed_out_attempt: AtomicU32::new(0),
                token: OnceLock::new(),
                core: core.clone(),
                job,
                id,
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

    /// The job's id, the same as its handle's
    /// ([`ResultHandle::id`](crate::ResultHandle::id)).
    pub fn id(&self) -> JobId {
        self.inner.id
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

    /// Whether the job has been cancelled or has timed out, or this attempt
    /// ran past its own [`attempt_timeout`](crate::Job::attempt_timeout).
    pub fn is_cancelled(&self) -> bool {
        self.inner.interrupted.load(Ordering::SeqCst)
            || self.made_token().is_some_and(CancelToken::is_cancelled)
            || self.inner.timed_out_attempt.load(Ordering::SeqCst) == self.attempt
    }

    /// A future that resolves when the job is cancelled or times out (not
    /// when only this attempt times out: async attempts are dropped then,
    /// and blocking ones see [`is_cancelled`](Self::is_cancelled)).
    pub fn cancelled(&self) -> Cancelled {
        self.token().cancelled()
    }

    /// Sleeps for `duration` on the pool's clock: its timer by default,
    /// or the clock given to [`Builder::clock`](crate::Builder::clock) (a
    /// manual clock in tests), so a job needs no runtime's timer.
    ///
    /// The sleep does not end early on a cancel or a timeout: an async job
    /// is dropped then anyway, sleep included.
    ///
    /// ```
    /// use std::time::Duration;
    /// use workerpoolxt::{Job, Pool};
    ///
    /// let pool = Pool::new(1);
    /// let job = Job::infallible(|ctx| async move {
    ///     ctx.sleep(Duration::from_millis(5)).await;
    ///     "rested"
    /// });
    /// assert_eq!(pool.submit_job(job).wait(), Ok("rested"));
    /// ```
    pub fn sleep(&self, duration: Duration) -> JobSleep {
        JobSleep {
            sleep: self.inner.core.sleep_for(duration),
        }
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
        let inner = &*self.inner;
        let mut made = false;
        let token = inner.token.get_or_init(|| {
            made = true;
            CancelToken::new()
        });
        // Pairs with the fence in `interrupt`: either it sees this token, or
        // this sees its flag (or both; cancelling twice is harmless).
        fence(Ordering::SeqCst);
        if inner.interrupted.load(Ordering::SeqCst) {
            token.cancel();
        }
        if made {
            // The job may be waiting already, without watching a token that
            // did not exist: its worker polls it again and starts watching
            // (it registers its waker before it looks for the token; see
            // `src/watch.rs`).
            inner.core.watchers.wake(inner.job);
        }
        token
    }

    /// The job's own token, if it was made (`token`).
    pub(crate) fn made_token(&self) -> Option<&CancelToken> {
        self.inner.token.get()
    }

    /// Attempt `attempt` ran past its own timeout (the job goes on).
    pub(crate) fn attempt_timed_out(&self, attempt: u32) {
        self.inner
            .timed_out_attempt
            .store(attempt, Ordering::SeqCst);
    }

    /// The job was cancelled or timed out: its token (if it was made) is
    /// cancelled, and one made later starts cancelled.
    pub(crate) fn interrupt(&self) {
        self.inner.interrupted.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if let Some(token) = self.made_token() {
            token.cancel();
        }
    }
}

/// A sleep on the pool's clock, from [`JobContext::sleep`].
#[must_use = "a sleep does nothing unless awaited"]
pub struct JobSleep {
    sleep: Sleep,
}

impl Future for JobSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.sleep).poll(cx)
    }
}

impl fmt::Debug for JobSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobSleep").finish_non_exhaustive()
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .field("attempt", &self.attempt)
            .field("deadline", &self.inner.deadline)
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// How long a [`Job`](crate::Job) waits before each retry.
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

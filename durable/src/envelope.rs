//! What travels: a job's [`Envelope`], its [`JobId`], its [`RetryBackoff`],
//! and the [`NewJob`] builder a producer fills in.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::clock::{dur_ms, ms_dur, now_ms, to_ms};
use crate::error::Error;
use crate::handler::Handler;
use crate::name::{validate_key, validate_name, NameKind};

/// A job's id: 32 hex digits, random, unique across machines.
///
/// # Examples
///
/// ```
/// use workerpoolxt_durable::JobId;
///
/// let id = JobId::random();
/// assert_eq!(JobId::parse(id.as_str()).unwrap(), id);
/// assert!(JobId::parse("1 OR 1=1").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// A new random id.
    pub fn random() -> JobId {
        JobId(format!(
            "{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        ))
    }

    /// Reads an id that [`as_str`](JobId::as_str) gave, refusing anything
    /// that is not 32 hex digits.
    pub fn parse(s: &str) -> Result<JobId, Error> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(JobId(s.to_ascii_lowercase()))
        } else {
            Err(Error::Serde(format!(
                "not a job id: {:?}",
                s.escape_debug().to_string()
            )))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The wait before a failed job's next attempt, stored with the job.
///
/// A retry is a re-schedule in the store (the job's `run_at` moves), never a
/// sleep in a worker's memory.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use workerpoolxt_durable::RetryBackoff;
///
/// let backoff = RetryBackoff::Exponential { initial_ms: 100, factor: 2.0, max_ms: 1_000, jitter: 0.0 };
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(3), Duration::from_millis(400));
/// assert_eq!(backoff.delay(9), Duration::from_millis(1_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RetryBackoff {
    /// Retry at once.
    None,
    /// The same wait before each retry.
    Fixed {
        /// The wait in milliseconds.
        ms: u64,
    },
    /// `initial_ms × factor^(retry − 1)`, at most `max_ms`, with jitter.
    Exponential {
        /// The first wait in milliseconds.
        initial_ms: u64,
        /// The growth per retry.
        factor: f64,
        /// The longest wait in milliseconds.
        max_ms: u64,
        /// The random spread, `0.0..=1.0`: each wait is multiplied by a
        /// factor drawn from `1 - jitter ..= 1 + jitter`.
        #[serde(default)]
        jitter: f64,
    },
}

impl RetryBackoff {
    /// The wait before retry number `retry` (the first retry is 1).
    pub fn delay(&self, retry: u32) -> Duration {
        let backoff = match *self {
            RetryBackoff::None => workerpoolxt::Backoff::none(),
            RetryBackoff::Fixed { ms } => workerpoolxt::Backoff::fixed(Duration::from_millis(ms)),
            RetryBackoff::Exponential {
                initial_ms,
                factor,
                max_ms,
                jitter,
            } => workerpoolxt::Backoff::exponential(Duration::from_millis(initial_ms))
                .factor(factor)
                .max(Duration::from_millis(max_ms))
                .jitter(jitter),
        };
        backoff.delay(retry)
    }
}

/// A job as it is stored and delivered: everything a worker on another
/// machine needs to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The job's id.
    pub id: JobId,
    /// The queue it waits in.
    pub queue: String,
    /// The [`Handler::NAME`] that runs it.
    pub handler: String,
    /// The handler's `Args`, as JSON.
    pub payload: String,
    /// A name for the record.
    pub name: Option<String>,
    /// How long one attempt may run, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// When the job must have ended: UTC milliseconds since the Unix epoch.
    pub deadline_ms: Option<i64>,
    /// Attempts started so far (a delivery whose worker died counts).
    pub attempts: u32,
    /// Attempts allowed in all (1: no retry).
    pub max_attempts: u32,
    /// The wait before each retry.
    pub backoff: RetryBackoff,
    /// The key handlers use to make their effects idempotent (the job's id
    /// unless one was given).
    pub idempotency_key: String,
    /// When the job may run first: UTC milliseconds since the Unix epoch.
    pub run_at_ms: i64,
    /// When it was enqueued: UTC milliseconds since the Unix epoch.
    pub enqueued_at_ms: i64,
}

/// A job to enqueue: a handler's arguments and the job's settings.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use workerpoolxt_durable::{Handler, JobContext, NewJob, RetryBackoff};
///
/// struct Resize;
/// impl Handler for Resize {
///     const NAME: &'static str = "resize";
///     type Args = (u32, u32);
///     type Output = u64;
///     type Error = String;
///     async fn run(&self, (w, h): (u32, u32), _ctx: JobContext) -> Result<u64, String> {
///         Ok(u64::from(w) * u64::from(h))
///     }
/// }
///
/// let job = NewJob::new::<Resize>(&(640, 480))
///     .unwrap()
///     .name("thumbnail")
///     .timeout(Duration::from_secs(30))
///     .max_attempts(5)
///     .backoff(RetryBackoff::Fixed { ms: 1_000 })
///     .delay(Duration::from_secs(60))
///     .idempotency_key("thumb-640x480");
/// assert_eq!(job.handler(), "resize");
/// ```
#[derive(Debug, Clone)]
pub struct NewJob {
    handler: &'static str,
    payload: String,
    name: Option<String>,
    timeout: Option<Duration>,
    deadline: Option<SystemTime>,
    max_attempts: u32,
    backoff: RetryBackoff,
    idempotency_key: Option<String>,
    run_at: Option<SystemTime>,
}

impl NewJob {
    /// A job for handler `H` with these arguments: one attempt, no timeout,
    /// no deadline, due now.
    ///
    /// Fails if the arguments do not serialize.
    pub fn new<H: Handler>(args: &H::Args) -> Result<NewJob, Error> {
        Ok(NewJob {
            handler: H::NAME,
            payload: serde_json::to_string(args)?,
            name: None,
            timeout: None,
            deadline: None,
            max_attempts: 1,
            backoff: RetryBackoff::None,
            idempotency_key: None,
            run_at: None,
        })
    }

    /// The handler's name.
    pub fn handler(&self) -> &str {
        self.handler
    }

    /// A name for the record (checked at enqueue).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long one attempt may run; an attempt that runs longer fails (and
    /// is retried if attempts remain).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// When the job must have ended (UTC wall-clock time). A job not started
    /// by then fails without running; an attempt is cut off at it; no retry
    /// is scheduled past it.
    pub fn deadline(mut self, deadline: SystemTime) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Attempts allowed in all, at least 1 (1, the default, means no retry).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The wait before each retry.
    pub fn backoff(mut self, backoff: RetryBackoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The key handlers get to make their effects idempotent; the job's id
    /// if none is given.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Do not run before this time (a delayed job).
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Do not run before `delay` from now.
    pub fn delay(self, delay: Duration) -> Self {
        self.run_at(SystemTime::now() + delay)
    }

    /// The envelope for `queue`, after checking every name and the payload's
    /// size.
    pub(crate) fn into_envelope(self, queue: &str, max_payload: usize) -> Result<Envelope, Error> {
        validate_name(NameKind::Queue, queue)?;
        validate_name(NameKind::Handler, self.handler)?;
        if let Some(name) = &self.name {
            validate_name(NameKind::Job, name)?;
        }
        if self.payload.len() > max_payload {
            return Err(Error::PayloadTooLarge {
                size: self.payload.len(),
                limit: max_payload,
            });
        }
        let id = JobId::random();
        let idempotency_key = self.idempotency_key.unwrap_or_else(|| id.to_string());
        validate_key(&idempotency_key)?;
        let now = now_ms();
        Ok(Envelope {
            id,
            queue: queue.to_string(),
            handler: self.handler.to_string(),
            payload: self.payload,
            name: self.name,
            timeout_ms: self
                .timeout
                .map(|t| u64::try_from(dur_ms(t)).unwrap_or(u64::MAX)),
            deadline_ms: self.deadline.map(to_ms),
            attempts: 0,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            idempotency_key,
            run_at_ms: self.run_at.map(to_ms).unwrap_or(now),
            enqueued_at_ms: now,
        })
    }
}

impl Envelope {
    /// How long the next attempt may run: the timeout, cut to the deadline.
    /// `None`: no limit.
    pub(crate) fn attempt_limit(&self, now: i64) -> Option<Duration> {
        let timeout = self.timeout_ms.map(Duration::from_millis);
        let to_deadline = self.deadline_ms.map(|d| ms_dur(d - now));
        match (timeout, to_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip_and_refuse_junk() {
        let id = JobId::random();
        assert_eq!(JobId::parse(id.as_str()).unwrap(), id);
        assert!(JobId::parse("1; DROP TABLE x").is_err());
        assert!(JobId::parse("").is_err());
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = RetryBackoff::Exponential {
            initial_ms: 10,
            factor: 2.0,
            max_ms: 25,
            jitter: 0.0,
        };
        assert_eq!(b.delay(1), Duration::from_millis(10));
        assert_eq!(b.delay(2), Duration::from_millis(20));
        assert_eq!(b.delay(3), Duration::from_millis(25));
        assert_eq!(
            RetryBackoff::Fixed { ms: 7 }.delay(4),
            Duration::from_millis(7)
        );
        assert_eq!(RetryBackoff::None.delay(1), Duration::ZERO);
    }
}

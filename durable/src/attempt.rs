//! One delivery of a job: the checks before it runs, the handler's run
//! raced against its time limit, its lease and a stop, and the end that
//! follows.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use workerpoolxt::CancelToken;

use crate::backend::{Backend, End, Lease};
use crate::clock::{dur_ms, now_ms};
use crate::envelope::Envelope;
use crate::handler::{Attempt, Failure, Handlers, JobContext};

/// What an attempt needs from its worker.
pub(crate) trait Env {
    fn handlers(&self) -> &Handlers;
    fn max_payload(&self) -> usize;
    fn lease(&self) -> Duration;
    fn backend(&self) -> Arc<dyn Backend>;
    fn hand_back(&self) -> &CancelToken;
}

/// What becomes of a delivery.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Store this end (if the lease is still held).
    End(End),
    /// The lease was lost while the job ran: store nothing.
    Lost,
}

/// Which end was stored, for the worker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndKind {
    Succeeded,
    Retry,
    Dead,
    Released,
}

impl EndKind {
    pub(crate) fn of(end: &End) -> EndKind {
        match end {
            End::Succeeded { .. } => EndKind::Succeeded,
            End::Retry { .. } => EndKind::Retry,
            End::Dead { .. } => EndKind::Dead,
            End::Released => EndKind::Released,
        }
    }
}

/// How the race around a handler's run ended.
enum Race {
    Ran(Attempt),
    TimedOut(Duration),
    Lost,
    HandBack,
}

/// Runs one delivery of `lease`'s job and says what to store.
pub(crate) async fn run(env: &impl Env, lease: &Lease, pool: workerpoolxt::JobContext) -> Verdict {
    let job = &lease.envelope;
    if let Some(failure) = refused(env, job, now_ms()) {
        return Verdict::End(End::Dead {
            error: failure.message,
            run_ms: 0,
        });
    }
    let started = Instant::now();
    let race = race(env, lease, pool).await;
    let run_ms = dur_ms(started.elapsed());
    let failure = match race {
        Race::Ran(Ok(output)) => return Verdict::End(End::Succeeded { output, run_ms }),
        Race::Ran(Err(failure)) => failure,
        Race::TimedOut(limit) => Failure::retry(format!(
            "attempt {} timed out after {limit:?}",
            job.attempts
        )),
        Race::Lost => return Verdict::Lost,
        Race::HandBack => return Verdict::End(End::Released),
    };
    Verdict::End(after_failure(job, failure, run_ms, now_ms()))
}

/// Why a delivery fails for good before it runs, if it does.
fn refused(env: &impl Env, job: &Envelope, now: i64) -> Option<Failure> {
    if job.payload.len() > env.max_payload() {
        return Some(Failure::fatal(format!(
            "payload of {} bytes is over this worker's limit of {} bytes",
            job.payload.len(),
            env.max_payload()
        )));
    }
    match job.deadline_ms {
        Some(deadline) if deadline <= now => Some(Failure::fatal(format!(
            "deadline passed {} ms before attempt {} could start",
            now - deadline,
            job.attempts
        ))),
        _ => None,
    }
}

/// The handler's run, raced against the attempt's time limit, the loss of
/// the lease (renewed meanwhile) and a stop's hand-back.
async fn race(env: &impl Env, lease: &Lease, pool: workerpoolxt::JobContext) -> Race {
    let job = &lease.envelope;
    let limit = job.attempt_limit(now_ms());
    let ctx = JobContext {
        id: job.id.clone(),
        queue: job.queue.clone(),
        name: job.name.clone(),
        attempt: job.attempts,
        max_attempts: job.max_attempts,
        idempotency_key: job.idempotency_key.clone(),
        pool,
    };
    let handler = env.handlers().call(&job.handler, &job.payload, ctx);
    let ran = async {
        let caught = AssertUnwindSafe(handler).catch_unwind().await;
        Race::Ran(caught.unwrap_or_else(|panic| Err(Failure::retry(panicked(&*panic)))))
    };
    let timed_out = async {
        match limit {
            Some(limit) => {
                async_io::Timer::after(limit).await;
                Race::TimedOut(limit)
            }
            None => std::future::pending().await,
        }
    };
    let hand_back = async {
        env.hand_back().cancelled().await;
        Race::HandBack
    };
    ran.or(timed_out).or(hand_back).or(renew(env, lease)).await
}

/// Renews the lease every third of its length; resolves once it is lost.
async fn renew(env: &impl Env, lease: &Lease) -> Race {
    let every = env.lease() / 3;
    loop {
        async_io::Timer::after(every).await;
        let (backend, lease, lease_for) = (env.backend(), lease.clone(), env.lease());
        // A store error is not a loss: the next renewal tries again, and an
        // expired lease is refused then.
        if let Ok(false) = blocking::unblock(move || backend.renew(&lease, lease_for)).await {
            return Race::Lost;
        }
    }
}

/// The end after a failed attempt: a retry re-scheduled in the store while
/// attempts remain and the deadline allows, otherwise death.
pub(crate) fn after_failure(job: &Envelope, failure: Failure, run_ms: i64, now: i64) -> End {
    let run_at_ms = now + dur_ms(job.backoff.delay(job.attempts));
    let within_deadline = job.deadline_ms.is_none_or(|d| run_at_ms < d);
    if failure.retry && job.attempts < job.max_attempts && within_deadline {
        return End::Retry {
            error: failure.message,
            run_at_ms,
            run_ms,
        };
    }
    let why = if !failure.retry {
        "not retried"
    } else if job.attempts >= job.max_attempts {
        "no attempt left"
    } else {
        "a retry would start past the deadline"
    };
    End::Dead {
        error: format!(
            "attempt {} of {}: {} ({why})",
            job.attempts, job.max_attempts, failure.message
        ),
        run_ms,
    }
}

fn panicked(panic: &(dyn Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("handler panicked: {message}")
}

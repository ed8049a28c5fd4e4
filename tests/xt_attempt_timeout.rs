//! Attempt timeouts (`Job::attempt_timeout`): an async attempt that runs
//! past its limit is dropped before the next one is made; a blocking one is
//! told (its context) and awaited before the next attempt, its slot busy
//! meanwhile; the last attempt's timeout resolves `TimedOut`; the job's own
//! timeout still bounds every attempt.

mod common;
use common::*;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use workerpoolxt::{Backoff, Builder, Job, JobContext, JobError};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom(u32);

type Log<T> = Arc<Mutex<Vec<T>>>;

/// Bound for things that take microseconds.
const LIMIT: Duration = Duration::from_secs(10);

/// One attempt as its factory made it.
struct Made {
    attempt: u32,
    counts: Arc<Counts>,
    /// How many earlier attempts had been dropped when this one was made.
    earlier_dropped: usize,
}

/// An async job whose attempts for which `hangs` holds never end; the
/// others return `Ok(attempt)`. Each attempt is `counted`; the receiver
/// gets each one as it is made.
fn job_hanging_on(
    hangs: impl Fn(u32) -> bool + Send + 'static,
) -> (Job<u32, Boom>, async_channel::Receiver<Made>) {
    let (tx, rx) = async_channel::unbounded();
    let earlier: Log<Arc<Counts>> = Arc::default();
    let job = Job::new(move |ctx: JobContext| {
        let n = ctx.attempt();
        let hang = hangs(n);
        let (attempt, counts) = counted(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok::<_, Boom>(n)
        });
        let mut earlier = earlier.lock().unwrap();
        let earlier_dropped = earlier.iter().map(|c| c.drops()).sum();
        earlier.push(counts.clone());
        tx.try_send(Made {
            attempt: n,
            counts,
            earlier_dropped,
        })
        .unwrap();
        attempt
    });
    (job, rx)
}

// An async attempt that hangs past its limit is dropped (not before the limit, and before the next attempt is made) and retried; the retry's Ok resolves the job after 2 attempts.
rt_test!(
    a_hanging_async_attempt_is_dropped_and_retried,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let (job, made) = job_hanging_on(|n| n == 1);
        let h = pool.submit_job(
            job.attempt_timeout(ms(10))
                .retry(2)
                .backoff(Backoff::none()),
        );
        let first = made.recv().await.unwrap();
        assert_eq!((first.attempt, first.earlier_dropped), (1, 0));
        armed(&clock, 1).await; // the attempt's limit is armed
        assert!(first.counts.polls() >= 1);
        clock.advance(ms(9));
        assert_eq!(clock.sleepers(), 1, "the limit passed early");
        assert_eq!(first.counts.drops(), 0, "dropped before its limit");
        assert!(!h.is_finished());

        clock.advance(ms(1));
        let second = within(LIMIT, made.recv()).await.expect("no retry").unwrap();
        assert_eq!(second.attempt, 2);
        assert_eq!(
            second.earlier_dropped, 1,
            "the timed-out attempt was not dropped before the next was made"
        );
        let o = h.outcome().await;
        assert_eq!(o.attempts(), 2);
        assert_eq!(o.duration(), ms(10));
        assert_eq!(o.into_result(), Ok(2));
        assert_eq!(first.counts.completions(), 0);
        assert_eq!((first.counts.drops(), second.counts.drops()), (1, 1));
        assert!(made.try_recv().is_err(), "a third attempt was made");
        let m = pool.metrics();
        assert_eq!((m.succeeded, m.timed_out, m.retried), (1, 0, 1));
        pool.stop_wait().await;
    }
);

// When the last attempt also runs past its limit the job resolves TimedOut with attempts() == 2, that attempt dropped before the handle resolves.
rt_test!(
    the_last_attempt_past_its_limit_resolves_timed_out,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let (job, made) = job_hanging_on(|_| true);
        let h = pool.submit_job(
            job.attempt_timeout(ms(10))
                .retry(1)
                .backoff(Backoff::none()),
        );
        let first = made.recv().await.unwrap();
        armed(&clock, 1).await;
        clock.advance(ms(10));
        let second = within(LIMIT, made.recv()).await.expect("no retry").unwrap();
        assert_eq!((second.attempt, second.earlier_dropped), (2, 1));
        assert!(!h.is_finished(), "resolved on a timeout with a retry left");
        armed(&clock, 1).await; // the second attempt's own limit
        clock.advance(ms(10));
        let o = within(LIMIT, h.outcome()).await.expect("never resolved");
        assert_eq!(
            second.counts.drops(),
            1,
            "the last attempt outlived its handle's resolution"
        );
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert_eq!((o.attempts(), o.duration()), (2, ms(20)));
        assert_eq!(first.counts.completions() + second.counts.completions(), 0);
        assert!(made.try_recv().is_err(), "a third attempt was made");
        let m = pool.metrics();
        assert_eq!((m.timed_out, m.failed, m.retried), (1, 0, 1));
        pool.stop_wait().await;
    }
);

// On the runtime's timer (the pool's deadline heap), a hanging first attempt is dropped after its limit and the second one's value resolves the job.
rt_test!(
    an_attempt_timeout_on_the_default_clock,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let (job, made) = job_hanging_on(|n| n == 1);
        let h = pool.submit_job(
            job.attempt_timeout(ms(20))
                .retry(1)
                .backoff(Backoff::none()),
        );
        let o = within(LIMIT, h.outcome()).await.expect("never resolved");
        assert!(
            o.duration() >= ms(20),
            "the limit ended early: {:?}",
            o.duration()
        );
        assert_eq!((o.attempts(), o.into_result()), (2, Ok(2)));
        let (first, second) = (made.try_recv().unwrap(), made.try_recv().unwrap());
        assert_eq!((first.counts.drops(), second.earlier_dropped), (1, 1));
        pool.stop_wait().await;
    }
);

// The job's own timeout bounds all its attempts: 25 ms over 10 ms attempts ends TimedOut in the third attempt, at 25 ms, with retries left.
rt_test!(
    the_job_timeout_still_bounds_every_attempt,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let (job, made) = job_hanging_on(|_| true);
        let job = job
            .timeout(ms(25))
            .attempt_timeout(ms(10))
            .retry(10)
            .backoff(Backoff::none());
        let h = pool.submit_job(job);
        let mut last = None;
        for (n, step) in [(1, ms(10)), (2, ms(10)), (3, ms(5))] {
            let a = within(LIMIT, made.recv())
                .await
                .expect("no attempt")
                .unwrap();
            assert_eq!(a.attempt, n);
            armed(&clock, 2).await; // the job's deadline and the attempt's
            clock.advance(step);
            last = Some(a);
        }
        let o = within(LIMIT, h.outcome()).await.expect("never resolved");
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert_eq!((o.attempts(), o.duration()), (3, ms(25)));
        assert_eq!(last.unwrap().counts.drops(), 1);
        assert!(
            made.try_recv().is_err(),
            "an attempt started after the deadline"
        );
        assert_eq!(clock.sleepers(), 0);
        let m = pool.metrics();
        assert_eq!((m.timed_out, m.retried), (1, 2));
        pool.stop_wait().await;
    }
);

/// A blocking job: attempt 1 blocks until `release` opens and returns 100
/// (which must be dropped); later attempts return their number. Each logs
/// its start and end (with `is_cancelled` at its end) and sends its context.
fn blocking_job(
    release: &Latch,
    events: &Log<String>,
) -> (Job<u32, Boom>, async_channel::Receiver<JobContext>) {
    let (tx, rx) = async_channel::unbounded();
    let (release, events) = (release.clone(), events.clone());
    let job = Job::blocking(move |ctx: JobContext| {
        let n = ctx.attempt();
        events.lock().unwrap().push(format!("{n} start"));
        tx.try_send(ctx.clone()).unwrap();
        if n == 1 {
            release.wait_blocking();
        }
        let cancelled = ctx.is_cancelled();
        events
            .lock()
            .unwrap()
            .push(format!("{n} end, cancelled: {cancelled}"));
        Ok(if n == 1 { 100 } else { n })
    });
    (job, rx)
}

// A blocking attempt past its limit sees is_cancelled(); the next attempt is made only after its closure returned, and its slot stays busy meanwhile (a later job waits).
rt_test!(
    a_blocking_attempt_past_its_limit_is_awaited_before_the_next,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let (release, events) = (Latch::new(), Log::<String>::default());
        let _open = OpenOnPanic(vec![release.clone()]);
        let (job, ctxs) = blocking_job(&release, &events);
        let h = pool.submit_job(
            job.attempt_timeout(ms(10))
                .retry(1)
                .backoff(Backoff::none()),
        );
        let first = ctxs.recv().await.unwrap();
        assert!(!first.is_cancelled());
        armed(&clock, 1).await;
        clock.advance(ms(10));
        eventually("the attempt is told its limit passed", || {
            first.is_cancelled()
        })
        .await;

        let next = pool.submit(async { "next" });
        settle().await;
        assert_eq!(
            (pool.running(), pool.waiting()),
            (1, 1),
            "the slot was let go"
        );
        assert_eq!(
            pool.metrics().retried,
            0,
            "the next attempt was made while the closure ran"
        );
        assert!(!h.is_finished());
        assert_eq!(*events.lock().unwrap(), ["1 start"]);

        release.open();
        let o = within(LIMIT, h.outcome()).await.expect("never resolved");
        assert_eq!((o.attempts(), o.into_result()), (2, Ok(2)));
        let second = ctxs.recv().await.unwrap();
        assert!(
            !second.is_cancelled(),
            "the limit of attempt 1 leaked into attempt 2"
        );
        assert_eq!(
            *events.lock().unwrap(),
            [
                "1 start",
                "1 end, cancelled: true",
                "2 start",
                "2 end, cancelled: false"
            ]
        );
        assert_eq!(next.await, Ok("next"));
        pool.stop_wait().await;
    }
);

// A blocking last attempt past its limit resolves TimedOut at once while the closure still runs (draining, slot busy); the slot is free once it returns.
rt_test!(
    a_blocking_last_attempt_past_its_limit_resolves_at_once,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let (release, events) = (Latch::new(), Log::<String>::default());
        let _open = OpenOnPanic(vec![release.clone()]);
        let (job, ctxs) = blocking_job(&release, &events);
        let h = pool.submit_job(job.attempt_timeout(ms(10)));
        let first = ctxs.recv().await.unwrap();
        armed(&clock, 1).await;
        clock.advance(ms(10));
        let o = within(LIMIT, h.outcome())
            .await
            .expect("waited for the closure");
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert_eq!(o.attempts(), 1);
        assert!(first.is_cancelled());
        assert!(!release.is_open());
        let m = pool.metrics();
        assert_eq!((m.running, m.draining, m.timed_out), (0, 1, 1));
        assert_eq!(pool.running(), 1, "the draining closure's slot is free");

        let next = pool.submit(async { "next" });
        settle().await;
        assert_eq!(
            pool.waiting(),
            1,
            "a job started beside the draining closure"
        );
        release.open();
        assert_eq!(within(LIMIT, next).await, Some(Ok("next")));
        assert_eq!(
            *events.lock().unwrap(),
            ["1 start", "1 end, cancelled: true"]
        );
        assert_eq!(pool.metrics().retried, 0);
        pool.stop_wait().await;
    }
);

// While a blocking attempt past its limit is awaited (retries left), the job's own timeout or a cancel still ends it at once: the handle resolves while the closure runs, no next attempt is made, and the slot is busy until the closure returns.
rt_test!(
    a_timeout_or_cancel_ends_a_job_awaiting_its_blocking_attempt,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        for cancel in [false, true] {
            let (release, events) = (Latch::new(), Log::<String>::default());
            let _open = OpenOnPanic(vec![release.clone()]);
            let (job, ctxs) = blocking_job(&release, &events);
            let job = job
                .timeout(ms(30))
                .attempt_timeout(ms(10))
                .retry(3)
                .backoff(Backoff::none());
            let h = pool.submit_job(job);
            let first = ctxs.recv().await.unwrap();
            armed(&clock, 2).await; // the job's deadline and the attempt's
            clock.advance(ms(10));
            eventually("the attempt is told", || first.is_cancelled()).await;
            let expected = if cancel {
                h.cancel();
                JobError::Cancelled
            } else {
                armed(&clock, 1).await; // the job's deadline, still waited for
                clock.advance(ms(20));
                JobError::TimedOut
            };
            let o = within(LIMIT, h.outcome())
                .await
                .expect("waited for the closure");
            assert_eq!(o.result(), Err(&expected));
            assert_eq!(o.attempts(), 1);
            assert_eq!(
                pool.running(),
                1,
                "the closure's slot is free while it runs"
            );
            release.open();
            eventually("the slot is free", || pool.running() == 0).await;
            assert_eq!(
                *events.lock().unwrap(),
                ["1 start", "1 end, cancelled: true"]
            );
            assert!(ctxs.try_recv().is_err(), "a next attempt was made");
        }
        let m = pool.metrics();
        assert_eq!((m.timed_out, m.cancelled, m.retried), (1, 1, 0));
        pool.stop_wait().await;
    }
);

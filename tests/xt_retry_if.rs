//! Selective retries (`Job::retry_if`) and backoffs that must fit the
//! deadline: a rejected error ends the job at once, an accepted one is
//! retried, an attempt timeout is always retried, a panicking predicate ends
//! the job `Panicked`; a backoff that would end at or after the deadline
//! ends the job at once with the last attempt's error and frees its slot,
//! one that fits is waited out.

mod common;
use common::*;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use workerpoolxt::{Backoff, Builder, Job, JobContext, JobError};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom(u32);

type Log<T> = Arc<Mutex<Vec<T>>>;

/// Bound for things that take microseconds.
const LIMIT: Duration = Duration::from_secs(10);

/// A job (async or blocking) whose attempt n returns `errors(n)` as
/// `Err(Boom(..))`, or `Ok(n)` when it gives `None`; `made` counts attempts.
fn job(blocking: bool, made: &Arc<AtomicUsize>, errors: fn(u32) -> Option<u32>) -> Job<u32, Boom> {
    let made = made.clone();
    let run = move |ctx: &JobContext| {
        made.fetch_add(1, Ordering::SeqCst);
        let n = ctx.attempt();
        errors(n).map_or(Ok(n), |e| Err(Boom(e)))
    };
    if blocking {
        Job::blocking(move |ctx| run(&ctx))
    } else {
        Job::new(move |ctx| {
            let r = run(&ctx);
            async move { r }
        })
    }
}

// retry_if saying no: retry(5) makes exactly one attempt, which resolves Failed with its error, counted failed with no retry (async and blocking).
rt_test!(
    a_rejected_error_ends_the_job_after_one_attempt,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        for blocking in [false, true] {
            let (made, asked) = (Arc::new(AtomicUsize::new(0)), Log::<Boom>::default());
            let a = asked.clone();
            let j = job(blocking, &made, Some)
                .retry(5)
                .backoff(Backoff::none())
                .retry_if(move |e| {
                    a.lock().unwrap().push(e.clone());
                    false
                });
            let o = within(LIMIT, pool.submit_job(j).outcome()).await.unwrap();
            assert_eq!(o.attempts(), 1, "blocking: {blocking}");
            assert_eq!(o.into_result(), Err(JobError::Failed(Boom(1))));
            assert_eq!(made.load(Ordering::SeqCst), 1);
            assert_eq!(*asked.lock().unwrap(), [Boom(1)]);
        }
        let m = pool.metrics();
        assert_eq!((m.failed, m.retried, m.succeeded), (2, 0, 0));
        pool.stop_wait().await;
    }
);

// retry_if saying yes retries: 503, 503 then 404 ends Failed(404) after 3 attempts (the predicate saw each error once); 503 then Ok resolves Ok after 2.
rt_test!(an_accepted_error_is_retried, |b: Builder| async move {
    let pool = b.max_workers(1).build();
    for blocking in [false, true] {
        let (made, asked) = (Arc::new(AtomicUsize::new(0)), Log::<u32>::default());
        let a = asked.clone();
        let j = job(blocking, &made, |n| Some(if n < 3 { 503 } else { 404 }))
            .retry(5)
            .backoff(Backoff::none())
            .retry_if(move |e| {
                a.lock().unwrap().push(e.0);
                e.0 >= 500
            });
        let o = within(LIMIT, pool.submit_job(j).outcome()).await.unwrap();
        assert_eq!(o.attempts(), 3, "blocking: {blocking}");
        assert_eq!(o.into_result(), Err(JobError::Failed(Boom(404))));
        assert_eq!(made.load(Ordering::SeqCst), 3);
        assert_eq!(*asked.lock().unwrap(), [503, 503, 404]);

        let made = Arc::new(AtomicUsize::new(0));
        let j = job(blocking, &made, |n| (n == 1).then_some(503))
            .retry(5)
            .backoff(Backoff::none())
            .retry_if(|e| e.0 >= 500);
        let o = within(LIMIT, pool.submit_job(j).outcome()).await.unwrap();
        assert_eq!((o.attempts(), o.into_result()), (2, Ok(2)));
        assert_eq!(made.load(Ordering::SeqCst), 2);
    }
    let m = pool.metrics();
    assert_eq!((m.failed, m.succeeded, m.retried), (2, 2, 6));
    pool.stop_wait().await;
});

// An attempt that runs past its attempt_timeout is retried although the predicate rejects every error (and is never asked).
rt_test!(
    an_attempt_timeout_is_retried_whatever_the_predicate_says,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let asked = Arc::new(AtomicUsize::new(0));
        let a = asked.clone();
        let j = Job::new(|ctx| async move {
            if ctx.attempt() == 1 {
                std::future::pending::<()>().await;
            }
            Ok::<_, Boom>(ctx.attempt())
        })
        .attempt_timeout(ms(10))
        .retry(1)
        .backoff(Backoff::none())
        .retry_if(move |_| {
            a.fetch_add(1, Ordering::SeqCst);
            false
        });
        let h = pool.submit_job(j);
        armed(&clock, 1).await;
        clock.advance(ms(10));
        let o = within(LIMIT, h.outcome()).await.expect("never resolved");
        assert_eq!((o.attempts(), o.into_result()), (2, Ok(2)));
        assert_eq!(asked.load(Ordering::SeqCst), 0);
        pool.stop_wait().await;
    }
);

/// An error that owns an [`OwnedValue`], to see it dropped.
struct Held(#[allow(dead_code)] OwnedValue);

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Held")
    }
}

// A predicate that panics ends the job Panicked with its message after one attempt; the error is dropped, the worker goes on.
rt_test!(
    a_panicking_predicate_ends_the_job_panicked,
    |b: Builder| async move {
        quiet_expected_panics();
        let pool = b.max_workers(1).build();
        let (owned, made) = (Owned::default(), Arc::new(AtomicUsize::new(0)));
        let (o2, m) = (owned.clone(), made.clone());
        let j = Job::new(move |_ctx| {
            m.fetch_add(1, Ordering::SeqCst);
            let e = Held(o2.value());
            async move { Err::<(), _>(e) }
        })
        .retry(3)
        .backoff(Backoff::none())
        .retry_if(|_| panic!("expected panic: the predicate"));
        let o = within(LIMIT, pool.submit_job(j).outcome()).await.unwrap();
        assert_eq!(o.attempts(), 1);
        match o.result() {
            Err(JobError::Panicked(p)) => assert_eq!(p.message(), "expected panic: the predicate"),
            other => panic!("expected Panicked, got {other:?}"),
        }
        drop(o);
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert_eq!(owned.alive(), 0, "the error was not dropped (or twice)");
        assert_eq!(pool.submit(async { 1 }).await, Ok(1));
        let m = pool.metrics();
        assert_eq!((m.panicked, m.failed, m.retried), (1, 0, 0));
        pool.stop_wait().await;
    }
);

// A backoff that would end exactly at the deadline is not waited: the job ends at once with its error (async and blocking), without the clock moving, and its slot is free.
rt_test!(
    a_backoff_past_the_deadline_ends_the_job_at_once,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        for blocking in [false, true] {
            let made = Arc::new(AtomicUsize::new(0));
            let j = job(blocking, &made, Some)
                .timeout(ms(100))
                .retry(3)
                .backoff(Backoff::fixed(ms(100)));
            let o = within(LIMIT, pool.submit_job(j).outcome())
                .await
                .expect("the job waits out a backoff that ends at its deadline");
            assert_eq!(
                o.result(),
                Err(&JobError::Failed(Boom(1))),
                "blocking: {blocking}"
            );
            assert_eq!((o.attempts(), o.duration()), (1, Duration::ZERO));
            assert_eq!((pool.running(), clock.sleepers()), (0, 0));
            assert_eq!(pool.submit(async { "next" }).await, Ok("next"));
            assert_eq!(made.load(Ordering::SeqCst), 1);
        }
        let m = pool.metrics();
        assert_eq!((m.failed, m.timed_out, m.retried), (2, 0, 0));
        pool.stop_wait().await;
    }
);

// After an attempt timeout, a backoff past the deadline ends the job TimedOut at the attempt's limit (10 ms), not at the deadline (100 ms); the slot is free.
rt_test!(
    a_backoff_past_the_deadline_after_an_attempt_timeout_ends_timed_out,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let j = Job::new(move |_ctx| {
            m.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<(), Boom>>()
        })
        .timeout(ms(100))
        .attempt_timeout(ms(10))
        .retry(3)
        .backoff(Backoff::fixed(ms(95)));
        let h = pool.submit_job(j);
        armed(&clock, 2).await; // the job's deadline and the attempt's
        clock.advance(ms(10));
        let o = within(LIMIT, h.outcome())
            .await
            .expect("the job waits out a backoff past its deadline");
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert_eq!((o.attempts(), o.duration()), (1, ms(10)));
        assert_eq!((pool.running(), clock.sleepers()), (0, 0));
        assert_eq!(pool.submit(async { "next" }).await, Ok("next"));
        assert_eq!(made.load(Ordering::SeqCst), 1);
        let m = pool.metrics();
        assert_eq!((m.timed_out, m.retried), (1, 0));
        pool.stop_wait().await;
    }
);

// A backoff that ends just before the deadline (99 of 100 ms) is waited out: the next attempt starts only once the clock reaches it, the slot held meanwhile.
rt_test!(a_backoff_that_fits_is_waited_out, |b: Builder| async move {
    let clock = ManualClock::new();
    let pool = b
        .max_workers(1)
        .keep_idle_workers()
        .clock(clock.clone())
        .build();
    let (tx, rx) = async_channel::unbounded::<(u32, Duration)>();
    let (c, t0) = (clock.clone(), clock.now());
    let j = Job::new(move |ctx| {
        let n = ctx.attempt();
        tx.try_send((n, c.now() - t0)).unwrap();
        async move {
            if n == 1 {
                Err(Boom(1))
            } else {
                Ok(n)
            }
        }
    })
    .timeout(ms(100))
    .retry(3)
    .backoff(Backoff::fixed(ms(99)));
    let h = pool.submit_job(j);
    assert_eq!(rx.recv().await.unwrap(), (1, Duration::ZERO));
    armed(&clock, 2).await; // the deadline and the backoff
    let next = pool.submit(async { "next" });
    assert_eq!((pool.running(), pool.waiting()), (1, 1));
    clock.advance(ms(98));
    assert_eq!(clock.sleepers(), 2, "the backoff ended early");
    assert!(rx.try_recv().is_err() && !h.is_finished());
    clock.advance(ms(1));
    let second = within(LIMIT, rx.recv()).await.expect("no retry").unwrap();
    assert_eq!(second, (2, ms(99)));
    let o = within(LIMIT, h.outcome()).await.unwrap();
    assert_eq!((o.attempts(), o.into_result()), (2, Ok(2)));
    assert_eq!(next.await, Ok("next"));
    assert_eq!(pool.metrics().retried, 1);
    pool.stop_wait().await;
});

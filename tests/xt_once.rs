//! One-shot and infallible jobs (`Job::once`, `Job::blocking_once`,
//! `Job::infallible`) and `JobContext::sleep`. That a once-job has no
//! `retry` is a `compile_fail` doc-test on `Once` in `src/job.rs`.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use workerpoolxt::{Backoff, Builder, CancelToken, Job, JobError};

/// Bound for things that take microseconds.
const LIMIT: Duration = Duration::from_secs(10);

// Job::once and Job::blocking_once move their String in and hand the same buffer back (no clone); their Err resolves Failed and counts as failed, unlike a submitted future's Err, which is its value.
rt_test!(
    once_jobs_move_their_capture_and_count_errors_as_failed,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let text = String::from("moved, not cloned");
        let at = text.as_ptr() as usize;
        let o = pool
            .submit_job(Job::once(async move { Err::<(), _>(text) }).name("once"))
            .outcome()
            .await;
        assert_eq!((o.name(), o.attempts()), (Some("once"), 1));
        match o.into_result() {
            Err(JobError::Failed(s)) => {
                assert_eq!((s.as_ptr() as usize, s.as_str()), (at, "moved, not cloned"))
            }
            other => panic!("expected Failed, got {other:?}"),
        }

        let text = String::from("blocking, moved");
        let at = text.as_ptr() as usize;
        let job = Job::blocking_once(move |ctx| {
            assert_eq!(ctx.name(), Some("blocking once"));
            Err::<(), _>(text)
        });
        let o = pool.submit_job(job.name("blocking once")).outcome().await;
        assert_eq!((o.name(), o.attempts()), (Some("blocking once"), 1));
        match o.into_result() {
            Err(JobError::Failed(s)) => {
                assert_eq!((s.as_ptr() as usize, s.as_str()), (at, "blocking, moved"))
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        let m = pool.metrics();
        assert_eq!((m.failed, m.succeeded), (2, 0));

        let plain = pool.submit(async { Err::<(), _>("a value") }).await;
        assert_eq!(plain, Ok(Err("a value")));
        assert_eq!(
            pool.submit_job(Job::once(async { Ok::<_, ()>(7) })).await,
            Ok(7)
        );
        let ok = pool.submit_job(Job::blocking_once(|_ctx| Ok::<_, ()>(8)));
        assert_eq!(ok.await, Ok(8));
        let m = pool.metrics();
        assert_eq!((m.failed, m.succeeded, m.retried), (2, 3, 0));
        pool.stop_wait().await;
    }
);

// A once-job's timeout applies: its future is dropped and it resolves TimedOut once the manual clock passes it, not before; a blocking one resolves at once and drains.
rt_test!(a_once_jobs_timeout_applies, |b: Builder| async move {
    let clock = ManualClock::new();
    let pool = b
        .max_workers(1)
        .keep_idle_workers()
        .clock(clock.clone())
        .build();
    let (pending, counts) = counted(std::future::pending::<Result<(), ()>>());
    let h = pool.submit_job(Job::once(pending).timeout(ms(10)));
    armed(&clock, 1).await;
    clock.advance(ms(9));
    assert!(!h.is_finished() && counts.drops() == 0, "timed out early");
    clock.advance(ms(1));
    let o = within(LIMIT, h.outcome()).await.expect("never timed out");
    assert_eq!(counts.drops(), 1, "dropped after its handle resolved");
    assert_eq!((o.result(), o.attempts()), (Err(&JobError::TimedOut), 1));

    let (release, told) = (Latch::new(), Arc::new(AtomicBool::new(false)));
    let _open = OpenOnPanic(vec![release.clone()]);
    let (r, t) = (release.clone(), told.clone());
    let h = pool.submit_job(
        Job::blocking_once(move |ctx| {
            r.wait_blocking();
            t.store(ctx.is_cancelled(), Ordering::SeqCst);
            Ok::<_, ()>(())
        })
        .timeout(ms(10)),
    );
    armed(&clock, 1).await;
    clock.advance(ms(10));
    let o = within(LIMIT, h.outcome())
        .await
        .expect("waited for the closure");
    assert_eq!(o.result(), Err(&JobError::TimedOut));
    assert_eq!(
        pool.running(),
        1,
        "the closure's slot is free before it returned"
    );
    release.open();
    eventually("the slot is free", || pool.running() == 0).await;
    assert!(told.load(Ordering::SeqCst), "the closure was not told");
    assert_eq!(pool.metrics().timed_out, 2);
    pool.stop_wait().await;
});

// A once-job's own token applies: cancelling it drops the running future and resolves Cancelled; the pool's token no longer reaches it.
rt_test!(a_once_jobs_cancel_token_applies, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    let token = CancelToken::new();
    let (pending, counts) = counted(std::future::pending::<Result<(), ()>>());
    let h = pool.submit_job(Job::once(pending).cancel_token(token.clone()));
    eventually("the future is polled", || counts.polls() >= 1).await;
    pool.cancel_token().cancel(); // not this job's token
    let probe = pool.submit(async {});
    assert_eq!(probe.await, Err(JobError::Cancelled));
    settle().await;
    assert!(!h.is_finished() && counts.drops() == 0);
    token.cancel();
    let o = within(LIMIT, h.outcome()).await.expect("never cancelled");
    assert_eq!(counts.drops(), 1);
    assert_eq!(o.into_result(), Err(JobError::Cancelled));

    let h = pool.submit_job(Job::blocking_once(|_ctx| Ok::<_, ()>(())).cancel_token(token));
    assert_eq!(
        h.await,
        Err(JobError::Cancelled),
        "a cancelled token let it start"
    );
    pool.stop_wait().await;
});

// Job::infallible returns its value (attempt 1), and is retryable: an attempt past its attempt_timeout is retried, and the second attempt's value resolves it.
rt_test!(
    an_infallible_job_returns_its_value,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let job = Job::infallible(|ctx| async move { ctx.attempt() * 10 }).name("tens");
        let o = pool.submit_job(job).outcome().await;
        assert_eq!((o.name(), o.attempts()), (Some("tens"), 1));
        assert_eq!(o.into_result(), Ok(10));

        let job = Job::infallible(|ctx| async move {
            if ctx.attempt() == 1 {
                std::future::pending::<()>().await;
            }
            ctx.attempt() * 10
        })
        .attempt_timeout(ms(10))
        .retry(1)
        .backoff(Backoff::none());
        let h = pool.submit_job(job);
        armed(&clock, 1).await;
        clock.advance(ms(10));
        let o = within(LIMIT, h.outcome()).await.expect("never retried");
        assert_eq!((o.attempts(), o.into_result()), (2, Ok(20)));
        let m = pool.metrics();
        assert_eq!((m.succeeded, m.retried), (2, 1));
        pool.stop_wait().await;
    }
);

// ctx.sleep on a manual clock ends only once the clock has moved its whole duration: the job completes after advance(50 ms), not after 49 ms.
rt_test!(
    ctx_sleep_follows_the_manual_clock,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let job = Job::infallible(|ctx| async move {
            ctx.sleep(ms(50)).await;
            "woke"
        });
        let h = pool.submit_job(job);
        armed(&clock, 1).await;
        clock.advance(ms(49));
        assert_eq!(clock.sleepers(), 1, "the sleep ended early");
        assert!(!h.is_finished());
        clock.advance(ms(1));
        let o = within(LIMIT, h.outcome())
            .await
            .expect("the sleep never ended");
        assert_eq!(o.duration(), ms(50));
        assert_eq!(o.into_result(), Ok("woke"));
        pool.stop_wait().await;
    }
);

// ctx.sleep on the default clock (the pool's timer) sleeps about its duration: at least 20 ms, well within the bound.
rt_test!(ctx_sleep_on_the_default_clock, |b: Builder| async move {
    let pool = b.max_workers(1).build();
    let job = Job::new(|ctx| async move {
        let t = Instant::now();
        ctx.sleep(ms(20)).await;
        Ok::<_, ()>(t.elapsed())
    });
    let slept = within(LIMIT, pool.submit_job(job))
        .await
        .expect("the sleep never ended");
    let slept = slept.unwrap();
    assert!(slept >= ms(20), "slept {slept:?}");
    pool.stop_wait().await;
});

//! Misuse gets a clear answer — an error, a documented panic message, or a
//! handle that says why — never a hang or a surprise panic.

mod common;
use common::*;

use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
use workerpoolxt::{Backoff, Builder, ConfigError, Job, JobError, Pool, TrySubmitError};

// max_workers(0) is refused by try_build with ZeroWorkers and a clear message.
#[test]
fn zero_workers_is_a_config_error() {
    let err = Pool::builder().max_workers(0).try_build().unwrap_err();
    assert_eq!(err, ConfigError::ZeroWorkers);
    let msg = err.to_string();
    assert!(
        msg.contains("max_workers") && msg.contains("at least 1"),
        "unclear: {msg}"
    );
}

// Pool::new(0) panics with a message naming max_workers.
#[test]
#[should_panic(expected = "max_workers must be at least 1")]
fn pool_new_with_zero_workers_panics_with_a_clear_message() {
    let _ = Pool::new(0);
}

// Builder::build with max_workers(0) panics with a message naming max_workers.
#[test]
#[should_panic(expected = "max_workers must be at least 1")]
fn build_with_zero_workers_panics_with_a_clear_message() {
    let _ = Pool::builder().max_workers(0).build();
}

// queue_capacity(0) is refused: an error from try_build, a clear panic from build.
#[test]
fn zero_queue_capacity_is_a_config_error() {
    let err = Pool::builder()
        .max_workers(1)
        .queue_capacity(0)
        .try_build()
        .unwrap_err();
    assert_eq!(err, ConfigError::ZeroCapacity);
    assert!(err.to_string().contains("queue_capacity"), "unclear: {err}");
    assert!(Pool::builder()
        .max_workers(1)
        .queue_capacity(1)
        .try_build()
        .is_ok());
}

// Builder::build with queue_capacity(0) panics with a message naming it.
#[test]
#[should_panic(expected = "queue_capacity must be at least 1")]
fn build_with_zero_queue_capacity_panics_with_a_clear_message() {
    let _ = Pool::builder().max_workers(1).queue_capacity(0).build();
}

// resize(0) is refused and changes nothing: the pool keeps its workers.
rt_test!(
    resize_to_zero_is_refused_and_changes_nothing,
    |b: Builder| async move {
        let pool = b.max_workers(3).build();
        assert_eq!(pool.resize(0), Err(ConfigError::ZeroWorkers));
        assert_eq!(pool.max_workers(), 3);
        // Still 3 at once.
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (gauge, latch) = (gauge.clone(), latch.clone());
                pool.submit(async move {
                    let _alive = gauge.enter();
                    latch.wait().await;
                    i
                })
            })
            .collect();
        gauge.until(|g| g.now() >= 3).await;
        assert_eq!(gauge.entered(), 3);
        latch.open();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i));
        }
        assert_eq!(gauge.max(), 3);
        pool.stop_wait().await;
    }
);

// Every kind of submit to a stopped pool answers Stopped; none panics.
rt_test!(submit_after_stop_answers_stopped, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    pool.stop().await;
    assert_eq!(pool.submit(async { 1 }).await, Err(JobError::Stopped));
    assert_eq!(pool.submit_blocking(|| 1).await, Err(JobError::Stopped));
    match pool.try_submit(async { 2 }) {
        Err(TrySubmitError::Stopped(f)) => assert_eq!(f.await, 2),
        other => panic!("expected Stopped, got {other:?}"),
    }
    let refused = pool.submit_wait(async { 3 }).await.unwrap_err();
    assert_eq!(refused.into_inner().await, 3);
});

// Stopping twice (and stop_wait after stop) resolves each time.
rt_test!(stop_twice_resolves_each_time, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    assert_eq!(pool.submit(async { 1 }).await, Ok(1));
    pool.stop().await;
    pool.stop().await;
    pool.stop_wait().await;
    assert!(pool.is_stopped());
});

// Polling a finished handle again is Pending, and try_take twice gives None
// the second time.
rt_test!(
    finished_handle_polled_again_and_try_take_twice,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let mut awaited = pool.submit(async { 1 });
        let mut taken = pool.submit(async { 2 });
        assert_eq!((&mut awaited).await, Ok(1));
        assert_eq!((&mut awaited).now_or_never(), None);
        let polled = futures::future::poll_fn(|cx| Poll::Ready(awaited.poll_unpin(cx))).await;
        assert_eq!(polled, Poll::Pending);
        assert_eq!(awaited.try_take(), None);

        pool.stop_wait().await;
        assert_eq!(taken.try_take(), Some(Ok(2)));
        assert_eq!(taken.try_take(), None);
        assert_eq!((&mut taken).now_or_never(), None);
        // A stopped job's handle too.
        let mut stopped = pool.submit(async { 3 });
        assert_eq!(stopped.try_take(), Some(Err(JobError::Stopped)));
        assert_eq!(stopped.try_take(), None);
    }
);

// Durations past the clock's range do not panic: a backoff that long cannot
// fit before the job's timeout, so the job ends at once with its error; an
// idle timeout that long never fires.
rt_test!(
    huge_durations_are_accepted,
    |b: workerpoolxt::Builder| async move {
        let pool = b
            .max_workers(1)
            .idle_timeout(Duration::from_secs(u64::MAX / 2))
            .build();
        let job = Job::new(|_ctx| async { Err::<(), _>("fail") })
            .retry(3)
            .backoff(Backoff::fixed(Duration::MAX))
            .timeout(Duration::from_millis(20));
        let outcome = pool.submit_job(job).outcome().await;
        assert_eq!(outcome.result(), Err(&JobError::Failed("fail")));
        assert_eq!(outcome.attempts(), 1);
        let huge = Job::new(|_ctx| async { Ok::<_, ()>(7) }).timeout(Duration::MAX);
        assert_eq!(pool.submit_job(huge).await, Ok(7));
        assert_eq!(pool.submit(async { 1 }).await, Ok(1));
        pool.stop_wait().await;
    }
);

//! Idle workers: they stay while less than the idle timeout has passed, leave
//! after it, come back on demand, and never leave with `keep_idle_workers`.
//!
//! Time is a `ManualClock`, so "2 s" passes only when the test says so.
//! Every advance waits first for the idle workers to have armed their timers
//! (`until_sleepers`), so that it reaches them.
//!
//! Semantics pinned here (see `Builder::idle_timeout` and `src/worker.rs`): a
//! worker arms one idle timer when it first goes idle and keeps it across
//! jobs; when it fires, the worker leaves if it ran no job since it was armed
//! ("a whole period without a job"), and otherwise arms a new one. So a
//! worker leaves between one and two periods after its last job: exactly one
//! period after it if it had not been idle before that job.

mod common;
use common::*;

use std::time::{Duration, Instant};

use workerpoolxt::{Builder, Pool, ResultHandle};

const IDLE: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(1);

/// Polls `cond` (yielding, then sleeping 1 ms) until it holds; panics after 5 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    let mut spins = 0u32;
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        if spins < 100 {
            spins += 1;
            futures_lite::future::yield_now().await;
        } else {
            sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Waits until `n` idle timers are armed.
async fn until_sleepers(clock: &ManualClock, n: usize) {
    within(Duration::from_secs(5), clock.until_sleepers(n))
        .await
        .unwrap_or_else(|| {
            panic!(
                "timed out waiting for {n} idle timers ({} armed)",
                clock.sleepers()
            )
        });
}

/// Runs `n` jobs at once on `pool` (so that `n` workers start), each until
/// its latch opens.
async fn busy(pool: &Pool, n: usize) -> (Vec<ResultHandle<()>>, Vec<Latch>) {
    let gauge = Gauge::new();
    let latches: Vec<Latch> = (0..n).map(|_| Latch::new()).collect();
    let handles = latches
        .iter()
        .map(|latch| {
            let (g, l) = (gauge.clone(), latch.clone());
            pool.submit(async move {
                let _in = g.enter();
                l.wait().await;
            })
        })
        .collect();
    within(Duration::from_secs(5), gauge.until(|g| g.now() == n))
        .await
        .expect("all jobs running");
    assert_eq!(pool.workers(), n);
    (handles, latches)
}

// After a burst, the workers stay while less than the idle timeout has
// passed, and all of them leave together once it has.
rt_test!(
    idle_workers_stay_before_timeout_and_leave_together_after,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .clock(clock.clone())
            .idle_timeout(IDLE)
            .max_workers(3)
            .build();
        let (handles, latches) = busy(&pool, 3).await;
        for l in &latches {
            l.open();
        }
        for h in handles {
            h.await.unwrap();
        }
        until_sleepers(&clock, 3).await;

        clock.advance(IDLE / 2);
        settle().await;
        assert_eq!(pool.workers(), 3, "a worker left before the idle timeout");
        assert_eq!(clock.sleepers(), 3);

        clock.advance(IDLE / 2 - TICK);
        settle().await;
        assert_eq!(
            pool.workers(),
            3,
            "a worker left 1 ms before the idle timeout"
        );

        // One advance past the timeout: all three leave (no staggered exit).
        clock.advance(2 * TICK);
        until("every idle worker to leave", || pool.workers() == 0).await;
        assert_eq!((pool.running(), pool.waiting()), (0, 0));
        pool.stop_wait().await;
    }
);

// Each worker's timer counts from its own last job: a worker that finished
// later leaves later.
rt_test!(
    each_idle_worker_leaves_one_period_after_its_own_last_job,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .clock(clock.clone())
            .idle_timeout(IDLE)
            .max_workers(2)
            .build();
        let (mut handles, latches) = busy(&pool, 2).await;

        latches[0].open();
        (&mut handles[0]).await.unwrap();
        until_sleepers(&clock, 1).await; // the first worker is idle from t = 0
        clock.advance(IDLE / 2);
        latches[1].open();
        (&mut handles[1]).await.unwrap();
        until_sleepers(&clock, 2).await; // the second one from t = 1 s

        clock.advance(IDLE / 2 + TICK); // t = 2 s + 1 ms
        until("the first worker to leave", || pool.workers() == 1).await;
        settle().await;
        assert_eq!(pool.workers(), 1, "the second worker left too early");

        clock.advance(IDLE / 2); // t = 3 s + 1 ms
        until("the second worker to leave", || pool.workers() == 0).await;
        pool.stop_wait().await;
    }
);

// A worker that ran a job during its idle period does not leave when that
// period ends; it leaves after the next whole period without a job.
rt_test!(
    worker_that_ran_a_job_in_the_period_stays_another_period,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .clock(clock.clone())
            .idle_timeout(IDLE)
            .max_workers(1)
            .build();
        assert_eq!(pool.submit(async { 1 }).await, Ok(1));
        until_sleepers(&clock, 1).await; // idle timer armed for t = 2 s

        clock.advance(IDLE / 2); // t = 1 s: a job in the middle of the period
        assert_eq!(pool.submit(async { 2 }).await, Ok(2));
        until("the worker to be done with it", || pool.running() == 0).await;
        assert_eq!(pool.workers(), 1);

        clock.advance(IDLE / 2 + TICK); // t = 2 s + 1 ms: the timer fires
                                        // The worker either leaves or arms a new timer: wait for one of the two.
        until("the worker to leave or re-arm", || {
            pool.workers() == 0 || clock.sleepers() == 1
        })
        .await;
        assert_eq!(pool.workers(), 1, "it ran a job 1 s ago and left anyway");

        clock.advance(IDLE); // t = 4 s + 1 ms: a whole period without a job
        until("the worker to leave", || pool.workers() == 0).await;
        pool.stop_wait().await;
    }
);

// A pool whose workers all left serves the next job at once (no clock
// advance needed) with a new worker.
rt_test!(
    pool_at_zero_workers_serves_next_job_at_once,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .clock(clock.clone())
            .idle_timeout(IDLE)
            .max_workers(2)
            .build();
        let (handles, latches) = busy(&pool, 2).await;
        for l in &latches {
            l.open();
        }
        for h in handles {
            h.await.unwrap();
        }
        until_sleepers(&clock, 2).await;
        clock.advance(IDLE + TICK);
        until("every idle worker to leave", || pool.workers() == 0).await;

        let h = pool.submit(async { "back" });
        assert_eq!(within(Duration::from_secs(2), h).await, Some(Ok("back")));
        // One worker came back for it; two if a leaving worker saw the job
        // in its last look at the queue and stayed (it re-reserves its slot
        // after giving it up, so `workers() == 0` above can come just before
        // that look).
        assert!((1..=2).contains(&pool.workers()), "{}", pool.workers());
        // And it fills every slot again.
        let (handles, latches) = busy(&pool, 2).await;
        for l in &latches {
            l.open();
        }
        for h in handles {
            h.await.unwrap();
        }
        pool.stop_wait().await;
        assert_eq!(pool.workers(), 0);
    }
);

// keep_idle_workers (and idle_timeout(Duration::MAX)): no idle timer at all,
// so the workers stay however much time passes; they go only at a stop.
rt_test!(keep_idle_workers_never_leave, |b: Builder| async move {
    let clock = ManualClock::new();
    let pool = b
        .clock(clock.clone())
        .keep_idle_workers()
        .max_workers(3)
        .build();
    let (handles, latches) = busy(&pool, 3).await;
    for l in &latches {
        l.open();
    }
    for h in handles {
        h.await.unwrap();
    }
    until("the workers to be idle", || pool.running() == 0).await;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(3600));
        settle().await;
        assert_eq!(pool.workers(), 3, "an idle worker left");
    }
    assert_eq!(clock.sleepers(), 0, "no idle timer is armed");
    pool.stop_wait().await;
    assert_eq!(pool.workers(), 0, "they leave at a stop");
});

// idle_timeout(Duration::MAX) is the same as keep_idle_workers.
rt_test!(idle_timeout_max_keeps_workers, |b: Builder| async move {
    let clock = ManualClock::new();
    let pool = b
        .clock(clock.clone())
        .idle_timeout(Duration::MAX)
        .max_workers(2)
        .build();
    let (handles, latches) = busy(&pool, 2).await;
    for l in &latches {
        l.open();
    }
    for h in handles {
        h.await.unwrap();
    }
    until("the workers to be idle", || pool.running() == 0).await;
    clock.advance(Duration::from_secs(10 * 365 * 24 * 3600));
    settle().await;
    assert_eq!(pool.workers(), 2);
    pool.stop_wait().await;
});

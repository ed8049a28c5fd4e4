//! `Pool::resize`: growing starts workers at once, shrinking never pre-empts,
//! and the bound follows the new size exactly.

mod common;
use common::*;

use std::time::Duration;

use workerpoolxt::{Builder, ConfigError, ResultHandle};

/// Waits (bounded) until `cond` holds for the gauge.
async fn gauge_until(gauge: &Gauge, what: &str, cond: impl Fn(&Gauge) -> bool) {
    within(Duration::from_secs(5), gauge.until(cond))
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"));
}

/// `n` jobs, job `i` counting itself in `gauge` and blocking on `latches[i]`;
/// each records in `started` that it started.
fn latched_jobs(
    pool: &workerpoolxt::Pool,
    gauge: &Gauge,
    n: usize,
) -> (Vec<ResultHandle<usize>>, Vec<Latch>) {
    let latches: Vec<Latch> = (0..n).map(|_| Latch::new()).collect();
    let handles = latches
        .iter()
        .enumerate()
        .map(|(i, latch)| {
            let (gauge, latch) = (gauge.clone(), latch.clone());
            pool.submit(async move {
                let _in = gauge.enter();
                latch.wait().await;
                i
            })
        })
        .collect();
    (handles, latches)
}

// Growing from 1 to 3 lets exactly three jobs run at once (reached, never 4).
rt_test!(
    grow_from_one_to_three_runs_exactly_three,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let gauge = Gauge::new();
        let (handles, latches) = latched_jobs(&pool, &gauge, 8);
        gauge_until(&gauge, "one running", |g| g.now() == 1).await;
        settle().await;
        assert_eq!(gauge.max(), 1);

        pool.resize(3).unwrap();
        gauge_until(&gauge, "three running", |g| g.now() == 3).await;
        settle().await;
        assert_eq!((gauge.now(), gauge.max(), pool.running()), (3, 3, 3));

        // Release them one at a time: each freed slot is refilled, never more.
        for (i, latch) in latches.iter().enumerate() {
            latch.open();
            let left = i + 1;
            gauge_until(&gauge, "the next job", |g| g.left() == left).await;
            assert!(gauge.max() <= 3, "{} ran at once", gauge.max());
        }
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i));
        }
        assert_eq!(gauge.max(), 3);
        pool.stop_wait().await;
    }
);

// Growing starts workers for queued jobs at once, without a new submit.
rt_test!(
    grow_starts_workers_for_queued_jobs_at_once,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let gauge = Gauge::new();
        let (handles, latches) = latched_jobs(&pool, &gauge, 5);
        gauge_until(&gauge, "one running", |g| g.now() == 1).await;
        assert_eq!(pool.waiting(), 4);

        pool.resize(5).unwrap();
        gauge_until(&gauge, "all five running after the resize alone", |g| {
            g.now() == 5
        })
        .await;
        assert_eq!((pool.waiting(), pool.running()), (0, 5));
        for l in &latches {
            l.open();
        }
        for h in handles {
            h.await.unwrap();
        }
        pool.stop_wait().await;
    }
);

// Shrinking from 3 to 2 pre-empts no running job, and no queued job starts
// until fewer than 2 run; from then on at most 2 run.
rt_test!(
    shrink_never_preempts_and_starts_nothing_until_below,
    |b: Builder| async move {
        let pool = b.max_workers(3).build();
        let gauge = Gauge::new();
        let (mut handles, latches) = latched_jobs(&pool, &gauge, 6);
        gauge_until(&gauge, "three running", |g| g.now() == 3).await;

        pool.resize(2).unwrap();
        assert_eq!(pool.max_workers(), 2);
        settle().await;
        assert_eq!(
            (gauge.now(), gauge.left()),
            (3, 0),
            "a running job was pre-empted"
        );
        assert!(handles[..3].iter().all(|h| !h.is_finished()));

        // Job 0 ends: two still run, which is the new maximum: nothing starts.
        latches[0].open();
        assert_eq!(
            within(Duration::from_secs(2), &mut handles[0]).await,
            Some(Ok(0))
        );
        settle().await;
        assert_eq!(
            (gauge.entered(), gauge.now()),
            (3, 2),
            "a job started with 2 running"
        );

        // Job 1 ends: one runs, so job 3 starts, and only job 3.
        latches[1].open();
        gauge_until(&gauge, "job 3 to start", |g| g.entered() == 4).await;
        settle().await;
        assert_eq!((gauge.entered(), gauge.now()), (4, 2));

        // Then jobs start one for one.
        latches[2].open();
        gauge_until(&gauge, "job 4 to start", |g| g.entered() == 5).await;
        settle().await;
        assert_eq!((gauge.entered(), gauge.now()), (5, 2));
        for l in &latches[3..] {
            l.open();
        }
        // (Handle 0 has given its result already.)
        for (i, h) in handles.into_iter().enumerate().skip(1) {
            assert_eq!(h.await, Ok(i));
        }
        assert_eq!(
            gauge.max(),
            3,
            "only the three started before the shrink ran at once"
        );
        assert!(
            pool.workers() <= 2,
            "workers above the new maximum left: {}",
            pool.workers()
        );
        pool.stop_wait().await;
    }
);

// resize(0) is an error and changes nothing: the pool still runs 3 at once.
rt_test!(
    resize_to_zero_is_an_error_and_changes_nothing,
    |b: Builder| async move {
        let pool = b.max_workers(3).build();
        assert_eq!(pool.resize(0), Err(ConfigError::ZeroWorkers));
        assert_eq!(pool.max_workers(), 3);
        let gauge = Gauge::new();
        let (handles, latches) = latched_jobs(&pool, &gauge, 4);
        gauge_until(&gauge, "three running", |g| g.now() == 3).await;
        settle().await;
        assert_eq!(gauge.max(), 3);
        for l in &latches {
            l.open();
        }
        for h in handles {
            h.await.unwrap();
        }
        pool.stop_wait().await;
    }
);

// max_workers() reports every resize.
rt_test!(max_workers_reflects_resize, |b: Builder| async move {
    let pool = b.max_workers(4).build();
    assert_eq!(pool.max_workers(), 4);
    for n in [7, 1, 3, 3, 16] {
        pool.resize(n).unwrap();
        assert_eq!(pool.max_workers(), n);
    }
    pool.stop_wait().await;
});

// Every worker of a grown pool is used: six run at once after 2 -> 6 (the
// twin of "never more than six").
rt_test!(grown_pool_uses_all_its_workers, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    pool.resize(6).unwrap();
    let gauge = Gauge::new();
    let (handles, latches) = latched_jobs(&pool, &gauge, 10);
    gauge_until(&gauge, "six running", |g| g.now() == 6).await;
    settle().await;
    assert_eq!((gauge.max(), pool.running(), pool.waiting()), (6, 6, 4));
    for l in &latches {
        l.open();
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(gauge.max(), 6);
    pool.stop_wait().await;
});

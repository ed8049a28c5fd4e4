//! Sub-pools (`Pool::subpool`): a sub-pool's jobs count against its own
//! bound and its parent's, under cancels, timeouts and panics; they wait in
//! FIFO order in both pools; a sub-pool's stop ends its jobs only, its
//! parent's stop ends all; metrics are per pool; sub-pools nest.

mod common;
use common::*;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use workerpoolxt::{Builder, Job, JobError, Pool};

/// Bound for things that take microseconds.
const LIMIT: Duration = Duration::from_secs(10);

/// A job that counts itself in every gauge of `gauges` and blocks until
/// `latch` opens.
fn held(
    gauges: &[&Gauge],
    latch: &Latch,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let gauges: Vec<Gauge> = gauges.iter().map(|g| (*g).clone()).collect();
    let latch = latch.clone();
    async move {
        let _in: Vec<_> = gauges.iter().map(Gauge::enter).collect();
        latch.wait().await;
    }
}

// A sub-pool of 2 in a pool of 4: the parent runs 4 (2 of them the sub-pool's) while more of both wait; then, through cancels of running and queued jobs, timeouts and panics, the sub-pool never has more than 2 bodies alive and the two pools never more than 4 together; every handle resolves and both pools end with nothing running.
rt_test!(
    a_subpool_never_runs_more_than_its_bound_nor_its_parents,
    |b: Builder| async move {
        quiet_expected_panics();
        let pool = b.max_workers(4).build();
        let sub = pool.subpool(2);
        let (all, mine, latch) = (Gauge::new(), Gauge::new(), Latch::new());
        let _open = OpenOnPanic(vec![latch.clone()]);
        let mut sub_handles = Vec::new();
        for i in 0..12 {
            let body = held(&[&all, &mine], &latch);
            let job = match i % 4 {
                0 => Job::once(async move {
                    body.await;
                    Ok::<_, &str>(i)
                }),
                1 => Job::once(async move {
                    body.await;
                    panic!("job {i} panics")
                }),
                2 => Job::once(async move {
                    body.await;
                    Ok(i)
                })
                .timeout(ms(20)),
                _ => Job::once(async move {
                    body.await;
                    Err("failed")
                }),
            };
            sub_handles.push(sub.submit_job(job));
        }
        let parent_handles: Vec<_> = (0..6).map(|_| pool.submit(held(&[&all], &latch))).collect();
        let filled = within(LIMIT, all.until(|g| g.now() == 4)).await;
        assert!(filled.is_some(), "the parent never ran 4 jobs");
        assert!(mine.now() <= 2, "{} of the sub-pool's jobs run", mine.now());
        assert!(pool.running() <= 4 && sub.running() <= 2);
        // Cancel a running sub-pool job and a queued one.
        sub_handles[0].cancel();
        sub_handles[11].cancel();
        for _ in 0..50 {
            assert!(mine.now() <= 2 && all.now() <= 4);
            assert!(sub.running() <= 2 && pool.running() <= 4);
            futures_lite::future::yield_now().await;
        }
        latch.open();
        let mut errors = 0;
        for h in sub_handles {
            if within(LIMIT, h)
                .await
                .expect("a sub-pool job hung")
                .is_err()
            {
                errors += 1;
            }
        }
        for h in parent_handles {
            assert_eq!(within(LIMIT, h).await, Some(Ok(())));
        }
        assert!(errors >= 6, "panics and failures: {errors} errors");
        assert_eq!(mine.max(), 2, "the sub-pool's high-water mark");
        assert_eq!(all.max(), 4, "the parent's high-water mark");
        eventually("both pools idle", || {
            pool.running() == 0 && sub.running() == 0
        })
        .await;
        let m = sub.metrics();
        assert_eq!(m.submitted, 12);
        assert_eq!(m.finished(), 12, "{m:?}");
        assert!(m.panicked >= 3 && m.cancelled >= 1, "{m:?}");
    }
);

// Sub-pool jobs take the parent's slots in submission order, interleaved with the parent's own: in a pool of 1, S1, P2, S2 run in that order (not S1, S2 back to back), and a sub-pool never keeps a slot it has no job for.
rt_test!(
    sub_and_parent_jobs_take_slots_in_fifo_order,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let sub = pool.subpool(2);
        let latch = Latch::new();
        let _open = OpenOnPanic(vec![latch.clone()]);
        let order = Arc::new(Mutex::new(Vec::new()));
        let log = |name: &'static str| {
            let order = order.clone();
            async move { order.lock().unwrap().push(name) }
        };
        let first = pool.submit({
            let latch = latch.clone();
            async move { latch.wait().await }
        });
        eventually("the first job runs", || pool.running() == 1).await;
        let s1 = sub.submit(log("S1"));
        let p2 = pool.submit(log("P2"));
        let s2 = sub.submit(log("S2"));
        let p3 = pool.submit(log("P3"));
        latch.open();
        for h in [s1, p2, s2, p3] {
            assert_eq!(within(LIMIT, h).await, Some(Ok(())));
        }
        assert_eq!(within(LIMIT, first).await, Some(Ok(())));
        assert_eq!(*order.lock().unwrap(), ["S1", "P2", "S2", "P3"]);
        eventually("the sub-pool's workers leave", || sub.workers() == 0).await;
    }
);

// A sub-pool's stop ends its own jobs only: its queued jobs resolve Stopped, its running one finishes, the stop resolves while the parent's jobs still run (not waiting for the sub-pool's second worker, still queued in the full parent), and the parent still takes and runs jobs.
rt_test!(
    a_subpools_stop_leaves_the_parents_jobs_running,
    |b: Builder| async move {
        let pool = b.max_workers(3).build();
        let sub = pool.subpool(2);
        let (parent_gauge, sub_gauge) = (Gauge::new(), Gauge::new());
        let (parent_latch, sub_latch) = (Latch::new(), Latch::new());
        let _open = OpenOnPanic(vec![parent_latch.clone(), sub_latch.clone()]);
        let parent_jobs: Vec<_> = (0..2)
            .map(|_| pool.submit(blocker(&parent_gauge, &parent_latch)))
            .collect();
        let running = sub.submit(blocker(&sub_gauge, &sub_latch));
        within(LIMIT, parent_gauge.until(|g| g.now() == 2))
            .await
            .unwrap();
        within(LIMIT, sub_gauge.until(|g| g.now() == 1))
            .await
            .unwrap();
        // The parent's queue: a job of its own, then the sub-pool's second worker.
        let parent_queued = pool.submit(blocker(&parent_gauge, &parent_latch));
        let queued: Vec<_> = (0..3).map(|_| sub.submit(async { 1 })).collect();
        assert_eq!(
            (sub.workers(), pool.waiting()),
            (2, 2),
            "a worker waits in the parent"
        );
        let stop = sub.stop();
        assert!(sub.is_stopped() && !pool.is_stopped());
        for h in queued {
            assert_eq!(within(LIMIT, h).await, Some(Err(JobError::Stopped)));
        }
        sub_latch.open();
        assert_eq!(within(LIMIT, stop).await, Some(()));
        assert_eq!(within(LIMIT, running).await, Some(Ok(())));
        within(LIMIT, parent_gauge.until(|g| g.now() == 3))
            .await
            .unwrap();
        assert_eq!(parent_gauge.now(), 3, "the parent's jobs still run");
        assert_eq!(
            within(LIMIT, sub.submit(async { 1 })).await,
            Some(Err(JobError::Stopped))
        );
        parent_latch.open();
        assert_eq!(within(LIMIT, pool.submit(async { 7 })).await, Some(Ok(7)));
        for h in parent_jobs.into_iter().chain([parent_queued]) {
            assert_eq!(within(LIMIT, h).await, Some(Ok(())));
        }
    }
);

// The parent's stop ends all: the sub-pool stops with it (its queued jobs resolve Stopped, its running job finishes before the parent's stop resolves); the parent's stop_wait runs the sub-pool's queued jobs too.
rt_test!(
    the_parents_stop_ends_its_subpools,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let sub = pool.subpool(1);
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _open = OpenOnPanic(vec![latch.clone()]);
        let running = sub.submit(blocker(&gauge, &latch));
        within(LIMIT, gauge.until(|g| g.now() == 1)).await.unwrap();
        let queued = sub.submit(async { 1 });
        let stop = pool.stop();
        assert!(sub.is_stopped(), "a parent's stop stops its sub-pools");
        assert_eq!(within(LIMIT, queued).await, Some(Err(JobError::Stopped)));
        let mut stop = Box::pin(stop);
        assert!(
            futures_lite::future::poll_once(&mut stop).await.is_none(),
            "a sub-pool job still runs"
        );
        latch.open();
        assert_eq!(within(LIMIT, stop).await, Some(()));
        assert_eq!(within(LIMIT, running).await, Some(Ok(())));

        // stop_wait: everything queued in the sub-pool runs.
        let pool = Pool::builder().max_workers(2).build();
        let sub = pool.subpool(1);
        let latch = Latch::new();
        let _open = OpenOnPanic(vec![latch.clone()]);
        let first = sub.submit({
            let latch = latch.clone();
            async move { latch.wait().await }
        });
        let rest: Vec<_> = (0..5).map(|i| sub.submit(async move { i })).collect();
        let stop = pool.stop_wait();
        assert!(sub.is_stopped());
        latch.open();
        assert_eq!(within(LIMIT, stop).await, Some(()));
        assert_eq!(within(LIMIT, first).await, Some(Ok(())));
        for (i, h) in rest.into_iter().enumerate() {
            assert_eq!(within(LIMIT, h).await, Some(Ok(i)));
        }
        assert_eq!(sub.metrics().succeeded, 6);
    }
);

// Metrics are per pool: the sub-pool counts its jobs and their ends; the parent counts them in `running` while they hold its slots.
rt_test!(metrics_are_per_subpool, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    let sub = pool.subpool(1);
    let (gauge, latch) = (Gauge::new(), Latch::new());
    let _open = OpenOnPanic(vec![latch.clone()]);
    let held = sub.submit(blocker(&gauge, &latch));
    within(LIMIT, gauge.until(|g| g.now() == 1)).await.unwrap();
    let failed = sub.submit_job(Job::once(async { Err::<(), _>("no") }));
    assert_eq!((sub.running(), pool.running()), (1, 1));
    assert_eq!(sub.waiting(), 1);
    latch.open();
    assert_eq!(within(LIMIT, held).await, Some(Ok(())));
    assert!(within(LIMIT, failed).await.unwrap().is_err());
    let m = sub.metrics();
    assert_eq!((m.submitted, m.succeeded, m.failed), (2, 1, 1), "{m:?}");
    assert_eq!(
        pool.metrics().failed,
        0,
        "the parent's own jobs did not fail"
    );
});

// Sub-pools nest: a sub-pool of 1 inside a sub-pool of 2 inside a pool of 3 keeps every bound, and a stop of the middle one stops the inner one.
rt_test!(subpools_nest, |b: Builder| async move {
    let pool = b.max_workers(3).build();
    let middle = pool.subpool(2);
    let inner = middle.subpool(1);
    let (all, mid, inn, latch) = (Gauge::new(), Gauge::new(), Gauge::new(), Latch::new());
    let _open = OpenOnPanic(vec![latch.clone()]);
    let mut handles = Vec::new();
    for _ in 0..4 {
        handles.push(inner.submit(held(&[&all, &mid, &inn], &latch)));
        handles.push(middle.submit(held(&[&all, &mid], &latch)));
        handles.push(pool.submit(held(&[&all], &latch)));
    }
    within(LIMIT, all.until(|g| g.now() == 3)).await.unwrap();
    within(LIMIT, mid.until(|g| g.now() == 2)).await.unwrap();
    for _ in 0..20 {
        assert!(all.now() <= 3 && mid.now() <= 2 && inn.now() <= 1);
        futures_lite::future::yield_now().await;
    }
    latch.open();
    for h in handles {
        assert_eq!(within(LIMIT, h).await, Some(Ok(())));
    }
    assert_eq!((all.max(), mid.max(), inn.max()), (3, 2, 1));
    assert_eq!(inner.metrics().succeeded, 4);
    let stop = middle.stop();
    assert!(inner.is_stopped() && !pool.is_stopped());
    assert_eq!(within(LIMIT, stop).await, Some(()));
});

// A sub-pool keeps its parent open: dropping every clone of the parent does not stop it while the sub-pool lives, and the sub-pool's jobs still run; a sub-pool of a stopped pool is stopped; try_subpool(0) is an error.
rt_test!(a_subpool_keeps_its_parent_open, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    let sub = pool.subpool(1);
    let parent_token = pool.cancel_token();
    drop(pool);
    assert!(!sub.is_stopped());
    assert_eq!(within(LIMIT, sub.submit(async { 3 })).await, Some(Ok(3)));
    // The sub-pool's token is a child of the parent's.
    let waiting = sub.submit(std::future::pending::<()>());
    parent_token.cancel();
    assert_eq!(within(LIMIT, waiting).await, Some(Err(JobError::Cancelled)));

    let stopped = Pool::builder().max_workers(1).build();
    stopped.stop().await;
    let late = stopped.subpool(1);
    assert!(late.is_stopped());
    assert_eq!(
        within(LIMIT, late.submit(async { 1 })).await,
        Some(Err(JobError::Stopped))
    );
    assert!(stopped.try_subpool(0).is_err());
});

// The parent's shutdown cancels the sub-pool's running jobs when its grace ends (an async one dropped, a blocking one told and its handle resolved), while the sub-pool's worker, itself a job of the parent, is not cancelled: the blocking closure keeps its parent slot until it returns, and the shutdown resolves only then.
rt_test!(
    the_parents_shutdown_cancels_the_subpools_jobs,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let sub = pool.subpool(2);
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _open = OpenOnPanic(vec![latch.clone()]);
        let forever = sub.submit(held(&[&gauge], &Latch::new()));
        let blocking = sub.submit_job(Job::blocking_once({
            let (gauge, latch) = (gauge.clone(), latch.clone());
            move |_ctx| {
                let _in = gauge.enter();
                latch.wait_blocking();
                Ok::<_, ()>(())
            }
        }));
        within(LIMIT, gauge.until(|g| g.now() == 2)).await.unwrap();
        let mut shutdown = Box::pin(pool.shutdown(Duration::ZERO));
        assert_eq!(within(LIMIT, forever).await, Some(Err(JobError::Cancelled)));
        assert_eq!(
            within(LIMIT, blocking).await,
            Some(Err(JobError::Cancelled))
        );
        assert!(futures_lite::future::poll_once(&mut shutdown)
            .await
            .is_none());
        eventually("the async job's slot is free", || pool.running() == 1).await;
        settle().await;
        assert_eq!(
            (gauge.now(), pool.running()),
            (1, 1),
            "the closure keeps its slot"
        );
        latch.open();
        assert!(within(LIMIT, shutdown).await.is_some());
        assert_eq!((gauge.now(), pool.running(), sub.running()), (0, 0, 0));
    }
);

// A job of a sub-pool that awaits its parent's stop does not wait for itself (its sub-pool's worker holds a slot of the parent): the stop resolves once the other jobs ended; a parent's pause awaited there panics (ending that job Panicked) instead of waiting for ever.
rt_test!(
    a_subpool_job_awaiting_its_parents_stop_does_not_wait_for_itself,
    |b: Builder| async move {
        quiet_expected_panics();
        let pool = b.max_workers(2).build();
        let sub = pool.subpool(1);
        let inner = sub.subpool(1);
        let p = pool.clone();
        let paused = inner.submit(async move {
            drop(p.pause().await);
        });
        assert!(matches!(
            within(LIMIT, paused).await,
            Some(Err(JobError::Panicked(_)))
        ));
        let p = pool.clone();
        let stopping = inner.submit(async move {
            p.stop().await;
            5
        });
        assert_eq!(within(LIMIT, stopping).await, Some(Ok(5)));
        assert!(pool.is_stopped() && sub.is_stopped() && inner.is_stopped());
    }
);

// The parent's rate limit applies to its sub-pools' jobs: each starts in a parent slot its worker took under the parent's limit (2 per 100 ms here, manual clock), so 5 sub-pool jobs start at 0, 0, 100, 100 and 200 ms.
rt_test!(
    the_parents_rate_limit_applies_to_subpool_jobs,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(4)
            .clock(clock.clone())
            .rate_limit(2, ms(100))
            .build();
        let sub = pool.subpool(4);
        let t0 = clock.now();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let (clock, starts) = (clock.clone(), starts.clone());
                sub.submit(async move { starts.lock().unwrap().push(clock.now() - t0) })
            })
            .collect();
        let count = || starts.lock().unwrap().len();
        eventually("the burst", || count() == 2).await;
        for total in [4, 5] {
            clock.advance(ms(99));
            settle().await;
            assert!(
                count() < total,
                "started before its window: {:?}",
                starts.lock().unwrap()
            );
            clock.advance(ms(1));
            eventually("the next window", || count() == total).await;
        }
        for h in handles {
            assert_eq!(within(LIMIT, h).await, Some(Ok(())));
        }
        let want: Vec<Duration> = [0, 0, 100, 100, 200].into_iter().map(ms).collect();
        assert_eq!(*starts.lock().unwrap(), want);
    }
);

// `jobs()` of a parent lists its sub-pools' jobs (at any depth), not the sub-pools' workers, oldest first across pools; a sub-pool's own `jobs()` lists only its own.
rt_test!(
    the_parents_jobs_list_the_subpools_jobs,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let sub = pool.subpool(1);
        let inner = sub.subpool(1);
        let latch = Latch::new();
        let _open = OpenOnPanic(vec![latch.clone()]);
        let gauge = Gauge::new();
        let named = |name: &str| {
            let body = held(&[&gauge], &latch);
            Job::once(async move {
                body.await;
                Ok::<_, ()>(())
            })
            .name(name)
        };
        let a = inner.submit_job(named("inner running"));
        within(LIMIT, gauge.until(|g| g.now() == 1)).await.unwrap();
        let b2 = pool.submit_job(named("parent running"));
        within(LIMIT, gauge.until(|g| g.now() == 2)).await.unwrap();
        let c = sub.submit_job(named("sub queued"));
        let d = pool.submit_job(named("parent queued"));
        let names = |jobs: Vec<workerpoolxt::JobInfo>| -> Vec<String> {
            jobs.iter()
                .map(|j| j.name().unwrap_or("?").to_string())
                .collect()
        };
        assert_eq!(
            names(pool.jobs()),
            [
                "inner running",
                "parent running",
                "sub queued",
                "parent queued"
            ]
        );
        assert_eq!(names(sub.jobs()), ["inner running", "sub queued"]);
        assert_eq!(names(inner.jobs()), ["inner running"]);
        latch.open();
        for h in [a, b2, c, d] {
            assert_eq!(within(LIMIT, h).await, Some(Ok(())));
        }
        eventually("all gone", || pool.jobs().is_empty()).await;
    }
);

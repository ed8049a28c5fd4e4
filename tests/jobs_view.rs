//! `Pool::jobs`: a snapshot of the queued, running and draining jobs, oldest
//! first, with exact times on the manual clock; never a job twice, never a
//! finished one, never one cancelled in the queue, under concurrent submits
//! and completions.

mod common;
use common::*;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use workerpoolxt::{Builder, Job, JobError, JobInfo, JobState};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom;

/// (id, name, state, attempt, queued for, running for) of each job.
type Row = (
    u64,
    Option<String>,
    JobState,
    u32,
    Duration,
    Option<Duration>,
);

fn rows(jobs: &[JobInfo]) -> Vec<Row> {
    jobs.iter()
        .map(|j| {
            (
                j.id().get(),
                j.name().map(str::to_string),
                j.state(),
                j.attempt(),
                j.queued_for(),
                j.running_for(),
            )
        })
        .collect()
}

fn named(s: &str) -> Option<String> {
    Some(s.to_string())
}

// On the manual clock: a running job's attempt and run time, a queued job's
// wait, a blocking job past its timeout draining until its closure returns
// and then gone, the wait of a job that started late, names, and the order.
rt_test!(
    each_state_with_its_exact_times_oldest_first,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(2)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let gauge = Gauge::new();
        let (first_latch, closure_latch, third_latch) = (Latch::new(), Latch::new(), Latch::new());
        let _open = OpenOnPanic(vec![
            first_latch.clone(),
            closure_latch.clone(),
            third_latch.clone(),
        ]);
        assert!(pool.jobs().is_empty());

        let first = pool.submit_job(
            Job::new({
                let (g, l) = (gauge.clone(), first_latch.clone());
                move |_ctx| {
                    let (g, l) = (g.clone(), l.clone());
                    async move {
                        let _in = g.enter();
                        l.wait().await;
                        Ok::<_, Boom>(1)
                    }
                }
            })
            .name("first"),
        );
        gauge.until(|g| g.now() == 1).await;
        clock.advance(ms(3));
        let blocking = pool.submit_job(
            Job::blocking({
                let (g, l) = (gauge.clone(), closure_latch.clone());
                move |_ctx| {
                    let _in = g.enter();
                    l.wait_blocking();
                    Ok::<_, Boom>(2)
                }
            })
            .timeout(ms(10)),
        );
        gauge.until(|g| g.now() == 2).await;
        let third = pool.submit(blocker(&gauge, &third_latch));
        clock.advance(ms(4));
        let (a, b, c) = (first.id().get(), blocking.id().get(), third.id().get());
        assert_eq!(
            rows(&pool.jobs()),
            vec![
                (a, named("first"), JobState::Running, 1, ms(0), Some(ms(7))),
                (b, None, JobState::Running, 1, ms(0), Some(ms(4))),
                (c, None, JobState::Queued, 0, ms(4), None),
            ]
        );

        // The blocking job's timeout (at 13 ms) passes: its handle resolves,
        // its closure runs on, and the job shows as draining.
        armed(&clock, 1).await;
        clock.advance(ms(10));
        assert_eq!(blocking.await, Err(JobError::TimedOut));
        assert_eq!(
            rows(&pool.jobs()),
            vec![
                (a, named("first"), JobState::Running, 1, ms(0), Some(ms(17))),
                (b, None, JobState::Draining, 1, ms(0), Some(ms(14))),
                (c, None, JobState::Queued, 0, ms(14), None),
            ]
        );

        // The first job ends: the third starts in its place, 14 ms late.
        first_latch.open();
        assert_eq!(first.await, Ok(1));
        gauge.until(|g| g.entered() == 3).await;
        clock.advance(ms(2));
        assert_eq!(
            rows(&pool.jobs()),
            vec![
                (b, None, JobState::Draining, 1, ms(0), Some(ms(16))),
                (c, None, JobState::Running, 1, ms(14), Some(ms(2))),
            ]
        );

        // The closure returns: the draining job is gone.
        closure_latch.open();
        eventually("the draining job is gone", || pool.jobs().len() == 1).await;
        let left = pool.jobs();
        assert_eq!(
            (left[0].id().get(), left[0].state()),
            (c, JobState::Running)
        );
        assert_eq!(left[0].state().to_string(), "running");
        assert_eq!(pool.running(), 1);

        third_latch.open();
        assert_eq!(third.await, Ok(()));
        assert!(pool.jobs().is_empty());
        pool.stop_wait().await;
    }
);

// A retried job shows the attempt that runs, and its run time from its
// first start.
rt_test!(a_retried_job_shows_its_attempt, |b: Builder| async move {
    let clock = ManualClock::new();
    let pool = b
        .max_workers(1)
        .keep_idle_workers()
        .clock(clock.clone())
        .build();
    let gauge = Gauge::new();
    let latch = Latch::new();
    let _open = OpenOnPanic(vec![latch.clone()]);
    let (g, l) = (gauge.clone(), latch.clone());
    let job = Job::new(move |ctx| {
        let (g, l) = (g.clone(), l.clone());
        async move {
            if ctx.attempt() == 1 {
                return Err(Boom);
            }
            let _in = g.enter();
            l.wait().await;
            Ok(ctx.attempt())
        }
    })
    .retry(1)
    .backoff(workerpoolxt::Backoff::none());
    let handle = pool.submit_job(job);
    gauge.until(|g| g.now() == 1).await;
    clock.advance(ms(5));
    let jobs = pool.jobs();
    assert_eq!(
        rows(&jobs),
        vec![(1, None, JobState::Running, 2, ms(0), Some(ms(5)))]
    );
    latch.open();
    assert_eq!(handle.await, Ok(2));
    pool.stop_wait().await;
});

// A job that a pause holds back (taken by a worker or still queued) shows
// as queued, then as running once the pause ends.
rt_test!(
    a_job_held_by_a_pause_shows_queued,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let gauge = Gauge::new();
        let latch = Latch::new();
        let _open = OpenOnPanic(vec![latch.clone()]);
        let guard = pool.pause().await;
        let handle = pool.submit(blocker(&gauge, &latch));
        settle().await;
        clock.advance(ms(6));
        assert_eq!(
            rows(&pool.jobs()),
            vec![(1, None, JobState::Queued, 0, ms(6), None)]
        );
        drop(guard);
        gauge.until(|g| g.now() == 1).await;
        clock.advance(ms(1));
        assert_eq!(
            rows(&pool.jobs()),
            vec![(1, None, JobState::Running, 1, ms(6), Some(ms(1)))]
        );
        latch.open();
        handle.await.unwrap();
        pool.stop_wait().await;
    }
);

// A job cancelled while queued is never shown (it stays in the queue, resolved,
// until a worker reaches it), the jobs around it are.
rt_test!(cancelled_queued_jobs_do_not_show, |b: Builder| async move {
    let pool = b.max_workers(1).keep_idle_workers().build();
    let gauge = Gauge::new();
    let latch = Latch::new();
    let _open = OpenOnPanic(vec![latch.clone()]);
    let running = pool.submit(blocker(&gauge, &latch));
    gauge.until(|g| g.now() == 1).await;
    let queued: Vec<_> = (0..4).map(|_| pool.submit(async { 7 })).collect();
    let ids = |jobs: Vec<JobInfo>| -> Vec<u64> { jobs.iter().map(|j| j.id().get()).collect() };
    assert_eq!(ids(pool.jobs()), vec![1, 2, 3, 4, 5]);
    queued[1].cancel();
    queued[3].cancel();
    assert_eq!(pool.waiting(), 2);
    assert_eq!(ids(pool.jobs()), vec![1, 2, 4]);
    latch.open();
    running.await.unwrap();
    for h in queued {
        let _ = h.await;
    }
    assert!(pool.jobs().is_empty());
    pool.stop_wait().await;
});

/// Jobs per submitting thread, and how many a thread submits before it waits
/// for them.
const PER_THREAD: usize = 3_000;
const BATCH: usize = 40;

// Three threads submit short jobs (some yield, some fail and retry) and
// wait for them in batches, while the test takes snapshots: no snapshot
// shows a job twice, nor a job whose handle had resolved before it began;
// and snapshots do see jobs (queued and running).
rt_test!(
    snapshots_under_concurrent_submits_never_show_a_job_twice_or_finished,
    |b: Builder| async move {
        let pool = b.max_workers(3).build();
        let finished = Arc::new(Mutex::new(HashSet::<u64>::new()));
        let submitters: Vec<_> = (0..3)
            .map(|t| {
                let (pool, finished) = (pool.clone(), finished.clone());
                std::thread::spawn(move || {
                    let mut batch = Vec::with_capacity(BATCH);
                    for i in 0..PER_THREAD {
                        let kind = (i + t) % 3;
                        let h = pool.submit_job(
                            Job::new(move |ctx| async move {
                                match kind {
                                    0 => Ok(0),
                                    1 => {
                                        futures_lite::future::yield_now().await;
                                        Ok(1)
                                    }
                                    _ if ctx.attempt() == 1 => Err(Boom),
                                    _ => Ok(2),
                                }
                            })
                            .retry(1)
                            .backoff(workerpoolxt::Backoff::none()),
                        );
                        batch.push(h);
                        if batch.len() == BATCH {
                            for h in batch.drain(..) {
                                let id = h.id().get();
                                h.wait().expect("a job failed");
                                finished.lock().unwrap().insert(id);
                            }
                        }
                    }
                    for h in batch {
                        let id = h.id().get();
                        h.wait().expect("a job failed");
                        finished.lock().unwrap().insert(id);
                    }
                })
            })
            .collect();
        let (mut snapshots, mut seen, mut states) = (0, 0, HashSet::new());
        while submitters.iter().any(|s| !s.is_finished()) {
            let before = finished.lock().unwrap().clone();
            let jobs = pool.jobs();
            let mut ids = HashSet::new();
            for j in &jobs {
                assert!(ids.insert(j.id()), "{:?} shown twice: {jobs:?}", j.id());
                assert!(
                    !before.contains(&j.id().get()),
                    "{j:?} shown after its handle resolved"
                );
                states.insert(j.state());
            }
            assert!(
                jobs.windows(2).all(|w| w[0].id() < w[1].id()),
                "not oldest first: {jobs:?}"
            );
            snapshots += 1;
            seen += jobs.len();
            futures_lite::future::yield_now().await;
        }
        for s in submitters {
            s.join().unwrap();
        }
        assert_eq!(finished.lock().unwrap().len(), 3 * PER_THREAD);
        assert!(pool.jobs().is_empty());
        assert!(
            snapshots > 10 && seen > 0,
            "{snapshots} snapshots saw {seen} jobs"
        );
        // Both readings were taken: the queue's and the workers'.
        assert!(states.contains(&JobState::Queued), "{states:?}");
        assert!(states.contains(&JobState::Running), "{states:?}");
        pool.stop_wait().await;
    }
);

// A job that a worker holds while it waits for its start time under the rate limit is Queued (attempt 0, no running time), once, beside the one that runs; when its time comes it shows Running.
rt_test!(
    a_job_waiting_for_its_start_time_is_queued,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(2)
            .clock(clock.clone())
            .rate_limit(1, ms(100))
            .build();
        let latch = Latch::new();
        let _open = OpenOnPanic(vec![latch.clone()]);
        let gauge = Gauge::new();
        let first = pool.submit(blocker(&gauge, &latch));
        let second = pool.submit(blocker(&gauge, &latch));
        within(WAIT_LIMIT, gauge.until(|g| g.now() == 1))
            .await
            .unwrap();
        armed(&clock, 1).await;
        clock.advance(ms(30));
        let got = rows(&pool.jobs());
        assert_eq!(
            got,
            [
                (1, None, JobState::Running, 1, ms(0), Some(ms(30))),
                (2, None, JobState::Queued, 0, ms(30), None),
            ]
        );
        clock.advance(ms(70));
        within(WAIT_LIMIT, gauge.until(|g| g.now() == 2))
            .await
            .unwrap();
        let got = rows(&pool.jobs());
        assert_eq!(
            got[1],
            (2, None, JobState::Running, 1, ms(100), Some(ms(0)))
        );
        latch.open();
        assert_eq!(within(WAIT_LIMIT, first).await, Some(Ok(())));
        assert_eq!(within(WAIT_LIMIT, second).await, Some(Ok(())));
    }
);

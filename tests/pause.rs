//! `Pool::pause` and its `PauseGuard`: the cases of the Go library's tests,
//! and what waits for what.

mod common;
use common::*;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use workerpoolxt::{Builder, JobError};

// Go's TestPause: a job submitted just before pause has run to its end by the
// time pause returns.
rt_test!(
    job_submitted_before_pause_has_finished_when_pause_returns,
    |b: Builder| async move {
        let pool = b.max_workers(4).build();
        let mut h = pool.submit(async {
            sleep(Duration::from_millis(1)).await;
            "ran"
        });
        let guard = pool.pause().await;
        assert_eq!(
            h.try_take(),
            Some(Ok("ran")),
            "pause returned before the earlier job ran"
        );
        drop(guard);
        pool.stop_wait().await;
    }
);

// pause() resolves only once every running job has ended: pending while a
// job is blocked, ready after its latch opens, with the job finished.
rt_test!(
    pause_resolves_only_after_running_jobs_end,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let mut job = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;

        let mut pause = pool.pause();
        assert!((&mut pause).now_or_never().is_none(), "a job still runs");
        settle().await;
        assert!((&mut pause).now_or_never().is_none(), "a job still runs");

        latch.open();
        let guard = within(Duration::from_secs(2), pause)
            .await
            .expect("pause resolves");
        assert_eq!(
            job.try_take(),
            Some(Ok(())),
            "the job ended before pause resolved"
        );
        assert_eq!((gauge.now(), pool.running()), (0, 0));
        drop(guard);
        pool.stop_wait().await;
    }
);

// A job submitted while paused waits in the queue (waiting() == 1) and runs
// once the guard is dropped.
rt_test!(
    job_submitted_while_paused_waits_until_guard_drops,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let guard = pool.pause().await;
        let gauge = Gauge::new();
        let g = gauge.clone();
        let job = pool.submit(async move {
            let _in = g.enter();
            5
        });
        assert_eq!(pool.waiting(), 1);
        settle().await;
        assert_eq!(
            (gauge.entered(), pool.waiting(), pool.running()),
            (0, 1, 0),
            "started while paused"
        );

        drop(guard);
        assert_eq!(within(Duration::from_secs(2), job).await, Some(Ok(5)));
        assert_eq!(pool.waiting(), 0);
        pool.stop_wait().await;
    }
);

// A second pause waits for the first guard; the pool stays paused in between,
// and jobs run again only when both guards are gone.
rt_test!(
    second_pause_waits_for_first_guard,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let first = pool.pause().await;
        let mut second = pool.pause();
        assert!(
            (&mut second).now_or_never().is_none(),
            "the first guard lives"
        );

        let gauge = Gauge::new();
        let g = gauge.clone();
        let job = pool.submit(async move {
            let _in = g.enter();
        });
        settle().await;
        assert!(
            (&mut second).now_or_never().is_none(),
            "the first guard still lives"
        );

        drop(first);
        let second = within(Duration::from_secs(2), second)
            .await
            .expect("the second pause resolves once the first guard is dropped");
        settle().await;
        assert_eq!(gauge.entered(), 0, "no job started between the two pauses");
        assert_eq!(pool.waiting(), 1);

        drop(second);
        assert_eq!(within(Duration::from_secs(2), job).await, Some(Ok(())));
        pool.stop_wait().await;
    }
);

// Two tasks pausing and resuming concurrently, while jobs flow, never
// deadlock, and every job runs.
rt_test!(concurrent_pauses_do_not_deadlock, |b: Builder| async move {
    let pool = b.max_workers(3).build();
    let gauge = Gauge::new();
    let handles: Vec<_> = (0..300u32)
        .map(|i| {
            let g = gauge.clone();
            pool.submit(async move {
                let _in = g.enter();
                if i % 7 == 0 {
                    sleep(Duration::from_micros(100)).await;
                }
                i
            })
        })
        .collect();
    let pauser = |rounds: u32| {
        let (pool, gauge) = (pool.clone(), gauge.clone());
        async move {
            for _ in 0..rounds {
                let guard = pool.pause().await;
                assert_eq!(gauge.now(), 0, "a job body is alive under a pause");
                futures_lite::future::yield_now().await;
                assert_eq!(gauge.now(), 0, "a job started under a pause");
                drop(guard);
                futures_lite::future::yield_now().await;
            }
        }
    };
    // One pauser on another thread, one in this task, and the jobs' results.
    let other = std::thread::spawn({
        let p = pauser(50);
        move || futures_lite::future::block_on(p)
    });
    within(
        Duration::from_secs(10),
        futures::future::join(pauser(50), async {
            for (i, h) in handles.into_iter().enumerate() {
                assert_eq!(h.await, Ok(i as u32));
            }
        }),
    )
    .await
    .expect("no deadlock");
    // The other thread's pauser is bounded by the watchdog; join it without
    // blocking this thread (tokio current-thread).
    while !other.is_finished() {
        sleep(Duration::from_millis(1)).await;
    }
    other.join().expect("the other pauser");
    pool.stop_wait().await;
});

// stop_wait with one pause held, one pending and a queued job returns
// promptly, and the queued job ran.
rt_test!(
    stop_wait_ends_held_and_pending_pauses,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let held = pool.pause().await;
        let mut pending = pool.pause();
        assert!((&mut pending).now_or_never().is_none());
        let job = pool.submit(async { 8 });
        assert_eq!(pool.waiting(), 1);

        within(Duration::from_secs(2), pool.stop_wait())
            .await
            .expect("stop_wait returns despite the pauses");
        let mut job = job;
        assert_eq!(job.try_take(), Some(Ok(8)), "the queued job ran");
        // The pending pause of a stopped pool resolves at once.
        assert!((&mut pending).now_or_never().is_some());
        drop(held);
    }
);

// A pause of a stopped pool resolves at once.
rt_test!(pause_after_stop_returns_at_once, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    pool.stop().await;
    let guard = pool.pause().now_or_never().expect("resolves at first poll");
    drop(guard);
    assert_eq!(pool.submit(async {}).await, Err(JobError::Stopped));
});

// Dropping a pause future before it resolves withdraws it: both one that
// waits for a running job and one that waits for another guard.
rt_test!(
    dropping_pending_pause_withdraws_it,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let running = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;

        // Waiting for the running job: queued jobs are held meanwhile.
        let mut pause = pool.pause();
        assert!((&mut pause).now_or_never().is_none());
        let queued = pool.submit(async { 1 });
        drop(pause);
        latch.open();
        running.await.unwrap();
        assert_eq!(
            within(Duration::from_secs(2), queued).await,
            Some(Ok(1)),
            "the withdrawn pause holds nothing back"
        );

        // Waiting for another guard.
        let guard = pool.pause().await;
        let mut second = pool.pause();
        assert!((&mut second).now_or_never().is_none());
        drop(second);
        let queued = pool.submit(async { 2 });
        drop(guard);
        assert_eq!(within(Duration::from_secs(2), queued).await, Some(Ok(2)));

        // A later pause still works.
        let guard = within(Duration::from_secs(2), pool.pause())
            .await
            .expect("pause works");
        drop(guard);
        pool.stop_wait().await;
    }
);

// Jobs queued during a pause start in FIFO order once it ends.
rt_test!(fifo_order_kept_after_resume, |b: Builder| async move {
    let pool = b.max_workers(1).build();
    let guard = pool.pause().await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..20usize)
        .map(|i| {
            let order = order.clone();
            pool.submit(async move { order.lock().unwrap().push(i) })
        })
        .collect();
    assert_eq!(pool.waiting(), 20);
    drop(guard);
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
    pool.stop_wait().await;
});

// While paused, no job starts on any worker, also with several idle workers
// around (the pause holds all of them, not just one).
rt_test!(pause_holds_every_worker, |b: Builder| async move {
    let pool = b.max_workers(4).build();
    // Start four workers and let them go idle.
    let (gauge, latch) = (Gauge::new(), Latch::new());
    let warm: Vec<_> = (0..4)
        .map(|_| pool.submit(blocker(&gauge, &latch)))
        .collect();
    gauge.until(|g| g.now() == 4).await;
    latch.open();
    for h in warm {
        h.await.unwrap();
    }
    let guard = within(Duration::from_secs(2), pool.pause())
        .await
        .expect("pause");
    let started = Gauge::new();
    let jobs: Vec<_> = (0..8)
        .map(|_| {
            let s = started.clone();
            pool.submit(async move {
                let _in = s.enter();
            })
        })
        .collect();
    settle().await;
    assert_eq!((started.entered(), pool.waiting()), (0, 8));
    let start = Instant::now();
    drop(guard);
    for h in jobs {
        h.await.unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    pool.stop_wait().await;
});

/// A job that records `i` in `order` when it runs, counted in `gauge`.
fn recorder(
    gauge: &Gauge,
    order: &Arc<Mutex<Vec<usize>>>,
    i: usize,
) -> impl Future<Output = usize> + Send + 'static {
    let (gauge, order) = (gauge.clone(), order.clone());
    async move {
        let _in = gauge.enter();
        order.lock().unwrap().push(i);
        i
    }
}

// The pause takes its place in the queue (as in Go): jobs queued before the
// call run, in order, before it resolves; jobs submitted after it wait, and
// run in order once the guard drops.
rt_test!(
    pause_runs_jobs_queued_before_it_and_holds_later_ones,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let first = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut before: Vec<_> = (1..4)
            .map(|i| pool.submit(recorder(&gauge, &order, i)))
            .collect();
        let mut pause = pool.pause();
        let after: Vec<_> = (4..6)
            .map(|i| pool.submit(recorder(&gauge, &order, i)))
            .collect();
        assert!(
            (&mut pause).now_or_never().is_none(),
            "the first job still runs"
        );

        latch.open();
        let guard = within(Duration::from_secs(2), pause)
            .await
            .expect("pause resolves");
        first.await.unwrap();
        for (i, h) in before.iter_mut().enumerate() {
            assert_eq!(
                h.try_take(),
                Some(Ok(i + 1)),
                "a job queued before the pause has not run"
            );
        }
        settle().await;
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 3]);
        assert_eq!(pool.waiting(), 2, "the later jobs wait");

        drop(guard);
        for (i, h) in after.into_iter().enumerate() {
            assert_eq!(within(Duration::from_secs(2), h).await, Some(Ok(i + 4)));
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 3, 4, 5]);
        pool.stop_wait().await;
    }
);

// The pause holds jobs from the call on, before its future is first polled.
rt_test!(
    pause_holds_jobs_from_the_call_not_the_first_poll,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let pause = pool.pause();
        let gauge = Gauge::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let job = pool.submit(recorder(&gauge, &order, 0));
        settle().await;
        assert_eq!(
            (gauge.entered(), pool.waiting()),
            (0, 1),
            "ran before the pause was polled"
        );
        let guard = within(Duration::from_secs(2), pause)
            .await
            .expect("pause resolves");
        drop(guard);
        assert_eq!(within(Duration::from_secs(2), job).await, Some(Ok(0)));
        pool.stop_wait().await;
    }
);

// Between two pauses: jobs submitted after the first and before the second
// run when the first guard drops (before the second resolves); jobs
// submitted after the second wait for its guard.
rt_test!(
    jobs_between_two_pauses_run_before_the_second_resolves,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let gauge = Gauge::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = pool.pause().await;
        let mut between = pool.submit(recorder(&gauge, &order, 1));
        let mut second = pool.pause();
        let after = pool.submit(recorder(&gauge, &order, 2));
        settle().await;
        assert_eq!(gauge.entered(), 0);
        assert!((&mut second).now_or_never().is_none());

        drop(first);
        let second = within(Duration::from_secs(2), second)
            .await
            .expect("second pause");
        assert_eq!(
            between.try_take(),
            Some(Ok(1)),
            "the job between the pauses ran first"
        );
        settle().await;
        assert_eq!(
            (gauge.entered(), pool.waiting()),
            (1, 1),
            "the later job waits"
        );

        drop(second);
        assert_eq!(within(Duration::from_secs(2), after).await, Some(Ok(2)));
        pool.stop_wait().await;
    }
);

// No job starts while a pause guard lives, also the second of two pauses
// (whichever jobs it let run first, they ran before it resolved).
rt_test!(
    no_job_starts_while_the_second_guard_lives,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let gauge = Gauge::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = pool.pause().await;
        let between = pool.submit(recorder(&gauge, &order, 1));
        settle().await; // a worker may take the held job and wait with it
        let second = pool.pause();
        drop(first);
        let second = within(Duration::from_secs(2), second)
            .await
            .expect("second pause");
        let at_resolve = gauge.entered();
        settle().await;
        assert_eq!(
            gauge.entered(),
            at_resolve,
            "a job started while the second pause guard was held"
        );
        drop(second);
        assert_eq!(within(Duration::from_secs(2), between).await, Some(Ok(1)));
        pool.stop_wait().await;
    }
);

// A job held by a pause (perhaps already taken by a worker that waits with
// it) can be cancelled at once, and the pool goes on after the pause.
rt_test!(
    cancelling_a_held_job_resolves_it_at_once,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let guard = pool.pause().await;
        let gauge = Gauge::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = pool.submit(recorder(&gauge, &order, 0));
        let next = pool.submit(recorder(&gauge, &order, 1));
        settle().await;
        held.cancel();
        assert_eq!(
            within(Duration::from_secs(2), held).await,
            Some(Err(JobError::Cancelled))
        );
        assert_eq!(pool.waiting(), 1);
        drop(guard);
        assert_eq!(within(Duration::from_secs(2), next).await, Some(Ok(1)));
        assert_eq!(
            *order.lock().unwrap(),
            vec![1],
            "the cancelled job never ran"
        );
        pool.stop_wait().await;
        let m = pool.metrics();
        assert_eq!(
            (m.submitted, m.succeeded, m.cancelled, m.waiting),
            (2, 1, 1, 0)
        );
    }
);

// stop() while a pause holds queued jobs: they resolve Stopped (never run),
// and the stop does not wait for the guard.
rt_test!(
    stop_resolves_held_jobs_stopped_without_waiting_for_the_guard,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let guard = pool.pause().await;
        let gauge = Gauge::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let held: Vec<_> = (0..3)
            .map(|i| pool.submit(recorder(&gauge, &order, i)))
            .collect();
        settle().await;
        within(Duration::from_secs(2), pool.stop())
            .await
            .expect("stop returns while the guard lives");
        for h in held {
            assert_eq!(h.await, Err(JobError::Stopped));
        }
        assert_eq!(gauge.entered(), 0);
        drop(guard);
        assert_eq!(pool.workers(), 0);
    }
);

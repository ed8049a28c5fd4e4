//! Stopping (Go's Stop and StopWait scenarios): queued jobs resolve
//! `Stopped` without running, running jobs finish, every stop caller returns
//! once they have, and nothing is lost when every `Pool` clone is dropped.

mod common;
use common::*;

use std::time::Duration;

use futures::FutureExt;
use workerpoolxt::{Builder, JobError, Pool, ResultHandle};

const JOBS: usize = 64;
const WORKERS: usize = 2;

/// A pool of 2 with 64 jobs blocked on `latch`; returns once 2 of them run.
async fn blocked_pool(
    b: Builder,
    gauge: &Gauge,
    latch: &Latch,
) -> (Pool, Vec<ResultHandle<usize>>) {
    let pool = b.max_workers(WORKERS).build();
    let handles = (0..JOBS)
        .map(|i| {
            let (gauge, latch) = (gauge.clone(), latch.clone());
            pool.submit(async move {
                let _alive = gauge.enter();
                latch.wait().await;
                i
            })
        })
        .collect();
    gauge.until(|g| g.now() >= WORKERS).await;
    assert_eq!(gauge.entered(), WORKERS, "more jobs started than workers");
    (pool, handles)
}

// stop(): the 62 queued jobs resolve Stopped at once without running; the 2
// running ones finish once the latch opens, and stop resolves only then.
rt_test!(
    stop_drops_queued_jobs_and_waits_for_running_ones,
    |b: Builder| async move {
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let (pool, mut handles) = blocked_pool(b, &gauge, &latch).await;
        let mut stop = pool.stop();
        assert!(pool.is_stopped());
        let queued = handles.split_off(WORKERS);
        // The queued ones resolve while the latch is still closed.
        for (i, h) in queued.into_iter().enumerate() {
            assert_eq!(
                within(Duration::from_secs(2), h).await,
                Some(Err(JobError::Stopped)),
                "job {}",
                i + WORKERS
            );
        }
        assert_eq!(pool.waiting(), 0);
        yields(50).await;
        assert_eq!(gauge.entered(), WORKERS, "a queued job ran after stop");
        assert!(
            (&mut stop).now_or_never().is_none(),
            "stop resolved while jobs were still running"
        );
        assert!(handles.iter().all(|h| !h.is_finished()));

        latch.open();
        stop.await;
        assert_eq!(
            gauge.now(),
            0,
            "stop resolved before the running jobs ended"
        );
        for (i, mut h) in handles.into_iter().enumerate() {
            assert_eq!(
                h.try_take(),
                Some(Ok(i)),
                "a running job's result was not ready at stop's end"
            );
        }
        assert_eq!(gauge.entered(), WORKERS);
        let m = pool.metrics();
        assert_eq!(
            (m.succeeded, m.stopped),
            (WORKERS as u64, (JOBS - WORKERS) as u64)
        );
    },
    async_std
);

// Five stop() callers on five threads all return, and only once the running
// jobs have finished.
rt_test!(
    concurrent_stop_callers_all_return_after_running_jobs,
    |b: Builder| async move {
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let (pool, mut handles) = blocked_pool(b, &gauge, &latch).await;
        let (done_tx, done_rx) = async_channel::unbounded::<usize>();
        let (called_tx, called_rx) = async_channel::unbounded::<()>();
        let threads: Vec<_> = (0..5)
            .map(|k| {
                let (pool, done_tx, called_tx) = (pool.clone(), done_tx.clone(), called_tx.clone());
                std::thread::spawn(move || {
                    let stop = pool.stop();
                    called_tx.send_blocking(()).unwrap();
                    futures_lite::future::block_on(stop);
                    done_tx.send_blocking(k).unwrap();
                })
            })
            .collect();
        for _ in 0..5 {
            called_rx.recv().await.unwrap();
        }
        // Every stop has begun: the queued jobs are gone, no caller has returned.
        for h in handles.split_off(WORKERS) {
            assert_eq!(
                within(Duration::from_secs(2), h).await,
                Some(Err(JobError::Stopped)),
                "a queued job's handle did not resolve at stop"
            );
        }
        yields(50).await;
        assert!(
            done_rx.is_empty(),
            "a stop caller returned while jobs were running"
        );

        latch.open();
        let mut done: Vec<usize> = Vec::new();
        for _ in 0..5 {
            done.push(
                within(Duration::from_secs(5), done_rx.recv())
                    .await
                    .expect("a stop caller hung")
                    .unwrap(),
            );
        }
        done.sort_unstable();
        assert_eq!(done, vec![0, 1, 2, 3, 4]);
        assert_eq!(gauge.now(), 0);
        for t in threads {
            t.join().unwrap();
        }
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i));
        }
        // A stop in this task too, after the others.
        pool.stop().await;
    }
);

// stop_wait(): every queued job runs, then it resolves; it is not ready while
// jobs are blocked, and new submissions resolve Stopped.
rt_test!(
    stop_wait_runs_every_queued_job,
    |b: Builder| async move {
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let (pool, handles) = blocked_pool(b, &gauge, &latch).await;
        let mut stop = pool.stop_wait();
        assert!(pool.is_stopped());
        assert_eq!(pool.submit(async { 99 }).await, Err(JobError::Stopped));
        yields(50).await;
        assert!(
            (&mut stop).now_or_never().is_none(),
            "stop_wait resolved with jobs queued"
        );
        assert_eq!(pool.waiting(), JOBS - WORKERS);

        latch.open();
        stop.await;
        assert_eq!(gauge.entered(), JOBS);
        assert_eq!(gauge.now(), 0);
        for (i, mut h) in handles.into_iter().enumerate() {
            assert_eq!(h.try_take(), Some(Ok(i)));
        }
        assert_eq!(gauge.max(), WORKERS);
    },
    async_std
);

// A submit after stop resolves Stopped (no panic), and its job never runs.
rt_test!(
    submit_after_stop_resolves_stopped,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        pool.stop().await;
        let (fut, counts) = counted(async { 1 });
        assert_eq!(pool.submit(fut).await, Err(JobError::Stopped));
        assert_eq!((counts.polls(), counts.drops()), (0, 1));
        assert_eq!(pool.submit_blocking(|| 2).await, Err(JobError::Stopped));
        assert_eq!(pool.metrics().stopped, 2);
    }
);

// stop twice, and stop then stop_wait: each resolves, queued jobs stay Stopped.
rt_test!(
    stop_twice_and_stop_then_stop_wait_are_fine,
    |b: Builder| async move {
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let (pool, mut handles) = blocked_pool(b, &gauge, &latch).await;
        let first = pool.stop();
        let mut second = pool.stop();
        let mut then_wait = pool.stop_wait();
        assert!((&mut second).now_or_never().is_none());
        assert!((&mut then_wait).now_or_never().is_none());
        latch.open();
        futures::join!(first, second, then_wait);
        let queued = handles.split_off(WORKERS);
        for h in queued {
            assert_eq!(
                h.await,
                Err(JobError::Stopped),
                "stop_wait after stop revived a job"
            );
        }
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i));
        }
        assert_eq!(gauge.entered(), WORKERS);
        // And once stopped, more stops return at once.
        assert_eq!(within(Duration::from_secs(2), pool.stop()).await, Some(()));
        assert_eq!(
            within(Duration::from_secs(2), pool.stop_wait()).await,
            Some(())
        );
    }
);

// Dropping every Pool clone lets the queued jobs finish: all handles Ok.
rt_test!(
    dropping_every_pool_clone_lets_queued_jobs_finish,
    |b: Builder| async move {
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let (pool, handles) = blocked_pool(b, &gauge, &latch).await;
        let clone = pool.clone();
        drop(pool);
        drop(clone);
        latch.open();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(
                within(Duration::from_secs(5), h).await,
                Some(Ok(i)),
                "job {i}"
            );
        }
        gauge.until(|g| g.now() == 0).await;
        assert_eq!(gauge.entered(), JOBS);
        assert_eq!(gauge.max(), WORKERS);
    }
);

// stop_wait with a cancelled pool token and a long queue: no hang, every
// running job is cancelled and no queued job starts.
rt_test!(
    stop_wait_with_cancelled_pool_token_does_not_hang,
    |b: Builder| async move {
        let pool = b.max_workers(WORKERS).build();
        let gauge = Gauge::new();
        let handles: Vec<_> = (0..JOBS)
            .map(|_| {
                let gauge = gauge.clone();
                pool.submit(async move {
                    let _alive = gauge.enter();
                    std::future::pending::<()>().await
                })
            })
            .collect();
        gauge.until(|g| g.now() >= WORKERS).await;
        pool.cancel_token().cancel();
        assert_eq!(
            within(Duration::from_secs(2), pool.stop_wait()).await,
            Some(()),
            "stop_wait hung"
        );
        for h in handles {
            assert_eq!(h.await, Err(JobError::Cancelled));
        }
        assert_eq!(
            gauge.entered(),
            WORKERS,
            "a job started under a cancelled token"
        );
        assert_eq!(gauge.now(), 0);
    }
);

// stop() waits for a running blocking closure — also one whose handle was
// cancelled (resolved) already: its worker is busy until it returns.
rt_test!(
    stop_waits_for_running_blocking_closures_even_cancelled_ones,
    |b: Builder| async move {
        let pool = b.max_workers(WORKERS).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let handles: Vec<_> = (0..WORKERS)
            .map(|i| {
                let (gauge, latch) = (gauge.clone(), latch.clone());
                pool.submit_blocking(move || {
                    let _alive = gauge.enter();
                    latch.wait_blocking();
                    i
                })
            })
            .collect();
        gauge.until(|g| g.now() >= WORKERS).await;
        handles[0].cancel();
        let mut handles = handles.into_iter();
        let cancelled = handles.next().unwrap();
        assert_eq!(
            within(Duration::from_secs(2), cancelled).await,
            Some(Err(JobError::Cancelled))
        );
        let mut stop = pool.stop();
        yields(50).await;
        assert!(
            (&mut stop).now_or_never().is_none(),
            "stop resolved while blocking closures still ran"
        );
        assert_eq!(gauge.now(), WORKERS);
        latch.open();
        stop.await;
        assert_eq!(gauge.now(), 0, "stop resolved before the closures returned");
        assert_eq!(handles.next().unwrap().await, Ok(1));
    }
);

// The last Pool clone dropped inside a job (the pool owned only by its own
// queued jobs): every queued job still runs.
rt_test!(
    last_pool_clone_dropped_inside_a_job_lets_the_queue_finish,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let latch = Latch::new();
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let (latch, own) = (latch.clone(), pool.clone());
                pool.submit(async move {
                    latch.wait().await;
                    drop(own);
                    i
                })
            })
            .collect();
        drop(pool);
        latch.open();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(
                within(Duration::from_secs(5), h).await,
                Some(Ok(i)),
                "job {i}"
            );
        }
    }
);

// Submissions from several threads racing a stop: every handle resolves, Ok
// or Stopped, none hangs, and nothing is left counted as waiting.
rt_test!(submits_racing_a_stop_all_resolve, |b: Builder| async move {
    let pool = b.max_workers(WORKERS).build();
    let (first_tx, first_rx) = async_channel::unbounded::<()>();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (pool, first_tx) = (pool.clone(), first_tx.clone());
            std::thread::spawn(move || {
                let mut hs: Vec<_> = (0..500)
                    .map(|i| {
                        let h = pool.submit(async move { t * 1_000 + i });
                        if i == 10 {
                            let _ = first_tx.try_send(());
                        }
                        h
                    })
                    .collect();
                // One surely after the stop began.
                while !pool.is_stopped() {
                    std::thread::yield_now();
                }
                hs.push(pool.submit(async move { t * 1_000 + 999 }));
                hs
            })
        })
        .collect();
    first_rx.recv().await.unwrap();
    let stop = pool.stop();
    let mut handles = Vec::new();
    for t in threads {
        handles.extend(t.join().unwrap());
    }
    let (mut ok, mut stopped) = (0, 0);
    for h in handles {
        match within(Duration::from_secs(5), h).await {
            Some(Ok(_)) => ok += 1,
            Some(Err(JobError::Stopped)) => stopped += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok + stopped, 2_004);
    assert!(
        stopped >= 4,
        "the submits after the stop began were not refused"
    );
    assert_eq!(
        within(Duration::from_secs(5), stop).await,
        Some(()),
        "stop hung"
    );
    assert_eq!(pool.waiting(), 0);
    assert_eq!(pool.running(), 0);
    let m = pool.metrics();
    assert_eq!((m.submitted, m.succeeded, m.stopped), (2_004, ok, stopped));
});

// `Stop` is a `FusedFuture`: terminated once it has resolved, not before.
rt_test!(
    a_stop_is_terminated_once_resolved,
    |b: Builder| async move {
        use futures::future::FusedFuture;
        let pool = b.max_workers(1).build();
        assert_eq!(pool.submit(async { 1 }).await, Ok(1));
        let mut stop = pool.stop_wait();
        assert!(!stop.is_terminated());
        (&mut stop).await;
        assert!(stop.is_terminated());
        assert!(format!("{stop:?}").contains("done: true"), "{stop:?}");
        // Polled again after it resolved: still ready.
        stop.await;
    }
);

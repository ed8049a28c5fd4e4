//! `ResultHandle::cancel_handle`: a `CancelHandle` (Clone + Send + Sync)
//! cancels its job wherever the handle went (here, into a `ResultSet`), as
//! `ResultHandle::cancel` does; it tells whether the job finished, has the
//! job's id, and dropping it does nothing to the job.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use workerpoolxt::{Builder, CancelHandle, Job, JobError, ResultSet};

const PROMPT: Duration = Duration::from_secs(5);

#[test]
fn a_cancel_handle_is_clone_send_sync_and_debug() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<CancelHandle>();
}

// A queued job cancelled through a cancel handle, its handle in a set:
// `is_finished` turns true at once, the set yields `Cancelled` (with the
// job's id) without a worker, and the job is never polled, only dropped.
rt_test!(
    a_cancel_handle_cancels_a_queued_job_in_a_set,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let blocker = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;
        let (fut, counts) = counted(async { 5u8 });
        let queued = pool.submit(fut);
        let canceller = queued.cancel_handle();
        assert_eq!(canceller.id(), queued.id());
        let mut set = ResultSet::new();
        set.push(queued);
        assert!(!canceller.is_finished());

        canceller.cancel();
        assert!(canceller.is_finished(), "a queued job's cancel is at once");
        let outcome = set.join_next().now_or_never().flatten();
        let outcome = outcome.expect("the cancelled job was not yielded at once");
        assert_eq!(outcome.id(), canceller.id());
        assert_eq!(outcome.into_result(), Err(JobError::Cancelled));
        assert!(set.is_empty());

        latch.open();
        assert_eq!(within(PROMPT, blocker).await, Some(Ok(())));
        within(PROMPT, pool.stop_wait()).await.expect("stop_wait");
        assert_eq!((counts.polls(), counts.drops()), (0, 1));
        assert_eq!(pool.metrics().cancelled, 1);
    }
);

// A running async job cancelled through clones of its cancel handle on
// other threads: its future is dropped before the set yields `Cancelled`.
// Cancelling again (from several threads at once) changes nothing.
rt_test!(
    cancel_handle_clones_cancel_a_running_async_job_from_other_threads,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let gauge = Gauge::new();
        let g = gauge.clone();
        let (fut, counts) = counted(async move {
            let _in = g.enter();
            std::future::pending::<()>().await
        });
        let handle = pool.submit(fut);
        let canceller = handle.cancel_handle();
        let mut set = ResultSet::new();
        set.push(handle);
        gauge.until(|g| g.now() == 1).await;

        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = canceller.clone();
                std::thread::spawn(move || c.cancel())
            })
            .collect();
        let outcome = within(PROMPT, set.join_next()).await.flatten();
        let outcome = outcome.expect("the cancelled job was never yielded");
        assert_eq!(counts.drops(), 1, "yielded before the future was dropped");
        assert_eq!(outcome.id(), canceller.id());
        assert_eq!(outcome.into_result(), Err(JobError::Cancelled));
        for t in threads {
            t.join().unwrap();
        }
        let c = canceller.clone();
        let seen = std::thread::spawn(move || c.is_finished()).join().unwrap();
        assert!(seen && canceller.is_finished());
        assert_eq!((gauge.now(), counts.completions()), (0, 0));
        assert_eq!(pool.metrics().cancelled, 1);
        assert_eq!(pool.submit(async { 2 }).await, Ok(2), "the slot is free");
        within(PROMPT, pool.stop_wait()).await.expect("stop_wait");
    }
);

// A running blocking closure cancelled through a cancel handle: it is told
// through its context, the set yields `Cancelled` at once while it still
// runs (and holds its slot), and it returns when it likes.
rt_test!(
    a_cancel_handle_tells_a_running_blocking_closure,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let gauge = Gauge::new();
        let (release, returned) = (Latch::new(), Arc::new(AtomicBool::new(false)));
        let _guard = OpenOnPanic(vec![release.clone()]);
        let (told_tx, told) = async_channel::unbounded();
        let (g, r, ret) = (gauge.clone(), release.clone(), returned.clone());
        let handle = pool.submit_job(Job::blocking_once(move |ctx| {
            let _in = g.enter();
            let start = Instant::now();
            while !ctx.is_cancelled() && start.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
            told_tx.send_blocking(ctx.is_cancelled()).unwrap();
            r.wait_blocking();
            ret.store(true, Ordering::SeqCst);
            Ok::<_, ()>(1u8)
        }));
        let canceller = handle.cancel_handle();
        let mut set = ResultSet::new();
        set.push(handle);
        gauge.until(|g| g.now() == 1).await;

        let c = canceller.clone();
        std::thread::spawn(move || c.cancel()).join().unwrap();
        assert_eq!(within(PROMPT, told.recv()).await, Some(Ok(true)));
        let outcome = within(PROMPT, set.join_next()).await.flatten();
        let outcome = outcome.expect("the cancelled closure was never yielded");
        assert_eq!(outcome.into_result(), Err(JobError::Cancelled));
        assert!(canceller.is_finished());
        assert!(!returned.load(Ordering::SeqCst), "yielded only on return");
        assert_eq!((gauge.now(), pool.running()), (1, 1), "the slot is held");

        release.open();
        within(PROMPT, pool.stop_wait()).await.expect("stop_wait");
        assert!(returned.load(Ordering::SeqCst));
        assert_eq!(pool.metrics().cancelled, 1);
    }
);

// Dropping cancel handles (every clone, before the job ends) does nothing
// to the job: it runs to its end and its handle gets the value. A cancel
// handle that outlives the job and its handle still says it finished, and
// its cancel then changes nothing.
rt_test!(
    dropping_a_cancel_handle_does_nothing_to_the_job,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let body = blocker(&gauge, &latch);
        let first = pool.submit(async move {
            body.await;
            1u8
        });
        let canceller = first.cancel_handle();
        let clones = vec![canceller.clone(), canceller.clone()];
        let body = blocker(&gauge, &latch);
        let second = pool.submit(async move {
            body.await;
            2u8
        });
        let outliving = second.cancel_handle();
        gauge.until(|g| g.now() == 2).await;
        drop(canceller);
        drop(clones);
        settle().await;
        assert!(
            !first.is_finished(),
            "a dropped cancel handle ended its job"
        );

        latch.open();
        assert_eq!(within(PROMPT, first).await, Some(Ok(1)));
        within(PROMPT, pool.stop_wait()).await.expect("stop_wait");
        let mut second = second;
        outliving.cancel();
        assert_eq!(
            second.try_take(),
            Some(Ok(2)),
            "a late cancel took the value"
        );
        drop(second);
        assert!(
            outliving.is_finished(),
            "forgot after its handle was dropped"
        );
        outliving.cancel();
        drop(outliving);
        assert_eq!(pool.metrics().succeeded, 2);
        assert_eq!(pool.metrics().cancelled, 0);
    }
);

// A cancel handle still cancels a job whose result handle was dropped: a
// running async job is dropped, a queued one never starts; a cancel handle
// of a job refused by a stopped pool says it finished.
rt_test!(
    a_cancel_handle_outlives_its_dropped_result_handle,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let gauge = Gauge::new();
        let g = gauge.clone();
        let (fut, running_counts) = counted(async move {
            let _in = g.enter();
            std::future::pending::<()>().await
        });
        let running = pool.submit(fut).cancel_handle();
        let (fut, queued_counts) = counted(async { 1u8 });
        let queued = pool.submit(fut).cancel_handle();
        gauge.until(|g| g.now() == 1).await;
        assert!(!running.is_finished() && !queued.is_finished());

        queued.cancel();
        assert!(queued.is_finished());
        running.cancel();
        within(PROMPT, gauge.until(|g| g.now() == 0))
            .await
            .expect("the running job was never dropped");
        assert_eq!(running_counts.drops(), 1);
        within(PROMPT, pool.stop_wait()).await.expect("stop_wait");
        assert!(running.is_finished());
        assert_eq!((queued_counts.polls(), queued_counts.drops()), (0, 1));
        assert_eq!(pool.metrics().cancelled, 2);

        let refused = pool.submit(async { 2u8 }).cancel_handle();
        assert!(refused.is_finished(), "a refused job is finished");
        refused.cancel();
        assert_eq!(pool.metrics().cancelled, 2);
    }
);

// Cancels racing their jobs' ends, from another thread that then drops the
// cancel handles while the results are taken (so the job's record is freed
// by whichever of the three lets go last): every handle resolves once, to
// its value or `Cancelled`, every future is dropped once, and the metrics
// agree with the results.
rt_test!(
    cancels_racing_the_jobs_ends_resolve_each_handle_once,
    |b: Builder| async move {
        const JOBS: usize = 300;
        let pool = b.max_workers(2).build();
        let (tx, rx) = std::sync::mpsc::channel::<CancelHandle>();
        let canceller = std::thread::spawn(move || {
            for (i, c) in rx.into_iter().enumerate() {
                if i % 3 != 2 {
                    c.cancel();
                }
            }
        });
        let mut all = Vec::new();
        for i in 0..JOBS {
            let (fut, counts) = counted(async move {
                futures_lite::future::yield_now().await;
                i
            });
            let h = pool.submit(fut);
            tx.send(h.cancel_handle()).unwrap();
            all.push((i, h, counts));
        }
        drop(tx);
        let (mut ok, mut cancelled) = (0u64, 0u64);
        for (i, h, _) in &mut all {
            match within(PROMPT, &mut *h).await {
                Some(Ok(v)) if v == *i => ok += 1,
                Some(Err(JobError::Cancelled)) => cancelled += 1,
                other => panic!("job {i}: {other:?}"),
            }
        }
        canceller.join().unwrap();
        within(PROMPT, pool.stop_wait()).await.expect("stop_wait");
        for (i, _, counts) in &all {
            assert_eq!(
                counts.drops(),
                1,
                "job {i}'s future dropped {} times",
                counts.drops()
            );
        }
        assert!(ok >= (JOBS / 3) as u64, "{ok} values, {cancelled} cancels");
        let m = pool.metrics();
        assert_eq!((m.succeeded, m.cancelled), (ok, cancelled));
    }
);

//! Using a handle without awaiting it where it was made: check it later
//! (`try_take`, `is_finished`), block on it from a plain thread (`wait`),
//! get the whole record (`outcome`), or await it on another runtime.

mod common;
use common::*;

use std::time::Duration;

use futures::FutureExt;
use workerpoolxt::{Builder, Job, JobError, Pool};

// try_take is None and is_finished false while the job runs; once it has
// finished, try_take gives the result once.
rt_test!(
    try_take_is_none_until_the_job_finishes,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let latch = Latch::new();
        let alive = Gauge::new();
        let mut h = {
            let (latch, alive) = (latch.clone(), alive.clone());
            pool.submit(async move {
                let _alive = alive.enter();
                latch.wait().await;
                "done"
            })
        };
        assert!(!h.is_finished());
        assert_eq!(h.try_take(), None, "queued");
        alive.until(|g| g.now() >= 1).await;
        assert!(!h.is_finished());
        assert_eq!(h.try_take(), None, "running");
        latch.open();
        // One worker, FIFO: when the next job has run, the first has finished.
        assert_eq!(pool.submit(async {}).await, Ok(()));
        assert!(h.is_finished());
        assert_eq!(h.try_take(), Some(Ok("done")));
        assert!(h.is_finished());
        assert_eq!(h.try_take(), None);
        pool.stop_wait().await;
    },
    async_std
);

// wait() blocks a plain thread (no runtime anywhere) until the job is done.
#[test]
fn wait_from_a_plain_thread_without_runtime() {
    let _dog = Watchdog::new(
        "wait_from_a_plain_thread_without_runtime".into(),
        HANG_LIMIT,
    );
    let pool = Pool::new(2);
    let latch = Latch::new();
    let h = {
        let latch = latch.clone();
        pool.submit(async move {
            latch.wait().await;
            41 + 1
        })
    };
    let b = pool.submit_blocking(|| "blocking");
    let waiter = std::thread::spawn(move || (h.wait(), b.wait()));
    latch.open();
    assert_eq!(waiter.join().unwrap(), (Ok(42), Ok("blocking")));
    // And on the test's own thread.
    assert_eq!(pool.submit(async { 7 }).wait(), Ok(7));
    let o = pool.submit(async { 9 }).outcome().wait();
    assert_eq!((o.attempts(), o.into_result()), (1, Ok(9)));
    let stopped = {
        futures_lite::future::block_on(pool.stop());
        pool.submit(async { 8 })
    };
    assert_eq!(stopped.wait(), Err(JobError::Stopped));
}

// wait() from a plain thread on a job whose worker runs on a tokio runtime.
#[test]
fn wait_from_a_plain_thread_on_a_tokio_pool() {
    let _dog = Watchdog::new(
        "wait_from_a_plain_thread_on_a_tokio_pool".into(),
        HANG_LIMIT,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let pool = Pool::builder()
        .max_workers(2)
        .spawner(move |f| {
            handle.spawn(f);
        })
        .timer(tokio::time::sleep)
        .build();
    let h = pool.submit(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        tokio::runtime::Handle::try_current().is_ok()
    });
    let on_tokio = std::thread::spawn(move || h.wait()).join().unwrap();
    assert_eq!(on_tokio, Ok(true), "the job ran on the tokio runtime");
}

// outcome() gives the record: result, name, attempts, queue wait and run
// duration, measured on the pool's clock.
rt_test!(
    outcome_reports_result_attempts_and_durations,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b.max_workers(1).clock(clock.clone()).build();
        let latch = Latch::new();
        let alive = Gauge::new();
        let blocker = {
            let (latch, alive) = (latch.clone(), alive.clone());
            pool.submit(async move {
                let _alive = alive.enter();
                latch.wait().await
            })
        };
        alive.until(|g| g.now() >= 1).await;
        let o = {
            let clock = clock.clone();
            pool.submit(async move {
                clock.advance(Duration::from_secs(3));
                "ran"
            })
            .outcome()
        };
        clock.advance(Duration::from_secs(5));
        latch.open();
        blocker.await.unwrap();
        let o = o.await;
        assert!(o.is_ok());
        assert_eq!(o.result(), Ok(&"ran"));
        assert_eq!(o.name(), None);
        assert_eq!(o.attempts(), 1);
        assert_eq!(o.queued(), Duration::from_secs(5));
        assert_eq!(o.duration(), Duration::from_secs(3));
        assert_eq!(o.into_result(), Ok("ran"));

        // A job that never started: no attempt, no run time.
        pool.stop().await;
        let o = pool.submit(async { "never" }).outcome().await;
        assert_eq!(o.error(), Some(&JobError::Stopped));
        assert_eq!((o.attempts(), o.duration()), (0, Duration::ZERO));
    }
);

// A handle awaited on another runtime (smol's block_on on one thread, a
// fresh tokio runtime on another) gets its result.
rt_test!(handle_awaited_on_another_runtime, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    let latch = Latch::new();
    let job = |v: u32| {
        let latch = latch.clone();
        pool.submit(async move {
            latch.wait().await;
            v
        })
    };
    let (on_smol, on_tokio) = (job(1), job(2));
    let (polled_tx, polled_rx) = async_channel::unbounded::<()>();
    let (done_tx, done_rx) = async_channel::unbounded();
    {
        let (polled_tx, done_tx) = (polled_tx.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let mut h = on_smol;
            assert!((&mut h).now_or_never().is_none(), "the latch is closed");
            polled_tx.send_blocking(()).unwrap();
            done_tx.send_blocking(("smol", smol::block_on(h))).unwrap();
        });
    }
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut h = on_tokio;
        assert!((&mut h).now_or_never().is_none(), "the latch is closed");
        polled_tx.send_blocking(()).unwrap();
        done_tx.send_blocking(("tokio", rt.block_on(h))).unwrap();
    });
    polled_rx.recv().await.unwrap();
    polled_rx.recv().await.unwrap();
    latch.open();
    let mut got = vec![done_rx.recv().await.unwrap(), done_rx.recv().await.unwrap()];
    got.sort_by_key(|(rt, _)| *rt);
    assert_eq!(got, vec![("smol", Ok(1)), ("tokio", Ok(2))]);
    pool.stop_wait().await;
});

/// A job named `name` that waits for `latch`, then returns `value`.
fn held(name: &str, latch: &Latch, alive: &Gauge, value: u32) -> Job<u32, ()> {
    let (latch, alive) = (latch.clone(), alive.clone());
    Job::new(move |_ctx| {
        let (latch, alive) = (latch.clone(), alive.clone());
        async move {
            let _alive = alive.enter();
            latch.wait().await;
            Ok(value)
        }
    })
    .name(name)
}

// An outcome future is checked, taken without waiting and cancelled like the
// handle it came from; a handle knows its job's name.
rt_test!(
    outcome_future_checks_takes_and_cancels_like_its_handle,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let (latch, alive) = (Latch::new(), Gauge::new());
        let running = pool.submit_job(held("running", &latch, &alive, 1));
        assert_eq!(running.name(), Some("running"));
        let mut running = running.outcome();
        alive.until(|g| g.now() >= 1).await;
        let queued = pool.submit(async { 2 });
        assert_eq!(queued.name(), None);
        let mut queued = queued.outcome();
        assert!(!running.is_finished() && !queued.is_finished());
        assert!(running.try_take().is_none() && queued.try_take().is_none());

        // Still queued: the cancel resolves it at once.
        queued.cancel();
        assert!(queued.is_finished());
        let o = queued
            .try_take()
            .expect("a cancelled queued job resolves at once");
        assert!(!o.is_ok());
        assert_eq!((o.error(), o.attempts()), (Some(&JobError::Cancelled), 0));
        assert!(queued.try_take().is_none(), "the outcome was taken twice");

        latch.open();
        let o = (&mut running).await;
        assert_eq!((o.name(), o.result()), (Some("running"), Ok(&1)));
        assert!(running.is_finished());
        assert!(running.try_take().is_none());
        assert_eq!(alive.entered(), 1, "the cancelled job started");
        pool.stop_wait().await;
    }
);

// Debug shows a handle's job name and state: whether its result is ready,
// and whether it was taken.
rt_test!(
    debug_shows_the_name_and_the_state,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let (latch, alive) = (Latch::new(), Gauge::new());
        let h = pool.submit_job(held("dbg", &latch, &alive, 5));
        let handle = |finished: bool, taken: bool| {
            format!(r#"ResultHandle {{ name: Some("dbg"), finished: {finished}, taken: {taken} }}"#)
        };
        let future =
            |finished, taken| format!("OutcomeFuture {{ handle: {} }}", handle(finished, taken));
        assert_eq!(format!("{h:?}"), handle(false, false));
        let mut o = h.outcome();
        assert_eq!(format!("{o:?}"), future(false, false));
        latch.open();
        pool.stop_wait().await; // the job has run
        assert_eq!(format!("{o:?}"), future(true, false));
        assert_eq!(o.try_take().map(|o| o.into_result()), Some(Ok(5)));
        assert_eq!(format!("{o:?}"), future(true, true));
        let unnamed = pool.submit(async {}); // refused: the pool has stopped
        assert_eq!(
            format!("{unnamed:?}"),
            "ResultHandle { name: None, finished: true, taken: false }"
        );
    }
);

/// Counts its drop in the shared counter, and says how many jobs the pool
/// had counted as succeeded at that moment.
struct Captured {
    pool: Pool,
    succeeded_at_drop: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for Captured {
    fn drop(&mut self) {
        let m = self.pool.metrics();
        self.succeeded_at_drop
            .store(m.succeeded + 1, std::sync::atomic::Ordering::SeqCst);
    }
}

// What a job captured is dropped before its handle resolves, also when the
// job succeeds (its value is stored only once the job is gone): a handle
// that has a result never races the job's destructors. The value is held
// by the job's factory, which lives as long as the job (a value moved into
// the async block would be dropped inside the poll anyway).
rt_test!(
    captured_values_are_dropped_before_the_handle_resolves,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let at_drop = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let captured = Captured {
            pool: pool.clone(),
            succeeded_at_drop: at_drop.clone(),
        };
        let h = pool.submit_job(workerpoolxt::Job::new(move |_ctx| {
            let _held = &captured;
            async { Ok::<u32, std::convert::Infallible>(7) }
        }));
        // Polled on: once it resolves, the drop has run, before the job was
        // counted (the count comes with the result).
        assert_eq!(within(Duration::from_secs(5), h).await, Some(Ok(7)));
        assert_eq!(at_drop.load(std::sync::atomic::Ordering::SeqCst), 1);
        pool.stop_wait().await;
    }
);

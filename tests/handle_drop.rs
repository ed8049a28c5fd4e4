//! Dropping a handle abandons the result, never the job: the job runs to its
//! end, keeps its slot until then, and its side effects happen.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use workerpoolxt::Builder;

// A dropped handle's future is polled to completion, keeps the only slot
// while blocked, and the next job starts only after it finished.
rt_test!(
    dropped_async_handle_keeps_its_slot_and_runs_to_the_end,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let latch = Latch::new();
        let first_alive = Gauge::new();
        let side_effect = Arc::new(AtomicBool::new(false));
        let (fut, counts) = {
            let (latch, first_alive, side_effect) =
                (latch.clone(), first_alive.clone(), side_effect.clone());
            counted(async move {
                let _alive = first_alive.enter();
                latch.wait().await;
                side_effect.store(true, Ordering::SeqCst);
            })
        };
        let first = pool.submit(fut);
        first_alive.until(|g| g.now() >= 1).await;
        // Dropped while the job runs, blocked on the latch.
        drop(first);

        let second_alive = Gauge::new();
        let second = {
            let (second_alive, side_effect) = (second_alive.clone(), side_effect.clone());
            pool.submit(async move {
                let _alive = second_alive.enter();
                side_effect.load(Ordering::SeqCst)
            })
        };
        yields(100).await;
        // The first job is blocked and still holds the slot: the second waits.
        assert_eq!(
            second_alive.entered(),
            0,
            "second job started beside a dropped-handle job"
        );
        assert_eq!(pool.running(), 1);
        assert_eq!(pool.waiting(), 1);
        assert_eq!(counts.drops(), 0, "dropping the handle dropped the job");

        latch.open();
        assert_eq!(
            second.await,
            Ok(true),
            "second job started before the first's side effect"
        );
        assert!(side_effect.load(Ordering::SeqCst));
        assert_eq!(
            counts.completions(),
            1,
            "the abandoned future ran to completion"
        );
        assert_eq!(counts.drops(), 1);
        assert_eq!(first_alive.now(), 0);
        let m = pool.metrics();
        assert_eq!(
            (m.succeeded, m.cancelled),
            (2, 0),
            "dropping the handle cancelled the job"
        );
        pool.stop_wait().await;
    },
    async_std
);

// The same for a blocking closure: dropped handle, closure runs on and holds
// the slot; the next job starts after it returned.
rt_test!(
    dropped_blocking_handle_keeps_its_slot_and_runs_to_the_end,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let latch = Latch::new();
        let first_alive = Gauge::new();
        let side_effect = Arc::new(AtomicBool::new(false));
        let first = {
            let (latch, first_alive, side_effect) =
                (latch.clone(), first_alive.clone(), side_effect.clone());
            pool.submit_blocking(move || {
                let _alive = first_alive.enter();
                latch.wait_blocking();
                side_effect.store(true, Ordering::SeqCst);
            })
        };
        first_alive.until(|g| g.now() >= 1).await;
        // Dropped while the closure runs, blocked on the latch.
        drop(first);

        let second_alive = Gauge::new();
        let second = {
            let (second_alive, side_effect) = (second_alive.clone(), side_effect.clone());
            pool.submit_blocking(move || {
                let _alive = second_alive.enter();
                side_effect.load(Ordering::SeqCst)
            })
        };
        yields(100).await;
        assert_eq!(
            second_alive.entered(),
            0,
            "second job started beside a dropped-handle closure"
        );
        assert_eq!(pool.running(), 1);
        assert_eq!(pool.waiting(), 1);

        latch.open();
        assert_eq!(
            second.await,
            Ok(true),
            "second job started before the first closure returned"
        );
        assert!(side_effect.load(Ordering::SeqCst));
        assert_eq!(first_alive.now(), 0);
        let m = pool.metrics();
        assert_eq!(
            (m.succeeded, m.cancelled),
            (2, 0),
            "dropping the handle cancelled the job"
        );
        pool.stop_wait().await;
    }
);

// Many abandoned jobs, futures and closures, all run once: stop_wait sees
// every side effect, and no future is dropped unfinished.
rt_test!(many_dropped_handles_all_run_once, |b: Builder| async move {
    let pool = b.max_workers(3).build();
    let ran = Arc::new(AtomicUsize::new(0));
    let mut all_counts = Vec::new();
    for i in 0..100 {
        let ran = ran.clone();
        if i % 2 == 0 {
            let (fut, counts) = counted(async move {
                futures_lite::future::yield_now().await;
                ran.fetch_add(1, Ordering::SeqCst);
            });
            all_counts.push(counts);
            drop(pool.submit(fut));
        } else {
            drop(pool.submit_blocking(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }));
        }
    }
    pool.stop_wait().await;
    assert_eq!(ran.load(Ordering::SeqCst), 100);
    for c in &all_counts {
        assert_eq!((c.completions(), c.drops()), (1, 1));
    }
    assert_eq!(pool.metrics().succeeded, 100);
});

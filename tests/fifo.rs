//! Jobs start in submission order (one worker makes the order observable).

mod common;
use common::*;

use std::sync::{Arc, Mutex};

use workerpoolxt::Builder;

const JOBS: usize = 200;

// 200 futures queued behind a blocked job start in submission order.
rt_test!(
    async_jobs_start_in_submission_order,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
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
        let order = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..JOBS)
            .map(|i| {
                let order = order.clone();
                pool.submit(async move {
                    order.lock().unwrap().push(i);
                    // Give a wrongly started second job a chance to interleave.
                    futures_lite::future::yield_now().await;
                    i
                })
            })
            .collect();
        // All queued before any starts, so the order is the queue's alone.
        assert_eq!(pool.waiting(), JOBS);
        latch.open();
        blocker.await.unwrap();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i));
        }
        assert_eq!(*order.lock().unwrap(), (0..JOBS).collect::<Vec<_>>());
        pool.stop_wait().await;
    },
    async_std
);

// 200 blocking closures queued behind a blocked one start in submission order.
rt_test!(
    blocking_jobs_start_in_submission_order,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let latch = Latch::new();
        let alive = Gauge::new();
        let blocker = {
            let (latch, alive) = (latch.clone(), alive.clone());
            pool.submit_blocking(move || {
                let _alive = alive.enter();
                latch.wait_blocking()
            })
        };
        alive.until(|g| g.now() >= 1).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..JOBS)
            .map(|i| {
                let order = order.clone();
                pool.submit_blocking(move || {
                    order.lock().unwrap().push(i);
                    i
                })
            })
            .collect();
        assert_eq!(pool.waiting(), JOBS);
        latch.open();
        blocker.await.unwrap();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i));
        }
        assert_eq!(*order.lock().unwrap(), (0..JOBS).collect::<Vec<_>>());
        pool.stop_wait().await;
    }
);

// Futures and closures mixed in one queue keep their common order.
rt_test!(
    mixed_jobs_start_in_submission_order,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
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
        let order = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..JOBS)
            .map(|i| {
                let order = order.clone();
                if i % 2 == 0 {
                    pool.submit(async move { order.lock().unwrap().push(i) })
                } else {
                    pool.submit_blocking(move || order.lock().unwrap().push(i))
                }
            })
            .collect();
        latch.open();
        blocker.await.unwrap();
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..JOBS).collect::<Vec<_>>());
        pool.stop_wait().await;
    }
);

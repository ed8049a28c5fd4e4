//! Blocking closures never run on an executor thread: the threads that poll
//! async jobs and the threads that run blocking closures are disjoint, on
//! every runtime.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use workerpoolxt::Builder;

rt_test!(
    blocking_closures_run_off_the_executor_threads,
    |b: Builder| async move {
        let pool = b.max_workers(4).build();
        let polled: Arc<Mutex<HashSet<ThreadId>>> = Arc::default();
        let blocked: Arc<Mutex<HashSet<ThreadId>>> = Arc::default();
        let mut handles = Vec::new();
        for _ in 0..50 {
            let polled = polled.clone();
            handles.push(pool.submit(async move {
                // Yield once so the job is polled again, possibly elsewhere.
                polled.lock().unwrap().insert(std::thread::current().id());
                futures_lite::future::yield_now().await;
                polled.lock().unwrap().insert(std::thread::current().id());
            }));
            let blocked = blocked.clone();
            handles.push(pool.submit_blocking(move || {
                blocked.lock().unwrap().insert(std::thread::current().id());
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        {
            let (polled, blocked) = (polled.lock().unwrap(), blocked.lock().unwrap());
            assert!(!polled.is_empty() && !blocked.is_empty());
            assert!(
                polled.is_disjoint(&blocked),
                "a blocking closure ran on a thread that polls async jobs"
            );
        }
        pool.stop_wait().await;
    },
    async_std
);

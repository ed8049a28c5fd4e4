//! A worker that runs a long queue of jobs that finish at once still gives
//! its thread back now and then: on tokio's current-thread runtime, another
//! task gets to run while the queue drains.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use workerpoolxt::Pool;

#[test]
fn a_long_queue_does_not_starve_the_other_tasks_of_a_current_thread_runtime() {
    let _dog = Watchdog::new("fairness".into(), HANG_LIMIT);
    const JOBS: usize = 10_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let handle = tokio::runtime::Handle::current();
        let pool = Pool::builder()
            .max_workers(1)
            .spawner(move |f| {
                handle.spawn(f);
            })
            .build();
        let done = Arc::new(AtomicUsize::new(0));
        let seen_midway = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (done, seen_midway) = (done.clone(), seen_midway.clone());
            tokio::spawn(async move {
                loop {
                    let d = done.load(Ordering::SeqCst);
                    if d > 0 && d < JOBS {
                        seen_midway.store(true, Ordering::SeqCst);
                    }
                    if d == JOBS {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        let handles: Vec<_> = (0..JOBS)
            .map(|_| {
                let done = done.clone();
                pool.submit(async move {
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        watcher.await.unwrap();
        assert!(
            seen_midway.load(Ordering::SeqCst),
            "the other task never ran while the queue drained"
        );
        pool.stop_wait().await;
    });
}

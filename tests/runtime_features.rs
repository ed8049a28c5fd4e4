//! The one-line runtime conveniences of the `tokio` and `smol` features.
#![cfg(any(feature = "tokio", feature = "smol"))]

mod common;
use common::*;

use std::time::Duration;

use workerpoolxt::{Job, JobError, Pool};

// Builder::tokio() runs the workers on the current runtime (jobs can use its
// timers) and times out with tokio's timer.
#[cfg(feature = "tokio")]
#[test]
fn builder_tokio_runs_workers_on_the_current_runtime() {
    let _dog = Watchdog::new("builder_tokio".into(), HANG_LIMIT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = Pool::builder().max_workers(2).tokio().build();
        let on_tokio = pool.submit(async {
            // Only works on a tokio runtime with timers.
            tokio::time::sleep(Duration::from_millis(1)).await;
            tokio::runtime::Handle::try_current().is_ok()
        });
        assert_eq!(on_tokio.await, Ok(true));
        let slow = Job::new(|_ctx| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, ()>(())
        })
        .timeout(Duration::from_millis(5));
        assert_eq!(pool.submit_job(slow).await, Err(JobError::TimedOut));
        pool.stop_wait().await;
    });
}

// Builder::smol() runs the workers on smol's global executor.
#[cfg(feature = "smol")]
#[test]
fn builder_smol_runs_workers_on_smols_executor() {
    let _dog = Watchdog::new("builder_smol".into(), HANG_LIMIT);
    smol::block_on(async {
        let pool = Pool::builder().max_workers(2).smol().build();
        let name = pool.submit(async {
            smol::Timer::after(Duration::from_millis(1)).await;
            std::thread::current().name().map(str::to_owned)
        });
        let name = name.await.unwrap();
        assert!(
            !name.as_deref().unwrap_or("").starts_with("workerpoolxt-"),
            "ran on the embedded executor ({name:?}), not smol's"
        );
        pool.stop_wait().await;
    });
}

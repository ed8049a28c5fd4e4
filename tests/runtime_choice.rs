//! Where a pool runs its workers: `Pool::new` inside a tokio runtime (the
//! `tokio` feature), `Builder::embedded`, `Runtime::tokio` from outside the
//! runtime, `Runtime::smol`, and a library that takes a `Runtime` from its
//! caller. A job reports where it ran: inside a tokio runtime or not, and
//! on which thread.

mod common;
use common::*;

use std::time::Duration;

#[cfg(feature = "tokio")]
use workerpoolxt::Job;
use workerpoolxt::{JobError, Pool, Runtime};

/// Where a job ran.
#[derive(Debug)]
#[allow(dead_code)]
struct Place {
    /// Inside a tokio runtime (its context entered).
    tokio: bool,
    /// The thread's name.
    thread: String,
}

/// A job that reports where it ran.
async fn place() -> Place {
    Place {
        tokio: tokio::runtime::Handle::try_current().is_ok(),
        thread: std::thread::current().name().unwrap_or_default().to_owned(),
    }
}

fn on_embedded(p: &Place) -> bool {
    !p.tokio && p.thread.starts_with("workerpoolxt-")
}

/// The name of the threads of [`tokio_runtime`]'s multi-thread runtime.
#[cfg(feature = "tokio")]
const TOKIO_THREAD: &str = "choice-tokio";

/// A tokio runtime of either flavour, with every driver.
#[cfg(feature = "tokio")]
fn tokio_runtime(multi: bool) -> tokio::runtime::Runtime {
    if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(TOKIO_THREAD)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("tokio runtime")
}

// Pool::new inside a tokio runtime runs its workers there: a job can use
// tokio's timer (on the embedded executor it would panic: no reactor).
#[cfg(feature = "tokio")]
mod pool_new_inside_tokio {
    #[test]
    fn multi_thread() {
        super::pool_new_inside_tokio(true);
    }

    #[test]
    fn current_thread() {
        super::pool_new_inside_tokio(false);
    }
}

#[cfg(feature = "tokio")]
fn pool_new_inside_tokio(multi: bool) {
    let _dog = Watchdog::new(format!("pool_new_inside_tokio multi={multi}"), HANG_LIMIT);
    tokio_runtime(multi).block_on(async {
        let pool = Pool::new(2);
        let job = pool.submit(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            place().await
        });
        let p = job.await.expect("a job using tokio::time::sleep");
        assert!(p.tokio, "{p:?}");
        if multi {
            assert_eq!(p.thread, TOKIO_THREAD, "{p:?}");
        } else {
            // A current-thread runtime runs its tasks on the thread that
            // drives it: this one.
            assert_eq!(Some(p.thread.as_str()), std::thread::current().name());
        }
        pool.stop_wait().await;
    });
}

// The same as an application writes it.
#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_new_under_tokio_test_multi_thread() {
    let _dog = Watchdog::new("pool_new_under_tokio_test_multi_thread".into(), HANG_LIMIT);
    let pool = Pool::new(2);
    let job = pool.submit(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        "slept on tokio"
    });
    assert_eq!(job.await, Ok("slept on tokio"));
    pool.stop_wait().await;
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "current_thread")]
async fn pool_new_under_tokio_test_current_thread() {
    let _dog = Watchdog::new(
        "pool_new_under_tokio_test_current_thread".into(),
        HANG_LIMIT,
    );
    let pool = Pool::new(2);
    let job = pool.submit(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        std::thread::current().id()
    });
    // A current-thread runtime runs its tasks on the thread that drives it.
    assert_eq!(job.await, Ok(std::thread::current().id()));
    pool.stop_wait().await;
}

// On a runtime without timers the pool chosen by Pool::new still times its
// jobs out (its own timer is not tokio's): the job resolves TimedOut, not
// Panicked with tokio's "timers are disabled".
#[cfg(feature = "tokio")]
#[test]
fn pool_new_on_tokio_without_timers_still_times_out() {
    let _dog = Watchdog::new("pool_new_without_timers".into(), HANG_LIMIT);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let pool = Pool::new(1);
        let inside = pool.submit(place());
        assert!(inside.await.unwrap().tokio);
        let never = Job::new(|_ctx| std::future::pending::<Result<(), ()>>())
            .timeout(Duration::from_millis(5));
        assert_eq!(pool.submit_job(never).await, Err(JobError::TimedOut));
        pool.stop_wait().await;
    });
}

// A pool keeps the runtime it detected: once that runtime is gone it runs
// no worker, and a job submitted then resolves Stopped when the pool stops
// (as Runtime::current's docs say), rather than waiting for ever.
#[cfg(feature = "tokio")]
#[test]
fn a_pool_outliving_its_detected_runtime_stops_its_jobs() {
    let _dog = Watchdog::new("outliving_its_runtime".into(), HANG_LIMIT);
    let rt = tokio_runtime(true);
    let pool = rt.block_on(async {
        let pool = Pool::new(1);
        assert!(pool.submit(place()).await.unwrap().tokio);
        pool
    });
    drop(rt);
    let late = pool.submit(async { 1 });
    assert!(!late.is_finished());
    futures_lite::future::block_on(pool.stop());
    assert_eq!(late.wait(), Err(JobError::Stopped));
}

// Builder::embedded() inside tokio keeps the embedded executor.
#[test]
fn builder_embedded_inside_tokio_uses_the_embedded_executor() {
    let _dog = Watchdog::new("builder_embedded".into(), HANG_LIMIT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let pool = Pool::builder().max_workers(2).embedded().build();
        let p = pool.submit(place()).await.unwrap();
        assert!(on_embedded(&p), "{p:?}");
        pool.stop_wait().await;
    });
}

// Without the feature, Pool::new inside tokio uses the embedded executor:
// a job that uses tokio's timer fails as Pool::new's docs say.
#[cfg(not(feature = "tokio"))]
#[test]
fn without_the_feature_pool_new_inside_tokio_is_embedded() {
    let _dog = Watchdog::new("without_the_feature".into(), HANG_LIMIT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let pool = Pool::new(2);
        let p = pool.submit(place()).await.unwrap();
        assert!(on_embedded(&p), "{p:?}");
        let sleeper = pool.submit(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
        });
        match sleeper.await {
            Err(JobError::Panicked(p)) => {
                assert!(p.message().contains("no reactor running"), "{p}")
            }
            other => panic!("expected tokio's panic, got {other:?}"),
        }
        pool.stop_wait().await;
    });
}

// Outside any runtime, Pool::new and Runtime::current are the embedded
// executor, with or without the feature.
#[test]
fn outside_a_runtime_the_pool_is_embedded() {
    let _dog = Watchdog::new("outside_a_runtime".into(), HANG_LIMIT);
    let pool = Pool::new(2);
    let p = pool.submit(place()).wait().unwrap();
    assert!(on_embedded(&p), "{p:?}");
    let pool = Pool::builder().runtime(Runtime::current()).build();
    let p = pool.submit(place()).wait().unwrap();
    assert!(on_embedded(&p), "{p:?}");
    assert_eq!(format!("{:?}", Runtime::current()), "Runtime(embedded)");
}

// Runtime::tokio(handle): built and waited on from a plain thread outside
// the runtime, the jobs run on the runtime.
#[cfg(feature = "tokio")]
#[test]
fn runtime_tokio_from_a_plain_thread() {
    let _dog = Watchdog::new("runtime_tokio_from_a_plain_thread".into(), HANG_LIMIT);
    let rt = tokio_runtime(true);
    assert!(tokio::runtime::Handle::try_current().is_err());
    let runtime = Runtime::tokio(rt.handle().clone());
    assert_eq!(format!("{runtime:?}"), "Runtime(tokio)");
    let pool = Pool::builder().max_workers(2).runtime(runtime).build();
    let job = pool.submit(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        place().await
    });
    let p = job.wait().expect("a job using tokio::time::sleep");
    assert!(p.tokio, "{p:?}");
    assert_eq!(p.thread, TOKIO_THREAD, "{p:?}");
}

// Runtime::smol(): the workers run on smol's global executor.
#[cfg(feature = "smol")]
#[test]
fn runtime_smol_runs_on_smols_executor() {
    let _dog = Watchdog::new("runtime_smol".into(), HANG_LIMIT);
    smol::block_on(async {
        let pool = Pool::builder()
            .max_workers(2)
            .runtime(Runtime::smol())
            .build();
        let job = pool.submit(async {
            smol::Timer::after(Duration::from_millis(1)).await;
            place().await
        });
        let p = job.await.unwrap();
        assert!(p.thread.starts_with("smol-"), "{p:?}");
        pool.stop_wait().await;
    });
}

// The last choice wins: a runtime replaces an earlier spawner, and a
// spawner an earlier runtime.
#[test]
fn the_last_runtime_choice_wins() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let _dog = Watchdog::new("the_last_runtime_choice_wins".into(), HANG_LIMIT);
    let calls = Arc::new(AtomicUsize::new(0));
    let counting = {
        let calls = calls.clone();
        move |f: workerpoolxt::BoxFuture<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || futures_lite::future::block_on(f));
        }
    };
    let pool = Pool::builder()
        .max_workers(1)
        .spawner(counting.clone())
        .embedded()
        .build();
    let p = pool.submit(place()).wait().unwrap();
    assert!(on_embedded(&p), "{p:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let pool = Pool::builder()
        .max_workers(1)
        .runtime(Runtime::embedded())
        .spawner(counting)
        .build();
    let p = pool.submit(place()).wait().unwrap();
    assert!(!p.thread.starts_with("workerpoolxt-"), "{p:?}");
    assert!(calls.load(Ordering::SeqCst) >= 1);
}

/// A library that embeds a pool and takes the runtime from its caller.
#[cfg(all(feature = "tokio", feature = "smol"))]
mod library {
    use workerpoolxt::{Pool, Runtime};

    pub struct Squares {
        pool: Pool,
    }

    impl Squares {
        pub fn new(rt: Runtime) -> Squares {
            Squares {
                pool: Pool::builder().max_workers(2).runtime(rt).build(),
            }
        }

        /// The squares of `0..n`, each a job, and where the first one ran.
        pub async fn squares(&self, n: u64) -> (Vec<u64>, super::Place) {
            let first = self.pool.submit(super::place());
            let handles: Vec<_> = (0..n)
                .map(|i| self.pool.submit(async move { i * i }))
                .collect();
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            (out, first.await.unwrap())
        }
    }
}

#[cfg(all(feature = "tokio", feature = "smol"))]
#[test]
fn a_library_taking_a_runtime_from_tokio_and_from_smol() {
    let _dog = Watchdog::new("a_library_taking_a_runtime".into(), HANG_LIMIT);
    let want: Vec<u64> = (0..10).map(|i| i * i).collect();

    let (got, p) = tokio_runtime(true)
        .block_on(async { library::Squares::new(Runtime::current()).squares(10).await });
    assert_eq!(got, want);
    assert!(p.tokio && p.thread == TOKIO_THREAD, "{p:?}");

    let (got, p) =
        smol::block_on(async { library::Squares::new(Runtime::smol()).squares(10).await });
    assert_eq!(got, want);
    assert!(!p.tokio && p.thread.starts_with("smol-"), "{p:?}");
}

//! No job waits behind another job's poll while a worker and an executor
//! thread are free: the wake-up protocol has no blind spot and no time
//! window (`src/scheduler.rs`).
//!
//! Each case holds one executor thread with a job that computes inside a
//! single poll (a busy loop, no `.await`), then checks that the jobs
//! submitted around it start on the other thread at once: how long each
//! waited from its submit to its first poll, and how many ran at once.
//!
//! Only runtimes with two executor threads or more can run a job beside one
//! that holds its thread: the embedded executor (on a machine with two
//! cores or more), tokio's multi-thread runtime and async-std. Tokio's
//! current-thread runtime and smol (driven here by the test's own thread)
//! have one, and skip. The bounds are generous (tens of milliseconds
//! against a held thread of hundreds), and the cases run one at a time in
//! this binary, since they hold the machine's threads on purpose.

mod common;

use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use workerpoolxt::{Builder, Pool};

/// These cases hold executor threads on purpose: two at once would hold
/// every thread of the machine. One at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn two_threads_or_more(rt: Rt) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        eprintln!("SKIPPED on {rt:?}: one core, so one executor thread");
        return false;
    }
    true
}

/// Runs `body` on `rt`, one case at a time.
fn run<F, Fut>(rt: Rt, name: &str, body: F)
where
    F: FnOnce(Builder) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if !two_threads_or_more(rt) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    rt.run(name, body);
}

/// Holds the calling thread for `d` (a job's poll that computes).
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A pool of `n` whose workers are all started and asleep (a warm pool):
/// `n` jobs that wait for each other, so that every worker takes one.
async fn warm_pool(b: Builder, n: usize) -> Pool {
    let pool = b.max_workers(n).keep_idle_workers().build();
    let (gauge, latch) = (Gauge::new(), Latch::new());
    let handles: Vec<_> = (0..n)
        .map(|_| pool.submit(blocker(&gauge, &latch)))
        .collect();
    within(Duration::from_secs(5), gauge.until(|g| g.now() == n))
        .await
        .expect("every worker started");
    latch.open();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(pool.workers(), n);
    // The workers look at the empty queue for a while, then sleep.
    settle().await;
    pool
}

/// Submits a job that records when it was first polled; returns the time
/// from its submit to that poll through the handle.
fn timed_trivial(pool: &Pool) -> workerpoolxt::ResultHandle<Duration> {
    let submitted = Instant::now();
    pool.submit(async move { submitted.elapsed() })
}

/// Submits a job that holds its thread for 300 ms inside one poll, and
/// returns once it has started.
fn start_held_job(pool: &Pool) -> workerpoolxt::ResultHandle<()> {
    let (started_tx, started_rx) = mpsc::channel();
    let held = pool.submit(async move {
        started_tx.send(()).unwrap();
        spin(Duration::from_millis(300));
    });
    started_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the held job started");
    held
}

/// A trivial job submitted 0, 20, 100 or 300 µs after a job that holds its
/// thread for 300 ms starts at once, on the other thread, on a warm pool.
async fn a_job_behind_a_held_poll_starts_at_once(b: Builder) {
    let pool = warm_pool(b, 4).await;
    for delay_us in [0u64, 20, 100, 300] {
        let held = pool.submit(async { spin(Duration::from_millis(300)) });
        spin(Duration::from_micros(delay_us));
        let waited = timed_trivial(&pool).await.unwrap();
        assert!(
            waited < Duration::from_millis(20),
            "{delay_us} µs after the held poll: the job waited {waited:?}"
        );
        held.await.unwrap();
    }
    pool.stop_wait().await;
}

/// 20 jobs submitted while a job holds its thread for 300 ms all start
/// within 50 ms of their submit.
async fn a_burst_during_a_held_poll_starts_at_once(b: Builder) {
    let pool = warm_pool(b, 4).await;
    let held = start_held_job(&pool);
    let burst: Vec<_> = (0..20).map(|_| timed_trivial(&pool)).collect();
    for (i, h) in burst.into_iter().enumerate() {
        let waited = h.await.unwrap();
        assert!(
            waited < Duration::from_millis(50),
            "job {i} of the burst waited {waited:?}"
        );
    }
    held.await.unwrap();
    pool.stop_wait().await;
}

/// 16 jobs that each hold their thread for 10 ms, on a warm pool of 4: two
/// run at once (one per executor thread), and all are done within 1.5× the
/// ideal (16 × 10 ms over 2 threads = 80 ms).
async fn a_burst_of_thread_holding_jobs_uses_both_threads(b: Builder) {
    let pool = warm_pool(b, 4).await;
    let gauge = Gauge::new();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let gauge = gauge.clone();
            pool.submit(async move {
                let _in = gauge.enter();
                spin(Duration::from_millis(10));
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let took = t0.elapsed();
    assert_eq!(gauge.max(), 2, "jobs at once (one per executor thread)");
    assert!(
        took < Duration::from_millis(120),
        "16 × 10 ms on 2 threads took {took:?} (ideal 80 ms)"
    );
    pool.stop_wait().await;
}

/// A job that holds one thread for 300 ms does not slow the jobs that
/// follow each other on the other thread: 30 trivial jobs, each submitted
/// when the one before has finished, all run while it holds its thread.
async fn a_held_poll_never_delays_the_jobs_after_it(b: Builder) {
    let pool = warm_pool(b, 4).await;
    let held = start_held_job(&pool);
    for i in 0..30 {
        let waited = timed_trivial(&pool).await.unwrap();
        assert!(
            waited < Duration::from_millis(20),
            "job {i} after the held poll waited {waited:?}"
        );
    }
    assert!(
        !held.is_finished(),
        "the 30 jobs ran while the held job held its thread"
    );
    held.await.unwrap();
    pool.stop_wait().await;
}

macro_rules! on_threaded_runtimes {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[test]
            fn no_runtime() {
                run(Rt::None, stringify!($name), $name);
            }
            #[test]
            fn tokio_multi() {
                run(Rt::TokioMulti, stringify!($name), $name);
            }
            #[test]
            fn async_std() {
                run(Rt::AsyncStd, stringify!($name), $name);
            }
        }
    };
}

on_threaded_runtimes!(a_job_behind_a_held_poll_starts_at_once);
on_threaded_runtimes!(a_burst_during_a_held_poll_starts_at_once);
on_threaded_runtimes!(a_burst_of_thread_holding_jobs_uses_both_threads);
on_threaded_runtimes!(a_held_poll_never_delays_the_jobs_after_it);

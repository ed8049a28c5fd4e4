//! Micro-benchmarks: what one operation of the pool costs, one at a time
//! (where `compare` measures throughput against the peers).
//!
//! Each line is the median of 7 rounds, with the min–max, in nanoseconds
//! per operation:
//!
//! ```text
//! cargo bench --bench micro            # every operation at full size
//! cargo bench --bench micro -- smoke   # tiny sizes (CI): runs, checks results
//! ```
//!
//! - `submit+await`: one job submitted and awaited before the next, on a pool
//!   of one worker: the round trip to a worker thread and back (a wake-up
//!   each way, unless the worker is still looking at the queue), not the
//!   throughput of a stream of jobs. The two indented lines are yardsticks
//!   on the same machine: a task spawned on a 2-thread tokio runtime and on
//!   an async-executor thread, awaited from outside. Round trips on a VM
//!   depend on how soon a parked thread runs again: read their min–max.
//! - `submit+await timeout`: the same job as a `Job` with a timeout it never
//!   reaches: what registering and leaving a deadline adds.
//! - `try_take`: taking the result of a job that has finished.
//! - `cancel queued`: cancelling a queued job (it resolves at once) and
//!   taking its result.
//! - `submit+drop queued`: submitting a job and dropping its handle while the
//!   job waits in the queue.
//! - `submit, paused`: W1's submit on one thread: jobs submitted to a paused
//!   pool of 64 workers (nothing runs, no worker competes for a core), every
//!   handle kept, so each cell is fresh memory as in W1. `BENCHMARKS.md`
//!   breaks this cost down.
//! - `await finished`: W1's await on one thread: awaiting those jobs once
//!   they have all run (the result moved out, the cell freed).
//! - `jobs(), 1,000 queued`: a `Pool::jobs` snapshot of a pool of 4
//!   workers, each running a job that waits, with 1,000 jobs queued behind
//!   them: the queue walked under its pop lock, each worker's job read, the
//!   list of 1,004 built and sorted.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use workerpoolxt::{Job, JobError, Pool, ResultHandle};

const ROUNDS: usize = 7;

/// Runs `op` `iters` times per round, after one round of warm-up; prints
/// the median, min and max ns per operation.
fn measure(name: &str, iters: u64, mut op: impl FnMut(u64)) {
    let mut per_op = Vec::with_capacity(ROUNDS);
    for round in 0..=ROUNDS {
        let t = Instant::now();
        for i in 0..iters {
            op(i);
        }
        if round > 0 {
            per_op.push(t.elapsed().as_nanos() as f64 / iters as f64);
        }
    }
    per_op.sort_by(f64::total_cmp);
    println!(
        "{name:<30} {:>9.1} ns/op  (min {:.1}, max {:.1}, {iters} ops x {ROUNDS} rounds)",
        per_op[ROUNDS / 2],
        per_op[0],
        per_op[ROUNDS - 1]
    );
}

/// A pool of one worker whose worker is held by a job until the returned
/// sender is dropped: what is submitted meanwhile stays queued.
fn held_pool() -> (Pool, std::sync::mpsc::Sender<()>) {
    let pool = Pool::new(1);
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    drop(pool.submit_blocking(move || {
        started_tx.send(()).unwrap();
        let _ = held.recv();
    }));
    started.recv().unwrap();
    (pool, release)
}

fn main() {
    let smoke = std::env::args().any(|a| a == "smoke");
    let n = |full: u64| if smoke { 50 } else { full };

    let pool = Pool::new(1);
    measure("submit+await", n(20_000), |i| {
        assert_eq!(block_on(pool.submit(async move { black_box(i) })), Ok(i));
    });
    measure("submit+await timeout", n(20_000), |i| {
        let job = Job::new(move |_ctx| async move { Ok::<_, Infallible>(black_box(i)) })
            .timeout(Duration::from_secs(60));
        assert_eq!(block_on(pool.submit_job(job)), Ok(i));
    });

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    measure("  tokio spawn+await", n(20_000), |i| {
        assert_eq!(
            block_on(tokio.spawn(async move { black_box(i) })).unwrap(),
            i
        );
    });
    drop(tokio);
    let ex = std::sync::Arc::new(async_executor::Executor::new());
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let runner = {
        let ex = ex.clone();
        std::thread::spawn(move || block_on(ex.run(async move { stopped.recv().await })))
    };
    measure("  async-executor spawn+await", n(20_000), |i| {
        assert_eq!(block_on(ex.spawn(async move { black_box(i) })), i);
    });
    drop(stop);
    let _ = runner.join();
    // Results that are ready: the jobs ran before the timed loop.
    let batch = n(100_000);
    let mut done: Vec<ResultHandle<u64>> =
        (0..batch).map(|i| pool.submit(async move { i })).collect();
    block_on(pool.stop_wait());
    let mut next = done.iter_mut().zip(0u64..);
    measure("try_take", batch / (ROUNDS as u64 + 1), |_| {
        let (h, i) = next.next().expect("enough finished handles");
        assert_eq!(h.try_take(), Some(Ok(i)));
    });
    drop(done);

    let pool = Pool::new(64);
    let pause = pool.pause();
    let per_round = n(125_000);
    let mut kept: Vec<ResultHandle<u64>> =
        Vec::with_capacity((per_round * (ROUNDS as u64 + 1)) as usize);
    measure("submit, paused", per_round, |i| {
        kept.push(pool.submit(async move { black_box(i) }));
    });
    drop(pause);
    block_on(pool.stop_wait());
    let mut next = kept.into_iter();
    // Polled with a no-op waker, as an `.await` in a loop polls a ready
    // handle (no `block_on` per job).
    let mut cx = Context::from_waker(Waker::noop());
    measure("await finished", per_round, |_| {
        let mut h = next.next().expect("enough finished handles");
        assert!(matches!(Pin::new(&mut h).poll(&mut cx), Poll::Ready(Ok(_))));
    });

    let (held, release) = held_pool();
    measure("cancel queued", n(100_000), |i| {
        let mut h = held.submit(async move { i });
        h.cancel();
        assert_eq!(h.try_take(), Some(Err(JobError::Cancelled)));
    });
    measure("submit+drop queued", n(100_000), |i| {
        drop(held.submit(async move { i }));
    });
    drop(release);
    block_on(held.stop_wait());

    let pool = Pool::new(4);
    let (open, gate) = async_channel::bounded::<()>(1);
    let running: Vec<_> = (0..4)
        .map(|_| {
            let gate = gate.clone();
            pool.submit(async move { gate.recv().await.is_err() })
        })
        .collect();
    while pool.running() < 4 {
        std::thread::yield_now();
    }
    let queued: Vec<ResultHandle<u64>> =
        (0..1_000).map(|i| pool.submit(async move { i })).collect();
    measure("jobs(), 1,000 queued", n(2_000), |_| {
        assert_eq!(black_box(pool.jobs()).len(), 1_004);
    });
    drop(open);
    for h in running {
        assert_eq!(block_on(h), Ok(true));
    }
    drop(queued);
    block_on(pool.stop_wait());
}

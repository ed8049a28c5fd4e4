//! A pool in a plain program — no runtime, no `async fn main`.
//!
//! Blocking jobs run on the pool's blocking threads; the program waits for
//! results with `wait()`, cancels one job from another thread with a
//! `CancelHandle`, collects a `ResultSet` with `wait_all()`, and ends with
//! `Stop::wait()`.
//!
//! Run with `cargo run --example sync`. It ends by itself in well under a
//! second.

use std::time::Duration;

use workerpoolxt::{Job, JobError, Pool, ResultSet};

fn main() {
    let pool = Pool::new(4);

    // One job, one result.
    let sum = pool.submit_blocking(|| (1..=1_000u64).sum::<u64>());
    println!("sum: {:?}", sum.wait());

    // A long job, cancelled from another thread; it looks at its context.
    let long = pool.submit_job(Job::blocking(|ctx| {
        while !ctx.is_cancelled() {
            std::thread::sleep(Duration::from_millis(2));
        }
        Err::<(), _>("stopped early")
    }));
    let canceller = long.cancel_handle();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        canceller.cancel();
    });
    let long_result = long.wait();
    println!("long job: {long_result:?}");
    assert_eq!(long_result, Err(JobError::Cancelled));

    // Many jobs, collected in submission order.
    let words = ["sync", "programs", "need", "no", "runtime"];
    let set: ResultSet<usize, String> = words
        .iter()
        .map(|w| {
            let word = w.to_string();
            pool.submit_job(Job::blocking_once(move |_ctx| Ok(word.len())).name(*w))
        })
        .collect();
    for outcome in set.wait_all() {
        println!(
            "  {:<8} -> {:?}",
            outcome.name().unwrap_or("?"),
            outcome.result()
        );
    }

    // Run what is queued, then wait for every worker to leave.
    pool.stop_wait().wait();
    println!("stopped: {} jobs finished", pool.metrics().finished());
}

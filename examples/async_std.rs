//! The pool on async-std: workers spawned as async-std tasks.
//!
//! Run with `cargo run --example async_std`. It ends by itself at once.

use std::time::Duration;

use workerpoolxt::{Job, Pool, ResultSet};

#[async_std::main]
async fn main() {
    let pool = Pool::builder()
        .max_workers(4)
        .spawner(|f| {
            async_std::task::spawn(f);
        })
        .build();

    // Jobs can use async-std's timers and I/O: they run on its executor.
    let results: ResultSet<String, std::io::Error> = (1..=5u64)
        .map(|i| {
            pool.submit_job(
                Job::new(move |_ctx| async move {
                    async_std::task::sleep(Duration::from_millis(20 * i)).await;
                    Ok(format!("slept {} ms", 20 * i))
                })
                .name(format!("sleeper-{i}")),
            )
        })
        .collect();

    // Go's StopWaitXT: every job's record, in submission order.
    for outcome in results.join_all().await {
        println!("{outcome}");
    }
    pool.stop_wait().await;
}

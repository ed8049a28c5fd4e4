//! Hello, world! — the seed README's first example, on no runtime at all.
//!
//! Run with `cargo run --example hello`.

use workerpoolxt::{Job, Pool, ResultSet};

fn main() {
    let num_workers = 10;
    let pool = Pool::new(num_workers);

    let mut results = ResultSet::new();
    results.push(pool.submit_job(
        Job::new(|_ctx| async { Ok::<_, std::io::Error>("Hello, world!") }).name("My first job"),
    ));

    // Go's StopWaitXT: wait for every job, then read the records.
    let job_results = futures_lite::future::block_on(async {
        let outcomes = results.join_all().await;
        pool.stop_wait().await;
        outcomes
    });

    for job_result in &job_results {
        println!("{job_result}");
        match job_result.result() {
            Ok(data) => println!("  data: {data}, ran for {:?}", job_result.duration()),
            Err(e) => println!("  error: {e}"),
        }
    }
}

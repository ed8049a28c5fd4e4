//! The pool on smol: racing result handles with `futures::select!`, a
//! blocking closure, and a `stop_wait`.
//!
//! The workers run on smol's global executor, so jobs can use smol's I/O and
//! timers (`async-io`, which is also the pool's default timer).
//!
//! Run with `cargo run --example smol`. It ends by itself in about half a second.

use std::time::{Duration, Instant};

use futures::{select, FutureExt};
use smol::Timer;
use workerpoolxt::{Job, JobError, Pool};

fn main() {
    smol::block_on(async {
        let start = Instant::now();
        let at = move || format!("{:>4} ms", start.elapsed().as_millis());

        let pool = Pool::builder()
            .max_workers(3)
            .spawner(|f| smol::spawn(f).detach())
            .build();

        // A blocking closure runs on a thread pool, never on smol's executor.
        let mut checksum = pool.submit_blocking(|| {
            std::thread::sleep(Duration::from_millis(100)); // pretend to hash a file
            (1..=1_000u64).sum::<u64>()
        });
        // An async job on smol's timer.
        let mut fetch = pool.submit(async {
            Timer::after(Duration::from_millis(200)).await;
            "fetched"
        });
        // A job that would run for a minute, with a timeout of its own.
        let mut hung = pool.submit_job(
            Job::new(|_ctx| async {
                Timer::after(Duration::from_secs(60)).await;
                Ok::<_, std::io::Error>("never")
            })
            .name("hung")
            .timeout(Duration::from_millis(300)),
        );

        // Race the handles and a deadline of our own. Each handle is a
        // FusedFuture: once it has produced its result, select! skips it.
        let mut give_up = Timer::after(Duration::from_millis(250)).fuse();
        loop {
            select! {
                r = checksum => println!("{}  checksum: {r:?}", at()),
                r = fetch => println!("{}  fetch: {r:?}", at()),
                r = hung => println!("{}  hung: {r:?}", at()),
                _ = give_up => {
                    println!("{}  done waiting in the loop", at());
                    break;
                }
            }
        }

        // The hung job may still be inside its timeout: stop_wait lets every
        // job end, after which its result is there to take.
        pool.stop_wait().await; // runs every queued job, then stops
        println!("{}  stop_wait returned", at());
        match hung.try_take() {
            Some(Err(JobError::TimedOut)) => println!("{}  hung: timed out, as asked", at()),
            Some(other) => println!("{}  hung: {other:?}", at()),
            None => println!("{}  hung: already reported above", at()),
        }

        // A stopped pool takes no more work; the handle says so.
        println!("after stop: {:?}", pool.submit(async { 1 }).await);
    });
}

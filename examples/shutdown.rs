//! A graceful shutdown on ctrl-c — on a tokio runtime.
//!
//! A service runs jobs of every length. When ctrl-c arrives (simulated here
//! after a moment, so the example ends by itself), it shuts the pool down
//! with a grace period: queued jobs never start, running jobs get the grace
//! to finish, and those still running after it are cancelled — async ones
//! dropped, blocking ones told through their context. The report says how
//! many of each.
//!
//! Run with `cargo run --example shutdown`. It ends by itself in about a
//! second.

use std::time::Duration;

use tokio::sync::oneshot;
use workerpoolxt::{Job, JobError, Pool, ResultSet};

#[tokio::main]
async fn main() {
    let rt = tokio::runtime::Handle::current();
    let pool = Pool::builder()
        .max_workers(4)
        .spawner(move |f| {
            rt.spawn(f);
        })
        .timer(tokio::time::sleep)
        .build();

    let mut jobs: ResultSet<&'static str, String> = ResultSet::new();
    // Quick jobs end within the grace; slow ones do not.
    for (name, ms) in [("quick-1", 50), ("quick-2", 80), ("slow-async", 60_000)] {
        jobs.push(
            pool.submit_job(
                Job::new(move |_ctx| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(name)
                })
                .name(name),
            ),
        );
    }
    // A blocking job that looks at its context to stop early.
    jobs.push(
        pool.submit_job(
            Job::blocking(|ctx| {
                while !ctx.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err("told to stop".to_string())
            })
            .name("slow-blocking"),
        ),
    );
    // More work than workers: these wait in the queue.
    for i in 0..3 {
        jobs.push(
            pool.submit_job(Job::once(async move { Ok("queued") }).name(format!("queued-{i}"))),
        );
    }

    // ctrl-c, simulated: `tokio::signal::ctrl_c()` in a real service.
    let (ctrl_c, pressed) = oneshot::channel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = ctrl_c.send(());
    });
    pressed.await.unwrap();
    println!("ctrl-c: shutting down with a grace of 1 s");

    let report = pool.shutdown(Duration::from_secs(1)).await;
    println!(
        "shutdown: {} finished, {} cancelled, {} stopped",
        report.finished, report.cancelled, report.stopped
    );
    assert_eq!(
        (report.finished, report.cancelled, report.stopped),
        (2, 2, 3)
    );

    for outcome in jobs.join_all().await {
        let how = match outcome.result() {
            Ok(v) => format!("ok: {v}"),
            Err(JobError::Cancelled) => "cancelled by the shutdown".to_string(),
            Err(JobError::Stopped) => "never started".to_string(),
            Err(e) => format!("error: {e}"),
        };
        println!(
            "  job {:>2} {:<14} {how}",
            outcome.id(),
            outcome.name().unwrap_or("?")
        );
    }
}

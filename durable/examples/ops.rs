//! A small operator's tool for a SQLite queue file: counts per state, the
//! dead jobs with their last error, and cancel.
//!
//! ```text
//! cargo run -p workerpoolxt-durable --example ops                      # a demo on a new file
//! cargo run -p workerpoolxt-durable --example ops -- FILE counts QUEUE
//! cargo run -p workerpoolxt-durable --example ops -- FILE dead QUEUE
//! cargo run -p workerpoolxt-durable --example ops -- FILE cancel JOB_ID
//! ```
//!
//! The demo fills a queue with jobs that succeed, fail for good, wait
//! (delayed), or are cancelled, runs a worker until the due ones have
//! ended, and shows the counts and the dead list.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future::block_on;
use workerpoolxt_durable::{
    Backend, Client, Handler, JobContext, JobId, NewJob, SqliteBackend, Worker,
};

/// Divides; fails (for good, after its attempts) when dividing by zero.
struct Divide;

impl Handler for Divide {
    const NAME: &'static str = "divide";
    type Args = (i64, i64);
    type Output = i64;
    type Error = String;

    async fn run(&self, (a, b): (i64, i64), _ctx: JobContext) -> Result<i64, String> {
        a.checked_div(b)
            .ok_or_else(|| format!("cannot divide {a} by {b}"))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => demo(),
        [file, command, arg] => command_line(file, command, arg),
        _ => Err("usage: ops [FILE (counts QUEUE | dead QUEUE | cancel JOB_ID)]".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ops: {e}");
            ExitCode::FAILURE
        }
    }
}

fn command_line(file: &str, command: &str, arg: &str) -> Result<(), String> {
    let client = Client::new(SqliteBackend::open(file).map_err(|e| e.to_string())?);
    match command {
        "counts" => show_counts(&client, arg),
        "dead" => show_dead(&client, arg),
        "cancel" => {
            let id = JobId::parse(arg).map_err(|e| e.to_string())?;
            let cancelled = block_on(client.cancel(&id)).map_err(|e| e.to_string())?;
            println!(
                "{}",
                if cancelled {
                    "cancelled"
                } else {
                    "not cancelled: it had ended, or is unknown"
                }
            );
            Ok(())
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn show_counts(client: &Client, queue: &str) -> Result<(), String> {
    let c = block_on(client.counts(queue)).map_err(|e| e.to_string())?;
    println!("queue {queue}:");
    println!(
        "  ready {:>4}   scheduled {:>4}   running {:>4}",
        c.ready, c.scheduled, c.running
    );
    println!(
        "  succeeded {:>4}   dead {:>4}   cancelled {:>4}",
        c.succeeded, c.dead, c.cancelled
    );
    Ok(())
}

fn show_dead(client: &Client, queue: &str) -> Result<(), String> {
    let dead = block_on(client.dead(queue, 20)).map_err(|e| e.to_string())?;
    println!("dead jobs of {queue} ({}):", dead.len());
    for r in dead {
        let name = r.name.as_deref().unwrap_or("-");
        println!(
            "  {} {name} after {} attempt(s): {}",
            r.id,
            r.attempts,
            r.error.unwrap_or_default()
        );
    }
    Ok(())
}

fn demo() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let backend: Arc<dyn Backend> =
        Arc::new(SqliteBackend::open(dir.path().join("ops.db")).map_err(|e| e.to_string())?);
    let client = Client::from_arc(backend.clone()).poll_interval(Duration::from_millis(20));
    let queue = "accounting";
    let enqueue = |args: (i64, i64), name: &str| {
        let job = NewJob::new::<Divide>(&args)
            .unwrap()
            .name(name)
            .max_attempts(2);
        block_on(client.enqueue(queue, job)).map_err(|e| e.to_string())
    };
    let due = vec![
        enqueue((84, 2), "half")?,
        enqueue((1, 0), "by-zero")?,
        enqueue((9, 3), "third")?,
    ];
    let later = NewJob::new::<Divide>(&(1, 1))
        .unwrap()
        .name("tomorrow")
        .delay(Duration::from_secs(86_400));
    block_on(client.enqueue(queue, later)).map_err(|e| e.to_string())?;
    let unwanted = enqueue((5, 5), "unwanted")?;
    block_on(client.cancel(unwanted.id())).map_err(|e| e.to_string())?;
    println!("before the worker runs:");
    show_counts(&client, queue)?;

    let worker = Worker::builder(backend, queue)
        .poll_interval(Duration::from_millis(20))
        .handler(Divide)
        .map_err(|e| e.to_string())?
        .build()
        .map_err(|e| e.to_string())?;
    let serving = {
        let worker = worker.clone();
        std::thread::spawn(move || block_on(worker.run()))
    };
    for handle in &due {
        block_on(client.outcome(handle)).map_err(|e| e.to_string())?;
    }
    block_on(worker.stop(Duration::from_secs(5)));
    serving
        .join()
        .map_err(|_| "the worker panicked")?
        .map_err(|e| e.to_string())?;

    println!("\nafter:");
    show_counts(&client, queue)?;
    show_dead(&client, queue)?;
    println!("\n(the demo's file goes with it; on a file of yours: ops FILE counts {queue})");
    Ok(())
}

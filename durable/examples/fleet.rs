//! A producer and two worker processes on one queue in one SQLite file.
//!
//! ```text
//! cargo run -p workerpoolxt-durable --example fleet            # 20 jobs
//! cargo run -p workerpoolxt-durable --example fleet -- 200     # 200 jobs
//! ```
//!
//! The producer (this process) starts two worker processes (this program
//! again, with `worker` as its first argument), enqueues the jobs, and
//! prints each job's result once, as it awaits each one's handle. Then it
//! stops the workers (each hands back what it still runs) and prints what
//! each did.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use workerpoolxt_durable::{
    Backend, Client, Handler, JobContext, NewJob, RetryBackoff, SqliteBackend, Status, Worker,
};

const QUEUE: &str = "fleet";

/// Squares a number after a short nap, saying which process did it.
struct Square;

impl Handler for Square {
    const NAME: &'static str = "square";
    type Args = u64;
    type Output = (u64, u32);
    type Error = String;

    async fn run(&self, n: u64, ctx: JobContext) -> Result<(u64, u32), String> {
        async_io::Timer::after(Duration::from_millis(20)).await;
        // Every seventh job fails its first attempt: it is retried, maybe in
        // the other process.
        if n % 7 == 3 && ctx.attempt() == 1 {
            return Err(format!("{n}: a passing failure"));
        }
        Ok((n * n, std::process::id()))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return work(Path::new(&args[2]));
    }
    let jobs: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("fleet.db");
    let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::open(&db).expect("the queue file"));
    let client = Client::from_arc(backend).poll_interval(Duration::from_millis(20));

    let workers: Vec<Child> = (0..2).map(|_| spawn_worker(&db)).collect();
    let handles: Vec<_> = (0..jobs)
        .map(|n| {
            let job = NewJob::new::<Square>(&n)
                .expect("u64 serializes")
                .name(format!("square-{n}"))
                .max_attempts(3)
                .backoff(RetryBackoff::Fixed { ms: 50 });
            futures_lite::future::block_on(client.enqueue(QUEUE, job)).expect("enqueue")
        })
        .collect();
    println!("producer {}: enqueued {jobs} jobs", std::process::id());

    for handle in &handles {
        let record = futures_lite::future::block_on(client.outcome(handle)).expect("outcome");
        let name = record.name.clone().unwrap_or_default();
        match record.status {
            Status::Succeeded => {
                let (square, pid) = record.output_as::<(u64, u32)>().unwrap().unwrap();
                println!(
                    "{name} = {square:<6} by worker {pid} (attempts: {})",
                    record.attempts
                );
            }
            status => println!("{name}: {status}: {}", record.error.unwrap_or_default()),
        }
    }
    let counts = futures_lite::future::block_on(client.counts(QUEUE)).expect("counts");
    println!("counts: {counts:?}");
    for child in workers {
        stop_worker(child);
    }
}

fn spawn_worker(db: &Path) -> Child {
    Command::new(std::env::current_exe().expect("this program"))
        .arg("worker")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("a worker process")
}

fn stop_worker(mut child: Child) {
    let pid = child.id();
    writeln!(child.stdin.take().expect("its stdin"), "stop").expect("tell it to stop");
    let report = BufReader::new(child.stdout.take().expect("its stdout"))
        .lines()
        .map_while(Result::ok)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(child.wait().expect("its exit").success());
    println!("worker {pid}: {report}");
}

/// The worker process: serves the queue until a line arrives on stdin.
fn work(db: &Path) {
    let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::open(db).expect("the queue file"));
    let worker = Worker::builder(backend, QUEUE)
        .max_workers(4)
        .lease(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(20))
        .handler(Square)
        .expect("a valid handler")
        .build()
        .expect("a valid worker");
    let serving = {
        let worker = worker.clone();
        std::thread::spawn(move || futures_lite::future::block_on(worker.run()))
    };
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let report = futures_lite::future::block_on(worker.stop(Duration::from_secs(5)));
    serving
        .join()
        .expect("the claim loop")
        .expect("a running worker");
    let stats = worker.stats();
    println!(
        "succeeded {}, retried {}, handed back {}, most leases at once {}",
        stats.succeeded, stats.retried, report.handed_back, stats.max_leased
    );
}

//! Jobs per second through each backend with 1 and 2 worker processes, and
//! the end-to-end latency of one job.
//!
//! ```text
//! cargo bench -p workerpoolxt-durable --bench throughput                  # SQLite
//! WPXT_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test WPXT_REDIS_URL=redis://127.0.0.1:6379/ \
//!   cargo bench -p workerpoolxt-durable --features postgres,redis --bench throughput
//! cargo bench -p workerpoolxt-durable --bench throughput -- smoke         # tiny sizes, checks only
//! ```
//!
//! Throughput: the jobs (a handler that returns at once) are enqueued with a
//! `run_at` a moment ahead, the worker processes (this binary again, each
//! `max_workers` 8) are started and idle, and the clock runs from that
//! `run_at` until the store counts every job succeeded. Latency: one
//! in-process worker idles; a job is enqueued and its outcome awaited, one
//! at a time. Each figure is the median of the runs, with min–max.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_lite::future::block_on;
use workerpoolxt_durable::{
    Backend, Client, Handler, JobContext, NewJob, SqliteBackend, Status, Worker,
};

struct Noop;
impl Handler for Noop {
    const NAME: &'static str = "noop";
    type Args = u32;
    type Output = u32;
    type Error = String;
    async fn run(&self, n: u32, _ctx: JobContext) -> Result<u32, String> {
        Ok(n)
    }
}

/// Where a backend lives: enough for another process to open it.
#[derive(Clone)]
enum Store {
    Sqlite(std::path::PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
    #[cfg(feature = "redis")]
    Redis(String),
}

impl Store {
    fn open(&self) -> Arc<dyn Backend> {
        match self {
            Store::Sqlite(path) => Arc::new(SqliteBackend::open(path).unwrap()),
            #[cfg(feature = "postgres")]
            Store::Postgres(url) => {
                Arc::new(workerpoolxt_durable::PgBackend::connect(url).unwrap())
            }
            #[cfg(feature = "redis")]
            Store::Redis(url) => {
                Arc::new(workerpoolxt_durable::RedisBackend::connect(url).unwrap())
            }
        }
    }

    fn args(&self) -> [String; 2] {
        match self {
            Store::Sqlite(path) => ["sqlite".into(), path.display().to_string()],
            #[cfg(feature = "postgres")]
            Store::Postgres(url) => ["postgres".into(), url.clone()],
            #[cfg(feature = "redis")]
            Store::Redis(url) => ["redis".into(), url.clone()],
        }
    }

    fn from_args(kind: &str, at: &str) -> Store {
        match kind {
            "sqlite" => Store::Sqlite(at.into()),
            #[cfg(feature = "postgres")]
            "postgres" => Store::Postgres(at.into()),
            #[cfg(feature = "redis")]
            "redis" => Store::Redis(at.into()),
            other => panic!("unknown store {other}"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker_process(Store::from_args(&args[2], &args[3]), &args[4]);
    }
    let smoke = args.iter().any(|a| a == "smoke");
    let (jobs, runs, pings) = if smoke { (100, 1, 5) } else { (2_000, 3, 50) };
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![("sqlite", Store::Sqlite(dir.path().join("bench.db")))];
    #[cfg(feature = "postgres")]
    match std::env::var("WPXT_POSTGRES_URL") {
        Ok(url) => stores.push(("postgres", Store::Postgres(url))),
        Err(_) => println!("SKIPPED: postgres (WPXT_POSTGRES_URL is not set)"),
    }
    #[cfg(not(feature = "postgres"))]
    println!("SKIPPED: postgres (built without the `postgres` feature)");
    #[cfg(feature = "redis")]
    match std::env::var("WPXT_REDIS_URL") {
        Ok(url) => stores.push(("redis", Store::Redis(url))),
        Err(_) => println!("SKIPPED: redis (WPXT_REDIS_URL is not set)"),
    }
    #[cfg(not(feature = "redis"))]
    println!("SKIPPED: redis (built without the `redis` feature)");
    println!("| backend | worker processes | jobs | drained, jobs/s | enqueued by one producer, jobs/s |");
    println!("|---|---|---|---|---|");
    for (name, store) in &stores {
        for processes in [1, 2] {
            let (enqueued, drained): (Vec<f64>, Vec<f64>) = (0..runs)
                .map(|_| throughput(store, processes, jobs))
                .unzip();
            let (drained, enqueued) = (summary(drained, 0), summary(enqueued, 0));
            println!("| {name} | {processes} | {jobs} | {drained} | {enqueued} |");
        }
    }
    println!("(median, min–max of {runs} runs)");
    println!();
    println!("| backend | one job, enqueue to outcome, ms (median, min–max of {pings} in a row) |");
    println!("|---|---|");
    for (name, store) in &stores {
        println!("| {name} | {} |", summary(latency(store, pings), 2));
    }
}

fn summary(mut xs: Vec<f64>, digits: usize) -> String {
    xs.sort_by(f64::total_cmp);
    let median = xs[xs.len() / 2];
    format!(
        "{median:.digits$} ({:.digits$}–{:.digits$})",
        xs[0],
        xs[xs.len() - 1]
    )
}

/// Jobs per second of one producer enqueueing `jobs` jobs, one call each,
/// and of `processes` worker processes draining them.
fn throughput(store: &Store, processes: usize, jobs: u32) -> (f64, f64) {
    let queue = format!("bench-{:08x}", fastrand::u32(..));
    let client = Client::from_arc(store.open());
    // The head start: twice the time the enqueues take, measured on a
    // queue of their own, and a second for the workers to come up.
    let probe = Instant::now();
    for n in 0..20 {
        let job = NewJob::new::<Noop>(&n)
            .unwrap()
            .delay(Duration::from_secs(3_600));
        block_on(client.enqueue(&format!("{queue}-probe"), job)).unwrap();
    }
    let head_start = probe.elapsed() / 20 * jobs * 2 + Duration::from_secs(1);
    let start_at = SystemTime::now() + head_start;
    let enqueueing = Instant::now();
    for n in 0..jobs {
        let job = NewJob::new::<Noop>(&n).unwrap().run_at(start_at);
        block_on(client.enqueue(&queue, job)).unwrap();
    }
    let enqueue_rate = f64::from(jobs) / enqueueing.elapsed().as_secs_f64();
    let mut workers: Vec<Child> = (0..processes)
        .map(|_| spawn_worker(store, &queue))
        .collect();
    for w in &mut workers {
        let mut line = String::new();
        BufReader::new(w.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let wait = start_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    assert!(
        !wait.is_zero(),
        "enqueueing took longer than the head start"
    );
    std::thread::sleep(wait);
    let start = Instant::now();
    loop {
        let counts = block_on(client.counts(&queue)).unwrap();
        assert_eq!(counts.dead, 0);
        if counts.succeeded == u64::from(jobs) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let rate = f64::from(jobs) / start.elapsed().as_secs_f64();
    for mut w in workers {
        writeln!(w.stdin.as_mut().unwrap(), "stop").unwrap();
        assert!(w.wait().unwrap().success());
    }
    (enqueue_rate, rate)
}

fn spawn_worker(store: &Store, queue: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("worker")
        .args(store.args())
        .arg(queue)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn worker_process(store: Store, queue: &str) {
    let worker = Worker::builder(store.open(), queue)
        .max_workers(8)
        .poll_interval(Duration::from_millis(5))
        .handler(Noop)
        .unwrap()
        .build()
        .unwrap();
    let serving = {
        let w = worker.clone();
        std::thread::spawn(move || block_on(w.run()))
    };
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    block_on(worker.stop(Duration::from_secs(10)));
    serving.join().unwrap().unwrap();
}

/// Milliseconds from enqueue to outcome of one job at a time, with an idle
/// in-process worker.
fn latency(store: &Store, pings: usize) -> Vec<f64> {
    let queue = format!("ping-{:08x}", fastrand::u32(..));
    let backend = store.open();
    let client = Client::from_arc(backend.clone()).poll_interval(Duration::from_millis(5));
    let worker = Worker::builder(backend, &queue)
        .poll_interval(Duration::from_millis(5))
        .handler(Noop)
        .unwrap()
        .build()
        .unwrap();
    let serving = {
        let w = worker.clone();
        std::thread::spawn(move || block_on(w.run()))
    };
    let times = (0..pings)
        .map(|n| {
            let start = Instant::now();
            let handle =
                block_on(client.enqueue(&queue, NewJob::new::<Noop>(&(n as u32)).unwrap()))
                    .unwrap();
            let record = block_on(client.outcome(&handle)).unwrap();
            assert_eq!(record.status, Status::Succeeded);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    block_on(worker.stop(Duration::from_secs(10)));
    serving.join().unwrap().unwrap();
    times
}

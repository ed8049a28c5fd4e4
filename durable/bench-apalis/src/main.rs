//! apalis 1.0 draining 2,000 no-op jobs from SQLite and PostgreSQL, one
//! worker process with concurrency 8, as `benches/throughput.rs` measures
//! workerpoolxt-durable. Run from this directory:
//!
//! ```text
//! WPXT_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo run --release
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use apalis::prelude::*;

const JOBS: usize = 2_000;
const RUNS: usize = 3;
static DONE: AtomicUsize = AtomicUsize::new(0);

async fn noop(_n: u32, worker: WorkerContext) -> Result<(), BoxDynError> {
    if DONE.fetch_add(1, Ordering::SeqCst) + 1 == JOBS {
        worker.stop()?;
    }
    Ok(())
}

fn summary(mut xs: Vec<f64>) -> String {
    xs.sort_by(f64::total_cmp);
    format!("{:.0} ({:.0}–{:.0})", xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

async fn sqlite_run() -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("apalis.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    apalis_sqlite::SqliteStorage::setup(&pool).await.unwrap();
    let mut backend = apalis_sqlite::SqliteStorage::new(&pool);
    let enqueueing = Instant::now();
    for n in 0..JOBS as u32 {
        backend.push(n).await.unwrap();
    }
    let enqueued = JOBS as f64 / enqueueing.elapsed().as_secs_f64();
    DONE.store(0, Ordering::SeqCst);
    let start = Instant::now();
    let worker = WorkerBuilder::new(format!("bench-{:08x}", fastrand::u32(..)))
        .backend(backend)
        .concurrency(8)
        .build(noop);
    worker.run().await.unwrap();
    assert_eq!(DONE.load(Ordering::SeqCst), JOBS);
    (enqueued, JOBS as f64 / start.elapsed().as_secs_f64())
}

async fn postgres_run(url: &str) -> (f64, f64) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    apalis_postgres::PostgresStorage::setup(&pool).await.unwrap();
    // A queue of its own per run, so earlier runs' rows do not count.
    let queue: &'static str = Box::leak(format!("bench-{:08x}", fastrand::u32(..)).into_boxed_str());
    let config = apalis_postgres::Config::default().queue(queue);
    let mut backend = apalis_postgres::PostgresStorage::new(&pool).with_config(config);
    let enqueueing = Instant::now();
    for n in 0..JOBS as u32 {
        backend.push(n).await.unwrap();
    }
    let enqueued = JOBS as f64 / enqueueing.elapsed().as_secs_f64();
    DONE.store(0, Ordering::SeqCst);
    let start = Instant::now();
    let worker = WorkerBuilder::new(format!("bench-{:08x}", fastrand::u32(..)))
        .backend(backend)
        .concurrency(8)
        .build(noop);
    worker.run().await.unwrap();
    assert_eq!(DONE.load(Ordering::SeqCst), JOBS);
    (enqueued, JOBS as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    println!("| backend | worker processes | jobs | drained, jobs/s | enqueued by one producer, jobs/s |");
    println!("|---|---|---|---|---|");
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        rates.push(sqlite_run().await);
    }
    let (e, d): (Vec<f64>, Vec<f64>) = rates.into_iter().unzip();
    println!("| apalis-sqlite | 1 | {JOBS} | {} | {} |", summary(d), summary(e));
    if let Ok(url) = std::env::var("WPXT_POSTGRES_URL") {
        let mut rates = Vec::new();
        for _ in 0..RUNS {
            rates.push(postgres_run(&url).await);
        }
        let (e, d): (Vec<f64>, Vec<f64>) = rates.into_iter().unzip();
        println!("| apalis-postgres | 1 | {JOBS} | {} | {} |", summary(d), summary(e));
    }
    println!("(median, min–max of {RUNS} runs)");
}

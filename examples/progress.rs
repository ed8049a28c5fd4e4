//! Operating a pool at scale: 20,000 jobs of varying length on ~200 workers,
//! some failing (and retried), some timing out, with a live progress bar
//! driven by a `ResultSet` stream (completion order) and the pool's metrics,
//! then a summary: outcomes, run duration and queue wait percentiles, wall
//! time.
//!
//! No runtime: the workers run on the embedded executor and the jobs sleep on
//! `async-io` timers.
//!
//! ```text
//! cargo run --release --example progress          # 20,000 jobs
//! cargo run --release --example progress -- 2000  # another count
//! ```
//!
//! When stdout is not a terminal (CI), indicatif hides the bar; the summary
//! still prints.

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use workerpoolxt::{Backoff, Job, JobError, Metrics, Outcome, Pool, ResultSet};

const WORKERS: usize = 200;
/// Every job's timeout, over all its attempts and backoffs.
const TIMEOUT: Duration = Duration::from_millis(25);

/// What job `i` does: deterministic "randomness" so runs are comparable.
struct Plan {
    /// How long each attempt sleeps (0–5 ms; 60 ms for the slow ones).
    sleep: Duration,
    /// Attempts that fail before one succeeds (`u32::MAX`: all of them).
    fails: u32,
}

fn plan(i: u64) -> Plan {
    let r = splitmix64(i);
    let sleep = if r.is_multiple_of(100) {
        Duration::from_millis(60) // 1 %: slower than the timeout
    } else {
        Duration::from_micros((r >> 8) % 5_001)
    };
    let fails = match (r >> 24) % 100 {
        0..=5 => 1,    // 6 %: a transient error, fixed by a retry
        6..=7 => 2,    // 2 %: two transient errors
        8 => u32::MAX, // 1 %: a permanent error, retried in vain
        _ => 0,
    };
    Plan { sleep, fails }
}

fn splitmix64(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn job(i: u64) -> Job<u64, String> {
    let Plan { sleep, fails } = plan(i);
    Job::new(move |ctx| async move {
        async_io::Timer::after(sleep).await;
        if ctx.attempt() <= fails {
            Err(format!("job {i}: attempt {} failed", ctx.attempt()))
        } else {
            Ok(i)
        }
    })
    .timeout(TIMEOUT)
    .retry(2)
    .backoff(Backoff::fixed(Duration::from_millis(1)))
}

/// The bar's message: the pool's live counters.
fn live(m: &Metrics) -> String {
    format!(
        "running {:>3}  waiting {:>6}  ok {:>6}  failed {:>4}  timed out {:>4}  retried {:>5}",
        m.running, m.waiting, m.succeeded, m.failed, m.timed_out, m.retried
    )
}

#[derive(Default)]
struct Summary {
    ok_first: u64,
    ok_retried: u64,
    failed: u64,
    timed_out: u64,
    other: u64,
    durations: Vec<Duration>,
    waits: Vec<Duration>,
}

impl Summary {
    fn add(&mut self, o: &Outcome<u64, String>) {
        match o.result() {
            Ok(_) if o.attempts() == 1 => self.ok_first += 1,
            Ok(_) => self.ok_retried += 1,
            Err(JobError::Failed(_)) => self.failed += 1,
            Err(JobError::TimedOut) => self.timed_out += 1,
            Err(_) => self.other += 1,
        }
        self.durations.push(o.duration());
        self.waits.push(o.queued());
    }
}

/// The `p`-th percentile (0–100) of `v`, sorted in place.
fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let count: u64 = match std::env::args().nth(1) {
        None => 20_000,
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("usage: progress [JOB_COUNT]  (got {arg:?})");
            std::process::exit(2);
        }),
    };

    let started = Instant::now();
    let pool = Pool::new(WORKERS);
    let mut set: ResultSet<u64, String> = (0..count).map(|i| pool.submit_job(job(i))).collect();

    let bar = ProgressBar::new(count);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40.cyan/blue}] {pos:>6}/{len:6} {percent:>3}%\n{msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );

    let mut summary = Summary::default();
    futures_lite::future::block_on(async {
        while let Some(outcome) = set.next().await {
            summary.add(&outcome);
            bar.inc(1);
            if bar.position().is_multiple_of(64) {
                bar.set_message(live(&pool.metrics()));
            }
        }
        pool.stop_wait().await;
    });
    let m = pool.metrics();
    bar.set_message(live(&m));
    bar.finish();
    let wall = started.elapsed();

    let total = count.max(1) as f64;
    let row =
        |name: &str, n: u64| println!("  {name:<22} {n:>8}  {:>6.2} %", 100.0 * n as f64 / total);
    println!("\n{count} jobs on {WORKERS} workers (timeout {TIMEOUT:?}, up to 2 retries)\n");
    println!("  {:<22} {:>8}  {:>8}", "outcome", "jobs", "share");
    row("succeeded first time", summary.ok_first);
    row("succeeded after retry", summary.ok_retried);
    row("failed (retries spent)", summary.failed);
    row("timed out", summary.timed_out);
    if summary.other > 0 {
        row("other", summary.other);
    }
    println!("  {:<22} {:>8}", "retries made", m.retried);

    let (mut d, mut w) = (summary.durations, summary.waits);
    println!("\n  {:<22} {:>10} {:>10} {:>10}", "", "p50", "p99", "max");
    let (d50, d99, dmax) = (
        percentile(&mut d, 50.0),
        percentile(&mut d, 99.0),
        percentile(&mut d, 100.0),
    );
    let (w50, w99, wmax) = (
        percentile(&mut w, 50.0),
        percentile(&mut w, 99.0),
        percentile(&mut w, 100.0),
    );
    println!(
        "  {:<22} {:>10} {:>10} {:>10}",
        "run duration",
        ms(d50),
        ms(d99),
        ms(dmax)
    );
    println!(
        "  {:<22} {:>10} {:>10} {:>10}",
        "queue wait",
        ms(w50),
        ms(w99),
        ms(wmax)
    );

    println!(
        "\n  wall time {:.2} s ({:.0} jobs/s)",
        wall.as_secs_f64(),
        count as f64 / wall.as_secs_f64()
    );

    // The pool's own ledger agrees with what the handles said.
    assert_eq!(m.submitted, count);
    assert_eq!(m.succeeded, summary.ok_first + summary.ok_retried);
    assert_eq!((m.failed, m.timed_out), (summary.failed, summary.timed_out));
    assert_eq!((m.waiting, m.running), (0, 0));
}

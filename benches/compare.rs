//! Side-by-side benchmark of workerpoolxt against the pools a user would pick
//! instead. The workloads (W1–W7) and the peers are specified in the shared
//! `BENCH.md`; `bench/run.sh` runs every pair several times, each in its own
//! process, and `bench/chart.py` turns the results into `BENCHMARKS.md`.
//!
//! One invocation measures ONE (workload, contender) pair and prints one line:
//!
//! ```text
//! RESULT workload=W1 contender=tokio-joinset jobs=1000000 n=64 secs=0.123 ns_per_job=123.4 ok=true
//! ```
//!
//! Usage (`cargo bench` appends `--bench`, which is ignored):
//!
//! ```text
//! cargo bench --bench compare -- <W1..W7> <contender> [--jobs N] [--n N] [--timeout SECS] [--spin-ms MS]
//! cargo bench --bench compare -- smoke      # every pair at tiny sizes, checks correctness
//! cargo bench --bench compare -- list       # every "workload contender" pair, one a line
//! ```
//!
//! Contenders: `floor`, `tokio-joinset`, `tokio-permit`, `buffer-unordered`,
//! `smol-sem`, `wpxt` (embedded executor), `wpxt-tokio` (workers spawned on a
//! 2-thread tokio runtime).
//!
//! How each contender drives its futures: the tokio peers run their submit
//! loop and awaits in `Runtime::block_on`; `smol-sem` runs its executor
//! threads and the thread that awaits its tasks with `smol::block_on`
//! (= `async_io::block_on`), as smol users do; `wpxt` and `wpxt-tokio` submit
//! from the main thread and await their handles with
//! `futures_lite::future::block_on`.
//!
//! W7 (head-of-line latency) has its own sizes: `--jobs` is the number of
//! trivial jobs, 50 a round (rounded up to whole rounds: 1,000 = 20 rounds),
//! `--spin-ms` how long the spinning job of each round spins (20 ms), and its
//! RESULT line gives the trivial jobs' start latency instead of ns per job:
//!
//! ```text
//! RESULT workload=W7 contender=smol-sem jobs=1000 n=8 secs=0.600 rounds=20 spin_ms=20 measured=1000 p50_us=12.3 p99_us=45.6 max_us=78.9 ... ok=true
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::stream::{self, FuturesUnordered, StreamExt};
// `block_on` is futures-lite's: the `wpxt` contenders await their handles
// with it. The smol peer uses `smol::block_on` (async-io's), spelled out.
use futures_lite::future::{block_on, yield_now};

const WORKLOADS: &[&str] = &["W1", "W2", "W3", "W4", "W5", "W6", "W7"];
const CONTENDERS: &[&str] = &[
    "floor",
    "tokio-joinset",
    "tokio-permit",
    "buffer-unordered",
    "smol-sem",
    "wpxt",
    "wpxt-tokio",
];

/// Threads of every multi-threaded runtime (tokio, the smol executor): the
/// machine's two cores.
const RT_THREADS: usize = 2;

/// Iterations of `spin` that take about 100 µs on the reference machine. The
/// count is fixed (not calibrated per process) so every contender does the
/// same work; the `floor` row of W4 shows what it costs here.
const SPIN_ITERS: u64 = 50_000;

// ---------------------------------------------------------------------------
// Parameters and results
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Params {
    jobs: usize,
    n: usize,
    /// W7 only: how long the spinning job of each round spins.
    spin_ms: u64,
}

fn default_params(w: &str) -> Params {
    let (jobs, n, spin_ms) = match w {
        "W1" => (1_000_000, 64, 0),
        "W2" => (20_000, 1_000, 0),
        "W3" => (100_000, 1_000, 0),
        "W4" => (10_000, 2, 0),
        "W5" => (1_000_000, 1, 0),
        "W6" => (1_000, 64, 0),
        "W7" => (20 * W7_TRIVIAL, 8, 20),
        _ => unreachable!("unknown workload {w}"),
    };
    Params { jobs, n, spin_ms }
}

fn smoke_params(w: &str) -> Params {
    let (jobs, n, spin_ms) = match w {
        "W1" => (2_000, 64, 0),
        "W2" => (1_000, 500, 0),
        "W3" => (2_000, 1_000, 0),
        "W4" => (20, 2, 0),
        "W5" => (2_000, 1, 0),
        "W6" => (200, 16, 0),
        "W7" => (2 * W7_TRIVIAL, 8, 2),
        _ => unreachable!("unknown workload {w}"),
    };
    Params { jobs, n, spin_ms }
}

/// What one measurement produced.
enum Outcome {
    /// Measured: wall time of the workload, whether its results were right,
    /// and extra `key=value` fields.
    Done {
        secs: f64,
        ok: bool,
        extra: Vec<(&'static str, String)>,
    },
    /// The workload makes no sense for this contender; the reason says why.
    Na(&'static str),
}

fn done(secs: f64, ok: bool) -> Outcome {
    Outcome::Done {
        secs,
        ok,
        extra: Vec::new(),
    }
}

fn result_line(w: &str, c: &str, p: Params, o: &Outcome, cpu_secs: f64) -> (String, bool) {
    let mut line = format!(
        "RESULT workload={w} contender={c} jobs={} n={}",
        p.jobs, p.n
    );
    let ok = match o {
        Outcome::Done { secs, ok, extra } => {
            line += &format!(" secs={secs:.6}");
            // W7 reports start latencies (in `extra`), not a cost per job.
            if w != "W7" {
                line += &format!(" ns_per_job={:.1}", secs * 1e9 / p.jobs as f64);
            }
            if let Some(ideal) = ideal_secs(w, p) {
                line += &format!(" ideal_secs={ideal:.6}");
            }
            for (k, v) in extra {
                line += &format!(" {k}={v}");
            }
            line += &format!(
                " cpu_secs={cpu_secs:.2} vmhwm_kb={} ok={ok}",
                proc_status_kb("VmHWM")
            );
            *ok
        }
        Outcome::Na(reason) => {
            line += &format!(" na=\"{reason}\" ok=true");
            true
        }
    };
    (line, ok)
}

/// The ideal wall time where it follows from the workload alone (W2, W3:
/// batches of N jobs, each 1 ms). W4's ideal (total CPU / 2 cores) comes from
/// the `floor` row, W1's and W5's ideal *is* the floor.
fn ideal_secs(w: &str, p: Params) -> Option<f64> {
    match w {
        "W2" | "W3" => Some(p.jobs.div_ceil(p.n) as f64 * 1e-3),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the workloads
// ---------------------------------------------------------------------------

/// `key:` of /proc/self/status in kB (0 where there is no such file).
fn proc_status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) of the whole process so far, from
/// /proc/self/stat (in clock ticks of 1/100 s; 0 where there is no such file).
fn process_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses: state is
            // the 3rd field of the line, utime the 14th, stime the 15th.
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// About 100 µs of pure CPU; returns `i` so sums can be checked.
fn spin(i: u64) -> u64 {
    let mut x = black_box(i | 1);
    for _ in 0..black_box(SPIN_ITERS) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x);
    i
}

/// Sum of the job indices 0..jobs: what W1, W2, W4 results add up to.
fn index_sum(jobs: usize) -> u64 {
    let j = jobs as u64;
    j * j.saturating_sub(1) / 2
}

/// Live job futures of W3: created when a job body starts, dropped when its
/// future is dropped (on timeout, the timeout must drop it).
static ALIVE: AtomicIsize = AtomicIsize::new(0);

struct Alive;

impl Alive {
    fn new() -> Self {
        ALIVE.fetch_add(1, Ordering::SeqCst);
        Alive
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RT_THREADS)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// An `async_executor::Executor` run by `RT_THREADS` threads until dropped,
/// each with `smol::block_on` (async-io's: it drives the reactor while idle).
struct SmolRt {
    ex: Arc<async_executor::Executor<'static>>,
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl SmolRt {
    fn new() -> Self {
        let ex = Arc::new(async_executor::Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let threads = (0..RT_THREADS)
            .map(|_| {
                let ex = ex.clone();
                let stopped = stopped.clone();
                thread::spawn(move || {
                    smol::block_on(ex.run(async move {
                        let _ = stopped.recv().await;
                    }))
                })
            })
            .collect();
        SmolRt {
            ex,
            stop: Some(stop),
            threads,
        }
    }
}

impl Drop for SmolRt {
    fn drop(&mut self) {
        drop(self.stop.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Waits (sync) until `flag` is set; false after 10 s.
fn wait_flag(flag: &AtomicBool) -> bool {
    let t = Instant::now();
    while !flag.load(Ordering::SeqCst) {
        if t.elapsed() > Duration::from_secs(10) {
            return false;
        }
        thread::sleep(Duration::from_micros(200));
    }
    true
}

// ---------------------------------------------------------------------------
// Generic runners: submit every job, then await every result, return the
// elapsed seconds and the sum of the results.
// ---------------------------------------------------------------------------

/// tokio `JoinSet`; each task first takes an owned permit of `Semaphore(n)`.
fn run_joinset<F, Fut>(rt: &tokio::runtime::Runtime, p: Params, body: F) -> (f64, u64)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    rt.block_on(async {
        let t = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(p.n));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..p.jobs as u64 {
            let sem = sem.clone();
            let fut = body(i);
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore closed");
                fut.await
            });
        }
        let mut sum = 0;
        while let Some(r) = set.join_next().await {
            sum += r.expect("task failed");
        }
        (t.elapsed().as_secs_f64(), sum)
    })
}

/// tokio: a permit is taken in the submit loop, then `tokio::spawn`; the
/// `JoinHandle`s are kept and awaited in order.
fn run_permit<F, Fut>(rt: &tokio::runtime::Runtime, p: Params, body: F) -> (f64, u64)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    rt.block_on(async {
        let t = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(p.n));
        let mut handles = Vec::with_capacity(p.jobs);
        for i in 0..p.jobs as u64 {
            let permit = sem.clone().acquire_owned().await.expect("semaphore closed");
            let fut = body(i);
            handles.push(tokio::spawn(async move {
                let _permit = permit;
                fut.await
            }));
        }
        let mut sum = 0;
        for h in handles {
            sum += h.await.expect("task failed");
        }
        (t.elapsed().as_secs_f64(), sum)
    })
}

/// futures `buffer_unordered(n)` in one task (run by `block_on` of the tokio
/// runtime, so tokio timers work).
fn run_buffered<F, Fut>(rt: &tokio::runtime::Runtime, p: Params, body: F) -> (f64, u64)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = u64>,
{
    rt.block_on(async {
        let t = Instant::now();
        let sum = stream::iter(0..p.jobs as u64)
            .map(&body)
            .buffer_unordered(p.n)
            .fold(0u64, |a, b| async move { a + b })
            .await;
        (t.elapsed().as_secs_f64(), sum)
    })
}

/// async-executor on 2 threads; each task holds an async-lock `Semaphore(n)`
/// permit; the `Task` handles are kept and awaited in order (in
/// `smol::block_on`).
fn run_smol<F, Fut>(rt: &SmolRt, p: Params, body: F) -> (f64, u64)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    let t = Instant::now();
    // smol::lock is a re-export of async-lock.
    let sem = Arc::new(smol::lock::Semaphore::new(p.n));
    let mut tasks = Vec::with_capacity(p.jobs);
    for i in 0..p.jobs as u64 {
        let sem = sem.clone();
        let fut = body(i);
        tasks.push(rt.ex.spawn(async move {
            let _guard = sem.acquire_arc().await;
            fut.await
        }));
    }
    let sum = smol::block_on(async {
        let mut sum = 0;
        for task in tasks {
            sum += task.await;
        }
        sum
    });
    (t.elapsed().as_secs_f64(), sum)
}

// ---------------------------------------------------------------------------
// W1 trivial: each job returns its index.
// ---------------------------------------------------------------------------

fn floor_boxed(p: Params, f: fn(u64) -> u64) -> (f64, u64) {
    let t = Instant::now();
    let mut jobs: Vec<Box<dyn FnOnce() -> u64 + Send>> = Vec::with_capacity(p.jobs);
    for i in 0..p.jobs as u64 {
        jobs.push(black_box(Box::new(move || f(i))));
    }
    let mut sum = 0;
    for job in jobs {
        sum += job();
    }
    (t.elapsed().as_secs_f64(), sum)
}

fn w1(c: &str, p: Params) -> Outcome {
    let want = index_sum(p.jobs);
    let body = |i: u64| async move { i };
    let (secs, sum) = match c {
        "floor" => floor_boxed(p, |i| i),
        "tokio-joinset" => run_joinset(&tokio_rt(), p, body),
        "tokio-permit" => run_permit(&tokio_rt(), p, body),
        "buffer-unordered" => run_buffered(&tokio_rt(), p, body),
        "smol-sem" => run_smol(&SmolRt::new(), p, body),
        _ => return wpxt::w1(c, p),
    };
    done(secs, sum == want)
}

// ---------------------------------------------------------------------------
// W2 sleep: each job sleeps 1 ms on its runtime's timer.
// ---------------------------------------------------------------------------

const W2_SLEEP: Duration = Duration::from_millis(1);

fn w2(c: &str, p: Params) -> Outcome {
    let want = index_sum(p.jobs);
    let tokio_body = |i: u64| async move {
        tokio::time::sleep(W2_SLEEP).await;
        i
    };
    let (secs, sum) = match c {
        "floor" => return Outcome::Na("the ideal is computed: ceil(jobs/N) x 1 ms"),
        "tokio-joinset" => run_joinset(&tokio_rt(), p, tokio_body),
        "tokio-permit" => run_permit(&tokio_rt(), p, tokio_body),
        "buffer-unordered" => run_buffered(&tokio_rt(), p, tokio_body),
        "smol-sem" => run_smol(&SmolRt::new(), p, |i| async move {
            async_io::Timer::after(W2_SLEEP).await;
            i
        }),
        _ => return wpxt::w2(c, p),
    };
    done(secs, sum == want)
}

// ---------------------------------------------------------------------------
// W3 timeout storm: each job tries to sleep 10 s under a 1 ms timeout.
// Results: 1 per job that timed out. Also checks that no job future is alive
// once every result is in.
// ---------------------------------------------------------------------------

const W3_SLEEP: Duration = Duration::from_secs(10);
const W3_TIMEOUT: Duration = Duration::from_millis(1);

fn w3_outcome(secs: f64, timed_out: u64, alive_before: isize, p: Params) -> Outcome {
    let alive = ALIVE.load(Ordering::SeqCst) - alive_before;
    Outcome::Done {
        secs,
        ok: timed_out == p.jobs as u64 && alive == 0,
        extra: vec![
            ("timed_out", timed_out.to_string()),
            ("alive_at_end", alive.to_string()),
        ],
    }
}

fn w3(c: &str, p: Params) -> Outcome {
    let alive_before = ALIVE.load(Ordering::SeqCst);
    let tokio_body = |_i: u64| async move {
        let job = async {
            let _alive = Alive::new();
            tokio::time::sleep(W3_SLEEP).await;
        };
        u64::from(tokio::time::timeout(W3_TIMEOUT, job).await.is_err())
    };
    let (secs, timed_out) = match c {
        "floor" => return Outcome::Na("the ideal is computed: ceil(jobs/N) x 1 ms"),
        "tokio-joinset" => run_joinset(&tokio_rt(), p, tokio_body),
        "tokio-permit" => run_permit(&tokio_rt(), p, tokio_body),
        "buffer-unordered" => run_buffered(&tokio_rt(), p, tokio_body),
        "smol-sem" => run_smol(&SmolRt::new(), p, |_i| async move {
            let job = async {
                let _alive = Alive::new();
                async_io::Timer::after(W3_SLEEP).await;
                0
            };
            let deadline = async {
                async_io::Timer::after(W3_TIMEOUT).await;
                1
            };
            futures_lite::future::or(job, deadline).await
        }),
        _ => return wpxt::w3(c, p, alive_before),
    };
    w3_outcome(secs, timed_out, alive_before, p)
}

// ---------------------------------------------------------------------------
// W4 cpu: each job spins ~100 µs (blocking work, so it goes to each runtime's
// blocking pool, as a user would do).
// ---------------------------------------------------------------------------

fn w4(c: &str, p: Params) -> Outcome {
    let want = index_sum(p.jobs);
    let tokio_body = |i: u64| async move {
        tokio::task::spawn_blocking(move || spin(i))
            .await
            .expect("blocking task failed")
    };
    let (secs, sum) = match c {
        "floor" => floor_boxed(p, spin),
        "tokio-joinset" => run_joinset(&tokio_rt(), p, tokio_body),
        "tokio-permit" => {
            // The permit goes straight into the blocking closure: no extra task.
            tokio_rt().block_on(async {
                let t = Instant::now();
                let sem = Arc::new(tokio::sync::Semaphore::new(p.n));
                let mut handles = Vec::with_capacity(p.jobs);
                for i in 0..p.jobs as u64 {
                    let permit = sem.clone().acquire_owned().await.expect("semaphore closed");
                    handles.push(tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        spin(i)
                    }));
                }
                let mut sum = 0;
                for h in handles {
                    sum += h.await.expect("task failed");
                }
                (t.elapsed().as_secs_f64(), sum)
            })
        }
        "buffer-unordered" => run_buffered(&tokio_rt(), p, tokio_body),
        // `unblock` starts its closure at once: it must be called after the
        // permit is taken (inside the async block), or the bound is not held.
        "smol-sem" => run_smol(&SmolRt::new(), p, |i| async move {
            blocking::unblock(move || spin(i)).await
        }),
        _ => return wpxt::w4(c, p),
    };
    done(secs, sum == want)
}

// ---------------------------------------------------------------------------
// W5 queue memory: N = 1, the first job blocks until every other job is
// queued; bytes per queued job = (peak RSS after queueing - RSS before) / jobs.
// ---------------------------------------------------------------------------

/// Everything W5 needs to report, measured around the queueing.
struct W5Mem {
    rss_before_kb: u64,
    hwm_after_kb: u64,
}

impl W5Mem {
    fn before() -> Self {
        W5Mem {
            rss_before_kb: proc_status_kb("VmRSS"),
            hwm_after_kb: 0,
        }
    }
    fn after(&mut self) {
        self.hwm_after_kb = proc_status_kb("VmHWM");
    }
    fn outcome(
        &self,
        secs: f64,
        ok: bool,
        p: Params,
        mut extra: Vec<(&'static str, String)>,
    ) -> Outcome {
        let delta = self.hwm_after_kb.saturating_sub(self.rss_before_kb);
        extra.push(("rss_delta_kb", delta.to_string()));
        extra.push((
            "bytes_per_job",
            format!("{:.1}", delta as f64 * 1024.0 / p.jobs as f64),
        ));
        Outcome::Done { secs, ok, extra }
    }
}

/// The first job of W5: says it started, then waits for the latch.
async fn w5_blocker(started: Arc<AtomicBool>, latch: oneshot::Receiver<()>) -> u64 {
    started.store(true, Ordering::SeqCst);
    let _ = latch.await;
    0
}

fn w5(c: &str, p: Params) -> Outcome {
    // Jobs 1..=jobs queue behind the blocker (job 0); all return their index.
    let want = index_sum(p.jobs + 1);
    let started = Arc::new(AtomicBool::new(false));
    let (release, latch) = oneshot::channel::<()>();
    match c {
        "floor" => {
            let mut mem = W5Mem::before();
            let t = Instant::now();
            let mut jobs: Vec<Box<dyn FnOnce() -> u64 + Send>> = Vec::with_capacity(p.jobs);
            for i in 1..=p.jobs as u64 {
                jobs.push(black_box(Box::new(move || i)));
            }
            mem.after();
            let sum: u64 = jobs.into_iter().map(|j| j()).sum();
            mem.outcome(t.elapsed().as_secs_f64(), sum == want, p, vec![])
        }
        "tokio-joinset" => {
            let rt = tokio_rt();
            let _guard = rt.enter();
            let t = Instant::now();
            let sem = Arc::new(tokio::sync::Semaphore::new(p.n));
            let mut set = tokio::task::JoinSet::new();
            {
                let sem = sem.clone();
                let blocker = w5_blocker(started.clone(), latch);
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await.expect("semaphore closed");
                    blocker.await
                });
            }
            if !wait_flag(&started) {
                return done(0.0, false);
            }
            let mut mem = W5Mem::before();
            for i in 1..=p.jobs as u64 {
                let sem = sem.clone();
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await.expect("semaphore closed");
                    i
                });
            }
            mem.after();
            let _ = release.send(());
            let sum = rt.block_on(async {
                let mut sum = 0;
                while let Some(r) = set.join_next().await {
                    sum += r.expect("task failed");
                }
                sum
            });
            mem.outcome(t.elapsed().as_secs_f64(), sum == want, p, vec![])
        }
        "tokio-permit" => Outcome::Na(
            "the submit loop waits for a permit, so nothing queues: with the first job blocked, submitting blocks",
        ),
        "buffer-unordered" => Outcome::Na(
            "no queue: stream::iter pulls jobs lazily, at most N exist at once",
        ),
        "smol-sem" => {
            let rt = SmolRt::new();
            let t = Instant::now();
            let sem = Arc::new(smol::lock::Semaphore::new(p.n));
            let mut tasks = Vec::with_capacity(p.jobs + 1);
            {
                let sem = sem.clone();
                let blocker = w5_blocker(started.clone(), latch);
                tasks.push(rt.ex.spawn(async move {
                    let _guard = sem.acquire_arc().await;
                    blocker.await
                }));
            }
            if !wait_flag(&started) {
                return done(0.0, false);
            }
            let mut mem = W5Mem::before();
            for i in 1..=p.jobs as u64 {
                let sem = sem.clone();
                tasks.push(rt.ex.spawn(async move {
                    let _guard = sem.acquire_arc().await;
                    i
                }));
            }
            mem.after();
            let _ = release.send(());
            let sum = smol::block_on(async {
                let mut sum = 0;
                for task in tasks {
                    sum += task.await;
                }
                sum
            });
            mem.outcome(t.elapsed().as_secs_f64(), sum == want, p, vec![])
        }
        _ => wpxt::w5(c, p, started, latch, release),
    }
}

// ---------------------------------------------------------------------------
// W6 handles in select: a consumer selects over `jobs` result handles and a
// channel that another task feeds with `jobs` messages; every message and
// every result must arrive exactly once.
// ---------------------------------------------------------------------------

/// A W6 job: yields a few times so results and messages interleave.
async fn w6_job(i: u64) -> u64 {
    for _ in 0..i % 4 {
        yield_now().await;
    }
    i
}

/// The W6 producer: sends 0..msgs, yielding now and then, then closes.
async fn w6_producer(tx: mpsc::UnboundedSender<u64>, msgs: usize) {
    for m in 0..msgs as u64 {
        tx.unbounded_send(m).expect("consumer gone");
        if m % 8 == 0 {
            yield_now().await;
        }
    }
}

/// Counts what the consumer received.
struct Tally {
    results: Vec<u32>,
    msgs: Vec<u32>,
    bad: u64,
}

impl Tally {
    fn new(jobs: usize) -> Self {
        Tally {
            results: vec![0; jobs],
            msgs: vec![0; jobs],
            bad: 0,
        }
    }
    fn result(&mut self, r: Option<u64>) {
        match r.and_then(|i| self.results.get_mut(i as usize)) {
            Some(n) => *n += 1,
            None => self.bad += 1,
        }
    }
    fn msg(&mut self, m: u64) {
        match self.msgs.get_mut(m as usize) {
            Some(n) => *n += 1,
            None => self.bad += 1,
        }
    }
    fn outcome(&self, secs: f64) -> Outcome {
        let once = |v: &[u32]| v.iter().filter(|&&n| n == 1).count();
        let (r, m) = (once(&self.results), once(&self.msgs));
        Outcome::Done {
            secs,
            ok: self.bad == 0 && r == self.results.len() && m == self.msgs.len(),
            extra: vec![
                ("results_once", r.to_string()),
                ("msgs_once", m.to_string()),
                ("bad", self.bad.to_string()),
            ],
        }
    }
}

/// The consumer loop over any fused stream of results (FuturesUnordered of
/// handles, or a buffer_unordered stream) and the message channel.
async fn w6_consume<S>(mut results: S, mut rx: mpsc::UnboundedReceiver<u64>, tally: &mut Tally)
where
    S: futures::stream::FusedStream<Item = Option<u64>> + Unpin,
{
    loop {
        futures::select! {
            r = results.select_next_some() => tally.result(r),
            m = rx.select_next_some() => tally.msg(m),
            complete => break,
        }
    }
}

fn w6(c: &str, p: Params) -> Outcome {
    let mut tally = Tally::new(p.jobs);
    let (tx, rx) = mpsc::unbounded::<u64>();
    let secs = match c {
        "floor" => return Outcome::Na("no concurrency, nothing to select over"),
        "tokio-joinset" => {
            let rt = tokio_rt();
            rt.block_on(async {
                let t = Instant::now();
                tokio::spawn(w6_producer(tx, p.jobs));
                let sem = Arc::new(tokio::sync::Semaphore::new(p.n));
                let mut set = tokio::task::JoinSet::new();
                for i in 0..p.jobs as u64 {
                    let sem = sem.clone();
                    set.spawn(async move {
                        let _permit = sem.acquire_owned().await.expect("semaphore closed");
                        w6_job(i).await
                    });
                }
                let mut rx = rx;
                let mut rx_open = true;
                loop {
                    tokio::select! {
                        Some(r) = set.join_next() => tally.result(r.ok()),
                        m = rx.next(), if rx_open => match m {
                            Some(m) => tally.msg(m),
                            None => rx_open = false,
                        },
                        else => break,
                    }
                }
                t.elapsed().as_secs_f64()
            })
        }
        "tokio-permit" => {
            let rt = tokio_rt();
            rt.block_on(async {
                let t = Instant::now();
                tokio::spawn(w6_producer(tx, p.jobs));
                let sem = Arc::new(tokio::sync::Semaphore::new(p.n));
                let handles = FuturesUnordered::new();
                for i in 0..p.jobs as u64 {
                    let permit = sem.clone().acquire_owned().await.expect("semaphore closed");
                    handles.push(tokio::spawn(async move {
                        let _permit = permit;
                        w6_job(i).await
                    }));
                }
                w6_consume(handles.map(|r| r.ok()), rx, &mut tally).await;
                t.elapsed().as_secs_f64()
            })
        }
        "buffer-unordered" => {
            let rt = tokio_rt();
            rt.block_on(async {
                let t = Instant::now();
                tokio::spawn(w6_producer(tx, p.jobs));
                let results = stream::iter(0..p.jobs as u64)
                    .map(w6_job)
                    .buffer_unordered(p.n)
                    .map(Some)
                    .fuse();
                w6_consume(results, rx, &mut tally).await;
                t.elapsed().as_secs_f64()
            })
        }
        "smol-sem" => {
            let rt = SmolRt::new();
            let t = Instant::now();
            rt.ex.spawn(w6_producer(tx, p.jobs)).detach();
            let sem = Arc::new(smol::lock::Semaphore::new(p.n));
            let tasks = FuturesUnordered::new();
            for i in 0..p.jobs as u64 {
                let sem = sem.clone();
                tasks.push(rt.ex.spawn(async move {
                    let _guard = sem.acquire_arc().await;
                    w6_job(i).await
                }));
            }
            smol::block_on(w6_consume(tasks.map(Some), rx, &mut tally));
            t.elapsed().as_secs_f64()
        }
        _ => return wpxt::w6(c, p, tx, rx),
    };
    tally.outcome(secs)
}

// ---------------------------------------------------------------------------
// W7 head-of-line: N = 8 on 2 executor threads. Each round submits one job
// that spins `spin_ms` of CPU inside a single poll, then at once (no wait)
// W7_TRIVIAL trivial jobs; every job's start latency (from just before its
// submit to its first poll) is recorded, and the trivial jobs' are reported
// (p50, p99, max). Every job of a round finishes before the next round, and
// rounds start W7_PERIOD apart. Ideal: microseconds, since a thread and 7
// workers are free while the spinning job runs.
// ---------------------------------------------------------------------------

/// Trivial jobs per W7 round; W7's `jobs` is their total over all rounds.
const W7_TRIVIAL: usize = 50;

/// Time between the starts of two W7 rounds.
const W7_PERIOD: Duration = Duration::from_millis(30);

/// The spin of job `k` of a W7 round: job 0 spins, the others are trivial.
fn w7_spin(k: usize, spin: Duration) -> Duration {
    if k == 0 {
        spin
    } else {
        Duration::ZERO
    }
}

/// A W7 job. In its first poll it takes the time since `submitted` (read
/// just before its submit call), then busy-loops on the clock for `spin`
/// in that same poll (no await). Returns the start latency in ns.
async fn w7_job(submitted: Instant, spin: Duration) -> u64 {
    let started = Instant::now();
    while started.elapsed() < spin {
        std::hint::spin_loop();
    }
    started.duration_since(submitted).as_nanos() as u64
}

/// The `q` quantile (nearest rank) of sorted ns values, in µs.
fn quantile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e3
}

/// Runs the W7 rounds. `round(spin)` submits job 0 (spinning `spin`) and
/// the W7_TRIVIAL trivial jobs, waits for all of them and returns each one's
/// start latency in ns, in submit order (`None` for a job that did not run).
fn w7_rounds<R>(p: Params, mut round: R) -> Outcome
where
    R: FnMut(Duration) -> Vec<Option<u64>>,
{
    let rounds = p.jobs.div_ceil(W7_TRIVIAL);
    let spin = Duration::from_millis(p.spin_ms);
    let mut latencies = Vec::with_capacity(rounds * W7_TRIVIAL);
    let mut ran = 0;
    // One round first, not counted: every contender's threads and workers
    // are started and warm, as in a service that has been running (the
    // first round otherwise measures thread start-up, for the peers too).
    let start = Instant::now();
    round(spin);
    if let Some(rest) = W7_PERIOD.checked_sub(start.elapsed()) {
        thread::sleep(rest);
    }
    let t = Instant::now();
    for r in 0..rounds {
        let start = Instant::now();
        let results = round(spin);
        ran += results.iter().flatten().count();
        latencies.extend(results.iter().skip(1).flatten());
        if r + 1 < rounds {
            if let Some(rest) = W7_PERIOD.checked_sub(start.elapsed()) {
                thread::sleep(rest);
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let ok = ran == rounds * (1 + W7_TRIVIAL) && latencies.len() == rounds * W7_TRIVIAL;
    Outcome::Done {
        secs,
        ok,
        extra: vec![
            ("rounds", rounds.to_string()),
            ("spin_ms", p.spin_ms.to_string()),
            ("measured", latencies.len().to_string()),
            ("p50_us", format!("{:.1}", quantile_us(&latencies, 0.50))),
            ("p99_us", format!("{:.1}", quantile_us(&latencies, 0.99))),
            ("max_us", format!("{:.1}", quantile_us(&latencies, 1.0))),
        ],
    }
}

fn w7(c: &str, p: Params) -> Outcome {
    match c {
        "floor" => Outcome::Na("no concurrency: nothing starts while another job runs"),
        "buffer-unordered" => Outcome::Na(
            "one task, no parallelism: every job waits for the spinning one by construction",
        ),
        "tokio-joinset" => {
            let rt = tokio_rt();
            let sem = Arc::new(tokio::sync::Semaphore::new(p.n));
            w7_rounds(p, |spin| {
                rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    for k in 0..=W7_TRIVIAL {
                        let sem = sem.clone();
                        let submitted = Instant::now();
                        let job = w7_job(submitted, w7_spin(k, spin));
                        set.spawn(async move {
                            let _permit = sem.acquire_owned().await.expect("semaphore closed");
                            (k, job.await)
                        });
                    }
                    let mut results = vec![None; 1 + W7_TRIVIAL];
                    while let Some(r) = set.join_next().await {
                        if let Ok((k, latency)) = r {
                            results[k] = Some(latency);
                        }
                    }
                    results
                })
            })
        }
        "tokio-permit" => {
            let rt = tokio_rt();
            let sem = Arc::new(tokio::sync::Semaphore::new(p.n));
            w7_rounds(p, |spin| {
                rt.block_on(async {
                    let mut handles = Vec::with_capacity(1 + W7_TRIVIAL);
                    for k in 0..=W7_TRIVIAL {
                        // Taking the permit is part of this peer's submit.
                        let submitted = Instant::now();
                        let permit = sem.clone().acquire_owned().await.expect("semaphore closed");
                        let job = w7_job(submitted, w7_spin(k, spin));
                        handles.push(tokio::spawn(async move {
                            let _permit = permit;
                            job.await
                        }));
                    }
                    let mut results = Vec::with_capacity(handles.len());
                    for h in handles {
                        results.push(h.await.ok());
                    }
                    results
                })
            })
        }
        "smol-sem" => {
            let rt = SmolRt::new();
            let sem = Arc::new(smol::lock::Semaphore::new(p.n));
            w7_rounds(p, |spin| {
                let tasks: Vec<_> = (0..=W7_TRIVIAL)
                    .map(|k| {
                        let sem = sem.clone();
                        let submitted = Instant::now();
                        let job = w7_job(submitted, w7_spin(k, spin));
                        rt.ex.spawn(async move {
                            let _guard = sem.acquire_arc().await;
                            job.await
                        })
                    })
                    .collect();
                smol::block_on(async {
                    let mut results = Vec::with_capacity(tasks.len());
                    for task in tasks {
                        results.push(Some(task.await));
                    }
                    results
                })
            })
        }
        _ => wpxt::w7(c, p),
    }
}

// ---------------------------------------------------------------------------
// workerpoolxt: `wpxt` on the embedded executor, `wpxt-tokio` with workers
// spawned on a 2-thread tokio runtime.
// ---------------------------------------------------------------------------

mod wpxt {
    use super::*;
    use workerpoolxt::{Job, JobError, Pool, ResultHandle};

    /// The pool and, for `wpxt-tokio`, the runtime its workers run on (kept
    /// alive as long as the pool is used).
    pub(super) struct Wpxt {
        pub(super) pool: Pool,
        rt: Option<tokio::runtime::Runtime>,
    }

    impl Wpxt {
        fn new(c: &str, n: usize) -> Option<Self> {
            match c {
                "wpxt" => Some(Wpxt {
                    pool: Pool::new(n),
                    rt: None,
                }),
                "wpxt-tokio" => {
                    let rt = tokio_rt();
                    let h = rt.handle().clone();
                    let pool = Pool::builder()
                        .max_workers(n)
                        .spawner(move |f| {
                            h.spawn(f);
                        })
                        .timer(|d| tokio::time::sleep(d))
                        .build();
                    Some(Wpxt { pool, rt: Some(rt) })
                }
                _ => None,
            }
        }

        fn is_tokio(&self) -> bool {
            self.rt.is_some()
        }

        /// For `wpxt-tokio`: enters the runtime's context, as a tokio user
        /// submitting from inside their runtime would be.
        fn enter(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
            self.rt.as_ref().map(|rt| rt.enter())
        }
    }

    fn unknown(c: &str) -> Outcome {
        eprintln!("unknown contender {c}");
        done(0.0, false)
    }

    /// Submits every job with `submit`, then awaits every handle in order.
    /// Returns the elapsed seconds, the sum of the results and the errors.
    fn run<F>(w: &Wpxt, p: Params, mut submit: F) -> (f64, u64, u64)
    where
        F: FnMut(&Pool, u64) -> ResultHandle<u64>,
    {
        let _rt = w.enter();
        let t = Instant::now();
        let mut handles = Vec::with_capacity(p.jobs);
        for i in 0..p.jobs as u64 {
            handles.push(submit(&w.pool, i));
        }
        let (sum, errors) = block_on(async {
            let (mut sum, mut errors) = (0u64, 0u64);
            for h in handles {
                match h.await {
                    Ok(v) => sum += v,
                    Err(_) => errors += 1,
                }
            }
            (sum, errors)
        });
        (t.elapsed().as_secs_f64(), sum, errors)
    }

    pub(super) fn w1(c: &str, p: Params) -> Outcome {
        let Some(w) = Wpxt::new(c, p.n) else {
            return unknown(c);
        };
        let (secs, sum, errors) = run(&w, p, |pool, i| pool.submit(async move { i }));
        done(secs, sum == index_sum(p.jobs) && errors == 0)
    }

    pub(super) fn w2(c: &str, p: Params) -> Outcome {
        let Some(w) = Wpxt::new(c, p.n) else {
            return unknown(c);
        };
        let (secs, sum, errors) = if w.is_tokio() {
            run(&w, p, |pool, i| {
                pool.submit(async move {
                    tokio::time::sleep(W2_SLEEP).await;
                    i
                })
            })
        } else {
            run(&w, p, |pool, i| {
                pool.submit(async move {
                    async_io::Timer::after(W2_SLEEP).await;
                    i
                })
            })
        };
        done(secs, sum == index_sum(p.jobs) && errors == 0)
    }

    pub(super) fn w3(c: &str, p: Params, alive_before: isize) -> Outcome {
        let Some(w) = Wpxt::new(c, p.n) else {
            return unknown(c);
        };
        let tokio = w.is_tokio();
        let _rt = w.enter();
        let t = Instant::now();
        let mut handles = Vec::with_capacity(p.jobs);
        for _ in 0..p.jobs {
            let job = Job::new(move |_ctx| async move {
                let _alive = Alive::new();
                if tokio {
                    tokio::time::sleep(W3_SLEEP).await;
                } else {
                    async_io::Timer::after(W3_SLEEP).await;
                }
                Ok::<(), Infallible>(())
            })
            .timeout(W3_TIMEOUT);
            handles.push(w.pool.submit_job(job));
        }
        let timed_out = block_on(async {
            let mut timed_out = 0;
            for h in handles {
                if let Err(JobError::TimedOut) = h.await {
                    timed_out += 1;
                }
            }
            timed_out
        });
        w3_outcome(t.elapsed().as_secs_f64(), timed_out, alive_before, p)
    }

    pub(super) fn w4(c: &str, p: Params) -> Outcome {
        let Some(w) = Wpxt::new(c, p.n) else {
            return unknown(c);
        };
        let (secs, sum, errors) = run(&w, p, |pool, i| pool.submit_blocking(move || spin(i)));
        done(secs, sum == index_sum(p.jobs) && errors == 0)
    }

    pub(super) fn w5(
        c: &str,
        p: Params,
        started: Arc<AtomicBool>,
        latch: oneshot::Receiver<()>,
        release: oneshot::Sender<()>,
    ) -> Outcome {
        let Some(w) = Wpxt::new(c, p.n) else {
            return unknown(c);
        };
        let _rt = w.enter();
        let t = Instant::now();
        let mut handles = Vec::with_capacity(p.jobs + 1);
        handles.push(w.pool.submit(w5_blocker(started.clone(), latch)));
        if !wait_flag(&started) {
            return done(0.0, false);
        }
        let mut mem = W5Mem::before();
        for i in 1..=p.jobs as u64 {
            handles.push(w.pool.submit(async move { i }));
        }
        mem.after();
        let waiting = w.pool.waiting();
        let _ = release.send(());
        let (sum, errors) = block_on(async {
            let (mut sum, mut errors) = (0, 0);
            for h in handles {
                match h.await {
                    Ok(v) => sum += v,
                    Err(_) => errors += 1,
                }
            }
            (sum, errors)
        });
        mem.outcome(
            t.elapsed().as_secs_f64(),
            sum == index_sum(p.jobs + 1) && errors == 0,
            p,
            vec![("waiting", waiting.to_string())],
        )
    }

    pub(super) fn w6(
        c: &str,
        p: Params,
        tx: mpsc::UnboundedSender<u64>,
        rx: mpsc::UnboundedReceiver<u64>,
    ) -> Outcome {
        let Some(w) = Wpxt::new(c, p.n) else {
            return unknown(c);
        };
        let mut tally = Tally::new(p.jobs);
        let _rt = w.enter();
        let t = Instant::now();
        // The producer is "another task": on tokio for wpxt-tokio, else a job
        // of the pool itself (the pool is the only executor such a user has).
        let producer = match &w.rt {
            Some(rt) => {
                rt.spawn(w6_producer(tx, p.jobs));
                None
            }
            None => Some(w.pool.submit(w6_producer(tx, p.jobs))),
        };
        let handles: FuturesUnordered<ResultHandle<u64>> = (0..p.jobs as u64)
            .map(|i| w.pool.submit(w6_job(i)))
            .collect();
        block_on(async {
            w6_consume(handles.map(|r| r.ok()), rx, &mut tally).await;
            if let Some(h) = producer {
                if h.await.is_err() {
                    tally.bad += 1;
                }
            }
        });
        tally.outcome(t.elapsed().as_secs_f64())
    }

    /// W7 from the main thread: `wpxt` is `Pool::new(n)`, i.e.
    /// `Pool::builder().max_workers(n).build()` on the embedded executor.
    pub(super) fn w7(c: &str, p: Params) -> Outcome {
        let Some(w) = Wpxt::new(c, p.n) else {
            return unknown(c);
        };
        let _rt = w.enter();
        w7_rounds(p, |spin| {
            let handles: Vec<ResultHandle<u64>> = (0..=W7_TRIVIAL)
                .map(|k| {
                    let submitted = Instant::now();
                    w.pool.submit(w7_job(submitted, w7_spin(k, spin)))
                })
                .collect();
            block_on(async {
                let mut results = Vec::with_capacity(handles.len());
                for h in handles {
                    results.push(h.await.ok());
                }
                results
            })
        })
    }
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

fn run_pair(w: &str, c: &str, p: Params) -> Outcome {
    match w {
        "W1" => w1(c, p),
        "W2" => w2(c, p),
        "W3" => w3(c, p),
        "W4" => w4(c, p),
        "W5" => w5(c, p),
        "W6" => w6(c, p),
        "W7" => w7(c, p),
        _ => unreachable!("unknown workload {w}"),
    }
}

/// Ends the process if it runs longer than `secs` (a hung pool must not hang
/// the benchmark script or CI).
fn watchdog(secs: u64, what: String) {
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(secs));
        eprintln!("compare: {what} still running after {secs} s, giving up");
        println!("RESULT {what} error=\"timeout after {secs} s\" ok=false");
        std::process::exit(3);
    });
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo bench --bench compare -- <workload> <contender> [--jobs N] [--n N] [--timeout SECS] [--spin-ms MS]\n\
         \x20      cargo bench --bench compare -- smoke | list\n\
         workloads: {}\ncontenders: {}",
        WORKLOADS.join(" "),
        CONTENDERS.join(" ")
    );
    ExitCode::from(2)
}

fn smoke() -> ExitCode {
    watchdog(120, "workload=smoke contender=all".into());
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for w in WORKLOADS {
        for c in CONTENDERS {
            let p = smoke_params(w);
            let cpu = process_cpu_secs();
            let o = run_pair(w, c, p);
            let (line, ok) = result_line(w, c, p, &o, process_cpu_secs() - cpu);
            println!("{line}");
            match (&o, ok) {
                (Outcome::Na(_), _) => skipped += 1,
                (_, true) => passed += 1,
                (_, false) => failed += 1,
            }
        }
    }
    println!("smoke: {passed} passed, {failed} failed, {skipped} skipped");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench` to harness = false targets: ignore it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("smoke") => return smoke(),
        Some("list") => {
            for w in WORKLOADS {
                for c in CONTENDERS {
                    println!("{w} {c}");
                }
            }
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let (Some(w), Some(c)) = (args.first(), args.get(1)) else {
        return usage();
    };
    let w = w.to_uppercase();
    if !WORKLOADS.contains(&w.as_str()) || !CONTENDERS.contains(&c.as_str()) {
        return usage();
    }
    let mut p = default_params(&w);
    let mut timeout = 300;
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .and_then(|v| v.replace('_', "").parse::<usize>().ok());
        match (flag.as_str(), value) {
            ("--jobs", Some(v)) if v > 0 => p.jobs = v,
            ("--n", Some(v)) if v > 0 => p.n = v,
            ("--timeout", Some(v)) if v > 0 => timeout = v as u64,
            ("--spin-ms", Some(v)) if v > 0 => p.spin_ms = v as u64,
            _ => return usage(),
        }
    }
    if w == "W7" {
        // Whole rounds of W7_TRIVIAL trivial jobs.
        p.jobs = p.jobs.div_ceil(W7_TRIVIAL) * W7_TRIVIAL;
    }
    watchdog(
        timeout,
        format!("workload={w} contender={c} jobs={} n={}", p.jobs, p.n),
    );
    let cpu = process_cpu_secs();
    let o = run_pair(&w, c, p);
    let (line, ok) = result_line(&w, c, p, &o, process_cpu_secs() - cpu);
    println!("{line}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

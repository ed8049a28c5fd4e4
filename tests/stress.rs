//! Real-runtime stress: many jobs of every kind on the embedded executor,
//! tokio multi-thread and smol, with a stop racing the submits, checked by a
//! ledger (each kept handle's result is legal for what its job was), the
//! metrics (the sum rule after the stop) and a gauge of live bodies (never
//! above `max_workers`, and reaching it).
//!
//! Jobs (seeded RNG, `WPXT_SEED`): 20 % cancelled (by handle, or by their
//! token when the handle was dropped), 10 % timed out, 5 % panicking, 5 %
//! failing then maybe succeeding with retries, the rest plain; a quarter of
//! each kind blocking; 30 % of the handles dropped at once. A thread calls
//! `stop()` at a random point while submits go on.
//!
//! Size: `WPXT_STRESS_N` jobs per run; default 10^5 (about 2 s per runtime
//! in a debug build), 10^6 with `WPXT_DEEP=1`.

mod common;
use common::*;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use workerpoolxt::{
    Backoff, BoxFuture, Builder, CancelToken, Job, JobError, Metrics, Pool, ResultHandle,
};

const MAX: usize = 8;

fn jobs() -> usize {
    let deep = std::env::var_os("WPXT_DEEP").is_some();
    env_u64("WPXT_STRESS_N").map_or(if deep { 1_000_000 } else { 100_000 }, |n| n as usize)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Runs to its end (the first `MAX` of them meet at a barrier).
    Ok {
        blocking: bool,
    },
    /// Runs until cancelled.
    Cancel,
    /// Runs until its timeout (async: pending; blocking: until its context
    /// says so).
    Timeout {
        blocking: bool,
    },
    Panic {
        blocking: bool,
    },
    /// Fails until attempt `ok_at` (retry 2: attempt 4 never comes).
    Retry {
        ok_at: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Ok,
    Failed,
    TimedOut,
    Cancelled,
    Panicked,
    Stopped,
}

impl Kind {
    /// Whether `res` after `attempts` attempts is a legal end for this job.
    fn allows(self, res: Res, attempts: u32) -> bool {
        if res == Res::Stopped {
            return attempts == 0; // queued at the stop, or submitted after it
        }
        match (self, res) {
            (Kind::Ok { .. }, Res::Ok) => attempts == 1,
            (Kind::Cancel, Res::Cancelled) => attempts <= 1,
            (Kind::Timeout { .. }, Res::TimedOut) => attempts == 1,
            (Kind::Panic { .. }, Res::Panicked) => attempts == 1,
            (Kind::Retry { ok_at }, Res::Ok) => ok_at <= 3 && attempts == ok_at,
            (Kind::Retry { ok_at }, Res::Failed) => ok_at > 3 && attempts == 3,
            _ => false,
        }
    }
}

fn res_of<T, E>(r: Result<&T, &JobError<E>>) -> Res {
    match r {
        Ok(_) => Res::Ok,
        Err(JobError::Failed(_)) => Res::Failed,
        Err(JobError::TimedOut) => Res::TimedOut,
        Err(JobError::Cancelled) => Res::Cancelled,
        Err(JobError::Panicked(_)) => Res::Panicked,
        Err(JobError::Stopped) => Res::Stopped,
        Err(_) => panic!("QueueFull from an unbounded queue"),
    }
}

/// A handle of any job type, for the ledger.
trait Kept: Send {
    fn cancel(&self);
    fn outcome(self: Box<Self>) -> BoxFuture<(Res, u32)>;
}

impl<T: Send + 'static, E: Send + 'static> Kept for ResultHandle<T, E> {
    fn cancel(&self) {
        ResultHandle::cancel(self)
    }
    fn outcome(self: Box<Self>) -> BoxFuture<(Res, u32)> {
        Box::pin(async move {
            let o = (*self).outcome().await;
            (res_of(o.result()), o.attempts())
        })
    }
}

/// Counts the values jobs own that are still alive.
struct Ctx {
    gauge: Gauge,
    owned: Owned,
    barrier: Latch,
    running_max: Arc<AtomicUsize>,
}

fn pick(rng: &mut fastrand::Rng) -> Kind {
    let blocking = rng.u32(0..4) == 0;
    match rng.u32(0..100) {
        0..=19 => Kind::Cancel,
        20..=29 => Kind::Timeout { blocking },
        30..=34 => Kind::Panic { blocking },
        35..=39 => Kind::Retry {
            ok_at: rng.u32(1..=4),
        },
        _ => Kind::Ok { blocking },
    }
}

fn submit(pool: &Pool, kind: Kind, barrier: bool, c: &Ctx, token: &CancelToken) -> Box<dyn Kept> {
    let (gauge, owned) = (c.gauge.clone(), c.owned.value());
    let (latch, probe, p) = (c.barrier.clone(), c.running_max.clone(), pool.clone());
    match kind {
        Kind::Ok { blocking: false } => Box::new(pool.submit(async move {
            let _alive = gauge.enter();
            let _owned = owned;
            probe.fetch_max(p.running(), Ordering::SeqCst);
            drop(p);
            if barrier {
                // The first MAX jobs all run at once: the bound is reached.
                if gauge.now() == MAX {
                    latch.open();
                }
                latch.wait().await;
            }
            futures_lite::future::yield_now().await;
            1u64
        })),
        Kind::Ok { blocking: true } => Box::new(pool.submit_blocking(move || {
            let _alive = gauge.enter();
            let _owned = owned;
            probe.fetch_max(p.running(), Ordering::SeqCst);
            std::hint::black_box((0..200u64).sum::<u64>())
        })),
        Kind::Cancel => {
            drop(p);
            Box::new(
                pool.submit_job(
                    Job::new(move |_ctx| {
                        let (gauge, owned) = (gauge.clone(), owned.0.value());
                        async move {
                            let _alive = gauge.enter();
                            let _owned = owned;
                            std::future::pending::<Result<u64, &str>>().await
                        }
                    })
                    .cancel_token(token.clone()),
                ),
            )
        }
        Kind::Timeout { blocking } => {
            drop(p);
            let t = Duration::from_micros(500);
            let job = if blocking {
                Job::blocking(move |ctx| {
                    let _alive = gauge.enter();
                    let _owned = owned.0.value();
                    while !ctx.is_cancelled() {
                        std::thread::yield_now();
                    }
                    Ok::<u64, &str>(0)
                })
            } else {
                Job::new(move |_ctx| {
                    let (gauge, owned) = (gauge.clone(), owned.0.value());
                    async move {
                        let _alive = gauge.enter();
                        let _owned = owned;
                        std::future::pending::<Result<u64, &str>>().await
                    }
                })
            };
            Box::new(pool.submit_job(job.timeout(t)))
        }
        Kind::Panic { blocking } => {
            drop(p);
            if blocking {
                Box::new(pool.submit_blocking(move || {
                    let _alive = gauge.enter();
                    let _owned = owned;
                    panic!("expected panic: stress (blocking)");
                }))
            } else {
                Box::new(pool.submit(async move {
                    let _alive = gauge.enter();
                    let _owned = owned;
                    panic!("expected panic: stress");
                }))
            }
        }
        Kind::Retry { ok_at } => {
            drop(p);
            Box::new(
                pool.submit_job(
                    Job::new(move |ctx| {
                        let (gauge, owned) = (gauge.clone(), owned.0.value());
                        async move {
                            let _alive = gauge.enter();
                            let _owned = owned;
                            futures_lite::future::yield_now().await;
                            if ctx.attempt() >= ok_at {
                                Ok(2u64)
                            } else {
                                Err("not yet")
                            }
                        }
                    })
                    .retry(2)
                    .backoff(Backoff::none()),
                ),
            )
        }
    }
}

async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    futures_lite::future::or(fut, async {
        sleep(limit).await;
        panic!("{what}: not done within {limit:?}");
    })
    .await
}

async fn stress(b: Builder) {
    quiet_expected_panics();
    let n = jobs();
    let seed = env_u64("WPXT_SEED").unwrap_or(0x5EED_57E5);
    let mut rng = fastrand::Rng::with_seed(seed);
    let t0 = Instant::now();
    let pool = b.max_workers(MAX).build();
    let c = Ctx {
        gauge: Gauge::new(),
        owned: Owned::default(),
        barrier: Latch::new(),
        running_max: Arc::default(),
    };
    let stop_at = rng.usize(n / 2..n * 3 / 4);
    let mut stopper = None;
    let mut kinds = Vec::with_capacity(n);
    let mut kept: Vec<Option<Box<dyn Kept>>> = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    let mut to_cancel = std::collections::VecDeque::new();
    for i in 0..n {
        if i == stop_at {
            // The stop races the submits that follow.
            let p = pool.clone();
            stopper = Some(std::thread::spawn(move || p.stop()));
        }
        let kind = if i < MAX {
            Kind::Ok { blocking: false }
        } else {
            pick(&mut rng)
        };
        let token = CancelToken::new();
        let h = submit(&pool, kind, i < MAX, &c, &token);
        let keep = i < MAX || rng.u32(0..100) >= 30;
        kinds.push(kind);
        kept.push(keep.then_some(h));
        tokens.push(token);
        if kind == Kind::Cancel {
            to_cancel.push_back(i);
        }
        // Cancel each cancel-job a little later: queued or running by then.
        // Keep the queue short so the jobs run while submits go on (the
        // throttle cancels too, as cancel-jobs may hold every slot).
        let mut spins = 0u32;
        while to_cancel.len() > 16 || (pool.waiting() > 4 * MAX && !pool.is_stopped()) {
            if let Some(j) = to_cancel.pop_front() {
                match &kept[j] {
                    Some(h) if rng.bool() => h.cancel(),
                    _ => tokens[j].cancel(),
                }
            } else {
                spins += 1;
                if spins.is_multiple_of(64) {
                    std::thread::yield_now();
                }
                futures_lite::future::yield_now().await;
            }
        }
    }
    for j in to_cancel {
        tokens[j].cancel();
    }
    let stop = stopper
        .expect("stop_at < n")
        .join()
        .expect("stop() does not panic");
    assert!(pool.is_stopped());
    let submitted_at = t0.elapsed();
    within(Duration::from_secs(60), "stop", stop).await;
    assert_eq!(pool.workers(), 0, "stop resolved with workers left");

    // Ledger: every kept handle resolved, legally for its kind.
    let mut seen = [0u64; 6];
    for (i, h) in kept.into_iter().enumerate() {
        if let Some(h) = h {
            let (res, attempts) = within(Duration::from_secs(10), "a handle", h.outcome()).await;
            assert!(
                kinds[i].allows(res, attempts),
                "job {i} {:?} ended {res:?} after {attempts} attempt(s) (stop at {stop_at})",
                kinds[i]
            );
            seen[res as usize] += 1;
        }
    }

    // Metrics: the sum rule, and no more of each end than there were jobs
    // that could end so.
    let m = pool.metrics();
    let count = |f: fn(&Kind) -> bool| kinds.iter().filter(|k| f(k)).count() as u64;
    assert_eq!(m.submitted, n as u64, "{m:?}");
    assert_eq!((m.waiting, m.running), (0, 0), "{m:?}");
    assert_eq!(m.finished(), m.submitted, "sum rule: {m:?}");
    assert!(m.cancelled <= count(|k| *k == Kind::Cancel), "{m:?}");
    assert!(
        m.timed_out <= count(|k| matches!(k, Kind::Timeout { .. })),
        "{m:?}"
    );
    assert!(
        m.panicked <= count(|k| matches!(k, Kind::Panic { .. })),
        "{m:?}"
    );
    assert!(
        m.failed <= count(|k| matches!(k, Kind::Retry { ok_at: 4 })),
        "{m:?}"
    );
    assert!(
        m.retried <= 2 * count(|k| matches!(k, Kind::Retry { .. })),
        "{m:?}"
    );
    assert_eq!(m.rejected, 0, "{m:?}");
    let kept_ends = [
        m.succeeded,
        m.failed,
        m.timed_out,
        m.cancelled,
        m.panicked,
        m.stopped,
    ];
    for (r, (&s, &total)) in seen.iter().zip(kept_ends.iter()).enumerate() {
        assert!(
            s <= total,
            "kept handles ended {r}: {s} > metrics {total}: {m:?}"
        );
    }
    assert!(m.succeeded > 0, "{m:?}");

    // The bound: never above MAX, and reached.
    assert_eq!(c.gauge.max(), MAX, "most bodies at once");
    let running_max = c.running_max.load(Ordering::SeqCst);
    assert!(
        running_max <= MAX,
        "running() read {running_max} (max {MAX})"
    );
    // Nothing leaks once the pool is stopped and the handles are gone.
    drop(pool);
    let t1 = Instant::now();
    while c.owned.alive() > 0 || c.gauge.now() > 0 {
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "leak: {} values alive",
            c.owned.alive()
        );
        futures_lite::future::yield_now().await;
    }
    eprintln!(
        "stress: {n} jobs (seed {seed:#x}), submitted in {submitted_at:?}, all done in {:?}: {m:?}",
        t0.elapsed()
    );
}

// 10^4 (debug) / 10^5 (release) mixed jobs on the embedded executor.
#[test]
fn mixed_jobs_with_a_racing_stop_on_the_embedded_executor() {
    Rt::None.run("stress embedded", stress);
}

// The same on tokio's multi-thread runtime (workers on tokio, tokio timers).
#[test]
fn mixed_jobs_with_a_racing_stop_on_tokio_multi_thread() {
    Rt::TokioMulti.run("stress tokio", stress);
}

// The same on smol's global executor.
#[test]
fn mixed_jobs_with_a_racing_stop_on_smol() {
    Rt::Smol.run("stress smol", stress);
}

/// Rounds of [`hammer_bounded_queue`] per test (each takes a few ms).
const ROUNDS: usize = 100;

/// Four threads race `try_submit` on a tiny bounded queue while two workers
/// drain it; `check` runs after every attempt.
fn hammer_bounded_queue(check: impl Fn(&Pool) + Send + Sync + Copy + 'static) -> Metrics {
    let per_thread = if cfg!(debug_assertions) {
        50_000
    } else {
        500_000
    };
    let pool = Pool::builder().max_workers(2).queue_capacity(2).build();
    let accepted = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (pool, accepted) = (pool.clone(), accepted.clone());
            std::thread::spawn(move || {
                let mut handles = Vec::new();
                for _ in 0..per_thread {
                    match pool.try_submit(async { 1u8 }) {
                        Ok(h) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            handles.push(h);
                        }
                        Err(e) => assert!(e.is_full(), "refused for another reason: {e}"),
                    }
                    check(&pool);
                }
                handles
            })
        })
        .collect();
    let mut handles = Vec::new();
    for t in threads {
        handles.extend(t.join().expect("try_submit never panics"));
    }
    futures_lite::future::block_on(async {
        for h in handles {
            assert_eq!(h.await, Ok(1));
        }
        pool.stop_wait().await;
    });
    let m = pool.metrics();
    let accepted = accepted.load(Ordering::Relaxed) as u64;
    assert_eq!(m.submitted, 4 * per_thread as u64);
    assert_eq!(m.succeeded, accepted);
    assert_eq!(m.rejected + m.succeeded, m.submitted, "{m:?}");
    assert!(accepted > 0);
    m
}

// A bounded queue hammered by try_submit from several threads while workers
// drain it: never a panic, and a refusal only gives the job back
// (rejected + accepted = submitted).
#[test]
fn bounded_queue_under_concurrent_try_submit() {
    let _dog = Watchdog::new(
        "bounded_queue_under_concurrent_try_submit".into(),
        HANG_LIMIT,
    );
    // The race is narrow (two loads): many short rounds find it reliably.
    for _ in 0..ROUNDS {
        hammer_bounded_queue(|_| {});
    }
}

// Under the same race, `waiting()` never reports more jobs than the
// queue's capacity.
#[test]
fn waiting_never_exceeds_the_capacity_under_concurrent_try_submit() {
    let _dog = Watchdog::new("waiting_never_exceeds_the_capacity".into(), HANG_LIMIT);
    for _ in 0..ROUNDS {
        hammer_bounded_queue(|pool| {
            let w = pool.waiting();
            assert!(w <= 2, "waiting() = {w} with a capacity of 2");
        });
    }
}

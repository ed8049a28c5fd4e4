//! The combination matrix: every job kind × behaviour × handle use × control ×
//! pool end, each run on a fresh pool and checked against `expected(...)`.
//!
//! In the style of tokio's task-combination tests. Each combination runs a
//! fixed timeline on a one-worker pool with a manual clock, synchronised
//! only by latches, counters and bounded waits on conditions (no sleeps):
//!
//! 1. a blocker job occupies the only worker;
//! 2. the target job is submitted (and its handle used: dropped at once,
//!    polled once and dropped, or kept);
//! 3. queued controls: cancel the handle, pass the deadline, cancel the token;
//! 4. a pool end while the target is queued (stop, stop_wait, drop the pool);
//! 5. the blocker is released; the target starts (or is skipped);
//! 6. running controls: cancel the handle, time out, cancel the token;
//! 7. a pool end while the target runs;
//! 8. the target's attempts are released (`go`);
//! 9. a job that can never end on its own is unstuck (the only cleanup);
//! 10. the handle is awaited, taken later, or dropped after the end;
//! 11. the pool end completes; metrics, attempts, starts and every owned value
//!     (factory, attempt futures, outputs, errors, panicking guards) are
//!     checked: each dropped exactly once.
//!
//! One #[test] per (kind, behaviour) loops over the other dimensions.

mod common;
use common::*;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::FusedFuture;

use workerpoolxt::{Backoff, BoxFuture, CancelToken, Job, JobError, Metrics, Pool, Stop};

// ---------------------------------------------------------------------------
// Owned values that count their drops.

/// Records every tracked value made and how often it was dropped.
#[derive(Clone, Default)]
struct Ledger(Arc<LedgerInner>);

#[derive(Default)]
struct LedgerInner {
    next: AtomicU64,
    values: Mutex<HashMap<u64, (&'static str, u32)>>,
}

impl Ledger {
    fn track(&self, label: &'static str) -> Tracked {
        let id = self.0.next.fetch_add(1, Ordering::SeqCst);
        self.0
            .values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (label, 0));
        Tracked {
            ledger: self.clone(),
            id,
            bx: Box::new(id ^ MAGIC),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&HashMap<u64, (&'static str, u32)>) -> R) -> R {
        f(&self.0.values.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Labels of the values not dropped yet.
    fn alive(&self) -> Vec<&'static str> {
        self.with(|m| m.values().filter(|v| v.1 == 0).map(|v| v.0).collect())
    }

    /// Labels of the values dropped more than once.
    fn dropped_twice(&self) -> Vec<&'static str> {
        self.with(|m| m.values().filter(|v| v.1 > 1).map(|v| v.0).collect())
    }

    /// (made, dropped) for one label.
    fn count(&self, label: &str) -> (usize, usize) {
        self.with(|m| {
            let vs: Vec<_> = m.values().filter(|v| v.0 == label).collect();
            (vs.len(), vs.iter().filter(|v| v.1 > 0).count())
        })
    }
}

const MAGIC: u64 = 0x5EED_0FD2_0B00;

/// An owned value (with a heap box) whose drop is recorded in a [`Ledger`].
struct Tracked {
    ledger: Ledger,
    id: u64,
    bx: Box<u64>,
}

impl Tracked {
    fn touch(&self) -> u64 {
        *self.bx ^ MAGIC
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // Never panic here: a double drop is recorded and reported.
        let intact = *self.bx == self.id ^ MAGIC;
        let mut m = self
            .ledger
            .0
            .values
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let e = m.entry(self.id).or_insert(("corrupted", 0));
        e.1 += if intact { 1 } else { 2 };
    }
}

/// A value whose destructor panics (unless it runs during an unwind).
struct Bomb(#[allow(dead_code)] Tracked);

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("expected panic: a job's destructor");
        }
    }
}

/// An attempt future that owns a [`Bomb`]: dropping it panics.
struct WithBomb<T> {
    inner: BoxFuture<T>,
    _bomb: Bomb,
}

impl<T> Future for WithBomb<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.inner.as_mut().poll(cx)
    }
}

/// The target job's value and error: both own tracked boxes.
struct Out(#[allow(dead_code)] Tracked);
struct Fail(#[allow(dead_code)] Tracked);

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Out")
    }
}
impl fmt::Debug for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fail")
    }
}

// ---------------------------------------------------------------------------
// The dimensions.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Async,
    Blocking,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beh {
    Ok,
    /// `Err` on attempt 1, `Ok` on attempt 2 (retry 1).
    ErrThenOk,
    /// `Err` on every attempt (retry 1).
    AlwaysErr,
    PanicOnPoll,
    /// The factory panics instead of making the attempt (async: the
    /// `Job::new` closure; blocking: the closure panics as it is entered).
    PanicInFactory,
    /// The attempt's destructor panics (async: the future owns a bomb;
    /// blocking: the closure's local bomb goes off as it returns).
    PanicOnDrop,
    /// Never ends on its own (async: pending forever; blocking: blocks until
    /// the test's cleanup releases it, ignoring cancellation).
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Await,
    DropAtOnce,
    PollOnceThenDrop,
    DropAfterDone,
    TryTakeLater,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    None,
    CancelQueued,
    CancelRunning,
    CancelAfterDone,
    DeadlinePassedQueued,
    TimeoutRunning,
    TokenCancelledQueued,
    TokenCancelledRunning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    None,
    StopQueued,
    StopRunning,
    StopWaitQueued,
    StopWaitRunning,
    DropAllQueued,
    DropAllRunning,
}

const USES: [Use; 5] = [
    Use::Await,
    Use::DropAtOnce,
    Use::PollOnceThenDrop,
    Use::DropAfterDone,
    Use::TryTakeLater,
];
const CONTROLS: [Control; 8] = [
    Control::None,
    Control::CancelQueued,
    Control::CancelRunning,
    Control::CancelAfterDone,
    Control::DeadlinePassedQueued,
    Control::TimeoutRunning,
    Control::TokenCancelledQueued,
    Control::TokenCancelledRunning,
];
const ENDS: [End; 7] = [
    End::None,
    End::StopQueued,
    End::StopRunning,
    End::StopWaitQueued,
    End::StopWaitRunning,
    End::DropAllQueued,
    End::DropAllRunning,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Ok,
    Failed,
    TimedOut,
    Cancelled,
    Panicked,
    Stopped,
}

fn res_of<T, E>(r: &Result<T, JobError<E>>) -> Res {
    match r {
        Ok(_) => Res::Ok,
        Err(e) => res_err(e),
    }
}

fn res_err<E>(e: &JobError<E>) -> Res {
    match e {
        JobError::Failed(_) => Res::Failed,
        JobError::TimedOut => Res::TimedOut,
        JobError::Cancelled => Res::Cancelled,
        JobError::Panicked(_) => Res::Panicked,
        JobError::Stopped => Res::Stopped,
        _ => panic!("unexpected error kind (QueueFull or new)"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Combo {
    kind: Kind,
    beh: Beh,
    use_: Use,
    control: Control,
    end: End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expect {
    /// The handle's result (read from the handle, or from the metrics when
    /// the handle is gone and the pool is still there).
    res: Res,
    /// Attempts made (factory calls, attempt starts, `Outcome::attempts`).
    attempts: u32,
    /// Whether a worker took the job (and called its factory).
    started: bool,
    /// Whether an attempt body ran (first poll / closure past its entry):
    /// `started` but not `body` is a job that ended as it started.
    body: bool,
    /// The job cannot end on its own: the test must unstick it (cancel the
    /// pool token, release a blocking closure) after checking it is stuck.
    stuck: bool,
}

fn interrupt_of(control: Control) -> Option<Res> {
    match control {
        Control::CancelRunning | Control::TokenCancelledRunning => Some(Res::Cancelled),
        Control::TimeoutRunning => Some(Res::TimedOut),
        _ => None,
    }
}

/// What DESIGN.md says must happen, or `None` for a combination that
/// cannot be made (cancelling through a handle that was dropped).
fn expected(c: Combo) -> Option<Expect> {
    let handle_cancel = matches!(
        c.control,
        Control::CancelQueued | Control::CancelRunning | Control::CancelAfterDone
    );
    if handle_cancel && matches!(c.use_, Use::DropAtOnce | Use::PollOnceThenDrop) {
        return None; // no handle left to cancel with
    }
    let stop_queued = c.end == End::StopQueued;
    // Queued phase: the control comes first, then the end.
    let unstarted = match c.control {
        Control::CancelQueued => Some(Res::Cancelled),
        // A deadline or token is only looked at when a worker reaches the
        // job; a stop that drops it first says Stopped.
        Control::DeadlinePassedQueued if stop_queued => Some(Res::Stopped),
        Control::DeadlinePassedQueued => Some(Res::TimedOut),
        Control::TokenCancelledQueued if stop_queued => Some(Res::Stopped),
        Control::TokenCancelledQueued => Some(Res::Cancelled),
        _ if stop_queued => Some(Res::Stopped),
        _ => None,
    };
    if let Some(res) = unstarted {
        return Some(Expect {
            res,
            attempts: 0,
            started: false,
            body: false,
            stuck: false,
        });
    }
    if c.beh == Beh::PanicInFactory {
        // Ends as it starts, before any running control: one attempt, no retry.
        return Some(Expect {
            res: Res::Panicked,
            attempts: 1,
            started: true,
            body: false,
            stuck: false,
        });
    }
    if let Some(why) = interrupt_of(c.control) {
        // Interrupted during attempt 1, before it may finish.
        let res = if c.kind == Kind::Async && c.beh == Beh::PanicOnDrop {
            Res::Panicked // the future's destructor panics as it is dropped
        } else {
            why // a blocking closure's later panic is dropped with its result
        };
        return Some(Expect {
            res,
            attempts: 1,
            started: true,
            body: true,
            stuck: c.kind == Kind::Blocking && c.beh == Beh::Pending,
        });
    }
    let (res, attempts, stuck) = match c.beh {
        Beh::Ok => (Res::Ok, 1, false),
        Beh::ErrThenOk => (Res::Ok, 2, false),
        Beh::AlwaysErr => (Res::Failed, 2, false),
        Beh::PanicOnPoll | Beh::PanicOnDrop | Beh::PanicInFactory => (Res::Panicked, 1, false), // never retried
        // Unstuck by the test: async by the pool token, blocking by release.
        Beh::Pending if c.kind == Kind::Async => (Res::Cancelled, 1, true),
        Beh::Pending => (Res::Ok, 1, true),
    };
    Some(Expect {
        res,
        attempts,
        started: true,
        body: true,
        stuck,
    })
}

// ---------------------------------------------------------------------------
// Helpers.

/// How long a bounded wait may take for something that normally takes
/// microseconds (2 s with `WPXT_FAIL_FAST=1`, as under mutation testing).
fn limit() -> Duration {
    if fail_fast() {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    }
}

/// `WPXT_FAIL_FAST=1`: stop a matrix test at its first failing combination.
fn fail_fast() -> bool {
    std::env::var_os("WPXT_FAIL_FAST").is_some()
}

/// Waits (bounded) until `cond` holds; panics with `what` otherwise.
async fn eventually(what: impl Fn() -> String, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    let mut spins = 0u64;
    loop {
        if cond() {
            return;
        }
        assert!(t0.elapsed() < limit(), "timed out waiting for {}", what());
        spins += 1;
        if spins.is_multiple_of(32) {
            std::thread::yield_now();
        }
        futures_lite::future::yield_now().await;
    }
}

/// `fut`'s output if it resolves within [`limit`].
async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    if cfg!(miri) {
        // No async-io timers under miri; the watchdog bounds the wait.
        let _ = what;
        return fut.await;
    }
    futures_lite::future::or(fut, async {
        sleep(limit()).await;
        panic!("{what}: did not resolve within {:?}", limit());
    })
    .await
}

/// `builder()`, or under miri a pool whose workers each run on their
/// own thread with `block_on`: miri cannot run the embedded executor's
/// reactor (async-io needs `timerfd_create`).
fn builder() -> workerpoolxt::Builder {
    let b = Pool::builder();
    if cfg!(miri) {
        b.spawner(|f| {
            std::thread::spawn(move || futures_lite::future::block_on(f));
        })
    } else {
        b
    }
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    Pin::new(f).poll(&mut cx)
}

/// Counters of the target job.
#[derive(Default)]
struct Probe {
    /// Factory calls (attempts created).
    calls: AtomicUsize,
    /// Attempts that began to run (first poll / closure entry).
    starts: AtomicUsize,
}

#[derive(Clone)]
struct Env {
    ledger: Ledger,
    gauge: Gauge,
    probe: Arc<Probe>,
    go: Latch,
    release: Latch,
    /// The token of the target's first attempt context: cancelled by the
    /// pool when it interrupts the job (the test's sync point).
    ctx_token: Arc<Mutex<Option<CancelToken>>>,
}

impl Env {
    fn saw_ctx(&self, ctx: &workerpoolxt::JobContext) {
        let mut t = self.ctx_token.lock().unwrap();
        if t.is_none() {
            *t = Some(ctx.token().clone());
        }
    }

    fn interrupt_seen(&self) -> bool {
        self.ctx_token
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(CancelToken::is_cancelled)
    }
}

/// Opens every latch and cancels every token when dropped, so that a failed
/// combination does not leave blocked threads behind.
struct Unstick {
    latches: Vec<Latch>,
    tokens: Vec<CancelToken>,
}

impl Drop for Unstick {
    fn drop(&mut self) {
        self.latches.iter().for_each(Latch::open);
        self.tokens.iter().for_each(CancelToken::cancel);
    }
}

fn result_of(beh: Beh, attempt: u32, env: &Env) -> Result<Out, Fail> {
    match beh {
        Beh::Ok | Beh::PanicOnDrop | Beh::Pending => Ok(Out(env.ledger.track("output"))),
        Beh::ErrThenOk if attempt >= 2 => Ok(Out(env.ledger.track("output"))),
        Beh::ErrThenOk | Beh::AlwaysErr => Err(Fail(env.ledger.track("error"))),
        Beh::PanicOnPoll => panic!("expected panic: a job's poll"),
        Beh::PanicInFactory => unreachable!("the factory panicked"),
    }
}

/// The target job; every attempt waits for `go` (or, `Pending`, for ever).
fn make_job(kind: Kind, beh: Beh, env: &Env) -> Job<Out, Fail> {
    let factory = env.ledger.track("factory");
    let env = env.clone();
    let job = match kind {
        Kind::Async => Job::new(move |ctx| -> BoxFuture<Result<Out, Fail>> {
            factory.touch();
            env.saw_ctx(&ctx);
            env.probe.calls.fetch_add(1, Ordering::SeqCst);
            if beh == Beh::PanicInFactory {
                panic!("expected panic: a job's factory");
            }
            let attempt = ctx.attempt();
            let (tracked, alive) = (env.ledger.track("attempt"), env.gauge.enter());
            let env2 = env.clone();
            let fut = async move {
                let _owned = (tracked, alive);
                env2.probe.starts.fetch_add(1, Ordering::SeqCst);
                if beh == Beh::Pending {
                    std::future::pending::<()>().await;
                }
                env2.go.wait().await;
                result_of(beh, attempt, &env2)
            };
            if beh == Beh::PanicOnDrop {
                Box::pin(WithBomb {
                    inner: Box::pin(fut),
                    _bomb: Bomb(env.ledger.track("bomb")),
                })
            } else {
                Box::pin(fut)
            }
        }),
        Kind::Blocking => Job::blocking(move |ctx| {
            factory.touch();
            env.saw_ctx(&ctx);
            env.probe.calls.fetch_add(1, Ordering::SeqCst);
            if beh == Beh::PanicInFactory {
                panic!("expected panic: a job's closure, as it is entered");
            }
            let _alive = env.gauge.enter();
            let _tracked = env.ledger.track("attempt");
            let bomb = (beh == Beh::PanicOnDrop).then(|| Bomb(env.ledger.track("bomb")));
            env.probe.starts.fetch_add(1, Ordering::SeqCst);
            if beh == Beh::Pending {
                // Ignores cancellation: only the test's cleanup ends it.
                env.release.wait_blocking();
            } else {
                env.go.wait_blocking();
            }
            // The closure's own value goes off before it makes its result
            // (a return value is leaked by rustc when a local's destructor
            // panics after it was made: rust-lang/rust#47949).
            drop(bomb);
            result_of(beh, ctx.attempt(), &env)
        }),
    };
    job.retry(1).backoff(Backoff::none()).name("target")
}

/// The final counter a result lands in.
fn final_count(m: &Metrics, res: Res) -> u64 {
    match res {
        Res::Ok => m.succeeded,
        Res::Failed => m.failed,
        Res::TimedOut => m.timed_out,
        Res::Cancelled => m.cancelled,
        Res::Panicked => m.panicked,
        Res::Stopped => m.stopped,
    }
}

/// Checks a quiet pool's metrics: the blocker succeeded, the target landed
/// in `res`, and the sum rule holds.
fn check_metrics(c: Combo, m: &Metrics, ex: Expect) {
    assert_eq!(m.submitted, 2, "{c:?}: {m:?}");
    assert_eq!((m.waiting, m.running), (0, 0), "{c:?}: {m:?}");
    assert_eq!(m.finished(), m.submitted, "{c:?}: sum rule: {m:?}");
    let blocker_ok = if ex.res == Res::Ok { 2 } else { 1 };
    assert_eq!(m.succeeded, blocker_ok, "{c:?}: {m:?}");
    assert_eq!(
        final_count(m, ex.res),
        if ex.res == Res::Ok { 2 } else { 1 },
        "{c:?}: {m:?}"
    );
    assert_eq!(
        m.retried,
        u64::from(ex.attempts.saturating_sub(1)),
        "{c:?}: retries: {m:?}"
    );
}

// ---------------------------------------------------------------------------
// One combination.

async fn run_combo(c: Combo, ex: Expect) {
    let clock = ManualClock::new();
    let pool_token = CancelToken::new();
    let job_token = CancelToken::new();
    let pool = builder()
        .max_workers(1)
        .clock(clock.clone())
        .keep_idle_workers()
        .cancel_token(pool_token.clone())
        .build();
    let env = Env {
        ledger: Ledger::default(),
        gauge: Gauge::new(),
        probe: Arc::new(Probe::default()),
        go: Latch::new(),
        release: Latch::new(),
        ctx_token: Arc::default(),
    };
    let (blocker_started, blocker_release) = (Latch::new(), Latch::new());
    let _unstick = Unstick {
        latches: vec![env.go.clone(), env.release.clone(), blocker_release.clone()],
        tokens: vec![pool_token.clone(), job_token.clone()],
    };

    // 1. The blocker holds the only worker.
    let blocker = {
        let (gauge, started, release) = (
            env.gauge.clone(),
            blocker_started.clone(),
            blocker_release.clone(),
        );
        pool.submit(async move {
            let _alive = gauge.enter();
            started.open();
            release.wait().await;
        })
    };
    within("blocker start", blocker_started.wait()).await;

    // 2. Submit the target and use its handle.
    let job = make_job(c.kind, c.beh, &env);
    let job = match c.control {
        Control::DeadlinePassedQueued => job.deadline(clock.now() + Duration::from_secs(10)),
        Control::TimeoutRunning => job.timeout(Duration::from_secs(10)),
        Control::TokenCancelledQueued | Control::TokenCancelledRunning => {
            job.cancel_token(job_token.clone())
        }
        _ => job,
    };
    let mut handle = Some(pool.submit_job(job));
    match c.use_ {
        Use::DropAtOnce => handle = None,
        Use::PollOnceThenDrop => {
            let mut h = handle.take().unwrap();
            assert!(
                poll_once(&mut h).is_pending(),
                "{c:?}: queued handle is pending"
            );
            drop(h);
        }
        _ => {}
    }
    assert_eq!(pool.waiting(), 1, "{c:?}: the target is queued");

    // 3. Queued controls.
    match c.control {
        Control::CancelQueued => {
            let h = handle.as_ref().unwrap();
            h.cancel();
            assert!(h.is_finished(), "{c:?}: a queued cancel resolves at once");
            assert_eq!(
                pool.waiting(),
                0,
                "{c:?}: a cancelled job has left the queue"
            );
        }
        Control::DeadlinePassedQueued => clock.advance(Duration::from_secs(20)),
        Control::TokenCancelledQueued => job_token.cancel(),
        _ => {}
    }

    // 4. Pool end while the target is queued.
    let mut pool = Some(pool);
    let mut stop: Option<Stop> = None;
    match c.end {
        End::StopQueued => {
            stop = Some(pool.as_ref().unwrap().stop());
            if let Some(h) = &handle {
                assert!(h.is_finished(), "{c:?}: stop resolves queued jobs at once");
            }
        }
        End::StopWaitQueued => stop = Some(pool.as_ref().unwrap().stop_wait()),
        End::DropAllQueued => pool = None,
        _ => {}
    }

    // 5. Release the blocker: the target starts, or is skipped.
    blocker_release.open();
    let probe = env.probe.clone();
    let ledger = env.ledger.clone();
    if ex.body {
        eventually(
            || format!("{c:?}: target start"),
            || probe.starts.load(Ordering::SeqCst) >= 1,
        )
        .await;
    } else if ex.started {
        // Ends as it starts (its factory panics).
        eventually(
            || format!("{c:?}: target ended at its start"),
            || ledger.count("factory").1 == 1,
        )
        .await;
    } else {
        eventually(
            || format!("{c:?}: unstarted target dropped"),
            || ledger.count("factory").1 == 1,
        )
        .await;
        assert_eq!(
            probe.calls.load(Ordering::SeqCst),
            0,
            "{c:?}: never created"
        );
        assert_eq!(
            probe.starts.load(Ordering::SeqCst),
            0,
            "{c:?}: never polled"
        );
    }
    assert_eq!(within("blocker result", blocker).await, Ok(()), "{c:?}");

    // 6. Running controls.
    let interrupted = ex.body && interrupt_of(c.control).is_some();
    if ex.started {
        match c.control {
            Control::CancelRunning => handle.as_ref().unwrap().cancel(),
            Control::TimeoutRunning => clock.advance(Duration::from_secs(20)),
            Control::TokenCancelledRunning => job_token.cancel(),
            _ => {}
        }
    }
    if interrupted {
        // The handle resolves without the body finishing.
        let gauge = env.gauge.clone();
        // The pool has seen the interrupt once it cancelled the job's context.
        eventually(
            || format!("{c:?}: the job's context is cancelled"),
            || env.interrupt_seen(),
        )
        .await;
        if let Some(h) = &handle {
            eventually(
                || format!("{c:?}: handle resolves on interrupt"),
                || h.is_finished(),
            )
            .await;
        } else if let Some(p) = &pool {
            let res = ex.res;
            eventually(
                || format!("{c:?}: interrupt counted: {:?}", p.metrics()),
                || final_count(&p.metrics(), res) == 1,
            )
            .await;
        } else if c.kind == Kind::Async {
            eventually(|| format!("{c:?}: async body dropped"), || gauge.now() == 0).await;
        }
        match c.kind {
            // Async: the future was dropped before the handle resolved.
            Kind::Async => {
                assert_eq!(
                    gauge.now(),
                    0,
                    "{c:?}: async body alive after its handle resolved"
                );
                assert_eq!(
                    ledger.count("attempt"),
                    (1, 1),
                    "{c:?}: attempt future dropped"
                );
            }
            // Blocking: resolved at once, the closure still runs, slot held.
            Kind::Blocking => {
                assert_eq!(gauge.now(), 1, "{c:?}: the closure still runs");
                if let Some(p) = &pool {
                    assert_eq!(p.running(), 1, "{c:?}: the slot is held until it returns");
                }
            }
        }
    }

    // 7. Pool end while the target runs (or has ended).
    match c.end {
        End::StopRunning => stop = Some(pool.as_ref().unwrap().stop()),
        End::StopWaitRunning => stop = Some(pool.as_ref().unwrap().stop_wait()),
        End::DropAllRunning => pool = None,
        _ => {}
    }
    if let Some(s) = stop.as_mut() {
        if env.gauge.now() == 1 {
            assert!(
                poll_once(s).is_pending(),
                "{c:?}: a stop waits for the running body"
            );
        }
    }

    // 8. Let attempts finish.
    env.go.open();

    // 9. Unstick what cannot end on its own, after checking it is stuck.
    if ex.stuck {
        assert_eq!(env.gauge.now(), 1, "{c:?}: the stuck body is alive");
        if let (Some(h), false) = (&handle, interrupted) {
            assert!(
                !h.is_finished(),
                "{c:?}: a job that cannot end has not resolved"
            );
        }
        if let Some(s) = stop.as_mut() {
            assert!(
                poll_once(s).is_pending(),
                "{c:?}: a stop waits for the stuck body"
            );
        }
        match c.kind {
            Kind::Blocking => env.release.open(),
            Kind::Async => pool_token.cancel(),
        }
    }

    // The job is over once its handle resolved and its task is gone. The
    // task (its factory with it) goes first, unless the job was cancelled in
    // the queue or is a blocking closure interrupted while it ran: those
    // resolve at once.
    if let Some(h) = &handle {
        eventually(|| format!("{c:?}: the handle resolves"), || h.is_finished()).await;
        let at_once =
            c.control == Control::CancelQueued || (interrupted && c.kind == Kind::Blocking);
        if !at_once {
            assert_eq!(
                ledger.count("factory").1,
                1,
                "{c:?}: the task is dropped before its handle resolves"
            );
        }
    }
    eventually(
        || format!("{c:?}: the job is dropped"),
        || ledger.count("factory").1 == 1,
    )
    .await;

    // 10. Handle use after the end.
    if c.control == Control::CancelAfterDone {
        handle.as_ref().unwrap().cancel();
    }
    match c.use_ {
        Use::Await => {
            let h = handle.take().unwrap();
            assert_eq!(h.name(), Some("target"), "{c:?}");
            let mut of = h.outcome();
            assert!(!of.is_terminated(), "{c:?}: not taken yet");
            let o = within("await handle", &mut of).await;
            assert!(of.is_terminated(), "{c:?}: an awaited outcome is fused");
            assert!(of.try_take().is_none(), "{c:?}: an outcome is taken once");
            assert_eq!(o.error().map_or(Res::Ok, res_err), ex.res, "{c:?}: {o:?}");
            assert_eq!(o.is_ok(), ex.res == Res::Ok, "{c:?}: {o:?}");
            assert_eq!(o.attempts(), ex.attempts, "{c:?}: outcome attempts");
            assert_eq!(o.name(), Some("target"), "{c:?}");
        }
        Use::DropAfterDone => {
            let h = handle.take().unwrap();
            assert!(h.is_finished(), "{c:?}: done job's handle is finished");
            drop(h);
        }
        // Async jobs take the result from the handle, blocking ones the
        // whole outcome from its `OutcomeFuture`.
        Use::TryTakeLater if c.kind == Kind::Blocking => {
            let mut of = handle.take().unwrap().outcome();
            let o = of
                .try_take()
                .unwrap_or_else(|| panic!("{c:?}: try_take after the end"));
            assert_eq!(o.error().map_or(Res::Ok, res_err), ex.res, "{c:?}: {o:?}");
            assert_eq!(o.attempts(), ex.attempts, "{c:?}: outcome attempts");
            assert!(of.try_take().is_none(), "{c:?}: an outcome is taken once");
            assert!(of.is_terminated(), "{c:?}: a taken outcome is fused");
            assert!(poll_once(&mut of).is_pending(), "{c:?}: and stays pending");
        }
        Use::TryTakeLater => {
            let mut h = handle.take().unwrap();
            assert!(!h.is_terminated(), "{c:?}: not taken yet");
            let r = h
                .try_take()
                .unwrap_or_else(|| panic!("{c:?}: try_take after the end"));
            assert_eq!(res_of(&r), ex.res, "{c:?}: {r:?}");
            assert!(h.try_take().is_none(), "{c:?}: a result is taken once");
            assert!(h.is_terminated(), "{c:?}: a taken handle is fused");
            assert!(
                poll_once(&mut h).is_pending(),
                "{c:?}: a taken handle is fused"
            );
        }
        Use::DropAtOnce | Use::PollOnceThenDrop => {}
    }
    drop(handle);

    // 11. The end completes; everything is accounted for.
    if let Some(s) = stop.take() {
        within("stop", s).await;
        let p = pool.as_ref().unwrap();
        assert_eq!(p.workers(), 0, "{c:?}: stop resolved with workers left");
        check_metrics(c, &p.metrics(), ex);
    } else if let Some(p) = pool.take() {
        // Quiet: nothing runs, and nothing waits (a job that ends unstarted
        // counts as waiting until its outcome is published).
        eventually(
            || format!("{c:?}: pool quiet: {:?}", p.metrics()),
            || p.running() == 0 && p.waiting() == 0,
        )
        .await;
        check_metrics(c, &p.metrics(), ex);
        drop(p);
    }
    drop(pool);
    let gauge = env.gauge.clone();
    eventually(
        || format!("{c:?}: values still alive: {:?}", ledger.alive()),
        || ledger.alive().is_empty() && gauge.now() == 0,
    )
    .await;
    assert!(
        ledger.dropped_twice().is_empty(),
        "{c:?}: dropped twice: {:?}",
        ledger.dropped_twice()
    );
    assert_eq!(
        env.gauge.max(),
        1,
        "{c:?}: one worker, one body at a time (and one reached)"
    );
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        ex.attempts as usize,
        "{c:?}: attempts"
    );
    let bodies = if ex.body { ex.attempts as usize } else { 0 };
    assert_eq!(
        probe.starts.load(Ordering::SeqCst),
        bodies,
        "{c:?}: attempt starts"
    );
    assert_eq!(ledger.count("attempt").0, bodies, "{c:?}: attempt bodies");
}

/// Under miri (thousands of times slower) only a few combinations run:
/// await, cancel or time out a running job, with no end or a stop.
fn miri_subset(c: Combo) -> bool {
    c.use_ == Use::Await
        && matches!(
            c.control,
            Control::None | Control::CancelRunning | Control::TimeoutRunning
        )
        && matches!(c.end, End::None | End::StopRunning)
}

/// Runs every (use, control, end) for one (kind, behaviour); reports all
/// failing combinations at once.
fn run_all(kind: Kind, beh: Beh) {
    quiet_expected_panics();
    let _dog = Watchdog::new(format!("matrix {kind:?} {beh:?}"), HANG_LIMIT);
    let mut ran = 0;
    let mut failures = Vec::new();
    for use_ in USES {
        for control in CONTROLS {
            for end in ENDS {
                let c = Combo {
                    kind,
                    beh,
                    use_,
                    control,
                    end,
                };
                let Some(ex) = expected(c) else { continue };
                if cfg!(miri) && !miri_subset(c) {
                    continue;
                }
                ran += 1;
                if std::env::var_os("WPXT_MATRIX_TRACE").is_some() {
                    eprintln!("combo {c:?}");
                }
                let r = catch_unwind(AssertUnwindSafe(|| {
                    futures_lite::future::block_on(run_combo(c, ex))
                }));
                if let Err(p) = r {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!("{c:?} expected {ex:?}: {msg}"));
                    if fail_fast() {
                        panic!("{}", failures[0]);
                    }
                }
            }
        }
    }
    assert!(
        ran >= if cfg!(miri) { 2 } else { 200 },
        "only {ran} combinations ran"
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} combinations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! matrix_test {
    ($name:ident, $kind:expr, $beh:expr) => {
        // Every use × control × end for this kind and behaviour matches `expected`.
        #[test]
        fn $name() {
            run_all($kind, $beh);
        }
    };
}

matrix_test!(async_ok, Kind::Async, Beh::Ok);
matrix_test!(async_err_then_ok, Kind::Async, Beh::ErrThenOk);
matrix_test!(async_always_err, Kind::Async, Beh::AlwaysErr);
matrix_test!(async_panic_on_poll, Kind::Async, Beh::PanicOnPoll);
matrix_test!(async_panic_in_factory, Kind::Async, Beh::PanicInFactory);
matrix_test!(async_panic_on_drop, Kind::Async, Beh::PanicOnDrop);
matrix_test!(async_pending_forever, Kind::Async, Beh::Pending);
matrix_test!(blocking_ok, Kind::Blocking, Beh::Ok);
matrix_test!(blocking_err_then_ok, Kind::Blocking, Beh::ErrThenOk);
matrix_test!(blocking_always_err, Kind::Blocking, Beh::AlwaysErr);
matrix_test!(blocking_panic_on_poll, Kind::Blocking, Beh::PanicOnPoll);
matrix_test!(
    blocking_panic_in_factory,
    Kind::Blocking,
    Beh::PanicInFactory
);
matrix_test!(blocking_panic_on_drop, Kind::Blocking, Beh::PanicOnDrop);
matrix_test!(blocking_pending_forever, Kind::Blocking, Beh::Pending);

// The expected table itself: the pruned combinations are exactly those that
// cancel through a handle that was dropped, and every dimension is used.
#[test]
fn expected_table_prunes_only_impossible_combinations() {
    let mut kept = 0;
    for kind in [Kind::Async, Kind::Blocking] {
        for use_ in USES {
            for control in CONTROLS {
                for end in ENDS {
                    for beh in [
                        Beh::Ok,
                        Beh::ErrThenOk,
                        Beh::AlwaysErr,
                        Beh::PanicOnPoll,
                        Beh::PanicInFactory,
                        Beh::PanicOnDrop,
                        Beh::Pending,
                    ] {
                        let c = Combo {
                            kind,
                            beh,
                            use_,
                            control,
                            end,
                        };
                        let dropped = matches!(use_, Use::DropAtOnce | Use::PollOnceThenDrop);
                        let by_handle = matches!(
                            control,
                            Control::CancelQueued
                                | Control::CancelRunning
                                | Control::CancelAfterDone
                        );
                        assert_eq!(expected(c).is_none(), dropped && by_handle, "{c:?}");
                        kept += usize::from(expected(c).is_some());
                    }
                }
            }
        }
    }
    assert_eq!(kept, 2 * 7 * (5 * 8 * 7 - 2 * 3 * 7));
}

// ---------------------------------------------------------------------------
// Minimal reproductions of what the matrix found, and of destructor panics
// outside an attempt (a job's factory or closure, dropped with the job).

/// A manual clock that records each sleep deadline once that sleep has been
/// polled (registered), so a test can advance past it deterministically.
#[derive(Clone, Default)]
struct WatchedClock {
    inner: ManualClock,
    polled: Arc<Mutex<Vec<Instant>>>,
}

impl WatchedClock {
    fn was_polled(&self, deadline: Instant) -> bool {
        self.polled.lock().unwrap().contains(&deadline)
    }
}

impl workerpoolxt::Clock for WatchedClock {
    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        let mut inner = workerpoolxt::Clock::sleep_until(&self.inner, deadline);
        let polled = self.polled.clone();
        Box::pin(futures::future::poll_fn(move |cx| {
            let r = inner.as_mut().poll(cx);
            polled.lock().unwrap().push(deadline);
            r
        }))
    }
}

async fn eventually_within(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::yield_now();
        futures_lite::future::yield_now().await;
    }
}

// Once a job's deadline has passed no further attempt starts, even when the
// worker notices the failed attempt before it polls the deadline timer
// (DESIGN: "Retries stop at the deadline"; found by the matrix as a flaky
// extra attempt of a timed-out blocking job).
#[test]
fn no_retry_starts_after_the_deadline_passed() {
    let _dog = Watchdog::new(
        "no_retry_starts_after_the_deadline_passed".into(),
        HANG_LIMIT,
    );
    // The first attempt fails at t0 + 15 s, the clock jumps to t0 + 20 s once
    // the deadline timer is armed.
    no_retry_after_the_deadline(FirstAttempt::SleepsPastTheDeadline);
}

// The deadline has passed at its very instant: an attempt that fails exactly
// then starts no other. The first attempt holds its poll until the clock
// reads the deadline (so no timer is involved: the retry check alone must see
// that the deadline has passed).
#[test]
fn no_retry_starts_at_the_deadline() {
    let _dog = Watchdog::new("no_retry_starts_at_the_deadline".into(), HANG_LIMIT);
    no_retry_after_the_deadline(FirstAttempt::SpinsToTheDeadline);
}

#[derive(Clone, Copy, PartialEq)]
enum FirstAttempt {
    SleepsPastTheDeadline,
    SpinsToTheDeadline,
}

/// A job with a 10 s timeout and 3 retries whose first attempt fails after
/// (or at) its deadline, on the manual clock: one attempt, `TimedOut`.
fn no_retry_after_the_deadline(first: FirstAttempt) {
    futures_lite::future::block_on(async {
        let clock = WatchedClock::default();
        let pool = builder()
            .max_workers(1)
            .clock(clock.clone())
            .keep_idle_workers()
            .build();
        let t0 = clock.inner.now();
        let deadline = t0 + Duration::from_secs(10);
        let made = Arc::new(AtomicUsize::new(0));
        let job = {
            let (clock, made) = (clock.clone(), made.clone());
            Job::new(move |ctx| {
                made.fetch_add(1, Ordering::SeqCst);
                let clock = clock.clone();
                async move {
                    match first {
                        _ if ctx.attempt() > 1 => {}
                        FirstAttempt::SleepsPastTheDeadline => {
                            let at = t0 + Duration::from_secs(15);
                            workerpoolxt::Clock::sleep_until(&clock, at).await;
                        }
                        FirstAttempt::SpinsToTheDeadline => {
                            // Inside one poll: no timer is armed meanwhile.
                            while workerpoolxt::Clock::now(&clock) < deadline {
                                std::thread::yield_now();
                            }
                        }
                    }
                    Err::<(), _>("fails")
                }
            })
            .timeout(Duration::from_secs(10))
            .retry(3)
            .backoff(Backoff::none())
        };
        let h = pool.submit_job(job);
        let advance = match first {
            FirstAttempt::SleepsPastTheDeadline => {
                eventually_within(limit(), "the deadline timer is armed", || {
                    clock.was_polled(deadline)
                })
                .await;
                20
            }
            FirstAttempt::SpinsToTheDeadline => {
                eventually_within(limit(), "the first attempt runs", || {
                    made.load(Ordering::SeqCst) == 1
                })
                .await;
                10
            }
        };
        clock.inner.advance(Duration::from_secs(advance));
        let o = within("handle", h.outcome()).await;
        assert_eq!(o.result(), Err(&JobError::TimedOut), "{o:?}");
        assert_eq!(
            o.attempts(),
            1,
            "an attempt started at or after the deadline: {o:?}"
        );
        assert_eq!(made.load(Ordering::SeqCst), 1);
        pool.stop().await;
    });
}

// A panic in the destructor of a finished job's factory (the job is dropped
// by its worker) is contained: running() goes back to 0, later jobs run, a
// pause resolves and the metrics add up.
#[test]
fn panicking_destructor_of_a_finished_jobs_factory_is_contained() {
    quiet_expected_panics();
    let _dog = Watchdog::new("panicking_destructor_of_a_finished_job".into(), HANG_LIMIT);
    futures_lite::future::block_on(async {
        let pool = builder().max_workers(1).keep_idle_workers().build();
        let ledger = Ledger::default();
        let bomb = Bomb(ledger.track("bomb"));
        let h = pool.submit_job(Job::new(move |_ctx| {
            bomb.0.touch();
            async { Ok::<_, ()>(1) }
        }));
        assert_eq!(within("first job", h).await, Ok(1));
        assert_eq!(within("second job", pool.submit(async { 2 })).await, Ok(2));
        eventually_within(Duration::from_secs(3), "running() back to 0", || {
            pool.running() == 0 && pool.waiting() == 0
        })
        .await;
        let m = pool.metrics();
        assert_eq!(m.finished(), m.submitted, "sum rule: {m:?}");
        drop(within("pause", pool.pause()).await);
        assert!(ledger.alive().is_empty(), "the factory was dropped");
        within("stop", pool.stop()).await;
    });
}

// pool.stop() drops the queued jobs; a panicking destructor among them does
// not escape stop() and every queued handle still resolves Stopped at once.
#[test]
fn stop_contains_a_panicking_destructor_of_a_queued_job() {
    quiet_expected_panics();
    let _dog = Watchdog::new("stop_contains_a_panicking_destructor".into(), HANG_LIMIT);
    futures_lite::future::block_on(async {
        let pool = builder().max_workers(1).keep_idle_workers().build();
        let (started, release) = (Latch::new(), Latch::new());
        let blocker = {
            let (started, release) = (started.clone(), release.clone());
            pool.submit(async move {
                started.open();
                release.wait().await;
            })
        };
        within("blocker start", started.wait()).await;
        let ledger = Ledger::default();
        let bomb = Bomb(ledger.track("bomb"));
        let first = pool.submit_blocking(move || bomb.0.touch());
        let second = pool.submit(async { 2 });
        let stop = catch_unwind(AssertUnwindSafe(|| pool.stop()));
        release.open();
        assert!(stop.is_ok(), "a job's destructor panic escaped pool.stop()");
        assert!(
            first.is_finished() && second.is_finished(),
            "queued handles resolve at once"
        );
        assert_eq!(within("first", first).await, Err(JobError::Stopped));
        assert_eq!(within("second", second).await, Err(JobError::Stopped));
        assert_eq!(within("blocker", blocker).await, Ok(()));
        if let Ok(stop) = stop {
            within("stop", stop).await;
        }
        assert!(ledger.alive().is_empty());
    });
}

// A queued blocking closure that is cancelled is dropped unrun by the worker
// that reaches it; a panic in its destructor is contained there too.
#[test]
fn cancelled_queued_closure_with_panicking_destructor_is_contained() {
    quiet_expected_panics();
    let _dog = Watchdog::new("cancelled_queued_closure".into(), HANG_LIMIT);
    futures_lite::future::block_on(async {
        let pool = builder().max_workers(1).keep_idle_workers().build();
        let (started, release) = (Latch::new(), Latch::new());
        let blocker = {
            let (started, release) = (started.clone(), release.clone());
            pool.submit(async move {
                started.open();
                release.wait().await;
            })
        };
        within("blocker start", started.wait()).await;
        let ledger = Ledger::default();
        let bomb = Bomb(ledger.track("bomb"));
        let h = pool.submit_blocking(move || bomb.0.touch());
        h.cancel();
        release.open();
        assert_eq!(within("blocker", blocker).await, Ok(()));
        assert_eq!(within("cancelled", h).await, Err(JobError::Cancelled));
        assert_eq!(within("next job", pool.submit(async { 3 })).await, Ok(3));
        eventually_within(Duration::from_secs(3), "running() back to 0", || {
            pool.running() == 0
        })
        .await;
        let m = pool.metrics();
        assert_eq!(m.finished(), m.submitted, "sum rule: {m:?}");
        assert!(ledger.alive().is_empty());
        within("stop", pool.stop()).await;
    });
}

// Metrics count each job once: a blocking closure cancelled while it runs is
// counted `cancelled` when its handle resolves, and must then not also be in
// `running` while it drains (Metrics docs: every submission is "at any
// moment, in exactly one of waiting, running or a final counter").
#[test]
fn metrics_count_a_draining_blocking_job_once() {
    let _dog = Watchdog::new(
        "metrics_count_a_draining_blocking_job_once".into(),
        HANG_LIMIT,
    );
    futures_lite::future::block_on(async {
        let pool = builder().max_workers(1).keep_idle_workers().build();
        let (started, release) = (Latch::new(), Latch::new());
        let h = {
            let (started, release) = (started.clone(), release.clone());
            pool.submit_blocking(move || {
                started.open();
                release.wait_blocking();
            })
        };
        within("closure start", started.wait()).await;
        h.cancel();
        let _unstick = Unstick {
            latches: vec![release.clone()],
            tokens: vec![],
        };
        assert_eq!(within("cancelled", h).await, Err(JobError::Cancelled));
        let m = pool.metrics();
        assert_eq!(pool.running(), 1, "the slot is held while the closure runs");
        assert_eq!(
            m.finished() + m.waiting + m.running,
            m.submitted,
            "a draining job is counted twice: {m:?}"
        );
        release.open();
        within("stop", pool.stop()).await;
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    Handle,
    Token,
    Deadline,
}

// An interrupt is looked at before a running attempt is polled again: an
// attempt that became ready (it would fail and be retried) while the job was
// being cancelled, or timed out, is not polled; the job ends Cancelled or
// TimedOut after that one attempt. The attempt registers no wake-up of its
// own, so only the interrupt wakes the job: the order is deterministic.
#[test]
fn an_interrupt_wins_over_an_attempt_that_became_ready() {
    let _dog = Watchdog::new("an_interrupt_wins".into(), HANG_LIMIT);
    for how in [Interrupt::Handle, Interrupt::Token, Interrupt::Deadline] {
        futures_lite::future::block_on(async {
            let clock = ManualClock::new();
            let pool = builder()
                .max_workers(1)
                .clock(clock.clone())
                .keep_idle_workers()
                .build();
            let (go, token) = (Latch::new(), CancelToken::new());
            let polled = Arc::new(AtomicUsize::new(0));
            let job = {
                let (go, polled) = (go.clone(), polled.clone());
                Job::new(move |ctx| {
                    let (go, polled) = (go.clone(), polled.clone());
                    futures::future::poll_fn(move |_cx| {
                        if go.is_open() {
                            // Fails on attempt 1, succeeds on a retry.
                            return Poll::Ready(if ctx.attempt() >= 2 {
                                Ok(1)
                            } else {
                                Err("fails")
                            });
                        }
                        polled.fetch_add(1, Ordering::SeqCst);
                        Poll::Pending // no wake-up registered on `go`
                    })
                })
                .retry(1)
                .backoff(Backoff::none())
            };
            let job = match how {
                Interrupt::Token => job.cancel_token(token.clone()),
                Interrupt::Deadline => job.timeout(Duration::from_secs(10)),
                Interrupt::Handle => job,
            };
            let h = pool.submit_job(job);
            eventually(
                || format!("{how:?}: attempt polled"),
                || polled.load(Ordering::SeqCst) == 1,
            )
            .await;
            go.open(); // ready, but nobody is woken
            match how {
                Interrupt::Handle => h.cancel(),
                Interrupt::Token => token.cancel(),
                Interrupt::Deadline => clock.advance(Duration::from_secs(20)),
            }
            let o = within("handle", h.outcome()).await;
            let want = if how == Interrupt::Deadline {
                JobError::TimedOut
            } else {
                JobError::Cancelled
            };
            assert_eq!(o.result(), Err(&want), "{how:?}: {o:?}");
            assert_eq!(
                o.attempts(),
                1,
                "{how:?}: a retry started after the interrupt"
            );
            within("stop", pool.stop()).await;
        });
    }
}

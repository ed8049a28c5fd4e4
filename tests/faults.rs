//! Fault injection ("Faults never strand a job"): the user code that the pool
//! calls around a job — the spawner, the clock and its timers, an error's,
//! an output's or a future's `Drop`, a job that waits on its own pool or
//! cancels its own token — panics or misbehaves, or the executor under the
//! workers goes away. After every fault the handles involved resolve exactly
//! once, and `pool_recovers` checks the pool: the next job runs, `stop_wait`
//! resolves, nothing runs or waits, the metrics ledger adds up and
//! `workers() <= max_workers()`.
//!
//! Every wait is bounded (`within`, `eventually`), so a fault that strands a
//! job fails its test instead of tripping the watchdog. The cases whose fault
//! used to block an executor thread for good (a job's `wait()`, a retry
//! storm) run on a thread of their own with a time limit (`Run::OwnThread`):
//! on a blocked single-thread runtime not even the bound could run.
//!
//! On a build where those two faults still block a thread, the thread stays
//! blocked: smol's global executor with it, so run them alone
//! (`cargo test --test faults wait_inside_a_job`) to read the other failures.
//!
//! Most cases build several pools, so they take the runtime (`rt_case!`)
//! rather than one `Builder` (`rt_test!`), and wire each pool with
//! `builder_on(rt)`, as the harness does.

mod common;
use common::*;

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_executor::Executor;
use workerpoolxt::{
    Backoff, BoxFuture, Builder, CancelToken, Clock, Job, JobContext, JobError, Pool, ResultHandle,
};

/// The bound on every wait for something that must happen.
const LIMIT: Duration = Duration::from_secs(5);

/// The bound on a whole `Run::OwnThread` case.
const OWN_THREAD_LIMIT: Duration = Duration::from_secs(30);

// ----- running a case -----

/// How a case is bounded as a whole.
#[derive(Debug, Clone, Copy)]
enum Run {
    /// On the test's thread, under the harness's watchdog (`Rt::run`).
    Watched,
    /// On a thread of its own that the test waits for with a time limit: a
    /// fault that blocks the runtime's only thread fails the test, and the
    /// stuck thread is left behind.
    OwnThread,
}

/// One `#[test]` per runtime for a body `|rt: Rt| async move { .. }`:
/// `rt_case!(name, Run::Watched, body)`, with `async_std` last to add it.
macro_rules! rt_case {
    (@mod $name:ident, $run:expr, $body:expr, [$($test:ident $rt:ident),*]) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $test() {
                    run_case(Rt::$rt, stringify!($name), $run, $body)
                }
            )*
        }
    };
    ($name:ident, $run:expr, $body:expr) => {
        rt_case!(@mod $name, $run, $body, [
            no_runtime None, tokio_multi TokioMulti, tokio_current TokioCurrent, smol Smol
        ]);
    };
    ($name:ident, $run:expr, $body:expr, async_std) => {
        rt_case!(@mod $name, $run, $body, [
            no_runtime None, tokio_multi TokioMulti, tokio_current TokioCurrent, smol Smol,
            async_std AsyncStd
        ]);
    };
}

fn run_case<F, Fut>(rt: Rt, name: &'static str, run: Run, body: F)
where
    F: FnOnce(Rt) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    quiet_faults();
    match run {
        Run::Watched => rt.run(name, move |_: Builder| body(rt)),
        Run::OwnThread => {
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name(format!("{name} on {rt:?}"))
                .spawn(move || block_on_rt(rt, body, move |r| drop(tx.send(r))))
                .expect("a thread for the case");
            match rx.recv_timeout(OWN_THREAD_LIMIT) {
                Ok(Ok(())) => {}
                Ok(Err(payload)) => resume_unwind(payload),
                Err(_) => panic!(
                    "`{name}` on {rt:?} made no progress for {OWN_THREAD_LIMIT:?}: \
                     a job blocks its runtime's thread (that thread is left behind)"
                ),
            }
        }
    }
}

/// Runs `body` on `rt`, wired as `Rt::run` does, without the watchdog, and
/// reports how it ended before the runtime is dropped (a tokio runtime
/// whose thread a job blocks is shut down in the background).
fn block_on_rt<F, Fut>(rt: Rt, body: F, report: impl FnOnce(std::thread::Result<()>))
where
    F: FnOnce(Rt) -> Fut,
    Fut: Future<Output = ()>,
{
    match rt {
        Rt::None => report(catch_unwind(AssertUnwindSafe(|| {
            futures_lite::future::block_on(body(rt))
        }))),
        Rt::TokioMulti | Rt::TokioCurrent => {
            let runtime = rt.tokio_runtime();
            report(catch_unwind(AssertUnwindSafe(|| {
                runtime.block_on(async { body(rt).await })
            })));
            runtime.shutdown_background();
        }
        Rt::Smol => report(catch_unwind(AssertUnwindSafe(|| smol::block_on(body(rt))))),
        Rt::AsyncStd => report(catch_unwind(AssertUnwindSafe(|| {
            async_std::task::block_on(body(rt))
        }))),
    }
}

type SpawnFn = Arc<dyn Fn(BoxFuture<()>) + Send + Sync>;

/// How `rt` spawns a worker (a `Builder`'s spawner cannot be read back).
/// Called inside the runtime. Without a runtime: a private executor run by
/// two threads of its own, so that a spawner can wrap it.
fn native_spawner(rt: Rt) -> SpawnFn {
    match rt {
        Rt::None => {
            static EX: OnceLock<&'static Executor<'static>> = OnceLock::new();
            let ex = *EX.get_or_init(|| {
                let ex: &'static Executor<'static> = Box::leak(Box::new(Executor::new()));
                for i in 0..2 {
                    std::thread::Builder::new()
                        .name(format!("faults-executor-{i}"))
                        .spawn(move || async_io::block_on(ex.run(std::future::pending::<()>())))
                        .expect("an executor thread");
                }
                ex
            });
            Arc::new(move |f| ex.spawn(f).detach())
        }
        Rt::TokioMulti | Rt::TokioCurrent => {
            let handle = tokio::runtime::Handle::current();
            Arc::new(move |f| {
                handle.spawn(f);
            })
        }
        Rt::Smol => Arc::new(|f| smol::spawn(f).detach()),
        Rt::AsyncStd => Arc::new(|f| {
            async_std::task::spawn(f);
        }),
    }
}

/// A builder wired to `rt` as the harness wires its own (call it inside the
/// runtime): a case that needs several pools cannot share one `Builder`.
fn builder_on(rt: Rt) -> Builder {
    match rt {
        // The embedded executor, as in `Rt::run`.
        Rt::None => Pool::builder(),
        Rt::TokioMulti | Rt::TokioCurrent => {
            let spawn = native_spawner(rt);
            Pool::builder()
                .spawner(move |f| spawn(f))
                .timer(tokio::time::sleep)
        }
        Rt::Smol | Rt::AsyncStd => {
            let spawn = native_spawner(rt);
            Pool::builder().spawner(move |f| spawn(f))
        }
    }
}

// ----- checks -----

/// Awaits `h` for at most [`LIMIT`] and checks that its result was taken
/// exactly once.
async fn resolved<T, E>(h: &mut ResultHandle<T, E>, what: &str) -> Result<T, JobError<E>> {
    let r = within(LIMIT, &mut *h)
        .await
        .unwrap_or_else(|| panic!("{what}: the handle did not resolve within {LIMIT:?}"));
    assert!(h.is_finished(), "{what}: resolved but not finished");
    assert!(h.try_take().is_none(), "{what}: resolved twice");
    r
}

/// The message of a `Panicked` result.
#[track_caller]
fn panic_message<T: std::fmt::Debug, E: std::fmt::Debug>(
    r: Result<T, JobError<E>>,
    what: &str,
) -> String {
    match r {
        Err(JobError::Panicked(p)) => p.to_string(),
        other => panic!("{what}: expected Panicked, got {other:?}"),
    }
}

#[track_caller]
fn assert_workers_bounded(pool: &Pool) {
    let (workers, max) = (pool.workers(), pool.max_workers());
    assert!(
        workers <= max,
        "workers() = {workers} > max_workers() = {max}"
    );
}

/// After a fault: the next job runs, then everything [`pool_ends`] checks.
async fn pool_recovers(pool: &Pool) {
    assert_workers_bounded(pool);
    let mut next = pool.submit(async { 7u8 });
    assert_eq!(resolved(&mut next, "the next job").await, Ok(7));
    assert_workers_bounded(pool);
    pool_ends(pool).await;
}

/// `stop_wait` resolves, nothing runs or waits, every submission has its one
/// final count, and `workers() <= max_workers()`. For pools that cannot run
/// a next job (stopped, or their executor gone); otherwise [`pool_recovers`].
async fn pool_ends(pool: &Pool) {
    assert!(
        within(LIMIT, pool.stop_wait()).await.is_some(),
        "stop_wait did not resolve within {LIMIT:?}: {pool:?}"
    );
    assert_eq!((pool.running(), pool.waiting()), (0, 0), "{pool:?}");
    let m = pool.metrics();
    assert_eq!((m.running, m.waiting, m.draining), (0, 0, 0), "{m:?}");
    assert_eq!(
        m.submitted,
        m.finished(),
        "the ledger does not add up: {m:?}"
    );
    assert_workers_bounded(pool);
}

fn payload_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Runs `f` (a submit, say), failing the test if it panics.
#[track_caller]
fn no_unwind<T>(what: &str, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| panic!("{what} panicked: {}", payload_message(&*p)))
}

/// Panics of tokio's `sleep` on a runtime without timers, by thread name.
static TIMER_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// `quiet_expected_panics`, and also silences (and counts per thread, in
/// [`TIMER_PANICS`]) the panic of tokio's `sleep` on a runtime without timers.
fn quiet_faults() {
    quiet_expected_panics();
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if payload_message(info.payload()).contains("timers are disabled") {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                TIMER_PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(name);
                return;
            }
            prev(info)
        }));
    });
}

fn timer_panics_on(thread: &str) -> usize {
    TIMER_PANICS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|t| *t == thread)
        .count()
}

/// What happened, in order, across jobs.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<&'static str>>>);

impl Events {
    fn push(&self, e: &'static str) {
        self.0.lock().unwrap().push(e);
    }
    fn get(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }
}

/// Opens its latch when dropped: a job blocked on it is released even when
/// the test fails first.
struct OpenOnDrop(Latch);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

// ----- the faulty parts -----

/// `spawn`, except that its call `k` (from 1) panics.
fn spawner_panicking_at(
    spawn: SpawnFn,
    k: usize,
) -> (
    impl Fn(BoxFuture<()>) + Send + Sync + 'static,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let spawner = move |f: BoxFuture<()>| {
        let n = counted.fetch_add(1, SeqCst) + 1;
        if n == k {
            panic!("expected panic: spawner (call {n})");
        }
        spawn(f)
    };
    (spawner, calls)
}

/// Which clock call panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `Clock::now`.
    Now,
    /// `Clock::sleep_until` itself.
    SleepUntil,
    /// The first poll of the future `sleep_until` returned.
    TimerPoll,
}

impl Fault {
    fn message(self) -> &'static str {
        match self {
            Fault::Now => "expected panic: clock now",
            Fault::SleepUntil => "expected panic: clock sleep_until",
            Fault::TimerPoll => "expected panic: clock timer poll",
        }
    }
}

/// The system clock with `async-io` timers, except that from an armed call
/// on, every call of one kind panics until `disarm`: a clock that breaks.
/// (A panic that the pool contains and reads again past still ends the job.)
#[derive(Clone, Default)]
struct FaultClock(Arc<FaultState>);

#[derive(Default)]
struct FaultState {
    now_calls: AtomicUsize,
    sleep_calls: AtomicUsize,
    /// The first `now` call that panics (from 1; 0 for none).
    now_from: AtomicUsize,
    /// The first `sleep_until` call that panics.
    sleep_from: AtomicUsize,
    /// The first `sleep_until` call whose future panics when polled.
    poll_from: AtomicUsize,
    fired: AtomicUsize,
}

/// Whether call `n` is at or past the armed call `from`. Never while the
/// thread unwinds already: a second panic would abort the test process.
fn broken(from: &AtomicUsize, n: usize) -> bool {
    let from = from.load(SeqCst);
    from != 0 && n >= from && !std::thread::panicking()
}

impl FaultClock {
    /// Counts calls from here, and makes `fault`'s kind panic from its call
    /// `k` (from 1) on.
    fn arm(&self, fault: Fault, k: usize) {
        let s = &self.0;
        s.now_calls.store(0, SeqCst);
        s.sleep_calls.store(0, SeqCst);
        let from = match fault {
            Fault::Now => &s.now_from,
            Fault::SleepUntil => &s.sleep_from,
            Fault::TimerPoll => &s.poll_from,
        };
        from.store(k, SeqCst);
    }

    /// Mends the clock (timers already made by a broken one work too).
    fn disarm(&self) {
        let s = &self.0;
        for from in [&s.now_from, &s.sleep_from, &s.poll_from] {
            from.store(0, SeqCst);
        }
    }

    /// `sleep_until` calls since `arm`.
    fn sleeps(&self) -> usize {
        self.0.sleep_calls.load(SeqCst)
    }

    /// How many panics it raised.
    fn fired(&self) -> usize {
        self.0.fired.load(SeqCst)
    }
}

impl Clock for FaultClock {
    fn now(&self) -> Instant {
        let s = &self.0;
        let n = s.now_calls.fetch_add(1, SeqCst) + 1;
        if broken(&s.now_from, n) {
            s.fired.fetch_add(1, SeqCst);
            panic!("{} (call {n})", Fault::Now.message());
        }
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        let s = &self.0;
        let n = s.sleep_calls.fetch_add(1, SeqCst) + 1;
        if broken(&s.sleep_from, n) {
            s.fired.fetch_add(1, SeqCst);
            panic!("{} (call {n})", Fault::SleepUntil.message());
        }
        let state = self.0.clone();
        let timer = async_io::Timer::at(deadline);
        Box::pin(async move {
            if broken(&state.poll_from, n) {
                state.fired.fetch_add(1, SeqCst);
                panic!("{} (sleep {n})", Fault::TimerPoll.message());
            }
            timer.await;
        })
    }
}

/// A value whose `Drop` panics (counted in `drops` first), unless the
/// thread is unwinding already.
#[derive(Debug)]
struct DropPanics {
    what: &'static str,
    drops: Arc<AtomicUsize>,
}

impl DropPanics {
    fn new(what: &'static str, drops: &Arc<AtomicUsize>) -> DropPanics {
        DropPanics {
            what,
            drops: drops.clone(),
        }
    }
}

impl Drop for DropPanics {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if !std::thread::panicking() {
            panic!("expected panic: {} drop", self.what);
        }
    }
}

/// A future that is ready at once with its value and panics when dropped.
struct ReadyThenPanicOnDrop<T>(Option<T>);

impl<T: Unpin> Future for ReadyThenPanicOnDrop<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        Poll::Ready(self.0.take().expect("polled after it was ready"))
    }
}

impl<T> Drop for ReadyThenPanicOnDrop<T> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("expected panic: future drop");
        }
    }
}

/// Fails its first attempt, succeeds on the second (`Ok(2)`), with a
/// timeout (a deadline to read and arm) and a fixed backoff (a timer).
fn flaky_job() -> Job<u32, &'static str> {
    Job::new(|ctx: JobContext| async move {
        if ctx.attempt() == 1 {
            Err("first attempt fails")
        } else {
            Ok(ctx.attempt())
        }
    })
    .timeout(Duration::from_secs(30))
    .retry(1)
    .backoff(Backoff::fixed(Duration::from_millis(1)))
}

/// Runs a private executor on a thread of its own until `shut_down`, which
/// drops it and every task on it; its spawner then drops each future at once
/// (as tokio's `Handle::spawn` does after a shutdown).
struct PrivateExecutor {
    ex: Arc<Mutex<Option<Arc<Executor<'static>>>>>,
    stop: async_channel::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PrivateExecutor {
    fn start() -> PrivateExecutor {
        let ex = Arc::new(Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let runs = ex.clone();
        let thread = std::thread::Builder::new()
            .name("faults-private-executor".into())
            .spawn(move || {
                async_io::block_on(runs.run(async move {
                    let _ = stopped.recv().await;
                }))
            })
            .expect("an executor thread");
        PrivateExecutor {
            ex: Arc::new(Mutex::new(Some(ex))),
            stop,
            thread: Some(thread),
        }
    }

    fn spawner(&self) -> impl Fn(BoxFuture<()>) + Send + Sync + 'static {
        let ex = self.ex.clone();
        move |f| {
            let ex = ex.lock().unwrap().clone();
            match ex {
                Some(ex) => ex.spawn(f).detach(),
                None => drop(f),
            }
        }
    }

    fn shut_down(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            t.join().expect("the executor thread");
        }
        let ex = self.ex.lock().unwrap().take();
        let ex = ex.expect("shut down once");
        assert_eq!(Arc::strong_count(&ex), 1, "the executor is still in use");
        drop(ex);
    }
}

impl Drop for PrivateExecutor {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
    }
}

// ===== 1. the spawner panics =====

// A spawner that panics never makes the submit panic. When its panic left no
// worker alive (k = 1), that job resolves Panicked with the spawner's
// message; when a worker is alive (k = 2, the first worker busy), the job
// still runs. `workers()` never exceeds `max_workers()` (it read
// usize::MAX: the failed spawn was given back twice).
rt_case!(
    spawner_panics,
    Run::Watched,
    |rt: Rt| async move {
        // k = 1: the first spawn panics.
        let (spawn, calls) = spawner_panicking_at(native_spawner(rt), 1);
        let pool = Pool::builder().max_workers(2).spawner(spawn).build();
        let mut first = no_unwind("a submit whose spawn panicked", || {
            pool.submit(async { 1u8 })
        });
        assert_eq!(calls.load(SeqCst), 1, "the submit started no worker");
        assert_workers_bounded(&pool);
        let msg = panic_message(
            resolved(&mut first, "the job whose spawn panicked").await,
            "k = 1",
        );
        assert!(msg.contains("expected panic: spawner"), "{msg}");
        pool_recovers(&pool).await;

        // k = 2: the second spawn panics while the first worker is busy.
        let (spawn, calls) = spawner_panicking_at(native_spawner(rt), 2);
        let pool = Pool::builder().max_workers(2).spawner(spawn).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _release = OpenOnDrop(latch.clone());
        let mut busy = pool.submit(blocker(&gauge, &latch));
        assert!(
            within(LIMIT, gauge.until(|g| g.now() >= 1)).await.is_some(),
            "the first job did not start"
        );
        let mut second = no_unwind("a submit whose spawn panicked", || {
            pool.submit(async { 2u8 })
        });
        // The submit starts a worker, or (if it came while the busy worker
        // was still in its job's first poll, holding the search) that
        // worker does once its job waits.
        eventually("a second worker was tried", || calls.load(SeqCst) >= 2).await;
        assert_workers_bounded(&pool);
        latch.open();
        assert_eq!(resolved(&mut busy, "the busy job").await, Ok(()));
        // Not failed: it ran, on the busy worker once free, or on one that a
        // later spawn started.
        assert_eq!(
            resolved(&mut second, "the job whose spawn panicked").await,
            Ok(2)
        );
        pool_recovers(&pool).await;
    },
    async_std
);

// ===== 2. a worker unwinds or is dropped while idle =====

// The clock's `sleep_until` panics when an idle worker arms its idle timer
// (its first arm, k = 1, or the next worker's, k = 2): the next job still
// runs.
rt_case!(idle_timer_panics, Run::Watched, |rt: Rt| async move {
    for k in [1, 2] {
        let clock = FaultClock::default();
        let pool = builder_on(rt)
            .max_workers(2)
            .idle_timeout(Duration::from_millis(20))
            .clock(clock.clone())
            .build();
        clock.arm(Fault::SleepUntil, k);
        // One job after another, each followed by an idle timer, until the
        // armed one panicked.
        for i in 1..=k {
            if i > 1 {
                // The next idle period is a new worker's.
                eventually("the idle worker left", || pool.workers() == 0).await;
            }
            let mut h = pool.submit(async move { i });
            assert_eq!(resolved(&mut h, "a job before the fault").await, Ok(i));
            eventually("the worker went idle and armed its timer", || {
                clock.sleeps() >= i
            })
            .await;
        }
        assert!(clock.fired() >= 1, "k = {k}: the idle timer did not panic");
        clock.disarm();
        let mut after = pool.submit(async { 10usize });
        assert_eq!(
            resolved(&mut after, "the job after the idle worker panicked").await,
            Ok(10),
            "k = {k}"
        );
        pool_recovers(&pool).await;
    }
});

// On a tokio runtime built without `enable_time`, tokio's sleep panics when
// an idle worker arms its timer: the next job still runs, with a spawner and
// `.timer(tokio::time::sleep)`, and with `Builder::tokio()` (feature `tokio`).
mod tokio_without_time {
    use super::*;

    #[test]
    fn multi_thread() {
        idle_worker_without_tokio_time(true);
    }

    #[test]
    fn current_thread() {
        idle_worker_without_tokio_time(false);
    }
}

fn idle_worker_without_tokio_time(multi: bool) {
    quiet_faults();
    let flavour = if multi { "multi" } else { "current" };
    let _dog = Watchdog::new(format!("tokio_without_time {flavour}"), HANG_LIMIT);
    let variants: &[bool] = if cfg!(feature = "tokio") {
        &[false, true]
    } else {
        &[false]
    };
    for &builder_tokio in variants {
        // The runtime's threads and the one that drives it share this name,
        // so the timer panics are counted for this case alone.
        let tag = format!("faults-no-time-{flavour}-{builder_tokio}");
        let name = tag.clone();
        let case = std::thread::Builder::new()
            .name(tag.clone())
            .spawn(move || {
                let rt = if multi {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .thread_name(&name)
                        .build()
                } else {
                    tokio::runtime::Builder::new_current_thread().build()
                }
                .expect("tokio runtime");
                rt.block_on(async {
                    let pool = tokio_builder(builder_tokio)
                        .max_workers(2)
                        .idle_timeout(Duration::from_millis(20))
                        .build();
                    let mut first = pool.submit(async { 1u8 });
                    assert_eq!(resolved(&mut first, "the first job").await, Ok(1));
                    eventually("tokio's sleep panicked in the idle worker", || {
                        timer_panics_on(&name) >= 1
                    })
                    .await;
                    let mut next = pool.submit(async { 2u8 });
                    assert_eq!(
                        resolved(&mut next, "the job after the idle worker panicked").await,
                        Ok(2),
                        "Builder::tokio(): {builder_tokio}"
                    );
                    pool_recovers(&pool).await;
                });
            })
            .expect("a thread for the case");
        if let Err(p) = case.join() {
            resume_unwind(p);
        }
    }
}

/// Workers and timer on the current tokio runtime: by hand, or with
/// `Builder::tokio()`.
fn tokio_builder(builder_tokio: bool) -> Builder {
    #[cfg(feature = "tokio")]
    if builder_tokio {
        return Pool::builder().tokio();
    }
    assert!(!builder_tokio, "Builder::tokio() needs the tokio feature");
    let handle = tokio::runtime::Handle::current();
    Pool::builder()
        .spawner(move |f| {
            handle.spawn(f);
        })
        .timer(tokio::time::sleep)
}

// The executor goes away under an idle worker (dropping it drops the
// worker): a job submitted afterwards, whose worker the spawner drops at
// once, waits while the pool is open (a spawner may hold workers back on
// purpose: `Builder::spawner`), and resolves Stopped at the latest at
// stop_wait, which resolves only once it has.
rt_test!(
    executor_goes_away_under_an_idle_worker,
    |b: Builder| async move {
        let mut executor = PrivateExecutor::start();
        let pool = b
            .max_workers(2)
            .keep_idle_workers()
            .spawner(executor.spawner())
            .build();
        let mut first = pool.submit(async { 1u8 });
        assert_eq!(resolved(&mut first, "the first job").await, Ok(1));
        assert_eq!(pool.workers(), 1, "the worker left early");
        executor.shut_down();
        let mut next = pool.submit(async { 2u8 });
        assert_eq!(pool.workers(), 0, "a worker its executor dropped counts");
        pool_ends(&pool).await;
        assert!(next.is_finished(), "stop_wait resolved before the job did");
        assert_eq!(
            resolved(&mut next, "a job whose executor is gone").await,
            Err(JobError::Stopped)
        );
    }
);

// A tokio runtime shut down under the pool, its Handle still the spawner:
// with an idle worker, the next job waits while the pool is open and
// resolves Stopped at the latest at stop_wait; with a running job and jobs
// queued behind it, the running one resolves Stopped at once, and the
// queued ones at stop (or stop_wait), which resolves never before the last
// of them.
mod tokio_runtime_goes_away {
    use super::*;

    #[test]
    fn multi_thread() {
        runtime_goes_away(true);
    }

    #[test]
    fn current_thread() {
        runtime_goes_away(false);
    }
}

fn runtime_goes_away(multi: bool) {
    quiet_faults();
    let _dog = Watchdog::new(format!("tokio_runtime_goes_away multi={multi}"), HANG_LIMIT);
    let flavour = if multi {
        Rt::TokioMulti
    } else {
        Rt::TokioCurrent
    };
    let runtime = || flavour.tokio_runtime();
    let pool_on = |rt: &tokio::runtime::Runtime, max: usize| {
        let handle = rt.handle().clone();
        Pool::builder()
            .max_workers(max)
            .spawner(move |f| {
                handle.spawn(f);
            })
            .build()
    };

    // An idle worker.
    let rt = runtime();
    let pool = pool_on(&rt, 2);
    let mut first = pool.submit(async { 1u8 });
    rt.block_on(async {
        assert_eq!(resolved(&mut first, "the first job").await, Ok(1));
    });
    // Waits for its threads to end: no task runs on it afterwards.
    rt.shutdown_timeout(LIMIT);
    futures_lite::future::block_on(async {
        let mut next = pool.submit(async { 2u8 });
        pool_ends(&pool).await;
        assert!(next.is_finished(), "stop_wait resolved before the job did");
        assert_eq!(
            resolved(&mut next, "a job whose runtime is gone").await,
            Err(JobError::Stopped)
        );
    });

    // A running job, three queued behind it; the runtime goes away: the
    // running job resolves Stopped at once, and `stop` (or `stop_wait`)
    // resolves only once every handle has.
    for stop_wait in [false, true] {
        let rt = runtime();
        let pool = pool_on(&rt, 1);
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _release = OpenOnDrop(latch.clone());
        let mut running = pool.submit(blocker(&gauge, &latch));
        let mut queued: Vec<_> = (0..3u8).map(|i| pool.submit(async move { i })).collect();
        rt.block_on(async {
            assert!(
                within(LIMIT, gauge.until(|g| g.now() >= 1)).await.is_some(),
                "the first job did not start"
            );
        });
        // Waits for its threads to end: no task runs on it afterwards.
        rt.shutdown_timeout(LIMIT);
        futures_lite::future::block_on(async {
            let what = "a job whose runtime went away";
            assert_eq!(resolved(&mut running, what).await, Err(JobError::Stopped));
            assert_eq!(gauge.now(), 0, "the running job's future was not dropped");
            let stop = if stop_wait {
                pool.stop_wait()
            } else {
                pool.stop()
            };
            assert!(
                within(LIMIT, stop).await.is_some(),
                "the stop did not resolve after the runtime went away"
            );
            assert!(
                queued.iter().all(|h| h.is_finished()),
                "the stop resolved before every handle did"
            );
            for h in &mut queued {
                assert_eq!(resolved(h, what).await, Err(JobError::Stopped));
            }
            pool_ends(&pool).await;
        });
    }
}

// ===== 3. user code panics outside the job body =====

// (a) An error whose Drop panics, dropped by the pool before a retry: the
// job resolves Panicked with that message, and pause() still resolves.
// (b) An output whose Drop panics: dropped by the pool (its handle gone) the
// pool goes on; dropped by the test, it panics in the test's code.
// (c) A job future that panics when dropped after it is ready: the handle
// resolves (Ok or Panicked) and the pool goes on.
rt_case!(
    user_code_panics_around_a_job,
    Run::Watched,
    |rt: Rt| async move {
        let drops = Arc::new(AtomicUsize::new(0));

        // (a)
        for backoff in [Backoff::none(), Backoff::fixed(Duration::from_millis(1))] {
            let pool = builder_on(rt).max_workers(1).build();
            let d = drops.clone();
            let job = Job::new(move |_| {
                let error = DropPanics::new("error", &d);
                async move { Err::<(), _>(error) }
            })
            .retry(2)
            .backoff(backoff);
            let mut h = pool.submit_job(job);
            let msg = panic_message(
                resolved(&mut h, "a job whose error panics when dropped").await,
                "error drop",
            );
            assert!(msg.contains("error drop"), "{msg}");
            let guard = within(LIMIT, pool.pause())
                .await
                .expect("pause() did not resolve after the fault");
            drop(guard);
            pool_recovers(&pool).await;
        }

        // (b) The handle dropped before the job ends.
        let pool = builder_on(rt).max_workers(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _release = OpenOnDrop(latch.clone());
        drops.store(0, SeqCst);
        let h = {
            let (gauge, latch, d) = (gauge.clone(), latch.clone(), drops.clone());
            pool.submit(async move {
                let _in = gauge.enter();
                latch.wait().await;
                DropPanics::new("output", &d)
            })
        };
        assert!(
            within(LIMIT, gauge.until(|g| g.now() >= 1)).await.is_some(),
            "the job did not start"
        );
        drop(h);
        latch.open();
        eventually("the pool dropped the unwanted output", || {
            drops.load(SeqCst) == 1
        })
        .await;
        pool_recovers(&pool).await;

        // (b) The handle awaited: the test drops the value.
        let pool = builder_on(rt).max_workers(1).build();
        let d = drops.clone();
        let mut h = pool.submit(async move { DropPanics::new("output", &d) });
        let value = resolved(&mut h, "a job whose output panics when dropped")
            .await
            .expect("the output");
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(value)));
        assert!(dropped.is_err(), "the output's drop panics in the test");
        pool_recovers(&pool).await;

        // (c) Plainly submitted, and as a `Job` attempt.
        let pool = builder_on(rt).max_workers(1).build();
        let mut plain = pool.submit(ReadyThenPanicOnDrop(Some(3u8)));
        let mut job = pool.submit_job(Job::new(|_| ReadyThenPanicOnDrop(Some(Ok::<u8, ()>(4)))));
        match resolved(&mut plain, "a future that panics when dropped").await {
            Ok(v) => assert_eq!(v, 3),
            r => assert!(panic_message(r, "future drop").contains("future drop")),
        }
        match resolved(&mut job, "an attempt that panics when dropped").await {
            Ok(v) => assert_eq!(v, 4),
            r => assert!(panic_message(r, "future drop").contains("future drop")),
        }
        pool_recovers(&pool).await;
    }
);

// (d, e) The clock breaks at each of its calls for a job in turn (the job's
// start, its deadline read and armed, its backoff read, armed and polled, its
// end), until the job no longer reaches the broken call: the job resolves
// Panicked with the clock's message, pause() resolves, and once the clock is
// mended the next job runs. (The submit's reading is clock_panics_in_submit's.)
rt_case!(clock_panics_in_a_job, Run::Watched, |rt: Rt| async move {
    // The fewest calls of each kind a job with a timeout and a backoff makes.
    for (fault, fewest) in [
        (Fault::Now, 3),
        (Fault::SleepUntil, 2),
        (Fault::TimerPoll, 1),
    ] {
        let mut panicked = 0;
        for k in 1.. {
            assert!(k <= 100, "{fault:?}: the job never got past call {k}");
            let what = format!("{fault:?} broken from call {k}");
            let clock = FaultClock::default();
            let pool = builder_on(rt)
                .max_workers(1)
                .keep_idle_workers()
                .clock(clock.clone())
                .build();
            // Queued behind a pause, so that the clock breaks after the
            // submit and before the job's first reading.
            let paused = within(LIMIT, pool.pause())
                .await
                .expect("an idle pool pauses");
            let mut h = pool.submit_job(flaky_job());
            clock.arm(fault, k);
            drop(paused);
            let r = resolved(&mut h, &what).await;
            clock.disarm();
            // Ok once the job made fewer than k such calls (and so for every
            // larger k).
            let past_the_job = r.is_ok();
            match r {
                Ok(v) => assert_eq!(v, 2, "{what}"),
                r => {
                    let msg = panic_message(r, &what);
                    assert!(msg.contains(fault.message()), "{what}: {msg}");
                    assert!(clock.fired() >= 1, "{what}: Panicked, but not by the clock");
                    panicked += 1;
                }
            }
            let guard = within(LIMIT, pool.pause())
                .await
                .unwrap_or_else(|| panic!("{what}: pause() did not resolve"));
            drop(guard);
            pool_recovers(&pool).await;
            if past_the_job {
                break;
            }
        }
        assert!(
            panicked >= fewest,
            "{fault:?}: the job made only {panicked} such calls"
        );
    }
});

// Around the end of a job, with the clock broken from the next reading on:
// a job that ends with its value resolves Panicked (the clock read for its
// record panicked), a cancelled one stays Cancelled (its end was decided
// before the reading); and a timer that panics as a running job arms its
// deadline ends the job Panicked — an async one dropped at once, a
// blocking one only once its closure has returned (its slot is its until
// then).
rt_case!(
    clock_panics_around_a_job_end,
    Run::Watched,
    |rt: Rt| async move {
        let clock = FaultClock::default();
        let pool = builder_on(rt)
            .max_workers(2)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let running = |n: usize, gauge: &Gauge| {
            let gauge = gauge.clone();
            async move {
                assert!(
                    within(LIMIT, gauge.until(|g| g.now() == n)).await.is_some(),
                    "{n} job(s) did not start"
                );
            }
        };

        // A value, read out by a broken clock.
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _release = OpenOnDrop(latch.clone());
        let mut valued = {
            let wait = blocker(&gauge, &latch);
            pool.submit(async move {
                wait.await;
                7u8
            })
        };
        running(1, &gauge).await;
        clock.arm(Fault::Now, 1);
        latch.open();
        let msg = panic_message(
            resolved(&mut valued, "a value ending on a broken clock").await,
            "now",
        );
        assert!(msg.contains(Fault::Now.message()), "{msg}");
        clock.disarm();

        // A cancel, decided before the broken reading.
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _release = OpenOnDrop(latch.clone());
        let mut cancelled = pool.submit(blocker(&gauge, &latch));
        running(1, &gauge).await;
        clock.arm(Fault::Now, 1);
        cancelled.cancel();
        assert_eq!(
            resolved(&mut cancelled, "a cancel ending on a broken clock").await,
            Err(JobError::Cancelled)
        );
        clock.disarm();

        // A running async job whose deadline timer panics: dropped at once.
        let gauge = Gauge::new();
        clock.arm(Fault::SleepUntil, 1);
        let mut waiting = {
            let gauge = gauge.clone();
            pool.submit_job(
                Job::new(move |_| {
                    let gauge = gauge.clone();
                    async move {
                        let _in = gauge.enter();
                        std::future::pending::<()>().await;
                        Ok::<_, ()>(())
                    }
                })
                .timeout(Duration::from_secs(3600)),
            )
        };
        let msg = panic_message(
            resolved(&mut waiting, "an async job's timer").await,
            "timer",
        );
        assert!(msg.contains(Fault::SleepUntil.message()), "{msg}");
        assert_eq!(gauge.now(), 0, "the async job was not dropped");
        clock.disarm();

        // A running blocking job whose deadline timer panics: it resolves only
        // once its closure has returned.
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _release = OpenOnDrop(latch.clone());
        clock.arm(Fault::SleepUntil, 1);
        let mut blocking = {
            let (gauge, latch) = (gauge.clone(), latch.clone());
            pool.submit_job(
                Job::blocking(move |_| {
                    let _in = gauge.enter();
                    latch.wait_blocking();
                    Ok::<_, ()>(())
                })
                .timeout(Duration::from_secs(3600)),
            )
        };
        running(1, &gauge).await;
        eventually("the timer panicked", || clock.fired() >= 1).await;
        settle().await;
        assert!(
            !blocking.is_finished() && pool.running() == 1,
            "a blocking job resolved, or freed its slot, while its closure ran"
        );
        latch.open();
        let msg = panic_message(
            resolved(&mut blocking, "a blocking job's timer").await,
            "timer",
        );
        assert!(msg.contains(Fault::SleepUntil.message()), "{msg}");
        clock.disarm();
        eventually("running() back to 0", || pool.running() == 0).await;
        pool_recovers(&pool).await;
    }
);

// ===== 4. the clock panics inside submit =====

// `Clock::now` panics in the submit: the panic comes out of the submit (the
// clock is user code called on the submitter's thread), with nothing
// reserved: no queue place is leaked (with `queue_capacity(1)` the next
// try_submit is accepted and runs) and nothing is counted.
rt_case!(clock_panics_in_submit, Run::Watched, |rt: Rt| async move {
    let clock = FaultClock::default();
    let pool = builder_on(rt)
        .max_workers(1)
        .queue_capacity(1)
        .clock(clock.clone())
        .build();
    // The next reading is the submit's.
    clock.arm(Fault::Now, 1);
    let submitted = catch_unwind(AssertUnwindSafe(|| pool.submit(async { 1u8 })));
    clock.disarm();
    assert_eq!(clock.fired(), 1, "the submit did not read the clock");
    let Err(payload) = submitted else {
        panic!("the submit did not panic");
    };
    let msg = payload_message(&*payload);
    assert!(msg.contains(Fault::Now.message()), "{msg}");
    assert_eq!(pool.waiting(), 0, "the failed submit holds a queue place");
    assert_eq!(pool.metrics().submitted, 0, "the failed submit was counted");
    let mut next = pool
        .try_submit(async { 2u8 })
        .unwrap_or_else(|e| panic!("the next try_submit was refused (full: {})", e.is_full()));
    assert_eq!(resolved(&mut next, "the next try_submit").await, Ok(2));
    pool_recovers(&pool).await;
});

// ===== 5. a job cancels its own token =====

// A job that cancels `ctx.token()` ends Cancelled (async: its future is
// dropped; blocking: at once, while the closure still runs), its slot is
// freed, and neither the pool's token nor a token given with
// `.cancel_token(t)` is cancelled by it: another job using `t` runs.
rt_case!(
    job_cancels_its_own_token,
    Run::Watched,
    |rt: Rt| async move {
        let cancels_itself = || {
            Job::new(|ctx: JobContext| async move {
                ctx.token().cancel();
                std::future::pending::<()>().await;
                Ok::<_, ()>(())
            })
        };

        // Async, with the pool's token.
        let pool = builder_on(rt).max_workers(2).build();
        let mut h = pool.submit_job(cancels_itself());
        assert_eq!(
            resolved(&mut h, "a job that cancelled its token").await,
            Err(JobError::Cancelled)
        );
        eventually("running() back to 0", || pool.running() == 0).await;
        assert!(
            !pool.cancel_token().is_cancelled(),
            "the pool's token was cancelled"
        );
        pool_recovers(&pool).await;

        // Async, with a token of its own.
        let pool = builder_on(rt).max_workers(2).build();
        let t = CancelToken::new();
        let mut h = pool.submit_job(cancels_itself().cancel_token(t.clone()));
        assert_eq!(
            resolved(
                &mut h,
                "a job with its own token that cancelled ctx.token()"
            )
            .await,
            Err(JobError::Cancelled)
        );
        eventually("running() back to 0", || pool.running() == 0).await;
        assert!(!t.is_cancelled(), "the job's token was cancelled");
        let mut other =
            pool.submit_job(Job::new(|_| async { Ok::<_, ()>(9u8) }).cancel_token(t.clone()));
        assert_eq!(
            resolved(&mut other, "another job using the token").await,
            Ok(9)
        );
        pool_recovers(&pool).await;

        // Async, its context handed out: the token is made and cancelled on
        // another thread only after the job waits (the job's worker must
        // start watching a token that did not exist when it last looked).
        let pool = builder_on(rt).max_workers(2).build();
        let (ctx_tx, ctx_rx) = async_channel::bounded::<JobContext>(1);
        let mut h = pool.submit_job(Job::new(move |ctx: JobContext| {
            let ctx_tx = ctx_tx.clone();
            async move {
                ctx_tx.send(ctx).await.expect("the test listens");
                std::future::pending::<()>().await;
                Ok::<_, ()>(())
            }
        }));
        let ctx = within(LIMIT, ctx_rx.recv())
            .await
            .expect("the job started")
            .expect("the job sent its context");
        // Lets the job go on to wait (if it has not yet, the job finds the
        // token itself: the case the fault's first part covers).
        settle().await;
        ctx.token().cancel();
        assert_eq!(
            resolved(&mut h, "a job whose handed-out token was cancelled").await,
            Err(JobError::Cancelled)
        );
        assert!(ctx.is_cancelled());
        drop(ctx);
        pool_recovers(&pool).await;

        // Blocking: it resolves Cancelled while the closure still runs.
        let pool = builder_on(rt).max_workers(2).build();
        let release = Latch::new();
        let _release = OpenOnDrop(release.clone());
        let job = {
            let release = release.clone();
            Job::blocking(move |ctx: JobContext| {
                ctx.token().cancel();
                while !ctx.is_cancelled() {
                    std::hint::spin_loop();
                }
                release.wait_blocking();
                Ok::<_, ()>(())
            })
        };
        let mut h = pool.submit_job(job);
        assert_eq!(
            resolved(&mut h, "a blocking job that cancelled its token").await,
            Err(JobError::Cancelled)
        );
        release.open();
        eventually("running() back to 0", || pool.running() == 0).await;
        pool_recovers(&pool).await;
    }
);

// ===== 6. handle.wait() inside a job =====

// `wait()` inside an async job (a future or a `Job::new` attempt) would block
// its executor thread: it panics at once with a message that says to
// `.await`, and the inner job runs anyway. Inside a blocking closure it
// blocks a thread of the blocking pool, and works. Run on a thread of its
// own: the old `wait()` blocked tokio's current-thread runtime for good.
rt_case!(wait_inside_a_job, Run::OwnThread, |rt: Rt| async move {
    for as_job in [false, true] {
        let pool = builder_on(rt).max_workers(4).build();
        let ran = Latch::new();
        let (p, r) = (pool.clone(), ran.clone());
        let inner = move || {
            let r = r.clone();
            p.submit(async move {
                r.open();
                5u8
            })
            .wait()
        };
        let msg = if as_job {
            let mut outer = pool.submit_job(Job::new(move |_| {
                let inner = inner.clone();
                async move { Ok::<_, ()>(inner()) }
            }));
            panic_message(
                resolved(&mut outer, "a Job that calls wait()").await,
                "wait",
            )
        } else {
            let mut outer = pool.submit(async move { inner() });
            panic_message(
                resolved(&mut outer, "a job that calls wait()").await,
                "wait",
            )
        };
        assert!(msg.contains(".await"), "{msg}");
        assert!(
            within(LIMIT, ran.wait()).await.is_some(),
            "the inner job did not run"
        );
        pool_recovers(&pool).await;
    }

    let pool = builder_on(rt).max_workers(4).build();
    let p = pool.clone();
    let mut h = pool.submit_blocking(move || p.submit(async { 5u8 }).wait());
    assert_eq!(
        resolved(&mut h, "a blocking closure that calls wait()").await,
        Ok(Ok(5))
    );
    pool_recovers(&pool).await;
});

// ===== 7. a job awaits its own pool's stop or pause =====

// `stop()` inside a job resolves once every other job has ended, and the job
// then returns its value; `stop_wait()` inside a job waits for the queued
// job too; two jobs each awaiting `stop()` both resolve. `pause()` inside a
// job panics at once (it would wait for its own job), and later jobs run.
/// A job awaits its own pool's `stop()` (or, `drain`, `stop_wait()`) while
/// another job runs on a latch and a third is queued: the stop inside
/// resolves only after the other job ended (and, draining, the queued one
/// ran; stopping, it resolves `Stopped`), and then the job returns.
async fn a_stop_inside_a_job_waits_for_the_others(rt: Rt, drain: bool) {
    let what = if drain { "stop_wait()" } else { "stop()" };
    let pool = builder_on(rt).max_workers(2).build();
    let events = Events::default();
    let (gauge, latch, go) = (Gauge::new(), Latch::new(), Latch::new());
    let _release = (OpenOnDrop(latch.clone()), OpenOnDrop(go.clone()));
    let mut other = {
        let (g, l, e) = (gauge.clone(), latch.clone(), events.clone());
        pool.submit(async move {
            let _in = g.enter();
            l.wait().await;
            e.push("other job ends");
        })
    };
    let mut stopper = {
        let (g, go, p, e) = (gauge.clone(), go.clone(), pool.clone(), events.clone());
        pool.submit(async move {
            let _in = g.enter();
            go.wait().await;
            if drain {
                p.stop_wait().await;
            } else {
                p.stop().await;
            }
            e.push("stop inside returns");
            "stopper"
        })
    };
    assert!(
        within(LIMIT, gauge.until(|g| g.now() >= 2)).await.is_some(),
        "the two jobs did not start"
    );
    let mut queued = {
        let e = events.clone();
        pool.submit(async move {
            e.push("queued job runs");
            3u8
        })
    };
    assert_eq!(pool.waiting(), 1);
    go.open();
    eventually(&format!("the job called {what}"), || pool.is_stopped()).await;
    settle().await;
    assert!(
        !stopper.is_finished(),
        "{what} inside a job resolved while another job ran"
    );
    latch.open();
    assert_eq!(
        resolved(&mut stopper, &format!("the job awaiting {what}")).await,
        Ok("stopper")
    );
    assert_eq!(resolved(&mut other, "the other job").await, Ok(()));
    let (queued_ends, order): (_, &[&str]) = if drain {
        (
            Ok(3),
            &["other job ends", "queued job runs", "stop inside returns"],
        )
    } else {
        (
            Err(JobError::Stopped),
            &["other job ends", "stop inside returns"],
        )
    };
    assert_eq!(resolved(&mut queued, "the queued job").await, queued_ends);
    assert_eq!(events.get(), order);
    pool_ends(&pool).await;
}

rt_case!(stop_inside_a_job, Run::Watched, |rt: Rt| async move {
    a_stop_inside_a_job_waits_for_the_others(rt, false).await;
    a_stop_inside_a_job_waits_for_the_others(rt, true).await;

    // A stop awaited inside a job and then given up (dropped unresolved):
    // that job's worker no longer counts as waiting for the stop, so a stop
    // awaited inside another job still waits for it.
    let pool = builder_on(rt).max_workers(2).build();
    let (gauge, latch, gave_up) = (Gauge::new(), Latch::new(), Latch::new());
    let (quit, go) = (Latch::new(), Latch::new());
    let _release = (
        OpenOnDrop(quit.clone()),
        OpenOnDrop(go.clone()),
        OpenOnDrop(latch.clone()),
    );
    let mut quitter = {
        let (p, g, l, gave_up, quit) = (
            pool.clone(),
            gauge.clone(),
            latch.clone(),
            gave_up.clone(),
            quit.clone(),
        );
        pool.submit(async move {
            let _in = g.enter();
            // Once both jobs run: a stop begun earlier would drop the other.
            quit.wait().await;
            let mut stop = p.stop();
            assert!(futures_lite::future::poll_once(&mut stop).await.is_none());
            drop(stop);
            gave_up.open();
            l.wait().await;
            "quitter"
        })
    };
    let mut stopper = {
        let (p, g, go) = (pool.clone(), gauge.clone(), go.clone());
        pool.submit(async move {
            let _in = g.enter();
            go.wait().await;
            p.stop().await;
            "stopper"
        })
    };
    assert!(
        within(LIMIT, gauge.until(|g| g.now() >= 2)).await.is_some(),
        "the two jobs did not start"
    );
    quit.open();
    assert!(
        within(LIMIT, gave_up.wait()).await.is_some(),
        "the quitter did not give its stop up"
    );
    go.open();
    settle().await;
    assert!(
        !stopper.is_finished(),
        "a stop inside a job resolved beside a job that gave its stop up"
    );
    latch.open();
    assert_eq!(resolved(&mut quitter, "the quitter").await, Ok("quitter"));
    assert_eq!(resolved(&mut stopper, "the stopper").await, Ok("stopper"));
    pool_ends(&pool).await;

    // Two jobs awaiting stop(), called once both run.
    let pool = builder_on(rt).max_workers(2).build();
    let (gauge, go) = (Gauge::new(), Latch::new());
    let _release = OpenOnDrop(go.clone());
    let mut both: Vec<_> = (0..2u8)
        .map(|i| {
            let (p, g, go) = (pool.clone(), gauge.clone(), go.clone());
            pool.submit(async move {
                let _in = g.enter();
                go.wait().await;
                p.stop().await;
                i
            })
        })
        .collect();
    assert!(
        within(LIMIT, gauge.until(|g| g.now() >= 2)).await.is_some(),
        "the two jobs did not start"
    );
    go.open();
    for (i, h) in both.iter_mut().enumerate() {
        assert_eq!(resolved(h, "a job awaiting stop()").await, Ok(i as u8));
    }
    pool_ends(&pool).await;

    // pause() inside a job.
    let pool = builder_on(rt).max_workers(2).build();
    let p = pool.clone();
    let mut h = pool.submit(async move {
        let _paused = p.pause().await;
        1u8
    });
    let msg = panic_message(resolved(&mut h, "a job awaiting pause()").await, "pause");
    assert!(msg.contains("pause"), "{msg}");
    pool_recovers(&pool).await;
});

// ===== 8. a retry storm =====

// Jobs that fail at once and retry for ever without a backoff yield to their
// executor between attempts: on the same runtime (even tokio's current
// thread), another pool's trivial job completes within 2 s, and a cancel
// ends the storm. As many storms as executor threads (at least 2), all
// retrying before the other job comes, so the test fails wherever they used
// to spin. Run on a thread of its own: the old storm held tokio's
// current-thread runtime for good.
rt_case!(
    retry_storm,
    Run::OwnThread,
    |rt: Rt| async move {
        let storms = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2);
        let a = builder_on(rt).max_workers(storms).build();
        let b = builder_on(rt).max_workers(1).build();
        // Cancelled on the way out too, so that a failure stops the storms.
        let token = CancelToken::new();
        struct CancelOnDrop(CancelToken);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                self.0.cancel();
            }
        }
        let _stop_storms = CancelOnDrop(token.clone());
        let attempts: Vec<_> = (0..storms).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let mut storm: Vec<_> = attempts
            .iter()
            .map(|attempts| {
                let attempts = attempts.clone();
                a.submit_job(
                    Job::new(move |_| {
                        attempts.fetch_add(1, SeqCst);
                        async { Err::<(), _>("no") }
                    })
                    .retry(u32::MAX)
                    .backoff(Backoff::none())
                    .cancel_token(token.clone()),
                )
            })
            .collect();
        eventually("every storm retries", || {
            attempts.iter().all(|a| a.load(SeqCst) >= 100)
        })
        .await;
        let mut other = b.submit(async { 1u8 });
        assert_eq!(
            within(Duration::from_secs(2), &mut other).await,
            Some(Ok(1)),
            "a retry storm starved another pool's job"
        );
        for h in &storm {
            h.cancel();
        }
        for h in &mut storm {
            assert_eq!(
                resolved(h, "a cancelled retry storm").await,
                Err(JobError::Cancelled)
            );
        }
        assert!(!token.is_cancelled());
        pool_recovers(&b).await;
        pool_recovers(&a).await;
    },
    async_std
);

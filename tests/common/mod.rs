//! Shared test harness: run one async test body on every runtime, a watchdog
//! so that a hang fails fast, a manual clock, latches, and probes that count
//! live job bodies, polls and drops.
#![allow(dead_code, unused_macros, unused_imports)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};
use workerpoolxt::{BoxFuture, Builder, Clock, Pool};

/// How long any single test may take before the watchdog aborts the process.
pub const HANG_LIMIT: Duration = Duration::from_secs(60);

/// The runtimes every behaviour test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    /// No runtime: workers on the embedded executor, the test on `block_on`.
    None,
    /// tokio multi-thread (2 workers), workers spawned through a `Handle`.
    TokioMulti,
    /// tokio current-thread, workers spawned through a `Handle`.
    TokioCurrent,
    /// smol's global executor.
    Smol,
    /// async-std (smoke set).
    AsyncStd,
}

impl Rt {
    /// The tokio runtime of `TokioMulti` (2 worker threads) or
    /// `TokioCurrent`, with every driver enabled.
    pub fn tokio_runtime(self) -> tokio::runtime::Runtime {
        if self == Rt::TokioMulti {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .expect("tokio runtime")
    }

    /// Runs `body` on this runtime with a `Pool::builder()` already wired to
    /// it (spawner and timer). Aborts the process if it takes longer than
    /// [`HANG_LIMIT`].
    pub fn run<F, Fut>(self, name: &str, body: F)
    where
        F: FnOnce(Builder) -> Fut,
        Fut: Future<Output = ()>,
    {
        let _dog = Watchdog::new(format!("{name} on {self:?}"), HANG_LIMIT);
        match self {
            Rt::None => futures_lite::future::block_on(body(Pool::builder())),
            Rt::TokioMulti | Rt::TokioCurrent => {
                let rt = self.tokio_runtime();
                rt.block_on(async {
                    let handle = tokio::runtime::Handle::current();
                    let b = Pool::builder()
                        .spawner(move |f| {
                            handle.spawn(f);
                        })
                        .timer(tokio::time::sleep);
                    body(b).await
                });
            }
            Rt::Smol => smol::block_on(body(Pool::builder().spawner(|f| smol::spawn(f).detach()))),
            Rt::AsyncStd => async_std::task::block_on(body(Pool::builder().spawner(|f| {
                async_std::task::spawn(f);
            }))),
        }
    }
}

/// Defines one `#[test]` per runtime for an async body taking a `Builder`:
///
/// ```ignore
/// rt_test!(fifo_order, |b| async move { let pool = b.max_workers(1).build(); ... });
/// ```
///
/// creates `mod fifo_order { fn no_runtime(); fn tokio_multi(); fn tokio_current(); fn smol(); }`.
/// Add `async_std` as a last argument to run it on async-std too.
#[macro_export]
macro_rules! rt_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn no_runtime() {
                $crate::common::Rt::None.run(stringify!($name), $body)
            }
            #[test]
            fn tokio_multi() {
                $crate::common::Rt::TokioMulti.run(stringify!($name), $body)
            }
            #[test]
            fn tokio_current() {
                $crate::common::Rt::TokioCurrent.run(stringify!($name), $body)
            }
            #[test]
            fn smol() {
                $crate::common::Rt::Smol.run(stringify!($name), $body)
            }
        }
    };
    ($name:ident, $body:expr, async_std) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn no_runtime() {
                $crate::common::Rt::None.run(stringify!($name), $body)
            }
            #[test]
            fn tokio_multi() {
                $crate::common::Rt::TokioMulti.run(stringify!($name), $body)
            }
            #[test]
            fn tokio_current() {
                $crate::common::Rt::TokioCurrent.run(stringify!($name), $body)
            }
            #[test]
            fn smol() {
                $crate::common::Rt::Smol.run(stringify!($name), $body)
            }
            #[test]
            fn async_std() {
                $crate::common::Rt::AsyncStd.run(stringify!($name), $body)
            }
        }
    };
}

/// Aborts the whole test process if not dropped within `limit`: a hung test
/// fails in a minute instead of running into CI's limit.
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
}

/// [`HANG_LIMIT`] under `WPXT_FAIL_FAST=1` (mutation testing): a mutant that
/// hangs a test is caught in seconds instead of a minute. The tests guarded
/// by `HANG_LIMIT` take well under a second when nothing hangs.
pub const FAIL_FAST_HANG_LIMIT: Duration = Duration::from_secs(15);

impl Watchdog {
    /// Aborts after `limit`; a limit of [`HANG_LIMIT`] or less is cut to
    /// [`FAIL_FAST_HANG_LIMIT`] when `WPXT_FAIL_FAST` is set (the longer
    /// limits of the model and deep runs stay as they are).
    pub fn new(name: String, limit: Duration) -> Watchdog {
        let limit = if limit <= HANG_LIMIT && std::env::var_os("WPXT_FAIL_FAST").is_some() {
            limit.min(FAIL_FAST_HANG_LIMIT)
        } else {
            limit
        };
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                // Straight to stderr: `eprintln!` would go to libtest's
                // capture, which is lost when the process aborts.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "watchdog: test `{name}` hung for {limit:?}; aborting"
                );
                std::process::abort();
            }
        });
        Watchdog { done: Some(tx) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
    }
}

/// A one-shot gate: `wait` (async) or `wait_blocking` until `open` is called.
#[derive(Clone, Default)]
pub struct Latch {
    inner: Arc<LatchInner>,
}

#[derive(Default)]
struct LatchInner {
    open: AtomicBool,
    event: Event,
}

impl Latch {
    pub fn new() -> Latch {
        Latch::default()
    }

    pub fn open(&self) {
        self.inner.open.store(true, Ordering::SeqCst);
        self.inner.event.notify(usize::MAX);
    }

    pub fn is_open(&self) -> bool {
        self.inner.open.load(Ordering::SeqCst)
    }

    pub async fn wait(&self) {
        loop {
            if self.is_open() {
                return;
            }
            let l = self.inner.event.listen();
            if self.is_open() {
                return;
            }
            l.await;
        }
    }

    pub fn wait_blocking(&self) {
        loop {
            if self.is_open() {
                return;
            }
            let l = self.inner.event.listen();
            if self.is_open() {
                return;
            }
            l.wait();
        }
    }
}

/// Counts job bodies alive at once (from `enter` to the guard's drop, which
/// happens when the job's future is dropped) and keeps the high-water mark.
#[derive(Clone, Default)]
pub struct Gauge {
    inner: Arc<GaugeInner>,
}

#[derive(Default)]
struct GaugeInner {
    now: AtomicUsize,
    max: AtomicUsize,
    entered: AtomicUsize,
    left: AtomicUsize,
    changed: Event,
}

impl Gauge {
    pub fn new() -> Gauge {
        Gauge::default()
    }

    /// A body starts; it counts until the returned guard is dropped.
    pub fn enter(&self) -> GaugeGuard {
        // `entered` first: a test that waits for `now` and then reads
        // `entered` must not find it short (seen under AddressSanitizer).
        self.inner.entered.fetch_add(1, Ordering::SeqCst);
        let now = self.inner.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.max.fetch_max(now, Ordering::SeqCst);
        self.inner.changed.notify(usize::MAX);
        GaugeGuard {
            gauge: self.clone(),
            bx: Box::new(0xC0FFEE),
        }
    }

    pub fn now(&self) -> usize {
        self.inner.now.load(Ordering::SeqCst)
    }

    pub fn max(&self) -> usize {
        self.inner.max.load(Ordering::SeqCst)
    }

    pub fn entered(&self) -> usize {
        self.inner.entered.load(Ordering::SeqCst)
    }

    pub fn left(&self) -> usize {
        self.inner.left.load(Ordering::SeqCst)
    }

    /// Waits until `cond(self)` holds (re-checked on every enter and leave).
    pub async fn until(&self, cond: impl Fn(&Gauge) -> bool) {
        loop {
            if cond(self) {
                return;
            }
            let l = self.inner.changed.listen();
            if cond(self) {
                return;
            }
            l.await;
        }
    }

    /// Blocking version of [`until`](Self::until).
    pub fn until_blocking(&self, cond: impl Fn(&Gauge) -> bool) {
        loop {
            if cond(self) {
                return;
            }
            let l = self.inner.changed.listen();
            if cond(self) {
                return;
            }
            l.wait();
        }
    }
}

/// Alive while a body is; owns a `Box` so a leak or double drop shows in
/// sanitizers and miri.
pub struct GaugeGuard {
    gauge: Gauge,
    bx: Box<u32>,
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        assert_eq!(*self.bx, 0xC0FFEE, "gauge guard dropped twice or corrupted");
        self.gauge.inner.now.fetch_sub(1, Ordering::SeqCst);
        self.gauge.inner.left.fetch_add(1, Ordering::SeqCst);
        self.gauge.inner.changed.notify(usize::MAX);
    }
}

/// A future that counts its polls and its drop, around an inner future.
pub struct Counted<F> {
    inner: Pin<Box<F>>,
    counts: Arc<Counts>,
}

#[derive(Default, Debug)]
pub struct Counts {
    pub polls: AtomicUsize,
    pub drops: AtomicUsize,
    pub completions: AtomicUsize,
}

impl Counts {
    pub fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }
    pub fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
    pub fn completions(&self) -> usize {
        self.completions.load(Ordering::SeqCst)
    }
}

pub fn counted<F: Future>(f: F) -> (Counted<F>, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    (
        Counted {
            inner: Box::pin(f),
            counts: counts.clone(),
        },
        counts,
    )
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.counts.polls.fetch_add(1, Ordering::SeqCst);
        let r = self.inner.as_mut().poll(cx);
        if r.is_ready() {
            self.counts.completions.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
}

impl<F> Drop for Counted<F> {
    fn drop(&mut self) {
        self.counts.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A manual clock: time moves only when the test calls [`advance`](Self::advance).
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ClockInner>,
}

struct ClockInner {
    base: Instant,
    state: Mutex<ClockState>,
    sleepers_changed: Event,
}

struct ClockState {
    elapsed: Duration,
    /// (deadline, sleep id, waker): one entry per pending sleep, even when
    /// several sleeps share a waker (a job's backoff and deadline do).
    sleepers: Vec<(Instant, u64, Waker)>,
    next_id: u64,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    pub fn new() -> ManualClock {
        ManualClock {
            inner: Arc::new(ClockInner {
                base: Instant::now(),
                state: Mutex::new(ClockState {
                    elapsed: Duration::ZERO,
                    sleepers: Vec::new(),
                    next_id: 0,
                }),
                sleepers_changed: Event::new(),
            }),
        }
    }

    pub fn now(&self) -> Instant {
        self.inner.base + self.inner.state.lock().unwrap().elapsed
    }

    /// Moves time forward by `d` and wakes every sleeper whose time has come.
    pub fn advance(&self, d: Duration) {
        let wakers: Vec<Waker> = {
            let mut st = self.inner.state.lock().unwrap();
            st.elapsed += d;
            let now = self.inner.base + st.elapsed;
            let (due, rest): (Vec<_>, Vec<_>) =
                st.sleepers.drain(..).partition(|(at, _, _)| *at <= now);
            st.sleepers = rest;
            due.into_iter().map(|(_, _, w)| w).collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Sleepers registered and not yet due.
    pub fn sleepers(&self) -> usize {
        self.inner.state.lock().unwrap().sleepers.len()
    }

    /// Waits until at least `n` sleepers are registered (so that an
    /// `advance` reaches them).
    pub async fn until_sleepers(&self, n: usize) {
        loop {
            if self.sleepers() >= n {
                return;
            }
            let l = self.inner.sleepers_changed.listen();
            if self.sleepers() >= n {
                return;
            }
            l.await;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        ManualClock::now(self)
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        let id = {
            let mut st = self.inner.state.lock().unwrap();
            st.next_id += 1;
            st.next_id
        };
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline,
            id,
        })
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: Instant,
    id: u64,
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        let id = self.id;
        if let Ok(mut st) = self.clock.inner.state.lock() {
            st.sleepers.retain(|(_, i, _)| *i != id);
        }
    }
}

impl Future for ManualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.clock.inner.state.lock().unwrap();
        if self.clock.inner.base + st.elapsed >= self.deadline {
            return Poll::Ready(());
        }
        let id = self.id;
        st.sleepers.retain(|(_, i, _)| *i != id);
        st.sleepers.push((self.deadline, id, cx.waker().clone()));
        drop(st);
        self.clock.inner.sleepers_changed.notify(usize::MAX);
        Poll::Pending
    }
}

/// A runtime-agnostic sleep for use inside test jobs (async-io works under
/// every runtime).
pub async fn sleep(d: Duration) {
    async_io::Timer::after(d).await;
}

/// Silences the default panic hook's output for panics whose message starts
/// with "expected panic" (tests that panic on purpose), once per process.
pub fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !msg.starts_with("expected panic") {
                prev(info);
            }
        }));
    });
}

/// `Some(output)` if `fut` resolves within `limit`, `None` otherwise: a
/// bounded wait that fails fast instead of hanging into the watchdog.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        sleep(limit).await;
        None
    })
    .await
}

/// Yields `n` times to the executor.
pub async fn yields(n: usize) {
    for _ in 0..n {
        futures_lite::future::yield_now().await;
    }
}

/// Lets the workers run for a while, to show that something does *not*
/// happen (there is no event for a job that does not start or a worker that
/// does not leave). Tests that use it also prove the order with events.
pub async fn settle() {
    yields(10).await;
    sleep(Duration::from_millis(30)).await;
}

/// A job that counts itself in `gauge` and blocks until `latch` opens.
pub fn blocker(gauge: &Gauge, latch: &Latch) -> impl Future<Output = ()> + Send + 'static {
    let (gauge, latch) = (gauge.clone(), latch.clone());
    async move {
        let _in = gauge.enter();
        latch.wait().await;
    }
}

/// Counts values owned by jobs that are still alive: a job holds an
/// [`OwnedValue`] (which owns a `Box`, so a leak or a double drop shows in
/// sanitizers and miri) until it is dropped.
#[derive(Clone, Default)]
pub struct Owned(pub Arc<AtomicUsize>);

/// One value a job owns; its `Owned` counts it until it is dropped.
pub struct OwnedValue(pub Owned, #[allow(dead_code)] Box<u64>);

impl Owned {
    pub fn value(&self) -> OwnedValue {
        self.0.fetch_add(1, Ordering::SeqCst);
        OwnedValue(self.clone(), Box::new(7))
    }

    /// Values still alive.
    pub fn alive(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for OwnedValue {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Opens every latch when a check fails (dropped while panicking), so no
/// job stays blocked on one after the test gave up.
pub struct OpenOnPanic(pub Vec<Latch>);

impl Drop for OpenOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.iter().for_each(Latch::open);
        }
    }
}

/// A number from the environment (`WPXT_CASES`, `WPXT_SEED`, ...), if set.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A property-test runner that runs `cases` cases from `seed` (the same
/// sequence on every run), shrinking a failure for at most `shrink` steps
/// (`WPXT_SHRINK` overrides it: 0 fails at once, for mutation testing).
pub fn seeded_runner(cases: u32, seed: u64, shrink: u32) -> proptest::test_runner::TestRunner {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: env_u64("WPXT_SHRINK").map_or(shrink, |n| n as u32),
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// How long the suites wait for something that takes microseconds.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Waits (bounded) until `n` sleepers wait on the manual clock, so that an
/// `advance` reaches them.
pub async fn armed(clock: &ManualClock, n: usize) {
    let armed = within(WAIT_LIMIT, clock.until_sleepers(n)).await;
    assert!(armed.is_some(), "{n} sleepers never waited on the clock");
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Waits (bounded) until `cond` holds, looking every millisecond: for
/// states that have no event of their own.
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let done = within(WAIT_LIMIT, async {
        while !cond() {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(done.is_some(), "{what}: not within {WAIT_LIMIT:?}");
}

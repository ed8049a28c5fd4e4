//! The state-machine property test's fault companion: random sequences of
//! pool operations *and faults of the user code the pool calls* (a spawner,
//! a clock, a timer that panics on a call chosen at random), checked against
//! the invariants every fault must leave intact.
//!
//! `tests/model.rs` compares the pool with an exact sequential model; a
//! fault makes which job it hits depend on timing (the clock is read by
//! submits, starts, ends, deadline checks and idle timers), so this test
//! checks what must hold whichever job it hits:
//! - never more live job bodies than the largest `max_workers` so far, and
//!   never more live workers than `max_workers` (a reservation undone twice
//!   read `usize::MAX`);
//! - the ledger adds up after every step: `finished + waiting + running ==
//!   submitted`;
//! - at the end (every latch open, `stop_wait`), the stop resolves, every
//!   kept handle has resolved exactly once (a second take is `None`),
//!   `running() == waiting() == workers() == 0`, and every value a job
//!   owned has been dropped.
//!
//! A fault is armed for the n-th call from now of the spawner, the clock's
//! `now` or its `sleep_until`, or the poll of a timer it returned. Submits
//! that hit a clock fault panic (nothing is reserved); the test catches it.
//!
//! `WPXT_CASES=n` and `WPXT_SEED=n` as in `tests/model.rs`.

mod common;
use common::*;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use workerpoolxt::{Backoff, BoxFuture, Clock, Job, JobError, Pool, ResultHandle};

/// Where a fault is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    Spawner,
    Now,
    SleepUntil,
    TimerPoll,
}

#[derive(Debug, Clone)]
enum Op {
    /// An async job on a latch (`blocking`: a blocking closure), with a
    /// timeout (seconds, on the manual clock) and retries on failure.
    Submit {
        blocking: bool,
        timeout: Option<u64>,
        fail_first: bool,
    },
    /// A job that ends in its first poll.
    Immediate,
    Cancel(Index),
    Open(Index),
    Advance(u64),
    Resize(usize),
    /// The `n`-th call of `hook` from now panics.
    Fault(Hook, usize),
    Stop,
    StopWait,
}

fn op() -> impl Strategy<Value = Op> {
    let hook = prop_oneof![
        Just(Hook::Spawner),
        Just(Hook::Now),
        Just(Hook::SleepUntil),
        Just(Hook::TimerPoll),
    ];
    prop_oneof![
        30 => (any::<bool>(), prop::option::weighted(0.4, 1u64..=4), any::<bool>())
            .prop_map(|(blocking, timeout, fail_first)| Op::Submit { blocking, timeout, fail_first }),
        10 => Just(Op::Immediate),
        8 => any::<Index>().prop_map(Op::Cancel),
        18 => any::<Index>().prop_map(Op::Open),
        8 => (1u64..=3).prop_map(Op::Advance),
        3 => (1usize..=3).prop_map(Op::Resize),
        14 => (hook, 1usize..=4).prop_map(|(h, n)| Op::Fault(h, n)),
        1 => Just(Op::Stop),
        1 => Just(Op::StopWait),
    ]
}

/// A countdown per hook: the call that brings it from 1 to 0 panics.
#[derive(Clone, Default)]
struct Faults(Arc<[AtomicUsize; 4]>);

impl Faults {
    fn arm(&self, hook: Hook, n: usize) {
        self.0[hook as usize].store(n, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.0.iter().for_each(|c| c.store(0, Ordering::SeqCst));
    }

    /// Called at each call of `hook`; panics on the armed one.
    fn hit(&self, hook: Hook) {
        let c = &self.0[hook as usize];
        let fired = c
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok_and(|n| n == 1);
        if fired {
            panic!("expected panic: injected fault in {hook:?}");
        }
    }
}

/// The manual clock, with faults.
#[derive(Clone)]
struct FaultyClock {
    clock: ManualClock,
    faults: Faults,
}

impl Clock for FaultyClock {
    fn now(&self) -> Instant {
        self.faults.hit(Hook::Now);
        self.clock.now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        self.faults.hit(Hook::SleepUntil);
        let faults = self.faults.clone();
        let mut sleep = Clock::sleep_until(&self.clock, deadline);
        Box::pin(std::future::poll_fn(move |cx| {
            faults.hit(Hook::TimerPoll);
            sleep.as_mut().poll(cx)
        }))
    }
}

/// An executor of the test's own, so that the spawner can be made to fail.
fn executor() -> &'static async_executor::Executor<'static> {
    static EX: OnceLock<async_executor::Executor<'static>> = OnceLock::new();
    static THREADS: OnceLock<()> = OnceLock::new();
    let ex = EX.get_or_init(async_executor::Executor::new);
    THREADS.get_or_init(|| {
        for _ in 0..2 {
            std::thread::spawn(move || {
                async_io::block_on(ex.run(std::future::pending::<()>()));
            });
        }
    });
    ex
}

struct Case {
    pool: Pool,
    clock: ManualClock,
    faults: Faults,
    gauge: Gauge,
    owned: Owned,
    latches: Vec<Latch>,
    handles: Vec<ResultHandle<(), &'static str>>,
    max_ever: usize,
}

impl Case {
    fn submit(&mut self, blocking: bool, timeout: Option<u64>, fail_first: bool) {
        let (latch, gauge, owned) = (Latch::new(), self.gauge.clone(), self.owned.clone());
        let l = latch.clone();
        let job = if blocking {
            Job::blocking(move |ctx| {
                let _alive = gauge.enter();
                let _owned = owned.value();
                if fail_first && ctx.attempt() == 1 {
                    return Err("first attempt fails");
                }
                l.wait_blocking();
                Ok(())
            })
        } else {
            Job::new(move |ctx| {
                let (gauge, l, owned) = (gauge.clone(), l.clone(), owned.value());
                async move {
                    let _alive = gauge.enter();
                    let _owned = owned;
                    if fail_first && ctx.attempt() == 1 {
                        return Err("first attempt fails");
                    }
                    l.wait().await;
                    Ok(())
                }
            })
        };
        let job = job.retry(1).backoff(Backoff::fixed(Duration::from_secs(1)));
        let job = match timeout {
            Some(t) => job.timeout(Duration::from_secs(t)),
            None => job,
        };
        self.push(job, latch);
    }

    fn immediate(&mut self) {
        let (gauge, owned) = (self.gauge.clone(), self.owned.value());
        let job = Job::once_like(move || {
            let _alive = gauge.enter();
            drop(owned);
        });
        self.push(job, Latch::new());
    }

    /// Submits `job`; a clock fault at the submit makes it panic, with
    /// nothing queued.
    fn push(&mut self, job: Job<(), &'static str>, latch: Latch) {
        let before = self.pool.metrics().submitted;
        match catch_unwind(AssertUnwindSafe(|| self.pool.submit_job(job))) {
            Ok(h) => {
                self.handles.push(h);
                self.latches.push(latch);
            }
            Err(_) => assert_eq!(
                self.pool.metrics().submitted,
                before,
                "a submit that panicked counted a job"
            ),
        }
    }

    /// The invariants that hold after every step.
    async fn check(&self, step: &str) {
        let t0 = Instant::now();
        loop {
            let m = self.pool.metrics();
            let sum = m.finished() + m.waiting + m.running;
            if sum == m.submitted {
                break;
            }
            // The counters are read one by one: a job may move between two
            // reads. It settles within moments.
            assert!(
                t0.elapsed() < LIMIT,
                "after {step}: the ledger does not add up: {m:?}"
            );
            futures_lite::future::yield_now().await;
        }
        assert!(
            self.gauge.max() <= self.max_ever,
            "after {step}: {} bodies at once",
            self.gauge.max()
        );
        assert!(
            self.pool.workers() <= self.max_ever,
            "after {step}: {} workers",
            self.pool.workers()
        );
    }
}

/// A job from a closure that runs once, in its first poll.
trait OnceLike {
    fn once_like(f: impl FnOnce() + Send + 'static) -> Self;
}

impl OnceLike for Job<(), &'static str> {
    fn once_like(f: impl FnOnce() + Send + 'static) -> Self {
        let mut f = Some(f);
        Job::new(move |_ctx| {
            if let Some(f) = f.take() {
                f();
            }
            async { Ok(()) }
        })
    }
}

const LIMIT: Duration = Duration::from_secs(5);

async fn run_case(max: usize, idle_exit: bool, ops: &[Op]) {
    let (clock, faults) = (ManualClock::new(), Faults::default());
    let ex = executor();
    let spawn_faults = faults.clone();
    let b = Pool::builder()
        .max_workers(max)
        .clock(FaultyClock {
            clock: clock.clone(),
            faults: faults.clone(),
        })
        .spawner(move |f| {
            spawn_faults.hit(Hook::Spawner);
            ex.spawn(f).detach();
        });
    let b = if idle_exit {
        b.idle_timeout(Duration::from_secs(2))
    } else {
        b.keep_idle_workers()
    };
    let mut case = Case {
        pool: b.build(),
        clock,
        faults,
        gauge: Gauge::new(),
        owned: Owned::default(),
        latches: Vec::new(),
        handles: Vec::new(),
        max_ever: max,
    };
    let mut stops = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let step = format!("step {n} {op:?}");
        let pick = |i: &Index, len: usize| (len > 0).then(|| i.index(len));
        match op {
            Op::Submit {
                blocking,
                timeout,
                fail_first,
            } => case.submit(*blocking, *timeout, *fail_first),
            Op::Immediate => case.immediate(),
            Op::Cancel(i) => {
                if let Some(j) = pick(i, case.handles.len()) {
                    case.handles[j].cancel();
                }
            }
            Op::Open(i) => {
                if let Some(j) = pick(i, case.latches.len()) {
                    case.latches[j].open();
                }
            }
            Op::Advance(d) => case.clock.advance(Duration::from_secs(*d)),
            Op::Resize(n) => {
                case.pool.resize(*n).expect("n >= 1");
                case.max_ever = case.max_ever.max(*n);
            }
            Op::Fault(hook, n) => case.faults.arm(*hook, *n),
            Op::Stop => stops.push(case.pool.stop()),
            Op::StopWait => stops.push(case.pool.stop_wait()),
        }
        let _open_on_failure = OpenOnPanic(case.latches.clone());
        case.check(&step).await;
    }

    // The end: no more faults, every latch opens, the pool drains.
    let _open_on_failure = OpenOnPanic(case.latches.clone());
    case.faults.disarm();
    case.latches.iter().for_each(Latch::open);
    // Backoffs and timeouts on the manual clock: time runs on until the
    // stop resolves.
    stops.push(case.pool.stop_wait());
    let t0 = Instant::now();
    for stop in stops {
        let mut stop = std::pin::pin!(stop);
        loop {
            let polled = futures_lite::future::poll_once(stop.as_mut()).await;
            if polled.is_some() {
                break;
            }
            assert!(t0.elapsed() < LIMIT, "the final stop_wait never resolved");
            case.clock.advance(Duration::from_secs(1));
            sleep(Duration::from_millis(1)).await;
        }
    }
    case.check("the final stop_wait").await;
    let p = &case.pool;
    assert_eq!(
        (p.running(), p.waiting(), p.workers()),
        (0, 0, 0),
        "after the final stop_wait"
    );
    let m = p.metrics();
    assert_eq!(m.finished(), m.submitted, "{m:?}");
    for (j, h) in case.handles.iter_mut().enumerate() {
        let res = h.try_take();
        assert!(res.is_some(), "job {j} unresolved after the stop resolved");
        if let Some(Err(JobError::Panicked(p))) = &res {
            assert!(
                p.message().contains("injected fault"),
                "job {j}: a panic that no fault made: {p}"
            );
        }
        assert_eq!(h.try_take(), None, "job {j} resolved twice");
    }
    drop(case.handles);
    let t0 = Instant::now();
    while case.owned.alive() > 0 || case.gauge.now() > 0 {
        assert!(
            t0.elapsed() < LIMIT,
            "job values still alive after the stop"
        );
        std::thread::yield_now();
        futures_lite::future::yield_now().await;
    }
}

#[test]
fn faults_in_user_hooks_keep_every_invariant() {
    quiet_expected_panics();
    let cases = env_u64("WPXT_CASES").unwrap_or(96) as u32;
    let seed = env_u64("WPXT_SEED").unwrap_or(0xFA_0175);
    let _dog = Watchdog::new(
        "faults_in_user_hooks_keep_every_invariant".into(),
        Duration::from_secs(300),
    );
    let mut runner = seeded_runner(cases, seed, 32);
    let strategy = (
        1usize..=3,
        any::<bool>(),
        prop::collection::vec(op(), 1..=60),
    );
    let result = runner.run(&strategy, |(max, idle_exit, ops)| {
        futures_lite::future::block_on(run_case(max, idle_exit, &ops));
        Ok(())
    });
    if let Err(e) = result {
        panic!("seed {seed:#x}: {e}");
    }
}

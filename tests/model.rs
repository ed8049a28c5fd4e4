//! State-machine property test: random sequences of pool operations run
//! against the real pool and against a small sequential model, with the
//! model's state compared to everything the pool shows after every step.
//!
//! Operations: submit (an async job that waits on its own latch, a blocking
//! closure that waits on its latch, or an immediate job; with or without a
//! timeout and an absolute deadline), cancel / drop / poll-once handle i,
//! open latch i (job i may finish), advance the manual clock, stop,
//! stop_wait (begun; awaited only once the model says nothing can hold it),
//! and dropping the pool.
//!
//! After every step the test waits (bounded, spinning with yields: never a
//! sleep) until the pool shows exactly the model's state, and fails with the
//! difference if it does not get there:
//! - live job bodies (a `Gauge`: async until dropped, blocking until the
//!   closure returns), bodies ever started, and the high-water mark, which
//!   must be exactly the model's (never above `max_workers`, and reaching it
//!   whenever the model does);
//! - which kept handles have resolved;
//! - `running()`, `waiting()` and every metrics counter;
//! - whether the begun stops have completed (pending while a body is alive).
//!
//! A handle polled once must give the model's result kind; at the end every
//! kept handle is taken and compared, and every value the jobs owned must have
//! been dropped.
//!
//! `WPXT_DEEP=1` runs ~10^6 steps instead of the CI default (256 cases × up
//! to 100 steps); `WPXT_SEED=n` changes the (fixed by default) seed.

mod common;
use common::*;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use workerpoolxt::{Job, JobError, Pool, ResultHandle, Stop};

// ---------------------------------------------------------------------------
// Operations.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JKind {
    Async,
    Blocking,
    Immediate,
}

#[derive(Debug, Clone)]
enum Op {
    /// A job; `timeout` (from its start) and `deadline` (from now) in seconds.
    Submit {
        kind: JKind,
        timeout: Option<u64>,
        deadline: Option<u64>,
    },
    Cancel(Index),
    DropHandle(Index),
    PollOnce(Index),
    Open(Index),
    Advance(u64),
    Stop,
    StopWait,
    DropPool,
    /// `resize(n)`, n in 1..=3.
    Resize(usize),
    /// n async latch jobs submitted back to back (no sync between): idle
    /// workers must all wake, the slots fill at once.
    Burst(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let secs = || prop::option::weighted(0.3, 1u64..=6);
    let kind = prop_oneof![
        Just(JKind::Async),
        Just(JKind::Blocking),
        Just(JKind::Immediate)
    ];
    prop_oneof![
        36 => (kind, secs(), secs()).prop_map(|(kind, timeout, deadline)| {
            if kind == JKind::Immediate {
                Op::Submit { kind, timeout: None, deadline: None }
            } else {
                Op::Submit { kind, timeout, deadline }
            }
        }),
        10 => any::<Index>().prop_map(Op::Cancel),
        7 => any::<Index>().prop_map(Op::DropHandle),
        7 => any::<Index>().prop_map(Op::PollOnce),
        18 => any::<Index>().prop_map(Op::Open),
        10 => (1u64..=4).prop_map(Op::Advance),
        2 => Just(Op::Stop),
        2 => Just(Op::StopWait),
        3 => (1usize..=3).prop_map(Op::Resize),
        4 => (2usize..=4).prop_map(Op::Burst),
        1 => Just(Op::DropPool),
    ]
}

// ---------------------------------------------------------------------------
// The model.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Ok,
    TimedOut,
    Cancelled,
    Stopped,
}

const RES: [Res; 4] = [Res::Ok, Res::TimedOut, Res::Cancelled, Res::Stopped];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JState {
    Queued,
    Running,
    /// A blocking closure whose handle resolved (cancel, timeout) and that
    /// has not returned yet: its slot is still held.
    Draining,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HState {
    Kept,
    Dropped,
    Taken,
}

#[derive(Debug, Clone)]
struct MJob {
    kind: JKind,
    timeout: Option<u64>,
    deadline: Option<u64>,
    open: bool,
    state: JState,
    run_deadline: Option<u64>,
    res: Option<Res>,
    handle: HState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PState {
    Open,
    Draining,
    Stopped,
}

#[derive(Debug, Clone)]
struct Model {
    max: usize,
    /// The largest `max` so far (the bound across resizes).
    max_ever: usize,
    now: u64,
    jobs: Vec<MJob>,
    queue: VecDeque<usize>,
    pool: PState,
    pool_present: bool,
    entered: usize,
    /// Bounds of the live-body high-water mark. `max_firm`: the most bodies
    /// the model holds alive at the end of a step (the pool must have
    /// reached it). `max_upper`: the most that can overlap within a step
    /// (alive before it, plus every body started during it; a body that
    /// ends as it starts may or may not overlap the others).
    max_firm: usize,
    max_upper: usize,
    step_alive: usize,
    step_entered: usize,
    submitted: u64,
    finals: [u64; 4],
}

impl Model {
    fn new(max: usize) -> Model {
        Model {
            max,
            max_ever: max,
            now: 0,
            jobs: Vec::new(),
            queue: VecDeque::new(),
            pool: PState::Open,
            pool_present: true,
            entered: 0,
            max_firm: 0,
            max_upper: 0,
            step_alive: 0,
            step_entered: 0,
            submitted: 0,
            finals: [0; 4],
        }
    }

    fn count(&self, s: JState) -> usize {
        self.jobs.iter().filter(|j| j.state == s).count()
    }

    /// Slots held = bodies alive.
    fn busy(&self) -> usize {
        self.count(JState::Running) + self.count(JState::Draining)
    }

    fn resolve(&mut self, j: usize, res: Res) {
        assert!(self.jobs[j].res.is_none(), "model: job {j} resolved twice");
        self.jobs[j].res = Some(res);
        self.finals[RES.iter().position(|r| *r == res).unwrap()] += 1;
    }

    fn finals_of(&self, res: Res) -> u64 {
        self.finals[RES.iter().position(|r| *r == res).unwrap()]
    }

    fn start(&mut self, j: usize) {
        let now = self.now;
        let job = &mut self.jobs[j];
        if job.deadline.is_some_and(|d| d <= now) {
            job.state = JState::Done;
            self.resolve(j, Res::TimedOut); // never starts
            return;
        }
        self.entered += 1;
        if job.kind == JKind::Immediate || job.open {
            // Alive for a moment (see `max_upper`).
            let job = &mut self.jobs[j];
            job.state = JState::Done;
            self.resolve(j, Res::Ok);
            return;
        }
        job.state = JState::Running;
        job.run_deadline = match (job.timeout.map(|t| now + t), job.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    fn begin_step(&mut self) {
        self.step_alive = self.busy();
        self.step_entered = self.entered;
    }

    fn end_step(&mut self) {
        let started = self.entered - self.step_entered;
        self.max_upper = self.max_upper.max(self.step_alive + started);
        self.max_firm = self.max_firm.max(self.busy());
    }

    /// Every free slot takes the next queued job at once, in FIFO order.
    fn schedule(&mut self) {
        while self.busy() < self.max {
            let Some(j) = self.queue.pop_front() else {
                break;
            };
            self.start(j);
        }
    }

    fn submit(&mut self, kind: JKind, timeout: Option<u64>, deadline: Option<u64>) -> usize {
        let j = self.jobs.len();
        self.jobs.push(MJob {
            kind,
            timeout,
            deadline: deadline.map(|d| self.now + d),
            open: false,
            state: JState::Queued,
            run_deadline: None,
            res: None,
            handle: HState::Kept,
        });
        self.submitted += 1;
        if self.pool == PState::Open {
            self.queue.push_back(j);
            self.schedule();
        } else {
            self.jobs[j].state = JState::Done;
            self.resolve(j, Res::Stopped);
        }
        j
    }

    fn cancel(&mut self, j: usize) {
        match self.jobs[j].state {
            JState::Queued => {
                self.queue.retain(|&q| q != j);
                self.jobs[j].state = JState::Done;
                self.resolve(j, Res::Cancelled);
            }
            JState::Running if self.jobs[j].kind == JKind::Blocking => {
                self.jobs[j].state = JState::Draining;
                self.resolve(j, Res::Cancelled);
            }
            JState::Running => {
                self.jobs[j].state = JState::Done;
                self.resolve(j, Res::Cancelled);
                self.schedule();
            }
            JState::Draining | JState::Done => {}
        }
    }

    fn open(&mut self, j: usize) {
        self.jobs[j].open = true;
        match self.jobs[j].state {
            JState::Running => {
                self.jobs[j].state = JState::Done;
                self.resolve(j, Res::Ok);
                self.schedule();
            }
            JState::Draining => {
                self.jobs[j].state = JState::Done;
                self.schedule();
            }
            JState::Queued | JState::Done => {}
        }
    }

    fn advance(&mut self, d: u64) {
        self.now += d;
        for j in 0..self.jobs.len() {
            let job = &self.jobs[j];
            if job.state == JState::Running && job.run_deadline.is_some_and(|t| t <= self.now) {
                self.jobs[j].state = if job.kind == JKind::Blocking {
                    JState::Draining
                } else {
                    JState::Done
                };
                self.resolve(j, Res::TimedOut);
            }
        }
        self.schedule();
    }

    fn stop(&mut self) {
        self.pool = PState::Stopped;
        while let Some(j) = self.queue.pop_front() {
            self.jobs[j].state = JState::Done;
            self.resolve(j, Res::Stopped);
        }
    }

    /// Growing fills the new slots at once; shrinking pre-empts nothing.
    fn resize(&mut self, n: usize) {
        self.max = n;
        self.max_ever = self.max_ever.max(n);
        self.schedule();
    }

    fn stop_wait(&mut self) {
        if self.pool == PState::Open {
            self.pool = PState::Draining;
        }
    }

    /// Nothing can keep a begun stop from completing.
    fn stops_can_finish(&self) -> bool {
        self.busy() == 0 && self.queue.is_empty()
    }
}

// ---------------------------------------------------------------------------
// The real side.

fn res_err<E>(e: &JobError<E>) -> Res {
    match e {
        JobError::TimedOut => Res::TimedOut,
        JobError::Cancelled => Res::Cancelled,
        JobError::Stopped => Res::Stopped,
        _ => panic!("a model job cannot fail, panic or be refused"),
    }
}

/// A result handle of any job type.
trait DynHandle: Send {
    fn cancel(&self);
    fn is_finished(&self) -> bool;
    fn poll_res(&mut self) -> Poll<Res>;
    fn take_res(&mut self) -> Option<Res>;
}

impl<T: Send, E: Send> DynHandle for ResultHandle<T, E> {
    fn cancel(&self) {
        ResultHandle::cancel(self)
    }
    fn is_finished(&self) -> bool {
        ResultHandle::is_finished(self)
    }
    fn poll_res(&mut self) -> Poll<Res> {
        let waker = futures::task::noop_waker();
        Pin::new(self)
            .poll(&mut Context::from_waker(&waker))
            .map(|r| r.as_ref().map_or_else(res_err, |_| Res::Ok))
    }
    fn take_res(&mut self) -> Option<Res> {
        self.try_take()
            .map(|r| r.as_ref().map_or_else(res_err, |_| Res::Ok))
    }
}

struct Real {
    clock: ManualClock,
    pool: Option<Pool>,
    gauge: Gauge,
    owned: Owned,
    latches: Vec<Latch>,
    handles: Vec<Option<Box<dyn DynHandle>>>,
    stops: Vec<Stop>,
}

impl Real {
    fn submit(&mut self, kind: JKind, timeout: Option<u64>, deadline: Option<u64>) {
        let pool = self.pool.as_ref().expect("submit with a pool");
        let latch = Latch::new();
        let (gauge, owned) = (self.gauge.clone(), self.owned.value());
        let plain = timeout.is_none() && deadline.is_none();
        let handle: Box<dyn DynHandle> = match kind {
            JKind::Immediate => Box::new(pool.submit(async move {
                let _alive = gauge.enter();
                drop(owned);
            })),
            JKind::Async if plain => {
                let latch = latch.clone();
                Box::new(pool.submit(async move {
                    let _alive = gauge.enter();
                    let _owned = owned;
                    latch.wait().await;
                }))
            }
            JKind::Blocking if plain => {
                let latch = latch.clone();
                Box::new(pool.submit_blocking(move || {
                    let _alive = gauge.enter();
                    let _owned = owned;
                    latch.wait_blocking();
                }))
            }
            JKind::Async | JKind::Blocking => {
                let latch = latch.clone();
                let job = if kind == JKind::Async {
                    Job::new(move |_ctx| {
                        let (gauge, latch, owned) = (gauge.clone(), latch.clone(), owned.0.value());
                        async move {
                            let _alive = gauge.enter();
                            let _owned = owned;
                            latch.wait().await;
                            Ok::<_, ()>(())
                        }
                    })
                } else {
                    Job::blocking(move |_ctx| {
                        let _alive = gauge.enter();
                        let _owned = owned.0.value();
                        latch.wait_blocking();
                        Ok::<_, ()>(())
                    })
                };
                let job = match timeout {
                    Some(t) => job.timeout(Duration::from_secs(t)),
                    None => job,
                };
                let job = match deadline {
                    Some(d) => job.deadline(self.clock.now() + Duration::from_secs(d)),
                    None => job,
                };
                Box::new(pool.submit_job(job))
            }
        };
        self.latches.push(latch);
        self.handles.push(Some(handle));
    }

    /// How the pool differs from the model, if it does.
    fn diff(&mut self, model: &Model) -> Option<String> {
        let mut d = Vec::new();
        let g = &self.gauge;
        if g.now() != model.busy() {
            d.push(format!("bodies alive {} (model {})", g.now(), model.busy()));
        }
        if g.entered() != model.entered {
            d.push(format!(
                "bodies started {} (model {})",
                g.entered(),
                model.entered
            ));
        }
        if g.max() < model.max_firm || g.max() > model.max_upper {
            d.push(format!(
                "most bodies at once {} (model {}..={})",
                g.max(),
                model.max_firm,
                model.max_upper
            ));
        }
        for (i, h) in self.handles.iter().enumerate() {
            if let (Some(h), HState::Kept) = (h, model.jobs[i].handle) {
                if h.is_finished() != model.jobs[i].res.is_some() {
                    d.push(format!(
                        "job {i} finished {} (model {:?})",
                        h.is_finished(),
                        model.jobs[i]
                    ));
                }
            }
        }
        if let Some(p) = &self.pool {
            let m = p.metrics();
            let want = (model.queue.len(), model.busy());
            if (p.waiting(), p.running()) != want {
                d.push(format!(
                    "waiting/running {:?} (model {want:?})",
                    (p.waiting(), p.running())
                ));
            }
            let got = (
                m.submitted,
                m.waiting,
                (m.running, m.draining),
                m.succeeded,
                m.timed_out,
                m.cancelled,
                m.stopped,
            );
            let want = (
                model.submitted,
                model.queue.len() as u64,
                (
                    model.count(JState::Running) as u64,
                    model.count(JState::Draining) as u64,
                ),
                model.finals_of(Res::Ok),
                model.finals_of(Res::TimedOut),
                model.finals_of(Res::Cancelled),
                model.finals_of(Res::Stopped),
            );
            if got != want || (m.failed, m.panicked, m.rejected, m.retried) != (0, 0, 0, 0) {
                d.push(format!("metrics {m:?} (model {want:?})"));
            }
        }
        if model.stops_can_finish() {
            // Checked (awaited) in `sync`.
        } else if let Some(i) = self.stops.iter_mut().position(|s| poll_once(s).is_ready()) {
            d.push(format!("stop #{i} completed while a body is alive"));
        }
        (!d.is_empty()).then(|| d.join("; "))
    }
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    Pin::new(f).poll(&mut Context::from_waker(&waker))
}

/// How long the pool may take to reach the model's state after a step (it
/// normally takes microseconds); also bounds each failing shrink step.
const LIMIT: Duration = Duration::from_secs(3);

/// Waits (bounded) until the pool shows the model's state; checks the
/// invariants that must hold then.
async fn sync(real: &mut Real, model: &Model, step: &str) {
    let t0 = Instant::now();
    let mut spins = 0u32;
    while let Some(diff) = real.diff(model) {
        assert!(
            t0.elapsed() < LIMIT,
            "after {step}: the pool never matched the model: {diff}\nmodel: {model:?}"
        );
        spins += 1;
        if spins.is_multiple_of(16) {
            std::thread::yield_now();
        }
        futures_lite::future::yield_now().await;
    }
    assert!(
        real.gauge.max() <= model.max_ever,
        "more than max_workers bodies at once"
    );
    if let Some(p) = &real.pool {
        let m = p.metrics();
        // Sum rule: each job is in exactly one of waiting, running or a
        // final counter; a draining closure is final (and in `draining`).
        assert_eq!(
            m.finished() + m.waiting + m.running,
            m.submitted,
            "after {step}: sum rule: {m:?}"
        );
    }
    if model.stops_can_finish() {
        for s in real.stops.iter_mut() {
            futures_lite::future::or(s, async {
                sleep(LIMIT).await;
                panic!("after {step}: a stop did not complete with nothing left to run");
            })
            .await;
        }
    }
}

async fn run_case(max: usize, idle_exit: bool, ops: &[Op]) {
    let clock = ManualClock::new();
    let b = Pool::builder().max_workers(max).clock(clock.clone());
    // Workers that leave after 2 s of idleness (on the manual clock) and come
    // back on demand, or workers that stay.
    let b = if idle_exit {
        b.idle_timeout(Duration::from_secs(2))
    } else {
        b.keep_idle_workers()
    };
    let pool = b.build();
    let mut real = Real {
        clock,
        pool: Some(pool),
        gauge: Gauge::new(),
        owned: Owned::default(),
        latches: Vec::new(),
        handles: Vec::new(),
        stops: Vec::new(),
    };
    let mut model = Model::new(max);
    for (n, op) in ops.iter().enumerate() {
        let step = format!("step {n} {op:?}");
        model.begin_step();
        let pick = |i: &Index| (!model.jobs.is_empty()).then(|| i.index(model.jobs.len()));
        match op {
            Op::Submit {
                kind,
                timeout,
                deadline,
            } => {
                if !model.pool_present {
                    continue;
                }
                real.submit(*kind, *timeout, *deadline);
                model.submit(*kind, *timeout, *deadline);
            }
            Op::Cancel(i) => {
                let Some(j) = pick(i) else { continue };
                let Some(h) = &real.handles[j] else { continue };
                h.cancel();
                if model.jobs[j].state == JState::Queued {
                    assert!(h.is_finished(), "{step}: a queued cancel resolves at once");
                }
                model.cancel(j);
            }
            Op::DropHandle(i) => {
                let Some(j) = pick(i) else { continue };
                if real.handles[j].take().is_some() {
                    model.jobs[j].handle = HState::Dropped;
                }
            }
            Op::PollOnce(i) => {
                let Some(j) = pick(i) else { continue };
                let Some(h) = real.handles[j].as_mut() else {
                    continue;
                };
                let polled = h.poll_res();
                match model.jobs[j].handle {
                    HState::Taken => {
                        assert!(polled.is_pending(), "{step}: a taken handle is fused")
                    }
                    _ => match model.jobs[j].res {
                        Some(res) => {
                            assert_eq!(polled, Poll::Ready(res), "{step}: {:?}", model.jobs[j]);
                            model.jobs[j].handle = HState::Taken;
                        }
                        None => assert!(polled.is_pending(), "{step}: {:?}", model.jobs[j]),
                    },
                }
            }
            Op::Open(i) => {
                let Some(j) = pick(i) else { continue };
                real.latches[j].open();
                model.open(j);
            }
            Op::Advance(d) => {
                real.clock.advance(Duration::from_secs(*d));
                model.advance(*d);
            }
            Op::Stop | Op::StopWait => {
                let Some(p) = &real.pool else { continue };
                if matches!(op, Op::Stop) {
                    real.stops.push(p.stop());
                    model.stop();
                } else {
                    real.stops.push(p.stop_wait());
                    model.stop_wait();
                }
                assert!(p.is_stopped(), "{step}: stopped from the call on");
            }
            Op::DropPool => {
                if real.pool.take().is_none() {
                    continue;
                }
                model.pool_present = false;
                model.stop_wait();
            }
            Op::Burst(n) => {
                if !model.pool_present {
                    continue;
                }
                for _ in 0..*n {
                    real.submit(JKind::Async, None, None);
                    model.submit(JKind::Async, None, None);
                }
            }
            Op::Resize(n) => {
                let Some(p) = &real.pool else { continue };
                p.resize(*n).expect("n >= 1");
                assert_eq!(p.max_workers(), *n);
                model.resize(*n);
            }
        }
        let _open_on_failure = OpenOnPanic(real.latches.clone());
        model.end_step();
        sync(&mut real, &model, &step).await;
    }

    // The end: every latch opens, the pool drains, everything is accounted for.
    let _open_on_failure = OpenOnPanic(real.latches.clone());
    model.begin_step();
    for j in 0..model.jobs.len() {
        real.latches[j].open();
        model.open(j);
    }
    model.end_step();
    sync(&mut real, &model, "opening every latch").await;
    if let Some(p) = real.pool.clone() {
        model.begin_step();
        real.stops.push(p.stop_wait());
        model.stop_wait();
        model.end_step();
        sync(&mut real, &model, "the final stop_wait").await;
        assert_eq!(p.workers(), 0, "workers left after stop");
    }
    for (j, h) in real.handles.iter_mut().enumerate() {
        if let Some(h) = h {
            let job = &model.jobs[j];
            let want = if job.handle == HState::Taken {
                None
            } else {
                job.res
            };
            assert!(
                want.is_some() || job.handle == HState::Taken,
                "model: job {j} unresolved"
            );
            assert_eq!(h.take_res(), want, "job {j}: {job:?}");
        }
    }
    assert!(
        model.jobs.iter().all(|j| j.res.is_some()),
        "model: every job resolved"
    );
    real.handles.clear();
    real.pool = None;
    let (owned, gauge) = (real.owned.clone(), real.gauge.clone());
    let t0 = Instant::now();
    while owned.alive() > 0 || gauge.now() > 0 {
        assert!(
            t0.elapsed() < LIMIT,
            "leak: {} job values still alive",
            owned.alive()
        );
        std::thread::yield_now();
        futures_lite::future::yield_now().await;
    }
    assert!(gauge.max() >= model.max_firm && gauge.max() <= model.max_upper);
}

// Random operation sequences keep the pool and the sequential model in step:
// bound reached and never exceeded, handles resolve as the model says, FIFO
// starts, metrics exact, stops wait for bodies, nothing leaks or hangs.
#[test]
fn pool_follows_the_sequential_model() {
    let deep = std::env::var_os("WPXT_DEEP").is_some();
    let cases = env_u64("WPXT_CASES").unwrap_or(if deep { 20_000 } else { 256 }) as u32;
    let seed = env_u64("WPXT_SEED").unwrap_or(0x5EED_2026);
    let _dog = Watchdog::new(
        "pool_follows_the_sequential_model".into(),
        // Room for shrinking a failure; a hang inside a case fails in LIMIT.
        if deep {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(300)
        },
    );
    // Shrinking a failure costs up to LIMIT per step.
    let mut runner = seeded_runner(cases, seed, 64);
    let steps = Arc::new(AtomicUsize::new(0));
    let counted = steps.clone();
    let strategy = (
        1usize..=3,
        any::<bool>(),
        prop::collection::vec(op(), 1..=100),
    );
    let result = runner.run(&strategy, move |(max, idle_exit, ops)| {
        counted.fetch_add(ops.len(), Ordering::Relaxed);
        futures_lite::future::block_on(run_case(max, idle_exit, &ops));
        Ok(())
    });
    if let Err(e) = result {
        panic!("seed {seed:#x}: {e}");
    }
    eprintln!(
        "model: {cases} cases, {} steps, seed {seed:#x}",
        steps.load(Ordering::Relaxed)
    );
}

// Found by the model: growing the pool starts queued jobs at once, also
// while every existing worker is busy (`resize`: "Growing starts workers for
// queued jobs at once"; DESIGN: all slots fill as soon as there is work).
#[test]
fn growing_starts_queued_jobs_while_every_worker_is_busy() {
    let _dog = Watchdog::new("growing_starts_queued_jobs".into(), HANG_LIMIT);
    futures_lite::future::block_on(async {
        let pool = Pool::builder().max_workers(1).keep_idle_workers().build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let first = {
            let (gauge, latch) = (gauge.clone(), latch.clone());
            pool.submit(async move {
                let _alive = gauge.enter();
                latch.wait().await;
            })
        };
        gauge.until(|g| g.now() == 1).await;
        let second = pool.submit(async { 2 });
        assert_eq!(pool.waiting(), 1);
        pool.resize(2).unwrap();
        let started = futures_lite::future::or(async { Some(second.await) }, async {
            sleep(Duration::from_secs(2)).await;
            None
        })
        .await;
        latch.open();
        assert_eq!(
            started,
            Some(Ok(2)),
            "the queued job waited for the busy worker"
        );
        assert_eq!(first.await, Ok(()));
        pool.stop().await;
    });
}

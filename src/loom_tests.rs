//! loom models of the slot and lifecycle state machines.
//!
//! Run with:
//! `RUSTFLAGS="--cfg workerpoolxt_loom" cargo test --release --lib loom_`
//! (each model explores every interleaving of its threads, preemption bound 2).
//!
//! Most models poll a job's queue entry by hand. `loom_stop_wait_vs_last_job`
//! and `loom_cancel_running_vs_queued` run the real worker loop: their pool's
//! spawner hands the worker future to the model (`worker_pool`).
//! `loom_complete_vs_timer` drives the job's deadline with a manual clock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::cell::Driven;
use crate::{BoxFuture, Clock, Job, JobError, Pool};

fn model(f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(move || {
        counted.fetch_add(1, StdOrdering::Relaxed);
        f()
    });
    let runs = runs.load(StdOrdering::Relaxed);
    eprintln!("explored {runs} interleavings");
    // A model that explores a single schedule checks nothing.
    assert!(runs > 1, "the model explored only {runs} interleaving(s)");
}

/// A pool whose workers never run: the models drive the queue by hand.
fn manual_pool() -> Pool {
    manual_builder().build()
}

fn manual_builder() -> crate::Builder {
    Pool::builder()
        .max_workers(1)
        .keep_idle_workers()
        .spawner(drop)
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = futures_util::task::noop_waker();
    Pin::new(f).poll(&mut Context::from_waker(&waker))
}

/// Submits `async { 7 }` and runs it to completion on a new loom thread.
fn run_seven_on_a_worker(pool: &Pool) -> (crate::ResultHandle<i32>, thread::JoinHandle<()>) {
    let handle = pool.submit(async { 7 });
    let mut entry = Driven::new(pool.shared().queue.pop().expect("queued"));
    let worker = thread::spawn(move || {
        assert!(poll_once(&mut entry).is_ready());
    });
    (handle, worker)
}

/// A job completing on a worker races its handle's cancel (and, at the end,
/// the handle's drop): the handle gets exactly one result, and the ledger adds up.
#[test]
fn loom_complete_vs_cancel() {
    model(|| {
        let pool = manual_pool();
        let (mut handle, worker) = run_seven_on_a_worker(&pool);
        handle.cancel();
        worker.join().unwrap();
        let got = handle.try_take().expect("resolved exactly once");
        assert!(got == Ok(7) || got == Err(JobError::Cancelled), "{got:?}");
        assert_eq!(handle.try_take(), None);
        let m = pool.metrics();
        assert_eq!(
            (m.submitted, m.waiting, m.succeeded + m.cancelled),
            (1, 0, 1)
        );
    });
}

/// A running job is cancelled while it waits: it resolves `Cancelled` only
/// after its future was dropped.
#[test]
fn loom_cancel_running_drops_first() {
    model(|| {
        let pool = manual_pool();
        let dropped = Arc::new(AtomicBool::new(false));
        struct OnDrop(Arc<AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let guard = OnDrop(dropped.clone());
        let handle = pool.submit(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let mut entry = Driven::new(pool.shared().queue.pop().expect("queued"));
        assert!(poll_once(&mut entry).is_pending());
        let canceller = thread::spawn(move || {
            handle.cancel();
            handle
        });
        let worker = thread::spawn(move || {
            // The worker is woken by the cancel; poll until the task ends.
            while poll_once(&mut entry).is_pending() {
                thread::yield_now();
            }
        });
        let mut handle = canceller.join().unwrap();
        worker.join().unwrap();
        assert!(dropped.load(Ordering::SeqCst));
        assert_eq!(handle.try_take(), Some(Err(JobError::Cancelled)));
    });
}

/// A running job that waits is woken by its handle's cancel, whether the
/// cancel comes before, while or after its worker registers for it
/// (`src/watch.rs`): the worker waits for a wake-up between polls, so a lost
/// one fails the model.
#[test]
fn loom_cancel_wakes_the_waiting_job() {
    model(|| {
        let pool = manual_pool();
        let handle = pool.submit(std::future::pending::<()>());
        let mut entry = Driven::new(pool.shared().queue.pop().expect("queued"));
        let canceller = thread::spawn(move || {
            handle.cancel();
            handle
        });
        drive(&mut entry);
        let mut handle = canceller.join().unwrap();
        assert_eq!(handle.try_take(), Some(Err(JobError::Cancelled)));
    });
}

/// A handle that has resolved has been counted: a job completing on a
/// worker while its handle is polled from another thread never shows the
/// handle its result before the metrics have it (the ledger's promise).
#[test]
fn loom_resolved_handle_is_counted() {
    model(|| {
        let pool = manual_pool();
        let (mut handle, worker) = run_seven_on_a_worker(&pool);
        loop {
            if let Some(got) = handle.try_take() {
                assert_eq!(got, Ok(7));
                break;
            }
            thread::yield_now();
        }
        let m = pool.metrics();
        assert_eq!((m.running, m.succeeded), (0, 1), "{m:?}");
        worker.join().unwrap();
    });
}

/// A job that leaves the queue without starting is counted as finished
/// before it stops counting as waiting: a reader on another thread that
/// finds it gone from `waiting` finds it in the final counters (the ledger
/// at a quiet point). Here its token was cancelled while it was queued, so
/// its worker ends it unstarted, and its outcome waits for its task to be
/// dropped (`Header::publish` counts first). The model fails if the job leaves
/// the queue first.
#[test]
fn loom_unstarted_job_is_counted_before_it_leaves_the_queue() {
    model(|| {
        let pool = manual_pool();
        let token = crate::CancelToken::new();
        token.cancel();
        let refused =
            pool.submit_job(Job::new(|_ctx| async { Ok::<_, ()>(1) }).cancel_token(token));
        let mut entry = Driven::new(pool.shared().queue.pop().expect("queued"));
        let worker = thread::spawn(move || {
            assert!(poll_once(&mut entry).is_ready());
        });
        let m = pool.metrics();
        if m.waiting == 0 {
            assert_eq!((m.finished(), m.cancelled), (1, 1), "{m:?}");
        }
        worker.join().unwrap();
        drop(refused);
    });
}

/// `stop` races `submit` from another thread: the handle always resolves,
/// `Stopped` (no worker runs in this model), and nothing stays queued.
#[test]
fn loom_stop_vs_submit() {
    model(|| {
        let pool = manual_pool();
        let other = pool.clone();
        let submitter = thread::spawn(move || other.submit(async { 1 }));
        drop(pool.stop());
        let mut handle = submitter.join().unwrap();
        assert_eq!(handle.try_take(), Some(Err(JobError::Stopped)));
        assert_eq!(pool.waiting(), 0);
        let m = pool.metrics();
        assert_eq!((m.submitted, m.stopped), (1, 1));
    });
}

/// A queued job is cancelled by its handle while a stop drains the queue:
/// exactly one of them resolves it.
#[test]
fn loom_cancel_queued_vs_stop() {
    model(|| {
        let pool = manual_pool();
        let mut handle = pool.submit(async { 1 });
        let other = pool.clone();
        let stopper = thread::spawn(move || drop(other.stop()));
        handle.cancel();
        stopper.join().unwrap();
        let got = handle.try_take().expect("resolved");
        assert!(
            got == Err(JobError::Cancelled) || got == Err(JobError::Stopped),
            "{got:?}"
        );
        let m = pool.metrics();
        assert_eq!((m.waiting, m.cancelled + m.stopped), (0, 1));
    });
}

/// A job's output that counts its drops.
struct Output(Arc<AtomicUsize>);

impl Drop for Output {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A job whose output counts its drops, submitted and taken out of the
/// queue: its handle, its entry (for a thread to drive), and the count.
fn output_counting_job(pool: &Pool) -> (crate::ResultHandle<Output>, Driven, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let out = Output(drops.clone());
    let handle = pool.submit(async move { out });
    let entry = Driven::new(pool.shared().queue.pop().expect("queued"));
    (handle, entry, drops)
}

/// A job completes on a worker while its handle is dropped on another
/// thread: the output is dropped exactly once, whoever goes last.
#[test]
fn loom_complete_vs_handle_drop() {
    model(|| {
        let pool = manual_pool();
        let (handle, mut entry, drops) = output_counting_job(&pool);
        let worker = thread::spawn(move || {
            assert!(poll_once(&mut entry).is_ready());
        });
        let dropper = thread::spawn(move || drop(handle));
        worker.join().unwrap();
        dropper.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(pool.metrics().succeeded, 1);
    });
}

/// A job completes on a worker while its handle takes the result on another
/// thread and is then dropped: the output is dropped exactly once, by the
/// taker, whether the handle took it while the entry still held the cell
/// (a read-modify-write of the state) or after (the handle alone: plain
/// stores, and the handle frees the cell).
#[test]
fn loom_complete_vs_handle_take() {
    model(|| {
        let pool = manual_pool();
        let (mut handle, mut entry, drops) = output_counting_job(&pool);
        let worker = thread::spawn(move || {
            assert!(poll_once(&mut entry).is_ready());
        });
        let taker = thread::spawn(move || {
            let output = loop {
                match handle.try_take() {
                    Some(result) => break result,
                    None => thread::yield_now(),
                }
            };
            drop(handle);
            assert!(output.is_ok());
            drop(output);
        });
        worker.join().unwrap();
        taker.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// A job completes on a worker while its cancel handle cancels it and is
/// dropped on a second thread, and its handle takes the result and is
/// dropped on a third: three owners of the cell, in every order. The output
/// is dropped exactly once, and the handle's plain-store path ("alone") is
/// never taken while the cancel handle lives.
#[test]
fn loom_cancel_handle_vs_complete_vs_take() {
    model(|| {
        let pool = manual_pool();
        let (mut handle, mut entry, drops) = output_counting_job(&pool);
        let cancel = handle.cancel_handle();
        let worker = thread::spawn(move || {
            let _ = poll_once(&mut entry);
            drop(entry);
        });
        let canceller = thread::spawn(move || {
            cancel.cancel();
            drop(cancel);
        });
        let taker = thread::spawn(move || {
            let result = loop {
                match handle.try_take() {
                    Some(result) => break result,
                    None => thread::yield_now(),
                }
            };
            drop(handle);
            drop(result);
        });
        worker.join().unwrap();
        canceller.join().unwrap();
        taker.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(pool.metrics().finished(), 1);
    });
}

/// One submitter and one worker at N = 1: the worker takes whatever the
/// submitter queued; the handle resolves with the value, and the counters
/// agree.
#[test]
fn loom_submitter_and_worker() {
    model(|| {
        let pool = manual_pool();
        let other = pool.clone();
        let submitter = thread::spawn(move || other.submit(async { 3 }));
        let shared = pool.shared().clone();
        let worker = thread::spawn(move || loop {
            if let Ok(entry) = shared.queue.pop() {
                let mut entry = Driven::new(entry);
                assert!(poll_once(&mut entry).is_ready());
                return;
            }
            thread::yield_now();
        });
        let mut handle = submitter.join().unwrap();
        worker.join().unwrap();
        assert_eq!(handle.try_take(), Some(Ok(3)));
        let m = pool.metrics();
        assert_eq!(
            (m.submitted, m.succeeded, m.waiting, m.running),
            (1, 1, 0, 0)
        );
    });
}

// ----- helpers of the models below -----

/// A waker that only records that it was woken, in a std atomic.
///
/// It runs no loom operation when it is cloned, woken or dropped: the pool's
/// events (`event_listener`) clone, wake and drop wakers under their own std
/// lock, which loom does not see, so loom must not switch threads there.
/// (`loom::future::block_on` is not an option either: it needs loom's
/// `futures` feature.)
struct Woken(std::sync::atomic::AtomicBool);

impl Wake for Woken {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Polls `f` until it is ready, or until `stop()` holds after a poll that
/// left it pending; `None` in the second case.
///
/// Between polls it waits for a wake-up (yielding to the other threads), so
/// a lost wake-up is never papered over by polling again: the thread spins
/// until loom gives up on the model (its branch limit), which fails it.
fn drive_until<F: Future + Unpin>(f: &mut F, stop: impl Fn() -> bool) -> Option<F::Output> {
    let woken = std::sync::Arc::new(Woken(std::sync::atomic::AtomicBool::new(false)));
    let waker = Waker::from(woken.clone());
    loop {
        if let Poll::Ready(v) = Pin::new(&mut *f).poll(&mut Context::from_waker(&waker)) {
            return Some(v);
        }
        if stop() {
            return None;
        }
        while !woken.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
            thread::yield_now();
        }
    }
}

/// Polls `f` to completion; see [`drive_until`].
fn drive<F: Future + Unpin>(f: &mut F) -> F::Output {
    drive_until(f, || false).expect("driven to completion")
}

/// A job future that counts itself in `live` from its first poll until it is
/// dropped, and asserts that no other body is live meanwhile (the models run
/// at `max_workers = 1`). It yields once (`yields`) or not, then returns
/// `value`.
struct LiveBody {
    live: Arc<AtomicUsize>,
    value: u32,
    yields: bool,
    polled: bool,
}

impl LiveBody {
    fn new(live: &Arc<AtomicUsize>, value: u32, yields: bool) -> LiveBody {
        LiveBody {
            live: live.clone(),
            value,
            yields,
            polled: false,
        }
    }
}

impl Future for LiveBody {
    type Output = u32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if !self.polled {
            self.polled = true;
            let before = self.live.fetch_add(1, Ordering::SeqCst);
            assert_eq!(before, 0, "a job body started while another was alive");
            if self.yields {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        Poll::Ready(self.value)
    }
}

impl Drop for LiveBody {
    fn drop(&mut self) {
        if self.polled {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A pool whose one worker future is kept for the model to run (in
/// `spawned`) rather than dropped: the real worker loop, on a loom thread.
fn worker_pool() -> (Pool, std::sync::Arc<std::sync::Mutex<Vec<BoxFuture<()>>>>) {
    let spawned = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = spawned.clone();
    let pool = Pool::builder()
        .max_workers(1)
        .keep_idle_workers()
        .spawner(move |worker| sink.lock().unwrap().push(worker))
        .build();
    (pool, spawned)
}

/// Takes the one worker future the pool spawned; asserts it spawned one.
fn the_worker(spawned: &std::sync::Mutex<Vec<BoxFuture<()>>>) -> BoxFuture<()> {
    let mut spawned = spawned.lock().unwrap();
    assert_eq!(spawned.len(), 1, "max_workers = 1: exactly one worker");
    spawned.pop().unwrap()
}

/// A clock that stands still until the model moves it on, once, by an hour.
/// Its sleeps are woken by that move.
#[derive(Clone)]
struct ManualClock(std::sync::Arc<ClockState>);

struct ClockState {
    base: Instant,
    moved: AtomicBool,
    sleepers: std::sync::Mutex<Vec<Waker>>,
}

impl ManualClock {
    fn new() -> ManualClock {
        ManualClock(std::sync::Arc::new(ClockState {
            base: Instant::now(),
            moved: AtomicBool::new(false),
            sleepers: std::sync::Mutex::new(Vec::new()),
        }))
    }

    /// Moves the clock past every deadline set so far and wakes the sleeps.
    fn advance(&self) {
        self.0.moved.store(true, Ordering::SeqCst);
        let sleepers = std::mem::take(&mut *self.0.sleepers.lock().unwrap());
        for w in sleepers {
            w.wake();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        if self.0.moved.load(Ordering::SeqCst) {
            self.0.base + Duration::from_secs(3600)
        } else {
            self.0.base
        }
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        let clock = self.clone();
        Box::pin(std::future::poll_fn(move |cx| {
            // Register, then look: no lost wake-up against `advance`.
            clock.0.sleepers.lock().unwrap().push(cx.waker().clone());
            if clock.now() >= deadline {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }))
    }
}

/// A job with a timeout completes on a worker while its deadline passes on
/// another thread (the clock moves on and wakes the job's timer): the handle
/// resolves exactly once, with the value or `TimedOut`, the job is counted
/// once, and the job's future has been dropped by the time the handle shows
/// as finished (a timed-out job's destructors have run).
#[test]
fn loom_complete_vs_timer() {
    model(|| {
        let clock = ManualClock::new();
        let pool = manual_builder().clock(clock.clone()).build();
        let dropped = Arc::new(AtomicBool::new(false));
        struct OnDrop(Arc<AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let mut guard = Some(OnDrop(dropped.clone()));
        let job = Job::new(move |_ctx| {
            let guard = guard.take();
            async move {
                let _guard = guard;
                futures_lite::future::yield_now().await;
                Ok::<_, ()>(7)
            }
        })
        .timeout(Duration::from_secs(1));
        let mut handle = pool.submit_job(job);
        let mut entry = Driven::new(pool.shared().queue.pop().expect("queued"));
        let worker = thread::spawn(move || drive(&mut entry));
        // The timer: the deadline passes (if the job has started by now).
        clock.advance();
        if handle.is_finished() {
            assert!(dropped.load(Ordering::SeqCst), "resolved before the drop");
        }
        worker.join().unwrap();
        assert!(dropped.load(Ordering::SeqCst));
        let got = handle.try_take().expect("resolved");
        assert!(got == Ok(7) || got == Err(JobError::TimedOut), "{got:?}");
        assert_eq!(handle.try_take(), None);
        let m = pool.metrics();
        assert_eq!(
            (m.submitted, m.waiting, m.running, m.succeeded + m.timed_out),
            (1, 0, 0, 1)
        );
        assert_eq!(m.timed_out, u64::from(got.is_err()));
    });
}

/// `stop_wait` on one thread while the real worker loop runs the last job on
/// another (N = 1): the stop resolves only once the job's body has been
/// dropped, its handle has resolved with its value (a draining pool runs it)
/// and the worker has left; no thread hangs, and the ledger adds up.
#[test]
fn loom_stop_wait_vs_last_job() {
    model(|| {
        let (pool, spawned) = worker_pool();
        let live = Arc::new(AtomicUsize::new(0));
        let mut handle = pool.submit(LiveBody::new(&live, 5, true));
        let mut worker = the_worker(&spawned);
        let runner = thread::spawn(move || drive(&mut worker));
        drive(&mut pool.stop_wait());
        assert_eq!(live.load(Ordering::SeqCst), 0, "stopped with a body alive");
        assert!(handle.is_finished(), "stopped before the job resolved");
        assert_eq!(pool.workers(), 0);
        runner.join().unwrap();
        assert_eq!(handle.try_take(), Some(Ok(5)));
        assert_eq!(handle.try_take(), None);
        assert!(spawned.lock().unwrap().is_empty(), "a second worker");
        let m = pool.metrics();
        assert_eq!(
            (m.submitted, m.finished(), m.succeeded, m.waiting, m.running),
            (1, 1, 1, 0, 0)
        );
    });
}

/// N = 1: job A runs on the real worker loop, job B waits in the queue, and
/// A's handle is cancelled from another thread. B never starts while A's
/// body is alive (`LiveBody` asserts it), B runs and resolves with its value, A
/// resolves exactly once (`Cancelled`, or its value if it finished first),
/// and the ledger agrees with the results.
#[test]
fn loom_cancel_running_vs_queued() {
    model(|| {
        let (pool, spawned) = worker_pool();
        let live = Arc::new(AtomicUsize::new(0));
        let b_done = Arc::new(AtomicBool::new(false));
        let mut a = pool.submit(LiveBody::new(&live, 1, true));
        let done = b_done.clone();
        let b_live = live.clone();
        let mut b = pool.submit(async move {
            let v = LiveBody::new(&b_live, 2, false).await;
            done.store(true, Ordering::SeqCst);
            v
        });
        let mut worker = the_worker(&spawned);
        let runner = thread::spawn(move || {
            // The worker sleeps for ever once the queue is empty: leave it
            // after B ran.
            let idle = drive_until(&mut worker, || b_done.load(Ordering::SeqCst));
            assert!(idle.is_none(), "the worker left with jobs to do");
        });
        a.cancel();
        assert_eq!(drive(&mut b), Ok(2));
        runner.join().unwrap();
        assert_eq!(live.load(Ordering::SeqCst), 0);
        let got = a.try_take().expect("resolved");
        assert!(got == Ok(1) || got == Err(JobError::Cancelled), "{got:?}");
        assert_eq!(a.try_take(), None);
        assert!(spawned.lock().unwrap().is_empty(), "a second worker");
        let m = pool.metrics();
        assert_eq!(
            (m.submitted, m.waiting, m.running, m.succeeded + m.cancelled),
            (2, 0, 0, 2)
        );
        assert_eq!(m.cancelled, u64::from(got.is_err()));
    });
}

/// N = 1: the worker runs a job, finds the queue empty and falls asleep
/// while a second job is submitted from another thread. The second job runs:
/// no wake-up is lost between the worker's last look at the queue and its
/// sleep (the worker re-checks the queue after it starts listening; a
/// submitter that saw it idle notified a listener that may not exist yet).
#[test]
fn loom_submit_vs_worker_falling_asleep() {
    model(|| {
        let (pool, spawned) = worker_pool();
        let mut first = pool.submit(async { 1u32 });
        let mut worker = the_worker(&spawned);
        let runner = thread::spawn(move || drive(&mut worker));
        let mut second = pool.submit(async { 2u32 });
        assert_eq!(drive(&mut second), Ok(2));
        assert_eq!(first.try_take(), Some(Ok(1)));
        drop(pool.stop());
        runner.join().unwrap();
        assert!(spawned.lock().unwrap().is_empty(), "a second worker");
    });
}

/// A pool of `max_workers` whose worker futures are kept for the model to
/// run, in the order they were spawned.
fn workers_pool(
    max_workers: usize,
) -> (Pool, std::sync::Arc<std::sync::Mutex<Vec<BoxFuture<()>>>>) {
    let spawned = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = spawned.clone();
    let pool = Pool::builder()
        .max_workers(max_workers)
        .keep_idle_workers()
        .spawner(move |worker| sink.lock().unwrap().push(worker))
        .build();
    (pool, spawned)
}

/// A job that holds its thread in its one poll (as a long computation
/// would) until `done` is set, then returns 1.
fn holds_its_thread_until(done: Arc<AtomicBool>) -> impl Future<Output = u32> + Send + 'static {
    std::future::poll_fn(move |_| {
        while !done.load(Ordering::SeqCst) {
            thread::yield_now();
        }
        Poll::Ready(1u32)
    })
}

/// Waits (yielding to the other threads) until the pool has spawned a
/// worker, and takes it.
fn next_worker(spawned: &std::sync::Mutex<Vec<BoxFuture<()>>>) -> BoxFuture<()> {
    loop {
        if let Some(w) = spawned.lock().unwrap().pop() {
            return w;
        }
        thread::yield_now();
    }
}

/// The wake-up protocol's hand-over (`src/scheduler.rs`), N = 2: job A
/// holds its worker's thread until job B has run, and B is submitted while
/// A's worker takes A. Whichever comes first — B's push, or A's worker
/// taking A and stopping its search — a second worker is started for B: by
/// B's submit (no worker searches any more) or by A's worker handing the
/// queue over (it was the last searcher and B waits). Without the hand-over
/// (or with a submit that counted on a searcher that is gone), no second
/// worker starts, A never returns, and the model fails.
#[test]
fn loom_searcher_hands_the_queue_over() {
    model(|| {
        let (pool, spawned) = workers_pool(2);
        let b_done = Arc::new(AtomicBool::new(false));
        let done = b_done.clone();
        let mut a = pool.submit(holds_its_thread_until(done));
        let mut first = next_worker(&spawned);
        // The first worker runs until the pool stops (at the end).
        let runner = thread::spawn(move || drive(&mut first));
        let done = b_done.clone();
        let mut b = pool.submit(async move {
            done.store(true, Ordering::SeqCst);
            2u32
        });
        let mut second = next_worker(&spawned);
        drive_until(&mut second, || b_done.load(Ordering::SeqCst));
        assert_eq!(drive(&mut b), Ok(2));
        assert_eq!(drive(&mut a), Ok(1));
        assert_eq!(pool.workers(), 2);
        drop(pool.stop());
        runner.join().unwrap();
        assert!(spawned.lock().unwrap().is_empty(), "a third worker");
    });
}

/// Growing the pool while its one worker holds its thread in job A and job
/// B waits (N = 1, then 2), racing the worker's taking of A: the new place
/// gets a worker, which runs B, whether the resize comes before or after
/// the worker stopped searching; then a stop ends both workers.
#[test]
fn loom_resize_starts_a_worker_beside_a_held_thread() {
    model(|| {
        let (pool, spawned) = workers_pool(1);
        let b_done = Arc::new(AtomicBool::new(false));
        let done = b_done.clone();
        let mut a = pool.submit(holds_its_thread_until(done));
        let done = b_done.clone();
        let mut b = pool.submit(async move {
            done.store(true, Ordering::SeqCst);
            2u32
        });
        let mut first = next_worker(&spawned);
        let runner = thread::spawn(move || drive(&mut first));
        pool.resize(2).unwrap();
        let mut second = next_worker(&spawned);
        drive_until(&mut second, || b_done.load(Ordering::SeqCst));
        assert_eq!(drive(&mut b), Ok(2));
        assert_eq!(drive(&mut a), Ok(1));
        drop(pool.stop());
        runner.join().unwrap();
        assert!(spawned.lock().unwrap().is_empty(), "a third worker");
    });
}

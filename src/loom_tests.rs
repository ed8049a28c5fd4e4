//! loom models of the slot and lifecycle state machines.
//!
//! Run with:
//! `RUSTFLAGS="--cfg workerpoolxt_loom" cargo test --release --lib loom_`
//! (each model explores every interleaving of its threads, preemption bound 2).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::{JobError, Pool};

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
    Pool::builder()
        .max_workers(1)
        .keep_idle_workers()
        .spawner(|worker| drop(worker))
        .build()
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = futures_util::task::noop_waker();
    Pin::new(f).poll(&mut Context::from_waker(&waker))
}

/// A job completing on a worker races its handle's cancel (and, at the end,
/// the handle's drop): the handle gets exactly one result, and the ledger adds up.
#[test]
fn loom_complete_vs_cancel() {
    model(|| {
        let pool = manual_pool();
        let mut handle = pool.submit(async { 7 });
        let mut entry = pool.shared().queue.pop().expect("queued");
        let worker = thread::spawn(move || {
            assert!(poll_once(&mut entry).is_ready());
        });
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
        let mut entry = pool.shared().queue.pop().expect("queued");
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

/// A job completes on a worker while its handle is dropped on another
/// thread: the output is dropped exactly once, whoever goes last.
#[test]
fn loom_complete_vs_handle_drop() {
    model(|| {
        let pool = manual_pool();
        let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        struct Output(Arc<loom::sync::atomic::AtomicUsize>);
        impl Drop for Output {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let out = Output(drops.clone());
        let handle = pool.submit(async move { out });
        let mut entry = pool.shared().queue.pop().expect("queued");
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
            if let Ok(mut entry) = shared.queue.pop() {
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

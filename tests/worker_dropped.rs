//! An executor may drop a worker's future at any await point (a runtime
//! shutting down, a task cancelled): the pool must lose nothing with it.
//! Here the worker is polled by hand, so the test decides where it stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use workerpoolxt::{BoxFuture, JobError, Pool};

/// A pool whose spawner keeps the worker futures for the test to poll.
fn hand_driven_pool() -> (Pool, Arc<Mutex<Vec<BoxFuture<()>>>>) {
    let spawned = Arc::new(Mutex::new(Vec::new()));
    let keep = spawned.clone();
    let pool = Pool::builder()
        .max_workers(1)
        .keep_idle_workers()
        .spawner(move |worker| keep.lock().unwrap().push(worker))
        .build();
    (pool, spawned)
}

fn take_worker(spawned: &Mutex<Vec<BoxFuture<()>>>) -> BoxFuture<()> {
    spawned.lock().unwrap().pop().expect("a worker was spawned")
}

#[test]
fn a_worker_dropped_while_it_searches_leaves_the_queue_to_a_new_one() {
    let (pool, spawned) = hand_driven_pool();
    let mut first = pool.submit(async { 1u32 });
    let mut worker = take_worker(&spawned);
    let mut cx = Context::from_waker(Waker::noop());
    // One poll: the worker runs the job, finds the queue empty and yields to
    // its executor while it keeps looking (it holds the search).
    assert!(Pin::new(&mut worker).poll(&mut cx).is_pending());
    assert_eq!(first.try_take(), Some(Ok(1)));
    // The executor goes away mid-search.
    drop(worker);
    assert_eq!(pool.workers(), 0);
    // The next job must still get a worker: the dropped one gave the search
    // up, so the submit starts another.
    let mut second = pool.submit(async { 2u32 });
    let mut worker = take_worker(&spawned);
    let mut polls = 0;
    while second.try_take().is_none() {
        polls += 1;
        assert!(polls < 100, "the second job never ran");
        let _ = Pin::new(&mut worker).poll(&mut cx);
    }
    drop(worker);
    drop(pool);
}

/// A job future that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn queued_jobs_of_a_dropped_pool_whose_executor_refuses_workers_end_stopped() {
    // Every worker is dropped before its first poll: nothing can run a job.
    let pool = Pool::builder().max_workers(2).spawner(drop).build();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut handles: Vec<_> = (0..3u32)
        .map(|i| {
            let c = Counted(drops.clone());
            pool.submit(async move {
                let _c = c;
                i
            })
        })
        .collect();
    assert!(handles.iter_mut().all(|h| h.try_take().is_none()));
    assert_eq!(pool.waiting(), 3);
    drop(pool);
    for h in &mut handles {
        assert_eq!(h.try_take(), Some(Err(JobError::Stopped)));
    }
    assert_eq!(drops.load(Ordering::SeqCst), 3, "each future dropped once");
}

#[test]
fn the_last_worker_dropped_mid_run_after_the_pool_hands_the_queue_on() {
    for run_the_next in [true, false] {
        let (pool, spawned) = hand_driven_pool();
        let drops = Arc::new(AtomicUsize::new(0));
        let c = Counted(drops.clone());
        let mut first = pool.submit(async move {
            let _c = c;
            std::future::pending::<u32>().await
        });
        let mut second = pool.submit(async { 2u32 });
        let mut worker = take_worker(&spawned);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut worker).poll(&mut cx).is_pending());
        // The last clone goes: the pool drains what is queued...
        drop(pool);
        // ...but its executor drops the worker in the middle of the first job.
        drop(worker);
        assert_eq!(first.try_take(), Some(Err(JobError::Stopped)));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(
            second.try_take(),
            None,
            "not dropped while it can still run"
        );
        // The queued job got a new worker.
        let mut next = take_worker(&spawned);
        if run_the_next {
            assert!(Pin::new(&mut next).poll(&mut cx).is_ready());
            assert_eq!(second.try_take(), Some(Ok(2)));
        } else {
            // That one is dropped unpolled too: the executor cannot run
            // workers, so the job ends instead of waiting for ever.
            drop(next);
            assert_eq!(second.try_take(), Some(Err(JobError::Stopped)));
        }
        assert!(spawned.lock().unwrap().is_empty());
    }
}

#[test]
fn a_worker_dropped_while_a_pause_holds_its_job_leaves_nothing_held() {
    let (pool, spawned) = hand_driven_pool();
    // Registered before the job is submitted: the job is held back.
    let pause = pool.pause();
    let mut job = pool.submit(async { 1u32 });
    let mut worker = take_worker(&spawned);
    let mut cx = Context::from_waker(Waker::noop());
    // The worker takes the job and holds it back for the pause.
    assert!(Pin::new(&mut worker).poll(&mut cx).is_pending());
    assert_eq!(job.try_take(), None, "held, not run");
    // Its executor goes away while it waits for the pause to end.
    drop(worker);
    assert_eq!(job.try_take(), Some(Err(JobError::Stopped)));
    let guard = futures_lite::future::block_on(pause);
    drop(guard);
    // A later pause takes hold at once: no job is still listed as held
    // (one left there, older than its barrier, would hold it off for ever).
    let later = futures_lite::future::block_on(futures_lite::future::poll_once(pool.pause()));
    assert!(
        later.is_some(),
        "a pause waited for a job whose worker is gone"
    );
    drop(later);
    drop(pool.stop());
}

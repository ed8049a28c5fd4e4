//! An executor may drop a worker's future at any await point (a runtime
//! shutting down, a task cancelled): the pool must lose nothing with it.
//! Here the worker is polled by hand, so the test decides where it stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use workerpoolxt::{BoxFuture, Pool};

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

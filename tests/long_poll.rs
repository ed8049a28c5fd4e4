//! A job whose poll holds its thread for long (it computes, or blocks on
//! something) does not hold up the jobs submitted meanwhile: they find
//! another worker.
//!
//! The worker that holds the search may be the one inside that poll, and
//! submits wake nobody while a worker searches; a submit that finds the
//! searcher in one poll for longer than the documented threshold (100 µs)
//! wakes another worker all the same, and so does a backlog of 64 jobs.
//!
//! Only runtimes with two threads or more can run a job beside one that
//! holds its thread: the embedded executor (on a machine with two cores or
//! more) and tokio's multi-thread runtime. The backlog case runs on the
//! embedded executor only: there the worker about to hold its thread wakes
//! the helper itself, and tokio runs a task woken from a worker thread in
//! that thread's LIFO slot, which no other thread takes, so on tokio the
//! helper waits for the held thread like everything else scheduled there
//! (tokio's own caveat about blocking in tasks).

mod common;

use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use workerpoolxt::Builder;

/// How many times the scenario runs: the job that holds its thread lands on
/// the searching worker in most rounds, not all.
const ROUNDS: usize = 12;

/// How long job A waits for job B before giving up (a broken pool fails the
/// test after this, not the watchdog).
const PATIENCE: Duration = Duration::from_secs(4);

/// The embedded executor's threads are shared by the whole test process:
/// two of these tests at once could hold both of them. One at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn two_threads_or_more(rt: Rt) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if rt == Rt::None && cores < 2 {
        eprintln!("SKIPPED: the embedded executor has one thread on this machine");
        return false;
    }
    true
}

async fn a_job_that_holds_its_thread_lets_a_later_job_run(b: Builder) {
    // Idle workers stay asleep: an idle timeout would wake the second worker
    // after a while and hide a missing rule.
    let pool = b.max_workers(2).keep_idle_workers().build();
    for round in 0..ROUNDS {
        // A quick job first: its worker then searches the queue, and is the
        // one that takes A.
        pool.submit(async {}).await.unwrap();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<Instant>();
        let a = pool.submit(async move {
            started_tx.send(Instant::now()).unwrap();
            // Holds its thread until B has run (a misuse in async code, but
            // one the pool survives).
            go_rx.recv_timeout(PATIENCE).is_ok()
        });
        let started = started_rx.recv_timeout(PATIENCE).expect("A started");
        // Past the threshold after which a submit stops counting on the
        // worker inside A's poll (measured, not slept: the test thread is
        // not a worker).
        while started.elapsed() < Duration::from_micros(500) {
            std::hint::spin_loop();
        }
        let b = pool.submit(async move { go_tx.send(()).is_ok() });
        assert_eq!(b.await, Ok(true), "round {round}: B ran");
        assert_eq!(a.await, Ok(true), "round {round}: A saw B run");
    }
    pool.stop_wait().await;
}

async fn a_backlog_behind_a_held_thread_gets_a_worker(b: Builder) {
    // Idle workers stay asleep: an idle timeout would wake the second worker
    // after a while and hide a missing rule.
    let pool = b.max_workers(2).keep_idle_workers().build();
    // Several rounds, as above: a round whose job A lands on the worker that
    // does not search proves nothing.
    for round in 0..ROUNDS {
        pool.submit(async {}).await.unwrap();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let a = pool.submit(async move { go_rx.recv_timeout(PATIENCE).is_ok() });
        // Submitted at once, well within the long-poll threshold: only their
        // number (the backlog rule) gets them a worker if A's worker searches.
        // The go job is the oldest of them, so the worker that the backlog
        // wakes runs it first. (Jobs queued after that worker has run out of
        // work, fewer than the backlog, may wait for A to return, as
        // `Pool::submit` documents: they are awaited only after A.)
        let go = pool.submit(async move { go_tx.send(()).is_ok() });
        let jobs: Vec<_> = (0..100u32).map(|i| pool.submit(async move { i })).collect();
        assert_eq!(go.await, Ok(true), "round {round}: the go job ran");
        assert_eq!(a.await, Ok(true), "round {round}: A saw the go job run");
        for (i, h) in jobs.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i as u32));
        }
    }
    pool.stop_wait().await;
}

#[test]
fn a_job_that_holds_its_thread_lets_a_later_job_run_no_runtime() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if two_threads_or_more(Rt::None) {
        Rt::None.run(
            "a_job_that_holds_its_thread_lets_a_later_job_run",
            a_job_that_holds_its_thread_lets_a_later_job_run,
        );
    }
}

#[test]
fn a_job_that_holds_its_thread_lets_a_later_job_run_tokio_multi() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    Rt::TokioMulti.run(
        "a_job_that_holds_its_thread_lets_a_later_job_run",
        a_job_that_holds_its_thread_lets_a_later_job_run,
    );
}

#[test]
fn a_backlog_behind_a_held_thread_gets_a_worker_no_runtime() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if two_threads_or_more(Rt::None) {
        Rt::None.run(
            "a_backlog_behind_a_held_thread_gets_a_worker",
            a_backlog_behind_a_held_thread_gets_a_worker,
        );
    }
}

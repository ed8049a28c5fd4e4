//! A job whose poll holds its thread (it blocks on something) does not
//! hold up the jobs submitted meanwhile: they get another worker, on the
//! executor's other thread.
//!
//! Job A blocks its thread until a later job has run, so a pool that leaves
//! the later job waiting for A's worker deadlocks (here: fails after
//! `PATIENCE`). The worker that takes A stops searching before it polls it,
//! and hands the queue over to another worker if jobs wait (or a submit
//! finds no worker searching and wakes one): `src/scheduler.rs`.
//! `tests/head_of_line.rs` measures how soon the later jobs start.
//!
//! Only runtimes with two threads or more can run a job beside one that
//! holds its thread: the embedded executor (on a machine with two cores or
//! more) and tokio's multi-thread runtime.

mod common;

use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use workerpoolxt::Builder;

/// How many times the scenario runs: which worker takes A, and whether B's
/// push comes before or after it stops searching, differ from round to
/// round.
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
    // after a while and hide a missing wake-up.
    let pool = b.max_workers(2).keep_idle_workers().build();
    for round in 0..ROUNDS {
        // A quick job first: its worker then searches the queue, and is
        // likely the one that takes A.
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
        // Well inside A's poll (measured, not slept: the test thread is not
        // a worker).
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
    // after a while and hide a missing wake-up.
    let pool = b.max_workers(2).keep_idle_workers().build();
    for round in 0..ROUNDS {
        pool.submit(async {}).await.unwrap();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let a = pool.submit(async move { go_rx.recv_timeout(PATIENCE).is_ok() });
        // Submitted at once, while A's worker takes A: a hundred jobs, the
        // go job first, run by the other worker while A holds its thread.
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

//! The bound: at most `max_workers` job bodies are alive at once — and that
//! many are, as soon as there is work — under any mix of cancels, panics and
//! dropped handles, for futures and blocking closures alike.

mod common;
use common::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use workerpoolxt::{Builder, JobError, Pool};

const JOBS: usize = 1_000;
const MAX: usize = 8;

/// Records the largest `pool.running()` seen from inside the jobs.
#[derive(Clone, Default)]
struct RunningProbe(Arc<AtomicUsize>);

impl RunningProbe {
    fn sample(&self, pool: &Pool) {
        self.0.fetch_max(pool.running(), Ordering::SeqCst);
    }
    fn max(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

// 1,000 futures on 8 workers: 8 bodies are alive at once (all blocked on a
// latch), never a 9th, and every body is gone once the pool has stopped.
rt_test!(
    async_jobs_reach_the_bound_and_never_exceed_it,
    |b: Builder| async move {
        let pool = b.max_workers(MAX).build();
        let gauge = Gauge::new();
        let latch = Latch::new();
        let probe = RunningProbe::default();
        let handles: Vec<_> = (0..JOBS)
            .map(|i| {
                let (gauge, latch, probe, p) =
                    (gauge.clone(), latch.clone(), probe.clone(), pool.clone());
                pool.submit(async move {
                    let _alive = gauge.enter();
                    probe.sample(&p);
                    latch.wait().await;
                    futures_lite::future::yield_now().await;
                    probe.sample(&p);
                    i
                })
            })
            .collect();

        // Reached: the first 8 are alive together before any of them finishes.
        gauge.until(|g| g.now() >= MAX).await;
        assert_eq!(gauge.entered(), MAX, "only the first {MAX} started");
        assert_eq!(pool.running(), MAX);
        assert_eq!(pool.waiting(), JOBS - MAX);
        latch.open();

        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i));
        }
        pool.stop_wait().await;
        assert_eq!(gauge.max(), MAX, "never more than {MAX} bodies at once");
        assert!(probe.max() <= MAX, "running() = {} > {MAX}", probe.max());
        assert_eq!(gauge.entered(), JOBS);
        assert_eq!(gauge.now(), 0, "every body dropped");
        assert_eq!(pool.running(), 0);
    },
    async_std
);

// The same bound when a third of the jobs are cancelled (queued or running),
// a third panic and a third have their handles dropped.
rt_test!(
    bound_holds_under_cancels_panics_and_dropped_handles,
    |b: Builder| async move {
        quiet_expected_panics();
        let pool = b.max_workers(MAX).build();
        let gauge = Gauge::new();
        let latch = Latch::new();
        let probe = RunningProbe::default();
        let started_cancellable = Arc::new(Mutex::new(Vec::new()));
        let (started_tx, started_rx) = async_channel::unbounded::<usize>();

        // kind 0: runs until cancelled; kind 1: panics; kind 2: handle dropped.
        let mut handles = Vec::new();
        for i in 0..JOBS {
            let (gauge, latch, probe, p) =
                (gauge.clone(), latch.clone(), probe.clone(), pool.clone());
            let started_tx = started_tx.clone();
            let started_cancellable = started_cancellable.clone();
            let h = pool.submit(async move {
                let _alive = gauge.enter();
                probe.sample(&p);
                match i % 3 {
                    0 => {
                        started_cancellable.lock().unwrap().push(i);
                        started_tx.send(i).await.unwrap();
                        std::future::pending::<()>().await;
                    }
                    1 => {
                        latch.wait().await;
                        probe.sample(&p);
                        panic!("expected panic: job {i}");
                    }
                    _ => {
                        latch.wait().await;
                        probe.sample(&p);
                    }
                }
            });
            if i % 3 == 2 {
                drop(h);
                handles.push(None);
            } else {
                handles.push(Some(h));
            }
        }
        drop(started_tx);

        // Reached: the first 8 (kinds 0, 1, 2, 0, 1, 2, 0, 1) are alive together.
        gauge.until(|g| g.now() >= MAX).await;
        assert_eq!(gauge.entered(), MAX);
        assert_eq!(pool.running(), MAX);

        // Cancel the kind-0 jobs of the first half now: 3 of them are running
        // (0, 3, 6), the rest are queued and must never start. The queued ones
        // first: cancelling a running one frees its slot for the next in line.
        let first_half: Vec<usize> = (0..JOBS / 2).filter(|i| i % 3 == 0).collect();
        for &i in first_half.iter().rev() {
            handles[i].as_ref().unwrap().cancel();
        }
        latch.open();

        // Cancel the kind-0 jobs of the second half as they start (running).
        let mut second_half_left = (JOBS / 2..JOBS).filter(|i| i % 3 == 0).count();
        while second_half_left > 0 {
            let i = started_rx.recv().await.expect("a cancellable job started");
            handles[i].as_ref().unwrap().cancel();
            if i >= JOBS / 2 {
                second_half_left -= 1;
            }
        }

        for (i, h) in handles.into_iter().enumerate() {
            let Some(h) = h else { continue };
            match (i % 3, h.await) {
                (0, Err(JobError::Cancelled)) => {}
                (1, Err(JobError::Panicked(p))) => {
                    assert_eq!(p.message(), format!("expected panic: job {i}"))
                }
                (k, r) => panic!("job {i} (kind {k}): unexpected {r:?}"),
            }
        }
        pool.stop_wait().await;

        let started = started_cancellable.lock().unwrap().clone();
        let mut started_early: Vec<usize> =
            started.iter().copied().filter(|&i| i < JOBS / 2).collect();
        started_early.sort_unstable();
        assert_eq!(
            started_early,
            vec![0, 3, 6],
            "cancelled while queued => never started"
        );
        let never_started = first_half.len() - 3;
        assert_eq!(gauge.entered(), JOBS - never_started);
        assert_eq!(gauge.max(), MAX, "never more than {MAX} bodies at once");
        assert!(probe.max() <= MAX, "running() = {} > {MAX}", probe.max());
        assert_eq!(gauge.now(), 0, "every body dropped");
        assert_eq!(pool.running(), 0);
        let m = pool.metrics();
        assert_eq!(m.submitted as usize, JOBS);
        assert_eq!((m.waiting, m.running), (0, 0));
        assert_eq!(
            m.cancelled as usize,
            (0..JOBS).filter(|i| i % 3 == 0).count()
        );
        assert_eq!(
            m.panicked as usize,
            (0..JOBS).filter(|i| i % 3 == 1).count()
        );
        assert_eq!(
            m.succeeded as usize,
            (0..JOBS).filter(|i| i % 3 == 2).count()
        );
    }
);

// 1,000 blocking closures on 8 workers: 8 run at once, never a 9th.
rt_test!(
    blocking_jobs_reach_the_bound_and_never_exceed_it,
    |b: Builder| async move {
        let pool = b.max_workers(MAX).build();
        let gauge = Gauge::new();
        let latch = Latch::new();
        let probe = RunningProbe::default();
        let handles: Vec<_> = (0..JOBS)
            .map(|i| {
                let (gauge, latch, probe, p) =
                    (gauge.clone(), latch.clone(), probe.clone(), pool.clone());
                pool.submit_blocking(move || {
                    let _alive = gauge.enter();
                    probe.sample(&p);
                    latch.wait_blocking();
                    probe.sample(&p);
                    i
                })
            })
            .collect();

        gauge.until(|g| g.now() >= MAX).await;
        assert_eq!(gauge.entered(), MAX, "only the first {MAX} started");
        assert_eq!(pool.running(), MAX);
        latch.open();

        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i));
        }
        pool.stop_wait().await;
        assert_eq!(gauge.max(), MAX, "never more than {MAX} closures at once");
        assert!(probe.max() <= MAX, "running() = {} > {MAX}", probe.max());
        assert_eq!(gauge.entered(), JOBS);
        assert_eq!(gauge.now(), 0);
    },
    async_std
);

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

const THOUSAND: &str = "a_thousand_workers_do_not_start_a_thousand_threads";
const IN_CHILD: &str = "WORKERPOOLXT_TEST_THREAD_COUNT_CHILD";

// A 1,000-worker pool on the embedded executor runs 1,000 live jobs without
// a thread per worker. Measured in a child process running only this test,
// so that the other tests' threads do not count.
#[test]
fn a_thousand_workers_do_not_start_a_thousand_threads() {
    let _dog = Watchdog::new(THOUSAND.into(), HANG_LIMIT);
    if std::env::var_os(IN_CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", THOUSAND, "--nocapture", "--test-threads=1"])
            .env(IN_CHILD, "1")
            .output()
            .expect("run the test binary again");
        assert!(
            out.status.success(),
            "child failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child did not run the test"
        );
        return;
    }
    let before = thread_count();
    let pool = Pool::new(1_000);
    let gauge = Gauge::new();
    let latch = Latch::new();
    let handles: Vec<_> = (0..1_000)
        .map(|i| {
            let (gauge, latch) = (gauge.clone(), latch.clone());
            pool.submit(async move {
                let _alive = gauge.enter();
                latch.wait().await;
                i
            })
        })
        .collect();
    // All 1,000 alive at once (so 1,000 workers exist)...
    gauge.until_blocking(|g| g.now() >= 1_000);
    assert_eq!(gauge.entered(), 1_000);
    assert_eq!(pool.running(), 1_000);
    let during = thread_count();
    // ...on the embedded executor's threads (one per core) and a few more.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        during < 32 + cores,
        "{during} threads for 1,000 workers on {cores} cores (before: {before})"
    );
    latch.open();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.wait(), Ok(i));
    }
    futures_lite::future::block_on(pool.stop_wait());
    assert_eq!(gauge.now(), 0);
}

// Cancelled blocking closures keep their slots until they return: the
// handles resolve at once, but no 9th closure starts meanwhile.
rt_test!(
    cancelled_blocking_closures_keep_their_slots,
    |b: Builder| async move {
        let pool = b.max_workers(MAX).build();
        let gauge = Gauge::new();
        let latch = Latch::new();
        let handles: Vec<_> = (0..2 * MAX)
            .map(|i| {
                let (gauge, latch) = (gauge.clone(), latch.clone());
                pool.submit_blocking(move || {
                    let _alive = gauge.enter();
                    latch.wait_blocking();
                    i
                })
            })
            .collect();
        gauge.until(|g| g.now() >= MAX).await;
        let mut running = handles;
        let queued = running.split_off(MAX);
        for h in &running {
            h.cancel();
        }
        for h in running {
            assert_eq!(h.await, Err(JobError::Cancelled));
        }
        // Every running handle has resolved; the closures still run and hold
        // their slots.
        for _ in 0..100 {
            futures_lite::future::yield_now().await;
        }
        assert_eq!(gauge.now(), MAX);
        assert_eq!(
            gauge.entered(),
            MAX,
            "a queued closure started in a cancelled closure's slot"
        );
        assert_eq!(pool.running(), MAX);
        assert_eq!(pool.waiting(), MAX);
        latch.open();
        for (i, h) in queued.into_iter().enumerate() {
            assert_eq!(h.await, Ok(MAX + i));
        }
        pool.stop_wait().await;
        assert_eq!(gauge.max(), MAX);
        assert_eq!(gauge.entered(), 2 * MAX);
        assert_eq!(gauge.now(), 0);
    }
);

// A blocking closure that timed out keeps its slot until it returns
// (`draining`); then its worker starts the next job. `running()`, read on
// another thread all the while, counts that slot once: while the closure
// drains (out of `running`, into `draining`), and after it is handed on.
// When these were two counters read one after the other, a reader could see
// the closure still draining and the next job already running (2); this
// test caught that in most runs of the suite on that code.
rt_test!(
    a_slot_handed_on_from_a_draining_closure_is_counted_once,
    |b: Builder| async move {
        use std::sync::atomic::AtomicBool;
        use std::time::Duration;
        use workerpoolxt::Job;
        /// Stops the sampler also when an assertion fails first.
        struct Stop(Arc<AtomicBool>);
        impl Drop for Stop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        const ROUNDS: usize = 300;
        let pool = b.max_workers(1).build();
        let stop = Stop(Arc::new(AtomicBool::new(false)));
        let probe = RunningProbe::default();
        let samples = Arc::new(AtomicUsize::new(0));
        let sampler = {
            let (pool, stop, probe, samples) =
                (pool.clone(), stop.0.clone(), probe.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    probe.sample(&pool);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        for _ in 0..ROUNDS {
            let (go, told) = std::sync::mpsc::channel::<()>();
            let (back, returning) = std::sync::mpsc::channel::<()>();
            // Times out at once and returns only when told to, after its
            // handle resolved: it drains while the next job waits for its
            // slot. It wakes the test thread as it returns, so that the
            // hand-over happens while every core is busy.
            let slow = pool.submit_job(
                Job::blocking(move |_ctx| {
                    let _ = told.recv();
                    let _ = back.send(());
                    Ok::<(), std::convert::Infallible>(())
                })
                .timeout(Duration::from_micros(10)),
            );
            let next = pool.submit(async {});
            assert_eq!(slow.await, Err(JobError::TimedOut));
            go.send(()).unwrap();
            returning.recv().unwrap();
            next.await.unwrap();
        }
        drop(stop);
        sampler.join().unwrap();
        assert!(samples.load(Ordering::Relaxed) > ROUNDS, "the sampler ran");
        assert_eq!(probe.max(), 1, "running() of a 1-worker pool");
        pool.stop_wait().await;
    }
);

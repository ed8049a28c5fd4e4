//! `Pool::metrics`: the ledger balances at quiet points, each final counter
//! matches what the handles said, `retried` matches the retries made, and a
//! snapshot is safe to take from every job at once.

mod common;
use common::*;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use workerpoolxt::{
    Backoff, Builder, Job, JobContext, JobError, Metrics, ResultHandle, TrySubmitError,
};

/// Polls `cond` (yielding, then sleeping 1 ms) until it holds; panics after 5 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    let mut spins = 0u32;
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        if spins < 100 {
            spins += 1;
            futures_lite::future::yield_now().await;
        } else {
            sleep(Duration::from_millis(1)).await;
        }
    }
}

/// How the handles (and refused `try_submit*`/`*_wait` calls) said the jobs
/// ended, counted by the test itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    submitted: u64,
    succeeded: u64,
    failed: u64,
    timed_out: u64,
    cancelled: u64,
    panicked: u64,
    stopped: u64,
    rejected: u64,
    /// Attempts after the first, counted by the jobs' factories.
    retried: u64,
}

impl Tally {
    fn result<T, E>(&mut self, r: &Result<T, JobError<E>>) {
        match r {
            Ok(_) => self.succeeded += 1,
            Err(JobError::Failed(_)) => self.failed += 1,
            Err(JobError::TimedOut) => self.timed_out += 1,
            Err(JobError::Cancelled) => self.cancelled += 1,
            Err(JobError::Panicked(_)) => self.panicked += 1,
            Err(JobError::Stopped) => self.stopped += 1,
            Err(JobError::QueueFull) => self.rejected += 1,
            Err(_) => panic!("an error kind this test does not know"),
        }
    }

    async fn all<T, E>(&mut self, handles: Vec<ResultHandle<T, E>>) {
        for h in handles {
            self.result(&h.await);
        }
    }

    /// Compares the pool's counters with this tally, at a quiet point.
    fn check(&self, m: &Metrics, when: &str) {
        assert_eq!((m.waiting, m.running), (0, 0), "{when}: not quiet: {m:?}");
        let finals = m.finished();
        assert_eq!(
            m.submitted,
            m.waiting + m.running + finals,
            "{when}: ledger off: {m:?}"
        );
        let seen = Tally {
            submitted: m.submitted,
            succeeded: m.succeeded,
            failed: m.failed,
            timed_out: m.timed_out,
            cancelled: m.cancelled,
            panicked: m.panicked,
            stopped: m.stopped,
            rejected: m.rejected,
            retried: m.retried,
        };
        assert_eq!(seen, *self, "{when}: metrics (left) vs handles (right)");
    }
}

/// An async job that fails `fails` times, then succeeds, counting its
/// attempts after the first into `retries`; up to `retry` retries.
fn flaky(fails: u32, retry: u32, retries: &Arc<AtomicU64>) -> Job<u32, &'static str> {
    let retries = retries.clone();
    Job::new(move |ctx: JobContext| {
        if ctx.attempt() > 1 {
            retries.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            if ctx.attempt() <= fails {
                Err("flaky")
            } else {
                Ok(ctx.attempt())
            }
        }
    })
    .retry(retry)
    .backoff(Backoff::fixed(Duration::from_millis(1)))
}

// After a mixed workload (successes, failures with retries, timeouts, cancels
// of queued and running jobs, panics, stops, rejections), at quiet points:
// the ledger balances and every counter equals what the handles said.
rt_test!(
    ledger_balances_and_counters_match_handles,
    |b: Builder| async move {
        quiet_expected_panics();
        let pool = b.max_workers(2).queue_capacity(8).build();
        let retries = Arc::new(AtomicU64::new(0));
        let mut t = Tally::default();

        // ----- Phase A: jobs flowing (the *_wait submits, so nothing is refused) -----
        let mut plain = Vec::new();
        for i in 0..12u32 {
            plain.push(pool.submit_wait(async move { i }).await.unwrap());
        }
        for _ in 0..2 {
            plain.push(pool.submit_blocking_wait(|| 7).await.unwrap());
        }
        plain.push(
            pool.submit_wait(async { panic!("expected panic: metrics") })
                .await
                .unwrap(),
        );
        let mut jobs = Vec::new();
        for _ in 0..4 {
            // Always fails: 1 + 2 attempts, Failed.
            jobs.push(
                pool.submit_job_wait(flaky(u32::MAX, 2, &retries))
                    .await
                    .unwrap(),
            );
        }
        for _ in 0..3 {
            // Fails once, then succeeds.
            jobs.push(pool.submit_job_wait(flaky(1, 3, &retries)).await.unwrap());
        }
        for _ in 0..3 {
            // Times out on its first attempt.
            let job = Job::new(|_| std::future::pending::<Result<u32, &'static str>>())
                .timeout(Duration::from_millis(5));
            jobs.push(pool.submit_job_wait(job).await.unwrap());
        }
        let r = retries.clone();
        let panics_on_retry = Job::new(move |ctx: JobContext| {
            if ctx.attempt() > 1 {
                r.fetch_add(1, Ordering::SeqCst);
            }
            async move {
                if ctx.attempt() == 1 {
                    Err("first")
                } else {
                    panic!("expected panic: on retry")
                }
            }
        })
        .retry(3)
        .backoff(Backoff::none());
        jobs.push(pool.submit_job_wait(panics_on_retry).await.unwrap());
        let r = retries.clone();
        let blocking_fails = Job::blocking(move |ctx: JobContext| {
            if ctx.attempt() > 1 {
                r.fetch_add(1, Ordering::SeqCst);
            }
            Err::<u32, _>("blocking")
        })
        .retry(1)
        .backoff(Backoff::none());
        jobs.push(pool.submit_job_wait(blocking_fails).await.unwrap());

        t.submitted = (plain.len() + jobs.len()) as u64;
        t.all(plain).await;
        t.all(jobs).await;
        until("the workers to be done", || pool.running() == 0).await;
        t.retried = retries.load(Ordering::SeqCst);
        assert_eq!(
            (t.succeeded, t.failed, t.timed_out, t.panicked, t.retried),
            (12 + 2 + 3, 4 + 1, 3, 2, 4 * 2 + 3 + 1 + 1),
            "the workload did not go as planned"
        );
        t.check(&pool.metrics(), "after phase A");

        // ----- Phase B: blocked workers, a full queue, cancels, refusals, a stop -----
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let held = pool.submit(blocker(&gauge, &latch));
        let g = gauge.clone();
        let cancelled_running = pool.submit(async move {
            let _in = g.enter();
            std::future::pending::<()>().await;
        });
        gauge.until(|g| g.now() == 2).await;
        let mut queued: Vec<_> = (0..8)
            .map(|_| pool.try_submit(blocker(&gauge, &latch)).expect("room"))
            .collect();
        t.submitted += 10;
        for h in &queued[..3] {
            h.cancel(); // cancelled while queued
        }
        assert_eq!(pool.waiting(), 5);
        for _ in 0..3 {
            queued.push(pool.submit(blocker(&gauge, &latch)));
        }
        t.submitted += 3;
        assert_eq!(pool.waiting(), 8);

        // Refusals: two handles resolve QueueFull, three calls give the job back.
        let full: Vec<ResultHandle<()>> = vec![pool.submit(async {}), pool.submit_blocking(|| ())];
        assert!(matches!(
            pool.try_submit(async {}),
            Err(TrySubmitError::Full(_))
        ));
        assert!(matches!(
            pool.try_submit_blocking(|| ()),
            Err(TrySubmitError::Full(_))
        ));
        assert!(pool.try_submit_job(flaky(0, 0, &retries)).is_err());
        t.submitted += 5;
        t.rejected += 3;
        t.all(full).await;

        // Cancel the running job; its worker takes the next queued one.
        cancelled_running.cancel();
        t.result(&cancelled_running.await);
        gauge.until(|g| g.entered() == 3).await;

        // Stop: the queued jobs never start; the two running ones finish.
        let stop = pool.stop();
        latch.open();
        stop.await;
        t.result(&held.await);
        t.all(queued).await;

        // Submissions to the stopped pool.
        let after: Vec<ResultHandle<()>> = vec![pool.submit(async {}), pool.submit_blocking(|| ())];
        let after_job = pool.submit_job(flaky(0, 0, &retries));
        assert!(matches!(
            pool.try_submit(async {}),
            Err(TrySubmitError::Stopped(_))
        ));
        assert!(pool.submit_wait(async {}).await.is_err());
        t.submitted += 5;
        t.stopped += 2;
        t.all(after).await;
        t.result(&after_job.await);

        t.retried = retries.load(Ordering::SeqCst);
        assert_eq!(
            (t.cancelled, t.stopped, t.rejected),
            (3 + 1, 7 + 5, 5),
            "the workload did not go as planned"
        );
        t.check(&pool.metrics(), "after the stop");
    }
);

// metrics() is safe to call from every job of a 10k-job run at once: each
// snapshot is sane, and the final ledger is exact.
rt_test!(
    metrics_from_every_job_of_a_10k_run,
    |b: Builder| async move {
        const N: u64 = 10_000;
        const WORKERS: u64 = 8;
        let pool = b.max_workers(WORKERS as usize).build();
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let p = pool.clone();
                pool.submit(async move { (i, p.metrics()) })
            })
            .collect();
        let mut most_running = 0;
        for h in handles {
            let (i, m) = h.await.unwrap();
            assert!((1..=WORKERS).contains(&m.running), "job {i} saw {m:?}");
            assert!(m.submitted > i && m.submitted <= N, "job {i} saw {m:?}");
            assert!(
                m.succeeded < m.submitted,
                "job {i} saw itself finished: {m:?}"
            );
            most_running = most_running.max(m.running);
        }
        assert!(most_running >= 1);
        pool.stop_wait().await;
        let m: Metrics = pool.metrics();
        assert_eq!(
            (m.submitted, m.succeeded, m.waiting, m.running),
            (N, N, 0, 0),
            "{m:?}"
        );
        assert_eq!(
            (
                m.failed,
                m.timed_out,
                m.cancelled,
                m.panicked,
                m.stopped,
                m.rejected,
                m.retried
            ),
            (0, 0, 0, 0, 0, 0, 0)
        );
    }
);

// running() never counts a job that has not started: with a single job in
// the pool, reading running() == 1 and *then* waiting() == 1 means the job
// was reported running while it was still queued. (A worker counts itself
// running before it takes the job out of the queue, for the pause
// handshake.) Probabilistic: it repeats the race many times.
rt_test!(
    running_never_counts_a_job_still_queued,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        for round in 0..300 {
            let (gauge, latch) = (Gauge::new(), Latch::new());
            let h = pool.submit(blocker(&gauge, &latch));
            loop {
                let running = pool.running();
                let waiting = pool.waiting();
                assert!(
                    !(running == 1 && waiting == 1),
                    "round {round}: the only job was counted running while still queued"
                );
                if gauge.entered() == 1 {
                    break;
                }
                futures_lite::future::yield_now().await;
            }
            latch.open();
            h.await.unwrap();
        }
    }
);

//! Outcome records: name, attempts, run duration and queue wait are kept on
//! every path — success, failure, timeout (running and queued), cancel
//! (running and queued), panic, retry exhaustion and stop. A manual clock
//! makes every duration exact: each job waits 3 ms in the queue and, once
//! started, runs 7 ms before it ends.

mod common;
use common::*;

use std::time::Duration;

use workerpoolxt::{Backoff, Builder, Job, JobError, Pool, ResultHandle};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom(u32);

const QUEUED: Duration = Duration::from_millis(3);
const RAN: Duration = Duration::from_millis(7);

/// A 1-worker pool on a manual clock whose worker is held by a blocker job.
struct Scene {
    clock: ManualClock,
    pool: Pool,
    release_blocker: Latch,
    blocker: ResultHandle<()>,
}

async fn scene(b: Builder) -> Scene {
    let clock = ManualClock::new();
    let pool = b
        .max_workers(1)
        .keep_idle_workers()
        .clock(clock.clone())
        .build();
    let (started, release_blocker) = (Latch::new(), Latch::new());
    let (s, r) = (started.clone(), release_blocker.clone());
    let blocker = pool.submit(async move {
        s.open();
        r.wait().await;
    });
    started.wait().await;
    Scene {
        clock,
        pool,
        release_blocker,
        blocker,
    }
}

impl Scene {
    /// Lets `QUEUED` pass, then frees the worker for the next queued job.
    async fn after_queue_wait(&mut self) {
        self.clock.advance(QUEUED);
        self.release_blocker.open();
        assert_eq!((&mut self.blocker).await, Ok(()));
    }
}

#[derive(Clone, Copy)]
enum End {
    Ok,
    Fail,
    Panic,
    Never,
}

/// A job named "probe" that opens `started`, waits for `release`, then ends as told.
fn probe(started: &Latch, release: &Latch, end: End) -> Job<u32, Boom> {
    let (started, release) = (started.clone(), release.clone());
    Job::new(move |ctx| {
        let (started, release) = (started.clone(), release.clone());
        async move {
            started.open();
            if let End::Never = end {
                std::future::pending::<()>().await;
            }
            release.wait().await;
            match end {
                End::Ok => Ok(ctx.attempt()),
                End::Fail => Err(Boom(ctx.attempt())),
                End::Panic => panic!("expected panic from the probe"),
                End::Never => unreachable!(),
            }
        }
    })
    .name("probe")
}

/// Runs a probe that ends as told after `RAN`; returns its handle's outcome.
async fn run_probe(b: Builder, end: End) -> workerpoolxt::Outcome<u32, Boom> {
    let mut s = scene(b).await;
    let (started, release) = (Latch::new(), Latch::new());
    let h = s.pool.submit_job(probe(&started, &release, end));
    s.after_queue_wait().await;
    started.wait().await;
    s.clock.advance(RAN);
    release.open();
    let o = h.outcome().await;
    s.pool.stop_wait().await;
    o
}

// A success keeps name, 1 attempt, its run time and its queue wait.
rt_test!(a_success_keeps_every_field, |b: Builder| async move {
    let o = run_probe(b, End::Ok).await;
    assert_eq!(o.result(), Ok(&1));
    assert!(o.is_ok() && o.error().is_none());
    assert_eq!(
        (o.name(), o.attempts(), o.duration(), o.queued()),
        (Some("probe"), 1, RAN, QUEUED)
    );
    assert_eq!(format!("{o}"), "probe: Ok(1) after 1 attempt(s) in 7ms");
    assert_eq!(
        format!("{o:?}"),
        r#"Outcome { id: JobId(2), name: Some("probe"), duration: 7ms, queued: 3ms, attempts: 1, result: Ok(1) }"#
    );
});

// A failure keeps name, attempts, duration and queue wait, with the job's own error.
rt_test!(a_failure_keeps_every_field, |b: Builder| async move {
    let o = run_probe(b, End::Fail).await;
    assert_eq!(o.result(), Err(&JobError::Failed(Boom(1))));
    assert_eq!(
        (o.name(), o.attempts(), o.duration(), o.queued()),
        (Some("probe"), 1, RAN, QUEUED)
    );
});

// A panic keeps name, attempts, duration and queue wait, with the panic's message.
rt_test!(a_panic_keeps_every_field, |b: Builder| async move {
    quiet_expected_panics();
    let o = run_probe(b, End::Panic).await;
    match o.error() {
        Some(JobError::Panicked(p)) => assert_eq!(p.message(), "expected panic from the probe"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(
        (o.name(), o.attempts(), o.duration(), o.queued()),
        (Some("probe"), 1, RAN, QUEUED)
    );
});

// A job that times out while running keeps name, attempts, its run time up to the timeout and its queue wait.
rt_test!(
    a_timeout_while_running_keeps_every_field,
    |b: Builder| async move {
        let mut s = scene(b).await;
        let (started, release) = (Latch::new(), Latch::new());
        let h = s
            .pool
            .submit_job(probe(&started, &release, End::Never).timeout(RAN));
        s.after_queue_wait().await;
        started.wait().await;
        s.clock.advance(RAN);
        let o = h.outcome().await;
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert_eq!(
            (o.name(), o.attempts(), o.duration(), o.queued()),
            (Some("probe"), 1, RAN, QUEUED)
        );
        s.pool.stop_wait().await;
    }
);

// A job whose deadline passes in the queue keeps its name and queue wait, with 0 attempts and no run time.
rt_test!(
    a_timeout_while_queued_keeps_every_field,
    |b: Builder| async move {
        let mut s = scene(b).await;
        let (started, release) = (Latch::new(), Latch::new());
        let deadline = s.clock.now() + Duration::from_millis(2);
        let h = s
            .pool
            .submit_job(probe(&started, &release, End::Ok).deadline(deadline));
        s.after_queue_wait().await;
        let o = h.outcome().await;
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert_eq!(
            (o.name(), o.attempts(), o.duration(), o.queued()),
            (Some("probe"), 0, Duration::ZERO, QUEUED)
        );
        assert!(!started.is_open());
        s.pool.stop_wait().await;
    }
);

// A job cancelled while running keeps name, attempts, its run time up to the cancel and its queue wait.
rt_test!(
    a_cancel_while_running_keeps_every_field,
    |b: Builder| async move {
        let mut s = scene(b).await;
        let (started, release) = (Latch::new(), Latch::new());
        let h = s.pool.submit_job(probe(&started, &release, End::Never));
        s.after_queue_wait().await;
        started.wait().await;
        s.clock.advance(RAN);
        h.cancel();
        let o = h.outcome().await;
        assert_eq!(o.result(), Err(&JobError::Cancelled));
        assert_eq!(
            (o.name(), o.attempts(), o.duration(), o.queued()),
            (Some("probe"), 1, RAN, QUEUED)
        );
        s.pool.stop_wait().await;
    }
);

// A job cancelled in the queue keeps its name and its queue wait up to the cancel, with 0 attempts.
rt_test!(
    a_cancel_while_queued_keeps_every_field,
    |b: Builder| async move {
        let mut s = scene(b).await;
        let (started, release) = (Latch::new(), Latch::new());
        let h = s.pool.submit_job(probe(&started, &release, End::Ok));
        s.clock.advance(QUEUED);
        h.cancel();
        let o = h.outcome().await; // at once: the worker is still held by the blocker
        assert_eq!(o.result(), Err(&JobError::Cancelled));
        assert_eq!(
            (o.name(), o.attempts(), o.duration(), o.queued()),
            (Some("probe"), 0, Duration::ZERO, QUEUED)
        );
        s.after_queue_wait().await;
        s.pool.stop_wait().await;
        assert!(!started.is_open());
    }
);

// Retry exhaustion keeps name, every attempt, the whole run (backoffs included) and the last error.
rt_test!(
    retry_exhaustion_keeps_every_field,
    |b: Builder| async move {
        let mut s = scene(b).await;
        let job = Job::new(|ctx| async move { Err::<u32, _>(Boom(ctx.attempt())) })
            .name("exhausted")
            .retry(2)
            .backoff(Backoff::fixed(Duration::from_millis(5)));
        let h = s.pool.submit_job(job);
        s.after_queue_wait().await;
        for _ in 0..2 {
            s.clock.until_sleepers(1).await;
            s.clock.advance(Duration::from_millis(5));
        }
        let o = h.outcome().await;
        assert_eq!(o.result(), Err(&JobError::Failed(Boom(3))));
        assert_eq!(
            (o.name(), o.attempts(), o.duration(), o.queued()),
            (Some("exhausted"), 3, Duration::from_millis(10), QUEUED)
        );
        s.pool.stop_wait().await;
    }
);

// A queued job dropped by a stop keeps its name and queue wait, with 0 attempts.
rt_test!(a_stop_keeps_every_field, |b: Builder| async move {
    let mut s = scene(b).await;
    let (started, release) = (Latch::new(), Latch::new());
    let h = s.pool.submit_job(probe(&started, &release, End::Ok));
    s.clock.advance(QUEUED);
    let stop = s.pool.stop();
    let o = h.outcome().await;
    assert_eq!(o.result(), Err(&JobError::Stopped));
    assert_eq!(
        (o.name(), o.attempts(), o.duration(), o.queued()),
        (Some("probe"), 0, Duration::ZERO, QUEUED)
    );
    s.release_blocker.open();
    stop.await;
    assert_eq!((&mut s.blocker).await, Ok(()));
    assert!(!started.is_open());
});

// A submit refused by a stopped pool keeps its name; it was never queued
// nor run: no attempt, no run time, no queue wait, however late on the
// pool's clock it comes.
rt_test!(
    a_refused_submit_keeps_every_field,
    |b: Builder| async move {
        let mut s = scene(b).await;
        s.after_queue_wait().await;
        s.pool.stop_wait().await;
        s.clock.advance(RAN);
        let (started, release) = (Latch::new(), Latch::new());
        let o = s
            .pool
            .submit_job(probe(&started, &release, End::Ok))
            .outcome()
            .await;
        assert_eq!(o.result(), Err(&JobError::Stopped));
        assert_eq!(
            (o.name(), o.attempts(), o.duration(), o.queued()),
            (Some("probe"), 0, Duration::ZERO, Duration::ZERO)
        );
        assert!(!started.is_open());
    }
);

rt_test!(
    a_job_after_an_idle_gap_measures_its_own_run,
    |b: Builder| async move {
        // A worker hands the clock reading at the end of one job to the start
        // of the next only when nothing came between them: a job that follows
        // an idle gap must not count the gap as its run.
        let pool = b.max_workers(1).build();
        let first = pool.submit(async { 1 }).outcome().await;
        assert_eq!(first.result(), Ok(&1));
        let gap = Duration::from_millis(150);
        sleep(gap).await;
        let second = pool.submit(async { 2 }).outcome().await;
        assert_eq!(second.result(), Ok(&2));
        assert!(
            second.duration() < gap / 2,
            "an instant job ran {:?} after a {gap:?} gap",
            second.duration()
        );
        assert!(second.queued() < gap / 2, "queued {:?}", second.queued());
        pool.stop_wait().await;
    }
);

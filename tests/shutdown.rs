//! `Pool::shutdown(grace)`: a stop, then, once the grace has passed on the
//! pool's clock, a cancel of every job still running, and a report of what
//! happened (`ShutdownReport { finished, cancelled, stopped }`).
//!
//! Time is a `ManualClock` and the workers never go idle on a timer
//! (`keep_idle_workers`), so the only sleeper on the clock is the shutdown's
//! grace timer: each test polls the shutdown once (which arms it), waits
//! for it to be armed, and only then advances the clock.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures_lite::future::poll_once;
use workerpoolxt::{Builder, CancelToken, Job, JobError, Pool, ResultHandle, Shutdown};

const GRACE: Duration = Duration::from_secs(5);
const MS: Duration = Duration::from_millis(1);
const PROMPT: Duration = Duration::from_secs(5);

/// A pool of `workers` on a manual clock, without idle timers.
fn manual_pool(b: Builder, workers: usize) -> (Pool, ManualClock) {
    let clock = ManualClock::new();
    let pool = b
        .max_workers(workers)
        .keep_idle_workers()
        .clock(clock.clone())
        .build();
    (pool, clock)
}

/// Begins a shutdown with `grace`, polls it once (it is pending: jobs run)
/// and waits until its grace timer is the one sleeper on the clock.
async fn begin(pool: &Pool, clock: &ManualClock, grace: Duration) -> Shutdown {
    let mut shutdown = pool.shutdown(grace);
    assert!(
        poll_once(&mut shutdown).await.is_none(),
        "the shutdown resolved while jobs were running"
    );
    within(PROMPT, clock.until_sleepers(1))
        .await
        .expect("the grace timer was never armed");
    assert_eq!(clock.sleepers(), 1, "a sleeper besides the grace timer");
    shutdown
}

/// The report's counts as `(finished, cancelled, stopped)`.
async fn report(shutdown: Shutdown) -> (u64, u64, u64) {
    let r = within(PROMPT, shutdown)
        .await
        .expect("the shutdown never resolved");
    (r.finished, r.cancelled, r.stopped)
}

/// An async job that counts itself in `gauge` and never ends on its own.
fn stuck(pool: &Pool, gauge: &Gauge) -> (ResultHandle<()>, Arc<Counts>) {
    let gauge = gauge.clone();
    let (fut, counts) = counted(async move {
        let _in = gauge.enter();
        std::future::pending::<()>().await
    });
    (pool.submit(fut), counts)
}

/// A blocking closure, counted in `gauge`, that looks at its context every
/// millisecond (for at most 30 s) until it is told it is cancelled, sends
/// what it saw on `told`, then waits for `release` and sets `returned` as
/// its last act.
struct Heeding {
    told: async_channel::Receiver<bool>,
    release: Latch,
    returned: Arc<AtomicBool>,
}

fn heeding(pool: &Pool, gauge: &Gauge) -> (ResultHandle<bool, ()>, Heeding) {
    let (tx, told) = async_channel::unbounded();
    let (release, returned) = (Latch::new(), Arc::new(AtomicBool::new(false)));
    let (g, r, ret) = (gauge.clone(), release.clone(), returned.clone());
    let handle = pool.submit_job(Job::blocking_once(move |ctx| {
        let _in = g.enter();
        let start = Instant::now();
        while !ctx.is_cancelled() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(MS);
        }
        let seen = ctx.is_cancelled();
        tx.send_blocking(seen).unwrap();
        r.wait_blocking();
        ret.store(true, Ordering::SeqCst);
        Ok(seen)
    }));
    let h = Heeding {
        told,
        release,
        returned,
    };
    (handle, h)
}

// Jobs that end within the grace: the shutdown resolves as soon as they
// have, without the grace ending; they count as finished, nothing is
// cancelled, and their handles get their values. A blocking closure is
// never told to stop.
rt_test!(
    jobs_that_end_within_the_grace_finish_with_their_values,
    |b: Builder| async move {
        let (pool, clock) = manual_pool(b, 2);
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let body = blocker(&gauge, &latch);
        let first = pool.submit(async move {
            body.await;
            1u32
        });
        let (g, l) = (gauge.clone(), latch.clone());
        let second = pool.submit_job(Job::blocking_once(move |ctx| {
            let _in = g.enter();
            l.wait_blocking();
            Ok::<_, ()>(ctx.is_cancelled())
        }));
        gauge.until(|g| g.now() == 2).await;
        let mut shutdown = begin(&pool, &clock, GRACE).await;
        // The last moment of the grace: still waiting.
        clock.advance(GRACE - MS);
        assert!(poll_once(&mut shutdown).await.is_none());
        assert!(!first.is_finished() && !second.is_finished());
        latch.open();
        assert_eq!(report(shutdown).await, (2, 0, 0));
        assert_eq!(gauge.now(), 0, "resolved before the jobs ended");
        assert_eq!(first.now_or_never(), Some(Ok(1)));
        assert_eq!(second.now_or_never(), Some(Ok(false)), "told to stop");
        let m = pool.metrics();
        assert_eq!((m.succeeded, m.cancelled), (2, 0));
    }
);

// Jobs still running when the grace ends are cancelled, none before: an
// async job is dropped before its handle resolves `Cancelled`, a job with
// its own token is cancelled all the same, and a blocking closure is told
// through its context while its handle resolves `Cancelled` at once. The
// shutdown resolves only once the closure has returned.
rt_test!(
    jobs_running_past_the_grace_are_cancelled,
    |b: Builder| async move {
        let (pool, clock) = manual_pool(b, 3);
        let gauge = Gauge::new();
        let (plain, plain_counts) = stuck(&pool, &gauge);
        let own = CancelToken::new();
        let g = gauge.clone();
        let (fut, own_counts) = counted(async move {
            let _in = g.enter();
            std::future::pending::<Result<(), ()>>().await
        });
        let tokened = pool.submit_job(Job::once(fut).cancel_token(own.clone()));
        let (closure, h) = heeding(&pool, &gauge);
        let _guard = OpenOnPanic(vec![h.release.clone()]);
        gauge.until(|g| g.now() == 3).await;
        let mut shutdown = begin(&pool, &clock, GRACE).await;

        clock.advance(GRACE - MS);
        assert!(poll_once(&mut shutdown).await.is_none());
        settle().await;
        assert!(!plain.is_finished() && !tokened.is_finished() && !closure.is_finished());
        assert_eq!((plain_counts.drops(), own_counts.drops()), (0, 0));
        assert!(
            h.told.is_empty(),
            "a closure was told before the grace ended"
        );

        clock.advance(MS);
        assert!(poll_once(&mut shutdown).await.is_none(), "a closure runs");
        assert_eq!(within(PROMPT, plain).await, Some(Err(JobError::Cancelled)));
        assert_eq!(plain_counts.drops(), 1, "resolved before the drop");
        assert_eq!(
            within(PROMPT, tokened).await,
            Some(Err(JobError::Cancelled))
        );
        assert_eq!(own_counts.drops(), 1, "resolved before the drop");
        assert!(!own.is_cancelled(), "the job's own token is not the way");
        assert_eq!(within(PROMPT, h.told.recv()).await, Some(Ok(true)));
        // Told, not returned: the handle has resolved, the shutdown waits.
        let mut closure = closure;
        assert_eq!(closure.try_take(), Some(Err(JobError::Cancelled)));
        assert!(!h.returned.load(Ordering::SeqCst));
        assert_eq!(pool.metrics().draining, 1);
        assert!(poll_once(&mut shutdown).await.is_none(), "closure not back");

        h.release.open();
        assert_eq!(report(shutdown).await, (0, 3, 0));
        assert!(
            h.returned.load(Ordering::SeqCst),
            "resolved before the return"
        );
        assert_eq!(gauge.now(), 0);
        assert_eq!(pool.metrics().cancelled, 3);
    }
);

// A mix: queued jobs resolve `Stopped` at once, never polled; submits after
// the shutdown began resolve `Stopped`; a job that ends within the grace and
// one cancelled by its own handle meanwhile count as finished; the one still
// running when the grace ends is cancelled. The report counts each.
rt_test!(
    the_report_counts_finished_cancelled_and_stopped_jobs,
    |b: Builder| async move {
        let (pool, clock) = manual_pool(b, 3);
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let body = blocker(&gauge, &latch);
        let ends = pool.submit(body);
        let (given_up, _) = stuck(&pool, &gauge);
        let (overrun, overrun_counts) = stuck(&pool, &gauge);
        gauge.until(|g| g.now() == 3).await;
        let queued: Vec<_> = (0..3).map(|_| counted(async {})).collect();
        let queued: Vec<_> = queued
            .into_iter()
            .map(|(fut, counts)| (pool.submit(fut), counts))
            .collect();
        let withdrawn = pool.submit(async {});
        withdrawn.cancel();
        assert_eq!(withdrawn.now_or_never(), Some(Err(JobError::Cancelled)));
        assert_eq!(pool.waiting(), 3);

        let mut shutdown = begin(&pool, &clock, GRACE).await;
        for (h, counts) in queued {
            assert_eq!(h.now_or_never(), Some(Err(JobError::Stopped)));
            assert_eq!((counts.polls(), counts.drops()), (0, 1));
        }
        let late = pool.submit(async { 1 });
        let late_blocking = pool.submit_blocking(|| 2);
        assert_eq!(late.now_or_never(), Some(Err(JobError::Stopped)));
        assert_eq!(late_blocking.now_or_never(), Some(Err(JobError::Stopped)));

        given_up.cancel();
        assert_eq!(
            within(PROMPT, given_up).await,
            Some(Err(JobError::Cancelled))
        );
        latch.open();
        assert_eq!(within(PROMPT, ends).await, Some(Ok(())));
        assert!(poll_once(&mut shutdown).await.is_none());
        assert_eq!(overrun_counts.drops(), 0);

        clock.advance(GRACE);
        assert_eq!(report(shutdown).await, (2, 1, 5));
        assert_eq!(overrun.now_or_never(), Some(Err(JobError::Cancelled)));
        assert_eq!(overrun_counts.drops(), 1);
        assert_eq!(gauge.now(), 0);
        let m = pool.metrics();
        assert_eq!((m.succeeded, m.cancelled, m.stopped), (1, 3, 5));
    }
);

// A zero grace cancels at once: the running jobs are cancelled before the
// shutdown is even polled, no grace timer is armed, and the shutdown waits
// only for the told closure to return.
rt_test!(a_zero_grace_cancels_at_once, |b: Builder| async move {
    let (pool, clock) = manual_pool(b, 2);
    let gauge = Gauge::new();
    let (plain, counts) = stuck(&pool, &gauge);
    let (closure, h) = heeding(&pool, &gauge);
    let _guard = OpenOnPanic(vec![h.release.clone()]);
    gauge.until(|g| g.now() == 2).await;

    let shutdown = pool.shutdown(Duration::ZERO);
    assert_eq!(within(PROMPT, plain).await, Some(Err(JobError::Cancelled)));
    assert_eq!(counts.drops(), 1);
    assert_eq!(within(PROMPT, h.told.recv()).await, Some(Ok(true)));
    assert_eq!(closure.now_or_never(), Some(Err(JobError::Cancelled)));
    assert_eq!(clock.sleepers(), 0, "a zero grace armed a timer");

    h.release.open();
    assert_eq!(report(shutdown).await, (0, 2, 0));
    assert!(h.returned.load(Ordering::SeqCst));
    assert_eq!(clock.sleepers(), 0);
});

// A blocking closure that never looks at its context keeps the shutdown
// waiting past the grace until it returns; its handle resolves `Cancelled`
// as the grace ends.
rt_test!(
    a_closure_that_does_not_heed_keeps_the_shutdown_waiting,
    |b: Builder| async move {
        let (pool, clock) = manual_pool(b, 1);
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let (g, l) = (gauge.clone(), latch.clone());
        let closure = pool.submit_blocking(move || {
            let _in = g.enter();
            l.wait_blocking();
            7u8
        });
        gauge.until(|g| g.now() == 1).await;
        let mut shutdown = begin(&pool, &clock, GRACE).await;
        clock.advance(GRACE);
        assert!(poll_once(&mut shutdown).await.is_none());
        assert_eq!(
            within(PROMPT, closure).await,
            Some(Err(JobError::Cancelled))
        );
        settle().await;
        assert!(
            poll_once(&mut shutdown).await.is_none(),
            "closure still runs"
        );
        assert_eq!((gauge.now(), pool.running()), (1, 1));
        latch.open();
        assert_eq!(report(shutdown).await, (0, 1, 0));
        assert_eq!(gauge.now(), 0);
    }
);

// Dropping the shutdown before its grace ended leaves the pool stopping, as
// a dropped `Stop` does, and cancels nothing: the running job ends on its
// own, however far the clock moves.
rt_test!(
    a_shutdown_dropped_within_the_grace_cancels_nothing,
    |b: Builder| async move {
        let (pool, clock) = manual_pool(b, 1);
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let body = blocker(&gauge, &latch);
        let running = pool.submit(async move {
            body.await;
            3u8
        });
        gauge.until(|g| g.now() == 1).await;
        drop(begin(&pool, &clock, GRACE).await);
        assert_eq!(clock.sleepers(), 0, "the grace timer outlived its shutdown");
        assert!(pool.is_stopped());
        assert_eq!(pool.submit(async { 0u8 }).await, Err(JobError::Stopped));
        clock.advance(GRACE * 2);
        settle().await;
        assert!(!running.is_finished(), "cancelled without a shutdown");
        latch.open();
        assert_eq!(within(PROMPT, running).await, Some(Ok(3)));
        within(PROMPT, pool.stop())
            .await
            .expect("the stop never ended");
        assert_eq!(pool.metrics().cancelled, 0);
    }
);

// A shutdown of an idle pool, or of one stopped already, resolves without
// its grace ending (the clock never moves), and reports nothing; submits
// refused before a shutdown are not in its report.
rt_test!(
    a_shutdown_of_an_idle_pool_needs_no_grace,
    |b: Builder| async move {
        let (pool, clock) = manual_pool(b, 2);
        assert_eq!(pool.submit(async { 1 }).await, Ok(1));
        assert_eq!(report(pool.shutdown(GRACE)).await, (0, 0, 0));
        assert_eq!(pool.submit(async { 2 }).await, Err(JobError::Stopped));
        assert_eq!(report(pool.shutdown(GRACE)).await, (0, 0, 0));
        assert_eq!(clock.sleepers(), 0);
        let m = pool.metrics();
        assert_eq!((m.succeeded, m.stopped), (1, 1));
    }
);

// A job waiting out a retry backoff when the grace ends is cancelled then,
// without waiting for its backoff to end or starting another attempt.
rt_test!(
    a_job_in_its_backoff_is_cancelled_when_the_grace_ends,
    |b: Builder| async move {
        let (pool, clock) = manual_pool(b, 1);
        let attempts = Gauge::new();
        let a = attempts.clone();
        let handle = pool.submit_job(
            Job::new(move |_ctx| {
                let _in = a.enter();
                async { Err::<(), _>("again") }
            })
            .retry(3)
            .backoff(workerpoolxt::Backoff::fixed(GRACE * 10)),
        );
        within(PROMPT, clock.until_sleepers(1))
            .await
            .expect("the backoff never began");
        assert_eq!(attempts.entered(), 1);
        let mut shutdown = pool.shutdown(GRACE);
        assert!(poll_once(&mut shutdown).await.is_none());
        within(PROMPT, clock.until_sleepers(2))
            .await
            .expect("the grace timer was never armed");
        clock.advance(GRACE);
        assert_eq!(report(shutdown).await, (0, 1, 0));
        assert_eq!(handle.now_or_never(), Some(Err(JobError::Cancelled)));
        assert_eq!(attempts.entered(), 1, "another attempt began");
    }
);

// A shutdown awaited inside an async job of the pool waits for the other
// jobs; when its grace ends, the other job is cancelled, and so is the
// calling job, unless the other worker left so fast that the caller's
// shutdown resolved in the very poll that began the cancel (then the
// caller returns the report, which counts the other job as cancelled).
rt_test!(
    a_shutdown_awaited_inside_a_job_cancels_the_others,
    |b: Builder| async move {
        let (pool, clock) = manual_pool(b, 2);
        let gauge = Gauge::new();
        let (other, other_counts) = stuck(&pool, &gauge);
        gauge.until(|g| g.now() == 1).await;
        let (p, g) = (pool.clone(), gauge.clone());
        let (fut, caller_counts) = counted(async move {
            let _in = g.enter();
            p.shutdown(GRACE).await
        });
        let caller = pool.submit(fut);
        within(PROMPT, clock.until_sleepers(1))
            .await
            .expect("the grace timer was never armed");
        assert_eq!(gauge.now(), 2);
        clock.advance(GRACE);
        assert_eq!(within(PROMPT, other).await, Some(Err(JobError::Cancelled)));
        assert_eq!(other_counts.drops(), 1);
        let cancelled = match within(PROMPT, caller).await {
            Some(Err(JobError::Cancelled)) => 2,
            Some(Ok(r)) => {
                assert_eq!((r.finished, r.cancelled, r.stopped), (0, 1, 0));
                1
            }
            other => panic!("the caller: {other:?}"),
        };
        assert_eq!(caller_counts.drops(), 1);
        within(PROMPT, pool.stop())
            .await
            .expect("the workers never left");
        let m = pool.metrics();
        assert_eq!((m.cancelled, m.succeeded), (cancelled, 2 - cancelled));
    }
);

// A blocking closure already cancelled by its handle (draining) when the
// shutdown begins is neither finished nor cancelled by it: the shutdown
// only waits for it to return.
rt_test!(
    a_draining_closure_is_waited_for_not_counted,
    |b: Builder| async move {
        let (pool, _clock) = manual_pool(b, 1);
        let gauge = Gauge::new();
        let (closure, h) = heeding(&pool, &gauge);
        let _guard = OpenOnPanic(vec![h.release.clone()]);
        gauge.until(|g| g.now() == 1).await;
        closure.cancel();
        assert_eq!(within(PROMPT, h.told.recv()).await, Some(Ok(true)));
        assert_eq!(closure.now_or_never(), Some(Err(JobError::Cancelled)));
        assert_eq!(pool.metrics().draining, 1);

        let mut shutdown = pool.shutdown(Duration::ZERO);
        settle().await;
        assert!(poll_once(&mut shutdown).await.is_none(), "closure not back");
        h.release.open();
        assert_eq!(report(shutdown).await, (0, 0, 0));
        assert!(h.returned.load(Ordering::SeqCst));
        assert_eq!(pool.metrics().cancelled, 1);
    }
);

// A grace too long to express on the clock never ends: the running job
// ends on its own and counts as finished.
rt_test!(
    an_endless_grace_lets_jobs_run_to_their_end,
    |b: Builder| async move {
        let (pool, clock) = manual_pool(b, 1);
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let running = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;
        let mut shutdown = pool.shutdown(Duration::MAX);
        assert!(poll_once(&mut shutdown).await.is_none());
        clock.advance(Duration::from_secs(1 << 40));
        settle().await;
        assert!(poll_once(&mut shutdown).await.is_none());
        assert!(!running.is_finished());
        latch.open();
        assert_eq!(report(shutdown).await, (1, 0, 0));
        assert_eq!(running.now_or_never(), Some(Ok(())));
    }
);

// On the system clock (the runtime's timer): the stuck job is cancelled
// once the grace has passed, not before.
rt_test!(
    the_grace_runs_on_the_system_clock,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let gauge = Gauge::new();
        let (stuck_job, counts) = stuck(&pool, &gauge);
        gauge.until(|g| g.now() == 1).await;
        let grace = Duration::from_millis(50);
        let start = Instant::now();
        let shutdown = pool.shutdown(grace);
        assert_eq!(report(shutdown).await, (0, 1, 0));
        assert!(
            start.elapsed() >= grace,
            "cancelled after {:?}",
            start.elapsed()
        );
        assert_eq!(stuck_job.now_or_never(), Some(Err(JobError::Cancelled)));
        assert_eq!(counts.drops(), 1);
    }
);

// Submits racing the shutdown's start from another thread: each one is
// queued and then stopped, or refused; the report counts every one of them.
rt_test!(
    submits_racing_the_shutdown_are_all_counted_stopped,
    |b: Builder| async move {
        const RACING: usize = 200;
        let (pool, clock) = manual_pool(b, 2);
        let gauge = Gauge::new();
        let stuck_jobs = [stuck(&pool, &gauge), stuck(&pool, &gauge)];
        gauge.until(|g| g.now() == 2).await;
        let (go_tx, go) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let submitter = std::thread::spawn(move || {
            go.recv().unwrap();
            (0..RACING)
                .map(|i| p.submit(async move { i }))
                .collect::<Vec<_>>()
        });
        go_tx.send(()).unwrap();
        let mut shutdown = pool.shutdown(GRACE);
        assert!(poll_once(&mut shutdown).await.is_none());
        let handles = submitter.join().unwrap();
        within(PROMPT, clock.until_sleepers(1))
            .await
            .expect("the grace timer was never armed");
        clock.advance(GRACE);
        assert_eq!(report(shutdown).await, (0, 2, RACING as u64));
        for h in handles {
            assert_eq!(h.now_or_never(), Some(Err(JobError::Stopped)));
        }
        for (h, counts) in stuck_jobs {
            assert_eq!(h.now_or_never(), Some(Err(JobError::Cancelled)));
            assert_eq!(counts.drops(), 1);
        }
        let m = pool.metrics();
        assert_eq!(
            (m.stopped, m.cancelled, m.submitted),
            (RACING as u64, 2, RACING as u64 + 2)
        );
    }
);

// A blocking closure cancelled by its handle during the grace counts as
// finished (its handle resolved then), not as cancelled by the shutdown,
// though it returns only after the grace ended; the shutdown waits for it.
rt_test!(
    a_closure_cancelled_by_its_handle_in_the_grace_counts_as_finished,
    |b: Builder| async move {
        let (pool, clock) = manual_pool(b, 1);
        let gauge = Gauge::new();
        let (closure, h) = heeding(&pool, &gauge);
        let _guard = OpenOnPanic(vec![h.release.clone()]);
        gauge.until(|g| g.now() == 1).await;
        let mut shutdown = begin(&pool, &clock, GRACE).await;
        closure.cancel();
        assert_eq!(within(PROMPT, h.told.recv()).await, Some(Ok(true)));
        assert_eq!(closure.now_or_never(), Some(Err(JobError::Cancelled)));
        clock.advance(GRACE);
        assert!(poll_once(&mut shutdown).await.is_none(), "closure not back");
        h.release.open();
        assert_eq!(report(shutdown).await, (1, 0, 0));
        assert!(h.returned.load(Ordering::SeqCst));
        assert_eq!(pool.metrics().cancelled, 1);
    }
);

// Jobs that end after `shutdown()` was called but while its stop drops a
// long queue are counted `finished` (they were in no count of the report
// when it measured from the end of that drop). The two closures here can end
// only once the pool is stopped, so every one of the 5002 jobs ended after
// the call: 2 finished + 5000 stopped.
#[test]
fn jobs_ending_as_the_stop_begins_are_counted_finished() {
    let _dog = Watchdog::new("jobs ending as the stop begins".into(), HANG_LIMIT);
    for round in 0..20 {
        let pool = Pool::builder().max_workers(2).build();
        let gauge = Gauge::new();
        let running: Vec<_> = (0..2)
            .map(|_| {
                let (p, g) = (pool.clone(), gauge.clone());
                pool.submit_blocking(move || {
                    let _in = g.enter();
                    while !p.is_stopped() {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let queued: Vec<_> = (0..5000).map(|_| pool.submit(async {})).collect();
        gauge.until_blocking(|g| g.now() == 2);
        let r = futures_lite::future::block_on(pool.shutdown(GRACE));
        assert_eq!(
            (r.finished, r.cancelled, r.stopped),
            (2, 0, 5000),
            "round {round}"
        );
        drop((running, queued));
    }
}

// Every way a job can end on its own within the grace counts as finished
// (a value, an error, a panic, its own timeout, a cancel by its handle), and
// the shutdown future is terminated once it has resolved.
rt_test!(
    every_outcome_within_the_grace_counts_as_finished,
    |b: Builder| async move {
        quiet_expected_panics();
        let (pool, clock) = manual_pool(b, 5);
        let latch = Latch::new();
        let gated = |pool: &Pool, outcome: u8| {
            let latch = latch.clone();
            pool.submit_job(Job::new(move |_ctx| {
                let latch = latch.clone();
                async move {
                    latch.wait().await;
                    match outcome {
                        0 => Ok(()),
                        1 => Err("failed"),
                        _ => panic!("panicked"),
                    }
                }
            }))
        };
        let handles = [gated(&pool, 0), gated(&pool, 1), gated(&pool, 2)];
        let timing_out = pool
            .submit_job(Job::new(|_ctx| std::future::pending::<Result<(), &str>>()).timeout(MS));
        let cancelled = pool.submit(std::future::pending::<()>());
        within(PROMPT, until(|| pool.running() == 5))
            .await
            .expect("five jobs running");
        let mut shutdown = begin_with(&pool, &clock, GRACE, 2).await;
        assert!(!futures::future::FusedFuture::is_terminated(&shutdown));
        let shown = format!("{shutdown:?}");
        assert!(
            shown.starts_with("Shutdown") && shown.contains("done: false"),
            "{shown}"
        );
        clock.advance(MS); // the timeout passes; the grace does not
        cancelled.cancel();
        latch.open();
        for h in handles {
            let _ = h.await;
        }
        assert_eq!(timing_out.await, Err(JobError::TimedOut));
        let r = within(PROMPT, &mut shutdown).await.expect("resolved");
        assert_eq!((r.finished, r.cancelled, r.stopped), (5, 0, 0));
        assert!(futures::future::FusedFuture::is_terminated(&shutdown));
        let m = pool.metrics();
        assert_eq!((m.succeeded, m.failed, m.panicked), (1, 1, 1));
        assert_eq!((m.timed_out, m.cancelled), (1, 1));
    }
);

/// `begin` for a clock with `sleepers` timers armed (the grace and jobs' own).
async fn begin_with(
    pool: &Pool,
    clock: &ManualClock,
    grace: Duration,
    sleepers: usize,
) -> Shutdown {
    let mut shutdown = pool.shutdown(grace);
    assert!(poll_once(&mut shutdown).await.is_none(), "resolved early");
    within(PROMPT, clock.until_sleepers(sleepers))
        .await
        .expect("the timers were never armed");
    shutdown
}

/// Waits until `cond` holds, looking again after each yield.
async fn until(cond: impl Fn() -> bool) {
    while !cond() {
        futures_lite::future::yield_now().await;
    }
}

// A second shutdown reports only what it did: the jobs the first one
// cancelled are not counted again.
rt_test!(
    a_second_shutdown_counts_only_its_own_cancels,
    |b: Builder| async move {
        let (pool, _clock) = manual_pool(b, 1);
        let gauge = Gauge::new();
        let (handle, _counts) = stuck(&pool, &gauge);
        within(PROMPT, gauge.until(|g| g.now() == 1))
            .await
            .expect("running");
        assert_eq!(report(pool.shutdown(Duration::ZERO)).await, (0, 1, 0));
        assert_eq!(handle.await, Err(JobError::Cancelled));
        assert_eq!(report(pool.shutdown(Duration::ZERO)).await, (0, 0, 0));
    }
);

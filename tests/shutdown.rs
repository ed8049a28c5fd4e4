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
        assert_eq!((m.succeeded, m.cancelled, m.stopped), (1, 2, 5));
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

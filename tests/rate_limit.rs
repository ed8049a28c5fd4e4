//! `Builder::rate_limit(n, per)`: at most `n` job starts in any window of
//! `per` on the pool's clock, bursts of up to `n`; what a job waiting for
//! its start time does on a cancel, a token, a deadline, a pause, a resize,
//! a retry and a stop. Every case runs on the manual clock: a start's time
//! is read from it, and the clock moves only when the test says so.

mod common;
use common::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use workerpoolxt::{Builder, CancelToken, ConfigError, Job, JobError, Pool, ResultHandle};

/// When each job started (its first poll), as time since `t0` on the
/// manual clock, in the order they started.
#[derive(Clone)]
struct Starts {
    clock: ManualClock,
    t0: Instant,
    log: Arc<Mutex<Vec<(usize, Duration)>>>,
}

impl Starts {
    fn new(clock: &ManualClock) -> Starts {
        Starts {
            clock: clock.clone(),
            t0: clock.now(),
            log: Arc::default(),
        }
    }

    /// A job that records its start under `id`.
    fn job(&self, id: usize) -> impl std::future::Future<Output = usize> + Send + 'static {
        let me = self.clone();
        async move {
            me.record(id);
            id
        }
    }

    fn record(&self, id: usize) {
        let at = self.clock.now() - self.t0;
        self.log.lock().unwrap().push((id, at));
    }

    fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The start times, in the order of the starts.
    fn times(&self) -> Vec<Duration> {
        self.log.lock().unwrap().iter().map(|(_, t)| *t).collect()
    }

    /// The start time of job `id`, if it started.
    fn of(&self, id: usize) -> Option<Duration> {
        let log = self.log.lock().unwrap();
        log.iter().find(|(i, _)| *i == id).map(|(_, t)| *t)
    }

    /// Waits (bounded) until `n` jobs started.
    async fn until(&self, n: usize) {
        eventually(&format!("{n} starts"), || self.count() >= n).await;
    }

    /// Shows that no more than `n` started (after letting the workers run).
    async fn still(&self, n: usize, when: &str) {
        settle().await;
        assert_eq!(self.count(), n, "{when}: {:?}", self.times());
    }
}

fn pool_on(b: Builder, clock: &ManualClock, workers: usize, n: usize, per: Duration) -> Pool {
    b.max_workers(workers)
        .keep_idle_workers()
        .clock(clock.clone())
        .rate_limit(n, per)
        .build()
}

// At most n starts in any window of `per`, and exactly n: of 10 jobs
// submitted at once with 3 per 100 ms and 8 workers, 3 start at once, none
// more until 100 ms have passed (not at 99 ms), then 3 more, and so on.
// The jobs that wait are counted in `waiting`, not `running`.
rt_test!(
    admits_exactly_n_starts_per_window,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = pool_on(b, &clock, 8, 3, ms(100));
        let starts = Starts::new(&clock);
        let handles: Vec<_> = (0..10).map(|i| pool.submit(starts.job(i))).collect();
        starts.until(3).await;
        // The 7 others are taken by the 8 workers and wait for their time.
        armed(&clock, 7).await;
        starts.still(3, "the burst").await;
        eventually("the burst ended", || pool.running() == 0).await;
        assert_eq!((pool.waiting(), pool.running()), (7, 0));
        let mut before = 3;
        for (window, total) in [(1, 6), (2, 9), (3, 10)] {
            clock.advance(ms(99));
            starts.still(before, "1 ms before the window opens").await;
            clock.advance(ms(1));
            starts.until(total).await;
            starts.still(total, &format!("window {window}")).await;
            before = total;
        }
        let want: Vec<_> = [0, 0, 0, 100, 100, 100, 200, 200, 200, 300]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(starts.times(), want);
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(pool.metrics().succeeded, 10);
        pool.stop_wait().await;
    }
);

/// A job that counts the attempts it makes and records its start.
fn counted_job(starts: &Starts, id: usize, made: &Arc<AtomicUsize>) -> Job<usize, ()> {
    let (starts, made) = (starts.clone(), made.clone());
    Job::new(move |_ctx| {
        made.fetch_add(1, Ordering::SeqCst);
        let starts = starts.clone();
        async move {
            starts.record(id);
            Ok(id)
        }
    })
}

/// Shows that job `id` starts exactly `at` after the clock's start, which
/// is 1 ms away: not 1 ms before, then at once.
async fn starts_at(clock: &ManualClock, starts: &Starts, id: usize, at: Duration) {
    let before = starts.count();
    clock.advance(at - (clock.now() - starts.t0) - ms(1));
    starts.still(before, "1 ms before its time").await;
    clock.advance(ms(1));
    starts.until(before + 1).await;
    assert_eq!(starts.of(id), Some(at), "{:?}", starts.times());
}

// A job whose deadline passes while it waits for its start time never runs:
// its handle resolves TimedOut at the deadline (50 ms), not at its start
// time (100 ms), with no attempt made; and that time goes to the next job,
// which starts at 100 ms, not 200.
rt_test!(
    a_deadline_that_passes_while_waiting_for_the_rate_ends_the_job_at_the_deadline,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = pool_on(b, &clock, 1, 1, ms(100));
        let starts = Starts::new(&clock);
        let first = pool.submit(starts.job(0));
        let made = Arc::new(AtomicUsize::new(0));
        let late = counted_job(&starts, 1, &made).deadline(starts.t0 + ms(50));
        let mut late = pool.submit_job(late);
        let next = pool.submit(starts.job(2));
        starts.until(1).await;
        armed(&clock, 1).await;

        clock.advance(ms(49));
        settle().await;
        assert!(late.try_take().is_none(), "resolved before its deadline");
        clock.advance(ms(1));
        let o = within(WAIT_LIMIT, late.outcome())
            .await
            .expect("resolves at its deadline, the clock standing there");
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert_eq!((o.attempts(), o.queued()), (0, ms(50)));
        assert_eq!(made.load(Ordering::SeqCst), 0, "its factory was called");
        assert_eq!(clock.now() - starts.t0, ms(50));

        starts_at(&clock, &starts, 2, ms(100)).await;
        assert_eq!((first.await, next.await), (Ok(0), Ok(2)));
        assert_eq!(starts.of(1), None);
        assert_eq!(pool.metrics().timed_out, 1);
        pool.stop_wait().await;
    }
);

// A handle's cancel while the job waits for its start time resolves it
// Cancelled at once; its worker lets it go at once too (its future is
// dropped, never polled, with the clock standing still) and the next job
// gets its time: it starts at 100 ms, as the cancelled one would have.
rt_test!(
    a_cancel_while_waiting_for_the_rate_resolves_at_once_and_passes_the_time_on,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = pool_on(b, &clock, 1, 1, ms(100));
        let starts = Starts::new(&clock);
        let first = pool.submit(starts.job(0));
        let (body, counts) = counted(starts.job(1));
        let waiting = pool.submit(body);
        let next = pool.submit(starts.job(2));
        starts.until(1).await;
        armed(&clock, 1).await;

        waiting.cancel();
        assert!(
            waiting.is_finished(),
            "a cancel resolves a queued job at once"
        );
        assert_eq!(waiting.await, Err(JobError::Cancelled));
        eventually("the cancelled job let go", || counts.drops() == 1).await;
        assert_eq!(counts.polls(), 0);
        assert_eq!(clock.now(), starts.t0);

        starts_at(&clock, &starts, 2, ms(100)).await;
        assert_eq!((first.await, next.await), (Ok(0), Ok(2)));
        assert_eq!(pool.metrics().cancelled, 1);
        pool.stop_wait().await;
    }
);

// The job's own token, cancelled while the job waits for its start time:
// Cancelled at once (the clock standing still), no attempt made, and the
// next job starts at the cancelled one's time.
rt_test!(
    its_own_token_cancelled_while_waiting_for_the_rate_ends_it_at_once,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = pool_on(b, &clock, 1, 1, ms(100));
        let starts = Starts::new(&clock);
        let first = pool.submit(starts.job(0));
        let (made, token) = (Arc::new(AtomicUsize::new(0)), CancelToken::new());
        let waiting = pool.submit_job(counted_job(&starts, 1, &made).cancel_token(token.clone()));
        let next = pool.submit(starts.job(2));
        starts.until(1).await;
        armed(&clock, 1).await;

        token.cancel();
        let o = within(WAIT_LIMIT, waiting.outcome())
            .await
            .expect("resolves without the clock moving");
        assert_eq!((o.result(), o.attempts()), (Err(&JobError::Cancelled), 0));
        assert_eq!(made.load(Ordering::SeqCst), 0);
        assert_eq!(clock.now(), starts.t0);

        starts_at(&clock, &starts, 2, ms(100)).await;
        assert_eq!((first.await, next.await), (Ok(0), Ok(2)));
        pool.stop_wait().await;
    }
);

// The pool's token, cancelled while a job that uses it waits for its start
// time: the same (the next job has a token of its own, so it runs).
rt_test!(
    the_pools_token_cancelled_while_waiting_for_the_rate_ends_the_job_at_once,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool_token = CancelToken::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .rate_limit(1, ms(100))
            .cancel_token(pool_token.clone())
            .build();
        let starts = Starts::new(&clock);
        let first = pool.submit(starts.job(0));
        let (body, counts) = counted(starts.job(1));
        let waiting = pool.submit(body);
        let made = Arc::new(AtomicUsize::new(0));
        let own = counted_job(&starts, 2, &made).cancel_token(CancelToken::new());
        let next = pool.submit_job(own);
        starts.until(1).await;
        armed(&clock, 1).await;

        pool_token.cancel();
        let got = within(WAIT_LIMIT, waiting).await;
        assert_eq!(got, Some(Err(JobError::Cancelled)), "not without the clock");
        assert_eq!((counts.polls(), clock.now()), (0, starts.t0));

        starts_at(&clock, &starts, 2, ms(100)).await;
        assert_eq!((first.await, next.await), (Ok(0), Ok(2)));
        pool.stop_wait().await;
    }
);

// A pause waits for the job a worker holds for its start time (queued
// before the pause) to start and end; the jobs after the pause reserve no
// time while it holds them, and when it ends they still start n at a time:
// 2 per 100 ms, 400 ms of pause, then 2 at once and the third 100 ms later.
rt_test!(
    a_pause_composes_with_the_rate_limit,
    |b: Builder| async move {
        use futures::FutureExt;
        let clock = ManualClock::new();
        let pool = pool_on(b, &clock, 1, 2, ms(100));
        let starts = Starts::new(&clock);
        let before: Vec<_> = (0..3).map(|i| pool.submit(starts.job(i))).collect();
        starts.until(2).await;
        armed(&clock, 1).await;

        let mut pause = pool.pause();
        let after: Vec<_> = (3..6).map(|i| pool.submit(starts.job(i))).collect();
        settle().await;
        assert!(
            (&mut pause).now_or_never().is_none(),
            "the job queued before the pause has not run"
        );
        clock.advance(ms(100));
        let guard = within(WAIT_LIMIT, pause)
            .await
            .expect("the pause resolves once that job ran");
        assert_eq!(starts.of(2), Some(ms(100)));

        clock.advance(ms(400));
        starts.still(3, "paused").await;
        assert_eq!(pool.waiting(), 3);
        assert_eq!(clock.sleepers(), 0, "a held job waits for no start time");
        drop(guard);
        starts.until(5).await;
        starts_at(&clock, &starts, 5, ms(600)).await;
        let want: Vec<_> = [0, 0, 100, 500, 500, 600].into_iter().map(ms).collect();
        assert_eq!(starts.times(), want);
        for h in before.into_iter().chain(after) {
            h.await.unwrap();
        }
        pool.stop_wait().await;
    }
);

// Growing the pool while it is rate-limited makes more jobs wait at once
// (4 workers hold 4 jobs), never more starts: 2 per 100 ms throughout.
rt_test!(
    resizing_up_under_the_rate_limit_does_not_exceed_the_rate,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = pool_on(b, &clock, 1, 2, ms(100));
        let starts = Starts::new(&clock);
        let handles: Vec<_> = (0..8).map(|i| pool.submit(starts.job(i))).collect();
        starts.until(2).await;
        armed(&clock, 1).await;

        pool.resize(4).unwrap();
        armed(&clock, 4).await;
        starts.still(2, "right after the resize").await;
        assert_eq!(pool.workers(), 4);
        for total in [4, 6, 8] {
            clock.advance(ms(99));
            starts
                .still(total - 2, "1 ms before the window opens")
                .await;
            clock.advance(ms(1));
            starts.until(total).await;
            starts.still(total, "the window").await;
        }
        let want: Vec<_> = [0, 0, 100, 100, 200, 200, 300, 300]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(starts.times(), want);
        for h in handles {
            h.await.unwrap();
        }
        pool.stop_wait().await;
    }
);

// A start is a job's first start: a job that fails twice and retries makes
// its 3 attempts at once under 1 start per 100 ms, and the job after it
// starts at 100 ms, as after any one start.
rt_test!(
    retries_take_no_start_of_the_rate_limit,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = pool_on(b, &clock, 1, 1, ms(100));
        let starts = Starts::new(&clock);
        let s = starts.clone();
        let flaky = Job::new(move |ctx| {
            let s = s.clone();
            async move {
                s.record(10 + ctx.attempt() as usize);
                if ctx.attempt() < 3 {
                    Err("again")
                } else {
                    Ok(ctx.attempt())
                }
            }
        })
        .retry(2)
        .backoff(workerpoolxt::Backoff::none());
        let flaky = pool.submit_job(flaky);
        let next = pool.submit(starts.job(1));
        let o = within(WAIT_LIMIT, flaky.outcome())
            .await
            .expect("every attempt made without the clock moving");
        assert_eq!((o.result(), o.attempts()), (Ok(&3), 3));
        assert_eq!(starts.times(), vec![ms(0); 3]);

        armed(&clock, 1).await;
        starts_at(&clock, &starts, 1, ms(100)).await;
        assert_eq!(next.await, Ok(1));
        assert_eq!(pool.metrics().retried, 2);
        pool.stop_wait().await;
    }
);

// stop() while jobs wait for their start times ends them Stopped at once,
// with the clock standing still: the workers that hold them do not sleep
// until those times; the job still in the queue ends Stopped too, and the
// stop resolves.
rt_test!(
    stop_ends_the_jobs_that_wait_for_the_rate_at_once,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = pool_on(b, &clock, 2, 1, ms(100));
        let starts = Starts::new(&clock);
        let first = pool.submit(starts.job(0));
        starts.until(1).await;
        let probes: Vec<_> = (1..4).map(|i| counted(starts.job(i))).collect();
        let (waiting, counts): (Vec<ResultHandle<usize>>, Vec<_>) =
            probes.into_iter().map(|(f, c)| (pool.submit(f), c)).unzip();
        // Two workers hold two jobs for 100 and 200 ms; the third is queued.
        armed(&clock, 2).await;

        within(WAIT_LIMIT, pool.stop())
            .await
            .expect("the stop resolves without the clock moving");
        for h in waiting {
            assert_eq!(h.await, Err(JobError::Stopped));
        }
        assert!(counts.iter().all(|c| c.polls() == 0 && c.drops() == 1));
        assert_eq!(clock.now(), starts.t0);
        assert_eq!(first.await, Ok(0));
        let m = pool.metrics();
        assert_eq!((m.stopped, m.waiting, m.running), (3, 0, 0));
    }
);

// stop_wait() runs every queued job, so the jobs that wait for their start
// times still start at those times, and the stop resolves after the last.
rt_test!(
    stop_wait_runs_the_jobs_that_wait_for_the_rate_at_their_times,
    |b: Builder| async move {
        use futures::FutureExt;
        let clock = ManualClock::new();
        let pool = pool_on(b, &clock, 1, 1, ms(100));
        let starts = Starts::new(&clock);
        let handles: Vec<_> = (0..3).map(|i| pool.submit(starts.job(i))).collect();
        starts.until(1).await;
        armed(&clock, 1).await;
        let mut stop = pool.stop_wait();
        starts_at(&clock, &starts, 1, ms(100)).await;
        armed(&clock, 1).await;
        assert!((&mut stop).now_or_never().is_none(), "a job still waits");
        starts_at(&clock, &starts, 2, ms(200)).await;
        within(WAIT_LIMIT, stop).await.expect("the stop resolves");
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i));
        }
    }
);

/// The manual clock, whose next sleep panics once `fail` is set.
#[derive(Clone)]
struct FailingTimer {
    clock: ManualClock,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl workerpoolxt::Clock for FailingTimer {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn sleep_until(&self, deadline: Instant) -> workerpoolxt::BoxFuture<()> {
        if self.fail.swap(false, Ordering::SeqCst) {
            panic!("expected panic: the timer");
        }
        workerpoolxt::Clock::sleep_until(&self.clock, deadline)
    }
}

// The pool's timer panics as a job begins to wait for its start time: the
// job ends Panicked with that panic, unstarted (its body never polled), and
// its time goes to the next job, which starts at 100 ms.
rt_test!(
    a_timer_that_panics_while_a_job_waits_for_the_rate_ends_only_that_job,
    |b: Builder| async move {
        quiet_expected_panics();
        let clock = ManualClock::new();
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let timer = FailingTimer {
            clock: clock.clone(),
            fail: fail.clone(),
        };
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(timer)
            .rate_limit(1, ms(100))
            .build();
        let starts = Starts::new(&clock);
        let first = pool.submit(starts.job(0));
        assert_eq!(within(WAIT_LIMIT, first).await, Some(Ok(0)));
        fail.store(true, Ordering::SeqCst);
        let (body, counts) = counted(starts.job(1));
        let failed = pool.submit(body).outcome();
        let next = pool.submit(starts.job(2));
        let o = within(WAIT_LIMIT, failed).await.expect("resolves at once");
        match o.result() {
            Err(JobError::Panicked(p)) => assert!(p.message().contains("the timer"), "{p}"),
            other => panic!("not the timer's panic: {other:?}"),
        }
        assert_eq!((o.attempts(), counts.polls()), (0, 0));
        armed(&clock, 1).await;
        starts_at(&clock, &starts, 2, ms(100)).await;
        assert_eq!(next.await, Ok(2));
        assert_eq!(pool.metrics().panicked, 1);
        pool.stop_wait().await;
    }
);

// rate_limit(0, per) and rate_limit(n, 0) can never start a job: try_build
// refuses them with ZeroRate and a message that names the setting.
#[test]
fn a_rate_limit_that_allows_no_start_is_a_config_error() {
    for (n, per) in [(0, ms(100)), (5, Duration::ZERO), (0, Duration::ZERO)] {
        let err = Pool::builder()
            .max_workers(1)
            .rate_limit(n, per)
            .try_build()
            .unwrap_err();
        assert_eq!(err, ConfigError::ZeroRate);
        assert!(err.to_string().contains("rate_limit"), "unclear: {err}");
    }
    assert!(Pool::builder()
        .max_workers(1)
        .rate_limit(1, Duration::from_nanos(1))
        .try_build()
        .is_ok());
}

// Builder::build panics on it with a message that says what to fix.
#[test]
#[should_panic(expected = "rate_limit(n, per) needs n of at least 1")]
fn build_with_a_zero_rate_panics_with_a_clear_message() {
    let _ = Pool::builder().max_workers(1).rate_limit(0, ms(10)).build();
}

// Jobs start in submission order under the rate limit, whichever of the workers that took them reaches the limit first: 4 jobs, 4 workers, 1 start per 100 ms start in the order 0, 1, 2, 3 (a worker that hands the queue over yields before its job's first poll, so without the order the second job took the first start).
rt_test!(
    jobs_start_in_submission_order_under_the_limit,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = pool_on(b, &clock, 4, 1, ms(100));
        let starts = Starts::new(&clock);
        let handles: Vec<_> = (0..4).map(|i| pool.submit(starts.job(i))).collect();
        starts.until(1).await;
        for n in 2..=4 {
            clock.advance(ms(100));
            starts.until(n).await;
        }
        let order: Vec<usize> = starts.log.lock().unwrap().iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [0, 1, 2, 3]);
        for h in handles {
            h.await.unwrap();
        }
    }
);

//! Retries and backoff: the Go suite's TestRetry, retries under a timeout,
//! panics that are not retried, slots held while backing off, and the
//! `Backoff` delays themselves.

mod common;
use common::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use workerpoolxt::{Backoff, BoxFuture, Builder, Clock, Job, JobError, ResultSet};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom(u32);

type Log<T> = Arc<Mutex<Vec<T>>>;

/// A [`ManualClock`] that reports each of its sleeps once it is waiting
/// (first `Pending`), so a test knows a backoff or deadline is armed before
/// it moves the clock.
#[derive(Clone)]
struct ArmedClock {
    clock: ManualClock,
    armed: async_channel::Sender<()>,
}

impl ArmedClock {
    fn new() -> (ArmedClock, async_channel::Receiver<()>) {
        let (armed, rx) = async_channel::unbounded();
        (
            ArmedClock {
                clock: ManualClock::new(),
                armed,
            },
            rx,
        )
    }
}

impl Clock for ArmedClock {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        let mut inner = Clock::sleep_until(&self.clock, deadline);
        let armed = self.armed.clone();
        let mut told = false;
        Box::pin(futures_lite::future::poll_fn(move |cx| {
            let r = inner.as_mut().poll(cx);
            if r.is_pending() && !told {
                told = true;
                let _ = armed.try_send(());
            }
            r
        }))
    }
}

fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

// Retry 3 on an always-failing job makes 4 attempts numbered 1..=4 and reports the last attempt's own error; the other job succeeds (Go TestRetry).
rt_test!(
    retry_3_on_an_always_failing_job_makes_4_attempts,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let seen: Log<u32> = log();
        let s = seen.clone();
        let set: ResultSet<&str, Boom> = [
            pool.submit_job(
                Job::new(move |ctx| {
                    s.lock().unwrap().push(ctx.attempt());
                    async move { Err(Boom(ctx.attempt())) }
                })
                .name("backoff_test")
                .retry(3)
                .backoff(Backoff::none()),
            ),
            pool.submit_job(Job::new(|_ctx| async { Ok("success") }).name("simulate_success")),
        ]
        .into_iter()
        .collect();
        let results = set.join_all().await;
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].name(), Some("backoff_test"));
        assert_eq!(results[0].attempts(), 4);
        assert_eq!(results[0].result(), Err(&JobError::Failed(Boom(4))));
        assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 4]);
        assert_eq!(results[1].result(), Ok(&"success"));
        assert_eq!(results[1].attempts(), 1);
        pool.stop_wait().await;
    }
);

// A job that fails twice and then succeeds resolves Ok after 3 attempts, with no further attempt.
rt_test!(a_later_attempt_can_succeed, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    let job = Job::new(move |ctx| {
        m.fetch_add(1, Ordering::SeqCst);
        async move {
            if ctx.attempt() < 3 {
                Err(Boom(ctx.attempt()))
            } else {
                Ok(ctx.attempt())
            }
        }
    })
    .retry(10)
    .backoff(Backoff::none());
    let o = pool.submit_job(job).outcome().await;
    assert_eq!(o.attempts(), 3);
    assert_eq!(o.into_result(), Ok(3));
    assert_eq!(made.load(Ordering::SeqCst), 3);
    pool.stop_wait().await;
});

// A 10 ms timeout stops retry(10) of a 5 ms failing body: TimedOut promptly, and no attempt starts after the handle resolved.
rt_test!(a_timeout_stops_the_retries, |b: Builder| async move {
    let pool = b.max_workers(1).build();
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let job = Job::new(move |ctx| {
        s.fetch_add(1, Ordering::SeqCst);
        async move {
            sleep(Duration::from_millis(5)).await;
            Err::<(), _>(Boom(ctx.attempt()))
        }
    })
    .name("retry under timeout")
    .timeout(Duration::from_millis(10))
    .retry(10)
    .backoff(Backoff::none());
    let t = Instant::now();
    let o = pool.submit_job(job).outcome().await;
    let took = t.elapsed();
    assert_eq!(o.result(), Err(&JobError::TimedOut));
    assert!(
        took < Duration::from_millis(500),
        "timed out after {took:?}"
    );
    assert!(
        o.attempts() >= 1 && o.attempts() < 11,
        "attempts {}",
        o.attempts()
    );
    let at_resolve = started.load(Ordering::SeqCst);
    assert_eq!(at_resolve, o.attempts() as usize);

    // The pool's one worker has moved on once a later job has run.
    assert_eq!(pool.submit(async { "marker" }).await, Ok("marker"));
    assert_eq!(
        started.load(Ordering::SeqCst),
        at_resolve,
        "an attempt started after the handle resolved"
    );
    pool.stop_wait().await;
});

// No attempt starts once the deadline has passed, even when every attempt fails without ever waiting.
rt_test!(
    no_retry_starts_once_the_deadline_has_passed,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let started: Log<Duration> = log();
        let (s, c, t0) = (started.clone(), clock.clone(), clock.now());
        let job = Job::new(move |ctx| {
            s.lock().unwrap().push(c.now() - t0);
            c.advance(Duration::from_millis(3)); // each attempt "takes" 3 ms
            async move { Err::<(), _>(Boom(ctx.attempt())) }
        })
        .timeout(Duration::from_millis(10))
        .retry(10)
        .backoff(Backoff::none());
        let o = pool.submit_job(job).outcome().await;
        let started = started.lock().unwrap().clone();
        let ms = Duration::from_millis;
        // Attempts may start at 0, 3, 6 and 9 ms; the one at 12 ms is past the deadline.
        assert_eq!(
            started,
            [ms(0), ms(3), ms(6), ms(9)],
            "attempts started at these times"
        );
        assert_eq!(o.attempts(), 4);
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        pool.stop_wait().await;
    }
);

// A backoff that would end past the deadline is not waited out: the job ends
// at once with the last attempt's error (the clock never moves), and no
// other attempt starts.
rt_test!(
    no_retry_starts_when_the_backoff_ends_past_the_deadline,
    |b: Builder| async move {
        let (clock, _armed) = ArmedClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let job = Job::new(move |ctx| {
            m.fetch_add(1, Ordering::SeqCst);
            async move { Err::<(), _>(Boom(ctx.attempt())) }
        })
        .timeout(Duration::from_millis(10))
        .retry(1)
        .backoff(Backoff::fixed(Duration::from_millis(50)));
        let o = pool.submit_job(job).outcome().await;
        assert_eq!(
            made.load(Ordering::SeqCst),
            1,
            "an attempt started after the deadline"
        );
        assert_eq!(o.attempts(), 1);
        assert_eq!(o.result(), Err(&JobError::Failed(Boom(1))));
        assert_eq!(o.duration(), Duration::ZERO, "it waited for its backoff");
        pool.stop_wait().await;
    }
);

// A cancel during the backoff ends the job Cancelled at once; the next attempt never starts.
rt_test!(
    a_cancel_during_the_backoff_stops_the_retries,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let (failed_tx, failed_rx) = async_channel::bounded::<()>(1);
        let job = Job::new(move |ctx| {
            m.fetch_add(1, Ordering::SeqCst);
            let failed_tx = failed_tx.clone();
            async move {
                failed_tx.send(()).await.unwrap();
                Err::<(), _>(Boom(ctx.attempt()))
            }
        })
        .retry(5)
        .backoff(Backoff::fixed(Duration::from_secs(10)));
        let h = pool.submit_job(job);
        failed_rx.recv().await.unwrap();
        let t = Instant::now();
        h.cancel();
        let mut h = h;
        assert_eq!((&mut h).await, Err(JobError::Cancelled));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "cancel took {:?}",
            t.elapsed()
        );
        assert_eq!(pool.submit(async { "marker" }).await, Ok("marker"));
        assert_eq!(made.load(Ordering::SeqCst), 1);
        pool.stop_wait().await;
    }
);

// A panic is not retried: retry(5) on a panicking body makes 1 attempt and reports Panicked with its message.
rt_test!(a_panic_is_not_retried, |b: Builder| async move {
    quiet_expected_panics();
    let pool = b.max_workers(1).build();
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    let job = Job::new(move |_ctx| {
        m.fetch_add(1, Ordering::SeqCst);
        async move {
            if true {
                panic!("expected panic: retry me not");
            }
            Ok::<(), Boom>(())
        }
    })
    .name("panics")
    .retry(5)
    .backoff(Backoff::none());
    let o = pool.submit_job(job).outcome().await;
    assert_eq!(o.attempts(), 1);
    assert_eq!(o.name(), Some("panics"));
    match o.result() {
        Err(JobError::Panicked(p)) => assert_eq!(p.message(), "expected panic: retry me not"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(made.load(Ordering::SeqCst), 1);
    // The worker goes on.
    assert_eq!(pool.submit(async { 1 }).await, Ok(1));
    pool.stop_wait().await;
});

// A job holds its slot while it backs off: on a 1-worker pool a job submitted meanwhile starts only after the retry finished.
rt_test!(
    a_job_holds_its_slot_while_it_backs_off,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let events: Log<String> = log();
        let e = events.clone();
        let first = pool.submit_job(
            Job::new(move |ctx| {
                let e = e.clone();
                async move {
                    let n = ctx.attempt();
                    e.lock().unwrap().push(format!("A{n} start"));
                    let r = if n == 1 { Err(Boom(n)) } else { Ok(n) };
                    e.lock().unwrap().push(format!("A{n} end"));
                    r
                }
            })
            .retry(1)
            .backoff(Backoff::fixed(Duration::from_millis(50))),
        );
        clock.until_sleepers(1).await; // A is backing off
        let b_started = Latch::new();
        let (bs, e) = (b_started.clone(), events.clone());
        let second = pool.submit(async move {
            bs.open();
            e.lock().unwrap().push("B".to_string());
        });
        futures_lite::future::or(b_started.wait(), sleep(Duration::from_millis(30))).await;
        assert!(!b_started.is_open(), "B started while A backed off");
        assert_eq!((pool.running(), pool.waiting()), (1, 1));

        clock.advance(Duration::from_millis(50));
        assert_eq!(first.await, Ok(2));
        assert_eq!(second.await, Ok(()));
        assert_eq!(
            *events.lock().unwrap(),
            ["A1 start", "A1 end", "A2 start", "A2 end", "B"]
        );
        pool.stop_wait().await;
    }
);

// A pool waits exactly Backoff::delay(n) before retry n: exponential 10 ms ×2 starts attempts at 0, 10, 30 and 70 ms.
rt_test!(the_pool_waits_the_backoff_delays, |b: Builder| async move {
    let clock = ManualClock::new();
    let pool = b
        .max_workers(1)
        .keep_idle_workers()
        .clock(clock.clone())
        .build();
    let (tx, rx) = async_channel::unbounded::<Duration>();
    let (c, t0) = (clock.clone(), clock.now());
    let job = Job::new(move |ctx| {
        tx.try_send(c.now() - t0).unwrap();
        async move { Err::<(), _>(Boom(ctx.attempt())) }
    })
    .retry(3)
    .backoff(
        Backoff::exponential(Duration::from_millis(10))
            .factor(2.0)
            .jitter(0.0),
    );
    let h = pool.submit_job(job);
    let ms = Duration::from_millis;
    assert_eq!(rx.recv().await.unwrap(), ms(0));
    for (delay, at) in [(ms(10), ms(10)), (ms(20), ms(30)), (ms(40), ms(70))] {
        clock.until_sleepers(1).await;
        clock.advance(delay - ms(1));
        assert_eq!(clock.sleepers(), 1, "the backoff ended early");
        clock.advance(ms(1)); // the backoff ends now: the next attempt starts at `at`
        assert_eq!(rx.recv().await.unwrap(), at);
    }
    let o = h.outcome().await;
    assert_eq!(o.attempts(), 4);
    assert_eq!(o.duration(), ms(70));
    assert_eq!(o.result(), Err(&JobError::Failed(Boom(4))));
    pool.stop_wait().await;
});

// A job without a backoff of its own waits workerpoolxt's default before a retry: 500 ms ±50 %.
rt_test!(
    the_default_backoff_is_500ms_plus_or_minus_half,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let (tx, rx) = async_channel::unbounded::<Duration>();
        let (c, t0) = (clock.clone(), clock.now());
        let job = Job::new(move |ctx| {
            tx.try_send(c.now() - t0).unwrap();
            async move {
                if ctx.attempt() == 1 {
                    Err(Boom(1))
                } else {
                    Ok(())
                }
            }
        })
        .retry(1);
        let h = pool.submit_job(job);
        assert_eq!(rx.recv().await.unwrap(), Duration::ZERO);
        clock.until_sleepers(1).await;
        clock.advance(Duration::from_millis(249));
        assert_eq!(
            clock.sleepers(),
            1,
            "the default backoff is shorter than 250 ms"
        );
        clock.advance(Duration::from_millis(501));
        assert_eq!(
            clock.sleepers(),
            0,
            "the default backoff is longer than 750 ms"
        );
        assert_eq!(rx.recv().await.unwrap(), Duration::from_millis(750));
        assert_eq!(h.await, Ok(()));
        pool.stop_wait().await;
    }
);

// A fixed backoff is really waited on the runtime's timer: attempts start at least 20 ms apart.
rt_test!(
    a_fixed_backoff_waits_between_attempts,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let starts: Log<Instant> = log();
        let s = starts.clone();
        let job = Job::new(move |ctx| {
            s.lock().unwrap().push(Instant::now());
            async move { Err::<(), _>(Boom(ctx.attempt())) }
        })
        .retry(2)
        .backoff(Backoff::fixed(Duration::from_millis(20)));
        let o = pool.submit_job(job).outcome().await;
        assert_eq!(o.attempts(), 3);
        assert!(
            o.duration() >= Duration::from_millis(40),
            "{:?}",
            o.duration()
        );
        let starts = starts.lock().unwrap().clone();
        assert_eq!(starts.len(), 3);
        for w in starts.windows(2) {
            assert!(
                w[1] - w[0] >= Duration::from_millis(20),
                "gap {:?}",
                w[1] - w[0]
            );
        }
        pool.stop_wait().await;
    }
);

// ----- Backoff::delay -----

// Backoff::none never waits; Backoff::fixed always waits the same.
#[test]
fn backoff_none_and_fixed() {
    for n in 1..10 {
        assert_eq!(Backoff::none().delay(n), Duration::ZERO);
        assert_eq!(Backoff::fixed(ms(25)).delay(n), ms(25));
    }
}

// Exponential delays grow by the factor (1.5 unless set) from the initial delay.
#[test]
fn backoff_exponential_grows_by_its_factor() {
    let b = Backoff::exponential(ms(100)).jitter(0.0);
    assert_eq!(
        [b.delay(1), b.delay(2), b.delay(3)],
        [ms(100), ms(150), ms(225)]
    );
    let b = b.factor(2.0);
    assert_eq!(
        [b.delay(1), b.delay(2), b.delay(3), b.delay(4)],
        [ms(100), ms(200), ms(400), ms(800)]
    );
    // A factor below 1 (or not finite) counts as 1.
    assert_eq!(
        Backoff::exponential(ms(100))
            .jitter(0.0)
            .factor(0.5)
            .delay(5),
        ms(100)
    );
    assert_eq!(
        Backoff::exponential(ms(100))
            .jitter(0.0)
            .factor(f64::NAN)
            .delay(5),
        ms(100)
    );
}

// Delays are capped at max (60 s unless set), also for huge retry numbers.
#[test]
fn backoff_is_capped() {
    let b = Backoff::exponential(ms(100))
        .factor(2.0)
        .max(Duration::from_secs(1))
        .jitter(0.0);
    assert_eq!(b.delay(4), ms(800));
    assert_eq!(b.delay(5), Duration::from_secs(1));
    assert_eq!(b.delay(10), Duration::from_secs(1));
    let b = Backoff::exponential(Duration::from_secs(1)).jitter(0.0);
    assert_eq!(b.delay(100), Duration::from_secs(60));
    assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
}

// Jitter spreads each delay within ±jitter of its base, and really spreads it.
#[test]
fn backoff_jitter_stays_within_its_bounds() {
    let b = Backoff::exponential(ms(100)).factor(1.0).jitter(0.5);
    let samples: Vec<Duration> = (0..2_000).map(|_| b.delay(3)).collect();
    assert!(
        samples.iter().all(|d| *d >= ms(50) && *d <= ms(150)),
        "out of ±50 %"
    );
    assert!(
        samples.iter().any(|d| *d < ms(75)),
        "never in the lower quarter"
    );
    assert!(
        samples.iter().any(|d| *d > ms(125)),
        "never in the upper quarter"
    );
    // Jitter is clamped to 0..=1.
    let wide = Backoff::exponential(ms(100)).factor(1.0).jitter(5.0);
    assert!((0..500).all(|_| wide.delay(1) <= ms(200)));
    let none = Backoff::exponential(ms(100)).factor(1.0).jitter(-1.0);
    assert!((0..100).all(|_| none.delay(1) == ms(100)));
}

// The default is workerpoolxt's: exponential from 500 ms, ×1.5, ±50 % jitter, capped at 60 s.
#[test]
fn backoff_default_is_workerpoolxts() {
    assert_eq!(Backoff::default(), Backoff::exponential(ms(500)));
    let exact = Backoff::default().jitter(0.0);
    assert_eq!(
        [exact.delay(1), exact.delay(2), exact.delay(3)],
        [ms(500), ms(750), ms(1125)]
    );
    assert_eq!(exact.delay(50), Duration::from_secs(60));
    let d = Backoff::default();
    for _ in 0..500 {
        let first = d.delay(1);
        assert!(first >= ms(250) && first <= ms(750), "{first:?}");
        let late = d.delay(50);
        assert!(
            late >= Duration::from_secs(30) && late <= Duration::from_secs(90),
            "{late:?}"
        );
    }
}

// A job that cancels its own context's token and then fails is not retried:
// the cancel is seen as the attempt ends, before any backoff.
rt_test!(
    a_job_that_cancels_itself_and_fails_is_not_retried,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let job = Job::new(move |ctx| {
            m.fetch_add(1, Ordering::SeqCst);
            async move {
                ctx.token().cancel();
                Err::<(), _>(Boom(ctx.attempt()))
            }
        })
        .retry(3)
        .backoff(Backoff::none());
        let o = pool.submit_job(job).outcome().await;
        assert_eq!(o.result(), Err(&JobError::Cancelled));
        assert_eq!((o.attempts(), made.load(Ordering::SeqCst)), (1, 1));
        pool.stop_wait().await;
    }
);

// A job cancelled through its handle (here a cancel handle, from inside its
// own attempt) as the attempt fails is not retried.
rt_test!(
    a_job_cancelled_as_its_attempt_fails_is_not_retried,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let canceller = Arc::new(std::sync::OnceLock::<workerpoolxt::CancelHandle>::new());
        let (c, made) = (canceller.clone(), Arc::new(AtomicUsize::new(0)));
        let m = made.clone();
        let job = Job::new(move |ctx| {
            m.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            async move {
                c.get().expect("set before the job runs").cancel();
                Err::<(), _>(Boom(ctx.attempt()))
            }
        })
        .retry(3)
        .backoff(Backoff::none());
        let (gate, open) = async_channel::bounded::<()>(1);
        let blocker = pool.submit(async move { open.recv().await.ok() });
        let h = pool.submit_job(job);
        canceller.set(h.cancel_handle()).ok();
        gate.send(()).await.unwrap();
        assert!(blocker.await.is_ok());
        let o = h.outcome().await;
        assert_eq!(o.result(), Err(&JobError::Cancelled));
        assert_eq!(made.load(Ordering::SeqCst), 1, "retried after its cancel");
        pool.stop_wait().await;
    }
);

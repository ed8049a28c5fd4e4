//! Timeouts and deadlines: per-job timeouts (the Go suite's TestTimeouts),
//! deadlines, the pool's default timeout, deadlines that pass in the queue,
//! and blocking jobs that time out.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use workerpoolxt::{Builder, Job, JobError};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom;

// A 1 ms timeout on a 10 s body resolves TimedOut fast, the body dropped unfinished (Go TestTimeouts).
rt_test!(
    a_1ms_timeout_on_a_10s_body_times_out_fast,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let gauge = Gauge::new();
        let finished = Arc::new(AtomicBool::new(false));
        let (g, f) = (gauge.clone(), finished.clone());
        let job = Job::new(move |_ctx| {
            let g = g.clone();
            let f = f.clone();
            async move {
                let _alive = g.enter();
                sleep(Duration::from_secs(10)).await; // simulate a long running task
                f.store(true, Ordering::SeqCst);
                Ok::<_, Boom>("I could be anything")
            }
        })
        .name("my ctx job")
        .timeout(Duration::from_millis(1));
        let t = Instant::now();
        let o = pool.submit_job(job).outcome().await;
        let took = t.elapsed();
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert_eq!(o.name(), Some("my ctx job"));
        assert!(took < Duration::from_secs(1), "timed out after {took:?}");
        assert_eq!(
            gauge.left(),
            gauge.entered(),
            "the body must be dropped before the handle resolves"
        );
        assert!(!finished.load(Ordering::SeqCst));
        pool.stop_wait().await;
    }
);

// A deadline (and a timeout) that outlive the job do not cancel it: it succeeds and its context never reports a cancel.
rt_test!(
    a_deadline_that_outlives_the_job_does_not_cancel_it,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let deadline = Instant::now() + Duration::from_secs(10);
        let job = Job::new(|ctx| async move {
            sleep(Duration::from_millis(10)).await;
            Ok::<_, Boom>((ctx.is_cancelled(), ctx.deadline()))
        })
        .deadline(deadline);
        assert_eq!(pool.submit_job(job).await, Ok((false, Some(deadline))));

        let job = Job::new(|ctx| async move {
            sleep(Duration::from_millis(10)).await;
            Ok::<_, Boom>(ctx.is_cancelled())
        })
        .timeout(Duration::from_secs(10));
        assert_eq!(pool.submit_job(job).await, Ok(false));
        pool.stop_wait().await;
    }
);

// With both a timeout and a deadline, the earlier one applies.
rt_test!(
    the_earlier_of_timeout_and_deadline_applies,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let t = Instant::now();
        let job = Job::new(|_ctx| async {
            sleep(Duration::from_secs(10)).await;
            Ok::<_, Boom>(())
        })
        .timeout(Duration::from_secs(10))
        .deadline(Instant::now() + Duration::from_millis(5));
        assert_eq!(pool.submit_job(job).await, Err(JobError::TimedOut));
        assert!(t.elapsed() < Duration::from_secs(2));

        let t = Instant::now();
        let job = Job::new(|_ctx| async {
            sleep(Duration::from_secs(10)).await;
            Ok::<_, Boom>(())
        })
        .deadline(Instant::now() + Duration::from_secs(10))
        .timeout(Duration::from_millis(5));
        assert_eq!(pool.submit_job(job).await, Err(JobError::TimedOut));
        assert!(t.elapsed() < Duration::from_secs(2));
    }
);

// A queued job whose deadline passes before a worker reaches it never runs: TimedOut, 0 attempts, factory never called.
rt_test!(
    a_queued_job_whose_deadline_passes_never_runs,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let gauge = Gauge::new();
        let latch = Latch::new();
        let (g, l) = (gauge.clone(), latch.clone());
        let blocker = pool.submit(async move {
            let _alive = g.enter();
            l.wait().await;
        });
        gauge.until(|g| g.now() == 1).await;

        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let queued = pool.submit_job(
            Job::new(move |_ctx| {
                m.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Boom>("ran") }
            })
            .name("late")
            .deadline(clock.now() + Duration::from_millis(5)),
        );
        assert_eq!(pool.waiting(), 1);
        clock.advance(Duration::from_millis(10)); // the deadline passes while it waits
        latch.open();
        assert_eq!(blocker.await, Ok(()));

        let o = queued.outcome().await;
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert_eq!(o.attempts(), 0);
        assert_eq!(o.duration(), Duration::ZERO);
        assert_eq!(o.queued(), Duration::from_millis(10));
        assert_eq!(o.name(), Some("late"));
        assert_eq!(
            made.load(Ordering::SeqCst),
            0,
            "the factory of an expired job was called"
        );
        assert_eq!(gauge.entered(), 1);
        pool.stop_wait().await;
    }
);

// A timeout counts from the job's start, not its submit: time spent queued does not use it up.
rt_test!(
    a_timeout_counts_from_the_start_not_the_submit,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b
            .max_workers(1)
            .keep_idle_workers()
            .clock(clock.clone())
            .build();
        let latch = Latch::new();
        let l = latch.clone();
        let (started_tx, started_rx) = async_channel::bounded::<()>(1);
        let blocker = pool.submit(async move {
            started_tx.send(()).await.unwrap();
            l.wait().await;
        });
        started_rx.recv().await.unwrap();
        let c = clock.clone();
        let queued = pool.submit_job(
            Job::new(move |ctx| {
                let now = c.now();
                async move { Ok::<_, Boom>(ctx.deadline().map(|d| d - now)) }
            })
            .timeout(Duration::from_millis(5)),
        );
        clock.advance(Duration::from_millis(10)); // longer than its timeout, but it has not started
        latch.open();
        assert_eq!(blocker.await, Ok(()));
        let o = queued.outcome().await;
        assert_eq!(o.into_result(), Ok(Some(Duration::from_millis(5))));
        pool.stop_wait().await;
    }
);

// The pool's default timeout applies to jobs and plain submits that set no timeout or deadline.
rt_test!(
    the_default_timeout_applies_to_jobs_without_their_own,
    |b: Builder| async move {
        let pool = b
            .max_workers(2)
            .default_timeout(Duration::from_millis(20))
            .build();
        let t = Instant::now();
        let job = Job::new(|_ctx| std::future::pending::<Result<(), Boom>>()).name("forever");
        let o = pool.submit_job(job).outcome().await;
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert!(
            o.duration() >= Duration::from_millis(20),
            "{:?}",
            o.duration()
        );
        assert_eq!(
            pool.submit(std::future::pending::<()>()).await,
            Err(JobError::TimedOut)
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );

        // The job sees the default deadline in its context.
        let before = Instant::now();
        let job = Job::new(|ctx| async move { Ok::<_, Boom>(ctx.deadline()) });
        let deadline = pool
            .submit_job(job)
            .await
            .unwrap()
            .expect("a default deadline");
        assert!(deadline > before && deadline <= Instant::now() + Duration::from_millis(20));
        pool.stop_wait().await;
    }
);

// A job's own timeout or deadline replaces the default timeout: a 50 ms body outlives a 10 ms default.
rt_test!(
    a_jobs_own_timeout_replaces_the_default_timeout,
    |b: Builder| async move {
        let pool = b
            .max_workers(2)
            .default_timeout(Duration::from_millis(10))
            .build();
        let slow = |_ctx| async {
            sleep(Duration::from_millis(50)).await;
            Ok::<_, Boom>("slow but allowed")
        };
        // Control: without its own timeout the job hits the default.
        assert_eq!(
            pool.submit_job(Job::new(slow)).await,
            Err(JobError::TimedOut)
        );
        let own_timeout = Job::new(slow).timeout(Duration::from_secs(10));
        assert_eq!(pool.submit_job(own_timeout).await, Ok("slow but allowed"));
        let own_deadline = Job::new(slow).deadline(Instant::now() + Duration::from_secs(10));
        assert_eq!(pool.submit_job(own_deadline).await, Ok("slow but allowed"));
        pool.stop_wait().await;
    }
);

// A blocking job sees its context cancelled when its timeout passes; its handle resolves TimedOut at once while the slot stays busy until the closure returns.
rt_test!(
    a_blocking_job_sees_its_timeout_and_keeps_its_slot,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let saw_cancel = Latch::new();
        let release = Latch::new();
        let events = Arc::new(Mutex::new(Vec::<&str>::new()));
        let (s, r, e) = (saw_cancel.clone(), release.clone(), events.clone());
        let job = Job::blocking(move |ctx| {
            let give_up = Instant::now() + Duration::from_secs(10);
            while !ctx.is_cancelled() {
                if Instant::now() > give_up {
                    return Err("never saw the timeout");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            s.open();
            r.wait_blocking();
            e.lock().unwrap().push("closure returns");
            Ok("too late")
        })
        .name("spin")
        .timeout(Duration::from_millis(20));

        let t = Instant::now();
        let o = pool.submit_job(job).outcome().await;
        // Resolved while the closure is still held by `release`.
        assert!(!release.is_open());
        assert_eq!(o.result(), Err(&JobError::TimedOut));
        assert_eq!(o.attempts(), 1);
        assert!(o.duration() >= Duration::from_millis(20));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        saw_cancel.wait().await; // the closure noticed through ctx.is_cancelled()

        // The slot stays busy: a job submitted now waits until the closure returns.
        assert_eq!(pool.running(), 1);
        let marker_started = Latch::new();
        let (m, e) = (marker_started.clone(), events.clone());
        let marker = pool.submit(async move {
            m.open();
            e.lock().unwrap().push("marker");
        });
        futures_lite::future::or(marker_started.wait(), sleep(Duration::from_millis(50))).await;
        assert!(
            !marker_started.is_open(),
            "a job started while the timed-out closure still ran"
        );
        assert_eq!((pool.running(), pool.waiting()), (1, 1));
        release.open();
        assert_eq!(marker.await, Ok(()));
        assert_eq!(*events.lock().unwrap(), ["closure returns", "marker"]);
        pool.stop_wait().await;
    }
);

//! Contexts: the pool's default cancel token and per-job tokens that replace
//! it (the Go suite's TestCancellingContext, TestJobContextOverridesDefaultContext
//! and TestCancelDefaultContext).

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use workerpoolxt::{Builder, CancelToken, Job, JobContext, JobError, ResultSet};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom;

/// A job that enters `gauge`, waits for `latch`, then returns `Ok(value)`.
fn held_job(gauge: &Gauge, latch: &Latch, value: &'static str) -> Job<&'static str, Boom> {
    let gauge = gauge.clone();
    let latch = latch.clone();
    Job::new(move |_ctx| {
        let gauge = gauge.clone();
        let latch = latch.clone();
        async move {
            let _alive = gauge.enter();
            latch.wait().await;
            Ok(value)
        }
    })
}

// A job whose token is cancelled 2 ms into its 100 ms body resolves Cancelled at once, its body dropped unfinished; the other job succeeds (Go TestCancellingContext).
rt_test!(
    cancelling_a_jobs_token_mid_body_resolves_it_at_once,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let token = CancelToken::new();
        let gauge = Gauge::new();
        let finished = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = async_channel::bounded::<()>(1);
        let j1 = Job::new({
            let gauge = gauge.clone();
            let finished = finished.clone();
            move |_ctx| {
                let gauge = gauge.clone();
                let finished = finished.clone();
                let started_tx = started_tx.clone();
                async move {
                    let _alive = gauge.enter();
                    started_tx.send(()).await.unwrap();
                    sleep(Duration::from_millis(100)).await;
                    finished.store(true, Ordering::SeqCst);
                    Ok::<_, Boom>("You shouldn't get a success from me")
                }
            }
        })
        .name("j1")
        .cancel_token(token.clone());
        let h1 = pool.submit_job(j1);
        let h2 = pool.submit_job(Job::new(|_ctx| async { Ok::<_, Boom>("OK") }).name("j2"));

        started_rx.recv().await.unwrap(); // j1 is inside its body
        let t = Instant::now();
        token.cancel();
        let o1 = h1.outcome().await;
        let took = t.elapsed();
        // Dropped before the handle resolved: the body's guard is gone, and it never finished.
        assert_eq!((gauge.entered(), gauge.left()), (1, 1));
        assert!(!finished.load(Ordering::SeqCst));
        assert_eq!(o1.result(), Err(&JobError::Cancelled));
        assert_eq!(o1.name(), Some("j1"));
        assert_eq!(o1.attempts(), 1);
        assert!(took < Duration::from_millis(100), "cancel took {took:?}");
        assert_eq!(h2.await, Ok("OK"));

        pool.stop_wait().await;
        assert!(
            !finished.load(Ordering::SeqCst),
            "the body ran on after its cancel"
        );
    }
);

// Cancelling the pool's default token while two jobs run cancels the one on the default token and spares the one with its own token (1 error, 1 success).
rt_test!(
    a_jobs_own_token_replaces_the_pools_default_token,
    |b: Builder| async move {
        let pool_token = CancelToken::new();
        let pool = b.max_workers(10).cancel_token(pool_token.clone()).build();
        assert!(pool.cancel_token().same_as(&pool_token));
        let gauge = Gauge::new();
        let latch = Latch::new();
        let default_job = pool.submit_job(held_job(&gauge, &latch, "default").name("default ctx"));
        let own_job = pool.submit_job(
            held_job(&gauge, &latch, "own")
                .name("own ctx")
                .cancel_token(CancelToken::new()),
        );
        gauge.until(|g| g.now() == 2).await;

        pool_token.cancel();
        let o = default_job.outcome().await;
        assert_eq!(o.result(), Err(&JobError::Cancelled));
        assert_eq!(gauge.now(), 1, "the job with its own token must still run");
        assert!(!own_job.is_finished());

        latch.open();
        assert_eq!(own_job.await, Ok("own"));
        pool.stop_wait().await;
    }
);

// With the pool token cancelled before submit, a default-token job never starts and a job with its own token succeeds (1 error, 1 success).
rt_test!(
    a_job_with_its_own_token_runs_on_a_cancelled_pool,
    |b: Builder| async move {
        let pool_token = CancelToken::new();
        pool_token.cancel();
        let pool = b.max_workers(10).cancel_token(pool_token).build();
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let set: ResultSet<&str, Boom> = [
            pool.submit_job(
                Job::new(move |_ctx| {
                    m.fetch_add(1, Ordering::SeqCst);
                    async { Ok("OK") }
                })
                .name("Using default ctx"),
            ),
            pool.submit_job(
                Job::new(|_ctx| async { Ok("OK") })
                    .name("Using custom per job ctx")
                    .cancel_token(CancelToken::new()),
            ),
        ]
        .into_iter()
        .collect();
        let results = set.join_all().await;
        assert_eq!(results[0].result(), Err(&JobError::Cancelled));
        assert_eq!(results[0].attempts(), 0);
        assert_eq!(
            made.load(Ordering::SeqCst),
            0,
            "a cancelled job's factory ran"
        );
        assert_eq!(results[1].result(), Ok(&"OK"));
        pool.stop_wait().await;
    }
);

// A job whose own token is cancelled before it starts never runs, while a default-token job succeeds (Go TestJobContextOverridesDefaultContext).
rt_test!(
    a_job_with_an_already_cancelled_token_never_starts,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let token = CancelToken::new();
        token.cancel();
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let own = pool.submit_job(
            Job::new(move |_ctx| {
                m.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Boom>("OK") }
            })
            .name("Using custom per job ctx")
            .cancel_token(token),
        );
        let default =
            pool.submit_job(Job::new(|_ctx| async { Ok::<_, Boom>("OK") }).name("default"));
        let o = own.outcome().await;
        assert_eq!(o.result(), Err(&JobError::Cancelled));
        assert_eq!((o.attempts(), o.duration()), (0, Duration::ZERO));
        assert_eq!(made.load(Ordering::SeqCst), 0);
        assert_eq!(default.await, Ok("OK"));
        pool.stop_wait().await;
    }
);

// Cancelling one job's token leaves the other running job to succeed.
rt_test!(
    cancelling_one_jobs_token_leaves_the_other_to_succeed,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let gauge = Gauge::new();
        let latch = Latch::new();
        let (ta, tb) = (CancelToken::new(), CancelToken::new());
        let a = pool.submit_job(
            held_job(&gauge, &latch, "a")
                .name("a")
                .cancel_token(ta.clone()),
        );
        let b = pool.submit_job(
            held_job(&gauge, &latch, "b")
                .name("b")
                .cancel_token(tb.clone()),
        );
        gauge.until(|g| g.now() == 2).await;
        ta.cancel();
        assert_eq!(a.await, Err(JobError::Cancelled));
        assert_eq!(gauge.now(), 1);
        assert!(!tb.is_cancelled());
        latch.open();
        assert_eq!(b.await, Ok("b"));
        pool.stop_wait().await;
    }
);

// Cancelling the pool's default token fails all 4 running jobs promptly, bodies dropped (Go TestCancelDefaultContext).
rt_test!(
    cancelling_the_pool_token_fails_every_running_job,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let gauge = Gauge::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let set: ResultSet<bool, Boom> = (0..4)
            .map(|_| {
                let gauge = gauge.clone();
                let finished = finished.clone();
                pool.submit_job(
                    Job::new(move |_ctx| {
                        let gauge = gauge.clone();
                        let finished = finished.clone();
                        async move {
                            let _alive = gauge.enter();
                            sleep(Duration::from_secs(5)).await;
                            finished.fetch_add(1, Ordering::SeqCst);
                            Ok(true)
                        }
                    })
                    .name("a"),
                )
            })
            .collect();
        gauge.until(|g| g.now() == 4).await; // all 4 started
        assert_eq!(gauge.max(), 4);

        let t = Instant::now();
        pool.cancel_token().cancel();
        let results = set.join_all().await;
        let took = t.elapsed();
        assert_eq!(results.len(), 4);
        for o in &results {
            assert_eq!(o.result(), Err(&JobError::Cancelled));
            assert_eq!(o.attempts(), 1);
        }
        assert_eq!(
            gauge.now(),
            0,
            "every body is dropped before its handle resolves"
        );
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        assert!(took < Duration::from_secs(1), "cancel took {took:?}");
        pool.stop_wait().await;
    }
);

// Cancelling the pool token also resolves the queued jobs Cancelled, without ever calling their factories.
rt_test!(
    cancelling_the_pool_token_skips_queued_jobs,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let gauge = Gauge::new();
        let latch = Latch::new();
        let running = pool.submit_job(held_job(&gauge, &latch, "running"));
        gauge.until(|g| g.now() == 1).await;
        let made = Arc::new(AtomicUsize::new(0));
        let queued: ResultSet<(), Boom> = (0..3)
            .map(|i| {
                let made = made.clone();
                pool.submit_job(
                    Job::new(move |_ctx| {
                        made.fetch_add(1, Ordering::SeqCst);
                        async { Ok(()) }
                    })
                    .name(format!("queued {i}")),
                )
            })
            .collect();
        assert_eq!(pool.waiting(), 3);
        pool.cancel_token().cancel();
        assert_eq!(running.await, Err(JobError::Cancelled));
        for o in queued.join_all().await {
            assert_eq!(o.result(), Err(&JobError::Cancelled));
            assert_eq!(o.attempts(), 0);
        }
        assert_eq!(made.load(Ordering::SeqCst), 0);
        pool.stop_wait().await;
    }
);

// The context names the job (or not), numbers its attempts, and carries its
// deadline and options: what a job's factory reads.
rt_test!(
    the_context_says_which_job_and_attempt,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let deadline = Instant::now() + Duration::from_secs(3600);
        let job = Job::new(|ctx: JobContext| async move {
            let seen = (
                ctx.name().map(str::to_owned),
                ctx.attempt(),
                ctx.deadline(),
                ctx.options().get::<u8>().copied(),
            );
            if ctx.attempt() < 2 {
                Err(Boom)
            } else {
                Ok(seen)
            }
        })
        .name("named")
        .deadline(deadline)
        .options(workerpoolxt::Options::new().with(5u8))
        .retry(1)
        .backoff(workerpoolxt::Backoff::none());
        assert_eq!(
            pool.submit_job(job).await,
            Ok((Some("named".to_owned()), 2, Some(deadline), Some(5)))
        );
        let unnamed =
            Job::new(|ctx: JobContext| async move { Ok::<_, Boom>(ctx.name().is_none()) });
        assert_eq!(pool.submit_job(unnamed).await, Ok(true));
        pool.stop_wait().await;
    }
);

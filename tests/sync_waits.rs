//! Blocking waits for callers without an executor: `Stop::wait` and
//! `ResultSet::wait_all` work from a plain thread and inside a blocking
//! closure, and panic at once inside an async job (with a message that says
//! to `.await`), which then resolves `Panicked`.

mod common;
use common::*;

use std::time::Duration;

use workerpoolxt::{Builder, Job, JobError, Pool, ResultHandle, ResultSet};

const PROMPT: Duration = Duration::from_secs(5);

/// The panic message of a `Panicked` result.
fn panic_message<T: std::fmt::Debug>(r: Option<Result<T, JobError>>, what: &str) -> String {
    match r {
        Some(Err(JobError::Panicked(p))) => p.message().to_string(),
        other => panic!("{what}: expected Panicked, got {other:?}"),
    }
}

/// Two running jobs on `latch` (an async one and a blocking one) and a
/// queued one, on a pool of 2.
fn held_jobs(pool: &Pool, gauge: &Gauge, latch: &Latch) -> Vec<ResultHandle<u32>> {
    let body = blocker(gauge, latch);
    let first = pool.submit(async move {
        body.await;
        1
    });
    let (g, l) = (gauge.clone(), latch.clone());
    let second = pool.submit_blocking(move || {
        let _in = g.enter();
        l.wait_blocking();
        2
    });
    vec![first, second, pool.submit(async { 3 })]
}

// `stop_wait().wait()` on a plain thread returns only once the running jobs
// and the queued one have ended.
rt_test!(stop_wait_from_a_plain_thread, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    let (gauge, latch) = (Gauge::new(), Latch::new());
    let _guard = OpenOnPanic(vec![latch.clone()]);
    let mut handles = held_jobs(&pool, &gauge, &latch);
    gauge.until(|g| g.now() == 2).await;
    let (tx, returned) = async_channel::unbounded();
    let p = pool.clone();
    let thread = std::thread::spawn(move || {
        p.stop_wait().wait();
        tx.send_blocking(()).unwrap();
    });
    settle().await;
    assert!(returned.is_empty(), "wait() returned while jobs ran");
    assert!(pool.is_stopped());

    latch.open();
    assert_eq!(within(PROMPT, returned.recv()).await, Some(Ok(())));
    thread.join().unwrap();
    let values: Vec<_> = handles.iter_mut().map(|h| h.try_take()).collect();
    assert_eq!(values, [Some(Ok(1)), Some(Ok(2)), Some(Ok(3))]);
    assert_eq!(gauge.now(), 0);
});

// `stop().wait()` on a plain thread: the queued job is stopped at once,
// the wait returns once the running jobs have ended.
rt_test!(stop_from_a_plain_thread, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    let (gauge, latch) = (Gauge::new(), Latch::new());
    let _guard = OpenOnPanic(vec![latch.clone()]);
    let mut handles = held_jobs(&pool, &gauge, &latch);
    gauge.until(|g| g.now() == 2).await;
    let (tx, returned) = async_channel::unbounded();
    let p = pool.clone();
    let thread = std::thread::spawn(move || {
        p.stop().wait();
        tx.send_blocking(()).unwrap();
    });
    let queued = handles.pop().unwrap();
    assert_eq!(within(PROMPT, queued).await, Some(Err(JobError::Stopped)));
    settle().await;
    assert!(returned.is_empty(), "wait() returned while jobs ran");

    latch.open();
    assert_eq!(within(PROMPT, returned.recv()).await, Some(Ok(())));
    thread.join().unwrap();
    let values: Vec<_> = handles.iter_mut().map(|h| h.try_take()).collect();
    assert_eq!(values, [Some(Ok(1)), Some(Ok(2))]);
});

// `wait_all()` on a plain thread returns every outcome, in push order,
// once the last job has ended.
rt_test!(wait_all_from_a_plain_thread, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    let (gauge, latch) = (Gauge::new(), Latch::new());
    let _guard = OpenOnPanic(vec![latch.clone()]);
    let handles = held_jobs(&pool, &gauge, &latch);
    let ids: Vec<_> = handles.iter().map(ResultHandle::id).collect();
    let set: ResultSet<u32> = handles.into_iter().collect();
    gauge.until(|g| g.now() == 2).await;
    let (tx, returned) = async_channel::unbounded();
    let thread = std::thread::spawn(move || {
        let outcomes = set.wait_all();
        let got: Vec<_> = outcomes
            .into_iter()
            .map(|o| (o.id(), o.into_result()))
            .collect();
        tx.send_blocking(got).unwrap();
    });
    settle().await;
    assert!(returned.is_empty(), "wait_all() returned while jobs ran");

    latch.open();
    let got = within(PROMPT, returned.recv()).await.unwrap().unwrap();
    thread.join().unwrap();
    let want: Vec<_> = ids.into_iter().zip([Ok(1), Ok(2), Ok(3)]).collect();
    assert_eq!(got, want);
    within(PROMPT, pool.stop_wait()).await.expect("stop_wait");
});

// Inside an async job, `wait_all()` and `Stop::wait()` panic at once with a
// message that names the call and says to `.await`; the job resolves
// `Panicked`, the jobs the set held run anyway, and the pool still stops.
rt_test!(waits_inside_an_async_job_panic, |b: Builder| async move {
    let pool = b.max_workers(2).build();
    let ran = Latch::new();
    let (p, r) = (pool.clone(), ran.clone());
    let outer = pool.submit(async move {
        let r = r.clone();
        let set: ResultSet<u8> = std::iter::once(p.submit(async move {
            r.open();
            5
        }))
        .collect();
        set.wait_all()
    });
    let msg = panic_message(within(PROMPT, outer).await, "wait_all() in a job");
    assert!(msg.contains("ResultSet::wait_all()"), "{msg}");
    assert!(msg.contains(".await"), "{msg}");
    assert!(
        within(PROMPT, ran.wait()).await.is_some(),
        "the inner job never ran"
    );

    let p = pool.clone();
    let outer = pool.submit_job(Job::new(move |_ctx| {
        let p = p.clone();
        async move {
            p.stop_wait().wait();
            Ok::<_, ()>(())
        }
    }));
    let got = within(PROMPT, outer.outcome())
        .await
        .map(|o| o.into_result());
    let msg = match got {
        Some(Err(JobError::Panicked(p))) => p.message().to_string(),
        other => panic!("Stop::wait() in a job: expected Panicked, got {other:?}"),
    };
    assert!(msg.contains("Stop::wait()"), "{msg}");
    assert!(msg.contains(".await"), "{msg}");
    within(PROMPT, pool.stop_wait()).await.expect("stop_wait");
    assert_eq!(pool.metrics().panicked, 2);
});

// Inside a blocking closure both waits work: `wait_all()` on jobs of the
// same pool, and `Stop::wait()` of its own pool, which returns once the
// other running job has ended.
rt_test!(
    waits_inside_a_blocking_closure_work,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let p = pool.clone();
        let values = pool.submit_blocking(move || {
            let set: ResultSet<u32> = (0..3u32).map(|i| p.submit(async move { i * 2 })).collect();
            let outcomes = set.wait_all();
            outcomes
                .into_iter()
                .map(|o| o.into_result())
                .collect::<Vec<_>>()
        });
        assert_eq!(
            within(PROMPT, values).await,
            Some(Ok(vec![Ok(0), Ok(2), Ok(4)]))
        );

        let body = blocker(&gauge, &latch);
        let other = pool.submit(body);
        gauge.until(|g| g.now() == 1).await;
        let (p, g) = (pool.clone(), gauge.clone());
        let mut stopper = pool.submit_blocking(move || {
            p.stop().wait();
            g.now()
        });
        settle().await;
        assert!(
            !stopper.is_finished(),
            "Stop::wait() returned while a job ran"
        );
        latch.open();
        assert_eq!(within(PROMPT, other).await, Some(Ok(())));
        assert_eq!(within(PROMPT, &mut stopper).await, Some(Ok(0)));
        within(PROMPT, pool.stop()).await.expect("stop");
    }
);

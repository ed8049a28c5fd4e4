//! `ResultSet::join_next`: the next job to finish, in completion order,
//! `None` once the set is empty; `len` and `is_empty` track what is left;
//! and a dropped set leaves its jobs running to their ends.

mod common;
use common::*;

use std::time::Duration;

use futures::FutureExt;
use futures_lite::future::poll_once;
use workerpoolxt::{Builder, Job, JobError, Pool, ResultHandle, ResultSet};

const PROMPT: Duration = Duration::from_secs(5);

/// An async job that counts itself in `gauge`, returns `value` once `latch`
/// opens and then sends `value` on `done`.
fn held(
    pool: &Pool,
    gauge: &Gauge,
    latch: &Latch,
    value: u32,
    done: &async_channel::Sender<u32>,
) -> ResultHandle<u32> {
    let (body, done) = (blocker(gauge, latch), done.clone());
    pool.submit(async move {
        body.await;
        done.send(value).await.unwrap();
        value
    })
}

#[test]
fn join_next_on_an_empty_set_is_none_at_once() {
    let mut set = ResultSet::<u8>::new();
    assert!(set.is_empty());
    assert_eq!(set.len(), 0);
    assert!(matches!(set.join_next().now_or_never(), Some(None)));
}

// Two running jobs, A pushed first: B is released first and yielded first;
// while A still runs, `join_next` waits (and a dropped `join_next` loses
// nothing); then A; then `None`. `len`/`is_empty` follow each step.
rt_test!(
    join_next_yields_in_completion_order,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let gauge = Gauge::new();
        let (first, second) = (Latch::new(), Latch::new());
        let _guard = OpenOnPanic(vec![first.clone(), second.clone()]);
        let (done, _finished) = async_channel::unbounded();
        let a = held(&pool, &gauge, &first, 1, &done);
        let b = held(&pool, &gauge, &second, 2, &done);
        let (a_id, b_id) = (a.id(), b.id());
        let mut set = ResultSet::new();
        set.push(a);
        set.push(b);
        assert_eq!((set.len(), set.is_empty()), (2, false));
        gauge.until(|g| g.now() == 2).await;

        second.open();
        let next = within(PROMPT, set.join_next()).await.flatten();
        let next = next.expect("B was never yielded");
        assert_eq!(next.id(), b_id, "not in completion order");
        assert_eq!(next.into_result(), Ok(2));
        assert_eq!((set.len(), set.is_empty()), (1, false));

        // A still runs: nothing to yield; a join_next dropped midway loses nothing.
        assert!(poll_once(set.join_next()).await.is_none());
        settle().await;
        assert!(poll_once(set.join_next()).await.is_none());
        assert_eq!(set.len(), 1);

        first.open();
        let next = within(PROMPT, set.join_next()).await.flatten();
        let next = next.expect("A was never yielded");
        assert_eq!(next.id(), a_id);
        assert_eq!(next.into_result(), Ok(1));
        assert_eq!((set.len(), set.is_empty()), (0, true));
        assert!(matches!(set.join_next().now_or_never(), Some(None)));
        within(PROMPT, pool.stop_wait()).await.expect("stop_wait");
    }
);

// Outcomes of every kind come out of `join_next` as their jobs end: a
// failure, a cancel, a stop (a queued job dropped by `stop`) and a value.
rt_test!(
    join_next_yields_every_kind_of_end,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let mut set: ResultSet<u32, &str> = ResultSet::new();
        let fails = pool.submit_job(Job::once(async { Err::<u32, _>("no") }));
        let failed_id = fails.id();
        set.push(fails);
        let failed = within(PROMPT, set.join_next()).await.flatten().unwrap();
        assert_eq!(failed.id(), failed_id);
        assert_eq!(failed.into_result(), Err(JobError::Failed("no")));

        let body = blocker(&gauge, &latch);
        set.push(pool.submit_job(Job::once(async move {
            body.await;
            Ok(7)
        })));
        gauge.until(|g| g.now() == 1).await;
        let cancelled = pool.submit_job(Job::once(async { Ok(8) }));
        cancelled.cancel();
        set.push(cancelled);
        set.push(pool.submit_job(Job::once(async { Ok(9) })));
        let got = within(PROMPT, set.join_next()).await.flatten().unwrap();
        assert_eq!(got.into_result(), Err(JobError::Cancelled));
        let stop = pool.stop();
        let got = within(PROMPT, set.join_next()).await.flatten().unwrap();
        assert_eq!(got.into_result(), Err(JobError::Stopped));
        assert_eq!(set.len(), 1);
        latch.open();
        let got = within(PROMPT, set.join_next()).await.flatten().unwrap();
        assert_eq!(got.into_result(), Ok(7));
        assert!(set.is_empty());
        within(PROMPT, stop).await.expect("stop");
    }
);

// Dropping a set drops its handles, not its jobs: the running ones and the
// queued ones (async and blocking) all run to their ends afterwards.
rt_test!(
    a_dropped_set_lets_its_jobs_run_on,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let (done, finished) = async_channel::unbounded();
        let mut set: ResultSet<u32> = (0..4)
            .map(|i| held(&pool, &gauge, &latch, i, &done))
            .collect();
        let (tx, l) = (done.clone(), latch.clone());
        set.push(pool.submit_blocking(move || {
            l.wait_blocking();
            tx.send_blocking(4).unwrap();
            4
        }));
        gauge.until(|g| g.now() == 2).await;
        assert_eq!((set.len(), pool.waiting()), (5, 3));
        drop(set);
        settle().await;
        assert_eq!(pool.metrics().cancelled, 0, "a dropped set cancelled a job");

        latch.open();
        let mut seen = Vec::new();
        for _ in 0..5 {
            let v = within(PROMPT, finished.recv()).await;
            seen.push(v.expect("a job of the dropped set never ended").unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        within(PROMPT, pool.stop_wait()).await.expect("stop_wait");
        let m = pool.metrics();
        assert_eq!((m.succeeded, m.cancelled, m.stopped), (5, 0, 0));
    }
);

// A handle whose result was taken already (`try_take`) adds nothing to a
// set: it is not counted, and the set does not wait for it. (It hung the set
// for ever before: `len()` counted it and `join_next` never returned.)
#[test]
fn a_handle_taken_before_it_was_pushed_does_not_hang_the_set() {
    let _dog = Watchdog::new("taken handle in a set".into(), HANG_LIMIT);
    futures_lite::future::block_on(async {
        let pool = Pool::new(1);
        let mut taken = pool.submit(async { 1 });
        pool.stop_wait().await;
        assert_eq!(taken.try_take(), Some(Ok(1)));
        let mut set = ResultSet::new();
        set.push(taken);
        assert_eq!((set.len(), set.is_empty()), (0, true));
        let next = within(Duration::from_secs(2), set.join_next()).await;
        assert!(next.is_some(), "join_next hangs on a taken handle");
        assert!(next.unwrap().is_none(), "a taken handle has no outcome");
    });
}

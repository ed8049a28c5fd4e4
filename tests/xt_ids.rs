//! Job ids (`JobId`): unique and increasing in submission order, also under
//! concurrent submitters; the same in the handle, the job's context and the
//! outcome, on every attempt; refused submits (a stopped pool, a full
//! bounded queue) get theirs too, and the metrics' ledger stays exact.

mod common;
use common::*;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use workerpoolxt::{Backoff, Builder, Job, JobError, JobId, Metrics, Pool, ResultHandle};

/// Bound for things that take microseconds.
const LIMIT: Duration = Duration::from_secs(10);

/// Submits job `i`, of one of six kinds chosen by `i`: the jobs that have a
/// context return its id, the others `None`.
fn submit(pool: &Pool, i: usize) -> ResultHandle<Option<JobId>, Infallible> {
    match i % 6 {
        0 => pool.submit_job(Job::new(|ctx| async move { Ok(Some(ctx.id())) })),
        1 => pool.submit_job(Job::blocking(|ctx| Ok(Some(ctx.id())))),
        2 => pool.submit_job(Job::infallible(|ctx| async move { Some(ctx.id()) })),
        3 => pool.submit_job(Job::blocking_once(|ctx| Ok(Some(ctx.id())))),
        4 => pool.submit(async { None }),
        _ => pool.submit_blocking(|| None),
    }
}

/// `submitted == waiting + running + finished` and nothing draining.
#[track_caller]
fn assert_ledger(m: &Metrics) {
    assert_eq!(m.submitted, m.waiting + m.running + m.finished(), "{m:?}");
    assert_eq!(m.draining, 0, "{m:?}");
}

// Four threads submitting 500 jobs each at once: each thread's ids increase, all are distinct and are exactly 1..=2000; handle, context and outcome agree on each.
rt_test!(
    ids_are_unique_and_increasing_under_concurrent_submitters,
    |b: Builder| async move {
        const THREADS: usize = 4;
        const EACH: usize = 500;
        let pool = b.max_workers(2).build();
        let start = Barrier::new(THREADS);
        let per_thread: Vec<Vec<ResultHandle<Option<JobId>, Infallible>>> =
            std::thread::scope(|s| {
                let threads: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let (pool, start) = (pool.clone(), &start);
                        s.spawn(move || {
                            start.wait(); // all submit at once
                            (0..EACH).map(|i| submit(&pool, t + i)).collect()
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
        let mut all = HashSet::new();
        for handles in &per_thread {
            let ids: Vec<JobId> = handles.iter().map(ResultHandle::id).collect();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "one thread's ids do not increase: {ids:?}"
            );
            all.extend(ids);
        }
        assert_eq!(all.len(), THREADS * EACH, "ids repeat");
        let numbers: HashSet<u64> = all.iter().map(|id| id.get()).collect();
        assert_eq!(numbers, (1..=(THREADS * EACH) as u64).collect());

        let mut from_context = 0;
        for h in per_thread.into_iter().flatten() {
            let id = h.id();
            let o = within(LIMIT, h.outcome()).await.expect("never resolved");
            assert_eq!(o.id(), id);
            match o.into_result() {
                Ok(Some(seen)) => {
                    assert_eq!(seen, id, "the context's id differs from the handle's");
                    from_context += 1;
                }
                Ok(None) => {}
                Err(e) => panic!("job {id}: {e:?}"),
            }
        }
        let with_context = (0..THREADS)
            .flat_map(|t| (0..EACH).map(move |i| (t + i) % 6))
            .filter(|kind| *kind < 4)
            .count();
        assert_eq!(from_context, with_context);
        pool.stop_wait().await;
        assert_ledger(&pool.metrics());
    }
);

// A job keeps its id on every attempt: three attempts of a retried job see the handle's id, and so does its outcome.
rt_test!(
    a_job_keeps_its_id_across_attempts,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let first = pool.submit(async {});
        let seen: Arc<Mutex<Vec<(u32, JobId)>>> = Arc::default();
        let s = seen.clone();
        let job = Job::new(move |ctx| {
            s.lock().unwrap().push((ctx.attempt(), ctx.id()));
            async move {
                if ctx.attempt() < 3 {
                    Err(())
                } else {
                    Ok(ctx.id())
                }
            }
        })
        .retry(2)
        .backoff(Backoff::none());
        let h = pool.submit_job(job);
        let id = h.id();
        assert!(first.id() < id);
        assert_eq!(id.get(), 2);
        let o = h.outcome().await;
        assert_eq!((o.id(), o.attempts()), (id, 3));
        assert_eq!(o.into_result(), Ok(id));
        assert_eq!(*seen.lock().unwrap(), [(1, id), (2, id), (3, id)]);
        assert_eq!(first.await, Ok(()));
        pool.stop_wait().await;
    }
);

// Submits refused by a full bounded queue get ids of their own, in order, resolve QueueFull with that id in their outcome, and the ledger stays exact; so do submits to a stopped pool.
rt_test!(
    refused_submits_get_distinct_ids_and_keep_the_ledger,
    |b: Builder| async move {
        let pool = b.max_workers(1).queue_capacity(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _open = OpenOnPanic(vec![latch.clone()]);
        let running = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;
        let queued = submit(&pool, 0);
        let full = [submit(&pool, 0), submit(&pool, 4), submit(&pool, 1)];
        assert!(pool.try_submit(async {}).is_err(), "the queue has room");
        let full_late = pool.submit_job(Job::once(async { Ok::<_, ()>(()) }));

        let mut ids = vec![running.id(), queued.id()];
        ids.extend(full.iter().map(ResultHandle::id));
        ids.push(full_late.id());
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let m = pool.metrics();
        assert_eq!(
            (m.submitted, m.rejected, m.waiting, m.running),
            (7, 5, 1, 1)
        );
        assert_ledger(&m);
        for h in full {
            let id = h.id();
            let o = h.outcome().await;
            assert_eq!((o.id(), o.result()), (id, Err(&JobError::QueueFull)));
            assert_eq!(o.attempts(), 0);
        }
        assert_eq!(full_late.await, Err(JobError::QueueFull));

        latch.open();
        assert_eq!(running.await, Ok(()));
        let id = queued.id();
        assert_eq!(queued.await, Ok(Some(id)));
        pool.stop_wait().await;

        let stopped = [submit(&pool, 0), submit(&pool, 5)];
        assert!(pool.try_submit(async {}).is_err());
        assert!(ids.last().unwrap() < &stopped[0].id() && stopped[0].id() < stopped[1].id());
        for h in stopped {
            let id = h.id();
            let o = h.outcome().await;
            assert_eq!((o.id(), o.result()), (id, Err(&JobError::Stopped)));
        }
        let m = pool.metrics();
        assert_eq!((m.waiting, m.running), (0, 0));
        assert_eq!((m.submitted, m.succeeded), (10, 2));
        assert_eq!((m.rejected, m.stopped), (5, 3));
        assert_ledger(&m);
    }
);

// An id and a job's state print with the formatter's width, as numbers and words do.
#[test]
fn ids_and_states_take_a_width() {
    let pool = workerpoolxt::Pool::new(1);
    let h = pool.submit(async {});
    assert_eq!(format!("[{:>4}]", h.id()), format!("[{:>4}]", h.id().get()));
    assert_eq!(
        format!("[{:<9}]", workerpoolxt::JobState::Queued),
        "[queued   ]"
    );
    assert_eq!(h.wait(), Ok(()));
}

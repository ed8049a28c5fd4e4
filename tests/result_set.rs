//! ResultSet: many handles, collected in submission order (`join_all`, the
//! Go `StopWaitXT` use) or in completion order (as a `Stream`).

mod common;
use common::*;

use futures_lite::StreamExt;
use workerpoolxt::{Builder, Job, JobError, Pool, ResultHandle, ResultSet};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom;

/// Submits `n` jobs named "job-i", each returning `i` once `latches[i]` opens.
fn held_jobs(pool: &Pool, latches: &[Latch]) -> Vec<ResultHandle<usize, Boom>> {
    latches
        .iter()
        .enumerate()
        .map(|(i, latch)| {
            let latch = latch.clone();
            pool.submit_job(
                Job::new(move |_ctx| {
                    let latch = latch.clone();
                    async move {
                        latch.wait().await;
                        Ok(i)
                    }
                })
                .name(format!("job-{i}")),
            )
        })
        .collect()
}

// join_all returns the outcomes in submission order although the jobs finish in reverse order.
rt_test!(join_all_keeps_submission_order, |b: Builder| async move {
    let pool = b.max_workers(3).build();
    let latches = [Latch::new(), Latch::new(), Latch::new()];
    let (done_tx, done_rx) = async_channel::unbounded::<usize>();
    let set: ResultSet<usize, Boom> = latches
        .iter()
        .enumerate()
        .map(|(i, latch)| {
            let (latch, done_tx) = (latch.clone(), done_tx.clone());
            pool.submit_job(
                Job::new(move |_ctx| {
                    let (latch, done_tx) = (latch.clone(), done_tx.clone());
                    async move {
                        latch.wait().await;
                        done_tx.send(i).await.unwrap();
                        Ok(i)
                    }
                })
                .name(format!("job-{i}")),
            )
        })
        .collect();
    let release_in_reverse = async {
        let mut finished = Vec::new();
        for i in (0..3).rev() {
            latches[i].open();
            finished.push(done_rx.recv().await.unwrap());
        }
        finished
    };
    let (outcomes, finished) = futures_lite::future::zip(set.join_all(), release_in_reverse).await;
    assert_eq!(finished, [2, 1, 0]);
    let got: Vec<_> = outcomes
        .iter()
        .map(|o| (o.name().unwrap().to_owned(), *o.result().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("job-0".to_owned(), 0),
            ("job-1".to_owned(), 1),
            ("job-2".to_owned(), 2)
        ]
    );
    pool.stop_wait().await;
});

// As a Stream, the set yields outcomes in completion order: jobs released in reverse come out in reverse.
rt_test!(
    the_stream_yields_in_completion_order,
    |b: Builder| async move {
        let pool = b.max_workers(3).build();
        let latches = [Latch::new(), Latch::new(), Latch::new()];
        let mut set: ResultSet<usize, Boom> = held_jobs(&pool, &latches).into_iter().collect();
        for i in (0..3).rev() {
            latches[i].open();
            let o = set.next().await.expect("an outcome");
            assert_eq!(o.name(), Some(format!("job-{i}").as_str()));
            assert_eq!(o.into_result(), Ok(i));
            assert_eq!(set.len(), i);
        }
        assert!(set.next().await.is_none());
        pool.stop_wait().await;
    }
);

// collect (FromIterator), extend, push, len and is_empty count the handles not yet yielded.
rt_test!(collect_extend_len_and_is_empty, |b: Builder| async move {
    let pool = b.max_workers(4).build();
    let mut set: ResultSet<u32> = (0..3u32).map(|i| pool.submit(async move { i })).collect();
    assert_eq!((set.len(), set.is_empty()), (3, false));
    set.extend((3..5u32).map(|i| pool.submit(async move { i })));
    set.push(pool.submit(async { 5 }));
    assert_eq!(set.len(), 6);
    assert_eq!(futures_lite::Stream::size_hint(&set), (6, Some(6)));
    let mut values = Vec::new();
    while let Some(o) = set.next().await {
        values.push(o.into_result().unwrap());
        assert_eq!(set.len(), 6 - values.len());
    }
    values.sort_unstable();
    assert_eq!(values, [0, 1, 2, 3, 4, 5]);
    assert!(set.is_empty());
    assert!(
        set.next().await.is_none(),
        "an exhausted set stays exhausted"
    );

    let empty: ResultSet<u32> = ResultSet::new();
    assert!(empty.is_empty());
    assert_eq!(empty.len(), 0);
    assert!(empty.join_all().await.is_empty());
    let default: ResultSet<u32> = ResultSet::default();
    assert!(default.is_empty());
    pool.stop_wait().await;
});

// join_all after some outcomes were streamed returns only the rest, still in submission order.
rt_test!(
    join_all_after_streaming_returns_the_rest,
    |b: Builder| async move {
        let pool = b.max_workers(4).build();
        let latches = [Latch::new(), Latch::new(), Latch::new(), Latch::new()];
        let mut set: ResultSet<usize, Boom> = held_jobs(&pool, &latches).into_iter().collect();
        latches[2].open();
        assert_eq!(set.next().await.unwrap().into_result(), Ok(2));
        for l in &latches {
            l.open();
        }
        let rest: Vec<_> = set
            .join_all()
            .await
            .into_iter()
            .map(|o| o.into_result().unwrap())
            .collect();
        assert_eq!(rest, [0, 1, 3]);
        pool.stop_wait().await;
    }
);

// cancel_all cancels every job not yet yielded, running or queued.
rt_test!(
    cancel_all_cancels_every_pending_job,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let latches: Vec<Latch> = (0..4).map(|_| Latch::new()).collect();
        let set: ResultSet<usize, Boom> = held_jobs(&pool, &latches).into_iter().collect();
        set.cancel_all();
        for o in set.join_all().await {
            assert_eq!(o.result(), Err(&JobError::Cancelled));
        }
        pool.stop_wait().await;
    }
);

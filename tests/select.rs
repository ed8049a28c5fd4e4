//! Handles in `select!` beside channels: every result and every message
//! arrives exactly once, a losing branch loses nothing, and a finished handle
//! is terminated (polling it again is `Pending`, never a panic).

mod common;
use common::*;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures::future::FusedFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use workerpoolxt::{Builder, ResultHandle};

const JOBS: u32 = 200;
const MSGS: u32 = 200;

/// Sends `0..n` from a plain thread, so messages come from outside the test's task.
fn send_from_thread(n: u32) -> async_channel::Receiver<u32> {
    let (tx, rx) = async_channel::unbounded();
    std::thread::spawn(move || {
        for m in 0..n {
            tx.send_blocking(m).unwrap();
        }
    });
    rx
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

// `futures::select!` over many handles (in a FuturesUnordered), a few handles
// by `&mut`, and a channel: every result and message exactly once.
rt_test!(
    futures_select_gets_every_result_and_message_once,
    |b: Builder| async move {
        let pool = b.max_workers(4).build();
        let mut rx = Box::pin(send_from_thread(MSGS));
        let mut set: FuturesUnordered<_> = (3..JOBS)
            .map(|i| {
                pool.submit(async move {
                    futures_lite::future::yield_now().await;
                    i
                })
            })
            .collect();
        let mut h0 = pool.submit(async { 0 });
        let mut h1 = pool.submit_blocking(|| 1);
        let mut h2 = pool.submit(async {
            futures_lite::future::yield_now().await;
            2
        });
        let (mut results, mut msgs) = (Vec::new(), Vec::new());
        loop {
            futures::select! {
                r = set.select_next_some() => results.push(r.unwrap()),
                r = &mut h0 => results.push(r.unwrap()),
                r = h1 => results.push(r.unwrap()),
                r = h2 => results.push(r.unwrap()),
                m = rx.select_next_some() => msgs.push(m),
                complete => break,
            }
        }
        assert_eq!(sorted(results), (0..JOBS).collect::<Vec<_>>());
        assert_eq!(msgs, (0..MSGS).collect::<Vec<_>>());
        assert!(h0.is_terminated() && h1.is_terminated() && h2.is_terminated());
        pool.stop_wait().await;
    },
    async_std
);

// A select that picks another branch while the job runs, then a later
// `&mut handle` await, gets the result (cancel safety).
rt_test!(
    select_losing_branch_keeps_a_running_jobs_result,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let latch = Latch::new();
        let mut h = {
            let latch = latch.clone();
            pool.submit(async move {
                latch.wait().await;
                9
            })
        };
        let (tx, rx) = async_channel::unbounded::<u32>();
        tx.send(1).await.unwrap();
        // The handle is polled first (Pending: the latch is closed), then the
        // channel wins; the `&mut h` borrow is dropped.
        futures::select_biased! {
            r = h => panic!("the job is blocked, yet its handle gave {r:?}"),
            m = rx.recv().fuse() => assert_eq!(m, Ok(1)),
        }
        assert!(!h.is_terminated());
        latch.open();
        // Nobody polls the handle while the job finishes.
        assert_eq!(pool.submit(async {}).await, Ok(()));
        assert!(h.is_finished());
        // Again: the channel (ready, first) wins over a finished handle.
        tx.send(2).await.unwrap();
        futures::select_biased! {
            m = rx.recv().fuse() => assert_eq!(m, Ok(2)),
            r = h => panic!("the channel was first, yet the handle won with {r:?}"),
        }
        assert!(!h.is_terminated(), "the losing branch consumed the result");
        assert_eq!((&mut h).await, Ok(9));
        assert!(h.is_terminated());
        pool.stop_wait().await;
    }
);

// A finished handle is terminated: is_terminated() is true, polling it again
// is Pending (not a panic), and try_take gives nothing more.
rt_test!(
    finished_handle_is_terminated_and_pending_when_polled_again,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let mut h = pool.submit(async { 4 });
        assert!(!h.is_terminated());
        assert_eq!((&mut h).await, Ok(4));
        assert!(h.is_terminated());
        assert!(h.is_finished());
        assert_eq!((&mut h).now_or_never(), None);
        let again =
            futures::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut h).poll(cx).is_pending()))
                .await;
        assert!(again, "polling a finished handle again should be Pending");
        assert_eq!(h.try_take(), None);

        // The same for the outcome future and for a result taken by try_take.
        let mut o = pool.submit_blocking(|| 5).outcome();
        assert!(!o.is_terminated());
        assert_eq!((&mut o).await.into_result(), Ok(5));
        assert!(o.is_terminated());
        assert!((&mut o).now_or_never().is_none());

        let mut t: ResultHandle<u8> = pool.submit(async { 6 });
        pool.stop_wait().await;
        assert_eq!(t.try_take(), Some(Ok(6)));
        assert!(t.is_terminated());
        assert_eq!((&mut t).now_or_never(), None);
    }
);

/// tokio::select! over a few `&mut handle`s, a FuturesUnordered of handles
/// and a channel fed by another tokio task.
async fn tokio_select_body(b: Builder) {
    let pool = b.max_workers(3).build();
    let (tx, rx) = async_channel::unbounded();
    tokio::spawn(async move {
        for m in 0..MSGS {
            tx.send(m).await.unwrap();
            if m % 10 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut set: FuturesUnordered<_> = (3..JOBS).map(|i| pool.submit(async move { i })).collect();
    let mut h0 = pool.submit(async { 0 });
    let mut h1 = pool.submit_blocking(|| 1);
    let mut h2 = pool.submit(async {
        tokio::task::yield_now().await;
        2
    });
    let (mut results, mut msgs, mut closed) = (Vec::new(), Vec::new(), false);
    loop {
        tokio::select! {
            r = &mut h0, if !h0.is_terminated() => results.push(r.unwrap()),
            r = &mut h1, if !h1.is_terminated() => results.push(r.unwrap()),
            r = &mut h2, if !h2.is_terminated() => results.push(r.unwrap()),
            Some(r) = set.next() => results.push(r.unwrap()),
            m = rx.recv(), if !closed => match m {
                Ok(m) => msgs.push(m),
                Err(_) => closed = true,
            },
            else => break,
        }
    }
    assert_eq!(sorted(results), (0..JOBS).collect::<Vec<_>>());
    assert_eq!(msgs, (0..MSGS).collect::<Vec<_>>());

    // Cancel safety with tokio::select!: the channel wins, the result stays.
    let latch = Latch::new();
    let mut h = {
        let latch = latch.clone();
        pool.submit(async move {
            latch.wait().await;
            9
        })
    };
    let (tx, rx) = async_channel::unbounded::<u32>();
    tx.send(1).await.unwrap();
    tokio::select! {
        biased;
        r = &mut h => panic!("the job is blocked, yet its handle gave {r:?}"),
        m = rx.recv() => assert_eq!(m, Ok(1)),
    }
    latch.open();
    assert_eq!((&mut h).await, Ok(9));
    pool.stop_wait().await;
}

// tokio::select! on tokio's multi-thread runtime: every result and message once.
#[test]
fn tokio_select_gets_every_result_and_message_once_multi_thread() {
    Rt::TokioMulti.run("tokio_select_multi", tokio_select_body);
}

// tokio::select! on tokio's current-thread runtime: every result and message once.
#[test]
fn tokio_select_gets_every_result_and_message_once_current_thread() {
    Rt::TokioCurrent.run("tokio_select_current", tokio_select_body);
}

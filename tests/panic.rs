//! A panic in a job — in its body, its blocking closure or its destructor —
//! is caught and reported with its message; the worker and the pool go on.

mod common;
use common::*;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use workerpoolxt::{Builder, JobError, Pool};

/// 100 more jobs on the same (one-worker) pool all succeed.
async fn still_works(pool: &Pool) {
    let handles: Vec<_> = (0..100u32)
        .map(|i| pool.submit(async move { i * 2 }))
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await, Ok(i as u32 * 2));
    }
}

fn message<T: std::fmt::Debug>(r: Result<T, JobError>) -> String {
    match r {
        Err(JobError::Panicked(p)) => {
            assert_eq!(p.to_string(), p.message(), "Display shows the message");
            p.message().to_owned()
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
}

// A future's panic resolves its handle Panicked with the message (&str and
// String payloads), and the pool's only worker goes on.
rt_test!(
    async_panic_is_caught_with_its_message,
    |b: Builder| async move {
        quiet_expected_panics();
        let pool = b.max_workers(1).build();
        let h = pool.submit(async {
            futures_lite::future::yield_now().await;
            panic!("expected panic: boom");
        });
        assert_eq!(message(h.await), "expected panic: boom");
        let n = 7;
        let h = pool.submit(async move {
            if n == 7 {
                panic!("expected panic: formatted {n}");
            }
            n
        });
        assert_eq!(message(h.await), "expected panic: formatted 7");
        let err = pool
            .submit(async { panic!("expected panic: shown") })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("expected panic: shown"), "{err}");
        still_works(&pool).await;
        let m = pool.metrics();
        assert_eq!((m.panicked, m.succeeded), (3, 100));
        pool.stop_wait().await;
    },
    async_std
);

// A blocking closure's panic resolves its handle Panicked with the message,
// and the pool goes on.
rt_test!(
    blocking_panic_is_caught_with_its_message,
    |b: Builder| async move {
        quiet_expected_panics();
        let pool = b.max_workers(1).build();
        let h = pool.submit_blocking(|| -> u8 { panic!("expected panic: blocking") });
        assert_eq!(message(h.await), "expected panic: blocking");
        let h = pool.submit_blocking(|| -> u8 { panic!("expected panic: blocking {}", 2) });
        assert_eq!(message(h.await), "expected panic: blocking 2");
        still_works(&pool).await;
        assert_eq!(pool.submit_blocking(|| 3).await, Ok(3));
        assert_eq!(pool.metrics().panicked, 2);
        pool.stop_wait().await;
    }
);

/// A future that returns `value` once polled `pending` times, and panics
/// when dropped.
struct PanicOnDrop {
    value: u32,
    pending: Option<usize>,
}

impl Future for PanicOnDrop {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        match self.pending {
            None => Poll::Pending, // until cancelled
            Some(0) => Poll::Ready(self.value),
            Some(n) => {
                self.pending = Some(n - 1);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("expected panic: drop of {}", self.value);
    }
}

// A future whose destructor panics is contained wherever it is dropped:
// after completing, when cancelled while running, when cancelled in the
// queue, and when a stop drops it unstarted. The pool works on.
rt_test!(
    panic_in_a_futures_drop_is_contained,
    |b: Builder| async move {
        quiet_expected_panics();
        let pool = b.max_workers(1).build();

        // Completed, then dropped: the panic is reported.
        let h = pool.submit(PanicOnDrop {
            value: 1,
            pending: Some(2),
        });
        assert_eq!(message(h.await), "expected panic: drop of 1");
        still_works(&pool).await;

        // Cancelled while running: reported too (it panicked while dropped).
        let gauge = Gauge::new();
        let running = {
            let gauge = gauge.clone();
            pool.submit(async move {
                let _alive = gauge.enter();
                PanicOnDrop {
                    value: 2,
                    pending: None,
                }
                .await
            })
        };
        gauge.until(|g| g.now() >= 1).await;
        // Cancelled while queued behind it.
        let queued = pool.submit(PanicOnDrop {
            value: 3,
            pending: Some(0),
        });
        queued.cancel();
        assert_eq!(queued.await, Err(JobError::Cancelled));
        running.cancel();
        assert_eq!(message(running.await), "expected panic: drop of 2");
        still_works(&pool).await;

        // Dropped unstarted by a stop, in the caller's task: no panic escapes.
        let latch = Latch::new();
        let blocker = {
            let (latch, gauge) = (latch.clone(), gauge.clone());
            pool.submit(async move {
                let _alive = gauge.enter();
                latch.wait().await
            })
        };
        gauge.until(|g| g.now() >= 1).await;
        let unstarted = pool.submit(PanicOnDrop {
            value: 4,
            pending: Some(0),
        });
        let stop = pool.stop();
        assert_eq!(unstarted.await, Err(JobError::Stopped));
        latch.open();
        stop.await;
        assert_eq!(blocker.await, Ok(()));
    }
);

// Many panicking jobs on a few workers: the workers survive them all.
rt_test!(workers_survive_many_panics, |b: Builder| async move {
    quiet_expected_panics();
    let pool = b.max_workers(2).build();
    let handles: Vec<_> = (0..200u32)
        .map(|i| {
            if i % 2 == 0 {
                pool.submit(async move {
                    if i % 4 == 0 {
                        panic!("expected panic: {i}");
                    }
                    i
                })
            } else {
                pool.submit_blocking(move || {
                    if i % 4 == 1 {
                        panic!("expected panic: {i}");
                    }
                    i
                })
            }
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let i = i as u32;
        if i % 4 <= 1 {
            assert_eq!(message(h.await), format!("expected panic: {i}"));
        } else {
            assert_eq!(h.await, Ok(i));
        }
    }
    still_works(&pool).await;
    pool.stop_wait().await;
});

// A cancelled blocking closure that then panics: its handle stays Cancelled,
// the panic is contained, and the worker goes on.
rt_test!(
    cancelled_blocking_closure_that_panics_is_contained,
    |b: Builder| async move {
        quiet_expected_panics();
        let pool = b.max_workers(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let h = {
            let (gauge, latch) = (gauge.clone(), latch.clone());
            pool.submit_blocking(move || -> u8 {
                let _alive = gauge.enter();
                latch.wait_blocking();
                panic!("expected panic: after cancel");
            })
        };
        gauge.until(|g| g.now() >= 1).await;
        h.cancel();
        assert_eq!(h.await, Err(JobError::Cancelled));
        latch.open();
        still_works(&pool).await;
        assert_eq!(gauge.now(), 0);
        pool.stop_wait().await;
    }
);

// A panic's payload, whatever its type, is dropped by the time the job's
// handle resolves `Panicked` (the pool keeps only its message).
rt_test!(a_panics_payload_is_dropped, |b: Builder| async move {
    quiet_expected_panics();
    struct Payload(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Payload {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let drops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let pool = b.max_workers(1).build();
    let payload = Payload(drops.clone());
    let h = pool.submit(async move { std::panic::panic_any(payload) });
    assert_eq!(message(h.await), "Box<dyn Any>");
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    still_works(&pool).await;
    pool.stop_wait().await;
});

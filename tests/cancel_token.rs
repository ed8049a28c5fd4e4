//! CancelToken: cancel, is_cancelled, cancelled().await and children; and
//! jobs that wait on their context's token or hand it to other work.

mod common;
use common::*;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::FusedFuture;
use futures_lite::future::{block_on, poll_once};
use workerpoolxt::{Builder, CancelToken, Job, JobError};

fn watchdog(name: &str) -> Watchdog {
    Watchdog::new(name.to_owned(), HANG_LIMIT)
}

// A new token is not cancelled; cancel() cancels it and every clone; a second cancel is harmless.
#[test]
fn cancel_reaches_every_clone() {
    let t = CancelToken::new();
    let clone = t.clone();
    assert!(!t.is_cancelled() && !clone.is_cancelled());
    assert!(t.same_as(&clone));
    assert!(!t.same_as(&CancelToken::new()));
    assert!(!CancelToken::default().is_cancelled());
    clone.cancel();
    assert!(t.is_cancelled() && clone.is_cancelled());
    t.cancel();
    assert!(t.is_cancelled());
}

// cancelled() stays pending until the token is cancelled (here from another thread), then resolves and is terminated.
#[test]
fn cancelled_resolves_once_cancelled() {
    let _dog = watchdog("cancelled_resolves_once_cancelled");
    let t = CancelToken::new();
    let mut fut = t.cancelled();
    assert!(
        block_on(poll_once(&mut fut)).is_none(),
        "resolved before the cancel"
    );
    assert!(!fut.is_terminated());
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let t2 = t.clone();
    let canceller = std::thread::spawn(move || {
        go_rx.recv().unwrap();
        t2.cancel();
    });
    go_tx.send(()).unwrap();
    block_on(&mut fut);
    assert!(fut.is_terminated());
    assert!(t.is_cancelled());
    canceller.join().unwrap();
    // On a cancelled token it resolves at once, however often asked.
    block_on(t.cancelled());
    block_on(t.cancelled());
}

// A child is cancelled with its parent, and a grandchild with its grandparent.
#[test]
fn children_are_cancelled_with_their_parent() {
    let parent = CancelToken::new();
    let child = parent.child();
    let grandchild = child.child();
    let mut waiting = grandchild.cancelled();
    assert!(block_on(poll_once(&mut waiting)).is_none());
    assert!(!child.is_cancelled() && !grandchild.is_cancelled());
    parent.cancel();
    assert!(child.is_cancelled());
    assert!(grandchild.is_cancelled());
    block_on(waiting);
    block_on(child.cancelled());
}

// Cancelling a child cancels neither its parent nor its siblings, but does cancel its own children.
#[test]
fn a_child_does_not_cancel_its_parent() {
    let parent = CancelToken::new();
    let child = parent.child();
    let sibling = parent.child();
    let grandchild = child.child();
    child.cancel();
    assert!(child.is_cancelled() && grandchild.is_cancelled());
    assert!(!parent.is_cancelled(), "a child cancelled its parent");
    assert!(!sibling.is_cancelled(), "a child cancelled its sibling");
    parent.cancel();
    assert!(sibling.is_cancelled());
}

// A child of a cancelled token starts cancelled.
#[test]
fn a_child_of_a_cancelled_token_starts_cancelled() {
    let parent = CancelToken::new();
    parent.cancel();
    let child = parent.child();
    assert!(child.is_cancelled());
    assert!(child.child().is_cancelled());
    block_on(child.cancelled());
}

// Many short-lived children of one long-lived parent are all still cancelled with it.
#[test]
fn many_children_all_follow_the_parent() {
    let parent = CancelToken::new();
    for _ in 0..1_000 {
        drop(parent.child()); // dropped children may be forgotten
    }
    let kept: Vec<CancelToken> = (0..100).map(|_| parent.child()).collect();
    for _ in 0..1_000 {
        drop(parent.child());
    }
    parent.cancel();
    assert!(kept.iter().all(CancelToken::is_cancelled));
}

// A cancel from one thread wakes waiters on every other thread.
#[test]
fn a_cancel_wakes_waiters_on_other_threads() {
    let _dog = watchdog("a_cancel_wakes_waiters_on_other_threads");
    let parent = CancelToken::new();
    let ready = Arc::new(std::sync::Barrier::new(9));
    let waiters: Vec<_> = (0..8)
        .map(|i| {
            let t = if i % 2 == 0 {
                parent.clone()
            } else {
                parent.child()
            };
            let ready = ready.clone();
            std::thread::spawn(move || {
                let mut fut = t.cancelled();
                assert!(block_on(poll_once(&mut fut)).is_none());
                ready.wait();
                block_on(fut);
            })
        })
        .collect();
    ready.wait();
    parent.cancel();
    for w in waiters {
        w.join().unwrap();
    }
}

// A blocking job waiting on ctx.cancelled() wakes when its handle is cancelled; the handle resolves Cancelled at once and the slot stays busy until the closure returns.
rt_test!(
    a_blocking_job_waiting_on_ctx_cancelled_wakes_on_cancel,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let (started, woke, release) = (Latch::new(), Latch::new(), Latch::new());
        let (s, w, r) = (started.clone(), woke.clone(), release.clone());
        let h = pool.submit_job(Job::blocking(move |ctx| {
            s.open();
            block_on(ctx.cancelled());
            w.open();
            r.wait_blocking();
            Ok::<_, ()>("ignored")
        }));
        started.wait().await;
        h.cancel();
        let mut h = h;
        assert_eq!((&mut h).await, Err(JobError::Cancelled));
        assert!(!release.is_open());
        woke.wait().await;
        assert_eq!(
            pool.running(),
            1,
            "the slot is held until the closure returns"
        );
        release.open();
        assert_eq!(pool.submit(async { "next" }).await, Ok("next"));
        pool.stop_wait().await;
    }
);

// ctx.token() handed to work outside the job is cancelled when the job times out, so that work can stop with it.
rt_test!(
    ctx_token_given_away_is_cancelled_with_the_job,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let (tx, rx) = async_channel::bounded::<CancelToken>(1);
        let job = Job::new(move |ctx| {
            let tx = tx.clone();
            async move {
                tx.send(ctx.token().clone()).await.unwrap();
                std::future::pending::<()>().await;
                Ok::<_, ()>(())
            }
        })
        .timeout(Duration::from_millis(20));
        let h = pool.submit_job(job);
        let token = rx.recv().await.unwrap();
        // Work elsewhere, outside the pool, watching the job's token.
        let stopped = Arc::new(AtomicBool::new(false));
        let st = stopped.clone();
        let t = token.clone();
        let elsewhere = async move {
            t.cancelled().await;
            st.store(true, Ordering::SeqCst);
        };
        let t0 = Instant::now();
        let (result, ()) = futures_lite::future::zip(h, elsewhere).await;
        assert_eq!(result, Err(JobError::TimedOut));
        assert!(stopped.load(Ordering::SeqCst) && token.is_cancelled());
        assert!(t0.elapsed() < Duration::from_secs(2));
        pool.stop_wait().await;
    }
);

// A blocking job that asks for its context's token only after it timed out
// gets a cancelled token (the token is made on first use; an interrupt before
// that must not be lost), and `ctx.is_cancelled()` says so too.
rt_test!(
    ctx_token_first_asked_for_after_the_timeout_is_cancelled,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let (resolved, release) = (Latch::new(), Latch::new());
        let (tx, rx) = async_channel::bounded::<(bool, bool, bool)>(1);
        let (res, rel) = (resolved.clone(), release.clone());
        let h = pool.submit_job(
            Job::blocking(move |ctx| {
                let before = ctx.is_cancelled();
                res.wait_blocking();
                let after = ctx.is_cancelled();
                let token = ctx.token().clone();
                tx.try_send((before, after, token.is_cancelled())).unwrap();
                rel.wait_blocking();
                Ok::<_, ()>(())
            })
            .timeout(Duration::from_millis(20)),
        );
        assert_eq!(h.await, Err(JobError::TimedOut));
        resolved.open();
        let (before, after, token) = rx.recv().await.unwrap();
        assert!(!before, "cancelled before the deadline");
        assert!(after, "ctx.is_cancelled() after the timeout");
        assert!(token, "a token made after the timeout starts cancelled");
        release.open();
        pool.stop_wait().await;
    }
);

// The pool's token wakes a waiting job on a worker that already ran other
// waiting jobs (the worker keeps one wait on the pool's token for all of
// them): each job is cancelled, none is missed.
rt_test!(
    pool_token_wakes_a_worker_that_ran_waiting_jobs_before,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        for i in 0..3 {
            // Each job waits (so its worker arms the wait on the pool's
            // token) until the test has seen it start.
            let (started, latch) = (Latch::new(), Latch::new());
            let (s, l) = (started.clone(), latch.clone());
            let h = pool.submit(async move {
                s.open();
                l.wait().await;
                i
            });
            started.wait().await;
            latch.open();
            assert_eq!(h.await, Ok(i));
        }
        let gauge = Gauge::new();
        let g = gauge.clone();
        let h = pool.submit(async move {
            let _alive = g.enter();
            std::future::pending::<()>().await;
        });
        gauge.until(|g| g.now() == 1).await;
        pool.cancel_token().cancel();
        assert_eq!(h.await, Err(JobError::Cancelled));
        assert_eq!(gauge.now(), 0);
        pool.stop_wait().await;
    }
);

// A job whose own token is a child of the pool's token is cancelled with the pool's token; cancelling that child spares the pool's other jobs.
rt_test!(
    a_child_of_the_pool_token_follows_the_pool,
    |b: Builder| async move {
        let pool = b.max_workers(4).build();
        let gauge = Gauge::new();
        let latch = Latch::new();
        let held = |token: CancelToken| {
            let (g, l) = (gauge.clone(), latch.clone());
            Job::new(move |_ctx| {
                let (g, l) = (g.clone(), l.clone());
                async move {
                    let _alive = g.enter();
                    l.wait().await;
                    Ok::<_, ()>("done")
                }
            })
            .cancel_token(token)
        };
        let child_a = pool.cancel_token().child();
        let a = pool.submit_job(held(child_a.clone()));
        let other = pool.submit_job(held(pool.cancel_token().child()));
        gauge.until(|g| g.now() == 2).await;
        child_a.cancel();
        assert_eq!(a.await, Err(JobError::Cancelled));
        assert!(!pool.cancel_token().is_cancelled());
        assert_eq!(gauge.now(), 1);
        pool.cancel_token().cancel();
        assert_eq!(other.await, Err(JobError::Cancelled));
        assert_eq!(gauge.now(), 0);
        pool.stop_wait().await;
    }
);

// cancelled() wakes the waker of its latest poll: polled again with the same
// waker it only looks at the token; polled with a new one it moves its wait
// there (the old waker is not the one woken).
#[test]
fn cancelled_wakes_the_waker_of_its_latest_poll() {
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Wake, Waker};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let counter = || {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    };
    for move_to_new_waker in [false, true] {
        let t = CancelToken::new();
        let mut fut = t.cancelled();
        let (old, old_w) = counter();
        let (new, new_w) = counter();
        let mut poll = |w: &Waker| Pin::new(&mut fut).poll(&mut Context::from_waker(w));
        assert!(poll(&old_w).is_pending());
        assert!(poll(&old_w).is_pending());
        if move_to_new_waker {
            assert!(poll(&new_w).is_pending());
        }
        t.cancel();
        let (woken, idle) = if move_to_new_waker {
            (&new, &old)
        } else {
            (&old, &new)
        };
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "the latest waker woken");
        assert_eq!(idle.0.load(Ordering::SeqCst), 0);
        assert!(poll(&old_w).is_ready());
    }
}

// Debug names the state: whether the token is cancelled.
#[test]
fn debug_shows_whether_the_token_is_cancelled() {
    let t = CancelToken::new();
    assert_eq!(format!("{t:?}"), "CancelToken { cancelled: false }");
    let waiting = t.cancelled();
    assert_eq!(format!("{waiting:?}"), "Cancelled { .. }");
    t.cancel();
    assert_eq!(format!("{t:?}"), "CancelToken { cancelled: true }");
}

/// Bytes allocated and not yet freed by the current thread (see `LiveBytes`).
mod live_bytes {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// The system allocator, counting per thread the bytes each thread
    /// allocated less those it freed. Only a test that allocates and frees
    /// on its own thread reads it, so other tests running beside it do not
    /// disturb the figure.
    pub struct LiveBytes;

    thread_local! {
        static NET: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        // `try_with`: the allocator is also called while thread-locals are torn down.
        let _ = NET.try_with(|c| c.set(c.get() + n));
    }

    // SAFETY: forwards every call to `System` unchanged; the counter is a
    // const-initialised thread-local, which never allocates.
    unsafe impl GlobalAlloc for LiveBytes {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            add(-(layout.size() as isize));
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            add(new_size as isize - layout.size() as isize);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOC: LiveBytes = LiveBytes;

    /// Bytes this thread holds now.
    pub fn now() -> isize {
        NET.with(Cell::get)
    }
}

// A long-lived parent with many short-lived children stays small: the
// children that are gone are forgotten, their memory given back.
#[test]
fn a_parent_forgets_children_that_are_gone() {
    let parent = CancelToken::new();
    let kept: Vec<CancelToken> = (0..20).map(|_| parent.child()).collect();
    let before = live_bytes::now();
    for _ in 0..10_000 {
        drop(parent.child());
    }
    let grown = live_bytes::now() - before;
    // What 10,000 remembered children would hold is far above this (at
    // least a pointer and a token's allocation each, about a megabyte);
    // forgetting them keeps the parent's list within a few dozen entries.
    assert!(
        grown < 16 * 1024,
        "10,000 dropped children still hold {grown} bytes"
    );
    parent.cancel();
    assert!(kept.iter().all(CancelToken::is_cancelled));
}

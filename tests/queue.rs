//! The bounded queue (`Builder::queue_capacity`): how full it gets, what the
//! three kinds of submit do when it is full or the pool has stopped, and the
//! cases of the Go library's tests ("pond") on a bounded pool.

mod common;
use common::*;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use futures::FutureExt;
use workerpoolxt::{Builder, CancelToken, Job, JobError, Pool, TrySubmitError};

/// A waker that raises a flag when woken.
fn flag_waker() -> (Arc<AtomicBool>, Waker) {
    struct Flag(Arc<AtomicBool>);
    impl futures::task::ArcWake for Flag {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.store(true, Ordering::SeqCst);
        }
    }
    let flag = Arc::new(AtomicBool::new(false));
    (flag.clone(), futures::task::waker(Arc::new(Flag(flag))))
}

// waiting() reaches the capacity exactly and never exceeds it, even with four
// threads racing try_submit into the last places.
rt_test!(
    waiting_reaches_capacity_and_never_exceeds_it,
    |b: Builder| async move {
        const CAP: usize = 5;
        let pool = b.max_workers(2).queue_capacity(CAP).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let running: Vec<_> = (0..2)
            .map(|_| pool.submit(blocker(&gauge, &latch)))
            .collect();
        gauge.until(|g| g.now() == 2).await;

        // Fill one by one: waiting() climbs to CAP and stays there.
        let mut queued = Vec::new();
        for i in 0..CAP + 3 {
            match pool.try_submit(blocker(&gauge, &latch)) {
                Ok(h) => queued.push(h),
                Err(TrySubmitError::Full(_)) => assert!(i >= CAP, "refused at {i} < capacity"),
                Err(e) => panic!("unexpected {e:?}"),
            }
            assert!(
                pool.waiting() <= CAP,
                "waiting {} > capacity",
                pool.waiting()
            );
        }
        assert_eq!(queued.len(), CAP);
        assert_eq!(pool.waiting(), CAP);

        // Free two places and let four threads race for them: exactly two win.
        queued.pop().unwrap().cancel();
        queued.pop().unwrap().cancel();
        assert_eq!(pool.waiting(), CAP - 2);
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (pool, accepted, gauge, latch) =
                    (pool.clone(), accepted.clone(), gauge.clone(), latch.clone());
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        if let Ok(h) = pool.try_submit(blocker(&gauge, &latch)) {
                            accepted.lock().unwrap().push(h);
                        }
                        assert!(pool.waiting() <= CAP);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            accepted.lock().unwrap().len(),
            2,
            "exactly the two free places are taken"
        );
        assert_eq!(pool.waiting(), CAP);
        assert_eq!(gauge.entered(), 2, "nothing queued has started");

        latch.open();
        let accepted = std::mem::take(&mut *accepted.lock().unwrap());
        for h in running.into_iter().chain(queued).chain(accepted) {
            h.await.unwrap();
        }
        assert_eq!(gauge.entered(), 2 + CAP);
        pool.stop_wait().await;
    }
);

// A plain submit into a full queue resolves QueueFull at once; its future is
// dropped without ever being polled.
rt_test!(
    plain_submit_into_full_queue_resolves_queue_full_unpolled,
    |b: Builder| async move {
        let pool = b.max_workers(1).queue_capacity(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let first = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;
        let second = pool.submit(blocker(&gauge, &latch));
        assert_eq!(pool.waiting(), 1);

        let (fut, counts) = counted(async { 3 });
        let mut refused = pool.submit(fut);
        assert_eq!(
            (counts.polls(), counts.drops()),
            (0, 1),
            "dropped unpolled, at once"
        );
        assert!(refused.is_finished());
        assert_eq!(refused.try_take(), Some(Err(JobError::QueueFull)));
        assert_eq!(pool.waiting(), 1, "the queue is unaffected");
        assert_eq!(pool.metrics().rejected, 1);

        // The blocking and Job flavours too.
        let refused_blocking = pool.submit_blocking(|| 4);
        assert_eq!(refused_blocking.await, Err(JobError::QueueFull));
        let refused_job = pool.submit_job(Job::new(|_| async { Ok::<_, ()>(5) }));
        assert_eq!(refused_job.await, Err(JobError::QueueFull));
        assert_eq!(pool.metrics().rejected, 3);

        latch.open();
        first.await.unwrap();
        second.await.unwrap();
        pool.stop_wait().await;
    }
);

// try_submit, try_submit_blocking and try_submit_job give the job back,
// unpolled and usable, when the queue is full.
rt_test!(
    try_submit_gives_job_back_when_full,
    |b: Builder| async move {
        let pool = b.max_workers(1).queue_capacity(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let first = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;
        let second = pool.try_submit(blocker(&gauge, &latch)).expect("one place");

        let (fut, counts) = counted(async { 1 });
        let fut = match pool.try_submit(fut) {
            Err(TrySubmitError::Full(f)) => f,
            other => panic!("expected Full, got {:?}", other.map(|_| ())),
        };
        assert_eq!(
            (counts.polls(), counts.drops()),
            (0, 0),
            "given back untouched"
        );
        assert_eq!(fut.await, 1);

        let f = match pool.try_submit_blocking(|| 2) {
            Err(TrySubmitError::Full(f)) => f,
            other => panic!("expected Full, got {:?}", other.map(|_| ())),
        };
        assert_eq!(f(), 2);

        let job = Job::new(|_| async { Ok::<_, ()>(3) }).name("given back");
        let job = match pool.try_submit_job(job) {
            Err(e) => {
                assert!(e.is_full());
                e.into_inner()
            }
            Ok(_) => panic!("expected Full"),
        };
        assert_eq!(job.get_name(), Some("given back"));
        assert_eq!(pool.metrics().rejected, 3);
        assert_eq!(pool.waiting(), 1);

        // Once there is room the very same job can go in.
        latch.open();
        first.await.unwrap();
        second.await.unwrap();
        let h = pool
            .try_submit_job(job)
            .map_err(|e| e.to_string())
            .expect("room now");
        assert_eq!(h.outcome().await.name(), Some("given back"));
        pool.stop_wait().await;
    }
);

// The try_submit family gives the job back on a stopped pool too, usable.
rt_test!(
    try_submit_gives_job_back_when_stopped,
    |b: Builder| async move {
        let pool = b.max_workers(1).queue_capacity(4).build();
        pool.stop().await;

        match pool.try_submit(async { 1 }) {
            Err(TrySubmitError::Stopped(f)) => assert_eq!(f.await, 1),
            other => panic!("expected Stopped, got {:?}", other.map(|_| ())),
        }
        match pool.try_submit_blocking(|| 2) {
            Err(TrySubmitError::Stopped(f)) => assert_eq!(f(), 2),
            other => panic!("expected Stopped, got {:?}", other.map(|_| ())),
        }
        let job = Job::new(|_| async { Ok::<_, ()>(3) }).name("kept");
        let job = match pool.try_submit_job(job) {
            Err(TrySubmitError::Stopped(j)) => j,
            other => panic!("expected Stopped, got {:?}", other.map(|_| ())),
        };
        // Usable elsewhere.
        let other = Pool::new(1);
        assert_eq!(other.submit_job(job).await, Ok(3));
        other.stop_wait().await;

        let m = pool.metrics();
        assert_eq!((m.submitted, m.stopped, m.rejected), (3, 3, 0));
    }
);

// submit_wait waits while the queue is full and resolves once its job is
// queued (not before room appears, not only when the job runs).
rt_test!(
    submit_wait_waits_for_room_and_resolves_once_queued,
    |b: Builder| async move {
        let pool = b.max_workers(1).queue_capacity(1).build();
        let (gauge, first_latch, second_latch) = (Gauge::new(), Latch::new(), Latch::new());
        let first = pool.submit(blocker(&gauge, &first_latch));
        gauge.until(|g| g.now() == 1).await;
        let second = pool.submit(blocker(&gauge, &second_latch));
        assert_eq!(pool.waiting(), 1);

        let mut wait = pool.submit_wait(async { 7 });
        assert!((&mut wait).now_or_never().is_none(), "no room yet");
        assert!((&mut wait).now_or_never().is_none(), "still no room");

        // The first job ends, the second starts: one place frees up.
        first_latch.open();
        let third = within(Duration::from_secs(2), wait)
            .await
            .expect("submit_wait resolves once there is room")
            .expect("the pool is open");
        // The place freed when the second job left the queue; its body
        // starts right after.
        within(Duration::from_secs(2), gauge.until(|g| g.entered() == 2))
            .await
            .expect("the second job took the worker");
        assert_eq!(pool.waiting(), 1, "the third job is queued, not running");
        assert!(!third.is_finished());

        second_latch.open();
        second.await.unwrap();
        assert_eq!(third.await, Ok(7));
        first.await.unwrap();
        pool.stop_wait().await;
    }
);

// Dropping a pending SubmitWait drops its future unpolled, changes nothing in
// the pool, and passes a room notification it got on to the next waiter.
rt_test!(
    dropping_pending_submit_wait_loses_only_its_place,
    |b: Builder| async move {
        let pool = b.max_workers(1).queue_capacity(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let first = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;
        let queued = pool.submit(blocker(&gauge, &latch));
        let before = pool.metrics();

        let (fut, counts) = counted(async { 1 });
        let mut dropped = pool.submit_wait(fut);
        let mut next = pool.submit_wait(async { 2 });
        let (dropped_woken, dropped_waker) = flag_waker();
        let (next_woken, next_waker) = flag_waker();
        let pending =
            |w: &Waker, f: &mut dyn FnMut(&mut Context<'_>) -> bool| f(&mut Context::from_waker(w));
        assert!(pending(&dropped_waker, &mut |cx| Pin::new(&mut dropped)
            .poll(cx)
            .is_pending()));
        assert!(pending(&next_waker, &mut |cx| Pin::new(&mut next)
            .poll(cx)
            .is_pending()));

        // Room for one: the first waiter in line is told; it leaves unpolled.
        queued.cancel();
        assert!(
            dropped_woken.load(Ordering::SeqCst),
            "the first in line is told"
        );
        drop(dropped);
        assert_eq!(
            (counts.polls(), counts.drops()),
            (0, 1),
            "dropped once, never polled"
        );
        assert!(
            next_woken.load(Ordering::SeqCst),
            "the notification the dropped waiter got went on to the next one"
        );

        let next = within(Duration::from_secs(2), next)
            .await
            .expect("the room went on to the next waiter")
            .expect("open pool");
        let m = pool.metrics();
        assert_eq!(
            m.submitted,
            before.submitted + 1,
            "the dropped wait was never submitted"
        );
        assert_eq!(pool.waiting(), 1);

        latch.open();
        first.await.unwrap();
        assert_eq!(next.await, Ok(2));
        assert_eq!(pool.submit(async { 3 }).await, Ok(3), "the pool goes on");
        pool.stop_wait().await;
        let m = pool.metrics();
        assert_eq!(m.submitted, m.succeeded + m.cancelled);
    }
);

// A submit_wait still waiting when the pool stops gives its job back.
rt_test!(
    pending_submit_wait_gives_job_back_on_stop,
    |b: Builder| async move {
        let pool = b.max_workers(1).queue_capacity(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let first = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;
        let queued = pool.submit(blocker(&gauge, &latch));

        let (fut, counts) = counted(async { 9 });
        let mut wait = pool.submit_wait(fut);
        assert!((&mut wait).now_or_never().is_none());
        let stop = pool.stop();
        let back = within(Duration::from_secs(2), wait)
            .await
            .expect("a stop wakes the waiters")
            .expect_err("a stopped pool takes nothing")
            .into_inner();
        assert_eq!(counts.polls(), 0);
        assert_eq!(back.await, 9);

        latch.open();
        stop.await;
        assert_eq!(first.await, Ok(()));
        assert_eq!(queued.await, Err(JobError::Stopped));
    }
);

// ...and so does one waiting when the pool begins a stop_wait, which keeps
// the queued jobs (no place frees up, and no job leaves the queue to wake
// it): the stop itself wakes the waiters.
rt_test!(
    pending_submit_wait_gives_job_back_on_stop_wait,
    |b: Builder| async move {
        let pool = b.max_workers(1).queue_capacity(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let first = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;
        let queued = pool.submit(async { 2u8 });
        let mut wait = pool.submit_wait(async { 9u8 });
        // Polled with a waker of its own, so the stop's wake-up shows.
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        let waker = std::task::Waker::from(flag.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        // Twice: the first poll listens, the second waits.
        for _ in 0..2 {
            assert!(std::pin::Pin::new(&mut wait).poll(&mut cx).is_pending());
        }
        let stop = pool.stop_wait();
        assert!(
            flag.0.load(std::sync::atomic::Ordering::SeqCst),
            "the stop did not wake the waiting submit"
        );
        let back = within(Duration::from_secs(2), wait)
            .await
            .expect("a stop_wait wakes the waiters")
            .expect_err("a stopping pool takes nothing")
            .into_inner();
        assert_eq!(back.await, 9);
        assert_eq!(pool.waiting(), 1, "the queued job stays queued");
        latch.open();
        stop.await;
        assert_eq!(first.await, Ok(()));
        assert_eq!(queued.await, Ok(2));
    }
);

// Go's pond: one worker, a queue of 10, 50 jobs through submit_wait: all run,
// in order, and the queue never holds more than 10.
rt_test!(
    pond_one_worker_queue_ten_fifty_jobs_in_order,
    |b: Builder| async move {
        let pool = b.max_workers(1).queue_capacity(10).build();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        let mut most_waiting = 0;
        for i in 0..50usize {
            let order = order.clone();
            let h = pool
                .submit_wait(async move {
                    sleep(Duration::from_micros(200)).await;
                    order.lock().unwrap().push(i);
                    i
                })
                .await
                .expect("open pool");
            most_waiting = most_waiting.max(pool.waiting());
            assert!(pool.waiting() <= 10);
            handles.push(h);
        }
        assert!(
            most_waiting > 1,
            "the queue filled up (most waiting: {most_waiting})"
        );
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok(i));
        }
        assert_eq!(*order.lock().unwrap(), (0..50).collect::<Vec<_>>());
        pool.stop_wait().await;
        let m = pool.metrics();
        assert_eq!((m.submitted, m.succeeded, m.rejected), (50, 50, 0));
    }
);

// Go's pond: ten workers busy and ten jobs queued: the next try_submit gives
// its job back and counts one rejection.
rt_test!(
    pond_full_pool_rejects_the_next_try_submit,
    |b: Builder| async move {
        let pool = b.max_workers(10).queue_capacity(10).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let mut handles = Vec::new();
        for _ in 0..10 {
            handles.push(pool.try_submit(blocker(&gauge, &latch)).expect("room"));
        }
        gauge.until(|g| g.now() == 10).await;
        for _ in 0..10 {
            handles.push(pool.try_submit(blocker(&gauge, &latch)).expect("room"));
        }
        assert_eq!((pool.running(), pool.waiting()), (10, 10));

        let back = pool.try_submit(async { 11 });
        let m = pool.metrics();
        assert_eq!(m.rejected, 1);
        assert_eq!(m.submitted, 21);
        match back {
            Err(TrySubmitError::Full(f)) => assert_eq!(f.await, 11),
            other => panic!("expected Full, got {:?}", other.map(|_| ())),
        }

        latch.open();
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(gauge.entered(), 20);
        assert_eq!(gauge.max(), 10);
        pool.stop_wait().await;
    }
);

// A cancelled pool token with queued jobs: stop_wait does not hang and every
// handle resolves Cancelled, without the queued bodies ever running.
rt_test!(
    cancelled_pool_token_with_queued_jobs_does_not_hang_stop_wait,
    |b: Builder| async move {
        let token = CancelToken::new();
        let pool = b
            .max_workers(2)
            .queue_capacity(32)
            .cancel_token(token.clone())
            .build();
        let gauge = Gauge::new();
        let started = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..2 {
            let g = gauge.clone();
            handles.push(pool.submit(async move {
                let _in = g.enter();
                std::future::pending::<()>().await;
            }));
        }
        gauge.until(|g| g.now() == 2).await;
        for _ in 0..30 {
            let started = started.clone();
            handles.push(pool.submit(async move {
                started.fetch_add(1, Ordering::SeqCst);
            }));
        }
        assert_eq!(pool.waiting(), 30);

        token.cancel();
        within(Duration::from_secs(5), pool.stop_wait())
            .await
            .expect("stop_wait with a cancelled token returns");
        for h in handles {
            assert_eq!(h.await, Err(JobError::Cancelled));
        }
        assert_eq!(started.load(Ordering::SeqCst), 0, "no queued body ran");
        assert_eq!(gauge.now(), 0);
        let m = pool.metrics();
        assert_eq!(
            (m.submitted, m.cancelled, m.waiting, m.running),
            (32, 32, 0, 0)
        );
    }
);

// A job that try_submits into its own pool's full queue gets Full back at
// once: no deadlock.
rt_test!(
    try_submit_from_inside_a_job_into_full_queue_returns_full,
    |b: Builder| async move {
        let pool = b.max_workers(1).queue_capacity(1).build();
        let (go, latch) = (Latch::new(), Latch::new());
        let gauge = Gauge::new();
        let inner_pool = pool.clone();
        let go2 = go.clone();
        let started = Latch::new();
        let started2 = started.clone();
        let outer = pool.submit(async move {
            started2.open();
            go2.wait().await;
            match inner_pool.try_submit(async { "ran inline" }) {
                Err(TrySubmitError::Full(f)) => f.await,
                Ok(_) => "queued",
                Err(TrySubmitError::Stopped(_)) => "stopped",
            }
        });
        // (Not `running() == 1`: a worker counts itself running just before
        // it takes the job out of the queue.)
        started.wait().await;
        let queued = pool.submit(blocker(&gauge, &latch));
        assert_eq!(pool.waiting(), 1, "the queue is full");
        go.open();
        let r = within(Duration::from_secs(2), outer)
            .await
            .expect("no deadlock");
        assert_eq!(r, Ok("ran inline"));
        latch.open();
        queued.await.unwrap();
        pool.stop_wait().await;
    }
);

// Submitters racing workers never see a spurious "full" (nor panic) in a
// queue far from full: reserving a place must not compute `waiting` from a
// stale count of submissions. A stress test: it needs a submitter preempted
// between two loads in `Shared::reserve_place`, so it catches that race only
// now and then in its default 1 s; `RACE_MS=20000` makes it likely. (One
// runtime: the race is in the submitters' bookkeeping, not in the executor.)
#[test]
fn racing_submitters_never_see_a_spurious_full_queue() {
    let _dog = Watchdog::new("racing_submitters".into(), HANG_LIMIT);
    // The queue is kept nearly empty and can hold a million: it is never full.
    let pool = Pool::builder()
        .max_workers(2)
        .queue_capacity(1 << 20)
        .build();
    let budget = Duration::from_millis(
        std::env::var("RACE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    );
    let start = Instant::now();
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < budget {
                    if pool.waiting() > 16 {
                        std::hint::spin_loop();
                        continue;
                    }
                    if let Err(e) = pool.try_submit(async {}) {
                        return Err(format!(
                            "{e} after {n} submissions ({} waiting)",
                            pool.waiting()
                        ));
                    }
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in threads {
        match t.join() {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => panic!("spurious refusal: {e}"),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    assert!(total > 0);
}

//! `ResultHandle::cancel`: queued jobs never start, running futures are
//! dropped before the handle resolves, running closures resolve at once and
//! keep their slot until they return.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use workerpoolxt::{Builder, Job, JobError, Pool, ResultHandle};

const PROMPT: Duration = Duration::from_secs(2);

// A queued job that is cancelled resolves Cancelled at once, is never polled,
// and its future is dropped.
rt_test!(
    cancel_queued_job_resolves_at_once_and_never_polls_it,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let latch = Latch::new();
        let alive = Gauge::new();
        let blocker = {
            let (latch, alive) = (latch.clone(), alive.clone());
            pool.submit(async move {
                let _alive = alive.enter();
                latch.wait().await
            })
        };
        alive.until(|g| g.now() >= 1).await;
        let (fut, counts) = counted(async { 1 });
        let mut queued = pool.submit(fut);
        assert_eq!(pool.waiting(), 1);
        queued.cancel();
        // At once: no worker needed (the only one is blocked).
        assert_eq!((&mut queued).now_or_never(), Some(Err(JobError::Cancelled)));
        assert_eq!(pool.waiting(), 0);

        latch.open();
        assert_eq!(blocker.await, Ok(()));
        // The worker has moved past the cancelled job.
        assert_eq!(pool.submit(async { 2 }).await, Ok(2));
        assert_eq!(counts.polls(), 0, "a cancelled queued job was polled");
        assert_eq!(
            counts.drops(),
            1,
            "a cancelled queued job's future was not dropped"
        );
        assert_eq!(pool.metrics().cancelled, 1);
        pool.stop_wait().await;
    },
    async_std
);

/// Records, when dropped, how many jobs the pool had counted as cancelled
/// (a handle resolving `Cancelled` is counted as it resolves).
struct CancelledAtDrop {
    pool: Pool,
    seen: Arc<AtomicUsize>,
}

impl Drop for CancelledAtDrop {
    fn drop(&mut self) {
        self.seen
            .store(self.pool.metrics().cancelled as usize + 1, Ordering::SeqCst);
    }
}

// A running future that is cancelled is dropped before its handle resolves.
rt_test!(
    cancel_running_async_job_drops_it_before_resolving,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let alive = Gauge::new();
        let seen_at_drop = Arc::new(AtomicUsize::new(0));
        let (fut, counts) = {
            let alive = alive.clone();
            let probe = CancelledAtDrop {
                pool: pool.clone(),
                seen: seen_at_drop.clone(),
            };
            counted(async move {
                let _probe = probe;
                let _alive = alive.enter();
                std::future::pending::<()>().await;
            })
        };
        let h = pool.submit(fut);
        alive.until(|g| g.now() >= 1).await;
        h.cancel();
        assert_eq!(within(PROMPT, h).await, Some(Err(JobError::Cancelled)));
        // Observed as the handle resolves: the future is gone already.
        assert_eq!(
            counts.drops(),
            1,
            "handle resolved before the future was dropped"
        );
        assert_eq!(
            seen_at_drop.load(Ordering::SeqCst),
            1,
            "the job was counted cancelled before its future was dropped"
        );
        assert_eq!(alive.now(), 0);
        assert_eq!(counts.completions(), 0);
        assert!(counts.polls() >= 1);
        // The slot is free.
        assert_eq!(pool.submit(async { 3 }).await, Ok(3));
        pool.stop_wait().await;
    }
);

// A cancel of one of several running jobs ends that job only: the other
// running jobs go on, and end with their own results. (That the cancel wakes
// only the cancelled job's worker is `src/cell.rs`'s
// `a_cancel_wakes_only_the_worker_waiting_in_its_job`.)
rt_test!(
    cancel_of_one_running_job_leaves_the_others_running,
    |b: Builder| async move {
        let pool = b.max_workers(3).build();
        let alive = Gauge::new();
        let latch = Latch::new();
        let job = |i: u32| {
            let body = blocker(&alive, &latch);
            pool.submit(async move {
                body.await;
                i
            })
        };
        let (first, second, third) = (job(1), job(2), job(3));
        alive.until(|g| g.now() >= 3).await;
        second.cancel();
        assert_eq!(within(PROMPT, second).await, Some(Err(JobError::Cancelled)));
        assert_eq!(alive.now(), 2, "only the cancelled job ended");
        assert!(!first.is_finished() && !third.is_finished());
        latch.open();
        assert_eq!(within(PROMPT, first).await, Some(Ok(1)));
        assert_eq!(within(PROMPT, third).await, Some(Ok(3)));
        assert_eq!(pool.metrics().cancelled, 1);
        pool.stop_wait().await;
    }
);

// A running blocking closure that is cancelled: its handle resolves promptly
// while it still runs, and the next job starts only after it returned.
rt_test!(
    cancel_running_blocking_job_resolves_promptly_and_keeps_the_slot,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let latch = Latch::new();
        let alive = Gauge::new();
        let returned = Arc::new(AtomicBool::new(false));
        let h = {
            let (latch, alive, returned) = (latch.clone(), alive.clone(), returned.clone());
            pool.submit_blocking(move || {
                let _alive = alive.enter();
                latch.wait_blocking();
                returned.store(true, Ordering::SeqCst);
                7
            })
        };
        alive.until(|g| g.now() >= 1).await;
        let next_alive = Gauge::new();
        let next = {
            let (next_alive, returned) = (next_alive.clone(), returned.clone());
            pool.submit(async move {
                let _alive = next_alive.enter();
                returned.load(Ordering::SeqCst)
            })
        };
        h.cancel();
        assert_eq!(within(PROMPT, h).await, Some(Err(JobError::Cancelled)));
        assert_eq!(alive.now(), 1, "the closure still runs");
        assert!(!returned.load(Ordering::SeqCst));

        yields(100).await;
        assert_eq!(
            next_alive.entered(),
            0,
            "next job started while the cancelled closure ran"
        );
        assert_eq!(pool.running(), 1);
        assert_eq!(pool.waiting(), 1);

        latch.open();
        assert_eq!(
            next.await,
            Ok(true),
            "next job started before the closure returned"
        );
        assert_eq!(alive.now(), 0);
        pool.stop_wait().await;
    }
);

// A cancelled blocking `Job` sees its token cancelled, so it can stop early.
rt_test!(
    cancel_running_blocking_job_cancels_its_token,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let alive = Gauge::new();
        let saw_cancel = Arc::new(AtomicBool::new(false));
        let h = {
            let (alive, saw_cancel) = (alive.clone(), saw_cancel.clone());
            pool.submit_job(Job::blocking(move |ctx| {
                let _alive = alive.enter();
                // Bounded, so that a token that is never cancelled fails the
                // test instead of hanging it.
                let give_up = std::time::Instant::now() + Duration::from_secs(5);
                while !ctx.is_cancelled() && std::time::Instant::now() < give_up {
                    std::thread::yield_now();
                }
                saw_cancel.store(ctx.is_cancelled(), Ordering::SeqCst);
                Ok::<_, ()>(())
            }))
        };
        alive.until(|g| g.now() >= 1).await;
        h.cancel();
        assert_eq!(within(PROMPT, h).await, Some(Err(JobError::Cancelled)));
        alive.until(|g| g.now() == 0).await;
        assert!(saw_cancel.load(Ordering::SeqCst));
        pool.stop_wait().await;
    }
);

// Cancelling a finished job changes nothing: the value stays.
rt_test!(
    cancel_after_completion_keeps_the_value,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let mut h = pool.submit(async { 5 });
        // FIFO on one worker: once the next job ran, the first has finished.
        assert_eq!(pool.submit(async {}).await, Ok(()));
        assert!(h.is_finished());
        h.cancel();
        assert!(h.is_finished());
        assert_eq!((&mut h).await, Ok(5));
        h.cancel();
        let m = pool.metrics();
        assert_eq!((m.succeeded, m.cancelled), (2, 0));
        pool.stop_wait().await;
    }
);

// Cancelling twice (queued or running) is harmless: one Cancelled each.
rt_test!(cancel_twice_is_harmless, |b: Builder| async move {
    let pool = b.max_workers(1).build();
    let alive = Gauge::new();
    let running = {
        let alive = alive.clone();
        pool.submit(async move {
            let _alive = alive.enter();
            std::future::pending::<()>().await;
        })
    };
    let queued = pool.submit(async { 1 });
    alive.until(|g| g.now() >= 1).await;
    queued.cancel();
    queued.cancel();
    running.cancel();
    running.cancel();
    assert_eq!(within(PROMPT, queued).await, Some(Err(JobError::Cancelled)));
    assert_eq!(
        within(PROMPT, running).await,
        Some(Err(JobError::Cancelled))
    );
    assert_eq!(pool.submit(async { 2 }).await, Ok(2));
    let m = pool.metrics();
    assert_eq!((m.cancelled, m.succeeded), (2, 1));
    assert_eq!(pool.waiting(), 0);
    pool.stop_wait().await;
});

// Cancelling a queued job in the middle keeps the FIFO order of the rest.
rt_test!(
    cancel_in_the_middle_keeps_fifo_order,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let latch = Latch::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let blocker = {
            let latch = latch.clone();
            pool.submit(async move { latch.wait().await })
        };
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let order = order.clone();
                pool.submit(async move { order.lock().unwrap().push(i) })
            })
            .collect();
        handles[7].cancel();
        handles[13].cancel();
        latch.open();
        blocker.await.unwrap();
        for (i, h) in handles.into_iter().enumerate() {
            let expected = if i == 7 || i == 13 {
                Err(JobError::Cancelled)
            } else {
                Ok(())
            };
            assert_eq!(h.await, expected, "job {i}");
        }
        let want: Vec<i32> = (0..20).filter(|&i| i != 7 && i != 13).collect();
        assert_eq!(*order.lock().unwrap(), want);
        pool.stop_wait().await;
    }
);

/// A spawner whose executor gives every poll of a worker a new waker and
/// honours only the newest one (the `Future` contract asks a future to wake
/// the waker of its latest poll; earlier ones may do nothing). Each worker
/// runs on its own thread; `returned` counts the polls that returned
/// `Pending`.
fn new_waker_every_poll(returned: Arc<AtomicUsize>) -> impl Fn(workerpoolxt::BoxFuture<()>) {
    use std::task::{Context, Wake, Waker};

    struct OnePoll {
        woken: AtomicBool,
        thread: std::thread::Thread,
    }
    impl Wake for OnePoll {
        fn wake(self: Arc<Self>) {
            self.woken.store(true, Ordering::SeqCst);
            self.thread.unpark();
        }
    }

    move |mut worker| {
        let returned = returned.clone();
        std::thread::spawn(move || loop {
            let this_poll = Arc::new(OnePoll {
                woken: AtomicBool::new(false),
                thread: std::thread::current(),
            });
            let waker = Waker::from(this_poll.clone());
            if worker
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
            {
                return;
            }
            returned.fetch_add(1, Ordering::SeqCst);
            while !this_poll.woken.load(Ordering::SeqCst) {
                std::thread::park();
            }
        });
    }
}

// A cancel wakes the job through the waker of its latest poll: on an
// executor that hands out a new waker per poll and ignores the old ones, a
// job that was polled twice is still cancelled at once.
#[test]
fn cancel_wakes_the_latest_poll_of_a_running_job() {
    interrupt_wakes_the_latest_poll("cancel_wakes_the_latest_poll_of_a_running_job", |_, h| {
        h.cancel()
    });
}

// The pool's token too: the worker keeps one wait on the token for all its
// jobs, and must move it to each new waker.
#[test]
fn pool_token_wakes_the_latest_poll_of_a_running_job() {
    interrupt_wakes_the_latest_poll(
        "pool_token_wakes_the_latest_poll_of_a_running_job",
        |pool, _| pool.cancel_token().cancel(),
    );
}

/// Runs a job that the worker polls twice (each poll with a new waker, old
/// ones waking nothing), then `interrupt`s it: it must end `Cancelled` at once.
fn interrupt_wakes_the_latest_poll(name: &str, interrupt: impl FnOnce(&Pool, &ResultHandle<()>)) {
    let _dog = Watchdog::new(name.into(), HANG_LIMIT);
    let returned = Arc::new(AtomicUsize::new(0));
    let pool = Pool::builder()
        .max_workers(1)
        .spawner(new_waker_every_poll(returned.clone()))
        .build();
    // The job reports how many worker polls had returned when it is polled.
    let (at_poll, polled) = std::sync::mpsc::channel::<usize>();
    let go_on = Latch::new();
    let (job_go_on, job_returned) = (go_on.clone(), returned.clone());
    let (fut, counts) = counted(async move {
        at_poll.send(job_returned.load(Ordering::SeqCst)).unwrap();
        job_go_on.wait().await;
        at_poll.send(job_returned.load(Ordering::SeqCst)).unwrap();
        std::future::pending::<()>().await;
    });
    let h = pool.submit(fut);
    let wait_returned_past = |n: usize| {
        let dog = std::time::Instant::now();
        while returned.load(Ordering::SeqCst) <= n {
            assert!(dog.elapsed() < PROMPT, "the worker's poll never returned");
            std::thread::yield_now();
        }
    };
    // First poll: the job waits on the latch, with the first poll's waker.
    wait_returned_past(polled.recv().unwrap());
    // Second poll (woken by the latch): the job waits for ever, with a new waker.
    go_on.open();
    wait_returned_past(polled.recv().unwrap());
    interrupt(&pool, &h);
    let got = futures_lite::future::block_on(within(PROMPT, h));
    assert_eq!(
        got,
        Some(Err(JobError::Cancelled)),
        "the interrupt woke a stale waker"
    );
    assert_eq!(counts.drops(), 1);
    futures_lite::future::block_on(pool.stop_wait());
}

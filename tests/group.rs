//! `Pool::group`: members submitted, awaited and cancelled together.
//! With `cancel_on_error`, the first error cancels every other member when
//! it happens (queued ones never start, async ones are dropped, blocking
//! ones told) and `wait` gives that error once every member let go of its
//! slot; without it, `wait` gives every outcome in submission order. A
//! member can submit more members through a clone; dropping a group does
//! nothing to its jobs; a member submitted after the group halted never
//! runs.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures_lite::future::poll_once;
use workerpoolxt::{Builder, Group, GroupWait, Job, JobError};

#[test]
fn a_group_is_clone_send_sync_and_debug_and_its_wait_is_unpin_and_fused() {
    fn group<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    fn wait<T: Send + Unpin + futures::future::FusedFuture + std::fmt::Debug>() {}
    group::<Group<u8, String>>();
    wait::<GroupWait<u8, String>>();
}

/// A member that bumps `ran` if it ever starts.
fn never_runs(ran: &Arc<AtomicUsize>) -> impl std::future::Future<Output = Result<u8, String>> {
    let ran = ran.clone();
    async move {
        ran.fetch_add(1, Ordering::SeqCst);
        Ok(0)
    }
}

// Member 0 fails while member 1 (async, pending for ever) and member 2 (a
// blocking closure) run and members 3..6 are queued. The failure cancels
// the rest at once, before anyone polls the wait: the async member is
// dropped, the closure told, the queued members resolved unstarted. The
// wait stays pending while the told closure still runs, and resolves to the
// failure only after it returned, with every slot free.
rt_test!(
    the_first_error_cancels_the_rest_and_wait_outlasts_the_blocking_closure,
    |b: Builder| async move {
        let pool = b.max_workers(3).build();
        let group = pool.group::<u8, String>();
        group.cancel_on_error();
        let (gauge, fail, release) = (Gauge::new(), Latch::new(), Latch::new());
        let _guard = OpenOnPanic(vec![fail.clone(), release.clone()]);

        let (g, f) = (gauge.clone(), fail.clone());
        group.submit(async move {
            let _in = g.enter();
            f.wait().await;
            Err("boom".to_string())
        });
        let g = gauge.clone();
        let (pending, pending_counts) = counted(async move {
            let _in = g.enter();
            std::future::pending::<Result<u8, String>>().await
        });
        group.submit(pending);
        let (told_tx, told) = async_channel::unbounded();
        let returned = Arc::new(AtomicBool::new(false));
        let (g, r, ret) = (gauge.clone(), release.clone(), returned.clone());
        group.submit_job(Job::blocking_once(move |ctx| {
            let _in = g.enter();
            futures_lite::future::block_on(ctx.cancelled());
            told_tx.send_blocking(()).unwrap();
            r.wait_blocking();
            ret.store(true, Ordering::SeqCst);
            Ok(1)
        }));
        gauge.until(|g| g.now() == 3).await;
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            group.submit(never_runs(&ran));
        }
        assert_eq!(pool.waiting(), 3);

        let mut wait = group.wait();
        assert!(poll_once(&mut wait).await.is_none(), "nothing failed yet");
        fail.open();
        // Not polling the wait: the cancel happens as the error does.
        within(WAIT_LIMIT, gauge.until(|g| g.now() == 1))
            .await
            .expect("the async member was never dropped");
        assert_eq!(within(WAIT_LIMIT, told.recv()).await, Some(Ok(())));
        assert_eq!(pending_counts.drops(), 1);
        assert_eq!(pending_counts.completions(), 0);
        assert_eq!(pool.waiting(), 0, "the queued members resolved at once");

        assert!(
            poll_once(&mut wait).await.is_none(),
            "the wait resolved while a told closure still held its slot"
        );
        eventually("the dropped member left its slot", || pool.running() == 1).await;
        assert!(!returned.load(Ordering::SeqCst));

        release.open();
        let result = within(WAIT_LIMIT, wait)
            .await
            .expect("the wait never resolved");
        assert!(
            returned.load(Ordering::SeqCst),
            "resolved before the closure returned"
        );
        assert_eq!(result.unwrap_err(), JobError::Failed("boom".to_string()));
        assert_eq!(pool.running(), 0, "a member still held its slot");
        assert_eq!(gauge.now(), 0);
        within(WAIT_LIMIT, pool.stop_wait())
            .await
            .expect("stop_wait");
        assert_eq!(ran.load(Ordering::SeqCst), 0, "a queued member ran");
        let m = pool.metrics();
        assert_eq!((m.failed, m.cancelled, m.succeeded), (1, 5, 0));
    }
);

// A member that panics is an error too: it cancels the running and the
// queued members, and the wait gives the panic.
rt_test!(
    a_panicking_member_cancels_the_rest,
    |b: Builder| async move {
        quiet_expected_panics();
        let pool = b.max_workers(2).build();
        let group = pool.group::<u8, String>();
        group.cancel_on_error();
        let (gauge, fail) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![fail.clone()]);
        let (g, f) = (gauge.clone(), fail.clone());
        group.submit(async move {
            let _in = g.enter();
            f.wait().await;
            panic!("expected panic: member 0");
        });
        let g = gauge.clone();
        let (pending, counts) = counted(async move {
            let _in = g.enter();
            std::future::pending::<Result<u8, String>>().await
        });
        group.submit(pending);
        gauge.until(|g| g.now() == 2).await;
        let ran = Arc::new(AtomicUsize::new(0));
        group.submit(never_runs(&ran));
        group.submit_blocking({
            let ran = ran.clone();
            move || {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(0)
            }
        });

        fail.open();
        within(WAIT_LIMIT, gauge.until(|g| g.now() == 0))
            .await
            .expect("the async member was never dropped");
        let result = within(WAIT_LIMIT, group.wait()).await.expect("wait");
        match result {
            Err(JobError::Panicked(p)) => assert_eq!(p.message(), "expected panic: member 0"),
            other => panic!("expected the member's panic, got {other:?}"),
        }
        assert_eq!((counts.drops(), counts.completions()), (1, 0));
        assert_eq!(pool.running(), 0);
        within(WAIT_LIMIT, pool.stop_wait())
            .await
            .expect("stop_wait");
        assert_eq!(ran.load(Ordering::SeqCst), 0, "a queued member ran");
        let m = pool.metrics();
        assert_eq!((m.panicked, m.cancelled), (1, 3));
    }
);

// Without cancel_on_error, members finish in reverse submission order (one
// of them failing, one blocking), and the wait gives every outcome in
// submission order, the error among them, each with the id its submit gave.
rt_test!(
    without_cancel_on_error_wait_gives_every_outcome_in_submission_order,
    |b: Builder| async move {
        let pool = b.max_workers(4).build();
        let group = pool.group::<u32, String>();
        let latches: Vec<Latch> = (0..4).map(|_| Latch::new()).collect();
        let _guard = OpenOnPanic(latches.clone());
        let (done_tx, done) = async_channel::unbounded::<u32>();
        let mut ids = Vec::new();
        for i in 0..4u32 {
            let (latch, done_tx) = (latches[i as usize].clone(), done_tx.clone());
            let result = if i == 1 {
                Err(format!("member {i}"))
            } else {
                Ok(i * 10)
            };
            ids.push(if i == 2 {
                group.submit_blocking(move || {
                    latch.wait_blocking();
                    done_tx.send_blocking(i).unwrap();
                    result
                })
            } else {
                group.submit(async move {
                    latch.wait().await;
                    done_tx.send(i).await.unwrap();
                    result
                })
            });
        }
        let mut wait = group.wait();
        for i in (0..4u32).rev() {
            assert!(
                poll_once(&mut wait).await.is_none(),
                "resolved before member {i}"
            );
            latches[i as usize].open();
            assert_eq!(within(WAIT_LIMIT, done.recv()).await, Some(Ok(i)));
        }
        let outcomes = within(WAIT_LIMIT, wait).await.expect("wait").expect("Ok");
        let got: Vec<_> = outcomes.iter().map(|o| o.id()).collect();
        assert_eq!(got, ids);
        let results: Vec<_> = outcomes.into_iter().map(|o| o.into_result()).collect();
        assert_eq!(
            results,
            [
                Ok(0),
                Err(JobError::Failed("member 1".to_string())),
                Ok(20),
                Ok(30)
            ]
        );
        // The wait took them: the next one has nothing.
        let next = within(WAIT_LIMIT, group.wait()).await.expect("wait");
        assert!(next.expect("Ok").is_empty());
        within(WAIT_LIMIT, pool.stop_wait())
            .await
            .expect("stop_wait");
    }
);

// `cancel` before any member starts (the pool's one worker is busy): none
// ever runs. With cancel_on_error the wait gives `Cancelled`; without, every
// outcome, each `Cancelled` and unstarted.
rt_test!(
    cancel_before_the_members_start_runs_none,
    |b: Builder| async move {
        let pool = b.max_workers(1).build();
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let blocker = pool.submit(blocker(&gauge, &latch));
        gauge.until(|g| g.now() == 1).await;
        let ran = Arc::new(AtomicUsize::new(0));

        let strict = pool.group::<u8, String>();
        strict.cancel_on_error();
        let lenient = pool.group::<u8, String>();
        for g in [&strict, &lenient] {
            g.submit(never_runs(&ran));
            g.submit_blocking({
                let ran = ran.clone();
                move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok(0)
                }
            });
        }
        assert_eq!(pool.waiting(), 4);
        strict.cancel();
        lenient.cancel();
        assert_eq!(
            pool.waiting(),
            0,
            "cancelled members left the queue at once"
        );

        let strict_result = within(WAIT_LIMIT, strict.wait()).await.expect("wait");
        assert_eq!(strict_result.unwrap_err(), JobError::Cancelled);
        let outcomes = within(WAIT_LIMIT, lenient.wait())
            .await
            .expect("wait")
            .expect("Ok");
        assert_eq!(outcomes.len(), 2);
        for o in &outcomes {
            assert_eq!(o.result(), Err(&JobError::Cancelled));
            assert_eq!(o.attempts(), 0);
        }

        latch.open();
        assert_eq!(within(WAIT_LIMIT, blocker).await, Some(Ok(())));
        within(WAIT_LIMIT, pool.stop_wait())
            .await
            .expect("stop_wait");
        assert_eq!(ran.load(Ordering::SeqCst), 0, "a cancelled member ran");
    }
);

// A member submits twenty members through a clone of its group, each of
// which submits one more, then returns; one of the last waits on a latch.
// The wait, made before the first member ran, waits for all of them, and
// gives them in submission order (by id), though they joined the group
// from several workers at once.
rt_test!(
    members_submitted_by_members_are_waited_for,
    |b: Builder| async move {
        let pool = b.max_workers(4).build();
        let group = pool.group::<u32, String>();
        let latch = Latch::new();
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let (submitted_tx, submitted) = async_channel::unbounded();

        let mut wait = group.wait();
        let (g, l) = (group.clone(), latch.clone());
        group.submit(async move {
            for i in 0..20u32 {
                let (g2, l, tx) = (g.clone(), l.clone(), submitted_tx.clone());
                g.submit(async move {
                    let leaf = g2.submit(async move {
                        if i == 19 {
                            l.wait().await;
                        }
                        Ok(100 + i)
                    });
                    tx.send(leaf).await.unwrap();
                    Ok(10 + i)
                });
            }
            Ok(1)
        });
        for _ in 0..20 {
            let leaf = within(WAIT_LIMIT, submitted.recv()).await.expect("a leaf");
            leaf.expect("was submitted");
        }
        eventually("every member but one finished", || {
            pool.metrics().succeeded == 40
        })
        .await;
        assert!(
            poll_once(&mut wait).await.is_none(),
            "resolved without the last leaf"
        );
        latch.open();
        let outcomes = within(WAIT_LIMIT, wait).await.expect("wait").expect("Ok");
        assert_eq!(outcomes.len(), 41);
        let ids: Vec<_> = outcomes.iter().map(|o| o.id()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "not in submission order: {ids:?}"
        );
        let mut values: Vec<_> = outcomes.iter().map(|o| *o.result().unwrap()).collect();
        values.sort();
        let mut expected: Vec<u32> = vec![1];
        expected.extend(10..30);
        expected.extend(100..120);
        assert_eq!(values, expected);
        within(WAIT_LIMIT, pool.stop_wait())
            .await
            .expect("stop_wait");
    }
);

// Dropping a cancel_on_error group (every clone, no wait) does nothing to
// its jobs: a member that fails afterwards cancels no one, and the others
// run to their end.
rt_test!(
    dropping_a_group_leaves_its_jobs_running,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let group = pool.group::<u8, String>();
        group.cancel_on_error();
        let (fail, go) = (Latch::new(), Latch::new());
        let _guard = OpenOnPanic(vec![fail.clone(), go.clone()]);
        let (done_tx, done) = async_channel::unbounded();
        let f = fail.clone();
        group.submit(async move {
            f.wait().await;
            Err("after the drop".to_string())
        });
        let g = go.clone();
        group.submit(async move {
            g.wait().await;
            done_tx.send("ran to its end").await.unwrap();
            Ok(1)
        });
        let queued = group.clone();
        drop(group);
        drop(queued);

        fail.open();
        eventually("the first member failed", || pool.metrics().failed == 1).await;
        go.open();
        assert_eq!(
            within(WAIT_LIMIT, done.recv()).await,
            Some(Ok("ran to its end"))
        );
        within(WAIT_LIMIT, pool.stop_wait())
            .await
            .expect("stop_wait");
        let m = pool.metrics();
        assert_eq!((m.failed, m.succeeded, m.cancelled), (1, 1, 0));
    }
);

// After a cancel_on_error group failed (and its wait gave the error), or
// after `cancel`, a new member is submitted cancelled: it never runs, even
// with workers free to take it at once, and it resolves `Cancelled`
// unstarted at once, even while no worker is free to take it.
rt_test!(
    a_member_submitted_after_the_group_halted_never_runs,
    |b: Builder| async move {
        let pool = b.max_workers(4).build();
        let strict = pool.group::<u8, String>();
        strict.cancel_on_error();
        strict.submit(async { Err("first".to_string()) });
        let first = within(WAIT_LIMIT, strict.wait()).await.expect("wait");
        assert_eq!(first.unwrap_err(), JobError::Failed("first".to_string()));
        let late: Vec<_> = (0..50)
            .map(|_| {
                let (late, counts) = counted(async { Ok::<u8, String>(1) });
                strict.submit(late);
                counts
            })
            .collect();
        let later = within(WAIT_LIMIT, strict.wait()).await.expect("wait");
        assert_eq!(later.unwrap_err(), JobError::Cancelled);
        for counts in &late {
            assert_eq!(counts.polls(), 0, "a late member ran");
        }

        // Every worker busy: the late member is not left in the queue.
        let (gauge, latch) = (Gauge::new(), Latch::new());
        let _guard = OpenOnPanic(vec![latch.clone()]);
        let blockers: Vec<_> = (0..4)
            .map(|_| pool.submit(blocker(&gauge, &latch)))
            .collect();
        gauge.until(|g| g.now() == 4).await;
        let lenient = pool.group::<u8, String>();
        lenient.cancel();
        let ran = Arc::new(AtomicUsize::new(0));
        let id = lenient.submit(never_runs(&ran));
        assert_eq!(pool.waiting(), 0);
        let outcomes = within(WAIT_LIMIT, lenient.wait())
            .await
            .expect("wait")
            .expect("Ok");
        assert_eq!(gauge.now(), 4, "it resolved while every worker was busy");
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].id(), id);
        assert_eq!(outcomes[0].result(), Err(&JobError::Cancelled));
        assert_eq!(outcomes[0].attempts(), 0);

        latch.open();
        for b in blockers {
            assert_eq!(within(WAIT_LIMIT, b).await, Some(Ok(())));
        }
        within(WAIT_LIMIT, pool.stop_wait())
            .await
            .expect("stop_wait");
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        for counts in &late {
            assert_eq!(
                (counts.polls(), counts.drops()),
                (0, 1),
                "a late member ran"
            );
        }
    }
);

// Eight members run and forty wait in the queue when one fails: as the
// group cancels the running ones their slots free up, and none of the
// queued members starts in them. (A race: twenty rounds give a cancel in
// the wrong order the chance to show.)
rt_test!(
    no_queued_member_starts_in_a_slot_the_cancel_frees,
    |b: Builder| async move {
        let pool = b.max_workers(8).build();
        let ran = Arc::new(AtomicUsize::new(0));
        for round in 0..20 {
            let group = pool.group::<u8, String>();
            group.cancel_on_error();
            let (gauge, fail) = (Gauge::new(), Latch::new());
            let _guard = OpenOnPanic(vec![fail.clone()]);
            let (g, f) = (gauge.clone(), fail.clone());
            group.submit(async move {
                let _in = g.enter();
                f.wait().await;
                Err(format!("round {round}"))
            });
            for _ in 0..7 {
                let g = gauge.clone();
                group.submit(async move {
                    let _in = g.enter();
                    std::future::pending::<Result<u8, String>>().await
                });
            }
            gauge.until(|g| g.now() == 8).await;
            for _ in 0..40 {
                group.submit(never_runs(&ran));
            }
            fail.open();
            let result = within(WAIT_LIMIT, group.wait()).await.expect("wait");
            assert_eq!(
                result.unwrap_err(),
                JobError::Failed(format!("round {round}"))
            );
            assert_eq!(ran.load(Ordering::SeqCst), 0, "a queued member ran");
            assert_eq!(pool.running(), 0);
        }
        within(WAIT_LIMIT, pool.stop_wait())
            .await
            .expect("stop_wait");
        assert_eq!(ran.load(Ordering::SeqCst), 0, "a queued member ran");
        assert_eq!(pool.metrics().cancelled, 20 * 47);
    }
);

// A member that times out (on the manual clock) is a first error too: the
// member running beside it is dropped, and the wait gives `TimedOut`.
rt_test!(
    a_member_that_times_out_cancels_the_rest,
    |b: Builder| async move {
        let clock = ManualClock::new();
        let pool = b.max_workers(2).clock(clock.clone()).build();
        let group = pool.group::<u8, String>();
        group.cancel_on_error();
        let gauge = Gauge::new();
        let g = gauge.clone();
        group.submit_job(
            Job::once(async move {
                let _in = g.enter();
                std::future::pending::<Result<u8, String>>().await
            })
            .timeout(ms(100)),
        );
        let g = gauge.clone();
        let (pending, counts) = counted(async move {
            let _in = g.enter();
            std::future::pending::<Result<u8, String>>().await
        });
        group.submit(pending);
        gauge.until(|g| g.now() == 2).await;
        armed(&clock, 1).await;
        clock.advance(ms(99));
        let mut wait = group.wait();
        assert!(
            poll_once(&mut wait).await.is_none(),
            "resolved before the timeout"
        );
        clock.advance(ms(1));
        let result = within(WAIT_LIMIT, wait).await.expect("wait");
        assert_eq!(result.unwrap_err(), JobError::TimedOut);
        assert_eq!((counts.drops(), gauge.now(), pool.running()), (1, 0, 0));
        within(WAIT_LIMIT, pool.stop_wait())
            .await
            .expect("stop_wait");
    }
);

// `cancel_on_error` called after a member failed already: the running
// member is cancelled then, and the wait gives the earlier failure.
rt_test!(
    cancel_on_error_after_a_failure_cancels_at_once,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let group = pool.group::<u8, String>();
        let gauge = Gauge::new();
        let g = gauge.clone();
        let (pending, counts) = counted(async move {
            let _in = g.enter();
            std::future::pending::<Result<u8, String>>().await
        });
        group.submit(pending);
        gauge.until(|g| g.now() == 1).await;
        group.submit(async { Err("early".to_string()) });
        eventually("the member failed", || pool.metrics().failed == 1).await;
        assert_eq!(counts.drops(), 0, "cancelled without cancel_on_error");

        group.cancel_on_error();
        within(WAIT_LIMIT, gauge.until(|g| g.now() == 0))
            .await
            .expect("the running member was never dropped");
        let result = within(WAIT_LIMIT, group.wait()).await.expect("wait");
        assert_eq!(result.unwrap_err(), JobError::Failed("early".to_string()));
        assert_eq!((counts.drops(), pool.running()), (1, 0));
        within(WAIT_LIMIT, pool.stop_wait())
            .await
            .expect("stop_wait");
    }
);

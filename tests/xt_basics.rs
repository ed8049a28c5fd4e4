//! The workerpoolxt basics: results, error handling, counts, names and run
//! durations (the Go suite's TestBasics, TestSubmitXT_HowToHandleErrors,
//! TestResultCountEqualsJobCount, TestRuntimeDuration, TestName), plus the
//! 100,000-job load run.

mod common;
use common::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use workerpoolxt::{Builder, Job, JobError, ResultSet};

/// A job error for these tests.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom(&'static str);

// Three jobs, one failing, give three records (Go TestBasics), in submission order.
rt_test!(
    basics_three_jobs_one_failing_give_three_records,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let mut set = ResultSet::new();
        set.push(pool.submit_job(Job::new(|_ctx| async { Ok::<_, Boom>(true) }).name("Basics 1")));
        set.push(pool.submit_job(Job::new(|_ctx| async { Ok::<_, Boom>(true) }).name("Basics 2")));
        set.push(
            pool.submit_job(
                Job::new(|_ctx| async { Err::<bool, _>(Boom("err")) }).name("Basics 3"),
            ),
        );
        let results = set.join_all().await;
        assert_eq!(results.len(), 3);
        let names: Vec<_> = results.iter().map(|o| o.name().unwrap()).collect();
        assert_eq!(names, ["Basics 1", "Basics 2", "Basics 3"]);
        assert_eq!(results[0].result(), Ok(&true));
        assert_eq!(results[1].result(), Ok(&true));
        assert_eq!(results[2].result(), Err(&JobError::Failed(Boom("err"))));
        pool.stop_wait().await;
    }
);

// Error handling as in the README: one success, one timeout, one job error (Go TestSubmitXT_HowToHandleErrors).
rt_test!(
    error_handling_one_success_two_failures,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let set: ResultSet<&str, String> = [
            pool.submit_job(Job::new(|_ctx| async { Ok("yay") }).name("Job 1 will pass")),
            pool.submit_job(
                Job::new(|_ctx| async {
                    sleep(Duration::from_secs(20)).await; // simulate a long running task
                    Ok("uhoh")
                })
                .name("Job 2 will timeout")
                .timeout(Duration::from_millis(1)),
            ),
            pool.submit_job(
                Job::new(|_ctx| async {
                    Err("ErrorPretendException : something failed".to_string())
                })
                .name("Job 3 will encounter an error"),
            ),
        ]
        .into_iter()
        .collect();
        let t = Instant::now();
        let results = set.join_all().await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the timed-out job held things up"
        );
        let failed = results.iter().filter(|o| !o.is_ok()).count();
        let succeeded = results.iter().filter(|o| o.is_ok()).count();
        assert_eq!((succeeded, failed), (1, 2));
        assert_eq!(results[0].result(), Ok(&"yay"));
        assert_eq!(results[1].result(), Err(&JobError::TimedOut));
        match results[2].result() {
            Err(JobError::Failed(e)) => assert!(e.starts_with("ErrorPretendException")),
            other => panic!("expected the job's own error, got {other:?}"),
        }
        pool.stop_wait().await;
    }
);

// 500 jobs give 500 records, each its own (Go TestResultCountEqualsJobCount).
rt_test!(
    five_hundred_jobs_give_five_hundred_records,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let set: ResultSet<String, Boom> = (0..500)
            .map(|i| {
                pool.submit_job(
                    Job::new(move |_ctx| async move { Ok(format!("Placeholder : {i}")) })
                        .name(format!("Job {i}")),
                )
            })
            .collect();
        assert_eq!(set.len(), 500);
        let results = set.join_all().await;
        assert_eq!(results.len(), 500);
        for (i, o) in results.iter().enumerate() {
            assert_eq!(o.name(), Some(format!("Job {i}").as_str()));
            assert_eq!(o.result(), Ok(&format!("Placeholder : {i}")));
        }
        pool.stop_wait().await;
    }
);

// The run duration of a job whose body takes 100 ms is at least 100 ms (Go TestRuntimeDuration).
rt_test!(
    duration_of_a_100ms_body_is_at_least_100ms,
    |b: Builder| async move {
        let pool = b.max_workers(10).build();
        let o = pool
            .submit_job(
                Job::new(|_ctx| async {
                    sleep(Duration::from_millis(100)).await;
                    Ok::<_, Boom>("testing")
                })
                .name("test"),
            )
            .outcome()
            .await;
        assert_eq!(o.result(), Ok(&"testing"));
        assert!(
            o.duration() >= Duration::from_millis(100),
            "duration {:?}",
            o.duration()
        );
        assert!(
            o.duration() < Duration::from_secs(10),
            "duration {:?}",
            o.duration()
        );
    }
);

// A job's name is kept: in its context, its handle and its outcome (Go TestName).
rt_test!(the_name_is_kept, |b: Builder| async move {
    let pool = b.max_workers(10).build();
    let h = pool.submit_job(
        Job::new(|ctx| async move { Ok::<_, Boom>(ctx.name().map(str::to_owned)) }).name("test99"),
    );
    assert_eq!(h.name(), Some("test99"));
    let o = h.outcome().await;
    assert_eq!(o.name(), Some("test99"));
    assert_eq!(o.into_result(), Ok(Some("test99".to_owned())));
    // An unnamed job has no name anywhere.
    let o = pool
        .submit_job(Job::new(|ctx| async move {
            Ok::<_, Boom>(ctx.name().is_none())
        }))
        .outcome()
        .await;
    assert_eq!(o.name(), None);
    assert_eq!(o.into_result(), Ok(true));
});

/// 100,000 jobs sleeping 5–10 ms on 1,000 workers.
async fn hundred_thousand_jobs(b: Builder) {
    const JOBS: usize = 100_000;
    const WORKERS: usize = 1_000;
    let pool = b.max_workers(WORKERS).build();
    let gauge = Gauge::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let set: ResultSet<usize, Boom> = (0..JOBS)
        .map(|i| {
            let gauge = gauge.clone();
            let ran = ran.clone();
            pool.submit_job(Job::new(move |_ctx| {
                let gauge = gauge.clone();
                let ran = ran.clone();
                async move {
                    let _alive = gauge.enter();
                    sleep(Duration::from_millis(5 + (i % 6) as u64)).await;
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok(i)
                }
            }))
        })
        .collect();
    let results = set.join_all().await;
    let took = t.elapsed();
    assert_eq!(results.len(), JOBS);
    for (i, o) in results.iter().enumerate() {
        assert_eq!(o.result(), Ok(&i));
    }
    assert_eq!(ran.load(Ordering::SeqCst), JOBS);
    assert!(gauge.max() <= WORKERS, "{} bodies at once", gauge.max());
    assert_eq!(
        gauge.max(),
        WORKERS,
        "all {WORKERS} workers should have been busy at once"
    );
    assert!(took < Duration::from_secs(10), "100k jobs took {took:?}");
    eprintln!("100k jobs on 1k workers: {took:?}");
    pool.stop_wait().await;
}

// 100,000 jobs of 5–10 ms on 1,000 workers all complete, never more than 1,000 at once (no runtime).
#[test]
fn hundred_thousand_jobs_on_a_thousand_workers_no_runtime() {
    Rt::None.run("hundred_thousand_jobs", hundred_thousand_jobs);
}

// 100,000 jobs of 5–10 ms on 1,000 workers all complete, never more than 1,000 at once (tokio multi-thread).
#[test]
fn hundred_thousand_jobs_on_a_thousand_workers_tokio_multi() {
    Rt::TokioMulti.run("hundred_thousand_jobs", hundred_thousand_jobs);
}

//! Options: the pool's default options and per-job options that replace them,
//! never merged (the Go suite's TestDefaultOptions, TestPerJobOptions and
//! TestPerJobOptionsOverrideDefaultOptions).

mod common;
#[allow(unused_imports)]
use common::*;

use std::sync::{Arc, Mutex};

use workerpoolxt::{Backoff, Builder, Job, Options, ResultSet};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Boom;

/// Stand-ins for the README's `http.Client` and Kubernetes clientset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpClient(&'static str);
#[derive(Debug, Clone, PartialEq, Eq)]
struct KubeClient(&'static str);
#[derive(Debug, Clone, PartialEq, Eq)]
struct Var(&'static str);
#[derive(Debug, Clone, PartialEq, Eq)]
struct OnlyDefault(&'static str);

/// What a job saw in its options.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    var: Option<Var>,
    default: Option<OnlyDefault>,
    http: Option<HttpClient>,
    kube: Option<KubeClient>,
    len: usize,
}

fn seen(o: &Options) -> Seen {
    Seen {
        var: o.get::<Var>().cloned(),
        default: o.get::<OnlyDefault>().cloned(),
        http: o.get::<HttpClient>().cloned(),
        kube: o.get::<KubeClient>().cloned(),
        len: o.len(),
    }
}

/// A job that reports what it sees in its options.
fn reporter(name: &str) -> Job<Seen, Boom> {
    Job::new(|ctx| async move { Ok(seen(ctx.options())) }).name(name)
}

// Default options set on the pool are what a job without options of its own sees (Go TestDefaultOptions).
rt_test!(jobs_see_the_default_options, |b: Builder| async move {
    let pool = b
        .max_workers(10)
        .default_options(Options::new().with(Var("myval")).with(HttpClient("shared")))
        .build();
    let s = pool
        .submit_job(reporter("testing default options"))
        .await
        .unwrap();
    assert_eq!(s.var, Some(Var("myval")));
    assert_eq!(s.http, Some(HttpClient("shared")));
    assert_eq!(s.len, 2);
    pool.stop_wait().await;
});

// Each job sees its own options: the http job only its http client, the kube job only its clientset (Go TestPerJobOptions).
rt_test!(each_job_sees_its_own_options, |b: Builder| async move {
    let pool = b.max_workers(10).build();
    let set: ResultSet<Seen, Boom> = [
        pool.submit_job(
            reporter("This Job Only Needs an HTTP Client").options(
                Options::new()
                    .with(HttpClient("http"))
                    .with(Var("job1value")),
            ),
        ),
        pool.submit_job(
            reporter("This Job Only Needs Kubernetes Clientset").options(
                Options::new()
                    .with(KubeClient("kube"))
                    .with(Var("job2value")),
            ),
        ),
    ]
    .into_iter()
    .collect();
    let r = set.join_all().await;
    assert_eq!(r[0].name(), Some("This Job Only Needs an HTTP Client"));
    let s1 = r[0].result().unwrap();
    assert_eq!(
        (s1.var.clone(), s1.http.clone(), s1.kube.clone()),
        (Some(Var("job1value")), Some(HttpClient("http")), None)
    );
    let s2 = r[1].result().unwrap();
    assert_eq!(
        (s2.var.clone(), s2.http.clone(), s2.kube.clone()),
        (Some(Var("job2value")), None, Some(KubeClient("kube")))
    );
    pool.stop_wait().await;
});

// A job's own options replace the defaults, never merged: a value only in the defaults is absent in that job, while other jobs still see the defaults (Go TestPerJobOptionsOverrideDefaultOptions).
rt_test!(
    a_jobs_options_replace_the_defaults,
    |b: Builder| async move {
        let pool = b
            .max_workers(10)
            .default_options(
                Options::new()
                    .with(OnlyDefault("value"))
                    .with(Var("default var")),
            )
            .build();
        let set: ResultSet<Seen, Boom> = [
            pool.submit_job(reporter("job 1").options(Options::new().with(Var("job1value")))),
            pool.submit_job(reporter("job 2").options(Options::new().with(Var("job2value")))),
            pool.submit_job(reporter("job 3 uses the defaults")),
            pool.submit_job(reporter("job 4 has empty options").options(Options::new())),
        ]
        .into_iter()
        .collect();
        let r = set.join_all().await;
        let s: Vec<Seen> = r.iter().map(|o| o.result().unwrap().clone()).collect();
        assert_eq!(
            (s[0].var.clone(), s[0].default.clone(), s[0].len),
            (Some(Var("job1value")), None, 1)
        );
        assert_eq!(
            (s[1].var.clone(), s[1].default.clone(), s[1].len),
            (Some(Var("job2value")), None, 1)
        );
        assert_eq!(
            (s[2].var.clone(), s[2].default.clone(), s[2].len),
            (Some(Var("default var")), Some(OnlyDefault("value")), 2)
        );
        assert_eq!(
            s[3].len, 0,
            "empty options of its own still replace the defaults"
        );
        pool.stop_wait().await;
    }
);

// Without defaults or options of its own a job sees an empty map.
rt_test!(
    without_any_options_a_job_sees_none,
    |b: Builder| async move {
        let pool = b.max_workers(2).build();
        let s = pool.submit_job(reporter("bare")).await.unwrap();
        assert_eq!(
            s,
            Seen {
                var: None,
                default: None,
                http: None,
                kube: None,
                len: 0
            }
        );
        pool.stop_wait().await;
    }
);

// Every attempt of a retried job sees the same options, and defaults shared by many jobs are one value (not copies).
rt_test!(
    options_are_the_same_on_every_attempt,
    |b: Builder| async move {
        let shared = Arc::new(Mutex::new(Vec::<u32>::new()));
        let pool = b
            .max_workers(4)
            .default_options(Options::new().with(shared.clone()))
            .build();
        let job = Job::new(|ctx| async move {
            let log = ctx
                .options()
                .get::<Arc<Mutex<Vec<u32>>>>()
                .expect("the shared log")
                .clone();
            log.lock().unwrap().push(ctx.attempt());
            if ctx.attempt() < 3 {
                Err(Boom)
            } else {
                Ok(())
            }
        })
        .retry(5)
        .backoff(Backoff::none());
        assert_eq!(pool.submit_job(job).await, Ok(()));
        assert_eq!(*shared.lock().unwrap(), [1, 2, 3]);
        pool.stop_wait().await;
    }
);

// Options is a typed map: one value per type, replaced by insert, removed by remove.
#[test]
fn options_hold_one_value_per_type() {
    let mut o = Options::new().with(Var("a")).with(7u32);
    assert_eq!((o.len(), o.is_empty()), (2, false));
    assert_eq!(o.get::<Var>(), Some(&Var("a")));
    assert_eq!(o.get::<u32>(), Some(&7));
    assert_eq!(o.get::<u64>(), None);
    let copy = o.clone();
    o.insert(Var("b"));
    assert_eq!(o.get::<Var>(), Some(&Var("b")));
    assert_eq!(
        copy.get::<Var>(),
        Some(&Var("a")),
        "a clone is not changed by an insert"
    );
    assert!(o.remove::<u32>());
    assert!(!o.remove::<u32>());
    assert!(!o.contains::<u32>());
    assert_eq!(o.len(), 1);
    assert!(Options::new().is_empty());
}

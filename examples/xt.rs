//! The workerpoolxt README, section by section, on no runtime at all:
//! results, error handling, the default context, per-job contexts and
//! timeouts, retry, default options, per-job options and run durations.
//!
//! Run with `cargo run --example xt`. It ends by itself in well under a second.

use std::fmt;
use std::time::Duration;

use futures_lite::future::block_on;
use workerpoolxt::{Backoff, CancelToken, Job, JobError, Options, Pool, ResultSet};

/// Stand-ins for the README's `*http.Client` and Kubernetes clientset.
#[derive(Debug)]
struct HttpClient {
    base_url: &'static str,
}
#[derive(Debug)]
struct KubeClient {
    cluster: &'static str,
}

/// A job's own error type.
#[derive(Debug, Clone, PartialEq)]
struct SomeErr(String);

impl fmt::Display for SomeErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

async fn sleep(d: Duration) {
    async_io::Timer::after(d).await;
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn main() {
    block_on(async {
        results().await;
        error_handling().await;
        default_context().await;
        per_job_context_and_timeouts().await;
        retry().await;
        default_options().await;
        per_job_options().await;
        runtime_duration().await;
    });
}

/// Results: every job's result is kept, with its name, attempts and duration.
async fn results() {
    section("Results");
    let pool = Pool::new(10);
    let set: ResultSet<String, SomeErr> = (1..=3)
        .map(|i| {
            pool.submit_job(
                Job::new(move |_ctx| async move { Ok(format!("Hello from job {i}")) })
                    .name(format!("job {i}")),
            )
        })
        .collect();
    // Go's StopWaitXT: wait for every job, in submission order.
    for result in set.join_all().await {
        println!("{result}");
    }
    pool.stop_wait().await;
}

/// Error handling: return Err from the job; check the outcome's error.
async fn error_handling() {
    section("Error handling");
    let pool = Pool::new(10);
    let mut set = ResultSet::new();
    set.push(
        pool.submit_job(Job::new(|_ctx| async { Ok("fine".to_string()) }).name("Job 1 will pass")),
    );
    set.push(
        pool.submit_job(
            Job::new(|_ctx| async {
                let the_error = SomeErr("ErrorPretendException : something failed".into());
                Err(the_error)
            })
            .name("Job 2 will encounter an error"),
        ),
    );
    set.push(
        pool.submit_job(
            Job::new(|_ctx| async {
                sleep(Duration::from_secs(20)).await;
                Ok("too slow".to_string())
            })
            .name("Job 3 will time out")
            .timeout(Duration::from_millis(5)),
        ),
    );
    for result in set.join_all().await {
        let name = result.name().unwrap_or("?");
        match result.result() {
            Ok(data) => println!("{name}: ok: {data}"),
            Err(JobError::Failed(e)) => println!("{name}: the job's own error: {e}"),
            Err(JobError::TimedOut) => println!("{name}: timed out"),
            Err(other) => println!("{name}: {other}"),
        }
    }
    pool.stop_wait().await;
}

/// Default context: the pool's token; cancelling it cancels every job that uses it.
async fn default_context() {
    section("Default context");
    let my_token = CancelToken::new(); // any token: the pool's default context
    let pool = Pool::builder()
        .max_workers(10)
        .cancel_token(my_token.clone())
        .build();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            pool.submit_job(
                Job::new(|_ctx| async {
                    sleep(Duration::from_secs(5)).await;
                    Ok::<_, SomeErr>(true)
                })
                .name(format!("long job {i}")),
            )
        })
        .collect();
    sleep(Duration::from_millis(10)).await;
    my_token.cancel();
    for result in handles
        .into_iter()
        .collect::<ResultSet<_, _>>()
        .join_all()
        .await
    {
        println!("{result}");
    }
    pool.stop_wait().await;
}

/// Per-job context and timeouts: a job's own token or timeout replaces the pool's.
async fn per_job_context_and_timeouts() {
    section("Per-job context and timeouts");
    let default_token = CancelToken::new();
    let pool = Pool::builder()
        .max_workers(10)
        .cancel_token(default_token.clone())
        .build();

    // A 1 ms timeout on a job that would take 10 s.
    let my_ctx_job = pool.submit_job(
        Job::new(|_ctx| async {
            sleep(Duration::from_secs(10)).await; // simulate a long running task
            Ok::<_, SomeErr>("I could be anything")
        })
        .name("my ctx job")
        .timeout(Duration::from_millis(1)),
    );
    println!("{}", my_ctx_job.outcome().await); // TimedOut, at once

    // A job with its own token ignores the cancelled default token.
    default_token.cancel();
    let on_default = pool
        .submit_job(Job::new(|_ctx| async { Ok::<_, SomeErr>("OK") }).name("uses the default ctx"));
    let on_own = pool.submit_job(
        Job::new(|_ctx| async { Ok::<_, SomeErr>("OK") })
            .name("uses its own ctx")
            .cancel_token(CancelToken::new()),
    );
    println!("{}", on_default.outcome().await); // Cancelled: never started
    println!("{}", on_own.outcome().await); // Ok
    pool.stop_wait().await;
}

/// Retry: up to N more attempts after an error, within the job's timeout.
async fn retry() {
    section("Retry");
    let pool = Pool::new(10);
    let job = Job::new(|ctx| async move {
        println!("  attempt {}", ctx.attempt());
        Err::<(), _>(SomeErr("some_err".into()))
    })
    .name("I will retry 5 times")
    .retry(5)
    .backoff(Backoff::exponential(Duration::from_millis(2)))
    .timeout(Duration::from_millis(500));
    let result = pool.submit_job(job).outcome().await;
    println!("{result}");
    println!("attempts: {}", result.attempts());
    pool.stop_wait().await;
}

/// Default options: values every job without options of its own can read.
async fn default_options() {
    section("Default options");
    let my_opts = Options::new().with(HttpClient {
        base_url: "https://example.com",
    });
    let pool = Pool::builder()
        .max_workers(10)
        .default_options(my_opts)
        .build();
    let job = Job::new(|ctx| async move {
        let client = ctx
            .options()
            .get::<HttpClient>()
            .expect("the default client");
        Ok::<_, SomeErr>(format!("would GET {}", client.base_url))
    })
    .name("myjob");
    println!("{}", pool.submit_job(job).outcome().await);
    pool.stop_wait().await;
}

/// Per-job options: each job brings its own; they replace the defaults, never merged.
async fn per_job_options() {
    section("Per-job options");
    let pool = Pool::builder()
        .max_workers(10)
        .default_options(Options::new().with(HttpClient {
            base_url: "https://default.example.com",
        }))
        .build();
    let http_job = pool.submit_job(
        Job::new(|ctx| async move {
            let http = ctx.options().get::<HttpClient>().map(|c| c.base_url);
            let kube = ctx.options().get::<KubeClient>().map(|c| c.cluster);
            Ok::<_, SomeErr>(format!("http: {http:?}, kube: {kube:?}"))
        })
        .name("This Job Only Needs an HTTP Client")
        .options(Options::new().with(HttpClient {
            base_url: "https://api.example.com",
        })),
    );
    let kube_job = pool.submit_job(
        Job::new(|ctx| async move {
            let http = ctx.options().get::<HttpClient>().map(|c| c.base_url);
            let kube = ctx.options().get::<KubeClient>().map(|c| c.cluster);
            Ok::<_, SomeErr>(format!("http: {http:?}, kube: {kube:?}"))
        })
        .name("This Job Only Needs Kubernetes Clientset")
        .options(Options::new().with(KubeClient { cluster: "prod" })),
    );
    println!("{}", http_job.outcome().await);
    println!("{}", kube_job.outcome().await); // no http client: the defaults are replaced
    pool.stop_wait().await;
}

/// Runtime duration: how long a job ran, and how long it waited in the queue.
async fn runtime_duration() {
    section("Runtime duration");
    let pool = Pool::new(1);
    let set: ResultSet<(), SomeErr> = (0..2)
        .map(|i| {
            pool.submit_job(
                Job::new(|_ctx| async {
                    sleep(Duration::from_millis(100)).await;
                    Ok(())
                })
                .name(format!("sleeper {i}")),
            )
        })
        .collect();
    for result in set.join_all().await {
        println!(
            "{}: ran {:?}, waited {:?} in the queue",
            result.name().unwrap_or("?"),
            result.duration(),
            result.queued()
        );
    }
    pool.stop_wait().await;
}

//! What happens to one job: its outcome, retries re-scheduled in the store,
//! death with the last error, bad input, delays, cancels, deadlines,
//! timeouts and panics. Each test runs on every backend.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{block_on, client, queue, serve, wait_until, Boom, Echo, Flaky, Probe, Sleep};
use workerpoolxt_durable::{
    Backend, Error, Handler, JobContext, NewJob, RetryBackoff, Status, Worker, WorkerBuilder,
};

on_each_backend!(
    runs_a_job_and_stores_its_outcome,
    a_failed_attempt_is_rescheduled_in_the_store,
    used_up_attempts_make_the_job_dead_with_its_last_error,
    an_unknown_handler_fails_the_job_without_retry,
    a_payload_over_the_worker_limit_fails_only_that_job,
    a_payload_that_does_not_decode_fails_without_retry,
    the_client_refuses_big_payloads_and_hostile_names,
    a_delayed_job_waits_for_its_run_at,
    cancelling_a_queued_job_keeps_it_from_starting,
    cancelling_a_running_job_drops_its_run,
    a_passed_deadline_fails_the_job_without_running_it,
    an_attempt_over_its_timeout_fails_and_is_retried,
    a_panic_is_a_failed_attempt,
);

fn worker(backend: &Arc<dyn Backend>, q: &str) -> WorkerBuilder {
    Worker::builder(Arc::clone(backend), q)
        .lease(Duration::from_millis(600))
        .poll_interval(Duration::from_millis(20))
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn runs_a_job_and_stores_its_outcome(backend: Arc<dyn Backend>) {
    let q = queue("outcome");
    let client = client(&backend);
    let w = worker(&backend, &q).handler(Echo).unwrap().build().unwrap();
    let serving = serve(&w);
    let job = NewJob::new::<Echo>(&"hi".into()).unwrap().name("greeting");
    let handle = block_on(client.enqueue(&q, job)).unwrap();
    let record = block_on(client.outcome(&handle)).unwrap();
    assert_eq!(record.status, Status::Succeeded);
    assert_eq!(
        record.output_as::<String>().unwrap().as_deref(),
        Some("hi#1")
    );
    assert_eq!(record.name.as_deref(), Some("greeting"));
    assert_eq!((record.attempts, record.max_attempts), (1, 1));
    assert_eq!(record.handler, "echo");
    assert!(record.queued_ms >= 0 && record.run_ms >= 0);
    assert!(record.finished_at_ms.is_some());
    assert_eq!(block_on(client.counts(&q)).unwrap().succeeded, 1);
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
    assert_eq!(w.stats().succeeded, 1);
}

fn a_failed_attempt_is_rescheduled_in_the_store(backend: Arc<dyn Backend>) {
    let q = queue("retry");
    let client = client(&backend);
    let w = worker(&backend, &q)
        .handler(Flaky)
        .unwrap()
        .build()
        .unwrap();
    let serving = serve(&w);
    let job = NewJob::new::<Flaky>(&2)
        .unwrap()
        .max_attempts(3)
        .backoff(RetryBackoff::Fixed { ms: 400 });
    let handle = block_on(client.enqueue(&q, job)).unwrap();
    // Between attempts the job waits in the store, not in memory.
    wait_until(10, "the first retry to be scheduled", || {
        block_on(client.counts(&q)).unwrap().scheduled == 1
    });
    let waiting = block_on(client.record(handle.id())).unwrap().unwrap();
    assert_eq!(waiting.status, Status::Queued);
    assert!(waiting.error.unwrap().contains("flaky failure on attempt"));
    let record = block_on(client.outcome(&handle)).unwrap();
    assert_eq!(record.status, Status::Succeeded);
    assert_eq!(record.attempts, 3);
    // The idempotency key defaults to the job's id.
    let output = record.output_as::<(u32, String)>().unwrap().unwrap();
    assert_eq!(output, (3, handle.id().to_string()));
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
    assert_eq!((w.stats().retried, w.stats().succeeded), (2, 1));
}

fn used_up_attempts_make_the_job_dead_with_its_last_error(backend: Arc<dyn Backend>) {
    let q = queue("dead");
    let client = client(&backend);
    let w = worker(&backend, &q)
        .handler(Flaky)
        .unwrap()
        .build()
        .unwrap();
    let serving = serve(&w);
    let job = NewJob::new::<Flaky>(&5)
        .unwrap()
        .max_attempts(2)
        .idempotency_key("order-7");
    let handle = block_on(client.enqueue(&q, job)).unwrap();
    let record = block_on(client.outcome(&handle)).unwrap();
    assert_eq!((record.status, record.attempts), (Status::Dead, 2));
    let error = record.error.unwrap();
    assert!(
        error.contains("attempt 2 of 2") && error.contains("flaky failure on attempt 2"),
        "{error}"
    );
    let dead = block_on(client.dead(&q, 10)).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].id, handle.id());
    assert_eq!(block_on(client.counts(&q)).unwrap().dead, 1);
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
}

fn an_unknown_handler_fails_the_job_without_retry(backend: Arc<dyn Backend>) {
    let q = queue("unknown");
    let client = client(&backend);
    let w = worker(&backend, &q).handler(Echo).unwrap().build().unwrap();
    let serving = serve(&w);
    let job = NewJob::new::<Flaky>(&0).unwrap().max_attempts(5);
    let handle = block_on(client.enqueue(&q, job)).unwrap();
    let record = block_on(client.outcome(&handle)).unwrap();
    assert_eq!((record.status, record.attempts), (Status::Dead, 1));
    let error = record.error.unwrap();
    assert!(
        error.contains("unknown handler `flaky`") && error.contains("not retried"),
        "{error}"
    );
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
}

fn a_payload_over_the_worker_limit_fails_only_that_job(backend: Arc<dyn Backend>) {
    let q = queue("big");
    let client = client(&backend);
    let w = worker(&backend, &q)
        .max_payload(100)
        .handler(Echo)
        .unwrap()
        .build()
        .unwrap();
    let serving = serve(&w);
    let big = NewJob::new::<Echo>(&"x".repeat(200))
        .unwrap()
        .max_attempts(3);
    let big = block_on(client.enqueue(&q, big)).unwrap();
    let small = block_on(client.enqueue(&q, NewJob::new::<Echo>(&"ok".into()).unwrap())).unwrap();
    let record = block_on(client.outcome(&big)).unwrap();
    assert_eq!((record.status, record.attempts), (Status::Dead, 1));
    assert!(record
        .error
        .unwrap()
        .contains("over this worker's limit of 100 bytes"));
    let record = block_on(client.outcome(&small)).unwrap();
    assert_eq!(record.status, Status::Succeeded);
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
}

/// Enqueues under the name `echo` with arguments `Echo` cannot read.
struct NotEcho;
impl Handler for NotEcho {
    const NAME: &'static str = "echo";
    type Args = Vec<u64>;
    type Output = ();
    type Error = String;
    async fn run(&self, _: Vec<u64>, _ctx: JobContext) -> Result<(), String> {
        Ok(())
    }
}

fn a_payload_that_does_not_decode_fails_without_retry(backend: Arc<dyn Backend>) {
    let q = queue("decode");
    let client = client(&backend);
    let w = worker(&backend, &q).handler(Echo).unwrap().build().unwrap();
    let serving = serve(&w);
    let job = NewJob::new::<NotEcho>(&vec![1, 2]).unwrap().max_attempts(4);
    let bad = block_on(client.enqueue(&q, job)).unwrap();
    let good = block_on(client.enqueue(&q, NewJob::new::<Echo>(&"ok".into()).unwrap())).unwrap();
    let record = block_on(client.outcome(&bad)).unwrap();
    assert_eq!((record.status, record.attempts), (Status::Dead, 1));
    assert!(record
        .error
        .unwrap()
        .contains("does not decode as the Args of handler `echo`"));
    assert_eq!(
        block_on(client.outcome(&good)).unwrap().status,
        Status::Succeeded
    );
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
}

fn the_client_refuses_big_payloads_and_hostile_names(backend: Arc<dyn Backend>) {
    let q = queue("refuse");
    let client = client(&backend).max_payload(10);
    let big = NewJob::new::<Echo>(&"x".repeat(20)).unwrap();
    let e = block_on(client.enqueue(&q, big)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::PayloadTooLarge {
                size: 22,
                limit: 10
            }
        ),
        "{e}"
    );
    let small = || NewJob::new::<Echo>(&"x".into()).unwrap();
    let hostile = "q'; DROP TABLE wpxt_jobs; --";
    let e = block_on(client.enqueue(hostile, small())).unwrap_err();
    assert!(e.to_string().starts_with("invalid queue name"), "{e}");
    let e = block_on(client.enqueue(&q, small().name("a name"))).unwrap_err();
    assert!(e.to_string().starts_with("invalid job name"), "{e}");
    let e = block_on(client.enqueue(&q, small().idempotency_key("k\u{0}"))).unwrap_err();
    assert!(e.to_string().starts_with("invalid idempotency key"), "{e}");
    assert!(block_on(client.counts(hostile)).is_err());
    assert!(block_on(client.dead("*", 10)).is_err());
    assert_eq!(block_on(client.counts(&q)).unwrap(), Default::default());
}

fn a_delayed_job_waits_for_its_run_at(backend: Arc<dyn Backend>) {
    let q = queue("delayed");
    let client = client(&backend);
    let w = worker(&backend, &q).handler(Echo).unwrap().build().unwrap();
    let serving = serve(&w);
    let at = SystemTime::now() + Duration::from_millis(700);
    let job = NewJob::new::<Echo>(&"later".into()).unwrap().run_at(at);
    let handle = block_on(client.enqueue(&q, job)).unwrap();
    let counts = block_on(client.counts(&q)).unwrap();
    assert_eq!((counts.scheduled, counts.ready), (1, 0));
    let record = block_on(client.outcome(&handle)).unwrap();
    assert_eq!(record.status, Status::Succeeded);
    assert!(record.finished_at_ms.unwrap() >= ms(at));
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
}

fn cancelling_a_queued_job_keeps_it_from_starting(backend: Arc<dyn Backend>) {
    let q = queue("cancel-queued");
    let client = client(&backend);
    let job = NewJob::new::<Echo>(&"never".into()).unwrap();
    let handle = block_on(client.enqueue(&q, job)).unwrap();
    assert!(block_on(client.cancel(handle.id())).unwrap());
    assert!(!block_on(client.cancel(handle.id())).unwrap());
    let w = worker(&backend, &q).handler(Echo).unwrap().build().unwrap();
    let serving = serve(&w);
    let record = block_on(client.outcome(&handle)).unwrap();
    assert_eq!((record.status, record.attempts), (Status::Cancelled, 0));
    assert_eq!(block_on(client.counts(&q)).unwrap().cancelled, 1);
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
    assert_eq!(w.stats().succeeded, 0);
}

fn cancelling_a_running_job_drops_its_run(backend: Arc<dyn Backend>) {
    let q = queue("cancel-running");
    let client = client(&backend);
    let probe = Arc::new(Probe::default());
    let w = worker(&backend, &q).lease(Duration::from_millis(300));
    let w = w.handler(Sleep(probe.clone())).unwrap().build().unwrap();
    let serving = serve(&w);
    let handle = block_on(client.enqueue(&q, NewJob::new::<Sleep>(&60_000).unwrap())).unwrap();
    wait_until(10, "the job to start", || probe.running() == 1);
    assert!(block_on(client.cancel(handle.id())).unwrap());
    wait_until(10, "the run to be dropped", || probe.running() == 0);
    let record = block_on(client.outcome(&handle)).unwrap();
    assert_eq!(record.status, Status::Cancelled);
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
    assert_eq!((w.stats().lost, w.stats().succeeded), (1, 0));
}

fn a_passed_deadline_fails_the_job_without_running_it(backend: Arc<dyn Backend>) {
    let q = queue("deadline");
    let client = client(&backend);
    let probe = Arc::new(Probe::default());
    let w = worker(&backend, &q)
        .handler(Sleep(probe.clone()))
        .unwrap()
        .build()
        .unwrap();
    let serving = serve(&w);
    let job = NewJob::new::<Sleep>(&1)
        .unwrap()
        .max_attempts(3)
        .deadline(SystemTime::now() - Duration::from_secs(1));
    let handle = block_on(client.enqueue(&q, job)).unwrap();
    let record = block_on(client.outcome(&handle)).unwrap();
    assert_eq!((record.status, record.attempts), (Status::Dead, 1));
    assert!(record.error.unwrap().contains("deadline passed"));
    assert_eq!(probe.started(), 0);
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
}

fn an_attempt_over_its_timeout_fails_and_is_retried(backend: Arc<dyn Backend>) {
    let q = queue("timeout");
    let client = client(&backend);
    let probe = Arc::new(Probe::default());
    let w = worker(&backend, &q)
        .handler(Sleep(probe.clone()))
        .unwrap()
        .build()
        .unwrap();
    let serving = serve(&w);
    let job = NewJob::new::<Sleep>(&60_000)
        .unwrap()
        .timeout(Duration::from_millis(50))
        .max_attempts(2);
    let handle = block_on(client.enqueue(&q, job)).unwrap();
    let record = block_on(client.outcome(&handle)).unwrap();
    assert_eq!((record.status, record.attempts), (Status::Dead, 2));
    assert!(record
        .error
        .unwrap()
        .contains("attempt 2 timed out after 50ms"));
    assert_eq!((probe.started(), probe.running()), (2, 0));
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
}

fn a_panic_is_a_failed_attempt(backend: Arc<dyn Backend>) {
    let q = queue("panic");
    let client = client(&backend);
    let w = worker(&backend, &q)
        .handler(Boom)
        .unwrap()
        .handler(Echo)
        .unwrap()
        .build()
        .unwrap();
    let serving = serve(&w);
    let boom =
        block_on(client.enqueue(&q, NewJob::new::<Boom>(&()).unwrap().max_attempts(2))).unwrap();
    let record = block_on(client.outcome(&boom)).unwrap();
    assert_eq!((record.status, record.attempts), (Status::Dead, 2));
    assert!(record
        .error
        .unwrap()
        .contains("handler panicked: boom on purpose"));
    // The worker goes on.
    let echo = block_on(client.enqueue(&q, NewJob::new::<Echo>(&"after".into()).unwrap())).unwrap();
    assert_eq!(
        block_on(client.outcome(&echo)).unwrap().status,
        Status::Succeeded
    );
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
}

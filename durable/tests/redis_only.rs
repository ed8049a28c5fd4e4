//! What only the Redis backend does: wake-ups through pub/sub across
//! connections, and connection errors that keep the URL's secrets.

mod common;

/// Without the feature the Redis suites are not built: say so.
#[cfg(not(feature = "redis"))]
#[test]
fn redis_tests_need_the_redis_feature() {
    common::skipped(
        "the Redis tests: built without the `redis` feature \
         (run: WPXT_REDIS_URL=redis://... cargo test -p workerpoolxt-durable --features redis)",
    );
}

#[cfg(feature = "redis")]
mod on_redis {
    use super::common;

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use common::{block_on, queue, serve, Probe, Sleep};
    use workerpoolxt_durable::{Backend, Client, NewJob, RedisBackend, Status, Worker};

    #[test]
    fn an_outcome_is_woken_by_a_publish_from_another_connection() {
        let Some(url) = common::redis_url() else {
            return;
        };
        let q = queue("publish");
        let producer: Arc<dyn Backend> = Arc::new(RedisBackend::connect(&url).unwrap());
        let consumer: Arc<dyn Backend> = Arc::new(RedisBackend::connect(&url).unwrap());
        let client = Client::from_arc(producer).poll_interval(Duration::from_secs(60));
        let w = Worker::builder(consumer, &q)
            .poll_interval(Duration::from_secs(60))
            .handler(Sleep(Arc::new(Probe::default())))
            .unwrap()
            .build()
            .unwrap();
        let serving = serve(&w);
        let start = Instant::now();
        let handle = block_on(client.enqueue(&q, NewJob::new::<Sleep>(&2_500).unwrap())).unwrap();
        let record = block_on(client.outcome(&handle)).unwrap();
        let waited = start.elapsed();
        assert_eq!(record.status, Status::Succeeded);
        // Polling alone, its wait doubling from 2 ms, would look next at
        // about 4.1 s; the worker's PUBLISH wakes the wait at once.
        assert!(waited < Duration::from_millis(4_000), "waited {waited:?}");
        block_on(w.stop(Duration::from_secs(5)));
        serving.join().unwrap();
    }

    #[cfg(not(feature = "redis-tls"))]
    #[test]
    fn a_tls_url_is_refused_without_the_tls_feature() {
        let e = RedisBackend::connect("rediss://u:s3cret-pw@127.0.0.1:6380/").unwrap_err();
        assert!(
            e.to_string().contains("redis-tls") && !e.to_string().contains("s3cret-pw"),
            "{e}"
        );
    }

    #[test]
    fn connection_errors_do_not_show_the_url_or_its_password() {
        let url = "redis://wpxt_user:s3cret-pw@127.0.0.1:1/";
        let e = RedisBackend::connect(url).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("s3cret-pw") && !text.contains(url), "{text}");
        assert!(text.contains("redis"), "{text}");
        let e = RedisBackend::connect("redis://u:s3cret-pw@[not a host").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("s3cret-pw"));
    }
}

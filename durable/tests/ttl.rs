//! Records of ended jobs live for the backend's time to live, then are gone
//! (and a worker's purge deletes what is left of them).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{block_on, client, queue, serve, wait_until, Echo};
use workerpoolxt_durable::{Backend, Error, NewJob, SqliteBackend, Status, Worker};

const TTL: Duration = Duration::from_millis(300);

fn records_expire_after_their_ttl(backend: Arc<dyn Backend>) {
    let q = queue("ttl");
    let client = client(&backend);
    let w = Worker::builder(backend.clone(), &q)
        .handler(Echo)
        .unwrap()
        .build()
        .unwrap();
    let serving = serve(&w);
    let done = block_on(client.enqueue(&q, NewJob::new::<Echo>(&"x".into()).unwrap())).unwrap();
    let cancelled = block_on(
        client.enqueue(
            &q,
            NewJob::new::<Echo>(&"y".into())
                .unwrap()
                .delay(Duration::from_secs(3_600)),
        ),
    )
    .unwrap();
    assert_eq!(
        block_on(client.outcome(&done)).unwrap().status,
        Status::Succeeded
    );
    assert!(block_on(client.cancel(cancelled.id())).unwrap());
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
    let counts = block_on(client.counts(&q)).unwrap();
    assert_eq!((counts.succeeded, counts.cancelled), (1, 1));
    wait_until(10, "the records to expire", || {
        block_on(client.record(done.id())).unwrap().is_none()
            && block_on(client.record(cancelled.id())).unwrap().is_none()
    });
    assert_eq!(
        block_on(client.outcome(&done)),
        Err(Error::NotFound(done.id().clone()))
    );
    assert_eq!(block_on(client.counts(&q)).unwrap(), Default::default());
    backend.purge().unwrap();
    assert_eq!(
        backend.purge().unwrap(),
        0,
        "a second purge finds nothing left"
    );
}

#[test]
fn sqlite_records_expire_after_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(dir.path().join("jobs.db"))
        .unwrap()
        .record_ttl(TTL);
    records_expire_after_their_ttl(Arc::new(backend));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_records_expire_after_their_ttl() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let backend = workerpoolxt_durable::PgBackend::connect(&url)
        .unwrap()
        .record_ttl(TTL);
    records_expire_after_their_ttl(Arc::new(backend));
}

#[cfg(feature = "redis")]
#[test]
fn redis_records_expire_after_their_ttl() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let backend = workerpoolxt_durable::RedisBackend::connect(&url)
        .unwrap()
        .record_ttl(TTL);
    records_expire_after_their_ttl(Arc::new(backend));
}

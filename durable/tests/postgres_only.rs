//! What only the PostgreSQL backend does: wake-ups through LISTEN/NOTIFY
//! across connections, and connection errors that keep the URL's secrets.

mod common;

/// Without the feature the PostgreSQL suites are not built: say so.
#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_tests_need_the_postgres_feature() {
    common::skipped(
        "the PostgreSQL tests: built without the `postgres` feature \
         (run: WPXT_POSTGRES_URL=postgres://... cargo test -p workerpoolxt-durable --features postgres)",
    );
}

#[cfg(feature = "postgres")]
mod on_postgres {
    use super::common;

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use common::{block_on, queue, serve, Probe, Sleep};
    use workerpoolxt_durable::{Backend, Client, NewJob, PgBackend, Status, Worker};

    #[test]
    fn an_outcome_is_woken_by_a_notify_from_another_connection() {
        let Some(url) = common::postgres_url() else {
            return;
        };
        let q = queue("notify");
        // The producer and the worker share no memory: only the server links them.
        let producer: Arc<dyn Backend> = Arc::new(PgBackend::connect(&url).unwrap());
        let consumer: Arc<dyn Backend> = Arc::new(PgBackend::connect(&url).unwrap());
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
        // Polling alone, its wait doubling from 2 ms, would look next at about
        // 4.1 s and then 8.2 s; the worker's NOTIFY wakes the wait at once.
        assert!(waited < Duration::from_millis(4_000), "waited {waited:?}");
        block_on(w.stop(Duration::from_secs(5)));
        serving.join().unwrap();
    }

    #[test]
    fn connection_errors_do_not_show_the_url_or_its_password() {
        let url = "postgres://wpxt_user:s3cret-pw@127.0.0.1:1/test";
        let e = PgBackend::connect(url).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("s3cret-pw") && !text.contains(url), "{text}");
        assert!(text.contains("postgres"), "{text}");
        let e = PgBackend::connect("postgres://u:s3cret-pw@[not a host").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("s3cret-pw"));
    }

    #[cfg(not(feature = "postgres-tls"))]
    #[test]
    fn a_url_that_requires_tls_is_refused_without_the_tls_feature() {
        let Some(url) = common::postgres_url() else {
            return;
        };
        let e = PgBackend::connect(&with_param(&url, "sslmode=require")).unwrap_err();
        assert!(e.to_string().contains("postgres-tls"), "{e}");
    }

    /// Every connection of a backend made from a URL with `sslmode=require`
    /// is encrypted, as the server sees it.
    #[cfg(feature = "postgres-tls")]
    #[test]
    fn a_url_that_requires_tls_gets_tls() {
        let Some(url) = common::postgres_url() else {
            return;
        };
        let mut plain = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let ssl: String = plain.query_one("SHOW ssl", &[]).unwrap().get(0);
        if ssl != "on" {
            return common::skipped("the PostgreSQL TLS test: the server has ssl off");
        }
        let app = format!("wpxt_tls_{:08x}", fastrand::u32(..));
        let tls_url = with_param(&url, &format!("sslmode=require&application_name={app}"));
        // The test server's certificate is self-signed: the system's roots
        // refuse it, and an explicit connector that trusts it is needed.
        let e = PgBackend::connect(&tls_url).unwrap_err();
        assert!(!e.to_string().contains(&tls_url), "{e}");
        let trusting = native_tls::TlsConnector::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let backend = PgBackend::connect_with_tls(&tls_url, trusting).unwrap();
        let client = Client::new(backend);
        let q = queue("tls");
        block_on(client.counts(&q)).unwrap();
        let mut seen: (i64, bool) = (0, false);
        // Four connections and the listener's, which connects on its thread.
        common::wait_until(30, "five connections of the backend", || {
            let row = plain
                .query_one(
                    "SELECT COUNT(*), COALESCE(BOOL_AND(s.ssl), false) FROM pg_stat_ssl s \
                     JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
                    &[&app],
                )
                .unwrap();
            seen = (row.get(0), row.get(1));
            seen.0 >= 5
        });
        assert!(seen.1, "a connection without TLS: {seen:?}");
    }

    fn with_param(url: &str, param: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{param}")
    }
}

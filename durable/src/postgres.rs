//! The PostgreSQL backend: the engine for many machines.
//!
//! Claims take due rows with `FOR UPDATE SKIP LOCKED`, so workers on many
//! machines never wait on each other's rows nor lease the same job. Every
//! time is read from the server's clock (`now()`), so the machines' clocks
//! do not decide when a lease expired. Enqueues and ends send a `NOTIFY`;
//! a listener thread per backend turns them into [`Notifier`] wake-ups, and
//! waits fall back to polling if it is down.
//!
//! The client is the synchronous `postgres` crate, which runs its I/O on a
//! private single-threaded tokio runtime inside each connection: the API
//! stays runtime-agnostic, and nothing here needs the caller's runtime.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls, Row};

use crate::backend::{
    add_count, Ack, Backend, Counts, End, Lease, Notifier, Record, Status, DEFAULT_RECORD_TTL,
};
use crate::clock::dur_ms;
use crate::envelope::{Envelope, JobId};
use crate::error::Error;
use crate::name::{validate_name, NameKind};

/// The server's clock in UTC milliseconds (constant statement text).
const NOW: &str = "(extract(epoch from now()) * 1000)::bigint";

/// The channel of the wake-ups.
const CHANNEL: &str = "wpxt_jobs";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wpxt_jobs (
    id              TEXT PRIMARY KEY,
    queue           TEXT NOT NULL,
    handler         TEXT NOT NULL,
    name            TEXT,
    payload         TEXT NOT NULL,
    timeout_ms      BIGINT,
    deadline_ms     BIGINT,
    attempts        INTEGER NOT NULL,
    max_attempts    INTEGER NOT NULL,
    backoff         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    state           TEXT NOT NULL,
    run_at          BIGINT NOT NULL,
    enqueued_at     BIGINT NOT NULL,
    lease_token     BIGINT NOT NULL DEFAULT 0,
    lease_worker    TEXT,
    lease_until     BIGINT,
    queued_ms       BIGINT NOT NULL DEFAULT 0,
    run_ms          BIGINT NOT NULL DEFAULT 0,
    output          TEXT,
    error           TEXT,
    finished_at     BIGINT,
    expires_at      BIGINT
);
CREATE INDEX IF NOT EXISTS wpxt_jobs_due ON wpxt_jobs (queue, state, run_at);
CREATE INDEX IF NOT EXISTS wpxt_jobs_expiry ON wpxt_jobs (expires_at) WHERE expires_at IS NOT NULL;
";

const ENVELOPE_COLUMNS: &str =
    "id, queue, handler, payload, name, timeout_ms, deadline_ms, attempts, \
     max_attempts, backoff, idempotency_key, run_at, enqueued_at, lease_token";

const RECORD_COLUMNS: &str =
    "id, queue, handler, name, state, output, error, attempts, max_attempts, \
     queued_ms, run_ms, finished_at";

/// How many connections a backend opens unless told otherwise.
const DEFAULT_CONNECTIONS: usize = 4;

/// A queue store in a PostgreSQL database (table `wpxt_jobs`, created if
/// missing).
///
/// The URL is a libpq-style URL or key-value string. It is kept only to
/// reconnect the listener, and never shown: not in errors, not in `Debug`.
///
/// # Examples
///
/// ```no_run
/// use workerpoolxt_durable::{Client, PgBackend};
///
/// let backend = PgBackend::connect("postgres://postgres@127.0.0.1:5432/test").unwrap();
/// let client = Client::new(backend);
/// # let _ = client;
/// ```
pub struct PgBackend {
    conns: Vec<Mutex<Client>>,
    next: AtomicUsize,
    notifier: Arc<Notifier>,
    listening: Arc<AtomicBool>,
    ttl_ms: i64,
}

impl PgBackend {
    /// Connects (4 connections and a listener thread), and creates the table
    /// if missing. Blocks.
    ///
    /// TLS is turned on by the URL: `sslmode=require` encrypts every
    /// connection, and verifies the server's certificate against the
    /// system's trusted roots; this needs the `postgres-tls` feature (without
    /// it such a URL is refused). `sslmode=prefer` (the default) and
    /// `disable` connect without TLS. To trust other roots, see
    /// `connect_with_tls` (feature `postgres-tls`).
    pub fn connect(url: &str) -> Result<PgBackend, Error> {
        PgBackend::connect_via(url, Tls::from_url)
    }

    /// Connects like [`connect`](PgBackend::connect), with TLS through this
    /// connector (its roots, its certificate checks) whenever the URL says
    /// `sslmode=require` or `prefer`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use workerpoolxt_durable::PgBackend;
    ///
    /// let mut roots = native_tls::TlsConnector::builder();
    /// let pem = std::fs::read("/etc/my-ca.pem").unwrap();
    /// roots.add_root_certificate(native_tls::Certificate::from_pem(&pem).unwrap());
    /// let backend = PgBackend::connect_with_tls(
    ///     "postgres://app@db.internal/jobs?sslmode=require",
    ///     roots.build().unwrap(),
    /// )
    /// .unwrap();
    /// # let _ = backend;
    /// ```
    #[cfg(feature = "postgres-tls")]
    pub fn connect_with_tls(
        url: &str,
        connector: native_tls::TlsConnector,
    ) -> Result<PgBackend, Error> {
        let tls = Tls::Native(postgres_native_tls::MakeTlsConnector::new(connector));
        PgBackend::connect_via(url, |_| Ok(tls))
    }

    fn connect_via(
        url: &str,
        tls: impl FnOnce(&Config) -> Result<Tls, Error>,
    ) -> Result<PgBackend, Error> {
        let config =
            Config::from_str(url).map_err(|_| Error::Backend("invalid PostgreSQL URL".into()))?;
        let secret = Secret::of(url, &config);
        let tls = tls(&config)?;
        let mut conns = Vec::with_capacity(DEFAULT_CONNECTIONS);
        for _ in 0..DEFAULT_CONNECTIONS {
            conns.push(Mutex::new(
                tls.connect(&config).map_err(|e| secret.error(&e))?,
            ));
        }
        create_schema(conns[0].get_mut().unwrap_or_else(|p| p.into_inner()))
            .map_err(|e| secret.error(&e))?;
        let notifier = Arc::new(Notifier::new());
        let listening = Arc::new(AtomicBool::new(true));
        spawn_listener(config, tls, Arc::clone(&notifier), Arc::clone(&listening));
        Ok(PgBackend {
            conns,
            next: AtomicUsize::new(0),
            notifier,
            listening,
            ttl_ms: dur_ms(DEFAULT_RECORD_TTL),
        })
    }

    /// Keeps the records of ended jobs for `ttl` after they end (default:
    /// [`DEFAULT_RECORD_TTL`]).
    pub fn record_ttl(mut self, ttl: Duration) -> PgBackend {
        self.ttl_ms = dur_ms(ttl);
        self
    }

    /// A connection: the next free one, or the next in turn.
    fn conn(&self) -> MutexGuard<'_, Client> {
        for c in &self.conns {
            if let Ok(c) = c.try_lock() {
                return c;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs an INSERT or UPDATE of job rows and, in the same statement (one
    /// commit), NOTIFYs listeners of each changed row's queue; returns how
    /// many rows changed.
    fn change_and_notify(
        conn: &mut Client,
        change: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<usize, Error> {
        let sql = format!(
            "WITH changed AS ({change} RETURNING queue) \
             SELECT pg_notify('{CHANNEL}', queue) FROM changed"
        );
        Ok(conn.query(&sql, params).map_err(engine)?.len())
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        self.listening.store(false, Ordering::SeqCst);
    }
}

impl fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBackend")
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

/// How connections are made: plain, or through a TLS connector.
#[derive(Clone)]
enum Tls {
    Off,
    #[cfg(feature = "postgres-tls")]
    Native(postgres_native_tls::MakeTlsConnector),
}

impl Tls {
    /// What the URL asks for: TLS (verified against the system's roots) for
    /// `sslmode=require`, none otherwise.
    fn from_url(config: &Config) -> Result<Tls, Error> {
        if config.get_ssl_mode() != postgres::config::SslMode::Require {
            return Ok(Tls::Off);
        }
        #[cfg(feature = "postgres-tls")]
        {
            let connector = native_tls::TlsConnector::new()
                .map_err(|e| Error::Backend(format!("postgres: TLS setup failed: {e}")))?;
            Ok(Tls::Native(postgres_native_tls::MakeTlsConnector::new(
                connector,
            )))
        }
        #[cfg(not(feature = "postgres-tls"))]
        Err(Error::Config(
            "the URL requires TLS (sslmode=require): build with the `postgres-tls` feature".into(),
        ))
    }

    fn connect(&self, config: &Config) -> Result<Client, postgres::Error> {
        match self {
            Tls::Off => config.connect(NoTls),
            #[cfg(feature = "postgres-tls")]
            Tls::Native(connector) => config.connect(connector.clone()),
        }
    }
}

/// What must not appear in an error: the URL and the password.
struct Secret {
    url: String,
    password: Option<String>,
}

impl Secret {
    fn of(url: &str, config: &Config) -> Secret {
        Secret {
            url: url.to_string(),
            password: config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        }
    }

    fn error(&self, e: &postgres::Error) -> Error {
        let mut text = e.to_string();
        for secret in std::iter::once(&self.url).chain(&self.password) {
            if !secret.is_empty() {
                text = text.replace(secret.as_str(), "[withheld]");
            }
        }
        Error::Backend(format!("postgres: {text}"))
    }
}

/// An engine error, reduced to the server's or the client's message (which
/// never holds the URL).
fn engine(e: postgres::Error) -> Error {
    Error::Backend(format!("postgres: {e}"))
}

fn create_schema(conn: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = conn.transaction()?;
    // Parallel first connections would race on CREATE TABLE IF NOT EXISTS.
    tx.execute("SELECT pg_advisory_xact_lock(7302016)", &[])?;
    tx.batch_execute(SCHEMA)?;
    tx.commit()
}

/// A thread that LISTENs and wakes the notifier; it reconnects after a
/// failure and ends once the backend is dropped.
fn spawn_listener(config: Config, tls: Tls, notifier: Arc<Notifier>, listening: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("wpxt-pg-listen".into())
        .spawn(move || {
            while listening.load(Ordering::SeqCst) {
                let _ = listen(&config, &tls, &notifier, &listening);
                // Whatever was missed while down is found by polling.
                notifier.notify();
                std::thread::sleep(Duration::from_millis(500));
            }
        })
        .map(drop)
        .unwrap_or(());
}

fn listen(
    config: &Config,
    tls: &Tls,
    notifier: &Notifier,
    listening: &AtomicBool,
) -> Result<(), postgres::Error> {
    let mut conn = tls.connect(config)?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    // Changes made before the LISTEN took hold sent no wake-up here: wake
    // the waiters once, so they look again.
    notifier.notify();
    while listening.load(Ordering::SeqCst) {
        let mut woke = false;
        {
            let mut notifications = conn.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_millis(500));
            while iter.next()?.is_some() {
                woke = true;
            }
        }
        if woke {
            notifier.notify();
        }
        if conn.is_closed() {
            return Ok(());
        }
    }
    Ok(())
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Backend for PgBackend {
    fn enqueue(&self, job: &Envelope) -> Result<(), Error> {
        let backoff = serde_json::to_string(&job.backoff)?;
        let timeout = job.timeout_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
        let mut conn = self.conn();
        PgBackend::change_and_notify(
            &mut conn,
            "INSERT INTO wpxt_jobs (id, queue, handler, payload, name, timeout_ms, deadline_ms, \
             attempts, max_attempts, backoff, idempotency_key, state, run_at, enqueued_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'queued', $12, $13)",
            &[
                &job.id.as_str(),
                &job.queue,
                &job.handler,
                &job.payload,
                &job.name,
                &timeout,
                &job.deadline_ms,
                &to_i32(job.attempts),
                &to_i32(job.max_attempts),
                &backoff,
                &job.idempotency_key,
                &job.run_at_ms,
                &job.enqueued_at_ms,
            ],
        )?;
        drop(conn);
        self.notifier.notify();
        Ok(())
    }

    fn claim(
        &self,
        queue: &str,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Lease>, Error> {
        validate_name(NameKind::Queue, queue)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        // One statement, one round trip: jobs whose lease expired on their
        // last attempt die (the data-modifying CTE always runs), and the due
        // ones are leased; the two sets are disjoint.
        let sql = format!(
            "WITH expired AS (UPDATE wpxt_jobs SET state = 'dead', lease_worker = NULL, \
               finished_at = {NOW}, expires_at = {NOW} + $5, \
               error = 'the lease of attempt ' || attempts || ' of ' || max_attempts || \
                       ' expired (its worker died or stalled); no attempt is left' \
               WHERE queue = $1 AND state = 'running' AND lease_until < {NOW} \
               AND attempts >= max_attempts RETURNING id), \
             picked AS (SELECT id FROM wpxt_jobs WHERE queue = $1 AND \
               ((state = 'queued' AND run_at <= {NOW}) OR \
                (state = 'running' AND lease_until < {NOW} AND attempts < max_attempts)) \
               ORDER BY run_at, enqueued_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE wpxt_jobs j SET state = 'running', attempts = j.attempts + 1, \
               lease_token = j.lease_token + 1, lease_worker = $2, lease_until = {NOW} + $4, \
               queued_ms = GREATEST(0, {NOW} - GREATEST(j.run_at, j.enqueued_at)) \
             FROM picked WHERE j.id = picked.id RETURNING {}, {NOW}",
            ENVELOPE_COLUMNS
                .split(", ")
                .map(|c| format!("j.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = self
            .conn()
            .query(
                &sql,
                &[&queue, &worker, &to_i64(max), &dur_ms(lease), &self.ttl_ms],
            )
            .map_err(engine)?;
        rows.iter().map(lease_from_row).collect()
    }

    fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<bool, Error> {
        let n = self
            .conn()
            .execute(
                &format!(
                    "UPDATE wpxt_jobs SET lease_until = {NOW} + $3 \
                     WHERE id = $1 AND lease_token = $2 AND state = 'running' AND lease_until >= {NOW}"
                ),
                &[&lease.envelope.id.as_str(), &lease.token, &dur_ms(lease_for)],
            )
            .map_err(engine)?;
        Ok(n == 1)
    }

    fn finish(&self, lease: &Lease, end: &End) -> Result<Ack, Error> {
        let id = lease.envelope.id.as_str();
        let fence = format!(
            "WHERE id = $1 AND lease_token = $2 AND state = 'running' AND lease_until >= {NOW}"
        );
        let mut conn = self.conn();
        let n = match end {
            End::Succeeded { output, run_ms } => PgBackend::change_and_notify(
                &mut conn,
                &format!(
                    "UPDATE wpxt_jobs SET state = 'succeeded', output = $3, error = NULL, run_ms = $4, \
                     finished_at = {NOW}, expires_at = {NOW} + $5, lease_worker = NULL {fence}"
                ),
                &[&id, &lease.token, output, run_ms, &self.ttl_ms],
            ),
            End::Retry {
                error,
                run_at_ms,
                run_ms,
            } => PgBackend::change_and_notify(
                &mut conn,
                &format!(
                    "UPDATE wpxt_jobs SET state = 'queued', error = $3, run_at = $4, run_ms = $5, \
                     lease_worker = NULL, lease_until = NULL {fence}"
                ),
                &[&id, &lease.token, error, run_at_ms, run_ms],
            ),
            End::Dead { error, run_ms } => PgBackend::change_and_notify(
                &mut conn,
                &format!(
                    "UPDATE wpxt_jobs SET state = 'dead', error = $3, run_ms = $4, finished_at = {NOW}, \
                     expires_at = {NOW} + $5, lease_worker = NULL {fence}"
                ),
                &[&id, &lease.token, error, run_ms, &self.ttl_ms],
            ),
            End::Released => PgBackend::change_and_notify(
                &mut conn,
                &format!(
                    "UPDATE wpxt_jobs SET state = 'queued', attempts = attempts - 1, run_at = {NOW}, \
                     lease_worker = NULL, lease_until = NULL {fence}"
                ),
                &[&id, &lease.token],
            ),
        }?;
        if n != 1 {
            return Ok(Ack::Refused);
        }
        drop(conn);
        self.notifier.notify();
        Ok(Ack::Accepted)
    }

    fn cancel(&self, id: &JobId) -> Result<bool, Error> {
        let n = PgBackend::change_and_notify(
            &mut self.conn(),
            &format!(
                "UPDATE wpxt_jobs SET state = 'cancelled', finished_at = {NOW}, expires_at = {NOW} + $2, \
                 lease_worker = NULL WHERE id = $1 AND state IN ('queued', 'running')"
            ),
            &[&id.as_str(), &self.ttl_ms],
        )?;
        if n == 1 {
            self.notifier.notify();
        }
        Ok(n == 1)
    }

    fn record(&self, id: &JobId) -> Result<Option<Record>, Error> {
        let row = self
            .conn()
            .query_opt(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM wpxt_jobs WHERE id = $1 \
                     AND (expires_at IS NULL OR expires_at >= {NOW})"
                ),
                &[&id.as_str()],
            )
            .map_err(engine)?;
        row.as_ref().map(record_from_row).transpose()
    }

    fn counts(&self, queue: &str) -> Result<Counts, Error> {
        validate_name(NameKind::Queue, queue)?;
        let rows = self
            .conn()
            .query(
                &format!(
                    "SELECT state, run_at > {NOW}, COUNT(*) FROM wpxt_jobs \
                     WHERE queue = $1 AND (expires_at IS NULL OR expires_at >= {NOW}) GROUP BY 1, 2"
                ),
                &[&queue],
            )
            .map_err(engine)?;
        let mut counts = Counts::default();
        for row in rows {
            let state: String = row.get(0);
            add_count(&mut counts, Status::parse(&state)?, row.get(1), row.get(2));
        }
        Ok(counts)
    }

    fn dead(&self, queue: &str, limit: usize) -> Result<Vec<Record>, Error> {
        validate_name(NameKind::Queue, queue)?;
        let rows = self
            .conn()
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM wpxt_jobs WHERE queue = $1 AND state = 'dead' \
                     AND expires_at >= {NOW} ORDER BY finished_at DESC LIMIT $2"
                ),
                &[&queue, &to_i64(limit)],
            )
            .map_err(engine)?;
        rows.iter().map(record_from_row).collect()
    }

    fn purge(&self) -> Result<u64, Error> {
        self.conn()
            .execute(
                &format!(
                    "DELETE FROM wpxt_jobs WHERE expires_at IS NOT NULL AND expires_at < {NOW}"
                ),
                &[],
            )
            .map_err(engine)
    }

    fn notifier(&self) -> &Notifier {
        &self.notifier
    }
}

fn lease_from_row(r: &Row) -> Result<Lease, Error> {
    let backoff: String = r.try_get(9).map_err(engine)?;
    let id: String = r.try_get(0).map_err(engine)?;
    let timeout: Option<i64> = r.try_get(5).map_err(engine)?;
    let attempts: i32 = r.try_get(7).map_err(engine)?;
    let max_attempts: i32 = r.try_get(8).map_err(engine)?;
    Ok(Lease {
        envelope: Envelope {
            id: JobId::parse(&id)?,
            queue: r.try_get(1).map_err(engine)?,
            handler: r.try_get(2).map_err(engine)?,
            payload: r.try_get(3).map_err(engine)?,
            name: r.try_get(4).map_err(engine)?,
            timeout_ms: timeout.map(|t| u64::try_from(t).unwrap_or(0)),
            deadline_ms: r.try_get(6).map_err(engine)?,
            attempts: u32::try_from(attempts).unwrap_or(0),
            max_attempts: u32::try_from(max_attempts).unwrap_or(0),
            backoff: serde_json::from_str(&backoff)?,
            idempotency_key: r.try_get(10).map_err(engine)?,
            run_at_ms: r.try_get(11).map_err(engine)?,
            enqueued_at_ms: r.try_get(12).map_err(engine)?,
        },
        token: r.try_get(13).map_err(engine)?,
        claimed_at_ms: r.try_get(14).map_err(engine)?,
    })
}

fn record_from_row(r: &Row) -> Result<Record, Error> {
    let id: String = r.try_get(0).map_err(engine)?;
    let state: String = r.try_get(4).map_err(engine)?;
    let attempts: i32 = r.try_get(7).map_err(engine)?;
    let max_attempts: i32 = r.try_get(8).map_err(engine)?;
    Ok(Record {
        id: JobId::parse(&id)?,
        queue: r.try_get(1).map_err(engine)?,
        handler: r.try_get(2).map_err(engine)?,
        name: r.try_get(3).map_err(engine)?,
        status: Status::parse(&state)?,
        output: r.try_get(5).map_err(engine)?,
        error: r.try_get(6).map_err(engine)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        max_attempts: u32::try_from(max_attempts).unwrap_or(0),
        queued_ms: r.try_get(9).map_err(engine)?,
        run_ms: r.try_get(10).map_err(engine)?,
        finished_at_ms: r.try_get(11).map_err(engine)?,
    })
}

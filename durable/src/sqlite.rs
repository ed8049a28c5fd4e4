//! The embedded SQLite backend: one file, no server; several processes on
//! one host may share it.
//!
//! The file is opened in WAL mode with a busy timeout, so readers do not
//! block the writer and writers queue up instead of failing. A claim is one
//! `BEGIN IMMEDIATE` transaction, which takes the file's write lock first:
//! two processes never lease the same job. SQLite cannot tell another
//! process of a change, so waits across processes fall back to polling;
//! within a process the [`Notifier`] wakes them at once.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::backend::{
    add_count, Ack, Backend, Counts, End, Lease, Notifier, Record, Status, DEFAULT_RECORD_TTL,
};
use crate::clock::{dur_ms, now_ms};
use crate::envelope::{Envelope, JobId};
use crate::error::Error;
use crate::name::{validate_name, NameKind};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wpxt_jobs (
    id              TEXT PRIMARY KEY,
    queue           TEXT NOT NULL,
    handler         TEXT NOT NULL,
    name            TEXT,
    payload         TEXT NOT NULL,
    timeout_ms      INTEGER,
    deadline_ms     INTEGER,
    attempts        INTEGER NOT NULL,
    max_attempts    INTEGER NOT NULL,
    backoff         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    state           TEXT NOT NULL,
    run_at          INTEGER NOT NULL,
    enqueued_at     INTEGER NOT NULL,
    lease_token     INTEGER NOT NULL DEFAULT 0,
    lease_worker    TEXT,
    lease_until     INTEGER,
    queued_ms       INTEGER NOT NULL DEFAULT 0,
    run_ms          INTEGER NOT NULL DEFAULT 0,
    output          TEXT,
    error           TEXT,
    finished_at     INTEGER,
    expires_at      INTEGER
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

/// A queue store in one SQLite file.
///
/// # Examples
///
/// ```
/// use workerpoolxt_durable::SqliteBackend;
///
/// let dir = tempfile::tempdir().unwrap();
/// let backend = SqliteBackend::open(dir.path().join("jobs.db")).unwrap();
/// # let _ = backend;
/// ```
pub struct SqliteBackend {
    conn: Mutex<Connection>,
    notifier: Notifier,
    ttl_ms: i64,
}

impl SqliteBackend {
    /// Opens (creating if needed) the queue file at `path`, in WAL mode with
    /// a 10 s busy timeout, and creates its table if missing. Blocks.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteBackend, Error> {
        let conn = Connection::open(path).map_err(engine)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(engine)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(engine)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(engine)?;
        conn.execute_batch(SCHEMA).map_err(engine)?;
        Ok(SqliteBackend {
            conn: Mutex::new(conn),
            notifier: Notifier::new(),
            ttl_ms: dur_ms(DEFAULT_RECORD_TTL),
        })
    }

    /// Keeps the records of ended jobs (succeeded, dead, cancelled) for
    /// `ttl` after they end (default: [`DEFAULT_RECORD_TTL`]); later, a
    /// worker's periodic purge deletes them.
    pub fn record_ttl(mut self, ttl: Duration) -> SqliteBackend {
        self.ttl_ms = dur_ms(ttl);
        self
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a transaction open
        // (rusqlite rolls back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend").finish_non_exhaustive()
    }
}

/// An engine error, reduced to SQLite's message.
fn engine(e: rusqlite::Error) -> Error {
    Error::Backend(format!("sqlite: {e}"))
}

impl Backend for SqliteBackend {
    fn enqueue(&self, job: &Envelope) -> Result<(), Error> {
        let backoff = serde_json::to_string(&job.backoff)?;
        self.conn()
            .execute(
                "INSERT INTO wpxt_jobs (id, queue, handler, payload, name, timeout_ms, deadline_ms, \
                 attempts, max_attempts, backoff, idempotency_key, state, run_at, enqueued_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'queued', ?12, ?13)",
                params![
                    job.id.as_str(),
                    job.queue,
                    job.handler,
                    job.payload,
                    job.name,
                    job.timeout_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                    job.deadline_ms,
                    job.attempts,
                    job.max_attempts,
                    backoff,
                    job.idempotency_key,
                    job.run_at_ms,
                    job.enqueued_at_ms,
                ],
            )
            .map_err(engine)?;
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
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(engine)?;
        let now = now_ms();
        tx.execute(
            "UPDATE wpxt_jobs SET state = 'dead', lease_worker = NULL, finished_at = ?2, \
             expires_at = ?2 + ?3, \
             error = 'the lease of attempt ' || attempts || ' of ' || max_attempts || \
                     ' expired (its worker died or stalled); no attempt is left' \
             WHERE queue = ?1 AND state = 'running' AND lease_until < ?2 AND attempts >= max_attempts",
            params![queue, now, self.ttl_ms],
        )
        .map_err(engine)?;
        let ids: Vec<String> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id FROM wpxt_jobs WHERE queue = ?1 AND \
                     ((state = 'queued' AND run_at <= ?2) OR (state = 'running' AND lease_until < ?2)) \
                     ORDER BY run_at, enqueued_at LIMIT ?3",
                )
                .map_err(engine)?;
            let rows = stmt
                .query_map(
                    params![queue, now, i64::try_from(max).unwrap_or(i64::MAX)],
                    |r| r.get(0),
                )
                .map_err(engine)?;
            rows.collect::<Result<_, _>>().map_err(engine)?
        };
        let mut leases = Vec::with_capacity(ids.len());
        for id in ids {
            let sql = format!(
                "UPDATE wpxt_jobs SET state = 'running', attempts = attempts + 1, \
                 lease_token = lease_token + 1, lease_worker = ?2, lease_until = ?3 + ?4, \
                 queued_ms = MAX(0, ?3 - MAX(run_at, enqueued_at)) \
                 WHERE id = ?1 RETURNING {ENVELOPE_COLUMNS}"
            );
            let lease = tx
                .query_row(&sql, params![id, worker, now, dur_ms(lease)], |r| {
                    lease_from_row(r, now)
                })
                .map_err(engine)??;
            leases.push(lease);
        }
        tx.commit().map_err(engine)?;
        Ok(leases)
    }

    fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<bool, Error> {
        let now = now_ms();
        let n = self
            .conn()
            .execute(
                "UPDATE wpxt_jobs SET lease_until = ?3 + ?4 \
                 WHERE id = ?1 AND lease_token = ?2 AND state = 'running' AND lease_until >= ?3",
                params![
                    lease.envelope.id.as_str(),
                    lease.token,
                    now,
                    dur_ms(lease_for)
                ],
            )
            .map_err(engine)?;
        Ok(n == 1)
    }

    fn finish(&self, lease: &Lease, end: &End) -> Result<Ack, Error> {
        let now = now_ms();
        let id = lease.envelope.id.as_str();
        let fence =
            "WHERE id = ?1 AND lease_token = ?2 AND state = 'running' AND lease_until >= ?3";
        let conn = self.conn();
        let n = match end {
            End::Succeeded { output, run_ms } => conn.execute(
                &format!(
                    "UPDATE wpxt_jobs SET state = 'succeeded', output = ?4, error = NULL, run_ms = ?5, \
                     finished_at = ?3, expires_at = ?3 + ?6, lease_worker = NULL {fence}"
                ),
                params![id, lease.token, now, output, run_ms, self.ttl_ms],
            ),
            End::Retry {
                error,
                run_at_ms,
                run_ms,
            } => conn.execute(
                &format!(
                    "UPDATE wpxt_jobs SET state = 'queued', error = ?4, run_at = ?5, run_ms = ?6, \
                     lease_worker = NULL, lease_until = NULL {fence}"
                ),
                params![id, lease.token, now, error, run_at_ms, run_ms],
            ),
            End::Dead { error, run_ms } => conn.execute(
                &format!(
                    "UPDATE wpxt_jobs SET state = 'dead', error = ?4, run_ms = ?5, finished_at = ?3, \
                     expires_at = ?3 + ?6, lease_worker = NULL {fence}"
                ),
                params![id, lease.token, now, error, run_ms, self.ttl_ms],
            ),
            End::Released => conn.execute(
                &format!(
                    "UPDATE wpxt_jobs SET state = 'queued', attempts = attempts - 1, run_at = ?3, \
                     lease_worker = NULL, lease_until = NULL {fence}"
                ),
                params![id, lease.token, now],
            ),
        }
        .map_err(engine)?;
        drop(conn);
        if n == 1 {
            self.notifier.notify();
            Ok(Ack::Accepted)
        } else {
            Ok(Ack::Refused)
        }
    }

    fn cancel(&self, id: &JobId) -> Result<bool, Error> {
        let now = now_ms();
        let n = self
            .conn()
            .execute(
                "UPDATE wpxt_jobs SET state = 'cancelled', finished_at = ?2, expires_at = ?2 + ?3, \
                 lease_worker = NULL WHERE id = ?1 AND state IN ('queued', 'running')",
                params![id.as_str(), now, self.ttl_ms],
            )
            .map_err(engine)?;
        if n == 1 {
            self.notifier.notify();
        }
        Ok(n == 1)
    }

    fn record(&self, id: &JobId) -> Result<Option<Record>, Error> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM wpxt_jobs WHERE id = ?1 AND (expires_at IS NULL OR expires_at >= ?2)"
        );
        let row = self
            .conn()
            .query_row(&sql, params![id.as_str(), now_ms()], record_from_row)
            .optional()
            .map_err(engine)?;
        row.transpose()
    }

    fn counts(&self, queue: &str) -> Result<Counts, Error> {
        validate_name(NameKind::Queue, queue)?;
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT state, run_at > ?2, COUNT(*) FROM wpxt_jobs \
                 WHERE queue = ?1 AND (expires_at IS NULL OR expires_at >= ?2) GROUP BY 1, 2",
            )
            .map_err(engine)?;
        let mut rows = stmt.query(params![queue, now_ms()]).map_err(engine)?;
        let mut counts = Counts::default();
        while let Some(row) = rows.next().map_err(engine)? {
            let state: String = row.get(0).map_err(engine)?;
            let later: bool = row.get(1).map_err(engine)?;
            let n: i64 = row.get(2).map_err(engine)?;
            add_count(&mut counts, Status::parse(&state)?, later, n);
        }
        Ok(counts)
    }

    fn dead(&self, queue: &str, limit: usize) -> Result<Vec<Record>, Error> {
        validate_name(NameKind::Queue, queue)?;
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM wpxt_jobs WHERE queue = ?1 AND state = 'dead' \
             AND expires_at >= ?2 ORDER BY finished_at DESC LIMIT ?3"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(engine)?;
        let rows = stmt
            .query_map(
                params![queue, now_ms(), i64::try_from(limit).unwrap_or(i64::MAX)],
                record_from_row,
            )
            .map_err(engine)?;
        rows.map(|r| r.map_err(engine)?).collect()
    }

    fn purge(&self) -> Result<u64, Error> {
        let n = self
            .conn()
            .execute(
                "DELETE FROM wpxt_jobs WHERE expires_at IS NOT NULL AND expires_at < ?1",
                params![now_ms()],
            )
            .map_err(engine)?;
        Ok(n as u64)
    }

    fn notifier(&self) -> &Notifier {
        &self.notifier
    }
}

/// A lease from a row of [`ENVELOPE_COLUMNS`]; a stored value that does not
/// read back is an error of this job's lease only.
fn lease_from_row(r: &Row<'_>, now: i64) -> rusqlite::Result<Result<Lease, Error>> {
    let backoff: String = r.get(9)?;
    let backoff = match serde_json::from_str(&backoff) {
        Ok(b) => b,
        Err(e) => return Ok(Err(Error::from(e))),
    };
    let id: String = r.get(0)?;
    let timeout: Option<i64> = r.get(5)?;
    Ok(Ok(Lease {
        envelope: Envelope {
            id: match JobId::parse(&id) {
                Ok(id) => id,
                Err(e) => return Ok(Err(e)),
            },
            queue: r.get(1)?,
            handler: r.get(2)?,
            payload: r.get(3)?,
            name: r.get(4)?,
            timeout_ms: timeout.map(|t| u64::try_from(t).unwrap_or(0)),
            deadline_ms: r.get(6)?,
            attempts: r.get(7)?,
            max_attempts: r.get(8)?,
            backoff,
            idempotency_key: r.get(10)?,
            run_at_ms: r.get(11)?,
            enqueued_at_ms: r.get(12)?,
        },
        token: r.get(13)?,
        claimed_at_ms: now,
    }))
}

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Record, Error>> {
    let id: String = r.get(0)?;
    let state: String = r.get(4)?;
    let (id, status) = match (JobId::parse(&id), Status::parse(&state)) {
        (Ok(id), Ok(status)) => (id, status),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    Ok(Ok(Record {
        id,
        queue: r.get(1)?,
        handler: r.get(2)?,
        name: r.get(3)?,
        status,
        output: r.get(5)?,
        error: r.get(6)?,
        attempts: r.get(7)?,
        max_attempts: r.get(8)?,
        queued_ms: r.get(9)?,
        run_ms: r.get(10)?,
        finished_at_ms: r.get(11)?,
    }))
}

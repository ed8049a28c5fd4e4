//! The thin trait between this crate and a queue engine, and the records it
//! stores.
//!
//! The trait is synchronous: the engines' clients used here block, and the
//! [`Client`](crate::Client) and [`Worker`](crate::Worker) call it through
//! `blocking::unblock`, so no async runtime is needed by either side.

use std::fmt;
use std::time::Duration;

use event_listener::{Event, EventListener};
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, JobId};
use crate::error::Error;

/// How long a backend keeps the record of an ended job unless told
/// otherwise: one day.
pub const DEFAULT_RECORD_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A queue engine: stores jobs, hands out leases, keeps records.
///
/// Every method is one transaction of the engine. Implementations take
/// every name and value as a statement parameter, never as statement text.
/// Each method blocks; call it from a blocking thread in async code (the
/// [`Client`](crate::Client) and [`Worker`](crate::Worker) do).
///
/// # Examples
///
/// Fencing: once a lease expired and the job was delivered again, the first
/// holder can neither renew nor end it.
///
/// ```
/// use std::time::Duration;
/// use workerpoolxt_durable::{Ack, Backend, Client, End, Handler, JobContext, NewJob, SqliteBackend};
///
/// struct Ping;
/// impl Handler for Ping {
///     const NAME: &'static str = "ping";
///     type Args = ();
///     type Output = ();
///     type Error = String;
///     async fn run(&self, _: (), _ctx: JobContext) -> Result<(), String> { Ok(()) }
/// }
///
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let backend = std::sync::Arc::new(SqliteBackend::open(dir.path().join("q.db")).unwrap());
/// let client = Client::from_arc(backend.clone());
/// client.enqueue("q", NewJob::new::<Ping>(&()).unwrap().max_attempts(2)).await.unwrap();
///
/// let first = backend.claim("q", "w1", 1, Duration::from_millis(30)).unwrap().remove(0);
/// std::thread::sleep(Duration::from_millis(60)); // the lease expires
/// let second = backend.claim("q", "w2", 1, Duration::from_secs(30)).unwrap().remove(0);
/// assert_eq!(second.envelope.attempts, 2);
///
/// let done = End::Succeeded { output: "null".into(), run_ms: 1 };
/// assert_eq!(backend.finish(&first, &done).unwrap(), Ack::Refused);
/// assert_eq!(backend.finish(&second, &done).unwrap(), Ack::Accepted);
/// # });
/// ```
pub trait Backend: Send + Sync + 'static {
    /// Stores a new job (state `queued`, due at its `run_at_ms`).
    fn enqueue(&self, job: &Envelope) -> Result<(), Error>;

    /// Leases at most `max` due jobs of `queue` to `worker` for `lease`:
    /// queued jobs whose time has come, and running jobs whose lease expired
    /// (their attempt count kept and increased). A running job whose lease
    /// expired on its last allowed attempt becomes dead instead.
    fn claim(
        &self,
        queue: &str,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Lease>, Error>;

    /// Extends a lease by `lease` from now; `Ok(false)` if it is no longer
    /// held (expired and taken by another worker, or the job was cancelled).
    fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<bool, Error>;

    /// Ends an attempt, if the lease is still held and has not expired
    /// (fencing): [`Ack::Refused`] otherwise, and nothing changes.
    fn finish(&self, lease: &Lease, end: &End) -> Result<Ack, Error>;

    /// Cancels a job that has not ended: it will not start again, and a
    /// running attempt's worker finds out at its next renewal. `Ok(false)` if
    /// the job had ended or is unknown.
    fn cancel(&self, id: &JobId) -> Result<bool, Error>;

    /// The job's record, if the job exists and its record has not expired.
    fn record(&self, id: &JobId) -> Result<Option<Record>, Error>;

    /// How many jobs of `queue` are in each state.
    fn counts(&self, queue: &str) -> Result<Counts, Error>;

    /// The dead jobs of `queue`, most recent first, at most `limit`.
    fn dead(&self, queue: &str, limit: usize) -> Result<Vec<Record>, Error>;

    /// Deletes the records of ended jobs whose time to live (a setting of the
    /// backend) has passed; returns how many.
    fn purge(&self) -> Result<u64, Error>;

    /// Wake-ups for this process: notified when a job is enqueued or ends
    /// through this backend (and, where the engine can tell, elsewhere).
    fn notifier(&self) -> &Notifier;
}

/// A job leased to one worker: the envelope as delivered, and the fencing
/// token that its renewals and its end must show.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The job, with `attempts` counting this delivery.
    pub envelope: Envelope,
    /// Increased at each delivery; an end that shows an older token is
    /// refused.
    pub token: i64,
    /// When this delivery was claimed (UTC ms).
    pub claimed_at_ms: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// It succeeded; the output as JSON.
    Succeeded {
        /// The handler's output as JSON.
        output: String,
        /// How long the attempt ran, in milliseconds.
        run_ms: i64,
    },
    /// It failed; run again at `run_at_ms` (a re-schedule in the store).
    Retry {
        /// The failure.
        error: String,
        /// When the next attempt may start (UTC ms).
        run_at_ms: i64,
        /// How long the attempt ran, in milliseconds.
        run_ms: i64,
    },
    /// It failed for good.
    Dead {
        /// The failure.
        error: String,
        /// How long the attempt ran, in milliseconds.
        run_ms: i64,
    },
    /// It was handed back unfinished (a stop): queued again at once, this
    /// attempt not counted.
    Released,
}

/// Whether an end was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Ack {
    /// The lease was held: the end is stored.
    Accepted,
    /// The lease was lost (expired, taken over, or the job cancelled):
    /// nothing changed.
    Refused,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting in its queue (maybe not yet due).
    Queued,
    /// Leased to a worker.
    Running,
    /// Ended with an output.
    Succeeded,
    /// Failed for good: attempts used up, deadline passed, unknown handler,
    /// or a payload that is too large or does not decode.
    Dead,
    /// Cancelled before it ended.
    Cancelled,
}

impl Status {
    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Dead | Status::Cancelled)
    }

    /// The state's name as stored: `queued`, `running`, `succeeded`, `dead`
    /// or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Dead => "dead",
            Status::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Status, Error> {
        Ok(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "dead" => Status::Dead,
            "cancelled" => Status::Cancelled,
            other => {
                return Err(Error::Backend(format!(
                    "unknown job state {other:?} in the store"
                )))
            }
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's stored record: where it is, and once it ended, how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The job's id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its handler's name.
    pub handler: String,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// Where it is.
    pub status: Status,
    /// The output as JSON, once it succeeded.
    pub output: Option<String>,
    /// The last attempt's error, if it failed.
    pub error: Option<String>,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Time from due to its last start, in milliseconds.
    pub queued_ms: i64,
    /// How long its last attempt ran, in milliseconds.
    pub run_ms: i64,
    /// When it ended (UTC ms), once it has.
    pub finished_at_ms: Option<i64>,
}

/// How many jobs of a queue are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Queued and due.
    pub ready: u64,
    /// Queued, not yet due (delayed jobs and retries waiting out a backoff).
    pub scheduled: u64,
    /// Leased to a worker.
    pub running: u64,
    /// Succeeded, record not yet expired.
    pub succeeded: u64,
    /// Dead, record not yet expired.
    pub dead: u64,
    /// Cancelled, record not yet expired.
    pub cancelled: u64,
}

/// Adds `n` jobs in `status` (queued ones due `later` or not) to `counts`.
pub(crate) fn add_count(counts: &mut Counts, status: Status, later: bool, n: i64) {
    let n = u64::try_from(n).unwrap_or(0);
    match status {
        Status::Queued if later => counts.scheduled += n,
        Status::Queued => counts.ready += n,
        Status::Running => counts.running += n,
        Status::Succeeded => counts.succeeded += n,
        Status::Dead => counts.dead += n,
        Status::Cancelled => counts.cancelled += n,
    }
}

/// In-process wake-ups of a backend: a change that may matter to a waiting
/// worker or a waiting [`Client::outcome`](crate::Client::outcome).
///
/// # Examples
///
/// ```
/// use workerpoolxt_durable::Notifier;
///
/// # futures_lite::future::block_on(async {
/// let notifier = Notifier::new();
/// let changed = notifier.listen(); // listen first, then look at the store
/// notifier.notify();
/// changed.await;
/// # });
/// ```
#[derive(Default)]
pub struct Notifier {
    event: Event,
}

impl Notifier {
    /// A notifier nobody listens to yet.
    pub fn new() -> Notifier {
        Notifier::default()
    }

    /// Wakes every listener.
    pub fn notify(&self) {
        self.event.notify(usize::MAX);
    }

    /// A listener: a future that resolves at the next [`notify`](Self::notify).
    /// Listen *before* looking at the store, so no change is missed.
    pub fn listen(&self) -> EventListener {
        self.event.listen()
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

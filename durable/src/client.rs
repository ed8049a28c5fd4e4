//! The producer's side: enqueue, cancel, await outcomes, look at a queue.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::FutureExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Counts, Record};
use crate::envelope::{JobId, NewJob};
use crate::error::Error;

/// The largest payload a [`Client`] enqueues, and a [`Worker`](crate::Worker)
/// runs, unless told otherwise: 1 MiB of JSON.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

/// The longest wait between two looks at the store while awaiting an
/// outcome, unless told otherwise.
pub const DEFAULT_POLL: Duration = Duration::from_millis(200);

/// A job's claim ticket: serializable, so any process can await the job.
///
/// Dropping it does nothing to the job; [`Client::cancel`] cancels it.
///
/// # Examples
///
/// ```
/// use workerpoolxt_durable::DurableHandle;
///
/// let text = r#"{"id":"0123456789abcdef0123456789abcdef","queue":"emails"}"#;
/// let handle: DurableHandle = serde_json::from_str(text).unwrap();
/// assert_eq!(handle.queue(), "emails");
/// assert_eq!(serde_json::to_string(&handle).unwrap(), text);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DurableHandle {
    id: JobId,
    queue: String,
}

impl DurableHandle {
    /// The job's id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The queue the job was enqueued in.
    pub fn queue(&self) -> &str {
        &self.queue
    }
}

impl Record {
    /// The output decoded as `T` (a handler's `Output`); `Ok(None)` if the
    /// job has not succeeded.
    pub fn output_as<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.output
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(Error::from)
    }
}

/// A producer's (and an operator's) view of a store.
///
/// Every method does its I/O on a blocking thread (`blocking::unblock`), so
/// its future can be awaited on any runtime or none.
///
/// # Examples
///
/// ```
/// use workerpoolxt_durable::{Client, Handler, JobContext, NewJob, SqliteBackend, Status};
///
/// struct Greet;
/// impl Handler for Greet {
///     const NAME: &'static str = "greet";
///     type Args = String;
///     type Output = String;
///     type Error = std::convert::Infallible;
///     async fn run(&self, who: String, _ctx: JobContext) -> Result<String, Self::Error> {
///         Ok(format!("hello, {who}"))
///     }
/// }
///
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let client = Client::new(SqliteBackend::open(dir.path().join("q.db")).unwrap());
/// let handle = client.enqueue("greetings", NewJob::new::<Greet>(&"ada".into()).unwrap()).await.unwrap();
/// assert_eq!(client.counts("greetings").await.unwrap().ready, 1);
/// assert!(client.cancel(handle.id()).await.unwrap());
/// assert_eq!(client.outcome(&handle).await.unwrap().status, Status::Cancelled);
/// # });
/// ```
#[derive(Clone)]
pub struct Client {
    backend: Arc<dyn Backend>,
    max_payload: usize,
    poll: Duration,
}

impl Client {
    /// A client of this backend.
    pub fn new(backend: impl Backend) -> Client {
        Client::from_arc(Arc::new(backend))
    }

    /// A client of a backend shared with workers or other clients.
    pub fn from_arc(backend: Arc<dyn Backend>) -> Client {
        Client {
            backend,
            max_payload: DEFAULT_MAX_PAYLOAD,
            poll: DEFAULT_POLL,
        }
    }

    /// Refuses to enqueue payloads over `bytes` (default
    /// [`DEFAULT_MAX_PAYLOAD`]).
    pub fn max_payload(mut self, bytes: usize) -> Client {
        self.max_payload = bytes;
        self
    }

    /// The longest wait between two looks at the store while
    /// [`outcome`](Client::outcome) waits (default [`DEFAULT_POLL`]). The
    /// backend's wake-ups end a wait early where the engine can send them.
    pub fn poll_interval(mut self, poll: Duration) -> Client {
        self.poll = poll;
        self
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Stores a job in `queue` and returns its handle.
    ///
    /// Refused before it reaches the engine: an invalid queue, handler or
    /// job name or idempotency key, and a payload over the limit.
    pub async fn enqueue(&self, queue: &str, job: NewJob) -> Result<DurableHandle, Error> {
        let envelope = job.into_envelope(queue, self.max_payload)?;
        let handle = DurableHandle {
            id: envelope.id.clone(),
            queue: envelope.queue.clone(),
        };
        self.io(move |b| b.enqueue(&envelope)).await?;
        Ok(handle)
    }

    /// Cancels a job that has not ended: a queued job never starts, and a
    /// running one is dropped by its worker at its next lease renewal.
    /// Returns whether the job was cancelled (`false`: it had ended, or is
    /// unknown).
    pub async fn cancel(&self, id: &JobId) -> Result<bool, Error> {
        let id = id.clone();
        self.io(move |b| b.cancel(&id)).await
    }

    /// The job's record now, if it exists and has not expired.
    pub async fn record(&self, id: &JobId) -> Result<Option<Record>, Error> {
        let id = id.clone();
        self.io(move |b| b.record(&id)).await
    }

    /// Waits until the job has ended and returns its record.
    ///
    /// Woken by the backend where it can tell, otherwise by polling (at most
    /// the [`poll_interval`](Client::poll_interval) apart). Never times out:
    /// race it with a timer to bound it. Dropping the future only stops the
    /// wait. [`Error::NotFound`] if the job is unknown or its record expired.
    pub async fn outcome(&self, handle: &DurableHandle) -> Result<Record, Error> {
        let mut delay = Duration::from_millis(2);
        loop {
            let changed = self.backend.notifier().listen();
            match self.record(handle.id()).await? {
                Some(record) if record.status.is_final() => return Ok(record),
                Some(_) => {}
                None => return Err(Error::NotFound(handle.id().clone())),
            }
            changed
                .or(async {
                    async_io::Timer::after(delay).await;
                })
                .await;
            delay = (delay * 2).min(self.poll);
        }
    }

    /// How many jobs of `queue` are in each state.
    pub async fn counts(&self, queue: &str) -> Result<Counts, Error> {
        let queue = queue.to_string();
        self.io(move |b| b.counts(&queue)).await
    }

    /// The dead jobs of `queue` with their last error, most recent first.
    pub async fn dead(&self, queue: &str, limit: usize) -> Result<Vec<Record>, Error> {
        let queue = queue.to_string();
        self.io(move |b| b.dead(&queue, limit)).await
    }

    async fn io<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Backend) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let backend = Arc::clone(&self.backend);
        blocking::unblock(move || op(&*backend)).await
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("max_payload", &self.max_payload)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

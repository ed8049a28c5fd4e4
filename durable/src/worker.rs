//! The consumer's side: a [`Worker`] leases jobs of one queue, at most as
//! many as it has free slots, and runs them on a [`workerpoolxt::Pool`].

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_lite::FutureExt;
use workerpoolxt::{CancelToken, Job, Pool};

use crate::attempt::{self, Verdict};
use crate::backend::{Ack, Backend, End, Lease};
use crate::client::{DEFAULT_MAX_PAYLOAD, DEFAULT_POLL};
use crate::error::Error;
use crate::handler::{Handler, Handlers};
use crate::name::{validate_name, NameKind};
use crate::stats::{Stats, WorkerStats};

/// How long a lease lasts unless told otherwise; it is renewed every third
/// of that while its job runs.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// How often a worker purges expired records.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Settings of a [`Worker`]; see [`Worker::builder`].
pub struct WorkerBuilder {
    backend: Arc<dyn Backend>,
    queue: String,
    handlers: Handlers,
    max_workers: usize,
    lease: Duration,
    poll: Duration,
    max_payload: usize,
}

impl WorkerBuilder {
    /// Runs at most `n` jobs at once, and so holds at most `n` leases
    /// (default 4).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = n;
        self
    }

    /// How long each lease lasts (default [`DEFAULT_LEASE`]). A job whose
    /// worker dies is delivered again this long after its last renewal.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long an idle worker waits before it looks at the store again
    /// when no wake-up came (default 200 ms).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Fails, without running, jobs whose payload is over `bytes` (default
    /// [`DEFAULT_MAX_PAYLOAD`]).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Serves handler `H`: jobs naming `H::NAME` run `handler`.
    pub fn handler<H: Handler>(mut self, handler: H) -> Result<Self, Error> {
        self.handlers.register(handler)?;
        Ok(self)
    }

    /// The worker. It does nothing until [`Worker::run`] is awaited.
    pub fn build(self) -> Result<Worker, Error> {
        validate_name(NameKind::Queue, &self.queue)?;
        if self.max_workers == 0 {
            return Err(Error::Config("max_workers must be at least 1".into()));
        }
        if self.lease < Duration::from_millis(30) {
            return Err(Error::Config("the lease must be at least 30 ms".into()));
        }
        if self.handlers.is_empty() {
            return Err(Error::Config("a worker needs at least one handler".into()));
        }
        let id = format!("{}-{:08x}", std::process::id(), fastrand::u32(..));
        Ok(Worker {
            shared: Arc::new(Shared {
                pool: Pool::new(self.max_workers),
                backend: self.backend,
                queue: self.queue,
                handlers: self.handlers,
                max_workers: self.max_workers,
                lease: self.lease,
                poll: self.poll,
                max_payload: self.max_payload,
                id,
                leased: AtomicUsize::new(0),
                released: Event::new(),
                running: AtomicBool::new(false),
                claiming: AtomicBool::new(false),
                claim_loop_left: Event::new(),
                stopping: AtomicBool::new(false),
                stop_begun: Event::new(),
                hand_back: CancelToken::new(),
                stats: Stats::default(),
            }),
        })
    }
}

/// Leases jobs of one queue and runs them, at most `max_workers` at once.
///
/// Each job runs as a [`workerpoolxt::Job`] on the worker's own [`Pool`] of
/// `max_workers`: the worker claims no more jobs than it has free slots.
/// While a job runs its lease is renewed; its end (success, a retry
/// re-scheduled in the store, or death) is stored only if the lease is still
/// held. A job whose lease was lost (expired, or the job cancelled) is
/// dropped unacknowledged.
///
/// Cloning gives another handle to the same worker.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use workerpoolxt_durable::{Client, Handler, JobContext, NewJob, SqliteBackend, Worker};
///
/// struct Double;
/// impl Handler for Double {
///     const NAME: &'static str = "double";
///     type Args = u32;
///     type Output = u32;
///     type Error = String;
///     async fn run(&self, n: u32, _ctx: JobContext) -> Result<u32, String> {
///         Ok(n * 2)
///     }
/// }
///
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let backend = Arc::new(SqliteBackend::open(dir.path().join("q.db")).unwrap());
/// let client = Client::from_arc(backend.clone());
/// let worker = Worker::builder(backend, "math").max_workers(2).handler(Double).unwrap().build().unwrap();
///
/// let handle = client.enqueue("math", NewJob::new::<Double>(&21).unwrap()).await.unwrap();
/// let running = { let w = worker.clone(); std::thread::spawn(move || futures_lite::future::block_on(w.run())) };
/// let record = client.outcome(&handle).await.unwrap();
/// assert_eq!(record.output_as::<u32>().unwrap(), Some(42));
///
/// let report = worker.stop(Duration::from_secs(5)).await;
/// assert_eq!(report.handed_back, 0);
/// running.join().unwrap().unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct Worker {
    shared: Arc<Shared>,
}

struct Shared {
    backend: Arc<dyn Backend>,
    pool: Pool,
    queue: String,
    handlers: Handlers,
    max_workers: usize,
    lease: Duration,
    poll: Duration,
    max_payload: usize,
    id: String,
    /// Leases held now; only the claim loop adds, each job's end subtracts.
    leased: AtomicUsize,
    /// Notified each time a lease is given up.
    released: Event,
    /// Set once `run` began.
    running: AtomicBool,
    /// Set while the claim loop runs: from `run`'s start until it sees the
    /// stop.
    claiming: AtomicBool,
    /// Notified when the claim loop ends.
    claim_loop_left: Event,
    stopping: AtomicBool,
    stop_begun: Event,
    /// Cancelled when a stop's grace period ends: running jobs are handed
    /// back.
    hand_back: CancelToken,
    stats: Stats,
}

/// What a [`Worker::stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Jobs that ended within the grace period.
    pub finished: usize,
    /// Jobs still running when it ended, handed back to the queue (their
    /// attempt not counted).
    pub handed_back: usize,
}

impl Worker {
    /// A worker for `queue` of `backend`; register at least one handler.
    pub fn builder(backend: Arc<dyn Backend>, queue: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            backend,
            queue: queue.into(),
            handlers: Handlers::default(),
            max_workers: 4,
            lease: DEFAULT_LEASE,
            poll: DEFAULT_POLL,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }

    /// This worker's id, as stored with its leases (`pid-random`).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The most jobs it runs, and leases it holds, at once.
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// Leases held now.
    pub fn leased(&self) -> usize {
        self.shared.leased.load(Ordering::SeqCst)
    }

    /// What it has done so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.stats.snapshot()
    }

    /// Claims and runs jobs until [`stop`](Worker::stop) is called, then
    /// waits until every lease is given up.
    ///
    /// The future can be awaited on any runtime or none; the jobs run on the
    /// worker's pool either way. Errors of the store do not end it: they are
    /// counted in [`WorkerStats::store_errors`] and the claim is tried again
    /// after the poll interval. Dropping the future stops claiming but not
    /// the jobs already leased (a [`stop`](Worker::stop) still ends them);
    /// a claim in flight then may lease jobs that never start: they are
    /// delivered again once their lease expires. Returns [`Error::Config`]
    /// if `run` was called on this worker before.
    pub async fn run(&self) -> Result<(), Error> {
        let s = &self.shared;
        if s.running.swap(true, Ordering::SeqCst) {
            return Err(Error::Config("this worker is already running".into()));
        }
        let claiming = Claiming::begin(s);
        let mut last_purge: Option<Instant> = None;
        while !s.stopping.load(Ordering::SeqCst) {
            if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                last_purge = Some(Instant::now());
                if s.io(|b| b.purge()).await.is_err() {
                    s.stats.store_error();
                }
            }
            self.claim_or_wait().await;
        }
        drop(claiming);
        s.all_released().await;
        Ok(())
    }

    /// One turn of the claim loop: claim as many jobs as there are free
    /// slots, or wait for a slot, a wake-up, a stop or the poll interval.
    async fn claim_or_wait(&self) {
        let s = &self.shared;
        let stop = s.stop_begun.listen();
        let released = s.released.listen();
        let changed = s.backend.notifier().listen();
        if s.stopping.load(Ordering::SeqCst) {
            return;
        }
        let free = s.max_workers - s.leased.load(Ordering::SeqCst);
        if free > 0 {
            let (queue, id, lease) = (s.queue.clone(), s.id.clone(), s.lease);
            match s.io(move |b| b.claim(&queue, &id, free, lease)).await {
                Ok(leases) if leases.len() == free => return self.start_all(leases),
                Ok(leases) => self.start_all(leases),
                Err(_) => s.stats.store_error(),
            }
        }
        let poll = async_io::Timer::after(s.poll);
        stop.or(released)
            .or(changed)
            .or(async {
                poll.await;
            })
            .await;
    }

    fn start_all(&self, leases: Vec<Lease>) {
        let s = &self.shared;
        let now = s.leased.fetch_add(leases.len(), Ordering::SeqCst) + leases.len();
        s.stats.leased_now(now);
        for lease in leases {
            let shared = Arc::clone(&self.shared);
            let mut lease = Some(lease);
            let name = lease
                .as_ref()
                .and_then(|l| l.envelope.name.clone())
                .unwrap_or_default();
            let job = Job::new(move |ctx| {
                let shared = Arc::clone(&shared);
                let lease = lease.take();
                async move {
                    if let Some(lease) = lease {
                        shared.serve(lease, ctx).await;
                    }
                    Ok::<(), std::convert::Infallible>(())
                }
            })
            .name(name);
            // The handle is dropped: the job runs to its end regardless.
            drop(s.pool.submit_job(job));
        }
    }

    /// Stops the worker: it claims no more jobs, gives running jobs `grace`
    /// to end, then hands the rest back to the queue (their futures dropped,
    /// their leases released, their attempt not counted), and stops its
    /// pool. Resolves once every lease is given up; [`run`](Worker::run)
    /// returns then too.
    pub async fn stop(&self, grace: Duration) -> StopReport {
        let s = &self.shared;
        let before = s.stats.snapshot().handed_back;
        s.stopping.store(true, Ordering::SeqCst);
        s.stop_begun.notify(usize::MAX);
        // A claim in flight may still lease jobs: they start (and count)
        // before the grace period begins.
        s.claim_loop_ended().await;
        let leased = s.leased.load(Ordering::SeqCst);
        let drained = async {
            s.all_released().await;
            true
        }
        .or(async {
            async_io::Timer::after(grace).await;
            false
        })
        .await;
        if !drained {
            s.hand_back.cancel();
            s.all_released().await;
        }
        s.pool.stop().await;
        let handed_back = usize::try_from(s.stats.snapshot().handed_back - before).unwrap_or(0);
        StopReport {
            finished: leased.saturating_sub(handed_back),
            handed_back,
        }
    }
}

/// Marks the claim loop as running until dropped: when the loop sees the
/// stop, or when `run`'s future is dropped, so a stop never waits for a
/// loop that is gone.
struct Claiming<'a>(&'a Shared);

impl<'a> Claiming<'a> {
    fn begin(shared: &'a Shared) -> Claiming<'a> {
        shared.claiming.store(true, Ordering::SeqCst);
        Claiming(shared)
    }
}

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        self.0.claiming.store(false, Ordering::SeqCst);
        self.0.claim_loop_left.notify(usize::MAX);
    }
}

impl Shared {
    async fn io<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Backend) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let backend = Arc::clone(&self.backend);
        blocking::unblock(move || op(&*backend)).await
    }

    async fn claim_loop_ended(&self) {
        loop {
            let left = self.claim_loop_left.listen();
            if !self.claiming.load(Ordering::SeqCst) {
                return;
            }
            left.await;
        }
    }

    async fn all_released(&self) {
        loop {
            let released = self.released.listen();
            if self.leased.load(Ordering::SeqCst) == 0 {
                return;
            }
            released.await;
        }
    }

    /// Runs one leased job to its end and stores the end, then gives up the
    /// lease's slot.
    async fn serve(self: Arc<Self>, lease: Lease, ctx: workerpoolxt::JobContext) {
        let verdict = attempt::run(&*self, &lease, ctx).await;
        match verdict {
            Verdict::End(end) => self.store_end(lease, end).await,
            Verdict::Lost => self.stats.lost(),
        }
        self.leased.fetch_sub(1, Ordering::SeqCst);
        self.released.notify(usize::MAX);
    }

    async fn store_end(&self, lease: Lease, end: End) {
        let kind = attempt::EndKind::of(&end);
        match self.io(move |b| b.finish(&lease, &end)).await {
            Ok(Ack::Accepted) => self.stats.ended(kind),
            Ok(Ack::Refused) => self.stats.refused(),
            // The lease expires and the job is delivered again.
            Err(_) => self.stats.store_error(),
        }
    }
}

/// What an attempt needs from its worker.
impl attempt::Env for Shared {
    fn handlers(&self) -> &Handlers {
        &self.handlers
    }
    fn max_payload(&self) -> usize {
        self.max_payload
    }
    fn lease(&self) -> Duration {
        self.lease
    }
    fn backend(&self) -> Arc<dyn Backend> {
        Arc::clone(&self.backend)
    }
    fn hand_back(&self) -> &CancelToken {
        &self.hand_back
    }
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("queue", &self.queue)
            .field("handlers", &self.handlers)
            .field("max_workers", &self.max_workers)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("Worker")
            .field("id", &s.id)
            .field("queue", &s.queue)
            .field("handlers", &s.handlers)
            .field("max_workers", &s.max_workers)
            .field("leased", &self.leased())
            .finish_non_exhaustive()
    }
}

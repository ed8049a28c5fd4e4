//! Durable, multi-process job queues drained into a [`workerpoolxt::Pool`].
//!
//! Jobs that must survive a crash or a deploy, or that several processes or
//! machines share, are stored in an existing engine — an embedded SQLite
//! file by default, PostgreSQL behind the `postgres` feature — never in
//! memory of ours. Redis, behind the `redis` feature, is the third.
//!
//! - A job kind is a named [`Handler`]: serde `Args` and `Output`, and an
//!   `async fn run(args, ctx)`. A job travels as one [`Envelope`].
//! - A [`Client`] enqueues a [`NewJob`] and gets a [`DurableHandle`]
//!   (serializable: any process can await the job's [`Record`]).
//! - A [`Worker`] registers the handlers it serves, leases at most
//!   `max_workers` jobs at once, renews the leases while the jobs run, and
//!   stores each end only while its lease is held (fencing).
//!
//! Delivery is **at least once**: a job whose worker died is delivered
//! again once its lease expires, its attempt count kept. **Handlers must be
//! idempotent**; they get the attempt number and an idempotency key in
//! their [`JobContext`]. Retries, backoff, deadlines and delayed starts are
//! stored with the job: a retry is a re-schedule in the store, not a sleep.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use workerpoolxt_durable::{Client, Handler, JobContext, NewJob, SqliteBackend, Status, Worker};
//!
//! struct Shout;
//! impl Handler for Shout {
//!     const NAME: &'static str = "shout";
//!     type Args = String;
//!     type Output = String;
//!     type Error = String;
//!     async fn run(&self, text: String, ctx: JobContext) -> Result<String, String> {
//!         // Effects keyed by ctx.idempotency_key() happen once even if the
//!         // job is delivered twice.
//!         Ok(format!("{} (attempt {})", text.to_uppercase(), ctx.attempt()))
//!     }
//! }
//!
//! # futures_lite::future::block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let backend = Arc::new(SqliteBackend::open(dir.path().join("jobs.db")).unwrap());
//! let client = Client::from_arc(backend.clone());
//! let handle = client.enqueue("words", NewJob::new::<Shout>(&"hi".into()).unwrap()).await.unwrap();
//!
//! // Usually in another process: serve the queue.
//! let worker = Worker::builder(backend, "words").handler(Shout).unwrap().build().unwrap();
//! let serving = { let w = worker.clone(); std::thread::spawn(move || futures_lite::future::block_on(w.run())) };
//!
//! let record = client.outcome(&handle).await.unwrap();
//! assert_eq!(record.status, Status::Succeeded);
//! assert_eq!(record.output_as::<String>().unwrap().as_deref(), Some("HI (attempt 1)"));
//! worker.stop(Duration::from_secs(5)).await;
//! serving.join().unwrap().unwrap();
//! # });
//! ```
//!
//! # Backends and features
//!
//! | backend | feature | engine |
//! |---|---|---|
//! | [`SqliteBackend`] | `sqlite` (default) | an embedded SQLite file; processes on one host may share it |
//! | `PgBackend` | `postgres` (`postgres-tls` for TLS) | PostgreSQL: `SKIP LOCKED` claims, `LISTEN/NOTIFY` wake-ups |
//! | `RedisBackend` | `redis` (`redis-tls` for TLS) | Redis: Lua scripts, pub/sub wake-ups |
//!
//! Each implements the thin [`Backend`] trait (synchronous; the client and
//! the worker call it on blocking threads), so no async runtime is needed.
//!
//! # Operations
//!
//! [`Worker::stop`] stops claiming, gives running jobs a grace period, then
//! hands the rest back. [`Client::counts`] counts a queue's jobs per state,
//! [`Client::dead`] lists dead jobs with their last error,
//! [`Client::cancel`] cancels a job. `examples/ops.rs` shows them.
//!
//! # Bad input
//!
//! Queue, handler and job names are checked ([`validate_name`]) before they
//! reach an engine, and every statement is parameterized. A payload over the
//! limit or one that does not decode as the handler's `Args`, and a job
//! naming a handler the worker does not serve, fail that job for good (no
//! retry) with a clear error in its record. Errors never carry connection
//! strings or credentials.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]

mod attempt;
mod backend;
mod client;
mod clock;
mod envelope;
mod error;
mod handler;
mod name;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
mod stats;
mod worker;

pub use crate::backend::{
    Ack, Backend, Counts, End, Lease, Notifier, Record, Status, DEFAULT_RECORD_TTL,
};
pub use crate::client::{Client, DurableHandle, DEFAULT_MAX_PAYLOAD, DEFAULT_POLL};
pub use crate::envelope::{Envelope, JobId, NewJob, RetryBackoff};
pub use crate::error::Error;
pub use crate::handler::{Handler, JobContext};
pub use crate::name::{validate_key, validate_name, NameKind, MAX_KEY_LEN, MAX_NAME_LEN};
#[cfg(feature = "postgres")]
pub use crate::postgres::PgBackend;
#[cfg(feature = "redis")]
pub use crate::redis::RedisBackend;
#[cfg(feature = "sqlite")]
pub use crate::sqlite::SqliteBackend;
pub use crate::stats::WorkerStats;
pub use crate::worker::{StopReport, Worker, WorkerBuilder, DEFAULT_LEASE};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[allow(dead_code)]
fn _assert_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Client>();
    send_sync::<Worker>();
    send_sync::<DurableHandle>();
    send_sync::<Error>();
}

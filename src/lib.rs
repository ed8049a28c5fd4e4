//! A runtime-agnostic async worker pool with exposed result handles.
//!
//! `workerpoolxt` runs at most `max_workers` jobs at once and hands back a
//! [`ResultHandle`] per job, which you can `.await`, put in a `select!` beside
//! other channels, check later, or drop. It brings Go's
//! `gammazero/workerpool` and `workerpoolxt` to Rust, and fixes what they
//! could not do: **a worker is a slot, and it stays busy until its job's
//! future has been dropped or its blocking closure has returned** — after a
//! timeout, a cancel or a dropped handle too — so the bound really holds.
//!
//! It needs no runtime (an embedded executor serves callers with none), and
//! on tokio, smol or async-std the workers can run on the caller's runtime.
//!
//! # Submitting
//!
//! ```
//! use workerpoolxt::Pool;
//!
//! # futures_lite::future::block_on(async {
//! let pool = Pool::new(4);                         // at most 4 at once
//! let a = pool.submit(async { 40 });               // a future
//! let b = pool.submit_blocking(|| 2);              // a blocking closure, off the executor
//! assert_eq!(a.await.unwrap() + b.await.unwrap(), 42);
//! pool.stop_wait().await;                          // run what is queued, then stop
//! # });
//! ```
//!
//! Every handle resolves exactly once, to the value or to a [`JobError`]
//! that says why not: `Failed`, `TimedOut`, `Cancelled`, `Panicked`,
//! `Stopped` or `QueueFull`.
//!
//! # Jobs: names, timeouts, retries, options, results
//!
//! A [`Job`] carries what workerpoolxt adds: a name, a timeout or deadline,
//! retries with [`Backoff`], [`Options`] and its own [`CancelToken`]. Its
//! factory gets a [`JobContext`] per attempt. [`ResultHandle::outcome`] gives
//! the [`Outcome`] record: result, name, attempts, run duration and queue wait.
//!
//! ```
//! use std::time::Duration;
//! use workerpoolxt::{Backoff, Job, JobError, Pool};
//!
//! # futures_lite::future::block_on(async {
//! let pool = Pool::new(4);
//! let job = Job::new(|ctx| async move {
//!     if ctx.attempt() < 2 { Err("flaky") } else { Ok("fetched") }
//! })
//! .name("fetch")
//! .timeout(Duration::from_secs(5))
//! .retry(3)
//! .backoff(Backoff::fixed(Duration::from_millis(1)));
//!
//! let outcome = pool.submit_job(job).outcome().await;
//! assert_eq!(outcome.name(), Some("fetch"));
//! assert_eq!(outcome.attempts(), 2);
//! assert_eq!(outcome.into_result(), Ok("fetched"));
//!
//! let slow = Job::new(|_ctx| async {
//!     async_io::Timer::after(Duration::from_secs(10)).await;
//!     Ok::<_, ()>(())
//! })
//! .timeout(Duration::from_millis(1));
//! assert_eq!(pool.submit_job(slow).await, Err(JobError::TimedOut));
//! # });
//! ```
//!
//! A job's own options, token or timeout **replace** the pool's defaults
//! ([`Builder::default_options`], [`Builder::cancel_token`],
//! [`Builder::default_timeout`]); they are never merged.
//!
//! # Handles: await, select, abandon, check later
//!
//! [`ResultHandle`] is `Unpin` and a `FusedFuture`: `select!` on `&mut handle`
//! loses nothing when another branch wins. [`ResultSet`] collects many
//! handles and yields their outcomes in submission order
//! ([`join_all`](ResultSet::join_all)) or completion order (as a `Stream`).
//! A [`Group`] ([`Pool::group`]) submits jobs that are awaited together and,
//! with [`cancel_on_error`](Group::cancel_on_error), cancelled together at
//! the first error.
//!
//! | to a job that is… | async job (`submit`, `Job::new`) | blocking job (`submit_blocking`, `Job::blocking`) |
//! |---|---|---|
//! | handle dropped | runs to its end, keeps its slot | runs to its end, keeps its slot |
//! | cancelled while queued | never starts; handle: `Cancelled` at once | never starts; handle: `Cancelled` at once |
//! | cancelled while running | future dropped, *then* handle: `Cancelled`; slot freed | handle: `Cancelled` at once; its token is cancelled; slot held until the closure returns |
//! | timed out | future dropped, *then* handle: `TimedOut`; slot freed | handle: `TimedOut` at once; slot held until the closure returns |
//! | deadline passed while queued | never starts; handle: `TimedOut` | never starts; handle: `TimedOut` |
//! | pool stopped while queued (or waiting for its start under a [rate limit](Builder::rate_limit)) | never starts; handle: `Stopped` | never starts; handle: `Stopped` |
//! | pool stopped while running | runs to its end; `stop` waits for it | runs to its end; `stop` waits for it |
//! | panicked | handle: `Panicked(message)`; the worker goes on | handle: `Panicked(message)`; the worker goes on |
//!
//! # Runtimes
//!
//! Outside any runtime the workers run on an embedded executor whose threads
//! number at most the machine's parallelism, and timers come from `async-io`:
//! this works under any runtime and under none. With the `tokio` feature, a
//! pool built inside a tokio runtime runs its workers on that runtime, so
//! jobs can use its I/O and timers ([`Runtime::current`]). Otherwise, say
//! where they run with a [`Runtime`] or a spawner:
//!
//! ```
//! # #[cfg(any())] {
//! // tokio, from any thread (feature `tokio`)
//! let pool = Pool::builder().runtime(Runtime::tokio(handle)).build();
//! // smol (feature `smol`)
//! let pool = Pool::builder().runtime(Runtime::smol()).build();
//! // async-std, or any executor
//! let pool = Pool::builder().spawner(|f| { async_std::task::spawn(f); }).build();
//! // the embedded executor, even inside tokio
//! let pool = Pool::builder().embedded().build();
//! # }
//! ```
//!
//! A library that embeds a pool can take a [`Runtime`] from its caller and
//! give it to [`Builder::runtime`]. `Builder::tokio()` also swaps in tokio's
//! timer, and [`Builder::timer`] any other.
//!
//! # Operating a pool
//!
//! [`Builder::queue_capacity`] bounds the queue (with [`Pool::try_submit`]
//! that gives the job back and [`Pool::submit_wait`] that waits for room);
//! [`Pool::pause`], [`Pool::resize`], [`Pool::stop`], [`Pool::stop_wait`],
//! [`Pool::waiting`], [`Pool::running`] and [`Pool::metrics`] do what they
//! say. [`Pool::jobs`] lists the jobs queued, running and draining, oldest
//! first, each with its id, name, attempt and times ([`JobInfo`]): where to
//! look for a stuck job. Idle workers leave after [`Builder::idle_timeout`]
//! (2 s by default) and come back on demand. [`Builder::rate_limit`] caps
//! how many jobs start in any window of time (a job's retries take no start
//! of their own). [`Pool::subpool`] gives a part of the work a bound of its
//! own inside the pool's (a sub-pool per host, per tenant).
//!
//! # Examples
//!
//! The `examples/` directory has one file per runtime and per feature of the
//! Go library's README: `hello` (no runtime), `select` (tokio), `smol`,
//! `async_std`, `xt` (results, errors, contexts, timeouts, retry, options,
//! durations), `progress` (20,000 jobs with a progress bar and a summary)
//! `library` (a library that takes a [`Runtime`], used from tokio and
//! from smol) and `crawl` (a rate limit, a sub-pool per host, a group per
//! host that stops at its first error, and `Pool::jobs`, on tokio).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]

mod attempt;
mod body;
mod cancel;
mod cell;
mod context;
mod core;
#[cfg(not(workerpoolxt_loom))]
mod deadlines;
mod error;
mod group;
mod handle;
mod header;
mod id;
mod job;
#[cfg(all(test, workerpoolxt_loom))]
mod loom_tests;
mod metrics;
mod options;
mod pause;
mod pool;
// Under loom the job queue is a lock-based stand-in (`sync::loom_queue`);
// the cells still carry this queue's node.
#[cfg_attr(workerpoolxt_loom, allow(dead_code))]
mod queue;
mod rate;
mod runtime;
mod scheduler;
mod set;
mod shared;
mod state;
mod stop;
mod sync;
mod task;
#[cfg(all(test, not(workerpoolxt_loom)))]
mod testing;
mod trace;
mod view;
mod watch;
mod worker;

pub use crate::cancel::{CancelToken, Cancelled};
pub use crate::context::{Backoff, JobContext, JobSleep};
pub use crate::error::{ConfigError, JobError, Panic, SubmitError, TrySubmitError};
pub use crate::group::{Group, GroupWait};
pub use crate::handle::{CancelHandle, Outcome, OutcomeFuture, ResultHandle};
pub use crate::id::JobId;
pub use crate::job::{Job, Once, Retryable};
pub use crate::metrics::Metrics;
pub use crate::options::Options;
pub use crate::pause::{Pause, PauseGuard};
pub use crate::pool::{Builder, Pool, SubmitWait};
pub use crate::runtime::{BoxFuture, Clock, Runtime};
pub use crate::set::ResultSet;
pub use crate::stop::{Shutdown, ShutdownReport, Stop};
pub use crate::view::{JobInfo, JobState};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[allow(dead_code)]
fn _assert_traits() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send_unpin_fused<T: Send + Unpin + futures_core::future::FusedFuture>() {}
    fn send<T: Send>() {}
    send_sync_clone::<Pool>();
    send_sync_clone::<CancelToken>();
    send_sync_clone::<JobContext>();
    send_sync_clone::<Options>();
    send_sync_clone::<CancelHandle>();
    send_sync_clone::<Group<u8, u8>>();
    send_unpin_fused::<GroupWait<u8, u8>>();
    send_unpin_fused::<ResultHandle<u8>>();
    send_unpin_fused::<ResultHandle<u8, std::io::Error>>();
    send_unpin_fused::<OutcomeFuture<u8>>();
    send_unpin_fused::<Stop>();
    send_unpin_fused::<Shutdown>();
    send_unpin_fused::<Pause>();
    send::<PauseGuard>();
    send::<ResultSet<u8>>();
    send::<Job<u8, u8>>();
    send_sync_clone::<Runtime>();
    send_sync_clone::<JobInfo>();
    send_sync_clone::<JobState>();
}

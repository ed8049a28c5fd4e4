//! [`ResultSet`]: many handles, collected in submission or completion order.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::future::FusedFuture;
use futures_core::Stream;
use futures_util::stream::FuturesUnordered;

use crate::handle::{block_outside_async_jobs, Outcome, OutcomeFuture, ResultHandle};

/// A set of result handles: what workerpoolxt's `StopWaitXT` gave, without
/// stopping the pool.
///
/// [`join_all`](Self::join_all) waits for every job and returns the
/// [`Outcome`]s in the order the handles were pushed;
/// [`wait_all`](Self::wait_all) does the same for a caller without an
/// executor. [`join_next`](Self::join_next), and the set as a [`Stream`],
/// yield them in the order the jobs finish; [`Outcome::id`] says which job
/// each one is.
///
/// # Drop
///
/// Dropping a set drops its handles: the jobs run on and keep their slots,
/// as with a dropped [`ResultHandle`]. Call [`cancel_all`](Self::cancel_all)
/// first to stop them.
///
/// # Examples
///
/// ```
/// use workerpoolxt::{Job, Pool, ResultSet};
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(4);
/// let set: ResultSet<u32, String> = (0..3u32)
///     .map(|i| {
///         pool.submit_job(
///             Job::new(move |_ctx| async move {
///                 if i == 1 { Err(format!("job {i} failed")) } else { Ok(i) }
///             })
///             .name(format!("job-{i}")),
///         )
///     })
///     .collect();
/// let outcomes = set.join_all().await;
/// assert_eq!(outcomes.len(), 3);
/// assert_eq!(outcomes[1].name(), Some("job-1"));
/// assert!(!outcomes[1].is_ok());
/// # });
/// ```
///
/// In completion order:
///
/// ```
/// use futures_lite::StreamExt;
/// use workerpoolxt::{Pool, ResultSet};
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(4);
/// let mut set = ResultSet::new();
/// for i in 0..10u32 {
///     set.push(pool.submit(async move { i }));
/// }
/// let mut total = 0;
/// while let Some(outcome) = set.next().await {
///     total += outcome.into_result().unwrap();
/// }
/// assert_eq!(total, 45);
/// # });
/// ```
#[must_use = "a result set does nothing unless you await or poll it"]
pub struct ResultSet<T, E = Infallible> {
    pending: FuturesUnordered<Indexed<T, E>>,
    pushed: usize,
}

struct Indexed<T, E> {
    index: usize,
    outcome: OutcomeFuture<T, E>,
}

impl<T, E> Future for Indexed<T, E> {
    type Output = (usize, Outcome<T, E>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        Pin::new(&mut self.outcome).poll(cx).map(|o| (index, o))
    }
}

impl<T, E> ResultSet<T, E> {
    /// An empty set.
    pub fn new() -> Self {
        ResultSet {
            pending: FuturesUnordered::new(),
            pushed: 0,
        }
    }

    /// Adds a handle. A handle whose result was taken already (it was
    /// awaited, or [`try_take`](ResultHandle::try_take) gave it) has no
    /// outcome left to give: it adds nothing.
    pub fn push(&mut self, handle: ResultHandle<T, E>) {
        if handle.is_terminated() {
            return;
        }
        self.pending.push(Indexed {
            index: self.pushed,
            outcome: handle.outcome(),
        });
        self.pushed += 1;
    }

    /// Handles not yet yielded.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every handle has been yielded (or none was pushed).
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Cancels every job not yet yielded (see [`ResultHandle::cancel`]).
    pub fn cancel_all(&self) {
        for f in self.pending.iter() {
            f.outcome.cancel();
        }
    }

    /// The next job to finish, in completion order; `None` once the set is
    /// empty. Cancel-safe: a `select!` that drops it loses nothing.
    ///
    /// ```
    /// use workerpoolxt::{Pool, ResultSet};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let mut set = ResultSet::new();
    /// let ids: Vec<_> = (0..3u32)
    ///     .map(|i| {
    ///         let h = pool.submit(async move { i });
    ///         let id = h.id();
    ///         set.push(h);
    ///         id
    ///     })
    ///     .collect();
    /// let mut seen = Vec::new();
    /// while let Some(outcome) = set.join_next().await {
    ///     seen.push(outcome.id());
    /// }
    /// seen.sort();
    /// assert_eq!(seen, ids);
    /// # });
    /// ```
    pub async fn join_next(&mut self) -> Option<Outcome<T, E>> {
        futures_lite::StreamExt::next(&mut self.pending)
            .await
            .map(|(_, o)| o)
    }

    /// Blocks the calling thread until every job is done; the outcomes in
    /// the order the handles were pushed, as [`join_all`](Self::join_all).
    /// For callers without an executor.
    ///
    /// # Panics
    ///
    /// Called inside an async job (it would block a thread that runs the
    /// pool's workers), as [`ResultHandle::wait`].
    ///
    /// ```
    /// use workerpoolxt::{Pool, ResultSet};
    ///
    /// let pool = Pool::new(2);
    /// let set: ResultSet<u32> = (0..4u32).map(|i| pool.submit_blocking(move || i * 2)).collect();
    /// let values: Vec<_> = set.wait_all().into_iter().map(|o| o.into_result().unwrap()).collect();
    /// assert_eq!(values, [0, 2, 4, 6]);
    /// ```
    pub fn wait_all(self) -> Vec<Outcome<T, E>> {
        block_outside_async_jobs("ResultSet::wait_all()", self.join_all())
    }

    /// Waits for every job; returns the outcomes in the order the handles
    /// were pushed (those already yielded by the stream are not included).
    pub async fn join_all(mut self) -> Vec<Outcome<T, E>> {
        let mut all: Vec<(usize, Outcome<T, E>)> = Vec::with_capacity(self.pending.len());
        while let Some(item) = futures_lite::StreamExt::next(&mut self.pending).await {
            all.push(item);
        }
        all.sort_unstable_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, o)| o).collect()
    }
}

impl<T, E> Default for ResultSet<T, E> {
    fn default() -> Self {
        ResultSet::new()
    }
}

impl<T, E> Stream for ResultSet<T, E> {
    type Item = Outcome<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.pending)
            .poll_next(cx)
            .map(|o| o.map(|(_, outcome)| outcome))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<T, E> FromIterator<ResultHandle<T, E>> for ResultSet<T, E> {
    fn from_iter<I: IntoIterator<Item = ResultHandle<T, E>>>(iter: I) -> Self {
        let mut set = ResultSet::new();
        set.extend(iter);
        set
    }
}

impl<T, E> Extend<ResultHandle<T, E>> for ResultSet<T, E> {
    fn extend<I: IntoIterator<Item = ResultHandle<T, E>>>(&mut self, iter: I) {
        for h in iter {
            self.push(h);
        }
    }
}

impl<T, E> fmt::Debug for ResultSet<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultSet")
            .field("pending", &self.len())
            .finish()
    }
}

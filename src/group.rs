//! [`Group`]: jobs of one pool submitted, awaited and cancelled together,
//! optionally cancelled as a whole by the first error.
//!
//! How it works:
//! - A member is a [`Job`] submitted through the pool (so it shares the
//!   pool's bound and FIFO order), its body wrapped in a [`MemberBody`] that
//!   counts the member bodies that started and are not dropped yet
//!   ([`Activity::live`]): a body is dropped once its future was dropped
//!   or its blocking closure returned, when its worker lets go of its slot.
//! - The group keeps each member's [`OutcomeFuture`] and polls it with a
//!   waker of its own ([`MemberWaker`]), which the job's publish wakes on
//!   whatever thread it runs: the group learns of an outcome as it happens,
//!   so a first error cancels the other members at once, not when someone
//!   polls [`GroupWait`]. The waker holds the group weakly: a dropped group
//!   no longer watches its members.
//! - Cancels are made after the group's lock is released: cancelling a
//!   queued member publishes its outcome at once, on the cancelling thread,
//!   and that wakes its member waker, which takes the lock.
//! - [`GroupWait`] never polls a member (that would replace its waker): it
//!   listens to [`Activity::changed`], notified on every outcome and every
//!   body dropped, and checks the group's state.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};

use event_listener::Event;
use futures_core::future::FusedFuture;

use crate::body::Body;
use crate::cancel::CancelToken;
use crate::context::{JobContext, JobMeta};
use crate::error::JobError;
use crate::handle::{CancelHandle, Outcome, OutcomeFuture, ResultHandle};
use crate::header::Name;
use crate::id::JobId;
use crate::job::{Job, JobBody};
use crate::shared::Listening;
use crate::sync::{lock_std, Arc, AtomicUsize, Ordering};

/// What [`Group::wait`] resolves to.
type Waited<T, E> = Result<Vec<Outcome<T, E>>, JobError<E>>;

/// How a group submits a member to its pool (given by `Pool::group`, which
/// owns the pool's submit path).
pub(crate) type Submit<T, E> =
    Box<dyn Fn(MemberBody<T, E>, Option<Name>) -> ResultHandle<T, E> + Send + Sync>;

/// Jobs of one pool submitted, awaited and cancelled together; from
/// [`Pool::group`](crate::Pool::group).
///
/// Members are submitted with [`submit`](Self::submit),
/// [`submit_blocking`](Self::submit_blocking) or
/// [`submit_job`](Self::submit_job): they are jobs of the pool like any
/// other, under its `max_workers` bound and in its FIFO order, and an `Err`
/// they return counts as a failure ([`JobError::Failed`]).
/// [`wait`](Self::wait) resolves to their [`Outcome`]s in submission order.
///
/// With [`cancel_on_error`](Self::cancel_on_error), the first member that
/// ends in an error cancels every other member when it happens: queued
/// members never start, running async ones are dropped, running blocking
/// closures are told through their [`JobContext`] (and keep their slot until
/// they return). `wait` then resolves to that first error, once every
/// member has let go of its slot.
///
/// `Group` is `Clone + Send + Sync` and cheap to clone: clones share the
/// members, so a job can hold a clone and submit more members (a crawler's
/// pages), and `wait` waits for those too. The group keeps each member's
/// outcome until a `wait` takes it.
///
/// # Drop
///
/// Dropping a group (every clone of it, and its [`GroupWait`]s) does nothing
/// to its jobs, as dropping their handles would not: they run to their end
/// and keep their slots, and from then on nothing cancels them on an error.
/// Call [`cancel`](Self::cancel) first to stop them.
///
/// A group keeps its pool open: while a clone lives (in a job, say), the
/// pool does not begin to drain as it does once its last `Pool` clone is
/// dropped.
///
/// # Examples
///
/// ```
/// use workerpoolxt::{JobError, Pool};
///
/// # futures_lite::future::block_on(async {
/// let pool = Pool::new(4);
/// let group = pool.group();
/// group.cancel_on_error();
/// for i in 0..3u32 {
///     group.submit(async move { if i == 1 { Err("page 1 is gone") } else { Ok(i) } });
/// }
/// assert_eq!(group.wait().await.unwrap_err(), JobError::Failed("page 1 is gone"));
/// # });
/// ```
pub struct Group<T, E = Infallible> {
    inner: Arc<Inner<T, E>>,
}

impl<T, E> Clone for Group<T, E> {
    fn clone(&self) -> Self {
        Group {
            inner: self.inner.clone(),
        }
    }
}

/// What a group's members share with it: see the module docs.
struct Activity {
    /// Member bodies that started (made an attempt) and are not dropped yet.
    live: AtomicUsize,
    /// A member resolved, or a member body was dropped.
    changed: Event,
}

struct Inner<T, E> {
    submit: Submit<T, E>,
    activity: Arc<Activity>,
    state: Mutex<State<T, E>>,
}

/// Why a group stopped its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Halt {
    /// [`Group::cancel`] was called, or the first error was given to a wait
    /// already.
    Cancelled,
    /// The member at this index of `members` failed first, with
    /// `cancel_on_error`; the wait that takes it returns its error.
    Failed(usize),
}

struct State<T, E> {
    cancel_on_error: bool,
    halted: Option<Halt>,
    /// The index in `members` of the first one that resolved with an error,
    /// if it was before the group halted (`cancel_on_error` may come later).
    first_error: Option<usize>,
    /// The members since the last wait took them: member `taken + i` is at
    /// index `i`.
    members: Vec<Entry<T, E>>,
    taken: usize,
    /// Members in `members` not resolved yet.
    unresolved: usize,
}

enum Entry<T, E> {
    Pending {
        outcome: OutcomeFuture<T, E>,
        canceller: CancelHandle,
    },
    Done(Outcome<T, E>),
}

impl<T, E> Group<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    pub(crate) fn new(submit: Submit<T, E>) -> Self {
        Group {
            inner: Arc::new(Inner {
                submit,
                activity: Arc::new(Activity {
                    live: AtomicUsize::new(0),
                    changed: Event::new(),
                }),
                state: Mutex::new(State {
                    cancel_on_error: false,
                    halted: None,
                    first_error: None,
                    members: Vec::new(),
                    taken: 0,
                    unresolved: 0,
                }),
            }),
        }
    }

    /// Submits a future as a member: [`Job::once`]`(future)`, so an `Err`
    /// counts as a failure. Returns the member's id (the one its
    /// [`Outcome::id`] carries). Never blocks.
    ///
    /// After the group halted (an error with
    /// [`cancel_on_error`](Self::cancel_on_error), or
    /// [`cancel`](Self::cancel)), the member is submitted cancelled: it
    /// never starts and resolves [`JobError::Cancelled`].
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let group = pool.group();
    /// let id = group.submit(async { Ok::<_, String>(7) });
    /// let outcomes = group.wait().await.unwrap();
    /// assert_eq!(outcomes[0].id(), id);
    /// assert_eq!(outcomes[0].result(), Ok(&7));
    /// # });
    /// ```
    pub fn submit<F>(&self, future: F) -> JobId
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.submit_job(Job::once(future))
    }

    /// Submits a blocking closure as a member: [`Job::blocking_once`], so an
    /// `Err` counts as a failure. Returns the member's id. Never blocks.
    ///
    /// A running closure cannot be stopped: when the group cancels it, its
    /// [`JobContext`] says so (submit a [`Job::blocking_once`] with
    /// [`submit_job`](Self::submit_job) to look at it), and the group's
    /// [`wait`](Self::wait) waits until it has returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let group = pool.group();
    /// group.submit_blocking(|| "text".parse::<u32>());
    /// group.submit_blocking(|| "42".parse::<u32>());
    /// let outcomes = group.wait().await.unwrap();
    /// assert!(!outcomes[0].is_ok());
    /// assert_eq!(outcomes[1].result(), Ok(&42));
    /// # });
    /// ```
    pub fn submit_blocking<F>(&self, f: F) -> JobId
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        self.submit_job(Job::blocking_once(move |_ctx| f()))
    }

    /// Submits a [`Job`] as a member, with its name, timeout, retries and
    /// token. Returns the member's id. Never blocks.
    ///
    /// A member whose retries are left still ends on the group's cancel:
    /// no attempt starts after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{Backoff, Job, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let group = pool.group();
    /// group.submit_job(
    ///     Job::new(|ctx| async move { if ctx.attempt() < 2 { Err("flaky") } else { Ok(1) } })
    ///         .name("flaky")
    ///         .retry(1)
    ///         .backoff(Backoff::none()),
    /// );
    /// let outcomes = group.wait().await.unwrap();
    /// assert_eq!(outcomes[0].name(), Some("flaky"));
    /// assert_eq!(outcomes[0].attempts(), 2);
    /// # });
    /// ```
    pub fn submit_job<K>(&self, job: Job<T, E, K>) -> JobId {
        // Halted already: the job's own token, cancelled, keeps it from
        // starting even if a worker takes it before the cancel below.
        let job = if self.inner.is_halted() {
            let token = CancelToken::new();
            token.cancel();
            job.cancel_token(token)
        } else {
            job
        };
        let (body, name) = job.into_parts();
        let member = MemberBody {
            body,
            activity: self.inner.activity.clone(),
            started: None,
        };
        let handle = (self.inner.submit)(member, name);
        self.inner.add(handle)
    }

    /// Makes the first error of a member cancel every other member, and
    /// [`wait`](Self::wait) resolve to that error.
    ///
    /// An error is any outcome but a value: [`JobError::Failed`],
    /// `Panicked`, `TimedOut`, `Stopped`, `QueueFull`, or a `Cancelled` that
    /// the group did not cause (the job's token, a shutdown). At the first
    /// one the group cancels the other members, at once, from the thread
    /// that saw the error: queued ones never start, running async ones are
    /// dropped, running blocking closures are told through their
    /// [`JobContext`]. Members submitted later are cancelled too.
    ///
    /// Called after a member failed already, it cancels the others then.
    /// It cannot be undone.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{JobError, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(1);
    /// let group = pool.group();
    /// group.cancel_on_error();
    /// group.submit(async { Err::<(), _>("broken") });
    /// group.submit(async { Ok(()) }); // queued behind it: never starts
    /// assert_eq!(group.wait().await.unwrap_err(), JobError::Failed("broken"));
    /// # });
    /// ```
    pub fn cancel_on_error(&self) -> &Self {
        let cancels = {
            let mut state = lock_std(&self.inner.state);
            state.cancel_on_error = true;
            match state.first_error {
                Some(i) if state.halted.is_none() => state.halt(Halt::Failed(i)),
                _ => Vec::new(),
            }
        };
        self.inner.cancel_all(cancels);
        self
    }

    /// Cancels every member, as [`ResultHandle::cancel`] would each: queued
    /// ones never start, running async ones are dropped, running blocking
    /// closures are told through their [`JobContext`] (and keep their slot
    /// until they return); finished ones keep their outcome. Members
    /// submitted later are cancelled too.
    ///
    /// [`wait`](Self::wait) then resolves to `Err(`[`JobError::Cancelled`]`)`
    /// with [`cancel_on_error`](Self::cancel_on_error) (unless a member
    /// failed first: then to its error), or to every outcome without.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::{JobError, Pool};
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(2);
    /// let group = pool.group();
    /// group.submit(std::future::pending::<Result<(), ()>>());
    /// group.cancel();
    /// let outcomes = group.wait().await.unwrap();
    /// assert_eq!(outcomes[0].result(), Err(&JobError::Cancelled));
    /// # });
    /// ```
    pub fn cancel(&self) {
        let cancels = {
            let mut state = lock_std(&self.inner.state);
            state.halt(Halt::Cancelled)
        };
        self.inner.cancel_all(cancels);
    }

    /// Waits for the members: resolves to their outcomes in submission
    /// order (the order of their [`JobId`]s), or (with [`cancel_on_error`](Self::cancel_on_error)) to the
    /// first error.
    ///
    /// It resolves once every member submitted before it resolves has
    /// finished *and let go of its slot*: its future was dropped, or its
    /// blocking closure returned (a cancelled closure's outcome is known at
    /// once, but the wait goes on until it returns). Members submitted while
    /// it waits (by a running member, through a clone) are waited for too.
    ///
    /// - Without `cancel_on_error`: `Ok` with every outcome, errors included.
    /// - With it: `Ok` with every outcome if none was an error; otherwise
    ///   `Err` with the first error, or [`JobError::Cancelled`] if
    ///   [`cancel`](Self::cancel) came first.
    ///
    /// The wait takes the outcomes it returns: a later wait (on this group
    /// or a clone) sees only members submitted after. After a first error
    /// was returned, later waits of a `cancel_on_error` group resolve
    /// `Err(JobError::Cancelled)`: their members were cancelled by the
    /// group. With no member, it resolves at once.
    ///
    /// A job that waits for its own group keeps its slot while it waits:
    /// if the members cannot start for want of a slot, the wait never ends.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it resolves loses nothing: the outcomes
    /// stay in the group for the next wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use workerpoolxt::Pool;
    ///
    /// # futures_lite::future::block_on(async {
    /// let pool = Pool::new(4);
    /// let group = pool.group();
    /// for i in 0..5u64 {
    ///     group.submit(async move { Ok::<_, ()>(i * i) });
    /// }
    /// let squares: Vec<u64> = group
    ///     .wait()
    ///     .await
    ///     .unwrap()
    ///     .into_iter()
    ///     .map(|o| o.into_result().unwrap())
    ///     .collect();
    /// assert_eq!(squares, [0, 1, 4, 9, 16]);
    /// # });
    /// ```
    pub fn wait(&self) -> GroupWait<T, E> {
        GroupWait {
            group: Some(self.inner.clone()),
            listening: Listening::default(),
        }
    }
}

impl<T, E> Inner<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    fn is_halted(&self) -> bool {
        lock_std(&self.state).halted.is_some()
    }

    /// Takes a submitted member in: watches its outcome with its member
    /// waker, and cancels it if the group halted.
    fn add(self: &Arc<Self>, handle: ResultHandle<T, E>) -> JobId {
        let id = handle.id();
        let canceller = handle.cancel_handle();
        let mut outcome = handle.outcome();
        let cancels = {
            let mut state = lock_std(&self.state);
            let index = state.taken + state.members.len();
            let waker = Waker::from(Arc::new(MemberWaker {
                group: Arc::downgrade(self),
                index,
            }));
            // Registered under the lock: a publish that wakes it meanwhile
            // waits for the lock, and finds the member in.
            let polled = Pin::new(&mut outcome).poll(&mut Context::from_waker(&waker));
            state.members.push(Entry::Pending {
                outcome,
                canceller: canceller.clone(),
            });
            state.unresolved += 1;
            let mut cancels = match polled {
                Poll::Ready(o) => {
                    let i = state.members.len() - 1;
                    state.resolved(i, o)
                }
                Poll::Pending => Vec::new(),
            };
            if state.halted.is_some() {
                cancels.push(canceller);
            }
            cancels
        };
        self.cancel_all(cancels);
        id
    }

    /// The member waker of member `index` was woken: its outcome is ready.
    fn member_woke(&self, waker: &Arc<MemberWaker<T, E>>) {
        let cancels = {
            let mut guard = lock_std(&self.state);
            let state = &mut *guard;
            let Some(i) = waker.index.checked_sub(state.taken) else {
                return;
            };
            let Some(Entry::Pending { outcome, .. }) = state.members.get_mut(i) else {
                return;
            };
            let w = Waker::from(waker.clone());
            match Pin::new(outcome).poll(&mut Context::from_waker(&w)) {
                Poll::Ready(o) => state.resolved(i, o),
                Poll::Pending => return,
            }
        };
        self.cancel_all(cancels);
    }

    /// Cancels `members` (outside the group's lock: a queued member's
    /// cancel wakes its member waker on this thread), then tells the waits.
    fn cancel_all(&self, members: Vec<CancelHandle>) {
        for m in members {
            m.cancel();
        }
        self.activity.changed.notify(usize::MAX);
    }

    /// The wait's result, if every member resolved and let go of its slot.
    fn try_take(&self) -> Option<Waited<T, E>> {
        let (members, failure) = {
            let mut state = lock_std(&self.state);
            if state.unresolved > 0 || self.activity.live.load(Ordering::SeqCst) > 0 {
                return None;
            }
            state.take()
        };
        // Outside the lock: dropping outcomes runs their values' destructors.
        let mut outcomes: Vec<Outcome<T, E>> = members
            .into_iter()
            .filter_map(|e| match e {
                Entry::Done(o) => Some(o),
                Entry::Pending { .. } => None,
            })
            .collect();
        Some(match failure {
            None => {
                // Submission order: members come in as their submits return,
                // which for submits on several threads may not be the order
                // in which they took their places in the pool's queue.
                outcomes.sort_by_key(Outcome::id);
                Ok(outcomes)
            }
            Some(Halt::Cancelled) => Err(JobError::Cancelled),
            Some(Halt::Failed(i)) => Err(outcomes
                .swap_remove(i)
                .into_result()
                .err()
                .unwrap_or(JobError::Cancelled)),
        })
    }
}

impl<T, E> State<T, E> {
    /// Member `i` of `members` resolved with `outcome`; returns the members
    /// to cancel if that halts the group.
    fn resolved(&mut self, i: usize, outcome: Outcome<T, E>) -> Vec<CancelHandle> {
        let failed = !outcome.is_ok();
        self.members[i] = Entry::Done(outcome);
        self.unresolved -= 1;
        // Once halted, errors are the group's own cancels, or come after the
        // first.
        if !failed || self.halted.is_some() {
            return Vec::new();
        }
        let first = *self.first_error.get_or_insert(i);
        if self.cancel_on_error {
            self.halt(Halt::Failed(first))
        } else {
            Vec::new()
        }
    }

    /// Halts the group for `why` (unless it halted already); returns every
    /// member not resolved yet, to cancel, the latest submitted first.
    ///
    /// The latest first: the pool starts jobs in FIFO order, so a member
    /// still queued comes after every running one, and is cancelled before
    /// a running one's cancel frees a slot that could start it. By id, not
    /// by place in `members`: submits on several threads may join the group
    /// in another order than the queue's.
    fn halt(&mut self, why: Halt) -> Vec<CancelHandle> {
        self.halted.get_or_insert(why);
        let mut pending: Vec<CancelHandle> = self
            .members
            .iter()
            .rev()
            .filter_map(|e| match e {
                Entry::Pending { canceller, .. } => Some(canceller.clone()),
                Entry::Done(_) => None,
            })
            .collect();
        pending.sort_by_key(|c| std::cmp::Reverse(c.id()));
        pending
    }

    /// Takes every member (all resolved), with why the wait fails, if it
    /// does.
    fn take(&mut self) -> (Vec<Entry<T, E>>, Option<Halt>) {
        let members = std::mem::take(&mut self.members);
        self.taken += members.len();
        self.first_error = None;
        let failure = if self.cancel_on_error {
            self.halted
        } else {
            None
        };
        if let Some(Halt::Failed(_)) = self.halted {
            // Its error goes to this wait only; the members were re-indexed.
            self.halted = Some(Halt::Cancelled);
        }
        (members, failure)
    }
}

/// The waker a group polls a member's outcome with: it tells the group.
struct MemberWaker<T, E> {
    group: Weak<Inner<T, E>>,
    /// The member's number in its group, from 0.
    index: usize,
}

impl<T, E> Wake for MemberWaker<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(group) = self.group.upgrade() {
            group.member_woke(self);
        }
    }
}

/// A member's body: the job's, counted in its group's [`Activity::live`]
/// from its first attempt until it is dropped.
pub(crate) struct MemberBody<T, E> {
    body: JobBody<T, E>,
    activity: Arc<Activity>,
    /// Declared after `body`, so dropped after it: the group hears of the
    /// drop once what the job captured is gone.
    started: Option<Started>,
}

/// A member body that started, counted in `live` until dropped.
struct Started(Arc<Activity>);

impl Started {
    fn new(activity: Arc<Activity>) -> Self {
        activity.live.fetch_add(1, Ordering::SeqCst);
        Started(activity)
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify(usize::MAX);
    }
}

impl<T: Send + 'static, E: Send + 'static> Body for MemberBody<T, E> {
    type Output = T;
    type Error = E;
    type Attempt = <JobBody<T, E> as Body>::Attempt;

    fn attempt(&mut self, ctx: Option<JobContext>) -> Option<Self::Attempt> {
        if self.started.is_none() {
            self.started = Some(Started::new(self.activity.clone()));
        }
        self.body.attempt(ctx)
    }

    fn is_blocking(&self) -> bool {
        self.body.is_blocking()
    }

    fn meta(&self) -> Option<&JobMeta> {
        self.body.meta()
    }

    fn retries(&self, error: &E) -> bool {
        self.body.retries(error)
    }
}

/// The future of [`Group::wait`]: the members' outcomes in submission
/// order, or the first error of a `cancel_on_error` group.
///
/// `Unpin` and a [`FusedFuture`]. Dropping it before it resolves loses
/// nothing (the outcomes stay in the group); it holds the group, so the
/// group is not dropped while it waits.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct GroupWait<T, E = Infallible> {
    /// `None` once resolved.
    group: Option<Arc<Inner<T, E>>>,
    listening: Listening,
}

impl<T, E> Future for GroupWait<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    type Output = Waited<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(group) = this.group.clone() else {
            // Polled after it resolved.
            return Poll::Pending;
        };
        loop {
            if let Some(result) = group.try_take() {
                this.group = None;
                this.listening.stop();
                return Poll::Ready(result);
            }
            if this
                .listening
                .wait(cx, || group.activity.changed.listen())
                .is_pending()
            {
                return Poll::Pending;
            }
        }
    }
}

impl<T, E> FusedFuture for GroupWait<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.group.is_none()
    }
}

impl<T, E> fmt::Debug for GroupWait<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupWait")
            .field("resolved", &self.group.is_none())
            .finish()
    }
}

impl<T, E> fmt::Debug for Group<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock_std(&self.inner.state);
        f.debug_struct("Group")
            .field("members", &state.members.len())
            .field("unresolved", &state.unresolved)
            .field("cancel_on_error", &state.cancel_on_error)
            .field("halted", &state.halted.is_some())
            .finish()
    }
}

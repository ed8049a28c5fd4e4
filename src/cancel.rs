//! [`CancelToken`]: a runtime-agnostic cancellation signal with children.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use event_listener::{Event, EventListener};
use futures_core::future::FusedFuture;

use std::sync::{Arc, Mutex, Weak};

use crate::sync::{lock_std as lock, AtomicBool, Ordering};

/// A cancellation signal: Go's `context.Context` cancel, for a job or a pool.
///
/// Cloning gives another handle to the same signal. [`child`](Self::child)
/// gives a new token that is cancelled with its parent (and with its parent's
/// parent), but whose own cancellation does not reach the parent.
///
/// A pool has a default token ([`Builder::cancel_token`](crate::Builder::cancel_token),
/// [`Pool::cancel_token`](crate::Pool::cancel_token)) used by every job that sets
/// none; a [`Job`](crate::Job) may bring its own, which **replaces** the pool's.
/// Cancelling a token cancels every job that uses it, queued or running.
///
/// # Examples
///
/// ```
/// use workerpoolxt::CancelToken;
///
/// # futures_lite::future::block_on(async {
/// let parent = CancelToken::new();
/// let child = parent.child();
/// child.cancel();
/// assert!(!parent.is_cancelled());
///
/// let other = parent.child();
/// parent.cancel();
/// assert!(other.is_cancelled());
/// other.cancelled().await; // resolves at once
/// # });
/// ```
#[derive(Clone)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

struct Inner {
    cancelled: AtomicBool,
    event: Event,
    children: Mutex<Vec<Weak<Inner>>>,
}

impl Inner {
    fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::SeqCst) {
            return;
        }
        self.event.notify(usize::MAX);
        let children = std::mem::take(&mut *lock(&self.children));
        for child in children {
            if let Some(child) = child.upgrade() {
                child.cancel();
            }
        }
    }
}

impl CancelToken {
    /// A new token, not cancelled.
    pub fn new() -> CancelToken {
        CancelToken {
            inner: Arc::new(Inner {
                cancelled: AtomicBool::new(false),
                event: Event::new(),
                children: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Cancels this token and all its children. Cancelling twice is harmless.
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Whether this token has been cancelled (itself or through a parent).
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// A future that resolves once this token is cancelled.
    ///
    /// # Cancel safety
    ///
    /// Dropping it loses nothing: the token stays as it is.
    pub fn cancelled(&self) -> Cancelled {
        Cancelled {
            inner: self.inner.clone(),
            listener: None,
            armed_for: None,
            done: false,
        }
    }

    /// A new token that is cancelled whenever this one is.
    ///
    /// Cancelling the child does not cancel this token. A child of a token
    /// that is already cancelled starts cancelled.
    pub fn child(&self) -> CancelToken {
        let child = CancelToken::new();
        {
            let mut children = lock(&self.inner.children);
            // Forget children that are gone, so a long-lived parent with many
            // short-lived children stays small.
            if children.len() >= 16 && children.len().is_power_of_two() {
                children.retain(|c| c.strong_count() > 0);
            }
            children.push(Arc::downgrade(&child.inner));
        }
        // The parent may have been cancelled before the push: it then took the
        // list without this child.
        if self.is_cancelled() {
            child.cancel();
        }
        child
    }

    /// Whether two handles refer to the same token.
    pub fn same_as(&self, other: &CancelToken) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new()
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// The future returned by [`CancelToken::cancelled`]: resolves once the token
/// is cancelled.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Cancelled {
    inner: Arc<Inner>,
    listener: Option<EventListener>,
    /// The waker `listener` was last polled with. While polls come with the
    /// same waker the listener needs no new poll (a poll locks the token's
    /// list of waiters, which every waiting job shares): a look at the flag
    /// does, since a cancel sets it before it wakes the waiters.
    armed_for: Option<Waker>,
    done: bool,
}

impl Future for Cancelled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.inner.cancelled.load(Ordering::SeqCst) {
                self.listener = None;
                self.armed_for = None;
                self.done = true;
                return Poll::Ready(());
            }
            let this = &mut *self;
            match this.listener.as_mut() {
                // Listen, then check the flag again before waiting: a cancel
                // between the check above and the listen is not lost.
                None => this.listener = Some(this.inner.event.listen()),
                Some(_)
                    if this
                        .armed_for
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker())) =>
                {
                    // Registered with this waker already, and the flag (set
                    // before any wake) was just seen clear.
                    return Poll::Pending;
                }
                Some(l) => {
                    if Pin::new(l).poll(cx).is_pending() {
                        this.armed_for = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                    this.listener = None;
                    this.armed_for = None;
                }
            }
        }
    }
}

impl FusedFuture for Cancelled {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl fmt::Debug for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancelled").finish_non_exhaustive()
    }
}

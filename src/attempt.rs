//! The running attempt's place in a task: an `Option` without its own
//! discriminant.
//!
//! A queued plain job is mostly its task, and a task mostly its attempt (the
//! submitted future). `Option<F>` of an `async` block takes 8 bytes more
//! than the block (the compiler finds no niche in it), which would put every
//! queued job's cell in the next size class of the allocator.
//! So the task keeps whether it holds an attempt among its other flags, and
//! the attempt here, and [`Attempt`] puts the two back together.
#![allow(unsafe_code)]

use std::marker::PhantomPinned;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;

use crate::error::Panic;

/// Room for one attempt; whether it holds one is kept by its owner.
pub(crate) struct AttemptStore<A> {
    value: MaybeUninit<A>,
    /// The attempt is pinned while it lives here: the store is never
    /// `Unpin`, whatever `A` is (simpler to reason about than "like `A`").
    _pin: PhantomPinned,
}

impl<A> AttemptStore<A> {
    /// A store holding `first`, and whether it holds one.
    pub(crate) fn new(first: Option<A>) -> (bool, Self) {
        let present = first.is_some();
        let value = match first {
            Some(a) => MaybeUninit::new(a),
            None => MaybeUninit::uninit(),
        };
        (
            present,
            AttemptStore {
                value,
                _pin: PhantomPinned,
            },
        )
    }
}

/// An attempt store and the flag that says whether it holds one: what
/// `Pin<&mut Option<A>>` would be.
pub(crate) struct Attempt<'a, A> {
    present: &'a mut bool,
    store: Pin<&'a mut AttemptStore<A>>,
}

impl<'a, A> Attempt<'a, A> {
    /// # Safety
    ///
    /// `present` is the flag kept for `store` (set exactly when it holds a
    /// value), and only `Attempt` changes either of them.
    pub(crate) unsafe fn new(present: &'a mut bool, store: Pin<&'a mut AttemptStore<A>>) -> Self {
        Attempt { present, store }
    }

    pub(crate) fn is_some(&self) -> bool {
        *self.present
    }

    /// The attempt, pinned, if there is one.
    pub(crate) fn into_pin_mut(self) -> Option<Pin<&'a mut A>> {
        if !*self.present {
            return None;
        }
        // SAFETY: the flag says the value is there (`new`'s promise); it is
        // pinned as its store is: it never moves out of it, and it is dropped
        // in place (`clear`, `drop_in_place`).
        Some(unsafe { self.store.map_unchecked_mut(|s| s.value.assume_init_mut()) })
    }

    /// Puts `attempt` in the store, which must be empty.
    pub(crate) fn set(self, attempt: A) {
        assert!(!*self.present, "an attempt replaced without being dropped");
        // SAFETY: writing into an empty store moves nothing that is pinned.
        unsafe { self.store.get_unchecked_mut() }
            .value
            .write(attempt);
        *self.present = true;
    }

    /// Drops the attempt, if there is one, catching a panic of its
    /// destructor.
    pub(crate) fn clear(self) -> Result<(), Panic> {
        catch_unwind(AssertUnwindSafe(|| self.drop_in_place())).map_err(Panic::caught)
    }

    /// Drops the attempt, if there is one; a panic of its destructor goes on.
    pub(crate) fn drop_in_place(self) {
        if std::mem::take(self.present) {
            // SAFETY: the flag said the value was there; it is cleared first,
            // so the value is dropped once even if its destructor panics
            // (the value counts as dropped then). Dropping in place keeps
            // the pinning promise.
            unsafe { self.store.get_unchecked_mut().value.assume_init_drop() };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::{Attempt, AttemptStore};

    /// Counts its drops; panics in `drop` if asked to.
    struct Counted(Arc<AtomicUsize>, bool);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            if self.1 {
                panic!("attempt destructor");
            }
        }
    }

    #[test]
    fn holds_sets_and_drops_one_attempt_at_a_time() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut present, store) = AttemptStore::new(Some(Counted(drops.clone(), false)));
        let mut store = pin!(store);
        macro_rules! at {
            () => {
                // SAFETY: `present` is the store's own flag.
                unsafe { Attempt::new(&mut present, store.as_mut()) }
            };
        }
        assert!(at!().is_some());
        assert!(at!().into_pin_mut().is_some());
        assert!(at!().clear().is_ok());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(!present);
        assert!(at!().into_pin_mut().is_none());
        // Clearing an empty store drops nothing.
        assert!(at!().clear().is_ok());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        at!().set(Counted(drops.clone(), false));
        assert!(present);
        at!().drop_in_place();
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_destructor_is_reported_and_runs_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut present, store) = AttemptStore::new(Some(Counted(drops.clone(), true)));
        let mut store = pin!(store);
        // SAFETY: `present` is the store's own flag.
        let cleared = unsafe { Attempt::new(&mut present, store.as_mut()) }.clear();
        let panic = cleared.expect_err("the destructor's panic is reported");
        assert_eq!(panic.message(), "attempt destructor");
        assert!(!present, "the value counts as dropped");
        // SAFETY: as above.
        unsafe { Attempt::new(&mut present, store.as_mut()) }.drop_in_place();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    #[should_panic(expected = "replaced without being dropped")]
    fn a_full_store_refuses_another_attempt() {
        let (mut present, store) = AttemptStore::new(Some(1u8));
        let mut store = pin!(store);
        // SAFETY: `present` is the store's own flag.
        unsafe { Attempt::new(&mut present, store.as_mut()) }.set(2);
    }
}

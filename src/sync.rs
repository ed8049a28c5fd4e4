//! The one place where the crate's synchronisation primitives come from.
//!
//! Every atomic and lock of the pool's state machines (a job's header, the
//! scheduling counters, the lifecycle) is imported from here, so that the
//! loom model checker can replace them: build with
//! `RUSTFLAGS="--cfg workerpoolxt_loom"` (see `src/loom_tests.rs` and
//! TESTING.md). A crate-specific cfg keeps the dependencies on std.
//!
//! `Arc` stays std's under loom too: the models check the atomics and locks,
//! and std's `Arc` is needed for unsized values (`Arc<dyn Trait>`, `Arc<str>`).

pub(crate) use std::sync::Arc;

#[cfg(not(workerpoolxt_loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

#[cfg(workerpoolxt_loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

#[cfg(not(workerpoolxt_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(workerpoolxt_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning.
///
/// The only user code ever called under one of the crate's locks is a
/// waker's `clone` or `drop`; a panic there leaves the data consistent (the
/// waker is replaced whole or not at all), so a poisoned lock is used as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// An `UnsafeCell` that loom checks: under loom, two overlapping accesses
/// from different threads fail the model.
#[cfg(not(workerpoolxt_loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(workerpoolxt_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer to the value; the caller makes sure no other
    /// access overlaps.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(workerpoolxt_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// One turn of a short wait for a lock bit held by another thread: spin a
/// little, then give the thread away.
pub(crate) fn spin_wait(spins: &mut u32) {
    #[cfg(workerpoolxt_loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(workerpoolxt_loom))]
    if *spins < 32 {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Keeps a value on its own cache line(s), so that counters written by
/// different threads (the submitter, the workers) do not slow each other.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// [`lock`] for the std locks that loom does not model (values that no
/// state machine races on: a token's children, a blocking job's closure).
pub(crate) fn lock_std<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A queue with `queue::Queue`'s API built on loom's `Mutex`, so that the
/// models see the synchronisation that publishing a job provides.
#[cfg(workerpoolxt_loom)]
pub(crate) mod loom_queue {
    use std::collections::VecDeque;

    use loom::sync::atomic::{AtomicUsize, Ordering};

    pub(crate) struct Queue<T> {
        inner: loom::sync::Mutex<(VecDeque<T>, bool)>,
        /// Entries handed out, written under `inner` as the real queue does.
        pops: AtomicUsize,
    }

    impl<T> Queue<T> {
        pub(crate) fn unbounded() -> Self {
            Queue {
                inner: loom::sync::Mutex::new((VecDeque::new(), false)),
                pops: AtomicUsize::new(0),
            }
        }

        pub(crate) fn push(&self, value: T) -> Result<bool, T> {
            let mut q = self.inner.lock().unwrap();
            if q.1 {
                return Err(value);
            }
            let was_empty = q.0.is_empty();
            q.0.push_back(value);
            Ok(was_empty)
        }

        pub(crate) fn pop(&self) -> Result<T, ()> {
            let mut q = self.inner.lock().unwrap();
            let value = q.0.pop_front().ok_or(())?;
            let pops = self.pops.load(Ordering::Relaxed) + 1;
            self.pops.store(pops, Ordering::Release);
            Ok(value)
        }

        pub(crate) fn pops(&self) -> usize {
            self.pops.load(Ordering::SeqCst)
        }

        /// Calls `f` with each queued value, oldest first, under the lock.
        pub(crate) fn visit(&self, f: impl FnMut(&T)) {
            self.inner.lock().unwrap().0.iter().for_each(f);
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.inner.lock().unwrap().0.is_empty()
        }

        pub(crate) fn close(&self) -> bool {
            !std::mem::replace(&mut self.inner.lock().unwrap().1, true)
        }

        pub(crate) fn is_closed(&self) -> bool {
            self.inner.lock().unwrap().1
        }
    }
}

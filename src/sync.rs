//! The one place where the crate's synchronisation primitives come from.
//!
//! Every atomic, lock and shared pointer used by the pool's state machines is
//! imported from here, so a model checker (loom, under `--cfg loom`) can
//! replace them without touching the rest of the crate.

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc, Mutex, MutexGuard, Weak,
};

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc, Mutex, MutexGuard, Weak,
};

/// Locks `m`, ignoring poisoning.
///
/// The crate never panics while holding one of its locks (user code is never
/// called under a lock), so a poisoned lock can only come from a bug that has
/// already been reported; the data is still consistent.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

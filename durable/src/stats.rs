//! A worker's counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::attempt::EndKind;

/// What a [`Worker`](crate::Worker) has done since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Jobs whose success it stored.
    pub succeeded: u64,
    /// Failed attempts it re-scheduled.
    pub retried: u64,
    /// Jobs it failed for good.
    pub dead: u64,
    /// Jobs it handed back at a stop.
    pub handed_back: u64,
    /// Ends the store refused: the lease had been lost (fencing).
    pub refused: u64,
    /// Jobs it dropped because a renewal found the lease lost (expired and
    /// taken over, or the job cancelled).
    pub lost: u64,
    /// Store operations that failed (each is tried again, or the lease
    /// expires and the job is delivered again).
    pub store_errors: u64,
    /// The most leases it held at once.
    pub max_leased: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    handed_back: AtomicU64,
    refused: AtomicU64,
    lost: AtomicU64,
    store_errors: AtomicU64,
    max_leased: AtomicUsize,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub(crate) fn ended(&self, kind: EndKind) {
        bump(match kind {
            EndKind::Succeeded => &self.succeeded,
            EndKind::Retry => &self.retried,
            EndKind::Dead => &self.dead,
            EndKind::Released => &self.handed_back,
        });
    }

    pub(crate) fn refused(&self) {
        bump(&self.refused);
    }

    pub(crate) fn lost(&self) {
        bump(&self.lost);
    }

    pub(crate) fn store_error(&self) {
        bump(&self.store_errors);
    }

    pub(crate) fn leased_now(&self, n: usize) {
        self.max_leased.fetch_max(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            succeeded: get(&self.succeeded),
            retried: get(&self.retried),
            dead: get(&self.dead),
            handed_back: get(&self.handed_back),
            refused: get(&self.refused),
            lost: get(&self.lost),
            store_errors: get(&self.store_errors),
            max_leased: self.max_leased.load(Ordering::Relaxed),
        }
    }
}

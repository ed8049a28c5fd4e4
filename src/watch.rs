//! How a handle's cancel reaches the job it cancels while that job runs.
//!
//! A running job waits on its worker's waker. Rather than keep that waker in
//! every job's header (16 bytes per queued job, and a waker clone per job),
//! each worker registers its waker in one [`Watch`] of its own, kept from job
//! to job, with the job it is waiting in (its slot's address): a lock of
//! that watch each time a job returns `Pending`, a clone only when the
//! worker's waker changes. A cancel of a running job looks through the pool's watches
//! for that job and wakes its worker, which finds the job's `CANCEL` bit
//! set: one lock per worker of the pool for the cancel, one wake-up, and no
//! other job polled for nothing. A job that never waits registers nothing.
//! (A header's address is reused once its cell is freed: a watch left on an
//! old job may get a wake-up meant for a new one at that address, which
//! costs its worker one poll and loses nothing.)
//!
//! No wake-up is lost: a worker registers before it looks at the bit, and a
//! cancel sets the bit before it wakes the registered workers. Both sides
//! take the same locks (the list's when a worker's watch is new, the watch's
//! for its waker): whichever comes second sees what the first did, so either
//! the cancel finds the waker or the worker finds the bit
//! (`loom_cancel_wakes_the_waiting_job`).

use std::sync::Weak;
use std::task::Waker;

use crate::sync::{lock, Arc, Mutex};

/// One worker's waker and the job it waits in, for that job's cancel.
pub(crate) struct Watch {
    waiting: Mutex<Waiting>,
}

struct Waiting {
    waker: Option<Waker>,
    /// The job's header address (0: none yet).
    job: usize,
}

impl Watch {
    /// Keeps `waker` to be woken if `job` (its slot's address) is cancelled
    /// (a clone only if the waker changed).
    pub(crate) fn register(&self, waker: &Waker, job: usize) {
        let mut waiting = lock(&self.waiting);
        waiting.job = job;
        match &waiting.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => waiting.waker = Some(waker.clone()),
        }
    }

    /// Takes the waker, whatever job it waits in.
    fn take(&self) -> Option<Waker> {
        lock(&self.waiting).waker.take()
    }

    /// Takes the waker if this watch waits in `job`.
    fn take_for(&self, job: usize) -> Option<Waker> {
        let mut waiting = lock(&self.waiting);
        if waiting.job == job {
            waiting.waker.take()
        } else {
            None
        }
    }
}

/// A pool's workers' [`Watch`]es.
#[derive(Default)]
pub(crate) struct Watchers {
    /// Weak: a worker that leaves drops its watch; the dead entries are
    /// forgotten as the list grows (`watch`). The lock also orders a new
    /// watch after a cancel that found the list without it (see the module
    /// docs).
    list: Mutex<Vec<Weak<Watch>>>,
}

impl Watchers {
    /// A new watch, for a worker that is about to wait for a job.
    pub(crate) fn watch(&self) -> Arc<Watch> {
        let watch = Arc::new(Watch {
            waiting: Mutex::new(Waiting {
                waker: None,
                job: 0,
            }),
        });
        let mut list = lock(&self.list);
        if list.len() >= 16 && list.len().is_power_of_two() {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(&watch));
        watch
    }

    /// Wakes the worker waiting in `job` (its slot's address), if one has
    /// registered: its handle cancelled it, and the worker finds out when
    /// it looks.
    pub(crate) fn wake(&self, job: usize) {
        // Looked through under the list's lock (a watch's lock is only ever
        // taken inside it, never the other way round), woken outside it. A
        // job has one worker: the list is rarely more than one waker.
        let wakers: Vec<Waker> = lock(&self.list)
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|w| w.take_for(job))
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Wakes every worker that waits in a job (a shutdown cancels them all).
    pub(crate) fn wake_all(&self) {
        let wakers: Vec<Waker> = lock(&self.list)
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|w| w.take())
            .collect();
        for w in wakers {
            w.wake();
        }
    }
}

#[cfg(all(test, not(workerpoolxt_loom)))]
mod tests {
    use super::Watchers;
    use crate::sync::lock;
    use crate::testing::WakeCount;

    /// Workers come and go: the watches of those that left are forgotten as
    /// the list grows, and a cancel wakes the live worker waiting in the
    /// cancelled job, and no other.
    #[test]
    fn gone_watches_are_forgotten_and_only_the_jobs_worker_is_woken() {
        let watchers = Watchers::default();
        let (count, waker) = WakeCount::new();
        let mut live = Vec::new();
        for i in 0..200usize {
            let watch = watchers.watch();
            if i % 8 == 0 {
                watch.register(&waker, 1000 + i);
                live.push((watch, 1000 + i));
            }
        }
        let len = lock(&watchers.list).len();
        assert!(
            len < 100,
            "{len} entries kept for {} live watches",
            live.len()
        );
        watchers.wake(12_345);
        assert_eq!(count.get(), 0, "no worker waits in that job");
        for (n, (_, job)) in live.iter().enumerate() {
            watchers.wake(*job);
            assert_eq!(count.get(), n + 1, "job {job}");
        }
        // A wake takes the waker: a second cancel finds nothing to wake
        // until the worker registers again (for its next job).
        watchers.wake(live[0].1);
        assert_eq!(count.get(), live.len());
        live[0].0.register(&waker, 7);
        watchers.wake(live[0].1);
        assert_eq!(count.get(), live.len());
        watchers.wake(7);
        assert_eq!(count.get(), live.len() + 1);
    }
}

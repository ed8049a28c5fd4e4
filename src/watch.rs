//! How a handle's cancel reaches the job it cancels while that job runs.
//!
//! A running job waits on its worker's waker. Rather than keep that waker in
//! every job's slot (16 bytes per queued job, and a lock and a clone each
//! time a job waits), each worker registers its waker in one [`Watch`] of
//! its own, kept from job to job, and a cancel of a running job wakes every
//! registered worker of the pool: the woken workers look at their job's
//! `CANCEL` bit, and the one whose job it is ends it. A cancel of a running
//! job therefore costs a wake-up of each worker that waits, which is rare
//! next to the jobs themselves; a job that never waits registers nothing.
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

/// One worker's waker, for the cancels of the jobs it runs.
pub(crate) struct Watch {
    waker: Mutex<Option<Waker>>,
}

impl Watch {
    /// Keeps `waker` to be woken by the next cancel (a clone only if it
    /// changed).
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = lock(&self.waker);
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn wake(&self) {
        let waker = lock(&self.waker).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A pool's workers' [`Watch`]es.
pub(crate) struct Watchers {
    /// Weak: a worker that leaves drops its watch; the dead entries are
    /// forgotten as the list grows (`watch`). The lock also orders a new
    /// watch after a cancel that found the list without it (see the module
    /// docs).
    list: Mutex<Vec<Weak<Watch>>>,
}

impl Default for Watchers {
    fn default() -> Self {
        Watchers {
            list: Mutex::new(Vec::new()),
        }
    }
}

impl Watchers {
    /// A new watch, for a worker that is about to wait for a job.
    pub(crate) fn watch(&self) -> Arc<Watch> {
        let watch = Arc::new(Watch {
            waker: Mutex::new(None),
        });
        let mut list = lock(&self.list);
        if list.len() >= 16 && list.len().is_power_of_two() {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(&watch));
        watch
    }

    /// Wakes every worker that registered its waker (a handle cancelled a
    /// running job, whose worker finds out when it looks).
    pub(crate) fn wake_all(&self) {
        // Woken outside the list's lock.
        let watches: Vec<Arc<Watch>> = lock(&self.list).iter().filter_map(Weak::upgrade).collect();
        for w in watches {
            w.wake();
        }
    }
}

#[cfg(all(test, not(workerpoolxt_loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::Watchers;
    use crate::sync::lock;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Workers come and go: the watches of those that left are forgotten as
    /// the list grows, and every live one that registered is still woken.
    #[test]
    fn gone_watches_are_forgotten_and_live_ones_woken() {
        let watchers = Watchers::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut live = Vec::new();
        for i in 0..200 {
            let watch = watchers.watch();
            if i % 8 == 0 {
                watch.register(&waker);
                live.push(watch);
            }
        }
        let len = lock(&watchers.list).len();
        assert!(
            len < 100,
            "{len} entries kept for {} live watches",
            live.len()
        );
        watchers.wake_all();
        assert_eq!(count.0.load(Ordering::SeqCst), live.len());
        // A wake takes the waker: the next cancel wakes only who registered
        // again.
        live[0].register(&waker);
        watchers.wake_all();
        assert_eq!(count.0.load(Ordering::SeqCst), live.len() + 1);
    }
}

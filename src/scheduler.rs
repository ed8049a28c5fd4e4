//! The wake-up protocol: which worker looks at the queue, and who is woken
//! for a job.
//!
//! **Whenever a job is queued and a worker could take it (a worker sleeps,
//! or a slot under `max_workers` is free), some worker is awake and will
//! take it, whatever any job's poll is doing.** A worker that looks at the
//! queue for work is *searching*: from the moment it is started or woken
//! for work (or, finding the queue empty, chooses to look a while longer,
//! one such worker at a time) until it takes a job or goes to sleep. A
//! submit pushes its job, then wakes a sleeper, or starts a worker, only if
//! no worker searches. A searching worker that takes a job stops searching
//! *before* it polls the job and, if it was the last searcher and jobs are
//! still queued, wakes or starts another worker, which searches in its
//! place (the *hand-over*); having handed over, it yields to its executor
//! once before the poll, so that the worker it woke, which an executor may
//! have put in this thread's own slot (tokio's LIFO slot, which no other
//! thread takes), is not left behind a poll that holds the thread. A worker
//! between two jobs takes the next one without searching. A searcher that
//! finds the queue empty stops searching, looks at the queue once more and
//! sleeps. Each submit's push and its look at the searchers, and each
//! searcher's stop and its look at the queue, are `SeqCst`: one of the two
//! sees the other, so no job is left unseen. So a stream of short jobs
//! wakes at most one worker per hand-over, never one per job, and a poll
//! that holds its thread never holds back the queue while a thread and a
//! worker are free.
//!
//! This module keeps the counts the protocol reads and the event sleepers
//! wait on; each method owns its orderings. `Shared` (`src/shared.rs`)
//! applies it to the queue and the workers, and `src/worker.rs` runs it.

use event_listener::{Event, EventListener};

use crate::sync::{fence, AtomicUsize, Ordering, Padded};

pub(crate) struct Scheduler {
    /// Workers searching the queue (see the module docs).
    searching: Padded<AtomicUsize>,
    /// Workers asleep, waiting for a job.
    idle: Padded<AtomicUsize>,
    /// Wakes sleepers: one for a job, all for a stop or a resize.
    job_ready: Event,
}

impl Scheduler {
    pub(crate) fn new() -> Scheduler {
        Scheduler {
            searching: Padded(AtomicUsize::new(0)),
            idle: Padded(AtomicUsize::new(0)),
            job_ready: Event::new(),
        }
    }

    /// Whether no worker searches: a job just pushed needs one found for it.
    /// Read after the push (both `SeqCst`).
    pub(crate) fn nobody_searches(&self) -> bool {
        self.searching.load(Ordering::SeqCst) == 0
    }

    /// A worker starts searching because it was started or woken for work.
    pub(crate) fn start_searching(&self) {
        self.searching.fetch_add(1, Ordering::SeqCst);
    }

    /// A worker that found the queue empty searches a while longer, if no
    /// other worker searches (one such at a time: a crowd of workers
    /// spinning on an empty queue would only take the executor's threads).
    pub(crate) fn try_start_searching(&self) -> bool {
        self.searching.load(Ordering::Relaxed) == 0
            && self
                .searching
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
    }

    /// A searcher stops searching. `true` if it was the last one: the caller
    /// looks at the queue (after this, `SeqCst`) and finds a worker for what
    /// is still queued.
    #[must_use = "the last searcher hands over what is still queued"]
    pub(crate) fn stop_searching(&self) -> bool {
        self.searching.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// Wakes one sleeping worker for a job; `false` if none sleeps (the
    /// caller starts one instead).
    ///
    /// At most one wake-up is in flight at a time: `notify(1)` does nothing
    /// while a worker woken for a job has not woken yet, and that worker
    /// searches once it wakes, so it takes the job (or hands it over).
    pub(crate) fn wake_one(&self) -> bool {
        if self.idle.load(Ordering::SeqCst) == 0 {
            return false;
        }
        // A sleeper counts itself idle, listens, and then looks at the queue
        // again (`Sleep`). The caller pushed a job before it came here; the
        // fence between that and the look at the event's count means that
        // either the sleeper sees the job or this sees it listening and
        // wakes it. (`notify(1)` takes the event's lock even when it has
        // nothing to do; its own count says so without the lock.)
        fence(Ordering::SeqCst);
        if !self.job_ready.is_notified() {
            self.job_ready.notify(1);
        }
        true
    }

    /// Wakes every sleeping worker to look again (a stop, a resize).
    pub(crate) fn wake_all(&self) {
        self.job_ready.notify(usize::MAX);
    }

    /// Sleeping workers.
    pub(crate) fn idle(&self) -> usize {
        self.idle.load(Ordering::SeqCst)
    }

    /// A worker falls asleep: counted idle, and listening for a wake-up,
    /// from here until the returned `Sleep` is dropped. The worker looks at
    /// the queue once more after this, before it waits.
    pub(crate) fn sleep(&self) -> Sleep<'_> {
        self.idle.fetch_add(1, Ordering::SeqCst);
        Sleep {
            scheduler: self,
            listener: Some(self.job_ready.listen()),
        }
    }
}

/// A worker asleep (see [`Scheduler::sleep`]). Dropped, it is no longer
/// counted idle, whether it woke, or its future was dropped, or it unwound:
/// a worker that is gone is never taken for a sleeper.
pub(crate) struct Sleep<'a> {
    scheduler: &'a Scheduler,
    listener: Option<EventListener>,
}

impl Sleep<'_> {
    /// The wait for a wake-up (taken once, by the worker's idle wait).
    pub(crate) fn listener(&mut self) -> EventListener {
        self.listener.take().expect("a sleep is waited for once")
    }

    /// Woken for a job: the worker searches, counted as searching before it
    /// stops counting as idle (so it is never neither while a submit
    /// looks).
    pub(crate) fn woken_for_work(self) {
        self.scheduler.start_searching();
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        self.scheduler.idle.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(all(test, not(workerpoolxt_loom)))]
mod tests {
    use super::Scheduler;

    /// Searchers are counted: a worker started or woken for work always
    /// searches, one that looks at an empty queue only if no other does,
    /// and the last one to stop is told so (it hands the queue over).
    #[test]
    fn searchers_are_counted_and_the_last_to_stop_knows_it() {
        let s = Scheduler::new();
        assert!(s.nobody_searches());
        assert!(s.try_start_searching(), "no one searched");
        assert!(!s.nobody_searches());
        assert!(!s.try_start_searching(), "one voluntary searcher at a time");
        s.start_searching();
        assert!(!s.stop_searching(), "another still searches");
        assert!(!s.nobody_searches());
        assert!(s.stop_searching(), "the last one");
        assert!(s.nobody_searches());
        assert!(s.try_start_searching(), "free again");
    }

    /// A wake-up goes to a sleeper, if one sleeps; a sleeper counts until
    /// its `Sleep` is dropped, and one woken for work counts as searching.
    #[test]
    fn a_wake_up_goes_to_a_sleeper_only() {
        let s = Scheduler::new();
        assert!(!s.wake_one(), "no one sleeps: the caller starts a worker");
        let mut sleep = s.sleep();
        assert_eq!(s.idle(), 1);
        let listener = sleep.listener();
        assert!(s.wake_one());
        assert!(s.wake_one(), "a wake-up in flight counts");
        futures_lite::future::block_on(listener);
        sleep.woken_for_work();
        assert_eq!(s.idle(), 0);
        assert!(!s.nobody_searches(), "woken for work: it searches");
        assert!(s.stop_searching());
        drop(s.sleep());
        assert_eq!(s.idle(), 0, "a sleep dropped is no sleeper");
    }
}

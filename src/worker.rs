//! The worker loop: take a job, run it, report, go idle, exit when idle for
//! long enough.
//!
//! A worker *is* a slot: it runs one job at a time, inline (the job's future
//! is polled by the worker's own future, no extra task), and it is busy until
//! that job's future has been dropped or its blocking closure has returned.
//! So at most `max_workers` job bodies are ever alive.
//!
//! One worker at a time holds the *search* (`Shared::searching`): it runs
//! jobs that finish in their first poll back to back and, when the queue
//! runs dry, yields to its executor a few times looking at it again before it
//! sleeps. Submits wake nobody while a worker searches, so a stream of short
//! jobs costs no wake-up at all. The searcher gives the search up before it
//! waits for anything else (a job that goes pending, a pause, sleep), and
//! wakes a worker then if jobs wait. Two rules keep a job that holds its
//! thread inside one poll from keeping the queue to itself: a submit that
//! finds the searcher in one poll for `LONG_POLL_NS` wakes another worker,
//! and so does a backlog of `BACKLOG` jobs (see `Shared::push`). The
//! searcher publishes when its poll began only every `HEARTBEAT_NS` of a
//! streak of jobs (`Search::poll_begins`), so the same holds when its thread
//! is away for that long between two jobs of a streak (the yield every
//! `YIELD_EVERY` jobs, to a busy executor).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::runtime::{clock_hint, current_job, BoxFuture, Sleep};
use crate::shared::{wait_until, Shared, HEARTBEAT_NS, STOPPED};
use crate::sync::{Arc, Ordering};
use crate::task::WorkerLocal;

/// A worker's reservation under `max_workers`. Given back when the worker
/// leaves, and also if its future is dropped, before or after its first poll
/// (an executor that refuses it or shuts down), or unwinds.
struct Slot {
    shared: Arc<Shared>,
    held: bool,
    /// Whether the worker's future was ever polled.
    polled: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let shared = &self.shared;
        let last = shared.worker_gone();
        // The last worker is gone with jobs still queued: nothing else would
        // run them until the next submit (nor ever, once the pool takes no
        // more submissions, and each queued job keeps the pool's state
        // alive). A worker that was running is replaced; but one dropped
        // before its first poll means the executor cannot run workers at all
        // (it is gone, or refuses them): once the pool is stopping, the jobs
        // end `Stopped` instead of waiting for ever. (An open pool keeps
        // them for its next worker: a spawner may hold workers back on
        // purpose, and `stop` ends them at the latest.)
        if last && !shared.queue.is_empty() {
            if self.polled {
                shared.spawn_for_queue();
            } else if !shared.is_open() {
                shared.drop_queued();
            }
        }
    }
}

/// The worker counted in `busy` (see `shared`): about to take a job, or
/// running one. Given back when dropped, so a worker that is dropped or
/// unwinds mid-job never keeps a pause waiting.
struct Busy<'a> {
    shared: &'a Shared,
    counted: bool,
}

impl<'a> Busy<'a> {
    fn enter(shared: &'a Shared) -> Busy<'a> {
        shared.busy.fetch_add(1, Ordering::SeqCst);
        Busy {
            shared,
            counted: true,
        }
    }

    /// Holds the job with `ticket` back for a pause: out of `busy`, listed
    /// as held, until [`Held::release`].
    fn hold(&mut self, ticket: usize) -> Held<'_, 'a> {
        self.shared.hold(ticket);
        self.counted = false;
        Held {
            busy: self,
            ticket,
            released: false,
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.shared.busy_done();
        }
    }
}

/// A job a pause holds back (see [`Busy::hold`]); dropped unreleased (its
/// worker dropped while it waits), it is no longer listed as held.
struct Held<'b, 'a> {
    busy: &'b mut Busy<'a>,
    ticket: usize,
    released: bool,
}

impl Held<'_, '_> {
    /// Counted busy again, then no longer held (see `Shared::unhold`).
    fn release(mut self) {
        self.released = true;
        self.busy.shared.unhold(self.ticket);
        self.busy.counted = true;
    }
}

impl Drop for Held<'_, '_> {
    fn drop(&mut self) {
        if !self.released {
            self.busy.shared.forget_held(self.ticket);
        }
    }
}

/// The worker counted in `idle`: asleep, waiting for a job. Given back when
/// dropped, so a worker dropped or unwinding in its sleep is never taken for
/// a sleeper.
struct Idle<'a>(&'a Shared);

impl<'a> Idle<'a> {
    fn enter(shared: &'a Shared) -> Idle<'a> {
        shared.idle.fetch_add(1, Ordering::SeqCst);
        Idle(shared)
    }
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        self.0.idle.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How many jobs a worker runs in a row before it yields to its executor.
const YIELD_EVERY: u32 = 64;

/// A new worker for a slot already reserved in `shared.workers`.
pub(crate) fn new(shared: Arc<Shared>) -> BoxFuture<()> {
    // The slot is made here, outside the future, so dropping the future
    // unpolled still gives it back.
    Box::pin(run(Slot {
        shared,
        held: true,
        polled: false,
    }))
}

/// How many times a searching worker yields to its executor, looking at the
/// queue each time, before it gives the search up and sleeps.
#[cfg(not(workerpoolxt_loom))]
const SEARCH_YIELDS: u32 = 32;
#[cfg(workerpoolxt_loom)]
const SEARCH_YIELDS: u32 = 1;

/// Whether this worker holds the search (see `Shared::searching`).
struct Search<'a> {
    shared: &'a Arc<Shared>,
    held: bool,
    /// The poll start the searcher published last (ns since the epoch), or
    /// `None` if `searching` says it is between jobs.
    beat: Option<u64>,
}

impl Search<'_> {
    /// Takes the search if no other worker has it.
    fn try_take(&mut self) -> bool {
        if !self.held {
            self.held = self.shared.try_search();
            self.beat = None;
        }
        self.held
    }

    /// The searcher begins a poll of a job at `at` (ns since the epoch).
    ///
    /// Submitters read `searching` on every submit, so the searcher writes
    /// it only when what it says has grown [`HEARTBEAT_NS`] old: it keeps
    /// the start of an earlier poll otherwise. The published start is never
    /// later than that of the poll under way (a poll that has lasted
    /// [`LONG_POLL_NS`](crate::shared::LONG_POLL_NS) is always seen), and
    /// at most `HEARTBEAT_NS` earlier. Two stores per job, each taking back
    /// a line the submitter had just read, were a tenth of W1's time. (Under
    /// loom `HEARTBEAT_NS` is 0: every poll is published.)
    #[cfg_attr(workerpoolxt_loom, allow(clippy::absurd_extreme_comparisons))]
    fn poll_begins(&mut self, at: u64) {
        if self
            .beat
            .is_none_or(|beat| at.saturating_sub(beat) >= HEARTBEAT_NS)
        {
            self.shared.searcher_in_job(Some(at));
            self.beat = Some(at);
        }
    }

    /// The searcher is between jobs for longer than a pop: it looks at an
    /// empty queue. A submit meanwhile must not take that for a long poll.
    fn between_jobs(&mut self) {
        if self.beat.take().is_some() {
            self.shared.searcher_in_job(None);
        }
    }

    /// Gives the search up before the worker waits for anything but the
    /// queue. Submitters woke nobody while it was held, so a job queued
    /// meanwhile gets a worker now.
    fn give_up(&mut self) {
        if std::mem::take(&mut self.held) {
            self.beat = None;
            self.shared.end_search();
        }
    }
}

impl Drop for Search<'_> {
    fn drop(&mut self) {
        self.give_up();
    }
}

async fn run(mut slot: Slot) {
    slot.polled = true;
    let shared = slot.shared.clone();
    let mut search = Search {
        shared: &shared,
        held: false,
        beat: None,
    };
    // The idle timer lives across idle spells: it is armed once, and when it
    // fires the worker leaves only if it ran no job since it was armed.
    let mut idle_timer: Option<Sleep> = None;
    let mut worked = false;
    // Whether the pool's clock could arm (and poll) an idle timer so far.
    let mut timer_works = true;
    // Jobs run since the worker last gave its thread back to the executor.
    let mut streak = 0u32;
    // Whether the worker comes straight from a job that ended in the poll
    // that is still running (see `clock_hint`).
    let mut fresh = false;
    // Kept across jobs: the wait for the pool's token, and the worker's
    // `Watch` (the job it waits in, for cancels).
    let mut local = WorkerLocal::default();
    loop {
        if shared.too_many_workers() && shared.try_retire() {
            search.give_up();
            slot.held = false;
            return;
        }
        if !shared.queue.is_empty() {
            // Count in as running before looking at the pause (see `shared`
            // for why this order).
            let mut busy = Busy::enter(&shared);
            if let Ok((mut task, popped)) = shared.queue.pop_counted() {
                // The worker keeps (or takes) the search while it runs this
                // job: submits meanwhile count on it (see `Shared::push`)...
                let kept = search.held;
                search.try_take();
                // ...but a backlog behind it gets another worker, in case
                // this job holds its thread for long.
                if shared.backlog_seen(popped, kept) {
                    shared.find_worker();
                }
                // A pause that began before this job was queued holds it
                // (unstarted, still counted as waiting) until it ends.
                // (Its whole ticket is worked out only then: that reads a
                // line every submit writes.)
                if shared.paused.load(Ordering::SeqCst) > 0 {
                    let ticket = shared.full_ticket(task.ticket());
                    while shared.holds_back(ticket) {
                        search.give_up();
                        fresh = false;
                        let held = busy.hold(ticket);
                        wait_released(&shared, ticket).await;
                        held.release();
                    }
                }
                if shared.state() == STOPPED {
                    // Popped during a stop: dropping it resolves it `Stopped`.
                    drop(task);
                } else {
                    // A job that finishes in its first poll keeps the search
                    // with this worker; one that waits gives it up first.
                    // The clock reading at the end of the last job is the
                    // start of this one if nothing came between them.
                    let mut first = true;
                    let job = current_job::InJob {
                        pool: shared.id(),
                        blocking: false,
                    };
                    std::future::poll_fn(|cx| {
                        if !(first && fresh) {
                            clock_hint::clear();
                        }
                        if first && search.held {
                            // Submitters look at how long this poll lasts.
                            if let Some(at) = poll_start(&shared) {
                                search.poll_begins(at);
                            }
                        }
                        first = false;
                        let _in = current_job::enter(job);
                        let polled = task.poll_in(cx, &mut local);
                        if polled.is_pending() {
                            search.give_up();
                            clock_hint::clear();
                        }
                        polled
                    })
                    .await;
                    fresh = true;
                }
                drop(busy);
                worked = true;
                // Jobs that finish at once never make the worker wait: yield
                // now and then so that a long queue of them does not starve
                // the other tasks of the executor thread (tokio's
                // current-thread runtime in particular).
                streak += 1;
                if streak >= YIELD_EVERY {
                    streak = 0;
                    fresh = false;
                    futures_lite::future::yield_now().await;
                }
                continue;
            }
            drop(busy);
        }
        if shared.queue.is_closed() && shared.queue.is_empty() {
            // Stopping and nothing left: the worker ends.
            search.give_up();
            return;
        }

        fresh = false;
        // The queue is empty. One worker at a time stays awake a little,
        // looking at the queue between yields to its executor: a submitter
        // that finds it searching wakes nobody, so a steady stream of short
        // jobs costs no wake-up at all.
        if search.try_take() && !shared.too_many_workers() {
            search.between_jobs();
            let mut found = false;
            for _ in 0..SEARCH_YIELDS {
                futures_lite::future::yield_now().await;
                if !shared.queue.is_empty() || shared.queue.is_closed() {
                    found = true;
                    break;
                }
            }
            streak = 0;
            if found {
                continue;
            }
        }
        search.give_up();

        // Nothing to do: sleep until a job comes, the pool stops, or the idle
        // timeout passes.
        streak = 0;
        let idle = Idle::enter(&shared);
        let listener = shared.job_ready.listen();
        if !shared.queue.is_empty() || shared.queue.is_closed() || shared.too_many_workers() {
            continue;
        }
        if idle_timer.is_none() && timer_works {
            // A clock or timer that panics here leaves the worker without
            // an idle timeout (it stays until the pool stops or shrinks):
            // the panic is contained, not taken for a reason to leave.
            match catch_unwind(AssertUnwindSafe(|| arm_idle_timer(&shared))) {
                Ok(timer) => {
                    worked = false;
                    idle_timer = timer;
                }
                Err(payload) => {
                    timer_works = false;
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                }
            }
        }
        let woke = IdleWait {
            listener,
            timer: idle_timer.as_mut(),
        }
        .await;
        drop(idle);
        match woke {
            Woke::Job => continue,
            Woke::Timeout => {}
            Woke::TimerPanicked => {
                timer_works = false;
                idle_timer = None;
                continue;
            }
        }
        idle_timer = None;
        if worked {
            // Ran jobs during the last period: not idle long enough.
            continue;
        }
        // Idle for a whole period: leave, unless a job came in meanwhile and
        // no other worker can take it (the submitter saw this worker idle).
        slot.held = false;
        shared.worker_gone();
        if !shared.queue.is_empty() && shared.try_reserve_worker() {
            slot.held = true;
            continue;
        }
        return;
    }
}

/// When the searcher's poll of a job begins, in ns since the epoch: the
/// reading the job's start will use (the clock hint, set here if there was
/// none, so the clock is read once either way). `None` if the clock
/// panicked: the job's start reads it again, and ends `Panicked` if it
/// panics there too.
fn poll_start(shared: &Shared) -> Option<u64> {
    let (now, ns) = catch_unwind(AssertUnwindSafe(|| shared.start_time())).ok()?;
    // Left for the job's start to take again.
    shared.leave_hint(now, ns);
    Some(ns)
}

/// The idle timer, if the pool has an idle timeout (one too long to
/// express, past the clock's range, never fires).
fn arm_idle_timer(shared: &Shared) -> Option<Sleep> {
    let at = shared.now().checked_add(shared.idle_timeout?)?;
    Some(shared.sleep_until(at))
}

async fn wait_released(shared: &Shared, ticket: usize) {
    wait_until(&shared.unpaused, || !shared.holds_back(ticket)).await;
}

#[derive(PartialEq, Eq)]
enum Woke {
    Job,
    Timeout,
    /// The idle timer's poll panicked (caught: see `run`).
    TimerPanicked,
}

/// Waits for a job notification or the idle timer, whichever comes first.
struct IdleWait<'a> {
    listener: event_listener::EventListener,
    timer: Option<&'a mut Sleep>,
}

impl Future for IdleWait<'_> {
    type Output = Woke;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Woke> {
        if Pin::new(&mut self.listener).poll(cx).is_ready() {
            return Poll::Ready(Woke::Job);
        }
        if let Some(t) = self.timer.as_mut() {
            match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut **t).poll(cx))) {
                Ok(Poll::Ready(())) => return Poll::Ready(Woke::Timeout),
                Ok(Poll::Pending) => {}
                Err(payload) => {
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                    return Poll::Ready(Woke::TimerPanicked);
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(all(test, not(workerpoolxt_loom)))]
mod tests {
    use super::Search;
    use crate::shared::{HEARTBEAT_NS, NO_SEARCH, SEARCHING};
    use crate::sync::Ordering;
    use crate::Pool;

    /// What a submit reads of the searcher: the start of a poll no later
    /// than the one under way and at most `HEARTBEAT_NS` earlier, written
    /// only when it would grow older than that; "between jobs" once it
    /// looks at an empty queue; nothing once it gives the search up.
    #[test]
    fn the_searcher_publishes_a_poll_start_once_per_heartbeat() {
        let pool = Pool::builder().spawner(drop).build();
        let shared = pool.shared();
        let read = || shared.searching.load(Ordering::SeqCst);
        let poll = |t: u64| t + SEARCHING + 1;
        let mut search = Search {
            shared,
            held: false,
            beat: None,
        };
        assert!(search.try_take());
        assert_eq!(read(), SEARCHING);
        search.poll_begins(1_000);
        assert_eq!(read(), poll(1_000), "the first poll is published");
        search.poll_begins(1_000 + HEARTBEAT_NS - 1);
        assert_eq!(read(), poll(1_000), "a younger start is not");
        search.poll_begins(1_000 + HEARTBEAT_NS);
        assert_eq!(
            read(),
            poll(1_000 + HEARTBEAT_NS),
            "one heartbeat on, it is"
        );
        search.between_jobs();
        assert_eq!(read(), SEARCHING);
        search.poll_begins(1_000 + HEARTBEAT_NS + 1);
        assert_eq!(
            read(),
            poll(1_000 + HEARTBEAT_NS + 1),
            "after a look at the queue, the next poll is published at once"
        );
        search.give_up();
        assert_eq!(read(), NO_SEARCH);
        // Taken again: the heartbeat starts over.
        assert!(search.try_take());
        search.poll_begins(1_000 + HEARTBEAT_NS + 2);
        assert_eq!(read(), poll(1_000 + HEARTBEAT_NS + 2));
    }
}

//! The worker loop: take a job, run it, search the queue a while, sleep,
//! leave when idle for long enough.
//!
//! A worker *is* a slot: it runs one job at a time, inline (the job's future
//! is polled by the worker's own future, no extra task), and it is busy until
//! that job's future has been dropped or its blocking closure has returned.
//! So at most `max_workers` job bodies are ever alive.
//!
//! Which worker searches the queue, and who is woken for a job, is the
//! protocol of `src/scheduler.rs`; this loop runs it: a worker starts (or is
//! woken) searching, stops searching as it takes a job (handing the queue
//! over if it was the last searcher), takes the next job between two jobs
//! without searching, and, finding the queue empty, searches a while if no
//! other worker does, then sleeps.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::cell::QueueEntry;
use crate::error::{discard, Panic};
use crate::runtime::{clock_hint, current_job, BoxFuture, Sleep};
use crate::shared::{Shared, STOPPED};
use crate::sync::Arc;
use crate::task::WorkerLocal;

// ----- finding workers (the protocol of `src/scheduler.rs`) -----

/// Queues a job whose place is reserved; gives it back if the pool stopped
/// meanwhile. Finds a worker for it if no worker searches.
pub(crate) fn push(shared: &Arc<Shared>, entry: QueueEntry) -> Result<(), QueueEntry> {
    shared.queue.push(entry)?;
    // A sub-pool queues a worker in its parent for each job it has room
    // for, at once: a job waits in its parent's queue in the order it was
    // submitted, not behind a searcher that has yet to get a slot there.
    if shared.scheduler.nobody_searches() || shared.is_sub() {
        find_worker(shared);
    }
    Ok(())
}

/// Gets a worker to the queue: wakes a sleeping one, or starts one if there
/// is room under `max_workers`. `true` if one was woken or started; either
/// searches from then on.
pub(crate) fn find_worker(shared: &Arc<Shared>) -> bool {
    shared.scheduler.wake_one() || try_spawn(shared)
}

/// A searching worker stops searching (it took a job, or it goes to sleep,
/// or it leaves). If it was the last searcher and jobs are still queued, it
/// hands them over: another worker is woken or started for them. `true` if
/// one was.
fn hand_over(shared: &Arc<Shared>) -> bool {
    shared.scheduler.stop_searching() && !shared.queue.is_empty() && find_worker(shared)
}

/// Starts a worker if there is room under `max_workers`; `false` if there
/// was none or the spawner panicked.
fn try_spawn(shared: &Arc<Shared>) -> bool {
    shared.try_reserve_worker() && spawn_reserved(shared)
}

/// Starts a worker for a place already reserved; `false` if the spawner
/// panicked.
///
/// The worker's future owns the reservation from here on: it gives it back
/// when it ends or is dropped, polled or not, so a spawner that panics
/// (dropping the future, or after spawning it) never gives it back twice.
/// Its panic is caught here: the spawner runs on behalf of whichever thread
/// happened to submit, stop or resize, and a panic there must not unwind
/// through the pool's bookkeeping.
fn spawn_reserved(shared: &Arc<Shared>) -> bool {
    let worker = new(shared.clone());
    match catch_unwind(AssertUnwindSafe(|| (shared.spawner)(worker))) {
        Ok(()) => true,
        Err(payload) => {
            spawner_failed(shared, &Panic::caught_in("the pool's spawner", payload));
            false
        }
    }
}

/// The spawner panicked. While no worker is left to run them, the queued
/// jobs could only wait for the next submit that gets one; they end
/// `Panicked` with the spawner's panic instead (the pool stays open, and
/// the next submit tries the spawner again).
fn spawner_failed(shared: &Shared, fault: &Panic) {
    while shared.workers() == 0 {
        match shared.queue.pop() {
            Ok(entry) => entry.fail(fault.clone()),
            Err(_) => break,
        }
    }
}

/// Starts workers for the queued jobs, up to `max_workers` (the pool grew,
/// or stops, or its last worker is gone), and wakes the sleeping ones.
pub(crate) fn spawn_for_queue(shared: &Arc<Shared>) {
    // Busy workers do not count: only sleeping ones can take a job now.
    let mut needed = shared
        .core()
        .waiting()
        .saturating_sub(shared.scheduler.idle());
    while needed > 0 && shared.try_reserve_worker() {
        // Looked at after reserving: a worker that took the last job and
        // left meanwhile freed the place that was just reserved, and no
        // worker is started for an empty queue.
        if shared.queue.is_empty() {
            shared.worker_gone();
            break;
        }
        if !spawn_reserved(shared) {
            break;
        }
        needed -= 1;
    }
    if shared.scheduler.idle() > 0 {
        shared.scheduler.wake_all();
    }
}

// ----- the worker -----

/// A worker's place under `max_workers` (its reservation, `held`), and
/// whether it counts as searching (`src/scheduler.rs`). Both are given back
/// when the worker leaves, and also if its future is dropped, before or
/// after its first poll (an executor that refuses it or shuts down), or
/// unwinds.
struct Slot {
    shared: Arc<Shared>,
    held: bool,
    searching: bool,
    /// Whether the worker's future was ever polled.
    polled: bool,
}

impl Slot {
    /// Stops searching, if it searches; `true` if it handed the queue over
    /// (it was the last searcher, jobs were queued, and another worker was
    /// woken or started for them).
    fn stop_searching(&mut self) -> bool {
        std::mem::take(&mut self.searching) && hand_over(&self.shared)
    }

    /// Searches the empty queue a while longer: it does already, or no other
    /// worker does (see `Scheduler::try_start_searching`).
    fn try_search(&mut self) -> bool {
        if !self.searching {
            self.searching = self.shared.scheduler.try_start_searching();
        }
        self.searching
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let shared = &self.shared;
        if !self.polled {
            shared.count_unpolled(false);
        }
        // An unpolled worker never looked at the queue: its executor cannot
        // run it, and another unpolled worker would not either.
        let last_searcher =
            std::mem::take(&mut self.searching) && shared.scheduler.stop_searching() && self.polled;
        let last_worker = std::mem::take(&mut self.held) && shared.worker_gone();
        if shared.queue.is_empty() {
            return;
        }
        // The last worker is gone with jobs still queued: nothing else would
        // run them until the next submit (nor ever, once the pool takes no
        // more submissions, and each queued job keeps the pool's state
        // alive). A worker that was running is replaced, and so is the last
        // searcher; but one dropped before its first poll means the executor
        // cannot run workers at all (it is gone, or refuses them): once the
        // pool is stopping, the jobs end `Stopped` instead of waiting for
        // ever. (An open pool keeps them for its next worker: a spawner may
        // hold workers back on purpose, and `stop` ends them at the latest.)
        if last_worker && self.polled {
            spawn_for_queue(shared);
        } else if last_searcher {
            find_worker(shared);
        } else if last_worker && !shared.is_open() {
            shared.drop_queued();
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
        shared.busy_begins();
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

/// How many jobs a worker runs in a row before it yields to its executor.
const YIELD_EVERY: u32 = 64;

/// How many times a worker that searches the empty queue yields to its
/// executor, looking at the queue each time, before it sleeps.
#[cfg(not(workerpoolxt_loom))]
const SEARCH_YIELDS: u32 = 32;
#[cfg(workerpoolxt_loom)]
const SEARCH_YIELDS: u32 = 1;

/// A new worker for a place already reserved in `shared.workers`; it
/// searches from the start (it was started for work).
pub(crate) fn new(shared: Arc<Shared>) -> BoxFuture<()> {
    shared.scheduler.start_searching();
    shared.count_unpolled(true);
    let pool = shared.id();
    // The slot is made here, outside the future, so dropping the future
    // unpolled still gives everything back.
    let run = run(Slot {
        shared,
        held: true,
        searching: true,
        polled: false,
    });
    Box::pin(InPool { pool, run })
}

pin_project_lite::pin_project! {
    /// A worker's future, its thread marked as running that pool's jobs
    /// while it is polled (`current_job`): once per poll of the worker, not
    /// once per job it runs in that poll.
    struct InPool<F> {
        pool: usize,
        #[pin]
        run: F,
    }
}

impl<F: Future> Future for InPool<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _in = current_job::enter(current_job::InJob {
            pool: *this.pool,
            blocking: false,
        });
        this.run.poll(cx)
    }
}

/// What a worker keeps across its jobs and idle spells (its pool's state
/// is its slot's, lent to each step).
struct Worker {
    /// The idle timer, armed once per idle period: when it fires, the worker
    /// leaves only if it ran no job since it was armed (`worked`).
    idle_timer: Option<Sleep>,
    worked: bool,
    /// Whether the pool's clock could arm (and poll) an idle timer so far.
    timer_works: bool,
    /// Jobs run since the worker last gave its thread back to the executor.
    streak: u32,
    /// Looks at an empty queue left before the worker sleeps (see
    /// `search_a_while`); full again once it takes a job or wakes.
    search_left: u32,
    /// Whether the worker comes straight from a job that ended in the poll
    /// that is still running (see `clock_hint`).
    fresh: bool,
    /// Kept across jobs: the wait for the pool's token, and the worker's
    /// `Watch` (the job it waits in, for cancels).
    local: WorkerLocal,
}

/// What a worker does after an idle spell.
enum AfterSleep {
    /// Looks at the queue again.
    Look,
    /// Leaves: idle for a whole period (its place is given back).
    Leave,
}

async fn run(mut slot: Slot) {
    slot.polled = true;
    slot.shared.count_unpolled(false);
    let mut worker = Worker {
        idle_timer: None,
        worked: false,
        timer_works: true,
        streak: 0,
        search_left: SEARCH_YIELDS,
        fresh: false,
        local: WorkerLocal::listed_in(slot.shared.worker_jobs.register()),
    };
    let shared = slot.shared.clone();
    loop {
        if shared.too_many_workers() && shared.try_retire() {
            // Its place is given back; dropping the slot hands the search
            // over if it searched.
            slot.held = false;
            return;
        }
        let ran = worker.take_and_run(&shared, &mut slot).await;
        if shared.is_sub() {
            // One job per turn in the parent's queue; never idle in its slot.
            if sub_worker_moves_on(&shared, &mut slot) {
                return;
            }
            continue;
        }
        if ran {
            continue;
        }
        if shared.queue.is_closed() && shared.queue.is_empty() {
            // Stopping and nothing left: the worker ends.
            return;
        }
        worker.fresh = false;
        if worker.search_a_while(&shared, &mut slot).await {
            continue;
        }
        // Hands over a job that came just now if no one else searches.
        slot.stop_searching();
        if let AfterSleep::Leave = worker.sleep(&shared, &mut slot).await {
            return;
        }
    }
}

/// A sub-pool's worker between two jobs, in its parent's slot: `true` if
/// it leaves (its queue is empty, or a successor took its place at the back
/// of the parent's queue), `false` if it runs the next job here (the pools
/// are closing: the parent takes no more jobs, and this worker drains the
/// sub-pool's queue in the slot it holds).
fn sub_worker_moves_on(shared: &Arc<Shared>, slot: &mut Slot) -> bool {
    if shared.queue.is_empty() {
        // It gives its place back, then looks again: a job queued meanwhile
        // found no room for a worker of its own, and gets this place (the
        // submit pushes, then reserves; this gives back, then looks; all
        // `SeqCst`, so one of the two sees the other).
        slot.held = false;
        shared.worker_gone();
        if shared.queue.is_empty() || !shared.try_reserve_worker() {
            return true;
        }
        slot.held = true;
    }
    // A parent closes its sub-pools before its own queue: a sub-pool still
    // open has an open parent, and a forward it makes is refused only in
    // the moment they close, before the successor is made. The successor
    // has this worker's place (`new` reserves nothing).
    if !shared.is_open() {
        return false;
    }
    let forward = shared.forward.as_ref().expect("a sub-pool forwards");
    let made = forward(&mut || new(shared.clone()));
    if made {
        slot.held = false;
    }
    made
}

/// Takes the next job out of the queue. Under a rate limit it also
/// reserves the job's start time (`true`), in the same step as the pop
/// under the limit's lock, so that times are reserved in the queue's order
/// (`src/rate.rs`, rule 2) — unless a pause holds the job (it reserves once
/// released, `reserve_start`) or the clock panics (the job's task reserves
/// at its first poll, where the panic ends the job).
fn take_next(shared: &Shared) -> (Option<QueueEntry>, bool) {
    let core = shared.core();
    let Some(rate) = &core.rate else {
        return (shared.queue.pop().ok(), false);
    };
    rate.in_order(|| {
        let entry = shared.queue.pop().ok();
        let reserved = match &entry {
            Some(e) if !shared.is_paused() => reserve_start(shared, e),
            _ => false,
        };
        (entry, reserved)
    })
}

/// Under a rate limit, reserves the start time of `entry`; `true` if it did.
fn reserve_start(shared: &Shared, entry: &QueueEntry) -> bool {
    let core = shared.core();
    match (&core.rate, core.try_now()) {
        (Some(rate), Ok(now)) => {
            rate.reserve(now, core.full_ticket(entry.ticket()));
            true
        }
        _ => false,
    }
}

impl Worker {
    /// Takes the next job, if one is queued, and runs it; `false` if there
    /// was none.
    async fn take_and_run(&mut self, shared: &Shared, slot: &mut Slot) -> bool {
        if shared.queue.is_empty() {
            return false;
        }
        // Counted busy before it looks at the pause (see `shared`).
        let mut busy = Busy::enter(shared);
        let (popped, reserved) = take_next(shared);
        let Some(entry) = popped else {
            return false;
        };
        let mut job = HeldJob::new(entry, &mut self.local);
        // Stops searching before the job's poll: the last searcher hands
        // what is still queued over to another worker.
        let handed_over = slot.stop_searching();
        self.search_left = SEARCH_YIELDS;
        if shared.is_paused() {
            let ticket = shared.core().full_ticket(job.entry.ticket());
            hold_while_paused(shared, &mut busy, ticket, &mut self.fresh).await;
        }
        if shared.state() == STOPPED {
            // Popped during a stop: dropping it resolves it `Stopped`.
            drop(job);
        } else {
            if !reserved && shared.core().rate.is_some() {
                reserve_start(shared, &job.entry);
            }
            if handed_over {
                // The worker just woken may wait in this thread's own slot
                // of the executor: let it go first, in case this job's poll
                // holds the thread (see `src/scheduler.rs`).
                self.fresh = false;
                futures_lite::future::yield_now().await;
            }
            run_job(&mut job, &mut self.fresh).await;
        }
        drop(busy);
        self.worked = true;
        // Jobs that finish at once never make the worker wait: yield now and
        // then so that a long queue of them does not starve the other tasks
        // of the executor thread (tokio's current-thread runtime in
        // particular).
        self.streak += 1;
        if self.streak >= YIELD_EVERY {
            self.streak = 0;
            self.fresh = false;
            futures_lite::future::yield_now().await;
        }
        true
    }

    /// The queue is empty: looks at it a while, yielding to the executor
    /// between looks, if this worker searches already or no other does.
    /// `true` if a job came (or the pool is stopping): the worker still
    /// searches, and taking the job stops its search.
    ///
    /// The looks are counted from the last job this worker took
    /// (`search_left`): a searcher that keeps seeing jobs that other workers
    /// take first gives up after as many looks as one that sees none, so it
    /// does not spin on an executor thread the working workers need.
    async fn search_a_while(&mut self, shared: &Shared, slot: &mut Slot) -> bool {
        if shared.too_many_workers() || !slot.try_search() {
            return false;
        }
        while self.search_left > 0 {
            self.search_left -= 1;
            futures_lite::future::yield_now().await;
            if !shared.queue.is_empty() || shared.queue.is_closed() {
                return true;
            }
        }
        self.streak = 0;
        false
    }

    /// Sleeps until a job comes, the pool stops or shrinks, or the idle
    /// timeout passes.
    async fn sleep(&mut self, shared: &Shared, slot: &mut Slot) -> AfterSleep {
        self.streak = 0;
        let mut sleep = shared.scheduler.sleep();
        if !shared.queue.is_empty() || shared.queue.is_closed() || shared.too_many_workers() {
            return AfterSleep::Look;
        }
        self.arm_idle_timer(shared);
        let woke = IdleWait {
            listener: sleep.listener(),
            timer: self.idle_timer.as_mut(),
        }
        .await;
        match woke {
            Woke::Job => {
                // Woken to search (see `src/scheduler.rs`).
                sleep.woken_for_work();
                slot.searching = true;
                self.search_left = SEARCH_YIELDS;
                return AfterSleep::Look;
            }
            Woke::TimerPanicked => {
                self.timer_works = false;
                self.idle_timer = None;
                return AfterSleep::Look;
            }
            Woke::Timeout => {}
        }
        drop(sleep);
        self.idle_timer = None;
        if self.worked {
            // Ran jobs during the last period: not idle long enough.
            return AfterSleep::Look;
        }
        // Idle for a whole period: leave, unless a job came in meanwhile and
        // no other worker can take it (the submitter saw this worker idle).
        slot.held = false;
        shared.worker_gone();
        if !shared.queue.is_empty() && shared.try_reserve_worker() {
            slot.held = true;
            return AfterSleep::Look;
        }
        AfterSleep::Leave
    }

    /// Arms the idle timer for this idle period, if the pool has an idle
    /// timeout and none is armed. A clock or timer that panics here leaves
    /// the worker without an idle timeout (it stays until the pool stops or
    /// shrinks): the panic is contained, not taken for a reason to leave.
    fn arm_idle_timer(&mut self, shared: &Shared) {
        if self.idle_timer.is_some() || !self.timer_works {
            return;
        }
        match catch_unwind(AssertUnwindSafe(|| idle_timer(shared))) {
            Ok(timer) => {
                self.worked = false;
                self.idle_timer = timer;
            }
            Err(payload) => {
                self.timer_works = false;
                discard(payload);
            }
        }
    }
}

/// A pause that began before the job with `ticket` was queued holds it
/// (unstarted, still counted as waiting) until it ends. (Its whole
/// ticket is worked out only while paused: that reads a line every
/// submit writes.)
async fn hold_while_paused(shared: &Shared, busy: &mut Busy<'_>, ticket: usize, fresh: &mut bool) {
    while shared.holds_back(ticket) {
        *fresh = false;
        let held = busy.hold(ticket);
        shared.released(ticket).await;
        held.release();
    }
}

/// Runs one job to its end, polled inline as part of the worker's own
/// future (so marked as this pool's job: see `InPool`). `fresh`: the
/// worker comes straight from a job that ended in this poll.
async fn run_job(job: &mut HeldJob<'_>, fresh: &mut bool) {
    // The clock reading at the end of the last job is the start of this
    // one if nothing came between them.
    RunJob { job, first: *fresh }.await;
    *fresh = true;
}

/// The polls of [`run_job`].
struct RunJob<'j, 'a> {
    job: &'j mut HeldJob<'a>,
    /// The first poll may keep the clock reading of the job before.
    first: bool,
}

impl Future for RunJob<'_, '_> {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if !std::mem::take(&mut this.first) {
            clock_hint::clear();
        }
        // Lets the job go from the worker's list before the entry gives
        // its cell up (`QueueEntry::poll_in`).
        let polled = this.job.entry.poll_in(cx, this.job.local);
        if polled.is_pending() {
            clock_hint::clear();
        }
        polled
    }
}

/// A job a worker holds, from its pop to its end, listed for `Pool::jobs`
/// (`src/view.rs`). However it ends (run to its end, dropped by a stop,
/// or dropped with the worker's future mid-run), the worker lets it go
/// before the entry gives its cell up: `Drop` runs before the fields drop.
struct HeldJob<'a> {
    entry: QueueEntry,
    local: &'a mut WorkerLocal,
}

impl<'a> HeldJob<'a> {
    fn new(entry: QueueEntry, local: &'a mut WorkerLocal) -> HeldJob<'a> {
        local.hold(entry.header());
        HeldJob { entry, local }
    }
}

impl Drop for HeldJob<'_> {
    fn drop(&mut self) {
        // A job run to its end was let go already (`QueueEntry::poll_in`).
        if !self.entry.is_done() {
            self.local.let_go();
        }
    }
}

/// The idle timer, if the pool has an idle timeout (one too long to
/// express, past the clock's range, never fires).
fn idle_timer(shared: &Shared) -> Option<Sleep> {
    let core = shared.core();
    let at = core.now().checked_add(shared.idle_timeout?)?;
    Some(core.sleep_until(at))
}

#[derive(PartialEq, Eq)]
enum Woke {
    Job,
    Timeout,
    /// The idle timer's poll panicked (caught: see `Worker::sleep`).
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
                    discard(payload);
                    return Poll::Ready(Woke::TimerPanicked);
                }
            }
        }
        Poll::Pending
    }
}

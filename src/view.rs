//! What [`Pool::jobs`](crate::Pool::jobs) shows: one [`JobInfo`] per job
//! that is queued or that a worker holds, read without stopping the pool.
//!
//! Queued jobs are read from the queue, walked under its pop lock
//! (`Queue::visit`). A job a worker holds (popped, perhaps waiting for a
//! pause; running; or a blocking closure draining after its handle
//! resolved) is out of the queue, so each worker lists the one job it holds
//! in a [`WorkerJob`] of its own, made once per worker and registered in the
//! pool's [`WorkerJobs`]. What a job costs for it, when no one looks: its
//! worker's `Release` store of the job's header as it takes it, and an
//! uncontended CAS as it lets it go, both on the worker's own cache line;
//! the task notes its start and attempts there with plain stores.
//!
//! The rules that make the reads sound:
//! 1. A worker lists a job's header only while it holds the job's queue
//!    entry, whose reference keeps the cell (and so the header) alive: it
//!    lets the job go from its `WorkerJob` (`let_go`) before the entry
//!    gives its reference up.
//! 2. A reader marks the listed header `READING` (a CAS from the plain
//!    pointer) before it reads it, and unmarks it after; `let_go` waits
//!    while the mark is set. So a marked header is alive. One reader at a
//!    time: readers hold the list's lock.
//! 3. A header's changing fields (ticket or attempts, submit time or queue
//!    wait) are read under its lock (`Header::look`), so that a job that
//!    completes meanwhile is seen either before (ticket, submit time) or
//!    after (attempts, queue wait), never half.
//! 4. A draining job's header no longer holds its ticket: the task notes the
//!    ticket and the draining mark in its `WorkerJob` before it publishes the
//!    outcome, so a reader that sees the job complete (under the header's
//!    lock) sees the mark. A complete job without it is finished: not shown.

use std::fmt;
use std::ptr;
use std::sync::Weak;
use std::time::Duration;

use crate::core::Core;
use crate::header::{Header, Name};
use crate::id::JobId;
use crate::sync::{lock, spin_wait, Arc, AtomicPtr, AtomicU32, AtomicU64, Mutex, Ordering};

/// What a job is doing, as [`Pool::jobs`](crate::Pool::jobs) saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting to start: in the queue, or taken by a worker that has not
    /// started it yet (a pause holds it back, or it waits for its start
    /// time under the [rate limit](crate::Builder::rate_limit)).
    Queued,
    /// Started: an attempt runs, or it backs off before the next.
    Running,
    /// A blocking closure that was interrupted (timed out or cancelled):
    /// its handle has resolved, but the closure has not returned yet, and
    /// its worker waits for it (the slot stays busy).
    Draining,
}

/// The state in lower case, with the formatter's width (`{:<8}`).
impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Draining => "draining",
        })
    }
}

/// One job of a [`Pool::jobs`](crate::Pool::jobs) snapshot: a job that was
/// queued, running or draining when the snapshot was taken.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobInfo {
    id: JobId,
    name: Option<Name>,
    state: JobState,
    attempt: u32,
    queued_for: Duration,
    running_for: Option<Duration>,
}

impl JobInfo {
    /// Whether the job is named by this very `name` (the same allocation,
    /// not an equal string).
    pub(crate) fn is_named(&self, name: &Name) -> bool {
        self.name
            .as_ref()
            .is_some_and(|n| std::ptr::eq::<String>(&**n, &**name))
    }

    /// How long ago it was submitted (as of the snapshot).
    pub(crate) fn age(&self) -> Duration {
        self.queued_for + self.running_for.unwrap_or_default()
    }

    /// The job's id, the same as its handle's
    /// ([`ResultHandle::id`](crate::ResultHandle::id)).
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The job's name ([`Job::name`](crate::Job::name)), if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref().map(String::as_str)
    }

    /// Queued, running or draining.
    pub fn state(&self) -> JobState {
        self.state
    }

    /// The attempt that runs (from 1; the last one while draining or backing
    /// off before the next); 0 while queued.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How long the job waited to start: from its submit to its start, or
    /// to the snapshot while it is still queued.
    pub fn queued_for(&self) -> Duration {
        self.queued_for
    }

    /// How long it has run, from its start to the snapshot; `None` while
    /// queued.
    pub fn running_for(&self) -> Option<Duration> {
        self.running_for
    }
}

/// The tag a reader sets on a listed header while it reads it (rule 2).
const READING: usize = 1;

/// The draining mark in [`WorkerJob::attempt`] (rule 4).
const DRAINING: u32 = 1 << 31;

/// The job one worker holds, for readers of [`Pool::jobs`](crate::Pool::jobs)
/// (see the module docs). On its own cache line: only its worker writes it
/// while no one looks.
#[repr(align(128))]
pub(crate) struct WorkerJob {
    /// The held job's header (`READING`-tagged while a reader reads it), or
    /// null. Set and cleared by the worker.
    job: AtomicPtr<Header>,
    /// When the held job started (ns since the pool's epoch), valid once
    /// `attempt` is not 0. Written by the task.
    started: AtomicU64,
    /// The attempt that runs, 0 until the job starts, with the `DRAINING`
    /// mark once it drains. Reset by the worker as it takes a job; then
    /// written by the task, `Release` (after `started` and `ticket`).
    attempt: AtomicU32,
    /// A draining job's ticket (low 32 bits), which its header no longer
    /// holds. Written by the task before the `DRAINING` mark.
    ticket: AtomicU32,
}

impl WorkerJob {
    fn new() -> WorkerJob {
        WorkerJob {
            job: AtomicPtr::new(ptr::null_mut()),
            started: AtomicU64::new(0),
            attempt: AtomicU32::new(0),
            ticket: AtomicU32::new(0),
        }
    }

    /// The worker takes the job of `header` (it holds its queue entry).
    pub(crate) fn hold(&self, header: &Header) {
        self.attempt.store(0, Ordering::Relaxed);
        // `Release`: a reader that finds the header sees the reset above.
        self.job
            .store(ptr::from_ref(header).cast_mut(), Ordering::Release);
    }

    /// The worker lets its job go, before its entry gives the cell up (rule
    /// 1): waits while a reader reads the header.
    #[inline]
    pub(crate) fn let_go(&self) {
        // `Acquire` (both): a reader's reads happen before the cell can be
        // freed.
        let held = self.job.load(Ordering::Acquire);
        if held.is_null()
            || (held.addr() & READING == 0
                && self
                    .job
                    .compare_exchange(held, ptr::null_mut(), Ordering::Acquire, Ordering::Relaxed)
                    .is_ok())
        {
            return;
        }
        self.let_go_while_read();
    }

    /// [`let_go`](Self::let_go) while a reader reads the header: waits for
    /// it.
    #[cold]
    #[inline(never)]
    fn let_go_while_read(&self) {
        let mut spins = 0;
        loop {
            let held = self.job.load(Ordering::Acquire);
            if held.is_null() {
                return;
            }
            if held.addr() & READING != 0 {
                spin_wait(&mut spins);
                continue;
            }
            if self
                .job
                .compare_exchange(held, ptr::null_mut(), Ordering::Acquire, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// The held job started at `ns` (its first attempt is noted next).
    pub(crate) fn started(&self, ns: u64) {
        self.started.store(ns, Ordering::Relaxed);
    }

    /// The held job's attempt `n` (from 1) runs.
    pub(crate) fn attempt(&self, n: u32) {
        // `Release`: a reader that sees the attempt sees `started`.
        self.attempt.store(n & !DRAINING, Ordering::Release);
    }

    /// The held job, at attempt `n`, drains; its ticket is `ticket`. Noted
    /// before its outcome is published (rule 4).
    pub(crate) fn draining(&self, ticket: u32, n: u32) {
        self.ticket.store(ticket, Ordering::Relaxed);
        self.attempt
            .store((n & !DRAINING) | DRAINING, Ordering::Release);
    }

    /// What the held job is doing, if it is not finished, at `now` (ns
    /// since the epoch of `core`, the pool's).
    fn read(&self, core: &Core, now: u64) -> Option<JobInfo> {
        let mut seen = self.job.load(Ordering::Acquire);
        let held = loop {
            if seen.is_null() {
                return None;
            }
            let tagged = seen.map_addr(|a| a | READING);
            match self
                .job
                .compare_exchange(seen, tagged, Ordering::Acquire, Ordering::Acquire)
            {
                // The pointer as stored now: the same address as `seen`, but
                // maybe another job's header (the worker let `seen`'s go, and
                // its next cell took the freed address); only this one may be
                // read.
                Ok(now) => break now,
                // The worker let it go, or took another job.
                Err(actual) => seen = actual,
            }
        };
        // SAFETY: the header is tagged `READING`: its worker cannot let it
        // go (nor its entry free the cell) until the tag is cleared below
        // (rules 1 and 2).
        #[allow(unsafe_code)]
        let header = unsafe { &*held };
        let info = self.describe(header, core, now);
        // Only this reader changes a tagged pointer: a plain store clears
        // it. `Release`: the reads above happen before `let_go` returns.
        self.job.store(held, Ordering::Release);
        info
    }

    /// [`read`](Self::read)'s part under the `READING` tag.
    fn describe(&self, header: &Header, core: &Core, now: u64) -> Option<JobInfo> {
        let look = header.look();
        let attempt = self.attempt.load(Ordering::Acquire);
        let (id, state, queued, started) = if look.complete {
            if attempt & DRAINING == 0 {
                return None; // finished
            }
            let ticket = self.ticket.load(Ordering::Relaxed);
            let started = self.started.load(Ordering::Relaxed);
            // Complete: the header holds the queue wait (rule 4).
            let queued = look.submitted_or_queued;
            (ticket, JobState::Draining, queued, Some(started))
        } else if attempt == 0 {
            return Some(queued(
                header,
                core,
                look.ticket_or_attempts,
                look.submitted_or_queued,
                now,
            ));
        } else {
            let started = self.started.load(Ordering::Relaxed);
            let queued = started.saturating_sub(look.submitted_or_queued);
            (
                look.ticket_or_attempts,
                JobState::Running,
                queued,
                Some(started),
            )
        };
        Some(JobInfo {
            id: JobId::of_ticket(core.full_ticket(id)),
            name: header.name.clone(),
            state,
            attempt: attempt & !DRAINING,
            queued_for: Duration::from_nanos(queued),
            running_for: started.map(|s| Duration::from_nanos(now.saturating_sub(s))),
        })
    }
}

/// A queued job: its ticket's low bits `ticket`, submitted at `submitted`.
fn queued(header: &Header, core: &Core, ticket: u32, submitted: u64, now: u64) -> JobInfo {
    JobInfo {
        id: JobId::of_ticket(core.full_ticket(ticket)),
        name: header.name.clone(),
        state: JobState::Queued,
        attempt: 0,
        queued_for: Duration::from_nanos(now.saturating_sub(submitted)),
        running_for: None,
    }
}

/// A job in the queue, if it was not cancelled there (a cancelled job stays
/// queued, complete, until a worker or a stop takes it out).
pub(crate) fn of_queued(header: &Header, core: &Core, now: u64) -> Option<JobInfo> {
    let look = header.look();
    (!look.complete).then(|| {
        queued(
            header,
            core,
            look.ticket_or_attempts,
            look.submitted_or_queued,
            now,
        )
    })
}

/// Appends the queue's readings (`queued`) and the workers' (`held`, read
/// after) to `out`, oldest (lowest id) first, one per job: a job seen in
/// both was taken out of the queue between the two, and the worker's
/// reading is the later one.
pub(crate) fn merge_into(mut queued: Vec<JobInfo>, mut held: Vec<JobInfo>, out: &mut Vec<JobInfo>) {
    held.sort_unstable_by_key(|j| j.id);
    queued.retain(|q| held.binary_search_by_key(&q.id, |h| h.id).is_err());
    let start = out.len();
    out.append(&mut queued);
    out.append(&mut held);
    out[start..].sort_unstable_by_key(|j| j.id);
}

/// A pool's workers' [`WorkerJob`]s.
#[derive(Default)]
pub(crate) struct WorkerJobs {
    /// Weak: a worker that leaves drops its `WorkerJob`; dead entries are
    /// forgotten as the list grows (as `Watchers` does). Its lock also keeps
    /// readers one at a time (rule 2).
    list: Mutex<Vec<Weak<WorkerJob>>>,
}

impl WorkerJobs {
    /// A new worker's `WorkerJob`.
    pub(crate) fn register(&self) -> Arc<WorkerJob> {
        let job = Arc::new(WorkerJob::new());
        let mut list = lock(&self.list);
        if list.len() >= 16 && list.len().is_power_of_two() {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(&job));
        job
    }

    /// Appends what each worker holds (jobs not finished) at `now`.
    pub(crate) fn read_into(&self, core: &Core, now: u64, out: &mut Vec<JobInfo>) {
        let list = lock(&self.list);
        for job in list.iter().filter_map(Weak::upgrade) {
            out.extend(job.read(core, now));
        }
    }
}

/// The `unsafe` read above, under miri in CI (`.ci/run`: `--lib view::`):
/// a worker frees each header right after it lets it go, while a reader
/// reads the worker's job; and how the two readings are merged.
#[cfg(all(test, not(workerpoolxt_loom)))]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::{merge_into, JobInfo, JobState, WorkerJobs};
    use crate::header::Header;
    use crate::id::JobId;
    use crate::state::{ENTRY_REF, HANDLE_REF};
    use crate::Pool;

    /// Rounds small enough for miri, large enough to interleave natively.
    const ROUNDS: usize = if cfg!(miri) { 300 } else { 20_000 };

    /// A worker holds a job a moment, then lets it go and frees its header;
    /// every other job starts 1 ns after its submit.
    #[test]
    fn a_reader_never_reads_a_header_its_worker_let_go() {
        let pool = Pool::builder()
            .max_workers(1)
            .keep_idle_workers()
            .spawner(drop)
            .build();
        let core = pool.shared().core().clone();
        let jobs = Arc::new(WorkerJobs::default());
        let job = jobs.register();
        let done = Arc::new(AtomicBool::new(false));
        let readings = Arc::new(AtomicUsize::new(0));
        let reader = {
            let (jobs, core, done) = (jobs.clone(), core.clone(), done.clone());
            let readings = readings.clone();
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let mut out = Vec::new();
                    jobs.read_into(&core, u64::MAX, &mut out);
                    for j in out {
                        match (j.state, j.attempt, j.queued_for.as_nanos()) {
                            (JobState::Queued, 0, _) | (JobState::Running, 1, 1) => {}
                            _ => panic!("a reading mixed two jobs: {j:?}"),
                        }
                        readings.fetch_add(1, Ordering::SeqCst);
                    }
                    if cfg!(miri) {
                        std::thread::yield_now();
                    }
                }
            })
        };
        // Natively, until the reader has read a few hundred jobs too.
        let enough = |i: usize| {
            i >= ROUNDS
                && (cfg!(miri) || readings.load(Ordering::SeqCst) >= 500 || i >= 100 * ROUNDS)
        };
        for i in (0..).take_while(|i| !enough(*i)) {
            let submitted = 2 * i as u64;
            let header = Box::new(Header::new(
                core.clone(),
                None,
                submitted,
                i,
                ENTRY_REF | HANDLE_REF,
            ));
            job.hold(&header);
            if i % 2 == 1 {
                job.started(submitted + 1);
                job.attempt(1);
            }
            if cfg!(miri) {
                std::thread::yield_now();
            } else {
                (0..100).for_each(|_| std::hint::spin_loop());
            }
            job.let_go();
            // Freed: a reader still reading it would read freed memory.
            drop(header);
        }
        done.store(true, Ordering::SeqCst);
        reader.join().unwrap();
        if !cfg!(miri) {
            assert!(readings.load(Ordering::SeqCst) > 0);
        }
        // Nothing held: nothing shown.
        let mut out = Vec::new();
        jobs.read_into(&core, 0, &mut out);
        assert!(out.is_empty());
    }

    fn info(id: u64, state: JobState) -> JobInfo {
        JobInfo {
            id: JobId::of_ticket(id as usize - 1),
            name: None,
            state,
            attempt: 0,
            queued_for: Duration::ZERO,
            running_for: None,
        }
    }

    /// A job read in the queue and then in its worker's hands is kept
    /// once, as the worker saw it; everything comes oldest first, after
    /// what `out` held already.
    #[test]
    fn merged_readings_keep_each_job_once_oldest_first() {
        let queued = vec![
            info(4, JobState::Queued),
            info(3, JobState::Queued),
            info(6, JobState::Queued),
        ];
        let held = vec![info(3, JobState::Running), info(1, JobState::Running)];
        let mut out = vec![info(9, JobState::Queued)];
        merge_into(queued, held, &mut out);
        let got: Vec<(u64, JobState)> = out.iter().map(|j| (j.id.get(), j.state)).collect();
        assert_eq!(
            got,
            vec![
                (9, JobState::Queued),
                (1, JobState::Running),
                (3, JobState::Running),
                (4, JobState::Queued),
                (6, JobState::Queued),
            ]
        );
    }
}

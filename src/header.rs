//! A job's header: what a job and its handle share, at the start of the
//! job's cell (`src/cell.rs`): the state word (`src/state.rs`), the pool's
//! core, the job's name and times, and the handle's waker. It says when the
//! result (stored in the cell, where the task was) is there, and publishes
//! it.

use std::mem::ManuallyDrop;
use std::task::{Context, Waker};
use std::time::Duration;

use crate::core::Core;
use crate::error::JobError;
use crate::metrics::End;
use crate::state::{
    self, CancelRequest, ErrorCode, Start, CANCEL, COMPLETE, ENTRY_REF, HANDLE_REF, LOCKED, STORED,
    TAKEN, UNSTARTED,
};
use crate::sync::{spin_wait, Arc, AtomicU32, AtomicU64, Ordering, UnsafeCell};

/// A job's name, shared by its job, context, header and outcome.
pub(crate) type Name = Arc<String>;

/// What a job and its handle share: the start of the job's cell, the same
/// for every job (the result itself is stored where the task
/// was, see `src/cell.rs`).
///
/// Whoever moves the job out of the queue first wins it: the worker that
/// starts it (`try_start`), the handle that cancels it while queued
/// (`cancel`), or a stop that drops it unstarted (`try_start` too). Both sides
/// set their bit with one `fetch_or` and look at the other's bit in the
/// previous value, so exactly one of them wins.
///
/// Its fields serve one purpose before the outcome is published and another
/// after, so that a queued job stays small: `ticket_or_attempts` holds the
/// queue ticket, then the attempts; `submitted_or_queued` the submit time,
/// then the queue wait; `waker_or_run` the handle's waker, then the run
/// time.
pub(crate) struct Header {
    /// The state word (`src/state.rs`); reached without a `&Header` by
    /// `state::release_ref` (see there).
    pub(crate) state: AtomicU32,
    /// The queue ticket's low 32 bits while the job is queued (see
    /// `Core::full_ticket`); the attempts once a started job is complete.
    /// Written only by the job's entry, which a worker reads the ticket
    /// through before the job starts.
    ticket_or_attempts: AtomicU32,
    pub(crate) core: Arc<Core>,
    pub(crate) name: Option<Name>,
    /// When it was submitted (ns since the pool's epoch); once complete, how
    /// long it was queued (ns). Written by whoever won the job (`try_start`,
    /// `cancel`) before `COMPLETE`.
    submitted_or_queued: AtomicU64,
    /// Guarded by `LOCKED` (see [`Header::locked`]).
    waker_or_run: UnsafeCell<WakerOrRun>,
}

/// The handle's waker until the outcome is published; the run time (ns)
/// after. Never dropped: a header is freed only once its outcome is published,
/// which takes the waker out, and a header whose cell failed to be built
/// (before any handle could register) holds `None`.
union WakerOrRun {
    waker: ManuallyDrop<Option<Waker>>,
    run: u64,
}

// SAFETY: `wait` (a waker, which is `Send + Sync`, or a number) is only
// reached under the `LOCKED` bit of `state` (or, once `COMPLETE` is set, read
// alone: nothing writes it any more); everything else in the header is atomic
// or immutable.
#[allow(unsafe_code)]
unsafe impl Sync for Header {}

/// The gauge a job leaves as its outcome is published (it was counted in it
/// until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaves {
    /// `waiting`: it never left the queue (it ends unstarted).
    Waiting,
    /// `running`: it started.
    Running,
    /// No gauge: it was never queued (a refused submit), or it moved to
    /// `draining` already.
    Nothing,
}

/// A complete job's outcome, as its header gives it to the handle.
pub(crate) struct Resolved<T, E> {
    pub(crate) result: Result<T, JobError<E>>,
    pub(crate) attempts: u32,
    /// Submit to first start (or to leaving the queue unstarted).
    pub(crate) queued: Duration,
    /// First start to the end.
    pub(crate) run: Duration,
}

/// What [`Header::look`] reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Look {
    /// The outcome is published: the fields below are the attempts and the
    /// queue wait (ns) instead of the ticket and the submit time.
    pub(crate) complete: bool,
    pub(crate) ticket_or_attempts: u32,
    pub(crate) submitted_or_queued: u64,
}

/// How a job went, besides its result.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Record {
    pub(crate) attempts: u32,
    /// Submit to first start (or to leaving the queue unstarted), in ns.
    pub(crate) queued: u64,
    /// First start to the end, in ns.
    pub(crate) run: u64,
}

impl Header {
    /// A header owned by the references in `refs` ([`ENTRY_REF`],
    /// [`HANDLE_REF`]), for a job submitted at `submitted` with queue
    /// ticket `ticket`.
    pub(crate) fn new(
        core: Arc<Core>,
        name: Option<Name>,
        submitted: u64,
        ticket: usize,
        refs: u32,
    ) -> Self {
        debug_assert_eq!(refs & !(ENTRY_REF | HANDLE_REF), 0);
        Header {
            state: AtomicU32::new(refs),
            // Truncated on purpose: see `Core::full_ticket`.
            ticket_or_attempts: AtomicU32::new(ticket as u32),
            core,
            name,
            submitted_or_queued: AtomicU64::new(submitted),
            waker_or_run: UnsafeCell::new(WakerOrRun {
                waker: ManuallyDrop::new(None),
            }),
        }
    }

    /// The low 32 bits of the job's queue ticket (valid until it starts).
    pub(crate) fn ticket(&self) -> u32 {
        self.ticket_or_attempts.load(Ordering::Relaxed)
    }

    /// Takes the job out of the queue, to run it or to end it unstarted.
    /// `false` if the handle cancelled it first (the handle has then
    /// resolved it). The caller counts it out of `waiting`: when it starts,
    /// or when its outcome is published ([`Leaves::Waiting`]).
    pub(crate) fn try_start(&self) -> Start {
        state::start(&self.state)
    }

    /// When the job was submitted, in ns since the pool's epoch (valid until
    /// it is complete).
    pub(crate) fn submitted(&self) -> u64 {
        self.submitted_or_queued.load(Ordering::Relaxed)
    }

    /// Runs `f` on the header's guarded field, under the `LOCKED` bit, with the
    /// state word as it was when the lock was taken; sets `bits` (unset so
    /// far) in the step that releases it.
    #[allow(unsafe_code)]
    fn locked<R>(&self, bits: u32, f: impl FnOnce(&mut WakerOrRun, u32) -> R) -> R {
        let mut spins = 0;
        let state = loop {
            let prev = self.state.fetch_or(LOCKED, Ordering::Acquire);
            if prev & LOCKED == 0 {
                break prev;
            }
            spin_wait(&mut spins);
        };
        /// Releases the bit even if `f` unwinds (a waker's clone or drop).
        struct Unlock<'a>(&'a AtomicU32, u32);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                let prev = self.0.fetch_xor(LOCKED | self.1, Ordering::Release);
                debug_assert_eq!(prev & (LOCKED | self.1), LOCKED);
            }
        }
        let unlock = Unlock(&self.state, bits);
        // SAFETY: the `LOCKED` bit is held until `unlock` drops: no other
        // access to `wait` overlaps this one.
        let r = self
            .waker_or_run
            .with_mut(|wait| f(unsafe { &mut *wait }, state));
        drop(unlock);
        r
    }

    /// Whether exactly the references in `refs` own the header's cell.
    pub(crate) fn owned_by(&self, refs: u32) -> bool {
        self.state.load(Ordering::Acquire) & (ENTRY_REF | HANDLE_REF) == refs
    }

    /// The job's identity while its cell lives (the header's address), for
    /// the worker waiting in it (`src/watch.rs`).
    pub(crate) fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Whether the handle asked for a cancel.
    pub(crate) fn cancel_requested(&self) -> bool {
        self.state.load(Ordering::Acquire) & CANCEL != 0
    }

    /// Whether the cell holds a result the handle did not take: what its
    /// last owner must drop when it frees the cell.
    pub(crate) fn stored_and_untaken(&self) -> bool {
        self.state.load(Ordering::Acquire) & (STORED | TAKEN) == STORED
    }

    /// Publishes the outcome: the error named by `code`, or (`None`) the
    /// result stored in the cell just before. The final counter is bumped
    /// first, then the job leaves the gauge it was `counted` in: a handle
    /// that has resolved is always in the metrics, and a reader that sees
    /// `running` or `waiting` drop sees the final count too (the ledger
    /// `submitted = waiting + running + finished` never runs short).
    ///
    /// A record without attempts is that of a job that never started: its
    /// ticket is still in `ticket_or_attempts` (a worker may read it), and its outcome
    /// reports no attempt and no run time (`UNSTARTED`).
    #[allow(unsafe_code)]
    pub(crate) fn publish(
        &self,
        code: Option<ErrorCode>,
        record: Record,
        how: End,
        leaves: Leaves,
    ) {
        self.core.count(how);
        match leaves {
            Leaves::Running => self.core.job_ended(),
            Leaves::Waiting => self.core.left_queue(),
            Leaves::Nothing => {}
        }
        let unstarted = record.attempts == 0;
        let bits = match code {
            Some(code) => code.bits(),
            None => STORED,
        } | if unstarted { UNSTARTED } else { 0 };
        let waker = self.locked(COMPLETE | bits, |wait, state| {
            debug_assert_eq!(state & COMPLETE, 0, "published twice");
            // Under the lock, so that a look at a job that is not complete
            // (`look`) never sees them half-changed.
            self.submitted_or_queued
                .store(record.queued, Ordering::Relaxed);
            if !unstarted {
                // The ticket is no longer read: the job started.
                self.ticket_or_attempts
                    .store(record.attempts, Ordering::Relaxed);
            }
            // SAFETY: before `COMPLETE` the union holds the waker; it is
            // taken out before the run time overwrites it.
            unsafe {
                let waker = ManuallyDrop::take(&mut wait.waker);
                wait.run = record.run;
                waker
            }
        });
        // Woken outside the lock.
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The record of a job that leaves the queue unstarted now.
    ///
    /// A clock that panics here (its panic contained: this runs where a
    /// panic has nowhere to go, a stop or a cancel) gives a queue wait of
    /// zero.
    pub(crate) fn unstarted_record(&self) -> Record {
        let queued = match self.core.try_now() {
            Ok(now) => self.core.since_epoch(now).saturating_sub(self.submitted()),
            Err(_) => 0,
        };
        Record {
            attempts: 0,
            queued,
            run: 0,
        }
    }

    /// Resolves a job that never ran with `error`, at once.
    pub(crate) fn complete_unstarted(&self, error: ErrorCode, how: End, leaves: Leaves) {
        self.publish(Some(error), self.unstarted_record(), how, leaves);
    }

    /// The header's changing fields as one consistent reading, under the
    /// lock (see `Pool::jobs`): the ticket and submit time of a job that is
    /// not complete, or the attempts and queue wait of one that is.
    pub(crate) fn look(&self) -> Look {
        self.locked(0, |_, state| Look {
            complete: state & COMPLETE != 0,
            ticket_or_attempts: self.ticket_or_attempts.load(Ordering::Relaxed),
            submitted_or_queued: self.submitted_or_queued.load(Ordering::Relaxed),
        })
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) & COMPLETE != 0
    }

    pub(crate) fn cancel(&self) {
        match state::request_cancel(&self.state) {
            // Still queued: the job will never start. Resolved here, at
            // once, rather than when a worker reaches it in the queue.
            CancelRequest::Queued => {
                self.complete_unstarted(ErrorCode::Cancelled, End::Cancelled, Leaves::Waiting);
                // A worker may hold it while it waits for its start time
                // under the rate limit: woken, it lets the job go and gives
                // its time back now, not at that time.
                if self.core.rate.is_some() {
                    self.core.watchers.wake(self.id());
                }
            }
            // Running: its worker looks at the `CANCEL` bit when woken.
            CancelRequest::Running => self.core.watchers.wake(self.id()),
            CancelRequest::Done => {}
        }
    }

    #[allow(unsafe_code)]
    pub(crate) fn register(&self, cx: &mut Context<'_>) {
        self.locked(0, |wait, state| {
            if state & COMPLETE != 0 {
                // The union holds the run time now.
                return;
            }
            // SAFETY: before `COMPLETE` the union holds the waker.
            let waker = unsafe { &mut *wait.waker };
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        });
    }

    /// The result, if the job is complete and it was not taken yet (a
    /// terminated handle gives `None`). `stored` reads a stored result out
    /// of the cell; it is called at most once per job (the handle's
    /// methods that take are `&mut self`, and `TAKEN` is set after).
    #[allow(unsafe_code)]
    pub(crate) fn take<T, E>(
        &self,
        stored: impl FnOnce() -> Result<T, JobError<E>>,
    ) -> Option<Resolved<T, E>> {
        let state = self.state.load(Ordering::Acquire);
        if state & COMPLETE == 0 || state & TAKEN != 0 {
            return None;
        }
        let result = if state & STORED != 0 {
            stored()
        } else {
            Err(ErrorCode::error(state))
        };
        if state::handle_alone(state) {
            // No other thread reads or writes the word any more.
            self.state.store(state | TAKEN, Ordering::Relaxed);
        } else {
            // `Release`: the entry, if it frees the cell, sees the result
            // moved out (`stored_and_untaken`).
            self.state.fetch_or(TAKEN, Ordering::Release);
        }
        let started = state & UNSTARTED == 0;
        // SAFETY: `COMPLETE` was set (Acquire above) in the step that wrote
        // the run time under the lock; nothing writes it after.
        let run = self.waker_or_run.with_mut(|wait| unsafe { (*wait).run });
        Some(Resolved {
            result,
            attempts: if started {
                self.ticket_or_attempts.load(Ordering::Relaxed)
            } else {
                0
            },
            queued: Duration::from_nanos(self.submitted_or_queued.load(Ordering::Relaxed)),
            run: Duration::from_nanos(if started { run } else { 0 }),
        })
    }

    pub(crate) fn is_taken(&self) -> bool {
        self.state.load(Ordering::Acquire) & TAKEN != 0
    }
}

//! The job's state word: its bits, who sets each one and when, and the
//! transitions on it that more than one thread races on.
//!
//! The word sits at the start of every job's header (`src/header.rs`), and
//! is shared by the job's queue entry (the worker side) and its handle. Each
//! bit is set once, by one side, except `LOCKED`, a short lock over the
//! header's one non-atomic field. Transitions that decide between two sides
//! return `#[must_use]` enums, so a caller cannot ignore who won.

use crate::error::JobError;
use crate::sync::{AtomicU32, Ordering};

/// The job was taken by a worker (set once, by the job).
pub(crate) const STARTED: u32 = 1 << 0;
/// The handle asked for a cancel (set once, by the handle).
pub(crate) const CANCEL: u32 = 1 << 1;
/// The outcome is published (set once, in the step that releases the lock).
pub(crate) const COMPLETE: u32 = 1 << 2;
/// The handle took the outcome (set once, by the handle): the handle is
/// terminated. Kept here rather than in the handle, so a handle is one
/// pointer wide.
pub(crate) const TAKEN: u32 = 1 << 3;
/// The job's cell is owned by its queue entry (cleared once, when the entry
/// lets go)...
pub(crate) const ENTRY_REF: u32 = 1 << 4;
/// ...and by its handle (cleared once, when the handle is dropped). Whoever
/// clears the last of the two frees the cell (`src/cell.rs`).
pub(crate) const HANDLE_REF: u32 = 1 << 5;
/// The header's lock: the handle's waker (then the run time) is read and
/// written only while this bit is held (a few instructions at a time, so a
/// waiting side spins briefly, then yields its thread). Setting `COMPLETE`
/// happens in the same step that releases it; after that nothing writes the
/// run time, and the handle reads it without the lock (`Header::take`).
pub(crate) const LOCKED: u32 = 1 << 6;
/// The result is in the cell, where the task was (a value, or an error that
/// carries one). Without it, a complete job's result is the error that its
/// [code](ErrorCode) names.
pub(crate) const STORED: u32 = 1 << 7;
/// The job never started: no attempt, no run time.
pub(crate) const UNSTARTED: u32 = 1 << 8;
/// Where a result's [`ErrorCode`] sits in the state word (three bits).
pub(crate) const CODE_SHIFT: u32 = 9;
/// One `CancelHandle` of the job: the bits from here up count them (added
/// by whoever clones one, taken off by each as it drops). Each owns the
/// cell as `ENTRY_REF` and `HANDLE_REF` do.
pub(crate) const CANCEL_REF: u32 = 1 << 12;
/// The count of `CancelHandle`s.
pub(crate) const CANCEL_REFS: u32 = !(CANCEL_REF - 1);
/// Every bit that says someone owns the cell.
const REFS: u32 = ENTRY_REF | HANDLE_REF | CANCEL_REFS;

/// The errors that carry nothing, kept in the state word: a job that ends
/// with one needs no room for its result, so its handle can resolve while
/// the task still occupies the cell (a draining blocking closure), or
/// without a task at all (a refused submit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    TimedOut = 1,
    Cancelled = 2,
    Stopped = 3,
    QueueFull = 4,
}

impl ErrorCode {
    /// The code of `error`, if it carries nothing.
    pub(crate) fn of<E>(error: &JobError<E>) -> Option<ErrorCode> {
        match error {
            JobError::TimedOut => Some(ErrorCode::TimedOut),
            JobError::Cancelled => Some(ErrorCode::Cancelled),
            JobError::Stopped => Some(ErrorCode::Stopped),
            JobError::QueueFull => Some(ErrorCode::QueueFull),
            JobError::Failed(_) | JobError::Panicked(_) => None,
        }
    }

    pub(crate) fn bits(self) -> u32 {
        (self as u32) << CODE_SHIFT
    }

    /// The error whose code `state` holds (a complete job without a stored
    /// result).
    pub(crate) fn error<E>(state: u32) -> JobError<E> {
        const TIMED_OUT: u32 = ErrorCode::TimedOut as u32;
        const CANCELLED: u32 = ErrorCode::Cancelled as u32;
        const STOPPED: u32 = ErrorCode::Stopped as u32;
        const QUEUE_FULL: u32 = ErrorCode::QueueFull as u32;
        match (state >> CODE_SHIFT) & 0b111 {
            TIMED_OUT => JobError::TimedOut,
            CANCELLED => JobError::Cancelled,
            STOPPED => JobError::Stopped,
            QUEUE_FULL => JobError::QueueFull,
            code => unreachable!("no error has code {code}"),
        }
    }
}

/// Who took a queued job out of the queue first (see [`start`]).
#[must_use = "the loser of the race must not run or resolve the job"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The job's entry won: it runs the job, or ends it unstarted.
    Won,
    /// The handle cancelled it first, and resolved it then.
    CancelledFirst,
}

/// Sets `STARTED`: the entry takes its job out of the queue, to run it or
/// to end it unstarted. Both sides set their bit with one `fetch_or` and
/// look at the other's bit in the previous value, so exactly one wins.
pub(crate) fn start(state: &AtomicU32) -> Start {
    let prev = state.fetch_or(STARTED, Ordering::AcqRel);
    debug_assert_eq!(prev & STARTED, 0, "a job started twice");
    if prev & CANCEL == 0 {
        Start::Won
    } else {
        Start::CancelledFirst
    }
}

/// What a handle's cancel found (see [`request_cancel`]).
#[must_use = "a queued job is resolved by the cancel, a running one by its worker"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelRequest {
    /// The job was still queued: the handle resolves it, at once.
    Queued,
    /// The job runs: its worker sees `CANCEL` once woken.
    Running,
    /// Cancelled before, or complete: nothing to do.
    Done,
}

/// Sets `CANCEL` for the handle.
pub(crate) fn request_cancel(state: &AtomicU32) -> CancelRequest {
    let prev = state.fetch_or(CANCEL, Ordering::AcqRel);
    if prev & (CANCEL | COMPLETE) != 0 {
        CancelRequest::Done
    } else if prev & STARTED == 0 {
        CancelRequest::Queued
    } else {
        CancelRequest::Running
    }
}

/// Gives up the cell reference `bit` ([`ENTRY_REF`] or [`HANDLE_REF`]) of
/// the header whose state word is `state`; `true` if it was the last one (the
/// caller then frees the cell: nothing else can reach it).
///
/// Takes the state word alone, not the header: once the bit is cleared the
/// other owner may free the cell at any moment, so no reference to the rest
/// of the header may be alive across this call (as in `Arc`'s drop).
pub(crate) fn release_ref(state: &AtomicU32, bit: u32) -> bool {
    let prev = state.fetch_and(!bit, Ordering::AcqRel);
    debug_assert_ne!(prev & bit, 0, "a reference given up twice");
    prev & REFS == bit
}

/// Adds a `CancelHandle`'s reference; the caller owns one already (the
/// handle, or another cancel handle), so the cell is alive.
///
/// # Panics
///
/// With 2²⁰ − 1 cancel handles of one job alive already (the count is
/// left as it was).
pub(crate) fn acquire_cancel_ref(state: &AtomicU32) {
    // `Relaxed`, as `Arc::clone`: the caller's own reference keeps the cell
    // alive, and the release below orders the drops.
    let prev = state.fetch_add(CANCEL_REF, Ordering::Relaxed);
    if prev & CANCEL_REFS == CANCEL_REFS {
        // It wrapped to zero: put it back.
        state.fetch_sub(CANCEL_REF, Ordering::Relaxed);
        panic!("workerpoolxt: too many CancelHandles of one job");
    }
}

/// Gives up a `CancelHandle`'s reference; `true` if it was the last one
/// (the caller then frees the cell), as [`release_ref`].
pub(crate) fn release_cancel_ref(state: &AtomicU32) -> bool {
    let prev = state.fetch_sub(CANCEL_REF, Ordering::AcqRel);
    debug_assert_ne!(prev & CANCEL_REFS, 0, "a cancel reference given up twice");
    prev & REFS == CANCEL_REF
}

/// [`release_ref`] of [`HANDLE_REF`], without the read-modify-write when
/// the entry has given its reference up already (the common case: a handle
/// awaited after its job ended). `true` if it was the last reference.
pub(crate) fn release_handle_ref(state: &AtomicU32) -> bool {
    handle_alone(state.load(Ordering::Acquire)) || release_ref(state, HANDLE_REF)
}

/// Whether the state word `state` (read with `Acquire`) says the handle owns
/// its cell alone: the entry has given its reference up, and no
/// `CancelHandle` is alive. The entry's release
/// is `AcqRel`, and after it the entry never touches the cell again; nothing
/// else can reach the cell, so from then on the handle reads and writes it
/// (the state word included) without a word to anyone.
pub(crate) fn handle_alone(state: u32) -> bool {
    // No cancel handle either: one is made only from the handle (`&self`,
    // while these paths hold `&mut self` or `self`) or from another.
    state & (ENTRY_REF | CANCEL_REFS) == 0
}

#[cfg(test)]
mod tests {
    use super::{ErrorCode, CODE_SHIFT, LOCKED, STARTED, UNSTARTED};

    /// One cancel handle too many is refused, and the count is left as it
    /// was (the cell stays owned); below the limit, one more is counted.
    #[test]
    fn the_cancel_handle_count_refuses_to_wrap() {
        use super::{acquire_cancel_ref, release_cancel_ref, CANCEL_REF, CANCEL_REFS};
        use super::{ENTRY_REF, HANDLE_REF};
        use crate::sync::{AtomicU32, Ordering};

        let full = ENTRY_REF | HANDLE_REF | CANCEL_REFS;
        let state = AtomicU32::new(full);
        let wrapped = std::panic::catch_unwind(|| acquire_cancel_ref(&state));
        assert!(wrapped.is_err(), "a wrapped count was accepted");
        assert_eq!(state.load(Ordering::SeqCst), full);
        let state = AtomicU32::new(HANDLE_REF | CANCEL_REF);
        acquire_cancel_ref(&state);
        assert_eq!(state.load(Ordering::SeqCst), HANDLE_REF | (2 * CANCEL_REF));
        assert!(!release_cancel_ref(&state));
        let state = AtomicU32::new(CANCEL_REF);
        assert!(release_cancel_ref(&state), "the last owner frees the cell");
    }
    use crate::error::JobError;

    /// Every error that carries nothing has a code, which names it back
    /// whatever other state bits are set; the others have none.
    #[test]
    fn codes_name_their_errors_back() {
        let all: [JobError<u8>; 4] = [
            JobError::TimedOut,
            JobError::Cancelled,
            JobError::Stopped,
            JobError::QueueFull,
        ];
        for e in all {
            let code = ErrorCode::of(&e).expect("carries nothing");
            for other in [0, STARTED | LOCKED, UNSTARTED] {
                assert_eq!(ErrorCode::error::<u8>(code.bits() | other), e);
            }
            assert_eq!(code.bits() >> CODE_SHIFT << CODE_SHIFT, code.bits());
        }
        assert_eq!(ErrorCode::of(&JobError::Failed(1u8)), None);
        let p = crate::error::Panic::from_payload(&"boom");
        assert_eq!(ErrorCode::of(&JobError::<u8>::Panicked(p)), None);
    }
}

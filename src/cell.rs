//! A job's slot and its task in one allocation — the crate's only `unsafe`.
//!
//! A submitted job needs two things that live for different spans: the task
//! (the body, its attempts, timers; polled by one worker, dropped when the
//! job ends) and the slot (the result, read by the handle, possibly much
//! later). Keeping both in one `Arc` makes a submit cost one allocation, and
//! the allocation is usually freed by the thread that made it (the handle's),
//! instead of being freed across threads. The benchmark W1 (`benches/compare.rs`)
//! is where this shows.
//!
//! The task is reached only through the cell's [`QueueEntry`], which is
//! unique (made once per job, not `Clone`): that is what makes the
//! `UnsafeCell` sound.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::handle::Slot;
use crate::sync::Arc;
use crate::task::{Body, SlotOf, Task};

/// Access to a job's slot, whatever holds it.
pub(crate) trait AsSlot<T, E>: Send + Sync {
    fn slot(&self) -> &Slot<T, E>;
}

impl<T: Send, E: Send> AsSlot<T, E> for Slot<T, E> {
    fn slot(&self) -> &Slot<T, E> {
        self
    }
}

/// The slot of a job and, until it ends, its task.
struct TaskCell<B: Body> {
    slot: SlotOf<B>,
    /// Touched only by the cell's unique `QueueEntry`.
    task: UnsafeCell<Option<Task<B>>>,
}

// SAFETY: `TaskCell` is shared between the handle (and `Slot` methods), which
// only read `slot` (itself `Sync`), and the one `QueueEntry` of the cell,
// which alone reaches `task` (see `Run`). `task` is therefore never accessed
// from two threads at once, and it is `Send`, so it may move between the
// threads that own the entry in turn.
unsafe impl<B: Body> Sync for TaskCell<B> where Task<B>: Send {}

impl<B: Body> AsSlot<B::Output, B::Error> for TaskCell<B>
where
    Task<B>: Send,
{
    fn slot(&self) -> &SlotOf<B> {
        &self.slot
    }
}

/// The type-erased task side of a cell.
trait Run: Send + Sync {
    /// Polls the task; drops it in place once it is done.
    ///
    /// # Safety
    ///
    /// Only the cell's `QueueEntry` may call this, and never concurrently
    /// with `abort`.
    unsafe fn poll_run(&self, cx: &mut Context<'_>) -> Poll<()>;

    /// Ends the task without polling it again; drops it in place.
    ///
    /// # Safety
    ///
    /// As for [`poll_run`](Self::poll_run).
    unsafe fn abort(&self);
}

impl<B: Body> TaskCell<B> {
    /// The task, pinned.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to `task` (it is the cell's entry).
    #[allow(clippy::mut_from_ref)]
    unsafe fn task(&self) -> Pin<&mut Option<Task<B>>> {
        // SAFETY: exclusive access is the caller's promise. The `Option` sits
        // inside the `Arc` allocation, which never moves while the cell is
        // alive, and it is only ever dropped in place (`Pin::set`), never
        // moved out: the pinning guarantee holds.
        unsafe { Pin::new_unchecked(&mut *self.task.get()) }
    }

    /// Drops the task in place, containing a panic of its destructor (the
    /// job's outcome has been decided by then).
    fn clear(mut task: Pin<&mut Option<Task<B>>>) {
        let _ = catch_unwind(AssertUnwindSafe(|| task.set(None)));
    }
}

impl<B: Body> Run for TaskCell<B>
where
    Task<B>: Send,
{
    unsafe fn poll_run(&self, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: forwarded from the caller (the unique entry).
        let mut task = unsafe { self.task() };
        if let Some(t) = task.as_mut().as_pin_mut() {
            if t.poll_task(&self.slot, cx).is_pending() {
                return Poll::Pending;
            }
        }
        Self::clear(task);
        Poll::Ready(())
    }

    unsafe fn abort(&self) {
        // SAFETY: forwarded from the caller (the unique entry).
        let mut task = unsafe { self.task() };
        if let Some(t) = task.as_mut().as_pin_mut() {
            t.abort(&self.slot);
        }
        Self::clear(task);
    }
}

/// A job in the queue, then in its worker's hands: the only way to its task.
///
/// Awaiting it runs the job; dropping it before it is done ends the job
/// without running it further (its handle resolves `Stopped` if nothing else
/// resolved it).
pub(crate) struct QueueEntry {
    /// `None` once the task is done (the entry then gives its reference up).
    cell: Option<Arc<dyn Run>>,
    /// The job's position in submission order (see `Shared::reserve_place`).
    pub(crate) ticket: usize,
}

impl QueueEntry {
    /// A job cell for `slot` and `task`: its unique entry, and the handle's
    /// side.
    pub(crate) fn new<B: Body>(
        slot: SlotOf<B>,
        task: Task<B>,
        ticket: usize,
    ) -> (QueueEntry, Arc<dyn AsSlot<B::Output, B::Error>>)
    where
        Task<B>: Send,
    {
        let cell = Arc::new(TaskCell {
            slot,
            task: UnsafeCell::new(Some(task)),
        });
        let handle: Arc<dyn AsSlot<B::Output, B::Error>> = cell.clone();
        let entry = QueueEntry {
            cell: Some(cell),
            ticket,
        };
        (entry, handle)
    }
}

impl Future for QueueEntry {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(cell) = self.cell.as_ref() else {
            return Poll::Ready(());
        };
        // SAFETY: `self` is the cell's unique entry, and `&mut self` excludes
        // a concurrent `abort` (which only runs in `drop`).
        let polled = unsafe { cell.poll_run(cx) };
        if polled.is_ready() {
            self.cell = None;
        }
        polled
    }
}

impl Drop for QueueEntry {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            // SAFETY: `self` is the cell's unique entry, being dropped.
            unsafe { cell.abort() };
        }
    }
}

/// What a queued job costs: the memory budget is a feature (W5 of the
/// benchmarks), so a field that grows these sizes shows here first. (The
/// `tracing` feature adds a span to every task.)
#[cfg(all(test, target_pointer_width = "64", not(feature = "tracing")))]
mod sizes {
    use std::mem::size_of;

    use crate::task::{OnceFuture, Task};

    type Ready = std::future::Ready<u64>;

    #[test]
    fn a_queued_plain_job_stays_small() {
        assert_eq!(size_of::<super::QueueEntry>(), 24);
        assert_eq!(size_of::<crate::ResultHandle<u64>>(), 16);
        assert_eq!(size_of::<crate::JobError>(), 16);
        assert_eq!(size_of::<Option<Result<u64, crate::JobError>>>(), 16);
        assert!(size_of::<crate::handle::Slot<u64, std::convert::Infallible>>() <= 104);
        assert!(size_of::<Task<OnceFuture<Ready>>>() <= 40);
        assert!(size_of::<super::TaskCell<OnceFuture<Ready>>>() <= 144);
    }
}

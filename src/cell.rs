//! A job's slot and its task in one allocation, behind the header that the
//! queue links (with `src/queue.rs`, the crate's only `unsafe`).
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
//! `UnsafeCell` sound. The entry is a thin pointer to the cell's [`Link`],
//! whose vtable knows the cell's type; the queue links cells through it, so
//! a queued job costs the queue nothing but that pointer.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicPtr;
use std::task::{Context, Poll};

use crate::handle::Slot;
use crate::sync::Arc;
use crate::task::{Body, SlotOf, Task, WorkerLocal};

/// Access to a job's slot, whatever holds it.
pub(crate) trait AsSlot<T, E>: Send + Sync {
    fn slot(&self) -> &Slot<T, E>;
}

impl<T: Send, E: Send> AsSlot<T, E> for Slot<T, E> {
    fn slot(&self) -> &Slot<T, E> {
        self
    }
}

/// The header every job cell starts with: the queue's link, the cell's
/// type-erased operations, and the job's place in submission order.
///
/// The queue (`src/queue.rs`) links cells through `next`; a cell is reached
/// through a thin `*mut Link` to its start, which `repr(C)` on [`TaskCell`]
/// makes the start of the whole cell.
#[repr(C)]
pub(crate) struct Link {
    /// The next queued cell (written by the queue only).
    pub(crate) next: AtomicPtr<Link>,
    vtable: &'static VTable,
    /// The job's position in submission order (see `Shared::reserve_place`).
    ticket: usize,
}

#[cfg(not(workerpoolxt_loom))]
impl Link {
    /// The queue's own node, which is never a cell: its operations are never
    /// called (the queue never hands the stub out).
    pub(crate) fn stub() -> Link {
        Link {
            next: AtomicPtr::new(ptr::null_mut()),
            vtable: &STUB_VTABLE,
            ticket: usize::MAX,
        }
    }
}

/// The operations of one cell type.
struct VTable {
    /// Polls the task; drops it in place once it is done.
    poll_run: unsafe fn(*const Link, &mut Context<'_>, Option<&mut WorkerLocal>) -> Poll<()>,
    /// Ends the task without polling it again; drops it in place.
    abort: unsafe fn(*const Link),
    /// Gives up the entry's reference to the cell.
    release: unsafe fn(*const Link),
}

#[cfg(not(workerpoolxt_loom))]
/// The stub's operations: never called, since the queue never hands its
/// stub out (if a bug ever did, this fails loudly instead of misbehaving).
static STUB_VTABLE: VTable = VTable {
    poll_run: stub_poll,
    abort: stub_op,
    release: stub_op,
};

#[cfg(not(workerpoolxt_loom))]
unsafe fn stub_poll(_: *const Link, _: &mut Context<'_>, _: Option<&mut WorkerLocal>) -> Poll<()> {
    unreachable!("the queue handed its stub out")
}

#[cfg(not(workerpoolxt_loom))]
unsafe fn stub_op(_: *const Link) {
    unreachable!("the queue handed its stub out")
}

/// The slot of a job and, until it ends, its task.
#[repr(C)]
struct TaskCell<B: Body> {
    /// First, so that a pointer to the cell is a pointer to its link.
    link: Link,
    slot: SlotOf<B>,
    /// Touched only by the cell's unique `QueueEntry`.
    task: UnsafeCell<Option<Task<B>>>,
}

// SAFETY: `TaskCell` is shared between the handle (and `Slot` methods), which
// only read `slot` (itself `Sync`), the queue, which only touches
// `link.next` (an atomic), and the one `QueueEntry` of the cell, which alone
// reaches `task` (see `VTable`). `task` is therefore never accessed from two
// threads at once, and it is `Send`, so it may move between the threads that
// own the entry in turn.
unsafe impl<B: Body> Sync for TaskCell<B> where Task<B>: Send {}

impl<B: Body> AsSlot<B::Output, B::Error> for TaskCell<B>
where
    Task<B>: Send,
{
    fn slot(&self) -> &SlotOf<B> {
        &self.slot
    }
}

impl<B: Body> TaskCell<B>
where
    Task<B>: Send,
{
    const VTABLE: VTable = VTable {
        poll_run: Self::poll_run,
        abort: Self::abort,
        release: Self::release,
    };

    /// The cell `link` starts.
    ///
    /// # Safety
    ///
    /// `link` is the link of a live `TaskCell<B>` (made by
    /// [`QueueEntry::new`] with this `B`, which the vtable guarantees).
    unsafe fn from_link<'a>(link: *const Link) -> &'a Self {
        // SAFETY: the caller's promise; `repr(C)` puts `link` at offset 0,
        // and the pointer came from `Arc::into_raw` of the whole cell.
        unsafe { &*link.cast::<Self>() }
    }

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

    /// # Safety
    ///
    /// Only the cell's `QueueEntry` may call this (through the vtable), and
    /// never concurrently with `abort`.
    unsafe fn poll_run(
        link: *const Link,
        cx: &mut Context<'_>,
        local: Option<&mut WorkerLocal>,
    ) -> Poll<()> {
        // SAFETY: the entry holds a reference, so the cell is alive; it is the
        // only caller, so it has exclusive access to the task.
        let (cell, mut task) = unsafe {
            let cell = Self::from_link(link);
            (cell, cell.task())
        };
        if let Some(t) = task.as_mut().as_pin_mut() {
            if t.poll_task(&cell.slot, cx, local).is_pending() {
                return Poll::Pending;
            }
        }
        Self::clear(task);
        Poll::Ready(())
    }

    /// # Safety
    ///
    /// As for [`poll_run`](Self::poll_run).
    unsafe fn abort(link: *const Link) {
        // SAFETY: as in `poll_run`.
        let (cell, mut task) = unsafe {
            let cell = Self::from_link(link);
            (cell, cell.task())
        };
        if let Some(t) = task.as_mut().as_pin_mut() {
            t.abort(&cell.slot);
        }
        Self::clear(task);
    }

    /// # Safety
    ///
    /// Called once, by the entry, for the reference it holds.
    unsafe fn release(link: *const Link) {
        // SAFETY: the entry's reference came from `Arc::into_raw` of this
        // cell type; it is given back exactly once.
        drop(unsafe { Arc::from_raw(link.cast::<Self>()) });
    }
}

/// A job in the queue, then in its worker's hands: the only way to its task.
///
/// Awaiting it runs the job; dropping it before it is done ends the job
/// without running it further (its handle resolves `Stopped` if nothing else
/// resolved it). It holds one reference to the cell, as a thin pointer, so
/// that the queue can link the cell itself.
pub(crate) struct QueueEntry {
    /// `None` once the task is done (the entry then gave its reference up).
    cell: Option<NonNull<Link>>,
}

// SAFETY: the entry owns a reference to a cell that is `Send + Sync` (only
// cells whose task is `Send` are made, see `new`), and it is the only way to
// the cell's task.
unsafe impl Send for QueueEntry {}

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
            link: Link {
                next: AtomicPtr::new(ptr::null_mut()),
                vtable: &TaskCell::<B>::VTABLE,
                ticket,
            },
            slot,
            task: UnsafeCell::new(Some(task)),
        });
        let handle: Arc<dyn AsSlot<B::Output, B::Error>> = cell.clone();
        let raw = Arc::into_raw(cell).cast::<Link>().cast_mut();
        let entry = QueueEntry {
            cell: NonNull::new(raw),
        };
        (entry, handle)
    }

    /// The job's position in submission order.
    pub(crate) fn ticket(&self) -> usize {
        match self.cell {
            // SAFETY: the entry's reference keeps the cell alive.
            Some(link) => unsafe { link.as_ref().ticket },
            None => usize::MAX,
        }
    }

    /// Gives the entry's reference to the queue, as its link.
    #[cfg(not(workerpoolxt_loom))]
    pub(crate) fn into_raw(self) -> *mut Link {
        let this = std::mem::ManuallyDrop::new(self);
        this.cell
            .expect("only a job that has not run is queued")
            .as_ptr()
    }

    /// Takes back an entry given to the queue.
    ///
    /// # Safety
    ///
    /// `link` came from [`into_raw`](Self::into_raw) (of an entry that was
    /// not done) and is taken back once.
    #[cfg(not(workerpoolxt_loom))]
    pub(crate) unsafe fn from_raw(link: *mut Link) -> QueueEntry {
        QueueEntry {
            cell: NonNull::new(link),
        }
    }

    /// Gives the reference up, after the task is done or aborted.
    fn release(&mut self) {
        if let Some(link) = self.cell.take() {
            // SAFETY: the entry's reference, given up once (`take`).
            unsafe { (link.as_ref().vtable.release)(link.as_ptr()) };
        }
    }
}

impl QueueEntry {
    /// Runs the job as far as it can go, for a worker that keeps `local`
    /// until the job is done (what [`poll`](Future::poll) keeps in the job
    /// instead).
    pub(crate) fn poll_in(
        &mut self,
        cx: &mut Context<'_>,
        local: Option<&mut WorkerLocal>,
    ) -> Poll<()> {
        let Some(link) = self.cell else {
            return Poll::Ready(());
        };
        // SAFETY: `self` is the cell's unique entry (alive: it holds a
        // reference), and `&mut self` excludes a concurrent `abort` (which
        // only runs in `drop`).
        let polled = unsafe { (link.as_ref().vtable.poll_run)(link.as_ptr(), cx, local) };
        if polled.is_ready() {
            self.release();
        }
        polled
    }
}

impl Future for QueueEntry {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_in(cx, None)
    }
}

impl Drop for QueueEntry {
    fn drop(&mut self) {
        if let Some(link) = self.cell {
            // SAFETY: `self` is the cell's unique entry, being dropped.
            unsafe { (link.as_ref().vtable.abort)(link.as_ptr()) };
            self.release();
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
        assert_eq!(size_of::<super::QueueEntry>(), 8);
        assert_eq!(size_of::<crate::ResultHandle<u64>>(), 16);
        assert_eq!(size_of::<crate::JobError>(), 16);
        assert_eq!(size_of::<Option<Result<u64, crate::JobError>>>(), 16);
        assert!(size_of::<crate::handle::Slot<u64, std::convert::Infallible>>() <= 104);
        assert!(size_of::<Task<OnceFuture<Ready>>>() <= 40);
        assert!(size_of::<super::TaskCell<OnceFuture<Ready>>>() <= 168);
    }
}

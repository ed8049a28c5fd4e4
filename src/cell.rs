//! A job's slot and its task in one allocation, behind the header that the
//! queue links. The crate's `unsafe` is here, in `src/queue.rs` (the links)
//! and in the slot's lock bit (`src/handle.rs`, `Slot::locked`).
//!
//! A submitted job needs two things that live for different spans: the task
//! (the body, its attempts, timers; polled by one worker, dropped when the
//! job ends) and the slot (the result, read by the handle, possibly much
//! later). Keeping both in one allocation makes a submit cost one
//! allocation, and the allocation is usually freed by the thread that made
//! it (the handle's), instead of being freed across threads. The benchmark W1
//! (`benches/compare.rs`) is where this shows.
//!
//! The cell has exactly two owners, its [`QueueEntry`] and its
//! [`ResultHandle`](crate::ResultHandle) (through a [`HandleRef`]): two bits
//! of the slot's state word, not a reference count, and no `Arc` header. Each
//! owner clears its bit once; the one that clears the last frees the cell.
//!
//! The task is reached only through the cell's [`QueueEntry`], which is
//! unique (made once per job, not `Clone`): that is what makes the
//! `UnsafeCell` sound. The entry is a thin pointer to the cell's [`Link`],
//! whose vtable knows the cell's type; the queue links cells through it, so
//! a queued job costs the queue nothing but that pointer. The handle is a
//! thin pointer too: it reaches the slot through [`CellHead`], the cell's
//! prefix, whose layout is the same for every body with the same output and
//! error types.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicPtr;
use std::task::{Context, Poll};

use crate::handle::{release_ref, Slot, ENTRY_REF, HANDLE_REF};
use crate::task::{Body, SlotOf, Task, WorkerLocal};

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
    /// Gives up the entry's reference; `true` if it was the last one.
    release_entry: unsafe fn(*mut Link) -> bool,
    /// Frees the cell (its last owner let go).
    free: unsafe fn(*mut Link),
}

#[cfg(not(workerpoolxt_loom))]
/// The stub's operations: never called, since the queue never hands its
/// stub out (if a bug ever did, this fails loudly instead of misbehaving).
static STUB_VTABLE: VTable = VTable {
    poll_run: no_entry_poll,
    abort: no_entry_op,
    release_entry: no_entry_release,
    free: no_entry_free,
};

// The operations of a link that has no queue entry (the queue's stub, or a
// taskless cell's), which nothing may call.

unsafe fn no_entry_poll(
    _: *const Link,
    _: &mut Context<'_>,
    _: Option<&mut WorkerLocal>,
) -> Poll<()> {
    unreachable!("a link without a queue entry was run")
}

unsafe fn no_entry_op(_: *const Link) {
    unreachable!("a link without a queue entry was aborted")
}

unsafe fn no_entry_release(_: *mut Link) -> bool {
    unreachable!("a link without a queue entry was released")
}

#[cfg(not(workerpoolxt_loom))]
unsafe fn no_entry_free(_: *mut Link) {
    unreachable!("the queue's stub was freed as a cell")
}

/// The start of every cell whose slot is a `Slot<T, E>`: what the handle
/// sees of its job's cell. `repr(C)` makes it a prefix of [`TaskCell`]: the
/// same fields in the same order have the same offsets.
#[repr(C)]
struct CellHead<T, E> {
    link: Link,
    slot: Slot<T, E>,
}

impl<T: Send, E: Send> CellHead<T, E> {
    /// A cell with a slot and no task, owned by a handle alone (a
    /// submission refused before its job was built).
    const VTABLE: VTable = VTable {
        poll_run: no_entry_poll,
        abort: no_entry_op,
        release_entry: no_entry_release,
        free: Self::free,
    };

    /// # Safety
    ///
    /// `link` came from [`HandleRef::without_task`] and no owner is left.
    unsafe fn free(link: *mut Link) {
        // SAFETY: the caller's promise: the pointer is the `Box` made there.
        drop(unsafe { Box::from_raw(link.cast::<Self>()) });
    }
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

impl<B: Body> TaskCell<B>
where
    Task<B>: Send,
{
    const VTABLE: VTable = VTable {
        poll_run: Self::poll_run,
        abort: Self::abort,
        release_entry: Self::release_entry,
        free: Self::free,
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
    /// Called once, by the cell's entry, for the reference it holds.
    unsafe fn release_entry(link: *mut Link) -> bool {
        // SAFETY: the entry's reference keeps the cell alive up to this call;
        // only the state word is borrowed across it (see `release_ref`).
        let state = unsafe { &(*link.cast::<Self>()).slot.state };
        release_ref(state, ENTRY_REF)
    }

    /// # Safety
    ///
    /// `link` came from [`QueueEntry::new`] with this `B`, and no owner is
    /// left.
    unsafe fn free(link: *mut Link) {
        // SAFETY: the caller's promise: the pointer is the `Box` made in
        // `QueueEntry::new`, and nothing else can reach the cell any more.
        drop(unsafe { Box::from_raw(link.cast::<Self>()) });
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

// SAFETY: the entry owns a reference to a cell whose task is `Send` (only
// such cells are made, see `new`) and whose slot is `Sync` (atomics and a
// mutex over `Send` values); the entry is the only way to the task, and the
// handle side only reaches the slot.
unsafe impl Send for QueueEntry {}

impl QueueEntry {
    /// A job cell for `slot` and `task`: its unique entry, and the handle's
    /// side.
    ///
    /// `slot` must have been made with both [`ENTRY_REF`] and [`HANDLE_REF`]
    /// (checked).
    pub(crate) fn new<B: Body>(
        slot: SlotOf<B>,
        task: Task<B>,
        ticket: usize,
    ) -> (QueueEntry, HandleRef<B::Output, B::Error>)
    where
        Task<B>: Send,
    {
        assert!(
            slot.owned_by(ENTRY_REF | HANDLE_REF),
            "a job cell is owned by its entry and its handle"
        );
        let cell = Box::new(TaskCell {
            link: Link {
                next: AtomicPtr::new(ptr::null_mut()),
                vtable: &TaskCell::<B>::VTABLE,
                ticket,
            },
            slot,
            task: UnsafeCell::new(Some(task)),
        });
        let link = NonNull::from(Box::leak(cell)).cast::<Link>();
        let entry = QueueEntry { cell: Some(link) };
        let handle = HandleRef {
            link,
            _slot: PhantomData,
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
            // SAFETY: the entry's reference (given up once: `take`) keeps the
            // cell alive until `release_entry` returns `true`; it is then the
            // last owner and frees the cell, with the vtable of its type.
            unsafe {
                let vtable = link.as_ref().vtable;
                if (vtable.release_entry)(link.as_ptr()) {
                    (vtable.free)(link.as_ptr());
                }
            }
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

/// The handle's reference to its job's cell: a thin pointer, and the
/// [`HANDLE_REF`] bit of the slot's state.
pub(crate) struct HandleRef<T, E> {
    link: NonNull<Link>,
    /// The slot's types; `fn() -> _` keeps the handle `Unpin` whatever
    /// they are (the slot never moves: it is behind the pointer). Drop
    /// checking needs no marker: the `Drop` impl has no `may_dangle`.
    _slot: PhantomData<fn() -> (T, E)>,
}

// SAFETY: the handle side only reaches the slot, which is `Send + Sync` when
// `T` and `E` are `Send` (atomics, and a mutex over the result); the cell is
// freed by whichever owner lets go last, on whatever thread.
unsafe impl<T: Send, E: Send> Send for HandleRef<T, E> {}
// SAFETY: as for `Send`: `&HandleRef` only gives `&Slot`, which is `Sync`.
unsafe impl<T: Send, E: Send> Sync for HandleRef<T, E> {}

impl<T: Send, E: Send> HandleRef<T, E> {
    /// A cell with only a slot, owned by a handle alone (a submission refused
    /// before its job was built). `slot` must be owned by [`HANDLE_REF`]
    /// alone (checked).
    pub(crate) fn without_task(slot: Slot<T, E>) -> Self {
        assert!(
            slot.owned_by(HANDLE_REF),
            "a taskless cell is its handle's alone"
        );
        let cell = Box::new(CellHead {
            link: Link {
                next: AtomicPtr::new(ptr::null_mut()),
                vtable: &CellHead::<T, E>::VTABLE,
                ticket: usize::MAX,
            },
            slot,
        });
        HandleRef {
            link: NonNull::from(Box::leak(cell)).cast::<Link>(),
            _slot: PhantomData,
        }
    }
}

impl<T, E> HandleRef<T, E> {
    pub(crate) fn slot(&self) -> &Slot<T, E> {
        // SAFETY: the handle's reference keeps the cell alive while `self`
        // is borrowed; every cell a `HandleRef<T, E>` points to starts with a
        // `CellHead<T, E>` (a `TaskCell<B>` with `B::Output = T`,
        // `B::Error = E`, or a `CellHead` itself): `repr(C)` prefixes.
        unsafe { &self.link.cast::<CellHead<T, E>>().as_ref().slot }
    }
}

impl<T, E> Drop for HandleRef<T, E> {
    fn drop(&mut self) {
        let link = self.link.as_ptr();
        // SAFETY: the handle's reference keeps the cell alive up to
        // `release_ref`, and only the state word is borrowed across it; if it
        // was the last reference, nothing else reaches the cell, which the
        // vtable of its own type frees.
        unsafe {
            let vtable = (*link).vtable;
            let state = &(*link.cast::<CellHead<T, E>>()).slot.state;
            if release_ref(state, HANDLE_REF) {
                (vtable.free)(link);
            }
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
        assert_eq!(size_of::<crate::ResultHandle<u64>>(), 8);
        assert_eq!(size_of::<crate::JobError>(), 16);
        assert_eq!(size_of::<Option<Result<u64, crate::JobError>>>(), 16);
        assert!(size_of::<crate::handle::Slot<u64, std::convert::Infallible>>() <= 96);
        assert!(size_of::<Task<OnceFuture<Ready>>>() <= 40);
        // One allocation per job, with no `Arc` header and no mutex: 160
        // bytes, a 176-byte chunk for glibc's malloc (an `async move { i }`
        // job's cell, W5's, goes from a 192-byte chunk to 176).
        assert!(size_of::<super::TaskCell<OnceFuture<Ready>>>() <= 160);
    }
}

/// The cell's two owners letting go in either order, and a cell without a
/// task: what the `unsafe` above must get right. Cheap enough for miri
/// (`.ci/run` runs `--lib cell::` under it).
#[cfg(all(test, not(workerpoolxt_loom)))]
mod owners {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use crate::{JobError, Pool};

    /// A pool whose workers never run: the test pops and polls the job.
    fn parked() -> Pool {
        Pool::builder()
            .max_workers(1)
            .keep_idle_workers()
            .spawner(drop)
            .build()
    }

    fn run(entry: &mut super::QueueEntry) {
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(Pin::new(entry).poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn handle_goes_first() {
        let pool = parked();
        let handle = pool.submit(async { String::from("dropped unread") });
        let mut entry = pool.shared().queue.pop().expect("queued");
        drop(handle);
        run(&mut entry);
        drop(entry);
    }

    #[test]
    fn entry_goes_first() {
        let pool = parked();
        let mut handle = pool.submit(async { String::from("read") });
        let mut entry = pool.shared().queue.pop().expect("queued");
        run(&mut entry);
        drop(entry);
        assert_eq!(handle.try_take(), Some(Ok(String::from("read"))));
        drop(handle);
    }

    #[test]
    fn entry_dropped_unstarted_resolves_the_handle() {
        let pool = parked();
        let mut handle = pool.submit(async { String::from("never") });
        let entry = pool.shared().queue.pop().expect("queued");
        drop(entry);
        assert_eq!(handle.try_take(), Some(Err(JobError::Stopped)));
    }

    fn slot_owned_by(pool: &Pool, refs: u8) -> crate::handle::Slot<u32, std::convert::Infallible> {
        crate::handle::Slot::new(pool.shared().clone(), None, 0, refs)
    }

    /// The constructors refuse a slot with the wrong owners (a cell freed
    /// while an owner the slot does not know about still points to it).
    #[test]
    #[should_panic(expected = "owned by its entry and its handle")]
    fn a_job_cell_needs_both_owners() {
        let pool = parked();
        let slot = slot_owned_by(&pool, super::HANDLE_REF);
        let task = crate::task::Task::new(
            crate::task::OnceFuture::<std::future::Ready<u32>>::new(),
            Some(crate::task::OkFuture::new(std::future::ready(1u32))),
        );
        let _ = super::QueueEntry::new(slot, task, 0);
    }

    #[test]
    #[should_panic(expected = "its handle's alone")]
    fn a_taskless_cell_is_the_handles_alone() {
        let pool = parked();
        let slot = slot_owned_by(&pool, super::ENTRY_REF | super::HANDLE_REF);
        let _ = super::HandleRef::without_task(slot);
    }

    #[test]
    fn a_refused_submit_has_a_cell_of_its_own() {
        let pool = parked();
        drop(pool.stop());
        let mut handle = pool.submit(async { String::from("refused") });
        assert_eq!(handle.try_take(), Some(Err(JobError::Stopped)));
        drop(handle);
        let unread = pool.submit(async { 1 });
        drop(unread);
    }
}

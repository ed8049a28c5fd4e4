//! A job's header, its task and then its result, in one allocation that
//! starts with the `Link` the queue links. The crate's `unsafe` is here, in
//! `src/queue.rs` (the links), in the header's lock bit and waker union
//! (`src/header.rs`), and in the attempt's store (`src/attempt.rs`, and the
//! `attempt!` macro of `src/task.rs` that reaches it).
//!
//! A submitted job needs three things that live for different spans: the
//! header (state, times, the handle's waker; read by the handle, possibly much
//! later), the task (the body, its attempts, timers; polled by one worker,
//! dropped when the job ends), and the result (written when the task is
//! gone, read once by the handle). The cell holds the header, then the task
//! and the result in the same bytes, one after the other, as `async-task`
//! does with a future and its output: a submit costs one allocation, a
//! queued job no more than its task, and the allocation is usually freed by
//! the thread that made it (the handle's).
//!
//! The cell has exactly two owners, its [`QueueEntry`] and its
//! [`ResultHandle`](crate::ResultHandle) (through a [`HandleRef`]): two bits
//! of the header's state word, not a reference count, and no `Arc` header. Each
//! owner clears its bit once; the one that clears the last frees the cell.
//!
//! The task is reached only through the cell's [`QueueEntry`], which is
//! unique (made once per job, not `Clone`): that is what makes the stage's
//! `UnsafeCell` sound. The entry drops the task before it stores a result in
//! its place and publishes it (`STORED` and `COMPLETE`, set in one step);
//! from then on only the handle reads the result, once (`TAKEN`). Results that carry nothing
//! (`Cancelled`, `TimedOut`, ...) are not stored at all: the header's state
//! word names them, which lets a handle resolve while its task still runs (a
//! draining blocking closure) or without a task (a refused submit).
//!
//! The entry is a thin pointer to the cell's [`Link`], whose vtable knows
//! the cell's type; the queue links cells through it, so a queued job costs
//! the queue nothing but that pointer. The handle is a thin pointer too: it
//! reaches the header through [`CellHead`], the cell's prefix, whose layout is
//! the same for every job, and the result through the offset in the vtable.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll};

use crate::body::Body;
use crate::error::{JobError, Panic};
use crate::header::Header;
use crate::queue::{Linked, Node};
use crate::state::{
    acquire_cancel_ref, release_cancel_ref, release_handle_ref, release_ref, ENTRY_REF, HANDLE_REF,
};
use crate::task::{Finished, Task, WorkerLocal};

/// What every job cell starts with: the queue's node and the cell's
/// type-erased operations.
///
/// The queue (`src/queue.rs`) links cells through `node`; a cell is reached
/// through a thin `*mut Link` to its start, which `repr(C)` here and on
/// [`TaskCell`] makes the start of the whole cell (and the node the start of
/// the link).
#[repr(C)]
pub(crate) struct Link {
    node: Node,
    vtable: &'static VTable,
}

impl Link {
    /// An unlinked cell start with the operations of `vtable`.
    fn new(vtable: &'static VTable) -> Link {
        Link {
            node: Node::new(),
            vtable,
        }
    }
}

/// The operations of one cell type.
struct VTable {
    /// Polls the task; once it is done, drops it and stores its result.
    poll_run: unsafe fn(*const Link, &mut Context<'_>, &mut WorkerLocal) -> Poll<()>,
    /// Ends the task without polling it again: drops it, stores its result
    /// (`Panicked` with the fault given, if its job had not started).
    abort: unsafe fn(*const Link, Option<Panic>),
    /// Frees the cell (its last owner let go).
    free: unsafe fn(*mut Link),
    /// Where the stored result starts, from the start of the cell.
    result_offset: usize,
}

/// A cell with a header and no task, owned by a handle alone (a submission
/// refused before its job was built). Its result is never stored (the state
/// word names it).
static TASKLESS_VTABLE: VTable = VTable {
    poll_run: no_entry_poll,
    abort: no_entry_op,
    free: free_taskless,
    result_offset: usize::MAX,
};

// The operations of a taskless cell that need a queue entry, which it never
// has: nothing may call them.

unsafe fn no_entry_poll(_: *const Link, _: &mut Context<'_>, _: &mut WorkerLocal) -> Poll<()> {
    unreachable!("a link without a queue entry was run")
}

unsafe fn no_entry_op(_: *const Link, _: Option<Panic>) {
    unreachable!("a link without a queue entry was aborted")
}

/// # Safety
///
/// `link` came from [`HandleRef::without_task`] and no owner is left.
unsafe fn free_taskless(link: *mut Link) {
    // SAFETY: the caller's promise: the pointer is the `Box` made there.
    drop(unsafe { Box::from_raw(link.cast::<CellHead>()) });
}

/// The start of every cell: what the handle sees of its job's cell.
/// `repr(C)` makes it a prefix of [`TaskCell`].
#[repr(C)]
struct CellHead {
    link: Link,
    header: Header,
}

/// The result of a job of body `B`.
type ResultOf<B> = Result<<B as Body>::Output, JobError<<B as Body>::Error>>;

/// The task until it is done, then its result (if it is stored: the header's
/// `STORED` bit), in the same bytes (`repr(C)`: both at offset 0).
#[repr(C)]
union Stage<B: Body> {
    task: ManuallyDrop<Task<B>>,
    result: ManuallyDrop<ResultOf<B>>,
}

/// The header of a job and its stage.
#[repr(C)]
struct TaskCell<B: Body> {
    /// First, so that a pointer to the cell is a pointer to its link.
    head: CellHead,
    /// The task: touched only by the cell's unique `QueueEntry`, until it
    /// drops the task. Then the result, if stored: written by the entry
    /// before `COMPLETE`, read by the handle after it.
    stage: UnsafeCell<Stage<B>>,
}

impl<B: Body> TaskCell<B>
where
    Task<B>: Send,
{
    const VTABLE: VTable = VTable {
        poll_run: Self::poll_run,
        abort: Self::abort,
        free: Self::free,
        result_offset: std::mem::offset_of!(TaskCell<B>, stage),
    };

    /// The cell `link` starts.
    ///
    /// # Safety
    ///
    /// `link` is the link of a live `TaskCell<B>` (made by
    /// [`QueueEntry::new`] with this `B`, which the vtable guarantees).
    unsafe fn from_link<'a>(link: *const Link) -> &'a Self {
        // SAFETY: the caller's promise; `repr(C)` puts `link` at offset 0,
        // and the pointer came from `Box::leak` of the whole cell.
        unsafe { &*link.cast::<Self>() }
    }

    /// The task, pinned.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to the stage (it is the cell's
    /// entry), and the task was not dropped yet.
    #[allow(clippy::mut_from_ref)]
    unsafe fn task(&self) -> Pin<&mut Task<B>> {
        // SAFETY: exclusive access and a live task are the caller's promise.
        // The stage sits inside the boxed cell, which never moves while the
        // cell is alive, and the task is only ever dropped in place
        // (`finish`), never moved out: the pinning guarantee holds.
        unsafe { Pin::new_unchecked(&mut *(*self.stage.get()).task) }
    }

    /// Drops the task in place (containing a panic of its destructor: the
    /// job's outcome has been decided by then), then publishes its result
    /// (stored in the task's place, unless it carries nothing), if it was
    /// not published already.
    ///
    /// # Safety
    ///
    /// As for [`task`](Self::task); the task is not used again.
    unsafe fn finish(&self, finished: Option<Finished<B>>) {
        let stage = self.stage.get();
        // SAFETY: the caller's promise: the entry owns the live task, which
        // is dropped here once.
        let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
            ManuallyDrop::drop(&mut (*stage).task);
        }));
        let Some(f) = finished else { return };
        let code = f.code();
        if code.is_none() {
            // SAFETY: the task is gone; the stage is the entry's until
            // `publish` sets `COMPLETE`, after which only the handle reads
            // the result (once, `TAKEN`) or the last owner drops it (`free`).
            unsafe { ptr::addr_of_mut!((*stage).result).write(ManuallyDrop::new(f.result)) };
        }
        self.head.header.publish(code, f.record, f.how, f.leaves);
    }

    /// # Safety
    ///
    /// Only the cell's `QueueEntry` may call this (through the vtable), while
    /// the task is alive, and never concurrently with `abort`.
    unsafe fn poll_run(
        link: *const Link,
        cx: &mut Context<'_>,
        local: &mut WorkerLocal,
    ) -> Poll<()> {
        // SAFETY: the entry holds a reference, so the cell is alive; it is the
        // only caller, so it has exclusive access to the task.
        let cell = unsafe { Self::from_link(link) };
        let task = unsafe { cell.task() };
        match task.poll_task(&cell.head.header, cx, local) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(finished) => {
                // SAFETY: as above; the entry lets go right after.
                unsafe { cell.finish(finished) };
                Poll::Ready(())
            }
        }
    }

    /// # Safety
    ///
    /// As for [`poll_run`](Self::poll_run).
    unsafe fn abort(link: *const Link, fault: Option<Panic>) {
        // SAFETY: as in `poll_run`.
        let cell = unsafe { Self::from_link(link) };
        let finished = unsafe { cell.task() }.abort(&cell.head.header, fault);
        // SAFETY: as in `poll_run`.
        unsafe { cell.finish(finished) };
    }

    /// # Safety
    ///
    /// `link` came from [`QueueEntry::new`] with this `B`, the task was
    /// dropped, and no owner is left.
    unsafe fn free(link: *mut Link) {
        // SAFETY: the caller's promise: the pointer is the `Box` made in
        // `QueueEntry::new`, and nothing else can reach the cell any more.
        let mut cell = unsafe { Box::from_raw(link.cast::<Self>()) };
        if cell.head.header.stored_and_untaken() {
            // SAFETY: a stored result that the handle did not take, dropped
            // once, here (the task was dropped before it was stored).
            let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
                ManuallyDrop::drop(&mut cell.stage.get_mut().result);
            }));
        }
        drop(cell);
    }
}

/// A job in the queue, then in its worker's hands: the only way to its task.
///
/// Running it ([`poll_in`](Self::poll_in)) runs the job; dropping it before
/// it is done ends the job without running it further (its handle resolves
/// `Stopped` if nothing else resolved it). It holds one reference to the
/// cell, as a thin pointer, so that the queue can link the cell itself.
pub(crate) struct QueueEntry {
    /// `None` once the task is done (the entry then gave its reference up).
    cell: Option<NonNull<Link>>,
}

// SAFETY: the entry owns a reference to a cell whose task is `Send` (only
// such cells are made, see `new`) and whose header is `Sync` (atomics and a
// lock over a waker); the entry is the only way to the task, and the handle
// side only reaches the header and, once published, the result (`Send`).
unsafe impl Send for QueueEntry {}

impl QueueEntry {
    /// A job cell for `header` and `task`: its unique entry, and the handle's
    /// side.
    ///
    /// `header` must have been made with both [`ENTRY_REF`] and [`HANDLE_REF`]
    /// (checked).
    pub(crate) fn new<B: Body>(
        header: Header,
        task: Task<B>,
    ) -> (QueueEntry, HandleRef<B::Output, B::Error>)
    where
        Task<B>: Send,
    {
        assert!(
            header.owned_by(ENTRY_REF | HANDLE_REF),
            "a job cell is owned by its entry and its handle"
        );
        let cell = Box::new(TaskCell {
            head: CellHead {
                link: Link::new(&TaskCell::<B>::VTABLE),
                header,
            },
            stage: UnsafeCell::new(Stage {
                task: ManuallyDrop::new(task),
            }),
        });
        let link = NonNull::from(Box::leak(cell)).cast::<Link>();
        let entry = QueueEntry { cell: Some(link) };
        let handle = HandleRef {
            link,
            _result: PhantomData,
        };
        (entry, handle)
    }

    /// The low 32 bits of the job's position in submission order (see
    /// `Core::full_ticket`).
    /// Asked only of a queued entry, which holds its cell.
    pub(crate) fn ticket(&self) -> u32 {
        let link = self.cell.expect("a queued entry holds its cell");
        // SAFETY: the entry's reference keeps the cell alive.
        unsafe { head(link.as_ptr()) }.header.ticket()
    }

    /// The job's header (a header outlives the task: a handle may read it
    /// after the entry let go). Asked only of an entry that holds its cell.
    pub(crate) fn header(&self) -> &Header {
        let link = self
            .cell
            .expect("a job's entry holds its cell until it is done");
        // SAFETY: the entry's reference keeps the cell alive while `self` is
        // borrowed.
        unsafe { &head(link.as_ptr()).header }
    }

    /// Whether the task is done and the entry gave its reference up.
    pub(crate) fn is_done(&self) -> bool {
        self.cell.is_none()
    }

    /// Gives the reference up, after the task is done or aborted.
    fn release(&mut self) {
        if let Some(link) = self.cell.take() {
            // SAFETY: the entry's reference (given up once: `take`) keeps the
            // cell alive until `release_ref` returns `true`, and only the
            // state word is borrowed across it; the entry is then the last
            // owner and frees the cell, with the vtable of its type.
            unsafe {
                let vtable = link.as_ref().vtable;
                if release_ref(&head(link.as_ptr()).header.state, ENTRY_REF) {
                    (vtable.free)(link.as_ptr());
                }
            }
        }
    }

    /// Runs the job as far as it can go, for a worker that keeps `local`
    /// from one poll to the next (and from job to job).
    pub(crate) fn poll_in(&mut self, cx: &mut Context<'_>, local: &mut WorkerLocal) -> Poll<()> {
        let Some(link) = self.cell else {
            return Poll::Ready(());
        };
        // SAFETY: `self` is the cell's unique entry (alive: it holds a
        // reference, and the task lives until the entry lets go), and `&mut
        // self` excludes a concurrent `abort` (which only runs in `drop`).
        let polled = unsafe { (link.as_ref().vtable.poll_run)(link.as_ptr(), cx, local) };
        if polled.is_ready() {
            // The worker stops listing the job before the cell can be freed
            // (`src/view.rs`, rule 1).
            local.let_go();
            self.release();
        }
        polled
    }
}

impl QueueEntry {
    /// Ends the job without running it further, as dropping the entry does,
    /// but a job that had not started resolves `Panicked` with `fault`
    /// instead of `Stopped`: the pool could not run it because user code it
    /// calls on the job's behalf (the spawner) panicked.
    pub(crate) fn fail(mut self, fault: Panic) {
        self.end(Some(fault));
    }

    fn end(&mut self, fault: Option<Panic>) {
        if let Some(link) = self.cell {
            // SAFETY: `self` is the cell's unique entry, and its task is
            // alive (the entry lets go as soon as it is done); the entry lets
            // go right after.
            unsafe { (link.as_ref().vtable.abort)(link.as_ptr(), fault) };
            self.release();
        }
    }
}

// SAFETY: the node is the first field of the cell's `Link` (`repr(C)`),
// which is the start of the cell (`repr(C)` on `TaskCell`): a node pointer
// and a link pointer are the same address. The cell stays put while the
// entry's reference is with the queue (the reference keeps it alive, and
// nothing else moves or frees it), and the queue alone writes the node.
unsafe impl Linked for QueueEntry {
    fn into_node(self) -> NonNull<Node> {
        let this = std::mem::ManuallyDrop::new(self);
        this.cell
            .expect("only a job that has not run is queued")
            .cast()
    }

    unsafe fn from_node(node: NonNull<Node>) -> QueueEntry {
        QueueEntry {
            cell: Some(node.cast()),
        }
    }
}

impl Drop for QueueEntry {
    fn drop(&mut self) {
        self.end(None);
    }
}

/// A queue entry with a worker's state kept across polls, polled as a
/// future: how tests drive a job by hand.
#[cfg(all(test, workerpoolxt_loom))]
pub(crate) struct Driven {
    entry: QueueEntry,
    local: WorkerLocal,
}

#[cfg(all(test, workerpoolxt_loom))]
impl Driven {
    pub(crate) fn new(entry: QueueEntry) -> Self {
        Driven {
            entry,
            local: WorkerLocal::default(),
        }
    }
}

#[cfg(all(test, workerpoolxt_loom))]
impl std::future::Future for Driven {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.entry.poll_in(cx, &mut this.local)
    }
}

/// The head of the cell `link` starts.
///
/// # Safety
///
/// `link` starts a live cell (every cell starts with a [`CellHead`]), and
/// the reference does not outlive the caller's reference to the cell.
unsafe fn head<'a>(link: *const Link) -> &'a CellHead {
    // SAFETY: the caller's promise; `repr(C)` prefixes.
    unsafe { &*link.cast::<CellHead>() }
}

/// Calls `f` with the header of each job queued in `queue`, oldest first,
/// while the queue's consumers wait (see `Queue::visit`).
#[cfg(not(workerpoolxt_loom))]
pub(crate) fn visit_headers(queue: &crate::queue::Queue<QueueEntry>, mut f: impl FnMut(&Header)) {
    // SAFETY: `visit` gives the node of a queued entry, and keeps it queued
    // for the call; the borrow handed to `f` ends with the call.
    queue.visit(|node| f(unsafe { header_of_node(node) }));
}

/// The header of the job cell whose queue node is `node`.
///
/// # Safety
///
/// `node` is the node of a queued `QueueEntry` (which starts its cell: see
/// the `Linked` impl), and the reference does not outlive the queue's hold
/// on the entry (`Queue::visit`'s call): the entry's reference keeps the
/// cell alive until it is popped.
#[cfg(not(workerpoolxt_loom))]
unsafe fn header_of_node<'a>(node: NonNull<Node>) -> &'a Header {
    // SAFETY: the caller's promise; the node starts the cell's `Link`,
    // which starts its `CellHead` (`repr(C)`).
    unsafe { &head(node.as_ptr().cast::<Link>()).header }
}

/// The handle's reference to its job's cell: a thin pointer, and the
/// [`HANDLE_REF`] bit of the header's state.
pub(crate) struct HandleRef<T, E> {
    link: NonNull<Link>,
    /// The result's types; `fn() -> _` keeps the handle `Unpin` whatever
    /// they are (the cell never moves: it is behind the pointer). Drop
    /// checking needs no marker: the `Drop` impl has no `may_dangle`.
    _result: PhantomData<fn() -> (T, E)>,
}

// SAFETY: the handle side reaches the header, which is `Send + Sync`, and
// reads the result (`T`, `E`: `Send`) once, through `&mut`; the cell is
// freed by whichever owner lets go last, on whatever thread.
unsafe impl<T: Send, E: Send> Send for HandleRef<T, E> {}
// SAFETY: `&HandleRef` only gives `&Header`, which is `Sync`; the result is
// read only through the handle's `&mut` methods.
unsafe impl<T: Send, E: Send> Sync for HandleRef<T, E> {}

impl<T: Send, E: Send> HandleRef<T, E> {
    /// A cell with only a header, owned by a handle alone (a submission refused
    /// before its job was built); `header` must be owned by [`HANDLE_REF`]
    /// alone (checked), and complete without a stored result.
    pub(crate) fn without_task(header: Header) -> Self {
        assert!(
            header.owned_by(HANDLE_REF),
            "a taskless cell is its handle's alone"
        );
        let cell = Box::new(CellHead {
            link: Link::new(&TASKLESS_VTABLE),
            header,
        });
        HandleRef {
            link: NonNull::from(Box::leak(cell)).cast::<Link>(),
            _result: PhantomData,
        }
    }
}

impl<T, E> HandleRef<T, E> {
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the handle's reference keeps the cell alive while `self`
        // is borrowed.
        unsafe { &head(self.link.as_ptr()).header }
    }

    /// Moves the stored result out of the cell.
    ///
    /// # Safety
    ///
    /// The header is complete with a stored result (`STORED`, Acquire-read),
    /// not taken, and this is called once (the caller marks it `TAKEN`).
    pub(crate) unsafe fn read_stored(&self) -> Result<T, JobError<E>> {
        // SAFETY: a stored result sits at the offset the cell's vtable gives,
        // and has the handle's types: the cell was made by `QueueEntry::new`
        // for a body with `Output = T`, `Error = E` (a taskless cell never
        // stores one). It was written before `COMPLETE` and is read once.
        unsafe {
            let link = self.link.as_ptr();
            let offset = (*link).vtable.result_offset;
            ptr::read(
                link.cast::<u8>()
                    .add(offset)
                    .cast::<Result<T, JobError<E>>>(),
            )
        }
    }
}

impl<T: Send, E: Send> HandleRef<T, E> {
    /// A new cancel reference to the cell.
    pub(crate) fn cancel_ref(&self) -> CancelRef {
        CancelRef::new(self.link)
    }
}

/// A `CancelHandle`'s reference to a job's cell: a thin pointer, and one
/// count of the header's [`CANCEL_REF`] bits. It reaches the header only
/// (never the result), whatever the job's types.
pub(crate) struct CancelRef {
    link: NonNull<Link>,
}

// SAFETY: it only reaches the header, which is `Send + Sync`; whichever
// owner lets go last frees the cell, on whatever thread, and the cells it
// is made for (`HandleRef::cancel_ref`) hold `Send` results.
unsafe impl Send for CancelRef {}
// SAFETY: `&CancelRef` gives `&Header` only, which is `Sync`.
unsafe impl Sync for CancelRef {}

impl CancelRef {
    fn new(link: NonNull<Link>) -> CancelRef {
        // SAFETY: the caller owns a reference, which keeps the cell alive.
        acquire_cancel_ref(unsafe { &head(link.as_ptr()).header.state });
        CancelRef { link }
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: this reference keeps the cell alive while `self` is
        // borrowed.
        unsafe { &head(self.link.as_ptr()).header }
    }
}

impl Clone for CancelRef {
    fn clone(&self) -> CancelRef {
        CancelRef::new(self.link)
    }
}

impl Drop for CancelRef {
    fn drop(&mut self) {
        let link = self.link.as_ptr();
        // SAFETY: as `HandleRef`'s drop: only the state word is borrowed
        // across the release; the last owner frees the cell with the
        // vtable of its own type (the entry let go already: its task is
        // dropped).
        unsafe {
            let vtable = (*link).vtable;
            if release_cancel_ref(&head(link).header.state) {
                (vtable.free)(link);
            }
        }
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
            if release_handle_ref(&head(link).header.state) {
                (vtable.free)(link);
            }
        }
    }
}

/// What a queued job costs: the memory a queued job takes is a promise of
/// the crate (README), so a field that grows these sizes shows here first. (The
/// `tracing` feature adds a span to every task.)
#[cfg(all(test, target_pointer_width = "64", not(feature = "tracing")))]
mod sizes {
    use std::mem::size_of;

    use crate::body::OnceFuture;
    use crate::task::Task;

    type Ready = std::future::Ready<u64>;

    /// The size of the cell of a job submitted as `fut`.
    fn cell_of<F>(_: &F) -> usize
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        size_of::<super::TaskCell<OnceFuture<F>>>()
    }

    #[test]
    fn a_queued_plain_job_stays_small() {
        assert_eq!(size_of::<super::QueueEntry>(), 8);
        // The cell's pointer and the job's id.
        assert_eq!(size_of::<crate::ResultHandle<u64>>(), 16);
        assert_eq!(size_of::<crate::JobError>(), 16);
        assert_eq!(size_of::<super::Link>(), 16);
        // State and ticket, pool, name, submit time, the handle's waker.
        assert_eq!(size_of::<crate::header::Header>(), 48);
        assert!(size_of::<Task<OnceFuture<Ready>>>() <= 40);
        // One allocation per job, with no `Arc` header, no mutex, and the
        // result where the task was: 104 bytes, a 112-byte chunk for glibc's
        // malloc. A job that captures one number, `async move { i }`:
        assert!(size_of::<super::TaskCell<OnceFuture<Ready>>>() <= 104);
        let i = 7u64;
        let w5 = cell_of(&async move { i });
        assert!(
            (size_of::<super::CellHead>() + 16..=104).contains(&w5),
            "{w5}"
        );
    }
}

/// The cell's two owners letting go in either order, and a cell without a
/// task: what the `unsafe` above must get right. Cheap enough for miri
/// (`.ci/run` runs `--lib cell::` under it).
#[cfg(all(test, not(workerpoolxt_loom)))]
mod owners {
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
        let mut local = crate::task::WorkerLocal::default();
        assert_eq!(entry.poll_in(&mut cx, &mut local), Poll::Ready(()));
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

    /// A cancel handle owns the cell as the other two do: when it lets go
    /// last, it frees the cell and the result nobody took; when the handle
    /// goes last after it, the handle does.
    #[test]
    fn a_cancel_handle_can_be_the_last_owner() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        /// Counts its drops: the untaken result must be dropped once.
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }

        let pool = parked();
        let drops = Arc::new(AtomicUsize::new(0));
        let out = Counted(drops.clone());
        let handle = pool.submit(async move { out });
        let cancel = handle.cancel_handle();
        let clone = cancel.clone();
        let mut entry = pool.shared().queue.pop().expect("queued");
        drop(handle);
        run(&mut entry);
        drop(entry);
        assert!(cancel.is_finished());
        drop(cancel);
        clone.cancel(); // complete: nothing changes
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "freed while a cancel handle lives"
        );
        drop(clone);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the last owner frees the result"
        );

        let mut handle = pool.submit(async { String::from("read") });
        let cancel = handle.cancel_handle();
        let mut entry = pool.shared().queue.pop().expect("queued");
        run(&mut entry);
        drop(entry);
        drop(cancel);
        assert_eq!(handle.try_take(), Some(Ok(String::from("read"))));
    }

    /// A cancel handle's cancel of a queued job resolves its handle at once,
    /// wherever the handle is.
    #[test]
    fn a_cancel_handle_cancels_a_queued_job() {
        let pool = parked();
        let mut handle = pool.submit(async { 1 });
        let cancel = handle.cancel_handle();
        assert!(!cancel.is_finished());
        std::thread::spawn(move || cancel.cancel()).join().unwrap();
        assert_eq!(handle.try_take(), Some(Err(JobError::Cancelled)));
        let entry = pool.shared().queue.pop().expect("still queued");
        drop(entry);
    }

    #[test]
    fn entry_dropped_unstarted_resolves_the_handle() {
        let pool = parked();
        let mut handle = pool.submit(async { String::from("never") });
        let entry = pool.shared().queue.pop().expect("queued");
        drop(entry);
        assert_eq!(handle.try_take(), Some(Err(JobError::Stopped)));
    }

    /// An error that carries a value is stored like a value: freed whether
    /// the handle reads it or not.
    #[test]
    fn a_stored_error_is_freed_read_or_unread() {
        let pool = parked();
        let job = || crate::Job::new(|_ctx| async { Err::<u32, String>(String::from("failed")) });
        let unread = pool.submit_job(job());
        let mut read = pool.submit_job(job());
        for _ in 0..2 {
            run(&mut pool.shared().queue.pop().expect("queued"));
        }
        drop(unread);
        let failed = JobError::Failed(String::from("failed"));
        assert_eq!(read.try_take(), Some(Err(failed)));
    }

    /// A result that carries nothing is named by the state word: the task's
    /// place is never written, and the handle still gets the outcome.
    #[test]
    fn a_running_job_cancelled_resolves_without_a_stored_result() {
        let pool = parked();
        let mut handle = pool.submit(async {
            std::future::pending::<()>().await;
            String::from("never")
        });
        let mut entry = pool.shared().queue.pop().expect("queued");
        let mut cx = Context::from_waker(Waker::noop());
        let mut local = crate::task::WorkerLocal::default();
        assert_eq!(entry.poll_in(&mut cx, &mut local), Poll::Pending);
        handle.cancel();
        assert_eq!(entry.poll_in(&mut cx, &mut local), Poll::Ready(()));
        drop(entry);
        assert_eq!(handle.try_take(), Some(Err(JobError::Cancelled)));
    }

    /// A cancel of a running job wakes the worker waiting in it, and no
    /// other (`src/watch.rs`): the other running job is not polled for it.
    #[test]
    fn a_cancel_wakes_only_the_worker_waiting_in_its_job() {
        let pool = parked();
        let job = || async {
            std::future::pending::<()>().await;
            String::from("never")
        };
        let (mut cancelled, other) = (pool.submit(job()), pool.submit(job()));
        let mut workers: Vec<_> = (0..2)
            .map(|_| {
                let entry = pool.shared().queue.pop().expect("queued");
                let local = crate::task::WorkerLocal::default();
                (entry, local, crate::testing::WakeCount::new())
            })
            .collect();
        for (entry, local, (_, waker)) in &mut workers {
            let mut cx = Context::from_waker(waker);
            assert_eq!(entry.poll_in(&mut cx, local), Poll::Pending);
        }
        cancelled.cancel();
        let woken: Vec<usize> = workers.iter().map(|w| w.2 .0.get()).collect();
        assert_eq!(woken, [1, 0], "only the cancelled job's worker is woken");
        let (entry, local, _) = &mut workers[0];
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(entry.poll_in(&mut cx, local), Poll::Ready(()));
        assert_eq!(cancelled.try_take(), Some(Err(JobError::Cancelled)));
        assert!(!other.is_finished());
        drop(pool.stop());
    }

    fn header_owned_by(pool: &Pool, refs: u32) -> crate::header::Header {
        crate::header::Header::new(pool.shared().core().clone(), None, 0, 0, refs)
    }

    /// The constructors refuse a header with the wrong owners (a cell freed
    /// while an owner the header does not know about still points to it).
    #[test]
    #[should_panic(expected = "owned by its entry and its handle")]
    fn a_job_cell_needs_both_owners() {
        let pool = parked();
        let header = header_owned_by(&pool, super::HANDLE_REF);
        let task = crate::task::Task::new(
            crate::body::OnceFuture::<std::future::Ready<u32>>::new(),
            Some(crate::body::OkFuture::new(std::future::ready(1u32))),
        );
        let _ = super::QueueEntry::new(header, task);
    }

    #[test]
    #[should_panic(expected = "its handle's alone")]
    fn a_taskless_cell_is_the_handles_alone() {
        let pool = parked();
        let header = header_owned_by(&pool, super::ENTRY_REF | super::HANDLE_REF);
        let _ = super::HandleRef::<u32, std::convert::Infallible>::without_task(header);
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

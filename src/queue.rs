//! An intrusive, unbounded, closable MPMC FIFO.
//!
//! The queue links items through a [`Node`] each item carries at a stable
//! address (a job's cell starts with one, `src/cell.rs`), instead of
//! copying them into blocks of its own: a push is one CAS on the tail and
//! one store, it allocates nothing, and a consumer that empties the queue
//! frees nothing. Items are handed over as [`Linked`] values, which give
//! their node to the queue on push and take it back on pop.
//!
//! This is Dmitry Vyukov's intrusive MPSC queue with two additions:
//! - **many consumers**: pops take a tiny spin lock (`popping`), held for a
//!   handful of instructions; pushes take no lock.
//! - **close**: the tail pointer carries a `CLOSED` tag bit. Producers only
//!   swing an untagged tail, so once the tag is set no push succeeds, and a
//!   consumer that drains a closed queue sees every item that was pushed.
//!
//! The stub node is the queue's own (a plain [`Node`] on the heap), never
//! handed out.
//!
//! Emptiness is read without touching any node but the stub (a popped item
//! may be freed at any time): the queue is empty when the consumers' end is
//! the stub and the stub has no successor. Producers publish the link with a
//! `SeqCst` store, and [`is_empty`](Queue::is_empty) reads with `SeqCst`
//! loads, so a thread that announces something (`SeqCst`) and then looks at
//! the queue, against a producer that pushes and then looks at that
//! announcement, cannot both miss each other (the wake-up protocol,
//! `src/scheduler.rs`, rests on this).
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::sync::Padded;

/// The link every queued item carries: the next item (written by the queue
/// only).
#[derive(Debug)]
pub(crate) struct Node {
    next: AtomicPtr<Node>,
}

impl Node {
    pub(crate) const fn new() -> Node {
        Node {
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// An item that the queue can link.
///
/// # Safety
///
/// [`into_node`](Self::into_node) gives up the item for a pointer to a
/// [`Node`] that stays valid, and that nothing but the queue touches, until
/// [`from_node`](Self::from_node) takes the item back from that pointer
/// (once).
pub(crate) unsafe trait Linked: Sized {
    fn into_node(self) -> NonNull<Node>;

    /// # Safety
    ///
    /// `node` came from [`into_node`](Self::into_node) of this type and is
    /// taken back once.
    unsafe fn from_node(node: NonNull<Node>) -> Self;
}

/// Takes an item back from a node the queue held.
///
/// # Safety
///
/// As for [`Linked::from_node`]; `node` is not null.
unsafe fn take_back<T: Linked>(node: *mut Node) -> T {
    // SAFETY: the caller's promise.
    unsafe { T::from_node(NonNull::new_unchecked(node)) }
}

/// The tag bit of a closed queue's tail.
const CLOSED: usize = 1;

fn is_tagged(p: *mut Node) -> bool {
    p.addr() & CLOSED != 0
}

fn untag(p: *mut Node) -> *mut Node {
    p.map_addr(|a| a & !CLOSED)
}

fn tag(p: *mut Node) -> *mut Node {
    p.map_addr(|a| a | CLOSED)
}

/// Why a pop returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PopError {
    /// Nothing is queued (or a push has not linked its node yet; that
    /// producer wakes a worker once it has).
    Empty,
}

/// The consumers' end, on its own cache line.
struct Head {
    /// Held by the one consumer that is popping.
    popping: AtomicBool,
    /// The next node to hand out, or the stub. Written under `popping`; read
    /// without it only to compare with the stub (never dereferenced then).
    node: AtomicPtr<Node>,
    /// Entries handed out so far, in FIFO order. Written under `popping`
    /// (a plain store, on the line the pop has just taken anyway), read
    /// anywhere.
    pops: AtomicUsize,
}

pub(crate) struct Queue<T: Linked> {
    head: Padded<Head>,
    /// The last node, tagged `CLOSED` once the queue is closed.
    tail: Padded<AtomicPtr<Node>>,
    /// The queue's own node: where the consumers' end rests when the queue is
    /// empty. On the heap, so its address stays put when the queue moves;
    /// held as a raw pointer (from `Box::into_raw`, freed in `drop`) because
    /// the queue's atomics point at it too.
    stub: NonNull<Node>,
    /// The queue owns the items it links.
    items: PhantomData<T>,
}

// SAFETY: the queue holds the nodes of items it owns (`T: Send`); `head.node`
// is only dereferenced under `popping`, and `tail` only through atomics. The
// stub is owned by the queue and only reached through atomics.
unsafe impl<T: Linked + Send> Send for Queue<T> {}
// SAFETY: as above: every shared access goes through atomics, and the one
// non-atomic step (taking a node) is serialised by `popping`; items move
// between threads only by value (`T: Send`).
unsafe impl<T: Linked + Send> Sync for Queue<T> {}

impl<T: Linked> Queue<T> {
    pub(crate) fn unbounded() -> Queue<T> {
        let stub = NonNull::from(Box::leak(Box::new(Node::new())));
        let stub_ptr = stub.as_ptr();
        Queue {
            head: Padded(Head {
                popping: AtomicBool::new(false),
                node: AtomicPtr::new(stub_ptr),
                pops: AtomicUsize::new(0),
            }),
            tail: Padded(AtomicPtr::new(stub_ptr)),
            stub,
            items: PhantomData,
        }
    }

    fn stub(&self) -> *mut Node {
        self.stub.as_ptr()
    }

    /// Queues `item`; gives it back if the queue is closed. `Ok(true)` if
    /// the queue was empty (nothing was queued before this one).
    pub(crate) fn push(&self, item: T) -> Result<bool, T> {
        let node = item.into_node().as_ptr();
        // SAFETY: `node` is the live node of the item the queue now holds.
        unsafe { (*node).next.store(ptr::null_mut(), Ordering::Relaxed) };
        match self.link(node) {
            Ok(prev) => Ok(prev == self.stub()),
            // SAFETY: `into_node` made `node`, and `link` did not queue it.
            Err(node) => Err(unsafe { take_back(node) }),
        }
    }

    /// Appends `node` (its `next` is null), unless the queue is closed;
    /// returns the node it was linked behind.
    fn link(&self, node: *mut Node) -> Result<*mut Node, *mut Node> {
        let mut tail = self.tail.load(Ordering::Acquire);
        loop {
            if is_tagged(tail) {
                return Err(node);
            }
            match self
                .tail
                .compare_exchange_weak(tail, node, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => tail = actual,
            }
        }
        // SAFETY: `tail` was the last node: a queued item's, which no
        // consumer can pop (and so free) before this link makes `node` reachable
        // (a consumer takes the last node only once its `next` is set, see
        // `pop`), or the stub, which the queue owns. `SeqCst`: see the module
        // docs (the store is ordered before the producer reads `idle`).
        unsafe { (*tail).next.store(node, Ordering::SeqCst) };
        Ok(tail)
    }

    /// Puts the stub back at the tail, keeping the `CLOSED` tag. Only called
    /// under `popping`, when the stub is not in the queue.
    fn relink_stub(&self) {
        let stub = self.stub();
        // SAFETY: the stub is the queue's; no one else writes its `next`
        // while it is out of the queue.
        unsafe { (*stub).next.store(ptr::null_mut(), Ordering::Relaxed) };
        let mut tail = self.tail.load(Ordering::Acquire);
        loop {
            let new = if is_tagged(tail) { tag(stub) } else { stub };
            match self
                .tail
                .compare_exchange_weak(tail, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => tail = actual,
            }
        }
        // SAFETY: the previous tail is a queued node that cannot be taken
        // before its `next` is set (the caller's head node, or a node a push
        // has not linked yet and so unreachable), as in `link`.
        unsafe { (*untag(tail)).next.store(stub, Ordering::SeqCst) };
    }

    /// Takes the oldest item.
    ///
    /// A push that has swung the tail but not linked its node yet (its
    /// thread preempted between the two steps) makes the items behind it
    /// invisible for that instant: `pop` waits it out, spinning, since the
    /// producer is about to finish. That is why pushing never blocks on a
    /// consumer, and popping rarely waits on a producer.
    pub(crate) fn pop(&self) -> Result<T, PopError> {
        if self.is_empty() {
            return Err(PopError::Empty);
        }
        let _guard = self.lock_pop();
        let mut spins = 0u32;
        loop {
            match self.try_pop_locked() {
                Taken::Node(node) => {
                    // Only the holder of `popping` writes the count. `Release`:
                    // a reader that sees the count sees the pop's effects.
                    let pops = self.head.pops.load(Ordering::Relaxed) + 1;
                    self.head.pops.store(pops, Ordering::Release);
                    // SAFETY: `node` was linked by `push`, which took it from
                    // its item; taking it back moves the item out, once.
                    return Ok(unsafe { take_back(node) });
                }
                Taken::Empty => return Err(PopError::Empty),
                Taken::Linking => backoff(&mut spins),
            }
        }
    }

    /// Calls `f` with the node of each queued item, oldest first, under
    /// `popping`: no item is taken out (and so none is freed) during the
    /// walk, and pops wait until it ends. A push that has swung the tail
    /// but not linked its node yet ends the walk there: the items behind it
    /// are not seen (a snapshot may miss what is being queued).
    ///
    /// The node given to `f` is a queued item's and stays valid for the
    /// call: while `popping` is held, only the queue's own rules touch it
    /// (its `next` link), and the item it belongs to is not handed out.
    pub(crate) fn visit(&self, mut f: impl FnMut(NonNull<Node>)) {
        let _guard = self.lock_pop();
        let stub = self.stub();
        let mut node = self.head.node.load(Ordering::Relaxed);
        loop {
            if node != stub {
                // SAFETY: `node` is reachable from the head under `popping`:
                // a queued node (see `try_pop_locked`), so not null.
                f(unsafe { NonNull::new_unchecked(node) });
            }
            // SAFETY: `node` is the stub or a queued node, reachable from
            // the head; only the holder of `popping` (this walk) could take
            // it out and hand it over to be freed. `Acquire`: pairs with the
            // `SeqCst` store that linked the next node (`link`), so that its
            // item, written before its push, is seen whole.
            let next = unsafe { (*node).next.load(Ordering::Acquire) };
            if next.is_null() {
                return;
            }
            node = next;
        }
    }

    fn lock_pop(&self) -> PopGuard<'_> {
        let mut spins = 0u32;
        while self
            .head
            .popping
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff(&mut spins);
        }
        PopGuard(&self.head.popping)
    }

    /// One step of Vyukov's pop. The caller holds `popping`.
    fn try_pop_locked(&self) -> Taken {
        let stub = self.stub();
        let mut head = self.head.node.load(Ordering::Relaxed);
        // SAFETY: `head` is the stub or a queued node; only the holder of
        // `popping` (the caller) can take it out, so it is alive.
        let mut next = unsafe { (*head).next.load(Ordering::Acquire) };
        if head == stub {
            if next.is_null() {
                return if untag(self.tail.load(Ordering::Acquire)) == stub {
                    Taken::Empty
                } else {
                    Taken::Linking
                };
            }
            // Skip the stub.
            self.head.node.store(next, Ordering::Release);
            head = next;
            // SAFETY: as above: `next` is queued and only we can take it.
            next = unsafe { (*head).next.load(Ordering::Acquire) };
        }
        if !next.is_null() {
            self.head.node.store(next, Ordering::Release);
            return Taken::Node(head);
        }
        // `head` is the last linked node. If it is the tail too, put the stub
        // behind it so that it can be taken; otherwise a push is linking.
        if untag(self.tail.load(Ordering::Acquire)) != head {
            return Taken::Linking;
        }
        self.relink_stub();
        // SAFETY: `head` is still queued (not handed out yet).
        next = unsafe { (*head).next.load(Ordering::Acquire) };
        if next.is_null() {
            // A push slipped in between: it links `head` to its node soon.
            return Taken::Linking;
        }
        self.head.node.store(next, Ordering::Release);
        Taken::Node(head)
    }

    /// How many items were handed out so far ([`pop`](Self::pop) counts
    /// them in FIFO order).
    pub(crate) fn pops(&self) -> usize {
        self.head.pops.load(Ordering::SeqCst)
    }

    /// Whether nothing is queued (see the module docs for why this is
    /// enough for sleeping workers).
    pub(crate) fn is_empty(&self) -> bool {
        let stub = self.stub();
        if self.head.node.load(Ordering::SeqCst) != stub {
            return false;
        }
        // SAFETY: the stub is the queue's own node.
        unsafe { (*stub).next.load(Ordering::SeqCst).is_null() }
    }

    /// Closes the queue: later pushes fail. Returns `true` if this call
    /// closed it.
    pub(crate) fn close(&self) -> bool {
        let mut tail = self.tail.load(Ordering::Acquire);
        loop {
            if is_tagged(tail) {
                return false;
            }
            match self.tail.compare_exchange_weak(
                tail,
                tag(tail),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => tail = actual,
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        is_tagged(self.tail.load(Ordering::SeqCst))
    }
}

impl<T: Linked> Drop for Queue<T> {
    fn drop(&mut self) {
        // Items still queued are dropped (a job's entry resolves its handle).
        while let Ok(item) = self.pop() {
            drop(item);
        }
        // SAFETY: the stub came from `Box::leak` in `unbounded`, and nothing
        // points at it once the queue is gone.
        drop(unsafe { Box::from_raw(self.stub.as_ptr()) });
    }
}

enum Taken {
    Node(*mut Node),
    Empty,
    /// A producer has swung the tail and not linked its node yet.
    Linking,
}

struct PopGuard<'a>(&'a AtomicBool);

impl Drop for PopGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Spins a little, then gives the thread up: the holder of the lock (or the
/// producer finishing its link) is running on another thread and needs only
/// a few instructions.
fn backoff(spins: &mut u32) {
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
    *spins = spins.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier, Mutex};

    use super::{Linked, Node, Queue};

    /// A test item: a node first, then a number; counts its drops.
    #[repr(C)]
    struct Item {
        node: Node,
        id: u32,
        drops: Arc<AtomicUsize>,
    }

    struct Boxed(Box<Item>);

    impl Drop for Item {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    // SAFETY: the node is the first field of a `repr(C)` boxed item, whose
    // address stays put until the box is taken back, once.
    unsafe impl Linked for Boxed {
        fn into_node(self) -> NonNull<Node> {
            NonNull::from(Box::leak(self.0)).cast()
        }

        unsafe fn from_node(node: NonNull<Node>) -> Self {
            // SAFETY: the caller's promise: `node` came from `into_node`.
            Boxed(unsafe { Box::from_raw(node.cast::<Item>().as_ptr()) })
        }
    }

    fn item(id: u32, drops: &Arc<AtomicUsize>) -> Boxed {
        Boxed(Box::new(Item {
            node: Node::new(),
            id,
            drops: drops.clone(),
        }))
    }

    /// Sizes small enough for miri, large enough to interleave natively.
    const PER_THREAD: u32 = if cfg!(miri) { 40 } else { 20_000 };

    #[test]
    fn pops_in_push_order_then_reports_empty() {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Queue::<Boxed>::unbounded();
        assert!(q.is_empty());
        for i in 0..5 {
            assert!(q.push(item(i, &drops)).is_ok());
        }
        assert!(!q.is_empty());
        let ids: Vec<u32> = (0..5).map(|_| q.pop().expect("queued").0.id).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
        assert!(q.is_empty());
        assert!(q.pop().is_err());
        assert_eq!(q.pops(), 5);
        // And the queue takes items again after running empty (the stub
        // went back to its end).
        assert!(q.push(item(5, &drops)).is_ok());
        assert_eq!(q.pop().expect("queued").0.id, 5);
        assert!(q.is_empty());
        assert_eq!(drops.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn a_push_says_whether_the_queue_was_empty() {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Queue::<Boxed>::unbounded();
        assert!(matches!(q.push(item(0, &drops)), Ok(true)));
        assert!(matches!(q.push(item(1, &drops)), Ok(false)));
        assert_eq!(q.pop().expect("0").0.id, 0);
        assert!(matches!(q.push(q.pop().expect("1")), Ok(true)));
        // Dropping the queue drops what it still holds.
        drop(q);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_closed_queue_refuses_pushes_and_still_hands_out_its_items() {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Queue::<Boxed>::unbounded();
        assert!(q.push(item(0, &drops)).is_ok());
        assert!(q.push(item(1, &drops)).is_ok());
        assert!(q.close());
        assert!(!q.close(), "closed once");
        assert!(q.is_closed());
        let late = q.pop().expect("queued");
        // Pushing the popped item back fails: the queue is closed.
        let late = match q.push(late) {
            Err(e) => e,
            Ok(_) => panic!("a closed queue took an item"),
        };
        assert_eq!(late.0.id, 0);
        assert_eq!(q.pop().expect("still queued").0.id, 1);
        assert!(q.pop().is_err());
    }

    /// Producers and consumers at once: every item is popped exactly once,
    /// a consumer sees one producer's items in the order they were pushed,
    /// and a drain after the producers finish finds the rest.
    fn pushes_and_pops_race(producers: u32) {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Arc::new(Queue::<Boxed>::unbounded());
        let start = Arc::new(Barrier::new(producers as usize + 2));
        let done = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for p in 0..producers {
            let (q, start, drops) = (q.clone(), start.clone(), drops.clone());
            threads.push(std::thread::spawn(move || {
                start.wait();
                for i in 0..PER_THREAD {
                    assert!(q.push(item(p * PER_THREAD + i, &drops)).is_ok());
                }
            }));
        }
        let mut consumers = Vec::new();
        for _ in 0..2 {
            let (q, start, done, seen) = (q.clone(), start.clone(), done.clone(), seen.clone());
            consumers.push(std::thread::spawn(move || {
                start.wait();
                let mut mine = Vec::new();
                loop {
                    match q.pop() {
                        Ok(e) => mine.push(e.0.id),
                        Err(_) if done.load(Ordering::SeqCst) => break,
                        Err(_) => std::thread::yield_now(),
                    }
                }
                seen.lock().unwrap().push(mine);
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        for c in consumers {
            c.join().unwrap();
        }
        let mut all = HashSet::new();
        for mine in seen.lock().unwrap().iter() {
            if producers == 1 {
                // One producer's items, seen by one consumer: FIFO.
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "out of order");
            }
            for t in mine {
                assert!(all.insert(*t), "item {t} popped twice");
            }
        }
        while let Ok(e) = q.pop() {
            assert!(all.insert(e.0.id), "popped twice");
        }
        let total = (producers * PER_THREAD) as usize;
        assert_eq!(all.len(), total, "every item popped once");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            total,
            "every item dropped once"
        );
    }

    /// The ids `visit` sees, read through each node (the item starts with
    /// it).
    fn visited(q: &Queue<Boxed>) -> Vec<u32> {
        let mut ids = Vec::new();
        // SAFETY: each node is a queued `Item`'s first field (`repr(C)`),
        // alive for the call (see `visit`); `id` is never written after
        // the push.
        q.visit(|node| ids.push(unsafe { (*node.cast::<Item>().as_ptr()).id }));
        ids
    }

    /// A walk sees what is queued, oldest first, skipping the stub wherever
    /// it is (at the head, or relinked behind the last item), and what a
    /// pop took out is gone from the next walk.
    #[test]
    fn visit_sees_the_queued_items_in_order() {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Queue::<Boxed>::unbounded();
        assert_eq!(visited(&q), Vec::<u32>::new());
        for i in 0..4 {
            assert!(q.push(item(i, &drops)).is_ok());
        }
        assert_eq!(visited(&q), vec![0, 1, 2, 3]);
        assert_eq!(q.pop().expect("0").0.id, 0);
        assert_eq!(visited(&q), vec![1, 2, 3]);
        // Down to the last item: the pop relinks the stub behind it.
        for want in 1..4 {
            assert_eq!(q.pop().expect("queued").0.id, want);
        }
        assert!(q.push(item(4, &drops)).is_ok());
        assert_eq!(visited(&q), vec![4]);
        assert!(q.push(item(5, &drops)).is_ok());
        assert_eq!(q.pop().expect("4").0.id, 4);
        assert_eq!(visited(&q), vec![5]);
        assert!(q.close());
        assert_eq!(visited(&q), vec![5], "a closed queue is walked too");
    }

    /// Walks racing pushes and pops: every walk sees increasing ids of one
    /// producer (FIFO), never an item twice, and reads only live items
    /// (miri checks the reads).
    #[test]
    fn visits_race_pushes_and_pops() {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Arc::new(Queue::<Boxed>::unbounded());
        let done = Arc::new(AtomicBool::new(false));
        let producer = {
            let (q, drops) = (q.clone(), drops.clone());
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    assert!(q.push(item(i, &drops)).is_ok());
                }
            })
        };
        let consumer = {
            let (q, done) = (q.clone(), done.clone());
            std::thread::spawn(move || {
                let mut popped = 0;
                while popped < PER_THREAD {
                    match q.pop() {
                        Ok(_) => popped += 1,
                        Err(_) => std::thread::yield_now(),
                    }
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        let mut walks = 0;
        while !done.load(Ordering::SeqCst) || walks == 0 {
            let ids = visited(&q);
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
            walks += 1;
        }
        producer.join().unwrap();
        consumer.join().unwrap();
        assert_eq!(visited(&q), Vec::<u32>::new());
        assert_eq!(drops.load(Ordering::SeqCst), PER_THREAD as usize);
    }

    #[test]
    fn one_producer_two_consumers_keep_fifo_and_lose_nothing() {
        pushes_and_pops_race(1);
    }

    #[test]
    fn two_producers_two_consumers_hand_out_every_item_once() {
        pushes_and_pops_race(2);
    }
}

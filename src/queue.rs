//! The job queue: an intrusive, unbounded, closable FIFO of job cells.
//!
//! Every job already lives in one allocation (its cell, `src/cell.rs`); the
//! queue links those cells through a `next` pointer in their header instead
//! of copying them into blocks of its own. A push is one CAS on the tail and
//! one store; it allocates nothing, and a worker that empties the queue frees
//! nothing. The benchmarks (W1, W5 in `benches/compare.rs`) are where this
//! shows: the block queue it replaces cost 32 bytes per queued job, and its
//! blocks, allocated by the submitter and freed by workers, made the
//! allocator's lock a contended one.
//!
//! This is Dmitry Vyukov's intrusive MPSC queue with two additions:
//! - **many consumers**: pops take a tiny spin lock (`popping`), held for a
//!   handful of instructions; pushes take no lock.
//! - **close**: the tail pointer carries a `CLOSED` tag bit. Producers only
//!   swing an untagged tail, so once the tag is set no push succeeds, and a
//!   consumer that drains a closed queue sees every job that was pushed.
//!
//! A node is the [`Link`] at the start of a cell. The queue owns one
//! reference to each queued cell (the entry's, see `QueueEntry`), and hands
//! it back on pop. The stub node is the queue's own, never handed out.
//!
//! Emptiness is read without touching any node but the stub (a popped cell
//! may be freed at any time): the queue is empty when the consumers' end is
//! the stub and the stub has no successor. Producers publish the link with a
//! `SeqCst` store and sleeping workers re-check with `SeqCst` loads after
//! announcing themselves idle (`worker.rs`), so a worker never sleeps on a
//! job it could not see.
#![allow(unsafe_code)]

use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::cell::{Link, QueueEntry};
use crate::sync::Padded;

/// The tag bit of a closed queue's tail.
const CLOSED: usize = 1;

fn is_tagged(p: *mut Link) -> bool {
    p.addr() & CLOSED != 0
}

fn untag(p: *mut Link) -> *mut Link {
    p.map_addr(|a| a & !CLOSED)
}

fn tag(p: *mut Link) -> *mut Link {
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
    node: AtomicPtr<Link>,
    /// Entries handed out so far, in FIFO order. Written under `popping`
    /// (a plain store, on the line the pop has just taken anyway), read
    /// anywhere.
    pops: AtomicUsize,
}

pub(crate) struct Queue {
    head: Padded<Head>,
    /// The last node, tagged `CLOSED` once the queue is closed.
    tail: Padded<AtomicPtr<Link>>,
    /// The queue's own node: where the consumers' end rests when the queue is
    /// empty. On the heap, so its address stays put when the queue moves;
    /// held as a raw pointer (from `Box::into_raw`, freed in `drop`) because
    /// the queue's atomics point at it too.
    stub: NonNull<Link>,
}

// SAFETY: the queue holds raw pointers to job cells, each of which it owns
// one reference to (a `QueueEntry`, which is `Send`); `head.node` is only
// dereferenced under `popping`, and `tail` only through atomics. The stub is
// owned by the queue and only reached through atomics.
unsafe impl Send for Queue {}
// SAFETY: as above: every shared access goes through atomics, and the one
// non-atomic step (taking a node) is serialised by `popping`.
unsafe impl Sync for Queue {}

impl Queue {
    pub(crate) fn unbounded() -> Queue {
        let stub = NonNull::from(Box::leak(Box::new(Link::stub())));
        let stub_ptr = stub.as_ptr();
        Queue {
            head: Padded(Head {
                popping: AtomicBool::new(false),
                node: AtomicPtr::new(stub_ptr),
                pops: AtomicUsize::new(0),
            }),
            tail: Padded(AtomicPtr::new(stub_ptr)),
            stub,
        }
    }

    fn stub(&self) -> *mut Link {
        self.stub.as_ptr()
    }

    /// Queues `entry`; gives it back if the queue is closed. `Ok(true)` if
    /// the queue was empty (no job was queued before this one).
    pub(crate) fn push(&self, entry: QueueEntry) -> Result<bool, QueueEntry> {
        let node = entry.into_raw();
        // SAFETY: `node` is a live cell whose queue reference we now hold.
        unsafe { (*node).next.store(ptr::null_mut(), Ordering::Relaxed) };
        match self.link(node) {
            Ok(prev) => Ok(prev == self.stub()),
            // SAFETY: `into_raw` made `node`, and `link` did not queue it.
            Err(node) => Err(unsafe { QueueEntry::from_raw(node) }),
        }
    }

    /// Appends `node` (its `next` is null), unless the queue is closed;
    /// returns the node it was linked behind.
    fn link(&self, node: *mut Link) -> Result<*mut Link, *mut Link> {
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
        // SAFETY: `tail` was the last node: a queued cell, which no consumer
        // can pop (and so free) before this link makes `node` reachable
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

    /// Takes the oldest job.
    ///
    /// A push that has swung the tail but not linked its node yet (its
    /// thread preempted between the two steps) makes the jobs behind it
    /// invisible for that instant: `pop` waits it out, spinning, since the
    /// producer is about to finish. That is why pushing never blocks on a
    /// consumer, and popping rarely waits on a producer.
    pub(crate) fn pop(&self) -> Result<QueueEntry, PopError> {
        self.pop_counted().map(|(entry, _)| entry)
    }

    /// [`pop`](Self::pop), and how many entries were handed out so far,
    /// this one included.
    pub(crate) fn pop_counted(&self) -> Result<(QueueEntry, usize), PopError> {
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
                    // SAFETY: `node` was linked by `push`, which gave the
                    // queue its reference; taking it moves that reference out.
                    return Ok((unsafe { QueueEntry::from_raw(node) }, pops));
                }
                Taken::Empty => return Err(PopError::Empty),
                Taken::Linking => backoff(&mut spins),
            }
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

    /// How many entries were handed out so far ([`pop`](Self::pop) counts
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

impl Drop for Queue {
    fn drop(&mut self) {
        // Jobs still queued are dropped unstarted: their handles resolve.
        while let Ok(entry) = self.pop() {
            drop(entry);
        }
        // SAFETY: the stub came from `Box::leak` in `unbounded`, and nothing
        // points at it once the queue is gone.
        drop(unsafe { Box::from_raw(self.stub.as_ptr()) });
    }
}

enum Taken {
    Node(*mut Link),
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
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier, Mutex};

    use crate::{JobError, Pool};

    /// A pool whose workers never run: jobs stay in the queue for the test
    /// to pop.
    fn parked_pool() -> Pool {
        Pool::builder()
            .max_workers(1)
            .keep_idle_workers()
            .spawner(drop)
            .build()
    }

    /// Sizes small enough for miri, large enough to interleave natively.
    const PER_THREAD: usize = if cfg!(miri) { 40 } else { 20_000 };

    #[test]
    fn pops_in_push_order_then_reports_empty() {
        let pool = parked_pool();
        let q = &pool.shared().queue;
        assert!(q.is_empty());
        let handles: Vec<_> = (0..5u32).map(|i| pool.submit(async move { i })).collect();
        assert!(!q.is_empty());
        let tickets: Vec<u32> = (0..5).map(|_| q.pop().expect("queued").ticket()).collect();
        assert_eq!(tickets, vec![0, 1, 2, 3, 4]);
        assert!(q.is_empty());
        assert!(q.pop().is_err());
        // The popped entries were dropped unstarted: their handles resolved.
        for mut h in handles {
            assert_eq!(h.try_take(), Some(Err(JobError::Stopped)));
        }
        // And the queue takes jobs again after running empty (the stub
        // went back to its end).
        let _h = pool.submit(async { 5u32 });
        assert_eq!(q.pop().expect("queued").ticket(), 5);
        assert!(q.is_empty());
    }

    #[test]
    fn a_push_says_whether_the_queue_was_empty() {
        let pool = parked_pool();
        let q = &pool.shared().queue;
        let _a = pool.submit(async { 1u32 });
        let _b = pool.submit(async { 2u32 });
        let (a, b) = (q.pop().expect("a"), q.pop().expect("b"));
        assert!(q.is_empty());
        assert!(matches!(q.push(a), Ok(true)), "pushed into an empty queue");
        assert!(matches!(q.push(b), Ok(false)), "pushed behind a job");
        assert_eq!(q.pop().expect("a again").ticket(), 0);
        assert!(matches!(q.push(q.pop().expect("b again")), Ok(true)));
        // A stop drops what is still queued (no worker ever runs here).
        drop(pool.stop());
        assert!(q.is_empty());
    }

    #[test]
    fn a_closed_queue_refuses_pushes_and_still_hands_out_its_jobs() {
        let pool = parked_pool();
        let q = &pool.shared().queue;
        let _a = pool.submit(async { 1u32 });
        let _b = pool.submit(async { 2u32 });
        assert!(q.close());
        assert!(!q.close(), "closed once");
        assert!(q.is_closed());
        let mut late = pool.shared().queue.pop().expect("queued");
        // Pushing the popped entry back fails: the queue is closed.
        late = match q.push(late) {
            Err(e) => e,
            Ok(_) => panic!("a closed queue took a job"),
        };
        assert_eq!(late.ticket(), 0);
        assert_eq!(q.pop().expect("still queued").ticket(), 1);
        assert!(q.pop().is_err());
    }

    /// Producers and consumers at once: every job is popped exactly once,
    /// a consumer sees one producer's jobs in the order they were pushed,
    /// and a drain after the producers finish finds the rest.
    fn pushes_and_pops_race(producers: u32) {
        let pool = parked_pool();
        let start = Arc::new(Barrier::new(producers as usize + 2));
        let done = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for p in 0..producers {
            let (pool, start) = (pool.clone(), start.clone());
            threads.push(std::thread::spawn(move || {
                start.wait();
                (0..PER_THREAD as u32)
                    .map(|i| pool.submit(async move { (p, i) }))
                    .collect::<Vec<_>>()
            }));
        }
        let mut consumers = Vec::new();
        for _ in 0..2 {
            let (pool, start, done, seen) =
                (pool.clone(), start.clone(), done.clone(), seen.clone());
            consumers.push(std::thread::spawn(move || {
                start.wait();
                let mut mine = Vec::new();
                loop {
                    match pool.shared().queue.pop() {
                        Ok(e) => mine.push(e.ticket()),
                        Err(_) if done.load(Ordering::SeqCst) => break,
                        Err(_) => std::thread::yield_now(),
                    }
                }
                seen.lock().unwrap().push(mine);
            }));
        }
        let handles: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        done.store(true, Ordering::SeqCst);
        for c in consumers {
            c.join().unwrap();
        }
        let mut all = HashSet::new();
        for mine in seen.lock().unwrap().iter() {
            if producers == 1 {
                // One producer's tickets, seen by one consumer: FIFO.
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "out of order");
            }
            for t in mine {
                assert!(all.insert(*t), "ticket {t} popped twice");
            }
        }
        while let Ok(e) = pool.shared().queue.pop() {
            assert!(all.insert(e.ticket()), "popped twice");
        }
        let total = producers as usize * PER_THREAD;
        assert_eq!(all.len(), total, "every job popped once");
        assert_eq!(all.iter().max(), Some(&(total as u32 - 1)));
        assert!(handles
            .into_iter()
            .all(|mut h| h.try_take() == Some(Err(JobError::Stopped))));
    }

    #[test]
    fn one_producer_two_consumers_keep_fifo_and_lose_nothing() {
        pushes_and_pops_race(1);
    }

    #[test]
    fn two_producers_two_consumers_hand_out_every_job_once() {
        pushes_and_pops_race(2);
    }
}

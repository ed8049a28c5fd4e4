//! One timer for the deadlines of all of a pool's running jobs (system clock).
//!
//! Each `async-io` timer is an operation queued to its reactor, an entry in
//! the reactor's ordered map, and another operation to take it out again.
//! With a timer per job, a pool running a thousand jobs with a timeout adds
//! thousands of operations per millisecond and makes the reactor's bounded
//! queue overflow into its lock. Instead, the pool keeps
//! its jobs' deadlines in a heap under a lock, and one `async-io` timer armed
//! for the earliest of them. When it fires (on whichever thread drives the
//! reactor), the jobs whose deadline passed are woken and the timer is armed
//! for the next deadline. A woken job reads the clock itself to see that it
//! timed out, as it does with any wake-up.
//!
//! A job that ends before its deadline takes its entry out ([`Registration`]'s
//! drop): it is never woken for it. Its heap item stays until it reaches the
//! top (or a rebuild drops it), so the heap is rebuilt when such items
//! outnumber the live ones.
//!
//! Pools on another clock (`Builder::clock`, `Builder::timer`) keep a sleep
//! per job: only the system clock's timers are known to fire in order here.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Instant;

use crate::sync::lock_std as lock;

/// The deadlines of a pool's running jobs, and the one timer for them.
pub(crate) struct Deadlines {
    inner: Mutex<Inner>,
    /// Given to the timer: calls [`Deadlines::fire`] (through a `Weak`, so
    /// the reactor holding it keeps nothing alive).
    fire_waker: Waker,
}

struct Inner {
    /// `(deadline, entry, generation)` of registered jobs, earliest first;
    /// an item whose generation is not its entry's any more is stale.
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    entries: Vec<Entry>,
    /// Entries that are free for reuse.
    free: Vec<u32>,
    /// Entries in use.
    live: usize,
    timer: async_io::Timer,
    /// What the timer is armed for (`None`: not armed).
    armed: Option<Instant>,
}

struct Entry {
    /// Bumped each time the entry is freed.
    generation: u32,
    /// The job's waker while the entry is in use.
    waker: Option<Waker>,
}

/// Wakes the deadlines' owner when the timer fires.
struct Fire(Weak<Deadlines>);

impl Wake for Fire {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(deadlines) = self.0.upgrade() {
            deadlines.fire();
        }
    }
}

/// A job's place among the deadlines: taken out when dropped.
pub(crate) struct Registration {
    deadlines: Arc<Deadlines>,
    entry: u32,
    generation: u32,
    /// The waker the entry holds (compared before asking for the lock).
    waker: Waker,
}

/// Heap items beyond which stale ones are dropped (when they are the
/// majority).
const REBUILD_ABOVE: usize = 64;

impl Deadlines {
    pub(crate) fn new() -> Arc<Deadlines> {
        Arc::new_cyclic(|me| Deadlines {
            inner: Mutex::new(Inner {
                heap: BinaryHeap::new(),
                entries: Vec::new(),
                free: Vec::new(),
                live: 0,
                timer: async_io::Timer::never(),
                armed: None,
            }),
            fire_waker: Waker::from(Arc::new(Fire(me.clone()))),
        })
    }

    /// Wakes `waker` once `deadline` has passed, until the registration is
    /// dropped.
    pub(crate) fn register(self: &Arc<Self>, deadline: Instant, waker: &Waker) -> Registration {
        let mut woken = Vec::new();
        let (entry, generation) = {
            let mut inner = lock(&self.inner);
            let entry = match inner.free.pop() {
                Some(i) => i,
                None => {
                    inner.entries.push(Entry {
                        generation: 0,
                        waker: None,
                    });
                    u32::try_from(inner.entries.len() - 1).expect("fewer than 2^32 running jobs")
                }
            };
            let e = &mut inner.entries[entry as usize];
            e.waker = Some(waker.clone());
            let generation = e.generation;
            inner.live += 1;
            if inner.heap.len() > REBUILD_ABOVE && inner.heap.len() > 2 * inner.live {
                let Inner { heap, entries, .. } = &mut *inner;
                heap.retain(|Reverse((_, e, g))| entries[*e as usize].generation == *g);
            }
            inner.heap.push(Reverse((deadline, entry, generation)));
            if inner.armed.is_none_or(|at| deadline < at) {
                self.arm(&mut inner, &mut woken);
            }
            (entry, generation)
        };
        for w in woken {
            w.wake();
        }
        Registration {
            deadlines: self.clone(),
            entry,
            generation,
            waker: waker.clone(),
        }
    }

    /// The timer fired: wakes the jobs whose deadline passed, arms the timer
    /// for the next one.
    fn fire(&self) {
        let mut woken = Vec::new();
        {
            let mut inner = lock(&self.inner);
            inner.armed = None;
            self.arm(&mut inner, &mut woken);
        }
        for w in woken {
            w.wake();
        }
    }

    /// Takes the expired entries out (their wakers into `woken`) and arms the
    /// timer for the earliest deadline left, if any.
    fn arm(&self, inner: &mut Inner, woken: &mut Vec<Waker>) {
        loop {
            let now = Instant::now();
            let next = loop {
                let Some(&Reverse((deadline, entry, generation))) = inner.heap.peek() else {
                    break None;
                };
                let e = &mut inner.entries[entry as usize];
                if e.generation != generation {
                    // Its job ended before the deadline.
                    inner.heap.pop();
                    continue;
                }
                if deadline > now {
                    break Some(deadline);
                }
                inner.heap.pop();
                woken.extend(inner.free_entry(entry));
            };
            let Some(at) = next else {
                inner.armed = None;
                return;
            };
            if inner.armed == Some(at) {
                return;
            }
            inner.timer.set_at(at);
            inner.armed = Some(at);
            let mut cx = Context::from_waker(&self.fire_waker);
            if Pin::new(&mut inner.timer).poll(&mut cx).is_pending() {
                return;
            }
            // Passed already: take it out now.
            inner.armed = None;
        }
    }
}

impl Inner {
    /// Frees the entry in use `entry` (its heap item goes stale); returns
    /// its waker.
    fn free_entry(&mut self, entry: u32) -> Option<Waker> {
        let e = &mut self.entries[entry as usize];
        let waker = e.waker.take();
        e.generation = e.generation.wrapping_add(1);
        self.free.push(entry);
        self.live -= 1;
        waker
    }
}

impl Registration {
    /// Wakes `waker` instead from now on (a job polled with a new one).
    pub(crate) fn set_waker(&mut self, waker: &Waker) {
        if self.waker.will_wake(waker) {
            return;
        }
        self.waker = waker.clone();
        let mut inner = lock(&self.deadlines.inner);
        let e = &mut inner.entries[self.entry as usize];
        if e.generation == self.generation {
            e.waker = Some(waker.clone());
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = lock(&self.deadlines.inner);
        if inner.entries[self.entry as usize].generation != self.generation {
            // Woken already: the entry was freed then.
            return;
        }
        let waker = inner.free_entry(self.entry);
        drop(inner);
        drop(waker);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::WakeCount;

    /// A deadline an hour away, `i` ns after the last one made with a
    /// smaller `i` (for tests where none may expire).
    fn at(i: u64) -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(|| Instant::now() + Duration::from_secs(3600)) + Duration::from_nanos(i)
    }

    /// Waits (up to 10 s) until `cond` holds: the timer fires on async-io's
    /// own thread.
    fn eventually(cond: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        cond()
    }

    #[test]
    fn wakes_each_job_once_its_deadline_passed_in_deadline_order() {
        let d = Deadlines::new();
        let now = Instant::now();
        let (late, late_w) = WakeCount::new();
        let (early, early_w) = WakeCount::new();
        // The later one first: the earlier one must re-arm the timer.
        let _late = d.register(now + Duration::from_millis(500), &late_w);
        let _early = d.register(now + Duration::from_millis(20), &early_w);
        assert!(eventually(|| early.get() == 1));
        assert!(Instant::now() >= now + Duration::from_millis(20));
        assert_eq!(
            late.get(),
            0,
            "the early deadline waited for the late one's timer"
        );
        assert!(eventually(|| late.get() == 1));
        assert!(Instant::now() >= now + Duration::from_millis(500));
        // Each once, and nothing is left: both entries are free, so no later
        // firing can wake either again.
        assert_eq!(early.get(), 1);
        assert_eq!(late.get(), 1);
        assert_eq!(lock(&d.inner).live, 0);
    }

    #[test]
    fn a_passed_deadline_wakes_at_once() {
        let d = Deadlines::new();
        let (c, w) = WakeCount::new();
        let _r = d.register(Instant::now(), &w);
        assert_eq!(c.get(), 1, "woken inside register");
    }

    #[test]
    fn a_dropped_registration_is_never_woken_and_the_next_one_is() {
        let d = Deadlines::new();
        let now = Instant::now();
        let (gone, gone_w) = WakeCount::new();
        let (kept, kept_w) = WakeCount::new();
        drop(d.register(now + Duration::from_millis(10), &gone_w));
        let _kept = d.register(now + Duration::from_millis(30), &kept_w);
        assert!(eventually(|| kept.get() == 1));
        assert_eq!(gone.get(), 0);
        assert_eq!(lock(&d.inner).live, 0);
    }

    #[test]
    fn a_new_waker_is_the_one_woken() {
        let d = Deadlines::new();
        let (old, old_w) = WakeCount::new();
        let (new, new_w) = WakeCount::new();
        let mut r = d.register(Instant::now() + Duration::from_millis(10), &old_w);
        r.set_waker(&new_w);
        assert!(eventually(|| new.get() == 1));
        assert_eq!(old.get(), 0);
    }

    /// The heap is rebuilt only once stale items outnumber live ones two to
    /// one (and there are more than a few): not at every registration.
    #[test]
    fn the_heap_is_rebuilt_when_stale_items_are_the_majority() {
        let d = Deadlines::new();
        let (_, w) = WakeCount::new();
        let mut kept: Vec<_> = (0..100).map(|i| d.register(at(i), &w)).collect();
        for i in 100..110 {
            drop(d.register(at(i), &w));
        }
        // 10 stale items among 100 live ones stay (a rebuild would cost
        // more than they do).
        assert_eq!(lock(&d.inner).heap.len(), 110);
        kept.truncate(10);
        // 100 stale, 11 live after the next registration: rebuilt.
        let _one_more = d.register(at(200), &w);
        assert_eq!(lock(&d.inner).heap.len(), 11);
    }

    /// The two thresholds are strict: exactly `REBUILD_ABOVE` items, or
    /// exactly twice the live ones, is not yet a rebuild.
    #[test]
    fn the_rebuild_thresholds_are_strict() {
        let (_, w) = WakeCount::new();

        let d = Deadlines::new();
        for i in 0..REBUILD_ABOVE as u64 {
            drop(d.register(at(i), &w));
        }
        let _a = d.register(at(100), &w);
        assert_eq!(lock(&d.inner).heap.len(), REBUILD_ABOVE + 1);
        let _b = d.register(at(101), &w);
        assert_eq!(lock(&d.inner).heap.len(), 2);

        let d = Deadlines::new();
        let _kept: Vec<_> = (0..40).map(|i| d.register(at(i), &w)).collect();
        for i in 40..82 {
            drop(d.register(at(i), &w));
        }
        // 82 items, 41 live with the next: twice as many, not more.
        let _c = d.register(at(200), &w);
        assert_eq!(lock(&d.inner).heap.len(), 83);
    }

    #[test]
    fn stale_items_do_not_pile_up() {
        let d = Deadlines::new();
        let (_, w) = WakeCount::new();
        for i in 0..10_000u64 {
            drop(d.register(at(i), &w));
        }
        let inner = lock(&d.inner);
        assert!(
            inner.heap.len() <= 2 * REBUILD_ABOVE + 2,
            "{}",
            inner.heap.len()
        );
        assert!(inner.entries.len() <= 1);
    }
}

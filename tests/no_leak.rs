//! A pool frees everything it allocated once its last clone and handle are
//! gone: counted by a global allocator that tracks the bytes alive.
//!
//! One test in its own binary, so that nothing else allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use workerpoolxt::{JobError, Pool};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A pool whose workers never run (its spawner drops them): everything it
/// allocates is its own, none of it an executor's.
fn parked_pool() -> Pool {
    Pool::builder()
        .max_workers(2)
        .keep_idle_workers()
        .spawner(drop)
        .build()
}

#[test]
fn pools_and_their_jobs_free_everything() {
    // Once first: lazily made statics (none expected, but they would not be
    // a leak) are in the baseline.
    let round = |stop: bool| {
        let pool = parked_pool();
        let a = pool.submit(async { 1u32 });
        let b = pool.submit_blocking(|| 2u32);
        let c = pool.submit(async { 3u32 });
        // Stopping drops the queued jobs unstarted: each handle resolves.
        // So does dropping the last clone: no worker can ever run them (each
        // one spawned is dropped unpolled), and a queued job keeps the pool's
        // state alive, so they must not be left in the queue.
        if stop {
            drop(pool.stop());
        }
        drop(pool);
        // Resolved already (a look, not a wait: a handle left unresolved
        // fails here instead of hanging).
        for mut h in [a, c] {
            assert_eq!(h.try_take(), Some(Err(JobError::Stopped)));
        }
        let mut b = b;
        assert_eq!(b.try_take(), Some(Err(JobError::Stopped)));
    };
    round(true);
    round(false);
    let before = LIVE.load(Ordering::SeqCst);
    for i in 0..1_000 {
        round(i % 2 == 0);
    }
    let grown = LIVE.load(Ordering::SeqCst) - before;
    // A leak of even one small allocation per pool would be 1,000 of them.
    assert!(
        grown < 4_096,
        "{grown} bytes still allocated after 1,000 pools"
    );
}

//! The pool's rate limit (`Builder::rate_limit`): at most `n` job starts in
//! any window of `per` on the pool's clock, bursts of up to `n`.
//!
//! A [`RateLimit`] keeps the start times that can still count in a window,
//! sorted; some are reserved, in the future. A job about to start reserves
//! its time ([`reserve`](RateLimit::reserve)): now, if fewer than `n` of the
//! times kept are less than `per` old; else the moment the `n`-th latest of
//! them is `per` old. So the k-th start is never earlier than the (k − n)-th
//! plus `per`: any half-open window `[t, t + per)` holds at most `n` starts,
//! and the first `n` start at once. A job that ends before it starts gives
//! its time back ([`withdraw`](RateLimit::withdraw)); the later reservations
//! keep theirs (a gap, never a start over the rate).
//!
//! The rules:
//! 1. The times kept never put more than `n` in a window of `per`.
//! 2. Jobs start in FIFO order under the limit too. A worker takes a job
//!    and reserves its time in one step under the limit's own lock
//!    ([`in_order`](RateLimit::in_order), `src/worker.rs`), so times are
//!    reserved in the queue's order; and the times reserved and not claimed
//!    yet go to the waiting jobs in queue-ticket order whoever reserved
//!    first (jobs a pause held reserve as it lets them go, in whatever order
//!    their workers get there). A waiting job reads its time again at each poll
//!    ([`time_of`](RateLimit::time_of)); a time only ever moves later, so a
//!    job never starts early, and [`claim`](RateLimit::claim), under the
//!    same lock, makes a time that has come a start no one can move.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::sync::{lock, Mutex};

/// A sliding window of job starts (see the module docs).
pub(crate) struct RateLimit {
    n: usize,
    per: Duration,
    window: Mutex<Window>,
    /// Held by a worker while it takes a job and reserves its time
    /// ([`in_order`](Self::in_order)).
    taking: Mutex<()>,
}

/// What a [`RateLimit`] keeps, under one lock.
struct Window {
    /// The starts that may still count in a window (from `per` ago on),
    /// sorted; the later ones may be reservations in the future.
    starts: VecDeque<Instant>,
    /// The reserved times not claimed yet, by the queue ticket of the job
    /// that waits for each: always handed out in ticket order, the earliest
    /// time to the earliest job, whichever reserved first (rule 2).
    pending: Vec<(usize, Instant)>,
}

impl RateLimit {
    /// At most `n` starts (at least 1) in any window of `per` (not zero).
    pub(crate) fn new(n: usize, per: Duration) -> RateLimit {
        debug_assert!(n > 0 && !per.is_zero(), "checked by the builder");
        RateLimit {
            n,
            per,
            window: Mutex::new(Window {
                starts: VecDeque::new(),
                pending: Vec::new(),
            }),
            taking: Mutex::new(()),
        }
    }

    /// Runs `take` (a worker takes a job from the queue and reserves its
    /// time) under a lock of its own: two workers reserve in the order
    /// they took their jobs (rule 2).
    pub(crate) fn in_order<R>(&self, take: impl FnOnce() -> R) -> R {
        let _taking = lock(&self.taking);
        take()
    }

    /// Reserves a start for the job with queue ticket `ticket`, at `now` or
    /// later: the earliest time that keeps every window within the limit,
    /// handed out in ticket order among the jobs that wait (a job that took
    /// a later ticket but reserved first gets a later time; see
    /// [`time_of`](Self::time_of)). Returns this job's time. `None` if no
    /// time can be expressed (a `per` past the clock's range): the job waits
    /// for ever (or for its cancel, deadline or stop), and nothing is
    /// reserved.
    pub(crate) fn reserve(&self, now: Instant, ticket: usize) -> Option<Instant> {
        let mut w = lock(&self.window);
        // Out of every window from `now` on: forgotten.
        while w
            .starts
            .front()
            .is_some_and(|t| t.checked_add(self.per).is_some_and(|end| end <= now))
        {
            w.starts.pop_front();
        }
        let at = if w.starts.len() < self.n {
            now
        } else {
            // The n-th latest leaves the window at `per` after it.
            w.starts[w.starts.len() - self.n]
                .checked_add(self.per)?
                .max(now)
        };
        // Later than any time kept, unless refunds left a gap: sorted in.
        let i = w.starts.partition_point(|t| *t <= at);
        w.starts.insert(i, at);
        w.pending.push((ticket, at));
        // Earliest times to the earliest tickets.
        let mut times: Vec<Instant> = w.pending.iter().map(|p| p.1).collect();
        times.sort_unstable();
        w.pending.sort_unstable_by_key(|p| p.0);
        for (p, t) in w.pending.iter_mut().zip(times) {
            p.1 = t;
        }
        Self::pending_time(&w, ticket)
    }

    fn pending_time(w: &Window, ticket: usize) -> Option<Instant> {
        w.pending.iter().find(|p| p.0 == ticket).map(|p| p.1)
    }

    /// The time the job with `ticket` waits for now: only ever later than
    /// the one it was told before, as earlier jobs reserve after it.
    pub(crate) fn time_of(&self, ticket: usize) -> Option<Instant> {
        Self::pending_time(&lock(&self.window), ticket)
    }

    /// Claims the job's time if it has come by `now`: from then on it is a
    /// start (no later reservation takes it). `None` if it has not come.
    pub(crate) fn claim(&self, ticket: usize, now: Instant) -> Option<Instant> {
        let mut w = lock(&self.window);
        let i = w.pending.iter().position(|p| p.0 == ticket && p.1 <= now)?;
        Some(w.pending.remove(i).1)
    }

    /// The job with `ticket` will not start (it ended while it waited): its
    /// time goes back, for the next reservation; the other jobs keep theirs
    /// (a gap, never a start over the rate).
    pub(crate) fn withdraw(&self, ticket: usize) {
        let mut w = lock(&self.window);
        if let Some(i) = w.pending.iter().position(|p| p.0 == ticket) {
            let at = w.pending.remove(i).1;
            Self::forget(&mut w, at);
        }
    }

    /// Gives back a start claimed at `at` that will not happen after all
    /// (its job ended as it left the queue). Nothing if that time was
    /// forgotten already.
    pub(crate) fn refund(&self, at: Instant) {
        Self::forget(&mut lock(&self.window), at);
    }

    fn forget(w: &mut Window, at: Instant) {
        let i = w.starts.partition_point(|t| *t < at);
        if w.starts.get(i) == Some(&at) {
            w.starts.remove(i);
        }
    }
}

#[cfg(all(test, not(workerpoolxt_loom)))]
mod tests {
    use super::RateLimit;
    use std::time::{Duration, Instant};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Reserves for the next ticket (jobs reserving in submission order).
    fn next(rate: &RateLimit, tickets: &mut usize, now: Instant) -> Option<Instant> {
        *tickets += 1;
        rate.reserve(now, *tickets)
    }

    fn kept(rate: &RateLimit) -> usize {
        rate.window.lock().unwrap().starts.len()
    }

    /// The first `n` start at once, the next ones `per` after the n-th
    /// before them.
    #[test]
    fn a_burst_of_n_then_one_window_per_n() {
        let (t0, mut t) = (Instant::now(), 0);
        let rate = RateLimit::new(3, ms(100));
        let got: Vec<_> = (0..8)
            .map(|_| next(&rate, &mut t, t0).unwrap() - t0)
            .collect();
        let want = [0, 0, 0, 100, 100, 100, 200, 200].map(ms);
        assert_eq!(got, want);
        // Asked later, a reservation is never before `now`.
        assert_eq!(next(&rate, &mut t, t0 + ms(250)).unwrap() - t0, ms(250));
        assert_eq!(next(&rate, &mut t, t0 + ms(250)).unwrap() - t0, ms(300));
    }

    /// Starts a window old are forgotten: a quiet spell gives a full burst
    /// again, and no more.
    #[test]
    fn a_quiet_window_gives_a_whole_burst_back() {
        let (t0, mut t) = (Instant::now(), 0);
        let rate = RateLimit::new(2, ms(10));
        assert_eq!(next(&rate, &mut t, t0), Some(t0));
        assert_eq!(next(&rate, &mut t, t0 + ms(3)), Some(t0 + ms(3)));
        // At 10 the first start leaves the window ([10, 20) holds 3 only).
        assert_eq!(next(&rate, &mut t, t0 + ms(9)), Some(t0 + ms(10)));
        let later = t0 + ms(1_000);
        assert_eq!(next(&rate, &mut t, later), Some(later));
        assert_eq!(next(&rate, &mut t, later), Some(later));
        assert_eq!(next(&rate, &mut t, later), Some(later + ms(10)));
        assert_eq!(kept(&rate), 3, "the old ones forgotten");
    }

    /// A withdrawn time goes to the next reservation; later reservations
    /// keep theirs; a claimed time refunded goes back too.
    #[test]
    fn a_withdrawn_time_goes_to_the_next_reservation() {
        let t0 = Instant::now();
        let rate = RateLimit::new(1, ms(100));
        assert_eq!(rate.reserve(t0, 1), Some(t0));
        assert_eq!(rate.claim(1, t0), Some(t0));
        assert_eq!(rate.reserve(t0, 2), Some(t0 + ms(100)));
        rate.withdraw(2);
        assert_eq!(rate.reserve(t0 + ms(5), 3), Some(t0 + ms(100)));
        // Two waiting; the first gives its time back: the second keeps its
        // own, and the next one comes after it (the gap stays).
        assert_eq!(rate.reserve(t0 + ms(5), 4), Some(t0 + ms(200)));
        rate.withdraw(3);
        assert_eq!(rate.time_of(4), Some(t0 + ms(200)));
        assert_eq!(rate.reserve(t0 + ms(6), 5), Some(t0 + ms(300)));
        // A time not come yet is not claimed; a refund of a claimed time
        // gives it back; of a time not kept, changes nothing.
        assert_eq!(rate.claim(4, t0 + ms(199)), None);
        assert_eq!(rate.claim(4, t0 + ms(200)), Some(t0 + ms(200)));
        rate.refund(t0 + ms(200));
        rate.refund(t0 + ms(7));
        assert_eq!(kept(&rate), 2);
    }

    /// Jobs that reserve out of ticket order still get their times in
    /// ticket order: the later ticket that reserved first is moved later.
    #[test]
    fn times_go_in_ticket_order_whoever_reserves_first() {
        let t0 = Instant::now();
        let rate = RateLimit::new(1, ms(100));
        assert_eq!(rate.reserve(t0, 1), Some(t0));
        assert_eq!(rate.reserve(t0, 3), Some(t0 + ms(100)));
        // Ticket 2 reserves after 3: it gets 3's time, 3 the next one.
        assert_eq!(rate.reserve(t0, 2), Some(t0 + ms(100)));
        assert_eq!(rate.time_of(3), Some(t0 + ms(200)));
        // A claimed time is no one else's: ticket 1 started at t0.
        assert_eq!(rate.claim(1, t0), Some(t0));
        assert_eq!(rate.claim(3, t0 + ms(100)), None, "not its time any more");
        assert_eq!(rate.claim(2, t0 + ms(100)), Some(t0 + ms(100)));
        assert_eq!(rate.claim(3, t0 + ms(200)), Some(t0 + ms(200)));
    }

    /// A window too long for the clock: the first `n` start, the next one
    /// gets no time (it waits for ever) and reserves nothing.
    #[test]
    fn a_window_past_the_clocks_range_never_opens_again() {
        let (t0, mut t) = (Instant::now(), 0);
        let rate = RateLimit::new(2, Duration::MAX);
        assert_eq!(next(&rate, &mut t, t0), Some(t0));
        assert_eq!(next(&rate, &mut t, t0 + ms(1)), Some(t0 + ms(1)));
        assert_eq!(next(&rate, &mut t, t0 + ms(2)), None);
        assert_eq!(kept(&rate), 2);
        assert_eq!(rate.time_of(3), None);
    }

    /// Over random reservations (some out of ticket order), claims and
    /// withdrawals at random times: the times kept never put more than `n`
    /// in a half-open window of `per`, a reservation is never before `now`,
    /// and the waiting jobs' times are always in ticket order.
    #[test]
    fn never_more_than_n_in_any_window_over_random_sequences() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for round in 0..300 {
            let n = 1 + next(4) as usize;
            let per = ms(1 + next(50));
            let rate = RateLimit::new(n, per);
            let t0 = Instant::now();
            let mut now = t0;
            let mut kept: Vec<Instant> = Vec::new();
            let mut waiting: Vec<usize> = Vec::new();
            let mut tickets = 0;
            for _ in 0..60 {
                now += ms(next(20));
                // Times come: starts. A few waiting jobs end first.
                waiting.retain(|t| match rate.claim(*t, now) {
                    Some(at) => {
                        kept.push(at);
                        false
                    }
                    None => true,
                });
                if !waiting.is_empty() && next(4) == 0 {
                    let i = next(waiting.len() as u64) as usize;
                    rate.withdraw(waiting.swap_remove(i));
                }
                // Two jobs taken together; now and then the second reserves
                // first.
                tickets += 2;
                let mut order = [tickets - 1, tickets];
                if next(3) == 0 {
                    order.swap(0, 1);
                }
                for t in order {
                    let at = rate.reserve(now, t).unwrap();
                    assert!(at >= now, "round {round}: reserved in the past");
                    waiting.push(t);
                }
                let mut times: Vec<(usize, Instant)> = waiting
                    .iter()
                    .map(|t| (*t, rate.time_of(*t).unwrap()))
                    .collect();
                times.sort();
                assert!(
                    times.windows(2).all(|w| w[0].1 <= w[1].1),
                    "round {round}: times out of ticket order: {times:?}"
                );
            }
            // Every start and every reservation still standing.
            kept.extend(waiting.iter().map(|t| rate.time_of(*t).unwrap()));
            kept.sort();
            for (i, a) in kept.iter().enumerate() {
                let inside = kept[i..].iter().take_while(|b| **b < *a + per).count();
                assert!(
                    inside <= n,
                    "round {round}: {inside} starts in [{:?}, +{per:?}) with n = {n}",
                    *a - t0
                );
            }
        }
    }
}

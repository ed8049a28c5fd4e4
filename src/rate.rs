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
//! its time back ([`refund`](RateLimit::refund)); the later reservations
//! keep theirs (a gap, never a start over the rate).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::sync::{lock, Mutex};

/// A sliding window of job starts (see the module docs).
pub(crate) struct RateLimit {
    n: usize,
    per: Duration,
    /// The starts that may still count in a window (from `per` ago on),
    /// sorted; the later ones may be reservations in the future.
    starts: Mutex<VecDeque<Instant>>,
}

impl RateLimit {
    /// At most `n` starts (at least 1) in any window of `per` (not zero).
    pub(crate) fn new(n: usize, per: Duration) -> RateLimit {
        debug_assert!(n > 0 && !per.is_zero(), "checked by the builder");
        RateLimit {
            n,
            per,
            starts: Mutex::new(VecDeque::new()),
        }
    }

    /// Reserves a start for a job at `now` or later: the earliest time that
    /// keeps every window within the limit. `None` if that time cannot be
    /// expressed (a `per` past the clock's range): the job waits for ever
    /// (or for its cancel, deadline or stop), and nothing is reserved.
    pub(crate) fn reserve(&self, now: Instant) -> Option<Instant> {
        let mut starts = lock(&self.starts);
        // Out of every window from `now` on: forgotten.
        while starts
            .front()
            .is_some_and(|t| t.checked_add(self.per).is_some_and(|end| end <= now))
        {
            starts.pop_front();
        }
        let at = if starts.len() < self.n {
            now
        } else {
            // The n-th latest leaves the window at `per` after it.
            starts[starts.len() - self.n]
                .checked_add(self.per)?
                .max(now)
        };
        // Later than any time kept, unless refunds left a gap: sorted in.
        let i = starts.partition_point(|t| *t <= at);
        starts.insert(i, at);
        Some(at)
    }

    /// Gives back a start reserved at `at` that will not happen (its job
    /// ended first). Nothing if that time was forgotten already.
    pub(crate) fn refund(&self, at: Instant) {
        let mut starts = lock(&self.starts);
        let i = starts.partition_point(|t| *t < at);
        if starts.get(i) == Some(&at) {
            starts.remove(i);
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

    /// The first `n` start at once, the next ones `per` after the n-th
    /// before them.
    #[test]
    fn a_burst_of_n_then_one_window_per_n() {
        let t0 = Instant::now();
        let rate = RateLimit::new(3, ms(100));
        let got: Vec<_> = (0..8).map(|_| rate.reserve(t0).unwrap() - t0).collect();
        let want = [0, 0, 0, 100, 100, 100, 200, 200].map(ms);
        assert_eq!(got, want);
        // Asked later, a reservation is never before `now`.
        assert_eq!(rate.reserve(t0 + ms(250)).unwrap() - t0, ms(250));
        assert_eq!(rate.reserve(t0 + ms(250)).unwrap() - t0, ms(300));
    }

    /// Starts a window old are forgotten: a quiet spell gives a full burst
    /// again, and no more.
    #[test]
    fn a_quiet_window_gives_a_whole_burst_back() {
        let t0 = Instant::now();
        let rate = RateLimit::new(2, ms(10));
        assert_eq!(rate.reserve(t0), Some(t0));
        assert_eq!(rate.reserve(t0 + ms(3)), Some(t0 + ms(3)));
        // At 10 the first start leaves the window ([10, 20) holds 3 only).
        assert_eq!(rate.reserve(t0 + ms(9)), Some(t0 + ms(10)));
        let later = t0 + ms(1_000);
        assert_eq!(rate.reserve(later), Some(later));
        assert_eq!(rate.reserve(later), Some(later));
        assert_eq!(rate.reserve(later), Some(later + ms(10)));
        assert_eq!(
            rate.starts.lock().unwrap().len(),
            3,
            "the old ones forgotten"
        );
    }

    /// A refunded time goes to the next reservation; later reservations
    /// keep theirs.
    #[test]
    fn a_refund_goes_to_the_next_reservation() {
        let t0 = Instant::now();
        let rate = RateLimit::new(1, ms(100));
        assert_eq!(rate.reserve(t0), Some(t0));
        let b = rate.reserve(t0).unwrap();
        assert_eq!(b, t0 + ms(100));
        rate.refund(b);
        assert_eq!(rate.reserve(t0 + ms(5)), Some(t0 + ms(100)));
        // Two waiting; the first gives its time back: the second keeps its
        // own, and the next one comes after it (the gap stays).
        let c = rate.reserve(t0 + ms(5)).unwrap();
        assert_eq!(c, t0 + ms(200));
        rate.refund(t0 + ms(100));
        assert_eq!(rate.reserve(t0 + ms(6)), Some(t0 + ms(300)));
        // A refund of a time not kept changes nothing.
        rate.refund(t0 + ms(7));
        assert_eq!(rate.starts.lock().unwrap().len(), 3);
    }

    /// A window too long for the clock: the first `n` start, the next one
    /// gets no time (it waits for ever) and reserves nothing.
    #[test]
    fn a_window_past_the_clocks_range_never_opens_again() {
        let t0 = Instant::now();
        let rate = RateLimit::new(2, Duration::MAX);
        assert_eq!(rate.reserve(t0), Some(t0));
        assert_eq!(rate.reserve(t0 + ms(1)), Some(t0 + ms(1)));
        assert_eq!(rate.reserve(t0 + ms(2)), None);
        assert_eq!(rate.starts.lock().unwrap().len(), 2);
    }

    /// Over random reservations and refunds at random times, the times kept
    /// (the starts) never put more than `n` in a half-open window of `per`;
    /// and a reservation is `now`, or exactly `per` after a time kept (it
    /// waits no longer than the window needs).
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
            let mut pending: Vec<Instant> = Vec::new();
            for _ in 0..60 {
                now += ms(next(20));
                // Reservations due by now are starts; a few others are
                // refunded (their jobs ended first).
                pending.retain(|at| {
                    if *at <= now {
                        kept.push(*at);
                        false
                    } else {
                        true
                    }
                });
                if !pending.is_empty() && next(4) == 0 {
                    let i = next(pending.len() as u64) as usize;
                    rate.refund(pending.swap_remove(i));
                }
                let at = rate.reserve(now).unwrap();
                assert!(at >= now, "round {round}: reserved in the past");
                assert!(
                    at == now || kept.iter().chain(&pending).any(|t| *t + per == at),
                    "round {round}: reserved later than the window needs"
                );
                pending.push(at);
            }
            // Every start and every reservation still standing.
            kept.extend(pending);
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

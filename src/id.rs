//! [`JobId`]: which job of its pool a handle, a context or an outcome is.

use std::fmt;

/// A job's id: unique in its pool, increasing in submission order.
///
/// Every submit gets one, the same in the job's [`ResultHandle`](crate::ResultHandle),
/// its [`JobContext`](crate::JobContext) and its [`Outcome`](crate::Outcome),
/// so results can be mapped back to their inputs without parsing names.
/// Ids of different pools are unrelated.
///
/// The jobs of a pool are numbered 1, 2, 3, … in the order their submits
/// took their place (a submit refused because the pool had stopped or its
/// bounded queue was full gets its number too), and display as that number.
///
/// # Examples
///
/// ```
/// use workerpoolxt::Pool;
///
/// let pool = Pool::new(2);
/// let a = pool.submit(async { "a" });
/// let b = pool.submit(async { "b" });
/// assert!(a.id() < b.id());
/// assert_eq!(a.id().to_string(), "1");
/// let id = b.id();
/// assert_eq!(b.outcome().wait().id(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(u64);

impl JobId {
    /// The id of the job with queue ticket `ticket` (from 0).
    pub(crate) fn of_ticket(ticket: usize) -> JobId {
        JobId(ticket as u64 + 1)
    }

    /// The job's number in its pool, from 1.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The number, with the formatter's width and alignment (`{:>4}`).
impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::JobId;

    #[test]
    fn ids_count_from_one_in_ticket_order() {
        let (a, b) = (JobId::of_ticket(0), JobId::of_ticket(1));
        assert!(a < b);
        assert_eq!((a.get(), b.to_string()), (1, "2".to_string()));
        assert_eq!(format!("{b:?}"), "JobId(2)");
    }
}

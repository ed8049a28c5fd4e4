//! Wall-clock time as UTC milliseconds since the Unix epoch, the unit every
//! stored time uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in UTC milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// A time as UTC milliseconds since the Unix epoch (negative before it).
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds (negative counts as zero) as a duration.
pub(crate) fn ms_dur(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

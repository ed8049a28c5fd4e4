//! Tracing of jobs (cargo feature `tracing`): a span per job with its name,
//! attempt and outcome, and events for retry, timeout, cancel and panic.
//! Without the feature every method here is empty and `Trace` has no size.

#[cfg(feature = "tracing")]
mod imp {
    use std::time::Duration;

    use crate::metrics::End;

    /// The span of one job.
    pub(crate) struct Trace(tracing::Span);

    impl Trace {
        pub(crate) fn none() -> Trace {
            Trace(tracing::Span::none())
        }

        /// Whether no span was started yet.
        pub(crate) fn is_none(&self) -> bool {
            self.0.is_none()
        }

        pub(crate) fn start(name: Option<&str>) -> Trace {
            Trace(tracing::info_span!(
                "job",
                name = name.unwrap_or(""),
                attempt = tracing::field::Empty,
                outcome = tracing::field::Empty,
            ))
        }

        /// Enters the span for one poll (an owned guard, so the task stays
        /// free to change while it is entered).
        pub(crate) fn enter(&self) -> tracing::span::EnteredSpan {
            self.0.clone().entered()
        }

        pub(crate) fn attempt(&self, attempt: u32) {
            self.0.record("attempt", attempt);
        }

        pub(crate) fn retry(&self, attempt: u32, delay: Duration) {
            tracing::debug!(parent: &self.0, attempt, ?delay, "job failed; retrying");
        }

        pub(crate) fn interrupted(&self, how: End) {
            match how {
                End::TimedOut => tracing::info!(parent: &self.0, "job timed out"),
                _ => tracing::info!(parent: &self.0, "job cancelled"),
            }
        }

        pub(crate) fn panicked(&self, message: &str) {
            tracing::warn!(parent: &self.0, panic = message, "job panicked");
        }

        pub(crate) fn finished(&self, how: End) {
            self.0.record("outcome", how.label());
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod imp {
    use std::time::Duration;

    use crate::metrics::End;

    /// Nothing: the `tracing` feature is off.
    pub(crate) struct Trace;

    impl Trace {
        pub(crate) fn none() -> Trace {
            Trace
        }
        pub(crate) fn is_none(&self) -> bool {
            true
        }
        pub(crate) fn start(_name: Option<&str>) -> Trace {
            Trace
        }
        pub(crate) fn enter(&self) {}
        pub(crate) fn attempt(&self, _attempt: u32) {}
        pub(crate) fn retry(&self, _attempt: u32, _delay: Duration) {}
        pub(crate) fn interrupted(&self, _how: End) {}
        pub(crate) fn panicked(&self, _message: &str) {}
        pub(crate) fn finished(&self, _how: End) {}
    }
}

pub(crate) use imp::Trace;

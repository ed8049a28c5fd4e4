//! [`Pool::pause`](crate::Pool::pause): its future, [`Pause`], and its
//! guard, [`PauseGuard`]. The pause's state in the pool (barriers, held
//! jobs) is the pool's shared state's (`src/shared.rs`); the worker that
//! holds a job back is `src/worker.rs`'s.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::future::FusedFuture;

use crate::runtime::current_job;
use crate::shared::{Listening, Shared};
use crate::sync::Arc;

/// What a pause waits for next.
enum Wait {
    /// The pause guard another pause holds, to be dropped.
    Unpaused,
    /// The jobs before its barrier to end, and no job to run.
    Quiet,
}

impl Pause {
    /// Registers a pause of `shared` at once: jobs submitted from now on
    /// are held, even before the future is polled.
    pub(crate) fn new(shared: Arc<Shared>) -> Pause {
        let barrier = shared.add_pause();
        Pause {
            state: Some(PauseState {
                shared,
                barrier,
                holder: false,
                holds_all: false,
            }),
            listening: Listening::default(),
        }
    }
}

/// One registered pause, from `pause()` to the guard's drop: what it holds,
/// given back exactly once, whether the future is withdrawn or the guard
/// dropped.
struct PauseState {
    shared: Arc<Shared>,
    /// The first queue ticket this pause holds back.
    barrier: usize,
    /// Holds the pool's one pause (`pause_held`).
    holder: bool,
    /// Owns a count of `hold_all` (once it took hold).
    holds_all: bool,
}

impl Drop for PauseState {
    fn drop(&mut self) {
        let shared = &self.shared;
        if self.holds_all {
            shared.release_hold();
        }
        if self.holder {
            shared.release_pause();
        }
        shared.remove_pause(self.barrier);
    }
}

/// The future of [`Pool::pause`](crate::Pool::pause): resolves to a [`PauseGuard`] once the jobs
/// queued before it have run and no job runs.
///
/// Dropping it before it resolves withdraws the pause.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Pause {
    /// `None` once resolved (moved into the guard).
    state: Option<PauseState>,
    listening: Listening,
}

impl Future for Pause {
    type Output = PauseGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PauseGuard> {
        let this = &mut *self;
        if let Some(state) = this.state.as_ref() {
            let shared = &state.shared;
            if current_job::get().is_some_and(|job| shared.holds_jobs_of(job.pool)) {
                panic!(
                    "workerpoolxt: Pool::pause() awaited inside a job of the same pool \
                     (or of one of its sub-pools): it waits until no job runs, so it \
                     would wait for its own job for ever; pause the pool from outside \
                     its jobs"
                );
            }
        }
        loop {
            let Some(state) = this.state.as_mut() else {
                // Polled after it resolved.
                return Poll::Pending;
            };
            let shared = state.shared.clone();
            let event = if !shared.is_open() {
                // A stopped pool: nothing to pause.
                None
            } else if !state.holder {
                if shared.try_hold_pause() {
                    state.holder = true;
                    this.listening.stop();
                    continue;
                }
                // Another guard holds the pause: wait for its end.
                Some(Wait::Unpaused)
            } else if shared.try_take_hold(state.barrier) {
                state.holds_all = true;
                None
            } else {
                Some(Wait::Quiet)
            };
            let Some(event) = event else {
                this.listening.stop();
                let state = this.state.take().expect("checked above");
                return Poll::Ready(PauseGuard { _state: state });
            };
            let listen = || match event {
                Wait::Unpaused => shared.listen_unpaused(),
                Wait::Quiet => shared.listen_quiet(),
            };
            if this.listening.wait(cx, listen).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl FusedFuture for Pause {
    fn is_terminated(&self) -> bool {
        self.state.is_none()
    }
}

impl fmt::Debug for Pause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pause")
            .field("done", &self.state.is_none())
            .finish()
    }
}

/// Keeps the pool paused while it lives; see [`Pool::pause`](crate::Pool::pause).
#[must_use = "dropping the guard resumes the pool at once"]
pub struct PauseGuard {
    _state: PauseState,
}

impl fmt::Debug for PauseGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PauseGuard").finish_non_exhaustive()
    }
}

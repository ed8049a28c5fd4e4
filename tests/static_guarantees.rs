//! Compile-time guarantees of the public types: these functions only have to
//! compile. A regression (a type losing `Send`, `Unpin`, `FusedFuture`, ...)
//! breaks the build of this test.
//!
//! The negative guarantee — a `ResultHandle` of a non-`Send` output such as
//! `Rc<u8>` cannot be made, because `submit` requires `F::Output: Send` — can
//! only be checked by a `compile_fail` doc-test in the crate; see TESTING.md.

use std::error::Error;
use std::future::Future;

use futures::future::FusedFuture;
use workerpoolxt::{
    Backoff, CancelToken, Job, JobContext, JobError, Metrics, Options, Outcome, OutcomeFuture,
    Pause, PauseGuard, Pool, ResultHandle, ResultSet, Stop, SubmitWait,
};

fn send<T: Send>() {}
fn send_sync<T: Send + Sync>() {}
fn send_sync_clone<T: Send + Sync + Clone>() {}
fn handle_like<T: Send + Unpin + Future + FusedFuture>() {}
fn error_send_sync<T: Error + Send + Sync + 'static>() {}

#[derive(Debug)]
struct MyError;
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}
impl Error for MyError {}

/// A non-`Sync` but `Send` value (a `Cell`) is fine as a job's output.
type SendNotSync = std::cell::Cell<u8>;

// Pool, CancelToken, JobContext and Options are Send + Sync + Clone.
#[test]
fn shared_types_are_send_sync_clone() {
    send_sync_clone::<Pool>();
    send_sync_clone::<CancelToken>();
    send_sync_clone::<JobContext>();
    send_sync_clone::<Options>();
    send_sync_clone::<Backoff>();
    send_sync::<Metrics>();
}

// ResultHandle and OutcomeFuture are Send + Unpin + FusedFuture, also for
// outputs and errors that are Send but not Sync.
#[test]
fn handles_are_send_unpin_fused_futures() {
    handle_like::<ResultHandle<u8>>();
    handle_like::<ResultHandle<String, MyError>>();
    handle_like::<ResultHandle<SendNotSync, SendNotSync>>();
    handle_like::<OutcomeFuture<u8>>();
    handle_like::<OutcomeFuture<Vec<u8>, std::io::Error>>();
    handle_like::<OutcomeFuture<SendNotSync, SendNotSync>>();
    send::<ResultSet<u8>>();
    send::<Outcome<u8, MyError>>();
}

// JobError<E> is Error + Send + Sync whenever E is.
#[test]
fn job_error_is_an_error_when_its_payload_is() {
    error_send_sync::<JobError>();
    error_send_sync::<JobError<MyError>>();
    error_send_sync::<JobError<std::io::Error>>();
    // Boxes into the usual dynamic error.
    let e: Box<dyn Error + Send + Sync> = Box::new(JobError::<MyError>::TimedOut);
    assert_eq!(e.to_string(), JobError::<MyError>::TimedOut.to_string());
}

// The pool's own futures (stop, pause, submit-and-wait) are Send, so they
// can be awaited inside spawned tasks; Stop and Pause are also Unpin and fused.
#[test]
fn pool_futures_are_send() {
    handle_like::<Stop>();
    handle_like::<Pause>();
    send::<PauseGuard>();
    send::<SubmitWait<std::future::Ready<u8>, u8>>();
    send::<SubmitWait<fn() -> u8, u8>>();
    send::<SubmitWait<Job<u8, MyError>, u8, MyError>>();
    send::<Job<u8, MyError>>();
    fn unpin<T: Unpin>() {}
    unpin::<SubmitWait<std::future::Ready<u8>, u8>>();
}

// Every future the pool hands out can be moved into a spawned task.
#[test]
#[cfg_attr(
    miri,
    ignore = "the embedded executor needs timerfd_create, which miri lacks"
)]
fn pool_futures_can_be_spawned() {
    fn spawnable<F: Future + Send + 'static>(_: &F) {}
    let pool = Pool::new(1);
    let h = pool.submit(async { 1u8 });
    spawnable(&h);
    let sw = pool.submit_wait(async { 2u8 });
    spawnable(&sw);
    let pause = pool.pause();
    spawnable(&pause);
    let stop = pool.stop_wait();
    spawnable(&stop);
    drop((h, sw, pause));
    futures_lite::future::block_on(stop);
}

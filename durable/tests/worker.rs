//! The worker's own rules: what its builder refuses, and a stop after its
//! `run` future was dropped.

mod common;

use std::time::Duration;

use common::{block_on, client, queue, sqlite, Echo};
use futures_lite::FutureExt;
use workerpoolxt_durable::{Error, Handler, JobContext, NewJob, Worker};

struct Hostile;
impl Handler for Hostile {
    const NAME: &'static str = "x'; DROP TABLE wpxt_jobs; --";
    type Args = ();
    type Output = ();
    type Error = String;
    async fn run(&self, _: (), _ctx: JobContext) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn the_builder_refuses_hostile_names_and_bad_settings() {
    let (backend, _dir) = sqlite();
    let e = Worker::builder(backend.clone(), "jobs")
        .handler(Hostile)
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid handler name"), "{e}");
    let e = Worker::builder(backend.clone(), "a:*")
        .handler(Echo)
        .unwrap()
        .build()
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid queue name"), "{e}");
    let e = Worker::builder(backend.clone(), "jobs")
        .handler(Echo)
        .unwrap()
        .handler(Echo)
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    let e = Worker::builder(backend.clone(), "jobs")
        .max_workers(0)
        .handler(Echo)
        .unwrap()
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    let e = Worker::builder(backend.clone(), "jobs")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    // A hostile handler name cannot be enqueued either.
    let job = NewJob::new::<Hostile>(&()).unwrap();
    let e = block_on(client(&backend).enqueue("jobs", job)).unwrap_err();
    assert!(e.to_string().starts_with("invalid handler name"), "{e}");
}

#[test]
fn a_stop_after_run_was_dropped_returns() {
    let (backend, _dir) = sqlite();
    let q = queue("dropped-run");
    let w = Worker::builder(backend.clone(), &q)
        .handler(Echo)
        .unwrap()
        .build()
        .unwrap();
    // Drop `run`'s future while it waits in its claim loop.
    let dropped = block_on(w.run().or(async {
        async_io::Timer::after(Duration::from_millis(50)).await;
        Ok(())
    }));
    dropped.unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stopper = w.clone();
    std::thread::spawn(move || {
        tx.send(block_on(stopper.stop(Duration::from_secs(1))))
            .unwrap()
    });
    let report = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("stop hung after run was dropped");
    assert_eq!(report.handed_back, 0);
    // `run` cannot be run twice.
    assert!(matches!(block_on(w.run()), Err(Error::Config(_))));
}

//! Leases: re-delivery after expiry with the attempt count kept, fencing of
//! late ends, the `max_workers` bound on leases, and a stop's hand-back.
//! Each test runs on every backend.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{block_on, client, queue, serve, wait_until, Echo, Probe, Sleep};
use workerpoolxt_durable::{Ack, Backend, End, NewJob, Status, Worker};

on_each_backend!(
    an_expired_lease_is_delivered_again_and_the_late_end_refused,
    an_expired_lease_on_the_last_attempt_makes_the_job_dead,
    a_worker_never_holds_more_leases_than_max_workers,
    a_stop_hands_running_jobs_back_after_its_grace,
    a_stop_lets_jobs_end_within_its_grace,
    a_stop_during_a_claim_hands_back_what_the_claim_leased,
);

fn done(output: &str) -> End {
    End::Succeeded {
        output: output.into(),
        run_ms: 1,
    }
}

fn an_expired_lease_is_delivered_again_and_the_late_end_refused(backend: Arc<dyn Backend>) {
    let q = queue("expire");
    let client = client(&backend);
    let job = NewJob::new::<Echo>(&"x".into()).unwrap().max_attempts(3);
    let handle = block_on(client.enqueue(&q, job)).unwrap();
    let first = backend
        .claim(&q, "gone", 5, Duration::from_millis(100))
        .unwrap();
    assert_eq!(first.len(), 1);
    let first = first.into_iter().next().unwrap();
    assert_eq!(first.envelope.attempts, 1);
    // While the lease holds, nobody else gets the job.
    assert!(backend
        .claim(&q, "other", 5, Duration::from_secs(30))
        .unwrap()
        .is_empty());
    let mut second = Vec::new();
    wait_until(10, "the expired lease to be claimed again", || {
        second = backend
            .claim(&q, "other", 5, Duration::from_secs(30))
            .unwrap();
        !second.is_empty()
    });
    let second = second.into_iter().next().unwrap();
    assert_eq!(second.envelope.attempts, 2, "the attempt count is kept");
    assert!(second.token > first.token);
    assert!(!backend.renew(&first, Duration::from_secs(30)).unwrap());
    assert_eq!(
        backend.finish(&first, &done("\"late\"")).unwrap(),
        Ack::Refused
    );
    assert!(backend.renew(&second, Duration::from_secs(30)).unwrap());
    assert_eq!(
        backend.finish(&second, &done("\"on time\"")).unwrap(),
        Ack::Accepted
    );
    assert_eq!(
        backend.finish(&first, &done("\"late\"")).unwrap(),
        Ack::Refused
    );
    assert_eq!(
        backend.finish(&second, &done("\"twice\"")).unwrap(),
        Ack::Refused
    );
    let record = block_on(client.record(handle.id())).unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (Status::Succeeded, 2));
    assert_eq!(record.output.as_deref(), Some("\"on time\""));
}

fn an_expired_lease_on_the_last_attempt_makes_the_job_dead(backend: Arc<dyn Backend>) {
    let q = queue("expire-last");
    let client = client(&backend);
    let handle = block_on(client.enqueue(&q, NewJob::new::<Echo>(&"x".into()).unwrap())).unwrap();
    let first = backend
        .claim(&q, "gone", 1, Duration::from_millis(50))
        .unwrap();
    assert_eq!(first.len(), 1);
    wait_until(10, "the job to die", || {
        assert!(backend
            .claim(&q, "other", 1, Duration::from_secs(30))
            .unwrap()
            .is_empty());
        block_on(client.record(handle.id()))
            .unwrap()
            .unwrap()
            .status
            == Status::Dead
    });
    let record = block_on(client.record(handle.id())).unwrap().unwrap();
    assert_eq!(record.attempts, 1);
    assert!(record
        .error
        .unwrap()
        .contains("lease of attempt 1 of 1 expired"));
    assert_eq!(backend.finish(&first[0], &done("1")).unwrap(), Ack::Refused);
}

fn a_worker_never_holds_more_leases_than_max_workers(backend: Arc<dyn Backend>) {
    let q = queue("bound");
    let client = client(&backend);
    let probe = Arc::new(Probe::default());
    let w = Worker::builder(backend.clone(), &q)
        .max_workers(3)
        .poll_interval(Duration::from_millis(10))
        .handler(Sleep(probe.clone()))
        .unwrap()
        .build()
        .unwrap();
    let handles: Vec<_> = (0..30)
        .map(|_| block_on(client.enqueue(&q, NewJob::new::<Sleep>(&20).unwrap())).unwrap())
        .collect();
    // Sample the leases the store shows while the worker runs.
    let (stop, most) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sampler = {
        let (stop, most, client, q) = (stop.clone(), most.clone(), client.clone(), q.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let running = block_on(client.counts(&q)).unwrap().running;
                most.fetch_max(running, Ordering::SeqCst);
            }
        })
    };
    let serving = serve(&w);
    for h in &handles {
        assert_eq!(
            block_on(client.outcome(h)).unwrap().status,
            Status::Succeeded
        );
    }
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
    assert!(
        most.load(Ordering::SeqCst) <= 3,
        "the store showed {most:?} leases"
    );
    assert!(probe.max() <= 3 && w.stats().max_leased <= 3);
    // The bound is reached, so the test can tell a bound from a stall.
    assert_eq!((probe.max(), w.stats().max_leased), (3, 3));
    assert_eq!(w.stats().succeeded, 30);
}

fn a_stop_hands_running_jobs_back_after_its_grace(backend: Arc<dyn Backend>) {
    let q = queue("hand-back");
    let client = client(&backend);
    let probe = Arc::new(Probe::default());
    let w = Worker::builder(backend.clone(), &q)
        .max_workers(2)
        .handler(Sleep(probe.clone()))
        .unwrap()
        .build()
        .unwrap();
    let serving = serve(&w);
    for _ in 0..3 {
        block_on(client.enqueue(&q, NewJob::new::<Sleep>(&60_000).unwrap())).unwrap();
    }
    wait_until(10, "two jobs to run", || probe.running() == 2);
    let report = block_on(w.stop(Duration::from_millis(100)));
    serving.join().unwrap();
    assert_eq!((report.handed_back, report.finished), (2, 0));
    assert_eq!((probe.running(), w.leased()), (0, 0));
    // Handed back at once, not left for the 30 s leases to expire; the
    // interrupted attempt is not counted.
    let counts = block_on(client.counts(&q)).unwrap();
    assert_eq!((counts.ready, counts.running), (3, 0));
    let again = backend
        .claim(&q, "next", 3, Duration::from_secs(30))
        .unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|l| l.envelope.attempts == 1));
}

fn a_stop_lets_jobs_end_within_its_grace(backend: Arc<dyn Backend>) {
    let q = queue("grace");
    let client = client(&backend);
    let probe = Arc::new(Probe::default());
    let w = Worker::builder(backend.clone(), &q)
        .handler(Sleep(probe.clone()))
        .unwrap()
        .build()
        .unwrap();
    let serving = serve(&w);
    let handle = block_on(client.enqueue(&q, NewJob::new::<Sleep>(&200).unwrap())).unwrap();
    wait_until(10, "the job to run", || probe.running() == 1);
    let report = block_on(w.stop(Duration::from_secs(30)));
    serving.join().unwrap();
    assert_eq!((report.finished, report.handed_back), (1, 0));
    let record = block_on(client.record(handle.id())).unwrap().unwrap();
    assert_eq!(record.status, Status::Succeeded);
}

fn a_stop_during_a_claim_hands_back_what_the_claim_leased(backend: Arc<dyn Backend>) {
    let q = queue("stop-claim");
    let client = client(&backend);
    let probe = Arc::new(Probe::default());
    for _ in 0..4 {
        block_on(client.enqueue(&q, NewJob::new::<Sleep>(&60_000).unwrap())).unwrap();
    }
    // Stops land before, during and after the first claim; each must end
    // with every lease given back, never with a job started on a stopped
    // pool and its lease held forever.
    for _ in 0..20 {
        let w = Worker::builder(backend.clone(), &q)
            .handler(Sleep(probe.clone()))
            .unwrap()
            .build()
            .unwrap();
        let serving = serve(&w);
        block_on(w.stop(Duration::ZERO));
        serving.join().unwrap();
        assert_eq!(w.leased(), 0);
        let counts = block_on(client.counts(&q)).unwrap();
        assert_eq!((counts.ready, counts.running), (4, 0));
    }
    assert_eq!(probe.running(), 0);
}

//! Worker processes on one store (a SQLite file; PostgreSQL and Redis too
//! with their features and `WPXT_POSTGRES_URL` / `WPXT_REDIS_URL`): a worker killed with SIGKILL
//! mid-job, and two workers sharing 2,000 jobs while one of them stops.
//!
//! The worker processes are this test binary run again with
//! `WPXT_CHILD_STORE` set: `child_worker` then serves the queue until it reads
//! `stop <grace_ms>` on its standard input, and reports on its standard
//! output in lines that begin with `CHILD `.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{block_on, client, queue, wait_until, Nap, Probe, Sleep};
use workerpoolxt_durable::{
    Ack, Backend, End, Envelope, JobId, Lease, NewJob, RetryBackoff, SqliteBackend, Status, Worker,
};

/// A store that several processes can open.
#[derive(Debug, Clone)]
enum Store {
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
    #[cfg(feature = "redis")]
    Redis(String),
}

impl Store {
    fn open(&self) -> Arc<dyn Backend> {
        match self {
            Store::Sqlite(path) => Arc::new(SqliteBackend::open(path).unwrap()),
            #[cfg(feature = "postgres")]
            Store::Postgres(url) => {
                Arc::new(workerpoolxt_durable::PgBackend::connect(url).unwrap())
            }
            #[cfg(feature = "redis")]
            Store::Redis(url) => {
                Arc::new(workerpoolxt_durable::RedisBackend::connect(url).unwrap())
            }
        }
    }

    /// The store as one environment value, for a child process.
    fn to_env(&self) -> String {
        match self {
            Store::Sqlite(path) => format!("sqlite:{}", path.display()),
            #[cfg(feature = "postgres")]
            Store::Postgres(url) => format!("postgres:{url}"),
            #[cfg(feature = "redis")]
            Store::Redis(url) => format!("redis:{url}"),
        }
    }

    fn from_env(value: &str) -> Store {
        match value.split_once(':').unwrap() {
            ("sqlite", path) => Store::Sqlite(path.into()),
            #[cfg(feature = "postgres")]
            ("postgres", url) => Store::Postgres(url.into()),
            #[cfg(feature = "redis")]
            ("redis", url) => Store::Redis(url.into()),
            (other, _) => panic!("unknown store {other}"),
        }
    }

    /// A reader of the store past the backend, on a connection of its own.
    fn prober(&self) -> Box<dyn FnMut(Ask<'_>) -> i64 + Send> {
        match self {
            Store::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                Box::new(move |ask| {
                    let (sql, param) = ask.sql();
                    conn.query_row(sql, [param], |r| r.get(0)).unwrap()
                })
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(url) => {
                let mut conn = postgres::Client::connect(url, postgres::NoTls).unwrap();
                Box::new(move |ask| {
                    let (sql, param) = ask.sql();
                    conn.query_one(sql, &[&param]).unwrap().get(0)
                })
            }
            #[cfg(feature = "redis")]
            Store::Redis(url) => {
                let mut conn = redis::Client::open(url.as_str())
                    .unwrap()
                    .get_connection()
                    .unwrap();
                Box::new(move |ask| ask.on_redis(&mut conn))
            }
        }
    }

    fn ask(&self, ask: Ask<'_>) -> i64 {
        self.prober()(ask)
    }
}

/// What the tests read past the backend.
#[derive(Debug, Clone, Copy)]
enum Ask<'a> {
    /// The lease token of this job.
    Token(&'a str),
    /// The most leases one worker holds in this queue.
    MostLeases(&'a str),
    /// The leases this worker holds in this queue.
    LeasesOf(&'a str, &'a str),
}

impl<'a> Ask<'a> {
    /// The same SQL serves both SQL engines: `$1` is its one parameter.
    fn sql(self) -> (&'static str, &'a str) {
        match self {
            Ask::Token(id) => ("SELECT lease_token FROM wpxt_jobs WHERE id = $1", id),
            Ask::MostLeases(queue) => (
                "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM wpxt_jobs \
                 WHERE queue = $1 AND state = 'running' GROUP BY lease_worker) AS per_worker",
                queue,
            ),
            Ask::LeasesOf(worker, _) => (
                "SELECT COUNT(*) FROM wpxt_jobs WHERE state = 'running' AND lease_worker = $1",
                worker,
            ),
        }
    }

    /// Read in one script, so the view is atomic like a SQL query's.
    #[cfg(feature = "redis")]
    fn on_redis(self, conn: &mut redis::Connection) -> i64 {
        let per_worker = r#"
            local per, most = {}, 0
            for _, id in ipairs(redis.call('ZRANGE', 'wpxt:q:' .. ARGV[1] .. ':leased', 0, -1)) do
              local w = redis.call('HGET', 'wpxt:job:' .. id, 'lease_worker')
              if w and w ~= '' then
                per[w] = (per[w] or 0) + 1
                if per[w] > most then most = per[w] end
              end
            end
            if ARGV[2] == '' then return most end
            return per[ARGV[2]] or 0
        "#;
        match self {
            Ask::Token(id) => {
                redis::Commands::hget(conn, format!("wpxt:job:{id}"), "lease_token").unwrap()
            }
            Ask::MostLeases(queue) => redis::Script::new(per_worker)
                .arg(queue)
                .arg("")
                .invoke(conn)
                .unwrap(),
            Ask::LeasesOf(worker, queue) => redis::Script::new(per_worker)
                .arg(queue)
                .arg(worker)
                .invoke(conn)
                .unwrap(),
        }
    }
}

/// A worker process of this test binary.
struct ChildWorker {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    id: String,
}

impl ChildWorker {
    fn spawn(store: &Store, queue: &str, max_workers: usize, lease_ms: u64) -> ChildWorker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_worker", "--nocapture", "--test-threads=1"])
            .env("WPXT_CHILD_STORE", store.to_env())
            .env("WPXT_CHILD_QUEUE", queue)
            .env("WPXT_CHILD_MAX", max_workers.to_string())
            .env("WPXT_CHILD_LEASE_MS", lease_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                // The test harness may print its own words first.
                if let Some(at) = line.find("CHILD ") {
                    let _ = tx.send(line[at + "CHILD ".len()..].to_string());
                }
            }
        });
        let mut worker = ChildWorker {
            child,
            stdin,
            lines,
            id: String::new(),
        };
        let ready = worker.line();
        worker.id = ready.strip_prefix("ready ").unwrap().to_string();
        worker
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the child worker said nothing")
    }

    /// Stops it with this grace; returns its final report's fields.
    fn stop(mut self, grace_ms: u64) -> Vec<(String, u64)> {
        writeln!(self.stdin, "stop {grace_ms}").unwrap();
        let report = self.line();
        assert!(self.child.wait().unwrap().success());
        report
            .split_whitespace()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.parse().unwrap())
            })
            .collect()
    }
}

impl Drop for ChildWorker {
    /// A test that fails leaves no worker process behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(report: &[(String, u64)], key: &str) -> u64 {
    report.iter().find(|(k, _)| k == key).unwrap().1
}

/// The worker process; does nothing unless run by `ChildWorker::spawn`.
#[test]
fn child_worker() {
    let Ok(store) = std::env::var("WPXT_CHILD_STORE") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let backend = Store::from_env(&store).open();
    let probe = Arc::new(Probe::default());
    let worker = Worker::builder(backend, env("WPXT_CHILD_QUEUE"))
        .max_workers(env("WPXT_CHILD_MAX").parse().unwrap())
        .lease(Duration::from_millis(
            env("WPXT_CHILD_LEASE_MS").parse().unwrap(),
        ))
        .poll_interval(Duration::from_millis(10))
        .handler(Sleep(probe.clone()))
        .unwrap()
        .handler(Nap)
        .unwrap()
        .build()
        .unwrap();
    let serving = common::serve(&worker);
    println!("CHILD ready {}", worker.id());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let grace: u64 = line.trim().strip_prefix("stop ").unwrap().parse().unwrap();
    let report = block_on(worker.stop(Duration::from_millis(grace)));
    serving.join().unwrap();
    let s = worker.stats();
    println!(
        "CHILD succeeded={} refused={} lost={} handed_back={} max_leased={} max_running={} leased={}",
        s.succeeded,
        s.refused,
        s.lost,
        report.handed_back,
        s.max_leased,
        probe.max(),
        worker.leased()
    );
}

/// The lease token the store holds for a job now.
fn token_of(store: &Store, id: &JobId) -> i64 {
    store.ask(Ask::Token(id.as_str()))
}

#[cfg(feature = "redis")]
#[test]
fn redis_a_killed_worker_s_job_is_delivered_again_and_its_late_end_refused() {
    let Some(url) = common::redis_url() else {
        return;
    };
    a_killed_worker_s_job_is_delivered_again_and_its_late_end_refused(Store::Redis(url));
}

#[cfg(feature = "redis")]
#[test]
fn redis_two_worker_processes_share_2000_jobs_and_a_stop_hands_leases_back() {
    let Some(url) = common::redis_url() else {
        return;
    };
    two_worker_processes_share_2000_jobs_and_a_stop_hands_leases_back(Store::Redis(url));
}

#[test]
fn sqlite_a_killed_worker_s_job_is_delivered_again_and_its_late_end_refused() {
    let dir = tempfile::tempdir().unwrap();
    a_killed_worker_s_job_is_delivered_again_and_its_late_end_refused(Store::Sqlite(
        dir.path().join("jobs.db"),
    ));
}

#[test]
fn sqlite_two_worker_processes_share_2000_jobs_and_a_stop_hands_leases_back() {
    let dir = tempfile::tempdir().unwrap();
    two_worker_processes_share_2000_jobs_and_a_stop_hands_leases_back(Store::Sqlite(
        dir.path().join("jobs.db"),
    ));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_a_killed_worker_s_job_is_delivered_again_and_its_late_end_refused() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    a_killed_worker_s_job_is_delivered_again_and_its_late_end_refused(Store::Postgres(url));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_two_worker_processes_share_2000_jobs_and_a_stop_hands_leases_back() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    two_worker_processes_share_2000_jobs_and_a_stop_hands_leases_back(Store::Postgres(url));
}

fn a_killed_worker_s_job_is_delivered_again_and_its_late_end_refused(store: Store) {
    let backend = store.open();
    let q = queue("crash");
    let client = client(&backend);
    let job = NewJob::new::<Nap>(&60_000).unwrap().max_attempts(3);
    let handle = block_on(client.enqueue(&q, job)).unwrap();
    let mut doomed = ChildWorker::spawn(&store, &q, 1, 500);
    wait_until(30, "the child to lease the job", || {
        block_on(client.counts(&q)).unwrap().running == 1
    });
    let dead_token = token_of(&store, handle.id());
    doomed.child.kill().unwrap(); // SIGKILL
    doomed.child.wait().unwrap();

    let w = Worker::builder(backend.clone(), &q)
        .lease(Duration::from_millis(500))
        .poll_interval(Duration::from_millis(10))
        .handler(Nap)
        .unwrap()
        .build()
        .unwrap();
    let serving = common::serve(&w);
    let record = block_on(client.outcome(&handle)).unwrap();
    assert_eq!((record.status, record.attempts), (Status::Succeeded, 2));
    assert_eq!(record.output_as::<u32>().unwrap(), Some(2));
    block_on(w.stop(Duration::from_secs(5)));
    serving.join().unwrap();
    assert_eq!(w.stats().succeeded, 1);

    // The dead worker's acknowledgement, arriving late, is refused.
    let late = Lease {
        envelope: Envelope {
            id: handle.id().clone(),
            queue: q.clone(),
            handler: "nap".into(),
            payload: "60000".into(),
            name: None,
            timeout_ms: None,
            deadline_ms: None,
            attempts: 1,
            max_attempts: 3,
            backoff: RetryBackoff::None,
            idempotency_key: handle.id().to_string(),
            run_at_ms: 0,
            enqueued_at_ms: 0,
        },
        token: dead_token,
        claimed_at_ms: 0,
    };
    let end = End::Succeeded {
        output: "1".into(),
        run_ms: 60_000,
    };
    assert_eq!(backend.finish(&late, &end).unwrap(), Ack::Refused);
    let after = block_on(client.record(handle.id())).unwrap().unwrap();
    assert_eq!(
        (after.status, after.attempts, after.output),
        (Status::Succeeded, 2, Some("2".into()))
    );
}

fn two_worker_processes_share_2000_jobs_and_a_stop_hands_leases_back(store: Store) {
    const JOBS: usize = 2000;
    const MAX: u64 = 4;
    let backend = store.open();
    let q = queue("two");
    let client = client(&backend);
    let handles: Vec<_> = (0..JOBS)
        .map(|_| block_on(client.enqueue(&q, NewJob::new::<Sleep>(&3).unwrap())).unwrap())
        .collect();
    let a = ChildWorker::spawn(&store, &q, MAX as usize, 2_000);
    let b = ChildWorker::spawn(&store, &q, MAX as usize, 2_000);
    let (a_id, b_id) = (a.id.clone(), b.id.clone());

    // Sample the leases each process holds, as the store shows them.
    let (done, most) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicI64::new(0)),
    );
    let sampler = {
        let (done, most, q) = (done.clone(), most.clone(), q.clone());
        let mut probe = store.prober();
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let n = probe(Ask::MostLeases(&q));
                most.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    wait_until(120, "a quarter of the jobs", || {
        block_on(client.counts(&q)).unwrap().succeeded >= (JOBS / 4) as u64
    });
    let a_report = a.stop(0);
    // Its leases were handed back, not left to expire.
    let a_leases = store.ask(Ask::LeasesOf(&a_id, &q));
    assert_eq!(a_leases, 0, "process A still holds leases after its stop");
    assert_eq!(field(&a_report, "leased"), 0);

    wait_until(300, "every job", || {
        block_on(client.counts(&q)).unwrap().succeeded == JOBS as u64
    });
    let b_report = b.stop(5_000);
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    for h in &handles {
        let record = block_on(client.record(h.id())).unwrap().unwrap();
        assert_eq!(record.status, Status::Succeeded);
    }
    // Every job's success was stored exactly once, by one of the two.
    let stored = field(&a_report, "succeeded") + field(&b_report, "succeeded");
    assert_eq!(stored, JOBS as u64, "A: {a_report:?}, B: {b_report:?}");
    let counts = block_on(client.counts(&q)).unwrap();
    assert_eq!(
        (counts.succeeded, counts.running, counts.ready),
        (JOBS as u64, 0, 0)
    );
    // Neither ran or leased more than max_workers at once ...
    for r in [&a_report, &b_report] {
        assert!(
            field(r, "max_running") <= MAX && field(r, "max_leased") <= MAX,
            "{r:?}"
        );
    }
    assert!(
        most.load(Ordering::SeqCst) <= MAX as i64,
        "the store showed {most:?} leases of one process"
    );
    // ... and the bound was reached, so a stalled worker cannot pass.
    assert_eq!(field(&b_report, "max_running"), MAX, "{b_report:?}");
    assert!(b_id != a_id);
}

//! What the durable crate's test suites share: test handlers, a probe that
//! counts running jobs, stores on fresh files, and polling with a deadline.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use workerpoolxt_durable::{Backend, Client, Handler, JobContext, SqliteBackend, Worker};

/// A queue name no other test or earlier run uses.
pub fn queue(test: &str) -> String {
    format!("t-{test}-{:08x}", fastrand::u32(..))
}

/// A store on a fresh SQLite file; the directory lives as long as the
/// returned guard.
pub fn sqlite() -> (Arc<dyn Backend>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(dir.path().join("jobs.db")).unwrap();
    (Arc::new(backend), dir)
}

/// Blocks until `cond` holds, looking every 5 ms; panics with `what` after
/// `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the worker on a thread of its own until it is stopped.
pub fn serve(worker: &Worker) -> JoinHandle<()> {
    let worker = worker.clone();
    std::thread::spawn(move || futures_lite::future::block_on(worker.run()).unwrap())
}

pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::block_on(f)
}

pub fn client(backend: &Arc<dyn Backend>) -> Client {
    Client::from_arc(Arc::clone(backend)).poll_interval(Duration::from_millis(20))
}

/// Counts the handler runs in progress, the most at once, and the starts.
#[derive(Debug, Default)]
pub struct Probe {
    pub running: AtomicUsize,
    pub max: AtomicUsize,
    pub started: AtomicUsize,
}

impl Probe {
    pub fn enter(&self) -> ProbeGuard<'_> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        ProbeGuard(self)
    }
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// Leaves the probe when dropped: when the run ends or is cancelled.
pub struct ProbeGuard<'a>(&'a Probe);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Returns its text with the attempt number.
pub struct Echo;
impl Handler for Echo {
    const NAME: &'static str = "echo";
    type Args = String;
    type Output = String;
    type Error = String;
    async fn run(&self, text: String, ctx: JobContext) -> Result<String, String> {
        Ok(format!("{text}#{}", ctx.attempt()))
    }
}

/// Fails its first `n` attempts, then returns the attempt number and the
/// idempotency key.
pub struct Flaky;
impl Handler for Flaky {
    const NAME: &'static str = "flaky";
    type Args = u32;
    type Output = (u32, String);
    type Error = String;
    async fn run(&self, n: u32, ctx: JobContext) -> Result<(u32, String), String> {
        if ctx.attempt() <= n {
            Err(format!("flaky failure on attempt {}", ctx.attempt()))
        } else {
            Ok((ctx.attempt(), ctx.idempotency_key().to_string()))
        }
    }
}

/// Sleeps the given milliseconds, counted by its probe.
pub struct Sleep(pub Arc<Probe>);
impl Handler for Sleep {
    const NAME: &'static str = "sleep";
    type Args = u64;
    type Output = u32;
    type Error = String;
    async fn run(&self, ms: u64, ctx: JobContext) -> Result<u32, String> {
        let _in = self.0.enter();
        async_io::Timer::after(Duration::from_millis(ms)).await;
        Ok(ctx.attempt())
    }
}

/// Panics.
pub struct Boom;
impl Handler for Boom {
    const NAME: &'static str = "boom";
    type Args = ();
    type Output = ();
    type Error = String;
    async fn run(&self, _: (), _ctx: JobContext) -> Result<(), String> {
        panic!("boom on purpose")
    }
}

/// Declares each listed test function (taking the store) once per backend:
/// in `mod sqlite` always, in `mod postgres` with the `postgres` feature and
/// in `mod redis` with the `redis` feature, where each is skipped, saying
/// why, unless `WPXT_POSTGRES_URL` or `WPXT_REDIS_URL` is set.
#[macro_export]
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let (backend, _dir) = $crate::common::sqlite();
                    super::$name(backend);
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let Some(backend) = $crate::common::postgres() else { return };
                    super::$name(backend);
                }
            )*
        }
        #[cfg(feature = "redis")]
        mod redis {
            $(
                #[test]
                fn $name() {
                    let Some(backend) = $crate::common::redis() else { return };
                    super::$name(backend);
                }
            )*
        }
    };
}

/// The PostgreSQL store named by `WPXT_POSTGRES_URL`, or `None` (and a line
/// saying the test was skipped) when it is not set.
#[cfg(feature = "postgres")]
pub fn postgres() -> Option<Arc<dyn Backend>> {
    let url = postgres_url()?;
    Some(Arc::new(
        workerpoolxt_durable::PgBackend::connect(&url).unwrap(),
    ))
}

/// `WPXT_POSTGRES_URL`, or `None` and a line saying the test was skipped.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("WPXT_POSTGRES_URL").ok();
    if url.is_none() {
        skipped("a PostgreSQL test: WPXT_POSTGRES_URL is not set");
    }
    url
}

/// Sleeps the given milliseconds on its first attempt only; returns the
/// attempt number.
pub struct Nap;
impl Handler for Nap {
    const NAME: &'static str = "nap";
    type Args = u64;
    type Output = u32;
    type Error = String;
    async fn run(&self, ms: u64, ctx: JobContext) -> Result<u32, String> {
        if ctx.attempt() == 1 {
            async_io::Timer::after(Duration::from_millis(ms)).await;
        }
        Ok(ctx.attempt())
    }
}

/// The Redis store named by `WPXT_REDIS_URL`, or `None` (and a line saying
/// the test was skipped) when it is not set.
#[cfg(feature = "redis")]
pub fn redis() -> Option<Arc<dyn Backend>> {
    let url = redis_url()?;
    Some(Arc::new(
        workerpoolxt_durable::RedisBackend::connect(&url).unwrap(),
    ))
}

/// `WPXT_REDIS_URL`, or `None` and a line saying the test was skipped.
pub fn redis_url() -> Option<String> {
    let url = std::env::var("WPXT_REDIS_URL").ok();
    if url.is_none() {
        skipped("a Redis test: WPXT_REDIS_URL is not set");
    }
    url
}

/// Says, past the test harness's capture, that a test was skipped and why.
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

//! The `tracing` feature: a span per job with its name, attempt and outcome,
//! and events for retry, timeout, cancel and panic.
#![cfg(feature = "tracing")]

mod common;
use common::*;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use workerpoolxt::{Backoff, Job, JobError, Pool};

/// What the subscriber saw: span fields by span, events with their parent span.
#[derive(Default)]
struct Seen {
    spans: HashMap<u64, HashMap<String, String>>,
    events: Vec<(Option<u64>, String)>,
}

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    next: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut fields = HashMap::new();
        fields.insert("span".to_owned(), attrs.metadata().name().to_owned());
        attrs.record(&mut Fields(&mut fields));
        self.seen.lock().unwrap().spans.insert(id, fields);
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut seen = self.seen.lock().unwrap();
        if let Some(fields) = seen.spans.get_mut(&span.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let parent = event.parent().map(|id| id.into_u64());
        self.seen.lock().unwrap().events.push((parent, message));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Recorder {
    /// The span (its id and fields) of the job named `name`.
    fn job(&self, name: &str) -> (u64, HashMap<String, String>) {
        let seen = self.seen.lock().unwrap();
        let found: Vec<_> = seen
            .spans
            .iter()
            .filter(|(_, f)| f.get("span").map(String::as_str) == Some("job"))
            .filter(|(_, f)| f.get("name").map(String::as_str) == Some(name))
            .map(|(id, f)| (*id, f.clone()))
            .collect();
        assert_eq!(found.len(), 1, "one span for job {name}: {found:?}");
        found.into_iter().next().unwrap()
    }

    fn events_of(&self, span: u64) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.events
            .iter()
            .filter(|(p, _)| *p == Some(span))
            .map(|(_, m)| m.clone())
            .collect()
    }
}

fn boom() -> Result<(), ()> {
    panic!("expected panic in a traced job")
}

#[test]
fn every_job_has_a_span_with_its_name_attempt_and_outcome() {
    let _dog = Watchdog::new("tracing".into(), HANG_LIMIT);
    quiet_expected_panics();
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();
    futures_lite::future::block_on(async {
        let pool = Pool::new(4);
        let flaky = Job::new(|ctx| async move {
            if ctx.attempt() == 1 {
                Err("once")
            } else {
                Ok(ctx.attempt())
            }
        })
        .name("flaky")
        .retry(1)
        .backoff(Backoff::none());
        let slow = Job::new(|_ctx| async {
            sleep(Duration::from_secs(30)).await;
            Ok::<_, ()>(())
        })
        .name("slow")
        .timeout(Duration::from_millis(5));
        let started = Latch::new();
        let cancelled = {
            let started = started.clone();
            Job::new(move |_ctx| {
                let started = started.clone();
                async move {
                    started.open();
                    std::future::pending::<Result<(), ()>>().await
                }
            })
            .name("cancelled")
        };
        let panics = Job::new(|_ctx| async { boom() }).name("panics");

        assert_eq!(pool.submit_job(flaky).await, Ok(2));
        assert_eq!(pool.submit_job(slow).await, Err(JobError::TimedOut));
        let h = pool.submit_job(cancelled);
        started.wait().await;
        h.cancel();
        assert_eq!(h.await, Err(JobError::Cancelled));
        assert!(pool.submit_job(panics).await.unwrap_err().is_panic());
        pool.stop_wait().await;
    });

    let (id, f) = recorder.job("flaky");
    assert_eq!(f.get("attempt").map(String::as_str), Some("2"));
    assert_eq!(f.get("outcome").map(String::as_str), Some("succeeded"));
    assert!(recorder
        .events_of(id)
        .iter()
        .any(|m| m.contains("retrying")));

    let (id, f) = recorder.job("slow");
    assert_eq!(f.get("outcome").map(String::as_str), Some("timed_out"));
    assert!(recorder
        .events_of(id)
        .iter()
        .any(|m| m.contains("timed out")));

    let (id, f) = recorder.job("cancelled");
    assert_eq!(f.get("outcome").map(String::as_str), Some("cancelled"));
    assert!(recorder
        .events_of(id)
        .iter()
        .any(|m| m.contains("cancelled")));

    let (id, f) = recorder.job("panics");
    assert_eq!(f.get("outcome").map(String::as_str), Some("panicked"));
    assert!(recorder
        .events_of(id)
        .iter()
        .any(|m| m.contains("panicked")));
}

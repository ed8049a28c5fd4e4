//! A crawler-like demo on tokio: one pool for the whole crawl with a rate
//! limit (starts per second, as a polite crawler or an API client needs), a
//! sub-pool per host (at most two requests to a host at once), and per host
//! a group whose first error cancels the rest of that host's crawl (a host
//! that answers 403 has banned us: stop asking it). Pages found on a page
//! are submitted to the same group from inside its job. While it runs it
//! prints once what is queued and running (`pool.jobs()`); it ends by
//! itself.
//!
//! The "network" is simulated (a short sleep per page, no sockets), so the
//! demo runs anywhere.
//!
//! Run: `cargo run --features tokio --example crawl`

use std::fmt;
use std::time::{Duration, Instant};

use workerpoolxt::{Group, Job, JobError, Pool};

/// Why a page could not be fetched.
#[derive(Debug)]
struct FetchError {
    url: String,
    status: u16,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answered {}", self.url, self.status)
    }
}

impl std::error::Error for FetchError {}

/// A pretend GET: 20 to 60 ms, then the page's links (three per page, two
/// levels deep). `c.example` bans us on its third page.
async fn fetch(url: &str, depth: u32) -> Result<Vec<String>, FetchError> {
    let ms = 20 + (url.len() as u64 * 7) % 40;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    if url.starts_with("https://c.example/") && url.ends_with("/1/0") {
        return Err(FetchError {
            url: url.to_string(),
            status: 403,
        });
    }
    if depth >= 2 {
        return Ok(Vec::new());
    }
    let base = url.trim_end_matches('/');
    Ok((0..3).map(|i| format!("{base}/{i}")).collect())
}

type Crawl = Group<Vec<String>, FetchError>;

/// Submits the page at `url` to its host's group; the job submits the
/// pages it links to.
fn visit(group: &Crawl, url: String, depth: u32) {
    let links_to = group.clone();
    let name = format!("GET {url}");
    let job = Job::new(move |_ctx| {
        let (url, group) = (url.clone(), links_to.clone());
        async move {
            let links = fetch(&url, depth).await?;
            for link in &links {
                visit(&group, link.clone(), depth + 1);
            }
            Ok(links)
        }
    })
    .name(name)
    .timeout(Duration::from_secs(5));
    group.submit_job(job);
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    // At most 6 requests in flight, and at most 20 started per second.
    let pool = Pool::builder()
        .tokio()
        .max_workers(6)
        .rate_limit(20, Duration::from_secs(1))
        .build();

    let mut crawls = Vec::new();
    for host in ["a.example", "b.example", "c.example"] {
        let site = pool.subpool(2); // at most 2 requests to one host at once
        let group: Crawl = site.group();
        group.cancel_on_error();
        visit(&group, format!("https://{host}/"), 0);
        crawls.push((host, site, group));
    }

    // Once, while it runs: what is queued and what runs, oldest first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let jobs = pool.jobs();
    println!(
        "after {:?}, the pool holds {} jobs:",
        started.elapsed(),
        jobs.len()
    );
    for job in jobs.iter().take(12) {
        let running = job
            .running_for()
            .map_or("-".to_string(), |d| format!("{d:.1?}"));
        println!(
            "  {:>3}  {:<30} {:<8} attempt {}  queued {:>7.1?}  running {running}",
            job.id(),
            job.name().unwrap_or("-"),
            job.state(),
            job.attempt(),
            job.queued_for(),
        );
    }
    if jobs.len() > 12 {
        println!("  ... and {} more", jobs.len() - 12);
    }

    for (host, site, group) in crawls {
        match group.wait().await {
            Ok(pages) => println!("{host}: crawled {} pages", pages.len()),
            Err(JobError::Failed(e)) => println!("{host}: stopped at the first error: {e}"),
            Err(e) => println!("{host}: stopped: {e}"),
        }
        let m = site.metrics();
        println!(
            "  {host} sub-pool: {} submitted, {} succeeded, {} failed, {} cancelled",
            m.submitted, m.succeeded, m.failed, m.cancelled
        );
    }
    pool.stop_wait().await;
    println!("done in {:?}", started.elapsed());
}

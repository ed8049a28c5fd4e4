//! A library that embeds a pool and lets its caller choose the runtime.
//!
//! `Thumbnailer` makes thumbnails at most `workers` at a time. It takes a
//! [`Runtime`] instead of assuming one, so the same code serves a tokio
//! application and a smol one: `main` uses it once from each.
//!
//! Run with `cargo run --example library --features tokio,smol` (the two
//! runtimes are the crate's `tokio` and `smol` features). It ends by itself
//! in well under a second.

use std::time::Duration;

use futures::future::join_all;
use workerpoolxt::{Job, JobError, Pool, Runtime};

// ---- the library ------------------------------------------------------------

/// A thumbnail: its source's name, its size and a checksum of its pixels.
#[derive(Debug)]
pub struct Thumbnail {
    pub name: String,
    pub size: u32,
    pub checksum: u64,
}

/// Makes thumbnails, at most `workers` at once, on its caller's runtime.
pub struct Thumbnailer {
    pool: Pool,
}

impl Thumbnailer {
    /// A thumbnailer whose workers run on `rt`.
    pub fn new(rt: Runtime, workers: usize) -> Thumbnailer {
        let pool = Pool::builder()
            .max_workers(workers)
            .runtime(rt)
            .default_timeout(Duration::from_secs(5))
            .build();
        Thumbnailer { pool }
    }

    /// A `size`×`size` thumbnail of `name`. The pixel work runs on a
    /// blocking thread, never on the caller's executor.
    pub async fn thumbnail(&self, name: &str, size: u32) -> Result<Thumbnail, JobError<String>> {
        let name = name.to_owned();
        let job = Job::blocking(move |_ctx| {
            if size == 0 {
                return Err(format!("{name}: a thumbnail needs at least one pixel"));
            }
            Ok(Thumbnail {
                name: name.clone(),
                size,
                checksum: render(&name, size),
            })
        })
        .name("thumbnail");
        self.pool.submit_job(job).await
    }

    /// Lets the thumbnails asked for finish, then stops.
    pub async fn shutdown(self) {
        self.pool.stop_wait().await;
    }
}

/// Stands in for decoding and scaling an image.
fn render(name: &str, size: u32) -> u64 {
    let seed = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    (0..u64::from(size) * u64::from(size))
        .fold(seed, |h, px| (h ^ px).wrapping_mul(0x0100_0000_01b3))
}

// ---- two applications that use it -------------------------------------------

/// What both applications ask for.
async fn make_thumbnails(runtime: &str, thumbnailer: &Thumbnailer) {
    let sizes = [
        ("cat.png", 64),
        ("dog.png", 128),
        ("empty.png", 0),
        ("owl.png", 96),
    ];
    let results = join_all(
        sizes
            .iter()
            .map(|&(name, size)| thumbnailer.thumbnail(name, size)),
    )
    .await;
    for result in results {
        match result {
            Ok(t) => println!(
                "[{runtime}] {} {}x{}: {:016x}",
                t.name, t.size, t.size, t.checksum
            ),
            Err(e) => println!("[{runtime}] failed: {e}"),
        }
    }
}

fn main() {
    // A tokio application: inside its runtime, `Runtime::current()` is it.
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let runtime = Runtime::current();
        println!("tokio application, thumbnailer on {runtime:?}");
        let thumbnailer = Thumbnailer::new(runtime, 2);
        make_thumbnails("tokio", &thumbnailer).await;
        thumbnailer.shutdown().await;
    });

    // A smol application says so: smol cannot be detected from outside.
    smol::block_on(async {
        println!("smol application, thumbnailer on {:?}", Runtime::smol());
        let thumbnailer = Thumbnailer::new(Runtime::smol(), 2);
        make_thumbnails("smol", &thumbnailer).await;
        thumbnailer.shutdown().await;
    });
}

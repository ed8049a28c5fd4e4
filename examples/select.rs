//! Result handles in `tokio::select!`, beside a channel — on a tokio runtime.
//!
//! The pool's workers run on the caller's tokio runtime (a spawner that
//! captures a `Handle`, and tokio's timer), so jobs can use tokio's I/O and
//! timers. The main task waits on several result handles and a message
//! channel at once, gives up on one handle (drops it: the job runs on and
//! keeps its slot), and checks another one later with `try_take()`.
//!
//! Run with `cargo run --example select`. It ends by itself in about a second.

use std::time::{Duration, Instant};

use futures::future::FusedFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use workerpoolxt::Pool;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let start = Instant::now();
    let at = move || format!("{:>4} ms", start.elapsed().as_millis());

    // Workers on this runtime. The spawner is called from whichever thread
    // submits, so it captures a Handle instead of calling `tokio::spawn`.
    let rt = tokio::runtime::Handle::current();
    let pool = Pool::builder()
        .max_workers(4)
        .spawner(move |f| {
            rt.spawn(f);
        })
        .timer(tokio::time::sleep)
        .build();

    // Two jobs that talk over TCP with tokio's I/O: an echo server and a client.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut server = pool.submit(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buf = [0u8; 64];
        let n = socket.read(&mut buf).await?;
        socket.write_all(&buf[..n]).await?;
        Ok::<_, std::io::Error>(n)
    });
    let mut client = pool.submit(async move {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(b"hello over tokio").await?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    });

    // Jobs on tokio's timer.
    let mut quick = pool.submit(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        "quick job done"
    });
    let abandoned = pool.submit(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        println!(
            "{}  abandoned job: finished anyway (nobody reads its result)",
            at()
        );
    });
    let mut slow = pool.submit(async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        "slow job done"
    });

    // Messages from elsewhere: a tick every 150 ms, five of them.
    let (tx, mut rx) = mpsc::channel::<u32>(8);
    tokio::spawn(async move {
        for i in 1..=5 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if tx.send(i).await.is_err() {
                break;
            }
        }
    });

    let mut abandoned = Some(abandoned);
    let mut messages_open = true;
    let give_up = tokio::time::sleep(Duration::from_millis(600));
    tokio::pin!(give_up);

    loop {
        tokio::select! {
            // `&mut handle`: if another branch wins, the result stays in the
            // handle. A handle that has produced its result is terminated.
            r = &mut server, if !server.is_terminated() => {
                match r {
                    Ok(Ok(n)) => println!("{}  server: echoed {n} bytes", at()),
                    other => println!("{}  server: {other:?}", at()),
                }
            }
            r = &mut client, if !client.is_terminated() => {
                match r {
                    Ok(Ok(reply)) => println!("{}  client: got {reply:?}", at()),
                    other => println!("{}  client: {other:?}", at()),
                }
            }
            r = &mut quick, if !quick.is_terminated() => {
                println!("{}  {:?}", at(), r);
            }
            msg = rx.recv(), if messages_open => match msg {
                Some(1) => {
                    // Abandon a result: the job is not cancelled and keeps
                    // its worker until it ends.
                    drop(abandoned.take());
                    println!(
                        "{}  tick 1: dropped the handle of the 400 ms job (running jobs: {})",
                        at(),
                        pool.running()
                    );
                }
                Some(i) => println!("{}  tick {i}", at()),
                None => messages_open = false,
            },
            () = &mut give_up => {
                println!("{}  stopped waiting", at());
                break;
            }
        }
    }

    // "Check later": the slow job is still running, its result is not lost.
    match slow.try_take() {
        None => println!("{}  slow job: not finished yet", at()),
        Some(r) => println!("{}  slow job: {r:?}", at()),
    }

    // Run what is left (the abandoned and the slow job), then stop.
    pool.stop_wait().await;
    println!("{}  pool stopped; slow job: {:?}", at(), slow.try_take());
    let m = pool.metrics();
    println!("submitted {}, succeeded {}", m.submitted, m.succeeded);
    Ok(())
}

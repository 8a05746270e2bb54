//! Graceful shutdown: on Ctrl-C the workers are told to stop, get a grace
//! period to finish their cleanup, and whatever is still running after it
//! is aborted.
//!
//! ```text
//! cargo run -p nursery --example graceful_shutdown
//! ```
//!
//! The service's scope is tied to a shutdown token with `cancel_on`. Ctrl-C
//! fires the token, and so does a timer after 300 ms, so that the example
//! ends by itself. The workers notice the cancel with
//! `nursery::cancelled()` and flush their state within the scope's
//! `grace`; `stuck`, which never looks, is aborted when the grace is over.
//! The scope returns `Error::Cancelled` once every worker has ended.
//! (`CancellationToken` comes from the `tokio-util` crate.)

use std::time::{Duration, Instant};

use nursery::Nursery;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let service = Nursery::builder()
        .name("service")
        .cancel_on(shutdown.clone())
        .grace(Duration::from_millis(200))
        .scope(|n| async move {
            for id in 1..=3 {
                n.spawn_named(format!("worker-{id}"), worker(id));
            }
            n.spawn_named("stuck", async {
                let _aborted = OnDrop("stuck: aborted when the grace period ended");
                sleep(Duration::from_secs(3600)).await; // never checks for a cancel
                Ok(())
            });
            Ok::<_, std::io::Error>(())
        });
    let trigger = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => println!("Ctrl-C: shutting down"),
            _ = sleep(Duration::from_millis(300)) => println!("300 ms: shutting down"),
        }
        shutdown.cancel();
    };
    let (result, ()) = tokio::join!(service, trigger);
    println!(
        "service ended after {} ms: {result:?}",
        start.elapsed().as_millis()
    );
}

/// Does a job every 100 ms until the scope is cancelled, then cleans up.
async fn worker(id: u32) -> std::io::Result<()> {
    let mut jobs = 0;
    loop {
        tokio::select! {
            _ = nursery::cancelled() => break,
            _ = sleep(Duration::from_millis(100)) => jobs += 1,
        }
    }
    sleep(Duration::from_millis(50)).await; // flush state: within the grace
    println!("worker-{id}: stopped after {jobs} jobs, state flushed");
    Ok(())
}

/// Prints its message when dropped: here, when a task is aborted.
struct OnDrop(&'static str);

impl Drop for OnDrop {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

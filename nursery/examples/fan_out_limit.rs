//! Fan-out with a limit: process twelve items, at most three at a time, and
//! get the results back in input order.
//!
//! ```text
//! cargo run -p nursery --example fan_out_limit
//! ```
//!
//! A scope built with `limit(3)` queues the children past the third, first
//! in first out, without creating their tasks; each starts when a running
//! one ends. The body awaits the handles in the order it spawned them, so
//! the results follow the input whatever order the children finish in.
//! `nursery::map(1..=12, 3, square).await` does the same in one call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nursery::Nursery;

/// Children running right now, and the most that ever ran at once.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[tokio::main]
async fn main() -> Result<(), nursery::Error<std::io::Error>> {
    let start = Instant::now();
    let squares = Nursery::builder()
        .limit(3)
        .scope(|n| async move {
            let handles: Vec<_> = (1..=12).map(|item| n.spawn(square(item))).collect();
            let mut squares = Vec::new();
            for handle in handles {
                // Waits for this item, however many later ones are done.
                squares.push(handle.await.map_err(std::io::Error::other)?);
            }
            Ok(squares)
        })
        .await?;
    println!(
        "in input order: {squares:?}\n\
         12 items in {} ms, at most {} at once",
        start.elapsed().as_millis(),
        PEAK.load(Ordering::Relaxed),
    );
    Ok(())
}

/// A stand-in for real work (a request, a file): the later items are the
/// quicker ones, so they finish out of input order.
async fn square(item: u64) -> Result<u64, std::io::Error> {
    let running = RUNNING.fetch_add(1, Ordering::Relaxed) + 1;
    PEAK.fetch_max(running, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(10 * (13 - item))).await;
    RUNNING.fetch_sub(1, Ordering::Relaxed);
    println!("item {item:>2} done");
    Ok(item * item)
}

//! What hedging buys: the latency of calls to a server with a slow tail,
//! with and without `nursery::hedge`.
//!
//! ```text
//! cargo bench -p nursery-tests --bench hedge
//! ```
//!
//! The server is simulated in real time on a multi-thread runtime with 2
//! workers: a call takes 2 ms, and one call in twenty (drawn per attempt,
//! from a fixed seed) takes 50 ms. `REQUESTS` requests run, `CONCURRENCY`
//! at a time, once with one attempt each and once hedged (a backup after
//! `DELAY`, at most 2 attempts). It prints the percentiles of the
//! requests' latencies and how many attempts each way made.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Requests per run.
const REQUESTS: usize = 4_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 64;
/// How long a hedged request waits before it starts a backup: above the
/// fast calls' 2 ms (and the timer's 1 ms tick), far below the slow 50.
const DELAY: Duration = Duration::from_millis(6);

/// The simulated server: attempts drawn in order from a fixed sequence.
struct Server {
    attempts: AtomicU64,
}

impl Server {
    async fn call(&self) -> Result<u64, Infallible> {
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed);
        let slow = mix(attempt).is_multiple_of(20);
        let ms = if slow { 50 } else { 2 };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(ms)
    }
}

/// A fixed scramble of `n` (splitmix64): which attempts are slow.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Runs every request, `CONCURRENCY` at a time, hedged or not; returns
/// each request's latency, sorted, and the attempts made.
async fn run(hedged: bool) -> (Vec<Duration>, u64) {
    let server = Arc::new(Server {
        attempts: AtomicU64::new(0),
    });
    let calls = server.clone();
    let latencies = nursery::map(0..REQUESTS, CONCURRENCY, move |_| {
        let server = calls.clone();
        async move {
            let started = Instant::now();
            if hedged {
                let server = server.clone();
                nursery::hedge(DELAY, 2, move |_| {
                    let server = server.clone();
                    async move { server.call().await }
                })
                .await
                .expect("the server never fails");
            } else {
                server.call().await?;
            }
            Ok::<_, Infallible>(started.elapsed())
        }
    })
    .await;
    let mut latencies = latencies.expect("no request fails");
    latencies.sort();
    (latencies, server.attempts.load(Ordering::Relaxed))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn main() {
    // `cargo bench` passes `--bench`; this binary takes no other options.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "{REQUESTS} requests, {CONCURRENCY} at a time; a call takes 2 ms, one in twenty 50 ms; \
         hedged: a backup after {DELAY:?}, at most 2 attempts\n"
    );
    println!("| | p50 | p90 | p99 | p99.9 | max | attempts per request |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (label, hedged) in [("one attempt", false), ("hedge", true)] {
        let (latencies, attempts) = runtime.block_on(run(hedged));
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        println!(
            "| {label} | {} | {} | {} | {} | {} | {:.3} |",
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.90)),
            ms(percentile(&latencies, 0.99)),
            ms(percentile(&latencies, 0.999)),
            ms(*latencies.last().expect("some requests")),
            attempts as f64 / REQUESTS as f64,
        );
    }
}

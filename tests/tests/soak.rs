//! Soak tests: a million children through one limited scope, ten thousand
//! scopes nested one inside the next, a hundred thousand cancel/respawn
//! cycles. After each, no task is left on the runtime and the process's
//! memory is back to where it started.
//!
//! Ignored by default: run them with
//! `cargo test -p nursery-tests --release --test soak -- --ignored --nocapture`.
//! `NURSERY_SOAK_SCALE` scales every size (default 1.0, the full sizes;
//! CI runs 0.01). Each test prints its size, its times and the resident
//! memory at each step.
//!
//! Memory is the process's resident set (`VmRSS` in `/proc/self/status`).
//! The allocator keeps much of what a round freed for reuse rather than
//! hand it back (glibc's per-thread arenas especially), so the starting
//! level is taken after a first round of the same size; the second round
//! must end within the larger of 16 MiB and 20% of that level. Anything a
//! round leaks (a few dozen bytes per child of a million children, a scope
//! per cycle) comes on top of it again. The tests hold a lock so that they
//! never run at the same time (the resident set is the whole process's).

use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nursery::{Error, Nursery};
use nursery_tests::{HighWater, settled_alive_tasks};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// One soak test at a time: they measure the whole process's memory.
static SERIAL: Mutex<()> = Mutex::new(());

fn scale() -> f64 {
    match std::env::var("NURSERY_SOAK_SCALE") {
        Ok(scale) => scale
            .parse()
            .unwrap_or_else(|_| panic!("NURSERY_SOAK_SCALE={scale:?} is not a number")),
        Err(_) => 1.0,
    }
}

/// `full`, scaled; at least 1.
fn scaled(full: usize) -> usize {
    ((full as f64 * scale()).round() as usize).max(1)
}

/// The process's resident set, in KiB.
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("no VmRSS line in /proc/self/status")
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// Runs `round` twice on a fresh runtime (a warm-up, then the measured
/// round), checks that no task is left after each and that the second
/// ends with memory back at the level the first left, and prints the
/// figures.
fn soak(name: &str, size: usize, round: impl Fn(&Runtime) -> Option<usize>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    let start = rss_kib();
    let mut times = Vec::new();
    let mut peak = 0;
    let mut levels = Vec::new();
    for _ in 0..2 {
        let began = Instant::now();
        if let Some(at_peak) = round(&rt) {
            peak = peak.max(at_peak);
        }
        times.push(began.elapsed());
        levels.push(rss_kib());
    }
    let (warm, after) = (levels[0], levels[1]);
    let allowed = (warm / 5).max(16 * 1024);
    let peak = match peak {
        0 => String::new(),
        peak => format!("{peak} KiB at the peak, "),
    };
    println!(
        "soak {name}: {size} in {:.2?} (warm-up round {:.2?}); RSS {start} KiB at the start, \
         {peak}{warm} KiB after the warm-up round, {after} KiB after the measured round \
         (allowed up to {} KiB)",
        times[1],
        times[0],
        warm + allowed
    );
    assert!(
        after <= warm + allowed,
        "soak {name}: memory did not come back: {warm} KiB after the first round, {after} KiB after the second"
    );
    drop(rt);
}

// ===== a million children =====

#[test]
#[ignore = "soak test: run with --ignored (NURSERY_SOAK_SCALE scales it)"]
fn soak_a_million_children_through_one_scope_with_limit_1024() {
    const LIMIT: usize = 1024;
    let children = scaled(1_000_000);
    soak("children through limit(1024)", children, |rt| {
        let finished = Arc::new(AtomicUsize::new(0));
        let running = HighWater::new();
        let peak_rss = Arc::new(AtomicUsize::new(0));
        let (done, gauge, peak) = (finished.clone(), running.clone(), peak_rss.clone());
        let left = rt.block_on(async move {
            let result = Nursery::builder()
                .limit(LIMIT)
                .scope(move |n: Nursery<()>| async move {
                    for i in 0..children {
                        let (done, gauge) = (done.clone(), gauge.clone());
                        n.spawn(async move {
                            let _running = gauge.enter();
                            // Half of them wait once, so children overlap.
                            if i % 2 == 0 {
                                tokio::task::yield_now().await;
                            }
                            done.fetch_add(1, SeqCst);
                            Ok(())
                        });
                    }
                    // Everything is spawned, most of it queued: the peak.
                    peak.store(rss_kib(), SeqCst);
                    Ok(())
                })
                .await;
            assert_eq!(result, Ok(()));
            settled_alive_tasks()
        });
        assert_eq!(left, 0, "tasks left on the runtime");
        assert_eq!(finished.load(SeqCst), children);
        assert!(
            running.peak() <= LIMIT,
            "{} children at once",
            running.peak()
        );
        Some(peak_rss.load(SeqCst))
    });
}

// ===== ten thousand nested scopes =====

type Nested = Pin<Box<dyn Future<Output = Result<(), Error<()>>> + Send>>;

/// A scope opened in a child of the scope above it, `depth` times; the
/// innermost reports in and waits to be cancelled.
fn nest_in_children(depth: usize, reached: oneshot::Sender<()>) -> Nested {
    Box::pin(nursery::scope(move |n: Nursery<()>| async move {
        if depth == 0 {
            let _ = reached.send(());
            nursery::cancelled().await;
            return Ok(());
        }
        n.spawn(async move { nest_in_children(depth - 1, reached).await.map_err(|_| ()) });
        Ok(())
    }))
}

/// A scope opened in the body of the scope above it, `depth` times: each
/// body polls the next scope inline, so polling recurses `depth` deep.
fn nest_in_bodies(depth: usize, reached: Arc<AtomicUsize>) -> Nested {
    Box::pin(nursery::scope(move |n: Nursery<()>| async move {
        n.spawn(async { Ok(()) });
        if depth == 0 {
            reached.fetch_add(1, SeqCst);
            return Ok(());
        }
        nest_in_bodies(depth - 1, reached).await.map_err(|_| ())
    }))
}

/// The whole chain is opened, each scope in a child of the last, then
/// cancelled at once from the top: the cancel walks down ten thousand
/// scopes and every one of them is joined.
#[test]
#[ignore = "soak test: run with --ignored (NURSERY_SOAK_SCALE scales it)"]
fn soak_ten_thousand_scopes_nested_one_inside_the_next() {
    let depth = scaled(10_000);
    soak(
        "nested scopes, each in a child of the last, cancelled from the top",
        depth,
        |rt| {
            let (opened, unwound) = rt.block_on(async move {
                let began = Instant::now();
                let (reached_tx, reached) = oneshot::channel();
                // Each aborted level is a dropped scope, checked for leaks
                // a leak-grace window later, which holds the scope till
                // then: short, so the checks are done before the next round.
                let root = Nursery::builder().leak_grace(Duration::from_millis(10));
                let result = root
                    .scope(move |n: Nursery<()>| async move {
                        n.spawn(async move {
                            nest_in_children(depth, reached_tx).await.map_err(|_| ())
                        });
                        reached.await.expect("the innermost scope never opened");
                        let opened = began.elapsed();
                        // The whole chain is cancelled at once, from the top.
                        n.cancel();
                        Ok(opened)
                    })
                    .await;
                let opened = result.expect("the outer scope failed");
                assert_eq!(settled_alive_tasks(), 0, "tasks left on the runtime");
                (opened, began.elapsed() - opened)
            });
            assert!(nursery::dump().is_empty(), "scopes left in the tree");
            println!("  opened in {opened:.2?}, cancelled and joined in {unwound:.2?}");
            None
        },
    );

    // Scopes nested in bodies are polled inline, one inside the next: the
    // stack grows with the depth, as with any recursive future. They run on
    // a thread with a stack sized for it.
    soak(
        "nested scopes, each in the body of the last (inline)",
        depth,
        |_| {
            let reached = Arc::new(AtomicUsize::new(0));
            let seen = reached.clone();
            let result = std::thread::Builder::new()
                .stack_size(1024 * 1024 + depth * 16 * 1024)
                .spawn(move || {
                    let rt = runtime();
                    rt.block_on(async move {
                        let result = nest_in_bodies(depth, seen).await;
                        (result, settled_alive_tasks())
                    })
                })
                .unwrap()
                .join()
                .expect("the nested scopes panicked");
            assert_eq!(result, (Ok(()), 0));
            assert_eq!(reached.load(SeqCst), 1);
            None
        },
    );
}

// ===== a hundred thousand cancel/respawn cycles =====

#[test]
#[ignore = "soak test: run with --ignored (NURSERY_SOAK_SCALE scales it)"]
fn soak_a_hundred_thousand_cancel_and_respawn_cycles() {
    const CHILDREN: usize = 4;
    let cycles = scaled(100_000);
    soak("cancel/respawn cycles", cycles, |rt| {
        let started = Arc::new(AtomicUsize::new(0));
        let count = started.clone();
        rt.block_on(async move {
            // One long-lived scope; each cycle opens a scope in it, starts
            // children, cancels them all and starts over.
            let result = Nursery::builder()
                .name("cycles")
                .scope(move |_: Nursery<()>| async move {
                    for cycle in 0..cycles {
                        let count = count.clone();
                        let mut builder = Nursery::builder();
                        if cycle % 2 == 1 {
                            builder = builder.limit(2);
                        }
                        let inner = builder
                            .scope(move |n: Nursery<()>| async move {
                                let (running_tx, running) = oneshot::channel();
                                let mut running_tx = Some(running_tx);
                                for _ in 0..CHILDREN {
                                    let count = count.clone();
                                    let running_tx = running_tx.take();
                                    n.spawn(async move {
                                        count.fetch_add(1, SeqCst);
                                        if let Some(tx) = running_tx {
                                            let _ = tx.send(());
                                        }
                                        pending::<Result<(), ()>>().await
                                    });
                                }
                                running.await.expect("the first child never ran");
                                n.cancel();
                                Ok(())
                            })
                            .await;
                        assert_eq!(inner, Ok(()), "cycle {cycle}");
                    }
                    Ok(())
                })
                .await;
            assert_eq!(result, Ok(()));
            assert_eq!(settled_alive_tasks(), 0, "tasks left on the runtime");
        });
        let started = started.load(SeqCst);
        assert!(
            started >= cycles,
            "{started} children started in {cycles} cycles"
        );
        println!("  {started} children started in {cycles} cycles, the rest cancelled unstarted");
        None
    });
}

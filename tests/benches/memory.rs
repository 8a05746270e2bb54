//! Peak memory per pending child, nursery against the peers.
//!
//! ```text
//! cargo bench -p nursery-tests --bench memory            # every approach
//! cargo bench -p nursery-tests --bench memory -- nursery # those whose name contains "nursery"
//! ```
//!
//! For each approach the binary runs itself once per measurement, as a
//! fresh process (`--child <approach> <count>`): the child starts `count`
//! children on a multi-thread runtime with 2 workers, waits until every one
//! has been polled once and is pending, and prints its peak RSS (`VmHWM` in
//! `/proc/self/status`). The same run with 0 children is the baseline;
//! (peak − baseline) / count is the cost of one pending child: its task
//! and future, its handle where the approach keeps one, and the
//! approach's own bookkeeping. Each figure is the median of `RUNS`
//! processes. The table goes to stdout and, as JSON, to
//! `target/nursery-bench/memory.json` for `summary.py`.

mod common;

use std::hint::black_box;
use std::io::Write;
use std::process::Command;
use std::sync::Arc;

use futures::stream::{self, FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use common::{Countdown, Flavor, pending_child};

/// Pending children per measurement.
const CHILDREN: usize = 100_000;
/// Processes per figure (the median is kept).
const RUNS: usize = 3;

/// Every approach, by the name given to `--child`, with what it keeps.
const APPROACHES: [(&str, &str); 16] = [
    ("spawn+Vec", "tokio::spawn, JoinHandles kept in a Vec"),
    ("spawn", "tokio::spawn, JoinHandles dropped"),
    ("JoinSet", "JoinSet::spawn"),
    (
        "TaskTracker+token",
        "TaskTracker::spawn of token.run_until_cancelled(child), handles dropped",
    ),
    (
        "FuturesUnordered",
        "futures in one FuturesUnordered, in place",
    ),
    (
        "buffer_unordered",
        "stream::iter(..).buffer_unordered(all), in place",
    ),
    ("async-scoped", "TokioScope::scope_and_block, spawn"),
    ("moro", "moro::async_scope!, spawn, handles kept in a Vec"),
    (
        "worker pool+token",
        "one worker task per child on an async-channel, under run_until_cancelled",
    ),
    (
        "Semaphore",
        "tokio::spawn behind an owned permit of Semaphore(all), JoinHandles kept",
    ),
    ("nursery spawn", "scope + n.spawn, TaskHandles dropped"),
    (
        "nursery spawn+Vec",
        "scope + n.spawn, TaskHandles kept in a Vec",
    ),
    (
        "nursery limit(all) spawn",
        "limit(count) scope + n.spawn, TaskHandles dropped",
    ),
    (
        "nursery limit(1) queued",
        "limit(1) scope: one child running, the rest queued (not pending tasks)",
    ),
    (
        "nursery local",
        "scope_local + local.spawn, in the scope future, LocalHandles dropped",
    ),
    (
        "nursery local+Vec",
        "scope_local + local.spawn, LocalHandles kept in a Vec",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        let approach = args.get(at + 1).expect("--child <approach> <count>");
        let count = args
            .get(at + 2)
            .and_then(|count| count.parse().ok())
            .expect("--child <approach> <count>");
        child(approach, count);
    } else {
        // `cargo bench` passes `--bench`; anything else not starting with
        // `-` picks approaches by substring, as criterion's filters do.
        let filters: Vec<&String> = args.iter().filter(|arg| !arg.starts_with('-')).collect();
        parent(&filters);
    }
}

// ===== parent: one process per measurement =====

fn parent(filters: &[&String]) {
    let exe = std::env::current_exe().expect("own executable");
    let mut rows = Vec::new();
    let child_size = std::mem::size_of_val(&pending_child(&Countdown::new(1), None));
    println!(
        "peak RSS per pending child, {CHILDREN} children, multi-thread runtime (2 workers), median of {RUNS} processes; \
         the child future itself is {child_size} bytes\n"
    );
    println!("| approach | bytes/child | baseline VmHWM | VmHWM with {CHILDREN} | what is kept |");
    println!("|---|---:|---:|---:|---|");
    for (name, what) in APPROACHES {
        if !filters.is_empty() && !filters.iter().any(|filter| name.contains(filter.as_str())) {
            continue;
        }
        let baseline = median_peak(&exe, name, 0);
        let loaded = median_peak(&exe, name, CHILDREN);
        let per_child = (loaded.saturating_sub(baseline)) as f64 * 1024.0 / CHILDREN as f64;
        println!("| {name} | {per_child:.0} | {baseline} kB | {loaded} kB | {what} |");
        rows.push(format!(
            "{{\"approach\": {name:?}, \"bytes_per_child\": {per_child:.1}, \"baseline_kb\": {baseline}, \"peak_kb\": {loaded}, \"children\": {CHILDREN}}}"
        ));
    }
    // target/release/deps/memory-<hash> -> target/
    if let Some(target) = exe.ancestors().nth(3) {
        let dir = target.join("nursery-bench");
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(
                dir.join("memory.json"),
                format!("[\n  {}\n]\n", rows.join(",\n  ")),
            )
        });
        match written {
            Ok(()) => println!("\n(written to {})", dir.join("memory.json").display()),
            Err(error) => eprintln!("could not write {}: {error}", dir.display()),
        }
    }
}

/// The median of `RUNS` children's peak RSS in kB.
fn median_peak(exe: &std::path::Path, approach: &str, count: usize) -> u64 {
    let mut peaks: Vec<u64> = (0..RUNS)
        .map(|_| {
            let output = Command::new(exe)
                .args(["--child", approach, &count.to_string()])
                .output()
                .expect("run the child process");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "child {approach} {count} failed: {}\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            stdout
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM_kB "))
                .and_then(|kb| kb.trim().parse().ok())
                .unwrap_or_else(|| panic!("child {approach} {count} printed no peak:\n{stdout}"))
        })
        .collect();
    peaks.sort_unstable();
    peaks[RUNS / 2]
}

// ===== child: one approach, then report and exit =====

/// Peak resident set size so far, in kB.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Prints the peak and ends the process on the spot: nothing is cancelled
/// or freed first, so no approach pays for its teardown here. (Typed `()`
/// so that the code around a call reads as it would without the exit.)
fn report() {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "VmHWM_kB {}", peak_rss_kb()).expect("stdout");
    stdout.flush().expect("stdout");
    std::process::exit(0)
}

fn child(approach: &str, count: usize) -> ! {
    let runtime = Flavor::MultiThread.runtime();
    // `limit(1) queued` runs one child; the rest wait in the queue unpolled.
    let expected = if approach == "nursery limit(1) queued" {
        count.min(1)
    } else {
        count
    };
    let started = Countdown::new(expected);
    let child = {
        let started = started.clone();
        move || pending_child(&started, None)
    };
    runtime.block_on(async move {
        match approach {
            "spawn+Vec" => {
                let handles: Vec<_> = (0..count).map(|_| tokio::spawn(child())).collect();
                started.wait().await;
                black_box(&handles);
                report()
            }
            "spawn" => {
                for _ in 0..count {
                    tokio::spawn(child());
                }
                started.wait().await;
                report()
            }
            "JoinSet" => {
                let mut set = JoinSet::new();
                for _ in 0..count {
                    set.spawn(child());
                }
                started.wait().await;
                black_box(&set);
                report()
            }
            "TaskTracker+token" => {
                let tracker = TaskTracker::new();
                let token = CancellationToken::new();
                for _ in 0..count {
                    let (token, child) = (token.clone(), child());
                    tracker.spawn(async move { token.run_until_cancelled(child).await });
                }
                started.wait().await;
                report()
            }
            "FuturesUnordered" => {
                let mut children: FuturesUnordered<_> = (0..count).map(|_| child()).collect();
                tokio::select! {
                    biased; // with no children, `next` is ready at once
                    () = started.wait() => report(),
                    _ = children.next() => unreachable!("the children never finish"),
                }
            }
            "buffer_unordered" => {
                let mut children = stream::iter(0..count)
                    .map(|_| child())
                    .buffer_unordered(count.max(1));
                tokio::select! {
                    biased; // with no children, `next` is ready at once
                    () = started.wait() => report(),
                    _ = children.next() => unreachable!("the children never finish"),
                }
            }
            "async-scoped" => {
                let ((), _) = async_scoped::TokioScope::scope_and_block(|scope| {
                    for _ in 0..count {
                        scope.spawn(child());
                    }
                    started.wait_blocking();
                    report();
                });
            }
            "moro" => {
                moro::async_scope!(|scope| -> () {
                    let handles: Vec<_> = (0..count).map(|_| scope.spawn(child())).collect();
                    started.wait().await;
                    black_box(&handles);
                    report();
                })
                .await;
            }
            "worker pool+token" => {
                let token = CancellationToken::new();
                let (jobs_tx, jobs) = async_channel::unbounded::<()>();
                let pool: Vec<_> = (0..count)
                    .map(|_| {
                        let (jobs, token, child) = (jobs.clone(), token.clone(), child.clone());
                        tokio::spawn(async move {
                            token
                                .run_until_cancelled(async move {
                                    while let Ok(()) = jobs.recv().await {
                                        let _never = child().await;
                                    }
                                })
                                .await
                        })
                    })
                    .collect();
                for _ in 0..count {
                    jobs_tx.send(()).await.expect("workers are listening");
                }
                started.wait().await;
                black_box(&pool);
                report()
            }
            "Semaphore" => {
                let permits = Arc::new(Semaphore::new(count.max(1)));
                let mut handles = Vec::with_capacity(count);
                for _ in 0..count {
                    let permit = permits.clone().acquire_owned().await.expect("open");
                    let child = child();
                    handles.push(tokio::spawn(async move {
                        let _permit = permit;
                        child.await
                    }));
                }
                started.wait().await;
                black_box(&handles);
                report()
            }
            "nursery spawn" | "nursery limit(all) spawn" | "nursery limit(1) queued" => {
                let limit = match approach {
                    "nursery limit(all) spawn" => Some(count.max(1)),
                    "nursery limit(1) queued" => Some(1),
                    _ => None,
                };
                let builder = nursery::Nursery::builder();
                let builder = match limit {
                    Some(limit) => builder.limit(limit),
                    None => builder,
                };
                builder
                    .scope(|n| async move {
                        for _ in 0..count {
                            n.spawn(child());
                        }
                        started.wait().await;
                        report();
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
            "nursery spawn+Vec" => nursery::scope(|n| async move {
                let handles: Vec<_> = (0..count).map(|_| n.spawn(child())).collect();
                started.wait().await;
                black_box(&handles);
                report();
                Ok(())
            })
            .await
            .unwrap(),
            "nursery local" => nursery::scope_local(|_n, local| async move {
                for _ in 0..count {
                    local.spawn(child());
                }
                started.wait().await;
                report();
                Ok(())
            })
            .await
            .unwrap(),
            "nursery local+Vec" => nursery::scope_local(|_n, local| async move {
                let handles: Vec<_> = (0..count).map(|_| local.spawn(child())).collect();
                started.wait().await;
                black_box(&handles);
                report();
                Ok(())
            })
            .await
            .unwrap(),
            other => panic!("unknown approach {other:?}"),
        }
    });
    unreachable!("report() ends the process")
}

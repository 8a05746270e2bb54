//! Stress: deep nesting. A chain of scopes, each opened in a child task of
//! the one above (50,000 scopes at full size), is dumped on a thread with a
//! 2 MiB stack (what tokio gives its workers and Rust its threads), and the
//! dump printed, searched, cloned and dropped there; a leak check takes its
//! census of the chain on such a thread too. Each must work there, in time
//! and memory linear in the depth: a recursion per level of nesting
//! overflows that stack some 5,000 to 7,000 levels down.
//!
//! Sizes scale as in the soak tests, with this file's own variable,
//! `NURSERY_DEEP_SCALE` (`NURSERY_SOAK_SCALE` is left to the soak tests, run
//! at 1% in CI, which would take these below the depths they are here
//! for). The default, 0.1, nests 5,000 scopes: already past the depth at
//! which a recursive dump overflows, and quick in the debug build of
//! `cargo test --workspace`. The full size, one test at a time (a dump is
//! process-wide: run together, each test's dump holds both chains):
//! `NURSERY_DEEP_SCALE=1 cargo test -p nursery-tests --release --test deep -- --nocapture --test-threads 1`;
//! each test prints its size, the time of each step and the size of the
//! text.
//!
//! The chain is torn down by a cancel from the top, with a grace period
//! long enough for every scope to end by itself: the innermost returns,
//! then each scope above as its only child does, one task at a time, so
//! the teardown takes no stack for the depth either.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use nursery::testing::LeakCheck;
use nursery::{Dump, Error, Nursery, ScopeSnapshot};
use nursery_tests::{dump_subtree, settled_alive_tasks, within_for};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Scopes in the chain at full size, the root included.
const FULL_DEPTH: usize = 50_000;

/// The stack of the thread that dumps: tokio's workers' and Rust's
/// threads' default.
const SMALL_STACK: usize = 2 << 20;

/// Bounds every wait: far beyond what a passing run takes at full size in
/// a debug build, so that a regression fails rather than hangs.
const SAFETY: Duration = Duration::from_secs(300);

/// The longest a line of a dump's text or a leak report may be, at any
/// depth: their text grows with the number of lines alone.
const MAX_LINE: usize = 300;

fn scale() -> f64 {
    match std::env::var("NURSERY_DEEP_SCALE") {
        Ok(scale) => scale
            .parse()
            .unwrap_or_else(|_| panic!("NURSERY_DEEP_SCALE={scale:?} is not a number")),
        Err(_) => 0.1,
    }
}

/// `full`, scaled; at least 2 (a root and a scope inside it).
fn scaled(full: usize) -> usize {
    ((full as f64 * scale()).round() as usize).max(2)
}

type Nested = Pin<Box<dyn Future<Output = Result<(), Error<()>>> + Send>>;

/// The name of the scope `level` levels down the chain under the root
/// `root` (the root is level 0), in a chain `depth` scopes deep: the
/// levels below the root count down to `{root}-0`, the innermost.
fn name(root: &str, depth: usize, level: usize) -> String {
    match level {
        0 => root.to_owned(),
        level => format!("{root}-{}", depth - 1 - level),
    }
}

/// Scope `{root}-{left}` opened in a child of the scope above it, then one
/// in a child of its own, down to `{root}-0`, which reports in and waits
/// to be cancelled.
fn nest_in_children(root: &'static str, left: usize, reached: oneshot::Sender<()>) -> Nested {
    let builder = Nursery::builder().name(format!("{root}-{left}"));
    Box::pin(builder.scope(move |n: Nursery<()>| async move {
        if left == 0 {
            let _ = reached.send(());
            nursery::cancelled().await;
            return Ok(());
        }
        n.spawn(async move {
            nest_in_children(root, left - 1, reached)
                .await
                .map_err(|_| ())
        });
        Ok(())
    }))
}

/// A chain of scopes `depth` deep, each in a child task of the one above,
/// open on a runtime of its own.
struct Chain {
    rt: Runtime,
    root: JoinHandle<Result<(), Error<()>>>,
    /// Sent (or dropped) to cancel the chain from the top.
    stop: oneshot::Sender<()>,
}

impl Chain {
    /// Opens the chain under a root scope named `root`, and returns once
    /// its innermost scope is open.
    fn open(root: &'static str, depth: usize) -> Chain {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let (ready_tx, ready) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let began = Instant::now();
        // Inherited by every scope of the chain: each ends by itself once
        // cancelled, none is aborted.
        let builder = Nursery::builder().name(root).grace(SAFETY);
        let root_scope = rt.spawn(builder.scope(move |n: Nursery<()>| async move {
            let (reached_tx, reached) = oneshot::channel();
            n.spawn(async move {
                nest_in_children(root, depth - 2, reached_tx)
                    .await
                    .map_err(|_| ())
            });
            let _ = ready_tx.send(reached.await.is_ok());
            let _ = stopped.await;
            n.cancel();
            Ok(())
        }));
        match ready.recv_timeout(SAFETY) {
            Ok(true) => {}
            Ok(false) => panic!("the chain failed before its innermost scope opened"),
            Err(error) => panic!("the innermost scope never opened: {error}"),
        }
        println!("  {depth} scopes nested in {:.2?}", began.elapsed());
        Chain {
            rt,
            root: root_scope,
            stop,
        }
    }

    /// Cancels the chain from the top and waits for every scope to end.
    fn close(self) {
        let began = Instant::now();
        let _ = self.stop.send(());
        let root = self.root;
        let (closed, left) = self.rt.block_on(async move {
            let closed = within_for(SAFETY, "the chain to end", root).await;
            (closed, settled_alive_tasks())
        });
        assert!(matches!(closed, Ok(Ok(()))), "{closed:?}");
        assert_eq!(left, 0, "tasks left on the runtime");
        println!("  cancelled and joined in {:.2?}", began.elapsed());
    }
}

/// Runs `f` on a new thread with a 2 MiB stack and returns what it
/// returns; fails if that takes longer than [`SAFETY`].
fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (done_tx, done) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("2 MiB stack".into())
        .stack_size(SMALL_STACK)
        .spawn(move || {
            let _ = done_tx.send(f());
        })
        .unwrap();
    match done.recv_timeout(SAFETY) {
        Ok(result) => {
            thread.join().unwrap();
            result
        }
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread ended without a result"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("the thread took longer than {SAFETY:?}"),
    }
}

/// The path a task in the scope `len` levels down the chain shows, as the
/// docs describe it: the four outermost and four innermost names, with a
/// count of those between.
fn expected_path(root: &str, depth: usize, len: usize) -> String {
    let names = |levels: std::ops::Range<usize>| {
        let names: Vec<String> = levels
            .map(|level| format!("`{}`", name(root, depth, level)))
            .collect();
        names.join(" > ")
    };
    match len {
        0..=8 => names(0..len),
        _ => format!(
            "{} > ... {} scope{} ... > {}",
            names(0..4),
            len - 8,
            if len == 9 { "" } else { "s" },
            names(len - 4..len)
        ),
    }
}

/// The process's resident set in KiB, where `/proc` tells it: printed
/// beside the times.
fn rss_kib() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// The root scope named `name` in `dump`; panics unless there is exactly one.
fn root<'a>(dump: &'a Dump, name: &str) -> &'a ScopeSnapshot {
    let mut roots = dump
        .scopes()
        .iter()
        .filter(|scope| scope.name() == Some(name));
    let (Some(root), None) = (roots.next(), roots.next()) else {
        panic!("one root scope `{name}` in the dump");
    };
    root
}

#[test]
fn a_dump_of_a_deep_chain_is_built_printed_searched_cloned_and_dropped_on_a_2_mib_stack() {
    const ROOT: &str = "deep-dump";
    let depth = scaled(FULL_DEPTH);
    println!("deep dump: {depth} scopes");
    let chain = Chain::open(ROOT, depth);
    let times = on_small_stack(move || {
        let rss_before = rss_kib();
        let began = Instant::now();
        let dump = nursery::dump();
        let dumped = began.elapsed();

        // The tree, walked down the chain: one task per scope, holding the
        // next scope; nothing in the innermost.
        let mut scope = root(&dump, ROOT);
        let mut level = 0;
        loop {
            assert_eq!(scope.name(), Some(name(ROOT, depth, level).as_str()));
            assert!(scope.scopes().is_empty(), "{scope:?}");
            match scope.tasks() {
                [] => break,
                [task] => {
                    let len = level + 1;
                    assert_eq!(task.scope_path(), expected_path(ROOT, depth, len));
                    let [inner] = task.scopes() else {
                        panic!("one scope in a task: {task:?}");
                    };
                    scope = inner;
                    level += 1;
                }
                _ => panic!("one task in a scope: {scope:?}"),
            }
        }
        assert_eq!(level + 1, depth, "scopes in the chain");
        let innermost = scope;

        // The text: one line per scope and task, none longer than a bound.
        let began = Instant::now();
        let text = dump.to_string();
        let printed = began.elapsed();
        let mine = dump_subtree(&text, ROOT);
        let lines: Vec<&str> = mine.lines().collect();
        assert_eq!(lines.len(), 2 * depth - 1, "a line per scope and task");
        let longest = text.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < MAX_LINE, "a line of {longest} bytes");
        let deepest = 2 * (depth - 1);
        let last = lines[lines.len() - 1];
        let innermost_line = format!("scope `{ROOT}-0` opened at ");
        if deepest > 32 {
            let prefix = format!("{}[depth {deepest}] {innermost_line}", " ".repeat(64));
            assert!(last.starts_with(&prefix), "{last}");
        } else {
            assert!(last.trim_start().starts_with(&innermost_line), "{last}");
        }

        // Found by name, at the bottom of the chain.
        let began = Instant::now();
        let found = dump.find(&format!("{ROOT}-0"));
        let searched = began.elapsed();
        let found = found.expect("the innermost scope");
        assert!(std::ptr::eq(found, innermost));
        let tasks = dump.tasks();
        let mine = tasks
            .iter()
            .filter(|task| task.scope_path().starts_with(&format!("`{ROOT}`")))
            .count();
        assert_eq!(mine, depth - 1, "tasks in the chain");
        drop(tasks);

        // Copied whole, and dropped, here.
        let began = Instant::now();
        let copy = dump.clone();
        let cloned = began.elapsed();
        assert_eq!(copy.to_string(), text);
        let rss = match (rss_before, rss_kib()) {
            (Some(before), Some(after)) => {
                format!(
                    "; RSS {before} KiB before the dump, {after} KiB with the dump, its text and their copies"
                )
            }
            _ => String::new(),
        };
        let began = Instant::now();
        drop(copy);
        drop(dump);
        let dropped = began.elapsed();
        format!(
            "dumped in {dumped:.2?}, printed in {printed:.2?} ({} bytes, {} lines of the chain, \
             the longest {longest} bytes), searched in {searched:.2?}, cloned in {cloned:.2?}, \
             dropped in {dropped:.2?}{rss}",
            text.len(),
            lines.len(),
        )
    });
    println!("  {times}");
    chain.close();
}

#[test]
fn a_leak_check_takes_its_census_of_a_deep_chain_on_a_2_mib_stack() {
    const ROOT: &str = "deep-census";
    const GRACE: Duration = Duration::from_millis(50);
    let depth = scaled(FULL_DEPTH);
    println!("deep census: {depth} scopes");
    let chain = Chain::open(ROOT, depth);
    let handle = chain.rt.handle().clone();
    let times = on_small_stack(move || {
        // The chain is still open: every task in it is reported.
        let began = Instant::now();
        let check = LeakCheck::new().grace(GRACE).try_run(async {});
        let report = handle.block_on(check).expect_err("the chain is open");
        let checked = began.elapsed();
        assert_eq!(report.tasks().len(), depth - 1, "tasks in the chain");
        assert_eq!(report.unscoped_tasks(), 0);
        assert!(report.leaks().is_empty());
        // Each scope's tasks before those of the scopes inside it: down the
        // chain.
        for (level, task) in report.tasks().iter().enumerate() {
            assert_eq!(task.scope_path(), expected_path(ROOT, depth, level + 1));
        }

        let began = Instant::now();
        let text = report.to_string();
        let printed = began.elapsed();
        assert_eq!(text.lines().count(), 2 + (depth - 1), "{text:.1000}");
        let longest = text.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < MAX_LINE, "a line of {longest} bytes");
        drop(report);
        format!(
            "checked in {checked:.2?} (a census every few ms over a {GRACE:?} grace), \
             report printed in {printed:.2?} ({} bytes)",
            text.len()
        )
    });
    println!("  {times}");
    chain.close();
}

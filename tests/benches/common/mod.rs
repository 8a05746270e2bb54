//! What `peers.rs` and `memory.rs` share: the runtimes, the children's
//! work, and a countdown that says when every child has been polled (or
//! dropped).
//!
//! Each bench target compiles this module on its own and uses a part of
//! it, so items unused by one of them are allowed.

#![allow(dead_code)]

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// Worker threads of the multi-thread runtime, and the bound of the
/// "bounded at the worker count" cases (in both flavours, so the work is
/// the same).
pub(crate) const WORKERS: usize = 2;

/// Which tokio runtime a benchmark runs on, and where its body runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `new_multi_thread().worker_threads(WORKERS)`; the bench body runs in
    /// `block_on` on the main thread, as under `#[tokio::main]`: its spawns
    /// go through the runtime's shared inject queue, and every wake-up of
    /// the body is a cross-thread one.
    MultiThread,
    /// `new_current_thread()`.
    CurrentThread,
    /// The multi-thread runtime, the bench body spawned as a task onto a
    /// worker (as a scope opened inside a server's request handler runs):
    /// its spawns go to that worker's local queue.
    Worker,
}

impl Flavor {
    /// The flavours chosen by `NURSERY_BENCH_FLAVOR`: `multi_thread` (the
    /// default), `current_thread`, `worker`, `both` (multi_thread and
    /// current_thread) or `all`.
    pub(crate) fn from_env() -> Vec<Flavor> {
        match std::env::var("NURSERY_BENCH_FLAVOR").as_deref() {
            Err(_) | Ok("" | "multi_thread") => vec![Flavor::MultiThread],
            Ok("current_thread") => vec![Flavor::CurrentThread],
            Ok("worker") => vec![Flavor::Worker],
            Ok("both") => vec![Flavor::MultiThread, Flavor::CurrentThread],
            Ok("all") => vec![Flavor::MultiThread, Flavor::CurrentThread, Flavor::Worker],
            Ok(other) => panic!(
                "NURSERY_BENCH_FLAVOR={other:?}: expected multi_thread, current_thread, worker, both or all"
            ),
        }
    }

    /// Whether the runtime has a thread pool (so blocking in place works).
    pub(crate) fn is_multi_thread(self) -> bool {
        self != Flavor::CurrentThread
    }

    /// Runs a bench body where this flavour says: in place (inside
    /// `block_on`), or spawned onto a worker and awaited.
    pub(crate) async fn body<F>(self, body: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Flavor::MultiThread | Flavor::CurrentThread => body.await,
            Flavor::Worker => tokio::spawn(body).await.expect("the bench body panicked"),
        }
    }

    /// A fresh runtime of this flavour, with time and IO enabled.
    pub(crate) fn runtime(self) -> Runtime {
        let mut builder = match self {
            Flavor::MultiThread | Flavor::Worker => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(WORKERS);
                builder
            }
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        };
        builder.enable_all().build().expect("tokio runtime")
    }

    /// The criterion group name for `scenario`: the bare name for the
    /// default flavour, `current_thread/<scenario>` and `worker/<scenario>`
    /// for the others.
    pub(crate) fn group(self, scenario: &str) -> String {
        match self {
            Flavor::MultiThread => scenario.to_owned(),
            Flavor::CurrentThread => format!("current_thread/{scenario}"),
            Flavor::Worker => format!("worker/{scenario}"),
        }
    }
}

/// The `cpu` child's work: sums `0..1000`, every term through
/// `black_box` so the loop is neither folded nor vectorised away. Never
/// inlined, so every approach runs the very same machine code (inlined
/// copies differed by up to 1.5x).
#[inline(never)]
pub(crate) fn cpu_work(seed: u64) -> u64 {
    (0..1000u64).fold(seed, |sum, x| sum.wrapping_add(black_box(x)))
}

/// What a child of `tiny`, `cpu` and `sleep` returns: every approach
/// spawns the very same future, fallible as library code's children are,
/// and none wraps it in an `async` block of its own. A nursery child must
/// return a `Result`; with a bare `u64` its approaches alone had to wrap
/// the job, which made their futures 8 bytes larger than the others' and,
/// for the 16-byte `cpu` job, their tokio tasks 256 bytes instead of 128
/// (docs/performance.md, "What limits it").
pub(crate) type Out = Result<u64, ()>;

/// The `sleep` child's wait.
pub(crate) const SLEEP: Duration = Duration::from_millis(1);

/// Counts down from `n`; async and blocking waiters learn when it reaches
/// zero. Only the last count wakes anyone, so counting is one atomic
/// decrement (cheap enough to sit in every child).
#[derive(Debug)]
pub(crate) struct Countdown {
    left: AtomicUsize,
    notify: Notify,
    done: Mutex<bool>,
    done_changed: Condvar,
}

impl Countdown {
    pub(crate) fn new(n: usize) -> Arc<Countdown> {
        let countdown = Arc::new(Countdown {
            left: AtomicUsize::new(n),
            notify: Notify::new(),
            done: Mutex::new(n == 0),
            done_changed: Condvar::new(),
        });
        if n == 0 {
            countdown.notify.notify_one();
        }
        countdown
    }

    /// Counts one; the count that reaches zero wakes the waiters.
    pub(crate) fn count(&self) {
        // AcqRel: whoever sees zero also sees everything the counters did.
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stores a permit if nobody waits yet, so a later `wait` returns.
            self.notify.notify_one();
            *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
            self.done_changed.notify_all();
        }
    }

    /// How many counts are still missing.
    pub(crate) fn left(&self) -> usize {
        self.left.load(Ordering::Acquire)
    }

    /// Waits (asynchronously) until the count reaches zero. One waiter only.
    pub(crate) async fn wait(&self) {
        while self.left() != 0 {
            self.notify.notified().await;
        }
    }

    /// Blocks the thread until the count reaches zero, for code that cannot
    /// await (inside `async_scoped::TokioScope::scope_and_block`). Blocks
    /// in place, so on a worker the runtime moves the worker's queue to
    /// another thread first (multi-thread runtime only).
    pub(crate) fn wait_blocking(&self) {
        tokio::task::block_in_place(|| self.wait_blocking_here());
    }

    fn wait_blocking_here(&self) {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let _done = self
            .done_changed
            .wait_while(done, |done| !*done)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// Counts one on its [`Countdown`] when dropped: put one in a child to learn
/// when the child's future is gone.
#[derive(Debug)]
pub(crate) struct CountOnDrop(pub(crate) Arc<Countdown>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.count();
    }
}

/// A child that counts itself on `polled` at its first poll and then never
/// finishes. With `dropped`, a guard inside counts on it when the future is
/// dropped (created before the first poll, so an unpolled child counts
/// too). Its output type is [`Out`], so that every approach, nursery's
/// included, spawns it as it is.
pub(crate) fn pending_child(
    polled: &Arc<Countdown>,
    dropped: Option<&Arc<Countdown>>,
) -> impl Future<Output = Out> + Send + 'static + use<> {
    let polled = polled.clone();
    let guard = dropped.map(|dropped| CountOnDrop(dropped.clone()));
    async move {
        let _guard = guard;
        polled.count();
        std::future::pending::<Out>().await
    }
}

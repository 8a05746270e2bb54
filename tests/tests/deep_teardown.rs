//! Deep nesting, torn down: a chain of scopes, each opened in a child of
//! the one above, cancelled or dropped from the top, on worker threads
//! with a small stack. Ending a scope releases its parent, which may end
//! in turn, up the whole chain; each scope holds its parent: none of it
//! may take stack per level.
//!
//! The chain is `NURSERY_DEEP_SCALE` × 50,000 scopes deep (default 0.1:
//! 5,000, on 128 KiB worker stacks, which the per-level recursion this
//! guards against overflows in debug and release builds alike). The full
//! depth: `NURSERY_DEEP_SCALE=1 cargo test -p nursery-tests --release
//! --test deep_teardown`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use nursery::{Error, Nursery};
use nursery_tests::{Latch, panic_message, within_for};
use tokio::sync::oneshot;

const FULL_DEPTH: usize = 50_000;

/// One chain at a time: each test waits for the whole tree to empty, and
/// the chains are large.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Bounds every wait for something that should end: a regression fails
/// here instead of hanging the suite.
const BOUND: Duration = Duration::from_secs(120);

fn depth() -> usize {
    let scale: f64 = match std::env::var("NURSERY_DEEP_SCALE") {
        Ok(scale) => scale
            .parse()
            .unwrap_or_else(|_| panic!("NURSERY_DEEP_SCALE={scale:?} is not a number")),
        Err(_) => 0.1,
    };
    ((FULL_DEPTH as f64 * scale).round() as usize).max(1)
}

/// Two workers with small stacks: what a level of recursion per scope
/// would overflow long before the chain's end.
fn small_stack_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(128 * 1024)
        .enable_time()
        .build()
        .unwrap()
}

type Nested = Pin<Box<dyn Future<Output = Result<(), Error<()>>> + Send>>;

/// What the innermost scope of a chain does once it is open.
enum Bottom {
    /// Reports in, then waits forever.
    Wait(oneshot::Sender<()>),
    /// Starts a blocking child that reports in, waits for the latch and
    /// then panics.
    PanicLater(oneshot::Sender<()>, std::sync::Arc<Latch>),
}

/// A scope opened in a child of the scope above it, `depth` times.
fn chain(depth: usize, bottom: Bottom) -> Nested {
    Box::pin(nursery::scope(move |n: Nursery<()>| async move {
        if depth > 0 {
            n.spawn(async move { chain(depth - 1, bottom).await.map_err(|_| ()) });
            return Ok(());
        }
        match bottom {
            Bottom::Wait(reached) => {
                let _ = reached.send(());
            }
            Bottom::PanicLater(reached, latch) => {
                n.spawn_blocking(move |_token| -> Result<(), ()> {
                    let _ = reached.send(());
                    assert!(latch.wait(BOUND), "the chain was never dropped");
                    panic!("the bottom of the chain panicked");
                });
            }
        }
        std::future::pending().await
    }))
}

/// Waits until no scope is left open anywhere.
async fn tree_empties() {
    within_for(BOUND, "the chain's scopes to leave the tree", async {
        while !nursery::dump().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[test]
fn cancelling_a_deep_chain_of_scopes_takes_no_stack_per_level() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let depth = depth();
    small_stack_runtime().block_on(async move {
        let result = nursery::scope(move |n: Nursery<()>| async move {
            let (reached_tx, reached) = oneshot::channel();
            n.spawn(async move { chain(depth, Bottom::Wait(reached_tx)).await.map_err(|_| ()) });
            within_for(BOUND, "the chain to open", reached)
                .await
                .expect("the innermost scope opened");
            n.cancel();
            Ok(())
        });
        assert_eq!(
            within_for(BOUND, "the chain to be cancelled", result).await,
            Ok(())
        );
        tree_empties().await;
    });
}

#[test]
fn dropping_a_deep_chain_of_scopes_takes_no_stack_per_level() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let depth = depth();
    small_stack_runtime().block_on(async move {
        let (reached_tx, reached) = oneshot::channel();
        let root = chain(depth, Bottom::Wait(reached_tx));
        tokio::select! {
            _ = root => panic!("the chain cannot return"),
            _ = within_for(BOUND, "the chain to open", reached) => {} // dropped here
        }
        tree_empties().await;
    });
}

#[test]
fn a_panic_at_the_bottom_of_a_dropped_chain_is_re_raised_by_the_scope_above_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let depth = depth();
    small_stack_runtime().block_on(async move {
        let outer = tokio::spawn(nursery::scope(move |_: Nursery<()>| async move {
            let (reached_tx, reached) = oneshot::channel();
            let latch = Latch::new();
            let dropped = latch.clone();
            let inner = chain(depth, Bottom::PanicLater(reached_tx, latch));
            tokio::select! {
                _ = inner => panic!("the chain cannot return"),
                _ = within_for(BOUND, "the chain to open", reached) => {} // dropped here
            }
            // The panic travels up every dropped scope to this one.
            dropped.open();
            Ok(())
        }));
        let payload = within_for(BOUND, "the outer scope", outer)
            .await
            .expect_err("the panic is re-raised")
            .into_panic();
        assert_eq!(panic_message(&*payload), "the bottom of the chain panicked");
        tree_empties().await;
    });
}

//! Fail-fast: the first error cancels everything else in the scope, and
//! the errors that arrive while it is cancelling come back too.
//!
//! ```text
//! cargo run -p nursery --example fail_fast
//! ```
//!
//! Four replicas are asked for the same record. `replica-2` fails after
//! 20 ms, which cancels the scope: `replica-1` sees the cancel and stops
//! cleanly, `replica-3` fails while shutting down (its error is kept in
//! `suppressed`), and `replica-4`, which never looks, is aborted once the
//! scope's `grace` is over. The scope returns `Error::Failed` only after
//! all four have ended.

use std::time::{Duration, Instant};

use nursery::{Error, Nursery};
use tokio::time::sleep;

#[tokio::main]
async fn main() {
    let start = Instant::now();
    let result: Result<(), Error<String>> = Nursery::builder()
        .grace(Duration::from_millis(100)) // time for cleanup after a cancel
        .scope(|n| async move {
            n.spawn_named("replica-1", async {
                tokio::select! {
                    _ = sleep(Duration::from_secs(5)) => Ok(()),
                    cause = nursery::cancelled() => {
                        println!("replica-1: stopping, because {cause}");
                        Ok(())
                    }
                }
            });
            n.spawn_named("replica-2", async {
                sleep(Duration::from_millis(20)).await;
                Err::<(), _>("replica-2: connection reset".to_string())
            });
            n.spawn_named("replica-3", async {
                nursery::cancelled().await;
                Err::<(), _>("replica-3: could not flush its buffer on shutdown".to_string())
            });
            n.spawn_named("replica-4", async {
                let _aborted = OnDrop("replica-4: aborted after the grace period");
                sleep(Duration::from_secs(5)).await; // never checks for a cancel
                Ok(())
            });
            Ok(())
        })
        .await;

    let elapsed = start.elapsed().as_millis();
    match result {
        Err(Error::Failed {
            error, suppressed, ..
        }) => {
            println!("the scope failed after {elapsed} ms: {error}");
            for error in suppressed {
                println!("  suppressed: {error}");
            }
        }
        other => panic!("expected Error::Failed, got {other:?}"),
    }
}

/// Prints its message when dropped: here, when a task is aborted.
struct OnDrop(&'static str);

impl Drop for OnDrop {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

//! `Nursery::stats()`: exact counts of a scope's children after a mix of
//! successes, failures, a panic, queued and cancelled children.

use std::sync::Arc;

use nursery::{Nursery, Stats};
use tokio::sync::{Notify, oneshot};

fn counts(stats: Stats) -> [usize; 7] {
    [
        stats.spawned,
        stats.queued,
        stats.running,
        stats.succeeded,
        stats.failed,
        stats.cancelled,
        stats.panicked,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_successes_failures_queued_cancelled_and_panicked_children() {
    let (handle_tx, handle_rx) = oneshot::channel();
    let panic_now = Arc::new(Notify::new());
    let trigger = panic_now.clone();
    let scope = tokio::spawn(
        Nursery::builder()
            .limit(2)
            .collect_errors() // failures cancel nothing; the panic will
            .scope(|n: Nursery<String>| async move {
                let _ = handle_tx.send(n.clone());
                assert_eq!(counts(n.stats()), [0; 7]);

                // Two successes and a failure, one after the other.
                n.spawn(async { Ok(()) }).await.unwrap();
                assert!(
                    n.spawn(async { Err::<(), _>("no".to_string()) })
                        .await
                        .is_err()
                );
                n.spawn(async { Ok(()) }).await.unwrap();
                //               spawned queued running ok  failed cancelled panicked
                assert_eq!(counts(n.stats()), [3, 0, 0, 2, 1, 0, 0]);

                // Fill both slots, then queue two more behind them.
                let (started_tx, started_rx) = oneshot::channel();
                n.spawn(async move {
                    let _ = started_tx.send(());
                    std::future::pending::<Result<(), String>>().await
                });
                let (armed_tx, armed_rx) = oneshot::channel();
                n.spawn(async move {
                    let notified = trigger.notified();
                    let _ = armed_tx.send(());
                    notified.await;
                    panic!("on purpose") as Result<(), String>
                });
                n.spawn(async { Ok(()) });
                n.spawn(async { Ok(()) });
                assert_eq!(counts(n.stats()), [7, 2, 2, 2, 1, 0, 0]);
                started_rx.await.unwrap();
                armed_rx.await.unwrap();
                assert_eq!(counts(n.stats()), [7, 2, 2, 2, 1, 0, 0]);

                // The panic cancels the rest: the running child is aborted,
                // the queued ones never start, and the body is cancelled.
                panic_now.notify_one();
                std::future::pending::<Result<(), String>>().await
            }),
    );
    let n: Nursery<String> = handle_rx.await.unwrap();
    let joined = scope.await;
    assert!(
        joined.unwrap_err().is_panic(),
        "the scope re-raised the panic"
    );

    // Read after the scope returned, through a clone of its handle.
    let stats = n.stats();
    //                          spawned queued running ok  failed cancelled panicked
    assert_eq!(counts(stats), [7, 0, 0, 2, 1, 3, 1]);
    assert_eq!(
        stats.spawned,
        stats.queued
            + stats.running
            + stats.succeeded
            + stats.failed
            + stats.cancelled
            + stats.panicked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_without_a_limit_count_tasks_and_blocking_children() {
    let (handle_tx, handle_rx) = oneshot::channel();
    let result = Nursery::builder()
        .collect_errors()
        .scope(|n: Nursery<String>| async move {
            let _ = handle_tx.send(n.clone());
            n.spawn(async { Ok(()) }).await.unwrap();
            n.spawn_blocking(|_| Ok(())).await.unwrap();
            assert!(
                n.spawn_blocking(|_| Err::<(), _>("no".to_string()))
                    .await
                    .is_err()
            );
            let (started_tx, started_rx) = oneshot::channel();
            n.spawn(async move {
                let _ = started_tx.send(());
                std::future::pending::<Result<(), String>>().await
            });
            started_rx.await.unwrap();
            //               spawned queued running ok  failed cancelled panicked
            assert_eq!(counts(n.stats()), [4, 0, 1, 2, 1, 0, 0]);
            // Without a grace period the pending child is aborted at once.
            n.cancel();
            // Refused: the scope is cancelled. Not spawned, counted nowhere.
            assert!(n.spawn(async { Ok(()) }).await.unwrap_err().is_cancelled());
            Ok(())
        })
        .await;
    // The error collected before the cancel is returned.
    assert!(matches!(result, Err(nursery::Error::Failed { .. })));
    let n: Nursery<String> = handle_rx.await.unwrap();
    assert_eq!(counts(n.stats()), [4, 0, 0, 2, 1, 1, 0]);
}

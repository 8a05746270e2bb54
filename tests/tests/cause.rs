//! `nursery::cause()` and `nursery::cancelled()`: a cancelled child learns
//! why, for each cause, and a scope inside a child reads as the cause that
//! reached it from outside.
//!
//! Every scope here has a long grace period, so that a child is still
//! running when the token fires (without one, a cancel aborts the children
//! at once); the scopes end as soon as their children do.

use std::panic::Location;
use std::time::Duration;

use nursery::{Cause, Nursery};
use nursery_tests::within;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

const GRACE: Duration = Duration::from_secs(60);

/// Spawns a child that reports the cause `nursery::cancelled()` resolves to,
/// and what `nursery::cause()` says just after.
fn watch<E: Send + 'static>(n: &Nursery<E>) -> oneshot::Receiver<(Cause, Option<Cause>)> {
    let (tx, rx) = oneshot::channel();
    n.spawn(async move {
        let cause = nursery::cancelled().await;
        let _ = tx.send((cause, nursery::cause()));
        Ok(())
    });
    rx
}

/// The cause a watcher saw, checking that `cause()` agreed once cancelled.
async fn seen(watcher: oneshot::Receiver<(Cause, Option<Cause>)>) -> Cause {
    let (cause, after) = watcher.await.expect("the watcher saw the cancel");
    assert_eq!(
        after.as_ref(),
        Some(&cause),
        "cause() agrees with cancelled()"
    );
    cause
}

#[tokio::test(start_paused = true)]
async fn a_child_sees_timed_out_when_the_deadline_passes() {
    let (tx, rx) = oneshot::channel();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::from_secs(5))
            .grace(GRACE)
            .scope(|n| async move {
                let _ = tx.send(watch(&n));
                std::future::pending::<Result<(), ()>>().await
            }),
    )
    .await;
    assert_eq!(result, Err(nursery::Error::TimedOut));
    assert_eq!(seen(rx.await.unwrap()).await, Cause::TimedOut);
}

#[tokio::test]
async fn a_child_sees_cancelled_when_the_cancel_on_token_fires() {
    let shutdown = CancellationToken::new();
    let (tx, rx) = oneshot::channel();
    let trigger = shutdown.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .cancel_on(shutdown)
            .grace(GRACE)
            .scope(|n| async move {
                let _ = tx.send(watch(&n));
                trigger.cancel();
                std::future::pending::<Result<(), ()>>().await
            }),
    )
    .await;
    assert_eq!(result, Err(nursery::Error::Cancelled));
    assert_eq!(seen(rx.await.unwrap()).await, Cause::Cancelled);
}

#[tokio::test]
async fn a_child_sees_requested_after_nursery_cancel_and_none_before() {
    let cause = within(
        "the scope",
        Nursery::builder().grace(GRACE).scope(|n| async move {
            let (ready_tx, ready_rx) = oneshot::channel();
            let (tx, rx) = oneshot::channel();
            n.spawn(async move {
                assert_eq!(nursery::cause(), None, "not cancelled yet");
                let _ = ready_tx.send(());
                let _ = tx.send(nursery::cancelled().await);
                Ok::<_, ()>(())
            });
            ready_rx.await.unwrap();
            assert_eq!(
                nursery::cause(),
                None,
                "the body's scope is not cancelled yet"
            );
            n.cancel();
            assert_eq!(nursery::cause(), Some(Cause::Requested));
            Ok(rx.await.unwrap())
        }),
    )
    .await
    .unwrap();
    assert_eq!(cause, Cause::Requested);
    assert_eq!(nursery::cause(), None, "outside any scope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_sees_which_task_failed_and_where_it_was_spawned() {
    let (tx, rx) = oneshot::channel();
    let (location_tx, location_rx) = oneshot::channel();
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(GRACE)
            .scope(|n: Nursery<String>| async move {
                let _ = tx.send(watch(&n));
                let failing =
                    n.spawn_named("parser", async { Err::<(), _>("bad input".to_string()) });
                let _ = location_tx.send(failing.location());
                Ok(())
            }),
    )
    .await;
    assert!(matches!(result, Err(nursery::Error::Failed { .. })));
    let cause = seen(rx.await.unwrap()).await;
    assert!(matches!(cause, Cause::Failed { .. }), "{cause:?}");
    assert_eq!(cause.task(), Some("parser"));
    let location = cause.location().unwrap();
    assert_eq!(location.file(), file!());
    assert_eq!(location, location_rx.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_body_reads_as_failed_at_the_scopes_location() {
    let (tx, rx) = oneshot::channel();
    let opened_at = Location::caller();
    let builder = Nursery::builder().grace(GRACE);
    let scope_line = line!() + 1;
    let scope = builder.scope(|n: Nursery<String>| async move {
        let _ = tx.send(watch(&n));
        Err::<(), _>("the body gave up".to_string())
    });
    let result = within("the scope", scope).await;
    assert!(matches!(result, Err(nursery::Error::Failed { .. })));
    let cause = seen(rx.await.unwrap()).await;
    assert!(
        matches!(cause, Cause::Failed { task: None, .. }),
        "{cause:?}"
    );
    let location = cause.location().unwrap();
    assert_eq!(location.file(), opened_at.file());
    assert_eq!(location.line(), scope_line, "the line of `.scope(`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_sees_which_task_panicked() {
    let (tx, rx) = oneshot::channel();
    let scope = tokio::spawn(
        Nursery::builder()
            .collect_errors() // a panic cancels all the same
            .grace(GRACE)
            .scope(|n: Nursery<String>| async move {
                let _ = tx.send(watch(&n));
                n.spawn_named("boom", async { panic!("on purpose") as Result<(), String> });
                Ok(())
            }),
    );
    let joined = within("the scope", scope).await;
    assert!(
        joined.unwrap_err().is_panic(),
        "the scope re-raised the panic"
    );
    let cause = seen(rx.await.unwrap()).await;
    assert!(matches!(cause, Cause::Panicked { .. }), "{cause:?}");
    assert_eq!(cause.task(), Some("boom"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_scope_reads_as_the_outer_failure() {
    let (inner_tx, inner_rx) = oneshot::channel();
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(GRACE)
            .scope(|n: Nursery<String>| async move {
                // A child running a scope of its own, whose child watches.
                n.spawn(async move {
                    let inner = nursery::scope(|inner: Nursery<String>| async move {
                        let watcher = watch(&inner);
                        let _ = inner_tx.send(watcher);
                        let _ = ready_tx.send(());
                        Ok(())
                    })
                    .await;
                    // Cancelled from outside, as the outcome rule says.
                    assert_eq!(inner, Err(nursery::Error::Cancelled));
                    Ok(())
                });
                ready_rx.await.unwrap();
                n.spawn_named("breaker", async { Err::<(), _>("broken".to_string()) });
                Ok(())
            }),
    )
    .await;
    assert!(matches!(result, Err(nursery::Error::Failed { .. })));
    let cause = seen(inner_rx.await.unwrap()).await;
    assert!(matches!(cause, Cause::Failed { .. }), "{cause:?}");
    assert_eq!(cause.task(), Some("breaker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_scope_two_levels_down_reads_as_the_outer_request() {
    let (inner_tx, inner_rx) = oneshot::channel();
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(GRACE)
            .name("outer")
            .scope(|n: Nursery<String>| async move {
                n.spawn(async move {
                    Nursery::builder()
                        .name("middle")
                        .scope(|middle: Nursery<String>| async move {
                            middle.spawn(async move {
                                Nursery::builder()
                                    .name("inner")
                                    .scope(|inner: Nursery<String>| async move {
                                        let _ = inner_tx.send(watch(&inner));
                                        let _ = ready_tx.send(());
                                        Ok(())
                                    })
                                    .await
                                    .map_err(|e| e.to_string())
                            });
                            Ok(())
                        })
                        .await
                        .map_err(|e| e.to_string())
                });
                ready_rx.await.unwrap();
                n.cancel();
                Ok("the body's result")
            }),
    )
    .await;
    assert_eq!(result, Ok("the body's result"));
    assert_eq!(seen(inner_rx.await.unwrap()).await, Cause::Requested);
}

#[tokio::test(start_paused = true)]
async fn an_inner_scope_past_its_deadline_reads_as_timed_out() {
    let (inner_tx, inner_rx) = oneshot::channel();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::from_secs(1))
            .grace(GRACE)
            .scope(|n: Nursery<String>| async move {
                // In a child, which the grace period lets finish; a scope in
                // the body would be dropped with the body.
                n.spawn(async move {
                    nursery::scope(|inner: Nursery<String>| async move {
                        let _ = inner_tx.send(watch(&inner));
                        Ok(())
                    })
                    .await
                    .map_err(|e| e.to_string())
                });
                std::future::pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(nursery::Error::TimedOut));
    assert_eq!(seen(inner_rx.await.unwrap()).await, Cause::TimedOut);
}

/// A child spawned from outside the runtime's workers (the test body runs in
/// `block_on`) can start on a worker and fail before its spawner has
/// recorded it: the cause must still name it, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_fails_at_once_is_still_named_in_the_cause() {
    for round in 0..200 {
        let (tx, rx) = oneshot::channel();
        let result = within(
            "the scope",
            Nursery::builder()
                .grace(GRACE)
                .scope(|n: Nursery<String>| async move {
                    let _ = tx.send(watch(&n));
                    n.spawn_named("quick", async { Err::<(), _>("at once".to_string()) });
                    Ok(())
                }),
        )
        .await;
        assert!(matches!(result, Err(nursery::Error::Failed { .. })));
        let cause = seen(rx.await.unwrap()).await;
        assert_eq!(cause.task(), Some("quick"), "round {round}: {cause:?}");
    }
}

/// A scope whose own deadline has passed when a cancel from the scope
/// around it reaches it reads as timed out, as its result says, not as the
/// outer scope's cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_past_its_deadline_reads_timed_out_when_a_cancel_from_above_reaches_it() {
    let (seen_tx, seen) = oneshot::channel();
    let outer = within(
        "the outer scope",
        nursery::scope(|outer: Nursery<()>| async move {
            let inner = Nursery::builder()
                .timeout(Duration::from_millis(20))
                .grace(Duration::from_secs(5)) // the child gets to see the cause
                .scope(move |n: Nursery<()>| async move {
                    n.spawn(async move {
                        let _ = seen_tx.send(nursery::cancelled().await);
                        Ok(())
                    });
                    // The deadline passes while the body holds the thread:
                    // the scope has not looked at its clock when the cancel
                    // from above arrives.
                    std::thread::sleep(Duration::from_millis(60));
                    outer.cancel();
                    Ok(())
                })
                .await;
            assert_eq!(inner, Err(nursery::Error::TimedOut));
            Ok(())
        }),
    )
    .await;
    assert_eq!(outer, Ok(()));
    let cause = within("the inner child's cause", seen).await;
    assert_eq!(cause, Ok(Cause::TimedOut));
}

//! What a scope's `Error`, a child's `JoinError` and its `TaskHandle` tell
//! about an outcome, read from real scopes: the accessors a caller uses
//! instead of matching, and `into_error`, which the `#[nursery]` attribute
//! relies on.

use std::time::Duration;

use nursery::{Error, Interrupted, JoinError, Nursery};
use nursery_tests::within;
use tokio_util::sync::CancellationToken;

#[derive(Debug, PartialEq)]
enum AppError {
    Interrupted(Interrupted),
    Failed(u32),
}

impl From<Interrupted> for AppError {
    fn from(interrupted: Interrupted) -> AppError {
        AppError::Interrupted(interrupted)
    }
}

/// A scope whose three children fail in order, keeping one error behind
/// the first.
async fn three_failures() -> Result<(), Error<AppError>> {
    within(
        "a scope whose children fail",
        Nursery::builder().collect_errors().max_suppressed(1).scope(
            |n: Nursery<AppError>| async move {
                for i in 1..=3 {
                    // Each fails before the next is spawned: the order is known.
                    let failed = n.spawn(async move { Err::<(), _>(AppError::Failed(i)) });
                    assert!(failed.await.unwrap_err().is_failed());
                }
                Ok(())
            },
        ),
    )
    .await
}

async fn timed_out() -> Result<(), Error<AppError>> {
    within(
        "a scope with a timeout",
        Nursery::builder()
            .timeout(Duration::from_secs(1))
            .scope(|_n: Nursery<AppError>| std::future::pending()),
    )
    .await
}

async fn cancelled() -> Result<(), Error<AppError>> {
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    within(
        "a scope cancelled from outside",
        Nursery::builder()
            .cancel_on(shutdown)
            .scope(|_n: Nursery<AppError>| std::future::pending()),
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn error_accessors_describe_a_failed_scope() {
    let error = three_failures().await.unwrap_err();
    assert_eq!(error.error(), Some(&AppError::Failed(1)));
    assert_eq!(error.suppressed(), [AppError::Failed(2)]);
    assert_eq!(error.omitted(), 1, "the third error, past the cap");
    assert!(!error.is_timed_out());
    assert!(!error.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn error_accessors_describe_a_timed_out_scope() {
    let error = timed_out().await.unwrap_err();
    assert!(error.is_timed_out());
    assert!(!error.is_cancelled());
    assert_eq!(error.error(), None);
    assert!(error.suppressed().is_empty());
    assert_eq!(error.omitted(), 0);
}

#[tokio::test(start_paused = true)]
async fn error_accessors_describe_a_cancelled_scope() {
    let error = cancelled().await.unwrap_err();
    assert!(error.is_cancelled());
    assert!(!error.is_timed_out());
    assert_eq!(error.error(), None);
    assert!(error.suppressed().is_empty());
    assert_eq!(error.omitted(), 0);
}

#[tokio::test(start_paused = true)]
async fn into_error_turns_each_outcome_into_the_callers_error() {
    assert_eq!(
        three_failures().await.unwrap_err().into_error(),
        AppError::Failed(1),
        "the first error; the others are dropped"
    );
    assert_eq!(
        timed_out().await.unwrap_err().into_error(),
        AppError::Interrupted(Interrupted::TimedOut)
    );
    assert_eq!(
        cancelled().await.unwrap_err().into_error(),
        AppError::Interrupted(Interrupted::Cancelled)
    );
}

#[tokio::test]
async fn join_error_names_the_failed_task_and_where_it_was_spawned() {
    let (seen_tx, seen) = tokio::sync::oneshot::channel();
    let result = within(
        "a scope whose children fail",
        Nursery::builder()
            .collect_errors()
            .scope(|n: Nursery<AppError>| async move {
                let mut errors = Vec::new();
                // Each fails before the next is spawned: the order is known.
                let named = n.spawn_named("parse", async { Err::<(), _>(AppError::Failed(1)) });
                errors.push((named.await.unwrap_err(), line!() - 1));
                let unnamed = n.spawn(async { Err::<(), _>(AppError::Failed(2)) });
                errors.push((unnamed.await.unwrap_err(), line!() - 1));
                let blocking =
                    n.spawn_blocking_named("crunch", |_| Err::<(), _>(AppError::Failed(3)));
                errors.push((blocking.await.unwrap_err(), line!() - 1));
                // The scope fails, so the body's value is dropped: sent out.
                seen_tx.send(errors).unwrap();
                Ok(())
            }),
    )
    .await;
    let Err(Error::Failed {
        error, suppressed, ..
    }) = result
    else {
        panic!("expected the children's failures, got {result:?}");
    };
    assert_eq!(error, AppError::Failed(1));
    assert_eq!(suppressed, [AppError::Failed(2), AppError::Failed(3)]);
    let seen: Vec<(Option<String>, u32, u32)> = seen
        .await
        .unwrap()
        .into_iter()
        .map(|(error, at)| {
            assert!(error.is_failed(), "{error:?}");
            assert_eq!(error.location().file(), file!());
            (error.name().map(str::to_owned), error.location().line(), at)
        })
        .collect();
    for (name, line, at) in &seen {
        assert_eq!(line, at, "{name:?}");
    }
    let names: Vec<Option<&str>> = seen.iter().map(|(name, _, _)| name.as_deref()).collect();
    assert_eq!(names, [Some("parse"), None, Some("crunch")]);
}

#[tokio::test]
async fn join_error_of_a_cancelled_or_refused_child_names_it() {
    let seen = within(
        "a scope whose children are cancelled",
        Nursery::builder()
            .limit(1)
            .scope(|n: Nursery<AppError>| async move {
                let mut seen = Vec::new();
                // Started at once, on a task; then one queued behind it.
                let running = n.spawn_named("running", std::future::pending::<Result<(), _>>());
                let running_at = line!() - 1;
                let queued = n.spawn(async { Ok(()) });
                let queued_at = line!() - 1;
                // The body cancels its children; one spawned after that is
                // refused. Every handle still names its task.
                n.cancel();
                let refused = n.spawn_named("refused", async { Ok(()) });
                let refused_at = line!() - 1;
                for (handle, at) in [
                    (running, running_at),
                    (queued, queued_at),
                    (refused, refused_at),
                ] {
                    let error: JoinError = handle.await.unwrap_err();
                    assert!(error.is_cancelled(), "{error:?}");
                    assert_eq!(error.location().file(), file!());
                    seen.push((error.name().map(str::to_owned), error.location().line(), at));
                }
                Ok(seen)
            }),
    )
    .await
    .unwrap();
    for (name, line, at) in &seen {
        assert_eq!(line, at, "{name:?}");
    }
    let names: Vec<Option<&str>> = seen.iter().map(|(name, _, _)| name.as_deref()).collect();
    assert_eq!(names, [Some("running"), None, Some("refused")]);
}

#[tokio::test]
async fn task_handle_names_the_task_and_where_it_was_spawned() {
    let seen = within(
        "a scope with named and unnamed children",
        Nursery::builder()
            .limit(1)
            .scope(|n: Nursery<AppError>| async move {
                // Started at once, queued behind it under the limit, a
                // blocking one, and one refused after a cancel.
                let running = n.spawn_named("running", async { Ok(()) });
                let running_at = line!() - 1;
                let queued = n.spawn(async { Ok(()) });
                let queued_at = line!() - 1;
                let blocking = n.spawn_blocking_named("blocking", |_| Ok(()));
                let blocking_at = line!() - 1;
                let mut seen = [
                    (&running, running_at),
                    (&queued, queued_at),
                    (&blocking, blocking_at),
                ]
                .into_iter()
                .map(|(handle, at)| {
                    assert_eq!(handle.location().file(), file!());
                    (
                        handle.name().map(str::to_owned),
                        handle.location().line(),
                        at,
                    )
                })
                .collect::<Vec<_>>();
                for handle in [running, queued, blocking] {
                    handle.await.unwrap();
                }
                n.cancel();
                let refused = n.spawn_named("refused", async { Ok(()) });
                let refused_at = line!() - 1;
                seen.push((
                    refused.name().map(str::to_owned),
                    refused.location().line(),
                    refused_at,
                ));
                Ok(seen)
            }),
    )
    .await
    .unwrap();
    for (name, line, at) in &seen {
        assert_eq!(line, at, "{name:?}");
    }
    let names: Vec<Option<&str>> = seen.iter().map(|(name, _, _)| name.as_deref()).collect();
    assert_eq!(
        names,
        [Some("running"), None, Some("blocking"), Some("refused")]
    );
}

/// A `Nursery` kept past its scope still tells what became of the scope:
/// cancelled (here by `n.cancel()`), and closed to new children.
#[tokio::test]
async fn a_nursery_kept_past_its_scope_still_reads_cancelled_and_refuses_children() {
    let kept = within(
        "the scope",
        nursery::scope(|n: Nursery<()>| async move {
            n.spawn(std::future::pending::<Result<(), ()>>());
            n.cancel();
            Ok(n.clone())
        }),
    )
    .await
    .expect("a requested cancel is not an error");
    assert!(kept.is_cancelled());
    let refused = kept
        .try_spawn(async { Ok(()) })
        .expect_err("the scope has returned");
    assert!(refused.is_closed());
}

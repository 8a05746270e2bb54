//! G2 fail-fast: the first error (from a child or the body) cancels the body
//! and every other child and is returned after the join; later errors are
//! kept as `suppressed`; `collect_errors()` cancels nothing and returns every
//! error in time order; errors after a deadline or an outside cancel are
//! discarded, errors collected before one are returned as `Failed`.

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use nursery::{Error, Nursery};
use nursery_tests::{DropCounter, within, yield_rounds};
use tokio::sync::{Barrier, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type E = &'static str;

fn failed(error: E, suppressed: &[E]) -> Error<E> {
    Error::Failed {
        error,
        suppressed: suppressed.to_vec(),
        omitted: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_first_error_cancels_siblings_and_is_returned_after_the_join() {
    const SIBLINGS: usize = 8;
    let guards = DropCounter::new();
    let handed_out = guards.clone();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            let all_started = Arc::new(Barrier::new(SIBLINGS + 1));
            for _ in 0..SIBLINGS {
                let guard = handed_out.guard();
                let started = all_started.clone();
                drop(n.spawn(async move {
                    let _guard = guard;
                    started.wait().await;
                    pending::<Result<(), E>>().await
                }));
            }
            drop(n.spawn(async move {
                all_started.wait().await;
                Err::<(), _>("first")
            }));
            Ok(())
        }),
    )
    .await;
    assert_eq!(result, Err(failed("first", &[])));
    assert_eq!(
        guards.dropped(),
        SIBLINGS,
        "a sibling outlived the failed scope"
    );
}

/// Siblings that clean up within the grace period are joined before the
/// error is returned.
#[tokio::test(start_paused = true)]
async fn g2_first_error_is_returned_only_after_siblings_finished_cleaning_up() {
    const SIBLINGS: usize = 4;
    let cleaned = Arc::new(AtomicUsize::new(0));
    let counter = cleaned.clone();
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<E>| async move {
                for _ in 0..SIBLINGS {
                    let cleaned = counter.clone();
                    drop(n.spawn(async move {
                        nursery::cancelled().await;
                        yield_rounds(10).await;
                        cleaned.fetch_add(1, SeqCst);
                        Ok(())
                    }));
                }
                drop(n.spawn(async { Err::<(), _>("first") }));
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(failed("first", &[])));
    assert_eq!(cleaned.load(SeqCst), SIBLINGS);
}

/// The body is dropped at the first error and never resumed, even when what
/// it waits for becomes ready during the cancellation.
#[tokio::test(start_paused = true)]
async fn g2_first_error_cancels_the_body() {
    let body = DropCounter::new();
    let resumed = Arc::new(AtomicBool::new(false));
    let (body_guard, resumed_in_body) = (body.guard(), resumed.clone());
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<E>| async move {
                let _guard = body_guard;
                let (wake_body, body_wakes) = oneshot::channel();
                // Wakes the body during the grace period, after the failure.
                drop(n.spawn(async move {
                    nursery::cancelled().await;
                    let _ = wake_body.send(());
                    Ok(())
                }));
                drop(n.spawn(async { Err::<(), _>("child failed") }));
                let _ = body_wakes.await;
                resumed_in_body.store(true, SeqCst);
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(failed("child failed", &[])));
    assert_eq!(body.dropped(), 1);
    assert!(
        !resumed.load(SeqCst),
        "the body ran on after a child failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_body_error_cancels_running_children() {
    const CHILDREN: usize = 8;
    let guards = DropCounter::new();
    let handed_out = guards.clone();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            let all_started = Arc::new(Barrier::new(CHILDREN + 1));
            for _ in 0..CHILDREN {
                let guard = handed_out.guard();
                let started = all_started.clone();
                drop(n.spawn(async move {
                    let _guard = guard;
                    started.wait().await;
                    pending::<Result<(), E>>().await
                }));
            }
            all_started.wait().await;
            Err::<(), _>("body failed")
        }),
    )
    .await;
    assert_eq!(result, Err(failed("body failed", &[])));
    assert_eq!(
        guards.dropped(),
        CHILDREN,
        "a child outlived the failed scope"
    );
}

/// Errors returned by children while the first failure cancels them are
/// kept, in the order they arrived. The order is made deterministic by
/// having each late child wait for the previous one's handle.
#[tokio::test(start_paused = true)]
async fn g2_errors_during_cancellation_are_kept_as_suppressed_in_order() {
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<E>| async move {
                let second = n.spawn(async {
                    nursery::cancelled().await;
                    Err::<(), _>("second")
                });
                let third = n.spawn(async move {
                    nursery::cancelled().await;
                    assert!(second.await.unwrap_err().is_failed());
                    Err::<(), _>("third")
                });
                drop(n.spawn(async move {
                    nursery::cancelled().await;
                    assert!(third.await.unwrap_err().is_failed());
                    Err::<(), _>("fourth")
                }));
                drop(n.spawn(async { Err::<(), _>("first") }));
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert_eq!(result, Err(failed("first", &["second", "third", "fourth"])));
}

/// A blocking child cannot be aborted: its error, returned after the cancel,
/// is suppressed, not lost and not the scope's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_blocking_child_error_after_the_cancel_is_suppressed() {
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            let (started_tx, started) = oneshot::channel();
            drop(n.spawn_blocking(move |token| {
                let _ = started_tx.send(());
                tokio::runtime::Handle::current().block_on(token.cancelled());
                Err::<(), _>("blocking, after the cancel")
            }));
            drop(n.spawn(async move {
                started.await.unwrap();
                Err::<(), _>("first")
            }));
            Ok(())
        }),
    )
    .await;
    assert_eq!(
        result,
        Err(failed("first", &["blocking, after the cancel"]))
    );
}

/// `collect_errors()`: nothing is cancelled, every error is returned, the
/// first in time as `error` and the rest in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_collect_errors_cancels_nothing_and_returns_every_error_in_order() {
    let survivor_ran = Arc::new(AtomicBool::new(false));
    let ran = survivor_ran.clone();
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .collect_errors()
            .scope(|n: Nursery<E>| async move {
                let first = n.spawn(async { Err::<(), _>("first") });
                let second = n.spawn(async move {
                    assert!(first.await.unwrap_err().is_failed());
                    Err::<(), _>("second")
                });
                let third = n.spawn(async move {
                    assert!(second.await.unwrap_err().is_failed());
                    Err::<(), _>("third")
                });
                // Runs to completion after three errors: nothing was cancelled.
                let survivor = n.spawn(async move {
                    assert!(third.await.unwrap_err().is_failed());
                    assert_eq!(nursery::check(), Ok(()));
                    yield_rounds(10).await;
                    ran.store(true, SeqCst);
                    Ok(42)
                });
                let value = survivor.await.map_err(|_| "survivor did not finish")?;
                assert!(!n.is_cancelled());
                assert!(!n.token().is_cancelled());
                Ok(value)
            }),
    )
    .await;
    assert_eq!(result, Err(failed("first", &["second", "third"])));
    assert!(survivor_ran.load(SeqCst));
}

/// Current-thread runtime: the body's error is recorded in the same poll in
/// which the body returns, before the late child can run.
#[tokio::test]
async fn g2_collect_errors_keeps_the_body_error_in_time_order() {
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .collect_errors()
            .scope(|n: Nursery<E>| async move {
                let first = n.spawn(async { Err::<(), _>("child, first") });
                let _ = first.await;
                let (body_failing_tx, body_failing) = oneshot::channel::<()>();
                // Still running after the body failed: nothing is cancelled
                // under collect_errors.
                drop(n.spawn(async move {
                    let _ = body_failing.await;
                    assert_eq!(nursery::check(), Ok(()));
                    Err::<(), _>("child, after the body")
                }));
                drop(body_failing_tx);
                Err::<(), _>("body")
            }),
    )
    .await;
    assert_eq!(
        result,
        Err(failed("child, first", &["body", "child, after the body"]))
    );
}

#[tokio::test(start_paused = true)]
async fn g2_errors_after_the_deadline_are_discarded() {
    let start = Instant::now();
    let returned_error = Arc::new(AtomicBool::new(false));
    let returned = returned_error.clone();
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .timeout(Duration::from_secs(1))
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<E>| async move {
                drop(n.spawn(async move {
                    nursery::cancelled().await;
                    returned.store(true, SeqCst);
                    Err::<(), _>("after the deadline")
                }));
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert!(
        returned_error.load(SeqCst),
        "the child was aborted before it returned its error"
    );
    // Joined within the grace period, not at its end.
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn g2_errors_after_an_outside_cancel_are_discarded() {
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    let returned_error = Arc::new(AtomicBool::new(false));
    let returned = returned_error.clone();
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .grace(Duration::from_secs(10))
            .cancel_on(shutdown)
            .scope(|n: Nursery<E>| async move {
                drop(n.spawn(async move {
                    nursery::cancelled().await;
                    returned.store(true, SeqCst);
                    Err::<(), _>("after the cancel")
                }));
                trigger.cancel();
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::Cancelled));
    assert!(
        returned_error.load(SeqCst),
        "the child was aborted before it returned its error"
    );
}

/// An inner scope cancelled by its parent returns `Cancelled`, not the
/// errors its children return because of that cancel.
#[tokio::test(start_paused = true)]
async fn g2_errors_after_the_parent_cancels_are_discarded() {
    let (inner_result_tx, inner_result) = oneshot::channel();
    let outer = within(
        "the scope",
        nursery::Nursery::builder()
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<E>| async move {
                let (inner_started_tx, inner_started) = oneshot::channel();
                drop(n.spawn(async move {
                    let result = nursery::Nursery::builder()
                        .grace(Duration::from_secs(10))
                        .scope(|inner: Nursery<E>| async move {
                            drop(inner.spawn(async {
                                nursery::cancelled().await;
                                Err::<(), _>("after the parent's cancel")
                            }));
                            let _ = inner_started_tx.send(());
                            pending().await
                        })
                        .await;
                    let _ = inner_result_tx.send(result);
                    Ok(())
                }));
                inner_started.await.unwrap();
                n.cancel();
                Ok("outer body")
            }),
    )
    .await;
    assert_eq!(outer, Ok("outer body"));
    assert_eq!(inner_result.await.unwrap(), Err::<(), _>(Error::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn g2_errors_collected_before_the_deadline_are_returned_as_failed() {
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .collect_errors()
            .timeout(Duration::from_secs(1))
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<E>| async move {
                drop(n.spawn(async { Err::<(), _>("before the deadline") }));
                drop(n.spawn(async {
                    nursery::cancelled().await;
                    Err::<(), _>("after the deadline")
                }));
                drop(n.spawn(pending::<Result<(), E>>()));
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert_eq!(result, Err(failed("before the deadline", &[])));
}

#[tokio::test(start_paused = true)]
async fn g2_errors_collected_before_an_outside_cancel_are_returned_as_failed() {
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .collect_errors()
            .cancel_on(shutdown)
            .scope(|n: Nursery<E>| async move {
                let first = n.spawn(async { Err::<(), _>("first") });
                let second = n.spawn(async move {
                    let _ = first.await;
                    Err::<(), _>("second")
                });
                let _ = second.await;
                drop(n.spawn(pending::<Result<(), E>>()));
                trigger.cancel();
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert_eq!(result, Err(failed("first", &["second"])));
}

/// The same through an inherited deadline: the inner scope returns
/// `TimedOut`, not the error its child returns because of the deadline.
#[tokio::test(start_paused = true)]
async fn g2_errors_after_the_parent_deadline_are_discarded() {
    let (inner_result_tx, inner_result) = oneshot::channel();
    let outer = within(
        "the scope",
        nursery::Nursery::builder()
            .timeout(Duration::from_secs(1))
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<E>| async move {
                drop(n.spawn(async move {
                    let result = nursery::Nursery::builder()
                        .grace(Duration::from_secs(10))
                        .scope(|inner: Nursery<E>| async move {
                            drop::<nursery::TaskHandle<()>>(inner.spawn(async {
                                // The usual way a child stops: check and return.
                                loop {
                                    nursery::check().map_err(|_| "interrupted")?;
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                }
                            }));
                            pending::<Result<(), E>>().await
                        })
                        .await;
                    let _ = inner_result_tx.send(result);
                    Ok(())
                }));
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert_eq!(outer, Err(Error::TimedOut));
    assert_eq!(inner_result.await.unwrap(), Err::<(), _>(Error::TimedOut));
}

/// The usual body awaits its children's handles with `?`. When a child
/// fails, its error has already gone to the scope: the body's own error,
/// which only relays the failed `JoinError`, must not appear as a second
/// failure. On two workers the body often sees the failed handle before the
/// scope stops it, so run the race many times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_body_relaying_a_failed_handle_adds_no_suppressed_error() {
    for _ in 0..500 {
        let result = within(
            "the scope",
            nursery::scope(|n: Nursery<String>| async move {
                let handle = n.spawn(async {
                    tokio::task::yield_now().await;
                    Err::<u32, _>("child failed".to_string())
                });
                let value = handle.await.map_err(|join_error| join_error.to_string())?;
                Ok(value)
            }),
        )
        .await;
        assert_eq!(
            result,
            Err(Error::Failed {
                error: "child failed".to_string(),
                suppressed: vec![],
                omitted: 0
            })
        );
    }
}

/// With no grace period, the child that fails aborts its siblings itself:
/// the abort does not wait for the scope future to be polled again (which,
/// under `#[tokio::main]`, can take milliseconds on a busy machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_first_error_aborts_siblings_without_waiting_for_the_scope_to_run() {
    let guards = DropCounter::new();
    let handed_out = guards.clone();
    let (fail_tx, fail_rx) = oneshot::channel::<()>();
    let mut scope = Box::pin(nursery::scope(|n: Nursery<E>| async move {
        let guard = handed_out.guard();
        drop(n.spawn(async move {
            let _guard = guard;
            pending::<Result<(), E>>().await
        }));
        drop(n.spawn(async move {
            let _ = fail_rx.await;
            Err::<(), E>("boom")
        }));
        pending::<Result<(), E>>().await
    }));
    // Poll the scope once, so the children exist; then leave it alone.
    let first_poll = std::future::poll_fn(|cx| std::task::Poll::Ready(scope.as_mut().poll(cx)));
    assert!(first_poll.await.is_pending());
    fail_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), guards.wait_for(1))
        .await
        .expect("the sibling was not aborted until the scope ran again");
    assert_eq!(within("the scope", scope).await, Err(failed("boom", &[])));
}

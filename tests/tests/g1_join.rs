//! G1 join: `scope(..).await` returns only after every child spawned into it
//! has terminated (completed, or dropped after cancellation), siblings spawned
//! by children included; the join is transitive through inner scopes of
//! aborted children; nothing of the subtree is alive when the scope returns.

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use nursery::{Error, Nursery};
use nursery_tests::{DropCounter, Latch, within, yield_rounds};
use tokio::sync::{Barrier, oneshot};

type E = &'static str;

/// Long enough never to be reached by a passing test; bounds a broken one.
const SAFETY: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_scope_returns_only_after_every_child_finished() {
    const CHILDREN: usize = 16;
    let finished = Arc::new(AtomicUsize::new(0));
    let counter = finished.clone();
    let body_returned = DropCounter::new();
    let body_guard = body_returned.guard();
    within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            let _body = body_guard;
            let barrier = Arc::new(Barrier::new(CHILDREN));
            for _ in 0..CHILDREN {
                let barrier = barrier.clone();
                let finished = counter.clone();
                let body_returned = body_returned.clone();
                // The handle is dropped at once: that detaches nothing.
                drop(n.spawn(async move {
                    barrier.wait().await;
                    // Work that goes on after the body has returned.
                    body_returned.wait_for(1).await;
                    finished.fetch_add(1, SeqCst);
                    Ok(())
                }));
            }
            Ok(())
        }),
    )
    .await
    .unwrap();
    assert_eq!(finished.load(SeqCst), CHILDREN);
}

/// Spawns a child that waits for the body to return, then, below `depth`,
/// spawns two siblings doing the same, and records itself as done.
fn spawn_family(n: &Nursery<E>, depth: u32, finished: Arc<AtomicUsize>, body: DropCounter) {
    let spawner = n.clone();
    drop(n.spawn(async move {
        body.wait_for(1).await;
        if depth > 0 {
            spawn_family(&spawner, depth - 1, finished.clone(), body.clone());
            spawn_family(&spawner, depth - 1, finished.clone(), body.clone());
        }
        finished.fetch_add(1, SeqCst);
        Ok(())
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_siblings_spawned_by_children_are_waited_for() {
    let finished = Arc::new(AtomicUsize::new(0));
    let counter = finished.clone();
    let body_returned = DropCounter::new();
    let body_guard = body_returned.guard();
    within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            let _body = body_guard;
            // 1 + 2 + 4 + 8 children, the later generations spawned by children
            // after the body has returned, while the scope is joining.
            spawn_family(&n, 3, counter, body_returned);
            Ok(())
        }),
    )
    .await
    .unwrap();
    assert_eq!(finished.load(SeqCst), 15);
}

/// Outer scope: one child opens an inner scope whose children (and their
/// siblings) never finish by themselves; then another outer child fails.
/// Returns the outer result and how many guards were handed out.
async fn outer_fails_while_child_runs_inner_scope(
    guards: &DropCounter,
) -> (Result<(), Error<E>>, usize) {
    const INNER: usize = 8;
    // Inner children, their siblings, and the child holding the inner scope.
    let total = INNER * 2 + 1;
    let guards = guards.clone();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            let all_started = Arc::new(Barrier::new(INNER * 2 + 1));
            let started = all_started.clone();
            let holder_guard = guards.guard();
            drop(n.spawn(async move {
                let _guard = holder_guard;
                nursery::scope(|inner: Nursery<E>| async move {
                    for _ in 0..INNER {
                        let (guard, sibling_guard) = (guards.guard(), guards.guard());
                        let (started, sibling_started) = (started.clone(), started.clone());
                        let spawner = inner.clone();
                        drop(inner.spawn(async move {
                            let _guard = guard;
                            drop(spawner.spawn(async move {
                                let _guard = sibling_guard;
                                sibling_started.wait().await;
                                pending::<Result<(), E>>().await
                            }));
                            started.wait().await;
                            pending::<Result<(), E>>().await
                        }));
                    }
                    pending::<Result<(), E>>().await
                })
                .await
                .map_err(|_| "inner scope failed")
            }));
            drop(n.spawn(async move {
                all_started.wait().await;
                Err::<(), _>("outer failed")
            }));
            Ok(())
        }),
    )
    .await;
    (result, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_join_is_transitive_through_an_aborted_inner_scope() {
    for _ in 0..20 {
        let guards = DropCounter::new();
        let (result, total) = outer_fails_while_child_runs_inner_scope(&guards).await;
        // The child holding the inner scope may see the cancel before it is
        // aborted (the token fires first) and return its inner scope's
        // `Cancelled` as an error: then it is suppressed, never the error.
        match result {
            Err(Error::Failed {
                error, suppressed, ..
            }) => {
                assert_eq!(error, "outer failed");
                assert!(
                    suppressed.iter().all(|e| *e == "inner scope failed"),
                    "{suppressed:?}"
                );
            }
            other => panic!("expected the outer failure, got {other:?}"),
        }
        // Checked at once: the outer scope must not return before the inner
        // scope's children (and their siblings) were dropped.
        assert_eq!(
            guards.dropped(),
            total,
            "children of the aborted inner scope outlived the outer scope"
        );
    }
}

#[tokio::test]
async fn g1_join_is_transitive_through_an_aborted_inner_scope_current_thread() {
    let guards = DropCounter::new();
    let (result, total) = outer_fails_while_child_runs_inner_scope(&guards).await;
    assert!(matches!(
        result,
        Err(Error::Failed {
            error: "outer failed",
            ..
        })
    ));
    assert_eq!(guards.dropped(), total);
}

/// What a blocking probe reports: it has started, it has seen the token
/// fire, and whether it finished after the test released it.
struct BlockingProbe {
    started: oneshot::Receiver<()>,
    cancelled: oneshot::Receiver<()>,
    latch: Arc<Latch>,
    finished: Arc<AtomicBool>,
}

/// A blocking closure that reports its start, waits for the token, reports
/// that, and then stays blocked until the test opens the latch.
fn blocking_probe() -> (
    BlockingProbe,
    impl FnOnce(tokio_util::sync::CancellationToken) -> Result<(), E> + Send + 'static,
) {
    let (started_tx, started) = oneshot::channel();
    let (cancelled_tx, cancelled) = oneshot::channel();
    let latch = Latch::new();
    let finished = Arc::new(AtomicBool::new(false));
    let (latch_in, finished_in) = (latch.clone(), finished.clone());
    let closure = move |token: tokio_util::sync::CancellationToken| {
        let _ = started_tx.send(());
        tokio::runtime::Handle::current().block_on(token.cancelled());
        let _ = cancelled_tx.send(());
        let released = latch_in.wait(SAFETY);
        finished_in.store(released, SeqCst);
        Ok(())
    };
    let probe = BlockingProbe {
        started,
        cancelled,
        latch,
        finished,
    };
    (probe, closure)
}

/// Current-thread runtime: once the probe has seen the cancel and every
/// ready task has run, a scope that does not wait for the blocked closure
/// would have finished.
#[tokio::test]
async fn g1_spawn_blocking_child_is_waited_for_after_cancel() {
    let (probe, closure) = blocking_probe();
    let BlockingProbe {
        started,
        cancelled,
        latch,
        finished,
    } = probe;
    let scope = tokio::spawn(nursery::scope(|n: Nursery<E>| async move {
        drop(n.spawn_blocking(closure));
        started.await.unwrap();
        n.cancel();
        Ok("body's result")
    }));
    cancelled.await.unwrap();
    yield_rounds(100).await;
    assert!(
        !scope.is_finished(),
        "the scope returned while a blocking child was still running"
    );
    latch.open();
    assert_eq!(
        within("the scope", scope).await.unwrap(),
        Ok("body's result")
    );
    assert!(finished.load(SeqCst));
}

#[tokio::test]
async fn g1_outer_waits_for_blocking_child_of_an_aborted_inner_scope() {
    let (probe, closure) = blocking_probe();
    let BlockingProbe {
        started,
        cancelled,
        latch,
        finished,
    } = probe;
    let scope = tokio::spawn(nursery::scope(|n: Nursery<E>| async move {
        drop(n.spawn(async move {
            nursery::scope(|inner: Nursery<E>| async move {
                drop(inner.spawn_blocking(closure));
                pending::<Result<(), E>>().await
            })
            .await
            .map_err(|_| "inner scope failed")
        }));
        drop(n.spawn(async move {
            started.await.unwrap();
            Err::<(), _>("outer failed")
        }));
        Ok(())
    }));
    cancelled.await.unwrap();
    yield_rounds(100).await;
    assert!(
        !scope.is_finished(),
        "the outer scope returned while the aborted inner scope's blocking child was still running"
    );
    latch.open();
    assert!(matches!(
        within("the scope", scope).await.unwrap(),
        Err(Error::Failed {
            error: "outer failed",
            ..
        })
    ));
    assert!(finished.load(SeqCst));
}

/// Two levels: outer → child → inner scope → child → innermost scope with a
/// blocking child. Aborting the outer child tears down the inner scope, whose
/// own child is torn down later still; the outer must wait for all of it.
#[tokio::test]
async fn g1_join_is_transitive_through_two_levels_of_aborted_inner_scopes() {
    let (probe, closure) = blocking_probe();
    let BlockingProbe {
        started,
        cancelled,
        latch,
        finished,
    } = probe;
    let scope = tokio::spawn(nursery::scope(|n: Nursery<E>| async move {
        drop(n.spawn(async move {
            nursery::scope(|inner: Nursery<E>| async move {
                drop(inner.spawn(async move {
                    nursery::scope(|innermost: Nursery<E>| async move {
                        drop(innermost.spawn_blocking(closure));
                        pending::<Result<(), E>>().await
                    })
                    .await
                    .map_err(|_| "innermost scope failed")
                }));
                pending::<Result<(), E>>().await
            })
            .await
            .map_err(|_| "inner scope failed")
        }));
        drop(n.spawn(async move {
            started.await.unwrap();
            Err::<(), _>("outer failed")
        }));
        Ok(())
    }));
    cancelled.await.unwrap();
    yield_rounds(100).await;
    let returned_early = scope.is_finished();
    latch.open();
    let result = within("the scope", scope).await.unwrap();
    assert!(
        !returned_early,
        "the outer scope returned while a blocking grandchild two scopes down was still running"
    );
    assert!(matches!(
        result,
        Err(Error::Failed {
            error: "outer failed",
            ..
        })
    ));
    assert!(finished.load(SeqCst));
}

/// The same two-level shape with plain async children at the bottom,
/// checked with drop guards right after the outer scope returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_join_is_transitive_through_two_levels_with_async_grandchildren() {
    const LEAVES: usize = 256;
    for _ in 0..20 {
        let guards = DropCounter::new();
        let leaves = guards.clone();
        let result = within(
            "the scope",
            nursery::scope(|n: Nursery<E>| async move {
                let all_started = Arc::new(Barrier::new(LEAVES + 1));
                let started = all_started.clone();
                drop(n.spawn(async move {
                    nursery::scope(|inner: Nursery<E>| async move {
                        drop(inner.spawn(async move {
                            nursery::scope(|innermost: Nursery<E>| async move {
                                for _ in 0..LEAVES {
                                    let guard = leaves.guard();
                                    let started = started.clone();
                                    drop(innermost.spawn(async move {
                                        let _guard = guard;
                                        started.wait().await;
                                        pending::<Result<(), E>>().await
                                    }));
                                }
                                pending::<Result<(), E>>().await
                            })
                            .await
                            .map_err(|_| "innermost scope failed")
                        }));
                        pending::<Result<(), E>>().await
                    })
                    .await
                    .map_err(|_| "inner scope failed")
                }));
                drop(n.spawn(async move {
                    all_started.wait().await;
                    Err::<(), _>("outer failed")
                }));
                Ok(())
            }),
        )
        .await;
        assert!(matches!(
            result,
            Err(Error::Failed {
                error: "outer failed",
                ..
            })
        ));
        assert_eq!(
            guards.dropped(),
            LEAVES,
            "leaves two scopes down outlived the outer scope"
        );
    }
}

/// A tree of every kind of child: finished ones, cancelled ones, siblings
/// spawned by children, an inner scope with children of its own. Returns how
/// many guards were handed out.
async fn mixed_tree(guards: DropCounter) -> usize {
    const EACH: usize = 4;
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            let all_started = Arc::new(Barrier::new(EACH * 2 + 2));
            for _ in 0..EACH {
                // Finishes by itself.
                let guard = guards.guard();
                drop(n.spawn(async move {
                    let _guard = guard;
                    Ok(())
                }));
                // Runs until cancelled, after spawning a sibling that does too.
                let (guard, sibling_guard) = (guards.guard(), guards.guard());
                let (started, sibling_started) = (all_started.clone(), all_started.clone());
                let spawner = n.clone();
                drop(n.spawn(async move {
                    let _guard = guard;
                    drop(spawner.spawn(async move {
                        let _guard = sibling_guard;
                        sibling_started.wait().await;
                        pending::<Result<(), E>>().await
                    }));
                    started.wait().await;
                    pending::<Result<(), E>>().await
                }));
            }
            let inner_guards = guards.clone();
            let started = all_started.clone();
            let holder_guard = guards.guard();
            drop(n.spawn(async move {
                let _guard = holder_guard;
                nursery::scope(|inner: Nursery<E>| async move {
                    for _ in 0..EACH {
                        let guard = inner_guards.guard();
                        drop(inner.spawn(async move {
                            let _guard = guard;
                            pending::<Result<(), E>>().await
                        }));
                    }
                    started.wait().await;
                    pending::<Result<(), E>>().await
                })
                .await
                .map_err(|_| "inner scope failed")
            }));
            all_started.wait().await;
            n.cancel();
            Ok(())
        }),
    )
    .await;
    assert_eq!(result, Ok(()));
    EACH * 4 + 1
}

#[test]
fn g1_nothing_of_the_subtree_is_alive_when_the_scope_returns() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let guards = DropCounter::new();
        let total = mixed_tree(guards.clone()).await;
        assert_eq!(guards.dropped(), total, "a child future outlived its scope");
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            0,
            "a task of the subtree is still alive after the scope returned"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_nothing_of_the_subtree_is_alive_when_the_scope_returns_multi_thread() {
    for _ in 0..20 {
        let guards = DropCounter::new();
        let total = mixed_tree(guards.clone()).await;
        assert_eq!(guards.dropped(), total, "a child future outlived its scope");
    }
}

/// A scope future first polled in one place and then awaited in another
/// (moved into a task after a `poll!`, say) is woken through the waker of
/// its latest poll when its last child ends: the join completes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_a_scope_future_moved_to_another_task_is_woken_there() {
    let (release, released) = oneshot::channel::<()>();
    let scope = Box::pin(nursery::scope(|n: Nursery<()>| async move {
        n.spawn(async move {
            let _ = released.await;
            Ok(())
        });
        Ok(())
    }));
    // The first poll runs the body, under a waker that wakes nobody; then a
    // task polls it.
    let joined = nursery_tests::moved_to_a_new_task(scope).await;
    release.send(()).expect("the child waits");
    let result = within("the scope, polled from its new task", joined).await;
    assert_eq!(result.expect("the task ran"), Ok(()));
}

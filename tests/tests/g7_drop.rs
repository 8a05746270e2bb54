//! G7 drop: dropping an unfinished scope future aborts every child at once,
//! starts none of the queued ones, never blocks, and a dropped inner scope
//! makes its parent wait for the inner scope's children (G1 is transitive).

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use nursery::Nursery;
use nursery_tests::{DropCounter, Latch, parked_in, within, yield_rounds};
use tokio::sync::{Barrier, oneshot, watch};

type E = &'static str;

/// Long enough never to be reached by a passing test; bounds a broken one.
const SAFETY: Duration = Duration::from_secs(5);

/// A child that waits for the gate and then counts itself in `ran_after`:
/// a child that was aborted never gets there.
async fn gated_child(
    guard: nursery_tests::DropGuard,
    parked: nursery_tests::DropGuard,
    mut gate: watch::Receiver<bool>,
    ran_after: Arc<AtomicUsize>,
) -> Result<(), E> {
    let _guard = guard;
    let _ = parked_in(gate.wait_for(|open| *open), parked).await;
    ran_after.fetch_add(1, SeqCst);
    Ok(())
}

/// Drops a scope whose children (and siblings spawned by children) are all
/// waiting, then opens their gate: none of them may run on.
async fn drop_scope_with_gated_children(children: usize) {
    let guards = DropCounter::new();
    let parked = DropCounter::new();
    let ran_after = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate) = watch::channel(false);
    let (handed_out, parked_out, ran) = (guards.clone(), parked.clone(), ran_after.clone());
    let scope = nursery::scope(|n: Nursery<E>| async move {
        for _ in 0..children {
            let sibling = gated_child(
                handed_out.guard(),
                parked_out.guard(),
                gate.clone(),
                ran.clone(),
            );
            let spawner = n.clone();
            let own = gated_child(
                handed_out.guard(),
                parked_out.guard(),
                gate.clone(),
                ran.clone(),
            );
            drop(n.spawn(async move {
                drop(spawner.spawn(sibling));
                own.await
            }));
        }
        pending::<Result<(), E>>().await
    });
    tokio::select! {
        result = scope => panic!("the scope finished: {result:?}"),
        _ = within("every child to wait on its gate", parked.wait_for(children * 2)) => {}
    }
    // The scope future has been dropped. Anything not aborted runs now.
    // Every receiver may be gone already (all aborted): that is fine.
    gate_tx.send_replace(true);
    within(
        "the children of the dropped scope to be dropped",
        guards.wait_for(children * 2),
    )
    .await;
    assert_eq!(
        ran_after.load(SeqCst),
        0,
        "a child ran on after its scope was dropped"
    );
}

#[tokio::test]
async fn g7_dropping_the_scope_aborts_every_child_at_once() {
    drop_scope_with_gated_children(8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_dropping_the_scope_aborts_every_child_at_once_multi_thread() {
    for _ in 0..20 {
        drop_scope_with_gated_children(16).await;
    }
}

/// Dropping is not a cancel with a grace period: children waiting for the
/// token do not get to run their cancellation path.
#[tokio::test]
async fn g7_dropping_the_scope_skips_the_grace_period() {
    const CHILDREN: usize = 8;
    let guards = DropCounter::new();
    let graceful = Arc::new(AtomicUsize::new(0));
    let all_started = Arc::new(Barrier::new(CHILDREN + 1));
    let (handed_out, ran, started) = (guards.clone(), graceful.clone(), all_started.clone());
    let scope = nursery::Nursery::builder()
        .grace(Duration::from_secs(3600))
        .scope(|n: Nursery<E>| async move {
            for _ in 0..CHILDREN {
                let (guard, ran, started) = (handed_out.guard(), ran.clone(), started.clone());
                drop(n.spawn(async move {
                    let _guard = guard;
                    started.wait().await;
                    nursery::cancelled().await;
                    ran.fetch_add(1, SeqCst);
                    Ok(())
                }));
            }
            pending::<Result<(), E>>().await
        });
    tokio::select! {
        result = scope => panic!("the scope finished: {result:?}"),
        _ = within("every child to start", all_started.wait()) => {}
    }
    within(
        "the children of the dropped scope to be dropped",
        guards.wait_for(CHILDREN),
    )
    .await;
    assert_eq!(
        graceful.load(SeqCst),
        0,
        "a child ran its cancellation path after the drop"
    );
}

/// The same on the multi-thread runtime, where another worker can poll a
/// child the moment the scope's token fires: dropping must abort the
/// children before they can observe the cancel. (The grace setting is
/// irrelevant here; a dropped scope has none.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_dropping_the_scope_does_not_run_cancellation_paths_multi_thread() {
    const CHILDREN: usize = 64;
    for _ in 0..50 {
        let guards = DropCounter::new();
        let parked = DropCounter::new();
        let graceful = Arc::new(AtomicUsize::new(0));
        let (handed_out, parked_out, ran) = (guards.clone(), parked.clone(), graceful.clone());
        let scope = nursery::Nursery::builder()
            .grace(Duration::from_secs(3600))
            .scope(|n: Nursery<E>| async move {
                for _ in 0..CHILDREN {
                    let (guard, parked, ran) =
                        (handed_out.guard(), parked_out.guard(), ran.clone());
                    drop(n.spawn(async move {
                        let _guard = guard;
                        parked_in(nursery::cancelled(), parked).await;
                        ran.fetch_add(1, SeqCst);
                        Ok(())
                    }));
                }
                pending::<Result<(), E>>().await
            });
        tokio::select! {
            result = scope => panic!("the scope finished: {result:?}"),
            _ = within("every child to wait on the token", parked.wait_for(CHILDREN)) => {}
        }
        within(
            "the children of the dropped scope to be dropped",
            guards.wait_for(CHILDREN),
        )
        .await;
        assert_eq!(
            graceful.load(SeqCst),
            0,
            "a child ran its cancellation path after the drop"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn g7_timeout_around_the_scope_aborts_its_children_and_body() {
    const CHILDREN: usize = 4;
    let guards = DropCounter::new();
    let body = DropCounter::new();
    let (handed_out, body_guard) = (guards.clone(), body.guard());
    let scope = nursery::scope(|n: Nursery<E>| async move {
        let _guard = body_guard;
        for _ in 0..CHILDREN {
            let guard = handed_out.guard();
            drop(n.spawn(async move {
                let _guard = guard;
                pending::<Result<(), E>>().await
            }));
        }
        pending::<Result<(), E>>().await
    });
    let elapsed = tokio::time::timeout(Duration::from_secs(1), scope).await;
    assert!(elapsed.is_err());
    // The body is dropped with the scope future, synchronously.
    assert_eq!(body.dropped(), 1);
    within(
        "the children of the dropped scope to be dropped",
        guards.wait_for(CHILDREN),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_queued_children_never_start_when_the_scope_is_dropped() {
    const RUNNING: usize = 2;
    const QUEUED: usize = 6;
    let running = DropCounter::new();
    let queued = DropCounter::new();
    let started = Arc::new(AtomicUsize::new(0));
    let all_running = Arc::new(Barrier::new(RUNNING + 1));
    let (running_guards, queued_guards, counter, barrier) = (
        running.clone(),
        queued.clone(),
        started.clone(),
        all_running.clone(),
    );
    let scope = nursery::Nursery::builder()
        .limit(RUNNING)
        .scope(|n: Nursery<E>| async move {
            for _ in 0..RUNNING {
                let (guard, barrier) = (running_guards.guard(), barrier.clone());
                drop(n.spawn(async move {
                    let _guard = guard;
                    barrier.wait().await;
                    pending::<Result<(), E>>().await
                }));
            }
            for _ in 0..QUEUED {
                let (guard, started) = (queued_guards.guard(), counter.clone());
                drop(n.spawn(async move {
                    let _guard = guard;
                    started.fetch_add(1, SeqCst);
                    Ok(())
                }));
            }
            pending::<Result<(), E>>().await
        });
    tokio::select! {
        result = scope => panic!("the scope finished: {result:?}"),
        _ = within("the children with a slot to start", all_running.wait()) => {}
    }
    // Queued futures are dropped with the scope, unpolled: none of them
    // can start later, so the count below is final.
    assert_eq!(queued.dropped(), QUEUED);
    // The running ones are aborted; their slots go to nobody.
    within(
        "the children of the dropped scope to be dropped",
        running.wait_for(RUNNING),
    )
    .await;
    assert_eq!(
        started.load(SeqCst),
        0,
        "a queued child started after the scope was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_dropping_never_blocks_on_a_running_blocking_child() {
    let (entered_tx, entered) = oneshot::channel();
    let (finished_tx, finished) = oneshot::channel();
    let latch = Latch::new();
    let latch_in = latch.clone();
    let scope = nursery::scope(|n: Nursery<E>| async move {
        drop(n.spawn_blocking(move |_| {
            let _ = entered_tx.send(());
            let released = latch_in.wait(SAFETY);
            let _ = finished_tx.send(released);
            Ok(())
        }));
        pending::<Result<(), E>>().await
    });
    tokio::select! {
        result = scope => panic!("the scope finished: {result:?}"),
        _ = within("the blocking child to start", entered) => {}
    }
    // We are past the drop while the blocking child is still held: dropping
    // did not wait for it (if it had, the latch would have timed out first).
    latch.open();
    assert_eq!(
        finished.await,
        Ok(true),
        "dropping the scope blocked until the blocking child returned"
    );
}

/// Current-thread runtime: the outer scope runs in its own task so the test
/// can see that it has not finished while the dropped inner scope's blocking
/// child is still held.
#[tokio::test]
async fn g7_dropped_inner_scope_makes_the_outer_wait_for_its_children() {
    const ASYNC_CHILDREN: usize = 4;
    let guards = DropCounter::new();
    let (entered_tx, entered) = oneshot::channel::<()>();
    let (body_done_tx, body_done) = oneshot::channel();
    let latch = Latch::new();
    let finished = Arc::new(AtomicBool::new(false));
    let (handed_out, latch_in, finished_in) = (guards.clone(), latch.clone(), finished.clone());
    let outer = tokio::spawn(nursery::scope(|_outer: Nursery<E>| async move {
        let inner = nursery::scope(|inner: Nursery<E>| async move {
            for _ in 0..ASYNC_CHILDREN {
                let guard = handed_out.guard();
                drop(inner.spawn(async move {
                    let _guard = guard;
                    pending::<Result<(), E>>().await
                }));
            }
            drop(inner.spawn_blocking(move |_| {
                let _ = entered_tx.send(());
                let released = latch_in.wait(SAFETY);
                finished_in.store(released, SeqCst);
                Ok(())
            }));
            pending::<Result<(), E>>().await
        });
        tokio::select! {
            result = inner => panic!("the inner scope finished: {result:?}"),
            _ = within("the blocking child to start", entered) => {}
        }
        // The inner scope future has been dropped here.
        let _ = body_done_tx.send(());
        Ok("outer body")
    }));
    body_done.await.unwrap();
    within(
        "the children of the dropped inner scope to be dropped",
        guards.wait_for(ASYNC_CHILDREN),
    )
    .await;
    yield_rounds(100).await;
    assert!(
        !outer.is_finished(),
        "the outer scope returned while the dropped inner scope's blocking child was still running"
    );
    latch.open();
    assert_eq!(
        within("the outer scope", outer).await.unwrap(),
        Ok("outer body")
    );
    assert!(finished.load(SeqCst));
}

/// The same with many async children (and their siblings) in the dropped
/// inner scope, checked with drop guards right after the outer returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_dropped_inner_scope_async_children_are_joined_by_the_outer() {
    const CHILDREN: usize = 64;
    for _ in 0..20 {
        let guards = DropCounter::new();
        let handed_out = guards.clone();
        let result = within(
            "the scope",
            nursery::scope(|_outer: Nursery<E>| async move {
                let all_started = Arc::new(Barrier::new(CHILDREN * 2 + 1));
                let started = all_started.clone();
                let inner = nursery::scope(|inner: Nursery<E>| async move {
                    for _ in 0..CHILDREN {
                        let (guard, sibling_guard) = (handed_out.guard(), handed_out.guard());
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
                });
                tokio::select! {
                    result = inner => panic!("the inner scope finished: {result:?}"),
                    _ = within("every child to start", all_started.wait()) => {}
                }
                Ok(())
            }),
        )
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(
            guards.dropped(),
            CHILDREN * 2,
            "children of the dropped inner scope outlived the outer scope"
        );
    }
}

/// A `Nursery` handle kept past the drop starts nothing: the future is
/// dropped unpolled and its handle says so.
#[tokio::test]
async fn g7_nursery_handle_kept_after_the_drop_starts_nothing() {
    let (handle_tx, handle_rx) = oneshot::channel();
    let scope = nursery::scope(|n: Nursery<E>| async move {
        let _ = handle_tx.send(n.clone());
        pending::<Result<(), E>>().await
    });
    let n = tokio::select! {
        result = scope => panic!("the scope finished: {result:?}"),
        n = within("the handle to be sent", handle_rx) => n.unwrap(),
    };
    let guards = DropCounter::new();
    let ran = Arc::new(AtomicBool::new(false));
    let (guard, ran_in) = (guards.guard(), ran.clone());
    let handle = n.spawn(async move {
        let _guard = guard;
        ran_in.store(true, SeqCst);
        Ok(())
    });
    assert_eq!(
        guards.dropped(),
        1,
        "the refused future was not dropped at once"
    );
    // A dropped scope is closed as well as cancelled: closed decides.
    let error = handle.await.unwrap_err();
    assert!(error.is_closed() && !error.is_cancelled(), "{error:?}");
    assert!(!ran.load(SeqCst));
    assert!(n.is_cancelled());
}

/// A scope future dropped before its first poll never runs its body.
#[tokio::test]
async fn g7_scope_dropped_before_its_first_poll_runs_nothing() {
    let body = DropCounter::new();
    let ran = Arc::new(AtomicBool::new(false));
    let (guard, ran_in) = (body.guard(), ran.clone());
    let scope = nursery::scope(move |n: Nursery<E>| {
        let _guard = guard;
        ran_in.store(true, SeqCst);
        async move {
            drop(n.spawn(pending::<Result<(), E>>()));
            Ok(())
        }
    });
    drop(scope);
    assert_eq!(body.dropped(), 1);
    assert!(!ran.load(SeqCst));
    // Had the body run, its child would be a live task now.
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        0
    );
}

//! G3 panics: a child panic cancels the rest like an error; after the join
//! the scope re-raises the original payload; panics are never swallowed,
//! and later panics do not replace the first.

use std::any::Any;
use std::future::pending;
use std::panic::{AssertUnwindSafe, panic_any};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use futures_util::FutureExt;
use nursery::{Error, Nursery};
use nursery_tests::{DropCounter, Latch, PanicOnDrop, panic_message, within, yield_rounds};
use tokio::sync::{Barrier, oneshot};

type E = &'static str;

/// A payload no code path in the library could make up by itself.
#[derive(Debug, PartialEq)]
struct Boom(u32);

/// Awaits `scope`, expecting it to panic, and returns the payload.
async fn expect_panic<T: std::fmt::Debug>(
    scope: impl Future<Output = Result<T, Error<E>>>,
) -> Box<dyn Any + Send> {
    match within("the scope", AssertUnwindSafe(scope).catch_unwind()).await {
        Ok(result) => panic!("the scope returned {result:?} instead of re-raising the panic"),
        Err(payload) => payload,
    }
}

fn boom(payload: &(dyn Any + Send)) -> Option<&Boom> {
    payload.downcast_ref::<Boom>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_child_panic_cancels_siblings_and_is_reraised_after_the_join() {
    const SIBLINGS: usize = 8;
    let guards = DropCounter::new();
    let handed_out = guards.clone();
    let payload = expect_panic(nursery::scope(|n: Nursery<E>| async move {
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
            panic_any(Boom(1));
            #[allow(unreachable_code)]
            Ok(())
        }));
        pending::<Result<(), E>>().await
    }))
    .await;
    // Checked at once: the siblings were joined before the panic came out.
    assert_eq!(
        guards.dropped(),
        SIBLINGS,
        "a sibling outlived the re-raise"
    );
    assert_eq!(boom(&*payload), Some(&Boom(1)));
}

#[tokio::test(start_paused = true)]
async fn g3_body_panic_joins_children_before_reraising() {
    const CHILDREN: usize = 4;
    let guards = DropCounter::new();
    let cleaned = Arc::new(AtomicUsize::new(0));
    let (handed_out, counter) = (guards.clone(), cleaned.clone());
    let payload = expect_panic(
        nursery::Nursery::builder()
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<E>| async move {
                for _ in 0..CHILDREN {
                    // Aborted after the grace period.
                    let guard = handed_out.guard();
                    drop(n.spawn(async move {
                        let _guard = guard;
                        pending::<Result<(), E>>().await
                    }));
                    // Cleans up within it.
                    let cleaned = counter.clone();
                    drop(n.spawn(async move {
                        nursery::cancelled().await;
                        yield_rounds(10).await;
                        cleaned.fetch_add(1, SeqCst);
                        Ok(())
                    }));
                }
                tokio::task::yield_now().await;
                panic_any(Boom(2));
                #[allow(unreachable_code)]
                Ok(())
            }),
    )
    .await;
    assert_eq!(guards.dropped(), CHILDREN, "a child outlived the re-raise");
    assert_eq!(
        cleaned.load(SeqCst),
        CHILDREN,
        "the re-raise did not wait for the cleanup"
    );
    assert_eq!(boom(&*payload), Some(&Boom(2)));
}

/// Current-thread runtime: the scope runs in its own task, so the test can
/// see that it has not finished while the blocking child is still held.
#[tokio::test]
async fn g3_child_panic_waits_for_a_blocking_child_then_reraises() {
    let (started_tx, started) = oneshot::channel();
    let (cancelled_tx, cancelled) = oneshot::channel();
    let latch = Latch::new();
    let finished = Arc::new(AtomicBool::new(false));
    let (latch_in, finished_in) = (latch.clone(), finished.clone());
    let scope = tokio::spawn(
        AssertUnwindSafe(nursery::scope(|n: Nursery<E>| async move {
            drop(n.spawn_blocking(move |token| {
                let _ = started_tx.send(());
                tokio::runtime::Handle::current().block_on(token.cancelled());
                let _ = cancelled_tx.send(());
                let released = latch_in.wait(Duration::from_secs(5));
                finished_in.store(released, SeqCst);
                Ok(())
            }));
            drop(n.spawn(async move {
                started.await.unwrap();
                panic_any(Boom(3));
                #[allow(unreachable_code)]
                Ok(())
            }));
            Ok(())
        }))
        .catch_unwind(),
    );
    cancelled.await.unwrap();
    yield_rounds(100).await;
    assert!(
        !scope.is_finished(),
        "the panic was re-raised while a blocking child was still running"
    );
    latch.open();
    let payload = within("the scope", scope).await.unwrap().unwrap_err();
    assert_eq!(boom(&*payload), Some(&Boom(3)));
    assert!(finished.load(SeqCst));
}

/// The same on the multi-thread runtime, with a std `Barrier` holding the
/// blocking child until the panicking child is about to panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_child_panic_waits_for_a_blocking_child_multi_thread() {
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let finished = Arc::new(AtomicBool::new(false));
    let (in_blocking, finished_in) = (barrier.clone(), finished.clone());
    let payload = expect_panic(nursery::scope(|n: Nursery<E>| async move {
        drop(n.spawn_blocking(move |token| {
            in_blocking.wait();
            tokio::runtime::Handle::current().block_on(token.cancelled());
            // Blocking work that goes on after the cancel.
            for _ in 0..1_000 {
                std::thread::yield_now();
            }
            finished_in.store(true, SeqCst);
            Ok(())
        }));
        drop(n.spawn_blocking(move |_| -> Result<(), E> {
            barrier.wait();
            panic_any(Boom(4))
        }));
        Ok(())
    }))
    .await;
    assert!(
        finished.load(SeqCst),
        "the panic was re-raised before the blocking child returned"
    );
    assert_eq!(boom(&*payload), Some(&Boom(4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_blocking_child_panic_is_reraised() {
    let payload = expect_panic(nursery::scope(|n: Nursery<E>| async move {
        drop(n.spawn_blocking(|_| -> Result<(), E> { panic_any(Boom(5)) }));
        Ok(())
    }))
    .await;
    assert_eq!(boom(&*payload), Some(&Boom(5)));
}

/// Panics during the cancellation that the first panic started are counted,
/// not re-raised: the first payload comes out.
#[tokio::test(start_paused = true)]
async fn g3_later_panics_do_not_replace_the_first() {
    let second_panicked = Arc::new(AtomicBool::new(false));
    let seen = second_panicked.clone();
    let payload = expect_panic(
        nursery::Nursery::builder()
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<E>| async move {
                let second = n.spawn(async {
                    nursery::cancelled().await;
                    panic_any(Boom(2));
                    #[allow(unreachable_code)]
                    Ok(())
                });
                // Proves the second panic happened before the scope joined.
                drop(n.spawn(async move {
                    nursery::cancelled().await;
                    seen.store(second.await.unwrap_err().is_panic(), SeqCst);
                    Err::<(), _>("an error after the panics")
                }));
                drop(n.spawn(async {
                    panic_any(Boom(1));
                    #[allow(unreachable_code)]
                    Ok(())
                }));
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert!(second_panicked.load(SeqCst));
    assert_eq!(boom(&*payload), Some(&Boom(1)));
}

/// "A panic overrides every outcome": a panic during the cancellation that
/// an error started is re-raised rather than the error returned.
#[tokio::test(start_paused = true)]
async fn g3_panic_after_the_first_error_overrides_it() {
    let payload = expect_panic(
        nursery::Nursery::builder()
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<E>| async move {
                drop(n.spawn(async {
                    nursery::cancelled().await;
                    panic_any(Boom(6));
                    #[allow(unreachable_code)]
                    Ok(())
                }));
                drop(n.spawn(async { Err::<(), _>("first") }));
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert_eq!(boom(&*payload), Some(&Boom(6)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_child_panic_cancels_the_rest_even_under_collect_errors() {
    let guards = DropCounter::new();
    let handed_out = guards.clone();
    let payload = expect_panic(nursery::Nursery::builder().collect_errors().scope(
        |n: Nursery<E>| async move {
            let (started_tx, started) = oneshot::channel();
            let guard = handed_out.guard();
            drop(n.spawn(async move {
                let _guard = guard;
                let _ = started_tx.send(());
                pending::<Result<(), E>>().await
            }));
            drop(n.spawn(async { Err::<(), _>("an error first") }));
            drop(n.spawn(async move {
                started.await.unwrap();
                panic_any(Boom(7));
                #[allow(unreachable_code)]
                Ok(())
            }));
            pending::<Result<(), E>>().await
        },
    ))
    .await;
    assert_eq!(guards.dropped(), 1);
    assert_eq!(boom(&*payload), Some(&Boom(7)));
}

/// The body is dropped when a child fails. If dropping it panics, the panic
/// must still come out only after the children were joined (G1), and it must
/// come out (G3).
#[tokio::test]
async fn g3_panic_while_dropping_the_cancelled_body_still_joins_children() {
    const CHILDREN: usize = 4;
    let guards = DropCounter::new();
    let handed_out = guards.clone();
    let caught = within(
        "the scope",
        AssertUnwindSafe(nursery::scope(|n: Nursery<E>| async move {
            let _bomb = PanicOnDrop("body destructor");
            for _ in 0..CHILDREN {
                let guard = handed_out.guard();
                drop(n.spawn(async move {
                    let _guard = guard;
                    pending::<Result<(), E>>().await
                }));
            }
            drop(n.spawn(async { Err::<(), _>("trigger") }));
            pending::<Result<(), E>>().await
        }))
        .catch_unwind(),
    )
    .await;
    let dropped_at_return = guards.dropped();
    // Let the aborted children go, so a failure does not leave them behind.
    guards.wait_for(CHILDREN).await;
    assert_eq!(
        dropped_at_return, CHILDREN,
        "the scope unwound before joining its children"
    );
    let payload = caught.expect_err("the body's destructor panic was swallowed");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"body destructor"));
}

/// A child aborted by the cancel panics in its destructor: that panic is a
/// child's panic like any other and must not be swallowed. The scope
/// re-raises a panic that says so (the original payload goes to tokio, and
/// its message to the panic hook when it happens).
#[tokio::test]
async fn g3_panic_in_an_aborted_childs_destructor_is_not_swallowed() {
    let caught = within(
        "the scope",
        AssertUnwindSafe(nursery::scope(|n: Nursery<E>| async move {
            let (started_tx, started) = oneshot::channel();
            drop(n.spawn(async move {
                let _bomb = PanicOnDrop("child destructor");
                let _ = started_tx.send(());
                pending::<Result<(), E>>().await
            }));
            started.await.unwrap();
            Err::<(), _>("trigger")
        }))
        .catch_unwind(),
    )
    .await;
    let payload = match caught {
        Ok(result) => panic!("the destructor panic was swallowed; the scope returned {result:?}"),
        Err(payload) => payload,
    };
    assert_destructor_panic(&*payload);
}

/// A child that completes, and whose future then panics as it is dropped:
/// the scope re-raises it too, although the child's own result was a
/// success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_panic_in_a_finished_childs_destructor_is_not_swallowed() {
    /// Ready at once; panics when dropped (the field is there for its
    /// destructor).
    struct ReadyThenBomb(#[allow(dead_code)] PanicOnDrop);
    impl std::future::Future for ReadyThenBomb {
        type Output = Result<u8, E>;
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            std::task::Poll::Ready(Ok(7))
        }
    }
    let caught = within(
        "the scope",
        AssertUnwindSafe(nursery::scope(|n: Nursery<E>| async move {
            let handle = n.spawn(ReadyThenBomb(PanicOnDrop("finished child destructor")));
            // The child's value arrives; its destructor's panic is the scope's.
            Ok(handle.await)
        }))
        .catch_unwind(),
    )
    .await;
    let payload = match caught {
        Ok(result) => panic!("the destructor panic was swallowed; the scope returned {result:?}"),
        Err(payload) => payload,
    };
    assert_destructor_panic(&*payload);
}

fn assert_destructor_panic(payload: &(dyn std::any::Any + Send)) {
    let message = panic_message(payload);
    assert!(
        message.contains("panicked in its destructor"),
        "unexpected payload: {message:?}"
    );
}

/// The body closure itself (before its future) may spawn and then panic:
/// the scope still joins the children it spawned, then re-raises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_panic_in_the_body_closure_joins_its_children_first() {
    let guards = DropCounter::new();
    let handed_out = guards.clone();
    let caught = within(
        "the scope",
        AssertUnwindSafe(nursery::scope(|n: Nursery<()>| {
            let guard = handed_out.guard();
            n.spawn(async move {
                let _guard = guard;
                std::future::pending::<Result<(), ()>>().await
            });
            if handed_out.dropped() == 0 {
                panic!("closure boom");
            }
            async { Ok(()) }
        }))
        .catch_unwind(),
    )
    .await;
    let payload = caught.expect_err("the closure's panic was swallowed");
    assert_eq!(panic_message(&*payload), "closure boom");
    assert_eq!(guards.dropped(), 1, "re-raised before the child was joined");
}

//! G4 hierarchy: a scope opened inside a child (or body) of another scope is
//! its child. Cancelling the outer cancels the inner; deadlines nest (the
//! earliest wins); `nursery::check()` says how the current scope stopped.
//! No token is passed by hand.

use std::sync::Arc;
use std::time::Duration;

use nursery::{Error, Interrupted, Nursery};
use nursery_tests::{Tracker, within};
use tokio::sync::{Barrier, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Long enough that nothing in these tests should ever wait for it: children
/// that observe the cancel stop by themselves well before.
const GRACE: Duration = Duration::from_secs(60);

type Report = (&'static str, Result<(), Error<String>>);

/// A body that never returns by itself.
async fn forever<T>() -> Result<T, String> {
    std::future::pending().await
}

fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut items = Vec::new();
    while let Ok(item) = rx.try_recv() {
        items.push(item);
    }
    items
}

#[tokio::test(start_paused = true)]
async fn g4_cancelling_the_outer_scope_cancels_scopes_three_deep() {
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let (report_tx, mut report_rx) = mpsc::unbounded_channel::<Report>();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<usize>();
    // The two innermost children and the trigger below.
    let running = Arc::new(Barrier::new(3));

    let outer = {
        let running = running.clone();
        Nursery::builder()
            .grace(GRACE)
            .cancel_on(shutdown.clone())
            .scope(move |n: Nursery<String>| async move {
                drop(n.spawn(async move {
                    let middle_report = report_tx.clone();
                    let middle = Nursery::builder()
                        .grace(GRACE)
                        .scope(move |m: Nursery<String>| async move {
                            drop(m.spawn(async move {
                                let inner = Nursery::builder()
                                    .grace(GRACE)
                                    .scope(move |i: Nursery<String>| async move {
                                        for k in 0..2 {
                                            let running = running.clone();
                                            let seen_tx = seen_tx.clone();
                                            drop(i.spawn(async move {
                                                running.wait().await;
                                                nursery::cancelled().await;
                                                seen_tx.send(k).unwrap();
                                                Ok(())
                                            }));
                                        }
                                        forever().await
                                    })
                                    .await;
                                report_tx.send(("inner", inner)).unwrap();
                                Ok(())
                            }));
                            forever().await
                        })
                        .await;
                    middle_report.send(("middle", middle)).unwrap();
                    Ok(())
                }));
                forever::<()>().await
            })
    };
    let trigger = async {
        running.wait().await;
        shutdown.cancel();
    };
    let (outer, ()) = within("the scope", async { tokio::join!(outer, trigger) }).await;

    assert_eq!(outer, Err(Error::Cancelled));
    let mut seen = drain(&mut seen_rx);
    seen.sort_unstable();
    assert_eq!(seen, [0, 1], "both innermost children observe the cancel");
    assert_eq!(
        drain(&mut report_rx),
        [
            ("inner", Err(Error::Cancelled)),
            ("middle", Err(Error::Cancelled))
        ],
        "every nested scope returns, cancelled"
    );
    assert_eq!(
        Instant::now(),
        start,
        "the children stopped by themselves: nobody waited for the grace period"
    );
}

#[tokio::test(start_paused = true)]
async fn g4_scope_opened_in_a_body_is_cancelled_with_its_parent() {
    let observed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let child_observed = observed.clone();
    let result = within(
        "the scope",
        nursery::scope(|outer: Nursery<String>| async move {
            // The inner scope runs in the outer body; the outer's children are
            // stopped on purpose (G9), which the inner, as a child, must see.
            let inner = Nursery::builder()
                .grace(GRACE)
                .scope(|inner: Nursery<String>| async move {
                    let (started_tx, started_rx) = oneshot::channel();
                    drop(inner.spawn(async move {
                        started_tx.send(()).unwrap();
                        nursery::cancelled().await;
                        child_observed.store(true, std::sync::atomic::Ordering::SeqCst);
                        Ok(())
                    }));
                    started_rx.await.unwrap();
                    outer.cancel();
                    forever::<()>().await
                })
                .await;
            Ok(inner)
        }),
    )
    .await;

    assert_eq!(result, Ok(Err(Error::Cancelled)));
    assert!(observed.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn g4_inner_scopes_see_the_earliest_deadline() {
    let start = Instant::now();
    let ten = start + Duration::from_secs(10);
    let five = start + Duration::from_secs(5);
    assert_eq!(nursery::deadline(), None, "outside any scope");

    let seen = within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::from_secs(10))
            .scope(|n: Nursery<()>| async move {
                let mut seen = vec![("outer", n.deadline(), nursery::deadline())];

                // A later deadline of its own: the outer one is earlier and wins.
                let later = Nursery::builder()
                    .timeout(Duration::from_secs(20))
                    .scope(|i: Nursery<()>| async move {
                        let in_child = i.spawn(async { Ok(nursery::deadline()) }).await;
                        Ok((i.deadline(), nursery::deadline(), in_child.unwrap()))
                    })
                    .await
                    .unwrap();
                seen.push(("later: n", later.0, later.1));
                seen.push(("later: child", later.2, later.2));

                // An earlier deadline of its own wins.
                let earlier = Nursery::builder()
                    .timeout(Duration::from_secs(5))
                    .scope(|i: Nursery<()>| async move {
                        let in_child = i.spawn(async { Ok(nursery::deadline()) }).await;
                        Ok((i.deadline(), nursery::deadline(), in_child.unwrap()))
                    })
                    .await
                    .unwrap();
                seen.push(("earlier: n", earlier.0, earlier.1));
                seen.push(("earlier: child", earlier.2, earlier.2));

                // No deadline of its own: inherits.
                let none = nursery::scope(|i: Nursery<()>| async move {
                    Ok((i.deadline(), nursery::deadline()))
                })
                .await
                .unwrap();
                seen.push(("none", none.0, none.1));

                // Back in the outer body, the outer scope is current again.
                seen.push(("outer again", n.deadline(), nursery::deadline()));
                Ok(seen)
            }),
    )
    .await
    .unwrap();

    assert_eq!(
        seen,
        [
            ("outer", Some(ten), Some(ten)),
            ("later: n", Some(ten), Some(ten)),
            ("later: child", Some(ten), Some(ten)),
            ("earlier: n", Some(five), Some(five)),
            ("earlier: child", Some(five), Some(five)),
            ("none", Some(ten), Some(ten)),
            ("outer again", Some(ten), Some(ten)),
        ]
    );
    assert_eq!(nursery::deadline(), None, "outside any scope again");
}

#[tokio::test(start_paused = true)]
async fn g4_deadlines_nest_three_deep_through_children() {
    let start = Instant::now();
    let (tx, rx) = oneshot::channel();
    within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::from_secs(10))
            .scope(|n: Nursery<()>| async move {
                drop(n.spawn(async move {
                    Nursery::builder()
                        .timeout(Duration::from_secs(5))
                        .scope(|m: Nursery<()>| async move {
                            drop(m.spawn(async move {
                                Nursery::builder()
                                    .timeout(Duration::from_secs(20))
                                    .scope(|i: Nursery<()>| async move {
                                        let inner_n = i.deadline();
                                        drop(i.spawn(async move {
                                            tx.send((inner_n, nursery::deadline())).unwrap();
                                            Ok(())
                                        }));
                                        Ok(())
                                    })
                                    .await
                                    .map_err(drop)
                            }));
                            Ok(())
                        })
                        .await
                        .map_err(drop)
                }));
                Ok(())
            }),
    )
    .await
    .unwrap();

    let five = Some(start + Duration::from_secs(5));
    assert_eq!(rx.await.unwrap(), (five, five));
}

#[tokio::test(start_paused = true)]
async fn g4_outer_deadline_makes_nested_scopes_time_out() {
    let start = Instant::now();
    let (report_tx, mut report_rx) = mpsc::unbounded_channel::<Report>();
    let (check_tx, mut check_rx) = mpsc::unbounded_channel();

    let outer = within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::from_secs(1))
            .grace(GRACE)
            .scope(move |n: Nursery<String>| async move {
                drop(n.spawn(async move {
                    let middle_report = report_tx.clone();
                    let middle = Nursery::builder()
                        .grace(GRACE)
                        .scope(move |m: Nursery<String>| async move {
                            drop(m.spawn(async move {
                                // A later deadline of its own: the outer one wins.
                                let inner = Nursery::builder()
                                    .grace(GRACE)
                                    .timeout(Duration::from_secs(3600))
                                    .scope(move |i: Nursery<String>| async move {
                                        drop(i.spawn(async move {
                                            nursery::cancelled().await;
                                            check_tx.send(nursery::check()).unwrap();
                                            Ok(())
                                        }));
                                        forever().await
                                    })
                                    .await;
                                report_tx.send(("inner", inner)).unwrap();
                                Ok(())
                            }));
                            forever().await
                        })
                        .await;
                    middle_report.send(("middle", middle)).unwrap();
                    Ok(())
                }));
                forever::<()>().await
            }),
    )
    .await;

    assert_eq!(outer, Err(Error::TimedOut));
    assert_eq!(Instant::now(), start + Duration::from_secs(1));
    assert_eq!(
        drain(&mut report_rx),
        [
            ("inner", Err(Error::TimedOut)),
            ("middle", Err(Error::TimedOut))
        ]
    );
    assert_eq!(drain(&mut check_rx), [Err(Interrupted::TimedOut)]);
}

#[tokio::test(start_paused = true)]
async fn g4_inner_deadline_times_out_only_the_inner_scope() {
    let start = Instant::now();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            let sibling = n.spawn(async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(nursery::check())
            });
            let inner = Nursery::builder()
                .timeout(Duration::from_secs(1))
                .scope(|i: Nursery<String>| async move {
                    drop(i.spawn(std::future::pending::<Result<(), String>>()));
                    forever::<()>().await
                })
                .await;
            let inner_returned = Instant::now();
            Ok((
                inner,
                inner_returned,
                n.is_cancelled(),
                sibling.await.unwrap(),
            ))
        }),
    )
    .await;

    assert_eq!(
        result,
        Ok((
            Err(Error::TimedOut),
            start + Duration::from_secs(1),
            false,
            Ok(())
        ))
    );
}

#[tokio::test]
async fn g4_check_is_ok_outside_scopes_and_until_the_scope_is_cancelled() {
    assert_eq!(nursery::check(), Ok(()));
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<()>| async move {
            let in_body = nursery::check();
            let in_child = n.spawn(async { Ok(nursery::check()) }).await.unwrap();
            Ok((in_body, in_child))
        }),
    )
    .await;
    assert_eq!(result, Ok((Ok(()), Ok(()))));
}

#[tokio::test(start_paused = true)]
async fn g4_check_says_cancelled_after_a_sibling_fails() {
    let (tx, rx) = oneshot::channel();
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(GRACE)
            .scope(|n: Nursery<&'static str>| async move {
                drop(n.spawn(async move {
                    nursery::cancelled().await;
                    tx.send(nursery::check()).unwrap();
                    Ok(())
                }));
                drop(n.spawn(async { Err::<(), _>("boom") }));
                forever::<()>().await.map_err(|_| "unreachable")
            }),
    )
    .await;
    assert_eq!(
        result,
        Err(Error::Failed {
            error: "boom",
            suppressed: vec![],
            omitted: 0
        })
    );
    assert_eq!(rx.await.unwrap(), Err(Interrupted::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn g4_check_says_timed_out_after_the_deadline() {
    let (tx, rx) = oneshot::channel();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::from_secs(1))
            .grace(GRACE)
            .scope(|n: Nursery<String>| async move {
                drop(n.spawn(async move {
                    nursery::cancelled().await;
                    tx.send(nursery::check()).unwrap();
                    Ok(())
                }));
                forever::<()>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(rx.await.unwrap(), Err(Interrupted::TimedOut));
}

#[tokio::test(start_paused = true)]
async fn g4_check_in_a_nested_scope_says_cancelled_when_the_outer_is_cancelled() {
    let shutdown = CancellationToken::new();
    let (check_tx, check_rx) = oneshot::channel();
    let (started_tx, started_rx) = oneshot::channel();
    let outer = Nursery::builder()
        // A deadline that has not passed: the cancel is not a timeout.
        .timeout(Duration::from_secs(3600))
        .grace(GRACE)
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(async move {
                let inner = Nursery::builder()
                    .grace(GRACE)
                    .scope(|i: Nursery<String>| async move {
                        drop(i.spawn(async move {
                            started_tx.send(()).unwrap();
                            nursery::cancelled().await;
                            check_tx.send(nursery::check()).unwrap();
                            Ok(())
                        }));
                        forever::<()>().await
                    })
                    .await;
                assert_eq!(inner, Err(Error::Cancelled));
                Ok(())
            }));
            forever::<()>().await
        });
    let trigger = async {
        started_rx.await.unwrap();
        shutdown.cancel();
    };
    let (outer, ()) = within("the scope", async { tokio::join!(outer, trigger) }).await;
    assert_eq!(outer, Err(Error::Cancelled));
    assert_eq!(check_rx.await.unwrap(), Err(Interrupted::Cancelled));
}

/// `Nursery::token` documents: "Cancelling it from outside cancels the scope
/// like its parent would." A parent's cancel makes the scope return
/// `Cancelled` and aborts its children (G4).
#[tokio::test(start_paused = true)]
async fn g4_cancelling_the_scope_token_cancels_the_scope_like_its_parent() {
    let (token_tx, token_rx) = oneshot::channel();
    let stubborn = Tracker::new();
    let child = stubborn.track(std::future::pending::<Result<(), String>>());
    let scope = nursery::scope(|n: Nursery<String>| async move {
        drop(n.spawn(child));
        token_tx.send(n.token().clone()).unwrap();
        forever::<()>().await
    });
    let trigger = async {
        token_rx.await.unwrap().cancel();
    };
    // Without a cancel the scope waits for its child forever.
    let joined = within("the scope", async { tokio::join!(scope, trigger).0 }).await;
    assert_eq!(joined, Err(Error::Cancelled));
    assert!(stubborn.was_dropped() && !stubborn.completed());
}

/// Same root cause, seen from a spawner: once the scope's token has fired,
/// `n.is_cancelled()` is true, so a spawn must start nothing (as after any
/// cancel).
#[tokio::test(start_paused = true)]
async fn g4_no_child_starts_after_the_scope_token_is_cancelled() {
    let late = Tracker::new();
    let late_future = late.track(async { Ok::<_, String>(()) });
    let (handle_tx, handle) = oneshot::channel();
    let outcome = within(
        "a scope whose token was cancelled",
        nursery::scope(|n: Nursery<String>| async move {
            n.token().cancel();
            assert!(n.is_cancelled());
            handle_tx.send(n.spawn(late_future)).unwrap();
            // The scope notices its token here, and interrupts the body.
            forever::<()>().await
        }),
    )
    .await;
    assert!(!late.was_polled(), "the child started after the cancel");
    let joined = within("the late child's handle", handle.await.unwrap()).await;
    assert!(
        joined.as_ref().is_err_and(nursery::JoinError::is_cancelled),
        "its handle reports the cancel: {joined:?}"
    );
    assert_eq!(
        outcome,
        Err(Error::Cancelled),
        "cancelling the token is an outside cancel"
    );
}

/// The settled rule: "`spawn` after `n.cancel()` (or any cancel) starts
/// nothing". A parent's cancel reaches a nested scope's token at once, so
/// its children see `cancelled()`, `check()` and `is_cancelled()` report it
/// at once, and from then on they must not be able to start new siblings.
#[tokio::test(start_paused = true)]
async fn g4_no_child_starts_in_a_nested_scope_after_the_outer_is_cancelled() {
    let shutdown = CancellationToken::new();
    let late = Tracker::new();
    let late_future = late.track(async { Ok::<_, String>(()) });
    let (started_tx, started_rx) = oneshot::channel();
    let (seen_tx, seen_rx) = oneshot::channel();
    let (inner_tx, inner_rx) = oneshot::channel();
    let outer = Nursery::builder()
        .grace(GRACE)
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(async move {
                let inner = Nursery::builder()
                    .grace(GRACE)
                    .scope(|inner: Nursery<String>| async move {
                        let spawner = inner.clone();
                        drop(inner.spawn(async move {
                            started_tx.send(()).unwrap();
                            nursery::cancelled().await;
                            let cancelled = spawner.is_cancelled();
                            let handle = spawner.spawn(late_future);
                            let joined = handle.await.map_err(|e| e.is_cancelled());
                            seen_tx.send((cancelled, joined)).unwrap();
                            Ok(())
                        }));
                        forever::<()>().await
                    })
                    .await;
                inner_tx.send(inner).unwrap();
                Ok(())
            }));
            forever::<()>().await
        });
    let trigger = async {
        started_rx.await.unwrap();
        shutdown.cancel();
    };
    let (outer, ()) = within("the scope", async { tokio::join!(outer, trigger) }).await;
    assert_eq!(outer, Err(Error::Cancelled));
    let (cancelled, joined) = seen_rx.await.unwrap();
    assert!(cancelled, "the spawner was told the scope is cancelled");
    assert!(!late.was_polled(), "a child started after the cancel");
    assert_eq!(joined, Err(true), "its handle reports the cancel");
    assert_eq!(inner_rx.await, Ok(Err(Error::Cancelled)));
}

/// The outcome is fixed by the first event (here the outside cancel, before
/// the deadline); `check()` is how a child learns that outcome, so it must
/// keep saying `Cancelled` when the deadline passes later, during grace.
#[tokio::test(start_paused = true)]
async fn g4_check_agrees_with_the_outcome_when_the_deadline_passes_during_grace() {
    let shutdown = CancellationToken::new();
    let (tx, rx) = oneshot::channel();
    let scope = Nursery::builder()
        .timeout(Duration::from_secs(1))
        .grace(Duration::from_secs(5))
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(async move {
                nursery::cancelled().await;
                let at_cancel = nursery::check();
                // Still cleaning up when the deadline passes.
                tokio::time::sleep(Duration::from_secs(2)).await;
                tx.send((at_cancel, nursery::check())).unwrap();
                Ok(())
            }));
            forever::<()>().await
        });
    let trigger = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        shutdown.cancel();
    };
    let (result, ()) = within("the scope", async { tokio::join!(scope, trigger) }).await;
    assert_eq!(result, Err(Error::Cancelled));
    assert_eq!(
        rx.await.unwrap(),
        (Err(Interrupted::Cancelled), Err(Interrupted::Cancelled))
    );
}

/// Same window as above, through the limit queue: a nested scope's child
/// that stops when the outer is cancelled frees its slot, and the queued
/// child behind it must not start (G5, G8: a cancel drops queued children
/// unstarted).
#[tokio::test(start_paused = true)]
async fn g4_queued_children_of_a_nested_scope_never_start_after_the_outer_is_cancelled() {
    let shutdown = CancellationToken::new();
    let queued = Tracker::new();
    let queued_future = queued.track(async { Ok::<_, String>(()) });
    let (started_tx, started_rx) = oneshot::channel();
    let (inner_tx, inner_rx) = oneshot::channel();
    let outer = Nursery::builder()
        .grace(GRACE)
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(async move {
                let inner = Nursery::builder()
                    .grace(GRACE)
                    .limit(1)
                    .scope(|inner: Nursery<String>| async move {
                        drop(inner.spawn(async move {
                            started_tx.send(()).unwrap();
                            nursery::cancelled().await;
                            Ok(())
                        }));
                        drop(inner.spawn(queued_future));
                        forever::<()>().await
                    })
                    .await;
                inner_tx.send(inner).unwrap();
                Ok(())
            }));
            forever::<()>().await
        });
    let trigger = async {
        started_rx.await.unwrap();
        shutdown.cancel();
    };
    let (outer, ()) = within("the scope", async { tokio::join!(outer, trigger) }).await;
    assert_eq!(outer, Err(Error::Cancelled));
    assert!(queued.was_dropped());
    assert!(
        !queued.was_polled(),
        "a queued child started after the cancel"
    );
    assert_eq!(inner_rx.await, Ok(Err(Error::Cancelled)));
}

/// G4 deadline nesting on the multi-thread runtime, in real time: the outer
/// deadline reaches scopes nested three deep through children, each of
/// which times out (inner first), and a child there sees `TimedOut`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_outer_deadline_makes_nested_scopes_time_out_multi_thread() {
    const TIMEOUT: Duration = Duration::from_millis(100);
    let start = std::time::Instant::now();
    let (report_tx, mut report_rx) = mpsc::unbounded_channel::<Report>();
    let (check_tx, mut check_rx) = mpsc::unbounded_channel();
    let (deadline_tx, deadline_rx) = oneshot::channel();

    let outer = within(
        "an outer scope with a deadline",
        Nursery::builder().timeout(TIMEOUT).grace(GRACE).scope(
            move |n: Nursery<String>| async move {
                let outer_deadline = n.deadline();
                drop(n.spawn(async move {
                    let middle_report = report_tx.clone();
                    let middle = Nursery::builder()
                        .grace(GRACE)
                        .scope(move |m: Nursery<String>| async move {
                            drop(m.spawn(async move {
                                // A later deadline of its own: the outer one wins.
                                let inner = Nursery::builder()
                                    .grace(GRACE)
                                    .timeout(Duration::from_secs(3600))
                                    .scope(move |i: Nursery<String>| async move {
                                        deadline_tx.send((outer_deadline, i.deadline())).unwrap();
                                        drop(i.spawn(async move {
                                            nursery::cancelled().await;
                                            check_tx.send(nursery::check()).unwrap();
                                            Ok(())
                                        }));
                                        forever().await
                                    })
                                    .await;
                                report_tx.send(("inner", inner)).unwrap();
                                Ok(())
                            }));
                            forever().await
                        })
                        .await;
                    middle_report.send(("middle", middle)).unwrap();
                    Ok(())
                }));
                forever::<()>().await
            },
        ),
    )
    .await;

    assert_eq!(outer, Err(Error::TimedOut));
    assert!(start.elapsed() >= TIMEOUT, "not before the deadline");
    let (outer_deadline, inner_deadline) = deadline_rx.await.unwrap();
    assert!(outer_deadline.is_some());
    assert_eq!(inner_deadline, outer_deadline, "the earliest deadline wins");
    assert_eq!(
        drain(&mut report_rx),
        [
            ("inner", Err(Error::TimedOut)),
            ("middle", Err(Error::TimedOut))
        ],
        "inner first, then middle, both before the outer returned"
    );
    assert_eq!(drain(&mut check_rx), [Err(Interrupted::TimedOut)]);
}

/// An inner scope whose own deadline comes before its parent's keeps a
/// timer of its own: it times out at its deadline, not when the parent's
/// (much later) one fires.
#[tokio::test(start_paused = true)]
async fn g4_an_inner_deadline_before_the_outer_one_fires_on_time() {
    let start = tokio::time::Instant::now();
    let result = within(
        "the outer scope",
        Nursery::builder()
            .timeout(Duration::from_secs(100))
            .scope(|_: Nursery<()>| async move {
                let inner = Nursery::builder()
                    .timeout(Duration::from_secs(1))
                    .scope(|_: Nursery<()>| std::future::pending::<Result<(), ()>>())
                    .await;
                assert!(matches!(inner, Err(Error::TimedOut)), "{inner:?}");
                Ok(start.elapsed())
            }),
    )
    .await;
    let elapsed = result.expect("the outer scope has time left");
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(2),
        "timed out after {elapsed:?}"
    );
}

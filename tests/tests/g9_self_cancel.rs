//! G9 self-cancel: `n.cancel()` stops the children, not the body; the scope
//! then returns the body's own result. Cancelling on purpose is not an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nursery::{Error, Nursery};
use nursery_tests::{Tracker, within, yield_rounds};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

/// A child that never returns by itself.
async fn forever<T>() -> Result<T, String> {
    std::future::pending().await
}

#[tokio::test]
async fn g9_cancel_stops_the_children_not_the_body() {
    let trackers: Vec<Tracker> = (0..3).map(|_| Tracker::new()).collect();
    let futures: Vec<_> = trackers.iter().map(|t| t.track(forever::<u32>())).collect();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            let handles: Vec<_> = futures.into_iter().map(|f| n.spawn(f)).collect();
            yield_rounds(5).await;
            assert!(!n.is_cancelled());
            n.cancel();
            n.cancel(); // again: nothing more happens
            assert!(n.is_cancelled());
            let mut cancelled = 0;
            for handle in handles {
                if handle.await.unwrap_err().is_cancelled() {
                    cancelled += 1;
                }
            }
            // The body goes on working after the cancel.
            yield_rounds(5).await;
            Ok(format!("body finished; {cancelled} children cancelled"))
        }),
    )
    .await;
    assert_eq!(result, Ok("body finished; 3 children cancelled".to_owned()));
    for tracker in &trackers {
        assert!(tracker.was_polled() && tracker.was_dropped() && !tracker.completed());
    }
}

#[tokio::test(start_paused = true)]
async fn g9_body_keeps_running_through_time_after_cancel() {
    let start = Instant::now();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            drop(n.spawn(forever::<()>()));
            n.cancel();
            sleep(Duration::from_secs(3)).await;
            Ok(Instant::now())
        }),
    )
    .await;
    assert_eq!(result, Ok(start + Duration::from_secs(3)));
}

#[tokio::test]
async fn g9_body_error_after_cancel_is_returned() {
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<&'static str>| async move {
            drop(n.spawn(async { forever::<()>().await.map_err(|_| "unreachable") }));
            n.cancel();
            Err::<(), _>("the body's own error")
        }),
    )
    .await;
    assert_eq!(
        result,
        Err(Error::Failed {
            error: "the body's own error",
            suppressed: vec![],
            omitted: 0
        })
    );
}

#[tokio::test]
async fn g9_cancel_from_inside_a_child() {
    let stubborn = Tracker::new();
    let stubborn_future = stubborn.track(forever::<()>());
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            let victim = n.spawn(stubborn_future);
            let canceller = n.clone();
            let (cancelled_tx, cancelled_rx) = oneshot::channel();
            drop(n.spawn(async move {
                canceller.cancel();
                cancelled_tx.send(()).unwrap();
                Ok(())
            }));
            let victim = victim.await.unwrap_err().is_cancelled();
            // The body is still running, and can still wait on things.
            let _ = cancelled_rx.await;
            Ok(victim)
        }),
    )
    .await;
    assert_eq!(result, Ok(true));
    assert!(stubborn.was_dropped() && !stubborn.completed());
}

#[tokio::test]
async fn g9_spawn_after_cancel_starts_nothing() {
    let late = Tracker::new();
    let late_future = late.track(async { Ok::<_, String>(1) });
    let refused = Tracker::new();
    let refused_future = refused.track(async { Ok::<_, String>(2) });
    let blocking_ran = Arc::new(AtomicBool::new(false));
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| {
            let late = late.clone();
            let refused = refused.clone();
            let blocking_ran = blocking_ran.clone();
            async move {
                n.cancel();

                let handle = n.spawn(late_future);
                assert!(late.was_dropped(), "dropped at the spawn");
                assert!(!late.was_polled());
                assert!(handle.await.unwrap_err().is_cancelled());

                let error = match n.try_spawn(refused_future) {
                    Ok(_) => return Err("try_spawn after cancel started the child".to_owned()),
                    Err(error) => error,
                };
                assert!(error.is_cancelled(), "{error:?}");
                assert!(!error.is_full() && !error.is_closed());
                let future = error.into_future();
                assert!(!refused.was_polled() && !refused.was_dropped());

                let flag = blocking_ran.clone();
                let blocking = n.spawn_blocking(move |_| {
                    flag.store(true, Ordering::SeqCst);
                    Ok(())
                });
                assert!(blocking.await.unwrap_err().is_cancelled());

                let started = n.start(|ready| async move {
                    ready.send(());
                    Ok(())
                });
                assert!(started.await.unwrap_err().is_cancelled());

                assert_eq!(n.live(), 0);
                // The handed-back future is intact: run it here.
                future.await
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(2));
    assert!(!blocking_ran.load(Ordering::SeqCst));
    assert!(refused.completed());
}

#[tokio::test(start_paused = true)]
async fn g9_errors_children_return_after_cancel_are_discarded() {
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(Duration::from_secs(1))
            .scope(|n: Nursery<String>| async move {
                let handles: Vec<_> = (0..3)
                    .map(|i| {
                        n.spawn(async move {
                            nursery::cancelled().await;
                            Err::<(), _>(format!("late error {i}"))
                        })
                    })
                    .collect();
                yield_rounds(5).await;
                n.cancel();
                let mut failed = 0;
                for handle in handles {
                    if handle.await.unwrap_err().is_failed() {
                        failed += 1;
                    }
                }
                Ok(failed)
            }),
    )
    .await;
    assert_eq!(result, Ok(3), "the errors happened, and were not returned");
}

#[tokio::test(start_paused = true)]
async fn g9_errors_collected_before_cancel_are_still_returned() {
    let result = within(
        "the scope",
        Nursery::builder()
            .collect_errors()
            .grace(Duration::from_secs(1))
            .scope(|n: Nursery<String>| async move {
                let early = n.spawn(async { Err::<(), _>("early".to_owned()) });
                assert!(early.await.unwrap_err().is_failed());
                drop(n.spawn(async {
                    nursery::cancelled().await;
                    Err::<(), _>("late".to_owned())
                }));
                yield_rounds(5).await;
                n.cancel();
                Ok(())
            }),
    )
    .await;
    assert_eq!(
        result,
        Err(Error::Failed {
            error: "early".to_owned(),
            suppressed: vec![],
            omitted: 0
        })
    );
}

#[tokio::test]
async fn g9_cancel_drops_queued_children_unstarted() {
    let trackers: Vec<Tracker> = (0..4).map(|_| Tracker::new()).collect();
    let futures: Vec<_> = trackers.iter().map(|t| t.track(forever::<()>())).collect();
    let result = within(
        "the scope",
        Nursery::builder()
            .limit(1)
            .scope(|n: Nursery<String>| async move {
                let handles: Vec<_> = futures.into_iter().map(|f| n.spawn(f)).collect();
                yield_rounds(5).await;
                assert_eq!(n.live(), 4);
                n.cancel();
                let mut cancelled = 0;
                for handle in handles {
                    if handle.await.unwrap_err().is_cancelled() {
                        cancelled += 1;
                    }
                }
                Ok((cancelled, n.live()))
            }),
    )
    .await;
    assert_eq!(result, Ok((4, 0)));
    let started: Vec<bool> = trackers.iter().map(Tracker::was_polled).collect();
    assert_eq!(
        started,
        [true, false, false, false],
        "only the running one started"
    );
    assert!(trackers.iter().all(Tracker::was_dropped));
}

/// `n.cancel()` stops the children, not the body, but does not shield the
/// body from a deadline: a body that never returns after the cancel is
/// still interrupted when the deadline passes, and the scope times out.
#[tokio::test(start_paused = true)]
async fn g9_a_deadline_still_interrupts_the_body_after_cancel() {
    let start = Instant::now();
    let body = Tracker::new();
    let child = Tracker::new();
    let (body_tracker, child_future) = (body.clone(), child.track(forever::<()>()));
    let result = within(
        "a scope whose deadline passed after n.cancel()",
        Nursery::builder()
            .timeout(Duration::from_secs(1))
            .scope(|n: Nursery<String>| {
                body_tracker.track(async move {
                    drop(n.spawn(child_future));
                    n.cancel();
                    forever::<()>().await
                })
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(Instant::now(), start + Duration::from_secs(1));
    assert_eq!(
        body.dropped_at(),
        Some(start + Duration::from_secs(1)),
        "the body is dropped at the deadline"
    );
    assert!(!body.completed());
    assert_eq!(
        child.dropped_at(),
        Some(start),
        "the child was stopped at the cancel"
    );
}

/// The same for an outside cancel: a `cancel_on` token cancelled after
/// `n.cancel()` interrupts the body, and the scope returns `Cancelled`.
#[tokio::test(start_paused = true)]
async fn g9_an_outside_cancel_still_interrupts_the_body_after_cancel() {
    let shutdown = CancellationToken::new();
    let body = Tracker::new();
    let (cancelled_tx, cancelled) = oneshot::channel();
    let body_tracker = body.clone();
    let scope = Nursery::builder()
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| {
            body_tracker.track(async move {
                drop(n.spawn(forever::<()>()));
                n.cancel();
                cancelled_tx.send(()).unwrap();
                forever::<()>().await
            })
        });
    let trigger = async {
        cancelled.await.unwrap();
        shutdown.cancel();
    };
    let (result, ()) = within("a scope cancelled from outside after n.cancel()", async {
        tokio::join!(scope, trigger)
    })
    .await;
    assert_eq!(result, Err(Error::Cancelled));
    assert!(body.was_dropped() && !body.completed());
}

/// And for a cancel from the enclosing scope: an inner scope whose body
/// called `n.cancel()` is still cancelled with its parent, body and all.
#[tokio::test(start_paused = true)]
async fn g9_the_parent_s_cancel_still_interrupts_the_body_after_cancel() {
    let result = within(
        "an inner scope cancelled by its parent after n.cancel()",
        nursery::scope(|outer: Nursery<String>| async move {
            let inner = nursery::scope(|n: Nursery<String>| async move {
                n.cancel();
                outer.cancel();
                forever::<()>().await
            })
            .await;
            Ok(inner)
        }),
    )
    .await;
    assert_eq!(result, Ok(Err(Error::Cancelled)));
}

/// G9 on the multi-thread runtime, in real time: after `n.cancel()` the
/// body runs on, and the deadline still interrupts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g9_a_deadline_still_interrupts_the_body_after_cancel_multi_thread() {
    let stopped = Tracker::new();
    let child_future = stopped.track(forever::<()>());
    let (seen_tx, seen) = oneshot::channel();
    let result = within(
        "a scope whose deadline passed after n.cancel()",
        Nursery::builder()
            .timeout(Duration::from_millis(200))
            .scope(|n: Nursery<String>| async move {
                let handle = n.spawn(child_future);
                n.cancel();
                // The child is stopped, the body goes on.
                let child_cancelled = handle.await.unwrap_err().is_cancelled();
                seen_tx.send(child_cancelled).unwrap();
                forever::<()>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(seen.await, Ok(true), "the body ran on after the cancel");
    assert!(stopped.was_dropped() && !stopped.completed());
}

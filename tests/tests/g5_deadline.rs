//! G5 deadline: `timeout` / `deadline` cancel everything when reached, and
//! the scope returns `Error::TimedOut`, distinguishable from an outside
//! cancel (`Error::Cancelled`). On tokio's paused clock, and on the
//! multi-thread runtime in real time, where only the order of events is
//! checked.

use std::time::Duration;

use nursery::{Error, Nursery};
use nursery_tests::{Tracker, within};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

const SECOND: Duration = Duration::from_secs(1);

/// A body or child that never returns by itself.
async fn forever<T>() -> Result<T, String> {
    std::future::pending().await
}

#[tokio::test(start_paused = true)]
async fn g5_timeout_returns_timed_out_when_reached() {
    let start = Instant::now();
    let child = Tracker::new();
    let child_future = child.track(forever::<()>());
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(SECOND)
            .scope(|n: Nursery<String>| async move {
                drop(n.spawn(child_future));
                forever::<()>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(Instant::now(), start + SECOND, "returns at the deadline");
    assert_eq!(
        child.dropped_at(),
        Some(start + SECOND),
        "the child is cancelled"
    );
    assert!(!child.completed());
}

#[tokio::test(start_paused = true)]
async fn g5_cancel_on_token_returns_cancelled_not_timed_out() {
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let scope = Nursery::builder()
        .timeout(SECOND)
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(forever::<()>()));
            forever::<()>().await
        });
    let trigger = async {
        sleep(SECOND / 2).await;
        shutdown.cancel();
    };
    let (result, ()) = within("the scope", async { tokio::join!(scope, trigger) }).await;
    assert_eq!(result, Err(Error::Cancelled));
    assert_eq!(Instant::now(), start + SECOND / 2);
}

#[tokio::test(start_paused = true)]
async fn g5_deadline_instant_times_out_at_that_instant() {
    let start = Instant::now();
    let at = start + Duration::from_millis(750);
    let result = within(
        "the scope",
        Nursery::builder()
            .deadline(at)
            .scope(|n: Nursery<String>| async move {
                assert_eq!(n.deadline(), Some(at));
                drop(n.spawn(forever::<()>()));
                forever::<()>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(Instant::now(), at);
}

#[tokio::test(start_paused = true)]
async fn g5_earliest_of_timeout_and_deadline_wins() {
    // The deadline is earlier.
    let start = Instant::now();
    let early = start + Duration::from_secs(2);
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::from_secs(3))
            .deadline(early)
            .scope(|n: Nursery<String>| async move {
                assert_eq!(n.deadline(), Some(early));
                forever::<()>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(Instant::now(), early);

    // The timeout is earlier (builder order does not matter).
    let start = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .deadline(start + Duration::from_secs(4))
            .timeout(Duration::from_secs(1))
            .scope(|n: Nursery<String>| async move {
                assert_eq!(n.deadline(), Some(start + Duration::from_secs(1)));
                forever::<()>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(Instant::now(), start + Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn g5_timeout_counts_from_the_first_poll() {
    let scope = Nursery::builder()
        .timeout(SECOND)
        .scope(|_: Nursery<String>| async move { forever::<()>().await });
    sleep(Duration::from_secs(5)).await;
    let polled = Instant::now();
    assert_eq!(within("the scope", scope).await, Err(Error::TimedOut));
    assert_eq!(Instant::now(), polled + SECOND);
}

#[tokio::test(start_paused = true)]
async fn g5_deadline_already_passed_times_out_before_the_body_runs() {
    let start = Instant::now();
    sleep(SECOND).await;
    let ran = std::sync::atomic::AtomicBool::new(false);
    let result = within(
        "the scope",
        Nursery::builder()
            .deadline(start)
            .scope(|_: Nursery<String>| async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn g5_timeout_at_the_limit_cancels_running_children_and_never_starts_queued_ones() {
    let start = Instant::now();
    let trackers: Vec<Tracker> = (0..5).map(|_| Tracker::new()).collect();
    let futures: Vec<_> = trackers.iter().map(|t| t.track(forever::<()>())).collect();
    let result = within(
        "the scope",
        Nursery::builder()
            .limit(2)
            .timeout(SECOND)
            .scope(|n: Nursery<String>| async move {
                let handles: Vec<_> = futures.into_iter().map(|f| n.spawn(f)).collect();
                assert_eq!(n.live(), 5);
                for handle in handles {
                    let _ = handle.await;
                }
                Ok(())
            }),
    )
    .await;

    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(Instant::now(), start + SECOND);
    for (i, tracker) in trackers.iter().enumerate() {
        let running = i < 2;
        assert_eq!(
            tracker.was_polled(),
            running,
            "child {i}: started iff it had a slot"
        );
        assert!(!tracker.completed(), "child {i}");
        assert_eq!(
            tracker.dropped_at(),
            Some(start + SECOND),
            "child {i}: dropped at the deadline, before the scope returned"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn g5_deadline_fixes_the_outcome_even_if_every_child_then_finishes_ok() {
    let start = Instant::now();
    let trackers: Vec<Tracker> = (0..3).map(|_| Tracker::new()).collect();
    let futures: Vec<_> = trackers
        .iter()
        .map(|t| {
            t.track(async {
                nursery::cancelled().await;
                Ok::<_, String>(())
            })
        })
        .collect();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(SECOND)
            .grace(Duration::from_secs(10))
            .scope(|n: Nursery<String>| async move {
                for future in futures {
                    drop(n.spawn(future));
                }
                forever::<()>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(
        Instant::now(),
        start + SECOND,
        "no need to wait for the grace"
    );
    assert!(
        trackers.iter().all(Tracker::completed),
        "every child finished Ok"
    );
}

#[tokio::test(start_paused = true)]
async fn g5_deadline_during_the_join_wins_over_the_bodys_ok() {
    let start = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(SECOND)
            .scope(|n: Nursery<String>| async move {
                drop(n.spawn(async {
                    sleep(Duration::from_secs(2)).await;
                    Ok(())
                }));
                Ok("body done at once")
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(Instant::now(), start + SECOND);
}

#[tokio::test(start_paused = true)]
async fn g5_the_first_of_deadline_and_outside_cancel_fixes_the_outcome() {
    // The deadline first, the outside cancel during the grace period.
    let shutdown = CancellationToken::new();
    let scope = Nursery::builder()
        .timeout(SECOND)
        .grace(Duration::from_secs(10))
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(async {
                nursery::cancelled().await;
                sleep(SECOND).await;
                Ok(())
            }));
            forever::<()>().await
        });
    let trigger = async {
        sleep(SECOND + SECOND / 2).await;
        shutdown.cancel();
    };
    let (result, ()) = within("the scope", async { tokio::join!(scope, trigger) }).await;
    assert_eq!(result, Err(Error::TimedOut));

    // The outside cancel first, the deadline during the grace period.
    let shutdown = CancellationToken::new();
    let scope = Nursery::builder()
        .timeout(SECOND)
        .grace(Duration::from_secs(10))
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(async {
                nursery::cancelled().await;
                sleep(SECOND).await;
                Ok(())
            }));
            forever::<()>().await
        });
    let trigger = async {
        sleep(SECOND / 2).await;
        shutdown.cancel();
    };
    let (result, ()) = within("the scope", async { tokio::join!(scope, trigger) }).await;
    assert_eq!(result, Err(Error::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn g5_duration_max_timeout_means_no_timeout() {
    let start = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::MAX)
            .scope(|n: Nursery<String>| async move {
                let deadline = n.deadline();
                let child = n.spawn(async {
                    sleep(Duration::from_secs(365 * 24 * 3600)).await;
                    Ok(nursery::deadline())
                });
                Ok((deadline, child.await.map_err(|e| e.to_string())?))
            }),
    )
    .await;
    assert_eq!(result, Ok((None, None)));
    assert!(Instant::now() >= start + Duration::from_secs(365 * 24 * 3600));

    // Inside a scope with a deadline, it inherits that deadline.
    let start = Instant::now();
    let (tx, rx) = oneshot::channel();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(SECOND)
            .scope(|_: Nursery<String>| async move {
                Nursery::builder()
                    .timeout(Duration::MAX)
                    .scope(|inner: Nursery<String>| async move {
                        tx.send(inner.deadline()).unwrap();
                        forever::<()>().await
                    })
                    .await
                    .map_err(|e| e.to_string())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(rx.await.unwrap(), Some(start + SECOND));
}

// ===== the multi-thread runtime, in real time =====

/// Long enough never to be reached: a deadline or grace that must not be
/// the one that ends the test.
const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_timeout_returns_timed_out_when_reached_multi_thread() {
    const TIMEOUT: Duration = Duration::from_millis(100);
    let start = std::time::Instant::now();
    let child = Tracker::new();
    let child_future = child.track(forever::<()>());
    let result = within(
        "a scope with a timeout",
        Nursery::builder()
            .timeout(TIMEOUT)
            .scope(|n: Nursery<String>| async move {
                drop(n.spawn(child_future));
                forever::<()>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert!(start.elapsed() >= TIMEOUT, "not before the deadline");
    assert!(child.was_polled(), "the child ran");
    assert!(
        child.was_dropped() && !child.completed(),
        "the child was cancelled before the scope returned"
    );
}

/// The outside cancel comes first (once the child runs), the deadline
/// never: `Cancelled`. Then the deadline first (the child sees it), the
/// outside cancel during the grace period: `TimedOut`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_the_first_of_deadline_and_outside_cancel_fixes_the_outcome_multi_thread() {
    let shutdown = CancellationToken::new();
    let (running_tx, running) = oneshot::channel();
    let scope = Nursery::builder()
        .timeout(NEVER)
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(async move {
                running_tx.send(()).unwrap();
                forever::<()>().await
            }));
            forever::<()>().await
        });
    let trigger = async {
        running.await.unwrap();
        shutdown.cancel();
    };
    let (result, ()) = within("a scope cancelled from outside", async {
        tokio::join!(scope, trigger)
    })
    .await;
    assert_eq!(result, Err(Error::Cancelled));

    let shutdown = CancellationToken::new();
    let (timed_out_tx, timed_out) = oneshot::channel();
    let (seen_tx, seen) = oneshot::channel();
    let outside = shutdown.clone();
    let scope = Nursery::builder()
        .timeout(Duration::from_millis(50))
        .grace(NEVER)
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(async move {
                nursery::cancelled().await;
                timed_out_tx.send(nursery::check()).unwrap();
                // Stops only once the outside cancel has come too.
                outside.cancelled().await;
                seen_tx.send(nursery::check()).unwrap();
                Ok(())
            }));
            forever::<()>().await
        });
    let trigger = async {
        let at_deadline = timed_out.await.unwrap();
        shutdown.cancel();
        at_deadline
    };
    let (result, at_deadline) = within("a scope past its deadline", async {
        tokio::join!(scope, trigger)
    })
    .await;
    assert_eq!(at_deadline, Err(nursery::Interrupted::TimedOut));
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(
        seen.await,
        Ok(Err(nursery::Interrupted::TimedOut)),
        "the later outside cancel changes nothing"
    );
}

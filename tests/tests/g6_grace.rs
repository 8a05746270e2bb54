//! G6 graceful cancellation: on cancel the scope's token fires first;
//! children get `grace` (default zero) to finish by themselves, then the
//! rest are aborted. On tokio's paused clock, so instants compare exactly,
//! and on the multi-thread runtime in real time, where only the order of
//! events is checked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nursery::{Error, Nursery};
use nursery_tests::{DropCounter, Tracker, parked_in, within};
use tokio::sync::{Barrier, Mutex, oneshot};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

const GRACE: Duration = Duration::from_secs(1);
const QUICK: Duration = Duration::from_millis(300);

/// A body or child that never returns by itself.
async fn forever<T>() -> Result<T, String> {
    std::future::pending().await
}

/// A child that notes when it saw the token, then stops after `stop_after`.
async fn polite(
    saw_cancel: Arc<Mutex<Option<Instant>>>,
    stop_after: Duration,
    value: u32,
) -> Result<u32, String> {
    nursery::cancelled().await;
    *saw_cancel.lock().await = Some(Instant::now());
    sleep(stop_after).await;
    Ok(value)
}

#[tokio::test(start_paused = true)]
async fn g6_a_child_that_stops_within_grace_completes_normally() {
    let shutdown = CancellationToken::new();
    let ready = Arc::new(Barrier::new(2));
    let saw_cancel = Arc::new(Mutex::new(None));
    let tracker = Tracker::new();
    let (value_tx, value_rx) = oneshot::channel();
    let child = {
        let ready = ready.clone();
        let inner = polite(saw_cancel.clone(), QUICK, 42);
        tracker.track(async move {
            ready.wait().await;
            let value = inner.await?;
            value_tx.send(value).unwrap();
            Ok::<_, String>(value)
        })
    };
    let scope = Nursery::builder()
        .grace(GRACE)
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(child));
            forever::<()>().await
        });
    let mut cancelled_at = None;
    let trigger = async {
        ready.wait().await;
        cancelled_at = Some(Instant::now());
        shutdown.cancel();
    };
    let (result, ()) = within("the scope", async { tokio::join!(scope, trigger) }).await;
    let cancelled_at = cancelled_at.unwrap();

    assert_eq!(result, Err(Error::Cancelled));
    assert_eq!(
        *saw_cancel.lock().await,
        Some(cancelled_at),
        "the token fires at the cancel"
    );
    assert_eq!(value_rx.await, Ok(42), "the child ran to its end");
    assert!(tracker.completed(), "completed, not aborted");
    assert_eq!(tracker.dropped_at(), Some(cancelled_at + QUICK));
    assert_eq!(
        Instant::now(),
        cancelled_at + QUICK,
        "the scope returns as soon as its children are done, not at the grace expiry"
    );
}

#[tokio::test(start_paused = true)]
async fn g6_after_n_cancel_a_child_that_stops_within_grace_returns_its_value() {
    let saw_cancel = Arc::new(Mutex::new(None));
    let child = polite(saw_cancel.clone(), QUICK, 7);
    let start = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(GRACE)
            .scope(|n: Nursery<String>| async move {
                let handle = n.spawn(child);
                tokio::task::yield_now().await;
                n.cancel();
                handle.await.map_err(|e| e.to_string())
            }),
    )
    .await;
    assert_eq!(result, Ok(7), "the handle yields the value, not a cancel");
    assert_eq!(*saw_cancel.lock().await, Some(start));
    assert_eq!(Instant::now(), start + QUICK);
}

#[tokio::test(start_paused = true)]
async fn g6_children_still_running_at_grace_expiry_are_aborted_exactly_then() {
    let shutdown = CancellationToken::new();
    let ready = Arc::new(Barrier::new(3));
    let stubborn_saw = Arc::new(Mutex::new(None));
    let polite_saw = Arc::new(Mutex::new(None));
    let stubborn = Tracker::new();
    let quick = Tracker::new();

    let stubborn_child = {
        let ready = ready.clone();
        let saw = stubborn_saw.clone();
        stubborn.track(async move {
            ready.wait().await;
            nursery::cancelled().await;
            *saw.lock().await = Some(Instant::now());
            // Ignores the cancel: keeps working, in steps shorter than the
            // grace, so an early abort would show.
            loop {
                sleep(Duration::from_millis(10)).await;
            }
            #[allow(unreachable_code)]
            Ok::<u32, String>(0)
        })
    };
    let quick_child = {
        let ready = ready.clone();
        let inner = polite(polite_saw.clone(), QUICK, 1);
        quick.track(async move {
            ready.wait().await;
            inner.await
        })
    };
    let scope = Nursery::builder()
        .grace(GRACE)
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(stubborn_child));
            drop(n.spawn(quick_child));
            forever::<()>().await
        });
    let mut cancelled_at = None;
    let trigger = async {
        ready.wait().await;
        cancelled_at = Some(Instant::now());
        shutdown.cancel();
    };
    let (result, ()) = within("the scope", async { tokio::join!(scope, trigger) }).await;
    let cancelled_at = cancelled_at.unwrap();

    assert_eq!(result, Err(Error::Cancelled));
    assert_eq!(
        *stubborn_saw.lock().await,
        Some(cancelled_at),
        "token first"
    );
    assert_eq!(*polite_saw.lock().await, Some(cancelled_at), "token first");
    assert!(quick.completed());
    assert_eq!(quick.dropped_at(), Some(cancelled_at + QUICK));
    assert!(!stubborn.completed());
    assert_eq!(
        stubborn.dropped_at(),
        Some(cancelled_at + GRACE),
        "aborted at the grace expiry, not before and not after"
    );
    assert_eq!(Instant::now(), cancelled_at + GRACE);
}

#[tokio::test(start_paused = true)]
async fn g6_grace_applies_when_a_sibling_fails() {
    let start = Instant::now();
    let saw_cancel = Arc::new(Mutex::new(None));
    let child = Tracker::new();
    let child_future = child.track(polite(saw_cancel.clone(), QUICK, 3));
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(GRACE)
            .scope(|n: Nursery<String>| async move {
                drop(n.spawn(child_future));
                drop(n.spawn(async { Err::<(), _>("boom".to_owned()) }));
                forever::<()>().await
            }),
    )
    .await;
    assert_eq!(
        result,
        Err(Error::Failed {
            error: "boom".to_owned(),
            suppressed: vec![],
            omitted: 0
        })
    );
    assert_eq!(*saw_cancel.lock().await, Some(start));
    assert!(
        child.completed(),
        "the sibling finished by itself within grace"
    );
    assert_eq!(Instant::now(), start + QUICK);
}

#[tokio::test(start_paused = true)]
async fn g6_default_grace_aborts_at_once() {
    let shutdown = CancellationToken::new();
    let ready = Arc::new(Barrier::new(2));
    let finished = Arc::new(AtomicBool::new(false));
    let tracker = Tracker::new();
    let child = {
        let ready = ready.clone();
        let finished = finished.clone();
        tracker.track(async move {
            ready.wait().await;
            nursery::cancelled().await;
            // Would stop almost at once: with no grace it must not get to.
            sleep(Duration::from_millis(1)).await;
            finished.store(true, Ordering::SeqCst);
            Ok::<_, String>(())
        })
    };
    let scope =
        Nursery::builder()
            .cancel_on(shutdown.clone())
            .scope(|n: Nursery<String>| async move {
                drop(n.spawn(child));
                forever::<()>().await
            });
    let mut cancelled_at = None;
    let trigger = async {
        ready.wait().await;
        cancelled_at = Some(Instant::now());
        shutdown.cancel();
    };
    let (result, ()) = within("the scope", async { tokio::join!(scope, trigger) }).await;
    let cancelled_at = cancelled_at.unwrap();

    assert_eq!(result, Err(Error::Cancelled));
    assert!(!finished.load(Ordering::SeqCst));
    assert!(!tracker.completed());
    assert_eq!(
        tracker.dropped_at(),
        Some(cancelled_at),
        "aborted at the cancel"
    );
    assert_eq!(Instant::now(), cancelled_at);
}

/// With zero grace (the default), a cancel caused by a child's error aborts
/// the other children before the token fires: on the multi-thread runtime,
/// where another worker could poll a child the moment the token fires, no
/// child ever sees `nursery::cancelled()` return. (The drop path is checked
/// in `g7_drop.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g6_zero_grace_failure_aborts_siblings_before_they_see_the_token_multi_thread() {
    const CHILDREN: usize = 64;
    const ROUNDS: usize = 500;
    for round in 0..ROUNDS {
        let parked = DropCounter::new();
        let saw_token = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (parked_out, saw) = (parked.clone(), saw_token.clone());
        let result = within(
            "a scope whose child failed",
            nursery::scope(|n: Nursery<String>| async move {
                for _ in 0..CHILDREN {
                    let (parked, saw) = (parked_out.guard(), saw.clone());
                    drop(n.spawn(async move {
                        parked_in(nursery::cancelled(), parked).await;
                        saw.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    }));
                }
                // Every child is waiting on the token; then one fails.
                parked_out.wait_for(CHILDREN).await;
                drop(n.spawn(async { Err::<(), _>("boom".to_owned()) }));
                forever::<()>().await
            }),
        )
        .await;
        assert_eq!(
            result,
            Err(Error::Failed {
                error: "boom".to_owned(),
                suppressed: vec![],
                omitted: 0
            }),
            "round {round}"
        );
        assert_eq!(
            saw_token.load(Ordering::SeqCst),
            0,
            "round {round}: a child saw the token of a zero-grace cancel"
        );
    }
}

// ===== the multi-thread runtime, in real time =====

/// On cancel the token fires first; a child that stops within the grace
/// period completes normally, and one that ignores the token is aborted
/// once the grace period has passed, before the scope returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g6_token_first_then_abort_after_the_grace_multi_thread() {
    const GRACE_MT: Duration = Duration::from_millis(100);
    let shutdown = CancellationToken::new();
    let ready = Arc::new(Barrier::new(3));
    let (polite_tx, polite_value) = oneshot::channel();
    let (stubborn_saw_tx, stubborn_saw) = oneshot::channel();
    let polite = Tracker::new();
    let stubborn = Tracker::new();
    let polite_child = {
        let ready = ready.clone();
        polite.track(async move {
            ready.wait().await;
            nursery::cancelled().await;
            polite_tx.send(7).unwrap();
            Ok::<_, String>(7)
        })
    };
    let stubborn_child = {
        let ready = ready.clone();
        stubborn.track(async move {
            ready.wait().await;
            nursery::cancelled().await;
            stubborn_saw_tx.send(std::time::Instant::now()).unwrap();
            forever::<u32>().await
        })
    };
    let scope = Nursery::builder()
        .grace(GRACE_MT)
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<String>| async move {
            drop(n.spawn(polite_child));
            drop(n.spawn(stubborn_child));
            forever::<()>().await
        });
    let trigger = async {
        ready.wait().await;
        let cancelled_at = std::time::Instant::now();
        shutdown.cancel();
        cancelled_at
    };
    let (result, cancelled_at) = within("a scope cancelled with a grace period", async {
        tokio::join!(scope, trigger)
    })
    .await;
    let returned = std::time::Instant::now();

    assert_eq!(result, Err(Error::Cancelled));
    assert_eq!(polite_value.await, Ok(7), "the polite child saw the token");
    assert!(polite.completed(), "and completed, not aborted");
    let saw = stubborn_saw
        .await
        .expect("the stubborn child saw the token");
    assert!(saw < returned, "the token fired before the abort");
    assert!(stubborn.was_dropped() && !stubborn.completed());
    assert!(
        returned - cancelled_at >= GRACE_MT,
        "aborted only once the grace period had passed: {:?}",
        returned - cancelled_at
    );
}

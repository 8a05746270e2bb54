//! G8 limits: at most `limit` children run at once; `spawn` beyond it
//! queues in FIFO order without creating tokio tasks; `try_spawn` hands the
//! future back instead.
//!
//! The other limits share this binary: `weighted` (children that take a
//! weight of the limit) and `rate` (starts per period).

mod rate;
mod weighted;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nursery::Nursery;
use nursery_tests::{HighWater, Latch, Tracker, within, yield_rounds};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A safety net for blocking waits: a broken test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g8_at_most_limit_children_run_at_once() {
    const LIMIT: usize = 3;
    const CHILDREN: usize = 60;
    let gauge = HighWater::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let result = within(
        "the scope",
        Nursery::builder().limit(LIMIT).scope(|n: Nursery<String>| {
            let gauge = gauge.clone();
            let ran = ran.clone();
            async move {
                let go = Arc::new(Semaphore::new(0));
                for _ in 0..CHILDREN {
                    let (gauge, ran, go) = (gauge.clone(), ran.clone(), go.clone());
                    drop(n.spawn(async move {
                        let _running = gauge.enter();
                        ran.fetch_add(1, Ordering::SeqCst);
                        // Stay until the body lets one child go.
                        go.acquire().await.unwrap().forget();
                        Ok(())
                    }));
                }
                // One child goes each time the limit is full: the limit is
                // used, and without it every spawned child would have had
                // every chance to overlap meanwhile.
                for released in 0..CHILDREN {
                    gauge.wait_for_current(LIMIT.min(CHILDREN - released)).await;
                    go.add_permits(1);
                }
                Ok(())
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(ran.load(Ordering::SeqCst), CHILDREN);
    assert_eq!(
        gauge.peak(),
        LIMIT,
        "never more than the limit, and the limit is used"
    );
    assert_eq!(gauge.current(), 0);
}

#[tokio::test]
async fn g8_queued_children_start_in_fifo_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let result = within(
        "the scope",
        Nursery::builder().limit(1).scope(|n: Nursery<String>| {
            let order = order.clone();
            async move {
                for i in 0..20 {
                    let order = order.clone();
                    drop(n.spawn(async move {
                        order.lock().unwrap().push(i);
                        // Give the others every chance to jump the queue.
                        yield_rounds(3).await;
                        Ok(())
                    }));
                }
                Ok(())
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g8_queued_children_start_in_fifo_order_on_the_multi_thread_runtime() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let result = within(
        "the scope",
        Nursery::builder().limit(1).scope(|n: Nursery<String>| {
            let order = order.clone();
            async move {
                for i in 0..50 {
                    let order = order.clone();
                    drop(n.spawn(async move {
                        order.lock().unwrap().push(i);
                        tokio::task::yield_now().await;
                        Ok(())
                    }));
                }
                Ok(())
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(*order.lock().unwrap(), (0..50).collect::<Vec<_>>());
}

#[test]
fn g8_queued_children_are_not_tokio_tasks() {
    const LIMIT: usize = 2;
    const CHILDREN: usize = 50;
    // A dedicated runtime: its task count is this test's alone.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let release = CancellationToken::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let most_tasks = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Semaphore::new(0));

    let (result, snapshot) = runtime.block_on(async {
        let mut snapshot = None;
        let (release, ran, most_tasks, started, snapshot_slot) =
            (&release, &ran, &most_tasks, &started, &mut snapshot);
        let result = within(
            "the scope",
            Nursery::builder()
                .limit(LIMIT)
                .scope(|n: Nursery<String>| async move {
                    for _ in 0..CHILDREN {
                        let release = release.clone();
                        let ran = ran.clone();
                        let most_tasks = most_tasks.clone();
                        let started = started.clone();
                        drop(n.spawn(async move {
                            let alive = Handle::current().metrics().num_alive_tasks();
                            most_tasks.fetch_max(alive, Ordering::SeqCst);
                            ran.fetch_add(1, Ordering::SeqCst);
                            started.add_permits(1);
                            release.cancelled().await;
                            Ok(())
                        }));
                    }
                    // The first LIMIT have started; then every ready task runs
                    // (a current-thread runtime), and no other child may start.
                    let limit = u32::try_from(LIMIT).unwrap();
                    started.acquire_many(limit).await.unwrap().forget();
                    yield_rounds(10).await;
                    *snapshot_slot = Some((
                        n.live(),
                        Handle::current().metrics().num_alive_tasks(),
                        ran.load(Ordering::SeqCst),
                    ));
                    release.cancel();
                    Ok(())
                }),
        )
        .await;
        (result, snapshot)
    });

    assert_eq!(result, Ok(()));
    assert_eq!(
        snapshot,
        Some((CHILDREN, LIMIT, LIMIT)),
        "(live, tokio tasks, started) while all but {LIMIT} children are queued"
    );
    assert_eq!(ran.load(Ordering::SeqCst), CHILDREN);
    assert!(
        most_tasks.load(Ordering::SeqCst) <= LIMIT,
        "a child saw {} tokio tasks alive",
        most_tasks.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn g8_try_spawn_at_the_limit_hands_the_future_back() {
    let release = CancellationToken::new();
    let refused = Tracker::new();
    let refused_future = refused.track(async { Ok::<_, String>(41 + 1) });
    let result = within(
        "the scope",
        Nursery::builder().limit(1).scope(|n: Nursery<String>| {
            let release = release.clone();
            let refused = refused.clone();
            async move {
                let running = n
                    .try_spawn({
                        let release = release.clone();
                        async move {
                            release.cancelled().await;
                            Ok(1)
                        }
                    })
                    .map_err(|e| e.to_string())?;
                let error = match n.try_spawn(refused_future) {
                    Ok(_) => return Err("try_spawn at the limit started the child".to_owned()),
                    Err(error) => error,
                };
                assert!(error.is_full());
                assert!(!error.is_cancelled() && !error.is_closed());
                assert!(error.to_string().contains("limit"), "{error}");
                assert_eq!(n.live(), 1, "the refused child is not counted");
                let future = error.into_future();
                assert!(!refused.was_polled(), "handed back unpolled");
                assert!(!refused.was_dropped());

                release.cancel();
                let first = running.await.map_err(|e| e.to_string())?;
                // The handed-back future still runs: here, in the body.
                let second = future.await?;
                Ok((first, second))
            }
        }),
    )
    .await;
    assert_eq!(result, Ok((1, 42)));
    assert!(refused.completed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g8_a_childs_slot_is_free_once_its_handle_has_resolved() {
    // The child runs on a worker; its runner gives the slot back before
    // the handle hears, so the next `try_spawn` is never refused for room.
    // (With the output delivered first, the handle raced the release, and
    // a refusal came within the first few rounds.)
    const ROUNDS: usize = 500;
    let result = within(
        "the scope",
        Nursery::builder()
            .limit(1)
            .scope(|n: Nursery<String>| async move {
                for round in 0..ROUNDS {
                    let handle = n
                    .try_spawn(async move { Ok(round) })
                    .unwrap_or_else(|refused| {
                        panic!(
                            "round {round}: refused ({refused:?}) after the last handle resolved"
                        )
                    });
                    assert_eq!(handle.await.unwrap(), round);
                }
                Ok(())
            }),
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn g8_a_future_handed_back_by_try_spawn_can_be_spawned_later() {
    let release = CancellationToken::new();
    let result = within(
        "the scope",
        Nursery::builder()
            .limit(1)
            .scope(|n: Nursery<String>| async move {
                let _running = n.spawn({
                    let release = release.clone();
                    async move {
                        release.cancelled().await;
                        Ok(())
                    }
                });
                let refused = n
                    .try_spawn(async { Ok(nursery::check().is_ok()) })
                    .unwrap_err();
                // Queued behind the running child this time.
                let handle = n.spawn(refused.into_future());
                assert_eq!(n.live(), 2);
                release.cancel();
                handle.await.map_err(|e| e.to_string())
            }),
    )
    .await;
    assert_eq!(result, Ok(true));
}

/// Current-thread runtime: once every ready task has run, a queued child
/// that had been started would have been polled.
#[tokio::test]
async fn g8_spawn_blocking_counts_against_the_limit() {
    // A blocking child holds the only slot.
    let latch = Latch::new();
    let queued = Tracker::new();
    let queued_future = queued.track(async { Ok::<_, String>(()) });
    let result = within(
        "the scope",
        Nursery::builder().limit(1).scope(|n: Nursery<String>| {
            let latch = latch.clone();
            let queued = queued.clone();
            async move {
                let blocking_latch = latch.clone();
                let blocking = n.spawn_blocking(move |_| {
                    assert!(blocking_latch.wait(PATIENCE), "never released");
                    Ok(())
                });
                let refused = n.try_spawn(async { Ok(()) }).unwrap_err();
                assert!(refused.is_full(), "the blocking child takes the slot");
                let handle = n.spawn(queued_future);
                assert_eq!(n.live(), 2);
                assert_eq!((n.stats().running, n.stats().queued), (1, 1));
                yield_rounds(10).await;
                assert!(!queued.was_polled(), "started while the slot was taken");
                latch.open();
                blocking.await.map_err(|e| e.to_string())?;
                handle.await.map_err(|e| e.to_string())?;
                Ok(queued.completed())
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g8_spawn_blocking_waits_for_a_slot_like_any_child() {
    // An async child holds the only slot; a blocking child waits its turn.
    let first_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let result = within(
        "the scope",
        Nursery::builder().limit(1).scope(|n: Nursery<String>| {
            let first_done = first_done.clone();
            async move {
                let release = CancellationToken::new();
                let first = n.spawn({
                    let release = release.clone();
                    let first_done = first_done.clone();
                    async move {
                        release.cancelled().await;
                        first_done.store(true, Ordering::SeqCst);
                        Ok(())
                    }
                });
                let blocking = n.spawn_blocking(move |_| Ok(first_done.load(Ordering::SeqCst)));
                assert_eq!(n.live(), 2);
                assert_eq!(
                    (n.stats().running, n.stats().queued),
                    (1, 1),
                    "the blocking child is queued, not started"
                );
                release.cancel();
                first.await.map_err(|e| e.to_string())?;
                blocking.await.map_err(|e| e.to_string())
            }
        }),
    )
    .await;
    assert_eq!(
        result,
        Ok(true),
        "the blocking child ran only after the first"
    );
}

#[tokio::test]
async fn g8_live_counts_running_and_queued_children() {
    let result = within(
        "the scope",
        Nursery::builder()
            .limit(2)
            .scope(|n: Nursery<String>| async move {
                assert_eq!(n.live(), 0);
                let releases: Vec<_> = (0..5).map(|_| CancellationToken::new()).collect();
                let trackers: Vec<_> = (0..5).map(|_| Tracker::new()).collect();
                let started = Arc::new(Semaphore::new(0));
                let mut handles = Vec::new();
                for (release, tracker) in releases.iter().zip(&trackers) {
                    let (release, started) = (release.clone(), started.clone());
                    handles.push(n.spawn(tracker.track(async move {
                        started.add_permits(1);
                        release.cancelled().await;
                        Ok(())
                    })));
                }
                // The two with a slot have started; then every ready task runs
                // (a current-thread runtime), and no other child may start.
                started.acquire_many(2).await.unwrap().forget();
                yield_rounds(10).await;
                let mut seen = vec![(n.live(), trackers.iter().filter(|t| t.was_polled()).count())];
                for (release, handle) in releases.iter().zip(handles) {
                    release.cancel();
                    handle.await.map_err(|e| e.to_string())?;
                    seen.push((n.live(), trackers.iter().filter(|t| t.was_polled()).count()));
                }
                Ok((seen, n))
            }),
    )
    .await;
    let (seen, smuggled) = result.unwrap();
    assert_eq!(
        seen,
        [(5, 2), (4, 3), (3, 4), (2, 5), (1, 5), (0, 5)],
        "(live, started): live counts the running and the queued"
    );
    assert_eq!(smuggled.live(), 0, "after the scope returned");
}

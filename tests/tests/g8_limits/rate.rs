//! `Builder::rate`: at most n child starts in any window of the period,
//! with exact start times under a paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nursery::Nursery;
use nursery_tests::within;
use tokio::time::Instant;

type E = &'static str;

/// Spawns `children` children that record when they start (in ms since
/// `opened`) and sleep `busy` each; returns the start times in spawn order.
async fn start_times(builder: nursery::Builder, children: usize, busy: Duration) -> Vec<u128> {
    let opened = Instant::now();
    let starts = Arc::new(Mutex::new(vec![None; children]));
    let seen = starts.clone();
    within(
        "the scope",
        builder.scope(|n: Nursery<E>| async move {
            for i in 0..children {
                let seen = seen.clone();
                n.spawn(async move {
                    seen.lock().unwrap()[i] = Some(opened.elapsed().as_millis());
                    tokio::time::sleep(busy).await;
                    Ok(())
                });
            }
            Ok(())
        }),
    )
    .await
    .unwrap();
    let starts = starts.lock().unwrap();
    starts
        .iter()
        .map(|start| start.expect("every child started"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn rate_starts_at_most_n_per_period_at_exact_times() {
    let builder = Nursery::builder().rate(3, Duration::from_millis(100));
    let starts = start_times(builder, 7, Duration::ZERO).await;
    assert_eq!(starts, [0, 0, 0, 100, 100, 100, 200]);
}

#[tokio::test(start_paused = true)]
async fn rate_counts_starts_in_a_sliding_window() {
    // Children that run 40 ms each under rate 2 per 100 ms: the window
    // slides from each start, not from fixed ticks.
    let builder = Nursery::builder().rate(2, Duration::from_millis(100));
    let starts = start_times(builder, 5, Duration::from_millis(40)).await;
    assert_eq!(starts, [0, 0, 100, 100, 200]);
}

#[tokio::test(start_paused = true)]
async fn rate_and_limit_both_hold_children_back() {
    // One at a time, each busy 250 ms, and at most 2 starts per second: the
    // second starts when the first ends; the third waits for the window.
    let builder = Nursery::builder().limit(1).rate(2, Duration::from_secs(1));
    let starts = start_times(builder, 4, Duration::from_millis(250)).await;
    assert_eq!(starts, [0, 250, 1000, 1250]);
}

#[tokio::test(start_paused = true)]
async fn try_spawn_is_refused_while_the_rate_holds_children_back() {
    within(
        "the scope",
        Nursery::builder()
            .rate(1, Duration::from_secs(1))
            .scope(|n: Nursery<E>| async move {
                let first = n
                    .try_spawn(async { Ok(1) })
                    .expect("the first start is free");
                let refused = n.try_spawn(async { Ok(2) }).unwrap_err();
                assert!(refused.is_full(), "{refused}");
                assert_eq!(first.await.unwrap(), 1);
                tokio::time::sleep(Duration::from_secs(1)).await;
                let later = n
                    .try_spawn(refused.into_future())
                    .expect("the window has moved on");
                assert_eq!(later.await.unwrap(), 2);
                Ok(())
            }),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn children_held_back_by_the_rate_never_start_after_a_cancel() {
    let started = Arc::new(Mutex::new(0));
    let seen = started.clone();
    let opened = Instant::now();
    within(
        "the scope",
        Nursery::builder()
            .rate(2, Duration::from_secs(1))
            .scope(|n: Nursery<E>| async move {
                for _ in 0..5 {
                    let seen = seen.clone();
                    n.spawn(async move {
                        *seen.lock().unwrap() += 1;
                        Ok(())
                    });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                n.cancel();
                Ok(())
            }),
    )
    .await
    .unwrap();
    assert_eq!(
        *started.lock().unwrap(),
        2,
        "only the first window's starts"
    );
    // The scope did not wait for the rate's next window.
    assert_eq!(opened.elapsed(), Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn the_timeout_cancels_children_held_back_by_the_rate() {
    let opened = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .rate(1, Duration::from_secs(10))
            .timeout(Duration::from_secs(3))
            .scope(|n: Nursery<E>| async move {
                let first = n.spawn(async { Ok(()) });
                let second = n.spawn(async { Ok(()) });
                first.await.unwrap();
                let _ = second.await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(nursery::Error::TimedOut));
    assert_eq!(opened.elapsed(), Duration::from_secs(3));
}

#[test]
#[should_panic(expected = "Builder::rate(0, ..)")]
fn a_rate_of_zero_starts_is_rejected_at_the_builder() {
    let _ = Nursery::builder().rate(0, Duration::from_secs(1));
}

#[test]
#[should_panic(expected = "Builder::rate(.., Duration::ZERO)")]
fn a_rate_with_a_zero_period_is_rejected_at_the_builder() {
    let _ = Nursery::builder().rate(1, Duration::ZERO);
}

//! `Nursery::set_deadline`: a deadline moved while the scope runs, earlier,
//! later or lifted, with inner scopes that inherit it or have their own.
//! The clock is paused, so every time asserted is exact.

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nursery::{Error, Nursery};
use nursery_tests::within;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep};

type E = &'static str;

const SECOND: Duration = Duration::from_secs(1);

fn secs(since: Instant) -> u64 {
    since.elapsed().as_secs()
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_earlier_times_the_scope_out_then() {
    let started = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(10 * SECOND)
            .scope(|n: Nursery<E>| async move {
                n.spawn(pending::<Result<(), E>>());
                n.set_deadline(Some(Instant::now() + 2 * SECOND));
                assert_eq!(n.deadline(), Some(started + 2 * SECOND));
                pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(secs(started), 2);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_into_the_past_times_the_scope_out_at_once() {
    let started = Instant::now();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            sleep(SECOND).await;
            n.set_deadline(Some(started));
            pending::<()>().await;
            Ok(())
        }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(secs(started), 1);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_later_lets_the_scope_run_past_the_old_one() {
    let started = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(2 * SECOND)
            .scope(|n: Nursery<E>| async move {
                n.set_deadline(Some(Instant::now() + 5 * SECOND));
                sleep(3 * SECOND).await;
                assert_eq!(nursery::check(), Ok(()));
                pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(secs(started), 5, "timed out at the new deadline");
}

#[tokio::test(start_paused = true)]
async fn a_lifted_deadline_no_longer_times_the_scope_out() {
    let started = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(2 * SECOND)
            .scope(|n: Nursery<E>| async move {
                n.set_deadline(None);
                assert_eq!(n.deadline(), None);
                sleep(60 * SECOND).await;
                Ok("ran past the old deadline")
            }),
    )
    .await;
    assert_eq!(result, Ok("ran past the old deadline"));
    assert_eq!(secs(started), 60);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_from_a_child_or_another_task_takes_effect() {
    let started = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(10 * SECOND)
            .scope(|n: Nursery<E>| async move {
                let handle = n.clone();
                // A child moves its scope's deadline: the scope's timer follows.
                n.spawn(async move {
                    sleep(SECOND).await;
                    handle.set_deadline(Some(Instant::now() + SECOND));
                    Ok(())
                });
                pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(secs(started), 2);
}

#[tokio::test(start_paused = true)]
async fn inner_scopes_that_inherited_the_deadline_follow_it() {
    let started = Instant::now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let opened = Arc::new(Notify::new());
    let (seen_inner, opened_inner) = (seen.clone(), opened.clone());
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(10 * SECOND)
            .scope(|n: Nursery<E>| async move {
                n.spawn(async move {
                    nursery::scope(|inner: Nursery<E>| async move {
                        seen_inner.lock().unwrap().push(inner.deadline());
                        opened_inner.notify_one();
                        // Reports the moved deadline, in the inner scope's child too.
                        let child_seen = seen_inner.clone();
                        inner.spawn(async move {
                            sleep(SECOND).await;
                            child_seen.lock().unwrap().push(nursery::deadline());
                            Ok(())
                        });
                        pending::<()>().await;
                        Ok(())
                    })
                    .await
                    .map_err(|_| "inner")
                });
                opened.notified().await;
                n.set_deadline(Some(Instant::now() + 3 * SECOND));
                pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(
        secs(started),
        3,
        "the inner scope was cancelled at the new deadline"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [Some(started + 10 * SECOND), Some(started + 3 * SECOND)]
    );
}

#[tokio::test(start_paused = true)]
async fn an_inner_scope_with_an_earlier_deadline_of_its_own_keeps_it() {
    let started = Instant::now();
    let inner_result = Arc::new(Mutex::new(None));
    let inner_seen = inner_result.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(10 * SECOND)
            .scope(|n: Nursery<E>| async move {
                n.spawn(async move {
                    let result = Nursery::builder()
                        .timeout(4 * SECOND)
                        .scope(|_inner: Nursery<E>| async move {
                            pending::<()>().await;
                            Ok(())
                        })
                        .await;
                    *inner_seen.lock().unwrap() = Some((result, secs(started)));
                    Ok(())
                });
                sleep(SECOND).await;
                n.set_deadline(Some(Instant::now() + 20 * SECOND));
                sleep(10 * SECOND).await;
                Ok("outer ran on")
            }),
    )
    .await;
    assert_eq!(result, Ok("outer ran on"));
    assert_eq!(
        *inner_result.lock().unwrap(),
        Some((Err(Error::TimedOut), 4))
    );
}

#[tokio::test(start_paused = true)]
async fn an_inner_deadline_hidden_by_the_outer_one_fires_once_the_outer_is_lifted() {
    // The inner scope's own deadline (6 s) comes after the outer one (2 s),
    // so at first the outer's timer is the one that counts; lifted, the
    // inner scope must time its own.
    let started = Instant::now();
    let inner_result = Arc::new(Mutex::new(None));
    let inner_seen = inner_result.clone();
    let opened = Arc::new(Notify::new());
    let opened_inner = opened.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(2 * SECOND)
            .scope(|n: Nursery<E>| async move {
                n.spawn(async move {
                    let result = Nursery::builder()
                        .timeout(6 * SECOND)
                        .scope(|inner: Nursery<E>| async move {
                            assert_eq!(inner.deadline(), Some(started + 2 * SECOND));
                            opened_inner.notify_one();
                            pending::<()>().await;
                            Ok(())
                        })
                        .await;
                    *inner_seen.lock().unwrap() = Some((result, secs(started)));
                    Ok(())
                });
                opened.notified().await;
                n.set_deadline(None);
                sleep(10 * SECOND).await;
                Ok("outer ran on")
            }),
    )
    .await;
    assert_eq!(result, Ok("outer ran on"));
    assert_eq!(
        *inner_result.lock().unwrap(),
        Some((Err(Error::TimedOut), 6))
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_at_the_far_end_of_the_clock_is_kept_not_overflowed() {
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            n.set_deadline(Some(far));
            sleep(SECOND).await;
            Ok(n.deadline())
        }),
    )
    .await;
    assert_eq!(result, Ok(Some(far)));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_after_the_scope_timed_out_changes_nothing() {
    let kept = Arc::new(Mutex::new(None));
    let keep = kept.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(SECOND)
            .scope(|n: Nursery<E>| async move {
                *keep.lock().unwrap() = Some(n.clone());
                pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    let n = kept.lock().unwrap().take().unwrap();
    n.set_deadline(None);
    assert!(n.is_cancelled(), "a timed-out scope stays timed out");
}

//! Completion policies: `quorum` (the first `k` of `n` successes) and
//! `hedge` (a backup attempt when the first is slow), with the paused
//! clock so every time asserted is exact.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use nursery::{Error, Nursery};
use nursery_tests::{Tracker, catch_panic_site, panic_message, within};
use tokio::time::{Instant, sleep};

type E = &'static str;

/// A call that answers `value` after `ms` milliseconds.
async fn after<T>(ms: u64, value: Result<T, E>) -> Result<T, E> {
    sleep(Duration::from_millis(ms)).await;
    value
}

fn millis(since: Instant) -> u128 {
    since.elapsed().as_millis()
}

// ===== quorum =====

#[tokio::test(start_paused = true)]
async fn quorum_returns_the_first_k_successes_in_completion_order_and_cancels_the_rest() {
    let slow = Tracker::new();
    let started = Instant::now();
    let calls = vec![
        Box::pin(after(30, Ok("a"))) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>,
        Box::pin(after(10, Ok("b"))),
        Box::pin(slow.track(after(500, Ok("c")))),
    ];
    let answers = within("the quorum", nursery::quorum(2, calls)).await;
    assert_eq!(answers, Ok(vec!["b", "a"]));
    assert_eq!(millis(started), 30, "returned as soon as two had succeeded");
    assert!(
        slow.was_dropped() && !slow.completed(),
        "the third was cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn quorum_succeeds_despite_failures_while_k_stays_reachable() {
    let calls = [after(5, Err("down")), after(10, Ok(1)), after(20, Ok(2))];
    assert_eq!(
        within("the quorum", nursery::quorum(2, calls)).await,
        Ok(vec![1, 2])
    );
}

#[tokio::test(start_paused = true)]
async fn quorum_fails_as_soon_as_k_is_unreachable_with_the_errors_in_order() {
    let slow = Tracker::new();
    let started = Instant::now();
    let calls = vec![
        Box::pin(after(20, Err("second"))) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>,
        Box::pin(after(10, Err("first"))),
        Box::pin(slow.track(after(500, Ok(3)))),
        Box::pin(after(40, Ok(4))),
    ];
    // Three of four needed: two failures make it unreachable.
    let result = within("the quorum", nursery::quorum(3, calls)).await;
    match result {
        Err(Error::Failed {
            error, suppressed, ..
        }) => {
            assert_eq!(error, "first");
            assert_eq!(suppressed, ["second"]);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(
        millis(started),
        20,
        "failed at the second failure, not at the end"
    );
    assert!(slow.was_dropped() && !slow.completed());
}

#[tokio::test]
async fn a_quorum_of_zero_returns_an_empty_vec_at_once_and_runs_nothing() {
    let call = Tracker::new();
    let values = within(
        "the quorum",
        nursery::quorum(0, [call.track(after(5, Ok(1)))]),
    )
    .await;
    assert_eq!(values, Ok(Vec::new()));
    assert!(!call.was_polled() && call.was_dropped());
}

#[test]
fn a_quorum_above_the_number_of_futures_panics_at_the_call() {
    let site = catch_panic_site(|| drop(nursery::quorum(3, [after(1, Ok(1)), after(1, Ok(2))])))
        .unwrap_err();
    assert_eq!(
        site.message,
        "nursery::quorum(3, ..) over 2 futures: a quorum of 3 could never be reached"
    );
    assert!(site.location.starts_with(file!()), "{}", site.location);
}

#[tokio::test(start_paused = true)]
async fn a_quorum_runs_under_its_enclosing_scopes_deadline() {
    let started = Instant::now();
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .timeout(Duration::from_millis(50))
            .scope(|_n: Nursery<E>| async move {
                let values = nursery::quorum(2, [after(10, Ok(1)), after(1_000, Ok(2))]).await;
                assert_eq!(values, Err(Error::TimedOut));
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(millis(started), 50);
}

#[tokio::test]
async fn a_panic_in_a_quorums_call_is_re_raised() {
    let call = async {
        panic!("quorum call");
        #[allow(unreachable_code)]
        Ok::<u8, E>(1)
    };
    let calls = vec![
        Box::pin(call) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>,
        Box::pin(after(1, Ok(2u8))),
    ];
    let caught = within(
        "the quorum",
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(nursery::quorum(
            2, calls,
        ))),
    )
    .await
    .unwrap_err();
    assert_eq!(panic_message(&*caught), "quorum call");
}

// ===== hedge =====

#[tokio::test(start_paused = true)]
async fn hedge_starts_a_backup_when_the_first_attempt_is_slow_and_cancels_the_loser() {
    let first = Tracker::new();
    let tracked = first.clone();
    let started = Instant::now();
    let answer = within(
        "the hedge",
        nursery::hedge(Duration::from_millis(10), 3, move |attempt| {
            let call = after(if attempt == 0 { 1_000 } else { 5 }, Ok(attempt));
            let tracked = tracked.clone();
            async move {
                if attempt == 0 {
                    tracked.track(call).await
                } else {
                    call.await
                }
            }
        }),
    )
    .await;
    assert_eq!(answer, Ok(1));
    assert_eq!(
        millis(started),
        15,
        "the backup started at 10 ms and took 5"
    );
    assert!(
        first.was_dropped() && !first.completed(),
        "the slow attempt was cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn hedge_starts_no_backup_when_the_first_attempt_is_fast() {
    let made = AtomicUsize::new(0);
    let made = &made;
    let answer = within(
        "the hedge",
        nursery::hedge(Duration::from_millis(10), 3, |attempt| {
            made.fetch_add(1, SeqCst);
            after(2, Ok(attempt))
        }),
    )
    .await;
    assert_eq!(answer, Ok(0));
    assert_eq!(made.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn hedge_starts_the_next_attempt_at_once_when_one_fails() {
    let starts = Mutex::new(Vec::new());
    let starts = &starts;
    let started = Instant::now();
    let answer = within(
        "the hedge",
        nursery::hedge(Duration::from_millis(100), 3, |attempt| {
            starts.lock().unwrap().push((attempt, millis(started)));
            match attempt {
                0 => after(3, Err("refused")),
                _ => after(4, Ok(attempt)),
            }
        }),
    )
    .await;
    assert_eq!(answer, Ok(1));
    assert_eq!(
        *starts.lock().unwrap(),
        [(0, 0), (1, 3)],
        "no waiting for the delay after a failure"
    );
    assert_eq!(millis(started), 7);
}

#[tokio::test(start_paused = true)]
async fn hedge_returns_every_error_in_order_when_all_attempts_fail() {
    let result = within(
        "the hedge",
        nursery::hedge(Duration::from_millis(10), 3, |attempt| {
            // Attempt 0 fails last: the errors come in the order they failed.
            let errors = ["zero", "one", "two"];
            after([50, 20, 5][attempt], Err::<(), _>(errors[attempt]))
        }),
    )
    .await;
    match result {
        Err(Error::Failed {
            error, suppressed, ..
        }) => {
            assert_eq!(error, "two");
            assert_eq!(suppressed, ["one", "zero"]);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_with_a_zero_delay_starts_every_attempt_at_once() {
    let starts = Mutex::new(Vec::new());
    let starts = &starts;
    let started = Instant::now();
    let answer = within(
        "the hedge",
        nursery::hedge(Duration::ZERO, 3, |attempt| {
            starts.lock().unwrap().push(millis(started));
            after(10 - attempt as u64, Ok(attempt))
        }),
    )
    .await;
    assert_eq!(answer, Ok(2), "the fastest of the three wins");
    assert_eq!(*starts.lock().unwrap(), [0, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn a_hedge_with_the_longest_delay_only_retries_after_failures() {
    let starts = Mutex::new(Vec::new());
    let starts = &starts;
    let started = Instant::now();
    let answer = within(
        "the hedge",
        nursery::hedge(Duration::MAX, 3, |attempt| {
            starts.lock().unwrap().push(millis(started));
            match attempt {
                0 => after(1_000, Err("timeout")),
                _ => after(1, Ok(attempt)),
            }
        }),
    )
    .await;
    assert_eq!(answer, Ok(1));
    assert_eq!(*starts.lock().unwrap(), [0, 1_000]);
}

#[test]
fn a_hedge_of_zero_attempts_panics_at_the_call() {
    let site = catch_panic_site(|| {
        drop(nursery::hedge(Duration::from_millis(1), 0, |_| {
            after(1, Ok(()))
        }))
    })
    .unwrap_err();
    assert_eq!(
        site.message,
        "nursery::hedge(.., 0, ..): at least one attempt is needed"
    );
    assert!(site.location.starts_with(file!()), "{}", site.location);
}

#[nursery::nursery(timeout = "20ms")]
async fn hedged_within_a_deadline(n: Nursery<Error<E>>) -> Result<u8, Error<E>> {
    let _ = &n;
    nursery::hedge(Duration::from_millis(5), 2, |_| after(1_000, Ok(1))).await
}

#[tokio::test(start_paused = true)]
async fn a_hedge_in_a_nursery_function_is_cut_off_by_its_timeout() {
    let started = Instant::now();
    let result = within("the function", hedged_within_a_deadline()).await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(millis(started), 20);
}

#[nursery::nursery]
async fn quorum_in_a_nursery_function(n: Nursery<Error<E>>) -> Result<Vec<u8>, Error<E>> {
    // The quorum's calls are children of this function's scope: cancelling
    // it stops them.
    let stopper = n.clone();
    n.spawn(async move {
        sleep(Duration::from_millis(15)).await;
        stopper.cancel();
        Ok(())
    });
    nursery::quorum(2, [after(10, Ok(1)), after(1_000, Ok(2))]).await
}

#[tokio::test(start_paused = true)]
async fn a_quorum_in_a_nursery_function_is_cancelled_with_its_scope() {
    let started = Instant::now();
    let result = within("the function", quorum_in_a_nursery_function()).await;
    assert_eq!(result, Err(Error::Cancelled));
    assert_eq!(millis(started), 15);
}

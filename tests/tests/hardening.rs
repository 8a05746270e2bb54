//! Values at their extremes and drops at awkward moments: no setting a
//! user can pass, and no pattern of drops, ends in a panic, a hang, an
//! overflow or an error that is lost.
//!
//! Durations of `Duration::MAX` (and the longest a macro literal can
//! spell) for every time setting; a zero timeout and a deadline that
//! passes while the body holds the thread; panics that happen after their
//! scope was dropped; errors whose destructor panics; a cap on the
//! errors kept; scopes whose future is forgotten.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::Poll;
use std::time::Duration;

use nursery::testing::LeakCheck;
use nursery::{Error, Interrupted, Nursery, nursery};
use nursery_tests::{DropCounter, Latch, LeakLog, PanicOnDrop, panic_message, within};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Bounds the blocking waits and the leak waits here, as [`within`] bounds
/// the waits for what should end: a regression fails instead of hanging.
const BOUND: Duration = nursery_tests::BOUND;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ===== durations at their extremes =====

/// A scope with running children, dropped once they run: the drop starts
/// the leak watch with the scope's leak grace.
async fn drop_a_scope_with_running_children(builder: nursery::Builder, dropped: &DropCounter) {
    let (running_tx, running) = oneshot::channel();
    let guards = (dropped.guard(), dropped.guard());
    let scope = builder.scope(move |n: Nursery<()>| async move {
        let (first, second) = guards;
        n.spawn(async move {
            let _first = first;
            std::future::pending::<Result<(), ()>>().await
        });
        // An inner scope inherits the leak grace; dropped with its parent.
        Nursery::builder()
            .scope(move |inner: Nursery<()>| async move {
                inner.spawn(async move {
                    let _second = second;
                    let _ = running_tx.send(());
                    std::future::pending::<Result<(), ()>>().await
                });
                std::future::pending::<Result<(), ()>>().await
            })
            .await
            .map_err(|_| ())
    });
    tokio::select! {
        _ = scope => panic!("the scope cannot return"),
        _ = running => {} // dropped here, with both children running
    }
}

#[tokio::test]
async fn dropping_a_scope_with_the_longest_leak_grace_does_not_panic() {
    let dropped = DropCounter::new();
    let builder = Nursery::builder().leak_grace(Duration::MAX);
    drop_a_scope_with_running_children(builder, &dropped).await;
    // The children were aborted (G7), and nothing panicked on the way.
    within("the dropped scope's children", dropped.wait_for(2)).await;
}

#[tokio::test]
async fn dropping_a_scope_with_the_longest_macro_leak_grace_does_not_panic() {
    // The longest duration a literal can spell: u64::MAX seconds.
    #[nursery(leak_grace = "18446744073709551615s")]
    async fn crawl(n: Nursery<Interrupted>, dropped: DropCounter) -> Result<(), Interrupted> {
        let guard = dropped.guard();
        n.spawn(async move {
            let _guard = guard;
            std::future::pending::<Result<(), Interrupted>>().await
        });
        std::future::pending().await
    }

    let dropped = DropCounter::new();
    let crawl = crawl(dropped.clone());
    // Dropped after its first poll, with its child spawned.
    assert!(
        tokio::time::timeout(ms(1), crawl).await.is_err(),
        "the scope cannot return"
    );
    within("the dropped scope's child", dropped.wait_for(1)).await;
}

#[tokio::test(start_paused = true)]
async fn the_longest_timeout_and_grace_are_no_deadline_and_a_grace_that_waits() {
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::MAX)
            .grace(Duration::MAX)
            .scope(|n: Nursery<()>| async move {
                // Too far for any clock: no deadline.
                assert_eq!(n.deadline(), None);
                assert_eq!(nursery::check(), Ok(()));
                n.spawn(async {
                    // Stops by itself once cancelled, within the endless grace.
                    nursery::cancelled().await;
                    Ok(())
                });
                n.cancel();
                Ok(7)
            }),
    )
    .await;
    assert_eq!(result, Ok(7));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_far_in_the_future_is_kept_and_never_reached() {
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 60 * 60);
    let result = within(
        "the scope",
        Nursery::builder()
            .deadline(far)
            .scope(|n: Nursery<()>| async move {
                assert_eq!(n.deadline(), Some(far));
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, ()>(n.is_cancelled())
            }),
    )
    .await;
    assert_eq!(result, Ok(false));
}

/// A rate whose period is too long for the clock lets its first `starts`
/// children start and holds the rest back for good: the scope's own
/// deadline still ends it (the limiter's next start saturates rather than
/// wrapping round to the past, which would spin inside one poll).
async fn rate_with_period(starts: u32, per: Duration) {
    let started = Arc::new(AtomicUsize::new(0));
    let count = started.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .rate(starts, per)
            .timeout(Duration::from_secs(1))
            .scope(move |n: Nursery<()>| async move {
                // Past the scope's first instant, so that the first start's
                // time plus the period exceeds the clock's range.
                tokio::time::sleep(ms(1)).await;
                for _ in 0..3 {
                    let count = count.clone();
                    n.spawn(async move {
                        count.fetch_add(1, SeqCst);
                        Ok(())
                    });
                }
                std::future::pending::<Result<(), ()>>().await
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut), "rate({starts}, {per:?})");
    assert_eq!(started.load(SeqCst), 1, "rate({starts}, {per:?})");
}

#[tokio::test(start_paused = true)]
async fn a_rate_with_a_period_of_centuries_starts_once_then_waits_for_the_deadline() {
    rate_with_period(1, Duration::MAX).await;
    rate_with_period(1, Duration::from_nanos(u64::MAX)).await;
    rate_with_period(1, Duration::from_secs(u64::MAX / 2)).await;
    // 6,000,000 hours: about 685 years.
    rate_with_period(1, Duration::from_secs(6_000_000 * 3600)).await;
}

#[tokio::test(start_paused = true)]
async fn a_macro_rate_with_a_period_of_centuries_starts_once_then_waits_for_the_deadline() {
    #[nursery(rate = "1/6000000h", timeout = "1s")]
    async fn paced(n: Nursery<Interrupted>, started: Arc<AtomicUsize>) -> Result<(), Interrupted> {
        tokio::time::sleep(ms(1)).await;
        for _ in 0..3 {
            let started = started.clone();
            n.spawn(async move {
                started.fetch_add(1, SeqCst);
                Ok(())
            });
        }
        std::future::pending().await
    }

    let started = Arc::new(AtomicUsize::new(0));
    assert_eq!(
        within("the #[nursery] function", paced(started.clone())).await,
        Err(Interrupted::TimedOut)
    );
    assert_eq!(started.load(SeqCst), 1);
}

// ===== counts at their extremes =====

/// Three items from an iterator that does not know its length.
fn three_items() -> impl Iterator<Item = u32> + Send + 'static {
    let mut left = 3;
    std::iter::from_fn(move || {
        left -= 1;
        (left >= 0).then_some(left as u32)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_and_for_each_without_a_limit_start_a_worker_per_item() {
    let doubled = within(
        "map with usize::MAX",
        nursery::map(
            three_items(),
            usize::MAX,
            |i| async move { Ok::<_, ()>(i * 2) },
        ),
    )
    .await;
    assert_eq!(doubled, Ok(vec![4, 2, 0]));
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let done = within(
        "for_each with usize::MAX",
        nursery::for_each(three_items(), usize::MAX, move |_| {
            let count = count.clone();
            async move {
                count.fetch_add(1, SeqCst);
                Ok::<_, ()>(())
            }
        }),
    )
    .await;
    assert_eq!(done, Ok(()));
    assert_eq!(seen.load(SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_unordered_without_a_limit_starts_a_worker_per_item() {
    use futures_util::StreamExt;

    // A stream that does not know its length.
    let stream = futures_util::stream::iter(three_items()).filter(|_| std::future::ready(true));
    let mut results: Vec<u32> = within(
        "map_unordered with usize::MAX",
        nursery::map_unordered(stream, usize::MAX, |i| async move { Ok::<_, ()>(i + 1) })
            .map(|result| result.expect("no item fails"))
            .collect::<Vec<u32>>(),
    )
    .await;
    results.sort_unstable();
    assert_eq!(results, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_stages_without_a_limit_start_a_worker_per_item() {
    let out = within(
        "a pipeline with usize::MAX workers",
        nursery::Pipeline::from_iter(three_items())
            .stage(usize::MAX, |i| async move { Ok::<_, ()>(i * 10) })
            .filter_map(usize::MAX, |i| async move { Ok((i > 0).then_some(i)) })
            .ordered()
            .collect(),
    )
    .await;
    assert_eq!(out, Ok(vec![20, 10]));
}

#[tokio::test]
async fn the_largest_limit_and_weight_run_every_child() {
    let result = within(
        "the scope",
        Nursery::builder()
            .limit(usize::MAX)
            .scope(|n: Nursery<()>| async move {
                let heavy = n.spawn_weighted(usize::MAX, async { Ok(1) });
                let light = n.spawn(async { Ok(2) });
                Ok(heavy.await.map_err(|_| ())? + light.await.map_err(|_| ())?)
            }),
    )
    .await;
    assert_eq!(result, Ok(3));
}

// ===== a deadline that has passed =====

#[tokio::test]
async fn a_zero_timeout_times_out_even_when_the_body_would_return_at_once() {
    let polled = Arc::new(AtomicUsize::new(0));
    let seen = polled.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::ZERO)
            .scope(move |_: Nursery<()>| async move {
                seen.fetch_add(1, SeqCst);
                Ok(1)
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(
        polled.load(SeqCst),
        0,
        "the body never starts past its deadline"
    );
}

#[tokio::test]
async fn a_zero_macro_timeout_times_out() {
    #[nursery(timeout = "0s")]
    async fn quick(_n: Nursery<Interrupted>) -> Result<u32, Interrupted> {
        Ok(1)
    }
    assert_eq!(
        within("the #[nursery] function", quick()).await,
        Err(Interrupted::TimedOut)
    );
}

#[tokio::test]
async fn a_deadline_in_the_past_times_out() {
    let past = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .deadline(past)
            .scope(|_: Nursery<()>| async { Ok(1) }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
}

/// Holds the thread (no await point) until `deadline` has passed.
fn hold_the_thread_past(deadline: Instant) {
    while Instant::now() <= deadline {
        std::hint::spin_loop();
    }
}

#[tokio::test]
async fn a_body_that_holds_the_thread_past_its_deadline_times_out_and_check_says_so() {
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(ms(10))
            .scope(|n: Nursery<()>| async move {
                assert_eq!(nursery::check(), Ok(()));
                let deadline = n.deadline().expect("the scope has a deadline");
                // tokio's timer cannot fire while the body holds the thread.
                hold_the_thread_past(deadline + ms(40));
                // Past the deadline, whether or not the timer has fired.
                assert_eq!(nursery::check(), Err(Interrupted::TimedOut));
                assert!(n.is_cancelled());
                assert_eq!(nursery::cause(), Some(nursery::Cause::TimedOut));
                Ok(1)
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
}

#[tokio::test]
async fn an_inner_scope_past_its_inherited_deadline_times_out_before_the_timer_fires() {
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(ms(10))
            .scope(|n: Nursery<()>| async move {
                let deadline = n.deadline().expect("the scope has a deadline");
                let inner = Nursery::builder()
                    .scope(move |_: Nursery<()>| async move {
                        hold_the_thread_past(deadline);
                        assert_eq!(nursery::check(), Err(Interrupted::TimedOut));
                        Ok(())
                    })
                    .await;
                assert_eq!(inner, Err(Error::TimedOut));
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
}

/// Polls `future` once, from inside a task.
async fn ready_at_once<F: Future>(future: F) -> bool {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_ready())).await
}

#[tokio::test]
async fn cancelled_resolves_at_once_past_the_deadline() {
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(ms(10))
            .scope(|n: Nursery<()>| async move {
                let deadline = n.deadline().expect("the scope has a deadline");
                hold_the_thread_past(deadline);
                // The timer has not fired (this body holds the only thread):
                // the deadline alone decides.
                assert!(ready_at_once(nursery::cancelled()).await);
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
}

// ===== panics after the drop =====

/// A root scope dropped while its blocking child runs; the child panics
/// once the drop is done. Returns the child's spawn line.
async fn drop_a_root_whose_child_panics_later(name: &'static str) -> u32 {
    let (running_tx, running) = oneshot::channel();
    let dropped = Latch::new();
    let latch = dropped.clone();
    let (line_tx, line) = std::sync::mpsc::channel();
    let scope = Nursery::builder()
        .name(name)
        .scope(move |n: Nursery<()>| async move {
            let _ = line_tx.send(line!() + 1);
            n.spawn_blocking_named(name, move |_token| -> Result<(), ()> {
                let _ = running_tx.send(());
                assert!(latch.wait(BOUND), "the scope was never dropped");
                panic!("{name}: panicked after the drop");
            });
            std::future::pending::<Result<(), ()>>().await
        });
    tokio::select! {
        _ = scope => panic!("the scope cannot return"),
        _ = running => {} // the root is dropped here
    }
    dropped.open();
    line.recv().expect("the body ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_under_a_dropped_root_reaches_the_leak_hook_with_its_spawn_site() {
    const NAME: &str = "lost-panic-hook";
    let log = LeakLog::get();
    let line = drop_a_root_whose_child_panics_later(NAME).await;
    let found = log
        .wait_for(1, BOUND, |leak| leak.task().name() == Some(NAME))
        .await;
    assert_eq!(found.len(), 1, "the lost panic was reported once");
    let leak = &found[0];
    assert_eq!(
        leak.panic(),
        Some("lost-panic-hook: panicked after the drop")
    );
    assert_eq!(leak.task().location().file(), file!());
    assert_eq!(leak.task().location().line(), line);
    assert_eq!(leak.runtime(), tokio::runtime::Handle::current().id());
    let text = leak.to_string();
    assert!(text.contains("panicked"), "{text}");
    assert!(
        text.contains("lost-panic-hook: panicked after the drop"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_under_a_dropped_root_fails_the_leak_check() {
    const NAME: &str = "lost-panic-check";
    let report = LeakCheck::new()
        .grace(BOUND)
        .try_run(drop_a_root_whose_child_panics_later(NAME))
        .await
        .expect_err("the lost panic fails the check");
    let panics: Vec<_> = report
        .leaks()
        .iter()
        .filter(|leak| leak.panic().is_some())
        .collect();
    assert_eq!(panics.len(), 1, "{report}");
    assert_eq!(panics[0].task().name(), Some(NAME));
    let text = report.to_string();
    assert!(
        text.contains("panicked after their scope was dropped"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_under_a_dropped_inner_scope_is_re_raised_by_the_running_parent() {
    let (running_tx, running) = oneshot::channel();
    let dropped = Latch::new();
    let latch = dropped.clone();
    let outcome = tokio::spawn(async move {
        nursery::scope(|_: Nursery<()>| async move {
            let inner = nursery::scope(move |n: Nursery<()>| async move {
                n.spawn_blocking(move |_token| -> Result<(), ()> {
                    let _ = running_tx.send(());
                    assert!(latch.wait(BOUND), "the scope was never dropped");
                    panic!("inner child: panicked after the drop");
                });
                std::future::pending::<Result<(), ()>>().await
            });
            tokio::select! {
                _ = inner => unreachable!("the inner scope cannot return"),
                _ = running => {} // the inner scope is dropped here
            }
            dropped.open();
            Ok(())
        })
        .await
    });
    let joined = within("the outer scope", outcome).await;
    let payload = joined
        .expect_err("the parent re-raises the panic")
        .into_panic();
    assert_eq!(
        panic_message(&*payload),
        "inner child: panicked after the drop"
    );
}

/// The future of a scope opened in a parent's body may be moved out of the
/// body and outlive the parent. Dropped after the parent has returned, it
/// has nobody to hand a late panic to: the panic is reported as lost, not
/// handed to the parent that has finished (where nobody would re-raise it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_under_a_scope_that_outlived_its_parent_is_reported_as_lost() {
    const NAME: &str = "outlived-its-parent";
    type Inner = std::pin::Pin<Box<dyn Future<Output = Result<(), Error<()>>> + Send>>;
    let log = LeakLog::get();
    let (running_tx, running) = oneshot::channel();
    let dropped = Latch::new();
    let latch = dropped.clone();
    let mut kept: Option<Inner> = None;
    let slot = &mut kept;
    nursery::scope(|_: Nursery<()>| async move {
        let mut inner: Inner = Box::pin(Nursery::builder().name(NAME).scope(
            move |n: Nursery<()>| async move {
                n.spawn_blocking_named(NAME, move |_token| -> Result<(), ()> {
                    let _ = running_tx.send(());
                    assert!(latch.wait(BOUND), "the scope was never dropped");
                    panic!("{NAME}: panicked after the drop");
                });
                std::future::pending::<Result<(), ()>>().await
            },
        ));
        // Opened here, inside this scope, then kept past its end.
        assert!(futures_util::poll!(inner.as_mut()).is_pending());
        *slot = Some(inner);
        Ok(())
    })
    .await
    .expect("the parent returns with the inner scope still open");
    within("the inner scope's child", running)
        .await
        .expect("it started");
    drop(kept); // the parent has returned: nobody can re-raise
    dropped.open();
    let found = log
        .wait_for(1, BOUND, |leak| leak.task().name() == Some(NAME))
        .await;
    assert_eq!(found.len(), 1, "the lost panic was reported once");
    assert_eq!(
        found[0].panic(),
        Some("outlived-its-parent: panicked after the drop")
    );
}

// ===== errors whose destructor panics =====

/// An error whose destructor panics.
#[derive(Debug)]
struct Explosive(#[allow(dead_code)] PanicOnDrop);

#[tokio::test(start_paused = true)]
async fn a_discarded_error_whose_destructor_panics_is_re_raised_under_its_own_message() {
    let outside = tokio_util::sync::CancellationToken::new();
    let cancel = outside.clone();
    let outcome = tokio::spawn(async move {
        Nursery::builder()
            .cancel_on(outside)
            .grace(Duration::from_secs(60))
            .scope(|n: Nursery<Explosive>| async move {
                n.spawn(async {
                    nursery::cancelled().await;
                    // A consequence of the cancel: discarded, and its
                    // destructor panics.
                    Err::<(), _>(Explosive(PanicOnDrop("the error's destructor panicked")))
                });
                cancel.cancel();
                std::future::pending::<Result<(), Explosive>>().await
            })
            .await
    });
    let payload = within("the scope", outcome)
        .await
        .expect_err("the destructor's panic is re-raised")
        .into_panic();
    assert_eq!(panic_message(&*payload), "the error's destructor panicked");
}

// ===== the cap on errors kept =====

#[tokio::test]
async fn max_suppressed_keeps_the_first_errors_counts_the_rest_and_drops_them_as_they_come() {
    const FAILURES: usize = 1_000;
    let dropped = DropCounter::new();
    let counter = dropped.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .collect_errors()
            .max_suppressed(10)
            .scope(
                move |n: Nursery<(usize, nursery_tests::DropGuard)>| async move {
                    for i in 0..FAILURES {
                        let guard = counter.guard();
                        // One after the other, so the order is known.
                        let _ = n.spawn(async move { Err::<(), _>((i, guard)) }).await;
                    }
                    Ok(())
                },
            ),
    )
    .await;
    let error = result.expect_err("every child failed");
    // Dropped as they arrived, before the scope returned.
    assert_eq!(dropped.dropped(), FAILURES - 11);
    assert_eq!(error.error().map(|(i, _)| *i), Some(0));
    let kept: Vec<usize> = error.suppressed().iter().map(|(i, _)| *i).collect();
    assert_eq!(kept, (1..=10).collect::<Vec<_>>());
    assert_eq!(error.omitted(), FAILURES - 11);
    let Error::Failed { omitted, .. } = &error else {
        panic!("expected Failed");
    };
    assert_eq!(*omitted, FAILURES - 11);
}

#[tokio::test]
async fn max_suppressed_zero_keeps_the_first_error_alone_and_display_counts_the_rest() {
    let error = within(
        "the scope",
        Nursery::builder().collect_errors().max_suppressed(0).scope(
            |n: Nursery<String>| async move {
                for i in 0..3 {
                    let _ = n.spawn(async move { Err::<(), _>(format!("e{i}")) }).await;
                }
                Ok(())
            },
        ),
    )
    .await
    .expect_err("every child failed");
    assert_eq!(error.suppressed(), &[] as &[String]);
    assert_eq!(error.omitted(), 2);
    assert_eq!(error.to_string(), "e0 (2 more errors omitted)");
}

#[tokio::test]
async fn without_a_cap_every_error_is_kept() {
    let error = within(
        "the scope",
        Nursery::builder()
            .collect_errors()
            .scope(|n: Nursery<usize>| async move {
                for i in 0..100 {
                    let _ = n.spawn(async move { Err::<(), _>(i) }).await;
                }
                Ok(())
            }),
    )
    .await
    .expect_err("every child failed");
    assert_eq!(error.suppressed().len(), 99);
    assert_eq!(error.omitted(), 0);
    assert_eq!(error.to_string(), "0 (99 more errors suppressed)");
}

#[tokio::test(start_paused = true)]
async fn max_suppressed_caps_errors_that_arrive_during_a_fail_fast_cancel() {
    let error = within(
        "the scope",
        Nursery::builder()
            .max_suppressed(2)
            .grace(Duration::from_secs(60))
            .scope(|n: Nursery<usize>| async move {
                for i in 1..=5 {
                    n.spawn(async move {
                        nursery::cancelled().await;
                        Err::<(), _>(i)
                    });
                }
                n.spawn(async { Err::<(), _>(0) });
                std::future::pending::<Result<(), usize>>().await
            }),
    )
    .await
    .expect_err("a child failed");
    assert_eq!(error.error(), Some(&0));
    assert_eq!(error.suppressed().len(), 2);
    assert_eq!(error.omitted(), 3);
}

// ===== the error's own report =====

#[test]
fn a_failed_scope_prints_each_message_of_its_error_chain_once() {
    use std::error::Error as _;

    let cause = std::io::Error::other("disk full");
    let error: Error<std::io::Error> = Error::Failed {
        error: std::io::Error::new(std::io::ErrorKind::StorageFull, cause),
        suppressed: Vec::new(),
        omitted: 0,
    };
    // What a reporter walking the chain prints (anyhow's `{:#}`, eyre).
    let mut chain = vec![error.to_string()];
    let mut source = error.source();
    while let Some(next) = source {
        chain.push(next.to_string());
        source = next.source();
    }
    let mut unique = chain.clone();
    unique.dedup();
    assert_eq!(chain, unique, "a message printed twice: {chain:?}");
    assert!(chain[0].contains("disk full"), "{chain:?}");

    // An error without a source of its own still shows in `Display`.
    let text: Error<String> = Error::Failed {
        error: "no route".to_owned(),
        suppressed: vec!["late".to_owned()],
        omitted: 0,
    };
    assert_eq!(text.to_string(), "no route (1 more error suppressed)");
}

// ===== forgotten scopes =====

#[test]
fn a_forgotten_root_leaves_the_tree_once_its_runtime_has_shut_down() {
    const NAME: &str = "forgotten-root";
    let forgotten = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    forgotten.block_on(async {
        let mut scope = Box::pin(
            Nursery::builder()
                .name(NAME)
                .scope(|_: Nursery<()>| std::future::pending::<Result<(), ()>>()),
        );
        // Polled once, so it opens; then forgotten: never dropped.
        assert!(!ready_at_once(scope.as_mut()).await);
        std::mem::forget(scope);
    });
    assert!(
        nursery::dump().find(NAME).is_some(),
        "open while its runtime runs"
    );
    drop(forgotten);
    let dump = nursery::dump();
    assert!(dump.find(NAME).is_none(), "still in the tree:\n{dump}");
}

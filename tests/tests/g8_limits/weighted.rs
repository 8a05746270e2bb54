//! `Nursery::spawn_weighted`: children that take a weight of the scope's
//! limit (x/sync/semaphore's weighted semaphore), in one FIFO queue with
//! plain `spawn`; a weight that can never fit panics at the call.

use std::future::pending;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use nursery::{Error, Nursery};
use nursery_tests::{Tracker, catch_panic_site, within, yield_rounds};
use tokio::sync::Barrier;
use tokio_util::sync::CancellationToken;

type E = &'static str;

/// The sum of the weights held now, and the most it ever was.
#[derive(Clone, Debug, Default)]
struct WeightGauge {
    held: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl WeightGauge {
    fn enter(&self, weight: usize) -> Held {
        let now = self.held.fetch_add(weight, Ordering::SeqCst) + weight;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Held(self.clone(), weight)
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

struct Held(WeightGauge, usize);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.fetch_sub(self.1, Ordering::SeqCst);
    }
}

/// What happened, in order.
#[derive(Clone, Debug, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }

    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

// ----- the limit -----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spawn_weighted_keeps_the_running_weight_within_the_limit() {
    const LIMIT: usize = 6;
    const WEIGHTS: [usize; 8] = [3, 1, 2, 6, 1, 4, 5, 2];
    const CHILDREN: usize = 64;
    let gauge = WeightGauge::default();
    let ran = Arc::new(AtomicUsize::new(0));
    let result = within(
        "the scope",
        Nursery::builder().limit(LIMIT).scope(|n: Nursery<E>| {
            let (gauge, ran) = (gauge.clone(), ran.clone());
            async move {
                for i in 0..CHILDREN {
                    let weight = WEIGHTS[i % WEIGHTS.len()];
                    let (gauge, ran) = (gauge.clone(), ran.clone());
                    n.spawn_weighted(weight, async move {
                        let _held = gauge.enter(weight);
                        ran.fetch_add(1, Ordering::SeqCst);
                        // Stay until the budget has been full once (bounded),
                        // and a little longer: without the limit every
                        // spawned child would pile in meanwhile.
                        for _ in 0..10_000 {
                            if gauge.peak() >= LIMIT {
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                        yield_rounds(10).await;
                        Ok(())
                    });
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
        "the weight running at once: never above the limit, and the limit is used"
    );
    assert_eq!(gauge.held(), 0);
}

#[tokio::test]
async fn a_limit_of_one_runs_weight_one_children_one_at_a_time() {
    let gauge = WeightGauge::default();
    let log = Log::default();
    let result = within(
        "the scope",
        Nursery::builder().limit(1).scope(|n: Nursery<E>| {
            let (gauge, log) = (gauge.clone(), log.clone());
            async move {
                for i in 0..5 {
                    let (gauge, log) = (gauge.clone(), log.clone());
                    n.spawn_weighted(1, async move {
                        let _held = gauge.enter(1);
                        log.push(format!("start {i}"));
                        yield_rounds(3).await;
                        log.push(format!("end {i}"));
                        Ok(())
                    });
                }
                Ok(())
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(gauge.peak(), 1);
    let expected: Vec<String> = (0..5)
        .flat_map(|i| [format!("start {i}"), format!("end {i}")])
        .collect();
    assert_eq!(log.events(), expected);
}

#[tokio::test]
async fn a_heavy_child_at_the_head_is_not_overtaken_by_light_ones() {
    // Weights 3, 2, 1, 1 under limit(4): the 2 waits for the 3 to finish,
    // and the 1s, which would fit beside the 3, wait behind the 2.
    let log = Log::default();
    let release = CancellationToken::new();
    let result = within(
        "the scope",
        Nursery::builder().limit(4).scope(|n: Nursery<E>| {
            let (log, release) = (log.clone(), release.clone());
            async move {
                for (i, weight) in [3, 2, 1, 1].into_iter().enumerate() {
                    let (log, release) = (log.clone(), release.clone());
                    n.spawn_weighted(weight, async move {
                        log.push(format!("start {i} (weight {weight})"));
                        if i == 0 {
                            release.cancelled().await;
                        } else {
                            yield_rounds(3).await;
                        }
                        log.push(format!("end {i}"));
                        Ok(())
                    });
                }
                yield_rounds(10).await;
                let while_held = (log.events(), n.live());
                release.cancel();
                Ok(while_held)
            }
        }),
    )
    .await;
    let (while_held, live) = result.unwrap();
    assert_eq!(while_held, ["start 0 (weight 3)"]);
    assert_eq!(live, 4, "one running, three queued");
    let events = log.events();
    assert_eq!(
        events[..5],
        [
            "start 0 (weight 3)",
            "end 0",
            "start 1 (weight 2)",
            "start 2 (weight 1)",
            "start 3 (weight 1)"
        ],
        "{events:?}"
    );
}

#[tokio::test]
async fn spawn_and_spawn_weighted_share_one_fifo_budget() {
    // `spawn` weighs 1: under limit(3), a plain child, a weight of 3, then
    // two plain children that would fit beside the first but queue behind
    // the 3.
    let gauge = WeightGauge::default();
    let log = Log::default();
    let result = within(
        "the scope",
        Nursery::builder().limit(3).scope(|n: Nursery<E>| {
            let (gauge, log) = (gauge.clone(), log.clone());
            async move {
                let child = |name: &'static str, weight: usize| {
                    let (gauge, log) = (gauge.clone(), log.clone());
                    async move {
                        let _held = gauge.enter(weight);
                        log.push(format!("start {name}"));
                        yield_rounds(3).await;
                        log.push(format!("end {name}"));
                        Ok(())
                    }
                };
                n.spawn(child("a", 1));
                n.spawn_weighted(3, child("b", 3));
                n.spawn(child("c", 1));
                n.spawn(child("d", 1));
                Ok(())
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(()));
    let events = log.events();
    assert_eq!(
        events[..6],
        ["start a", "end a", "start b", "end b", "start c", "start d"],
        "{events:?}"
    );
    assert_eq!(events.len(), 8, "{events:?}");
    assert_eq!(gauge.peak(), 3);
}

#[tokio::test]
async fn a_failed_weighted_child_gives_its_weight_back() {
    let ran = Arc::new(AtomicUsize::new(0));
    let result = within(
        "the scope",
        Nursery::builder()
            .limit(4)
            .collect_errors()
            .scope(|n: Nursery<E>| {
                let ran = ran.clone();
                async move {
                    n.spawn_weighted(4, async {
                        tokio::task::yield_now().await;
                        Err::<(), E>("heavy failed")
                    });
                    for _ in 0..2 {
                        let ran = ran.clone();
                        n.spawn_weighted(4, async move {
                            ran.fetch_add(1, Ordering::SeqCst);
                            Ok(())
                        });
                    }
                    Ok(())
                }
            }),
    )
    .await;
    assert_eq!(
        result,
        Err(Error::Failed {
            error: "heavy failed",
            suppressed: vec![],
            omitted: 0
        })
    );
    assert_eq!(ran.load(Ordering::SeqCst), 2, "the queued children ran");
}

// ----- weights that can never be right -----

#[tokio::test]
#[should_panic(expected = "spawn_weighted(5, ..) in a scope with limit(4)")]
async fn a_weight_above_the_limit_panics_naming_the_weight_and_the_limit() {
    let _ = within(
        "the scope",
        Nursery::builder()
            .limit(4)
            .scope(|n: Nursery<E>| async move {
                n.spawn_weighted(5, async { Ok(()) });
                Ok(())
            }),
    )
    .await;
}

#[tokio::test]
async fn a_weight_above_the_limit_panics_at_the_call_rather_than_hanging() {
    let heavy = Tracker::new();
    let fitting = Tracker::new();
    let result = Nursery::builder().limit(4).scope(|n: Nursery<E>| {
        let heavy_future = heavy.track(async { Ok(()) });
        let fitting_future = fitting.track(async { Ok(()) });
        async move {
            let line = line!() + 1;
            let site = catch_panic_site(|| n.spawn_weighted(5, heavy_future)).unwrap_err();
            let live_after = n.live();
            // A weight equal to the limit is fine.
            n.spawn_weighted(4, fitting_future)
                .await
                .map_err(|_| "the fitting child failed")?;
            Ok((site, line, live_after))
        }
    });
    let (site, line, live_after) = within("a panic, not a hang", result).await.unwrap();
    assert!(
        site.message.contains("spawn_weighted(5, ..)") && site.message.contains("limit(4)"),
        "{site:?}"
    );
    assert_eq!(
        site.location,
        format!("{}:{line}", file!()),
        "#[track_caller]"
    );
    assert_eq!(live_after, 0, "nothing was queued");
    assert!(
        !heavy.was_polled() && heavy.was_dropped(),
        "dropped unpolled"
    );
    assert!(fitting.completed());
}

#[tokio::test]
#[should_panic(expected = "spawn_weighted(0, ..)")]
async fn weight_zero_panics_naming_the_weight() {
    let _ = within(
        "the scope",
        Nursery::builder()
            .limit(4)
            .scope(|n: Nursery<E>| async move {
                n.spawn_weighted(0, async { Ok(()) });
                Ok(())
            }),
    )
    .await;
}

#[tokio::test]
async fn weight_zero_panics_without_a_limit_too() {
    let result = nursery::scope(|n: Nursery<E>| async move {
        let line = line!() + 1;
        let site = catch_panic_site(|| n.spawn_weighted(0, async { Ok(()) })).unwrap_err();
        Ok((site, line, n.live()))
    });
    let (site, line, live) = within("the scope", result).await.unwrap();
    assert!(site.message.contains("spawn_weighted(0, ..)"), "{site:?}");
    assert_eq!(site.location, format!("{}:{line}", file!()));
    assert_eq!(live, 0);
}

// ----- without a limit -----

#[tokio::test(start_paused = true)]
async fn without_a_limit_any_weight_starts_at_once() {
    const WEIGHTS: [usize; 3] = [1_000, usize::MAX, usize::MAX];
    let met = Arc::new(Barrier::new(WEIGHTS.len() + 1));
    let result = nursery::scope(|n: Nursery<E>| {
        let met = met.clone();
        async move {
            for weight in WEIGHTS {
                let met = met.clone();
                n.spawn_weighted(weight, async move {
                    met.wait().await;
                    Ok(())
                });
            }
            // Every child must be running for this to return.
            met.wait().await;
            Ok(())
        }
    });
    assert_eq!(within("the scope", result).await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn without_a_limit_any_weight_starts_at_once_under_a_rate() {
    // `rate` alone sets no limit: weights still change nothing.
    const WEIGHTS: [usize; 3] = [usize::MAX / 2 + 1, usize::MAX / 2 + 1, usize::MAX];
    let met = Arc::new(Barrier::new(WEIGHTS.len() + 1));
    let result = Nursery::builder()
        .rate(100, Duration::from_secs(1))
        .scope(|n: Nursery<E>| {
            let met = met.clone();
            async move {
                for weight in WEIGHTS {
                    let met = met.clone();
                    n.spawn_weighted(weight, async move {
                        met.wait().await;
                        Ok(())
                    });
                }
                met.wait().await;
                Ok(())
            }
        });
    assert_eq!(within("the scope", result).await, Ok(()));
}

// ----- try_spawn -----

#[tokio::test]
async fn try_spawn_does_not_overtake_a_queued_weighted_child() {
    let queued = Tracker::new();
    let result = within(
        "the scope",
        Nursery::builder().limit(4).scope(|n: Nursery<E>| {
            let queued = queued.clone();
            async move {
                let release = CancellationToken::new();
                let heavy = n.spawn_weighted(3, {
                    let release = release.clone();
                    async move {
                        release.cancelled().await;
                        Ok(())
                    }
                });
                // Room for one beside the 3, and nobody queued.
                let light = n.try_spawn(async { Ok(1) }).expect("room for 1");
                let full = n.try_spawn(async { Ok(2) }).unwrap_err();
                assert!(full.is_full(), "{full}");
                assert_eq!(light.await.map_err(|_| "light failed")?, 1);

                // Room for one again, but a child of weight 2 waits ahead.
                let waiting = n.spawn_weighted(2, queued.track(async { Ok(()) }));
                let refused = n.try_spawn(async { Ok(3) }).unwrap_err();
                assert!(refused.is_full(), "{refused}");
                assert!(!queued.was_polled());

                release.cancel();
                heavy.await.map_err(|_| "heavy failed")?;
                waiting.await.map_err(|_| "queued failed")?;
                let later = n
                    .try_spawn(refused.into_future())
                    .expect("room once the queue is empty");
                later.await.map_err(|_| "later failed")
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(3));
    assert!(queued.completed());
}

// ----- cancellation, errors, panics -----

/// Under limit(4), a child of weight 4 runs and three wait — weights 1 and
/// 3 and a plain `spawn`; then `trigger` runs in the body, which waits for
/// the scope's cancellation and returns what the queued children's handles
/// said (if it is still running by then). With `fail`, the running child
/// fails after 10 ms instead of waiting forever.
async fn queued_behind_a_heavy_child(
    builder: nursery::Builder,
    fail: bool,
    trigger: impl FnOnce(&Nursery<E>) + Send,
) -> (Result<Vec<bool>, Error<E>>, Vec<Tracker>, Tracker) {
    let running = Tracker::new();
    let queued: Vec<Tracker> = (0..3).map(|_| Tracker::new()).collect();
    let result = builder.limit(4).scope(|n: Nursery<E>| {
        let running = running.clone();
        let queued = queued.clone();
        async move {
            n.spawn_weighted(
                4,
                running.track(async move {
                    if fail {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        return Err("the heavy child failed");
                    }
                    pending::<Result<(), E>>().await
                }),
            );
            let handles = vec![
                n.spawn_weighted(1, queued[0].track(async { Ok(()) })),
                n.spawn_weighted(3, queued[1].track(async { Ok(()) })),
                n.spawn(queued[2].track(async { Ok(()) })),
            ];
            assert_eq!(n.live(), 4);
            trigger(&n);
            nursery::cancelled().await;
            let mut cancelled = Vec::new();
            for handle in handles {
                cancelled.push(handle.await.is_err_and(|error| error.is_cancelled()));
            }
            Ok(cancelled)
        }
    });
    let result = within("the scope", result).await;
    (result, queued, running)
}

fn assert_never_started(queued: &[Tracker], running: &Tracker) {
    for (i, tracker) in queued.iter().enumerate() {
        assert!(
            !tracker.was_polled() && tracker.was_dropped(),
            "queued child {i}: dropped unstarted"
        );
    }
    assert!(running.was_dropped() && !running.completed());
}

#[tokio::test(start_paused = true)]
async fn cancelling_drops_queued_weighted_children_unstarted() {
    let (result, queued, running) =
        queued_behind_a_heavy_child(Nursery::builder(), false, Nursery::cancel).await;
    assert_eq!(
        result,
        Ok(vec![true; 3]),
        "the body's result (G9): every queued handle says cancelled"
    );
    assert_never_started(&queued, &running);
}

#[tokio::test(start_paused = true)]
async fn an_outside_cancel_drops_queued_weighted_children_unstarted() {
    let shutdown = CancellationToken::new();
    let builder = Nursery::builder().cancel_on(shutdown.clone());
    let (result, queued, running) =
        queued_behind_a_heavy_child(builder, false, move |_| shutdown.cancel()).await;
    assert_eq!(result, Err(Error::Cancelled));
    assert_never_started(&queued, &running);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_drops_queued_weighted_children_unstarted() {
    let builder = Nursery::builder().timeout(Duration::from_secs(1));
    let (result, queued, running) = queued_behind_a_heavy_child(builder, false, |_| {}).await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_never_started(&queued, &running);
}

#[tokio::test(start_paused = true)]
async fn an_error_drops_queued_weighted_children_unstarted() {
    let (result, queued, running) =
        queued_behind_a_heavy_child(Nursery::builder(), true, |_| {}).await;
    assert_eq!(
        result,
        Err(Error::Failed {
            error: "the heavy child failed",
            suppressed: vec![],
            omitted: 0
        })
    );
    for (i, tracker) in queued.iter().enumerate() {
        assert!(
            !tracker.was_polled() && tracker.was_dropped(),
            "queued child {i}: dropped unstarted"
        );
    }
    assert!(running.was_dropped());
}

#[derive(Debug, PartialEq)]
struct WeightedPanic;

#[tokio::test]
async fn a_panic_in_a_weighted_child_is_re_raised_and_the_queue_never_starts() {
    let queued: Vec<Tracker> = (0..2).map(|_| Tracker::new()).collect();
    let scope = Nursery::builder().limit(2).scope(|n: Nursery<E>| {
        let queued = queued.clone();
        async move {
            n.spawn_weighted(2, async {
                tokio::task::yield_now().await;
                std::panic::panic_any(WeightedPanic);
                #[allow(unreachable_code)]
                Ok(())
            });
            n.spawn_weighted(1, queued[0].track(async { Ok(()) }));
            n.spawn_weighted(2, queued[1].track(async { Ok(()) }));
            Ok(())
        }
    });
    let payload = match within("the scope", AssertUnwindSafe(scope).catch_unwind()).await {
        Err(payload) => payload,
        other => panic!("expected the child's panic, got {other:?}"),
    };
    assert_eq!(
        payload.downcast_ref::<WeightedPanic>(),
        Some(&WeightedPanic)
    );
    for tracker in &queued {
        assert!(!tracker.was_polled() && tracker.was_dropped());
    }
}

/// When a heavy child ends, every queued child that fits in the weight it
/// gave back starts at once, not only the first: with a limit of 8, a
/// weight-8 child ends and the weight-3 and weight-5 children behind it run
/// together (each waits until the other has started).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_childs_weight_goes_to_every_queued_child_that_fits() {
    let (heavy_done, heavy_release) = tokio::sync::oneshot::channel::<()>();
    let three_started = Arc::new(tokio::sync::Notify::new());
    let five_started = Arc::new(tokio::sync::Notify::new());
    let result = within(
        "two queued children that fit together",
        Nursery::builder()
            .limit(8)
            .scope(|n: Nursery<()>| async move {
                n.spawn_weighted(8, async move {
                    let _ = heavy_release.await;
                    Ok(())
                });
                let (mine, theirs) = (three_started.clone(), five_started.clone());
                n.spawn_weighted(3, async move {
                    mine.notify_one();
                    theirs.notified().await;
                    Ok(())
                });
                let (mine, theirs) = (five_started, three_started);
                n.spawn_weighted(5, async move {
                    mine.notify_one();
                    theirs.notified().await;
                    Ok(())
                });
                let _ = heavy_done.send(());
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Ok(()));
}

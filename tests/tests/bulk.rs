//! Fan-out / fan-in: `map`, `for_each`, `map_unordered` and `race`.
//!
//! Each helper is pull-based (never more than `limit` calls in flight, no
//! tokio task per item), fails fast, re-raises panics after the rest have
//! stopped, and runs in a scope inside the current one, so the enclosing
//! scope's cancellation, deadline and fail-fast reach it.

use std::any::Any;
use std::collections::HashSet;
use std::future::{Future, pending};
use std::panic::{AssertUnwindSafe, panic_any};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt, stream};
use nursery::{Error, Nursery};
use nursery_tests::{DropCounter, HighWater, Tracker, within, yield_rounds};
use tokio::runtime::Handle;
use tokio::sync::{Barrier, oneshot};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

/// The error type of `f` in these tests: the item that failed.
type E = u32;

/// Time for the caller of a helper to see its result after the enclosing
/// scope was cancelled (G6): without it the caller is aborted at once.
const GRACE: Duration = Duration::from_secs(1);

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Awaits `future`, expecting it to panic, and returns the payload.
async fn expect_panic<T: std::fmt::Debug>(future: impl Future<Output = T>) -> Box<dyn Any + Send> {
    match within(
        "the future expected to panic",
        AssertUnwindSafe(future).catch_unwind(),
    )
    .await
    {
        Ok(output) => panic!("returned {output:?} instead of re-raising the panic"),
        Err(payload) => payload,
    }
}

/// A panic payload no code path in the library could make up by itself.
#[derive(Debug, PartialEq)]
struct Boom(u32);

/// A shared, ordered record of what happened.
#[derive(Clone, Debug)]
struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Log<T> {
    fn new() -> Log<T> {
        Log(Arc::new(Mutex::new(Vec::new())))
    }

    fn push(&self, value: T) {
        self.0.lock().unwrap().push(value);
    }

    fn get(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
}

impl Log<u32> {
    fn sorted(&self) -> Vec<u32> {
        let mut values = self.get();
        values.sort_unstable();
        values
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    Start(u32),
    End(u32),
}

/// `Start(i), End(i)` for every item in order: one at a time.
fn one_at_a_time(items: std::ops::Range<u32>) -> Vec<Event> {
    items
        .flat_map(|i| [Event::Start(i), Event::End(i)])
        .collect()
}

fn failed<E>(error: E) -> Error<E> {
    Error::Failed {
        error,
        suppressed: Vec::new(),
        omitted: 0,
    }
}

// ===== map =====

#[tokio::test(start_paused = true)]
async fn map_returns_results_in_input_order_when_later_items_finish_first() {
    for limit in [3, 8] {
        let finished = Log::new();
        let log = finished.clone();
        let results = within(
            "nursery::map",
            nursery::map(0..8u32, limit, move |i| {
                let log = log.clone();
                async move {
                    // Later items are quicker.
                    sleep(ms(u64::from(8 - i))).await;
                    log.push(i);
                    Ok::<_, E>(i * 10)
                }
            }),
        )
        .await;
        assert_eq!(results, Ok((0..8).map(|i| i * 10).collect::<Vec<_>>()));
        let finished = finished.get();
        if limit == 8 {
            assert_eq!(finished, (0..8).rev().collect::<Vec<_>>());
        }
        assert!(
            finished.windows(2).any(|pair| pair[0] > pair[1]),
            "with limit {limit}, items finished in input order {finished:?}: the test shows nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn map_runs_at_most_limit_calls_at_once() {
    const LIMIT: usize = 3;
    const ITEMS: u32 = 60;
    let gauge = HighWater::new();
    // The first LIMIT calls go on only once LIMIT run at once: the limit is
    // reached, so a peak above it would be seen.
    let first_wave = Arc::new(Barrier::new(LIMIT));
    let (in_f, wave) = (gauge.clone(), first_wave.clone());
    let results = within(
        "nursery::map",
        nursery::map(0..ITEMS, LIMIT, move |i| {
            let (gauge, first_wave) = (in_f.clone(), wave.clone());
            async move {
                let _running = gauge.enter();
                if (i as usize) < LIMIT {
                    first_wave.wait().await;
                }
                yield_rounds(i as usize % 4).await;
                Ok::<_, E>(i)
            }
        }),
    )
    .await;
    assert_eq!(results, Ok((0..ITEMS).collect::<Vec<_>>()));
    assert_eq!(gauge.peak(), LIMIT, "never more than the limit at once");
    assert_eq!(gauge.current(), 0);
}

/// Samples the runtime's live tokio tasks and the task each call runs in.
#[derive(Clone, Default)]
struct TaskSampler {
    most_alive: Arc<AtomicUsize>,
    ids: Arc<Mutex<HashSet<tokio::task::Id>>>,
}

impl TaskSampler {
    fn sample(&self) {
        let alive = Handle::current().metrics().num_alive_tasks();
        self.most_alive.fetch_max(alive, SeqCst);
        self.ids.lock().unwrap().insert(tokio::task::id());
    }

    fn most_alive(&self) -> usize {
        self.most_alive.load(SeqCst)
    }

    fn tasks_used(&self) -> usize {
        self.ids.lock().unwrap().len()
    }
}

#[test]
fn map_over_100_000_items_uses_at_most_limit_tokio_tasks() {
    const LIMIT: usize = 4;
    const ITEMS: u32 = 100_000;
    // A dedicated runtime: its task count is this test's alone.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let sampler = TaskSampler::default();
    let in_f = sampler.clone();
    let results = runtime
        .block_on(within(
            "nursery::map",
            nursery::map(0..ITEMS, LIMIT, move |i| {
                in_f.sample();
                async move {
                    if i % 64 == 0 {
                        // Let the workers interleave.
                        tokio::task::yield_now().await;
                    }
                    Ok::<_, E>(i)
                }
            }),
        ))
        .unwrap();
    assert_eq!(results.len(), ITEMS as usize);
    assert!(results.iter().copied().eq(0..ITEMS), "results out of order");
    assert!(
        (1..=LIMIT).contains(&sampler.most_alive()),
        "a call saw {} tokio tasks alive",
        sampler.most_alive()
    );
    assert!(
        (1..=LIMIT).contains(&sampler.tasks_used()),
        "the calls ran in {} different tokio tasks",
        sampler.tasks_used()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_first_error_cancels_the_rest_and_starts_no_more_items() {
    const LIMIT: usize = 3;
    let started = Log::new();
    let stopped = DropCounter::new();
    let first_wave = Arc::new(Barrier::new(LIMIT));
    let (log, guards, wave) = (started.clone(), stopped.clone(), first_wave.clone());
    let result = within(
        "nursery::map",
        nursery::map(0..100u32, LIMIT, move |i| {
            log.push(i);
            let guard = (i < 2).then(|| guards.guard());
            let first_wave = wave.clone();
            async move {
                let _guard = guard;
                match i {
                    // Busy until cancelled.
                    0 | 1 => {
                        first_wave.wait().await;
                        pending().await
                    }
                    // Fails once the others are running.
                    2 => {
                        first_wave.wait().await;
                        Err(2)
                    }
                    _ => Ok(i),
                }
            }
        }),
    )
    .await;
    assert_eq!(result, Err(failed(2)));
    assert_eq!(stopped.dropped(), 2, "a pending sibling outlived `map`");
    assert_eq!(started.sorted(), [0, 1, 2], "items started after the error");
    yield_rounds(10).await;
    assert_eq!(
        started.get().len(),
        3,
        "an item started after `map` returned"
    );
}

#[tokio::test]
async fn map_of_no_items_returns_an_empty_vec_without_calling_f() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let f = move |i: u32| {
        counter.fetch_add(1, SeqCst);
        async move { Ok::<_, E>(i) }
    };
    assert_eq!(
        within("nursery::map", nursery::map(Vec::new(), 4, f.clone())).await,
        Ok(Vec::new())
    );
    // An iterator that cannot tell its length: the workers find it empty.
    assert_eq!(
        within(
            "nursery::map",
            nursery::map(std::iter::from_fn(|| None), 4, f)
        )
        .await,
        Ok(Vec::new())
    );
    assert_eq!(calls.load(SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_with_limit_1_runs_one_item_at_a_time_in_input_order() {
    let events = Log::new();
    let log = events.clone();
    let results = within(
        "nursery::map",
        nursery::map(0..20u32, 1, move |i| {
            let log = log.clone();
            async move {
                log.push(Event::Start(i));
                // Earlier items take longer: overlapping would reorder ends.
                yield_rounds(3 - i as usize % 3).await;
                log.push(Event::End(i));
                Ok::<_, E>(i + 100)
            }
        }),
    )
    .await;
    assert_eq!(results, Ok((100..120).collect::<Vec<_>>()));
    assert_eq!(events.get(), one_at_a_time(0..20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_panic_in_f_is_reraised_with_its_payload_after_the_rest_stopped() {
    const LIMIT: usize = 3;
    let started = Log::new();
    let stopped = DropCounter::new();
    let first_wave = Arc::new(Barrier::new(LIMIT));
    let (log, guards, wave) = (started.clone(), stopped.clone(), first_wave.clone());
    let payload = expect_panic(nursery::map(0..100u32, LIMIT, move |i| {
        log.push(i);
        let guard = (i < 2).then(|| guards.guard());
        let first_wave = wave.clone();
        async move {
            let _guard = guard;
            if i <= 2 {
                first_wave.wait().await;
            }
            match i {
                0 | 1 => pending().await,
                2 => panic_any(Boom(2)),
                _ => Ok::<_, E>(i),
            }
        }
    }))
    .await;
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(2)));
    assert_eq!(stopped.dropped(), 2, "a sibling outlived the re-raise");
    assert_eq!(started.sorted(), [0, 1, 2]);
}

#[tokio::test]
async fn map_panic_while_f_makes_its_future_is_reraised() {
    let started = Log::new();
    let log = started.clone();
    let payload = expect_panic(nursery::map(0..10u32, 1, move |i| {
        log.push(i);
        if i == 1 {
            panic_any(Boom(1));
        }
        async move { Ok::<_, E>(i) }
    }))
    .await;
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(1)));
    assert_eq!(started.get(), [0, 1]);
}

/// Runs `map` in a child of a scope with a grace period, so the child
/// survives the cancel long enough to report what `map` returned. The
/// first `limit` calls wait on `first_wave` (with the outer body), then
/// stop when their scope is cancelled, with an error that is only a
/// consequence of the cancel.
async fn map_in_a_child(
    outer: nursery::Builder,
    limit: usize,
    shutdown: Option<CancellationToken>,
) -> (
    Result<(), Error<E>>,
    Result<Vec<u32>, Error<E>>,
    Vec<u32>,
    usize,
) {
    let started = Log::new();
    let stopped = DropCounter::new();
    let first_wave = Arc::new(Barrier::new(limit + 1));
    let (log, guards, wave) = (started.clone(), stopped.clone(), first_wave.clone());
    let (result_tx, result_rx) = oneshot::channel();
    let outer = within(
        "the scope",
        outer.scope(|n: Nursery<E>| async move {
            n.spawn(async move {
                let result = nursery::map(0..100u32, limit, move |i| {
                    log.push(i);
                    let guard = guards.guard();
                    let first_wave = wave.clone();
                    async move {
                        let _guard = guard;
                        first_wave.wait().await;
                        nursery::cancelled().await;
                        Err::<u32, _>(i)
                    }
                })
                .await;
                let _ = result_tx.send(result);
                Ok(())
            });
            first_wave.wait().await;
            if let Some(shutdown) = shutdown {
                shutdown.cancel();
            }
            pending::<Result<(), E>>().await
        }),
    )
    .await;
    let result = within("the result", result_rx)
        .await
        .expect("the child calling `map` was aborted before `map` returned");
    (outer, result, started.sorted(), stopped.dropped())
}

#[tokio::test(start_paused = true)]
async fn map_returns_cancelled_when_its_enclosing_scope_is_cancelled_and_stops_its_workers() {
    let shutdown = CancellationToken::new();
    let builder = Nursery::builder().cancel_on(shutdown.clone()).grace(GRACE);
    let (outer, result, started, stopped) = map_in_a_child(builder, 2, Some(shutdown)).await;
    assert_eq!(outer, Err(Error::Cancelled));
    assert_eq!(result, Err(Error::Cancelled));
    assert_eq!(started, [0, 1], "items started after the cancel");
    assert_eq!(stopped, 2, "a worker outlived the cancel");
}

#[tokio::test(start_paused = true)]
async fn map_returns_timed_out_at_its_enclosing_scope_deadline() {
    let opened = Instant::now();
    let builder = Nursery::builder().timeout(ms(10)).grace(GRACE);
    let (outer, result, started, stopped) = map_in_a_child(builder, 2, None).await;
    assert_eq!(outer, Err(Error::TimedOut));
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(started, [0, 1]);
    assert_eq!(stopped, 2);
    assert_eq!(
        opened.elapsed(),
        ms(10),
        "the workers stopped at the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn map_is_dropped_with_its_workers_when_its_caller_is_aborted() {
    const LIMIT: usize = 2;
    let shutdown = CancellationToken::new();
    let started = Log::new();
    let stopped = DropCounter::new();
    let first_wave = Arc::new(Barrier::new(LIMIT + 1));
    let (log, guards, wave) = (started.clone(), stopped.clone(), first_wave.clone());
    let (result_tx, result_rx) = oneshot::channel();
    // No grace: the child calling `map` is aborted at once, dropping `map`.
    let outer = within(
        "the scope",
        Nursery::builder()
            .cancel_on(shutdown.clone())
            .scope(|n: Nursery<E>| async move {
                n.spawn(async move {
                    let result = nursery::map(0..100u32, LIMIT, move |i| {
                        log.push(i);
                        let guard = guards.guard();
                        let first_wave = wave.clone();
                        async move {
                            let _guard = guard;
                            first_wave.wait().await;
                            pending::<Result<u32, E>>().await
                        }
                    })
                    .await;
                    let _ = result_tx.send(result);
                    Ok(())
                });
                first_wave.wait().await;
                shutdown.cancel();
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert_eq!(outer, Err(Error::Cancelled));
    // Checked at once: the outer scope waited for `map`'s workers (G1).
    assert_eq!(
        stopped.dropped(),
        LIMIT,
        "a worker outlived the outer scope"
    );
    assert_eq!(started.sorted(), [0, 1]);
    assert!(
        result_rx.await.is_err(),
        "`map` returned in an aborted child"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_is_stopped_when_a_sibling_of_its_caller_fails() {
    const LIMIT: usize = 2;
    let started = Log::new();
    let stopped = DropCounter::new();
    let first_wave = Arc::new(Barrier::new(LIMIT + 1));
    let (log, guards, wave) = (started.clone(), stopped.clone(), first_wave.clone());
    let outer = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            n.spawn(async move {
                nursery::map(0..100u32, LIMIT, move |i| {
                    log.push(i);
                    let guard = guards.guard();
                    let first_wave = wave.clone();
                    async move {
                        let _guard = guard;
                        first_wave.wait().await;
                        pending::<Result<u32, E>>().await
                    }
                })
                .await
                .map_err(|_| 1000)
            });
            n.spawn(async move {
                first_wave.wait().await;
                Err::<(), _>(7)
            });
            Ok(())
        }),
    )
    .await;
    // The caller may see `map` return `Cancelled` before it is aborted and
    // relay it: an error after the failure, kept as suppressed (G2).
    match outer {
        Err(Error::Failed {
            error: 7,
            suppressed,
            ..
        }) => {
            assert!(suppressed.iter().all(|&e| e == 1000), "{suppressed:?}")
        }
        other => panic!("expected the sibling's failure, got {other:?}"),
    }
    assert_eq!(
        stopped.dropped(),
        LIMIT,
        "a worker outlived the outer scope"
    );
    assert_eq!(started.sorted(), [0, 1]);
}

#[tokio::test(start_paused = true)]
async fn map_calls_see_the_enclosing_scope_deadline() {
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(Duration::from_secs(5))
            .scope(|n: Nursery<E>| async move {
                let seen =
                    nursery::map(0..4u32, 2, |_| async { Ok::<_, E>(nursery::deadline()) }).await;
                Ok((n.deadline(), seen))
            }),
    )
    .await;
    let (outer, seen) = result.unwrap();
    assert!(outer.is_some());
    assert_eq!(seen, Ok(vec![outer; 4]));
}

#[tokio::test]
async fn map_in_a_cancelled_scope_calls_f_on_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            n.cancel();
            Ok(nursery::map(0..10u32, 2, move |i| {
                counter.fetch_add(1, SeqCst);
                async move { Ok::<_, E>(i) }
            })
            .await)
        }),
    )
    .await;
    assert_eq!(result, Ok(Err(Error::Cancelled)));
    assert_eq!(calls.load(SeqCst), 0);
}

#[tokio::test]
async fn map_pulls_an_item_only_when_a_worker_is_free() {
    const LIMIT: usize = 3;
    let pulled = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let most_ahead = Arc::new(AtomicUsize::new(0));
    let (counter, ahead) = (pulled.clone(), most_ahead.clone());
    // A million items: `map` must not collect them up front.
    let items = (0..1_000_000u32).inspect(move |_| {
        counter.fetch_add(1, SeqCst);
    });
    let (pulled_in_f, done_in_f) = (pulled.clone(), finished.clone());
    let result = within(
        "nursery::map",
        nursery::map(items, LIMIT, move |i| {
            ahead.fetch_max(pulled_in_f.load(SeqCst) - done_in_f.load(SeqCst), SeqCst);
            let done = done_in_f.clone();
            async move {
                yield_rounds(i as usize % 3).await;
                if i == 50 {
                    return Err(i);
                }
                done.fetch_add(1, SeqCst);
                Ok(i)
            }
        }),
    )
    .await;
    assert_eq!(result, Err(failed(50)));
    assert!(
        most_ahead.load(SeqCst) <= LIMIT,
        "{} items were pulled but not finished",
        most_ahead.load(SeqCst)
    );
    // Up to the failing item and the few pulled while it was running.
    assert!(
        pulled.load(SeqCst) < 100,
        "{} items pulled",
        pulled.load(SeqCst)
    );
}

#[test]
#[should_panic(expected = "nursery::map(.., 0, ..): the limit must be at least 1")]
fn map_with_limit_0_panics() {
    let _future = nursery::map(0..10u32, 0, |i| async move { Ok::<_, E>(i) });
}

// The cause: `Pool::run`'s worker loop (`while let Some(..) = next(&items)`)
// never asks whether its scope has been cancelled. With zero grace the
// workers are aborted at the failure; with a grace period (inherited from
// any enclosing scope) they are only told to stop, and a worker whose call
// returns `Ok` pulls and starts the next item, and so on to the end.
#[tokio::test(start_paused = true)]
async fn map_starts_no_item_after_a_failure_even_during_a_grace_period() {
    let started = Log::new();
    let both = Arc::new(Barrier::new(2));
    let (log, wave) = (started.clone(), both.clone());
    // The enclosing scope's grace is inherited by `map`'s scope: its
    // workers are not aborted at the failure but told to stop.
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(GRACE)
            .scope(|_: Nursery<E>| async move {
                Ok(nursery::map(0..10u32, 2, move |i| {
                    log.push(i);
                    let both = wave.clone();
                    async move {
                        match i {
                            // Stops cleanly when told to.
                            0 => {
                                both.wait().await;
                                nursery::cancelled().await;
                                Ok(i)
                            }
                            1 => {
                                both.wait().await;
                                Err(1)
                            }
                            _ => Ok(i),
                        }
                    }
                })
                .await)
            }),
    )
    .await;
    assert_eq!(result, Ok(Err(failed(1))));
    assert_eq!(started.sorted(), [0, 1], "items started after the error");
}

// ===== for_each =====

#[tokio::test(start_paused = true)]
async fn for_each_starts_items_in_input_order() {
    const DELAYS: [u64; 12] = [7, 3, 9, 1, 4, 8, 2, 6, 5, 3, 1, 2];
    let started = Log::new();
    let finished = Log::new();
    let (starts, ends) = (started.clone(), finished.clone());
    let result = within(
        "nursery::for_each",
        nursery::for_each(0..12u32, 3, move |i| {
            starts.push(i);
            let ends = ends.clone();
            async move {
                sleep(ms(DELAYS[i as usize])).await;
                ends.push(i);
                Ok::<_, E>(())
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(started.get(), (0..12).collect::<Vec<_>>());
    let finished = finished.get();
    assert_eq!(finished.len(), 12);
    assert_ne!(
        finished,
        started.get(),
        "items overlapped, so ends interleave"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn for_each_runs_at_most_limit_calls_at_once() {
    const LIMIT: usize = 4;
    const ITEMS: u32 = 80;
    let gauge = HighWater::new();
    let first_wave = Arc::new(Barrier::new(LIMIT));
    let ran = Arc::new(AtomicUsize::new(0));
    let (in_f, wave, count) = (gauge.clone(), first_wave.clone(), ran.clone());
    let result = within(
        "nursery::for_each",
        nursery::for_each(0..ITEMS, LIMIT, move |i| {
            let (gauge, first_wave, count) = (in_f.clone(), wave.clone(), count.clone());
            async move {
                let _running = gauge.enter();
                if (i as usize) < LIMIT {
                    first_wave.wait().await;
                }
                yield_rounds(i as usize % 4).await;
                count.fetch_add(1, SeqCst);
                Ok::<_, E>(())
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(ran.load(SeqCst), ITEMS as usize);
    assert_eq!(gauge.peak(), LIMIT, "never more than the limit at once");
}

#[test]
fn for_each_over_100_000_items_uses_at_most_limit_tokio_tasks() {
    const LIMIT: usize = 3;
    const ITEMS: u32 = 100_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sampler = TaskSampler::default();
    let visited = Arc::new(AtomicUsize::new(0));
    let (in_f, count) = (sampler.clone(), visited.clone());
    let result = runtime.block_on(within(
        "nursery::for_each",
        nursery::for_each(0..ITEMS, LIMIT, move |i| {
            in_f.sample();
            let count = count.clone();
            async move {
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
                count.fetch_add(1, SeqCst);
                Ok::<_, E>(())
            }
        }),
    ));
    assert_eq!(result, Ok(()));
    assert_eq!(visited.load(SeqCst), ITEMS as usize);
    assert!(
        (1..=LIMIT).contains(&sampler.most_alive()),
        "a call saw {} tokio tasks alive",
        sampler.most_alive()
    );
    assert!(
        (1..=LIMIT).contains(&sampler.tasks_used()),
        "the calls ran in {} different tokio tasks",
        sampler.tasks_used()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_first_error_cancels_the_rest_and_starts_no_more_items() {
    const LIMIT: usize = 3;
    let started = Log::new();
    let stopped = DropCounter::new();
    let first_wave = Arc::new(Barrier::new(LIMIT));
    let (log, guards, wave) = (started.clone(), stopped.clone(), first_wave.clone());
    let result = within(
        "nursery::for_each",
        nursery::for_each(0..100u32, LIMIT, move |i| {
            log.push(i);
            let guard = (i != 1).then(|| guards.guard());
            let first_wave = wave.clone();
            async move {
                let _guard = guard;
                if i >= LIMIT as u32 {
                    return Ok(());
                }
                first_wave.wait().await;
                if i == 1 { Err(1) } else { pending().await }
            }
        }),
    )
    .await;
    assert_eq!(result, Err(failed(1)));
    assert_eq!(
        stopped.dropped(),
        2,
        "a pending sibling outlived `for_each`"
    );
    assert_eq!(started.sorted(), [0, 1, 2], "items started after the error");
}

#[tokio::test]
async fn for_each_of_no_items_is_ok_without_calling_f() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let result = within(
        "nursery::for_each",
        nursery::for_each(Vec::<u32>::new(), 4, move |_| {
            counter.fetch_add(1, SeqCst);
            async { Ok::<_, E>(()) }
        }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(calls.load(SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_with_limit_1_runs_one_item_at_a_time_in_input_order() {
    let events = Log::new();
    let log = events.clone();
    let result = within(
        "nursery::for_each",
        nursery::for_each(0..20u32, 1, move |i| {
            let log = log.clone();
            async move {
                log.push(Event::Start(i));
                yield_rounds(3 - i as usize % 3).await;
                log.push(Event::End(i));
                Ok::<_, E>(())
            }
        }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(events.get(), one_at_a_time(0..20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_panic_in_f_is_reraised_with_its_payload_after_the_rest_stopped() {
    const LIMIT: usize = 3;
    let stopped = DropCounter::new();
    let first_wave = Arc::new(Barrier::new(LIMIT));
    let (guards, wave) = (stopped.clone(), first_wave.clone());
    let payload = expect_panic(nursery::for_each(0..100u32, LIMIT, move |i| {
        let guard = (i != 0).then(|| guards.guard());
        let first_wave = wave.clone();
        async move {
            let _guard = guard;
            first_wave.wait().await;
            if i == 0 {
                panic_any(Boom(0));
            }
            pending::<Result<(), E>>().await
        }
    }))
    .await;
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(0)));
    assert_eq!(stopped.dropped(), 2, "a sibling outlived the re-raise");
}

#[tokio::test(start_paused = true)]
async fn for_each_returns_timed_out_at_its_enclosing_scope_deadline() {
    let started = Log::new();
    let stopped = DropCounter::new();
    let (log, guards) = (started.clone(), stopped.clone());
    let (result_tx, result_rx) = oneshot::channel();
    let outer = within(
        "the scope",
        Nursery::builder()
            .timeout(ms(10))
            .grace(GRACE)
            .scope(|n: Nursery<E>| async move {
                n.spawn(async move {
                    let result = nursery::for_each(0..100u32, 2, move |i| {
                        log.push(i);
                        let guard = guards.guard();
                        async move {
                            let _guard = guard;
                            nursery::cancelled().await;
                            Err(i)
                        }
                    })
                    .await;
                    let _ = result_tx.send(result);
                    Ok(())
                });
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert_eq!(outer, Err(Error::TimedOut));
    assert_eq!(result_rx.await, Ok(Err(Error::TimedOut)));
    assert_eq!(started.sorted(), [0, 1]);
    assert_eq!(stopped.dropped(), 2);
}

#[tokio::test]
async fn for_each_in_a_cancelled_scope_calls_f_on_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            n.cancel();
            Ok(nursery::for_each(0..10u32, 2, move |_| {
                counter.fetch_add(1, SeqCst);
                async { Ok::<_, E>(()) }
            })
            .await)
        }),
    )
    .await;
    assert_eq!(result, Ok(Err(Error::Cancelled)));
    assert_eq!(calls.load(SeqCst), 0);
}

#[test]
#[should_panic(expected = "nursery::for_each(.., 0, ..): the limit must be at least 1")]
fn for_each_with_limit_0_panics() {
    let _future = nursery::for_each(0..10u32, 0, |_| async { Ok::<_, E>(()) });
}

// Same cause as `map_starts_no_item_after_a_failure_even_during_a_grace_period`.
#[tokio::test(start_paused = true)]
async fn for_each_starts_no_item_after_an_outside_cancel_even_during_a_grace_period() {
    const LIMIT: usize = 2;
    let shutdown = CancellationToken::new();
    let started = Log::new();
    let first_wave = Arc::new(Barrier::new(LIMIT + 1));
    let (log, wave) = (started.clone(), first_wave.clone());
    let (result_tx, result_rx) = oneshot::channel();
    let outer = within(
        "the scope",
        Nursery::builder()
            .cancel_on(shutdown.clone())
            .grace(GRACE)
            .scope(|n: Nursery<E>| async move {
                n.spawn(async move {
                    let result = nursery::for_each(0..10u32, LIMIT, move |i| {
                        log.push(i);
                        let first_wave = wave.clone();
                        async move {
                            if i < LIMIT as u32 {
                                first_wave.wait().await;
                                // Stops cleanly when told to.
                                nursery::cancelled().await;
                            }
                            Ok::<_, E>(())
                        }
                    })
                    .await;
                    let _ = result_tx.send(result);
                    Ok(())
                });
                first_wave.wait().await;
                shutdown.cancel();
                pending::<Result<(), E>>().await
            }),
    )
    .await;
    assert_eq!(outer, Err(Error::Cancelled));
    assert_eq!(result_rx.await, Ok(Err(Error::Cancelled)));
    assert_eq!(started.sorted(), [0, 1], "items started after the cancel");
}

// ===== map_unordered =====

#[tokio::test(start_paused = true)]
async fn map_unordered_yields_results_in_completion_order() {
    const DELAYS: [u64; 6] = [30, 10, 50, 20, 60, 40];
    // With room for all: by delay. With 2 at a time: 0 and 1 start; 2
    // starts when 1 ends (10 -> 60), 3 when 0 ends (30 -> 50), 4 when 3
    // ends (50 -> 110), 5 when 2 ends (60 -> 100).
    for (limit, expected) in [(6, [1, 3, 0, 5, 2, 4]), (2, [1, 0, 3, 2, 5, 4])] {
        let results: Vec<_> = within(
            "nursery::map_unordered",
            nursery::map_unordered(stream::iter(0..6u32), limit, |i| async move {
                sleep(ms(DELAYS[i as usize])).await;
                Ok::<_, E>(i)
            })
            .collect(),
        )
        .await;
        assert_eq!(
            results,
            expected.map(Ok),
            "with limit {limit}: completion order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn map_unordered_runs_at_most_limit_calls_at_once() {
    const LIMIT: usize = 3;
    const ITEMS: u32 = 60;
    let gauge = HighWater::new();
    let first_wave = Arc::new(Barrier::new(LIMIT));
    let (in_f, wave) = (gauge.clone(), first_wave.clone());
    let results = nursery::map_unordered(stream::iter(0..ITEMS), LIMIT, move |i| {
        let (gauge, first_wave) = (in_f.clone(), wave.clone());
        async move {
            let _running = gauge.enter();
            if (i as usize) < LIMIT {
                first_wave.wait().await;
            }
            yield_rounds(i as usize % 4).await;
            Ok::<_, E>(i)
        }
    });
    let mut results: Vec<u32> = within("the results", results.map(Result::unwrap).collect()).await;
    results.sort_unstable();
    assert_eq!(results, (0..ITEMS).collect::<Vec<_>>());
    assert_eq!(gauge.peak(), LIMIT, "never more than the limit at once");
}

// The doc of `map_unordered`: "at most `limit` calls are in flight and
// `max(limit, 32)` results wait to be taken": a slow consumer holds the
// fan-out back, so items are pulled at most that far ahead of it.
#[tokio::test]
async fn map_unordered_pulls_a_bounded_number_of_items_ahead_of_a_slow_consumer() {
    const LIMIT: usize = 2;
    const BUFFER: usize = 32;
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let items = stream::iter(0..200u32).inspect(move |_| {
        counter.fetch_add(1, SeqCst);
    });
    let mut results = nursery::map_unordered(items, LIMIT, |i| async move { Ok::<_, E>(i) });
    let mut taken = 0;
    let mut most_ahead = 0;
    while let Some(result) = within("the next result", results.next()).await {
        result.unwrap();
        taken += 1;
        // Calls in flight plus results not taken.
        most_ahead = most_ahead.max(pulled.load(SeqCst) - taken);
        // A slow consumer: every call that can finish meanwhile does.
        yield_rounds(5).await;
    }
    assert_eq!(taken, 200);
    assert!(
        most_ahead <= LIMIT + BUFFER,
        "{most_ahead} items pulled ahead of the consumer with limit {LIMIT}"
    );
    // The workers did run ahead: results waited for the slow consumer.
    assert!(
        most_ahead > LIMIT,
        "the workers never ran ahead: {most_ahead}"
    );
}

#[tokio::test(start_paused = true)]
async fn map_unordered_ends_with_the_first_error_which_cancels_the_rest() {
    let started = Log::new();
    let stopped = DropCounter::new();
    let (log, guards) = (started.clone(), stopped.clone());
    let mut results = nursery::map_unordered(stream::iter(0..100u32), 2, move |i| {
        log.push(i);
        let guard = (i == 1).then(|| guards.guard());
        async move {
            let _guard = guard;
            match i {
                // 0 ends at 1 ms, making room for 2, which fails at 2 ms
                // while 1 is still busy.
                0 => {
                    sleep(ms(1)).await;
                    Ok(0)
                }
                1 => pending().await,
                2 => {
                    sleep(ms(1)).await;
                    Err(2)
                }
                _ => Ok(i),
            }
        }
    });
    assert_eq!(within("the next result", results.next()).await, Some(Ok(0)));
    assert_eq!(
        within("the next result", results.next()).await,
        Some(Err(failed(2)))
    );
    assert_eq!(stopped.dropped(), 1, "a pending sibling outlived the error");
    assert_eq!(
        within("the next result", results.next()).await,
        None,
        "the stream ends with the error"
    );
    assert_eq!(within("the next result", results.next()).await, None);
    assert_eq!(started.sorted(), [0, 1, 2], "items started after the error");
}

// The cause: the permit is captured by the child's own future, so it is
// released when that future returns `Err` (or unwinds), before the child
// wrapper reports the error to the scope. The woken body takes the slot
// and starts the next item in between; sometimes that item even succeeds
// and its value is yielded ahead of the error.
#[test]
fn map_unordered_starts_no_item_after_a_failure_on_the_multi_thread_runtime() {
    const ROUNDS: usize = 2000;
    // The consumer runs in `block_on`, on its own thread: woken by a slot
    // coming free, it may poll while the failing call's worker thread is
    // still on its way to report the error.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let late_starts = Arc::new(AtomicUsize::new(0));
    let mut wrong_ends = Vec::new();
    for _ in 0..ROUNDS {
        let late = late_starts.clone();
        // One at a time: item 1 may start only once item 0 has succeeded.
        let results: Vec<_> = runtime.block_on(within(
            "nursery::map_unordered",
            nursery::map_unordered(stream::iter(0..2u32), 1, move |i| {
                if i == 1 {
                    late.fetch_add(1, SeqCst);
                }
                async move { if i == 0 { Err(0) } else { Ok::<_, E>(i) } }
            })
            .collect(),
        ));
        if results != [Err(failed(0))] {
            wrong_ends.push(results);
        }
    }
    assert_eq!(
        late_starts.load(SeqCst),
        0,
        "item 1 started after item 0 failed, in that many of {ROUNDS} rounds"
    );
    assert_eq!(wrong_ends, Vec::<Vec<_>>::new());
}

#[tokio::test]
async fn map_unordered_of_no_items_ends_at_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let f = move |i: u32| {
        counter.fetch_add(1, SeqCst);
        async move { Ok::<_, E>(i) }
    };
    let mut results = nursery::map_unordered(stream::iter(Vec::new()), 4, f.clone());
    assert_eq!(results.next().now_or_never(), Some(None));
    let mut results = nursery::map_unordered(stream::empty(), 1, f);
    assert_eq!(results.next().now_or_never(), Some(None));
    assert_eq!(calls.load(SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn map_unordered_with_limit_1_runs_one_item_at_a_time_in_input_order() {
    const DELAYS: [u64; 5] = [30, 10, 20, 5, 1];
    let events = Log::new();
    let log = events.clone();
    let opened = Instant::now();
    let results: Vec<_> = within(
        "nursery::map_unordered",
        nursery::map_unordered(stream::iter(0..5u32), 1, move |i| {
            let log = log.clone();
            async move {
                log.push(Event::Start(i));
                sleep(ms(DELAYS[i as usize])).await;
                log.push(Event::End(i));
                Ok::<_, E>(i)
            }
        })
        .collect(),
    )
    .await;
    assert_eq!(results, [0, 1, 2, 3, 4].map(Ok));
    assert_eq!(events.get(), one_at_a_time(0..5));
    assert_eq!(opened.elapsed(), ms(DELAYS.iter().sum()));
}

// On the current-thread runtime: on the multi-thread one the panicking
// call's slot may start the next item before the panic reaches the scope
// (see `map_unordered_starts_no_item_after_a_failure_on_the_multi_thread_runtime`).
#[tokio::test]
async fn map_unordered_panic_in_f_is_reraised_with_its_payload_after_the_rest_stopped() {
    const LIMIT: usize = 3;
    let started = Log::new();
    let stopped = DropCounter::new();
    let first_wave = Arc::new(Barrier::new(LIMIT));
    let (log, guards, wave) = (started.clone(), stopped.clone(), first_wave.clone());
    let results = nursery::map_unordered(stream::iter(0..100u32), LIMIT, move |i| {
        log.push(i);
        let guard = (i != 2).then(|| guards.guard());
        let first_wave = wave.clone();
        async move {
            let _guard = guard;
            first_wave.wait().await;
            if i == 2 {
                panic_any(Boom(2));
            }
            pending::<Result<u32, E>>().await
        }
    });
    let payload = expect_panic(results.collect::<Vec<_>>()).await;
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(2)));
    assert_eq!(stopped.dropped(), 2, "a sibling outlived the re-raise");
    assert_eq!(started.sorted(), [0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn map_unordered_dropped_midway_drops_its_running_calls_and_starts_no_more() {
    const LIMIT: usize = 3;
    let calls = Arc::new(AtomicUsize::new(0));
    let dropped = DropCounter::new();
    let completed = Log::new();
    let (counter, guards, done) = (calls.clone(), dropped.clone(), completed.clone());
    let mut results = nursery::map_unordered(stream::iter(0..100u32), LIMIT, move |i| {
        counter.fetch_add(1, SeqCst);
        let guard = guards.guard();
        let done = done.clone();
        async move {
            let _guard = guard;
            if i >= 2 {
                pending::<()>().await;
            }
            done.push(i);
            Ok::<_, E>(i)
        }
    });
    assert_eq!(within("the next result", results.next()).await, Some(Ok(0)));
    assert_eq!(within("the next result", results.next()).await, Some(Ok(1)));
    let made = calls.load(SeqCst);
    assert!(
        (3..=2 + LIMIT).contains(&made),
        "{made} calls for 2 results with limit {LIMIT}"
    );
    drop(results);
    // Every call made so far is dropped: the two that finished and the
    // running ones, which never complete.
    within("the dropped items", dropped.wait_for(made)).await;
    yield_rounds(10).await;
    assert_eq!(calls.load(SeqCst), made, "an item started after the drop");
    assert_eq!(completed.get(), [0, 1]);
}

/// Consumes `map_unordered` in a child of a scope with a grace period, so
/// the consumer survives the cancel long enough to see the end of the
/// stream. Item 0 succeeds at once; the next two wait on `first_wave` (with
/// the outer body), then stop when cancelled, with an error that is only a
/// consequence of the cancel.
async fn map_unordered_in_a_child(
    outer: nursery::Builder,
    shutdown: Option<CancellationToken>,
) -> (
    Result<(), Error<E>>,
    Vec<Result<u32, Error<E>>>,
    Vec<u32>,
    usize,
) {
    let started = Log::new();
    let stopped = DropCounter::new();
    let first_wave = Arc::new(Barrier::new(3));
    let (log, guards, wave) = (started.clone(), stopped.clone(), first_wave.clone());
    let (results_tx, results_rx) = oneshot::channel();
    let outer = within(
        "the scope",
        outer.scope(|n: Nursery<E>| async move {
            n.spawn(async move {
                let results = nursery::map_unordered(stream::iter(0..100u32), 2, move |i| {
                    log.push(i);
                    let guard = (i > 0).then(|| guards.guard());
                    let first_wave = wave.clone();
                    async move {
                        let _guard = guard;
                        if i == 0 {
                            return Ok(0);
                        }
                        first_wave.wait().await;
                        nursery::cancelled().await;
                        Err(i)
                    }
                });
                let _ = results_tx.send(results.collect::<Vec<_>>().await);
                Ok(())
            });
            first_wave.wait().await;
            if let Some(shutdown) = shutdown {
                shutdown.cancel();
            }
            pending::<Result<(), E>>().await
        }),
    )
    .await;
    let results = within("the result", results_rx)
        .await
        .expect("the consumer was aborted before the stream ended");
    (outer, results, started.sorted(), stopped.dropped())
}

#[tokio::test(start_paused = true)]
async fn map_unordered_ends_with_cancelled_when_its_enclosing_scope_is_cancelled() {
    let shutdown = CancellationToken::new();
    let builder = Nursery::builder().cancel_on(shutdown.clone()).grace(GRACE);
    let (outer, results, started, stopped) =
        map_unordered_in_a_child(builder, Some(shutdown)).await;
    assert_eq!(outer, Err(Error::Cancelled));
    assert_eq!(results, [Ok(0), Err(Error::Cancelled)]);
    assert_eq!(started, [0, 1, 2], "items started after the cancel");
    assert_eq!(stopped, 2);
}

#[tokio::test(start_paused = true)]
async fn map_unordered_ends_with_timed_out_at_its_enclosing_scope_deadline() {
    let opened = Instant::now();
    let builder = Nursery::builder().timeout(ms(10)).grace(GRACE);
    let (outer, results, started, stopped) = map_unordered_in_a_child(builder, None).await;
    assert_eq!(outer, Err(Error::TimedOut));
    assert_eq!(results, [Ok(0), Err(Error::TimedOut)]);
    assert_eq!(started, [0, 1, 2]);
    assert_eq!(stopped, 2);
    assert_eq!(opened.elapsed(), ms(10));
}

#[test]
#[should_panic(expected = "nursery::map_unordered(.., 0, ..): the limit must be at least 1")]
fn map_unordered_with_limit_0_panics() {
    let _stream =
        nursery::map_unordered(stream::iter(0..10u32), 0, |i| async move { Ok::<_, E>(i) });
}

// ===== race =====

type Reply = Result<&'static str, &'static str>;

/// A racer that answers `reply` after `after` ms, watched by `tracker`.
fn racer(
    tracker: &Tracker,
    after: u64,
    reply: Reply,
) -> impl Future<Output = Reply> + Send + 'static {
    tracker.track(async move {
        sleep(ms(after)).await;
        reply
    })
}

#[tokio::test(start_paused = true)]
async fn race_first_ok_in_time_wins_even_if_it_is_not_the_first_future() {
    let trackers: [Tracker; 4] = Default::default();
    let racers = [
        racer(&trackers[0], 30, Ok("a")),
        // An early error does not end the race.
        racer(&trackers[1], 5, Err("x")),
        racer(&trackers[2], 10, Ok("b")),
        racer(&trackers[3], 20, Ok("c")),
    ];
    let opened = Instant::now();
    assert_eq!(
        within("nursery::race", nursery::race(racers)).await,
        Ok("b")
    );
    assert_eq!(opened.elapsed(), ms(10));
    assert!(trackers[1].completed() && trackers[2].completed());
    for loser in [&trackers[0], &trackers[3]] {
        assert!(loser.was_dropped(), "a loser outlived `race`");
        assert!(!loser.completed(), "a loser ran to completion");
    }
    // Later, still nothing: the losers are gone.
    sleep(ms(100)).await;
    assert!(!trackers[0].completed() && !trackers[3].completed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_runs_every_future_at_once_and_cancels_the_losers() {
    const RACERS: u32 = 8;
    let all_running = Arc::new(Barrier::new(RACERS as usize));
    let losers = DropCounter::new();
    let trackers: Vec<Tracker> = (0..RACERS).map(|_| Tracker::new()).collect();
    let racers = (0..RACERS).map(|i| {
        let (all_running, guard) = (all_running.clone(), losers.guard());
        trackers[i as usize].track(async move {
            // Passes only if every racer is running at once.
            all_running.wait().await;
            if i == 5 {
                return Ok(i);
            }
            let _guard = guard;
            pending::<Result<u32, E>>().await
        })
    });
    assert_eq!(within("nursery::race", nursery::race(racers)).await, Ok(5));
    // Checked at once: the losers were dropped before `race` returned.
    assert_eq!(losers.dropped(), RACERS as usize);
    for (i, tracker) in trackers.iter().enumerate() {
        assert!(tracker.was_dropped());
        assert_eq!(tracker.completed(), i == 5, "racer {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn race_when_all_fail_returns_every_error_in_failure_order() {
    let trackers: [Tracker; 3] = Default::default();
    let racers = [
        racer(&trackers[0], 20, Err("a")),
        racer(&trackers[1], 10, Err("b")),
        racer(&trackers[2], 30, Err("c")),
    ];
    let opened = Instant::now();
    assert_eq!(
        within("nursery::race", nursery::race(racers)).await,
        Err(Error::Failed {
            error: "b",
            suppressed: vec!["a", "c"],
            omitted: 0,
        })
    );
    assert_eq!(opened.elapsed(), ms(30), "every racer was waited for");
}

#[tokio::test(start_paused = true)]
async fn race_of_one_future_returns_its_result() {
    let tracker = Tracker::new();
    assert_eq!(
        within(
            "nursery::race",
            nursery::race([racer(&tracker, 1, Ok("only"))])
        )
        .await,
        Ok("only")
    );
    assert_eq!(
        within(
            "nursery::race",
            nursery::race([racer(&tracker, 1, Err("no"))])
        )
        .await,
        Err(failed("no"))
    );
}

#[test]
#[should_panic(expected = "nursery::race: no futures to race; at least one is needed")]
fn race_of_no_futures_panics() {
    let _future = nursery::race(Vec::<std::future::Ready<Result<u32, E>>>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_panic_is_reraised_with_its_payload_after_the_rest_stopped() {
    const RACERS: u32 = 4;
    let all_running = Arc::new(Barrier::new(RACERS as usize));
    let stopped = DropCounter::new();
    let racers = (0..RACERS).map(|i| {
        let (all_running, guard) = (all_running.clone(), stopped.guard());
        async move {
            let _guard = guard;
            all_running.wait().await;
            if i == 2 {
                panic_any(Boom(2));
            }
            pending::<Result<u32, E>>().await
        }
    });
    let payload = expect_panic(nursery::race(racers)).await;
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(2)));
    assert_eq!(
        stopped.dropped(),
        RACERS as usize,
        "a racer outlived the re-raise"
    );
}

/// Runs `race` in a child of a scope with a grace period, so the child
/// survives the cancel long enough to report what `race` returned. The
/// racers wait on `all_running` (with the outer body), then stop when
/// cancelled, with an error that is only a consequence of the cancel.
async fn race_in_a_child(
    outer: nursery::Builder,
    shutdown: Option<CancellationToken>,
) -> (Result<(), Error<E>>, Result<u32, Error<E>>, usize) {
    const RACERS: u32 = 3;
    let stopped = DropCounter::new();
    let all_running = Arc::new(Barrier::new(RACERS as usize + 1));
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (all_running, guard) = (all_running.clone(), stopped.guard());
            async move {
                let _guard = guard;
                all_running.wait().await;
                nursery::cancelled().await;
                Err(i)
            }
        })
        .collect();
    let (result_tx, result_rx) = oneshot::channel();
    let outer = within(
        "the scope",
        outer.scope(|n: Nursery<E>| async move {
            n.spawn(async move {
                let _ = result_tx.send(nursery::race(racers).await);
                Ok(())
            });
            all_running.wait().await;
            if let Some(shutdown) = shutdown {
                shutdown.cancel();
            }
            pending::<Result<(), E>>().await
        }),
    )
    .await;
    let result = within("the result", result_rx)
        .await
        .expect("the child calling `race` was aborted before `race` returned");
    (outer, result, stopped.dropped())
}

#[tokio::test(start_paused = true)]
async fn race_returns_cancelled_when_its_enclosing_scope_is_cancelled() {
    let shutdown = CancellationToken::new();
    let builder = Nursery::builder().cancel_on(shutdown.clone()).grace(GRACE);
    let (outer, result, stopped) = race_in_a_child(builder, Some(shutdown)).await;
    assert_eq!(outer, Err(Error::Cancelled));
    assert_eq!(result, Err(Error::Cancelled));
    assert_eq!(stopped, 3);
}

#[tokio::test(start_paused = true)]
async fn race_returns_timed_out_at_its_enclosing_scope_deadline() {
    let opened = Instant::now();
    let builder = Nursery::builder().timeout(ms(10)).grace(GRACE);
    let (outer, result, stopped) = race_in_a_child(builder, None).await;
    assert_eq!(outer, Err(Error::TimedOut));
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(stopped, 3);
    assert_eq!(opened.elapsed(), ms(10));
}

#[tokio::test]
async fn race_in_a_cancelled_scope_polls_nothing() {
    let trackers: [Tracker; 2] = Default::default();
    let racers = [
        racer(&trackers[0], 1, Ok("a")),
        racer(&trackers[1], 1, Ok("b")),
    ];
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            n.cancel();
            Ok(nursery::race(racers).await)
        }),
    )
    .await;
    assert_eq!(result, Ok(Err(Error::Cancelled)));
    for tracker in &trackers {
        assert!(!tracker.was_polled());
        assert!(tracker.was_dropped());
    }
}

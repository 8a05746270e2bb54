//! `Pipeline`: stages connected by bounded channels, each with its own
//! worker count; input order with `ordered()`; errors, panics and
//! cancellation reach every stage, upstream and downstream.
//!
//! Most tests run on a paused clock: per-item virtual sleeps scramble the
//! completion order deterministically, and a virtual sleep in the test
//! returns only once every task is idle (tokio advances a paused clock only
//! then), which is how a test knows the pipeline has settled.

use std::future::pending;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use nursery::{Error, Nursery, Pipeline};
use nursery_tests::{DropCounter, DropGuard, HighWater, catch_panic_site, within, yield_rounds};
use tokio::sync::oneshot;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

type E = &'static str;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn load(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// `items`, pulled lazily, counting each item pulled in `pulled`; `alive`
/// is dropped with the iterator, that is when the source task is gone.
fn counted<I>(
    items: I,
    pulled: &Arc<AtomicUsize>,
    alive: DropGuard,
) -> impl Iterator<Item = I::Item> + Send + 'static
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
{
    let pulled = pulled.clone();
    items.into_iter().inspect(move |_| {
        let _alive = &alive;
        pulled.fetch_add(1, Ordering::SeqCst);
    })
}

// ----- the Go seed's pipelines -----

#[tokio::test]
async fn seed_generate_square_filter_is_three_lines() {
    let even_squares = within(
        "the pipeline",
        Pipeline::from_iter(1..=10u64)
            .stage(4, |x| async move { Ok::<_, E>(x * x) })
            .filter_map(2, |x| async move { Ok((x % 2 == 0).then_some(x)) })
            .ordered()
            .collect(),
    )
    .await;
    assert_eq!(even_squares, Ok(vec![4, 16, 36, 64, 100]));
}

#[tokio::test]
async fn seed_generate_upper_prefix_is_three_lines() {
    let shouted = within(
        "the pipeline",
        Pipeline::from_iter(["alpha", "beta", "gamma", "delta"])
            .stage(2, |word| async move { Ok::<_, E>(word.to_uppercase()) })
            .stage(3, |word| async move { Ok(format!("> {word}")) })
            .ordered()
            .collect(),
    )
    .await;
    assert_eq!(
        shouted,
        Ok(vec![
            "> ALPHA".to_owned(),
            "> BETA".to_owned(),
            "> GAMMA".to_owned(),
            "> DELTA".to_owned()
        ])
    );
}

// ----- order -----

const SCRAMBLED_ITEMS: u64 = 24;

/// Three stages with 3, 2 and 4 workers, each sleeping a different virtual
/// time per item, so that items overtake each other in every stage.
fn scrambled() -> Pipeline<u64, E> {
    Pipeline::from_iter(0..SCRAMBLED_ITEMS)
        .stage(3, |x| async move {
            sleep(ms((x * 7) % 5)).await;
            Ok(x * 2)
        })
        .stage(2, |x| async move {
            sleep(ms((SCRAMBLED_ITEMS * 2 - x) % 4)).await;
            Ok(x + 1)
        })
        .stage(4, |x| async move {
            sleep(ms((x * 5) % 7)).await;
            Ok(x * 10)
        })
}

fn scrambled_expected() -> Vec<u64> {
    (0..SCRAMBLED_ITEMS).map(|x| (x * 2 + 1) * 10).collect()
}

#[tokio::test(start_paused = true)]
async fn ordered_keeps_input_order_through_stages_with_scrambled_completion() {
    let at_the_end = within("the pipeline", scrambled().ordered().collect()).await;
    assert_eq!(at_the_end, Ok(scrambled_expected()));

    // `ordered()` may come anywhere before `collect()`.
    let up_front = within(
        "the pipeline",
        Pipeline::from_iter(0..SCRAMBLED_ITEMS)
            .ordered()
            .stage(4, |x| async move {
                sleep(ms((SCRAMBLED_ITEMS - x) % 6)).await;
                Ok::<_, E>(x)
            })
            .filter_map(3, |x| async move {
                sleep(ms((x * 3) % 4)).await;
                Ok((x % 3 != 0).then_some(x))
            })
            .collect(),
    )
    .await;
    let expected: Vec<u64> = (0..SCRAMBLED_ITEMS).filter(|x| x % 3 != 0).collect();
    assert_eq!(up_front, Ok(expected));
}

#[tokio::test(start_paused = true)]
async fn unordered_results_arrive_in_completion_order_as_the_same_multiset() {
    let arrived = within("the pipeline", scrambled().collect()).await.unwrap();
    assert_ne!(
        arrived,
        scrambled_expected(),
        "the per-item sleeps scramble the completion order"
    );
    let mut sorted = arrived;
    sorted.sort_unstable();
    assert_eq!(sorted, scrambled_expected(), "every result, once");
}

#[tokio::test(start_paused = true)]
async fn one_worker_per_stage_keeps_order_without_ordered() {
    let result = within(
        "the pipeline",
        Pipeline::from_iter(0..20u64)
            .stage(1, |x| async move {
                sleep(ms((x * 7) % 5)).await;
                Ok::<_, E>(x + 100)
            })
            .filter_map(1, |x| async move {
                sleep(ms((20 - x % 20) % 3)).await;
                Ok((x % 4 != 0).then_some(x))
            })
            .stage(1, |x| async move {
                sleep(ms(x % 2)).await;
                Ok(x * 2)
            })
            .collect(),
    )
    .await;
    let expected: Vec<u64> = (100..120).filter(|x| x % 4 != 0).map(|x| x * 2).collect();
    assert_eq!(result, Ok(expected));
}

// ----- worker counts and bounded channels -----

/// Holds a slot of `gauge` until it has seen `workers` holders at once
/// (bounded, so a broken limit fails the test instead of hanging it), and
/// a little longer: without a limit more items would pile in meanwhile.
async fn occupy(gauge: HighWater, workers: usize) {
    let _busy = gauge.enter();
    for _ in 0..10_000 {
        if gauge.peak() >= workers {
            break;
        }
        tokio::task::yield_now().await;
    }
    yield_rounds(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_stage_runs_at_most_its_worker_count_at_once() {
    const WORKERS: [usize; 3] = [3, 1, 4];
    const ITEMS: u64 = 40;
    let gauges: [HighWater; 3] = Default::default();
    let [first, second, third] = gauges.clone();
    let result = within(
        "the pipeline",
        Pipeline::from_iter(0..ITEMS)
            .stage(WORKERS[0], move |x| {
                let gauge = first.clone();
                async move {
                    occupy(gauge, WORKERS[0]).await;
                    Ok::<_, E>(x)
                }
            })
            .filter_map(WORKERS[1], move |x| {
                let gauge = second.clone();
                async move {
                    occupy(gauge, WORKERS[1]).await;
                    Ok(Some(x))
                }
            })
            .stage(WORKERS[2], move |x| {
                let gauge = third.clone();
                async move {
                    occupy(gauge, WORKERS[2]).await;
                    Ok(x)
                }
            })
            .collect(),
    )
    .await;
    let mut result = result.unwrap();
    result.sort_unstable();
    assert_eq!(result, (0..ITEMS).collect::<Vec<_>>());
    assert_eq!(
        gauges.each_ref().map(HighWater::peak),
        WORKERS,
        "each stage's peak of live workers: never more than its count, and the count is used"
    );
}

/// Items pulled from the source and not yet through the last stage, at
/// most, with `w1` workers in the first stage and any number in the last:
/// the pipeline's code gives the source channel a capacity of 1 and each
/// stage's output channel a capacity of its worker count. With the last
/// stage's `w2` workers each holding an item, the first stage's output
/// channel holds `w1`, its `w1` workers each hold one waiting to send, the
/// source channel holds 1, and the source holds 1 waiting to send.
const fn in_flight_bound(w1: usize, w2: usize) -> usize {
    w2 + w1 + w1 + 1 + 1
}

#[tokio::test(start_paused = true)]
async fn a_blocked_last_stage_makes_the_source_stop_pulling() {
    const W1: usize = 3;
    const W2: usize = 2;
    const ITEMS: u64 = 1_000;
    let pulled = Arc::new(AtomicUsize::new(0));
    let release = CancellationToken::new();
    let gone = DropCounter::new();
    let pipeline = Pipeline::from_iter(counted(0..ITEMS, &pulled, gone.guard()))
        .stage(W1, |x| async move { Ok::<_, E>(x) })
        .stage(W2, {
            let release = release.clone();
            move |x| {
                let release = release.clone();
                async move {
                    release.cancelled().await;
                    Ok(x)
                }
            }
        })
        .ordered()
        .collect();
    let observe = async {
        // Virtual time passes only once every task waits.
        sleep(Duration::from_secs(1)).await;
        let blocked = load(&pulled);
        sleep(Duration::from_secs(1)).await;
        let later = load(&pulled);
        release.cancel();
        (blocked, later)
    };
    let (result, (blocked, later)) =
        within("the pipeline", async { tokio::join!(pipeline, observe) }).await;

    let bound = in_flight_bound(W1, W2);
    assert!(
        blocked > W2 && blocked <= bound,
        "pulled {blocked} items while the last stage was blocked (bound {bound})"
    );
    assert_eq!(later, blocked, "the source kept pulling while blocked");
    assert_eq!(result, Ok((0..ITEMS).collect()));
    assert_eq!(gone.dropped(), 1, "the source is gone after collect");
}

#[tokio::test(start_paused = true)]
async fn items_in_flight_stay_bounded_with_a_slow_last_stage() {
    const W1: usize = 4;
    const W2: usize = 2;
    const ITEMS: u64 = 200;
    let pulled = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let most_in_flight = Arc::new(AtomicUsize::new(0));
    let source = (0..ITEMS).inspect({
        let (pulled, done, most) = (pulled.clone(), done.clone(), most_in_flight.clone());
        move |_| {
            let pulled = pulled.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(pulled - load(&done), Ordering::SeqCst);
        }
    });
    let result = within(
        "the pipeline",
        Pipeline::from_iter(source)
            .stage(W1, |x| async move { Ok::<_, E>(x) })
            .stage(W2, move |x| {
                let done = done.clone();
                async move {
                    sleep(ms(10)).await;
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok(x)
                }
            })
            .collect(),
    )
    .await;
    assert_eq!(result.map(|items| items.len()), Ok(200));
    let most = load(&most_in_flight);
    let bound = in_flight_bound(W1, W2);
    assert!(
        most > W2 && most <= bound,
        "at most {most} items were in flight at once (bound {bound})"
    );
}

// ----- errors and panics -----

/// What the counters of [`fail_in_the_middle`] said at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Snapshot {
    pulled: usize,
    /// Calls of each stage's `f`.
    started: [usize; 3],
    /// Calls of the first stage's `f` that ran to the end.
    finished_first: usize,
}

#[derive(Clone, Debug, Default)]
struct Counts {
    pulled: Arc<AtomicUsize>,
    started: Arc<[AtomicUsize; 3]>,
    finished_first: Arc<AtomicUsize>,
}

impl Counts {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            pulled: load(&self.pulled),
            started: self.started.each_ref().map(load),
            finished_first: load(&self.finished_first),
        }
    }

    fn start(&self, stage: usize) {
        self.started[stage].fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Failure {
    result: Result<Vec<u64>, Error<E>>,
    at_error: Option<Snapshot>,
    /// Futures of `f` in stages 1 and 3 that were pending when the error
    /// came (made minus dropped).
    pending_at_error: usize,
    after: Snapshot,
    /// Futures of `f` in stages 1 and 3: made, dropped.
    futures: (usize, usize),
    /// The source iterator and the three stages' closures dropped.
    gone: usize,
}

const MIDDLE_ERROR: E = "stage 2 failed on item 2";

/// A source that would go on for a long time, a first stage that keeps
/// pulling from it (it filters out every item from 3 on, 10 ms each), a
/// middle stage that fails on item 2 after a second, and a last stage that
/// never finishes an item. With `grace`, the pipeline runs in the body of
/// a scope with that grace period, which the pipeline inherits.
async fn fail_in_the_middle(grace: Option<Duration>) -> Failure {
    let counts = Counts::default();
    let futures = DropCounter::new();
    let made = Arc::new(AtomicUsize::new(0));
    let gone = DropCounter::new();
    let at_error = Arc::new(Mutex::new(None));

    let pipeline = Pipeline::from_iter(counted(0..100_000u64, &counts.pulled, gone.guard()))
        .filter_map(2, {
            let (counts, futures, made, alive) =
                (counts.clone(), futures.clone(), made.clone(), gone.guard());
            move |x| {
                let _alive = &alive;
                counts.start(0);
                made.fetch_add(1, Ordering::SeqCst);
                let (counts, guard) = (counts.clone(), futures.guard());
                async move {
                    let _guard = guard;
                    sleep(ms(10)).await;
                    counts.finished_first.fetch_add(1, Ordering::SeqCst);
                    Ok((x < 3).then_some(x))
                }
            }
        })
        .stage(2, {
            let (counts, futures, made, at_error, alive) = (
                counts.clone(),
                futures.clone(),
                made.clone(),
                at_error.clone(),
                gone.guard(),
            );
            move |x| {
                let _alive = &alive;
                counts.start(1);
                let (counts, futures, made, at_error) = (
                    counts.clone(),
                    futures.clone(),
                    made.clone(),
                    at_error.clone(),
                );
                async move {
                    if x == 2 {
                        sleep(Duration::from_secs(1)).await;
                        let pending = load(&made) - futures.dropped();
                        *at_error.lock().unwrap() = Some((counts.snapshot(), pending));
                        return Err(MIDDLE_ERROR);
                    }
                    Ok(x)
                }
            }
        })
        .stage(2, {
            let (counts, futures, made, alive) =
                (counts.clone(), futures.clone(), made.clone(), gone.guard());
            move |x| {
                let _alive = &alive;
                counts.start(2);
                made.fetch_add(1, Ordering::SeqCst);
                let guard = futures.guard();
                async move {
                    let _guard = guard;
                    pending::<()>().await;
                    Ok(x)
                }
            }
        })
        .collect();

    let result = match grace {
        None => within("the pipeline", pipeline).await,
        Some(grace) => within(
            "the scope around the pipeline",
            Nursery::builder()
                .grace(grace)
                .scope(|_: Nursery<E>| async move { Ok(pipeline.await) }),
        )
        .await
        .expect("the enclosing scope does not fail"),
    };
    let at_error = *at_error.lock().unwrap();
    Failure {
        result,
        at_error: at_error.map(|(snapshot, _)| snapshot),
        pending_at_error: at_error.map_or(0, |(_, pending)| pending),
        after: counts.snapshot(),
        futures: (load(&made), futures.dropped()),
        gone: gone.dropped(),
    }
}

fn assert_stopped_at_the_error(failure: &Failure) {
    assert_eq!(
        failure.result,
        Err(Error::Failed {
            error: MIDDLE_ERROR,
            suppressed: vec![],
            omitted: 0
        })
    );
    let at_error = failure.at_error.expect("the middle stage failed");
    assert!(
        at_error.pulled > 100,
        "the first stage kept pulling until the error: {at_error:?}"
    );
    assert_eq!(at_error.started[2], 2, "the last stage held two items");
    assert!(
        failure.pending_at_error >= 2,
        "futures of `f` pending at the error: {}",
        failure.pending_at_error
    );
    assert_eq!(
        failure.after, at_error,
        "nothing was pulled, started or finished after the error"
    );
    assert_eq!(
        failure.futures.0, failure.futures.1,
        "(made, dropped): every pending future of `f`, upstream and downstream, was dropped"
    );
    assert_eq!(
        failure.gone, 4,
        "the source and every stage's workers are gone when collect returns"
    );
}

#[tokio::test(start_paused = true)]
async fn an_error_in_a_middle_stage_cancels_every_stage_and_is_returned() {
    let failure = fail_in_the_middle(None).await;
    assert_stopped_at_the_error(&failure);
}

#[tokio::test(start_paused = true)]
async fn an_error_stops_the_pipeline_at_once_even_with_an_inherited_grace_period() {
    let mut failure = fail_in_the_middle(Some(Duration::from_secs(10))).await;
    // A grace period lets calls already running finish (G6); nothing new is
    // pulled or started.
    let at_error = failure.at_error.expect("the middle stage failed");
    let running = at_error.started[0] - at_error.finished_first;
    assert!(
        failure.after.finished_first - at_error.finished_first <= running,
        "only calls running at the error finished after it: {:?} then {:?}",
        at_error,
        failure.after
    );
    failure.after.finished_first = at_error.finished_first;
    assert_stopped_at_the_error(&failure);
}

#[tokio::test(start_paused = true)]
async fn errors_arriving_while_cancelling_are_suppressed() {
    // A grace period lets the other workers' `f` see the cancel and fail
    // in turn, after the first error.
    let pipeline = Pipeline::from_iter(0..3u64).stage(3, |x| async move {
        if x == 0 {
            sleep(ms(100)).await;
            return Err::<u64, E>("first");
        }
        nursery::cancelled().await;
        Err(if x == 1 { "late 1" } else { "late 2" })
    });
    let scope = Nursery::builder()
        .grace(Duration::from_secs(10))
        .scope(|_: Nursery<E>| async move { Ok(pipeline.collect().await) });
    let result = within("the scope around the pipeline", scope)
        .await
        .expect("the enclosing scope does not fail");
    let Err(Error::Failed {
        error,
        mut suppressed,
        ..
    }) = result
    else {
        panic!("expected Failed, got {result:?}");
    };
    suppressed.sort_unstable();
    assert_eq!((error, suppressed), ("first", vec!["late 1", "late 2"]));
}

#[derive(Debug, PartialEq)]
struct StagePanic(u64);

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_stage_is_re_raised_with_its_payload() {
    let futures = DropCounter::new();
    let made = Arc::new(AtomicUsize::new(0));
    let gone = DropCounter::new();
    let pulled = Arc::new(AtomicUsize::new(0));
    let pulled_at_panic = Arc::new(AtomicUsize::new(usize::MAX));
    let pipeline = Pipeline::from_iter(counted(0..1_000u64, &pulled, gone.guard()))
        // Upstream of the panic: items from 3 on never finish.
        .stage(2, {
            let (futures, made, alive) = (futures.clone(), made.clone(), gone.guard());
            move |x| {
                let _alive = &alive;
                made.fetch_add(1, Ordering::SeqCst);
                let guard = futures.guard();
                async move {
                    let _guard = guard;
                    if x >= 3 {
                        pending::<()>().await;
                    }
                    Ok::<_, E>(x)
                }
            }
        })
        // Item 0 never finishes here; item 2 panics.
        .stage(2, {
            let (futures, made, alive) = (futures.clone(), made.clone(), gone.guard());
            let (pulled, pulled_at_panic) = (pulled.clone(), pulled_at_panic.clone());
            move |x| {
                let _alive = &alive;
                made.fetch_add(1, Ordering::SeqCst);
                let guard = futures.guard();
                let (pulled, pulled_at_panic) = (pulled.clone(), pulled_at_panic.clone());
                async move {
                    let _guard = guard;
                    match x {
                        0 => pending::<()>().await,
                        2 => {
                            sleep(ms(10)).await;
                            pulled_at_panic.store(load(&pulled), Ordering::SeqCst);
                            std::panic::panic_any(StagePanic(2));
                        }
                        _ => {}
                    }
                    Ok(x)
                }
            }
        })
        .collect();
    let payload = match within("the pipeline", AssertUnwindSafe(pipeline).catch_unwind()).await {
        Err(payload) => payload,
        other => panic!("expected the stage's panic, got {other:?}"),
    };
    assert_eq!(
        payload.downcast_ref::<StagePanic>(),
        Some(&StagePanic(2)),
        "the original payload"
    );
    assert_eq!(
        futures.dropped(),
        load(&made),
        "every future of `f` was dropped"
    );
    assert_eq!(gone.dropped(), 3, "the source and both stages are gone");
    assert_eq!(
        load(&pulled),
        load(&pulled_at_panic),
        "nothing pulled after"
    );
}

#[derive(Debug, PartialEq)]
struct SourcePanic;

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_source_is_re_raised_with_its_payload() {
    let futures = DropCounter::new();
    let made = Arc::new(AtomicUsize::new(0));
    let source = (0..10u64).inspect(|&x| {
        if x == 3 {
            std::panic::panic_any(SourcePanic);
        }
    });
    let pipeline = Pipeline::from_iter(source)
        .stage(2, {
            let (futures, made) = (futures.clone(), made.clone());
            move |x| {
                made.fetch_add(1, Ordering::SeqCst);
                let guard = futures.guard();
                async move {
                    let _guard = guard;
                    pending::<()>().await;
                    Ok::<u64, E>(x)
                }
            }
        })
        .collect();
    let payload = match within("the pipeline", AssertUnwindSafe(pipeline).catch_unwind()).await {
        Err(payload) => payload,
        other => panic!("expected the source's panic, got {other:?}"),
    };
    assert_eq!(payload.downcast_ref::<SourcePanic>(), Some(&SourcePanic));
    assert_eq!(load(&made), 2, "both workers had an item");
    assert_eq!(
        futures.dropped(),
        2,
        "the stage's pending futures were dropped"
    );
}

// ----- edge cases -----

#[tokio::test]
async fn an_empty_source_gives_an_empty_vec() {
    for ordered in [false, true] {
        let called = Arc::new(AtomicUsize::new(0));
        let counting = |called: &Arc<AtomicUsize>| {
            let called = called.clone();
            move |x: u64| {
                called.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, E>(x) }
            }
        };
        let mut pipeline = Pipeline::from_iter(Vec::<u64>::new())
            .stage(3, counting(&called))
            .filter_map(2, |x| async move { Ok(Some(x)) })
            .stage(1, counting(&called));
        if ordered {
            pipeline = pipeline.ordered();
        }
        assert_eq!(
            within("the pipeline", pipeline.collect()).await,
            Ok(vec![]),
            "ordered: {ordered}"
        );
        assert_eq!(load(&called), 0, "no stage ran");
    }
}

#[tokio::test]
async fn a_pipeline_without_stages_collects_its_source() {
    let items = within(
        "the pipeline",
        Pipeline::<_, E>::from_iter(0..5u64).collect(),
    )
    .await;
    assert_eq!(items, Ok(vec![0, 1, 2, 3, 4]));
}

#[tokio::test(start_paused = true)]
async fn from_stream_feeds_the_stages() {
    // A `!Unpin` stream that takes its time.
    let stream = futures_util::stream::unfold(0u64, |i| async move {
        if i == 6 {
            return None;
        }
        sleep(ms(5)).await;
        Some((i, i + 1))
    });
    let squares = within(
        "the pipeline",
        Pipeline::from_stream(stream)
            .stage(3, |x| async move {
                sleep(ms(10 - x)).await;
                Ok::<_, E>(x * x)
            })
            .ordered()
            .collect(),
    )
    .await;
    assert_eq!(squares, Ok(vec![0, 1, 4, 9, 16, 25]));
}

#[tokio::test(start_paused = true)]
async fn from_stream_is_pulled_lazily_and_an_error_stops_it() {
    const W: usize = 2;
    let pulled = Arc::new(AtomicUsize::new(0));
    let gone = DropCounter::new();
    let stream = futures_util::stream::iter(counted(0..1_000u64, &pulled, gone.guard()));
    let result = within(
        "the pipeline",
        Pipeline::from_stream(stream)
            .stage(W, |x| async move {
                sleep(ms(10)).await;
                if x == 20 {
                    return Err("failed on 20");
                }
                Ok(x)
            })
            .collect(),
    )
    .await;
    assert_eq!(
        result,
        Err(Error::Failed {
            error: "failed on 20",
            suppressed: vec![],
            omitted: 0
        })
    );
    // Item 20, the other worker's item, one in the source channel and one
    // the source holds waiting to send.
    assert!(
        load(&pulled) <= 21 + W + 1,
        "pulled {} of 1000",
        load(&pulled)
    );
    assert_eq!(gone.dropped(), 1, "the stream is dropped with the source");
}

// ----- cancellation from outside -----

/// Runs a pipeline in a child of a scope built by `builder` (with a grace
/// period, so that the child lives on to report what `collect` returned),
/// and `interrupt` next to the scope. The stages' `f` waits for the cancel
/// and then fails, as a cancelled operation would. Returns the scope's
/// result, the pipeline's, and how many of its source and two stages'
/// closures were gone when `collect` returned.
async fn pipeline_in_a_child_of(
    builder: nursery::Builder,
    interrupt: impl Future<Output = ()>,
) -> (Result<(), Error<E>>, Result<Vec<u64>, Error<E>>, usize) {
    let (report_tx, report_rx) = oneshot::channel();
    let outer = builder.scope(|n: Nursery<E>| async move {
        n.spawn(async move {
            let gone = DropCounter::new();
            let pulled = Arc::new(AtomicUsize::new(0));
            let result = within(
                "the pipeline",
                Pipeline::from_iter(counted(0..6u64, &pulled, gone.guard()))
                    .stage(2, {
                        let alive = gone.guard();
                        move |x| {
                            let _alive = &alive;
                            async move {
                                nursery::cancelled().await;
                                Err::<u64, _>(if x % 2 == 0 { "interrupted" } else { "stopped" })
                            }
                        }
                    })
                    .stage(2, {
                        let alive = gone.guard();
                        move |x| {
                            let _alive = &alive;
                            async move { Ok(x) }
                        }
                    })
                    .collect(),
            )
            .await;
            let _ = report_tx.send((result, gone.dropped()));
            Ok(())
        });
        pending().await
    });
    let (outer, ()) = within("the scope", async { tokio::join!(outer, interrupt) }).await;
    let (pipeline, gone) = report_rx.await.expect("the child reported");
    (outer, pipeline, gone)
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_enclosing_scope_returns_cancelled_and_every_stage_is_gone() {
    let shutdown = CancellationToken::new();
    let builder = Nursery::builder()
        .grace(Duration::from_secs(10))
        .cancel_on(shutdown.clone());
    let (outer, pipeline, gone) = pipeline_in_a_child_of(builder, async {
        sleep(Duration::from_secs(1)).await;
        shutdown.cancel();
    })
    .await;
    assert_eq!(outer, Err(Error::Cancelled));
    assert_eq!(
        pipeline,
        Err(Error::Cancelled),
        "not Failed: the stages' errors are consequences of the cancel"
    );
    assert_eq!(gone, 3, "the source and both stages were gone");
}

#[tokio::test(start_paused = true)]
async fn the_enclosing_deadline_returns_timed_out_and_every_stage_is_gone() {
    let builder = Nursery::builder()
        .grace(Duration::from_secs(10))
        .timeout(Duration::from_secs(1));
    let (outer, pipeline, gone) = pipeline_in_a_child_of(builder, async {}).await;
    assert_eq!(outer, Err(Error::TimedOut));
    assert_eq!(pipeline, Err(Error::TimedOut));
    assert_eq!(gone, 3, "the source and both stages were gone");
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_enclosing_scope_aborts_the_stages_at_once() {
    // Without a grace period; `n.cancel()` leaves the body running (G9), so
    // it sees what `collect` returns.
    let futures = DropCounter::new();
    let gone = DropCounter::new();
    let pulled = Arc::new(AtomicUsize::new(0));
    let pulled_at_cancel = Arc::new(AtomicUsize::new(usize::MAX));
    let result = nursery::scope(|n: Nursery<E>| {
        let (futures, gone, pulled) = (futures.clone(), gone.clone(), pulled.clone());
        let pulled_at_cancel = pulled_at_cancel.clone();
        async move {
            let canceller = n.clone();
            let pulled_seen = pulled.clone();
            n.spawn(async move {
                sleep(Duration::from_secs(1)).await;
                pulled_at_cancel.store(load(&pulled_seen), Ordering::SeqCst);
                canceller.cancel();
                Ok(())
            });
            let collected = within(
                "the pipeline",
                Pipeline::from_iter(counted(0..1_000u64, &pulled, gone.guard()))
                    .stage(2, |x| async move { Ok::<_, E>(x) })
                    .stage(2, {
                        let (futures, alive) = (futures.clone(), gone.guard());
                        move |x| {
                            let _alive = &alive;
                            let guard = futures.guard();
                            async move {
                                let _guard = guard;
                                pending::<()>().await;
                                Ok(x)
                            }
                        }
                    })
                    .collect(),
            )
            .await;
            Ok((collected, futures.dropped(), gone.dropped()))
        }
    });
    let (collected, dropped, gone_then) = within("the scope", result)
        .await
        .expect("the body's own result (G9)");
    assert_eq!(collected, Err(Error::Cancelled));
    assert_eq!(
        dropped, 2,
        "both pending futures of the last stage were dropped"
    );
    assert_eq!(gone_then, 2, "the source and the last stage were gone");
    assert_eq!(
        load(&pulled),
        load(&pulled_at_cancel),
        "nothing pulled after"
    );
}

#[tokio::test(start_paused = true)]
async fn an_aborted_child_takes_its_pipeline_with_it() {
    // No grace: the child collecting the pipeline is aborted at once, which
    // drops the pipeline's future; the scope still waits for the stages.
    let shutdown = CancellationToken::new();
    let futures = DropCounter::new();
    let gone = DropCounter::new();
    let pulled = Arc::new(AtomicUsize::new(0));
    let scope = Nursery::builder()
        .cancel_on(shutdown.clone())
        .scope(|n: Nursery<E>| {
            let (futures, gone, pulled) = (futures.clone(), gone.clone(), pulled.clone());
            async move {
                n.spawn(async move {
                    let collected = within(
                        "the pipeline",
                        Pipeline::from_iter(counted(0..1_000u64, &pulled, gone.guard()))
                            .stage(3, {
                                let (futures, alive) = (futures.clone(), gone.guard());
                                move |x| {
                                    let _alive = &alive;
                                    let guard = futures.guard();
                                    async move {
                                        let _guard = guard;
                                        pending::<()>().await;
                                        Ok::<_, E>(x)
                                    }
                                }
                            })
                            .collect(),
                    )
                    .await;
                    // Never reached: the pipeline does not end by itself, and
                    // the child is aborted while it waits.
                    Err::<(), E>(match collected {
                        Ok(_) => "the pipeline ended by itself",
                        Err(_) => "the pipeline failed",
                    })
                });
                pending::<Result<(), E>>().await
            }
        });
    let interrupt = async {
        sleep(Duration::from_secs(1)).await;
        let pulled = load(&pulled);
        shutdown.cancel();
        pulled
    };
    let (result, pulled_at_cancel) =
        within("the scope", async { tokio::join!(scope, interrupt) }).await;
    assert_eq!(result, Err(Error::Cancelled));
    assert_eq!(
        (futures.dropped(), gone.dropped()),
        (3, 2),
        "(pending futures, source and stage) dropped when the scope returned"
    );
    sleep(Duration::from_secs(1)).await;
    assert_eq!(load(&pulled), pulled_at_cancel, "nothing pulled after");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_collect_future_aborts_every_stage() {
    let futures = DropCounter::new();
    let gone = DropCounter::new();
    let pulled = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let collect = Pipeline::from_iter(counted(0..1_000u64, &pulled, gone.guard()))
        .stage(2, {
            let (started, alive) = (started.clone(), gone.guard());
            move |x| {
                let _alive = &alive;
                started.fetch_add(1, Ordering::SeqCst);
                async move {
                    sleep(ms(1)).await;
                    Ok::<_, E>(x)
                }
            }
        })
        .stage(3, {
            let (futures, alive) = (futures.clone(), gone.guard());
            move |x| {
                let _alive = &alive;
                let guard = futures.guard();
                async move {
                    let _guard = guard;
                    pending::<()>().await;
                    Ok(x)
                }
            }
        })
        .collect();
    tokio::select! {
        result = collect => panic!("the pipeline never ends by itself: {result:?}"),
        () = sleep(Duration::from_secs(1)) => {}
    }
    // Dropped: the aborted tasks are dropped as soon as the runtime gets to
    // them.
    within("every stage to be aborted", async {
        futures.wait_for(3).await;
        gone.wait_for(3).await;
    })
    .await;
    let (pulled_then, started_then) = (load(&pulled), load(&started));
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        (load(&pulled), load(&started)),
        (pulled_then, started_then),
        "nothing pulled or started after the drop"
    );
    assert_eq!(futures.dropped(), 3);
    assert_eq!(gone.dropped(), 3);
}

// ----- misuse -----

async fn double(x: u64) -> Result<u64, E> {
    Ok(x * 2)
}

async fn keep(x: u64) -> Result<Option<u64>, E> {
    Ok(Some(x))
}

#[test]
#[should_panic(expected = "Pipeline::stage(0, ..)")]
fn stage_with_zero_workers_panics_naming_the_method() {
    let _ = Pipeline::from_iter(0..3u64).stage(0, double);
}

#[test]
#[should_panic(expected = "Pipeline::filter_map(0, ..)")]
fn filter_map_with_zero_workers_panics_naming_the_method() {
    let _ = Pipeline::from_iter(0..3u64).filter_map(0, keep);
}

#[test]
fn zero_workers_panics_point_at_the_callers_line() {
    let source = Pipeline::from_iter(0..3u64);
    let stage_line = line!() + 1;
    let stage = catch_panic_site(move || source.stage(0, double)).unwrap_err();
    let source = Pipeline::from_iter(0..3u64);
    let filter_line = line!() + 1;
    let filter = catch_panic_site(move || source.filter_map(0, keep)).unwrap_err();
    assert_eq!(stage.location, format!("{}:{stage_line}", file!()));
    assert_eq!(filter.location, format!("{}:{filter_line}", file!()));
    assert!(stage.message.contains("at least one worker"), "{stage:?}");
}

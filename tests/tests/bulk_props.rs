//! Property tests for the fan-out helpers: for any input and any limit,
//! `map` is the sequential map, `for_each` visits every item once,
//! `map_unordered` yields a permutation of the sequential map, and after
//! the first error `map` starts nothing more.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, stream};
use nursery::Error;
use nursery_tests::{HighWater, within};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio::runtime::Runtime;
use tokio::task::yield_now;

/// Small on purpose: each case runs a whole fan-out.
const CASES: u32 = 64;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// The function mapped: pure, so the sequential map is the reference.
fn g(x: u16) -> u32 {
    u32::from(x) * 3 + 1
}

/// Yields to the scheduler 0 to 3 times, picked by the item, so calls
/// finish out of order.
async fn dawdle(x: u16) {
    for _ in 0..(x % 4) {
        yield_now().await;
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn map_equals_the_sequential_map(items in vec(any::<u16>(), 0..200), limit in 1..=16usize) {
        let expected: Vec<u32> = items.iter().copied().map(g).collect();
        let gauge = HighWater::new();
        let in_f = gauge.clone();
        let got = multi_thread().block_on(within("nursery::map", nursery::map(items, limit, move |x| {
            let gauge = in_f.clone();
            async move {
                let _running = gauge.enter();
                dawdle(x).await;
                Ok::<_, Infallible>(g(x))
            }
        })));
        prop_assert_eq!(got, Ok(expected));
        prop_assert!(gauge.peak() <= limit, "{} calls at once with limit {}", gauge.peak(), limit);
    }

    #[test]
    fn for_each_visits_every_item_exactly_once(items in vec(any::<u16>(), 0..200), limit in 1..=16usize) {
        let visited = Arc::new(Mutex::new(Vec::new()));
        let log = visited.clone();
        let indexed: Vec<(usize, u16)> = items.iter().copied().enumerate().collect();
        let result = multi_thread().block_on(within("nursery::for_each", nursery::for_each(indexed.clone(), limit, move |item| {
            let log = log.clone();
            async move {
                dawdle(item.1).await;
                log.lock().unwrap().push(item);
                Ok::<_, Infallible>(())
            }
        })));
        prop_assert_eq!(result, Ok(()));
        let mut visited = visited.lock().unwrap().clone();
        visited.sort_unstable();
        prop_assert_eq!(visited, indexed);
    }

    #[test]
    fn map_unordered_yields_a_permutation_of_the_sequential_map(
        items in vec(any::<u16>(), 0..200),
        limit in 1..=16usize,
    ) {
        let mut expected: Vec<u32> = items.iter().copied().map(g).collect();
        expected.sort_unstable();
        let gauge = HighWater::new();
        let in_f = gauge.clone();
        let results: Vec<_> = multi_thread().block_on(within("nursery::map_unordered",
            nursery::map_unordered(stream::iter(items), limit, move |x| {
                let gauge = in_f.clone();
                async move {
                    let _running = gauge.enter();
                    dawdle(x).await;
                    Ok::<_, Infallible>(g(x))
                }
            })
            .collect(),
        ));
        let mut got = results.into_iter().collect::<Result<Vec<_>, _>>();
        if let Ok(got) = &mut got {
            got.sort_unstable();
        }
        prop_assert_eq!(got, Ok(expected));
        prop_assert!(gauge.peak() <= limit, "{} calls at once with limit {}", gauge.peak(), limit);
    }

    /// On the current-thread runtime a failure is reported in the same poll
    /// that returns it, so "after the first error" is exact: no call may
    /// start once one has failed, and the error is that first failure.
    #[test]
    fn map_starts_nothing_after_the_first_error(
        items in vec(any::<u16>(), 0..200),
        limit in 1..=16usize,
    ) {
        let fails = |x: u16| x.is_multiple_of(7);
        let failed = Arc::new(AtomicBool::new(false));
        let late = Arc::new(AtomicBool::new(false));
        let started = Arc::new(Mutex::new(Vec::new()));
        let (failed_in_f, late_in_f, log) = (failed.clone(), late.clone(), started.clone());
        let indexed: Vec<(usize, u16)> = items.iter().copied().enumerate().collect();
        let got = current_thread().block_on(within("nursery::map", nursery::map(indexed, limit, move |(index, x)| {
            if failed_in_f.load(SeqCst) {
                late_in_f.store(true, SeqCst);
            }
            log.lock().unwrap().push(index);
            let failed = failed_in_f.clone();
            async move {
                dawdle(x).await;
                if fails(x) {
                    // Only the first failure can get here: the others are
                    // cancelled with the rest.
                    assert!(!failed.swap(true, SeqCst), "a second call failed");
                    Err(x)
                } else {
                    Ok(g(x))
                }
            }
        })));
        prop_assert!(!late.load(SeqCst), "a call started after the first error");
        let mut started = started.lock().unwrap().clone();
        started.sort_unstable();
        prop_assert!(
            started.iter().copied().eq(0..started.len()),
            "items are pulled in input order, so the started ones are a prefix: {:?}",
            started
        );
        if items.iter().copied().any(fails) {
            match got {
                Err(Error::Failed { error, suppressed, .. }) => {
                    prop_assert!(fails(error));
                    prop_assert!(started.iter().any(|&index| items[index] == error));
                    prop_assert!(suppressed.is_empty(), "the others were cancelled: {:?}", suppressed);
                }
                other => prop_assert!(false, "expected the first failure, got {:?}", other),
            }
        } else {
            prop_assert_eq!(got, Ok(items.iter().copied().map(g).collect::<Vec<_>>()));
            prop_assert_eq!(started.len(), items.len());
        }
    }
}

//! `#[nursery(..)]`: an `async fn` whose body runs in a scope configured by
//! the attribute, with the scope's `Nursery` bound to a parameter that
//! callers never see, and the scope's timeout or cancellation returned as
//! the function's own error through `From<Interrupted>`.
//!
//! The forms the macro refuses are compile-fail cases in `ui-tests`.

use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nursery::{Interrupted, Nursery, nursery};
use nursery_tests::{HighWater, Tracker, within, yield_rounds};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, PartialEq)]
enum MyError {
    Interrupted(Interrupted),
    Child(u32),
}

impl From<Interrupted> for MyError {
    fn from(interrupted: Interrupted) -> MyError {
        MyError::Interrupted(interrupted)
    }
}

/// A handle's error as the caller's own: the child's error has already gone
/// to the scope, which returns it.
fn relay(_: nursery::JoinError) -> MyError {
    MyError::Child(0)
}

// ===== options =====

#[nursery(limit = 2)]
async fn limited(n: Nursery<MyError>, gauge: HighWater, children: usize) -> Result<(), MyError> {
    let go = Arc::new(Semaphore::new(0));
    for _ in 0..children {
        let (gauge, go) = (gauge.clone(), go.clone());
        n.spawn(async move {
            let _running = gauge.enter();
            go.acquire().await.unwrap().forget();
            Ok(())
        });
    }
    // Lets one child go each time the limit is full: the limit is used, and
    // a child beyond it has every chance to start meanwhile.
    for released in 0..children {
        gauge.wait_for_current(2.min(children - released)).await;
        go.add_permits(1);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nursery_attr_limit_is_honoured() {
    let gauge = HighWater::new();
    assert_eq!(
        within(
            "a #[nursery(limit = 2)] function",
            limited(gauge.clone(), 40)
        )
        .await,
        Ok(())
    );
    assert_eq!(gauge.peak(), 2, "never more than the limit, and it is used");
    assert_eq!(gauge.current(), 0, "every child has finished");
}

#[nursery(timeout = "1s")]
async fn times_out(n: Nursery<MyError>, child: Tracker) -> Result<u32, MyError> {
    n.spawn(child.track(std::future::pending::<Result<(), MyError>>()));
    Ok(7)
}

#[tokio::test(start_paused = true)]
async fn nursery_attr_timeout_returns_the_callers_error_from_interrupted() {
    let child = Tracker::new();
    let start = Instant::now();
    let result = within("the #[nursery] function", times_out(child.clone())).await;
    assert_eq!(result, Err(MyError::Interrupted(Interrupted::TimedOut)));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(child.was_dropped(), "the child was cancelled");
}

#[nursery(timeout = "1s")]
async fn reads_slowly(n: Nursery<std::io::Error>, child: Tracker) -> std::io::Result<u32> {
    n.spawn(child.track(std::future::pending::<std::io::Result<()>>()));
    Ok(7)
}

#[tokio::test(start_paused = true)]
async fn nursery_attr_io_result_times_out_as_an_io_error_of_kind_timed_out() {
    let child = Tracker::new();
    let error = reads_slowly(child.clone()).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(error.to_string(), Interrupted::TimedOut.to_string());
    let interrupted = error
        .into_inner()
        .unwrap()
        .downcast::<Interrupted>()
        .unwrap();
    assert_eq!(*interrupted, Interrupted::TimedOut);
    assert!(child.was_dropped(), "the child was cancelled");
}

#[test]
fn interrupted_converts_into_an_io_error_that_hands_it_back() {
    for (interrupted, kind) in [
        (Interrupted::TimedOut, std::io::ErrorKind::TimedOut),
        // Not `ErrorKind::Interrupted`, which std's `read_exact` and
        // `write_all` retry: a cancelled scope is over for good.
        (Interrupted::Cancelled, std::io::ErrorKind::Other),
    ] {
        let error = std::io::Error::from(interrupted);
        assert_eq!(error.kind(), kind);
        assert_eq!(error.to_string(), interrupted.to_string());
        let inner = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Interrupted>());
        assert_eq!(inner, Some(&interrupted));
    }
}

#[nursery(grace = "0s")]
async fn waits_for_cancel(
    n: Nursery<MyError>,
    running: oneshot::Sender<()>,
) -> Result<u32, MyError> {
    n.spawn(async {
        nursery::cancelled().await;
        Ok(())
    });
    running.send(()).unwrap();
    Ok(1)
}

#[tokio::test]
async fn nursery_attr_outside_cancellation_returns_the_callers_error_from_interrupted() {
    let shutdown = CancellationToken::new();
    let (running, is_running) = oneshot::channel();
    let (result, outcome) = oneshot::channel();
    let outer = within(
        "the scope",
        Nursery::builder()
            .cancel_on(shutdown.clone())
            .grace(Duration::from_secs(5))
            .scope(|n: Nursery<MyError>| async move {
                // The function runs in a child, which has the outer grace to
                // hand back its result after the cancel.
                n.spawn(async move {
                    result.send(waits_for_cancel(running).await).unwrap();
                    Ok(())
                });
                is_running.await.unwrap();
                shutdown.cancel();
                std::future::pending::<Result<(), MyError>>().await
            }),
    )
    .await;
    assert!(outer.unwrap_err().is_cancelled());
    assert_eq!(
        outcome.await.unwrap(),
        Err(MyError::Interrupted(Interrupted::Cancelled))
    );
}

#[nursery]
async fn fails_fast(n: Nursery<MyError>, sibling: Tracker) -> Result<(), MyError> {
    n.spawn(sibling.track(std::future::pending::<Result<(), MyError>>()));
    n.spawn(async { Err::<(), _>(MyError::Child(1)) });
    Ok(())
}

#[tokio::test]
async fn nursery_attr_first_error_cancels_siblings_by_default() {
    let sibling = Tracker::new();
    assert_eq!(
        within("the #[nursery] function", fails_fast(sibling.clone())).await,
        Err(MyError::Child(1))
    );
    assert!(sibling.was_dropped());
    assert!(!sibling.completed());
}

#[nursery(collect_errors)]
async fn collects(n: Nursery<MyError>, finished: Arc<AtomicUsize>) -> Result<(), MyError> {
    n.spawn(async { Err::<(), _>(MyError::Child(1)) });
    for _ in 0..3 {
        let finished = finished.clone();
        n.spawn(async move {
            yield_rounds(10).await;
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    n.spawn(async {
        yield_rounds(20).await;
        Err::<(), _>(MyError::Child(2))
    });
    Ok(())
}

#[tokio::test]
async fn nursery_attr_collect_errors_lets_siblings_finish_and_returns_the_first_error() {
    let finished = Arc::new(AtomicUsize::new(0));
    assert_eq!(
        within("the #[nursery] function", collects(finished.clone())).await,
        Err(MyError::Child(1))
    );
    assert_eq!(finished.load(Ordering::SeqCst), 3, "nothing was cancelled");
}

#[nursery(name = "crawl")]
async fn named(n: Nursery<MyError>) -> Result<Option<String>, MyError> {
    Ok(n.name().map(str::to_owned))
}

#[tokio::test]
async fn nursery_attr_name_is_the_scope_s_name() {
    assert_eq!(
        within("the #[nursery] function", named()).await,
        Ok(Some("crawl".to_owned()))
    );
}

#[nursery(rate = "2/100ms")]
async fn paced(n: Nursery<MyError>, children: usize) -> Result<Vec<Instant>, MyError> {
    let handles: Vec<_> = (0..children)
        .map(|_| n.spawn(async { Ok(Instant::now()) }))
        .collect();
    let mut starts = Vec::new();
    for handle in handles {
        starts.push(handle.await.map_err(relay)?);
    }
    Ok(starts)
}

#[tokio::test(start_paused = true)]
async fn nursery_attr_rate_paces_child_starts() {
    let opened = Instant::now();
    let starts = within("a #[nursery(rate = ..)] function", paced(6))
        .await
        .unwrap();
    for window in starts.windows(3) {
        assert!(
            window[2] - window[0] >= Duration::from_millis(100),
            "at most 2 starts in any 100ms: {starts:?}"
        );
    }
    // And no slower than the rate: each pair starts as soon as the window
    // allows, give or take the timer's millisecond.
    let offsets: Vec<Duration> = starts.iter().map(|start| *start - opened).collect();
    for (i, offset) in offsets.iter().enumerate() {
        let due = Duration::from_millis(100) * u32::try_from(i / 2).unwrap();
        assert!(
            *offset >= due && *offset <= due + Duration::from_millis(2),
            "child {i} started at {offset:?}, due at {due:?}: {offsets:?}"
        );
    }
}

// ===== where the scope is =====

type Located = &'static Location<'static>;

/// The line of `async fn located`, two below.
const LOCATED_LINE: u32 = line!() + 2;
#[nursery(name = "located")]
async fn located(_n: Nursery<MyError>) -> Result<Located, MyError> {
    let dump = nursery::dump();
    Ok(dump.find("located").expect("the scope is open").location())
}

#[tokio::test]
async fn nursery_attr_scope_location_is_the_function_s_name() {
    let location = within("the #[nursery] function", located()).await.unwrap();
    assert_eq!(
        (location.file(), location.line(), location.column()),
        (file!(), LOCATED_LINE, 10),
        "the `located` of `async fn located`"
    );
}

#[nursery(name = "in a test")]
#[nursery::test]
async fn nursery_attr_stacks_on_a_nursery_test(n: Nursery<MyError>) -> Result<(), MyError> {
    assert_eq!(n.name(), Some("in a test"));
    let dump = nursery::dump();
    let scope = dump.find("in a test").expect("the scope is open");
    assert_eq!(scope.location().file(), file!());
    within("the child", n.spawn(async { Ok(()) }))
        .await
        .map_err(relay)
}

// ===== methods, generics, borrowed arguments =====

struct Store {
    values: Vec<u32>,
}

impl Store {
    #[nursery(limit = 2)]
    async fn sum(&self, n: Nursery<MyError>) -> Result<u32, MyError> {
        let handles: Vec<_> = self
            .values
            .iter()
            .map(|&value| n.spawn(async move { Ok(value) }))
            .collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.map_err(relay)?;
        }
        Ok(sum)
    }

    #[nursery]
    async fn push_doubled(&mut self, n: Nursery<MyError>, value: u32) -> Result<(), MyError> {
        let doubled = n.spawn(async move { Ok(value * 2) }).await.map_err(relay)?;
        self.values.push(doubled);
        Ok(())
    }
}

trait Summed {
    async fn summed(&self) -> Result<u32, MyError>;
}

impl Summed for Store {
    #[nursery(name = "summed")]
    async fn summed(&self, n: Nursery<MyError>) -> Result<u32, MyError> {
        assert_eq!(n.name(), Some("summed"));
        Ok(self.values.iter().sum())
    }
}

#[tokio::test]
async fn nursery_attr_works_on_methods() {
    let mut store = Store { values: vec![1, 2] };
    within("the #[nursery] function", store.push_doubled(5))
        .await
        .unwrap();
    assert_eq!(store.values, [1, 2, 10]);
    assert_eq!(within("the #[nursery] function", store.sum()).await, Ok(13));
    assert_eq!(
        within("the #[nursery] function", store.summed()).await,
        Ok(13)
    );
}

#[nursery(limit = 3)]
async fn largest<I, T>(n: Nursery<MyError>, items: I) -> Result<Option<T>, MyError>
where
    I: IntoIterator<Item = T>,
    T: Ord + Send + 'static,
{
    let handles: Vec<_> = items
        .into_iter()
        .map(|item| n.spawn(async move { Ok(item) }))
        .collect();
    let mut values = Vec::new();
    for handle in handles {
        values.push(handle.await.map_err(relay)?);
    }
    Ok(values.into_iter().max())
}

#[tokio::test]
async fn nursery_attr_works_on_generic_functions() {
    assert_eq!(
        within("the #[nursery] function", largest([3, 9, 4])).await,
        Ok(Some(9))
    );
    assert_eq!(
        within("the #[nursery] function", largest(["b", "c", "a"])).await,
        Ok(Some("c"))
    );
    assert_eq!(
        within("the #[nursery] function", largest(Vec::<u8>::new())).await,
        Ok(None)
    );
}

/// The body borrows `text` and `counts`; each child gets an owned word.
#[nursery]
async fn count_words<'a>(
    n: Nursery<MyError>,
    text: &'a str,
    counts: &mut Vec<usize>,
) -> Result<&'a str, MyError> {
    for word in text.split_whitespace() {
        let word = word.to_owned();
        counts.push(
            n.spawn(async move { Ok(word.len()) })
                .await
                .map_err(relay)?,
        );
    }
    text.split_whitespace().next_back().ok_or(MyError::Child(0))
}

#[nursery]
async fn total(n: Nursery<MyError>, items: impl IntoIterator<Item = u32>) -> Result<u32, MyError> {
    let handles: Vec<_> = items
        .into_iter()
        .map(|item| n.spawn(async move { Ok(item) }))
        .collect();
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.map_err(relay)?;
    }
    Ok(sum)
}

#[tokio::test]
async fn nursery_attr_works_with_borrowed_and_impl_trait_arguments() {
    let text = String::from("scopes own tasks");
    let mut counts = Vec::new();
    assert_eq!(
        within("the #[nursery] function", count_words(&text, &mut counts)).await,
        Ok("tasks")
    );
    assert_eq!(counts, [6, 3, 5]);
    assert_eq!(
        within("the #[nursery] function", total(1..=4)).await,
        Ok(10)
    );
}

#[nursery(name = "spawned")]
async fn spawnable(n: Nursery<MyError>, value: u32) -> Result<u32, MyError> {
    n.spawn(async move { Ok(value + 1) }).await.map_err(relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nursery_attr_future_is_send() {
    let handle = tokio::spawn(spawnable(1));
    assert_eq!(
        within("the #[nursery] function", handle).await.unwrap(),
        Ok(2)
    );
}

// ===== `crate = ".."` =====

mod reexport {
    pub(crate) use ::nursery as structured;
}

/// The line of `async fn reexported`, two below.
const REEXPORTED_LINE: u32 = line!() + 2;
#[nursery(name = "re-exported", crate = "crate::reexport::structured")]
async fn reexported(_n: reexport::structured::Nursery<MyError>) -> Result<Located, MyError> {
    let dump = nursery::dump();
    Ok(dump
        .find("re-exported")
        .expect("the scope is open")
        .location())
}

#[tokio::test]
async fn nursery_attr_crate_option_names_the_path_to_nursery() {
    let location = within("the #[nursery] function", reexported())
        .await
        .unwrap();
    assert_eq!(
        (location.file(), location.line(), location.column()),
        (file!(), REEXPORTED_LINE, 10)
    );
}

//! Completion policies beyond "all" and "first": [`quorum`] (the first `k`
//! of `n` to succeed) and [`hedge`] (start a backup attempt when the first
//! is slow). Each is one call on top of a scope opened inside the current
//! one, so the enclosing scope's cancel and deadline reach its children,
//! none of them can leak, and no error is lost.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::panic::Location;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};

use crate::builder::Builder;
use crate::clock::FAR_FUTURE;
use crate::error::Error;
use crate::nursery::Nursery;

// ===== quorum =====

/// Runs every future as a child and returns the first `k` values, in the
/// order they succeeded; the others are cancelled as soon as `k` have
/// succeeded (a quorum read: Java's `StructuredTaskScope` with a joiner
/// that waits for `k`).
///
/// It fails as soon as `k` successes can no longer be reached (more than
/// `n - k` have failed): the first error in time is `error`, the later ones
/// are `suppressed`, in the order they failed, and the children still
/// running are cancelled. With `k == 0` it returns an empty `Vec` at once,
/// and runs nothing.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::time::Duration;
///
/// let replica = |name: &'static str, ms: u64| async move {
///     tokio::time::sleep(Duration::from_millis(ms)).await;
///     Ok::<_, String>(name)
/// };
/// // Two of three replicas must agree; the slowest is not waited for.
/// let read = [replica("a", 30), replica("b", 10), replica("c", 500)];
/// let answers = nursery::quorum(2, read).await.unwrap();
/// assert_eq!(answers, ["b", "a"]);
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Failed`] once more than `n - k` futures have failed, with
/// their errors in the order they failed; [`Error::TimedOut`] or
/// [`Error::Cancelled`] from the enclosing scope.
///
/// # Panics
///
/// If `k` is greater than the number of futures: such a quorum could never
/// be reached. Re-raises a panic of any of them.
///
/// # Cancel safety
///
/// It runs in a scope of its own: dropping the future before it completes
/// aborts every call still running (G7).
#[track_caller]
pub fn quorum<I, Fut, T, E>(
    k: usize,
    futures: I,
) -> impl Future<Output = Result<Vec<T>, Error<E>>> + Send
where
    I: IntoIterator<Item = Fut>,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let futures: Vec<Fut> = futures.into_iter().collect();
    let total = futures.len();
    assert!(
        k <= total,
        "nursery::quorum({k}, ..) over {total} futures: a quorum of {k} could never be reached"
    );
    first_successes(k, futures, "quorum", Location::caller())
}

/// Runs every future as a child (named `name`) in a scope of its own
/// opened at `location`, and returns the first `k` values in the order
/// they succeeded, or, once `k` can no longer be reached, every error so
/// far; the calls still running are cancelled either way. `k <= n`.
pub(crate) async fn first_successes<Fut, T, E>(
    k: usize,
    futures: Vec<Fut>,
    name: &'static str,
    location: &'static Location<'static>,
) -> Result<Vec<T>, Error<E>>
where
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let total = futures.len();
    if k == 0 {
        return Ok(Vec::new());
    }
    let outcome = Builder::new()
        .name(name)
        .scope_at(
            |n: Nursery<Infallible>| async move {
                let (results_tx, mut results) = mpsc::unbounded_channel();
                for future in futures {
                    let results_tx = results_tx.clone();
                    n.spawn_named(name, async move {
                        let _ = results_tx.send(future.await);
                        Ok(())
                    });
                }
                drop(results_tx);
                let mut values = Vec::with_capacity(k);
                let mut errors = Vec::new();
                while let Some(result) = results.recv().await {
                    match result {
                        Ok(value) => values.push(value),
                        Err(error) => errors.push(error),
                    }
                    // Decided: stop the rest on purpose, which keeps this
                    // body's result (G9).
                    if values.len() == k {
                        n.cancel();
                        return Ok(Ok(values));
                    }
                    if errors.len() > total - k {
                        n.cancel();
                        return Ok(Err(errors));
                    }
                }
                unreachable!("nursery: every call reports, and k <= n")
            },
            location,
        )
        .await;
    match outcome {
        Ok(Ok(values)) => Ok(values),
        Ok(Err(errors)) => Err(failed(errors)),
        Err(error) => Err(retype(error)),
    }
}

// ===== hedge =====

/// Calls `make(0)` and, whenever `delay` passes without a success or an
/// attempt fails, `make(1)`, `make(2)`, … up to `attempts` in all, each
/// run as a child; the first success wins and cancels the others (hedged
/// requests, after Dean and Barroso's "The Tail at Scale").
///
/// Hedging trades a little extra load for a shorter tail: with `delay` at
/// about the 95th percentile of a call's latency, at most about 5 % of the
/// calls start a second attempt, and a call that hit the slow tail is
/// answered by a backup that most likely did not. The hedging benchmark
/// (`cargo bench -p nursery-tests --bench hedge`) measures it against a
/// server whose calls take 2 ms, one in twenty taking 50 ms.
///
/// A `delay` of zero starts every attempt at once; `Duration::MAX` starts
/// the next one only when an attempt fails (a retry).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// let started = Instant::now();
/// // The first attempt is stuck; the backup, started after 10 ms, answers.
/// let answer = nursery::hedge(Duration::from_millis(10), 3, |attempt| async move {
///     let ms = if attempt == 0 { 1_000 } else { 5 };
///     tokio::time::sleep(Duration::from_millis(ms)).await;
///     Ok::<_, String>(attempt)
/// })
/// .await
/// .unwrap();
/// assert_eq!(answer, 1);
/// assert_eq!(started.elapsed(), Duration::from_millis(15));
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Failed`] when every attempt has failed: the first error in
/// time as `error`, the rest as `suppressed`; [`Error::TimedOut`] or
/// [`Error::Cancelled`] from the enclosing scope.
///
/// # Panics
///
/// If `attempts` is 0: nothing could succeed. Re-raises a panic of `make`
/// or of any attempt.
///
/// # Cancel safety
///
/// It runs in a scope of its own: dropping the future before it completes
/// aborts every attempt still running (G7).
#[track_caller]
pub fn hedge<F, Fut, T, E>(
    delay: Duration,
    attempts: usize,
    mut make: F,
) -> impl Future<Output = Result<T, Error<E>>> + Send
where
    F: FnMut(usize) -> Fut + Send,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    assert!(
        attempts > 0,
        "nursery::hedge(.., 0, ..): at least one attempt is needed"
    );
    let location = Location::caller();
    async move {
        let outcome = Builder::new()
            .name("hedge")
            .scope_at(
                |n: Nursery<Infallible>| async move {
                    let (results_tx, mut results) = mpsc::unbounded_channel();
                    let mut start = |attempt: usize| {
                        let results_tx = results_tx.clone();
                        let call = make(attempt);
                        n.spawn_named("hedge", async move {
                            let _ = results_tx.send(call.await);
                            Ok(())
                        });
                    };
                    start(0);
                    let mut started = 1;
                    let mut errors = Vec::new();
                    let mut timer = pin!(sleep(delay));
                    loop {
                        let event = poll_fn(|cx| {
                            if let Poll::Ready(result) = results.poll_recv(cx) {
                                return Poll::Ready(Some(result));
                            }
                            if started < attempts && timer.as_mut().poll(cx).is_ready() {
                                return Poll::Ready(None);
                            }
                            Poll::Pending
                        })
                        .await;
                        match event {
                            Some(Some(Ok(value))) => {
                                n.cancel();
                                return Ok(Ok(value));
                            }
                            Some(Some(Err(error))) => {
                                errors.push(error);
                                if errors.len() == attempts {
                                    return Ok(Err(errors));
                                }
                                if started == attempts {
                                    continue;
                                }
                            }
                            // The body holds a sender: the channel stays open.
                            Some(None) => unreachable!("nursery: a hedge's channel closed"),
                            // The delay passed without a success.
                            None => {}
                        }
                        start(started);
                        started += 1;
                        let next = Instant::now()
                            .checked_add(delay)
                            .unwrap_or_else(|| Instant::now() + FAR_FUTURE);
                        timer.as_mut().reset(next);
                    }
                },
                location,
            )
            .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(errors)) => Err(failed(errors)),
            Err(error) => Err(retype(error)),
        }
    }
}

/// An error of a scope whose children cannot fail, as any error type.
pub(crate) fn retype<E>(error: Error<Infallible>) -> Error<E> {
    match error {
        Error::Failed { error, .. } => match error {},
        Error::TimedOut => Error::TimedOut,
        Error::Cancelled => Error::Cancelled,
    }
}

/// The errors of calls that all (or too many) failed, in the order they
/// failed, as the scope's error.
fn failed<E>(errors: Vec<E>) -> Error<E> {
    let mut errors = errors.into_iter();
    let error = errors
        .next()
        .expect("nursery: a failed policy has an error");
    Error::Failed {
        error,
        suppressed: errors.collect(),
        omitted: 0,
    }
}

//! Fan-out and fan-in: `map`, `for_each`, `map_unordered` and `race`, each
//! one call on top of a scope, so none can leak a task or lose an error.
//!
//! `map` and `for_each` are pull-based: they run up to `limit` worker
//! tasks that pull the next item when they are free (Go's worker pool), so
//! a million items cost memory for `limit` tasks, not a million, and no
//! tokio task is spawned per item. Each helper opens its own scope inside the current
//! one: cancelling the enclosing scope, its deadline and fail-fast apply.

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;

use crate::builder::Builder;
use crate::error::Error;
use crate::nursery::Nursery;
use crate::policy::first_successes;
use crate::sync::{Mutex, Ordering, StdArc as Arc, StdAtomicUsize, lock};

/// Runs `f` on every item, at most `limit` at a time, and returns the
/// results in input order (as Go code writing into a pre-sized slice by
/// index does).
///
/// Up to `limit` worker tasks pull items one at a time from the iterator
/// as they become free, so at most `limit` calls of `f` are in flight and
/// the iterator is consumed lazily. Up to 64 workers (no more than the
/// iterator's known length) start at once; past that, a worker starts for
/// each item taken while there are fewer than `limit`, so `usize::MAX`
/// means as many at once as there are items. Fail-fast: the first error cancels the
/// rest and is returned; a panic in `f` is re-raised once every worker has
/// stopped. The work runs in a scope inside the current one, so the
/// enclosing scope's cancellation and deadline apply.
///
/// # Examples
///
/// ```
/// # #[tokio::main] async fn main() {
/// let lengths = nursery::map(["a", "bb", "ccc"], 2, |word| async move {
///     Ok::<_, std::io::Error>(word.len())
/// })
/// .await
/// .unwrap();
/// assert_eq!(lengths, [1, 2, 3]);
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Failed`] with the first error (and any that arrived while the
/// rest were being cancelled); [`Error::TimedOut`] or [`Error::Cancelled`]
/// when the enclosing scope's deadline passes or it is cancelled.
///
/// # Panics
///
/// If `limit` is 0. Re-raises a panic of `f` or of the iterator.
///
/// # Cancel safety
///
/// It runs in a scope of its own: dropping the future before it completes
/// aborts every call still running and starts none of the others (G7).
#[track_caller]
pub fn map<I, F, Fut, T, E>(
    items: I,
    limit: usize,
    f: F,
) -> impl Future<Output = Result<Vec<T>, Error<E>>> + Send
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    check_limit("map", limit);
    let location = Location::caller();
    let pool = Pool::new(items, limit, f);
    async move {
        let parts = pool
            .run(location, "map", |item, f| async move { f(item).await })
            .await?;
        let total = parts.iter().map(Vec::len).sum();
        let mut slots: Vec<Option<T>> = Vec::with_capacity(total);
        slots.resize_with(total, || None);
        for (index, value) in parts.into_iter().flatten() {
            slots[index] = Some(value);
        }
        Ok(slots
            .into_iter()
            .map(|value| value.expect("nursery::map: every index was filled once"))
            .collect())
    }
}

/// Runs `f` on every item, at most `limit` at a time; [`map`] without the
/// results.
///
/// # Examples
///
/// ```
/// # #[tokio::main] async fn main() {
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = seen.clone();
/// nursery::for_each(1..=100, 8, move |i| {
///     let counter = counter.clone();
///     async move {
///         counter.fetch_add(i, Ordering::Relaxed);
///         Ok::<_, std::io::Error>(())
///     }
/// })
/// .await
/// .unwrap();
/// assert_eq!(seen.load(Ordering::Relaxed), 5050);
/// # }
/// ```
///
/// # Errors
///
/// As [`map`].
///
/// # Panics
///
/// If `limit` is 0. Re-raises a panic of `f` or of the iterator.
///
/// # Cancel safety
///
/// It runs in a scope of its own: dropping the future before it completes
/// aborts every call still running and starts none of the others (G7).
#[track_caller]
pub fn for_each<I, F, Fut, E>(
    items: I,
    limit: usize,
    f: F,
) -> impl Future<Output = Result<(), Error<E>>> + Send
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    check_limit("for_each", limit);
    let location = Location::caller();
    let pool = Pool::new(items, limit, f);
    async move {
        pool.run(location, "for_each", |item, f| async move { f(item).await })
            .await
            .map(drop)
    }
}

#[track_caller]
fn check_limit(helper: &str, limit: usize) {
    assert!(
        limit > 0,
        "nursery::{helper}(.., 0, ..): the limit must be at least 1"
    );
}

/// The worker pool behind [`map`] and [`for_each`]: `workers` tasks pulling
/// numbered items from one shared iterator.
struct Pool<It, F> {
    items: Arc<Mutex<Numbered<It>>>,
    workers: usize,
    f: Arc<F>,
}

struct Numbered<It> {
    next: usize,
    items: It,
}

impl<It: Iterator, F> Pool<It, F> {
    fn new<I: IntoIterator<IntoIter = It>>(items: I, limit: usize, f: F) -> Self {
        let items = items.into_iter();
        // No more workers than items, when the iterator knows its length.
        let workers = items.size_hint().1.map_or(limit, |most| most.min(limit));
        Pool {
            items: Arc::new(Mutex::new(Numbered { next: 0, items })),
            workers,
            f: Arc::new(f),
        }
    }

    /// Runs the workers in a scope; each leaves its `(index, value)`
    /// results in the list returned.
    ///
    /// The scope starts up to [`EAGER_WORKERS`] at once; beyond that, each
    /// worker that takes an item starts another while there are fewer than
    /// `workers`. So an iterator that does not know its length gets no
    /// more workers than it has items (plus [`EAGER_WORKERS`]), whatever
    /// the limit, and an item is taken only by the worker about to call
    /// `f` on it: none is taken and then left.
    async fn run<T, E, Call, CallFut>(
        self,
        location: &'static Location<'static>,
        name: &'static str,
        call: Call,
    ) -> Result<Vec<Vec<(usize, T)>>, Error<E>>
    where
        It: Send + 'static,
        It::Item: Send + 'static,
        F: Send + Sync + 'static,
        Call: Fn(It::Item, Arc<F>) -> CallFut + Send + Sync + 'static,
        CallFut: Future<Output = Result<T, E>> + Send,
        T: Send + 'static,
        E: Send + 'static,
    {
        let Pool { items, workers, f } = self;
        if workers == 0 {
            return Ok(Vec::new());
        }
        let eager = workers.min(EAGER_WORKERS);
        let crew = Arc::new(Crew {
            items,
            f,
            call,
            name,
            workers,
            started: StdAtomicUsize::new(eager),
            parts: Mutex::new(Vec::new()),
        });
        let crew = Builder::new()
            .name(name)
            .scope_at(
                move |n: Nursery<E>| async move {
                    for _ in 0..eager {
                        Crew::start(&n, crew.clone());
                    }
                    Ok(crew)
                },
                location,
            )
            .await?;
        // Every worker has ended: the list is complete.
        Ok(std::mem::take(&mut *lock(&crew.parts)))
    }
}

/// What the workers of a [`Pool`] share.
struct Crew<It, F, Call, T> {
    items: Arc<Mutex<Numbered<It>>>,
    f: Arc<F>,
    call: Call,
    name: &'static str,
    /// The most workers at once.
    workers: usize,
    /// Workers started so far.
    started: StdAtomicUsize,
    /// Each finished worker's results.
    parts: Mutex<Vec<Vec<(usize, T)>>>,
}

impl<It, F, Call, T> Crew<It, F, Call, T> {
    /// Starts a worker, which starts the next one once it has an item.
    fn start<E, CallFut>(n: &Nursery<E>, crew: Arc<Self>)
    where
        It: Iterator + Send + 'static,
        It::Item: Send + 'static,
        F: Send + Sync + 'static,
        Call: Fn(It::Item, Arc<F>) -> CallFut + Send + Sync + 'static,
        CallFut: Future<Output = Result<T, E>> + Send,
        T: Send + 'static,
        E: Send + 'static,
    {
        let spawner = n.clone();
        n.spawn_named(crew.name, async move {
            let mut done = Vec::new();
            // Once the scope is cancelled (during a grace period, say) no
            // new item is taken.
            while crate::check().is_ok() {
                let Some((index, item)) = next(&crew.items) else {
                    break;
                };
                if room_for_one_more(&crew.started, crew.workers) {
                    Crew::start(&spawner, crew.clone());
                }
                done.push((index, (crew.call)(item, crew.f.clone()).await?));
            }
            lock(&crew.parts).push(done);
            Ok(())
        });
    }
}

/// The next item and its index, or `None` when the iterator is done.
fn next<It: Iterator>(items: &Mutex<Numbered<It>>) -> Option<(usize, It::Item)> {
    let mut items = lock(items);
    let item = items.items.next()?;
    let index = items.next;
    items.next += 1;
    Some((index, item))
}

// ===== race =====

/// Runs every future as a child and returns the first `Ok`; the others are
/// cancelled at once (Go's "whichever responds first"). If none succeeds,
/// every error comes back: the first as `error`, the rest as `suppressed`.
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
/// let fastest = nursery::race([replica("a", 30), replica("b", 10), replica("c", 20)])
///     .await
///     .unwrap();
/// assert_eq!(fastest, "b");
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Failed`] with every error when all fail, in the order they
/// failed; [`Error::TimedOut`] or [`Error::Cancelled`] from the enclosing
/// scope.
///
/// # Panics
///
/// If `futures` is empty: no future could win. Re-raises a panic of any of
/// them.
///
/// # Cancel safety
///
/// It runs in a scope of its own: dropping the future before it completes
/// aborts every call still running and starts none of the others (G7).
#[track_caller]
pub fn race<I, Fut, T, E>(futures: I) -> impl Future<Output = Result<T, Error<E>>> + Send
where
    I: IntoIterator<Item = Fut>,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let futures: Vec<Fut> = futures.into_iter().collect();
    assert!(
        !futures.is_empty(),
        "nursery::race: no futures to race; at least one is needed"
    );
    let location = Location::caller();
    async move {
        let mut first = first_successes(1, futures, "race", location).await?;
        Ok(first.pop().expect("nursery: a race won has its winner"))
    }
}

// ===== map_unordered =====

/// Runs `f` on every item of `stream`, at most `limit` at a time, and
/// yields the results in the order they complete (fan-in).
///
/// Up to `limit` worker tasks (up to 64 at once, then one more for each
/// item pulled) take turns pulling the next item from `stream`,
/// call `f` on it and hand the result to the stream's consumer through a
/// channel that holds `limit` results (at least 32, at most 65,536): no
/// tokio task is spawned per item, and the workers keep going while the
/// consumer sleeps, so it is woken once per batch rather than once per
/// result. A slow consumer slows the fan-out down: a worker whose result
/// finds the channel full waits, so at most `limit` calls are in flight
/// and a channel's worth of results wait to be taken. The work runs in a
/// scope inside the one current at the first poll; dropping the stream
/// cancels it at once (G7).
///
/// Fail-fast: the first error cancels the rest, and the stream ends with
/// one `Err` carrying it (and any errors that arrived while cancelling, as
/// `suppressed`), after the results that completed before it. The
/// enclosing scope's deadline or cancellation ends it with
/// [`Error::TimedOut`] or [`Error::Cancelled`].
///
/// # Examples
///
/// ```
/// # #[tokio::main] async fn main() {
/// use futures_util::StreamExt;
///
/// let squares = nursery::map_unordered(futures_util::stream::iter(1..=5u64), 2, |i| async move {
///     Ok::<_, std::io::Error>(i * i)
/// });
/// let mut all: Vec<u64> = squares.map(Result::unwrap).collect().await;
/// all.sort();
/// assert_eq!(all, [1, 4, 9, 16, 25]);
/// # }
/// ```
///
/// # Panics
///
/// If `limit` is 0. Re-raises a panic of `f` or of `stream` from
/// `poll_next`, once the rest have stopped.
#[track_caller]
pub fn map_unordered<S, F, Fut, T, E>(stream: S, limit: usize, f: F) -> MapUnordered<T, E>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    check_limit("map_unordered", limit);
    let location = Location::caller();
    let (results_tx, results) = mpsc::channel::<T>(results_buffer(limit));
    let workers = match stream.size_hint() {
        (_, Some(upper)) => limit.min(upper),
        (_, None) => limit,
    };
    let body = move |n: Nursery<E>| async move {
        // One puller at a time: a stream is polled by one task.
        let stream = Arc::new(tokio::sync::Mutex::new(Box::pin(stream)));
        let f = Arc::new(f);
        // Up to `EAGER_WORKERS` at once; beyond, each worker that takes
        // its first item starts the next while there are fewer than
        // `workers`: a stream that does not know its length gets no more
        // workers than it has items (plus `EAGER_WORKERS`), whatever the
        // limit.
        let eager = workers.min(EAGER_WORKERS);
        let started = Arc::new(StdAtomicUsize::new(eager));
        for _ in 0..eager {
            let (stream, f, results_tx) = (stream.clone(), f.clone(), results_tx.clone());
            start_puller(&n, stream, f, results_tx, started.clone(), workers);
        }
        Ok(())
    };
    MapUnordered {
        scope: Some(Box::pin(
            Builder::new()
                .name("map_unordered")
                .scope_at(body, location),
        )),
        results,
        end: None,
    }
}

/// Starts a worker of a [`map_unordered`]: it takes turns pulling from
/// `stream`, and starts the next worker once it has an item, while fewer
/// than `workers` have started.
fn start_puller<S, F, Fut, T, E>(
    n: &Nursery<E>,
    stream: Arc<tokio::sync::Mutex<Pin<Box<S>>>>,
    f: Arc<F>,
    results_tx: mpsc::Sender<T>,
    started: Arc<StdAtomicUsize>,
    workers: usize,
) where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let spawner = n.clone();
    n.spawn_named("map_unordered", async move {
        let mut first = true;
        while crate::check().is_ok() {
            let item = {
                let mut stream = stream.lock().await;
                poll_fn(|cx| stream.as_mut().poll_next(cx)).await
            };
            let Some(item) = item else { break };
            if std::mem::take(&mut first) && room_for_one_more(&started, workers) {
                start_puller(
                    &spawner,
                    stream.clone(),
                    f.clone(),
                    results_tx.clone(),
                    started.clone(),
                    workers,
                );
            }
            let value = f(item).await?;
            if results_tx.send(value).await.is_err() {
                // The consumer is gone; the scope is being dropped.
                break;
            }
        }
        Ok(())
    });
}

/// Workers that [`map`], [`for_each`], [`map_unordered`] and a pipeline
/// stage start at once; past these, each worker that takes an item starts
/// the next. Up to here, a helper starts like a worker pool: every worker
/// at once, ready to run in parallel (a task spawned from a busy runtime
/// thread waits in that thread's next-task slot, which no other thread
/// takes from, so workers that start one another run one after the other
/// until the first yields).
pub(crate) const EAGER_WORKERS: usize = 64;

/// Takes a place for one more worker, if fewer than `workers` have
/// started.
pub(crate) fn room_for_one_more(started: &StdAtomicUsize, workers: usize) -> bool {
    // Relaxed: a count of workers, ordered by nothing else. Read first, so
    // a helper at its count pays a load per item, not a write.
    started.load(Ordering::Relaxed) < workers
        && started
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                (count < workers).then_some(count + 1)
            })
            .is_ok()
}

/// The fewest results a [`map_unordered`] holds for its consumer: with a
/// consumer on another thread, each wake-up of it costs microseconds, and
/// a buffer of `limit` (2, say) would pay one per couple of results.
const RESULTS_BUFFER: usize = 32;

/// The most results a channel of the bulk helpers holds, whatever the
/// limit: a channel's slots are allocated as they fill, but tokio refuses
/// a bound past `usize::MAX >> 3`, and a limit meant as "no limit" should
/// not ask for one.
pub(crate) const MAX_BUFFER: usize = 1 << 16;

/// The results buffer of a [`map_unordered`] with `limit` workers.
fn results_buffer(limit: usize) -> usize {
    limit.clamp(RESULTS_BUFFER, MAX_BUFFER)
}

/// The scope of a [`map_unordered`], boxed so the stream is `Unpin`.
type BoxScope<E> = Pin<Box<dyn Future<Output = Result<(), Error<E>>> + Send>>;

/// The stream returned by [`map_unordered`]: results in completion order,
/// then at most one error.
///
/// # Examples
///
/// ```
/// # #[tokio::main] async fn main() {
/// use futures_util::StreamExt;
///
/// let mut results = nursery::map_unordered(futures_util::stream::iter(1..=3u32), 2, |i| async move {
///     if i == 2 { Err("two") } else { Ok(i) }
/// });
/// let mut last = None;
/// while let Some(result) = results.next().await {
///     last = Some(result); // an `Err` is the last item
/// }
/// assert_eq!(last.unwrap().unwrap_err().error(), Some(&"two"));
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct MapUnordered<T, E> {
    scope: Option<BoxScope<E>>,
    /// Results, as the workers finish them.
    results: mpsc::Receiver<T>,
    /// The scope's error, once it has returned one: yielded last.
    end: Option<Error<E>>,
}

// No field is ever pinned in place: the scope future is pinned in its box.
impl<T, E> Unpin for MapUnordered<T, E> {}

impl<T, E> Stream for MapUnordered<T, E> {
    type Item = Result<T, Error<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(scope) = this.scope.as_mut()
            && let Poll::Ready(joined) = scope.as_mut().poll(cx)
        {
            this.scope = None;
            this.end = joined.err();
        }
        match this.results.poll_recv(cx) {
            Poll::Ready(Some(value)) => Poll::Ready(Some(Ok(value))),
            // Every child and the body have dropped their senders, but the
            // scope has not finished its join: it wakes us when it has.
            Poll::Ready(None) if this.scope.is_some() => Poll::Pending,
            // The end: the scope's error, if any, then nothing.
            Poll::Ready(None) => Poll::Ready(this.end.take().map(Err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T, E> fmt::Debug for MapUnordered<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapUnordered")
            .field("running", &self.scope.is_some())
            .finish_non_exhaustive()
    }
}

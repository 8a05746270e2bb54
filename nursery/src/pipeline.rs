//! Staged pipelines: a source, stages with their own worker counts,
//! bounded channels in between, all in one scope.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::pin;

use futures_core::Stream;
use tokio::sync::mpsc;

use crate::builder::Builder;
use crate::bulk::{EAGER_WORKERS, MAX_BUFFER, room_for_one_more};
use crate::error::Error;
use crate::nursery::Nursery;
use crate::sync::{StdArc as Arc, StdAtomicUsize};

/// Items on their way between stages, numbered at the source so that
/// [`Pipeline::ordered`] can restore input order at the end.
type Items<T> = mpsc::Receiver<(u64, T)>;

/// Starts a pipeline's tasks in a scope and returns its last channel.
type Build<T, E> = Box<dyn FnOnce(&Nursery<E>) -> Items<T> + Send>;

/// A pipeline of stages connected by bounded channels (Go's pipeline
/// pattern): each stage has its own number of workers (fan-out per
/// stage), and the whole pipeline runs in one scope, so the first error in
/// any stage cancels every stage, upstream and downstream, and is returned;
/// a panic anywhere is re-raised once every task has stopped.
///
/// Nothing runs until [`collect`](Pipeline::collect) is awaited. Results
/// arrive in completion order, or in input order with
/// [`ordered`](Pipeline::ordered).
///
/// # Examples
///
/// The Go seed's generate → square → filter, and generate → upper →
/// prefix:
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), nursery::Error<std::io::Error>> {
/// use nursery::Pipeline;
///
/// let even_squares = Pipeline::from_iter(1..=10u64)
///     .stage(4, |x| async move { Ok::<_, std::io::Error>(x * x) })
///     .filter_map(2, |x| async move { Ok((x % 2 == 0).then_some(x)) })
///     .ordered()
///     .collect()
///     .await?;
/// assert_eq!(even_squares, [4, 16, 36, 64, 100]);
///
/// let shouted = Pipeline::from_iter(["a", "b"])
///     .stage(2, |word| async move { Ok::<_, std::io::Error>(word.to_uppercase()) })
///     .stage(2, |word| async move { Ok(format!("> {word}")) })
///     .ordered()
///     .collect()
///     .await?;
/// assert_eq!(shouted, ["> A", "> B"]);
/// # Ok(())
/// # }
/// ```
#[must_use = "a pipeline does nothing until `collect` is awaited"]
pub struct Pipeline<T, E> {
    build: Build<T, E>,
    ordered: bool,
}

impl<T: Send + 'static, E: Send + 'static> Pipeline<T, E> {
    /// A pipeline whose source yields the items of `items`, pulled lazily
    /// as the first stage takes them.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let words = nursery::Pipeline::from_iter(vec!["a", "b"])
    ///     .stage(1, |word| async move { Ok::<_, ()>(word.to_uppercase()) })
    ///     .ordered()
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(words, ["A", "B"]);
    /// # }
    /// ```
    #[allow(clippy::should_implement_trait)] // `FromIterator` cannot ask for `Send + 'static`
    pub fn from_iter<I>(items: I) -> Pipeline<T, E>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        let items = items.into_iter();
        Pipeline::source(move |items_tx| async move {
            for (seq, item) in (0u64..).zip(items) {
                if crate::check().is_err() || items_tx.send((seq, item)).await.is_err() {
                    break;
                }
            }
        })
    }

    /// A pipeline whose source yields the items of `stream`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let doubled = nursery::Pipeline::from_stream(futures_util::stream::iter([1, 2, 3]))
    ///     .stage(2, |x| async move { Ok::<_, std::io::Error>(x * 2) })
    ///     .ordered()
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(doubled, [2, 4, 6]);
    /// # }
    /// ```
    pub fn from_stream<S>(stream: S) -> Pipeline<T, E>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        Pipeline::source(move |items_tx| async move {
            let mut stream = pin!(stream);
            let mut seq = 0u64;
            while crate::check().is_ok() {
                let next = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await;
                let Some(item) = next else {
                    break;
                };
                if crate::check().is_err() || items_tx.send((seq, item)).await.is_err() {
                    break;
                }
                seq += 1;
            }
        })
    }

    fn source<F, Fut>(feed: F) -> Pipeline<T, E>
    where
        F: FnOnce(mpsc::Sender<(u64, T)>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Pipeline {
            build: Box::new(move |n: &Nursery<E>| {
                let (items_tx, items) = mpsc::channel(1);
                n.spawn_named("pipeline source", async move {
                    feed(items_tx).await;
                    Ok(())
                });
                items
            }),
            ordered: false,
        }
    }

    /// Adds a stage: up to `workers` tasks each take the next item, map it
    /// with `f` and pass the result on. Up to 64 workers start at once;
    /// past that the stage adds one for each item taken while it has fewer
    /// than `workers`, so a count meant as "as many as needed"
    /// (`usize::MAX`) costs a worker per item at most. The stage's output
    /// channel holds up to `workers` results (at most 65,536).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let lengths = nursery::Pipeline::from_iter(["a", "bb"])
    ///     .stage(2, |word| async move { Ok::<_, ()>(word.len()) })
    ///     .ordered()
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(lengths, [1, 2]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `workers` is 0.
    #[track_caller]
    pub fn stage<U, F, Fut>(self, workers: usize, f: F) -> Pipeline<U, E>
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        U: Send + 'static,
    {
        check_workers("stage", workers);
        self.then(workers, move |item| {
            let mapped = f(item);
            async move { mapped.await.map(Some) }
        })
    }

    /// Adds a stage that maps each item to zero or one item (the seed's
    /// filter): `None` drops the item.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let numbers = nursery::Pipeline::from_iter(["1", "x", "3"])
    ///     .filter_map(2, |text| async move { Ok::<_, ()>(text.parse::<u32>().ok()) })
    ///     .ordered()
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(numbers, [1, 3]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `workers` is 0.
    #[track_caller]
    pub fn filter_map<U, F, Fut>(self, workers: usize, f: F) -> Pipeline<U, E>
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<U>, E>> + Send + 'static,
        U: Send + 'static,
    {
        check_workers("filter_map", workers);
        self.then(workers, f)
    }

    /// Keeps input order: [`collect`](Pipeline::collect) returns the results
    /// in the order their items left the source, whatever the stages'
    /// worker counts. May be called anywhere before `collect`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use std::time::Duration;
    /// let sorted = nursery::Pipeline::from_iter([30u64, 10, 20])
    ///     .ordered() // anywhere before `collect`
    ///     .stage(3, |ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await; // finishes out of order
    ///         Ok::<_, ()>(ms)
    ///     })
    ///     .collect()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(sorted, [30, 10, 20]);
    /// # }
    /// ```
    pub fn ordered(mut self) -> Pipeline<T, E> {
        self.ordered = true;
        self
    }

    /// Runs the pipeline in a scope inside the current one and collects
    /// what leaves the last stage.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let result = nursery::Pipeline::from_iter(1..=100u32)
    ///     .stage(4, |x| async move { if x == 50 { Err("fifty") } else { Ok(x) } })
    ///     .collect()
    ///     .await;
    /// assert_eq!(result.unwrap_err().error(), Some(&"fifty")); // every stage stopped
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] with the first error of any stage (and those that
    /// arrived while the rest were being cancelled); [`Error::TimedOut`] or
    /// [`Error::Cancelled`] from the enclosing scope.
    ///
    /// # Panics
    ///
    /// Re-raises a panic of any stage or of the source.
    ///
    /// # Cancel safety
    ///
    /// The pipeline runs in a scope of its own: dropping the future before it
    /// completes aborts every stage's workers and drops the items in flight
    /// (G7).
    #[track_caller]
    pub fn collect(self) -> impl Future<Output = Result<Vec<T>, Error<E>>> + Send {
        let Pipeline { build, ordered } = self;
        let location = Location::caller();
        Builder::new().name("pipeline").scope_at(
            move |n: Nursery<E>| async move {
                let mut results = build(&n);
                let mut collected = Vec::new();
                while let Some(item) = results.recv().await {
                    collected.push(item);
                }
                if ordered {
                    collected.sort_unstable_by_key(|&(seq, _)| seq);
                }
                Ok(collected.into_iter().map(|(_, item)| item).collect())
            },
            location,
        )
    }

    fn then<U, F, Fut>(self, workers: usize, f: F) -> Pipeline<U, E>
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<U>, E>> + Send + 'static,
        U: Send + 'static,
    {
        let Pipeline { build, ordered } = self;
        Pipeline {
            build: Box::new(move |n: &Nursery<E>| {
                // Several workers take turns at one receiver: whoever holds
                // the lock waits for the next item.
                let items = tokio::sync::Mutex::new(build(n));
                let (out_tx, out) = mpsc::channel(workers.min(MAX_BUFFER));
                let eager = workers.min(EAGER_WORKERS);
                let stage = Arc::new(Stage {
                    items,
                    out_tx,
                    f,
                    workers,
                    started: StdAtomicUsize::new(eager),
                });
                for _ in 0..eager {
                    stage_worker(n, stage.clone());
                }
                out
            }),
            ordered,
        }
    }
}

/// What the workers of one stage share.
struct Stage<T, U, F> {
    items: tokio::sync::Mutex<Items<T>>,
    out_tx: mpsc::Sender<(u64, U)>,
    f: F,
    /// The most workers the stage may have.
    workers: usize,
    /// Workers started so far.
    started: StdAtomicUsize,
}

/// Starts a worker of `stage`. A stage starts up to
/// [`EAGER_WORKERS`] at once; beyond, each worker that takes an item
/// starts another while the stage has fewer than its `workers`, so a stage
/// grows past that only as items keep coming, and a count meant as "as
/// many as needed" (`usize::MAX`) costs a worker per item at most.
fn stage_worker<T, U, E, F, Fut>(n: &Nursery<E>, stage: Arc<Stage<T, U, F>>)
where
    T: Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<U>, E>> + Send + 'static,
{
    let spawner = n.clone();
    n.spawn_named("pipeline stage", async move {
        // Once the scope is cancelled (during a grace period, say) no
        // stage takes or starts a new item.
        while crate::check().is_ok() {
            let next = stage.items.lock().await.recv().await;
            let Some((seq, item)) = next else {
                return Ok(());
            };
            if crate::check().is_err() {
                break;
            }
            if room_for_one_more(&stage.started, stage.workers) {
                stage_worker(&spawner, stage.clone());
            }
            if let Some(mapped) = (stage.f)(item).await?
                && stage.out_tx.send((seq, mapped)).await.is_err()
            {
                return Ok(());
            }
        }
        Ok(())
    });
}

#[track_caller]
fn check_workers(stage: &str, workers: usize) {
    assert!(
        workers > 0,
        "nursery: Pipeline::{stage}(0, ..): a stage needs at least one worker"
    );
}

impl<T, E> fmt::Debug for Pipeline<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("ordered", &self.ordered)
            .finish_non_exhaustive()
    }
}

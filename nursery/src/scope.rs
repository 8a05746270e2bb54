//! [`scope`], [`Builder`], and the scope future: the join / fail / cancel
//! state machine around the shared [`Core`].

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::runtime::Handle;
use tokio::task::AbortHandle;
use tokio::time::{Instant, Sleep, sleep, sleep_until};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::cause::{Cause as PublicCause, Who};
use crate::context;
use crate::error::{Error, Interrupted, Name, SpawnErrorKind, TaskInfo};
use crate::leak::{self, Registry, ScopeList, Stamp};
use crate::limit::{Admission, Rate};
use crate::nursery::Nursery;
use crate::shared::{Cancelling, Cause, Core, Outcome, Payload, Refusal};
use crate::stats::Stats;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering, lock};
use crate::task::{Current, ResultCell, Runner, Slot, SlotProj, Start, TaskHandle};

/// How many times a failing child looks for its own registry record (see
/// `Scope::current_child`) before it gives up on naming itself.
const REGISTRATION_WAIT: usize = 10_000;

/// Up to this many tasks of a dropped scope are freed where its last
/// child ends; more on the leak watcher's thread.
const FREE_INLINE: usize = 64;

/// A time later than any a user means, which `Instant` always holds
/// (tokio's own timer treats what lies beyond as "never" the same way).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// Opens a scope with the default settings, runs `body` in it, and returns
/// once the body and every child spawned into the scope have finished.
///
/// The body runs inline, in the future `scope` returns, so it may borrow
/// from the caller; children are `'static` tasks that run in parallel on
/// the runtime. The scope guarantees (G1–G9):
///
/// - it returns only after every child has terminated, siblings spawned by
///   children included (G1);
/// - the first error, from a child or the body, cancels the body and every
///   other child, and is returned; later errors are kept as `suppressed`
///   (G2);
/// - a child panic cancels the rest and is re-raised by `scope` (G3);
/// - a scope opened inside a child or body of this one is cancelled with it
///   and inherits its deadline (G4);
/// - dropping the returned future aborts every child at once (G7).
///
/// A scope opened in the body of another is polled from inside that
/// body's poll, as any awaited future is: a recursion of scopes nested in
/// bodies takes stack in proportion to its depth. A scope nested in a body
/// uses about 300 bytes of stack per level in release builds; plain
/// recursion (a boxed `async` block awaiting the next) about 100. A 2 MiB
/// thread, the default for tokio's workers, holds several thousand levels.
/// A scope opened in a child takes none of its parent's stack: the child
/// is a task of its own.
///
/// Use [`Nursery::builder`] for a name, a limit, a deadline, a grace period,
/// `collect_errors` or an outside cancellation token.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let words = ["structured", "concurrency"];
/// let lengths = nursery::scope(|n| async move {
///     let handles: Vec<_> = words
///         .iter()
///         .map(|word| {
///             let word = word.to_string();
///             n.spawn(async move { Ok::<_, std::io::Error>(word.len()) })
///         })
///         .collect();
///     let mut lengths = Vec::new();
///     for handle in handles {
///         lengths.push(handle.await.map_err(std::io::Error::other)?);
///     }
///     Ok(lengths)
/// })
/// .await
/// .unwrap();
/// assert_eq!(lengths, [10, 11]);
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Failed`] with the first error and the suppressed ones;
/// [`Error::TimedOut`] and [`Error::Cancelled`] only with a builder setting
/// or inside a scope that has them.
///
/// # Panics
///
/// Re-raises the first panic of the body or a child, after the join. Panics
/// if polled outside a tokio runtime, and, like any `async fn`'s future, if
/// polled again after it has completed ("`async fn` resumed after
/// completion").
///
/// # Cancel safety
///
/// Dropping the future before it completes aborts every child at once and
/// starts none of the queued ones (G7); it never blocks.
///
/// # Limits
///
/// - **Nesting.** A scope opened in a child costs no stack, however deep
///   the nest: cancelling, dropping, dumping and leak-checking a chain of
///   50,000 scopes, each in a child of the last, all work on a 2 MiB
///   worker thread, in time and memory linear in the number of scopes and
///   tasks.
/// - **Dropping.** A dropped scope frees its children's tasks as soon as
///   its last child has ended (a large list of them on the leak watcher's
///   thread, right after), and its own memory (under a kilobyte) at the
///   watcher's next purge of ended scopes, which comes after at most a few
///   dozen more have ended; until its leak-grace window ends, what stays
///   is the watcher's note to check on it, a few dozen bytes. A child that panics after the drop has its panic
///   re-raised by the nearest enclosing scope still running or, with
///   none, reported as a lost panic ([`Leak::panic`](crate::Leak::panic)).
/// - **Forgetting.** A scope future that is forgotten (`mem::forget`, a
///   leaked `Box`) is never dropped: its memory stays allocated, and it
///   stays in [`dump`](crate::dump), open, for as long as its runtime
///   runs. Once the runtime has shut down it leaves the tree.
/// - **Errors.** Every error is kept until the join, each taking the size
///   of `E` (boxed) and a 16-byte slot; [`Builder::max_suppressed`] caps
///   how many.
#[track_caller]
pub fn scope<F, Fut, T, E>(body: F) -> impl Future<Output = Result<T, Error<E>>>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    run(Builder::new(), body, Location::caller())
}

// ===== Builder =====

/// Settings for a scope, built with [`Nursery::builder`] and consumed by
/// [`Builder::scope`].
///
/// Every setting is optional. Settings that can never be right (a limit of
/// 0, an empty name) panic at the call, naming the setting, as tokio's
/// runtime builder does.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use nursery::Nursery;
///
/// let shutdown = tokio_util::sync::CancellationToken::new();
/// let checked = Nursery::builder()
///     .name("health-check")
///     .limit(8)                          // at most 8 children at once
///     .timeout(Duration::from_secs(5))   // then everything is cancelled
///     .grace(Duration::from_millis(100)) // time to stop cleanly before abort
///     .cancel_on(shutdown.clone())
///     .scope(|n| async move {
///         for port in 8000..8016 {
///             n.spawn(async move { Ok::<_, std::io::Error>(port) });
///         }
///         Ok(n.name().map(str::to_owned))
///     })
///     .await
///     .unwrap();
/// assert_eq!(checked.as_deref(), Some("health-check"));
/// # }
/// ```
#[derive(Clone)]
pub struct Builder {
    name: Option<Name>,
    limit: Option<usize>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    grace: Option<Duration>,
    leak_grace: Option<Duration>,
    rate: Option<Rate>,
    fail_fast: bool,
    max_suppressed: Option<usize>,
    cancel_on: Option<CancellationToken>,
    display_error: Option<DisplayError>,
}

/// Formats an error of the type given to [`Builder::trace_errors`], if the
/// error has that type.
pub(crate) type DisplayError = fn(&dyn std::any::Any) -> Option<String>;

/// How long children of a dropped scope may take to end before they count
/// as leaks, unless set.
const DEFAULT_LEAK_GRACE: Duration = Duration::from_secs(1);

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            name: None,
            limit: None,
            timeout: None,
            deadline: None,
            grace: None,
            leak_grace: None,
            rate: None,
            fail_fast: true,
            max_suppressed: None,
            cancel_on: None,
            display_error: None,
        }
    }

    /// Names the scope, for error messages, leak reports and task dumps.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::Nursery::builder().name("crawl").scope(|n| async move {
    ///     assert_eq!(n.name(), Some("crawl"));
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `name` is empty.
    #[track_caller]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Builder {
        let name = name.into();
        assert!(
            !name.is_empty(),
            "nursery: Builder::name(\"\"): a scope name must not be empty; leave the scope unnamed instead"
        );
        self.name = Some(Name::new(name));
        self
    }

    /// Runs at most `limit` children at once (Go's `errgroup.SetLimit`).
    /// Children spawned beyond it wait in FIFO order, without creating tokio
    /// tasks; [`Nursery::try_spawn`] hands the future back instead (G8).
    /// A child's slot is free (or taken by the next queued child) by the
    /// time its handle resolves.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// nursery::Nursery::builder().limit(2).scope(|n| async move {
    ///     for i in 0..10 {
    ///         n.spawn(async move { Ok::<_, ()>(i) }); // at most 2 run at once
    ///     }
    ///     assert!(n.stats().running <= 2);
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `limit` is 0: such a scope could never run a child.
    #[track_caller]
    pub fn limit(mut self, limit: usize) -> Builder {
        assert!(
            limit > 0,
            "nursery: Builder::limit(0): a scope needs a limit of at least 1 (leave it unset for no limit)"
        );
        self.limit = Some(limit);
        self
    }

    /// Starts at most `starts` children in any window of `per` (a rate
    /// limiter, as Go code builds with a ticker): the first `starts` start at once, the next ones
    /// as earlier starts leave the window. Children beyond it wait in the
    /// same FIFO queue as under a [`limit`](Builder::limit), without tokio
    /// tasks; [`Nursery::try_spawn`] hands them back. Times come from
    /// tokio's clock, so tests with a paused clock see exact start times.
    ///
    /// Combined with a limit, a child starts when both allow it.
    ///
    /// The scope keeps the time of each start within the last `per`: 8
    /// bytes a start. A period too long for the clock (centuries, or
    /// `Duration::MAX`) lets the first `starts` children start and holds
    /// the rest back for good.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// let opened = Instant::now();
    /// let started = nursery::Nursery::builder()
    ///     .rate(2, Duration::from_secs(1)) // 2 per second
    ///     .scope(|n| async move {
    ///         let handles: Vec<_> = (0..5)
    ///             .map(|_| n.spawn(async { Ok::<_, ()>(Instant::now()) }))
    ///             .collect();
    ///         let mut started = Vec::new();
    ///         for handle in handles {
    ///             started.push((handle.await.unwrap() - opened).as_secs());
    ///         }
    ///         Ok(started)
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(started, [0, 0, 1, 1, 2]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `starts` is 0 or `per` is zero: such a rate could never start a
    /// child.
    #[track_caller]
    pub fn rate(mut self, starts: u32, per: Duration) -> Builder {
        assert!(
            starts > 0,
            "nursery: Builder::rate(0, ..): a rate must allow at least one start per period"
        );
        assert!(
            !per.is_zero(),
            "nursery: Builder::rate(.., Duration::ZERO): a rate needs a period longer than zero"
        );
        self.rate = Some(Rate {
            starts: usize::try_from(starts).unwrap_or(usize::MAX),
            per: u64::try_from(per.as_nanos()).unwrap_or(u64::MAX),
        });
        self
    }

    /// Cancels the scope `timeout` after it starts (its first poll); the
    /// scope then returns [`Error::TimedOut`] (G5). Combined with
    /// [`deadline`](Builder::deadline) or an enclosing scope's deadline, the
    /// earliest wins. A timeout too large to represent means no timeout.
    ///
    /// The deadline, not the timer, decides: tokio's timer fires on the
    /// next millisecond tick at the earliest, and not at all while a body
    /// holds the thread. A zero timeout times out before the body's first
    /// poll; a body that holds the thread past the deadline (no `.await`)
    /// times out when it returns, and [`check`](crate::check) inside it
    /// already says [`Interrupted::TimedOut`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// let result = nursery::Nursery::builder()
    ///     .timeout(Duration::from_secs(1))
    ///     .scope(|_n| async {
    ///         tokio::time::sleep(Duration::from_secs(60)).await;
    ///         Ok::<_, ()>(())
    ///     })
    ///     .await;
    /// assert_eq!(result, Err(nursery::Error::TimedOut));
    /// # }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Builder {
        self.timeout = Some(timeout);
        self
    }

    /// Cancels the scope at `deadline`; the scope then returns
    /// [`Error::TimedOut`] (G5). The earliest of this, the
    /// [`timeout`](Builder::timeout) and an enclosing scope's deadline wins.
    /// A deadline already passed when the scope starts times out before
    /// the body's first poll.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// let at = Instant::now() + Duration::from_secs(1);
    /// nursery::Nursery::builder().deadline(at).scope(|n| async move {
    ///     assert_eq!(n.deadline(), Some(at));
    ///     assert_eq!(nursery::deadline(), Some(at)); // also inside its children
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn deadline(mut self, deadline: Instant) -> Builder {
        self.deadline = Some(deadline);
        self
    }

    /// On cancellation, gives children `grace` to finish by themselves after
    /// the scope's token has fired, then aborts the rest (G6). Default: the
    /// enclosing scope's grace, so one setting at the top covers a whole
    /// tree of scopes; zero (abort at once) for a scope outside any other.
    ///
    /// Children observe the token with [`cancelled`](crate::cancelled),
    /// [`check`](crate::check) or [`Nursery::token`]. A non-zero grace needs
    /// a runtime with the time driver enabled. `Duration::MAX` waits for
    /// the children to end by themselves, however long they take.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// let result = nursery::Nursery::builder()
    ///     .grace(Duration::from_millis(100))
    ///     .scope(|n| async move {
    ///         n.spawn(async move {
    ///             nursery::cancelled().await;
    ///             let _ = tx.send("cleaned up"); // runs within the grace period
    ///             Ok(())
    ///         });
    ///         tokio::task::yield_now().await;
    ///         n.spawn(async { Err::<(), _>("failed") });
    ///         Ok(())
    ///     })
    ///     .await;
    /// assert!(result.is_err());
    /// assert_eq!(rx.await, Ok("cleaned up"));
    /// # }
    /// ```
    pub fn grace(mut self, grace: Duration) -> Builder {
        self.grace = Some(grace);
        self
    }

    /// How long the children of a dropped scope (G7) may take to end after
    /// being aborted before they are reported as leaks (see
    /// [`set_leak_hook`](crate::set_leak_hook)). Default: the enclosing
    /// scope's; one second outside any scope. (`#[nursery::test]`'s
    /// `leak_grace` option sets both this, for the test's root scope, and
    /// the window of its final leak check.)
    ///
    /// A child usually ends within microseconds of its abort; one that does
    /// not is stuck in a blocking call or a loop that never yields.
    ///
    /// The watch holds nothing of the scope: a dropped scope is freed when
    /// its last child ends, whatever the window. A window too long for the
    /// clock (`Duration::MAX`) never reports.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// nursery::Nursery::builder()
    ///     .leak_grace(Duration::from_millis(200)) // report stuck children sooner
    ///     .scope(|n| async move {
    ///         n.spawn(async { Ok::<_, ()>(()) });
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// # }
    /// ```
    pub fn leak_grace(mut self, leak_grace: Duration) -> Builder {
        self.leak_grace = Some(leak_grace);
        self
    }

    /// Keeps going when children fail: nothing is cancelled, and the scope
    /// returns [`Error::Failed`] with every error once all have finished
    /// (the first in time as `error`, the rest in order). The default is
    /// fail-fast: the first error cancels the rest.
    ///
    /// A panic still cancels the scope: it will be re-raised anyway.
    ///
    /// A failed child's error has already been collected when its
    /// [`TaskHandle`] resolves to a failed [`JoinError`](crate::JoinError).
    /// A body that turns that `JoinError` into an error of its own (with `?`)
    /// adds one more error to the list; skip failed handles instead:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let result = nursery::Nursery::builder()
    ///     .collect_errors()
    ///     .scope(|n| async move {
    ///         let handles: Vec<_> = ["1", "x", "3"]
    ///             .into_iter()
    ///             .map(|text| n.spawn(async move { text.parse::<u32>() }))
    ///             .collect();
    ///         let mut sum = 0;
    ///         for handle in handles {
    ///             if let Ok(value) = handle.await {
    ///                 sum += value; // failed ones went to the scope
    ///             }
    ///         }
    ///         Ok(sum)
    ///     })
    ///     .await;
    /// assert_eq!(result.unwrap_err().suppressed().len(), 0); // one error, kept once
    /// # }
    /// ```
    pub fn collect_errors(mut self) -> Builder {
        self.fail_fast = false;
        self
    }

    /// Keeps at most `max` errors behind the first in
    /// [`Error::Failed`]'s `suppressed`; later ones are dropped as they
    /// arrive and counted in `omitted` ([`Error::omitted`]). Not inherited
    /// by inner scopes.
    ///
    /// By default every error is kept: nothing is lost, and memory grows
    /// with the number of failures (the size of `E` each, plus 16 bytes of
    /// bookkeeping until the join). A scope that may see a great many
    /// failures under [`collect_errors`](Builder::collect_errors), or
    /// under fail-fast while a great many children fail during the
    /// cancel, can bound that with a cap. `max_suppressed(0)` keeps the
    /// first error alone.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let error = nursery::Nursery::builder()
    ///     .collect_errors()
    ///     .max_suppressed(10)
    ///     .scope(|n| async move {
    ///         for i in 0..1_000 {
    ///             n.spawn(async move { Err::<(), _>(i) });
    ///         }
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(error.suppressed().len(), 10);
    /// assert_eq!(error.omitted(), 989);
    /// # }
    /// ```
    pub fn max_suppressed(mut self, max: usize) -> Builder {
        self.max_suppressed = Some(max);
        self
    }

    /// Cancels the scope when `token` fires, as if its parent had been
    /// cancelled: the scope returns [`Error::Cancelled`]. Use it to tie a
    /// scope to a process-wide shutdown token.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let shutdown = tokio_util::sync::CancellationToken::new();
    /// shutdown.cancel(); // e.g. on SIGTERM
    /// let result = nursery::Nursery::builder()
    ///     .cancel_on(shutdown)
    ///     .scope(|_n| std::future::pending::<Result<(), ()>>())
    ///     .await;
    /// assert_eq!(result, Err(nursery::Error::Cancelled));
    /// # }
    /// ```
    pub fn cancel_on(mut self, token: CancellationToken) -> Builder {
        self.cancel_on = Some(token);
        self
    }

    /// With the `tracing` feature, puts the `Display` text of the errors
    /// that children return into their `nursery: task failed` events, for a
    /// scope whose error type is `E`. Inner scopes inherit it. Without the
    /// feature it does nothing.
    ///
    /// The events always carry the error's type name, and the text of the
    /// common error types (`String`, `&str`, `std::io::Error`, boxed
    /// `std::error::Error`s); other types are shown once named here. A
    /// scope's error type is only `Send + 'static`, and Rust cannot ask
    /// "is it `Display`?" without a bound on every spawn.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// #[derive(Debug)]
    /// struct Refused(u16);
    /// impl std::fmt::Display for Refused {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         write!(f, "refused with {}", self.0)
    ///     }
    /// }
    ///
    /// let result = nursery::Nursery::builder()
    ///     .trace_errors::<Refused>() // events say "refused with 503"
    ///     .scope(|n| async move {
    ///         n.spawn(async { Err::<(), _>(Refused(503)) });
    ///         Ok(())
    ///     })
    ///     .await;
    /// assert!(result.is_err());
    /// # }
    /// ```
    pub fn trace_errors<E: fmt::Display + 'static>(mut self) -> Builder {
        self.display_error =
            Some(|error| error.downcast_ref::<E>().map(|error: &E| error.to_string()));
        self
    }

    /// Opens the scope with these settings and runs `body` in it; see
    /// [`scope`](crate::scope()) for the guarantees.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let sum = nursery::Nursery::builder()
    ///     .limit(4)
    ///     .scope(|n| async move {
    ///         let a = n.spawn(async { Ok::<_, ()>(1) });
    ///         let b = n.spawn(async { Ok(2) });
    ///         Ok(a.await.unwrap() + b.await.unwrap())
    ///     })
    ///     .await;
    /// assert_eq!(sum, Ok(3));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Failed`], [`Error::TimedOut`] or [`Error::Cancelled`], per
    /// the outcome rule in [`Error`].
    ///
    /// # Panics
    ///
    /// Re-raises the first panic of the body or a child, after the join.
    /// Panics if polled outside a tokio runtime, or polled again after it
    /// has completed.
    #[track_caller]
    pub fn scope<F, Fut, T, E>(self, body: F) -> impl Future<Output = Result<T, Error<E>>>
    where
        F: FnOnce(Nursery<E>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Send + 'static,
    {
        run(self, body, Location::caller())
    }

    /// [`Builder::scope`] with the location to record for the scope: that
    /// of the user's call into a helper (`map`, `race`, ...) that opens it.
    pub(crate) fn scope_at<F, Fut, T, E>(
        self,
        body: F,
        location: &'static Location<'static>,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        F: FnOnce(Nursery<E>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Send + 'static,
    {
        run(self, body, location)
    }
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field("grace", &self.grace)
            .field("leak_grace", &self.leak_grace)
            .field("rate", &self.rate)
            .field("fail_fast", &self.fail_fast)
            .field("max_suppressed", &self.max_suppressed)
            .field("cancel_on", &self.cancel_on.is_some())
            .field("trace_errors", &self.display_error.is_some())
            .finish()
    }
}

// ===== Scope =====

/// The shared state of one open scope: the [`Core`] plus the tokio glue.
///
/// `repr(C)` with the core first: its count (and the success counter
/// beside it) then sit right after the `Arc`'s reference counts, in 32
/// bytes that share one cache line for three of the four 16-byte-aligned
/// places the allocator can put them. A child's spawn and exit write both
/// the count and the `Arc`'s count; left to the compiler, the tokio handle
/// came first and the two were a line apart half of the time.
#[repr(C)]
pub(crate) struct Scope {
    pub(crate) core: Core,
    pub(crate) token: CancellationToken,
    pub(crate) rt: Handle,
    /// The effective deadline: the earliest of the scope's own and its
    /// ancestors'.
    pub(crate) deadline: Option<Instant>,
    pub(crate) name: Option<Name>,
    /// Where and when the scope was opened, and in which tokio task.
    pub(crate) location: &'static Location<'static>,
    pub(crate) opened: Stamp,
    pub(crate) host: Option<tokio::task::Id>,
    /// The scope's zero on tokio's clock, for the rate's times.
    epoch: Instant,
    /// How long children get to stop by themselves once cancelled.
    grace: Duration,
    /// How long children of a dropped scope get before they are leaks.
    pub(crate) leak_grace: Duration,
    /// The scope's key in its parent's list of open scopes (or in the list
    /// of roots); `usize::MAX` once it is done and unregistered.
    key: AtomicUsize,
    /// The future was dropped before the join completed.
    dropped: AtomicBool,
    /// When it was dropped, for the reports of what outlived it.
    pub(crate) dropped_at: Mutex<Option<Stamp>>,
    /// When dropped, it took a unit of its parent's count (G1 transitive),
    /// released when its last child ends.
    holds_parent: AtomicBool,
    /// [`Scope::abort_tree`] has gone through this scope and everything
    /// open below it: nobody needs to again.
    tree_aborted: AtomicBool,
    /// The scope that was current when this one opened.
    parent: Option<Arc<Scope>>,
    /// How many scopes this one is inside: 0 for a root.
    depth: usize,
    /// For a scope deep enough for its [path](Scope::path) to elide names,
    /// the innermost of the outermost scopes the path names (an ancestor,
    /// which the chain of parents holds anyway): the path's first names
    /// are a few steps up from it, rather than at the end of a walk up the
    /// whole chain.
    path_anchor: Option<Arc<Scope>>,
    /// The scopes open inside this one (in its body or its children): a
    /// cancel reaches their cores before any of their children can observe
    /// the token, so none of them starts a child after the cancel.
    scopes: Mutex<ScopeList>,
    registry: Mutex<Registry>,
    /// Why the scope was cancelled, as its tasks see it: written once the
    /// core has decided (under the core's outcome lock, before the scope
    /// reads as cancelled anywhere), so a reader that sees the scope
    /// cancelled finds it. Nothing is written while the scope runs
    /// undisturbed.
    why: Mutex<Option<PublicCause>>,
    /// The scope's `nursery.scope` span: the parent of its children's spans.
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
    /// From [`Builder::trace_errors`], or inherited.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) display_error: Option<DisplayError>,
}

/// What to do with a child that does not fit under the limit now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenFull {
    Queue,
    Refuse,
}

impl Scope {
    /// Opens a scope under the current one; also returns the scope's own
    /// deadline (before inheritance), which it must time itself.
    fn open(config: &Builder, location: &'static Location<'static>) -> (Scope, Option<Instant>) {
        let rt = Handle::try_current()
            .unwrap_or_else(|_| panic!("nursery: no tokio runtime: scopes must run inside one"));
        let parent = context::current();
        let own = own_deadline(config);
        let inherited = parent.as_ref().and_then(|parent| parent.deadline);
        let token = match &parent {
            Some(parent) => parent.token.child_token(),
            None => CancellationToken::new(),
        };
        // The inherited deadline needs no timer here: the ancestor that owns
        // it cancels this scope through the token.
        let timed = own.filter(|&own| inherited.is_none_or(|inherited| own < inherited));
        let deadline = earliest(own, inherited);
        // Parented to the current span: that of the task (or body) the scope
        // opens in, so nested scopes show as a tree.
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!(
            "nursery.scope",
            name = config.name.as_ref().map(Name::as_str),
            limit = config.limit,
            deadline = deadline.map(|at| tracing::field::debug(at.into_std())),
            location = %location,
        );
        let scope = Scope {
            core: Core::new(config.fail_fast, config.limit, config.rate)
                .cap_suppressed(config.max_suppressed.unwrap_or(usize::MAX)),
            token,
            rt,
            deadline,
            name: config.name.clone(),
            location,
            opened: Stamp::now(),
            host: tokio::task::try_id(),
            epoch: Instant::now(),
            grace: config
                .grace
                .or(parent.as_ref().map(|parent| parent.grace))
                .unwrap_or(Duration::ZERO),
            leak_grace: config
                .leak_grace
                .or(parent.as_ref().map(|parent| parent.leak_grace))
                .unwrap_or(DEFAULT_LEAK_GRACE),
            display_error: config
                .display_error
                .or(parent.as_ref().and_then(|parent| parent.display_error)),
            key: AtomicUsize::new(usize::MAX),
            dropped: AtomicBool::new(false),
            dropped_at: Mutex::new(None),
            holds_parent: AtomicBool::new(false),
            tree_aborted: AtomicBool::new(false),
            depth: parent.as_ref().map_or(0, |parent| parent.depth + 1),
            path_anchor: parent.as_deref().and_then(Scope::path_anchor_below),
            parent,
            scopes: Mutex::new(ScopeList::default()),
            registry: Mutex::new(Registry::new()),
            why: Mutex::new(None),
            #[cfg(feature = "tracing")]
            span,
        };
        (scope, timed)
    }

    // ----- children -----

    /// Counts a new child in; see [`Core::enter`].
    pub(crate) fn enter(&self) -> Result<(), SpawnErrorKind> {
        match self.core.enter() {
            Ok(()) => Ok(()),
            Err((refusal, last)) => {
                if last {
                    self.finish_dropped();
                }
                Err(match refusal {
                    Refusal::Cancelled => SpawnErrorKind::Cancelled,
                    Refusal::Closed => SpawnErrorKind::Closed,
                })
            }
        }
    }

    /// Starts an entered child now, or queues it under the limit. Hands the
    /// child back only with [`WhenFull::Refuse`] when the limit is reached.
    ///
    /// Without a limit the child gets a task of its own. Under a limit it
    /// becomes a job: started on a runner task if it fits now, else queued,
    /// to be run in place by the runner whose child ends next.
    pub(crate) fn admit<C: Start>(
        scope: &Arc<Scope>,
        child: C,
        weight: usize,
        info: TaskInfo,
        when_full: WhenFull,
    ) -> Result<TaskHandle<C::Value>, C> {
        let Some(limiter) = scope.core.limiter() else {
            let handle = child.spawn(scope, &info);
            return Ok(TaskHandle::running(handle, info));
        };
        let now = scope.clock();
        if limiter.try_acquire(weight, now) {
            let cell = ResultCell::new();
            let job = child.into_job(cell.clone(), info.clone());
            Runner::spawn(scope, Box::into_pin(job), weight);
            return Ok(TaskHandle::cell(cell, info));
        }
        if when_full == WhenFull::Refuse {
            return Err(child);
        }
        let cell = ResultCell::new();
        let job = child.into_job(cell.clone(), info.clone());
        match limiter.admit_or_queue(weight, job, now) {
            // Held back by the rate, perhaps: the scope keeps the timer.
            Admission::Queued if limiter.is_paced() => scope.core.wake(),
            Admission::Queued => {}
            // Room was made meanwhile: start it now.
            Admission::Run(job) => job.start(weight),
            // Cancelled meanwhile: dropping the job resolves the handle.
            Admission::Closed(job) => drop(job),
        }
        Ok(TaskHandle::cell(cell, info))
    }

    /// A runner's child has ended: gives its `weight` back and takes the
    /// next queued child that can start, to run in place.
    pub(crate) fn next_job(&self, weight: usize) -> Option<(usize, Box<dyn crate::limit::Job>)> {
        let limiter = self.core.limiter()?;
        let next = limiter.release_and_take(weight, self.clock());
        if next.is_none() && limiter.is_paced() {
            // The next start may wait for the rate's timer.
            self.core.wake();
        }
        next
    }

    /// Gives `weight` back, starting queued children on tasks of their own.
    pub(crate) fn release(&self, weight: usize) {
        if let Some(limiter) = self.core.limiter() {
            limiter.release(weight, self.clock());
            if limiter.is_paced() {
                self.core.wake();
            }
        }
    }

    /// Records a runner task, whose current child `current` tells.
    pub(crate) fn register_runner(&self, abort: AbortHandle, current: Arc<Current>) {
        lock(&self.registry).push_runner(abort, current);
    }

    /// Starts the queued children the rate now allows, and keeps the rate's
    /// timer (in the scope future's [`Cold`] parts) set for the next one it
    /// holds back.
    fn pace(&self, slot: &mut Option<Pin<Box<Cold>>>, cx: &mut Context<'_>) {
        let Some(limiter) = self.core.limiter().filter(|limiter| limiter.is_paced()) else {
            return;
        };
        let mut fired = false;
        loop {
            // Start whatever the rate allows by now (the budget permitting),
            // then wait for the next start it holds back.
            let now = self.clock();
            limiter.release(0, now);
            let Some(due) = limiter.next_due(now) else {
                if let Some(cold) = slot {
                    cold.as_mut().project().pace.set(None);
                }
                return;
            };
            if due <= now {
                continue;
            }
            if fired {
                // The timer fired a hair before the clock agrees: look again
                // on the next poll rather than spin.
                cx.waker().wake_by_ref();
                return;
            }
            // `due` saturates at `u64::MAX` nanoseconds (584 years):
            // beyond what `Instant` holds on some platforms.
            let at = self
                .epoch
                .checked_add(Duration::from_nanos(due))
                .unwrap_or_else(|| Instant::now() + FAR_FUTURE);
            let mut timer = cold(slot).project().pace;
            match timer.as_mut().as_pin_mut() {
                Some(sleep) if sleep.deadline() == at => {}
                _ => timer.set(Some(sleep_until(at))),
            }
            if !poll_once(timer.as_mut(), cx) {
                return;
            }
            timer.set(None);
            fired = true;
        }
    }

    /// Nanoseconds since the scope opened, on tokio's clock, for a paced
    /// limiter; 0 (and no clock read) otherwise.
    fn clock(&self) -> u64 {
        match self.core.limiter() {
            Some(limiter) if limiter.is_paced() => {
                u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
            }
            _ => 0,
        }
    }

    /// Records a started child, so it can be aborted and reported.
    pub(crate) fn register(&self, abort: AbortHandle, info: &TaskInfo, blocking: bool) {
        lock(&self.registry).push(abort, info, blocking, || self.core.live());
    }

    /// Lets go of the tasks of children that have ended; see
    /// [`Registry::release_finished`].
    fn release_finished(&self) {
        lock(&self.registry).release_finished();
    }

    pub(crate) fn with_registry<R>(&self, f: impl FnOnce(&Registry) -> R) -> R {
        f(&lock(&self.registry))
    }

    /// The scopes open inside this one.
    pub(crate) fn inner_scopes(&self) -> Vec<Arc<Scope>> {
        lock(&self.scopes).open()
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// The names of this scope and its ancestors, outermost first, as
    /// [`leak::scope_path`] joins them: past eight scopes, the four
    /// outermost and the four innermost, with a count of those between.
    ///
    /// Made in the same time at any depth: the innermost names are a few
    /// steps up from this scope, the outermost a few steps up from its
    /// path anchor.
    pub(crate) fn path(&self) -> String {
        /// `from` and the scopes above it, `count` in all, innermost first.
        fn up(from: &Scope, count: usize) -> Vec<&Scope> {
            std::iter::successors(Some(from), |scope| scope.parent.as_deref())
                .take(count)
                .collect()
        }
        let len = self.depth + 1;
        let elides = len > leak::PATH_HEAD + leak::PATH_TAIL;
        // The scopes whose names the path keeps, outermost first: if it
        // elides, the first few, from the anchor; then the last few, or
        // all of them, down to this scope.
        let mut kept = Vec::with_capacity(leak::PATH_HEAD + leak::PATH_TAIL);
        if let (true, Some(anchor)) = (elides, &self.path_anchor) {
            kept.extend(up(anchor, leak::PATH_HEAD).into_iter().rev());
        }
        let head = kept.len();
        let tail = if elides { leak::PATH_TAIL } else { len };
        kept.extend(up(self, tail).into_iter().rev());
        leak::scope_path(len, |level| {
            let index = if level < head {
                Some(level)
            } else {
                (level + kept.len()).checked_sub(len)
            };
            index
                .and_then(|index| kept.get(index))
                .and_then(|scope| scope.name.as_ref())
        })
    }

    /// The path anchor of a scope opened inside this one: the scope at
    /// depth `PATH_HEAD - 1` above it, if its path elides names. Inherited
    /// from this scope's own, or found a few steps up when the new scope is
    /// the first deep enough to need one.
    fn path_anchor_below(&self) -> Option<Arc<Scope>> {
        if self.depth + 2 <= leak::PATH_HEAD + leak::PATH_TAIL {
            return None;
        }
        if let Some(anchor) = &self.path_anchor {
            return Some(anchor.clone());
        }
        // This scope is deeper than the anchor: it is one of its ancestors.
        let mut anchor = self.parent.as_ref()?;
        while anchor.depth > leak::PATH_HEAD - 1 {
            anchor = anchor.parent.as_ref()?;
        }
        Some(anchor.clone())
    }

    /// A child's future (or closure) has been dropped.
    pub(crate) fn child_exited(&self) {
        self.exit();
    }

    fn exit(&self) {
        if self.core.exit() {
            self.finish_dropped();
        }
    }

    /// The last child of a dropped scope has ended: hand a panic that
    /// happened under it to the parent it held, release that parent and
    /// leave the tree.
    ///
    /// A dropped scope never returns, so it cannot re-raise a panic of its
    /// children; its parent does, as if the panic were its own child's
    /// (G3): an inner scope dropped because its parent was cancelled (a
    /// sibling failed, say) may hold a panic that happened before that
    /// failure. The parent has not joined yet: this scope still holds it.
    ///
    /// Releasing the parent can finish the parent in turn (it was dropped
    /// too, and this scope held its last unit), and so on up a chain of
    /// nested scopes of any depth: a loop, not recursion, so the depth
    /// costs no stack.
    fn finish_dropped(&self) {
        let mut scope = self;
        loop {
            let parent = scope.release_parent();
            scope.unregister();
            scope.release_tasks_elsewhere();
            leak::scope_ended();
            match parent {
                Some(parent) => scope = parent,
                None => return,
            }
        }
    }

    /// Hands a panic kept by this dropped scope on (see
    /// [`Scope::hand_on_panic`]) and releases the parent it held. Returns
    /// the parent if this was its last unit: it was dropped as well and is
    /// now done.
    fn release_parent(&self) -> Option<&Scope> {
        let held = self.holds_parent.swap(false, Ordering::AcqRel);
        let outcome = self.core.take_outcome();
        if let Some(payload) = outcome.panic {
            // Not a child of the parent's own: reported as the parent's
            // body would be (no task to name). Without a held parent
            // nobody re-raises it: it is reported as lost.
            let who = lock(&self.why)
                .as_ref()
                .and_then(PublicCause::panicked_task);
            self.hand_on_panic(payload, who, held);
        }
        // Errors kept before the drop: their destructors are user code,
        // run here rather than wherever the scope's memory is freed.
        for error in outcome.errors {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(error))) {
                self.hand_on_panic(payload, None, held);
            }
        }
        let parent = self.parent.as_deref().filter(|_| held)?;
        parent.core.exit().then_some(parent)
    }

    /// Passes the panic of a dropped scope's task (`who`, if known) to
    /// the nearest enclosing scope that can still re-raise it: up through
    /// dropped scopes that hold their parent, to the first that has not
    /// been dropped. With none, the panic can never be re-raised, and is
    /// reported as a lost panic ([`Leak::panic`](crate::Leak::panic)),
    /// through the leak hook and to the leak checks.
    ///
    /// `held`: whether this scope (dropped) holds its parent.
    fn hand_on_panic(&self, payload: Payload, who: Option<Who>, held: bool) {
        let mut scope = self;
        let mut held = held;
        loop {
            match scope.parent.as_deref() {
                Some(parent) if held => {
                    if !parent.is_dropped() {
                        return parent.record_panic(payload, true, || None);
                    }
                    held = parent.holds_parent.load(Ordering::Acquire);
                    scope = parent;
                }
                _ => return leak::lost_panic(self, payload, who),
            }
        }
    }

    /// Enters the scope in its parent's list of open scopes (or the roots).
    fn register_open(scope: &Arc<Scope>) {
        let key = match &scope.parent {
            Some(parent) => parent.adopt(scope),
            None => leak::add_root(scope),
        };
        scope.key.store(key, Ordering::Release);
    }

    /// Leaves the tree: the scope has closed, or it was dropped and its
    /// last child has ended. Idempotent.
    pub(crate) fn unregister(&self) {
        let key = self.key.swap(usize::MAX, Ordering::AcqRel);
        if key == usize::MAX {
            return;
        }
        match &self.parent {
            Some(parent) => parent.disown(key),
            None => leak::remove_root(key),
        }
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.key.load(Ordering::Acquire) != usize::MAX
    }

    // ----- failure and cancellation -----

    /// Records the error of a child (`child`: reported from the child's
    /// own tokio task) or of the body.
    pub(crate) fn report_error(&self, error: Payload, child: bool) {
        let (cancelling, discarded) = self.core.report_error_with(error, !child, |_| {
            let who = if child { self.current_child() } else { None };
            self.set_why(PublicCause::failure(false, who.as_ref(), self.location));
        });
        self.cancelling(cancelling);
        if let Some(error) = discarded {
            self.drop_error(error, child);
        }
    }

    /// Drops an error the scope does not keep. Its destructor is user
    /// code: a panic there is that task's panic, re-raised with its own
    /// payload and message (G3), like any other.
    fn drop_error(&self, error: Payload, child: bool) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(error))) {
            self.report_panic(payload, child);
        }
    }

    /// Records the panic of a child (`child`: reported from the child's
    /// own tokio task) or of the body.
    ///
    /// A dropped scope never returns, so it cannot re-raise the panic: it
    /// hands it on at once ([`Scope::hand_on_panic`]).
    pub(crate) fn report_panic(&self, payload: Payload, child: bool) {
        let who = || if child { self.current_child() } else { None };
        if self.is_dropped() {
            let held = self.holds_parent.load(Ordering::Acquire);
            return self.hand_on_panic(payload, who(), held);
        }
        self.record_panic(payload, !child, who);
    }

    /// Records a panic in this scope's own outcome, to be re-raised after
    /// the join. `who` names the task that panicked, if it is a child of
    /// this scope's own (not the body, nor a scope dropped inside).
    fn record_panic(&self, payload: Payload, from_body: bool, who: impl FnOnce() -> Option<Who>) {
        let cancelling = self.core.report_panic_with(payload, from_body, |_| {
            let who = who();
            self.set_why(PublicCause::failure(true, who.as_ref(), self.location));
        });
        self.cancelling(cancelling);
    }

    /// Who the child running on the current tokio task is, from the
    /// registry: looked up only for the failure that fixes the cause (once
    /// a scope), so that children need not carry their name and location.
    /// The registry's lock is taken inside the outcome's, never the other
    /// way round.
    ///
    /// A child on a worker can fail before the thread that spawned it has
    /// recorded it (it does so right after tokio's `spawn` returns, and a
    /// spawn from outside the runtime can run at once elsewhere): then
    /// this waits for the record, yielding the thread, for a bounded time.
    fn current_child(&self) -> Option<Who> {
        let id = tokio::task::try_id()?;
        for _ in 0..REGISTRATION_WAIT {
            if let Some(who) = lock(&self.registry).who(id) {
                return Some(who);
            }
            std::thread::yield_now();
        }
        None
    }

    /// Cancels the scope for `cause`: a deadline, an outside cancel, a
    /// request or a drop (not a failure, which is reported).
    pub(crate) fn cancel(&self, cause: Cause) {
        let public = match cause {
            Cause::TimedOut => PublicCause::TimedOut,
            Cause::Requested => PublicCause::Requested,
            _ => PublicCause::Cancelled,
        };
        self.cancel_as(cause, public);
    }

    /// Cancels the scope because the scope around it was cancelled (or its
    /// token fired): it reads as the outer scope's cause, unless its own
    /// effective deadline has passed.
    fn cancel_from_parent(&self) {
        let cancelling = self.cancel_core_from_parent();
        self.cancelling(cancelling);
    }

    /// [`cancel_from_parent`](Scope::cancel_from_parent)'s decision alone,
    /// for the walk below a cancelled scope, which does the rest itself.
    fn cancel_core_from_parent(&self) -> Cancelling {
        let cause = self.inherited_cause();
        let public = match cause {
            Cause::TimedOut => PublicCause::TimedOut,
            _ => self
                .parent
                .as_ref()
                .and_then(|parent| parent.cause())
                .unwrap_or(PublicCause::Cancelled),
        };
        self.core.cancel_with(cause, |_| self.set_why(public))
    }

    fn cancel_as(&self, cause: Cause, public: PublicCause) {
        let cancelling = self.core.cancel_with(cause, |_| self.set_why(public));
        self.cancelling(cancelling);
    }

    /// Called by the core under its outcome lock: takes no other lock.
    fn set_why(&self, why: PublicCause) {
        *lock(&self.why) = Some(why);
    }

    /// Why the scope was cancelled, if it was: see [`crate::cause`]. One
    /// atomic load while it was not. A token cancelled directly counts
    /// once the scope has noticed it (at its next poll), as for
    /// [`crate::check`].
    pub(crate) fn cause(&self) -> Option<PublicCause> {
        if !self.is_cancelled() {
            return None;
        }
        // Written before the flag was set.
        Some(lock(&self.why).clone().unwrap_or(PublicCause::Cancelled))
    }

    /// Why the scope was cancelled, once its token has fired: the recorded
    /// cause, or, for a token cancelled directly that the scope has not
    /// noticed yet, what the scope will record.
    pub(crate) fn cause_once_fired(&self) -> PublicCause {
        self.cause()
            .unwrap_or_else(|| match self.inherited_cause() {
                Cause::TimedOut => PublicCause::TimedOut,
                _ => PublicCause::Cancelled,
            })
    }

    /// A child completed successfully.
    pub(crate) fn child_succeeded(&self) {
        self.core.child_succeeded();
    }

    /// What [`Nursery::stats`] reports.
    pub(crate) fn stats(&self) -> Stats {
        let counts = self.core.counts();
        let live = self.core.live();
        let (spawned, queued) = match self.core.limiter() {
            Some(limiter) => limiter.spawned_and_queued(),
            None => (lock(&self.registry).pushed(), 0),
        };
        Stats::new(spawned, queued, live, counts)
    }

    /// A cancel was just decided, here or in a child's thread. The queued
    /// children are dropped unstarted; without a grace period the running
    /// ones are aborted at once, by whoever decided the cancel rather than
    /// at the scope future's next poll. Then the open inner scopes are
    /// cancelled (their cores, recursively), so that when the token fires
    /// no child anywhere below can start another; last, the token fires.
    /// With a grace period the scope future aborts when it ends.
    fn cancelling(&self, cancelling: Cancelling) {
        if cancelling == Cancelling::Now {
            self.stop_children();
            #[cfg(feature = "tracing")]
            self.trace_cancelled();
            self.fire_token();
        }
    }

    /// Logs the cancel with its cause.
    #[cfg(feature = "tracing")]
    fn trace_cancelled(&self) {
        if let Some(why) = &*lock(&self.why) {
            tracing::info!(parent: &self.span, cause = %why, "nursery: scope cancelled");
        }
    }

    /// Drops the queued children unstarted and, without a grace period,
    /// aborts the running ones.
    fn stop_children(&self) {
        drop(self.core.close_queue());
        if self.grace.is_zero() {
            self.abort_all();
        }
    }

    /// Cancels every scope open below this one (their cores, to any depth,
    /// each reading as the cause that reached it from above), then fires
    /// the token, which fires theirs.
    ///
    /// # Invariants
    ///
    /// A token fires only once the cores of every scope below it are
    /// cancelled, whichever thread fires it: the one that decided the
    /// cancel, the scope future that saw it decided, or the one that
    /// decided a cancel further up. A child woken by a token therefore finds
    /// its own scope cancelled, with its cause recorded. So the walk may
    /// skip a scope whose token has fired (its subtree is done), but not one
    /// that is merely cancelled: another thread may still be walking below
    /// it. An inner scope that opens after the walk sees its parent
    /// cancelled when it registers. The walk goes top down, so each scope's
    /// cause is recorded before those below it read it.
    ///
    /// A loop over a list of scopes still to visit, not a recursion: a
    /// deep nest of scopes costs no stack. Each list is copied out of its
    /// lock before anything is cancelled: cancelling a scope may end a
    /// dropped one, which takes its parent's lock to leave the list.
    fn fire_token(&self) {
        let mut below = lock(&self.scopes).open();
        while let Some(inner) = below.pop() {
            if inner.cancel_core_from_parent() == Cancelling::Now {
                inner.stop_children();
                #[cfg(feature = "tracing")]
                inner.trace_cancelled();
            }
            if !inner.token.is_cancelled() {
                below.extend(lock(&inner.scopes).open());
            }
        }
        // tokio-util cancels a token's descendants in a loop as well.
        self.token.cancel();
    }

    /// How a cancel that comes from an enclosing scope reads here: a
    /// timeout if this scope's effective deadline has passed (G5).
    fn inherited_cause(&self) -> Cause {
        if self.deadline_passed() {
            Cause::TimedOut
        } else {
            Cause::Cancelled
        }
    }

    /// Records an inner scope opened under this one; returns its key.
    fn adopt(&self, inner: &Arc<Scope>) -> usize {
        let key = lock(&self.scopes).insert(inner.clone());
        // A cancel decided before the insert did not see the inner scope:
        // pass it on now. (One decided after it does see it.)
        if self.core.is_cancelled() {
            inner.cancel_from_parent();
        }
        key
    }

    fn disown(&self, key: usize) {
        let inner = lock(&self.scopes).remove(key);
        drop(inner);
    }

    fn abort_all(&self) {
        lock(&self.registry).abort_all();
    }

    /// Drops the queued children and aborts the running ones, in this scope
    /// and in every scope open inside it: they are all about to be dropped
    /// with the scope (G7). The queue is closed first, so that an aborted
    /// child's slot goes to nobody.
    ///
    /// Each scope is gone through once: in a deep nest of dropped scopes
    /// each one's drop would otherwise go through all of those below it
    /// again, quadratic in the depth. A loop, not a recursion, as in
    /// [`Scope::fire_token`].
    fn abort_tree(&self) {
        let mut pending = match self.abort_own() {
            true => lock(&self.scopes).open(),
            false => return,
        };
        while let Some(inner) = pending.pop() {
            if inner.abort_own() {
                pending.extend(lock(&inner.scopes).open());
            }
        }
    }

    /// `abort_tree`'s work on this scope alone, unless done already. The
    /// scope is cancelled first (if it was not), so that a child dropped by
    /// the abort finds its scope cancelled, as after any other cancel; its
    /// token fires with the dropped scope's, once the walk is done.
    fn abort_own(&self) -> bool {
        if self.tree_aborted.swap(true, Ordering::AcqRel) {
            return false;
        }
        let _ = self.cancel_core_from_parent();
        drop(self.core.close_queue());
        self.abort_all();
        true
    }

    /// The scope future was dropped before finishing (G7): cancel and abort
    /// everything at once, and make the parent wait for the children that
    /// are still being torn down (G1 is transitive). Never blocks.
    fn abandon(&self) {
        let cancelling = self
            .core
            .cancel_with(Cause::Dropped, |_| self.set_why(PublicCause::Cancelled));
        // Abort before the token fires, so that no child is woken into its
        // cancellation path by a token it will never get to act on.
        self.abort_tree();
        self.cancelling(cancelling);
        if let Some(parent) = &self.parent {
            match parent.core.enter_hold() {
                Ok(()) => self.holds_parent.store(true, Ordering::Release),
                Err(last) => {
                    if last {
                        parent.finish_dropped();
                    }
                }
            }
        }
        *lock(&self.dropped_at) = Some(Stamp::now());
        // After `holds_parent` is settled: a panic reported from here on
        // is handed on at once, to the parent if it is held.
        self.dropped.store(true, Ordering::Release);
        if self.core.abandon() {
            self.finish_dropped();
        }
    }

    /// Every child of a dropped scope has ended: their tokio tasks can go.
    /// A large list is freed on the leak watcher's thread, soon: the last
    /// child ends on a runtime thread, which need not pay for freeing the
    /// tasks of every sibling (10,000 of them take about a millisecond).
    fn release_tasks_elsewhere(&self) {
        let registry = {
            let mut registry = lock(&self.registry);
            let closed = registry.closed();
            std::mem::replace(&mut *registry, closed)
        };
        if registry.len() > FREE_INLINE {
            leak::free_soon(registry);
        }
    }

    /// The join is complete: every child has ended, so their bookkeeping
    /// can go now rather than when the last `Nursery` clone is dropped.
    fn closed(&self) {
        let registry = {
            let mut registry = lock(&self.registry);
            let closed = registry.closed();
            std::mem::replace(&mut *registry, closed)
        };
        drop(registry);
    }

    /// Whether the scope has been cancelled, and how, for [`crate::check`]:
    /// the cause that fixed the outcome decides, so the answer never changes
    /// once given. While not cancelled: one atomic load, and a read of the
    /// clock if the scope has a deadline ([`Scope::is_cancelled`]).
    pub(crate) fn interrupted(&self) -> Option<Interrupted> {
        if !self.is_cancelled() {
            return None;
        }
        match self.core.cause() {
            Some(Cause::TimedOut) => Some(Interrupted::TimedOut),
            _ => Some(Interrupted::Cancelled),
        }
    }

    fn deadline_passed(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Whether the scope has been cancelled. A scope whose deadline has
    /// passed is timed out whether or not its timer has fired yet (tokio's
    /// fires on the next millisecond tick, and not at all while a body
    /// holds the thread): whoever notices first cancels it with
    /// [`Cause::TimedOut`], which fixes the outcome (G5). So a zero timeout
    /// times out, and `check()` never says `Ok` past the deadline.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.core.is_cancelled() || (self.deadline_passed() && self.time_out())
    }

    /// Cancels the scope for its passed deadline; out of line, so that
    /// the polls that check the deadline keep a small frame.
    #[cold]
    #[inline(never)]
    fn time_out(&self) -> bool {
        self.cancel(Cause::TimedOut);
        true
    }
}

impl Drop for Scope {
    /// Lets go of the parent without recursion. In a chain of nested
    /// scopes the innermost can hold the last reference to every scope
    /// above it (each scope holds its parent): dropping them one inside
    /// the next would take a stack frame per level.
    fn drop(&mut self) {
        let mut parent = self.parent.take();
        while let Some(scope) = parent {
            parent = match Arc::try_unwrap(scope) {
                Ok(mut scope) => scope.parent.take(),
                // Still referenced elsewhere (or by a thread dropping it
                // right now, whose drop then carries on up itself).
                Err(_) => None,
            };
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.name)
            .field("core", &self.core)
            .field("deadline", &self.deadline)
            .field("registry", &*lock(&self.registry))
            .finish_non_exhaustive()
    }
}

fn own_deadline(config: &Builder) -> Option<Instant> {
    let from_timeout = config
        .timeout
        .and_then(|timeout| Instant::now().checked_add(timeout));
    earliest(config.deadline, from_timeout)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

// ===== the scope future =====

/// Drops the body in place. A panic from its destructor is the body's
/// panic: the scope joins, then re-raises it (G1, G3). Out of line: the
/// body's destructor takes room of its own, and runs once a scope.
#[inline(never)]
fn drop_body<Fut>(body: Pin<&mut Slot<Fut>>, scope: &Scope) {
    if let Err(payload) = body.drop_future() {
        scope.report_panic(payload, false);
    }
}

/// Keeps the scope in the tree of open scopes while open, and aborts it if
/// its future is dropped before the join completed.
struct Open {
    scope: Arc<Scope>,
    joined: bool,
}

impl Open {
    fn new(scope: &Arc<Scope>) -> Open {
        Scope::register_open(scope);
        Open {
            scope: scope.clone(),
            joined: false,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.joined {
            self.scope.unregister();
            return;
        }
        self.scope.abandon();
        // Children still being torn down: if they are not gone within the
        // leak-grace window, they are leaks.
        if self.scope.is_registered() {
            leak::watch_dropped(&self.scope, self.scope.leak_grace);
        }
    }
}

pin_project! {
    /// The future [`scope`] returns. The scope opens at the first poll;
    /// from then on each poll polls the body inline, in the scope.
    ///
    /// Written out by hand, not as an `async fn`, to keep it and its poll
    /// frame small: a scope nested in a body is polled from inside that
    /// body's poll, so the stack a nest of them takes grows by one poll
    /// frame per level, and an outer body that boxes the future builds it
    /// on its own stack first. The setup at the first poll and the finish
    /// run in frames of their own; the timers, which most scopes never
    /// arm, live in a box allocated when one is (see [`Cold`]); the cancel
    /// paths are out of line; the body's poll is inlined into this one
    /// ([`context::enter_inline`]), so that a level is one frame, not two.
    ///
    /// Polled again once it has completed, it panics with the message an
    /// `async fn`'s future gives.
    #[project = RunProj]
    #[project_replace = RunOwn]
    enum Run<F, Fut, T, E> {
        Unopened {
            config: Builder,
            body: F,
            location: &'static Location<'static>,
            error: PhantomData<fn() -> E>,
        },
        Open {
            #[pin]
            running: Running<Fut, T>,
        },
        Done,
        // A panic left the future (no runtime, or the scope re-raised one).
        Panicked,
    }
}

fn run<F, Fut, T, E>(
    config: Builder,
    body: F,
    location: &'static Location<'static>,
) -> Run<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    Run::Unopened {
        config,
        body,
        location,
        error: PhantomData,
    }
}

pin_project! {
    /// An open scope's future: the body, and what watches for cancels from
    /// outside the scope's own children.
    ///
    /// The fields drop in order: the body before `open`, so an unfinished
    /// body (and any inner scope in it) is torn down before this scope is
    /// abandoned.
    struct Running<Fut, T> {
        // The body's value, once it has returned one.
        value: Option<T>,
        // The timers and the outside token, once one is needed.
        cold: Option<Pin<Box<Cold>>>,
        // Cancels from enclosing scopes arrive through `cancelling`; this
        // catches the token being cancelled directly (`Nursery::token`).
        #[pin]
        token_cancelled: WaitForCancellationFutureOwned,
        #[pin]
        body: Slot<Fut>,
        // The scope, lent to the thread for each poll of the body.
        lent: Option<Arc<Scope>>,
        open: Open,
        // The cancel has been started here (queue closed, token fired).
        cancel_seen: bool,
    }
}

pin_project! {
    /// The parts of a scope future that most scopes never use, boxed so
    /// that they take no room (a `Sleep` is over a hundred bytes) in the
    /// future, and none in its poll frame: the deadline timer, the outside
    /// token of [`Builder::cancel_on`], the grace timer and the rate's
    /// timer. Allocated when the scope opens with a deadline of its own or
    /// an outside token, or when it first arms the grace or rate timer;
    /// kept until the scope future is dropped.
    struct Cold {
        #[pin]
        deadline: Option<Sleep>,
        #[pin]
        outside: Option<WaitForCancellationFutureOwned>,
        #[pin]
        grace: Option<Sleep>,
        #[pin]
        pace: Option<Sleep>,
    }
}

/// The scope's [`Cold`] parts, allocated if they are not yet.
fn cold(slot: &mut Option<Pin<Box<Cold>>>) -> Pin<&mut Cold> {
    slot.get_or_insert_with(|| {
        Box::pin(Cold {
            deadline: None,
            outside: None,
            grace: None,
            pace: None,
        })
    })
    .as_mut()
}

impl<F, Fut, T, E> Future for Run<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    type Output = Result<T, Error<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let RunProj::Unopened { .. } = self.as_mut().project() {
            self.as_mut().open();
        }
        let running = match self.as_mut().project() {
            RunProj::Open { running } => running,
            RunProj::Done => panic!("`async fn` resumed after completion"),
            RunProj::Panicked => panic!("`async fn` resumed after panicking"),
            RunProj::Unopened { .. } => unreachable!("nursery: the scope opens at its first poll"),
        };
        match running.poll_join(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(self.finish()),
        }
    }
}

impl<F, Fut, T, E> Run<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    /// Opens the scope and runs the body closure in it: the first poll.
    /// Out of line, so that what it moves (the settings, the scope, the
    /// body's future on its way into place) takes no room in the frame of
    /// every later poll.
    #[inline(never)]
    fn open(mut self: Pin<&mut Self>) {
        // Until the scope is in place, a panic (no runtime) leaves the
        // future spent.
        let RunOwn::Unopened {
            config,
            body,
            location,
            error: _,
        } = self.as_mut().project_replace(Run::Panicked)
        else {
            unreachable!("nursery: a scope opens once")
        };
        let (scope, timed) = Scope::open(&config, location);
        let scope = Arc::new(scope);
        let open = Open::new(&scope);
        // The body closure runs in the scope too: a panic there (after it
        // has spawned children, say) is the body's panic, re-raised after
        // the join.
        let mut lent = Some(scope.clone());
        let made = {
            #[cfg(feature = "tracing")]
            let _entered = scope.span.enter();
            context::enter(&mut lent, || {
                catch_unwind(AssertUnwindSafe(|| body(Nursery::new(scope.clone()))))
            })
        };
        let body = match made {
            Ok(future) => Slot::Live { future },
            Err(payload) => {
                scope.report_panic(payload, false);
                Slot::Dropped
            }
        };
        // Sources of cancellation from outside the scope's own children.
        let deadline = timed.map(sleep_until);
        let token_cancelled = scope.token.clone().cancelled_owned();
        let outside = config.cancel_on.map(CancellationToken::cancelled_owned);
        let cold = (deadline.is_some() || outside.is_some()).then(|| {
            Box::pin(Cold {
                deadline,
                outside,
                grace: None,
                pace: None,
            })
        });
        self.set(Run::Open {
            running: Running {
                value: None,
                cold,
                token_cancelled,
                body,
                lent,
                open,
                cancel_seen: false,
            },
        });
    }

    /// The join is complete: closes the scope and turns its outcome into
    /// the result.
    #[inline(never)]
    fn finish(mut self: Pin<&mut Self>) -> Result<T, Error<E>> {
        let RunProj::Open { running } = self.as_mut().project() else {
            unreachable!("nursery: only an open scope finishes")
        };
        let running = running.project();
        let value = running.value.take();
        let scope = running.open.scope.clone();
        running.open.joined = true;
        // Drops the rest: `open` leaves the tree of open scopes.
        self.as_mut().set(Run::Panicked);
        scope.closed();
        let outcome = scope.core.take_outcome();
        drop(scope);
        let result = finish(outcome, value);
        self.set(Run::Done);
        result
    }
}

impl<Fut, T, E> Running<Fut, T>
where
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    /// One poll of an open scope: watches for cancels, polls the body, and
    /// says when the body and every child have finished.
    fn poll_join(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let scope = &this.open.scope;
        // The body, and whatever the scope does on its behalf, runs in the
        // scope's span.
        #[cfg(feature = "tracing")]
        let _entered = scope.span.enter();
        scope.core.register(cx.waker());

        if let Some(cold) = this.cold {
            scope.poll_outside(cold.as_mut(), cx);
        }

        // The token cancelled directly, by whoever holds it: an outside
        // cancel. Checked again after the body yields (below), so a body that
        // cancels the token has its scope cancelled before any child it
        // spawned meanwhile gets to run on this thread.
        if !scope.core.is_cancelled() && this.token_cancelled.as_mut().poll(cx).is_ready() {
            scope.cancel_from_parent();
        }

        let mut body_yielded = false;
        loop {
            // Past the deadline the scope times out even if the timer has
            // not fired: checked before the body runs (a zero timeout) and
            // again after it returns (a body that held the thread).
            if scope.is_cancelled() {
                if !*this.cancel_seen {
                    *this.cancel_seen = true;
                    scope.start_cancel(this.cold);
                }
                if scope.core.cause().is_some_and(Cause::interrupts_body) {
                    drop_body(this.body.as_mut(), scope);
                }
            }
            if body_yielded {
                break;
            }
            let SlotProj::Live { future } = this.body.as_mut().project() else {
                break;
            };
            let polled = context::enter_inline(this.lent, || {
                catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
            });
            match polled {
                Ok(Poll::Pending) => {
                    if !scope.core.is_cancelled() && scope.token.is_cancelled() {
                        scope.cancel_from_parent();
                    }
                    if *this.cancel_seen || !scope.core.is_cancelled() {
                        break;
                    }
                    // The body cancelled the scope: start the cancel now.
                    body_yielded = true;
                }
                Ok(Poll::Ready(Ok(output))) => {
                    *this.value = Some(output);
                    drop_body(this.body.as_mut(), scope);
                }
                Ok(Poll::Ready(Err(error))) => {
                    drop_body(this.body.as_mut(), scope);
                    scope.report_error(Box::new(error), false);
                }
                Err(payload) => {
                    drop_body(this.body.as_mut(), scope);
                    scope.report_panic(payload, false);
                }
            }
            // The body's result (or the body, on its way) may have cancelled
            // the scope: go round once more to start the cancel.
        }

        if let Some(cold) = this.cold {
            scope.poll_grace(cold.as_mut(), cx);
        }
        scope.pace(this.cold, cx);

        if !matches!(*this.body, Slot::Dropped) {
            return Poll::Pending;
        }
        if scope.core.try_close() {
            return Poll::Ready(());
        }
        // Waiting for children: free the tasks of those that have ended
        // (an exit wakes the scope for it as the count halves).
        scope.release_finished();
        Poll::Pending
    }
}

impl Scope {
    /// Polls the deadline timer and the outside token, and cancels the
    /// scope if either has fired.
    #[inline(never)]
    fn poll_outside(&self, cold: Pin<&mut Cold>, cx: &mut Context<'_>) {
        let mut cold = cold.project();
        if poll_once(cold.deadline.as_mut(), cx) {
            cold.deadline.set(None);
            self.cancel(Cause::TimedOut);
        }
        if poll_once(cold.outside.as_mut(), cx) {
            cold.outside.set(None);
            self.cancel(Cause::Cancelled);
        }
    }

    /// Polls the grace timer, and aborts the children still running once
    /// it has fired.
    #[inline(never)]
    fn poll_grace(&self, cold: Pin<&mut Cold>, cx: &mut Context<'_>) {
        let mut grace = cold.project().grace;
        if poll_once(grace.as_mut(), cx) {
            grace.set(None);
            self.abort_all();
        }
    }

    /// The scope future has seen its scope cancelled: stops the queue, aborts
    /// the children or arms the grace timer, and fires the token. Usually
    /// done already by whoever cancelled, maybe still under way on another
    /// thread; idempotent, and in the same order.
    #[cold]
    #[inline(never)]
    fn start_cancel(&self, slot: &mut Option<Pin<Box<Cold>>>) {
        drop(self.core.close_queue());
        if self.grace.is_zero() {
            self.abort_all();
        } else {
            cold(slot).project().grace.set(Some(sleep(self.grace)));
        }
        self.fire_token();
    }
}

/// Polls an optional future once; `true` if it completed.
fn poll_once<F: Future>(future: Pin<&mut Option<F>>, cx: &mut Context<'_>) -> bool {
    future
        .as_pin_mut()
        .is_some_and(|future| future.poll(cx).is_ready())
}

/// Turns the joined scope's outcome into its result.
fn finish<T, E: 'static>(outcome: Outcome, value: Option<T>) -> Result<T, Error<E>> {
    if let Some(payload) = outcome.panic {
        // Dropped before unwinding, each on its own: a destructor that
        // panicked during the unwind would abort the process. The first
        // panic is the one re-raised; later ones are not (G3).
        let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
        for error in outcome.errors {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(error)));
        }
        resume_unwind(payload);
    }
    let mut errors = outcome
        .errors
        .into_iter()
        .map(|error| match error.downcast::<E>() {
            Ok(error) => *error,
            Err(_) => unreachable!("nursery: every error of a scope has the scope's error type"),
        });
    if let Some(error) = errors.next() {
        return Err(Error::Failed {
            error,
            suppressed: errors.collect(),
            omitted: outcome.omitted,
        });
    }
    match outcome.cause {
        Some(Cause::TimedOut) => Err(Error::TimedOut),
        Some(Cause::Cancelled | Cause::Dropped) => Err(Error::Cancelled),
        None | Some(Cause::Requested) => {
            Ok(value.expect("nursery: a body that neither failed nor panicked returned a value"))
        }
        Some(Cause::Failed | Cause::Panicked) => {
            unreachable!("nursery: a failed scope holds its error or panic")
        }
    }
}

// ===== for the `#[nursery]` expansion (the `macros` feature) =====

/// Runs the body of a `#[nursery]` function in a scope built by `builder`,
/// turning the scope's error into the function's own. `returns` carries
/// the function's declared return type `R`, so `R` and its error type are
/// known before the body closure is checked. The scope's location is the
/// caller's: the span the expansion gives the call, in the user's function.
///
/// The body's output is `R` itself, not `Result<T, E>`, so that a declared
/// type that is no `Result` fails `R: ReturnsResult` only, with that
/// trait's message, and nothing else: every obligation on `R` is reported
/// at the call, where rustc shows the first and drops its duplicates.
#[cfg(feature = "macros")]
#[doc(hidden)]
#[track_caller]
pub fn run_scope<F, Fut, R>(
    builder: Builder,
    returns: PhantomData<fn() -> R>,
    body: F,
) -> impl Future<Output = R>
where
    R: ReturnsResult,
    F: FnOnce(Nursery<R::Err>) -> Fut,
    Fut: Future<Output = R>,
{
    let _ = returns;
    let scope = builder.scope_at(
        move |nursery| IntoResult {
            future: body(nursery),
        },
        Location::caller(),
    );
    async move { R::from_result(scope.await.map_err(Error::into_error)) }
}

/// The marker `run_scope` takes: the declared return type `R`.
#[cfg(feature = "macros")]
#[doc(hidden)]
pub fn returns<R>() -> PhantomData<fn() -> R> {
    PhantomData
}

/// The return types a `#[nursery]` function may declare: `Result<T, E>`
/// with `E: From<Interrupted>`, however it is spelt (`io::Result<T>`, an
/// alias of the user's). The attribute sees tokens, not types, so the type
/// checker decides, with this trait's message.
#[cfg(feature = "macros")]
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a `#[nursery]` function must return a `Result<T, E>` whose `E: From<nursery::Interrupted>`, not `{Self}`",
    label = "returns `{Self}`",
    note = "the function returns its scope's error as an `E`: a child's error as it is, a timeout or cancellation converted from `nursery::Interrupted`"
)]
pub trait ReturnsResult: Sized {
    /// The `T` of `Result<T, E>`.
    type Ok;
    /// The `E` of `Result<T, E>`: the scope's error type.
    type Err: From<Interrupted> + Send + 'static;

    /// The value as a `Result`.
    fn into_result(self) -> Result<Self::Ok, Self::Err>;

    /// The value from a `Result`.
    fn from_result(result: Result<Self::Ok, Self::Err>) -> Self;
}

#[cfg(feature = "macros")]
impl<T, E> ReturnsResult for Result<T, E>
where
    E: From<Interrupted> + Send + 'static,
{
    type Ok = T;
    type Err = E;

    fn into_result(self) -> Result<T, E> {
        self
    }

    fn from_result(result: Result<T, E>) -> Self {
        result
    }
}

#[cfg(feature = "macros")]
pin_project! {
    /// The body's future, with its output (a [`ReturnsResult`]) as the
    /// `Result` a scope's body returns.
    struct IntoResult<Fut> {
        #[pin]
        future: Fut,
    }
}

#[cfg(feature = "macros")]
impl<Fut> Future for IntoResult<Fut>
where
    Fut: Future,
    Fut::Output: ReturnsResult,
{
    type Output = Result<<Fut::Output as ReturnsResult>::Ok, <Fut::Output as ReturnsResult>::Err>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .future
            .poll(cx)
            .map(ReturnsResult::into_result)
    }
}

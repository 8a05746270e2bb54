//! [`scope`] and [`Builder`]: how a scope is opened, and with what
//! settings.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::limiter::Rate;
use crate::error::Error;
use crate::id::Name;
use crate::local::Local;
use crate::nursery::Nursery;
use crate::run::{Plain, WithLocal, run};
use crate::scope::Config;

/// Opens a scope with the default settings, runs `body` in it, and returns
/// once the body and every child spawned into the scope have finished.
///
/// The body runs inline, in the future `scope` returns, so it may borrow
/// from the caller; children are `'static` tasks that run in parallel on
/// the runtime. The scope keeps the [guarantees G1–G9](crate#guarantees):
/// when it returns, every child has terminated; the first error cancels
/// the rest and is returned; a panic is re-raised; dropping it aborts
/// every child at once.
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
    run(Config::default(), Plain(body), Location::caller())
}

/// Opens a scope whose body gets, beside the [`Nursery`], a [`Local`]
/// handle for children that borrow: futures that may hold references to
/// anything that outlives this call, run on the scope's own task,
/// concurrently with the body and with the scope's parallel children.
///
/// This answers the "scoped task trilemma" (concurrency, parallelism,
/// borrowing: pick two) by offering both kinds in one scope: `'static`
/// children that run in parallel through the [`Nursery`], and borrowing
/// children that run concurrently on the scope's task through [`Local`],
/// all under the same guarantees, limit and cancellation. No `unsafe` is
/// involved; see [`Local`] for what the local children get and why
/// forgetting the scope future is still sound.
///
/// The scope future is `Send` when the body is (local children are always
/// `Send`), so a scope with borrowing children can run inside a
/// `tokio::spawn`ed task over data moved into it.
///
/// # Examples
///
/// ```
/// # #[tokio::main] async fn main() {
/// let catalogue = vec!["tea".to_owned(), "coffee".to_owned(), "cocoa".to_owned()];
/// let catalogue = &catalogue; // borrowed, not cloned
/// let (lengths, audit) = nursery::scope_local(|n, local| async move {
///     let lengths: Vec<_> = catalogue
///         .iter()
///         .map(|item| local.spawn(async move { Ok::<_, String>(item.len()) }))
///         .collect();
///     // A parallel, 'static child in the same scope.
///     let audit = n.spawn(async { Ok("audited") });
///     let mut total = Vec::new();
///     for length in lengths {
///         total.push(length.await.map_err(|e| e.to_string())?);
///     }
///     Ok((total, audit.await.map_err(|e| e.to_string())?))
/// })
/// .await
/// .unwrap();
/// assert_eq!((lengths, audit), (vec![3, 6, 5], "audited"));
/// # }
/// ```
///
/// # Errors, panics, cancel safety
///
/// As for [`scope`](crate::scope()).
#[track_caller]
pub fn scope_local<'env, F, Fut, T, E>(body: F) -> impl Future<Output = Result<T, Error<E>>> + 'env
where
    F: FnOnce(Nursery<E>, Local<'env, E>) -> Fut + 'env,
    Fut: Future<Output = Result<T, E>> + 'env,
    T: 'env,
    E: Send + 'static,
{
    Nursery::builder().scope_local_at(body, Location::caller())
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
    config: Config,
}

impl Nursery<()> {
    /// Settings for a new scope: name, limit, timeout or deadline, grace,
    /// `collect_errors`, `cancel_on`. The error type comes from the body
    /// passed to [`Builder::scope`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let result = nursery::Nursery::builder()
    ///     .limit(2)
    ///     .scope(|n| async move {
    ///         for i in 0..10 {
    ///             n.spawn(async move { Ok::<_, String>(i) });
    ///         }
    ///         Ok(())
    ///     })
    ///     .await;
    /// assert!(result.is_ok());
    /// # }
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            config: Config::default(),
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
        self.config.name = Some(Name::new(name));
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
        self.config.limit = Some(limit);
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
        self.config.rate = Some(Rate {
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
    /// already says [`Interrupted::TimedOut`](crate::Interrupted::TimedOut).
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
        self.config.timeout = Some(timeout);
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
        self.config.deadline = Some(deadline);
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
    ///         n.spawn(async { Err::<(), _>("failed") });
    ///         Ok(())
    ///     })
    ///     .await;
    /// assert!(result.is_err());
    /// assert_eq!(rx.await, Ok("cleaned up"));
    /// # }
    /// ```
    pub fn grace(mut self, grace: Duration) -> Builder {
        self.config.grace = Some(grace);
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
        self.config.leak_grace = Some(leak_grace);
        self
    }

    /// Reports the scope stuck once it has waited for its children longer
    /// than `after`, counted from when its body returned or it was
    /// cancelled: once, through the hook of [`set_stuck_hook`](crate::set_stuck_hook)
    /// (stderr by default; a `tracing` warning too with the feature), naming
    /// the scope and every child of its own still alive, with its spawn
    /// site, age and state ([`Stuck`](crate::Stuck)). The answer to "why
    /// does my shutdown hang?".
    ///
    /// In a build with tokio's task dumps (the `taskdump` feature and
    /// `--cfg tokio_unstable`, on Linux), each child is listed with where
    /// it waits, its await-point trace; the report goes once tokio's dump
    /// is taken, a moment after the timer fires. Without them, the report
    /// ends with a line saying how to turn them on.
    ///
    /// Default: the enclosing scope's setting, so one setting at the top
    /// covers a whole tree of scopes; off for a scope outside any other.
    /// It costs a timer per scope, armed only once the scope waits.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    ///
    /// let result = nursery::Nursery::builder()
    ///     .warn_after(Duration::from_secs(30)) // a slow child is reported, not stopped
    ///     .scope(|n| async move {
    ///         n.spawn(async { Ok::<_, ()>(()) });
    ///         Ok(())
    ///     })
    ///     .await;
    /// assert_eq!(result, Ok(()));
    /// # }
    /// ```
    pub fn warn_after(mut self, after: Duration) -> Builder {
        self.config.warn_after = Some(after);
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
    /// [`TaskHandle`](crate::TaskHandle) resolves to a failed [`JoinError`](crate::JoinError).
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
        self.config.fail_fast = false;
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
        self.config.max_suppressed = max;
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
        self.config.cancel_on = Some(token);
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
        self.config.display_error =
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
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes aborts every child at once and
    /// starts none of the queued ones (G7); it never blocks.
    #[track_caller]
    pub fn scope<F, Fut, T, E>(self, body: F) -> impl Future<Output = Result<T, Error<E>>>
    where
        F: FnOnce(Nursery<E>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Send + 'static,
    {
        run(self.config, Plain(body), Location::caller())
    }

    /// Opens the scope with these settings, with local children beside the
    /// parallel ones; see [`scope_local`](crate::scope_local()).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let ids = &[3, 1, 2];
    /// let doubled = nursery::Nursery::builder()
    ///     .limit(2)
    ///     .scope_local(|_n, local| async move {
    ///         local.map(ids, |id| async move { Ok::<_, ()>(id * 2) }).await.map_err(|_| ())
    ///     })
    ///     .await;
    /// assert_eq!(doubled, Ok(vec![6, 2, 4]));
    /// # }
    /// ```
    ///
    /// # Errors, panics, cancel safety
    ///
    /// As for [`Builder::scope`].
    #[track_caller]
    pub fn scope_local<'env, F, Fut, T, E>(
        self,
        body: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + 'env
    where
        F: FnOnce(Nursery<E>, Local<'env, E>) -> Fut + 'env,
        Fut: Future<Output = Result<T, E>> + 'env,
        T: 'env,
        E: Send + 'static,
    {
        self.scope_local_at(body, Location::caller())
    }

    fn scope_local_at<'env, F, Fut, T, E>(
        self,
        body: F,
        location: &'static Location<'static>,
    ) -> impl Future<Output = Result<T, Error<E>>> + 'env
    where
        F: FnOnce(Nursery<E>, Local<'env, E>) -> Fut + 'env,
        Fut: Future<Output = Result<T, E>> + 'env,
        T: 'env,
        E: Send + 'static,
    {
        run(self.config, WithLocal(body, PhantomData), location)
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
        run(self.config, Plain(body), location)
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
            .field("name", &self.config.name)
            .field("limit", &self.config.limit)
            .field("timeout", &self.config.timeout)
            .field("deadline", &self.config.deadline)
            .field("grace", &self.config.grace)
            .field("leak_grace", &self.config.leak_grace)
            .field("warn_after", &self.config.warn_after)
            .field("rate", &self.config.rate)
            .field("fail_fast", &self.config.fail_fast)
            .field(
                "max_suppressed",
                &(self.config.max_suppressed != usize::MAX).then_some(self.config.max_suppressed),
            )
            .field("cancel_on", &self.config.cancel_on.is_some())
            .field("trace_errors", &self.config.display_error.is_some())
            .finish()
    }
}

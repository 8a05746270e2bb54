//! The errors a scope and its tasks report.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::panic::Location;

use crate::id::{Name, TaskInfo};

/// Why a scope did not return its body's value.
///
/// A scope returns `Failed` when a child or the body returned `Err`
/// (G2), `TimedOut` when its deadline passed (G5) and `Cancelled` when it was
/// cancelled from outside: by its parent scope or its
/// [`cancel_on`](crate::Builder::cancel_on) token. Cancelling a scope on
/// purpose with [`Nursery::cancel`](crate::Nursery::cancel) is not an error
/// (G9). Panics are not errors: they are re-raised (G3).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let result = nursery::Nursery::builder()
///     .collect_errors()
///     .scope(|n| async move {
///         n.spawn(async { Err::<(), _>("first") });
///         n.spawn(async { Err::<(), _>("second") });
///         Ok(())
///     })
///     .await;
/// match result {
///     Err(nursery::Error::Failed { error, suppressed, .. }) => {
///         // The first error in time is `error`; no other one is lost.
///         assert_eq!(suppressed.len(), 1);
///         assert!(["first", "second"].contains(&error));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// A child or the body failed.
    ///
    /// Under fail-fast (the default) `error` is the failure that cancelled
    /// the scope and `suppressed` holds the errors that arrived while it was
    /// being cancelled. Under [`collect_errors`](crate::Builder::collect_errors)
    /// `error` is the first error in time and `suppressed` the rest, in order.
    ///
    /// Every error is kept unless the scope caps `suppressed` with
    /// [`max_suppressed`](crate::Builder::max_suppressed): then the errors
    /// past the cap are dropped as they arrive and counted in `omitted`.
    Failed {
        /// The first error.
        error: E,
        /// Every later error, in the order it arrived (up to the scope's
        /// [`max_suppressed`](crate::Builder::max_suppressed)).
        suppressed: Vec<E>,
        /// How many errors arrived past the cap and were dropped: 0 unless
        /// the scope sets [`max_suppressed`](crate::Builder::max_suppressed).
        omitted: usize,
    },
    /// The scope's deadline (its own or an enclosing scope's) passed before
    /// it finished.
    TimedOut,
    /// The scope was cancelled from outside: by its parent scope or by its
    /// [`cancel_on`](crate::Builder::cancel_on) token.
    Cancelled,
}

impl<E> Error<E> {
    /// Turns the error into the caller's error type, mapping `TimedOut` and
    /// `Cancelled` through [`Interrupted`]. The `suppressed` errors are
    /// dropped: match on [`Error::Failed`] to keep them.
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(Debug, PartialEq)]
    /// enum AppError { Interrupted(nursery::Interrupted) }
    /// impl From<nursery::Interrupted> for AppError {
    ///     fn from(i: nursery::Interrupted) -> Self { AppError::Interrupted(i) }
    /// }
    /// let error: nursery::Error<AppError> = nursery::Error::TimedOut;
    /// assert_eq!(error.into_error(), AppError::Interrupted(nursery::Interrupted::TimedOut));
    /// ```
    pub fn into_error(self) -> E
    where
        E: From<Interrupted>,
    {
        match self {
            Error::Failed { error, .. } => error,
            Error::TimedOut => Interrupted::TimedOut.into(),
            Error::Cancelled => Interrupted::Cancelled.into(),
        }
    }

    /// The first error, if the scope failed.
    ///
    /// ```
    /// let error = nursery::Error::Failed { error: "boom", suppressed: vec![], omitted: 0 };
    /// assert_eq!(error.error(), Some(&"boom"));
    /// assert_eq!(nursery::Error::<&str>::TimedOut.error(), None);
    /// ```
    pub fn error(&self) -> Option<&E> {
        match self {
            Error::Failed { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The errors kept behind the first one; empty unless the scope failed.
    ///
    /// ```
    /// let error = nursery::Error::Failed { error: 1, suppressed: vec![2, 3], omitted: 0 };
    /// assert_eq!(error.suppressed(), &[2, 3]);
    /// ```
    pub fn suppressed(&self) -> &[E] {
        match self {
            Error::Failed { suppressed, .. } => suppressed,
            _ => &[],
        }
    }

    /// How many errors were dropped past the scope's
    /// [`max_suppressed`](crate::Builder::max_suppressed) cap; 0 without a
    /// cap, or unless the scope failed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let error = nursery::Nursery::builder()
    ///     .collect_errors()
    ///     .max_suppressed(2)
    ///     .scope(|n| async move {
    ///         for i in 0..10 {
    ///             n.spawn(async move { Err::<(), _>(i) });
    ///         }
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(error.suppressed().len(), 2);
    /// assert_eq!(error.omitted(), 7); // 1 + 2 kept, 7 counted
    /// # }
    /// ```
    pub fn omitted(&self) -> usize {
        match self {
            Error::Failed { omitted, .. } => *omitted,
            _ => 0,
        }
    }

    /// Whether the scope's deadline passed.
    ///
    /// ```
    /// assert!(nursery::Error::<()>::TimedOut.is_timed_out());
    /// ```
    pub fn is_timed_out(&self) -> bool {
        matches!(self, Error::TimedOut)
    }

    /// Whether the scope was cancelled from outside.
    ///
    /// ```
    /// assert!(nursery::Error::<()>::Cancelled.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }
}

/// `Failed` shows the first error's own message, then how many more were
/// suppressed (and omitted past a cap): "connection refused (2 more errors
/// suppressed)".
///
/// The error is shown here, so [`source`](StdError::source) skips it and
/// returns the first error's own source: a reporter that walks the chain
/// (anyhow's `{:#}`, eyre, a `tracing` error field) prints each message
/// once. (Showing it through `source` alone would leave errors without a
/// source, such as a `String`, unseen in `Display`.)
///
/// ```
/// use std::error::Error as _;
///
/// let inner = std::io::Error::other("disk full");
/// let error = nursery::Error::Failed {
///     error: std::io::Error::new(std::io::ErrorKind::Other, inner),
///     suppressed: vec![std::io::Error::other("late")],
///     omitted: 0,
/// };
/// assert_eq!(error.to_string(), "disk full (1 more error suppressed)");
/// // The chain goes on with the first error's source, not the error again.
/// assert!(error.source().is_none_or(|source| source.to_string() != error.to_string()));
/// ```
impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Failed {
                error,
                suppressed,
                omitted,
            } => {
                write!(f, "{error}")?;
                let errors = |n: usize| if n == 1 { "error" } else { "errors" };
                match (suppressed.len(), *omitted) {
                    (0, 0) => Ok(()),
                    (n, 0) => write!(f, " ({n} more {} suppressed)", errors(n)),
                    (0, n) => write!(f, " ({n} more {} omitted)", errors(n)),
                    (n, m) => write!(f, " ({n} more {} suppressed, {m} omitted)", errors(n)),
                }
            }
            Error::TimedOut => f.write_str(TIMED_OUT),
            Error::Cancelled => f.write_str(CANCELLED),
        }
    }
}

impl<E: StdError + 'static> StdError for Error<E> {
    /// The first error's own source: the error itself is shown by
    /// `Display` (see there).
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Failed { error, .. } => error.source(),
            _ => None,
        }
    }
}

const TIMED_OUT: &str = "the scope's deadline passed before it finished";
const CANCELLED: &str = "the scope was cancelled from outside";

/// Why the current scope stopped: what [`check`](crate::check) reports and
/// what `#[nursery]` functions convert into their own error type.
///
/// # Examples
///
/// ```
/// use nursery::Interrupted;
/// assert_eq!(Interrupted::TimedOut.to_string(), "the scope's deadline passed before it finished");
/// let boxed: Box<dyn std::error::Error> = Interrupted::Cancelled.into();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Interrupted {
    /// The deadline of the scope (or of an enclosing scope) passed.
    TimedOut,
    /// The scope was cancelled: a sibling failed, the parent was cancelled,
    /// or someone called [`Nursery::cancel`](crate::Nursery::cancel).
    Cancelled,
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Interrupted::TimedOut => TIMED_OUT,
            Interrupted::Cancelled => "the scope was cancelled",
        })
    }
}

impl StdError for Interrupted {}

impl<E> From<Interrupted> for Error<E> {
    fn from(interrupted: Interrupted) -> Self {
        match interrupted {
            Interrupted::TimedOut => Error::TimedOut,
            Interrupted::Cancelled => Error::Cancelled,
        }
    }
}

/// An interruption as an I/O error, so that `io::Result<T>` can be the
/// return type of a `#[nursery]` function and `?` turns
/// [`check`](crate::check)'s error into an `io::Error`.
///
/// `TimedOut` has the kind [`io::ErrorKind::TimedOut`]. `Cancelled` has the
/// kind [`io::ErrorKind::Other`], not `Interrupted`: std reads
/// `ErrorKind::Interrupted` as "try again" (`read_exact`, `write_all` and
/// `io::copy` retry it in a loop), while a cancelled scope is over for good.
/// Tokio's `io::Error` from a cancelled `JoinError` is `Other` too. The
/// message is the `Interrupted`'s own, and the `Interrupted` itself comes
/// back through [`io::Error::get_ref`] or [`io::Error::into_inner`].
///
/// # Examples
///
/// ```
/// use std::io;
/// use nursery::{Interrupted, Nursery, nursery};
///
/// #[nursery(timeout = "10ms")]
/// async fn copy_all(n: Nursery<io::Error>) -> io::Result<u64> {
///     n.spawn(async {
///         tokio::time::sleep(std::time::Duration::from_secs(60)).await;
///         Ok(())
///     });
///     Ok(0)
/// }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let error = copy_all().await.unwrap_err();
/// assert_eq!(error.kind(), io::ErrorKind::TimedOut);
/// assert_eq!(error.to_string(), Interrupted::TimedOut.to_string());
/// let cause = error.get_ref().and_then(|e| e.downcast_ref::<Interrupted>());
/// assert_eq!(cause, Some(&Interrupted::TimedOut));
/// # }
/// ```
impl From<Interrupted> for io::Error {
    fn from(interrupted: Interrupted) -> io::Error {
        let kind = match interrupted {
            Interrupted::TimedOut => io::ErrorKind::TimedOut,
            Interrupted::Cancelled => io::ErrorKind::Other,
        };
        io::Error::new(kind, interrupted)
    }
}

// ===== JoinError =====

/// Why a [`TaskHandle`](crate::TaskHandle) has no value.
///
/// The child's own error never travels through its handle: it goes to the
/// scope (which returns it or keeps it as suppressed), so that no error can
/// be lost by dropping a handle. The handle says only what happened.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let result = nursery::Nursery::builder()
///     .collect_errors()
///     .scope(|n| async move {
///         let handle = n.spawn_named("parse", async { "x".parse::<u32>() });
///         let join_error = handle.await.unwrap_err();
///         assert!(join_error.is_failed());
///         assert!(join_error.to_string().contains("task `parse` spawned at"));
///         Ok(())
///     })
///     .await;
/// assert!(result.unwrap_err().error().is_some());
/// # }
/// ```
#[derive(Clone)]
pub struct JoinError {
    repr: Repr,
    task: TaskInfo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Repr {
    Failed,
    Panicked,
    Cancelled,
    Closed,
    NotReady,
}

impl JoinError {
    pub(crate) fn new(repr: Repr, task: TaskInfo) -> JoinError {
        JoinError { repr, task }
    }

    /// The child returned `Err`; the error went to the scope.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let _ = nursery::scope(|n| async move {
    ///     let error = n.spawn(async { Err::<(), _>("no") }).await.unwrap_err();
    ///     assert!(error.is_failed()); // "no" is what the scope returns
    ///     Ok(())
    /// }).await;
    /// # }
    /// ```
    pub fn is_failed(&self) -> bool {
        self.repr == Repr::Failed
    }

    /// The child panicked; the scope re-raises the panic once joined.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use futures_util::FutureExt;
    /// let outcome = std::panic::AssertUnwindSafe(nursery::scope(|n| async move {
    ///     let handle = n.spawn(async { panic!("boom") as Result<(), ()> });
    ///     assert!(handle.await.unwrap_err().is_panic());
    ///     Ok(())
    /// })).catch_unwind().await;
    /// assert!(outcome.is_err()); // the scope re-raised the panic
    /// # }
    /// ```
    pub fn is_panic(&self) -> bool {
        self.repr == Repr::Panicked
    }

    /// The child was cancelled: aborted, or never started because the scope
    /// was cancelled first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     n.cancel();
    ///     let late = n.spawn(async { Ok(1) }); // never started
    ///     assert!(late.await.unwrap_err().is_cancelled());
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.repr == Repr::Cancelled
    }

    /// The child was never started because its scope had already returned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let n = nursery::scope(|n| async move { Ok::<_, ()>(n.clone()) }).await.unwrap();
    /// let late = n.spawn(async { Ok(1) }); // the scope has returned
    /// assert!(late.await.unwrap_err().is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.repr == Repr::Closed
    }

    /// The child passed to [`Nursery::start`](crate::Nursery::start)
    /// finished without calling [`Ready::send`](crate::Ready::send).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     let started = n.start(|_ready: nursery::Ready<u16>| async { Ok(()) }).await;
    ///     assert!(started.unwrap_err().is_not_ready());
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn is_not_ready(&self) -> bool {
        self.repr == Repr::NotReady
    }

    /// The task's name, if it was given one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let _ = nursery::scope(|n| async move {
    ///     let error = n.spawn_named("parse", async { Err::<(), _>(()) }).await.unwrap_err();
    ///     assert_eq!(error.name(), Some("parse"));
    ///     Ok(())
    /// }).await;
    /// # }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.task.name.as_ref().map(Name::as_str)
    }

    /// Where the task was spawned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let _ = nursery::scope(|n| async move {
    ///     let error = n.spawn(async { Err::<(), _>(()) }).await.unwrap_err();
    ///     assert_eq!(error.location().file(), file!()); // the `spawn` above
    ///     Ok(())
    /// }).await;
    /// # }
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.task.location
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.repr {
            Repr::Failed => "failed; its error went to the scope",
            Repr::Panicked => "panicked; the scope re-raises the panic",
            Repr::Cancelled => "was cancelled before it finished",
            Repr::Closed => "was not started: its scope had already returned",
            Repr::NotReady => "finished without calling `Ready::send`",
        };
        write!(f, "{} {what}", self.task)
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinError")
            .field("kind", &self.repr)
            .field("task", &self.task)
            .finish()
    }
}

impl StdError for JoinError {}

// ===== SpawnError =====

/// [`Nursery::try_spawn`](crate::Nursery::try_spawn) did not start the
/// child; the future is handed back unpolled.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// nursery::Nursery::builder().limit(1).scope(|n| async move {
///     let _running = n.spawn(std::future::pending::<Result<(), ()>>());
///     let refused = n.try_spawn(async { Ok(()) }).unwrap_err();
///     assert!(refused.is_full());
///     let _future = refused.into_future(); // run it later, elsewhere, or drop it
///     n.cancel();
///     Ok(())
/// }).await.unwrap();
/// # }
/// ```
pub struct SpawnError<F> {
    kind: SpawnErrorKind,
    future: F,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpawnErrorKind {
    Full,
    Cancelled,
    Closed,
}

impl<F> SpawnError<F> {
    pub(crate) fn new(kind: SpawnErrorKind, future: F) -> SpawnError<F> {
        SpawnError { kind, future }
    }

    /// The scope is at its limit.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::Nursery::builder().limit(1).scope(|n| async move {
    ///     n.spawn(async { Ok(()) });
    ///     assert!(n.try_spawn(async { Ok(()) }).unwrap_err().is_full());
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn is_full(&self) -> bool {
        self.kind == SpawnErrorKind::Full
    }

    /// The scope has been cancelled and starts nothing new.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     n.cancel();
    ///     assert!(n.try_spawn(async { Ok(()) }).unwrap_err().is_cancelled());
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.kind == SpawnErrorKind::Cancelled
    }

    /// The scope has already returned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let n = nursery::scope(|n| async move { Ok::<_, ()>(n.clone()) }).await.unwrap();
    /// assert!(n.try_spawn(async { Ok(()) }).unwrap_err().is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.kind == SpawnErrorKind::Closed
    }

    /// The future that was not spawned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let n = nursery::scope(|n| async move { Ok::<_, ()>(n.clone()) }).await.unwrap();
    /// let refused = n.try_spawn(async { Ok::<_, ()>(7) }).unwrap_err();
    /// assert_eq!(refused.into_future().await, Ok(7)); // run it here instead
    /// # }
    /// ```
    pub fn into_future(self) -> F {
        self.future
    }
}

impl<F> fmt::Debug for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            SpawnErrorKind::Full => {
                "the scope is at its limit; use `spawn` to queue the child instead"
            }
            SpawnErrorKind::Cancelled => "the scope has been cancelled and starts no new children",
            SpawnErrorKind::Closed => "the scope has already returned and starts no new children",
        })
    }
}

impl<F> StdError for SpawnError<F> {}

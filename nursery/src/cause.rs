//! [`Cause`]: why a scope was cancelled, as a task inside it sees it.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use crate::id::{Name, TaskInfo};

/// Why the current scope was cancelled: what [`cause`](crate::cause())
/// returns and [`cancelled`](crate::cancelled()) resolves to.
///
/// The first cause wins and stays, with one exception: a scope whose
/// children were stopped on purpose ([`Cause::Requested`]) may still be
/// interrupted by its deadline, an outside cancel or a panic, and then reads
/// as that.
///
/// A scope cancelled by the scope around it reads as the outer scope's
/// cause: a task three scopes down from a failing sibling of its
/// grandparent sees that sibling's [`Cause::Failed`], and one under a scope
/// whose body called [`Nursery::cancel`](crate::Nursery::cancel) sees
/// [`Cause::Requested`]. Only a deadline is judged by the scope itself: if
/// its effective deadline has passed when the cancel reaches it, it reads
/// [`Cause::TimedOut`], as its result ([`Error::TimedOut`](crate::Error::TimedOut)) says.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use nursery::Cause;
///
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// let result = nursery::Nursery::builder()
///     .grace(Duration::from_secs(1)) // time for children to see the cancel
///     .scope(|n| async move {
///         n.spawn(async move {
///             let cause = nursery::cancelled().await;
///             let _ = tx.send(cause);
///             Ok(())
///         });
///         n.spawn_named("parser", async { Err::<(), _>("bad input") });
///         Ok(())
///     })
///     .await;
/// assert!(result.is_err());
/// let cause = rx.await.unwrap();
/// assert!(matches!(cause, Cause::Failed { .. }));
/// assert_eq!(cause.task(), Some("parser"));
/// assert_eq!(cause.to_string(), format!("task `parser` spawned at {} failed", cause.location().unwrap()));
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// The scope's effective deadline passed: its own
    /// [`timeout`](crate::Builder::timeout) or
    /// [`deadline`](crate::Builder::deadline), or an enclosing scope's.
    TimedOut,
    /// Cancelled from outside: the future of the scope (or of an enclosing
    /// scope) was dropped, its [`cancel_on`](crate::Builder::cancel_on)
    /// token fired, or its [`token`](crate::Nursery::token) was cancelled
    /// directly.
    Cancelled,
    /// [`Nursery::cancel`](crate::Nursery::cancel): the scope's children
    /// were stopped on purpose.
    Requested,
    /// A task returned an error under fail-fast. `task` is the name given
    /// with [`spawn_named`](crate::Nursery::spawn_named) (`None` for an
    /// unnamed task) and `location` where it was spawned.
    ///
    /// When the scope's body itself returned the error, `task` is `None`
    /// and `location` is where the scope was opened.
    #[non_exhaustive]
    Failed {
        /// The failing task's name, if it had one.
        task: Option<Arc<str>>,
        /// Where the failing task was spawned (the scope's own location
        /// for its body).
        location: &'static Location<'static>,
    },
    /// A task panicked (a panic always cancels, even under
    /// [`collect_errors`](crate::Builder::collect_errors)). The fields are
    /// those of [`Cause::Failed`].
    #[non_exhaustive]
    Panicked {
        /// The panicking task's name, if it had one.
        task: Option<Arc<str>>,
        /// Where the panicking task was spawned (the scope's own location
        /// for its body).
        location: &'static Location<'static>,
    },
}

impl Cause {
    /// `Failed` or `Panicked` for the task `who` (`None`: the body of the
    /// scope opened at `scope_location`).
    pub(crate) fn failure(
        panicked: bool,
        who: Option<&TaskInfo>,
        scope_location: &'static Location<'static>,
    ) -> Cause {
        let (task, location) = match who {
            Some(who) => (
                who.name.as_ref().map(|name| Arc::from(name.as_str())),
                who.location,
            ),
            None => (None, scope_location),
        };
        if panicked {
            Cause::Panicked { task, location }
        } else {
            Cause::Failed { task, location }
        }
    }

    /// The task named by [`Cause::Panicked`], as a crate-internal identity.
    pub(crate) fn panicked_task(&self) -> Option<TaskInfo> {
        match self {
            Cause::Panicked { task, location } => Some(TaskInfo::new(
                task.as_deref()
                    .map(|name| Name::new(name.to_owned().into())),
                location,
            )),
            _ => None,
        }
    }

    /// The failing or panicking task's name, if the cause is a task's and
    /// it had one.
    ///
    /// ```
    /// assert_eq!(nursery::Cause::Requested.task(), None);
    /// ```
    pub fn task(&self) -> Option<&str> {
        match self {
            Cause::Failed { task, .. } | Cause::Panicked { task, .. } => task.as_deref(),
            _ => None,
        }
    }

    /// Where the failing or panicking task was spawned (or, for the body,
    /// where its scope was opened), if the cause is a failure.
    ///
    /// ```
    /// assert_eq!(nursery::Cause::TimedOut.location(), None);
    /// ```
    pub fn location(&self) -> Option<&'static Location<'static>> {
        match self {
            Cause::Failed { location, .. } | Cause::Panicked { location, .. } => Some(location),
            _ => None,
        }
    }
}

impl fmt::Display for Cause {
    /// One phrase: `the deadline passed`, `task `fetch` spawned at
    /// src/main.rs:12:7 failed`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let task = |f: &mut fmt::Formatter<'_>, task: &Option<Arc<str>>, location, what| match task
        {
            Some(name) => write!(f, "task `{name}` spawned at {location} {what}"),
            None => write!(
                f,
                "an unnamed task (or the scope's body) at {location} {what}"
            ),
        };
        match self {
            Cause::TimedOut => f.write_str("the deadline passed"),
            Cause::Cancelled => f.write_str("cancelled from outside"),
            Cause::Requested => f.write_str("cancel requested with Nursery::cancel"),
            Cause::Failed {
                task: name,
                location,
            } => task(f, name, location, "failed"),
            Cause::Panicked {
                task: name,
                location,
            } => task(f, name, location, "panicked"),
        }
    }
}

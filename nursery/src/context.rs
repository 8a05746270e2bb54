//! The current scope: what a task can ask without being handed a token
//! (Go's `ctx`, without passing it).
//!
//! Each poll of a child (and of a scope's body) lends the scope's `Arc` to a
//! thread-local slot for the duration of the poll, by moving it in and out:
//! no reference count is touched per poll.

use std::cell::Cell;
use std::future::Future;

use tokio::time::Instant;

use crate::cause::Cause;
use crate::error::Interrupted;
use crate::scope::{Scope, Who};
use crate::sync::Arc;

thread_local! {
    static CURRENT: Cell<Option<Arc<Scope>>> = const { Cell::new(None) };
    /// How many shields the code running now is inside.
    static SHIELDS: Cell<usize> = const { Cell::new(0) };
    /// What of the current scope runs inline on its task now: its body,
    /// one of its local children, or neither (a child on a task of its own).
    static INLINE: Cell<Inline> = const { Cell::new(Inline::Task) };
    /// With [`Inline::Local`], which local child: its registry key.
    static LOCAL_KEY: Cell<usize> = const { Cell::new(0) };
}

/// What of the current scope is running now, for [`shield`](crate::shield)
/// to know whom it protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inline {
    /// A child on a task of its own (or a runner's).
    Task,
    /// The scope's body, polled by the scope future.
    Body,
    /// One of its local children, polled by the scope future.
    Local,
}

/// Runs `f` marked as the local child `key` of the current scope, then
/// restores the mark around it (also if `f` unwinds).
pub(crate) fn local<R>(key: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(Inline, usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            INLINE.with(|mark| mark.set(self.0));
            LOCAL_KEY.with(|mark| mark.set(self.1));
        }
    }
    let _restore = Restore(
        INLINE.with(|mark| mark.replace(Inline::Local)),
        LOCAL_KEY.with(|mark| mark.replace(key)),
    );
    f()
}

/// Who of the current scope is running now: its body, one of its local
/// children, or the child (or runner) on the current tokio task; `None`
/// outside any tokio task.
pub(crate) fn who_now() -> Option<Who> {
    match INLINE.with(Cell::get) {
        Inline::Body => Some(Who::Body),
        Inline::Local => Some(Who::Local(LOCAL_KEY.with(Cell::get))),
        Inline::Task => tokio::task::try_id().map(Who::Task),
    }
}

/// Whether the code running now is inside a shield.
pub(crate) fn is_shielded() -> bool {
    SHIELDS.with(Cell::get) > 0
}

/// Runs `f` inside one more shield.
pub(crate) fn shielded<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            SHIELDS.with(|depth| depth.set(depth.get() - 1));
        }
    }
    SHIELDS.with(|depth| depth.set(depth.get() + 1));
    let _leave = Leave;
    f()
}

/// Runs `f` with the scope in `slot` as the current scope, then puts it back
/// (also if `f` unwinds).
pub(crate) fn enter<R>(slot: &mut Option<Arc<Scope>>, f: impl FnOnce() -> R) -> R {
    let lent = slot.take();
    let outer = CURRENT.with(|current| current.replace(lent));
    let _restore = Restore {
        slot,
        outer,
        inline: None,
    };
    f()
}

/// [`enter`] for the scope's body, marked as such ([`Inline::Body`]), and
/// always inlined into its caller: the body's poll then runs in the scope
/// future's own frame rather than in a frame of its own beside it, which
/// in a nest of scopes (each polled from inside the body of the last) is
/// one frame less per level.
#[inline(always)]
pub(crate) fn enter_body<R>(slot: &mut Option<Arc<Scope>>, f: impl FnOnce() -> R) -> R {
    let lent = slot.take();
    let outer = CURRENT.with(|current| current.replace(lent));
    let inline = INLINE.with(|mark| mark.replace(Inline::Body));
    let _restore = Restore {
        slot,
        outer,
        inline: Some(inline),
    };
    f()
}

/// Puts back what [`enter`] or [`enter_body`] changed.
struct Restore<'a> {
    slot: &'a mut Option<Arc<Scope>>,
    outer: Option<Arc<Scope>>,
    inline: Option<Inline>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let outer = self.outer.take();
        *self.slot = CURRENT.with(|current| current.replace(outer));
        if let Some(inline) = self.inline {
            INLINE.with(|mark| mark.set(inline));
        }
    }
}

/// Calls `f` with the current scope, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Arc<Scope>>) -> R) -> R {
    CURRENT.with(|current| {
        let scope = current.take();
        struct PutBack<'a>(&'a Cell<Option<Arc<Scope>>>, Option<Arc<Scope>>);
        impl Drop for PutBack<'_> {
            fn drop(&mut self) {
                self.0.set(self.1.take());
            }
        }
        let guard = PutBack(current, scope);
        f(guard.1.as_ref())
    })
}

/// The current scope, cloned.
pub(crate) fn current() -> Option<Arc<Scope>> {
    with_current(|scope| scope.cloned())
}

/// Waits until the current scope is cancelled, and says why: a sibling
/// failed or panicked, the deadline passed, the scope was cancelled from
/// outside, or someone called [`Nursery::cancel`](crate::Nursery::cancel)
/// (see [`Cause`]).
///
/// The scope is the one current when `cancelled()` is called: the one that
/// runs this task or body. Outside any scope the future never completes, as
/// Go's `context.Background().Done()` never closes.
///
/// A child sees the cancel only if it still runs when the token fires:
/// without a [`grace`](crate::Builder::grace) period, a failure (or
/// `n.cancel()`) aborts the running children at once, and they are dropped
/// where they wait.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use nursery::Cause;
///
/// let result = nursery::Nursery::builder()
///     .grace(Duration::from_secs(1))
///     .scope(|n| async move {
///         let child = n.spawn(async {
///             tokio::select! {
///                 cause = nursery::cancelled() => Ok(cause),
///                 _ = std::future::pending::<()>() => unreachable!(),
///             }
///         });
///         n.cancel();
///         Ok::<_, ()>(child.await.unwrap())
///     })
///     .await;
/// assert_eq!(result, Ok(Cause::Requested));
/// # }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: dropping the future loses nothing.
pub fn cancelled() -> impl Future<Output = Cause> + Send + 'static {
    let scope = current();
    async move {
        match scope {
            Some(scope) => {
                // Past the deadline with the timer not fired yet, this
                // cancels the scope, which fires the token.
                let _ = scope.is_cancelled();
                let mut fired = std::pin::pin!(scope.token.cancelled());
                std::future::poll_fn(|cx| {
                    // Inside a shield a cancel is not seen.
                    if is_shielded() {
                        if !scope.token.is_cancelled() {
                            let _ = fired.as_mut().poll(cx);
                        }
                        return std::task::Poll::Pending;
                    }
                    fired.as_mut().poll(cx)
                })
                .await;
                // The token fires after the scope has recorded its cause;
                // a token cancelled directly reads as an outside cancel.
                scope.cause_once_fired()
            }
            None => std::future::pending().await,
        }
    }
}

/// Why the current scope was cancelled, or `None` while it has not been
/// (and outside any scope). The answer [`cancelled`] resolves to, without
/// waiting: for code that notices a cancel some other way (a
/// [`check`] that failed, an aborted operation) and wants to say why.
///
/// Costs one atomic load while the scope runs undisturbed. A token
/// cancelled directly ([`Nursery::token`](crate::Nursery::token)) shows here
/// once the scope has noticed it, at its next poll, as for [`check`];
/// [`Nursery::cancel`](crate::Nursery::cancel) shows at once.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use nursery::Cause;
///
/// assert_eq!(nursery::cause(), None);
/// nursery::scope(|n| async move {
///     assert_eq!(nursery::cause(), None);
///     n.cancel();
///     assert_eq!(nursery::cause(), Some(Cause::Requested));
///     Ok::<_, ()>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
pub fn cause() -> Option<Cause> {
    if is_shielded() {
        return None;
    }
    with_current(|scope| scope.and_then(|scope| scope.cause()))
}

/// Returns `Err` if the current scope has been cancelled, saying whether
/// its deadline passed ([`Interrupted::TimedOut`]) or it was cancelled
/// otherwise ([`Interrupted::Cancelled`]). For loops that compute between
/// awaits, like checking Go's `ctx.Err()`.
///
/// Outside any scope it always returns `Ok(())`.
///
/// # Errors
///
/// [`Interrupted`] once the current scope is cancelled.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let result = nursery::scope(|n| async move {
///     n.spawn(async {
///         for chunk in 0.. {
///             nursery::check()?; // stop between chunks once cancelled
///             let _ = chunk;
///             tokio::task::yield_now().await;
///         }
///         Ok(())
///     });
///     n.cancel();
///     Ok::<_, nursery::Interrupted>(())
/// })
/// .await;
/// assert!(result.is_ok());
/// # }
/// ```
pub fn check() -> Result<(), Interrupted> {
    if is_shielded() {
        return Ok(());
    }
    with_current(|scope| match scope {
        Some(scope) => scope.interrupted().map_or(Ok(()), Err),
        None => Ok(()),
    })
}

/// The deadline of the current scope: the earliest of its own and every
/// enclosing scope's, or `None` if none has one (or outside any scope).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::time::Duration;
/// assert_eq!(nursery::deadline(), None);
/// nursery::Nursery::builder()
///     .timeout(Duration::from_secs(5))
///     .scope(|_| async move {
///         let left = nursery::deadline().unwrap() - tokio::time::Instant::now();
///         assert_eq!(left, Duration::from_secs(5));
///         Ok::<_, ()>(())
///     })
///     .await
///     .unwrap();
/// # }
/// ```
pub fn deadline() -> Option<Instant> {
    with_current(|scope| scope.and_then(|scope| scope.deadline()))
}

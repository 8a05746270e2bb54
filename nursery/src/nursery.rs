//! The [`Nursery`] handle: spawn into a scope, cancel it, ask about it.

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::task::Poll;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::Reason;
use crate::error::{JoinError, Repr, SpawnError, SpawnErrorKind};
use crate::id::{Name, TaskInfo};
use crate::scope::Scope;
use crate::stats::Stats;
use crate::sync::Arc;
use crate::task::{Blocking, Child, Guard, Start, TaskHandle, WhenFull, checked_weight};

/// A handle to an open scope: spawn children into it, cancel it, ask about
/// it. Cheap to clone (one reference count); every clone refers to the same
/// scope.
///
/// A `Nursery<E>` is handed to the body of [`scope`](crate::scope()) and
/// [`Builder::scope`](crate::Builder::scope). Children are futures returning `Result<T, E>`: their
/// values come back through their [`TaskHandle`], their errors go to the
/// scope.
///
/// A handle that outlives its scope (moved into a task outside it) can do
/// no harm: children spawned through it after the scope returned are
/// dropped unstarted and their handles report [`JoinError::is_closed`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use nursery::Nursery;
///
/// // A child can spawn siblings: pass it a clone of the handle.
/// let result = nursery::scope(|n: Nursery<String>| async move {
///     let sibling_spawner = n.clone();
///     n.spawn(async move {
///         sibling_spawner.spawn(async { Ok(()) });
///         Ok(())
///     });
///     Ok(())
/// })
/// .await;
/// assert!(result.is_ok());
/// # }
/// ```
pub struct Nursery<E> {
    scope: Arc<Scope>,
    _error: PhantomData<fn(E) -> E>,
}

impl<E> Nursery<E> {
    pub(crate) fn new(scope: Arc<Scope>) -> Nursery<E> {
        Nursery {
            scope,
            _error: PhantomData,
        }
    }

    /// Cancels the children, not the body (G9): the scope's token fires,
    /// children get the [`grace`](crate::Builder::grace) period, then the rest are
    /// aborted; children spawned from now on start nothing. The scope then
    /// returns the body's own result: cancelling on purpose is not an error.
    ///
    /// May be called from the body, from a child, or from anywhere holding a
    /// clone. Calling it again does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let found = nursery::scope(|n| async move {
    ///     let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    ///     for candidate in [3, 8, 13] {
    ///         let tx = tx.clone();
    ///         n.spawn(async move {
    ///             if candidate % 2 == 0 {
    ///                 let _ = tx.send(candidate).await;
    ///             }
    ///             std::future::pending::<Result<(), ()>>().await
    ///         });
    ///     }
    ///     let first = rx.recv().await;
    ///     n.cancel(); // the others are not needed any more
    ///     Ok(first)
    /// })
    /// .await;
    /// assert_eq!(found, Ok(Some(8)));
    /// # }
    /// ```
    pub fn cancel(&self) {
        self.scope.cancel(Reason::Requested);
    }

    /// Whether the scope has been cancelled, for any reason: a failure, its
    /// deadline, its parent, its `cancel_on` token or [`Nursery::cancel`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     assert!(!n.is_cancelled());
    ///     n.cancel();
    ///     assert!(n.is_cancelled());
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.scope.is_cancelled() || self.scope.token.is_cancelled()
    }

    /// The scope's cancellation token: it fires when the scope is cancelled,
    /// for any reason. Hand it to code that takes a `CancellationToken`, or
    /// make child tokens of it.
    ///
    /// Cancelling the token itself cancels the scope like an outside cancel
    /// ([`Error::Cancelled`](crate::Error::Cancelled)). The scope learns of it
    /// when it next runs (at once if the body did it), so a child spawned in
    /// between may start, to be cancelled with the rest; prefer
    /// [`Nursery::cancel`], which takes effect at the call.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     let token = n.token().clone();
    ///     n.spawn(async move {
    ///         token.cancelled().await; // like nursery::cancelled()
    ///         Ok(())
    ///     });
    ///     n.cancel();
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn token(&self) -> &CancellationToken {
        &self.scope.token
    }

    /// The scope's effective deadline: the earliest of its own and every
    /// enclosing scope's.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     assert_eq!(n.deadline(), None);
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.scope.deadline()
    }

    /// Moves the scope's own deadline while it runs (Trio's
    /// `cancel_scope.deadline = …`): `Some(at)` sets it, `None` lifts it.
    ///
    /// The effective deadline, the earliest of the scope's own and its
    /// ancestors', moves with it, here and in every scope open below that
    /// inherits it; an inner scope with an earlier deadline of its own
    /// keeps that one. Moved earlier, past now, the scope times out at once
    /// ([`Error::TimedOut`](crate::Error::TimedOut)); moved later or lifted,
    /// it runs on. [`deadline`](Nursery::deadline) and
    /// [`nursery::deadline`](crate::deadline()) report the new value at
    /// once. A scope already cancelled (or timed out) stays so.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// let result = nursery::Nursery::builder()
    ///     .timeout(Duration::from_secs(1))
    ///     .scope(|n| async move {
    ///         // More time, granted while the scope runs.
    ///         n.set_deadline(Some(Instant::now() + Duration::from_secs(5)));
    ///         tokio::time::sleep(Duration::from_secs(3)).await;
    ///         Ok::<_, ()>("done")
    ///     })
    ///     .await;
    /// assert_eq!(result, Ok("done"));
    /// # }
    /// ```
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        Scope::set_deadline(&self.scope, deadline);
    }

    /// The scope's own children that were started or queued and have not
    /// terminated yet.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     n.spawn(std::future::pending::<Result<(), ()>>());
    ///     assert_eq!(n.live(), 1);
    ///     n.cancel();
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn live(&self) -> usize {
        self.scope.core.live()
    }

    /// The scope's name, if it was given one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::Nursery::builder().name("crawl").scope(|n| async move {
    ///     assert_eq!(n.name(), Some("crawl"));
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.scope.name.as_ref().map(Name::as_str)
    }

    /// Counts of the scope's own children: spawned, queued, running, and
    /// how those that ended did (see [`Stats`]).
    ///
    /// Cheap: a few loads and two short lock round trips, none of them
    /// contended by spawns. The counts stay readable after the scope has
    /// returned, through any clone of this handle.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::Nursery::builder().limit(1).scope(|n| async move {
    ///     n.spawn(std::future::pending::<Result<(), ()>>());
    ///     n.spawn(async { Ok(()) }); // waits behind the first
    ///     let stats = n.stats();
    ///     assert_eq!((stats.spawned, stats.running, stats.queued), (2, 1, 1));
    ///     n.cancel();
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.scope.stats()
    }
}

impl<E: Send + 'static> Nursery<E> {
    /// Spawns a child into the scope and returns its handle.
    ///
    /// The child starts at once on the runtime, in parallel with the body
    /// and its siblings, unless the scope is at its [`limit`](crate::Builder::limit):
    /// then it waits in FIFO order, without a tokio task, until a slot
    /// frees. If it returns `Err`, the error goes to the scope (which, by
    /// default, cancels everything else); if it panics, the scope re-raises
    /// the panic once joined.
    ///
    /// If the scope has been cancelled, the future is dropped unpolled and
    /// the handle resolves to a cancelled [`JoinError`]; if the scope has
    /// returned, to a closed one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let doubled = nursery::scope(|n| async move {
    ///     let handle = n.spawn(async { Ok::<_, std::io::Error>(21 * 2) });
    ///     Ok(handle.await.map_err(std::io::Error::other)?)
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(doubled, 42);
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, future: F) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let info = TaskInfo::new(None, Location::caller());
        self.spawn_future(future, 1, info)
    }

    /// Like [`spawn`](Nursery::spawn), with a name that shows in
    /// [`JoinError`] messages, leak reports and task dumps.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     let handle = n.spawn_named("resolve", async { Ok::<_, ()>(()) });
    ///     assert_eq!(handle.name(), Some("resolve"));
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_named<F, T>(&self, name: impl Into<Cow<'static, str>>, future: F) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let info = TaskInfo::new(Some(Name::new(name.into())), Location::caller());
        self.spawn_future(future, 1, info)
    }

    /// Spawns a child that takes `weight` of the scope's
    /// [`limit`](crate::Builder::limit) while it runs (x/sync/semaphore's weighted
    /// semaphore): a child of weight 3 in a scope with `limit(8)` leaves room
    /// for 5 more of weight 1. Queued children still start in FIFO order, so
    /// a heavy child is not starved by light ones. Without a limit the
    /// weight changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// // At most 4 GiB of buffers at once: each child weighs its size.
    /// let sizes = [3, 1, 2, 4];
    /// nursery::Nursery::builder().limit(4).scope(|n| async move {
    ///     for gib in sizes {
    ///         n.spawn_weighted(gib, async move { Ok::<_, std::io::Error>(gib) });
    ///     }
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `weight` is 0, or larger than the scope's limit: such a child
    /// could never run (Go's weighted semaphore would wait forever).
    #[track_caller]
    pub fn spawn_weighted<F, T>(&self, weight: usize, future: F) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let limit = self
            .scope
            .core
            .limiter()
            .and_then(|limiter| limiter.limit());
        let weight = checked_weight(weight, limit);
        self.spawn_future(future, weight, TaskInfo::new(None, Location::caller()))
    }

    /// Spawns a child only if it can start now; otherwise hands the future
    /// back, unpolled.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] holding the future when the scope is at its limit
    /// ([`is_full`](SpawnError::is_full)), cancelled
    /// ([`is_cancelled`](SpawnError::is_cancelled)) or closed
    /// ([`is_closed`](SpawnError::is_closed)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::Nursery::builder().limit(1).scope(|n| async move {
    ///     let first = n.try_spawn(async { Ok::<_, ()>(1) }).unwrap();
    ///     let refused = n.try_spawn(async { Ok(2) }).unwrap_err();
    ///     assert!(refused.is_full());
    ///     assert_eq!(first.await.unwrap(), 1);
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn try_spawn<F, T>(&self, future: F) -> Result<TaskHandle<T>, SpawnError<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let info = TaskInfo::new(None, Location::caller());
        if let Err(kind) = self.scope.enter() {
            return Err(SpawnError::new(kind, future));
        }
        let child = Child::new(future, Guard::new(self.scope.clone(), &info));
        Scope::admit(&self.scope, child, 1, info, WhenFull::Refuse)
            .map_err(|child| SpawnError::new(SpawnErrorKind::Full, child.into_future()))
    }

    /// Runs blocking code as a child, on tokio's blocking pool.
    ///
    /// `f` gets the scope's cancellation token: a blocking call cannot be
    /// aborted, so long-running work should check
    /// [`is_cancelled`](CancellationToken::is_cancelled) now and then. The
    /// scope waits for `f` to return, even after a cancel (G1); a child not
    /// yet started when the scope is cancelled never starts. It counts
    /// against the scope's limit like any child.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let total = nursery::scope(|n| async move {
    ///     let handle = n.spawn_blocking(|token| {
    ///         let mut total = 0u64;
    ///         for i in 0..1_000u64 {
    ///             if token.is_cancelled() {
    ///                 break;
    ///             }
    ///             total += i;
    ///         }
    ///         Ok::<_, String>(total)
    ///     });
    ///     handle.await.map_err(|e| e.to_string())
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(total, 499_500);
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F, T>(&self, f: F) -> TaskHandle<T>
    where
        F: FnOnce(CancellationToken) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_blocking_with(f, TaskInfo::new(None, Location::caller()))
    }

    /// Like [`spawn_blocking`](Nursery::spawn_blocking), with a name that
    /// shows in [`JoinError`] messages, leak reports and task dumps.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// nursery::scope(|n| async move {
    ///     let handle = n.spawn_blocking_named("checksum", |_token| Ok::<_, ()>(42));
    ///     assert_eq!(handle.name(), Some("checksum"));
    ///     assert_eq!(handle.await.unwrap(), 42);
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_blocking_named<F, T>(
        &self,
        name: impl Into<Cow<'static, str>>,
        f: F,
    ) -> TaskHandle<T>
    where
        F: FnOnce(CancellationToken) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
    {
        let info = TaskInfo::new(Some(Name::new(name.into())), Location::caller());
        self.spawn_blocking_with(f, info)
    }

    fn spawn_blocking_with<F, T>(&self, f: F, info: TaskInfo) -> TaskHandle<T>
    where
        F: FnOnce(CancellationToken) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
    {
        if let Err(kind) = self.scope.enter() {
            return TaskHandle::refused(refused(kind), info);
        }
        let child = Blocking::new(
            f,
            self.scope.token.clone(),
            Guard::new(self.scope.clone(), &info),
        );
        self.admit(child, 1, info)
    }

    /// Spawns a child and waits until it reports that it is ready (Trio's
    /// `nursery.start`): a server bound to its port, a worker that has
    /// loaded its state. The child calls [`Ready::send`] with a value, which
    /// `start` returns; the child keeps running in the scope.
    ///
    /// The child is spawned when `start` is called, under the same rules as
    /// [`spawn`](Nursery::spawn) (limit, cancel, close).
    ///
    /// # Errors
    ///
    /// A [`JoinError`] if the child fails, panics, is cancelled or returns
    /// before it sends ([`JoinError::is_not_ready`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use tokio::net::TcpListener;
    /// let result = nursery::scope(|n| async move {
    ///     let addr = n
    ///         .start(|ready| async move {
    ///             let listener = TcpListener::bind("127.0.0.1:0").await?;
    ///             ready.send(listener.local_addr()?);
    ///             let (_connection, _) = listener.accept().await?;
    ///             Ok(())
    ///         })
    ///         .await
    ///         .map_err(std::io::Error::other)?;
    ///     tokio::net::TcpStream::connect(addr).await?; // the server is listening
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await;
    /// assert!(result.is_ok());
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// The child is spawned when `start` is called, not when the future is
    /// first polled: dropping the future loses only the ready value; the
    /// child runs on in the scope, as after dropping its
    /// [`TaskHandle`].
    #[track_caller]
    pub fn start<V, F, Fut, T>(
        &self,
        f: F,
    ) -> impl Future<Output = Result<V, JoinError>> + Send + 'static
    where
        F: FnOnce(Ready<V>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        V: Send + 'static,
        T: Send + 'static,
    {
        let (value_tx, value_rx) = oneshot::channel();
        let mut handle = self.spawn(f(Ready { value_tx }));
        let mut value_rx = Some(value_rx);
        poll_fn(move |cx| {
            if let Some(rx) = value_rx.as_mut() {
                match Pin::new(rx).poll(cx) {
                    Poll::Ready(Ok(value)) => return Poll::Ready(Ok(value)),
                    // `Ready` dropped unsent: the child may still be running
                    // (Trio waits for it too); its end decides the error.
                    Poll::Ready(Err(_)) => value_rx = None,
                    Poll::Pending => {}
                }
            }
            let joined = std::task::ready!(Pin::new(&mut handle).poll(cx));
            // The value may have been sent just before the child ended.
            if let Some(Ok(value)) = value_rx.as_mut().map(|rx| rx.try_recv()) {
                return Poll::Ready(Ok(value));
            }
            Poll::Ready(Err(match joined {
                Ok(_) => handle.error(Repr::NotReady),
                Err(error) => error,
            }))
        })
    }

    fn spawn_future<F, T>(&self, future: F, weight: usize, info: TaskInfo) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        if let Err(kind) = self.scope.enter() {
            return TaskHandle::refused(refused(kind), info);
        }
        let child = Child::new(future, Guard::new(self.scope.clone(), &info));
        self.admit(child, weight, info)
    }

    fn admit<C: Start>(&self, child: C, weight: usize, info: TaskInfo) -> TaskHandle<C::Value> {
        match Scope::admit(&self.scope, child, weight, info, WhenFull::Queue) {
            Ok(handle) => handle,
            Err(_) => unreachable!("nursery: a queueing spawn is never refused for room"),
        }
    }
}

fn refused(kind: SpawnErrorKind) -> Repr {
    match kind {
        SpawnErrorKind::Closed => Repr::Closed,
        SpawnErrorKind::Cancelled | SpawnErrorKind::Full => Repr::Cancelled,
    }
}

impl<E> Clone for Nursery<E> {
    fn clone(&self) -> Self {
        Nursery::new(self.scope.clone())
    }
}

impl<E> fmt::Debug for Nursery<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nursery")
            .field("name", &self.name())
            .field("live", &self.live())
            .field("cancelled", &self.is_cancelled())
            .field("deadline", &self.deadline())
            .finish()
    }
}

// ===== Ready =====

/// Passed to the child of [`Nursery::start`]: call [`send`](Ready::send)
/// once the child is ready.
///
/// `send` consumes the `Ready`, so reporting ready twice does not compile:
///
/// ```compile_fail
/// fn twice(ready: nursery::Ready<u16>) {
///     ready.send(1);
///     ready.send(2); // error: use of moved value
/// }
/// ```
pub struct Ready<V> {
    value_tx: oneshot::Sender<V>,
}

impl<V> Ready<V> {
    /// Reports the child ready, handing `value` to the caller of
    /// [`Nursery::start`]. If that caller has gone away, the value is
    /// dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     let port = n
    ///         .start(|ready| async move {
    ///             ready.send(8080u16); // loaded and listening
    ///             Ok(())
    ///         })
    ///         .await
    ///         .unwrap();
    ///     assert_eq!(port, 8080);
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn send(self, value: V) {
        let _ = self.value_tx.send(value);
    }
}

impl<V> fmt::Debug for Ready<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ready")
            .field("waiting", &!self.value_tx.is_closed())
            .finish()
    }
}

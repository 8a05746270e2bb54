//! Local children: futures that may borrow from the caller of the scope,
//! run on the scope's own task beside its parallel children.
//!
//! [`Local::spawn`] puts a child in the scope future's [`LocalSet`], which
//! polls it whenever its waker fires, on every poll of the scope, whether
//! or not anyone awaits its [`LocalHandle`].
//!
//! # Why this is sound without `unsafe`
//!
//! A local child is a `Future + Send + 'env`: it may borrow anything that
//! outlives the call that opened the scope. The children are owned by the
//! scope's future, whose type carries `'env` too, so the compiler ensures
//! that the future (and every child in it) is gone before anything they
//! borrow is. If the future is forgotten (`mem::forget`) instead of
//! dropped, its children are never polled again and never dropped: what
//! they borrow may then go away, but nothing will ever read it. Unlike
//! parallel scoped tasks (`async-scoped`, `std::thread::scope` without its
//! blocking join), nothing here runs on another thread that could outlive
//! the borrow, so there is nothing to block on and nothing to trust.

mod set;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use self::set::{LocalChild, Polled, Shared, queue_ticket};
pub(crate) use self::set::{LocalSet, Polling};
use crate::error::{JoinError, Repr, SpawnErrorKind};
use crate::id::{Name, TaskInfo};
use crate::sync::StdArc;
use crate::task::{Deliver, ResultCell, TaskHandle};

// ===== Local =====

/// Spawns local children into a scope opened with
/// [`scope_local`](crate::scope_local) or
/// [`Builder::scope_local`](crate::Builder::scope_local): children that may
/// borrow what outlives the scope call, polled by the scope's own future.
///
/// A cheap `Clone` handle, like [`Nursery`](crate::Nursery): pass it into
/// local children that spawn more.
///
/// Local children run concurrently with the body, with each other and with
/// the scope's ordinary children, which run in parallel on tokio's
/// workers; the local ones share the scope's task, so CPU-heavy work
/// belongs in ordinary children (or [`spawn_blocking`](crate::Nursery::spawn_blocking)).
/// Every guarantee of the scope covers them: the scope waits for them
/// (G1); their errors and panics cancel the rest (G2, G3); they see the
/// scope as the current one, so `cancelled()`, `check()`, `deadline()` and
/// inner scopes work in them (G4, G5); on a cancel they get the `grace`
/// period, then are dropped (G6); dropping the scope future drops them at
/// once (G7); they count toward `limit` and queue in FIFO order with the
/// others (G8). They show in [`Nursery::stats`](crate::Nursery::stats),
/// [`dump`](crate::dump()) (as `local task`) and leak reports.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let words = vec!["alpha".to_owned(), "beta".to_owned()];
/// let words = &words; // borrowed by the children, not cloned
/// let total = nursery::scope_local(|_n, local| async move {
///     let lengths: Vec<_> = words
///         .iter()
///         .map(|word| local.spawn(async move { Ok::<_, ()>(word.len()) }))
///         .collect();
///     let mut total = 0;
///     for length in lengths {
///         total += length.await.unwrap();
///     }
///     Ok(total)
/// })
/// .await;
/// assert_eq!(total, Ok(9));
/// # }
/// ```
///
/// A local child may not borrow what lives only inside the scope:
///
/// ```compile_fail
/// # async fn f() {
/// let _ = nursery::scope_local(|_n, local| async move {
///     let inner = vec![1, 2, 3];
///     let inner = &inner; // error: `inner` does not live long enough
///     local.spawn(async move { Ok::<_, ()>(inner.len()) });
///     Ok(())
/// })
/// .await;
/// # }
/// ```
pub struct Local<'env, E> {
    shared: StdArc<Shared<'env>>,
    error: PhantomData<fn() -> E>,
}

impl<'env, E: Send + 'static> Local<'env, E> {
    pub(crate) fn new(set: &LocalSet<'env>) -> Local<'env, E> {
        Local {
            shared: set.shared().clone(),
            error: PhantomData,
        }
    }

    /// Spawns a local child: `future` may borrow anything that outlives
    /// the scope call. It starts now (or, under a limit, once there is
    /// room), runs on the scope's own task, and is polled whether or not
    /// its handle is awaited.
    ///
    /// If it returns `Err`, the error goes to the scope (which, by default,
    /// cancels everything else); if it panics, the scope re-raises the
    /// panic once joined. If the scope has been cancelled, the future is
    /// dropped unpolled and the handle resolves to a cancelled
    /// [`JoinError`]; if the scope has returned, to a closed one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let config = String::from("retries=3");
    /// let config = &config; // borrowed by the child
    /// let parsed = nursery::scope_local(|_n, local| async move {
    ///     let handle = local.spawn(async { Ok::<_, ()>(config.len()) });
    ///     Ok(handle.await.unwrap())
    /// })
    /// .await;
    /// assert_eq!(parsed, Ok(9));
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, future: F) -> LocalHandle<'env, T>
    where
        F: Future<Output = Result<T, E>> + Send + 'env,
        T: Send + 'env,
    {
        self.spawn_with(future, 1, TaskInfo::new(None, Location::caller()))
    }

    /// Like [`spawn`](Local::spawn), with a name that shows in
    /// [`JoinError`] messages, leak reports and task dumps.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope_local(|_n, local| async move {
    ///     let handle = local.spawn_named("parse", async { Ok::<_, ()>(()) });
    ///     assert_eq!(handle.name(), Some("parse"));
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_named<F, T>(
        &self,
        name: impl Into<Cow<'static, str>>,
        future: F,
    ) -> LocalHandle<'env, T>
    where
        F: Future<Output = Result<T, E>> + Send + 'env,
        T: Send + 'env,
    {
        let info = TaskInfo::new(Some(Name::new(name.into())), Location::caller());
        self.spawn_with(future, 1, info)
    }

    /// Like [`spawn`](Local::spawn), taking `weight` of the scope's
    /// [`limit`](crate::Builder::limit) while it runs, as
    /// [`Nursery::spawn_weighted`](crate::Nursery::spawn_weighted) does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let big = &vec![0u8; 3];
    /// nursery::Nursery::builder().limit(4).scope_local(|_n, local| async move {
    ///     local.spawn_weighted(3, async { Ok::<_, ()>(big.len()) }).await.unwrap();
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `weight` is 0, or larger than the scope's limit: such a child
    /// could never run.
    #[track_caller]
    pub fn spawn_weighted<F, T>(&self, weight: usize, future: F) -> LocalHandle<'env, T>
    where
        F: Future<Output = Result<T, E>> + Send + 'env,
        T: Send + 'env,
    {
        let limiter = self.shared.scope.core.limiter();
        let weight = crate::task::checked_weight(weight, limiter.and_then(|l| l.limit()));
        self.spawn_with(future, weight, TaskInfo::new(None, Location::caller()))
    }

    /// Runs `f` on every item as a local child, under the scope's limit
    /// (queued in FIFO order past it), and returns the values in the
    /// order of `items`: [`map`](crate::map()) for futures that borrow.
    ///
    /// The children are the scope's own: an error goes to the scope,
    /// which by default cancels everything else, and this returns the
    /// [`JoinError`] of the first child, in input order, that did not
    /// succeed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let pages = &vec!["a".to_owned(), "bb".to_owned(), "ccc".to_owned()];
    /// let lengths = nursery::Nursery::builder()
    ///     .limit(2)
    ///     .scope_local(|_n, local| async move {
    ///         let lengths = local
    ///             .map(pages, |page| async move { Ok::<_, ()>(page.len()) })
    ///             .await
    ///             .unwrap();
    ///         Ok(lengths)
    ///     })
    ///     .await;
    /// assert_eq!(lengths, Ok(vec![1, 2, 3]));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The [`JoinError`] of the first child (in input order) that failed,
    /// panicked or was cancelled.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the children running in the scope,
    /// which waits for them; their values are dropped.
    #[track_caller]
    pub fn map<I, F, Fut, T>(
        &self,
        items: I,
        mut f: F,
    ) -> impl Future<Output = Result<Vec<T>, JoinError>> + Send + 'env
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'env,
        T: Send + 'env,
    {
        let location = Location::caller();
        let handles: Vec<LocalHandle<'env, T>> = items
            .into_iter()
            .map(|item| self.spawn_with(f(item), 1, TaskInfo::new(None, location)))
            .collect();
        async move {
            let mut values = Vec::with_capacity(handles.len());
            for handle in handles {
                values.push(handle.await?);
            }
            Ok(values)
        }
    }

    /// Whether the scope has been cancelled: new local children are then
    /// refused.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope_local(|n, local| async move {
    ///     assert!(!local.is_cancelled());
    ///     n.cancel();
    ///     assert!(local.is_cancelled());
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.shared.scope.is_cancelled()
    }

    fn spawn_with<F, T>(&self, future: F, weight: usize, info: TaskInfo) -> LocalHandle<'env, T>
    where
        F: Future<Output = Result<T, E>> + Send + 'env,
        T: Send + 'env,
    {
        let scope = &self.shared.scope;
        if let Err(kind) = scope.enter() {
            let repr = match kind {
                SpawnErrorKind::Closed => Repr::Closed,
                SpawnErrorKind::Cancelled | SpawnErrorKind::Full => Repr::Cancelled,
            };
            return LocalHandle::new(TaskHandle::refused(repr, info));
        }
        let cell = ResultCell::new();
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!(
            parent: &scope.span,
            "nursery.task",
            name = info.name.as_ref().map(|name| name.as_str()),
            location = %info.location,
            local = true,
        );
        #[cfg(not(feature = "tracing"))]
        let span = ();
        let child: Pin<Box<dyn Polled + 'env>> =
            Box::pin(LocalChild::new(future, Deliver::new(cell.clone()), span));
        let now = match scope.core.limiter() {
            None => Some(0),
            Some(limiter) if limiter.try_acquire(weight, scope.clock()) => Some(weight),
            Some(_) => None,
        };
        let key = scope.register_local(info.clone(), now.is_none());
        let signals = &self.shared.signals;
        let queue = |ticket| queue_ticket(scope, weight, ticket, signals);
        if let Err(child) = self.shared.push(child, key, now, queue) {
            // The scope future is gone: the child never runs.
            if let Some(weight) = now.filter(|&weight| weight > 0) {
                scope.release(weight);
            }
            scope.update_locals(&mut Vec::new(), &mut vec![key]);
            drop(child);
            scope.child_exited();
        }
        LocalHandle::new(TaskHandle::cell(cell, info))
    }
}

impl<E> Clone for Local<'_, E> {
    fn clone(&self) -> Self {
        Local {
            shared: self.shared.clone(),
            error: PhantomData,
        }
    }
}

impl<E> fmt::Debug for Local<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("scope", &self.shared.scope.name.as_ref())
            .finish_non_exhaustive()
    }
}

// ===== LocalHandle =====

/// The handle of one local child: await it for the child's value.
///
/// Like [`TaskHandle`]: resolves to `Ok(value)` when the child returns
/// `Ok`, and to a [`JoinError`] saying why not otherwise (the child's own
/// error went to the scope). The child runs whether or not the handle is
/// awaited, and dropping the handle detaches nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let table = &vec![1, 2, 3];
/// nursery::scope_local(|_n, local| async move {
///     let sum: nursery::LocalHandle<'_, i32> = local.spawn(async { Ok::<_, ()>(table.iter().sum()) });
///     assert_eq!(sum.await.unwrap(), 6);
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: dropping the handle, or the future awaiting it, leaves the
/// child running in its scope.
pub struct LocalHandle<'env, T> {
    inner: TaskHandle<T>,
    env: PhantomData<&'env ()>,
}

impl<T> LocalHandle<'_, T> {
    fn new(inner: TaskHandle<T>) -> Self {
        LocalHandle {
            inner,
            env: PhantomData,
        }
    }

    /// Whether the child has finished (or will never start). A queued
    /// child is not finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope_local(|n, local| async move {
    ///     let waiting = local.spawn(std::future::pending::<Result<(), ()>>());
    ///     assert!(!waiting.is_finished());
    ///     n.cancel();
    ///     assert!(waiting.await.unwrap_err().is_cancelled());
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// The name given with [`Local::spawn_named`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope_local(|_n, local| async move {
    ///     assert_eq!(local.spawn_named("parse", async { Ok::<_, ()>(()) }).name(), Some("parse"));
    ///     assert_eq!(local.spawn(async { Ok(()) }).name(), None);
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.inner.name()
    }

    /// Where the child was spawned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope_local(|_n, local| async move {
    ///     let handle = local.spawn(async { Ok::<_, ()>(()) });
    ///     assert_eq!(handle.location().line(), line!() - 1);
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.inner.location()
    }
}

impl<T> Future for LocalHandle<'_, T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

impl<T> fmt::Debug for LocalHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LocalHandle").field(&self.inner).finish()
    }
}

//! The child wrapper (panic capture, bookkeeping) and [`TaskHandle`].

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context;
use crate::error::{JoinError, Repr, TaskInfo};
use crate::limit::Job;
use crate::scope::Scope;
use crate::sync::Arc;

/// What a child's tokio task returns: its value, or why there is none (the
/// error itself went to the scope).
pub(crate) type Output<T> = Result<T, Repr>;

/// Where a queued child's `JoinHandle` arrives once it starts.
pub(crate) type HandleRx<T> = oneshot::Receiver<JoinHandle<Output<T>>>;

// ===== Guard =====

/// A child's unit of its scope's count, released when the child's future
/// (or blocking closure) has been dropped: it is the last field of the
/// wrapper, so it drops after the user's future.
pub(crate) struct Guard {
    /// `None` only while lent to the current-scope slot during a poll.
    scope: Option<Arc<Scope>>,
    /// Weight taken from the scope's limit; 0 until the child is admitted.
    weight: usize,
}

impl Guard {
    /// Wraps a unit already counted in with `Scope::enter`.
    pub(crate) fn new(scope: Arc<Scope>) -> Guard {
        Guard {
            scope: Some(scope),
            weight: 0,
        }
    }

    pub(crate) fn scope(&self) -> &Arc<Scope> {
        self.scope
            .as_ref()
            .expect("nursery: a child's scope is only lent while it is polled")
    }

    pub(crate) fn admitted(&mut self, weight: usize) {
        self.weight = weight;
    }

    /// Records the child's result with the scope and turns it into the
    /// task's output.
    fn settle<T, E: Send + 'static>(&self, result: std::thread::Result<Result<T, E>>) -> Output<T> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                self.scope().report_error(Box::new(error), false);
                Err(Repr::Failed)
            }
            Err(payload) => {
                self.scope().report_panic(payload);
                Err(Repr::Panicked)
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            scope.child_exited(self.weight);
        }
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

// ===== Child =====

pin_project! {
    /// A future that can be dropped in place, ahead of its container.
    #[project = SlotProj]
    pub(crate) enum Slot<F> {
        Live { #[pin] future: F },
        Dropped,
    }
}

impl<F> Slot<F> {
    /// Drops the future in place, catching a panic from its destructor.
    pub(crate) fn drop_future(self: Pin<&mut Self>) -> std::thread::Result<()> {
        if matches!(*self, Slot::Dropped) {
            return Ok(());
        }
        let mut slot = self;
        catch_unwind(AssertUnwindSafe(|| slot.set(Slot::Dropped)))
    }
}

pin_project! {
    /// A child future as its tokio task runs it: polls the user's future
    /// with the scope as the current scope, catches its panic, reports its
    /// error, and releases its unit of the count once dropped.
    ///
    /// The user's future is dropped in place when it completes, and on
    /// abort by `Child`'s own destructor, inside `catch_unwind`: a panic in
    /// its destructor goes to the scope like any panic (G3), rather than
    /// into a `JoinHandle` nobody may read.
    pub(crate) struct Child<F> {
        #[pin]
        slot: Slot<F>,
        guard: Guard,
    }

    impl<F> PinnedDrop for Child<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Err(payload) = this.slot.drop_future() {
                if let Some(scope) = &this.guard.scope {
                    scope.report_panic(payload);
                }
            }
            // The guard drops after this, releasing the unit.
        }
    }
}

impl<F> Child<F> {
    pub(crate) fn new(future: F, guard: Guard) -> Child<F> {
        Child {
            slot: Slot::Live { future },
            guard,
        }
    }

    pub(crate) fn guard_mut(&mut self) -> &mut Guard {
        &mut self.guard
    }

    /// Hands an unstarted child's future back (`try_spawn` at the limit).
    pub(crate) fn into_future(mut self) -> F {
        match std::mem::replace(&mut self.slot, Slot::Dropped) {
            Slot::Live { future } => future,
            Slot::Dropped => unreachable!("an unstarted child still holds its future"),
        }
        // `self` drops here: nothing left in the slot; the guard releases
        // the unit.
    }
}

impl<F, T, E> Future for Child<F>
where
    F: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    type Output = Output<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output<T>> {
        let this = self.project();
        let mut slot = this.slot;
        let SlotProj::Live { future } = slot.as_mut().project() else {
            panic!("nursery: a child polled after it completed");
        };
        let polled = context::enter(&mut this.guard.scope, || {
            catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
        });
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => Ok(result),
            Err(payload) => Err(payload),
        };
        // Drop the finished future now, so a panic in its destructor is
        // caught like one in its body.
        let result = match (result, slot.drop_future()) {
            (result, Ok(())) | (result @ Err(_), Err(_)) => result,
            (Ok(_), Err(payload)) => Err(payload),
        };
        Poll::Ready(this.guard.settle(result))
    }
}

impl<F> fmt::Debug for Child<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child").finish_non_exhaustive()
    }
}

// ===== Blocking =====

/// A blocking child as the blocking pool runs it.
pub(crate) struct Blocking<F> {
    // Field order matters: `f` drops before `guard`.
    f: Option<F>,
    token: CancellationToken,
    guard: Guard,
}

impl<F> Drop for Blocking<F> {
    fn drop(&mut self) {
        // Never started (aborted first): drop the closure, catching a panic
        // from its captures' destructors.
        if let Some(f) = self.f.take() {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(f))) {
                self.guard.scope().report_panic(payload);
            }
        }
    }
}

impl<F> Blocking<F> {
    pub(crate) fn new(f: F, token: CancellationToken, guard: Guard) -> Blocking<F> {
        Blocking {
            f: Some(f),
            token,
            guard,
        }
    }

    pub(crate) fn guard_mut(&mut self) -> &mut Guard {
        &mut self.guard
    }

    pub(crate) fn run<T, E>(mut self) -> Output<T>
    where
        F: FnOnce(CancellationToken) -> Result<T, E>,
        E: Send + 'static,
    {
        let f = self.f.take().expect("a blocking child runs once");
        let token = self.token.clone();
        let result = context::enter(&mut self.guard.scope, || {
            catch_unwind(AssertUnwindSafe(|| f(token)))
        });
        self.guard.settle(result)
    }
}

// ===== Queued =====

/// A child waiting under the limit: the future (or closure) and the channel
/// that hands its `JoinHandle` to the `TaskHandle` once started.
pub(crate) struct Queued<C, T> {
    child: C,
    weight: usize,
    info: TaskInfo,
    handle_tx: oneshot::Sender<JoinHandle<Output<T>>>,
}

/// How a queued child is started once it has room.
pub(crate) trait Start: Send + Sized + 'static {
    type Value: Send + 'static;
    fn guard_mut(&mut self) -> &mut Guard;
    fn spawn_on(self, scope: &Arc<Scope>, info: &TaskInfo) -> JoinHandle<Output<Self::Value>>;
}

impl<C: Start> Queued<C, C::Value> {
    pub(crate) fn new(
        child: C,
        weight: usize,
        info: TaskInfo,
    ) -> (Queued<C, C::Value>, HandleRx<C::Value>) {
        let (handle_tx, handle_rx) = oneshot::channel();
        let queued = Queued {
            child,
            weight,
            info,
            handle_tx,
        };
        (queued, handle_rx)
    }
}

impl<C: Start> Job for Queued<C, C::Value> {
    fn start(self: Box<Self>) {
        let Queued {
            mut child,
            weight,
            info,
            handle_tx,
        } = *self;
        child.guard_mut().admitted(weight);
        let scope = child.guard_mut().scope().clone();
        let handle = child.spawn_on(&scope, &info);
        // If the `TaskHandle` is gone the child still runs: it belongs to
        // the scope, and the abort handle is registered.
        let _ = handle_tx.send(handle);
    }

    fn info(&self) -> Option<&TaskInfo> {
        Some(&self.info)
    }
}

// ===== TaskHandle =====

/// The handle of one child: await it for the child's value.
///
/// Resolves to `Ok(value)` when the child returns `Ok`, and to a
/// [`JoinError`] saying why not otherwise. The child's own error does not
/// come through the handle: it goes to the scope, which returns it (or
/// keeps it as suppressed), so no error is lost when a handle is dropped.
///
/// Dropping a handle detaches nothing: the child still belongs to its scope,
/// which waits for it and cancels it with the rest.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sum = nursery::scope(|n| async move {
///     let a = n.spawn(async { Ok::<_, std::io::Error>(20) });
///     let b = n.spawn(async { Ok(22) });
///     // A `JoinError` converts into `io::Error`, so `?` works here.
///     Ok(a.await.map_err(std::io::Error::other)? + b.await.map_err(std::io::Error::other)?)
/// })
/// .await
/// .unwrap();
/// assert_eq!(sum, 42);
/// # }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: dropping the handle, or the future awaiting it, leaves the
/// child running in its scope.
pub struct TaskHandle<T> {
    state: HandleState<T>,
    info: TaskInfo,
}

enum HandleState<T> {
    Running(JoinHandle<Output<T>>),
    Queued(HandleRx<T>),
    Done(Option<Repr>),
}

impl<T> TaskHandle<T> {
    pub(crate) fn running(handle: JoinHandle<Output<T>>, info: TaskInfo) -> TaskHandle<T> {
        TaskHandle {
            state: HandleState::Running(handle),
            info,
        }
    }

    pub(crate) fn queued(handle: HandleRx<T>, info: TaskInfo) -> TaskHandle<T> {
        TaskHandle {
            state: HandleState::Queued(handle),
            info,
        }
    }

    pub(crate) fn refused(repr: Repr, info: TaskInfo) -> TaskHandle<T> {
        TaskHandle {
            state: HandleState::Done(Some(repr)),
            info,
        }
    }

    /// Whether the child has finished (or will never start). A queued child
    /// is not finished.
    pub fn is_finished(&self) -> bool {
        match &self.state {
            HandleState::Running(handle) => handle.is_finished(),
            HandleState::Queued(_) => false,
            HandleState::Done(_) => true,
        }
    }

    /// The name given with [`Nursery::spawn_named`](crate::Nursery::spawn_named).
    pub fn name(&self) -> Option<&str> {
        self.info.name.as_ref().map(|name| name.as_str())
    }

    /// Where the child was spawned.
    pub fn location(&self) -> &'static std::panic::Location<'static> {
        self.info.location
    }

    pub(crate) fn error(&self, repr: Repr) -> JoinError {
        JoinError::new(repr, self.info.clone())
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                HandleState::Running(handle) => {
                    let output = match ready!(Pin::new(handle).poll(cx)) {
                        Ok(output) => output,
                        // Aborted; or its destructor panicked while being
                        // aborted, which tokio reports as a panic.
                        Err(error) if error.is_panic() => Err(Repr::Panicked),
                        Err(_) => Err(Repr::Cancelled),
                    };
                    this.state = HandleState::Done(None);
                    return Poll::Ready(output.map_err(|repr| this.error(repr)));
                }
                HandleState::Queued(handle_rx) => match ready!(Pin::new(handle_rx).poll(cx)) {
                    Ok(handle) => this.state = HandleState::Running(handle),
                    // Dropped from the queue: the scope was cancelled.
                    Err(_) => this.state = HandleState::Done(Some(Repr::Cancelled)),
                },
                HandleState::Done(repr) => {
                    let repr = repr.take().expect("TaskHandle polled after completion");
                    return Poll::Ready(Err(this.error(repr)));
                }
            }
        }
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            HandleState::Running(_) => "running",
            HandleState::Queued(_) => "queued",
            HandleState::Done(_) => "done",
        };
        f.debug_struct("TaskHandle")
            .field("task", &self.info)
            .field("state", &state)
            .finish()
    }
}

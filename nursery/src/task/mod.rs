//! The child wrapper (panic capture, bookkeeping) and [`TaskHandle`].

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

mod admit;
mod handle;
mod runner;

use pin_project_lite::pin_project;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context;
use crate::core::Payload;
use crate::core::limiter::Job;
use crate::error::Repr;
use crate::id::TaskInfo;
use crate::scope::Scope;
use crate::sync::Arc;

pub(crate) use self::admit::WhenFull;
pub(crate) use self::handle::Deliver;
pub(crate) use self::handle::ResultCell;
pub use self::handle::TaskHandle;
pub(crate) use self::runner::Runner;
use self::runner::{AsyncJob, BlockingJob};

/// What a child's tokio task returns: its value, or why there is none (the
/// error itself went to the scope).
pub(crate) type Output<T> = Result<T, Repr>;

// ===== Guard =====

/// A child's unit of its scope's count, released when the child's future
/// (or blocking closure) has been dropped: it is the last field of the
/// wrapper, so it drops after the user's future.
///
/// One pointer (plus the span with the `tracing` feature): who the child
/// is, for the scope's [`Cause`](crate::Cause) should it fail, is looked
/// up in the scope's registry by tokio task id on the first failure only.
pub(crate) struct Guard {
    /// `None` only while lent to the current-scope slot during a poll.
    scope: Option<Arc<Scope>>,
    /// The child's `nursery.task` span, a child of its scope's, made at
    /// spawn time so that it has the right parent whichever thread polls
    /// the child.
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Guard {
    /// Wraps a unit already counted in with `Scope::enter`, for the child
    /// `info`.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn new(scope: Arc<Scope>, info: &TaskInfo) -> Guard {
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!(
            parent: &scope.span,
            "nursery.task",
            name = info.name.as_ref().map(|name| name.as_str()),
            location = %info.location,
        );
        Guard {
            scope: Some(scope),
            #[cfg(feature = "tracing")]
            span,
        }
    }

    pub(crate) fn scope(&self) -> &Arc<Scope> {
        self.scope
            .as_ref()
            .expect("nursery: a child's scope is only lent while it is polled")
    }

    /// Records the child's result with the scope and turns it into the
    /// task's output.
    fn settle<T, E: Send + 'static>(&self, result: std::thread::Result<Result<T, E>>) -> Output<T> {
        match result {
            Ok(Ok(value)) => {
                self.scope().child_succeeded();
                Ok(value)
            }
            Ok(Err(error)) => {
                #[cfg(feature = "tracing")]
                crate::observe::child_failed(&self.span, &error, self.scope().display_error);
                self.scope().report_error(Box::new(error), true);
                Err(Repr::Failed)
            }
            Err(payload) => {
                #[cfg(feature = "tracing")]
                crate::observe::child_panicked(&self.span, &*payload);
                self.scope().report_panic(payload, true);
                Err(Repr::Panicked)
            }
        }
    }

    /// A blocking child's closure was dropped unstarted, and its
    /// destructor panicked.
    fn destructor_panicked(&self, payload: Payload) {
        #[cfg(feature = "tracing")]
        crate::observe::child_panicked(&self.span, &*payload);
        self.scope().report_panic(payload, true);
    }
}

impl Drop for Guard {
    /// Releases the unit. The guard is its wrapper's last field, so it
    /// drops after the user's future; if that future's destructor panicked,
    /// this runs during the unwinding, and the scope learns of the panic
    /// here (G3) before the unit goes, so it cannot finish without it. The
    /// payload itself stays with whoever catches the unwinding (tokio: the
    /// task's `JoinHandle`); the scope re-raises [`DESTRUCTOR_PANIC`].
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            if std::thread::panicking() {
                #[cfg(feature = "tracing")]
                crate::observe::child_panicked(&self.span, &DESTRUCTOR_PANIC);
                scope.report_panic(Box::new(DESTRUCTOR_PANIC), true);
            }
            scope.child_exited();
        }
    }
}

/// The payload a scope re-raises when a child's future panicked in its
/// destructor: that panic's own message was printed by the panic hook when
/// it happened, and its payload went to the tokio task's `JoinHandle`.
pub(crate) const DESTRUCTOR_PANIC: &str = "nursery: a child's future panicked in its destructor (its own message was printed when it panicked)";

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
    /// Exactly the user's future and one pointer: no slot, no tag, so a
    /// child's tokio task is no larger than a bare `tokio::spawn` of the
    /// same future plus 8 bytes (a tag would push a small future's task
    /// into tokio's next 128-byte size class). The future is dropped with
    /// the task, before the guard: the guard releases the unit after it,
    /// and reports a panic from its destructor (see [`Guard`]'s `Drop`).
    pub(crate) struct Child<F> {
        #[pin]
        future: F,
        guard: Guard,
    }
}

impl<F> Child<F> {
    pub(crate) fn new(future: F, guard: Guard) -> Child<F> {
        Child { future, guard }
    }

    pub(crate) fn scope(&self) -> &Arc<Scope> {
        self.guard.scope()
    }

    /// Hands an unstarted child's future back (`try_spawn` at the limit);
    /// the guard releases the unit.
    pub(crate) fn into_future(self) -> F {
        self.future
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
        let future = this.future;
        let guard = this.guard;
        #[cfg(feature = "tracing")]
        let _entered = guard.span.enter();
        let polled = context::enter(&mut guard.scope, || {
            catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
        });
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => Ok(result),
            Err(payload) => Err(payload),
        };
        Poll::Ready(guard.settle(result))
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
        if let Some(f) = self.f.take()
            && let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(f)))
        {
            self.guard.destructor_panicked(payload);
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

    pub(crate) fn scope(&self) -> &Arc<Scope> {
        self.guard.scope()
    }

    pub(crate) fn run<T, E>(mut self) -> Output<T>
    where
        F: FnOnce(CancellationToken) -> Result<T, E>,
        E: Send + 'static,
    {
        let f = self.f.take().expect("a blocking child runs once");
        let token = self.token.clone();
        #[cfg(feature = "tracing")]
        let _entered = self.guard.span.enter();
        let result = context::enter(&mut self.guard.scope, || {
            catch_unwind(AssertUnwindSafe(|| f(token)))
        });
        self.guard.settle(result)
    }
}

// ===== starting children =====

/// The weight a child of `weight` takes in a scope whose budget is
/// `limit`: itself, or 1 without a budget to weigh against.
///
/// # Panics
///
/// If `weight` is 0 or above `limit`: such a child could never run (Go's
/// weighted semaphore would wait forever).
#[track_caller]
pub(crate) fn checked_weight(weight: usize, limit: Option<usize>) -> usize {
    assert!(
        weight > 0,
        "nursery: spawn_weighted(0, ..): a child's weight must be at least 1"
    );
    match limit {
        Some(limit) => {
            assert!(
                weight <= limit,
                "nursery: spawn_weighted({weight}, ..) in a scope with limit({limit}): \
                 a child heavier than the limit could never run"
            );
            weight
        }
        // No budget to weigh against: every child counts as one.
        None => 1,
    }
}

/// How a child (async or blocking) is started: on a task of its own in a
/// scope without a limit, or as a [`Job`] run by a runner under one.
pub(crate) trait Start: Send + Sized + 'static {
    type Value: Send + 'static;

    /// Spawns the child on a task of its own, registered with its scope.
    /// `scope` is the child's own scope, lent so that spawning touches no
    /// reference count beyond the one the child holds.
    fn spawn(self, scope: &Arc<Scope>, info: &TaskInfo) -> JoinHandle<Output<Self::Value>>;

    /// The child as a job for a runner, delivering its output to `cell`.
    fn into_job(self, cell: Arc<ResultCell<Self::Value>>, info: TaskInfo) -> Box<dyn Job>;
}

impl<F, T, E> Start for Child<F>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Value = T;

    fn spawn(self, scope: &Arc<Scope>, info: &TaskInfo) -> JoinHandle<Output<T>> {
        #[cfg(not(tokio_unstable))]
        let handle = scope.rt.spawn(self);
        #[cfg(tokio_unstable)]
        let handle = tokio::task::Builder::new()
            .name(&console_name(info))
            .spawn_on(self, &scope.rt)
            .expect("nursery: tokio's task builder could not spawn a child");
        scope.register(handle.abort_handle(), info, false);
        handle
    }

    fn into_job(self, cell: Arc<ResultCell<T>>, info: TaskInfo) -> Box<dyn Job> {
        Box::new(AsyncJob {
            child: Slot::Live { future: self },
            info,
            deliver: Deliver::new(cell),
        })
    }
}

impl<F, T, E> Start for Blocking<F>
where
    F: FnOnce(CancellationToken) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Value = T;

    fn spawn(self, scope: &Arc<Scope>, info: &TaskInfo) -> JoinHandle<Output<T>> {
        #[cfg(not(tokio_unstable))]
        let handle = scope.rt.spawn_blocking(move || self.run());
        #[cfg(tokio_unstable)]
        let handle = tokio::task::Builder::new()
            .name(&console_name(info))
            .spawn_blocking_on(move || self.run(), &scope.rt)
            .expect("nursery: tokio's task builder could not spawn a blocking child");
        scope.register(handle.abort_handle(), info, true);
        handle
    }

    fn into_job(self, cell: Arc<ResultCell<T>>, info: TaskInfo) -> Box<dyn Job> {
        Box::new(BlockingJob {
            blocking: Some(self),
            scope: None,
            running: None,
            info,
            deliver: Deliver::new(cell),
        })
    }
}

/// The name a child's tokio task gets under `--cfg tokio_unstable`, for
/// tokio-console: the child's own name, else where it was spawned (tokio
/// would show a location inside nursery).
#[cfg(tokio_unstable)]
fn console_name(info: &TaskInfo) -> String {
    match &info.name {
        Some(name) => name.as_str().to_owned(),
        None => format!("nursery task at {}", info.location),
    }
}

/// What a joined tokio task's result says, as a child's output.
fn joined<T>(result: Result<Output<T>, tokio::task::JoinError>) -> Output<T> {
    match result {
        Ok(output) => output,
        // Aborted; or its destructor panicked while being aborted, which
        // tokio reports as a panic.
        Err(error) if error.is_panic() => Err(Repr::Panicked),
        Err(_) => Err(Repr::Cancelled),
    }
}

//! The child wrapper (panic capture, bookkeeping) and [`TaskHandle`].

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

mod admit;

use pin_project_lite::pin_project;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context;
use crate::core::Payload;
use crate::core::limiter::Job;
use crate::error::{JoinError, Repr};
use crate::id::TaskInfo;
use crate::scope::{Current, Scope};
use crate::sync::{Arc, Mutex, lock};

pub(crate) use self::admit::WhenFull;

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

// ===== ResultCell =====

/// Where the output of a child run by a runner goes: shared by the job and
/// the child's [`TaskHandle`]. One allocation per child, which replaces the
/// tokio task's own output slot.
pub(crate) struct ResultCell<T> {
    state: Mutex<CellState<T>>,
}

enum CellState<T> {
    Waiting(Option<Waker>),
    Ready(Output<T>),
    Taken,
}

impl<T> ResultCell<T> {
    pub(crate) fn new() -> Arc<ResultCell<T>> {
        Arc::new(ResultCell {
            state: Mutex::new(CellState::Waiting(None)),
        })
    }

    fn deliver(&self, output: Output<T>) {
        let mut state = lock(&self.state);
        if let CellState::Waiting(waker) = std::mem::replace(&mut *state, CellState::Ready(output))
        {
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<Output<T>> {
        let mut state = lock(&self.state);
        match &mut *state {
            CellState::Waiting(waker) => {
                match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            CellState::Ready(_) => match std::mem::replace(&mut *state, CellState::Taken) {
                CellState::Ready(output) => Poll::Ready(output),
                _ => unreachable!("checked just above"),
            },
            CellState::Taken => panic!("TaskHandle polled after completion"),
        }
    }

    fn is_done(&self) -> bool {
        !matches!(*lock(&self.state), CellState::Waiting(_))
    }
}

/// Delivers a job's output to its cell when the job is dropped: the output
/// the job kept, or `Cancelled` if it has none (aborted, or dropped from
/// the queue). The last field of a job, so the child's future is gone
/// before the handle hears; and the runner drops a finished job only after
/// it has given the child's slot back (or passed it to the next queued
/// child), so a caller that has awaited the handle finds the slot free.
struct Deliver<T> {
    cell: Option<Arc<ResultCell<T>>>,
    output: Option<Output<T>>,
}

impl<T> Deliver<T> {
    fn new(cell: Arc<ResultCell<T>>) -> Deliver<T> {
        Deliver {
            cell: Some(cell),
            output: None,
        }
    }

    /// Keeps the child's output, for the job's drop to deliver.
    fn keep(&mut self, output: Output<T>) {
        self.output = Some(output);
    }
}

impl<T> Drop for Deliver<T> {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.deliver(self.output.take().unwrap_or(Err(Repr::Cancelled)));
        }
    }
}

// ===== jobs =====

pin_project! {
    /// An async child run by a runner.
    struct AsyncJob<F, T> {
        // Emptied once the child completes, so that its unit of the count
        // is released before its output is delivered: a caller that has
        // awaited the handle finds the child ended in `Nursery::stats`.
        #[pin]
        child: Slot<Child<F>>,
        info: TaskInfo,
        // Last: reports `Cancelled` after the child has been dropped.
        deliver: Deliver<T>,
    }
}

impl<F, T, E> Job for AsyncJob<F, T>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    fn start(self: Box<Self>, weight: usize) {
        let scope = match &self.child {
            Slot::Live { future: child } => child.scope().clone(),
            Slot::Dropped => unreachable!("a job is started before it runs"),
        };
        Runner::spawn(&scope, Box::into_pin(self), weight);
    }

    fn poll_job(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let mut slot = this.child;
        let SlotProj::Live { future: child } = slot.as_mut().project() else {
            panic!("nursery: a job polled after it completed");
        };
        let output = ready!(child.poll(cx));
        // A panic from the future's destructor was reported to the scope by
        // the child's guard, during the unwinding caught here.
        let _ = slot.drop_future();
        this.deliver.keep(output);
        Poll::Ready(())
    }

    fn info(&self) -> Option<&TaskInfo> {
        Some(&self.info)
    }
}

/// A blocking child under a limit: a runner starts it on the blocking pool
/// and holds its slot until it returns.
struct BlockingJob<F, T> {
    blocking: Option<Blocking<F>>,
    /// Kept once the closure has moved to the blocking pool.
    scope: Option<Arc<Scope>>,
    running: Option<JoinHandle<Output<T>>>,
    info: TaskInfo,
    deliver: Deliver<T>,
}

// Nothing in it is pinned in place: the closure moves to the blocking pool.
impl<F, T> Unpin for BlockingJob<F, T> {}

impl<F, T, E> Job for BlockingJob<F, T>
where
    F: FnOnce(CancellationToken) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    fn start(self: Box<Self>, weight: usize) {
        let scope = match (&self.blocking, &self.scope) {
            (Some(blocking), _) => blocking.scope().clone(),
            (None, Some(scope)) => scope.clone(),
            (None, None) => unreachable!("a blocking job knows its scope"),
        };
        Runner::spawn(&scope, Box::into_pin(self), weight);
    }

    fn poll_job(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(blocking) = this.blocking.take() {
            let scope = blocking.scope().clone();
            this.running = Some(blocking.spawn(&scope, &this.info));
            this.scope = Some(scope);
        }
        let running = this
            .running
            .as_mut()
            .expect("nursery: a blocking job polled after it completed");
        let output = joined(ready!(Pin::new(running).poll(cx)));
        this.running = None;
        this.deliver.keep(output);
        Poll::Ready(())
    }

    fn info(&self) -> Option<&TaskInfo> {
        Some(&self.info)
    }

    fn runs_elsewhere(&self) -> bool {
        true
    }
}

// ===== Runner =====

/// How many children a runner runs in one poll before it lets other tasks
/// of its worker thread run.
const RUNNER_BUDGET: usize = 32;

/// The tokio task of a limited scope: it runs a child, and when that child
/// ends, the next queued one that fits, in place, with no new task. A
/// limited scope has at most `limit` of them, so a queued child costs a
/// box and a result cell, never a tokio task.
pub(crate) struct Runner {
    scope: Arc<Scope>,
    job: Option<Pin<Box<dyn Job>>>,
    /// Weight held for the current child, given back when it ends.
    weight: usize,
    /// Who the current child is, for dumps and leak reports.
    current: Arc<Current>,
}

impl Runner {
    /// Spawns a runner for `job`, which holds `weight` of the limit.
    pub(crate) fn spawn(scope: &Arc<Scope>, job: Pin<Box<dyn Job>>, weight: usize) {
        let current = Arc::new(Mutex::new(shown(&*job)));
        let runner = Runner {
            scope: scope.clone(),
            job: Some(job),
            weight,
            current: current.clone(),
        };
        #[cfg(not(tokio_unstable))]
        let handle = scope.rt.spawn(runner);
        #[cfg(tokio_unstable)]
        let handle = tokio::task::Builder::new()
            .name(&format!(
                "nursery runner of scope {}",
                crate::snapshot::DisplayName(scope.name.as_ref().map(|name| name.as_str()))
            ))
            .spawn_on(runner, &scope.rt)
            .expect("nursery: tokio's task builder could not spawn a runner");
        scope.register_runner(handle.abort_handle(), current);
    }
}

/// What a runner shows for `job`: nothing for a blocking child, which has a
/// registry entry of its own.
fn shown(job: &dyn Job) -> Option<TaskInfo> {
    if job.runs_elsewhere() {
        None
    } else {
        job.info().cloned()
    }
}

impl Future for Runner {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        for _ in 0..RUNNER_BUDGET {
            let Some(job) = this.job.as_mut() else {
                return Poll::Ready(());
            };
            ready!(job.as_mut().poll_job(cx));
            // The child's future is gone and its unit of the count with it.
            // Its slot goes back (or to the next queued child) before its
            // output reaches its handle, when the finished job is dropped:
            // whoever awaited the handle then finds the slot free.
            let finished = this.job.take();
            let weight = std::mem::take(&mut this.weight);
            let next = this.scope.next_job(weight);
            drop(finished);
            match next {
                Some((weight, job)) => {
                    *lock(&this.current) = shown(&*job);
                    this.weight = weight;
                    this.job = Some(Box::into_pin(job));
                }
                None => return Poll::Ready(()),
            }
        }
        // Let the other tasks of this worker run; carry on after them.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Dropped before its child ended: aborted, or the runtime is going
        // away. The child goes first, then its weight.
        let unfinished = self.job.take().is_some();
        if unfinished {
            // An abort comes from a cancel, which has closed the queue
            // already. A runtime shutting down drops its tasks without one:
            // nothing queued can start on it any more, and starting the next
            // child would spawn a runner that the closing runtime drops at
            // once, inside `spawn`, whose drop would start the next one: one
            // stack frame per queued child, until the stack overflows.
            drop(self.scope.core.close_queue());
        }
        let weight = std::mem::take(&mut self.weight);
        if weight > 0 {
            self.scope.release(weight);
        }
    }
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("weight", &self.weight)
            .finish_non_exhaustive()
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
    /// Name and spawn location, for errors: not when it started, which
    /// only the scope's registry needs (8 bytes less per kept handle).
    info: TaskInfo,
}

enum HandleState<T> {
    /// A child on a task of its own.
    Running(JoinHandle<Output<T>>),
    /// A child run (or queued to be run) by a runner of a limited scope.
    Cell(Arc<ResultCell<T>>),
    Done(Option<Repr>),
}

impl<T> TaskHandle<T> {
    pub(crate) fn running(handle: JoinHandle<Output<T>>, info: TaskInfo) -> TaskHandle<T> {
        TaskHandle {
            state: HandleState::Running(handle),
            info,
        }
    }

    pub(crate) fn cell(cell: Arc<ResultCell<T>>, info: TaskInfo) -> TaskHandle<T> {
        TaskHandle {
            state: HandleState::Cell(cell),
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
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::Nursery::builder().limit(1).scope(|n| async move {
    ///     let first = n.spawn(std::future::pending::<Result<(), ()>>());
    ///     let queued = n.spawn(async { Ok(()) });
    ///     assert!(!first.is_finished() && !queued.is_finished());
    ///     n.cancel();
    ///     Ok(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.state {
            HandleState::Running(handle) => handle.is_finished(),
            HandleState::Cell(cell) => cell.is_done(),
            HandleState::Done(_) => true,
        }
    }

    /// The name given with [`Nursery::spawn_named`](crate::Nursery::spawn_named).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     assert_eq!(n.spawn_named("fetch", async { Ok(()) }).name(), Some("fetch"));
    ///     assert_eq!(n.spawn(async { Ok(()) }).name(), None);
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.info.name.as_ref().map(|name| name.as_str())
    }

    /// Where the child was spawned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::scope(|n| async move {
    ///     let handle = n.spawn(async { Ok(()) });
    ///     assert_eq!(handle.location().line(), line!() - 1);
    ///     Ok::<_, ()>(())
    /// }).await.unwrap();
    /// # }
    /// ```
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
        let output = match &mut this.state {
            HandleState::Running(handle) => joined(ready!(Pin::new(handle).poll(cx))),
            HandleState::Cell(cell) => ready!(cell.poll(cx)),
            HandleState::Done(repr) => {
                Err(repr.take().expect("TaskHandle polled after completion"))
            }
        };
        this.state = HandleState::Done(None);
        Poll::Ready(output.map_err(|repr| this.error(repr)))
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            HandleState::Running(_) => "running",
            HandleState::Cell(_) => "limited",
            HandleState::Done(_) => "done",
        };
        f.debug_struct("TaskHandle")
            .field("task", &self.info)
            .field("state", &state)
            .finish()
    }
}

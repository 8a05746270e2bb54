//! The child wrapper (panic capture, bookkeeping) and [`TaskHandle`].

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use pin_project_lite::pin_project;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context;
use crate::error::{JoinError, Repr, TaskInfo};
use crate::limit::Job;
use crate::scope::Scope;
use crate::sync::{Arc, Mutex, lock};

/// What a child's tokio task returns: its value, or why there is none (the
/// error itself went to the scope).
pub(crate) type Output<T> = Result<T, Repr>;

// ===== Guard =====

/// A child's unit of its scope's count, released when the child's future
/// (or blocking closure) has been dropped: it is the last field of the
/// wrapper, so it drops after the user's future.
pub(crate) struct Guard {
    /// `None` only while lent to the current-scope slot during a poll.
    scope: Option<Arc<Scope>>,
}

impl Guard {
    /// Wraps a unit already counted in with `Scope::enter`.
    pub(crate) fn new(scope: Arc<Scope>) -> Guard {
        Guard { scope: Some(scope) }
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
            scope.child_exited();
        }
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
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

    pub(crate) fn scope(&self) -> &Arc<Scope> {
        self.guard.scope()
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
    fn spawn(self, info: &TaskInfo) -> JoinHandle<Output<Self::Value>>;

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

    fn spawn(self, info: &TaskInfo) -> JoinHandle<Output<T>> {
        let scope = self.scope().clone();
        let handle = scope.rt.spawn(self);
        scope.register(handle.abort_handle(), info, false);
        handle
    }

    fn into_job(self, cell: Arc<ResultCell<T>>, info: TaskInfo) -> Box<dyn Job> {
        Box::new(AsyncJob {
            child: self,
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

    fn spawn(self, info: &TaskInfo) -> JoinHandle<Output<T>> {
        let scope = self.scope().clone();
        let handle = scope.rt.spawn_blocking(move || self.run());
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

/// Delivers a job's output to its cell, or `Cancelled` if the job is
/// dropped first (aborted, or dropped from the queue). The last field of a
/// job, so the child's future is gone before the handle hears.
struct Deliver<T> {
    cell: Option<Arc<ResultCell<T>>>,
}

impl<T> Deliver<T> {
    fn new(cell: Arc<ResultCell<T>>) -> Deliver<T> {
        Deliver { cell: Some(cell) }
    }

    fn output(&mut self, output: Output<T>) {
        if let Some(cell) = self.cell.take() {
            cell.deliver(output);
        }
    }
}

impl<T> Drop for Deliver<T> {
    fn drop(&mut self) {
        self.output(Err(Repr::Cancelled));
    }
}

// ===== jobs =====

pin_project! {
    /// An async child run by a runner.
    struct AsyncJob<F, T> {
        #[pin]
        child: Child<F>,
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
        let scope = self.child.scope().clone();
        Runner::spawn(&scope, Box::into_pin(self), weight);
    }

    fn poll_job(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let output = ready!(this.child.poll(cx));
        this.deliver.output(output);
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
            this.scope = Some(blocking.scope().clone());
            this.running = Some(blocking.spawn(&this.info));
        }
        let running = this
            .running
            .as_mut()
            .expect("nursery: a blocking job polled after it completed");
        let output = joined(ready!(Pin::new(running).poll(cx)));
        this.running = None;
        this.deliver.output(output);
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

/// The child a runner is running, as its registry entry reads it.
pub(crate) type Current = Mutex<Option<TaskInfo>>;

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
        let handle = scope.rt.spawn(runner);
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
            // The child's future is gone; its unit of the count goes now.
            this.job = None;
            let weight = std::mem::take(&mut this.weight);
            match this.scope.next_job(weight) {
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
    pub fn is_finished(&self) -> bool {
        match &self.state {
            HandleState::Running(handle) => handle.is_finished(),
            HandleState::Cell(cell) => cell.is_done(),
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

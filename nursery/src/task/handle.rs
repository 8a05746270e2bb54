//! [`TaskHandle`]: a child's value, or why there is none; and the
//! [`ResultCell`] a child run as a job under a limit delivers into.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use tokio::task::JoinHandle;

use crate::error::{JoinError, Repr};
use crate::id::TaskInfo;
use crate::sync::{Arc, Mutex, lock};
use crate::task::{Output, joined};

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
pub(crate) struct Deliver<T> {
    cell: Option<Arc<ResultCell<T>>>,
    output: Option<Output<T>>,
}

impl<T> Deliver<T> {
    pub(crate) fn new(cell: Arc<ResultCell<T>>) -> Deliver<T> {
        Deliver {
            cell: Some(cell),
            output: None,
        }
    }

    /// Keeps the child's output, for the job's drop to deliver.
    pub(crate) fn keep(&mut self, output: Output<T>) {
        self.output = Some(output);
    }
}

impl<T> Drop for Deliver<T> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        // The handle is gone (it is never cloned, and only it and this
        // hold the cell): nobody will read the output, which is dropped
        // with this.
        if Arc::strong_count(&cell) == 1 {
            return;
        }
        cell.deliver(self.output.take().unwrap_or(Err(Repr::Cancelled)));
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

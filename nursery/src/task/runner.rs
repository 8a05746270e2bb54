//! Children under a limit: each is a job, run on a [`Runner`] task that
//! goes on to the next queued job when its child ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::core::limiter::Job;
use crate::id::TaskInfo;
use crate::scope::{Current, Scope};
use crate::sync::{Arc, Mutex, lock};
use crate::task::{Blocking, Child, Deliver, Output, Slot, SlotProj, Start, joined};

// ===== jobs =====

pin_project! {
    /// An async child run by a runner.
    pub(super) struct AsyncJob<F, T> {
        // Emptied once the child completes, so that its unit of the count
        // is released before its output is delivered: a caller that has
        // awaited the handle finds the child ended in `Nursery::stats`.
        #[pin]
        pub(super) child: Slot<Child<F>>,
        pub(super) info: TaskInfo,
        // Last: reports `Cancelled` after the child has been dropped.
        pub(super) deliver: Deliver<T>,
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
pub(super) struct BlockingJob<F, T> {
    pub(super) blocking: Option<Blocking<F>>,
    /// Kept once the closure has moved to the blocking pool.
    pub(super) scope: Option<Arc<Scope>>,
    pub(super) running: Option<JoinHandle<Output<T>>>,
    pub(super) info: TaskInfo,
    pub(super) deliver: Deliver<T>,
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

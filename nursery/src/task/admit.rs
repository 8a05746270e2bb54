//! How a child gets started: a task of its own, or, under a limit, a job
//! on a runner task now or in the queue for later.

use crate::core::limiter::{Admission, Job};
use crate::id::TaskInfo;
use crate::scope::Scope;
use crate::sync::Arc;
use crate::task::{ResultCell, Runner, Start, TaskHandle};

/// What to do with a child that does not fit under the limit now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenFull {
    Queue,
    Refuse,
}

impl Scope {
    /// Starts an entered child now, or queues it under the limit. Hands the
    /// child back only with [`WhenFull::Refuse`] when the limit is reached.
    ///
    /// Without a limit the child gets a task of its own. Under a limit it
    /// becomes a job: started on a runner task if it fits now, else queued,
    /// to be run in place by the runner whose child ends next.
    pub(crate) fn admit<C: Start>(
        scope: &Arc<Scope>,
        child: C,
        weight: usize,
        info: TaskInfo,
        when_full: WhenFull,
    ) -> Result<TaskHandle<C::Value>, C> {
        let Some(limiter) = scope.core.limiter() else {
            let handle = child.spawn(scope, &info);
            return Ok(TaskHandle::running(handle, info));
        };
        let now = scope.clock();
        if limiter.try_acquire(weight, now) {
            let cell = ResultCell::new();
            let job = child.into_job(cell.clone(), info.clone());
            Runner::spawn(scope, Box::into_pin(job), weight);
            return Ok(TaskHandle::cell(cell, info));
        }
        if when_full == WhenFull::Refuse {
            return Err(child);
        }
        let cell = ResultCell::new();
        let job = child.into_job(cell.clone(), info.clone());
        match limiter.admit_or_queue(weight, job, now) {
            // Held back by the rate, perhaps: the scope keeps the timer.
            Admission::Queued if limiter.is_paced() => scope.core.wake(),
            Admission::Queued => {}
            // Room was made meanwhile: start it now.
            Admission::Run(job) => job.start(weight),
            // Cancelled meanwhile: dropping the job resolves the handle.
            Admission::Closed(job) => drop(job),
        }
        Ok(TaskHandle::cell(cell, info))
    }

    /// A runner's child has ended: gives its `weight` back and takes the
    /// next queued child that can start, to run in place.
    pub(crate) fn next_job(&self, weight: usize) -> Option<(usize, Box<dyn Job>)> {
        let limiter = self.core.limiter()?;
        let mut weight = weight;
        loop {
            match limiter.release_and_take(weight, self.clock()) {
                // A local child's ticket: the child runs on its scope's own
                // task, with the weight taken for it.
                Some((taken, job)) if !job.runs_in_place() => job.start(taken),
                next => {
                    if next.is_none() && limiter.is_paced() {
                        // The next start may wait for the rate's timer.
                        self.core.wake();
                    }
                    return next;
                }
            }
            weight = 0;
        }
    }

    /// Gives `weight` back, starting queued children on tasks of their own.
    pub(crate) fn release(&self, weight: usize) {
        if let Some(limiter) = self.core.limiter() {
            limiter.release(weight, self.clock());
            if limiter.is_paced() {
                self.core.wake();
            }
        }
    }
}

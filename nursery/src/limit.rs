//! The concurrency limit: a weighted budget with a FIFO queue of children
//! waiting for it.
//!
//! Queued children are not tokio tasks yet: a queued child is the boxed
//! future and its hand-off channel, nothing more (G8). When a running child
//! finishes it hands its weight to the head of the queue directly, so a
//! queued child never waits for a wake-up of the scope.
//!
//! Plain data over [`crate::sync`]: no tokio types, so loom can drive it.

// `pub` so that the loom models in `nursery-tests` can reach these types
// through `nursery::__loom` (built only with `--cfg nursery_loom`).
#![cfg_attr(not(nursery_loom), allow(unreachable_pub))]

use std::collections::VecDeque;
use std::fmt;

use crate::error::TaskInfo;
use crate::sync::{Mutex, lock};

/// A child waiting for room under the limit.
pub trait Job: Send {
    /// Starts the child. Called exactly once, outside every lock, after the
    /// child's weight has been taken from the budget.
    fn start(self: Box<Self>);

    /// Who the child is, for task dumps and leak reports.
    fn info(&self) -> Option<&TaskInfo> {
        None
    }
}

/// A weighted budget shared by the children of one scope.
///
/// # Invariants
///
/// - `in_use <= limit`, and `in_use` is the sum of the weights of the
///   children that were admitted and have not released yet.
/// - The queue is strictly FIFO: a job is started only from the front, so a
///   heavy job cannot be overtaken forever by light ones.
/// - Once `closed`, nothing is admitted or popped again: a cancelled scope
///   starts none of its queued children.
pub struct Limiter {
    limit: usize,
    state: Mutex<State>,
}

struct State {
    in_use: usize,
    closed: bool,
    queue: VecDeque<Queued>,
}

struct Queued {
    weight: usize,
    job: Box<dyn Job>,
}

/// What [`Limiter::admit_or_queue`] did with a job.
#[allow(missing_debug_implementations)] // holds `dyn Job`
pub enum Admission {
    /// The job was queued; it starts when weight is released.
    Queued,
    /// There was room after all: the job is handed back to be started now.
    Run(Box<dyn Job>),
    /// The limiter is closed: the job is handed back to be dropped.
    Closed(Box<dyn Job>),
}

// ===== impl Limiter =====

impl Limiter {
    /// A budget of `limit` (at least 1), all free.
    pub fn new(limit: usize) -> Limiter {
        debug_assert!(limit > 0, "the builder rejects a limit of 0");
        Limiter {
            limit,
            state: Mutex::new(State {
                in_use: 0,
                closed: false,
                queue: VecDeque::new(),
            }),
        }
    }

    /// Takes `weight` from the budget if it fits now and nobody is queued
    /// ahead. This is the fast path: no allocation.
    pub fn try_acquire(&self, weight: usize) -> bool {
        let mut state = lock(&self.state);
        state.try_take(self.limit, weight)
    }

    /// Queues `job`, unless the budget has room by now (then it is handed
    /// back to run) or the limiter is closed.
    pub fn admit_or_queue(&self, weight: usize, job: Box<dyn Job>) -> Admission {
        let mut state = lock(&self.state);
        if state.closed {
            return Admission::Closed(job);
        }
        if state.try_take(self.limit, weight) {
            return Admission::Run(job);
        }
        state.queue.push_back(Queued { weight, job });
        Admission::Queued
    }

    /// Gives `weight` back and starts every queued job that now fits, in
    /// FIFO order. Each job is started outside the lock.
    pub fn release(&self, weight: usize) {
        let mut returned = weight;
        loop {
            let next = {
                let mut state = lock(&self.state);
                state.in_use -= returned;
                returned = 0;
                state.pop_fitting(self.limit)
            };
            match next {
                Some(job) => job.start(),
                None => return,
            }
        }
    }

    /// Calls `f` with each queued child, front first, under the lock: `f`
    /// must not call back into the limiter.
    pub fn for_each_queued(&self, mut f: impl FnMut(&TaskInfo)) {
        let state = lock(&self.state);
        for queued in &state.queue {
            if let Some(info) = queued.job.info() {
                f(info);
            }
        }
    }

    /// Closes the limiter and hands back every queued job, to be dropped by
    /// the caller outside the lock (dropping a job runs user destructors).
    pub fn close(&self) -> Vec<Box<dyn Job>> {
        let mut state = lock(&self.state);
        state.closed = true;
        state.queue.drain(..).map(|queued| queued.job).collect()
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Limiter")
            .field("limit", &self.limit)
            .field("in_use", &state.in_use)
            .field("queued", &state.queue.len())
            .field("closed", &state.closed)
            .finish()
    }
}

// ===== impl State =====

impl State {
    fn try_take(&mut self, limit: usize, weight: usize) -> bool {
        if self.closed || !self.queue.is_empty() || self.in_use + weight > limit {
            return false;
        }
        self.in_use += weight;
        true
    }

    fn pop_fitting(&mut self, limit: usize) -> Option<Box<dyn Job>> {
        if self.closed {
            return None;
        }
        let weight = self.queue.front()?.weight;
        if self.in_use + weight > limit {
            return None;
        }
        self.in_use += weight;
        self.queue.pop_front().map(|queued| queued.job)
    }
}

//! The concurrency limit (a weighted budget) and start-rate pacing, with the
//! FIFO queue of children waiting for them.
//!
//! Queued children are not tokio tasks yet: a queued child is the boxed
//! future and its hand-off channel, nothing more (G8). When a running child
//! finishes it hands its weight to the head of the queue directly, so a
//! queued child never waits for a wake-up of the scope. Only a child held
//! back by the rate waits for a timer, which the scope future keeps.
//!
//! Plain data over [`crate::sync`]: no tokio types, so loom can drive it.
//! Time comes in as nanoseconds since the scope opened, read by the caller
//! from tokio's clock (so paused-clock tests see exact start times).

// `pub` so that the loom models in `nursery-tests` can reach these types
// through `nursery::__loom` (built only with `--cfg nursery_loom`).
#![cfg_attr(not(nursery_loom), allow(unreachable_pub))]

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::id::TaskInfo;
use crate::sync::{Mutex, lock};

/// A child of a limited scope: queued until it fits, then run, either on
/// a task of its own ([`Job::start`]) or in place by a task whose previous
/// child just ended ([`Job::poll_job`], see [`Limiter::release_and_take`]).
pub trait Job: Send {
    /// Starts the child on a task of its own, holding `weight` of the
    /// budget. Called outside every lock, after the weight was taken.
    fn start(self: Box<Self>, weight: usize);

    /// Runs the child in place, as a future polled by whoever took it.
    fn poll_job(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;

    /// Who the child is, for task dumps and leak reports.
    fn info(&self) -> Option<&TaskInfo> {
        None
    }

    /// Whether the child runs somewhere else (the blocking pool) while
    /// `poll_job` waits for it: it then shows up there, not here.
    fn runs_elsewhere(&self) -> bool {
        false
    }

    /// Whether a task whose child ended may run this one in place
    /// ([`Job::poll_job`]). A local child's ticket may not: the child runs
    /// on its scope's own task, and [`Job::start`] tells it to.
    fn runs_in_place(&self) -> bool {
        true
    }
}

/// At most `starts` child starts in any window of `per` nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Starts allowed per window; at least 1.
    pub starts: usize,
    /// The window, in nanoseconds; at least 1.
    pub per: u64,
}

/// A weighted budget and an optional start rate, shared by the children of
/// one scope.
///
/// # Invariants
///
/// - `in_use <= limit`, and `in_use` is the sum of the weights of the
///   children that were admitted and have not released yet.
/// - With a rate, no window of `per` nanoseconds holds more than `starts`
///   admissions: `recent` keeps the admission times of the last window.
/// - The queue is strictly FIFO: a job is started only from the front, so a
///   heavy job cannot be overtaken forever by light ones.
/// - Once `closed`, nothing is admitted or popped again: a cancelled scope
///   starts none of its queued children.
pub struct Limiter {
    limit: usize,
    rate: Option<Rate>,
    state: Mutex<State>,
}

struct State {
    in_use: usize,
    closed: bool,
    queue: VecDeque<Queued>,
    /// With a rate: the times of the admissions in the current window,
    /// oldest first (at most `rate.starts`).
    recent: VecDeque<u64>,
    /// Children handed to the limiter so far (started, queued, or refused
    /// by a closed limiter): what `Nursery::stats` reports as spawned.
    /// Counted under the lock every spawn takes anyway.
    spawned: usize,
}

struct Queued {
    weight: usize,
    job: Box<dyn Job>,
}

/// What [`Limiter::admit_or_queue`] did with a job.
#[allow(missing_debug_implementations)] // holds `dyn Job`
pub enum Admission {
    /// The job was queued; it starts when weight is released (or, with a
    /// rate, when [`Limiter::next_due`] comes).
    Queued,
    /// There was room after all: the job is handed back to be started now.
    Run(Box<dyn Job>),
    /// The limiter is closed: the job is handed back to be dropped.
    Closed(Box<dyn Job>),
}

// ===== impl Limiter =====

impl Limiter {
    /// A budget of `limit` (at least 1; `usize::MAX` for none), all free,
    /// and an optional start rate.
    pub fn new(limit: usize, rate: Option<Rate>) -> Limiter {
        debug_assert!(limit > 0, "the builder rejects a limit of 0");
        debug_assert!(rate.is_none_or(|rate| rate.starts > 0 && rate.per > 0));
        Limiter {
            limit,
            rate,
            state: Mutex::new(State {
                in_use: 0,
                closed: false,
                queue: VecDeque::new(),
                recent: VecDeque::new(),
                spawned: 0,
            }),
        }
    }

    /// The budget, if there is one (there is none when only a rate is set).
    pub fn limit(&self) -> Option<usize> {
        (self.limit != usize::MAX).then_some(self.limit)
    }

    /// Whether starts are paced: the caller must then pass the time, and
    /// keep a timer for [`Limiter::next_due`].
    pub fn is_paced(&self) -> bool {
        self.rate.is_some()
    }

    /// Takes `weight` from the budget if it fits now, the rate allows a
    /// start at `now` and nobody is queued ahead. This is the fast path: no
    /// allocation.
    pub fn try_acquire(&self, weight: usize, now: u64) -> bool {
        let mut state = lock(&self.state);
        let taken = state.queue.is_empty() && state.try_take(self, weight, now);
        state.spawned += usize::from(taken);
        taken
    }

    /// Queues `job`, unless it can start by now (then it is handed back to
    /// run) or the limiter is closed.
    pub fn admit_or_queue(&self, weight: usize, job: Box<dyn Job>, now: u64) -> Admission {
        let mut state = lock(&self.state);
        state.spawned += 1;
        if state.closed {
            return Admission::Closed(job);
        }
        if state.queue.is_empty() && state.try_take(self, weight, now) {
            return Admission::Run(job);
        }
        state.queue.push_back(Queued { weight, job });
        Admission::Queued
    }

    /// Gives `weight` back (0 to only start what the rate now allows) and
    /// starts every queued job that can start at `now`, in FIFO order, each
    /// on a task of its own. Each job is started outside the lock.
    pub fn release(&self, weight: usize, now: u64) {
        let mut returned = weight;
        loop {
            let next = {
                let mut state = lock(&self.state);
                state.in_use -= returned;
                returned = 0;
                state.pop_startable(self, now)
            };
            match next {
                Some((weight, job)) => job.start(weight),
                None => return,
            }
        }
    }

    /// Gives `weight` back and takes the next queued job that can start at
    /// `now`, with its weight taken: the caller runs it in place. This is
    /// how a task whose child ended goes on to the next one without a new
    /// task. Jobs behind it that fit too (a heavy child gave back room for
    /// several light ones) are started on tasks of their own.
    pub fn release_and_take(&self, weight: usize, now: u64) -> Option<(usize, Box<dyn Job>)> {
        let (taken, more) = {
            let mut state = lock(&self.state);
            state.in_use -= weight;
            let taken = state.pop_startable(self, now);
            let more = taken.is_some()
                && state
                    .queue
                    .front()
                    .is_some_and(|next| next.weight <= self.limit - state.in_use);
            (taken, more)
        };
        if more {
            self.release(0, now);
        }
        taken
    }

    /// When the rate will let the head of the queue start, if the rate (and
    /// not the budget) is what holds it back: the time for the scope's timer.
    /// `None` if nothing is queued, the budget holds the head back, or the
    /// head could start at `now` (call [`Limiter::release`] with 0).
    pub fn next_due(&self, now: u64) -> Option<u64> {
        let rate = self.rate?;
        let mut state = lock(&self.state);
        if state.closed {
            return None;
        }
        let weight = state.queue.front()?.weight;
        if weight > self.limit - state.in_use {
            return None;
        }
        state.forget_before(rate, now);
        // Saturating: a period of centuries (`Duration::MAX`) is a start
        // that never comes due, not one that wraps round to the past.
        (state.recent.len() >= rate.starts).then(|| state.recent[0].saturating_add(rate.per))
    }

    /// Children handed to the limiter so far, and how many of them wait in
    /// its queue now.
    pub fn spawned_and_queued(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.spawned, state.queue.len())
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
            .field("rate", &self.rate)
            .field("in_use", &state.in_use)
            .field("queued", &state.queue.len())
            .field("closed", &state.closed)
            .finish()
    }
}

// ===== impl State =====

impl State {
    /// Admits a child of `weight` at `now` if the budget and the rate allow.
    fn try_take(&mut self, limiter: &Limiter, weight: usize, now: u64) -> bool {
        // `in_use <= limit` always, so this cannot overflow, even when
        // `limit` is `usize::MAX` (a rate without a limit).
        if self.closed || weight > limiter.limit - self.in_use {
            return false;
        }
        if let Some(rate) = limiter.rate {
            self.forget_before(rate, now);
            if self.recent.len() >= rate.starts {
                return false;
            }
            self.recent.push_back(now);
        }
        self.in_use += weight;
        true
    }

    fn pop_startable(&mut self, limiter: &Limiter, now: u64) -> Option<(usize, Box<dyn Job>)> {
        let weight = self.queue.front()?.weight;
        if !self.try_take(limiter, weight, now) {
            return None;
        }
        self.queue
            .pop_front()
            .map(|queued| (queued.weight, queued.job))
    }

    /// Drops the admissions that have left the window ending at `now`.
    fn forget_before(&mut self, rate: Rate, now: u64) {
        while self
            .recent
            .front()
            .is_some_and(|&start| start.saturating_add(rate.per) <= now)
        {
            self.recent.pop_front();
        }
    }
}

//! How a scope fails and is cancelled: errors and panics reported to it,
//! the cancel decided once, and the walk that carries it down the tree
//! before the token fires.

use crate::cause::Cause;
use crate::core::{Cancelling, Payload, Reason};
use crate::error::Interrupted;
use crate::id::TaskInfo;
use crate::scope::{Scope, Who};
use crate::sync::{Ordering, lock};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// How many times a failing child looks for its own registry record (see
/// `Scope::current_child`) before it gives up on naming itself.
const REGISTRATION_WAIT: usize = 10_000;

impl Scope {
    /// Records the error of a child (`child`: reported from the child's
    /// own tokio task) or of the body.
    pub(crate) fn report_error(&self, error: Payload, child: bool) {
        let who = || if child { self.current_child() } else { None };
        self.report_error_by(error, child, who);
    }

    /// Records the error of the local child `who`, polled on the scope's
    /// own task (so not found by task id).
    pub(crate) fn report_local_error(&self, error: Payload, who: &TaskInfo) {
        self.report_error_by(error, true, || Some(who.clone()));
    }

    fn report_error_by(&self, error: Payload, child: bool, who: impl Fn() -> Option<TaskInfo>) {
        let (cancelling, discarded) = self.core.report_error_with(error, !child, |_| {
            let who = who();
            self.set_why(Cause::failure(false, who.as_ref(), self.location));
        });
        self.cancelling(cancelling);
        // An error the scope does not keep is dropped here. Its destructor
        // is user code: a panic there is that task's panic, re-raised with
        // its own payload and message (G3), like any other.
        if let Some(error) = discarded
            && let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(error)))
        {
            self.report_panic_by(payload, child, who);
        }
    }

    /// Records the panic of a child (`child`: reported from the child's
    /// own tokio task) or of the body.
    ///
    /// A dropped scope never returns, so it cannot re-raise the panic: it
    /// hands it on at once ([`Scope::hand_on_panic`]).
    pub(crate) fn report_panic(&self, payload: Payload, child: bool) {
        let who = || if child { self.current_child() } else { None };
        self.report_panic_by(payload, child, who);
    }

    /// Records the panic of the local child `who` (see
    /// [`Scope::report_local_error`]).
    pub(crate) fn report_local_panic(&self, payload: Payload, who: &TaskInfo) {
        self.report_panic_by(payload, true, || Some(who.clone()));
    }

    fn report_panic_by(
        &self,
        payload: Payload,
        child: bool,
        who: impl FnOnce() -> Option<TaskInfo>,
    ) {
        if self.is_dropped() {
            let held = self.holds_parent.load(Ordering::Acquire);
            return self.hand_on_panic(payload, who(), held);
        }
        self.record_panic(payload, !child, who);
    }

    /// Records a panic in this scope's own outcome, to be re-raised after
    /// the join. `who` names the task that panicked, if it is a child of
    /// this scope's own (not the body, nor a scope dropped inside).
    pub(super) fn record_panic(
        &self,
        payload: Payload,
        from_body: bool,
        who: impl FnOnce() -> Option<TaskInfo>,
    ) {
        let cancelling = self.core.report_panic_with(payload, from_body, |_| {
            let who = who();
            self.set_why(Cause::failure(true, who.as_ref(), self.location));
        });
        self.cancelling(cancelling);
    }

    /// Who the child running on the current tokio task is, from the
    /// registry: looked up only for the failure that fixes the cause (once
    /// a scope), so that children need not carry their name and location.
    /// The registry's lock is taken inside the outcome's, never the other
    /// way round.
    ///
    /// A child on a worker can fail before the thread that spawned it has
    /// recorded it (it does so right after tokio's `spawn` returns, and a
    /// spawn from outside the runtime can run at once elsewhere): then
    /// this waits for the record, yielding the thread, for a bounded time.
    pub(super) fn current_child(&self) -> Option<TaskInfo> {
        let id = tokio::task::try_id()?;
        for _ in 0..REGISTRATION_WAIT {
            if let Some(who) = lock(&self.registry).who(id) {
                return Some(who);
            }
            std::thread::yield_now();
        }
        None
    }

    /// Cancels the scope for `cause`: a deadline, an outside cancel, a
    /// request or a drop (not a failure, which is reported).
    pub(crate) fn cancel(&self, cause: Reason) {
        let public = match cause {
            Reason::TimedOut => Cause::TimedOut,
            Reason::Requested => Cause::Requested,
            _ => Cause::Cancelled,
        };
        self.cancel_as(cause, public);
    }

    /// Cancels the scope because the scope around it was cancelled (or its
    /// token fired): it reads as the outer scope's cause, unless its own
    /// effective deadline has passed.
    pub(crate) fn cancel_from_parent(&self) {
        let cancelling = self.cancel_core_from_parent();
        self.cancelling(cancelling);
    }

    /// [`cancel_from_parent`](Scope::cancel_from_parent)'s decision alone,
    /// for the walk below a cancelled scope, which does the rest itself.
    pub(super) fn cancel_core_from_parent(&self) -> Cancelling {
        let cause = self.inherited_cause();
        let public = match cause {
            Reason::TimedOut => Cause::TimedOut,
            _ => self
                .parent
                .as_ref()
                .and_then(|parent| parent.cause())
                .unwrap_or(Cause::Cancelled),
        };
        self.core.cancel_with(cause, |_| self.set_why(public))
    }

    pub(super) fn cancel_as(&self, cause: Reason, public: Cause) {
        let cancelling = self.core.cancel_with(cause, |_| self.set_why(public));
        self.cancelling(cancelling);
    }

    /// Called by the core under its outcome lock: takes no other lock.
    pub(super) fn set_why(&self, why: Cause) {
        *lock(&self.why) = Some(why);
    }

    /// Why the scope was cancelled, if it was: see [`crate::cause`]. One
    /// atomic load while it was not. A token cancelled directly counts
    /// once the scope has noticed it (at its next poll), as for
    /// [`crate::check`].
    pub(crate) fn cause(&self) -> Option<Cause> {
        if !self.is_cancelled() {
            return None;
        }
        // Written before the flag was set.
        Some(lock(&self.why).clone().unwrap_or(Cause::Cancelled))
    }

    /// Why the scope was cancelled, once its token has fired: the recorded
    /// cause, or, for a token cancelled directly that the scope has not
    /// noticed yet, what the scope will record.
    pub(crate) fn cause_once_fired(&self) -> Cause {
        self.cause()
            .unwrap_or_else(|| match self.inherited_cause() {
                Reason::TimedOut => Cause::TimedOut,
                _ => Cause::Cancelled,
            })
    }

    /// A cancel was just decided, here or in a child's thread. The queued
    /// children are dropped unstarted; without a grace period the running
    /// ones are aborted at once, by whoever decided the cancel rather than
    /// at the scope future's next poll. Then the open inner scopes are
    /// cancelled (their cores, recursively), so that when the token fires
    /// no child anywhere below can start another; last, the token fires.
    /// With a grace period the scope future aborts when it ends.
    pub(super) fn cancelling(&self, cancelling: Cancelling) {
        if cancelling == Cancelling::Now {
            self.stop_children();
            #[cfg(feature = "tracing")]
            self.trace_cancelled();
            self.fire_token();
        }
    }

    /// Logs the cancel with its cause.
    #[cfg(feature = "tracing")]
    pub(super) fn trace_cancelled(&self) {
        if let Some(why) = &*lock(&self.why) {
            tracing::info!(parent: &self.span, cause = %why, "nursery: scope cancelled");
        }
    }

    /// Drops the queued children unstarted and, without a grace period,
    /// aborts the running ones.
    pub(super) fn stop_children(&self) {
        drop(self.core.close_queue());
        if self.grace.is_zero() {
            self.abort_all();
        }
    }

    /// Cancels every scope open below this one (their cores, to any depth,
    /// each reading as the cause that reached it from above), then fires
    /// the token, which fires theirs.
    ///
    /// # Invariants
    ///
    /// A token fires only once the cores of every scope below it are
    /// cancelled, whichever thread fires it: the one that decided the
    /// cancel, the scope future that saw it decided, or the one that
    /// decided a cancel further up. A child woken by a token therefore finds
    /// its own scope cancelled, with its cause recorded. So the walk may
    /// skip a scope whose token has fired (its subtree is done), but not one
    /// that is merely cancelled: another thread may still be walking below
    /// it. An inner scope that opens after the walk sees its parent
    /// cancelled when it registers. The walk goes top down, so each scope's
    /// cause is recorded before those below it read it.
    ///
    /// A loop over a list of scopes still to visit, not a recursion: a
    /// deep nest of scopes costs no stack. Each list is copied out of its
    /// lock before anything is cancelled: cancelling a scope may end a
    /// dropped one, which takes its parent's lock to leave the list.
    pub(crate) fn fire_token(&self) {
        let mut below = self.inner_cancellable();
        while let Some(inner) = below.pop() {
            if inner.cancel_core_from_parent() == Cancelling::Now {
                inner.stop_children();
                #[cfg(feature = "tracing")]
                inner.trace_cancelled();
            }
            if !inner.token.is_cancelled() {
                below.extend(inner.inner_cancellable());
            }
        }
        // tokio-util cancels a token's descendants in a loop as well.
        self.token.cancel();
    }

    /// How a cancel that comes from an enclosing scope reads here: a
    /// timeout if this scope's effective deadline has passed (G5).
    pub(super) fn inherited_cause(&self) -> Reason {
        if self.deadline_passed() {
            Reason::TimedOut
        } else {
            Reason::Cancelled
        }
    }

    pub(crate) fn abort_all(&self) {
        let spared = self.shields.abort();
        let tasks: Vec<tokio::task::Id> = spared
            .iter()
            .filter_map(|who| match who {
                Who::Task(id) => Some(*id),
                Who::Local(_) | Who::Body => None,
            })
            .collect();
        lock(&self.registry).abort_all(&tasks);
    }

    /// Aborts every child, shielded or not: the scope is being dropped (G7).
    fn abort_every_child(&self) {
        let _ = self.shields.abort();
        lock(&self.registry).abort_all(&[]);
    }

    /// Whether the body is inside a shield: one atomic load while nobody
    /// is, so that the scope future's frame stays small.
    #[inline(always)]
    pub(crate) fn body_is_shielded(&self) -> bool {
        self.shields.count() > 0 && self.is_inside_shield(Who::Body)
    }

    #[cold]
    #[inline(never)]
    fn is_inside_shield(&self, who: Who) -> bool {
        self.shields.is_inside(who)
    }

    /// `who` enters a shield; see [`Shields::enter`](crate::core::shield::Shields::enter).
    pub(crate) fn enter_shield(&self, who: Who) -> bool {
        self.shields.enter(who)
    }

    /// `who` leaves a shield. If the abort spared it, it is aborted now: a
    /// task through its abort handle; a local child or the body by waking
    /// the scope future, which drops it.
    pub(crate) fn leave_shield(&self, who: Who) {
        let abort = self.shields.leave(who);
        match who {
            Who::Task(id) if abort => lock(&self.registry).abort_spared(id),
            Who::Task(_) => {}
            Who::Local(_) | Who::Body => {
                if abort || self.core.is_cancelled() {
                    self.core.wake();
                }
            }
        }
    }

    /// Drops the queued children and aborts the running ones, in this scope
    /// and in every scope open inside it: they are all about to be dropped
    /// with the scope (G7). The queue is closed first, so that an aborted
    /// child's slot goes to nobody.
    ///
    /// Each scope is gone through once: in a deep nest of dropped scopes
    /// each one's drop would otherwise go through all of those below it
    /// again, quadratic in the depth. A loop, not a recursion, as in
    /// [`Scope::fire_token`].
    pub(super) fn abort_tree(&self) {
        let mut pending = match self.abort_own() {
            true => lock(&self.scopes).open(),
            false => return,
        };
        while let Some(inner) = pending.pop() {
            if inner.abort_own() {
                pending.extend(lock(&inner.scopes).open());
            }
        }
    }

    /// `abort_tree`'s work on this scope alone, unless done already. The
    /// scope is cancelled first (if it was not), so that a child dropped by
    /// the abort finds its scope cancelled, as after any other cancel; its
    /// token fires with the dropped scope's, once the walk is done.
    pub(super) fn abort_own(&self) -> bool {
        if self.tree_aborted.swap(true, Ordering::AcqRel) {
            return false;
        }
        let _ = self.cancel_core_from_parent();
        drop(self.core.close_queue());
        self.abort_every_child();
        true
    }

    /// Whether the scope has been cancelled, and how, for [`crate::check`]:
    /// the cause that fixed the outcome decides, so the answer never changes
    /// once given. While not cancelled: one atomic load, and a read of the
    /// clock if the scope has a deadline ([`Scope::is_cancelled`]).
    pub(crate) fn interrupted(&self) -> Option<Interrupted> {
        if !self.is_cancelled() {
            return None;
        }
        match self.core.cause() {
            Some(Reason::TimedOut) => Some(Interrupted::TimedOut),
            _ => Some(Interrupted::Cancelled),
        }
    }

    /// Whether the scope has been cancelled. A scope whose deadline has
    /// passed is timed out whether or not its timer has fired yet (tokio's
    /// fires on the next millisecond tick, and not at all while a body
    /// holds the thread): whoever notices first cancels it with
    /// [`Reason::TimedOut`], which fixes the outcome (G5). So a zero timeout
    /// times out, and `check()` never says `Ok` past the deadline.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.core.is_cancelled() || (self.deadline_passed() && self.time_out())
    }

    /// Cancels the scope for its passed deadline; out of line, so that
    /// the polls that check the deadline keep a small frame.
    #[cold]
    #[inline(never)]
    pub(super) fn time_out(&self) -> bool {
        self.cancel(Reason::TimedOut);
        true
    }
}

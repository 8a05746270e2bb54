//! The scope's shared core: join counter, wake-up of the waiting scope,
//! outcome (first error, `suppressed`, first panic), cancelled/closed flags
//! and the limit queue.
//!
//! It holds no tokio types: the tokio glue (spawning, abort handles,
//! timers, the cancellation token) lives in [`crate::scope`] around it. That
//! keeps every interleaving of "the last child finishes" against "the scope
//! starts waiting" within reach of loom (`--cfg nursery_loom`).

// `pub` so that the loom models in `nursery-tests` can reach these types
// through `nursery::__loom` (built only with `--cfg nursery_loom`).
#![cfg_attr(not(nursery_loom), allow(unreachable_pub))]

use std::any::Any;
use std::fmt;
use std::task::Waker;

pub(crate) mod limiter;
pub(crate) mod local;
pub(crate) mod shield;

use self::limiter::{Job, Limiter, Rate};
use crate::sync::{AtomicUsize, Mutex, Ordering, lock};

/// An error or panic payload on its way to the scope. Errors are boxed so
/// the core is not generic over them; the scope downcasts them back after
/// the join. Only failures pay for the box.
pub type Payload = Box<dyn Any + Send>;

// Layout of `Core::state`: four flags, then the count.
/// No new children: the scope has returned or was dropped.
const CLOSED: usize = 0b0001;
/// A cancel has fired: new children start nothing.
const CANCELLED: usize = 0b0010;
/// The scope was dropped before it finished: whoever brings the count to
/// zero finishes it (releases the parent it holds, unregisters it).
const HELD: usize = 0b0100;
/// The scope's body is done and it waits for the join: the last child to
/// exit wakes it. Before that, children exit without touching the waker.
const WAITING: usize = 0b1000;
const SHIFT: u32 = 4;
/// One unit of the count.
const ONE: usize = 1 << SHIFT;

/// Why a scope's outcome was fixed. The first cause wins, except that a
/// deadline, an outside cancel or a panic may still interrupt a scope whose
/// children were stopped on purpose (`Requested`): the body must not run on
/// past a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A child or the body failed under fail-fast.
    Failed,
    /// A child or the body panicked.
    Panicked,
    /// The effective deadline passed.
    TimedOut,
    /// Cancelled from outside: the parent scope or a `cancel_on` token.
    Cancelled,
    /// `Nursery::cancel`: stop the children, keep the body.
    Requested,
    /// The scope future was dropped before it finished.
    Dropped,
}

impl Reason {
    /// Whether this cause cancels the scope's body as well as its children.
    pub fn interrupts_body(self) -> bool {
        !matches!(self, Reason::Requested)
    }
}

/// Everything the scope reports after the join.
#[derive(Default)]
#[allow(missing_debug_implementations)] // payloads are `dyn Any`
pub struct Outcome {
    /// What fixed the outcome, if anything did.
    pub cause: Option<Reason>,
    /// Errors in the order they arrived: the first is the scope's error, the
    /// rest are `suppressed`.
    pub errors: Vec<Payload>,
    /// The first panic, re-raised by the scope.
    pub panic: Option<Payload>,
    /// Errors that would have been `suppressed` past the cap
    /// ([`Core::cap_suppressed`]): counted, not kept.
    pub omitted: usize,
}

/// How the scope's children ended, as far as the outcome path sees it:
/// kept beside the [`Outcome`] under its lock, which a failure takes anyway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Children that returned an error.
    pub failed: usize,
    /// Children that panicked.
    pub panicked: usize,
    /// Children that completed successfully.
    pub succeeded: usize,
}

/// Why [`Core::enter`] refused a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The scope has been cancelled: the child is dropped unstarted.
    Cancelled,
    /// The scope has returned (or was dropped).
    Closed,
}

/// What a call that may cancel the scope did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Cancelling {
    /// This call cancelled the scope: the caller fires the token and drains
    /// the queue.
    Now,
    /// Nothing new to do.
    No,
}

/// The shared core of one scope.
///
/// # Invariants
///
/// - `count` is one unit for the open scope itself, plus one per child that
///   was entered and has not exited (running or queued), plus one per
///   dropped inner scope still holding this one (G1 is transitive).
/// - The scope is joined exactly when `count` falls to the scope's own unit;
///   it then closes with a single compare-and-swap from that state, so a
///   child entering concurrently either makes the swap fail (and is waited
///   for) or sees `CLOSED` and backs out.
/// - `count` reaches zero only after the scope's own unit is gone (closed
///   or dropped). If the scope was dropped holding its parent (`HELD`),
///   exactly one caller observes the flag at zero and releases the parent.
/// - `cause`, once set, changes only from `Requested` to an interrupting
///   cause; `CANCELLED` is set whenever `cause` is.
#[repr(C)]
pub struct Core {
    state: AtomicUsize,
    /// Children that completed successfully. Beside `state` (`repr(C)`),
    /// so the one increment of a successful child hits the cache line its
    /// `exit` writes next anyway; the spawn path never touches it.
    /// (Cancelled children are the rest, derived.)
    succeeded: AtomicUsize,
    // What a child's spawn and exit touch ends here. The two locks below
    // are taken only when the scope waits, fails or finishes, so they keep
    // the fields that every spawn reads (`limit`, and the scope's tokio
    // handle after the core) off the cache line the exits write.
    waker: Mutex<Option<Waker>>,
    outcome: Mutex<(Outcome, Counts)>,
    fail_fast: bool,
    /// How many errors are kept behind the first; the rest are counted.
    max_suppressed: usize,
    limit: Option<Limiter>,
}

// ===== impl Core =====

impl Core {
    /// A core for an open scope: its own unit counted, nothing else. A
    /// limiter exists if there is a limit or a rate.
    pub fn new(fail_fast: bool, limit: Option<usize>, rate: Option<Rate>) -> Core {
        let limiter = (limit.is_some() || rate.is_some())
            .then(|| Limiter::new(limit.unwrap_or(usize::MAX), rate));
        Core {
            state: AtomicUsize::new(ONE),
            succeeded: AtomicUsize::new(0),
            fail_fast,
            max_suppressed: usize::MAX,
            limit: limiter,
            waker: Mutex::new(None),
            outcome: Mutex::new((Outcome::default(), Counts::default())),
        }
    }

    /// Keeps at most `max` errors behind the first (`suppressed`); later
    /// ones are counted in [`Outcome::omitted`] and handed back to drop.
    pub fn cap_suppressed(mut self, max: usize) -> Core {
        self.max_suppressed = max;
        self
    }

    /// The scope's limit, if it has one.
    pub fn limiter(&self) -> Option<&Limiter> {
        self.limit.as_ref()
    }

    // ----- the count -----

    /// Counts a new child in, unless the scope is cancelled or closed.
    ///
    /// On refusal the caller gets `true` in the rare case where backing out
    /// brought a dropped scope to zero: it must then finish the dropped
    /// scope as after [`Core::exit`].
    pub fn enter(&self) -> Result<(), (Refusal, bool)> {
        // No read first: the state's cache line is usually held by a
        // worker whose child just exited, and a read before the write would
        // fetch it twice (shared, then exclusive). Spawning into a closed or
        // cancelled scope is the rare case; it backs out below.
        //
        // AcqRel: the increment must be ordered before anything the child
        // does, and reading the flags in the same RMW means a child either
        // precedes the close in the modification order (and is waited for)
        // or sees the flag.
        let prev = self.state.fetch_add(ONE, Ordering::AcqRel);
        match refusal(prev) {
            None => Ok(()),
            Some(refusal) => Err((refusal, self.exit())),
        }
    }

    /// Counts one unit in whatever the cancel state: used by a dropped inner
    /// scope that makes this scope wait for its children. Refused only once
    /// this scope is fully done (closed with nothing left to wait for); a
    /// scope that was itself dropped but still has children accepts it, so
    /// the join stays transitive however deep the dropped scopes are nested.
    pub fn enter_hold(&self) -> Result<(), bool> {
        let prev = self.state.fetch_add(ONE, Ordering::AcqRel);
        if prev & CLOSED != 0 && prev >> SHIFT == 0 {
            Err(self.exit())
        } else {
            Ok(())
        }
    }

    /// Counts a child (or hold) out. Wakes the scope if this was the last
    /// one it waits for, and, while it waits, each time the children left
    /// halve (from 256 up), to free the finished ones' tasks. Returns
    /// `true` if the scope was dropped and this was its last unit: the
    /// caller must finish the dropped scope.
    pub fn exit(&self) -> bool {
        // Release: everything the child did, its drop included, happens
        // before the scope observes the join. Acquire: pairs with the
        // `HELD` set in `abandon`.
        let prev = self.state.fetch_sub(ONE, Ordering::AcqRel);
        match prev >> SHIFT {
            // Only the scope's own unit is left and the scope is waiting.
            2 if prev & (WAITING | CLOSED) == WAITING => {
                self.wake();
                false
            }
            1 if prev & HELD != 0 => {
                // Zero with the parent held: exactly one caller clears it.
                self.state.fetch_and(!HELD, Ordering::AcqRel) & HELD != 0
            }
            // Half as many children left as at the last such point: the
            // waiting scope lets go of the finished ones' tasks meanwhile.
            count
                if prev & (WAITING | CLOSED) == WAITING
                    && release_point(count.saturating_sub(2)) =>
            {
                self.wake();
                false
            }
            _ => false,
        }
    }

    /// Registers the waker of the scope future. Called on every pending
    /// poll before the scope inspects the state, so no wake-up is lost.
    pub fn register(&self, waker: &Waker) {
        let mut slot = lock(&self.waker);
        match &*slot {
            Some(current) if current.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Completes the join if only the scope's own unit is left, closing the
    /// scope to new children in the same step.
    ///
    /// The scope must have called [`Core::register`] first: a child that
    /// exits after this check wakes it.
    pub fn try_close(&self) -> bool {
        // From here on the last child to exit wakes the scope.
        let mut current = self.state.fetch_or(WAITING, Ordering::AcqRel) | WAITING;
        loop {
            if current >> SHIFT != 1 {
                return false;
            }
            let closed = (current - ONE) | CLOSED;
            // Acquire: see every exited child's effects. Release: a child
            // refused because of `CLOSED` sees the final state.
            match self.state.compare_exchange_weak(
                current,
                closed,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// The scope future was dropped before finishing: close, cancel, and let
    /// go of the scope's own unit. Whoever brings the count to zero (this
    /// call, if no child is left; else the last child's [`Core::exit`])
    /// gets `true`, exactly once, and finishes the dropped scope.
    pub fn abandon(&self) -> bool {
        self.state
            .fetch_or(CLOSED | CANCELLED | HELD, Ordering::AcqRel);
        self.exit()
    }

    /// Children started or queued and not yet terminated.
    pub fn live(&self) -> usize {
        let state = self.state.load(Ordering::Acquire);
        let count = state >> SHIFT;
        if state & CLOSED == 0 {
            count.saturating_sub(1)
        } else {
            count
        }
    }

    /// Whether a cancel has fired (for any cause).
    pub fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) & CANCELLED != 0
    }

    // ----- outcome -----

    /// What fixed the outcome so far.
    pub fn cause(&self) -> Option<Reason> {
        lock(&self.outcome).0.cause
    }

    /// How the children ended so far.
    pub fn counts(&self) -> Counts {
        let mut counts = lock(&self.outcome).1;
        // Relaxed: a statistic; the caller orders it against the count
        // (`live`) itself, and a child bumps it before its `exit`.
        counts.succeeded = self.succeeded.load(Ordering::Relaxed);
        counts
    }

    /// A child completed successfully. Called before its `exit`.
    pub fn child_succeeded(&self) {
        // Relaxed: only counted; `exit`'s release publishes it to whoever
        // observes the child gone.
        self.succeeded.fetch_add(1, Ordering::Relaxed);
    }

    /// Cancels the scope with `cause`, per the outcome rule.
    /// (What the loom models call; the scope passes a hook.)
    #[cfg(nursery_loom)]
    pub fn cancel(&self, cause: Reason) -> Cancelling {
        self.cancel_with(cause, |_| {})
    }

    /// [`Core::cancel`], calling `fixed` with the cause if this call fixes
    /// it, under the outcome lock and before any other thread can see the
    /// scope cancelled: the scope records who caused it there.
    pub fn cancel_with(&self, cause: Reason, fixed: impl FnOnce(Reason)) -> Cancelling {
        let mut outcome = lock(&self.outcome);
        let fixes = match outcome.0.cause {
            None => true,
            Some(Reason::Requested) => cause.interrupts_body(),
            Some(_) => false,
        };
        if !fixes {
            return Cancelling::No;
        }
        outcome.0.cause = Some(cause);
        fixed(cause);
        drop(outcome);
        self.mark_cancelled();
        Cancelling::Now
    }

    /// Records an error from a child (or, with `from_body`, from the body).
    /// (What the loom models call; the scope passes a hook.)
    #[cfg(nursery_loom)]
    pub fn report_error(&self, error: Payload, from_body: bool) -> Cancelling {
        let (cancelling, discarded) = self.report_error_with(error, from_body, |_| {});
        drop(discarded);
        cancelling
    }

    /// [`Core::report_error`], calling `fixed` as [`Core::cancel_with`] does.
    /// An error that is not kept (a consequence of the cancel, or one past
    /// the cap on `suppressed`) comes back, for the caller to drop: its
    /// destructor is user code, which may panic, and runs outside the lock.
    pub fn report_error_with(
        &self,
        error: Payload,
        from_body: bool,
        fixed: impl FnOnce(Reason),
    ) -> (Cancelling, Option<Payload>) {
        let mut guard = lock(&self.outcome);
        let (outcome, counts) = &mut *guard;
        if !from_body {
            counts.failed += 1;
        }
        let keep = match outcome.cause {
            None if self.fail_fast => {
                outcome.cause = Some(Reason::Failed);
                outcome.errors.push(error);
                fixed(Reason::Failed);
                drop(guard);
                self.mark_cancelled();
                return (Cancelling::Now, None);
            }
            // Collected.
            None => true,
            // A child's error while the scope is being cancelled for a
            // failure: suppressed behind it. The body's is not kept: the
            // body is being cancelled too, and its error is most often the
            // first failure relayed through a `TaskHandle`.
            Some(Reason::Failed) => !from_body,
            // After `Nursery::cancel` the body's own result still counts.
            Some(Reason::Requested) => from_body,
            // A consequence of the cancel (or of a panic, which will be
            // re-raised): discarded, per the outcome rule.
            Some(_) => false,
        };
        if !keep {
            return (Cancelling::No, Some(error));
        }
        // The first error is the scope's, the rest are suppressed.
        if outcome.errors.len() > self.max_suppressed {
            outcome.omitted += 1;
            return (Cancelling::No, Some(error));
        }
        outcome.errors.push(error);
        (Cancelling::No, None)
    }

    /// Records a panic from a child. A panic always cancels.
    /// (What the loom models call; the scope passes a hook.)
    #[cfg(nursery_loom)]
    pub fn report_panic(&self, payload: Payload) -> Cancelling {
        self.report_panic_with(payload, false, |_| {})
    }

    /// Records a panic from a child (or, with `from_body`, from the body),
    /// calling `fixed` as [`Core::cancel_with`] does.
    pub fn report_panic_with(
        &self,
        payload: Payload,
        from_body: bool,
        fixed: impl FnOnce(Reason),
    ) -> Cancelling {
        let mut guard = lock(&self.outcome);
        let (outcome, counts) = &mut *guard;
        if !from_body {
            counts.panicked += 1;
        }
        // A later panic is not re-raised (G3): its payload is dropped, outside
        // the lock.
        let extra = if outcome.panic.is_none() {
            outcome.panic = Some(payload);
            None
        } else {
            Some(payload)
        };
        let cancels = matches!(outcome.cause, None | Some(Reason::Requested));
        if cancels {
            outcome.cause = Some(Reason::Panicked);
            fixed(Reason::Panicked);
        }
        drop(guard);
        drop(extra);
        if cancels {
            self.mark_cancelled();
            Cancelling::Now
        } else {
            // Already cancelled: still wake the scope so it re-raises
            // promptly once joined.
            Cancelling::No
        }
    }

    /// Takes the outcome; called once, after the join.
    /// The counts stay.
    pub fn take_outcome(&self) -> Outcome {
        std::mem::take(&mut lock(&self.outcome).0)
    }

    /// Drains the limit queue for good (on cancel): the jobs are returned to
    /// be dropped outside the lock.
    pub fn close_queue(&self) -> Vec<Box<dyn Job>> {
        match &self.limit {
            Some(limiter) => limiter.close(),
            None => Vec::new(),
        }
    }

    fn mark_cancelled(&self) {
        self.state.fetch_or(CANCELLED, Ordering::AcqRel);
        self.wake();
    }

    /// Wakes the scope future, if it has polled.
    pub fn wake(&self) {
        // Woken outside the lock would need a clone; waking a tokio waker by
        // reference only schedules the task, so holding the lock is fine.
        if let Some(waker) = &*lock(&self.waker) {
            waker.wake_by_ref();
        }
    }
}

/// The fewest children left at which an exit wakes a waiting scope to let
/// go of finished children's tasks (see [`Core::exit`]).
const RELEASE_FROM: usize = 256;

/// Whether an exit that leaves `left` children wakes the waiting scope to
/// let go of finished children's tasks: at each power of two from
/// [`RELEASE_FROM`] up, so a scope of `n` children is woken about
/// `log2(n / RELEASE_FROM)` times, each time to free about as many tasks as
/// are left.
fn release_point(left: usize) -> bool {
    left >= RELEASE_FROM && left.is_power_of_two()
}

fn refusal(state: usize) -> Option<Refusal> {
    if state & CLOSED != 0 {
        Some(Refusal::Closed)
    } else if state & CANCELLED != 0 {
        Some(Refusal::Cancelled)
    } else {
        None
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.load(Ordering::Acquire);
        f.debug_struct("Core")
            .field("count", &(state >> SHIFT))
            .field("closed", &(state & CLOSED != 0))
            .field("cancelled", &(state & CANCELLED != 0))
            .field("fail_fast", &self.fail_fast)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(nursery_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_waiting_scope_is_woken_as_its_children_halve_and_at_the_end() {
        let wakes = std::sync::Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let core = Core::new(false, None, None);
        let children = 1000;
        for _ in 0..children {
            core.enter().unwrap();
        }
        core.register(&waker);
        assert!(!core.try_close(), "children are still running");
        for _ in 0..children {
            assert!(!core.exit());
        }
        // At 512 and 256 children left (the powers of two from
        // `RELEASE_FROM` up), and when the last one exits.
        assert_eq!(wakes.0.load(Ordering::Relaxed), 3);
        assert!(core.try_close());
    }

    #[test]
    fn a_scope_still_running_its_body_is_not_woken_by_exits() {
        let wakes = std::sync::Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let core = Core::new(false, None, None);
        core.register(&waker);
        for _ in 0..1000 {
            core.enter().unwrap();
        }
        for _ in 0..1000 {
            assert!(!core.exit());
        }
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0);
    }
}

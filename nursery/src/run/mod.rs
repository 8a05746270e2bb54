//! The future [`scope`](crate::scope()) returns: a state machine that
//! opens the scope, polls the body inline, watches the sources of
//! cancellation, and finishes once the body and every child have ended.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep, sleep_until};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::clock::FAR_FUTURE;
use crate::context;
use crate::core::{Outcome, Reason};
use crate::error::Error;
use crate::local::{Local, LocalSet};
use crate::nursery::Nursery;
use crate::scope::{Config, Scope, watch_dropped};
use crate::snapshot::AwaitPoints;
use crate::stuck::{PendingReport, Stuck};
use crate::sync::Arc;
use crate::task::{Slot, SlotProj};

/// Drops the body in place. A panic from its destructor is the body's
/// panic: the scope joins, then re-raises it (G1, G3). Out of line: the
/// body's destructor takes room of its own, and runs once a scope.
#[inline(never)]
fn drop_body<Fut>(body: Pin<&mut Slot<Fut>>, scope: &Scope) {
    if let Err(payload) = body.drop_future() {
        scope.report_panic(payload, false);
    }
}

/// What a scope future runs: the body, made by the body closure, and what
/// the scope future owns beside it: the local children of
/// [`scope_local`](crate::scope_local), or nothing.
pub(crate) trait Body<E> {
    type Future: Future;
    type Locals: Locals;

    /// What holds the local children, made before the body.
    fn locals(scope: &Arc<Scope>) -> Self::Locals;

    /// Calls the body closure.
    fn call(self, n: Nursery<E>, locals: &Self::Locals) -> Self::Future;
}

/// A body closure that takes the [`Nursery`] alone: no local children.
pub(crate) struct Plain<F>(pub(crate) F);

impl<F, Fut, E> Body<E> for Plain<F>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future,
{
    type Future = Fut;
    type Locals = NoLocals;

    fn locals(_: &Arc<Scope>) -> NoLocals {
        NoLocals
    }

    fn call(self, n: Nursery<E>, _: &NoLocals) -> Fut {
        (self.0)(n)
    }
}

/// A body closure that takes the [`Nursery`] and a [`Local`] handle.
pub(crate) struct WithLocal<'env, F>(pub(crate) F, pub(crate) PhantomData<&'env ()>);

impl<'env, F, Fut, E> Body<E> for WithLocal<'env, F>
where
    F: FnOnce(Nursery<E>, Local<'env, E>) -> Fut,
    Fut: Future,
    E: Send + 'static,
{
    type Future = Fut;
    type Locals = LocalSet<'env>;

    fn locals(scope: &Arc<Scope>) -> LocalSet<'env> {
        LocalSet::new(scope.clone())
    }

    fn call(self, n: Nursery<E>, locals: &LocalSet<'env>) -> Fut {
        (self.0)(n, Local::new(locals))
    }
}

/// The local children a scope future polls beside its body.
pub(crate) trait Locals {
    /// Whether there can be any: `false` compiles their steps away.
    const ANY: bool;

    /// Marks the thread as polling the scope future, until dropped.
    type Polling;

    fn polling(&self) -> Self::Polling;

    /// Polls the children that are due, or drops them all if the scope
    /// has aborted its children.
    fn poll(&mut self, scope: &Scope, lent: &mut Option<Arc<Scope>>, cx: &mut Context<'_>);
}

/// A scope without local children.
pub(crate) struct NoLocals;

impl Locals for NoLocals {
    const ANY: bool = false;
    type Polling = ();

    #[inline(always)]
    fn polling(&self) {}

    #[inline(always)]
    fn poll(&mut self, _: &Scope, _: &mut Option<Arc<Scope>>, _: &mut Context<'_>) {}
}

impl Locals for LocalSet<'_> {
    const ANY: bool = true;
    type Polling = crate::local::Polling;

    fn polling(&self) -> crate::local::Polling {
        LocalSet::polling(self)
    }

    fn poll(&mut self, scope: &Scope, lent: &mut Option<Arc<Scope>>, cx: &mut Context<'_>) {
        LocalSet::poll(self, scope, lent, cx);
    }
}

/// Keeps the scope in the tree of open scopes while open, and aborts it if
/// its future is dropped before the join completed.
struct Open {
    scope: Arc<Scope>,
    joined: bool,
}

impl Open {
    fn new(scope: &Arc<Scope>) -> Open {
        Scope::register_open(scope);
        Open {
            scope: scope.clone(),
            joined: false,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.joined {
            self.scope.unregister();
            return;
        }
        self.scope.abandon();
        // Children still being torn down: if they are not gone within the
        // leak-grace window, they are leaks.
        if self.scope.is_registered() {
            watch_dropped(&self.scope, self.scope.leak_grace);
        }
    }
}

pin_project! {
    /// The future [`scope`] returns. The scope opens at the first poll;
    /// from then on each poll polls the body inline, in the scope.
    ///
    /// Written out by hand, not as an `async fn`, to keep it and its poll
    /// frame small: a scope nested in a body is polled from inside that
    /// body's poll, so the stack a nest of them takes grows by one poll
    /// frame per level, and an outer body that boxes the future builds it
    /// on its own stack first. The setup at the first poll and the finish
    /// run in frames of their own; the timers, which most scopes never
    /// arm, live in a box allocated when one is (see [`Cold`]); the cancel
    /// paths are out of line; the body's poll is inlined into this one
    /// ([`context::enter_body`]), so that a level is one frame, not two.
    ///
    /// Polled again once it has completed, it panics with the message an
    /// `async fn`'s future gives.
    #[project = RunProj]
    #[project_replace = RunOwn]
    pub(crate) enum Run<F, Fut, L, T, E> {
        Unopened {
            config: Config,
            body: F,
            location: &'static Location<'static>,
            error: PhantomData<fn() -> E>,
        },
        Open {
            #[pin]
            running: Running<Fut, L, T>,
        },
        Done,
        // A panic left the future (no runtime, or the scope re-raised one).
        Panicked,
    }
}

pub(crate) fn run<F, Fut, L, T, E>(
    config: Config,
    body: F,
    location: &'static Location<'static>,
) -> Run<F, Fut, L, T, E>
where
    F: Body<E, Future = Fut, Locals = L>,
    Fut: Future<Output = Result<T, E>>,
    L: Locals,
    E: Send + 'static,
{
    Run::Unopened {
        config,
        body,
        location,
        error: PhantomData,
    }
}

pin_project! {
    /// An open scope's future: the body, and what watches for cancels from
    /// outside the scope's own children.
    ///
    /// The fields drop in order: the body before `open`, so an unfinished
    /// body (and any inner scope in it) is torn down before this scope is
    /// abandoned.
    struct Running<Fut, L, T> {
        // The body's value, once it has returned one.
        value: Option<T>,
        // The timers and the outside token, once one is needed.
        cold: Option<Pin<Box<Cold>>>,
        // Cancels from enclosing scopes arrive through `cancelling`; this
        // catches the token being cancelled directly (`Nursery::token`).
        #[pin]
        token_cancelled: WaitForCancellationFutureOwned,
        #[pin]
        body: Slot<Fut>,
        // The local children, dropped after the body (which may hold their
        // handles) and before the scope is abandoned.
        locals: L,
        // The scope, lent to the thread for each poll of the body.
        lent: Option<Arc<Scope>>,
        open: Open,
        phase: Phase,
    }
}

/// Whether an open scope has started its cancel. Where the body is (running,
/// or finished and dropped) is its [`Slot`]'s state; the scope future as a
/// whole is [`Run`].
///
/// | phase | body | the scope future |
/// |---|---|---|
/// | `Running` | live | polls the body, watches for cancels |
/// | `Running` | dropped | joins: waits for its children |
/// | `Cancelling` | live | polls the body (only after `n.cancel()`, which spares it) |
/// | `Cancelling` | dropped | joins: waits for its children, aborted or in their grace |
///
/// `Running` → `Cancelling` once, the first time the scope reads as
/// cancelled: the queue closes, the children are aborted or their grace
/// timer armed, and the token fires ([`Scope::start_cancel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Cancelling,
}

pin_project! {
    /// The parts of a scope future that most scopes never use, boxed so
    /// that they take no room (a `Sleep` is over a hundred bytes) in the
    /// future, and none in its poll frame: the deadline timer, the outside
    /// token of [`Builder::cancel_on`], the grace timer and the rate's
    /// timer. Allocated when the scope opens with a deadline of its own or
    /// an outside token, or when it first arms the grace or rate timer;
    /// kept until the scope future is dropped.
    struct Cold {
        #[pin]
        deadline: Option<Sleep>,
        #[pin]
        outside: Option<WaitForCancellationFutureOwned>,
        #[pin]
        grace: Option<Sleep>,
        #[pin]
        pace: Option<Sleep>,
        // The `warn_after` timer, armed when the scope starts waiting.
        #[pin]
        stuck: Option<Sleep>,
        // When the scope started waiting; set once.
        waiting_since: Option<Instant>,
        // The stuck report, from when the `warn_after` timer fires until
        // the traces of its tasks are taken; boxed, as the other parts are
        // allocated on every cancel with a grace.
        report: Option<Box<PendingReport>>,
    }
}

/// The scope's [`Cold`] parts, allocated if they are not yet.
fn cold(slot: &mut Option<Pin<Box<Cold>>>) -> Pin<&mut Cold> {
    slot.get_or_insert_with(|| {
        Box::pin(Cold {
            deadline: None,
            outside: None,
            grace: None,
            pace: None,
            stuck: None,
            waiting_since: None,
            report: None,
        })
    })
    .as_mut()
}

impl<F, Fut, L, T, E> Future for Run<F, Fut, L, T, E>
where
    F: Body<E, Future = Fut, Locals = L>,
    Fut: Future<Output = Result<T, E>>,
    L: Locals,
    E: Send + 'static,
{
    type Output = Result<T, Error<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let RunProj::Unopened { .. } = self.as_mut().project() {
            self.as_mut().open();
        }
        let running = match self.as_mut().project() {
            RunProj::Open { running } => running,
            RunProj::Done => panic!("`async fn` resumed after completion"),
            RunProj::Panicked => panic!("`async fn` resumed after panicking"),
            RunProj::Unopened { .. } => unreachable!("nursery: the scope opens at its first poll"),
        };
        match running.poll_join(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(self.finish()),
        }
    }
}

impl<F, Fut, L, T, E> Run<F, Fut, L, T, E>
where
    F: Body<E, Future = Fut, Locals = L>,
    Fut: Future<Output = Result<T, E>>,
    L: Locals,
    E: Send + 'static,
{
    /// Opens the scope and runs the body closure in it: the first poll.
    /// Out of line, so that what it moves (the settings, the scope, the
    /// body's future on its way into place) takes no room in the frame of
    /// every later poll.
    #[inline(never)]
    fn open(mut self: Pin<&mut Self>) {
        // Until the scope is in place, a panic (no runtime) leaves the
        // future spent.
        let RunOwn::Unopened {
            config,
            body,
            location,
            error: _,
        } = self.as_mut().project_replace(Run::Panicked)
        else {
            unreachable!("nursery: a scope opens once")
        };
        let (scope, timed) = Scope::open(
            &config,
            context::current(),
            context::is_shielded(),
            context::who_now(),
            location,
        );
        let scope = Arc::new(scope);
        let open = Open::new(&scope);
        // The body closure runs in the scope too: a panic there (after it
        // has spawned children, say) is the body's panic, re-raised after
        // the join.
        let mut lent = Some(scope.clone());
        let locals = F::locals(&scope);
        let made = {
            #[cfg(feature = "tracing")]
            let _entered = scope.span.enter();
            context::enter(&mut lent, || {
                catch_unwind(AssertUnwindSafe(|| {
                    body.call(Nursery::new(scope.clone()), &locals)
                }))
            })
        };
        let body = match made {
            Ok(future) => Slot::Live { future },
            Err(payload) => {
                scope.report_panic(payload, false);
                Slot::Dropped
            }
        };
        // Sources of cancellation from outside the scope's own children.
        let deadline = timed.map(sleep_until);
        let token_cancelled = scope.token.clone().cancelled_owned();
        let outside = config.cancel_on.map(CancellationToken::cancelled_owned);
        let cold = (deadline.is_some() || outside.is_some()).then(|| {
            Box::pin(Cold {
                deadline,
                outside,
                grace: None,
                pace: None,
                stuck: None,
                waiting_since: None,
                report: None,
            })
        });
        self.set(Run::Open {
            running: Running {
                value: None,
                cold,
                token_cancelled,
                body,
                locals,
                lent,
                open,
                phase: Phase::Running,
            },
        });
    }

    /// The join is complete: closes the scope and turns its outcome into
    /// the result.
    #[inline(never)]
    fn finish(mut self: Pin<&mut Self>) -> Result<T, Error<E>> {
        let RunProj::Open { running } = self.as_mut().project() else {
            unreachable!("nursery: only an open scope finishes")
        };
        let running = running.project();
        let value = running.value.take();
        let scope = running.open.scope.clone();
        running.open.joined = true;
        // Drops the rest: `open` leaves the tree of open scopes.
        self.as_mut().set(Run::Panicked);
        scope.closed();
        let outcome = scope.core.take_outcome();
        drop(scope);
        let result = finish(outcome, value);
        self.set(Run::Done);
        result
    }
}

impl<Fut, L, T, E> Running<Fut, L, T>
where
    Fut: Future<Output = Result<T, E>>,
    L: Locals,
    E: Send + 'static,
{
    /// One poll of an open scope, in three steps: watch the sources of
    /// cancellation outside the scope's own children, drive the body, then
    /// join. Ready once the body and every child have finished.
    fn poll_join(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let scope = &*this.open.scope;
        // The body, and whatever the scope does on its behalf, runs in the
        // scope's span.
        #[cfg(feature = "tracing")]
        let _entered = scope.span.enter();
        scope.core.register(cx.waker());
        let _polling = this.locals.polling();
        watch_outside(scope, this.cold, this.token_cancelled, cx);
        let mut slot = this.body;
        let body = Parts {
            slot: slot.as_mut(),
            lent: this.lent,
            value: this.value,
        };
        let finished = drive_body(scope, this.phase, this.cold, body, cx);
        if !L::ANY {
            return join(scope, this.cold, finished, cx);
        }
        keep_timers(scope, this.cold, cx);
        this.locals.poll(scope, this.lent, cx);
        if *this.phase == Phase::Running && scope.is_cancelled() {
            // A local child failed (or saw a cancel first): start the
            // cancel, then drop the local children if it aborts them.
            notice_cancel(scope, this.phase, this.cold, slot.as_mut());
            this.locals.poll(scope, this.lent, cx);
        }
        try_join(scope, this.cold, matches!(*slot, Slot::Dropped), cx)
    }
}

/// The body's parts of an open scope's future, lent to [`drive_body`].
struct Parts<'a, Fut, T> {
    slot: Pin<&'a mut Slot<Fut>>,
    /// The scope, lent to the thread for each poll of the body.
    lent: &'a mut Option<Arc<Scope>>,
    /// The body's value, once it has returned one.
    value: &'a mut Option<T>,
}

/// Step one: polls the deadline timer and the outside token (if the scope
/// has them), and notices the scope's token cancelled directly, by whoever
/// holds it: an outside cancel. The token is looked at again after the
/// body yields ([`drive_body`]), so a body that cancels the token has its
/// scope cancelled before any child it spawned meanwhile runs on this
/// thread.
#[inline(always)]
fn watch_outside(
    scope: &Scope,
    cold: &mut Option<Pin<Box<Cold>>>,
    token_cancelled: Pin<&mut WaitForCancellationFutureOwned>,
    cx: &mut Context<'_>,
) {
    if scope.deadline_moved() {
        scope.rearm_deadline(cold);
    }
    if let Some(cold) = cold {
        scope.poll_outside(cold.as_mut(), cx);
    }
    if !scope.core.is_cancelled() && token_cancelled.poll(cx).is_ready() {
        scope.cancel_from_parent();
    }
}

/// Step two: polls the body, inline and inside the scope, until it yields
/// or finishes, and starts the cancel whenever one has been decided (by the
/// body's own result too). Returns whether the body has finished.
#[inline(always)]
fn drive_body<Fut, T, E>(
    scope: &Scope,
    phase: &mut Phase,
    cold: &mut Option<Pin<Box<Cold>>>,
    mut body: Parts<'_, Fut, T>,
    cx: &mut Context<'_>,
) -> bool
where
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    let mut yielded = false;
    loop {
        notice_cancel(scope, phase, cold, body.slot.as_mut());
        if yielded {
            break;
        }
        let SlotProj::Live { future } = body.slot.as_mut().project() else {
            break;
        };
        let polled = context::enter_body(body.lent, || {
            catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
        });
        match polled {
            Ok(Poll::Pending) => {
                if !scope.core.is_cancelled() && scope.token.is_cancelled() {
                    scope.cancel_from_parent();
                }
                if *phase == Phase::Cancelling || !scope.core.is_cancelled() {
                    break;
                }
                // The body cancelled the scope: start the cancel now.
                yielded = true;
            }
            Ok(Poll::Ready(result)) => settle_body(scope, &mut body, Ok(result)),
            Err(payload) => settle_body::<Fut, T, E>(scope, &mut body, Err(payload)),
        }
    }
    matches!(*body.slot, Slot::Dropped)
}

/// The body has returned (or panicked): keeps its value, or reports its
/// error or panic, and drops it. The scope may be cancelled now; the loop
/// in [`drive_body`] goes round once more to start the cancel.
#[inline(always)]
fn settle_body<Fut, T, E>(
    scope: &Scope,
    body: &mut Parts<'_, Fut, T>,
    ended: std::thread::Result<Result<T, E>>,
) where
    E: Send + 'static,
{
    match ended {
        Ok(Ok(output)) => {
            *body.value = Some(output);
            drop_body(body.slot.as_mut(), scope);
        }
        Ok(Err(error)) => {
            drop_body(body.slot.as_mut(), scope);
            scope.report_error(Box::new(error), false);
        }
        Err(payload) => {
            drop_body(body.slot.as_mut(), scope);
            scope.report_panic(payload, false);
        }
    }
}

/// Starts the cancel here the first time the scope reads as cancelled
/// (past its deadline included: checked before the body runs, for a zero
/// timeout, and after it returns, for a body that held the thread), and
/// drops the body unless the cause spares it (`n.cancel()`).
#[inline(always)]
fn notice_cancel<Fut>(
    scope: &Scope,
    phase: &mut Phase,
    cold: &mut Option<Pin<Box<Cold>>>,
    body: Pin<&mut Slot<Fut>>,
) {
    if !scope.is_cancelled() {
        return;
    }
    if *phase == Phase::Running {
        *phase = Phase::Cancelling;
        scope.start_cancel(cold);
    }
    // A body inside a shield runs on; leaving it wakes the scope future,
    // which drops the body then.
    if scope.core.cause().is_some_and(Reason::interrupts_body) && !scope.body_is_shielded() {
        drop_body(body, scope);
    }
}

/// Step three: keeps the grace and rate timers, and, once the body has
/// finished, completes the join if every child has ended, or lets go of the
/// tasks of those that have while it waits (an exit wakes the scope for it
/// as the count halves).
#[inline(always)]
fn join(
    scope: &Scope,
    cold: &mut Option<Pin<Box<Cold>>>,
    body_finished: bool,
    cx: &mut Context<'_>,
) -> Poll<()> {
    keep_timers(scope, cold, cx);
    try_join(scope, cold, body_finished, cx)
}

/// [`join`]'s first half: polls the grace timer (aborting the children
/// when it fires) and the rate's timer.
#[inline(always)]
fn keep_timers(scope: &Scope, cold: &mut Option<Pin<Box<Cold>>>, cx: &mut Context<'_>) {
    if let Some(cold) = cold {
        scope.poll_grace(cold.as_mut(), cx);
    }
    scope.pace(cold, cx);
}

/// [`join`]'s second half: once the body has finished, closes if every
/// child has ended, or lets go of the tasks of those that have.
#[inline(always)]
fn try_join(
    scope: &Scope,
    cold: &mut Option<Pin<Box<Cold>>>,
    body_finished: bool,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if !body_finished {
        return Poll::Pending;
    }
    if scope.core.try_close() {
        return Poll::Ready(());
    }
    scope.release_finished();
    if scope.warn_after.is_some() {
        scope.watch_stuck(cold, cx);
    }
    Poll::Pending
}

impl Scope {
    /// Starts the queued children the rate now allows, and keeps the rate's
    /// timer (in the scope future's [`Cold`] parts) set for the next one it
    /// holds back.
    fn pace(&self, slot: &mut Option<Pin<Box<Cold>>>, cx: &mut Context<'_>) {
        let Some(limiter) = self.core.limiter().filter(|limiter| limiter.is_paced()) else {
            return;
        };
        let mut fired = false;
        loop {
            // Start whatever the rate allows by now (the budget permitting),
            // then wait for the next start it holds back.
            let now = self.clock();
            limiter.release(0, now);
            let Some(due) = limiter.next_due(now) else {
                if let Some(cold) = slot {
                    cold.as_mut().project().pace.set(None);
                }
                return;
            };
            if due <= now {
                continue;
            }
            if fired {
                // The timer fired a hair before the clock agrees: look again
                // on the next poll rather than spin.
                cx.waker().wake_by_ref();
                return;
            }
            // `due` saturates at `u64::MAX` nanoseconds (584 years):
            // beyond what `Instant` holds on some platforms.
            let at = self
                .epoch
                .checked_add(Duration::from_nanos(due))
                .unwrap_or_else(|| Instant::now() + FAR_FUTURE);
            let mut timer = cold(slot).project().pace;
            match timer.as_mut().as_pin_mut() {
                Some(sleep) if sleep.deadline() == at => {}
                _ => timer.set(Some(sleep_until(at))),
            }
            if !poll_once(timer.as_mut(), cx) {
                return;
            }
            timer.set(None);
            fired = true;
        }
    }

    /// Polls the deadline timer and the outside token, and cancels the
    /// scope if either has fired.
    #[inline(never)]
    fn poll_outside(&self, cold: Pin<&mut Cold>, cx: &mut Context<'_>) {
        let mut cold = cold.project();
        if poll_once(cold.deadline.as_mut(), cx) {
            cold.deadline.set(None);
            // Unless it was moved later meanwhile: then the scope future
            // sets the timer again (`rearm_deadline`) on its next poll.
            if self.deadline_passed() {
                self.cancel(Reason::TimedOut);
            }
        }
        if poll_once(cold.outside.as_mut(), cx) {
            cold.outside.set(None);
            self.cancel(Reason::Cancelled);
        }
    }

    /// A deadline moved (`Nursery::set_deadline`, here or above): sets the
    /// deadline timer to the one this scope must time now, if any.
    #[cold]
    #[inline(never)]
    fn rearm_deadline(&self, slot: &mut Option<Pin<Box<Cold>>>) {
        let Some(at) = self.moved_timer() else {
            return;
        };
        if at.is_none() && slot.is_none() {
            return;
        }
        cold(slot).project().deadline.set(at.map(sleep_until));
    }

    /// With `warn_after`: once the scope waits for its children (its body
    /// has finished, at its return or at a cancel, which drops it), keeps
    /// the timer, and reports the scope stuck when it fires, once.
    #[cold]
    #[inline(never)]
    fn watch_stuck(&self, slot: &mut Option<Pin<Box<Cold>>>, cx: &mut Context<'_>) {
        let Some(after) = self.warn_after else {
            return;
        };
        let mut cold = cold(slot).project();
        let since = match *cold.waiting_since {
            Some(since) => since,
            None => {
                let now = Instant::now();
                *cold.waiting_since = Some(now);
                cold.stuck.set(Some(sleep(after)));
                now
            }
        };
        if poll_once(cold.stuck.as_mut(), cx) {
            cold.stuck.set(None);
            let stuck = self.stuck(since.elapsed(), self.core.is_cancelled());
            *cold.report = Some(Box::new(PendingReport::new(
                stuck,
                #[cfg(feature = "tracing")]
                self.span.clone(),
            )));
        }
        if let Some(report) = cold.report.as_mut()
            && report.poll(cx)
        {
            *cold.report = None;
        }
    }

    /// The scope's stuck report: its path, the wait, its live children.
    fn stuck(&self, waited: Duration, cancelled: bool) -> Stuck {
        let path = self.path();
        let (tasks, _) = self.live_tasks(crate::clock::Stamp::now(), &path);
        Stuck {
            scope_path: path,
            location: self.location,
            waited,
            cancelled,
            tasks,
            await_points: AwaitPoints::NotAsked,
        }
    }

    /// Polls the grace timer, and aborts the children still running once
    /// it has fired.
    #[inline(never)]
    fn poll_grace(&self, cold: Pin<&mut Cold>, cx: &mut Context<'_>) {
        let mut grace = cold.project().grace;
        if poll_once(grace.as_mut(), cx) {
            grace.set(None);
            self.abort_all();
        }
    }

    /// The scope future has seen its scope cancelled: stops the queue, aborts
    /// the children or arms the grace timer, and fires the token. Usually
    /// done already by whoever cancelled, maybe still under way on another
    /// thread; idempotent, and in the same order.
    #[cold]
    #[inline(never)]
    fn start_cancel(&self, slot: &mut Option<Pin<Box<Cold>>>) {
        drop(self.core.close_queue());
        if self.grace.is_zero() {
            self.abort_all();
        } else {
            cold(slot).project().grace.set(Some(sleep(self.grace)));
        }
        self.fire_token();
    }
}

/// Polls an optional future once; `true` if it completed.
fn poll_once<F: Future>(future: Pin<&mut Option<F>>, cx: &mut Context<'_>) -> bool {
    future
        .as_pin_mut()
        .is_some_and(|future| future.poll(cx).is_ready())
}

/// Turns the joined scope's outcome into its result.
fn finish<T, E: 'static>(outcome: Outcome, value: Option<T>) -> Result<T, Error<E>> {
    if let Some(payload) = outcome.panic {
        // Dropped before unwinding, each on its own: a destructor that
        // panicked during the unwind would abort the process. The first
        // panic is the one re-raised; later ones are not (G3).
        let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
        for error in outcome.errors {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(error)));
        }
        resume_unwind(payload);
    }
    let mut errors = outcome
        .errors
        .into_iter()
        .map(|error| match error.downcast::<E>() {
            Ok(error) => *error,
            Err(_) => unreachable!("nursery: every error of a scope has the scope's error type"),
        });
    if let Some(error) = errors.next() {
        return Err(Error::Failed {
            error,
            suppressed: errors.collect(),
            omitted: outcome.omitted,
        });
    }
    match outcome.cause {
        Some(Reason::TimedOut) => Err(Error::TimedOut),
        Some(Reason::Cancelled | Reason::Dropped) => Err(Error::Cancelled),
        None | Some(Reason::Requested) => {
            Ok(value.expect("nursery: a body that neither failed nor panicked returned a value"))
        }
        Some(Reason::Failed | Reason::Panicked) => {
            unreachable!("nursery: a failed scope holds its error or panic")
        }
    }
}

#[cfg(all(test, not(nursery_loom)))]
mod tests;

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
use crate::nursery::Nursery;
use crate::scope::{Config, Scope, watch_dropped};
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
    /// ([`context::enter_inline`]), so that a level is one frame, not two.
    ///
    /// Polled again once it has completed, it panics with the message an
    /// `async fn`'s future gives.
    #[project = RunProj]
    #[project_replace = RunOwn]
    pub(crate) enum Run<F, Fut, T, E> {
        Unopened {
            config: Config,
            body: F,
            location: &'static Location<'static>,
            error: PhantomData<fn() -> E>,
        },
        Open {
            #[pin]
            running: Running<Fut, T>,
        },
        Done,
        // A panic left the future (no runtime, or the scope re-raised one).
        Panicked,
    }
}

pub(crate) fn run<F, Fut, T, E>(
    config: Config,
    body: F,
    location: &'static Location<'static>,
) -> Run<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
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
    struct Running<Fut, T> {
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
        // The scope, lent to the thread for each poll of the body.
        lent: Option<Arc<Scope>>,
        open: Open,
        // The cancel has been started here (queue closed, token fired).
        cancel_seen: bool,
    }
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
        })
    })
    .as_mut()
}

impl<F, Fut, T, E> Future for Run<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
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

impl<F, Fut, T, E> Run<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
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
        let (scope, timed) = Scope::open(&config, context::current(), location);
        let scope = Arc::new(scope);
        let open = Open::new(&scope);
        // The body closure runs in the scope too: a panic there (after it
        // has spawned children, say) is the body's panic, re-raised after
        // the join.
        let mut lent = Some(scope.clone());
        let made = {
            #[cfg(feature = "tracing")]
            let _entered = scope.span.enter();
            context::enter(&mut lent, || {
                catch_unwind(AssertUnwindSafe(|| body(Nursery::new(scope.clone()))))
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
            })
        });
        self.set(Run::Open {
            running: Running {
                value: None,
                cold,
                token_cancelled,
                body,
                lent,
                open,
                cancel_seen: false,
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

impl<Fut, T, E> Running<Fut, T>
where
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    /// One poll of an open scope: watches for cancels, polls the body, and
    /// says when the body and every child have finished.
    fn poll_join(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let scope = &this.open.scope;
        // The body, and whatever the scope does on its behalf, runs in the
        // scope's span.
        #[cfg(feature = "tracing")]
        let _entered = scope.span.enter();
        scope.core.register(cx.waker());

        if let Some(cold) = this.cold {
            scope.poll_outside(cold.as_mut(), cx);
        }

        // The token cancelled directly, by whoever holds it: an outside
        // cancel. Checked again after the body yields (below), so a body that
        // cancels the token has its scope cancelled before any child it
        // spawned meanwhile gets to run on this thread.
        if !scope.core.is_cancelled() && this.token_cancelled.as_mut().poll(cx).is_ready() {
            scope.cancel_from_parent();
        }

        let mut body_yielded = false;
        loop {
            // Past the deadline the scope times out even if the timer has
            // not fired: checked before the body runs (a zero timeout) and
            // again after it returns (a body that held the thread).
            if scope.is_cancelled() {
                if !*this.cancel_seen {
                    *this.cancel_seen = true;
                    scope.start_cancel(this.cold);
                }
                if scope.core.cause().is_some_and(Reason::interrupts_body) {
                    drop_body(this.body.as_mut(), scope);
                }
            }
            if body_yielded {
                break;
            }
            let SlotProj::Live { future } = this.body.as_mut().project() else {
                break;
            };
            let polled = context::enter_inline(this.lent, || {
                catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
            });
            match polled {
                Ok(Poll::Pending) => {
                    if !scope.core.is_cancelled() && scope.token.is_cancelled() {
                        scope.cancel_from_parent();
                    }
                    if *this.cancel_seen || !scope.core.is_cancelled() {
                        break;
                    }
                    // The body cancelled the scope: start the cancel now.
                    body_yielded = true;
                }
                Ok(Poll::Ready(Ok(output))) => {
                    *this.value = Some(output);
                    drop_body(this.body.as_mut(), scope);
                }
                Ok(Poll::Ready(Err(error))) => {
                    drop_body(this.body.as_mut(), scope);
                    scope.report_error(Box::new(error), false);
                }
                Err(payload) => {
                    drop_body(this.body.as_mut(), scope);
                    scope.report_panic(payload, false);
                }
            }
            // The body's result (or the body, on its way) may have cancelled
            // the scope: go round once more to start the cancel.
        }

        if let Some(cold) = this.cold {
            scope.poll_grace(cold.as_mut(), cx);
        }
        scope.pace(this.cold, cx);

        if !matches!(*this.body, Slot::Dropped) {
            return Poll::Pending;
        }
        if scope.core.try_close() {
            return Poll::Ready(());
        }
        // Waiting for children: free the tasks of those that have ended
        // (an exit wakes the scope for it as the count halves).
        scope.release_finished();
        Poll::Pending
    }
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
            self.cancel(Reason::TimedOut);
        }
        if poll_once(cold.outside.as_mut(), cx) {
            cold.outside.set(None);
            self.cancel(Reason::Cancelled);
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

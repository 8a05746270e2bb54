//! [`LocalSet`]: the local children of one scope, owned and polled by the
//! scope's future.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};

use pin_project_lite::pin_project;

use crate::context;
use crate::core::Payload;
use crate::core::limiter::{Admission as Queueing, Job};
use crate::core::local::{Notes, Signals, Wakeup};
use crate::error::Repr;
use crate::scope::{Scope, Who};
use crate::sync::{Arc, Mutex, StdArc, lock};
use crate::task::{Deliver, Slot, SlotProj};

/// How many rounds of "take what is new, poll what was woken" one poll of
/// the scope future makes before it yields: local children that keep
/// waking each other (or spawning more) let the rest of the worker run.
const ROUNDS: usize = 32;

// ===== the shared part =====

/// What the scope future's [`LocalSet`] shares with every [`Local`]
/// handle: the scope, and the children spawned since the set last looked.
///
/// [`Local`]: crate::Local
pub(crate) struct Shared<'env> {
    pub(super) scope: Arc<Scope>,
    pub(super) signals: StdArc<Signals>,
    inbox: Mutex<Inbox<'env>>,
}

struct Inbox<'env> {
    new: Vec<New<'env>>,
    /// The scope future's waker, for a child spawned from outside its poll.
    waker: Option<Waker>,
    /// The set is gone: nothing spawned from now on will be polled.
    closed: bool,
    /// The next queued child's ticket number.
    next_ticket: u64,
}

/// A child spawned and not yet taken by the set.
struct New<'env> {
    child: Pin<Box<dyn Polled + 'env>>,
    key: usize,
    admission: Admission,
}

/// Whether a new child may run.
#[derive(Clone, Copy)]
pub(super) enum Admission {
    /// Now, holding this much of the limit (0 without one).
    Now(usize),
    /// Once its ticket in the limiter's queue comes up.
    Queued(u64),
}

impl<'env> Shared<'env> {
    pub(super) fn new(scope: Arc<Scope>) -> Shared<'env> {
        Shared {
            scope,
            signals: StdArc::new(Signals::new()),
            inbox: Mutex::new(Inbox {
                new: Vec::new(),
                waker: None,
                closed: false,
                next_ticket: 0,
            }),
        }
    }

    /// Hands a new child to the set. A queued child gets its ticket
    /// number here, from `queue`, which puts the ticket in the limiter's
    /// queue once the child is in the inbox (so the set finds the child
    /// whenever the ticket comes up). Hands the child back if the set is
    /// gone.
    pub(super) fn push(
        &self,
        child: Pin<Box<dyn Polled + 'env>>,
        key: usize,
        now: Option<usize>,
        queue: impl FnOnce(u64),
    ) -> Result<(), Pin<Box<dyn Polled + 'env>>> {
        // Spawned from outside the scope future's poll (from a parallel
        // child, say, or another thread)? Then the scope future must be
        // woken to look; inside it, it looks after the body and after each
        // round of local children anyway.
        let outside = POLLING.with(Cell::get) != self.address();
        let ticket = {
            let mut inbox = lock(&self.inbox);
            if inbox.closed {
                return Err(child);
            }
            let admission = match now {
                Some(weight) => Admission::Now(weight),
                None => {
                    inbox.next_ticket += 1;
                    Admission::Queued(inbox.next_ticket)
                }
            };
            inbox.new.push(New {
                child,
                key,
                admission,
            });
            if outside && let Some(waker) = &inbox.waker {
                waker.wake_by_ref();
            }
            admission
        };
        if let Admission::Queued(ticket) = ticket {
            queue(ticket);
        }
        Ok(())
    }

    /// Takes the children spawned since the last look, and keeps `waker`
    /// for those spawned from outside the scope future's poll.
    fn take(&self, into: &mut Vec<New<'env>>, waker: Option<&Waker>) {
        let mut inbox = lock(&self.inbox);
        if let Some(waker) = waker {
            match &inbox.waker {
                Some(current) if current.will_wake(waker) => {}
                _ => inbox.waker = Some(waker.clone()),
            }
        }
        std::mem::swap(&mut inbox.new, into);
    }

    /// What identifies this set in [`POLLING`].
    fn address(&self) -> usize {
        std::ptr::from_ref(self).cast::<()>() as usize
    }

    /// Closes the inbox and hands back what is in it.
    fn close(&self) -> Vec<New<'env>> {
        let mut inbox = lock(&self.inbox);
        inbox.closed = true;
        std::mem::take(&mut inbox.new)
    }
}

thread_local! {
    /// The set (its [`Shared::address`]) whose scope future this thread is
    /// polling now; 0 for none.
    static POLLING: Cell<usize> = const { Cell::new(0) };
}

/// Marks the thread as polling a scope future with local children until
/// dropped (then restores the mark of the scope future around it, if any).
pub(crate) struct Polling {
    outer: usize,
}

impl Drop for Polling {
    fn drop(&mut self) {
        POLLING.with(|polling| polling.set(self.outer));
    }
}

// ===== a child =====

/// A local child as the set polls it, its output type erased.
pub(crate) trait Polled: Send {
    /// Polls the child in its scope (lent in `lent`), catching its panic.
    /// Once it has ended its future is dropped in place, and its output
    /// kept for its handle, delivered when the child itself is dropped.
    fn poll_child(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        lent: &mut Option<Arc<Scope>>,
    ) -> Poll<Ended>;

    /// Drops the future in place, unless it has ended already, catching a
    /// panic from its destructor.
    fn drop_future(self: Pin<&mut Self>) -> std::thread::Result<()>;
}

/// How a local child ended, for the scope.
pub(crate) enum Ended {
    Succeeded,
    Failed(Payload),
    Panicked(Payload),
}

/// A local child's `nursery.task` span, with the `tracing` feature.
#[cfg(feature = "tracing")]
pub(crate) type ChildSpan = tracing::Span;
/// Nothing, without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
pub(crate) type ChildSpan = ();

pin_project! {
    /// A local child: the user's future, then where its output goes.
    pub(crate) struct LocalChild<F, T> {
        #[pin]
        future: Slot<F>,
        deliver: Deliver<T>,
        span: ChildSpan,
    }
}

impl<F, T> LocalChild<F, T> {
    pub(crate) fn new(future: F, deliver: Deliver<T>, span: ChildSpan) -> LocalChild<F, T> {
        LocalChild {
            future: Slot::Live { future },
            deliver,
            span,
        }
    }
}

impl<F, T, E> Polled for LocalChild<F, T>
where
    F: Future<Output = Result<T, E>> + Send,
    T: Send,
    E: Send + 'static,
{
    fn poll_child(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        lent: &mut Option<Arc<Scope>>,
    ) -> Poll<Ended> {
        let this = self.project();
        let mut slot = this.future;
        let SlotProj::Live { future } = slot.as_mut().project() else {
            panic!("nursery: a local child polled after it ended");
        };
        #[cfg(feature = "tracing")]
        let _entered = this.span.enter();
        let polled = context::enter(lent, || catch_unwind(AssertUnwindSafe(|| future.poll(cx))));
        let (ended, output) = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(value))) => (Ended::Succeeded, Ok(value)),
            Ok(Poll::Ready(Err(error))) => {
                #[cfg(feature = "tracing")]
                crate::observe::child_failed(
                    this.span,
                    &error,
                    lent.as_deref().and_then(|scope| scope.display_error),
                );
                (Ended::Failed(Box::new(error)), Err(Repr::Failed))
            }
            Err(payload) => {
                #[cfg(feature = "tracing")]
                crate::observe::child_panicked(this.span, &*payload);
                (Ended::Panicked(payload), Err(Repr::Panicked))
            }
        };
        this.deliver.keep(output);
        match (slot.drop_future(), ended) {
            // Its destructor panicked: that panic is the child's.
            (Err(payload), Ended::Succeeded) => Poll::Ready(Ended::Panicked(payload)),
            (_, ended) => Poll::Ready(ended),
        }
    }

    fn drop_future(self: Pin<&mut Self>) -> std::thread::Result<()> {
        self.project().future.drop_future()
    }
}

// ===== wakers =====

/// The waker of one slot of the set: notes the slot and wakes the scope
/// future. Made once per slot and kept while the set lives: a slot's next
/// child reuses it (a stale wake from the last one only polls the new one
/// once for nothing).
struct SlotWaker {
    slot: usize,
    wakeup: Wakeup,
    signals: StdArc<Signals>,
}

impl Wake for SlotWaker {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.wakeup.wake(self.slot, &self.signals);
    }
}

/// The ticket a queued local child holds in the limiter's queue. Started,
/// it tells the set to run the child; dropped unstarted (the queue closed),
/// that the child will never run.
struct Ticket {
    number: u64,
    signals: StdArc<Signals>,
    started: bool,
}

impl Job for Ticket {
    fn start(mut self: Box<Self>, weight: usize) {
        self.started = true;
        self.signals.admitted(self.number, weight);
    }

    fn poll_job(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        unreachable!("nursery: a local child's ticket is started, never run in place")
    }

    fn runs_in_place(&self) -> bool {
        false
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.started {
            self.signals.refused(self.number);
        }
    }
}

/// Puts a ticket for a queued child in the limiter's queue.
pub(super) fn queue_ticket(scope: &Scope, weight: usize, number: u64, signals: &StdArc<Signals>) {
    let Some(limiter) = scope.core.limiter() else {
        return;
    };
    let ticket: Box<dyn Job> = Box::new(Ticket {
        number,
        signals: signals.clone(),
        started: false,
    });
    match limiter.admit_or_queue(weight, ticket, scope.clock()) {
        // Held back by the rate, perhaps: the scope keeps the timer.
        Queueing::Queued if limiter.is_paced() => scope.core.wake(),
        Queueing::Queued => {}
        Queueing::Run(ticket) => ticket.start(weight),
        // Cancelled meanwhile: the dropped ticket refuses the child.
        Queueing::Closed(ticket) => drop(ticket),
    }
}

// ===== LocalSet =====

/// The local children of one scope, owned by its future (so that they may
/// borrow what outlives the scope call), polled by it on every poll, each
/// only when its waker fired.
pub(crate) struct LocalSet<'env> {
    shared: StdArc<Shared<'env>>,
    slots: Vec<Entry<'env>>,
    /// Slots free for the next child.
    free: Vec<usize>,
    /// Children waiting for room under the limit, in spawn order.
    queued: VecDeque<(u64, New<'env>)>,
    /// Weight granted to tickets whose child the set has not taken yet.
    early: Vec<(u64, usize)>,
    /// Tickets refused (the queue closed) whose child the set has not
    /// taken yet: the child ends as it is taken.
    refused_early: Vec<u64>,
    /// The last ticket number taken from the inbox (they are taken in
    /// order).
    taken_up_to: u64,
    /// Children alive, running or queued.
    live: usize,
    // Kept between polls, so that a poll allocates nothing.
    notes: Notes,
    new: Vec<New<'env>>,
    due: Vec<usize>,
    /// The registry keys of the children admitted under the limit this
    /// round, and of those that ended, for the registry at its end.
    admitted: Vec<usize>,
    ended: Vec<usize>,
}

/// One slot: the child in it, if any, and the slot's waker.
struct Entry<'env> {
    child: Option<Running<'env>>,
    node: StdArc<SlotWaker>,
    waker: Waker,
}

/// A child that holds its place under the limit.
struct Running<'env> {
    child: Pin<Box<dyn Polled + 'env>>,
    key: usize,
    weight: usize,
}

impl<'env> LocalSet<'env> {
    pub(crate) fn new(scope: Arc<Scope>) -> LocalSet<'env> {
        LocalSet {
            shared: StdArc::new(Shared::new(scope)),
            slots: Vec::new(),
            free: Vec::new(),
            queued: VecDeque::new(),
            early: Vec::new(),
            refused_early: Vec::new(),
            taken_up_to: 0,
            live: 0,
            notes: Notes::default(),
            new: Vec::new(),
            due: Vec::new(),
            admitted: Vec::new(),
            ended: Vec::new(),
        }
    }

    /// Marks the thread as polling this set's scope future: a child spawned
    /// meanwhile needs no wake-up, as the set looks for it before the poll
    /// ends.
    pub(crate) fn polling(&self) -> Polling {
        let address = self.shared.address();
        Polling {
            outer: POLLING.with(|polling| polling.replace(address)),
        }
    }

    /// What the [`Local`](crate::Local) handles hold.
    pub(crate) fn shared(&self) -> &StdArc<Shared<'env>> {
        &self.shared
    }

    /// One poll: takes the children spawned and the notes left since the
    /// last one, and polls the children that were woken, in rounds until
    /// nothing new is left (or [`ROUNDS`] have run). If the scope's
    /// children are aborted, drops them all instead.
    pub(crate) fn poll(
        &mut self,
        scope: &Scope,
        lent: &mut Option<Arc<Scope>>,
        cx: &mut Context<'_>,
    ) {
        self.shared.signals.register(cx.waker());
        for round in 0..ROUNDS {
            self.shared
                .take(&mut self.new, (round == 0).then(|| cx.waker()));
            self.shared.signals.take(&mut self.notes);
            let quiet = self.new.is_empty() && self.notes.is_empty();
            let abort = self.live + self.new.len() > 0 && scope.children_aborted();
            if quiet && !abort {
                return;
            }
            self.due.clear();
            self.take_notes(scope);
            // Once aborted, the scope refuses new children; those inside a
            // shield run on.
            let dropped = abort && self.abort(scope);
            if !abort {
                self.take_new(scope, Some(&mut *lent));
            }
            self.poll_due(scope, lent);
            scope.update_locals(&mut self.admitted, &mut self.ended);
            if quiet && !dropped {
                return;
            }
        }
        // More is due: let the rest of the worker run first.
        cx.waker().wake_by_ref();
    }

    /// Takes the children spawned since the last look. Those that may run
    /// are polled at once if `lent` is given (so that a child that ends at
    /// its first poll leaves its slot, and the slot's waker, to the next),
    /// else marked due.
    fn take_new(&mut self, scope: &Scope, mut lent: Option<&mut Option<Arc<Scope>>>) {
        let mut new = std::mem::take(&mut self.new);
        for child in new.drain(..) {
            self.live += 1;
            match child.admission {
                Admission::Now(weight) => {
                    let slot = self.place(child.child, child.key, weight);
                    match lent.as_deref_mut() {
                        Some(lent) => self.poll_slot(slot, scope, lent),
                        None => self.due.push(slot),
                    }
                }
                Admission::Queued(ticket) => {
                    self.taken_up_to = ticket;
                    if let Some(at) = self.refused_early.iter().position(|&early| early == ticket) {
                        self.refused_early.swap_remove(at);
                        self.end(scope, child.child, child.key, 0);
                    } else if let Some(at) =
                        self.early.iter().position(|&(early, _)| early == ticket)
                    {
                        let (_, weight) = self.early.swap_remove(at);
                        self.admitted.push(child.key);
                        let slot = self.place(child.child, child.key, weight);
                        self.due.push(slot);
                    } else {
                        self.queued.push_back((ticket, child));
                    }
                }
            }
        }
        self.new = new;
    }

    fn take_notes(&mut self, scope: &Scope) {
        let notes = std::mem::take(&mut self.notes);
        for &(ticket, weight) in &notes.admitted {
            match self.queued.iter().position(|(queued, _)| *queued == ticket) {
                Some(at) => {
                    let (_, child) = self.queued.remove(at).expect("found just above");
                    self.admitted.push(child.key);
                    let slot = self.place(child.child, child.key, weight);
                    self.due.push(slot);
                }
                // Spawned from another thread, and still in the inbox:
                // keep the weight for it until it is taken.
                None if ticket > self.taken_up_to => self.early.push((ticket, weight)),
                // Its child has been dropped: give the weight back.
                None => scope.release(weight),
            }
        }
        for &ticket in &notes.refused {
            if let Some(at) = self.queued.iter().position(|(queued, _)| *queued == ticket) {
                let (_, child) = self.queued.remove(at).expect("found just above");
                self.end(scope, child.child, child.key, 0);
            } else if ticket > self.taken_up_to {
                // Still in the inbox (refused as soon as it was queued):
                // it ends as it is taken.
                self.refused_early.push(ticket);
            }
        }
        self.due.extend_from_slice(&notes.woken);
        self.notes = notes;
    }

    /// Puts a child that may run in a free slot; returns the slot.
    fn place(&mut self, child: Pin<Box<dyn Polled + 'env>>, key: usize, weight: usize) -> usize {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.slots.len();
                let node = StdArc::new(SlotWaker {
                    slot,
                    wakeup: Wakeup::new(),
                    signals: self.shared.signals.clone(),
                });
                let waker = Waker::from(node.clone());
                self.slots.push(Entry {
                    child: None,
                    node,
                    waker,
                });
                slot
            }
        };
        self.slots[slot].child = Some(Running { child, key, weight });
        slot
    }

    /// Polls the children due, in the order they became due.
    fn poll_due(&mut self, scope: &Scope, lent: &mut Option<Arc<Scope>>) {
        let due = std::mem::take(&mut self.due);
        for &slot in &due {
            self.poll_slot(slot, scope, lent);
        }
        self.due = due;
    }

    /// Polls the child in `slot`, if there is one (a stale wake may name a
    /// slot since emptied), and ends it if it is done.
    fn poll_slot(&mut self, slot: usize, scope: &Scope, lent: &mut Option<Arc<Scope>>) {
        let entry = &mut self.slots[slot];
        let Some(running) = entry.child.as_mut() else {
            return;
        };
        entry.node.wakeup.clear();
        let mut cx = Context::from_waker(&entry.waker);
        let key = running.key;
        let polled = context::local(key, || running.child.as_mut().poll_child(&mut cx, lent));
        let Poll::Ready(ended) = polled else {
            return;
        };
        let Running { child, key, weight } = entry.child.take().expect("polled just above");
        self.free.push(slot);
        match ended {
            Ended::Succeeded => scope.child_succeeded(),
            Ended::Failed(error) => report(scope, key, |who| scope.report_local_error(error, who)),
            Ended::Panicked(payload) => {
                report(scope, key, |who| scope.report_local_panic(payload, who));
            }
        }
        self.end(scope, child, key, weight);
    }

    /// A child has ended (or is dropped unfinished): drops its future if
    /// it has not ended, gives its weight back, forgets it and counts it
    /// out, then drops the rest, which delivers its output to its handle,
    /// or `Cancelled`. A panic from its future's destructor is the child's
    /// panic.
    fn end(
        &mut self,
        scope: &Scope,
        mut child: Pin<Box<dyn Polled + 'env>>,
        key: usize,
        weight: usize,
    ) {
        self.live -= 1;
        if let Err(payload) = child.as_mut().drop_future() {
            report(scope, key, |who| scope.report_local_panic(payload, who));
        }
        if weight > 0 {
            scope.release(weight);
        }
        // Forgotten by the registry with the others that end in the same
        // pass of the set.
        self.ended.push(key);
        scope.child_exited();
        drop(child);
    }

    /// Drops every child, running or queued, but those inside a shield:
    /// the scope has aborted its children (G6: their grace is over).
    /// Returns whether it dropped any.
    fn abort(&mut self, scope: &Scope) -> bool {
        let live = self.live;
        self.take_new(scope, None);
        for slot in 0..self.slots.len() {
            // A child inside a shield runs on until it leaves it (which
            // wakes the scope future for another abort).
            let spared = |running: &Running<'_>| scope.shields.is_inside(Who::Local(running.key));
            if self.slots[slot].child.as_ref().is_some_and(spared) {
                continue;
            }
            if let Some(Running { child, key, weight }) = self.slots[slot].child.take() {
                self.free.push(slot);
                self.end(scope, child, key, weight);
            }
        }
        while let Some((_, child)) = self.queued.pop_front() {
            self.end(scope, child.child, child.key, 0);
        }
        self.live < live
    }
}

/// Reports a local child's failure with its identity from the registry.
fn report(scope: &Scope, key: usize, with: impl FnOnce(&crate::id::TaskInfo)) {
    let who = scope
        .local_info(key)
        .unwrap_or_else(|| crate::id::TaskInfo::new(None, scope.location));
    with(&who);
}

impl Drop for LocalSet<'_> {
    /// The scope future is dropped (G7), or has finished: closes the inbox,
    /// then drops every child at once. A panic from a child's destructor is
    /// re-raised once all are dropped, as the body's would be.
    fn drop(&mut self) {
        let scope = self.shared.scope.clone();
        let mut late = self.shared.close();
        self.new.append(&mut late);
        let mut first = None;
        let mut ended = std::mem::take(&mut self.ended);
        // Weight is not given back: the scope is closing (or being dropped,
        // which closes its queue), and nothing queued may start now.
        let mut drop_child = |mut child: Pin<Box<dyn Polled + '_>>, key: usize| {
            if let Err(payload) = child.as_mut().drop_future() {
                if first.is_none() && !std::thread::panicking() {
                    first = Some(payload);
                } else {
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                }
            }
            ended.push(key);
            scope.child_exited();
            drop(child);
        };
        for entry in &mut self.slots {
            if let Some(Running { child, key, .. }) = entry.child.take() {
                drop_child(child, key);
            }
        }
        for (_, child) in self.queued.drain(..) {
            drop_child(child.child, child.key);
        }
        for child in self.new.drain(..) {
            drop_child(child.child, child.key);
        }
        scope.update_locals(&mut Vec::new(), &mut ended);
        if let Some(payload) = first {
            resume_unwind(payload);
        }
    }
}

impl fmt::Debug for LocalSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSet")
            .field("live", &self.live)
            .field("queued", &self.queued.len())
            .finish_non_exhaustive()
    }
}

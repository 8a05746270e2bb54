//! The drop protocol (G7), and what happens after a scope is dropped: its children get a leak-grace
//! window to end, then those still alive are reported as leaks; a panic no
//! scope can re-raise is reported as lost; a large list of ended tasks is
//! freed off the runtime's threads.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::cause::Cause;
use crate::clock::Stamp;
use crate::core::{Payload, Reason};
use crate::id::TaskInfo;
use crate::leak::{Leak, report};
use crate::scope::{Registry, Scope};
use crate::snapshot::{TaskSnapshot, TaskState};
use crate::sync::{Arc, Ordering, Weak, lock};
use crate::timer::{self, Job};

/// Reports a panic that no scope can re-raise any more: it happened in a
/// task of the dropped scope `origin` (the task `who`, when known), and no
/// enclosing scope is left running.
pub(crate) fn lost_panic(origin: &Scope, payload: Payload, who: Option<TaskInfo>) {
    let message: std::sync::Arc<str> = payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>")
        .into();
    // The payload's own destructor is user code too.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)));
    let now = Stamp::now();
    let dropped = (*lock(&origin.dropped_at)).unwrap_or(now);
    let (name, location) = match who {
        Some(who) => (who.name, who.location),
        None => (None, origin.location),
    };
    let info = TaskInfo::new(name, location);
    let path = origin.path();
    report(Leak::new(
        TaskSnapshot::new(&info, None, TaskState::Cancelling, &path, now),
        dropped.until(now),
        origin.rt.id(),
        Some(message),
    ));
}

/// Checks the dropped `scope` again once `grace` has passed, and reports
/// its own tasks still alive then. (A scope dropped inside it was dropped
/// too, and has a check of its own.)
///
/// The check holds the scope weakly: a dropped scope whose children have
/// all ended is freed at once, with its children's tasks, rather than a
/// leak-grace window later.
pub(crate) fn watch_dropped(scope: &Arc<Scope>, grace: Duration) {
    let check = CheckDropped {
        scope: Weak::new(scope),
        dropped: Instant::now(),
    };
    timer::schedule(grace, Box::new(check));
}

/// The check of a dropped scope, due once its leak grace has passed.
struct CheckDropped {
    scope: Weak<Scope>,
    dropped: Instant,
}

impl Job for CheckDropped {
    fn run(self: Box<Self>) {
        // A dropped scope leaves the tree when its last child has ended,
        // which is by far the common case by now: then there is nothing to
        // report, and no path to build.
        if let Some(scope) = self.scope.upgrade() {
            check_dropped(&scope, self.dropped);
        }
    }

    fn is_wanted(&self) -> bool {
        self.scope.is_alive()
    }
}

fn check_dropped(scope: &Scope, dropped: Instant) {
    if !scope.is_registered() {
        return;
    }
    let after = dropped.elapsed();
    let runtime = scope.rt.id();
    let (tasks, _) = scope.live_tasks(Stamp::now(), &scope.path());
    for task in tasks {
        report(Leak::new(task, after, runtime, None));
    }
}

/// Drops `registry` (and with it the last references to its children's
/// tokio tasks) on the watcher's thread, as soon as it gets to it.
pub(crate) fn free_soon(registry: Registry) {
    timer::schedule(Duration::ZERO, Box::new(registry));
}

/// A dropped scope's registry: running the job drops it.
impl Job for Registry {
    fn run(self: Box<Self>) {
        drop(self);
    }
}

/// Up to this many tasks of a dropped scope are freed where its last
/// child ends; more on the leak watcher's thread.
const FREE_INLINE: usize = 64;

impl Scope {
    /// The last child of a dropped scope has ended: hand a panic that
    /// happened under it to the parent it held, release that parent and
    /// leave the tree.
    ///
    /// A dropped scope never returns, so it cannot re-raise a panic of its
    /// children; its parent does, as if the panic were its own child's
    /// (G3): an inner scope dropped because its parent was cancelled (a
    /// sibling failed, say) may hold a panic that happened before that
    /// failure. The parent has not joined yet: this scope still holds it.
    ///
    /// Releasing the parent can finish the parent in turn (it was dropped
    /// too, and this scope held its last unit), and so on up a chain of
    /// nested scopes of any depth: a loop, not recursion, so the depth
    /// costs no stack.
    pub(super) fn finish_dropped(&self) {
        let mut scope = self;
        loop {
            let parent = scope.release_parent();
            scope.unregister();
            scope.release_tasks_elsewhere();
            timer::job_ended();
            match parent {
                Some(parent) => scope = parent,
                None => return,
            }
        }
    }

    /// Hands a panic kept by this dropped scope on (see
    /// [`Scope::hand_on_panic`]) and releases the parent it held. Returns
    /// the parent if this was its last unit: it was dropped as well and is
    /// now done.
    pub(super) fn release_parent(&self) -> Option<&Scope> {
        let held = self.holds_parent.swap(false, Ordering::AcqRel);
        let outcome = self.core.take_outcome();
        if let Some(payload) = outcome.panic {
            // Not a child of the parent's own: reported as the parent's
            // body would be (no task to name). Without a held parent
            // nobody re-raises it: it is reported as lost.
            let who = lock(&self.why).as_ref().and_then(Cause::panicked_task);
            self.hand_on_panic(payload, who, held);
        }
        // Errors kept before the drop: their destructors are user code,
        // run here rather than wherever the scope's memory is freed.
        for error in outcome.errors {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(error))) {
                self.hand_on_panic(payload, None, held);
            }
        }
        let parent = self.parent.as_deref().filter(|_| held)?;
        parent.core.exit().then_some(parent)
    }

    /// Passes the panic of a dropped scope's task (`who`, if known) to
    /// the nearest enclosing scope that can still re-raise it: up through
    /// dropped scopes that hold their parent, to the first that has not
    /// been dropped. With none, the panic can never be re-raised, and is
    /// reported as a lost panic ([`Leak::panic`](crate::Leak::panic)),
    /// through the leak hook and to the leak checks.
    ///
    /// `held`: whether this scope (dropped) holds its parent.
    pub(super) fn hand_on_panic(&self, payload: Payload, who: Option<TaskInfo>, held: bool) {
        let mut scope = self;
        let mut held = held;
        loop {
            match scope.parent.as_deref() {
                Some(parent) if held => {
                    if !parent.is_dropped() {
                        return parent.record_panic(payload, true, || None);
                    }
                    held = parent.holds_parent.load(Ordering::Acquire);
                    scope = parent;
                }
                _ => return lost_panic(self, payload, who),
            }
        }
    }

    /// The scope future was dropped before finishing (G7): cancel and abort
    /// everything at once, and make the parent wait for the children that
    /// are still being torn down (G1 is transitive). Never blocks.
    pub(crate) fn abandon(&self) {
        let cancelling = self
            .core
            .cancel_with(Reason::Dropped, |_| self.set_why(Cause::Cancelled));
        // Abort before the token fires, so that no child is woken into its
        // cancellation path by a token it will never get to act on.
        self.abort_tree();
        self.cancelling(cancelling);
        if let Some(parent) = &self.parent {
            match parent.core.enter_hold() {
                Ok(()) => self.holds_parent.store(true, Ordering::Release),
                Err(last) => {
                    if last {
                        parent.finish_dropped();
                    }
                }
            }
        }
        *lock(&self.dropped_at) = Some(Stamp::now());
        // After `holds_parent` is settled: a panic reported from here on
        // is handed on at once, to the parent if it is held.
        self.dropped.store(true, Ordering::Release);
        if self.core.abandon() {
            self.finish_dropped();
        }
    }

    /// Every child of a dropped scope has ended: their tokio tasks can go.
    /// A large list is freed on the leak watcher's thread, soon: the last
    /// child ends on a runtime thread, which need not pay for freeing the
    /// tasks of every sibling (10,000 of them take about a millisecond).
    pub(super) fn release_tasks_elsewhere(&self) {
        let registry = {
            let mut registry = lock(&self.registry);
            let closed = registry.closed();
            std::mem::replace(&mut *registry, closed)
        };
        if registry.len() > FREE_INLINE {
            free_soon(registry);
        }
    }
}

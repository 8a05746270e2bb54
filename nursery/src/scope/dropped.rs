//! What happens after a scope is dropped: its children get a leak-grace
//! window to end, then those still alive are reported as leaks; a panic no
//! scope can re-raise is reported as lost; a large list of ended tasks is
//! freed off the runtime's threads.

use std::time::{Duration, Instant};

use crate::clock::Stamp;
use crate::core::Payload;
use crate::id::TaskInfo;
use crate::leak::{Leak, report};
use crate::scope::{Registry, Scope};
use crate::snapshot::{TaskSnapshot, TaskState};
use crate::sync::{Arc, Weak, lock};
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

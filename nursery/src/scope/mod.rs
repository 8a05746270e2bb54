//! [`Scope`]: the shared state of one open scope — the [`Core`] plus what
//! tokio needs — and what it does: count children in and out, decide a
//! cancel and carry it down the tree, and tear down after a drop.

mod cancel;
mod config;
mod deadline;
mod dropped;
mod registry;
mod tree;

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use self::config::{Config, DEFAULT_LEAK_GRACE, DisplayError, earliest};
use self::deadline::Deadline;
use crate::core::shield::Shields;

/// Who is inside a shield: a child on a task of its own (or the runner
/// running it), a local child by its registry key, or the scope's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Who {
    Task(tokio::task::Id),
    Local(usize),
    Body,
}
pub(crate) use self::dropped::watch_dropped;
pub(crate) use self::registry::{Current, Registry};
pub(crate) use self::tree::{ScopeList, prune_dead_roots, roots};
use crate::cause::Cause;
use crate::clock::Stamp;
use crate::core::{Core, Refusal};
use crate::error::SpawnErrorKind;
use crate::id::{Name, TaskInfo};
use crate::snapshot::{TaskSnapshot, TaskState};
use crate::stats::Stats;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering, lock};

// ===== Scope =====

/// The shared state of one open scope: the [`Core`] plus the tokio glue.
///
/// `repr(C)` with the core first: its count (and the success counter
/// beside it) then sit right after the `Arc`'s reference counts, in 32
/// bytes that share one cache line for three of the four 16-byte-aligned
/// places the allocator can put them. A child's spawn and exit write both
/// the count and the `Arc`'s count; left to the compiler, the tokio handle
/// came first and the two were a line apart half of the time.
#[repr(C)]
pub(crate) struct Scope {
    pub(crate) core: Core,
    pub(crate) token: CancellationToken,
    pub(crate) rt: Handle,
    /// The effective deadline: the earliest of the scope's own and its
    /// ancestors'. Moves with [`Scope::set_deadline`], here or above.
    deadline: Deadline,
    /// The scope's own deadline, from its settings or
    /// [`Scope::set_deadline`].
    own_deadline: Deadline,
    /// A deadline moved: the scope future must set its timer again.
    deadline_moved: AtomicBool,
    /// The children (and body) inside a shield now.
    pub(crate) shields: Shields<Who>,
    /// Opened inside a shield: cancels and deadlines from above do not
    /// reach it (a drop of the scope above still does).
    pub(crate) shielded: bool,
    /// What of the parent runs this scope: a shield in here protects that
    /// from the parent's abort too.
    pub(crate) hosted_as: Option<Who>,
    pub(crate) name: Option<Name>,
    /// Where and when the scope was opened, and in which tokio task.
    pub(crate) location: &'static Location<'static>,
    pub(crate) opened: Stamp,
    pub(crate) host: Option<tokio::task::Id>,
    /// The scope's zero on tokio's clock, for the rate's times.
    pub(crate) epoch: Instant,
    /// How long children get to stop by themselves once cancelled.
    pub(crate) grace: Duration,
    /// How long children of a dropped scope get before they are leaks.
    pub(crate) leak_grace: Duration,
    /// How long the scope waits for its children before it reports itself
    /// stuck; `None`: never.
    pub(crate) warn_after: Option<Duration>,
    /// The scope's key in its parent's list of open scopes (or in the list
    /// of roots); `usize::MAX` once it is done and unregistered.
    key: AtomicUsize,
    /// The future was dropped before the join completed.
    dropped: AtomicBool,
    /// When it was dropped, for the reports of what outlived it.
    pub(crate) dropped_at: Mutex<Option<Stamp>>,
    /// When dropped, it took a unit of its parent's count (G1 transitive),
    /// released when its last child ends.
    holds_parent: AtomicBool,
    /// [`Scope::abort_tree`] has gone through this scope and everything
    /// open below it: nobody needs to again.
    tree_aborted: AtomicBool,
    /// The scope that was current when this one opened.
    parent: Option<Arc<Scope>>,
    /// How many scopes this one is inside: 0 for a root.
    depth: usize,
    /// For a scope deep enough for its [path](Scope::path) to elide names,
    /// the innermost of the outermost scopes the path names (an ancestor,
    /// which the chain of parents holds anyway): the path's first names
    /// are a few steps up from it, rather than at the end of a walk up the
    /// whole chain.
    path_anchor: Option<Arc<Scope>>,
    /// The scopes open inside this one (in its body or its children): a
    /// cancel reaches their cores before any of their children can observe
    /// the token, so none of them starts a child after the cancel.
    scopes: Mutex<ScopeList>,
    registry: Mutex<Registry>,
    /// Why the scope was cancelled, as its tasks see it: written once the
    /// core has decided (under the core's outcome lock, before the scope
    /// reads as cancelled anywhere), so a reader that sees the scope
    /// cancelled finds it. Nothing is written while the scope runs
    /// undisturbed.
    why: Mutex<Option<Cause>>,
    /// The scope's `nursery.scope` span: the parent of its children's spans.
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
    /// From [`Builder::trace_errors`](crate::Builder::trace_errors), or inherited.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) display_error: Option<DisplayError>,
}

impl Scope {
    /// Opens a scope under the current one; also returns the scope's own
    /// deadline (before inheritance), which it must time itself.
    /// `shielded`: the scope opens inside a shield, which cancels from
    /// above do not cross. `hosted_as`: what of the parent runs the scope
    /// (its body, a local child, a child task).
    pub(crate) fn open(
        config: &Config,
        parent: Option<Arc<Scope>>,
        shielded: bool,
        hosted_as: Option<Who>,
        location: &'static Location<'static>,
    ) -> (Scope, Option<Instant>) {
        let rt = Handle::try_current()
            .unwrap_or_else(|_| panic!("nursery: no tokio runtime: scopes must run inside one"));
        let own = config.own_deadline();
        // Inside a shield, nothing from above cancels the scope: neither
        // the parent's token nor its deadline.
        let shielded = parent.is_some() && shielded;
        let inherited = parent
            .as_ref()
            .filter(|_| !shielded)
            .and_then(|parent| parent.deadline());
        let token = match &parent {
            Some(parent) if !shielded => parent.token.child_token(),
            _ => CancellationToken::new(),
        };
        // The inherited deadline needs no timer here: the ancestor that owns
        // it cancels this scope through the token.
        let timed = own.filter(|&own| inherited.is_none_or(|inherited| own < inherited));
        let deadline = earliest(own, inherited);
        // Parented to the current span: that of the task (or body) the scope
        // opens in, so nested scopes show as a tree.
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!(
            "nursery.scope",
            name = config.name.as_ref().map(Name::as_str),
            limit = config.limit,
            deadline = deadline.map(|at| tracing::field::debug(at.into_std())),
            location = %location,
        );
        let epoch = Instant::now();
        let scope = Scope {
            core: Core::new(config.fail_fast, config.limit, config.rate)
                .cap_suppressed(config.max_suppressed),
            token,
            rt,
            deadline: Deadline::new(deadline, epoch),
            own_deadline: Deadline::new(own, epoch),
            deadline_moved: AtomicBool::new(false),
            shields: Shields::new(),
            shielded,
            hosted_as: hosted_as.filter(|_| parent.is_some()),
            name: config.name.clone(),
            location,
            opened: Stamp::now(),
            host: tokio::task::try_id(),
            epoch,
            grace: config
                .grace
                .or(parent.as_ref().map(|parent| parent.grace))
                .unwrap_or(Duration::ZERO),
            leak_grace: config
                .leak_grace
                .or(parent.as_ref().map(|parent| parent.leak_grace))
                .unwrap_or(DEFAULT_LEAK_GRACE),
            warn_after: config
                .warn_after
                .or(parent.as_ref().and_then(|parent| parent.warn_after)),
            display_error: config
                .display_error
                .or(parent.as_ref().and_then(|parent| parent.display_error)),
            key: AtomicUsize::new(usize::MAX),
            dropped: AtomicBool::new(false),
            dropped_at: Mutex::new(None),
            holds_parent: AtomicBool::new(false),
            tree_aborted: AtomicBool::new(false),
            depth: parent.as_ref().map_or(0, |parent| parent.depth + 1),
            path_anchor: parent.as_deref().and_then(Scope::path_anchor_below),
            parent,
            scopes: Mutex::new(ScopeList::default()),
            registry: Mutex::new(Registry::new()),
            why: Mutex::new(None),
            #[cfg(feature = "tracing")]
            span,
        };
        (scope, timed)
    }

    // ----- children -----

    /// Counts a new child in; see [`Core::enter`].
    pub(crate) fn enter(&self) -> Result<(), SpawnErrorKind> {
        match self.core.enter() {
            Ok(()) => Ok(()),
            Err((refusal, last)) => {
                if last {
                    self.finish_dropped();
                }
                Err(match refusal {
                    Refusal::Cancelled => SpawnErrorKind::Cancelled,
                    Refusal::Closed => SpawnErrorKind::Closed,
                })
            }
        }
    }

    /// Nanoseconds since the scope opened, on tokio's clock, for a paced
    /// limiter; 0 (and no clock read) otherwise.
    pub(crate) fn clock(&self) -> u64 {
        match self.core.limiter() {
            Some(limiter) if limiter.is_paced() => {
                u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
            }
            _ => 0,
        }
    }

    /// Records a started child, so it can be aborted and reported.
    pub(crate) fn register(&self, abort: AbortHandle, info: &TaskInfo, blocking: bool) {
        lock(&self.registry).push(abort, info, blocking, || self.core.live());
    }

    /// Records a local child (see [`Registry::push_local`]).
    pub(crate) fn register_local(&self, info: TaskInfo, queued: bool) -> usize {
        lock(&self.registry).push_local(info, queued)
    }

    /// The local children `admitted` left the queue and run now, and the
    /// local children `ended` have ended; empties both, under one lock.
    pub(crate) fn update_locals(&self, admitted: &mut Vec<usize>, ended: &mut Vec<usize>) {
        if admitted.is_empty() && ended.is_empty() {
            return;
        }
        let mut registry = lock(&self.registry);
        for key in admitted.drain(..) {
            registry.local_admitted(key);
        }
        for key in ended.drain(..) {
            registry.remove_local(key);
        }
    }

    /// Who the local child `key` is.
    pub(crate) fn local_info(&self, key: usize) -> Option<TaskInfo> {
        lock(&self.registry).local(key)
    }

    /// Whether the scope's children are to be dropped now: it was cancelled
    /// and their grace, if any, is over.
    pub(crate) fn children_aborted(&self) -> bool {
        self.core.is_cancelled() && lock(&self.registry).is_aborted()
    }

    /// Lets go of the tasks of children that have ended; see
    /// [`Registry::release_finished`].
    pub(crate) fn release_finished(&self) {
        lock(&self.registry).release_finished();
    }

    /// Records a runner task, whose current child `current` tells.
    pub(crate) fn register_runner(&self, abort: AbortHandle, current: Arc<Current>) {
        lock(&self.registry).push_runner(abort, current);
    }

    /// This scope's own live tasks (started, then queued), as snapshots
    /// taken at `now` under the scope path `path`, and how many of them are
    /// tokio tasks (not on the blocking pool).
    pub(crate) fn live_tasks(&self, now: Stamp, path: &str) -> (Vec<TaskSnapshot>, usize) {
        let running = if self.core.is_cancelled() {
            TaskState::Cancelling
        } else {
            TaskState::Running
        };
        let mut async_tasks = 0;
        let any_shielded = self.shields.count() > 0;
        let state_of = |who: Who| {
            if any_shielded && self.shields.is_inside(who) {
                TaskState::Shielded
            } else {
                running
            }
        };
        let registry = lock(&self.registry);
        let mut tasks: Vec<TaskSnapshot> = registry
            .live()
            .filter_map(|(info, id, blocking)| {
                async_tasks += usize::from(!blocking);
                let state = state_of(Who::Task(id));
                let task = info.map(|info| TaskSnapshot::new(&info, Some(id), state, path, now));
                task.map(|task| task.blocking(blocking))
            })
            .collect();
        tasks.extend(registry.live_locals().map(|(key, info, queued)| {
            let state = if queued {
                TaskState::Queued
            } else {
                state_of(Who::Local(key))
            };
            TaskSnapshot::new(info, None, state, path, now).local()
        }));
        drop(registry);
        if let Some(limiter) = self.core.limiter() {
            limiter.for_each_queued(|info| {
                tasks.push(TaskSnapshot::new(info, None, TaskState::Queued, path, now));
            });
        }
        (tasks, async_tasks)
    }

    /// The scopes open inside this one.
    pub(crate) fn inner_scopes(&self) -> Vec<Arc<Scope>> {
        lock(&self.scopes).open()
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// A child's future (or closure) has been dropped.
    pub(crate) fn child_exited(&self) {
        self.exit();
    }

    fn exit(&self) {
        if self.core.exit() {
            self.finish_dropped();
        }
    }

    /// Enters the scope in its parent's list of open scopes (or the roots).
    pub(crate) fn register_open(scope: &Arc<Scope>) {
        let key = match &scope.parent {
            Some(parent) => parent.adopt(scope),
            None => tree::add_root(scope),
        };
        scope.key.store(key, Ordering::Release);
    }

    /// Leaves the tree: the scope has closed, or it was dropped and its
    /// last child has ended. Idempotent.
    pub(crate) fn unregister(&self) {
        let key = self.key.swap(usize::MAX, Ordering::AcqRel);
        if key == usize::MAX {
            return;
        }
        match &self.parent {
            Some(parent) => parent.disown(key),
            None => tree::remove_root(key),
        }
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.key.load(Ordering::Acquire) != usize::MAX
    }

    /// A child completed successfully.
    pub(crate) fn child_succeeded(&self) {
        self.core.child_succeeded();
    }

    /// What [`Nursery::stats`] reports.
    pub(crate) fn stats(&self) -> Stats {
        let counts = self.core.counts();
        let live = self.core.live();
        let (spawned, queued) = match self.core.limiter() {
            Some(limiter) => limiter.spawned_and_queued(),
            None => (lock(&self.registry).pushed(), 0),
        };
        Stats {
            shielded: self.shields.count(),
            ..Stats::new(spawned, queued, live, counts)
        }
    }

    /// The scope that was current when this one opened.
    pub(crate) fn parent(&self) -> Option<&Arc<Scope>> {
        self.parent.as_ref()
    }

    // ----- deadlines -----

    /// The effective deadline: the earliest of the scope's own and its
    /// ancestors', as they are now.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline.get(self.epoch)
    }

    /// Whether the effective deadline has passed.
    pub(crate) fn deadline_passed(&self) -> bool {
        self.deadline.passed(self.epoch, Instant::now())
    }

    /// Moves the scope's own deadline to `at` (`None`: no deadline of its
    /// own), and with it the effective deadline of this scope and of every
    /// scope open below that inherits it; each one's future is woken to set
    /// its timer again. A walk over a list, not a recursion.
    pub(crate) fn set_deadline(scope: &Arc<Scope>, at: Option<Instant>) {
        scope.own_deadline.set(at, scope.epoch);
        let mut pending = vec![scope.clone()];
        while let Some(scope) = pending.pop() {
            scope.refresh_deadline();
            pending.extend(scope.inner_cancellable());
        }
    }

    /// Works the effective deadline out again from the own one and the
    /// parent's, and has the scope future set its timer again.
    fn refresh_deadline(&self) {
        let inherited = self.inherited_deadline();
        let effective = earliest(self.own_deadline.get(self.epoch), inherited);
        self.deadline.set(effective, self.epoch);
        self.deadline_moved.store(true, Ordering::Release);
        self.core.wake();
    }

    /// The deadline the scope future must time itself, after a move: its
    /// own, if it comes before the inherited one (which the ancestor that
    /// owns it times), else none. `None` also when nothing moved.
    pub(crate) fn moved_timer(&self) -> Option<Option<Instant>> {
        if !self.deadline_moved.swap(false, Ordering::AcqRel) {
            return None;
        }
        let own = self.own_deadline.get(self.epoch);
        let inherited = self.inherited_deadline();
        Some(own.filter(|&own| inherited.is_none_or(|inherited| own < inherited)))
    }

    /// The parent's effective deadline, unless the scope is shielded.
    fn inherited_deadline(&self) -> Option<Instant> {
        self.parent
            .as_ref()
            .filter(|_| !self.shielded)
            .and_then(|parent| parent.deadline())
    }

    /// The scopes open inside this one that a cancel or a deadline from
    /// here reaches: all but those opened inside a shield.
    pub(crate) fn inner_cancellable(&self) -> Vec<Arc<Scope>> {
        let mut inner = lock(&self.scopes).open();
        inner.retain(|scope| !scope.shielded);
        inner
    }

    /// Whether a deadline moved since the scope future last looked.
    pub(crate) fn deadline_moved(&self) -> bool {
        self.deadline_moved.load(Ordering::Relaxed)
    }

    /// Records an inner scope opened under this one; returns its key.
    fn adopt(&self, inner: &Arc<Scope>) -> usize {
        let key = lock(&self.scopes).insert(inner.clone());
        if inner.shielded {
            return key;
        }
        // A deadline moved before the insert did not reach the inner
        // scope: work its own out again now. (One moved after it does.)
        if inner.deadline() != earliest(inner.own_deadline.get(inner.epoch), self.deadline()) {
            inner.refresh_deadline();
        }
        // A cancel decided before the insert did not see the inner scope:
        // pass it on now. (One decided after it does see it.)
        if self.core.is_cancelled() {
            inner.cancel_from_parent();
        }
        key
    }

    fn disown(&self, key: usize) {
        let inner = lock(&self.scopes).remove(key);
        drop(inner);
    }

    /// The join is complete: every child has ended, so their bookkeeping
    /// can go now rather than when the last `Nursery` clone is dropped.
    pub(crate) fn closed(&self) {
        let registry = {
            let mut registry = lock(&self.registry);
            let closed = registry.closed();
            std::mem::replace(&mut *registry, closed)
        };
        drop(registry);
    }
}

impl Drop for Scope {
    /// Lets go of the parent without recursion. In a chain of nested
    /// scopes the innermost can hold the last reference to every scope
    /// above it (each scope holds its parent): dropping them one inside
    /// the next would take a stack frame per level.
    fn drop(&mut self) {
        let mut parent = self.parent.take();
        while let Some(scope) = parent {
            parent = match Arc::try_unwrap(scope) {
                Ok(mut scope) => scope.parent.take(),
                // Still referenced elsewhere (or by a thread dropping it
                // right now, whose drop then carries on up itself).
                Err(_) => None,
            };
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.name)
            .field("core", &self.core)
            .field("deadline", &self.deadline)
            .field("own_deadline", &self.own_deadline)
            .field("registry", &*lock(&self.registry))
            .finish_non_exhaustive()
    }
}

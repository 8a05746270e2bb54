//! [`Scope`]: the shared state of one open scope — the [`Core`] plus what
//! tokio needs — and what it does: count children in and out, decide a
//! cancel and carry it down the tree, and tear down after a drop.

mod config;
mod dropped;
mod registry;
mod tree;

use std::fmt;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use self::config::{Config, DEFAULT_LEAK_GRACE, DisplayError, earliest};
pub(crate) use self::dropped::watch_dropped;
pub(crate) use self::registry::{Current, Registry};
pub(crate) use self::tree::{ScopeList, prune_dead_roots, roots};
use crate::cause::Cause;
use crate::clock::Stamp;
use crate::core::{Cancelling, Core, Payload, Reason, Refusal};
use crate::error::{Interrupted, SpawnErrorKind};
use crate::id::{Name, TaskInfo};
use crate::snapshot::{PATH_HEAD, PATH_TAIL, TaskSnapshot, TaskState, scope_path};
use crate::stats::Stats;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering, lock};
use crate::timer;

/// How many times a failing child looks for its own registry record (see
/// `Scope::current_child`) before it gives up on naming itself.
const REGISTRATION_WAIT: usize = 10_000;

/// Up to this many tasks of a dropped scope are freed where its last
/// child ends; more on the leak watcher's thread.
const FREE_INLINE: usize = 64;

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
    /// ancestors'.
    pub(crate) deadline: Option<Instant>,
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
    pub(crate) fn open(
        config: &Config,
        parent: Option<Arc<Scope>>,
        location: &'static Location<'static>,
    ) -> (Scope, Option<Instant>) {
        let rt = Handle::try_current()
            .unwrap_or_else(|_| panic!("nursery: no tokio runtime: scopes must run inside one"));
        let own = config.own_deadline();
        let inherited = parent.as_ref().and_then(|parent| parent.deadline);
        let token = match &parent {
            Some(parent) => parent.token.child_token(),
            None => CancellationToken::new(),
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
        let scope = Scope {
            core: Core::new(config.fail_fast, config.limit, config.rate)
                .cap_suppressed(config.max_suppressed.unwrap_or(usize::MAX)),
            token,
            rt,
            deadline,
            name: config.name.clone(),
            location,
            opened: Stamp::now(),
            host: tokio::task::try_id(),
            epoch: Instant::now(),
            grace: config
                .grace
                .or(parent.as_ref().map(|parent| parent.grace))
                .unwrap_or(Duration::ZERO),
            leak_grace: config
                .leak_grace
                .or(parent.as_ref().map(|parent| parent.leak_grace))
                .unwrap_or(DEFAULT_LEAK_GRACE),
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
        let mut tasks: Vec<TaskSnapshot> = lock(&self.registry)
            .live()
            .filter_map(|(info, id, blocking)| {
                async_tasks += usize::from(!blocking);
                info.map(|info| TaskSnapshot::new(&info, Some(id), running, path, now))
            })
            .collect();
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

    /// The names of this scope and its ancestors, outermost first, as
    /// [`scope_path`] joins them: past eight scopes, the four
    /// outermost and the four innermost, with a count of those between.
    ///
    /// Made in the same time at any depth: the innermost names are a few
    /// steps up from this scope, the outermost a few steps up from its
    /// path anchor.
    pub(crate) fn path(&self) -> String {
        /// `from` and the scopes above it, `count` in all, innermost first.
        fn up(from: &Scope, count: usize) -> Vec<&Scope> {
            std::iter::successors(Some(from), |scope| scope.parent.as_deref())
                .take(count)
                .collect()
        }
        let len = self.depth + 1;
        let elides = len > PATH_HEAD + PATH_TAIL;
        // The scopes whose names the path keeps, outermost first: if it
        // elides, the first few, from the anchor; then the last few, or
        // all of them, down to this scope.
        let mut kept = Vec::with_capacity(PATH_HEAD + PATH_TAIL);
        if let (true, Some(anchor)) = (elides, &self.path_anchor) {
            kept.extend(up(anchor, PATH_HEAD).into_iter().rev());
        }
        let head = kept.len();
        let tail = if elides { PATH_TAIL } else { len };
        kept.extend(up(self, tail).into_iter().rev());
        scope_path(len, |level| {
            let index = if level < head {
                Some(level)
            } else {
                (level + kept.len()).checked_sub(len)
            };
            index
                .and_then(|index| kept.get(index))
                .and_then(|scope| scope.name.as_ref())
        })
    }

    /// The path anchor of a scope opened inside this one: the scope at
    /// depth `PATH_HEAD - 1` above it, if its path elides names. Inherited
    /// from this scope's own, or found a few steps up when the new scope is
    /// the first deep enough to need one.
    fn path_anchor_below(&self) -> Option<Arc<Scope>> {
        if self.depth + 2 <= PATH_HEAD + PATH_TAIL {
            return None;
        }
        if let Some(anchor) = &self.path_anchor {
            return Some(anchor.clone());
        }
        // This scope is deeper than the anchor: it is one of its ancestors.
        let mut anchor = self.parent.as_ref()?;
        while anchor.depth > PATH_HEAD - 1 {
            anchor = anchor.parent.as_ref()?;
        }
        Some(anchor.clone())
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
    fn finish_dropped(&self) {
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
    fn release_parent(&self) -> Option<&Scope> {
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
    fn hand_on_panic(&self, payload: Payload, who: Option<TaskInfo>, held: bool) {
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
                _ => return dropped::lost_panic(self, payload, who),
            }
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

    // ----- failure and cancellation -----

    /// Records the error of a child (`child`: reported from the child's
    /// own tokio task) or of the body.
    pub(crate) fn report_error(&self, error: Payload, child: bool) {
        let (cancelling, discarded) = self.core.report_error_with(error, !child, |_| {
            let who = if child { self.current_child() } else { None };
            self.set_why(Cause::failure(false, who.as_ref(), self.location));
        });
        self.cancelling(cancelling);
        if let Some(error) = discarded {
            self.drop_error(error, child);
        }
    }

    /// Drops an error the scope does not keep. Its destructor is user
    /// code: a panic there is that task's panic, re-raised with its own
    /// payload and message (G3), like any other.
    fn drop_error(&self, error: Payload, child: bool) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(error))) {
            self.report_panic(payload, child);
        }
    }

    /// Records the panic of a child (`child`: reported from the child's
    /// own tokio task) or of the body.
    ///
    /// A dropped scope never returns, so it cannot re-raise the panic: it
    /// hands it on at once ([`Scope::hand_on_panic`]).
    pub(crate) fn report_panic(&self, payload: Payload, child: bool) {
        let who = || if child { self.current_child() } else { None };
        if self.is_dropped() {
            let held = self.holds_parent.load(Ordering::Acquire);
            return self.hand_on_panic(payload, who(), held);
        }
        self.record_panic(payload, !child, who);
    }

    /// Records a panic in this scope's own outcome, to be re-raised after
    /// the join. `who` names the task that panicked, if it is a child of
    /// this scope's own (not the body, nor a scope dropped inside).
    fn record_panic(
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
    fn current_child(&self) -> Option<TaskInfo> {
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
    fn cancel_core_from_parent(&self) -> Cancelling {
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

    fn cancel_as(&self, cause: Reason, public: Cause) {
        let cancelling = self.core.cancel_with(cause, |_| self.set_why(public));
        self.cancelling(cancelling);
    }

    /// Called by the core under its outcome lock: takes no other lock.
    fn set_why(&self, why: Cause) {
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
        Stats::new(spawned, queued, live, counts)
    }

    /// A cancel was just decided, here or in a child's thread. The queued
    /// children are dropped unstarted; without a grace period the running
    /// ones are aborted at once, by whoever decided the cancel rather than
    /// at the scope future's next poll. Then the open inner scopes are
    /// cancelled (their cores, recursively), so that when the token fires
    /// no child anywhere below can start another; last, the token fires.
    /// With a grace period the scope future aborts when it ends.
    fn cancelling(&self, cancelling: Cancelling) {
        if cancelling == Cancelling::Now {
            self.stop_children();
            #[cfg(feature = "tracing")]
            self.trace_cancelled();
            self.fire_token();
        }
    }

    /// Logs the cancel with its cause.
    #[cfg(feature = "tracing")]
    fn trace_cancelled(&self) {
        if let Some(why) = &*lock(&self.why) {
            tracing::info!(parent: &self.span, cause = %why, "nursery: scope cancelled");
        }
    }

    /// Drops the queued children unstarted and, without a grace period,
    /// aborts the running ones.
    fn stop_children(&self) {
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
        let mut below = lock(&self.scopes).open();
        while let Some(inner) = below.pop() {
            if inner.cancel_core_from_parent() == Cancelling::Now {
                inner.stop_children();
                #[cfg(feature = "tracing")]
                inner.trace_cancelled();
            }
            if !inner.token.is_cancelled() {
                below.extend(lock(&inner.scopes).open());
            }
        }
        // tokio-util cancels a token's descendants in a loop as well.
        self.token.cancel();
    }

    /// How a cancel that comes from an enclosing scope reads here: a
    /// timeout if this scope's effective deadline has passed (G5).
    fn inherited_cause(&self) -> Reason {
        if self.deadline_passed() {
            Reason::TimedOut
        } else {
            Reason::Cancelled
        }
    }

    /// Records an inner scope opened under this one; returns its key.
    fn adopt(&self, inner: &Arc<Scope>) -> usize {
        let key = lock(&self.scopes).insert(inner.clone());
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

    pub(crate) fn abort_all(&self) {
        lock(&self.registry).abort_all();
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
    fn abort_tree(&self) {
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
    fn abort_own(&self) -> bool {
        if self.tree_aborted.swap(true, Ordering::AcqRel) {
            return false;
        }
        let _ = self.cancel_core_from_parent();
        drop(self.core.close_queue());
        self.abort_all();
        true
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
    fn release_tasks_elsewhere(&self) {
        let registry = {
            let mut registry = lock(&self.registry);
            let closed = registry.closed();
            std::mem::replace(&mut *registry, closed)
        };
        if registry.len() > FREE_INLINE {
            dropped::free_soon(registry);
        }
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

    fn deadline_passed(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
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
    fn time_out(&self) -> bool {
        self.cancel(Reason::TimedOut);
        true
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
            .field("registry", &*lock(&self.registry))
            .finish_non_exhaustive()
    }
}

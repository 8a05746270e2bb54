//! The live-task registry, leak reports and the task-tree dump.
//!
//! Each scope keeps the list of the children it started ([`Registry`]):
//! only spawners and the cancel path touch it, never a finishing child, and
//! entries of finished children are swept out when the list has doubled
//! since the last sweep, so the cost per spawn stays constant and the list
//! within twice the number of live children (plus a small floor). Scopes
//! know the scopes open inside them; root scopes are kept in one
//! process-wide list, touched once when a root scope opens and once when it
//! is done (never per spawn). [`dump`] walks that tree.
//!
//! A scope dropped before it finished aborts its children at once (G7).
//! Children still alive a leak-grace window later are leaks: a watcher
//! thread (started the first time it is needed, not a tokio task, so it
//! shows in no runtime's task count) reports each through the hook set with
//! [`set_leak_hook`] and keeps it for the test helpers in
//! [`testing`](crate::testing).

use std::collections::VecDeque;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::{AbortHandle, Id};

use crate::cause::Who;
use crate::error::{Name, TaskInfo};
use crate::scope::Scope;
use crate::shared::Payload;
use crate::sync::{Arc, StaticMutex, Weak, lock, static_lock};
use crate::task::Current;

// ===== Stamp =====

/// A point on a coarse monotonic clock: cheap enough for the spawn path
/// (a vDSO read of `CLOCK_MONOTONIC_COARSE` on Linux, about 10 ns here,
/// where `Instant::now()` costs about 38 ns), precise to a few
/// milliseconds, which is plenty for the age of a task in a report.
///
/// Nanoseconds in a `u64` (centuries of range) rather than a `Duration`, so a
/// registry entry stays within 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn now() -> Stamp {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
        let secs = u64::try_from(now.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
        // Even, so a registry entry can keep a flag in the lowest bit
        // without changing the time.
        Stamp(secs.saturating_mul(1_000_000_000).saturating_add(nanos) & !1)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn now() -> Stamp {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let elapsed = EPOCH.get_or_init(std::time::Instant::now).elapsed();
        Stamp(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX) & !1)
    }

    /// Time from this stamp to `later` (zero if `later` is earlier).
    pub(crate) fn until(self, later: Stamp) -> Duration {
        Duration::from_nanos(later.0.saturating_sub(self.0))
    }
}

// ===== Registry =====

/// Below this many entries a scope's list is never swept.
const MIN_SWEEP: usize = 64;

/// How many unfinished entries [`Registry::release_finished`] looks at
/// before it stops looking: children finish roughly in the order they were
/// spawned, so past a few that have not, the rest have not either.
const RELEASE_PATIENCE: usize = 8;

/// The children a scope has started.
pub(crate) struct Registry {
    entries: Vec<Entry>,
    sweep_at: usize,
    /// The runner tasks of a limited scope (at most `limit` alive), each
    /// showing the child it is running.
    runners: Vec<(AbortHandle, Arc<Current>)>,
    runners_sweep_at: usize,
    aborted: bool,
    /// Children recorded so far (tasks of their own, blocking ones
    /// included): what `Nursery::stats` reports as spawned in a scope
    /// without a limiter. Counted under the lock every spawn takes anyway.
    pushed: usize,
}

/// 32 bytes on 64-bit targets: a child's bookkeeping stays within 64
/// bytes in all.
struct Entry {
    abort: AbortHandle,
    name: Option<Name>,
    location: &'static Location<'static>,
    /// When it was spawned, and whether it runs on the blocking pool (not
    /// counted among the runtime's tasks).
    started: Kind,
}

/// A [`Stamp`] (always even) with a flag in its lowest bit.
#[derive(Clone, Copy)]
struct Kind(u64);

impl Kind {
    fn new(started: Stamp, blocking: bool) -> Kind {
        Kind((started.0 & !1) | u64::from(blocking))
    }

    fn started(self) -> Stamp {
        Stamp(self.0 & !1)
    }

    fn blocking(self) -> bool {
        self.0 & 1 == 1
    }
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            entries: Vec::new(),
            sweep_at: MIN_SWEEP,
            runners: Vec::new(),
            runners_sweep_at: MIN_SWEEP,
            aborted: false,
            pushed: 0,
        }
    }

    /// A registry for a scope that has closed: no entries, the count kept.
    pub(crate) fn closed(&self) -> Registry {
        Registry {
            pushed: self.pushed,
            ..Registry::new()
        }
    }

    /// Lets go of the tasks of children that have finished, from the oldest
    /// entry on, until [`RELEASE_PATIENCE`] entries of children still
    /// running have been seen; the entries after those are not looked at.
    ///
    /// An entry's abort handle keeps its tokio task allocated. Called while
    /// a scope waits for its children, so that finished children's tasks
    /// are freed as the rest run, rather than all at once, by the scope's
    /// thread alone, once the last child has ended.
    pub(crate) fn release_finished(&mut self) {
        let mut running = 0;
        self.entries.retain(|entry| {
            if running >= RELEASE_PATIENCE {
                return true;
            }
            let finished = entry.abort.is_finished();
            running += usize::from(!finished);
            !finished
        });
    }

    /// Entries held: children's tasks not let go of yet.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() + self.runners.len()
    }

    /// Children recorded so far.
    pub(crate) fn pushed(&self) -> usize {
        self.pushed
    }

    /// Records a started child. If the scope has already aborted its
    /// children, this one is aborted at once: it started too late to get a
    /// grace period of its own.
    ///
    /// Finished children's entries are swept out when the list has doubled
    /// since the last sweep, unless `live` (the scope's count of children
    /// still alive) shows that fewer than half of them could go: then the
    /// sweep would touch every task for little, and waits for the next
    /// doubling. A loop that spawns faster than its children finish so
    /// never pays for sweeps, and the entries of finished children stay
    /// fewer than the live ones, plus `MIN_SWEEP`.
    pub(crate) fn push(
        &mut self,
        abort: AbortHandle,
        info: &TaskInfo,
        blocking: bool,
        live: impl FnOnce() -> usize,
    ) {
        if self.aborted {
            abort.abort();
        }
        if self.entries.len() >= self.sweep_at {
            if live().saturating_mul(2) <= self.entries.len() {
                self.entries.retain(|entry| !entry.abort.is_finished());
            }
            self.sweep_at = (self.entries.len() * 2).max(MIN_SWEEP);
        }
        self.pushed += 1;
        self.entries.push(Entry {
            abort,
            name: info.name.clone(),
            location: info.location,
            started: Kind::new(info.started, blocking),
        });
    }

    /// Who the task `id` is, if it is one of this scope's children (or a
    /// runner, running one of them).
    pub(crate) fn who(&self, id: Id) -> Option<Who> {
        if let Some(entry) = self.entries.iter().find(|entry| entry.abort.id() == id) {
            return Some(Who {
                name: entry.name.clone(),
                location: entry.location,
            });
        }
        let (_, current) = self.runners.iter().find(|(abort, _)| abort.id() == id)?;
        lock(current).as_ref().map(|info| Who {
            name: info.name.clone(),
            location: info.location,
        })
    }

    /// Records a runner task of a limited scope.
    pub(crate) fn push_runner(&mut self, abort: AbortHandle, current: Arc<Current>) {
        if self.aborted {
            abort.abort();
        }
        if self.runners.len() >= self.runners_sweep_at {
            self.runners.retain(|(abort, _)| !abort.is_finished());
            self.runners_sweep_at = (self.runners.len() * 2).max(MIN_SWEEP);
        }
        self.runners.push((abort, current));
    }

    /// Aborts every child started so far, and every child registered later.
    pub(crate) fn abort_all(&mut self) {
        if std::mem::replace(&mut self.aborted, true) {
            return;
        }
        for entry in &self.entries {
            entry.abort.abort();
        }
        for (abort, _) in &self.runners {
            abort.abort();
        }
    }

    /// The tasks not finished yet, with their ids, and whether each runs on
    /// the blocking pool. A runner waiting for a blocking child (listed on
    /// its own) shows no child.
    fn live(&self) -> impl Iterator<Item = (Option<TaskInfo>, Id, bool)> + '_ {
        let tasks = self
            .entries
            .iter()
            .filter(|entry| !entry.abort.is_finished())
            .map(|entry| {
                let info = TaskInfo {
                    name: entry.name.clone(),
                    location: entry.location,
                    started: entry.started.started(),
                };
                (Some(info), entry.abort.id(), entry.started.blocking())
            });
        let runners = self
            .runners
            .iter()
            .filter(|(abort, _)| !abort.is_finished())
            .map(|(abort, current)| (lock(current).clone(), abort.id(), false));
        tasks.chain(runners)
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
#[test]
fn a_registry_entry_takes_32_bytes() {
    assert_eq!(std::mem::size_of::<Entry>(), 32);
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("entries", &self.entries.len())
            .field("aborted", &self.aborted)
            .finish()
    }
}

// ===== ScopeList =====

/// Open scopes with stable keys: the scopes inside one scope, or the roots.
#[derive(Default)]
pub(crate) struct ScopeList {
    slots: Vec<Option<Arc<Scope>>>,
    free: Vec<usize>,
}

impl ScopeList {
    pub(crate) fn insert(&mut self, scope: Arc<Scope>) -> usize {
        match self.free.pop() {
            Some(key) => {
                self.slots[key] = Some(scope);
                key
            }
            None => {
                self.slots.push(Some(scope));
                self.slots.len() - 1
            }
        }
    }

    pub(crate) fn remove(&mut self, key: usize) -> Option<Arc<Scope>> {
        let scope = self.slots.get_mut(key)?.take();
        if scope.is_some() {
            self.free.push(key);
        }
        scope
    }

    /// The scopes, cloned, so they can be acted on outside the lock.
    pub(crate) fn open(&self) -> Vec<Arc<Scope>> {
        self.slots.iter().flatten().cloned().collect()
    }
}

/// Root scopes: those opened outside any other scope. Held until each is
/// done (closed, or dropped and every child ended), so a dropped root with
/// lingering children still shows in a dump.
static ROOTS: StaticMutex<ScopeList> = StaticMutex::new(ScopeList {
    slots: Vec::new(),
    free: Vec::new(),
});

/// At this many roots, [`add_root`] looks for roots left on runtimes that
/// have shut down; doubled after each look.
static PRUNE_AT: StaticMutex<usize> = StaticMutex::new(MIN_PRUNE);
const MIN_PRUNE: usize = 64;

pub(crate) fn add_root(scope: &Arc<Scope>) -> usize {
    let (key, roots) = {
        let mut roots = static_lock(&ROOTS);
        let key = roots.insert(scope.clone());
        (key, roots.slots.len() - roots.free.len())
    };
    let prune = {
        let mut prune_at = static_lock(&PRUNE_AT);
        let due = roots >= *prune_at;
        if due {
            *prune_at = roots.saturating_mul(2);
        }
        due
    };
    if prune {
        let left = prune_dead_roots();
        *static_lock(&PRUNE_AT) = left.saturating_mul(2).max(MIN_PRUNE);
    }
    key
}

/// Takes out of the tree the root scopes whose runtime has shut down, and
/// returns how many roots are left.
///
/// A scope normally leaves the tree when it returns or when its last
/// child ends after it was dropped; one whose future was forgotten
/// (`mem::forget`, a leaked `Box`) does neither. Once its runtime has shut
/// down, nothing of it can run any more: it is pruned, so the roots do not
/// grow without bound and [`dump`] does not show it. (Its memory stays
/// allocated: forgetting a future leaks it. A forgotten scope whose runtime
/// still runs stays in the tree, where [`dump`] shows it open.)
///
/// Each runtime other than the caller's own, and with no task alive, is
/// asked once, by spawning a task that would never finish and aborting it:
/// a runtime that has shut down ends it inside `spawn`.
pub(crate) fn prune_dead_roots() -> usize {
    let roots = roots();
    let current = tokio::runtime::Handle::try_current().ok().map(|rt| rt.id());
    let mut gone: Vec<(tokio::runtime::Id, bool)> = Vec::new();
    let mut left = 0;
    for root in &roots {
        let id = root.rt.id();
        let dead = match gone.iter().find(|(known, _)| *known == id) {
            Some(&(_, dead)) => dead,
            None => {
                let dead = Some(id) != current && has_shut_down(&root.rt);
                gone.push((id, dead));
                dead
            }
        };
        if dead {
            root.unregister();
        } else {
            left += 1;
        }
    }
    left
}

fn has_shut_down(rt: &tokio::runtime::Handle) -> bool {
    // A runtime that has shut down has dropped every task: one with tasks
    // alive is running, and is not disturbed by a probe.
    if rt.metrics().num_alive_tasks() > 0 {
        return false;
    }
    let probe = rt.spawn(std::future::pending::<()>());
    let gone = probe.is_finished();
    probe.abort();
    gone
}

pub(crate) fn remove_root(key: usize) {
    let scope = static_lock(&ROOTS).remove(key);
    drop(scope);
}

fn roots() -> Vec<Arc<Scope>> {
    static_lock(&ROOTS).open()
}

// ===== snapshots =====

/// What a task is doing, in a [`Dump`] or a leak report.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
/// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
/// #     n.spawn_named("opener", async {
/// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
/// #     });
/// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
/// #     for _ in 0..4 { tokio::task::yield_now().await; }
/// let dump = nursery::dump();
/// let crawl = dump.find("crawl").unwrap();
/// let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
/// let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
/// let waiting = crawl.tasks().iter().find(|task| task.name() == Some("waiting")).unwrap();
/// assert_eq!(fetch.state(), nursery::TaskState::Running);
/// assert_eq!(waiting.state(), nursery::TaskState::Queued);
/// #     n.cancel();
/// #     Ok(())
/// # }).await.unwrap();
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskState {
    /// Started and not finished.
    Running,
    /// Waiting for room under its scope's limit; not a tokio task yet.
    Queued,
    /// Its scope has been cancelled (or dropped) and it has not ended yet.
    Cancelling,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::Queued => "queued",
            TaskState::Cancelling => "cancelling",
        })
    }
}

/// What a scope is doing, in a [`Dump`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
/// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
/// #     n.spawn_named("opener", async {
/// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
/// #     });
/// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
/// #     for _ in 0..4 { tokio::task::yield_now().await; }
/// let dump = nursery::dump();
/// let crawl = dump.find("crawl").unwrap();
/// let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
/// let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
/// assert_eq!(crawl.state(), nursery::ScopeState::Open);
/// assert_eq!(crawl.state().to_string(), "open");
/// #     n.cancel();
/// #     Ok(())
/// # }).await.unwrap();
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScopeState {
    /// Running its body or joining its children.
    Open,
    /// Cancelled, waiting for its children to end.
    Cancelling,
    /// Its future was dropped before it finished; some of its children have
    /// not ended yet.
    Dropped,
}

impl fmt::Display for ScopeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScopeState::Open => "open",
            ScopeState::Cancelling => "cancelling",
            ScopeState::Dropped => "dropped",
        })
    }
}

/// One task as it was when a [`Dump`] or a leak report was taken.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
/// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
/// #     n.spawn_named("opener", async {
/// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
/// #     });
/// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
/// #     for _ in 0..4 { tokio::task::yield_now().await; }
/// let dump = nursery::dump();
/// let crawl = dump.find("crawl").unwrap();
/// let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
/// let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
/// // task `fetch` spawned at FILE:LINE:COL: running, age 0ms
/// println!("{fetch}");
/// assert_eq!(fetch.scope_path(), "`crawl`");
/// // Its own fields, and how many scopes are open inside it.
/// assert!(format!("{opener:?}").ends_with(", scopes: 1 }"));
/// #     n.cancel();
/// #     Ok(())
/// # }).await.unwrap();
/// # }
/// ```
///
/// Its `Debug` form shows the task's own fields and how many scopes are
/// open inside it, not those scopes: the tree below a task may be any
/// number of levels deep. Print a [`Dump`] or a [`ScopeSnapshot`] for the
/// tree.
pub struct TaskSnapshot {
    name: Option<Name>,
    location: &'static Location<'static>,
    age: Duration,
    state: TaskState,
    scope_path: String,
    /// The tokio task's id; `None` while queued.
    id: Option<Id>,
    /// Scopes opened inside this task.
    scopes: Vec<ScopeSnapshot>,
}

impl TaskSnapshot {
    fn new(info: &TaskInfo, id: Option<Id>, state: TaskState, path: &str, now: Stamp) -> Self {
        TaskSnapshot {
            name: info.name.clone(),
            location: info.location,
            age: info.started.until(now),
            state,
            scope_path: path.to_owned(),
            id,
            scopes: Vec::new(),
        }
    }

    /// The name given with [`Nursery::spawn_named`](crate::Nursery::spawn_named)
    /// or [`Nursery::spawn_blocking_named`](crate::Nursery::spawn_blocking_named).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert_eq!(fetch.name(), Some("fetch"));
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(Name::as_str)
    }

    /// Where the task was spawned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// println!("`fetch` was spawned at {}", fetch.location());
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// How long ago the task was spawned (to a few milliseconds).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert!(fetch.age() < std::time::Duration::from_secs(60));
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn age(&self) -> Duration {
        self.age
    }

    /// What it was doing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert_eq!(fetch.state(), nursery::TaskState::Running);
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn state(&self) -> TaskState {
        self.state
    }

    /// The names of the scopes it belongs to, outermost first, joined with
    /// ` > ` (`<unnamed>` for a scope without a name).
    ///
    /// A path through more than eight scopes names the four outermost and
    /// the four innermost, and counts those between:
    /// ``"`a` > `b` > `c` > `d` > ... 49992 scopes ... > `w` > `x` > `y` > `z`"``.
    /// So a path is as cheap to make and as short to print at any depth.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert_eq!(fetch.scope_path(), "`crawl`");
    /// assert_eq!(opener.scopes()[0].tasks().len(), 0); // `inner` has no children
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn scope_path(&self) -> &str {
        &self.scope_path
    }

    /// The scopes open inside this task (in a [`Dump`]; empty in leak
    /// reports).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// // The scope `opener` opened is shown under it, not under `crawl`.
    /// assert_eq!(opener.scopes()[0].name(), Some("inner"));
    /// assert!(fetch.scopes().is_empty());
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn scopes(&self) -> &[ScopeSnapshot] {
        &self.scopes
    }

    /// The tokio task's id; `None` while queued.
    pub(crate) fn id(&self) -> Option<Id> {
        self.id
    }

    /// Its line in the text of a dump, `depth` levels below the root scope.
    fn write_line(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        writeln!(
            f,
            "{}task {} spawned at {}: {}, age {}",
            Indent(depth),
            DisplayName(self.name()),
            self.location,
            self.state,
            Age(self.age)
        )
    }
}

impl Clone for TaskSnapshot {
    /// A copy of the task and of the scopes inside it (each copied with
    /// [`ScopeSnapshot::clone`], which needs no call stack for their depth).
    fn clone(&self) -> Self {
        TaskSnapshot {
            name: self.name.clone(),
            location: self.location,
            age: self.age,
            state: self.state,
            scope_path: self.scope_path.clone(),
            id: self.id,
            scopes: self.scopes.clone(),
        }
    }
}

impl fmt::Debug for TaskSnapshot {
    /// The task's own fields, and how many scopes are open inside it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSnapshot")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("age", &self.age)
            .field("state", &self.state)
            .field("scope_path", &self.scope_path)
            .field("id", &self.id)
            .field("scopes", &self.scopes.len())
            .finish()
    }
}

impl fmt::Display for TaskSnapshot {
    /// One line: name, spawn location, scope path, state and age.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task {} spawned at {}, in scope {}: {}, age {}",
            DisplayName(self.name()),
            self.location,
            self.scope_path,
            self.state,
            Age(self.age)
        )
    }
}

/// One scope, its tasks and the scopes inside it, as they were when a
/// [`Dump`] was taken. Printed, it is the indented tree of [`Dump`] from
/// this scope down (this scope at depth 0).
///
/// A tree of snapshots may be any number of scopes deep: building it,
/// printing it, searching it, cloning it and dropping it all keep their
/// place in the tree on a stack of their own rather than the call stack,
/// so none of them overflows a thread's stack. Its `Debug` form shows the
/// scope's own fields and how many tasks and scopes it holds directly,
/// not the tree below it; print it (`Display`) for the tree.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
/// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
/// #     n.spawn_named("opener", async {
/// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
/// #     });
/// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
/// #     for _ in 0..4 { tokio::task::yield_now().await; }
/// let dump = nursery::dump();
/// let crawl = dump.find("crawl").unwrap();
/// let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
/// let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
/// // The tree from `crawl` down, one line per scope or task.
/// println!("{crawl}");
/// assert!(crawl.to_string().starts_with("scope `crawl` opened at "));
/// // Its own fields, and how many tasks and scopes it holds directly.
/// assert!(format!("{crawl:?}").ends_with(", tasks: 3, scopes: 0 }"));
/// #     n.cancel();
/// #     Ok(())
/// # }).await.unwrap();
/// # }
/// ```
pub struct ScopeSnapshot {
    name: Option<Name>,
    location: &'static Location<'static>,
    age: Duration,
    state: ScopeState,
    tasks: Vec<TaskSnapshot>,
    scopes: Vec<ScopeSnapshot>,
}

impl ScopeSnapshot {
    /// The scope's name, if it was given one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert_eq!(crawl.name(), Some("crawl"));
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(Name::as_str)
    }

    /// Where the scope was opened.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// println!("`crawl` was opened at {}", crawl.location());
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// How long ago the scope was opened (to a few milliseconds).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert!(crawl.age() < std::time::Duration::from_secs(60));
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn age(&self) -> Duration {
        self.age
    }

    /// What the scope was doing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert_eq!(crawl.state(), nursery::ScopeState::Open);
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn state(&self) -> ScopeState {
        self.state
    }

    /// Its own live tasks: running, queued or cancelling. The scopes open
    /// inside each are under [`TaskSnapshot::scopes`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// let names: Vec<_> = crawl.tasks().iter().map(|task| task.name()).collect();
    /// assert_eq!(names, [Some("fetch"), Some("opener"), Some("waiting")]);
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn tasks(&self) -> &[TaskSnapshot] {
        &self.tasks
    }

    /// The scopes open in its body (those open inside one of its tasks are
    /// under that task).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// // Scopes opened by the body; those opened by a task are under that task.
    /// assert!(crawl.scopes().is_empty());
    /// assert_eq!(opener.scopes().len(), 1);
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn scopes(&self) -> &[ScopeSnapshot] {
        &self.scopes
    }

    /// The first scope named `name` in this subtree (this one included),
    /// searching depth first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert_eq!(crawl.find("inner").unwrap().name(), Some("inner"));
    /// assert!(crawl.find("elsewhere").is_none());
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn find(&self, name: &str) -> Option<&ScopeSnapshot> {
        find(std::slice::from_ref(self), name)
    }

    /// Its line in the text of a dump, `depth` levels below the root scope.
    fn write_line(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        writeln!(
            f,
            "{}scope {} opened at {}: {}, age {}",
            Indent(depth),
            DisplayName(self.name()),
            self.location,
            self.state,
            Age(self.age)
        )
    }

    /// Whether a scope is open in it or in one of its tasks.
    fn has_inner_scopes(&self) -> bool {
        !self.scopes.is_empty() || self.tasks.iter().any(|task| !task.scopes.is_empty())
    }
}

impl fmt::Display for ScopeSnapshot {
    /// The tree from this scope down, as [`Dump`] prints it, with this
    /// scope at depth 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_tree(f, std::slice::from_ref(self))
    }
}

impl fmt::Debug for ScopeSnapshot {
    /// The scope's own fields, and how many tasks and scopes it holds
    /// directly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeSnapshot")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("age", &self.age)
            .field("state", &self.state)
            .field("tasks", &self.tasks.len())
            .field("scopes", &self.scopes.len())
            .finish()
    }
}

impl Clone for ScopeSnapshot {
    /// A copy of the whole tree from this scope down, made with a stack of
    /// the scopes being copied rather than a recursion.
    fn clone(&self) -> Self {
        /// A scope being copied: the copy so far (its tasks without their
        /// scopes, no scopes of its own yet), and the next of the original's
        /// inner scopes to copy: the `inner`th scope of its `task`th task,
        /// or of its own once `task` is past its tasks.
        struct Copying<'a> {
            original: &'a ScopeSnapshot,
            copy: ScopeSnapshot,
            task: usize,
            inner: usize,
        }

        impl<'a> Copying<'a> {
            fn new(original: &'a ScopeSnapshot) -> Self {
                let tasks = original.tasks.iter().map(|task| TaskSnapshot {
                    name: task.name.clone(),
                    location: task.location,
                    age: task.age,
                    state: task.state,
                    scope_path: task.scope_path.clone(),
                    id: task.id,
                    scopes: Vec::with_capacity(task.scopes.len()),
                });
                let copy = ScopeSnapshot {
                    name: original.name.clone(),
                    location: original.location,
                    age: original.age,
                    state: original.state,
                    tasks: tasks.collect(),
                    scopes: Vec::with_capacity(original.scopes.len()),
                };
                Copying {
                    original,
                    copy,
                    task: 0,
                    inner: 0,
                }
            }

            /// The next inner scope to copy, in the order they are held.
            fn next(&mut self) -> Option<&'a ScopeSnapshot> {
                let original = self.original;
                while let Some(task) = original.tasks.get(self.task) {
                    if let Some(inner) = task.scopes.get(self.inner) {
                        self.inner += 1;
                        return Some(inner);
                    }
                    self.task += 1;
                    self.inner = 0;
                }
                let inner = original.scopes.get(self.inner)?;
                self.inner += 1;
                Some(inner)
            }

            /// Puts the copy of the inner scope [`next`](Self::next) gave
            /// last where the original has it.
            fn attach(&mut self, inner: ScopeSnapshot) {
                match self.copy.tasks.get_mut(self.task) {
                    Some(task) => task.scopes.push(inner),
                    None => self.copy.scopes.push(inner),
                }
            }
        }

        // The scope being copied, and those it is inside, outermost first.
        let mut copying = Copying::new(self);
        let mut outer = Vec::new();
        loop {
            if let Some(inner) = copying.next() {
                outer.push(std::mem::replace(&mut copying, Copying::new(inner)));
                continue;
            }
            let Some(next) = outer.pop() else {
                return copying.copy;
            };
            let done = std::mem::replace(&mut copying, next);
            copying.attach(done.copy);
        }
    }
}

impl Drop for ScopeSnapshot {
    /// Takes the tree below this scope apart with a list of the scopes
    /// still to drop: left to the compiler, dropping each scope would drop
    /// the scopes inside it first, one call deeper for each level.
    fn drop(&mut self) {
        if !self.has_inner_scopes() {
            return;
        }
        let mut pending = std::mem::take(&mut self.scopes);
        for task in &mut self.tasks {
            pending.append(&mut task.scopes);
        }
        while let Some(mut scope) = pending.pop() {
            pending.append(&mut scope.scopes);
            for task in &mut scope.tasks {
                pending.append(&mut task.scopes);
            }
            // `scope` is dropped here, with nothing left inside it.
        }
    }
}

/// A scope or a task in a tree of snapshots.
enum Node<'a> {
    Scope(&'a ScopeSnapshot),
    Task(&'a TaskSnapshot),
}

/// The scopes and tasks of trees of snapshots, each with its depth below
/// its root scope, in the order a dump prints them: each before what it
/// holds, a scope's tasks (each with the scopes inside it) before the
/// scopes of its own.
///
/// An iterator with a stack of the places it is at, one per level, rather
/// than a recursion: a tree any number of levels deep costs no call stack.
struct Nodes<'a> {
    /// At each level, the tasks and then the scopes still to visit there,
    /// and the level's depth.
    stack: Vec<(
        std::slice::Iter<'a, TaskSnapshot>,
        std::slice::Iter<'a, ScopeSnapshot>,
        usize,
    )>,
}

impl<'a> Nodes<'a> {
    fn new(roots: &'a [ScopeSnapshot]) -> Self {
        Nodes {
            stack: vec![([].iter(), roots.iter(), 0)],
        }
    }
}

impl<'a> Iterator for Nodes<'a> {
    type Item = (usize, Node<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (tasks, scopes, depth) = self.stack.last_mut()?;
            let depth = *depth;
            if let Some(task) = tasks.next() {
                if !task.scopes.is_empty() {
                    self.stack.push(([].iter(), task.scopes.iter(), depth + 1));
                }
                return Some((depth, Node::Task(task)));
            }
            if let Some(scope) = scopes.next() {
                if !scope.tasks.is_empty() || !scope.scopes.is_empty() {
                    let below = (scope.tasks.iter(), scope.scopes.iter(), depth + 1);
                    self.stack.push(below);
                }
                return Some((depth, Node::Scope(scope)));
            }
            self.stack.pop();
        }
    }
}

/// The first scope named `name` in the trees from `roots` down, searching
/// depth first.
fn find<'a>(roots: &'a [ScopeSnapshot], name: &str) -> Option<&'a ScopeSnapshot> {
    Nodes::new(roots).find_map(|(_, node)| match node {
        Node::Scope(scope) if scope.name() == Some(name) => Some(scope),
        _ => None,
    })
}

/// The text of the trees from `roots` down: one line per scope or task.
fn write_tree(f: &mut fmt::Formatter<'_>, roots: &[ScopeSnapshot]) -> fmt::Result {
    for (depth, node) in Nodes::new(roots) {
        match node {
            Node::Scope(scope) => scope.write_line(f, depth)?,
            Node::Task(task) => task.write_line(f, depth)?,
        }
    }
    Ok(())
}

/// Depths shown by indentation alone in the text of a dump.
const MAX_INDENT: usize = 32;

/// Two spaces for each level of depth up to [`MAX_INDENT`].
const INDENT: &str = "                                                                ";
const _: () = assert!(INDENT.len() == 2 * MAX_INDENT);

/// The start of a line of a dump's text at `depth`: two spaces per level,
/// up to [`MAX_INDENT`] levels; a deeper line is indented as that level
/// and names its depth, as in `[depth 4812] `. So a line's length does not
/// grow with its depth, and a dump's text with the number of its lines.
struct Indent(usize);

impl fmt::Display for Indent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&INDENT[..2 * self.0.min(MAX_INDENT)])?;
        if self.0 > MAX_INDENT {
            write!(f, "[depth {}] ", self.0)?;
        }
        Ok(())
    }
}

/// Every live scope and task of the process: the tree [`dump`] returns.
///
/// Printed, it is an indented tree, every scope or task before what it
/// contains, one line each: name (or `<unnamed>`), where it was opened or
/// spawned, state and age. A scope opened inside a task is shown under
/// that task; one opened in a scope's body, under the scope.
///
/// Each line is indented two spaces per level of depth below its root
/// scope (a task is one level below its scope, a scope opened in a task
/// one below the task), up to 32 levels. A line deeper than that is
/// indented as the 32nd level and starts with its depth, so that the
/// text grows with the number of lines alone, however deep the tree:
///
/// ```text
/// scope `deep` opened at src/main.rs:10:5: open, age 12ms
///   task <unnamed> spawned at src/main.rs:11:9: running, age 12ms
///     scope `level-1` opened at src/main.rs:20:5: open, age 12ms
/// ...
///                                                                 scope `level-16` opened at src/main.rs:20:5: open, age 11ms
///                                                                 [depth 33] task <unnamed> spawned at src/main.rs:21:9: running, age 11ms
///                                                                 [depth 34] scope `level-17` opened at src/main.rs:20:5: open, age 11ms
/// ```
///
/// The tree may be any number of scopes deep: it is built, printed,
/// searched, cloned and dropped without a recursion (see
/// [`ScopeSnapshot`]). Its `Debug` form lists the root scopes, each with
/// its own fields only.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// nursery::Nursery::builder().name("crawl").scope(|n| async move {
///     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
///     let dump = nursery::dump();
///     let crawl = dump.find("crawl").unwrap();
///     assert_eq!(crawl.tasks()[0].name(), Some("fetch"));
///     let text = crawl.to_string();
///     assert!(text.starts_with("scope `crawl` opened at"));
///     assert!(text.contains("\n  task `fetch` spawned at"));
///     n.cancel();
///     Ok(())
/// }).await.unwrap();
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Dump {
    scopes: Vec<ScopeSnapshot>,
}

impl Dump {
    /// The root scopes: those opened outside any other scope.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert!(dump.scopes().iter().any(|root| root.name() == Some("crawl")));
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn scopes(&self) -> &[ScopeSnapshot] {
        &self.scopes
    }

    /// The first scope named `name`, searching each root's tree depth first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert!(dump.find("inner").is_some());
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn find(&self, name: &str) -> Option<&ScopeSnapshot> {
        find(&self.scopes, name)
    }

    /// Every task in the tree, each before the tasks of the scopes inside
    /// it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert!(dump.tasks().iter().any(|task| task.name() == Some("waiting")));
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn tasks(&self) -> Vec<&TaskSnapshot> {
        let tasks = Nodes::new(&self.scopes).filter_map(|(_, node)| match node {
            Node::Task(task) => Some(task),
            Node::Scope(_) => None,
        });
        tasks.collect()
    }

    /// Whether no scope is open.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # nursery::Nursery::builder().name("crawl").limit(2).scope(|n| async move {
    /// #     n.spawn_named("fetch", std::future::pending::<Result<(), ()>>());
    /// #     n.spawn_named("opener", async {
    /// #         nursery::Nursery::builder().name("inner").scope(|_inner| std::future::pending::<Result<(), ()>>()).await.map_err(|_| ())
    /// #     });
    /// #     n.spawn_named("waiting", async { Ok(()) }); // queued under the limit
    /// #     for _ in 0..4 { tokio::task::yield_now().await; }
    /// # let dump = nursery::dump();
    /// # let crawl = dump.find("crawl").unwrap();
    /// # let fetch = crawl.tasks().iter().find(|task| task.name() == Some("fetch")).unwrap();
    /// # let opener = crawl.tasks().iter().find(|task| task.name() == Some("opener")).unwrap();
    /// assert!(!dump.is_empty());
    /// #     n.cancel();
    /// #     Ok(())
    /// # }).await.unwrap();
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }
}

impl fmt::Display for Dump {
    /// The indented tree, one line per scope or task (see [`Dump`] for the
    /// lines deeper than 32 levels); `no open scopes` if there is none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scopes.is_empty() {
            return writeln!(f, "no open scopes");
        }
        write_tree(f, &self.scopes)
    }
}

/// A snapshot of every live scope and task in the process, printable as an
/// indented tree: what a structured thread dump is to Java.
///
/// Cheap enough to call on demand (on a signal, from a debug endpoint): it
/// locks each scope's bookkeeping briefly, one at a time, and never blocks
/// a running task. Its time and memory grow with the number of scopes and
/// tasks alone, however deeply the scopes are nested, and it needs no more
/// call stack for a deep nest than for a shallow one: the text indents up
/// to 32 levels and gives deeper lines their depth (`[depth 4812] scope
/// ...`, see [`Dump`]), and a task's [scope
/// path](TaskSnapshot::scope_path) names at most eight scopes.
///
/// # Examples
///
/// ```
/// // At the top of a program, nothing is open.
/// assert!(nursery::dump().is_empty());
/// ```
pub fn dump() -> Dump {
    prune_dead_roots();
    let now = Stamp::now();
    let mut scopes = Vec::new();
    for root in roots() {
        walk(
            root,
            |scope, path| Snapshotting::new(scope, path, now),
            |done, scope, outer| match outer {
                Some(outer) => outer.attach(done.snapshot, scope.host),
                None => scopes.push(done.snapshot),
            },
        );
    }
    Dump { scopes }
}

/// Visits `root` and every scope open below it, depth first, each before
/// the scopes inside it. `open` makes what the walk keeps for a scope,
/// from the scope and its path; `close` gets that back once every scope
/// below has been visited, along with the scope and what is kept for the
/// scope it is in (`None` for `root`).
///
/// The scopes from `root` down to the one visited are kept on a stack of
/// the walk's own, not the call stack: a nest of scopes any number deep
/// costs no call stack, and each path is made from the names on that
/// stack, in the same time at any depth. The stack lets go of the
/// innermost scope first.
fn walk<T>(
    root: Arc<Scope>,
    mut open: impl FnMut(&Scope, &str) -> T,
    mut close: impl FnMut(T, &Scope, Option<&mut T>),
) {
    /// A scope on the walk's stack: the scopes inside it not visited yet,
    /// and what the walk keeps for it.
    struct Frame<T> {
        scope: Arc<Scope>,
        inner: std::vec::IntoIter<Arc<Scope>>,
        kept: T,
    }

    let mut frames: Vec<Frame<T>> = Vec::new();
    let mut next = Some(root);
    loop {
        if let Some(scope) = next.take() {
            let path = scope_path(frames.len() + 1, |level| match frames.get(level) {
                Some(frame) => frame.scope.name.as_ref(),
                None => scope.name.as_ref(),
            });
            let kept = open(&scope, &path);
            let inner = scope.inner_scopes().into_iter();
            frames.push(Frame { scope, inner, kept });
        }
        let Some(top) = frames.last_mut() else {
            return;
        };
        next = top.inner.next();
        if next.is_none()
            && let Some(done) = frames.pop()
        {
            close(
                done.kept,
                &done.scope,
                frames.last_mut().map(|f| &mut f.kept),
            );
        }
    }
}

/// A scope's snapshot being built by [`dump`]: its tasks are in, the
/// scopes inside it are added as they are done.
struct Snapshotting {
    snapshot: ScopeSnapshot,
    /// Which of its tasks has which id, once it has enough tasks for a
    /// search through them to cost more than the map.
    hosts: Option<std::collections::HashMap<Id, usize>>,
}

/// Up to this many tasks, a scope's tasks are searched for the host of an
/// inner scope rather than looked up.
const SEARCHED_HOSTS: usize = 8;

impl Snapshotting {
    fn new(scope: &Scope, path: &str, now: Stamp) -> Self {
        let cancelled = scope.core.is_cancelled();
        let state = if scope.is_dropped() {
            ScopeState::Dropped
        } else if cancelled {
            ScopeState::Cancelling
        } else {
            ScopeState::Open
        };
        let snapshot = ScopeSnapshot {
            name: scope.name.clone(),
            location: scope.location,
            age: scope.opened.until(now),
            state,
            tasks: live_tasks(scope, now, path).0,
            scopes: Vec::new(),
        };
        Snapshotting {
            snapshot,
            hosts: None,
        }
    }

    /// Adds the snapshot of a scope opened inside this one: under the task
    /// it was opened in, if that is one of this scope's, else under the
    /// scope itself.
    fn attach(&mut self, inner: ScopeSnapshot, host: Option<Id>) {
        match host.and_then(|host| self.task_with(host)) {
            Some(task) => self.snapshot.tasks[task].scopes.push(inner),
            None => self.snapshot.scopes.push(inner),
        }
    }

    /// The index of the task with id `id`.
    fn task_with(&mut self, id: Id) -> Option<usize> {
        let tasks = &self.snapshot.tasks;
        if tasks.len() <= SEARCHED_HOSTS {
            return tasks.iter().position(|task| task.id == Some(id));
        }
        let hosts = self.hosts.get_or_insert_with(|| {
            let mut hosts = std::collections::HashMap::with_capacity(tasks.len());
            for (index, task) in tasks.iter().enumerate() {
                if let Some(id) = task.id {
                    hosts.entry(id).or_insert(index);
                }
            }
            hosts
        });
        hosts.get(&id).copied()
    }
}

/// A scope's own live tasks (started, then queued), and how many of them
/// are tokio tasks (not on the blocking pool).
fn live_tasks(scope: &Scope, now: Stamp, path: &str) -> (Vec<TaskSnapshot>, usize) {
    let running = if scope.core.is_cancelled() {
        TaskState::Cancelling
    } else {
        TaskState::Running
    };
    let mut async_tasks = 0;
    let mut tasks: Vec<TaskSnapshot> = scope.with_registry(|registry| {
        registry
            .live()
            .filter_map(|(info, id, blocking)| {
                async_tasks += usize::from(!blocking);
                info.map(|info| TaskSnapshot::new(&info, Some(id), running, path, now))
            })
            .collect()
    });
    if let Some(limiter) = scope.core.limiter() {
        limiter.for_each_queued(|info| {
            tasks.push(TaskSnapshot::new(info, None, TaskState::Queued, path, now));
        });
    }
    (tasks, async_tasks)
}

/// How many of the outermost scopes a path names before it elides, and
/// how many of the innermost after.
pub(crate) const PATH_HEAD: usize = 4;
pub(crate) const PATH_TAIL: usize = 4;

/// The path of a scope `len` levels deep (itself the last): the names of
/// the scopes from the outermost down, joined with ` > `. Past
/// `PATH_HEAD + PATH_TAIL` scopes, the ones between the first
/// `PATH_HEAD` and the last `PATH_TAIL` are counted rather than named:
/// ``"`a` > `b` > `c` > `d` > ... 49992 scopes ... > `w` > `x` > `y` > `z`"``.
///
/// `name(level)` is the name of the scope `level` levels below the
/// outermost; it is asked only for the names kept, so a path takes the
/// same time and room at any depth.
pub(crate) fn scope_path<'a>(len: usize, name: impl Fn(usize) -> Option<&'a Name>) -> String {
    use std::fmt::Write as _;

    let mut path = String::new();
    let mut push = |part: &dyn fmt::Display| {
        if !path.is_empty() {
            path.push_str(" > ");
        }
        let _ = write!(path, "{part}");
    };
    let name = |level| DisplayName(name(level).map(Name::as_str));
    let elided = len.saturating_sub(PATH_HEAD + PATH_TAIL);
    if elided == 0 {
        (0..len).for_each(|level| push(&name(level)));
    } else {
        (0..PATH_HEAD).for_each(|level| push(&name(level)));
        let plural = if elided == 1 { "" } else { "s" };
        push(&format_args!("... {elided} scope{plural} ..."));
        (len - PATH_TAIL..len).for_each(|level| push(&name(level)));
    }
    path
}

/// The live tasks in the scopes of one runtime: what a leak check finds.
pub(crate) struct Census {
    pub(crate) tasks: Vec<TaskSnapshot>,
    /// Of those, how many are tokio tasks (not on the blocking pool).
    pub(crate) async_tasks: usize,
}

/// The live tasks in the scopes of `runtime`, each scope's before those of
/// the scopes inside it; with the same [`walk`] as [`dump`], so in the
/// same time and call stack at any depth.
pub(crate) fn census(runtime: tokio::runtime::Id) -> Census {
    let now = Stamp::now();
    let mut census = Census {
        tasks: Vec::new(),
        async_tasks: 0,
    };
    for root in roots() {
        if root.rt.id() == runtime {
            let count = |scope: &Scope, path: &str| {
                let (tasks, async_tasks) = live_tasks(scope, now, path);
                census.tasks.extend(tasks);
                census.async_tasks += async_tasks;
            };
            walk(root, count, |(), _, _| {});
        }
    }
    census
}

// ===== leaks =====

/// What escaped a dropped scope: a task still alive a leak-grace window
/// after its scope was dropped, or a panic that no scope was left to
/// re-raise ([`Leak::panic`]).
///
/// Reported through the hook set with [`set_leak_hook`], and kept for
/// [`testing::assert_no_leaks`](crate::testing::assert_no_leaks) on the
/// same runtime.
///
/// A panic in a task of a dropped scope is re-raised by the nearest
/// enclosing scope still running, as its own child's would be (G3). Under
/// a dropped *root* scope (or one whose parent has returned) nobody is
/// left to re-raise it: it is reported as a lost panic, with the task's
/// name and spawn site when known, rather than only printed by the panic
/// hook.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Mutex;
/// use std::time::Duration;
///
/// static FOUND: Mutex<Vec<nursery::Leak>> = Mutex::new(Vec::new());
/// nursery::set_leak_hook(|leak| FOUND.lock().unwrap().push(leak.clone()));
///
/// let (started, running) = tokio::sync::oneshot::channel();
/// let (release, stuck) = std::sync::mpsc::channel::<()>();
/// let scope = nursery::Nursery::builder()
///     .leak_grace(Duration::from_millis(10))
///     .scope(|n| async move {
///         n.spawn_blocking_named("stuck", move |_token| {
///             let _ = started.send(());
///             let _ = stuck.recv(); // blocking: no abort can stop it
///             Ok::<_, ()>(())
///         });
///         std::future::pending::<Result<(), ()>>().await
///     });
/// tokio::select! {
///     _ = scope => unreachable!("the body never returns"),
///     _ = running => {} // the scope is dropped here, its child blocked
/// }
/// let leak = tokio::time::timeout(Duration::from_secs(10), async {
///     loop {
///         if let Some(leak) = FOUND.lock().unwrap().first().cloned() {
///             break leak;
///         }
///         tokio::time::sleep(Duration::from_millis(10)).await;
///     }
/// })
/// .await
/// .expect("reported once the leak grace has passed");
/// drop(release); // the child ends
/// // task `stuck` spawned at FILE:LINE:COL, in scope <unnamed>: still alive 10ms after its scope was dropped
/// println!("{leak}");
/// assert_eq!(leak.task().name(), Some("stuck"));
/// assert!(leak.after() >= Duration::from_millis(10)); // the leak grace
/// assert_eq!(leak.runtime(), tokio::runtime::Handle::current().id());
/// assert_eq!(leak.panic(), None);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Leak {
    task: TaskSnapshot,
    after: Duration,
    runtime: tokio::runtime::Id,
    /// The panic's message, for a lost panic.
    panic: Option<std::sync::Arc<str>>,
}

impl Leak {
    /// The task, as it was when the leak was found (see [`Leak`]'s
    /// example).
    pub fn task(&self) -> &TaskSnapshot {
        &self.task
    }

    /// How long after its scope was dropped it was found still alive (at
    /// least the scope's leak-grace window), or it panicked.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// The runtime its scope ran on.
    pub fn runtime(&self) -> tokio::runtime::Id {
        self.runtime
    }

    /// For a lost panic, the panic's message (`"Box<dyn Any>"` when the
    /// payload is not text): the task panicked after its scope was
    /// dropped, and no enclosing scope was left to re-raise it. `None` for
    /// a task found still alive.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Mutex;
    ///
    /// static FOUND: Mutex<Vec<nursery::Leak>> = Mutex::new(Vec::new());
    /// nursery::set_leak_hook(|leak| FOUND.lock().unwrap().push(leak.clone()));
    ///
    /// let (started, running) = tokio::sync::oneshot::channel();
    /// let (drop_tx, dropped) = std::sync::mpsc::channel::<()>();
    /// let scope = nursery::scope(|n| async move {
    ///     n.spawn_blocking_named("late", move |_token| {
    ///         let _ = started.send(());
    ///         let _ = dropped.recv(); // until the scope has been dropped
    ///         panic!("too late to re-raise");
    ///         #[allow(unreachable_code)]
    ///         Ok::<_, ()>(())
    ///     });
    ///     std::future::pending::<Result<(), ()>>().await
    /// });
    /// tokio::select! {
    ///     _ = scope => unreachable!(),
    ///     _ = running => {} // the scope future is dropped here
    /// }
    /// drop(drop_tx);
    /// let leak = tokio::time::timeout(std::time::Duration::from_secs(10), async {
    ///     loop {
    ///         if let Some(leak) = FOUND.lock().unwrap().first().cloned() {
    ///             break leak;
    ///         }
    ///         tokio::task::yield_now().await;
    ///     }
    /// })
    /// .await
    /// .expect("reported once the child has panicked");
    /// assert_eq!(leak.panic(), Some("too late to re-raise"));
    /// assert_eq!(leak.task().name(), Some("late"));
    /// # }
    /// ```
    pub fn panic(&self) -> Option<&str> {
        self.panic.as_deref()
    }

    /// The tokio task's id, to tell a leak from the same task still alive.
    pub(crate) fn task_id(&self) -> Option<Id> {
        self.task.id
    }
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task {} spawned at {}, in scope {}: ",
            DisplayName(self.task.name()),
            self.task.location,
            self.task.scope_path,
        )?;
        match &self.panic {
            None => write!(
                f,
                "still alive {} after its scope was dropped",
                Age(self.after)
            ),
            Some(message) => write!(
                f,
                "panicked {} after its scope was dropped, with no scope left to re-raise it: {message}",
                Age(self.after)
            ),
        }
    }
}

type Hook = std::sync::Arc<dyn Fn(&Leak) + Send + Sync>;

static HOOK: StaticMutex<Option<Hook>> = StaticMutex::new(None);

/// Leaks kept for the test helpers, newest last; bounded, oldest dropped.
static LEAKS: StaticMutex<VecDeque<Leak>> = StaticMutex::new(VecDeque::new());
const KEPT_LEAKS: usize = 1024;

/// Sets the function called for every [`Leak`]: a task still alive a
/// leak-grace window ([`Builder::leak_grace`](crate::Builder::leak_grace))
/// after its scope was dropped. Replaces the previous hook.
///
/// Without a hook, leaks are logged as `tracing` warnings when the
/// `tracing` feature is on; either way the test helpers in
/// [`testing`](crate::testing) see them.
///
/// The hook runs on the leak watcher thread: keep it short and do not
/// block.
///
/// # Examples
///
/// ```
/// nursery::set_leak_hook(|leak| eprintln!("nursery: {leak}"));
/// ```
pub fn set_leak_hook(hook: impl Fn(&Leak) + Send + Sync + 'static) {
    *static_lock(&HOOK) = Some(std::sync::Arc::new(hook));
}

fn report(leak: Leak) {
    {
        let mut kept = static_lock(&LEAKS);
        if kept.len() == KEPT_LEAKS {
            kept.pop_front();
        }
        kept.push_back(leak.clone());
    }
    let hook = static_lock(&HOOK).clone();
    // A panicking hook must not take the watcher thread down with it: the
    // leak is kept already, and later checks still run.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match hook {
        Some(hook) => hook(&leak),
        None => default_report(&leak),
    }));
}

#[cfg(feature = "tracing")]
fn default_report(leak: &Leak) {
    tracing::warn!(
        task.name = leak.task.name(),
        task.location = %leak.task.location,
        scope = %leak.task.scope_path,
        after_ms = leak.after.as_millis() as u64,
        "nursery: {leak}"
    );
}

#[cfg(not(feature = "tracing"))]
fn default_report(_: &Leak) {}

/// Takes the kept leaks found on `runtime`.
pub(crate) fn take_leaks(runtime: tokio::runtime::Id) -> Vec<Leak> {
    let mut kept = static_lock(&LEAKS);
    let (mine, others): (Vec<Leak>, Vec<Leak>) =
        kept.drain(..).partition(|leak| leak.runtime == runtime);
    kept.extend(others);
    mine
}

/// Reports a panic that no scope can re-raise any more: it happened in a
/// task of the dropped scope `origin` (the task `who`, when known), and no
/// enclosing scope is left running.
pub(crate) fn lost_panic(origin: &Scope, payload: Payload, who: Option<Who>) {
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
    report(Leak {
        task: TaskSnapshot::new(&info, None, TaskState::Cancelling, &path, now),
        after: dropped.until(now),
        runtime: origin.rt.id(),
        panic: Some(message),
    });
}

/// Checks the dropped `scope` again once `grace` has passed, and reports
/// its own tasks still alive then. (A scope dropped inside it was dropped
/// too, and has a check of its own.)
///
/// The check holds the scope weakly: a dropped scope whose children have
/// all ended is freed at once, with its children's tasks, rather than a
/// leak-grace window later.
pub(crate) fn watch_dropped(scope: &Arc<Scope>, grace: Duration) {
    let dropped = std::time::Instant::now();
    watcher::schedule(grace, watcher::Job::Dropped(Weak::new(scope), dropped));
}

fn check_dropped(scope: &Weak<Scope>, dropped: std::time::Instant) {
    // A dropped scope leaves the tree when its last child has ended, which
    // is by far the common case by now: then there is nothing to report,
    // and no path to build.
    let Some(scope) = scope.upgrade() else {
        return;
    };
    if !scope.is_registered() {
        return;
    }
    let after = dropped.elapsed();
    let runtime = scope.rt.id();
    let (tasks, _) = live_tasks(&scope, Stamp::now(), &scope.path());
    for task in tasks {
        report(Leak {
            task,
            after,
            runtime,
            panic: None,
        });
    }
}

pub(crate) use watcher::scope_ended;

/// Drops `registry` (and with it the last references to its children's
/// tokio tasks) on the watcher's thread, as soon as it gets to it.
pub(crate) fn free_soon(registry: Registry) {
    watcher::schedule(Duration::ZERO, watcher::Job::Free(registry));
}

/// Resolves after `duration` of real time, whatever the runtime's clock
/// (paused or not) and whether it has a timer at all.
pub(crate) fn real_sleep(duration: Duration) -> oneshot::Receiver<()> {
    let (wake, woken) = oneshot::channel();
    watcher::schedule(duration, watcher::Job::Wake(wake));
    woken
}

mod watcher {
    //! One thread for the whole process, started the first time it is
    //! needed: it runs the checks of dropped scopes and wakes the test
    //! helpers' waits, each at its time.

    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use super::check_dropped;
    use crate::scope::Scope;
    use crate::sync::{Ordering, StaticAtomicUsize, StaticCondvar, StaticMutex, Weak, static_lock};

    pub(super) enum Job {
        Dropped(Weak<Scope>, Instant),
        /// A dropped scope's children's tasks, to free.
        Free(super::Registry),
        Wake(tokio::sync::oneshot::Sender<()>),
    }

    struct Due {
        at: Instant,
        seq: u64,
        job: Job,
    }

    impl PartialEq for Due {
        fn eq(&self, other: &Self) -> bool {
            (self.at, self.seq) == (other.at, other.seq)
        }
    }
    impl Eq for Due {}
    impl PartialOrd for Due {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Due {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            (self.at, self.seq).cmp(&(other.at, other.seq))
        }
    }

    impl Job {
        /// Whether running the job could still do anything: its scope is
        /// alive, or someone still waits for the wake-up.
        fn is_wanted(&self) -> bool {
            match self {
                Job::Dropped(scope, _) => scope.is_alive(),
                Job::Free(_) => true,
                Job::Wake(wake) => !wake.is_closed(),
            }
        }
    }

    struct Watcher {
        queue: StaticMutex<Queue>,
        wake: StaticCondvar,
    }

    struct Queue {
        /// Jobs by due time.
        due: BinaryHeap<Reverse<Due>>,
        /// The next sequence number (ties in FIFO).
        seq: u64,
        /// At this many jobs, those no longer wanted are dropped.
        purge_at: usize,
    }

    /// Below this many jobs the queue is not purged for its length.
    const MIN_PURGE: usize = 1024;

    /// Dropped scopes that have ended since the last purge (relaxed: a
    /// count that only decides when to purge).
    static ENDED: StaticAtomicUsize = StaticAtomicUsize::new(0);

    /// Ended scopes that make a purge worth it, however short the queue.
    const MIN_ENDED: usize = 16;

    /// A dropped scope has ended: its note in the queue, if it has one, is
    /// no longer wanted.
    pub(crate) fn scope_ended() {
        ENDED.fetch_add(1, Ordering::Relaxed);
    }

    fn watcher() -> &'static Watcher {
        static WATCHER: OnceLock<&'static Watcher> = OnceLock::new();
        WATCHER.get_or_init(|| {
            let watcher: &'static Watcher = Box::leak(Box::new(Watcher {
                queue: StaticMutex::new(Queue {
                    due: BinaryHeap::new(),
                    seq: 0,
                    purge_at: MIN_PURGE,
                }),
                wake: StaticCondvar::new(),
            }));
            std::thread::Builder::new()
                .name("nursery-leak-watcher".into())
                .spawn(move || run(watcher))
                .expect("nursery: could not start the leak watcher thread");
            watcher
        })
    }

    pub(super) fn schedule(after: Duration, job: Job) {
        let watcher = watcher();
        // A window too long for the clock (`Duration::MAX`, say) is a
        // job that never comes due: it waits at the end of the queue.
        let at = Instant::now().checked_add(after).unwrap_or_else(far_future);
        let mut queue = static_lock(&watcher.queue);
        // Jobs whose scope has ended (every child gone) or whose waiter
        // has gone would wait out their window for nothing, and a note of
        // an ended scope still holds the scope's memory (a weak reference
        // keeps the allocation, though not what is in it): with long
        // windows they would pile up. They go when the queue has doubled
        // since the last purge, or when as many scopes have ended as half
        // the queue (and at least `MIN_ENDED`): the queue stays within
        // twice the jobs still wanted, plus a few, at a constant cost per
        // job.
        let ended = ENDED.load(Ordering::Relaxed);
        if queue.due.len() >= queue.purge_at || ended >= (queue.due.len() / 2).max(MIN_ENDED) {
            ENDED.fetch_sub(ended, Ordering::Relaxed);
            queue.due.retain(|Reverse(due)| due.job.is_wanted());
            queue.purge_at = (queue.due.len() * 2).max(MIN_PURGE);
        }
        let seq = queue.seq;
        queue.seq += 1;
        queue.due.push(Reverse(Due { at, seq, job }));
        // The watcher sleeps until its earliest job is due: it needs waking
        // only if this job is the new earliest. Waking it for every dropped
        // scope would take a core from the runtime while the dropped
        // scope's children are being torn down.
        let earliest = queue.due.peek().is_some_and(|Reverse(due)| due.seq == seq);
        drop(queue);
        if earliest {
            watcher.wake.notify_one();
        }
    }

    /// A time later than any window a user means: about thirty years from
    /// now, which `Instant` always holds.
    fn far_future() -> Instant {
        let now = Instant::now();
        now.checked_add(Duration::from_secs(30 * 365 * 24 * 60 * 60))
            .unwrap_or(now)
    }

    fn run(watcher: &'static Watcher) {
        let mut queue = static_lock(&watcher.queue);
        loop {
            let now = Instant::now();
            match queue.due.peek() {
                Some(Reverse(due)) if due.at <= now => {
                    let Some(Reverse(due)) = queue.due.pop() else {
                        continue;
                    };
                    drop(queue);
                    // Nothing a job does may stop the thread: every later
                    // check and wait depends on it.
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match due.job {
                            Job::Dropped(scope, dropped) => check_dropped(&scope, dropped),
                            Job::Free(registry) => drop(registry),
                            Job::Wake(wake) => {
                                let _ = wake.send(());
                            }
                        }));
                    queue = static_lock(&watcher.queue);
                }
                Some(Reverse(due)) => {
                    let wait = due.at - now;
                    queue = match watcher.wake.wait_timeout(queue, wait) {
                        Ok((queue, _)) => queue,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                }
                None => {
                    queue = match watcher.wake.wait(queue) {
                        Ok(queue) => queue,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                }
            }
        }
    }
}

// ===== formatting =====

/// A name in backquotes, or `<unnamed>`.
pub(crate) struct DisplayName<'a>(pub(crate) Option<&'a str>);

impl fmt::Display for DisplayName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, "`{name}`"),
            None => f.write_str("<unnamed>"),
        }
    }
}

/// A duration rounded for people: `850ms`, `12.3s`, `4m05s`.
pub(crate) struct Age(pub(crate) Duration);

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis < 1_000 {
            write!(f, "{millis}ms")
        } else if millis < 60_000 {
            write!(f, "{:.1}s", self.0.as_secs_f64())
        } else {
            let secs = self.0.as_secs();
            write!(f, "{}m{:02}s", secs / 60, secs % 60)
        }
    }
}

#[cfg(all(test, not(nursery_loom)))]
mod tests {
    use super::*;

    /// The path of scopes named `names`, every name kept.
    fn full_path(names: &[Option<&str>]) -> String {
        let names: Vec<String> = names
            .iter()
            .map(|name| DisplayName(*name).to_string())
            .collect();
        names.join(" > ")
    }

    #[test]
    fn a_scope_path_names_the_outermost_and_innermost_scopes_and_counts_the_rest() {
        let names: Vec<Name> = (0..50_000)
            .map(|i| Name::new(format!("s{i}").into()))
            .collect();
        let path = |len: usize| scope_path(len, |level| names.get(level));
        assert_eq!(path(1), "`s0`");
        assert_eq!(
            path(8),
            "`s0` > `s1` > `s2` > `s3` > `s4` > `s5` > `s6` > `s7`"
        );
        assert_eq!(
            path(9),
            "`s0` > `s1` > `s2` > `s3` > ... 1 scope ... > `s5` > `s6` > `s7` > `s8`"
        );
        assert_eq!(
            path(50_000),
            "`s0` > `s1` > `s2` > `s3` > ... 49992 scopes ... > `s49996` > `s49997` > `s49998` > `s49999`"
        );
        let unnamed = scope_path(3, |level| names.get(level).filter(|_| level == 1));
        assert_eq!(unnamed, "<unnamed> > `s1` > <unnamed>");
    }

    /// Opens scopes down to `depth`, each in the body of the last, named
    /// `s{level}` except every third; in each, records the scope's
    /// `path()` and spawns a task that waits for `stop`; in the innermost,
    /// takes a dump, then stops the tasks.
    fn nest(
        level: usize,
        depth: usize,
        stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
        paths: Arc<std::sync::Mutex<Vec<String>>>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Dump>> + Send>> {
        let mut builder = crate::Nursery::builder();
        if level % 3 != 1 {
            builder = builder.name(format!("s{level}"));
        }
        Box::pin(async move {
            let scoped = builder.scope(move |n: crate::Nursery<()>| async move {
                let path = crate::context::current().expect("in a scope").path();
                lock(&paths).push(path);
                let mut waiting = stop.subscribe();
                n.spawn_named(format!("t{level}"), async move {
                    let _ = waiting.wait_for(|stop| *stop).await;
                    Ok(())
                });
                if level + 1 == depth {
                    let dump = dump();
                    stop.send_replace(true);
                    return Ok(Some(dump));
                }
                Ok(nest(level + 1, depth, stop, paths).await)
            });
            scoped.await.ok().flatten()
        })
    }

    #[test]
    fn a_scopes_path_is_the_path_its_tasks_show_in_a_dump_at_every_depth() {
        const DEPTH: usize = 20;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let stop = std::sync::Arc::new(tokio::sync::watch::Sender::new(false));
        let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
        let dump = rt.block_on(async {
            let dumped = nest(0, DEPTH, stop, paths.clone());
            let dumped = tokio::time::timeout(Duration::from_secs(5), dumped);
            dumped.await.expect("the scopes never closed")
        });
        let dump = dump.expect("the innermost scope took a dump");
        let paths = lock(&paths).clone();
        assert_eq!(paths.len(), DEPTH);
        let names: Vec<String> = (0..DEPTH).map(|level| format!("s{level}")).collect();
        let names: Vec<Option<&str>> = (0..DEPTH)
            .map(|level| Some(names[level].as_str()).filter(|_| level % 3 != 1))
            .collect();
        for (level, path) in paths.iter().enumerate() {
            let len = level + 1;
            let expected = if len <= PATH_HEAD + PATH_TAIL {
                full_path(&names[..len])
            } else {
                format!(
                    "{} > ... {} scope{} ... > {}",
                    full_path(&names[..PATH_HEAD]),
                    len - PATH_HEAD - PATH_TAIL,
                    if len - PATH_HEAD - PATH_TAIL == 1 {
                        ""
                    } else {
                        "s"
                    },
                    full_path(&names[len - PATH_TAIL..len]),
                )
            };
            assert_eq!(path, &expected, "path() {len} scopes deep");
            let name = format!("t{level}");
            let tasks = dump.tasks();
            let Some(task) = tasks.iter().find(|task| task.name() == Some(&name)) else {
                panic!("task {name} in the dump:\n{dump}");
            };
            assert_eq!(
                task.scope_path(),
                expected,
                "the dump's path {len} scopes deep"
            );
        }
    }

    /// A chain `depth` scopes deep, each scope holding one task, which
    /// holds the next scope; the scopes are named `s{level}`.
    fn chain(depth: usize) -> ScopeSnapshot {
        let location = Location::caller();
        let task = |level: usize, scopes| TaskSnapshot {
            name: None,
            location,
            age: Duration::ZERO,
            state: TaskState::Running,
            scope_path: format!("path {level}"),
            id: None,
            scopes,
        };
        let scope = |level: usize, tasks| ScopeSnapshot {
            name: Some(Name::new(format!("s{level}").into())),
            location,
            age: Duration::ZERO,
            state: ScopeState::Open,
            tasks,
            scopes: Vec::new(),
        };
        let mut inner = scope(depth - 1, Vec::new());
        for level in (0..depth - 1).rev() {
            inner = scope(level, vec![task(level, vec![inner])]);
        }
        inner
    }

    /// Runs `f` on a thread with a 2 MiB stack, like tokio's worker threads.
    fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .expect("the thread panicked")
    }

    #[test]
    fn a_deep_snapshot_is_printed_searched_cloned_and_dropped_without_recursion() {
        const DEPTH: usize = 50_000;
        on_small_stack(|| {
            let dump = Dump {
                scopes: vec![chain(DEPTH)],
            };
            let text = dump.to_string();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 2 * DEPTH - 1);
            assert!(
                lines[0].starts_with("scope `s0` opened at "),
                "{}",
                lines[0]
            );
            assert!(lines[1].starts_with("  task <unnamed> spawned at "));
            let indent = " ".repeat(2 * MAX_INDENT);
            assert!(lines[MAX_INDENT].starts_with(&format!("{indent}scope `s16` ")));
            assert!(lines[MAX_INDENT + 1].starts_with(&format!("{indent}[depth 33] task ")));
            let last = format!(
                "{indent}[depth {}] scope `s{}` opened at ",
                2 * DEPTH - 2,
                DEPTH - 1
            );
            assert!(
                lines[lines.len() - 1].starts_with(&last),
                "{}",
                lines[lines.len() - 1]
            );
            assert!(text.len() < 200 * lines.len(), "{} bytes", text.len());

            let innermost = format!("s{}", DEPTH - 1);
            let found = dump.find(&innermost).expect("the innermost scope");
            assert!(found.tasks().is_empty() && found.scopes().is_empty());
            assert_eq!(dump.tasks().len(), DEPTH - 1);

            let copy = dump.clone();
            assert_eq!(copy.to_string(), text);
            assert_eq!(
                format!("{:?}", copy.scopes()[0].tasks()[0]),
                format!(
                    "TaskSnapshot {{ name: None, location: {:?}, age: 0ns, state: Running, \
                     scope_path: \"path 0\", id: None, scopes: 1 }}",
                    copy.scopes()[0].location()
                )
            );
            assert!(format!("{copy:?}").ends_with("state: Open, tasks: 1, scopes: 0 }] }"));
            drop(copy);
            let task = dump.scopes()[0].tasks()[0].clone();
            drop(dump);
            assert_eq!(task.scopes()[0].name(), Some("s1"));
            drop(task);
        });
    }

    /// Spawns a task that finishes at once (`true`) or never (`false`) on
    /// `rt`, and records it in `registry`.
    fn record(rt: &tokio::runtime::Runtime, registry: &mut Registry, finishes: bool) {
        let handle = rt.spawn(async move {
            if !finishes {
                std::future::pending::<()>().await;
            }
        });
        let info = TaskInfo::new(None, Location::caller());
        registry.push(handle.abort_handle(), &info, false, || usize::MAX);
    }

    #[test]
    fn release_finished_lets_go_of_ended_tasks_until_enough_running_ones_are_seen() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut registry = Registry::new();
        // Ten ended, one running, one ended, then eight running and one
        // ended: the patience runs out on the eighth running one.
        let plan = [[true; 10].as_slice(), &[false, true], &[false; 8], &[true]].concat();
        for &finishes in &plan {
            record(&rt, &mut registry, finishes);
        }
        // Run the tasks until the finishing ones have ended.
        rt.block_on(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
        registry.release_finished();
        // Kept: the first running one, the eight after it (the last of them
        // unexamined) and the ended one behind them.
        assert_eq!(registry.entries.len(), 1 + 8 + 1);
        assert_eq!(
            registry
                .entries
                .iter()
                .filter(|entry| entry.abort.is_finished())
                .count(),
            1,
            "only the ended task past the patience is kept"
        );
        assert_eq!(registry.pushed(), plan.len(), "the spawn count stays");
    }
}

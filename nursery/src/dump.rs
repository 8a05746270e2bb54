//! [`dump`]: a snapshot of the tree of open scopes, and the census of one
//! runtime's live tasks that the leak checks take. Both walk the tree with
//! an explicit stack, in time linear in the number of scopes and tasks.

use tokio::task::Id;

use crate::clock::Stamp;
use crate::scope::{Scope, prune_dead_roots, roots};
use crate::snapshot::{
    AwaitPoints, Dump, ScopeSnapshot, ScopeState, TaskSnapshot, scope_path, take_traces,
};
use crate::sync::Arc;

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
    dump_where(|_| true)
}

/// A [`dump`] that also says where each task waits: every task of the
/// current runtime holds its await-point trace ([`TaskSnapshot::trace`])
/// from tokio's task dump, matched to it by its tokio task id.
///
/// Traces exist in a build with `RUSTFLAGS="--cfg tokio_unstable"` and
/// nursery's `taskdump` feature, on Linux (x86, x86_64, aarch64, s390x).
/// Without them the dump is a plain [`dump`], its
/// [`await_points`](Dump::await_points) say why, and its text ends with a
/// line saying how to turn them on.
///
/// # Cost
///
/// Building with task dumps costs nothing until one is taken. Taking one
/// is not cheap: the runtime pauses its workers and polls every task once
/// in a tracing mode, and resolving the traces of the dump's tasks to
/// symbols reads the program's debug information (on the blocking pool,
/// not a worker). Take one on demand (a signal, an admin route, a stuck
/// report), not on a timer. A worker blocked for long holds the task dump
/// up: past ten seconds the dump is returned without traces
/// ([`AwaitPoints::TimedOut`]).
///
/// Only tasks of the runtime it is awaited on are traced; on a
/// current-thread runtime, await it on that runtime's thread.
///
/// On a multi-thread runtime, tokio's task dump (tokio 1.54) gathers the
/// workers at a rendezvous that a worker leaves after 250 ms without
/// being taken off its count: a worker that arrives at a later dump can
/// then pass it alone and wait forever for the others, holding up that
/// dump and the runtime's shutdown. It is rare (a worker must miss the
/// rendezvous, or see a dump's request just as it ends), but it is why
/// the admin example runs on a current-thread runtime, where no
/// rendezvous is needed.
///
/// A trace names functions and source lines from the program's debug
/// information. An optimised build without it (the release profile's
/// default) shows little more than the tokio futures each task is parked
/// on; `debug = "line-tables-only"` under `[profile.release]` brings back
/// every frame with its file and line, at no cost in speed (the binary
/// grows), though an async function's frame is then named only by its
/// kind (`{async_fn#0} at src/db.rs:41:14`); `debug = "limited"` names it
/// in full (`my_crate::db::flush`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// nursery::Nursery::builder().name("server").scope(|n| async move {
///     n.spawn_named("accept", std::future::pending::<Result<(), ()>>());
///     let dump = nursery::dump_traced().await;
///     // Each task line, then (with task dumps) where it waits.
///     println!("{dump}");
///     assert!(dump.find("server").is_some());
///     n.cancel();
///     Ok(())
/// }).await.unwrap();
/// # }
/// ```
///
/// [`TaskSnapshot::trace`]: crate::TaskSnapshot::trace
pub async fn dump_traced() -> Dump {
    with_traces(dump()).await
}

/// The part of [`dump_traced`] under the roots opened on `runtime`.
pub(crate) async fn dump_runtime_traced(runtime: tokio::runtime::Id) -> Dump {
    with_traces(dump_runtime(runtime)).await
}

/// `dump` with the traces of its tasks, if they can be taken.
async fn with_traces(mut dump: Dump) -> Dump {
    let wanted = dump.tasks().iter().filter_map(|task| task.id()).collect();
    let (points, traces) = take_traces(wanted).await;
    dump.find_traces(points, &traces);
    dump
}

/// The part of [`dump`] under the roots opened on `runtime`.
pub(crate) fn dump_runtime(runtime: tokio::runtime::Id) -> Dump {
    dump_where(|root| root.rt.id() == runtime)
}

fn dump_where(mut wanted: impl FnMut(&Scope) -> bool) -> Dump {
    prune_dead_roots();
    let now = Stamp::now();
    let mut scopes = Vec::new();
    for root in roots().into_iter().filter(|root| wanted(root)) {
        walk(
            root,
            |scope, path| Snapshotting::new(scope, path, now),
            |done, scope, outer| match outer {
                Some(outer) => outer.attach(done.snapshot, scope.host),
                None => scopes.push(done.snapshot),
            },
        );
    }
    Dump {
        scopes,
        await_points: AwaitPoints::NotAsked,
    }
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
            tasks: scope.live_tasks(now, path).0,
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
                let (tasks, async_tasks) = scope.live_tasks(now, path);
                census.tasks.extend(tasks);
                census.async_tasks += async_tasks;
            };
            walk(root, count, |(), _, _| {});
        }
    }
    census
}

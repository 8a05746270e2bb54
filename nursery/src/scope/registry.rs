//! [`Registry`]: the children a scope has started, so it can abort them,
//! name them in a cause and show them in a dump.

use std::fmt;
use std::panic::Location;

use tokio::task::{AbortHandle, Id};

use crate::clock::Stamp;
use crate::id::{Name, TaskInfo};
use crate::sync::{Arc, Mutex, lock};

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
    /// The tasks the abort spared: inside a shield when it was decided.
    spared: Vec<Id>,
    /// The local children (polled by the scope future itself, not tokio
    /// tasks), by key; `None` marks a free key, listed in `free_locals`.
    locals: Vec<Option<LocalEntry>>,
    free_locals: Vec<usize>,
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

/// A local child: who it is, and whether it still waits for room under
/// the limit.
struct LocalEntry {
    info: TaskInfo,
    queued: bool,
}

/// A [`Stamp`] (always even) with a flag in its lowest bit.
#[derive(Clone, Copy)]
struct Kind(u64);

impl Entry {
    fn info(&self) -> TaskInfo {
        TaskInfo::since(self.name.clone(), self.location, self.started.started())
    }
}

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
            spared: Vec::new(),
            locals: Vec::new(),
            free_locals: Vec::new(),
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

    /// Records a local child, queued under the limit or not; returns its
    /// key.
    pub(crate) fn push_local(&mut self, info: TaskInfo, queued: bool) -> usize {
        self.pushed += 1;
        let entry = Some(LocalEntry { info, queued });
        match self.free_locals.pop() {
            Some(key) => {
                self.locals[key] = entry;
                key
            }
            None => {
                self.locals.push(entry);
                self.locals.len() - 1
            }
        }
    }

    /// The queued local child `key` has been admitted.
    pub(crate) fn local_admitted(&mut self, key: usize) {
        if let Some(Some(entry)) = self.locals.get_mut(key) {
            entry.queued = false;
        }
    }

    /// The local child `key` has ended: forgets it.
    pub(crate) fn remove_local(&mut self, key: usize) {
        if let Some(slot) = self.locals.get_mut(key)
            && slot.take().is_some()
        {
            self.free_locals.push(key);
        }
    }

    /// Who the local child `key` is.
    pub(crate) fn local(&self, key: usize) -> Option<TaskInfo> {
        self.locals
            .get(key)?
            .as_ref()
            .map(|entry| entry.info.clone())
    }

    /// The local children alive, by key, and whether each is queued.
    pub(crate) fn live_locals(&self) -> impl Iterator<Item = (usize, &TaskInfo, bool)> + '_ {
        self.locals
            .iter()
            .enumerate()
            .filter_map(|(key, entry)| Some((key, &entry.as_ref()?.info, entry.as_ref()?.queued)))
    }

    /// Whether the scope has aborted its children ([`Registry::abort_all`]).
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted
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
    pub(crate) fn who(&self, id: Id) -> Option<TaskInfo> {
        if let Some(entry) = self.entries.iter().find(|entry| entry.abort.id() == id) {
            return Some(entry.info());
        }
        let (_, current) = self.runners.iter().find(|(abort, _)| abort.id() == id)?;
        lock(current).clone()
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

    /// Aborts every child started so far but those whose tasks are in
    /// `spared` (inside a shield), and every child registered later. Called
    /// again, it aborts those spared the last time and not now (a drop of
    /// the scope spares nobody).
    pub(crate) fn abort_all(&mut self, spared: &[Id]) {
        let again = std::mem::replace(&mut self.aborted, true);
        let before = std::mem::replace(&mut self.spared, spared.to_vec());
        let abort = |id: Id| {
            if again {
                before.contains(&id) && !spared.contains(&id)
            } else {
                !spared.contains(&id)
            }
        };
        if again && before.is_empty() {
            return;
        }
        for entry in &self.entries {
            if abort(entry.abort.id()) {
                entry.abort.abort();
            }
        }
        for (handle, _) in &self.runners {
            if abort(handle.id()) {
                handle.abort();
            }
        }
    }

    /// Aborts the task `id`, spared by the abort while it was inside a
    /// shield, now that it has left.
    pub(crate) fn abort_spared(&mut self, id: Id) {
        let Some(at) = self.spared.iter().position(|spared| *spared == id) else {
            return;
        };
        self.spared.swap_remove(at);
        let entries = self.entries.iter().map(|entry| &entry.abort);
        let runners = self.runners.iter().map(|(abort, _)| abort);
        if let Some(abort) = entries.chain(runners).find(|abort| abort.id() == id) {
            abort.abort();
        }
    }

    /// The tasks not finished yet, with their ids, and whether each runs on
    /// the blocking pool. A runner waiting for a blocking child (listed on
    /// its own) shows no child.
    pub(crate) fn live(&self) -> impl Iterator<Item = (Option<TaskInfo>, Id, bool)> + '_ {
        let tasks = self
            .entries
            .iter()
            .filter(|entry| !entry.abort.is_finished())
            .map(|entry| {
                (
                    Some(entry.info()),
                    entry.abort.id(),
                    entry.started.blocking(),
                )
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

/// What a runner task of a limited scope is running: the child, shown in
/// dumps and leak reports.
pub(crate) type Current = Mutex<Option<TaskInfo>>;

#[cfg(all(test, not(nursery_loom)))]
mod tests {
    use super::*;

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

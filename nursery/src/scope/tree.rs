//! The tree of open scopes: each scope lists the scopes open inside it
//! ([`ScopeList`]), and the roots are kept in one process-wide list,
//! touched once when a root opens and once when it is done.

use crate::scope::Scope;
use crate::snapshot::{PATH_HEAD, PATH_TAIL, scope_path};
use crate::sync::{Arc, StaticMutex, static_lock};

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

pub(crate) fn roots() -> Vec<Arc<Scope>> {
    static_lock(&ROOTS).open()
}

impl Scope {
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
    pub(super) fn path_anchor_below(&self) -> Option<Arc<Scope>> {
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
}

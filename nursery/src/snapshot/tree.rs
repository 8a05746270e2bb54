//! Walking, copying and dropping a tree of snapshots of any depth, with
//! explicit stacks rather than recursion.

use crate::snapshot::{ScopeSnapshot, TaskSnapshot};

/// Calls `visit` on every task of the trees from `roots` down, with a
/// stack of the scopes still to visit rather than a recursion.
pub(super) fn tasks_mut(roots: &mut [ScopeSnapshot], mut visit: impl FnMut(&mut TaskSnapshot)) {
    let mut scopes: Vec<&mut ScopeSnapshot> = roots.iter_mut().collect();
    while let Some(scope) = scopes.pop() {
        for task in scope.tasks.iter_mut() {
            visit(task);
            scopes.extend(task.scopes.iter_mut());
        }
        scopes.extend(scope.scopes.iter_mut());
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
            local: self.local,
            blocking: self.blocking,
            scopes: self.scopes.clone(),
            trace: self.trace.clone(),
        }
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
                    local: task.local,
                    blocking: task.blocking,
                    scopes: Vec::with_capacity(task.scopes.len()),
                    trace: task.trace.clone(),
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
pub(super) enum Node<'a> {
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
pub(super) struct Nodes<'a> {
    /// At each level, the tasks and then the scopes still to visit there,
    /// and the level's depth.
    stack: Vec<(
        std::slice::Iter<'a, TaskSnapshot>,
        std::slice::Iter<'a, ScopeSnapshot>,
        usize,
    )>,
}

impl<'a> Nodes<'a> {
    pub(super) fn new(roots: &'a [ScopeSnapshot]) -> Self {
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
pub(super) fn find<'a>(roots: &'a [ScopeSnapshot], name: &str) -> Option<&'a ScopeSnapshot> {
    Nodes::new(roots).find_map(|(_, node)| match node {
        Node::Scope(scope) if scope.name() == Some(name) => Some(scope),
        _ => None,
    })
}

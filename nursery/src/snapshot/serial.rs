//! `Serialize` for [`Dump`], [`ScopeSnapshot`] and [`TaskSnapshot`], with
//! the `serde` feature: one schema, versioned by a field of the dump.
//!
//! ```text
//! Dump  = { "schema": "nursery.dump", "version": 1, "scopes": [Scope],
//!           "await_points": "not_asked" | "taken" | "not_built" | "timed_out"
//!                           | "no_runtime" | "interrupted" }
//! Scope = { "kind": "scope", "name": string | null, "location": "file:line:col",
//!           "age_ns": u64, "state": "open" | "cancelling" | "dropped",
//!           "tasks": [Task], "scopes": [Scope] }
//! Task  = { "kind": "task", "name": string | null, "location": "file:line:col",
//!           "age_ns": u64, "state": "running" | "queued" | "cancelling" | "shielded",
//!           "local": bool, "blocking": bool, "scope_path": string,
//!           "trace": string | null,
//!           "scopes": [Scope] }
//! ```
//!
//! `trace` is where the task waits (`TaskSnapshot::trace`), as tokio's task
//! dump prints it; `await_points` says whether traces were taken, and if
//! not, why (`AwaitPoints`).
//!
//! Scopes nest as in the dump: a task's `scopes` are those opened inside
//! it. Nesting stops at [`MAX_NEST`] levels (a task one level below its
//! scope, a scope opened in a task one below the task), as the text does:
//! a scope or task at that level has, instead of `scopes`, `deeper`: every
//! scope and task below it, flat, each with its `depth` below the root and
//! without `tasks` or `scopes`. So serializing takes the same call stack at
//! any depth, and time and memory linear in the size of the tree.

use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

use crate::snapshot::{AwaitPoints, Dump, ScopeSnapshot, TaskSnapshot};

/// The schema's version: raised when a field changes meaning or goes.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Levels of nesting kept; deeper ones are listed flat.
const MAX_NEST: usize = 32;

impl Serialize for Dump {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut dump = serializer.serialize_struct("Dump", 4)?;
        dump.serialize_field("schema", "nursery.dump")?;
        dump.serialize_field("version", &SCHEMA_VERSION)?;
        dump.serialize_field("scopes", &Scopes(&self.scopes, 0))?;
        dump.serialize_field("await_points", points(self.await_points))?;
        dump.end()
    }
}

impl Serialize for ScopeSnapshot {
    /// The scope and the tree below it, as in a [`Dump`], with this scope
    /// at level 0.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ScopeAt(self, 0).serialize(serializer)
    }
}

impl Serialize for TaskSnapshot {
    /// The task and the scopes open inside it, as in a [`Dump`], with this
    /// task at level 0.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TaskAt(self, 0).serialize(serializer)
    }
}

/// Scopes at nesting level `.1`.
struct Scopes<'a>(&'a [ScopeSnapshot], usize);
/// A scope at nesting level `.1`.
struct ScopeAt<'a>(&'a ScopeSnapshot, usize);
/// A task at nesting level `.1`.
struct TaskAt<'a>(&'a TaskSnapshot, usize);

impl Serialize for Scopes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for scope in self.0 {
            seq.serialize_element(&ScopeAt(scope, self.1))?;
        }
        seq.end()
    }
}

impl Serialize for ScopeAt<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ScopeAt(scope, level) = *self;
        let mut out = serializer.serialize_struct("Scope", 7)?;
        scope_fields::<S>(&mut out, scope)?;
        if level >= MAX_NEST {
            out.serialize_field("deeper", &Deeper::of_scope(scope, level))?;
        } else {
            let tasks: Vec<TaskAt<'_>> = scope
                .tasks
                .iter()
                .map(|task| TaskAt(task, level + 1))
                .collect();
            out.serialize_field("tasks", &tasks)?;
            out.serialize_field("scopes", &Scopes(&scope.scopes, level + 1))?;
        }
        out.end()
    }
}

impl Serialize for TaskAt<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let TaskAt(task, level) = *self;
        let mut out = serializer.serialize_struct("Task", 10)?;
        task_fields::<S>(&mut out, task)?;
        if level >= MAX_NEST {
            out.serialize_field("deeper", &Deeper::of_task(task, level))?;
        } else {
            out.serialize_field("scopes", &Scopes(&task.scopes, level + 1))?;
        }
        out.end()
    }
}

fn scope_fields<S: Serializer>(
    out: &mut S::SerializeStruct,
    scope: &ScopeSnapshot,
) -> Result<(), S::Error> {
    out.serialize_field("kind", "scope")?;
    out.serialize_field("name", &scope.name())?;
    out.serialize_field("location", &scope.location.to_string())?;
    out.serialize_field("age_ns", &nanos(scope.age))?;
    out.serialize_field("state", &scope.state.to_string())
}

fn task_fields<S: Serializer>(
    out: &mut S::SerializeStruct,
    task: &TaskSnapshot,
) -> Result<(), S::Error> {
    out.serialize_field("kind", "task")?;
    out.serialize_field("name", &task.name())?;
    out.serialize_field("location", &task.location.to_string())?;
    out.serialize_field("age_ns", &nanos(task.age))?;
    out.serialize_field("state", &task.state.to_string())?;
    out.serialize_field("local", &task.local)?;
    out.serialize_field("blocking", &task.blocking)?;
    out.serialize_field("scope_path", &task.scope_path)?;
    out.serialize_field("trace", &task.trace())
}

/// The schema's name for `points`.
fn points(points: AwaitPoints) -> &'static str {
    match points {
        AwaitPoints::NotAsked => "not_asked",
        AwaitPoints::Taken => "taken",
        AwaitPoints::NotBuilt => "not_built",
        AwaitPoints::TimedOut => "timed_out",
        AwaitPoints::NoRuntime => "no_runtime",
        AwaitPoints::Interrupted => "interrupted",
    }
}

fn nanos(age: std::time::Duration) -> u64 {
    u64::try_from(age.as_nanos()).unwrap_or(u64::MAX)
}

/// Everything below a scope or task at the nesting limit, flat, in the
/// order a depth-first walk meets it, each with its depth: collected with
/// a stack of the walk's own.
enum Node<'a> {
    Scope(&'a ScopeSnapshot),
    Task(&'a TaskSnapshot),
}

struct Deeper<'a>(Vec<(Node<'a>, usize)>);

impl<'a> Deeper<'a> {
    fn of_scope(scope: &'a ScopeSnapshot, level: usize) -> Deeper<'a> {
        let mut pending: Vec<(Node<'a>, usize)> = Vec::new();
        push_children(&mut pending, &Node::Scope(scope), level);
        Deeper::walk(pending)
    }

    fn of_task(task: &'a TaskSnapshot, level: usize) -> Deeper<'a> {
        let mut pending: Vec<(Node<'a>, usize)> = Vec::new();
        push_children(&mut pending, &Node::Task(task), level);
        Deeper::walk(pending)
    }

    fn walk(mut pending: Vec<(Node<'a>, usize)>) -> Deeper<'a> {
        let mut flat = Vec::new();
        while let Some((node, depth)) = pending.pop() {
            push_children(&mut pending, &node, depth);
            flat.push((node, depth));
        }
        Deeper(flat)
    }
}

/// Pushes the children of `node` (at `depth`) so that they pop in order.
fn push_children<'a>(pending: &mut Vec<(Node<'a>, usize)>, node: &Node<'a>, depth: usize) {
    match node {
        Node::Scope(scope) => {
            for inner in scope.scopes.iter().rev() {
                pending.push((Node::Scope(inner), depth + 1));
            }
            for task in scope.tasks.iter().rev() {
                pending.push((Node::Task(task), depth + 1));
            }
        }
        Node::Task(task) => {
            for inner in task.scopes.iter().rev() {
                pending.push((Node::Scope(inner), depth + 1));
            }
        }
    }
}

impl Serialize for Deeper<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (node, depth) in &self.0 {
            seq.serialize_element(&Flat(node, *depth))?;
        }
        seq.end()
    }
}

/// One scope or task of a `deeper` list: its own fields and its depth.
struct Flat<'a, 'b>(&'b Node<'a>, usize);

impl Serialize for Flat<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Flat", 10)?;
        match self.0 {
            Node::Scope(scope) => scope_fields::<S>(&mut out, scope)?,
            Node::Task(task) => task_fields::<S>(&mut out, task)?,
        }
        out.serialize_field("depth", &self.1)?;
        out.end()
    }
}

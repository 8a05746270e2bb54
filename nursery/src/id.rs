//! Who a task is: [`Name`] and [`TaskInfo`], the one identity a task has
//! in the registry, its handle, its errors, causes and reports.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;

use crate::clock::Stamp;
use crate::sync::SharedName;

/// A task's or scope's name: one pointer, so an unnamed task's bookkeeping
/// stays small; cloning it never allocates (naming one allocates once).
#[derive(Clone)]
pub(crate) struct Name(SharedName);

impl Name {
    pub(crate) fn new(name: Cow<'static, str>) -> Name {
        Name(SharedName::new(name))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Who a task is: its name if it has one, where and when it was spawned.
/// What the registry records of a child, what its handle and its
/// `JoinError` keep, what a cause names and what a snapshot shows.
// `pub` only because the limit queue's `Job` trait (reachable by the loom
// models) names it.
#[derive(Clone)]
#[allow(unreachable_pub)]
pub struct TaskInfo {
    pub(crate) name: Option<Name>,
    pub(crate) location: &'static Location<'static>,
    pub(crate) started: Stamp,
}

impl TaskInfo {
    /// A task spawned now.
    pub(crate) fn new(name: Option<Name>, location: &'static Location<'static>) -> TaskInfo {
        TaskInfo::since(name, location, Stamp::now())
    }

    /// A task spawned at `started`.
    pub(crate) fn since(
        name: Option<Name>,
        location: &'static Location<'static>,
        started: Stamp,
    ) -> TaskInfo {
        TaskInfo {
            name,
            location,
            started,
        }
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_ref().map(Name::as_str)
    }
}

/// `task `name` spawned at file:line:col`, as errors and reports print a
/// task.
impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let location = self.location;
        match self.name() {
            Some(name) => write!(f, "task `{name}` spawned at {location}"),
            None => write!(f, "task spawned at {location}"),
        }
    }
}

impl fmt::Debug for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskInfo")
            .field("name", &self.name)
            .field("location", &format_args!("{}", self.location))
            .finish()
    }
}

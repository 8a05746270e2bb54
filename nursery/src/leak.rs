//! The live-task registry: one list per scope of the children it started,
//! with what is needed to abort them and to say who they are.
//!
//! Only spawners and the cancel path touch a scope's list; a finishing child
//! does not. Entries of finished children are swept out when the list has
//! doubled since the last sweep, so the cost per spawn stays constant and
//! the list stays within twice the number of live children (plus a small
//! floor).

use std::fmt;
use std::panic::Location;

use tokio::task::AbortHandle;

use crate::error::{Name, TaskInfo};

/// Below this many entries the list is never swept.
const MIN_SWEEP: usize = 64;

/// The children a scope has started.
pub(crate) struct Registry {
    entries: Vec<Entry>,
    sweep_at: usize,
    aborted: bool,
}

struct Entry {
    abort: AbortHandle,
    location: &'static Location<'static>,
    name: Option<Name>,
}

// ===== impl Registry =====

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            entries: Vec::new(),
            sweep_at: MIN_SWEEP,
            aborted: false,
        }
    }

    /// Records a started child. If the scope has already aborted its
    /// children, this one is aborted at once: it started too late to get a
    /// grace period of its own.
    pub(crate) fn push(&mut self, abort: AbortHandle, info: &TaskInfo) {
        if self.aborted {
            abort.abort();
        }
        if self.entries.len() >= self.sweep_at {
            self.entries.retain(|entry| !entry.abort.is_finished());
            self.sweep_at = (self.entries.len() * 2).max(MIN_SWEEP);
        }
        self.entries.push(Entry {
            abort,
            location: info.location,
            name: info.name.clone(),
        });
    }

    /// Aborts every child started so far, and every child registered later.
    pub(crate) fn abort_all(&mut self) {
        if std::mem::replace(&mut self.aborted, true) {
            return;
        }
        for entry in &self.entries {
            entry.abort.abort();
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tasks = self.entries.iter().map(|entry| TaskInfo {
            name: entry.name.clone(),
            location: entry.location,
        });
        f.debug_struct("Registry")
            .field("tasks", &tasks.collect::<Vec<_>>())
            .field("aborted", &self.aborted)
            .finish()
    }
}

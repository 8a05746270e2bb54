//! [`Shields`]: which of a scope's children are inside
//! [`shield`](crate::shield), and the decision to abort the others.
//!
//! A child is aborted at most once, and never while it is inside a shield
//! it entered before the abort was decided: the abort skips it and it is
//! aborted as it leaves its last shield. A shield entered after the abort
//! was decided comes too late to protect the child (its task may be
//! aborted already): entering says so.
//!
//! Plain data over [`crate::sync`]: no tokio types, so loom can drive it.

// `pub` so that the loom models in `nursery-tests` can reach these types
// through `nursery::__loom` (built only with `--cfg nursery_loom`).
#![cfg_attr(not(nursery_loom), allow(unreachable_pub))]

use std::fmt;

use crate::sync::{AtomicUsize, Mutex, Ordering, lock};

/// The children of one scope inside a shield, by `K` (who they are).
pub struct Shields<K> {
    /// How many children are inside a shield: 0 spares the abort a lock.
    inside: AtomicUsize,
    state: Mutex<State<K>>,
}

struct State<K> {
    /// The abort has been decided.
    aborted: bool,
    /// Who is inside, with how many shields deep.
    inside: Vec<(K, usize)>,
    /// Who the abort skipped: aborted as they leave their last shield.
    deferred: Vec<K>,
}

impl<K: Copy + PartialEq> Shields<K> {
    /// Nobody inside, no abort decided.
    pub fn new() -> Shields<K> {
        Shields {
            inside: AtomicUsize::new(0),
            state: Mutex::new(State {
                aborted: false,
                inside: Vec::new(),
                deferred: Vec::new(),
            }),
        }
    }

    /// `who` enters a shield (perhaps one inside another). Returns whether
    /// it is protected: `false` if the abort was decided before, in which
    /// case `who` is (or is about to be) aborted all the same.
    pub fn enter(&self, who: K) -> bool {
        let mut state = lock(&self.state);
        match state.inside.iter_mut().find(|(inside, _)| *inside == who) {
            Some((_, depth)) => *depth += 1,
            None => {
                state.inside.push((who, 1));
                self.inside.fetch_add(1, Ordering::Release);
            }
        }
        !state.aborted || state.deferred.contains(&who)
    }

    /// `who` leaves a shield. Returns `true` if it left its last one and
    /// the abort skipped it: the caller aborts it now.
    pub fn leave(&self, who: K) -> bool {
        let mut state = lock(&self.state);
        let Some(at) = state.inside.iter().position(|(inside, _)| *inside == who) else {
            return false;
        };
        state.inside[at].1 -= 1;
        if state.inside[at].1 > 0 {
            return false;
        }
        state.inside.swap_remove(at);
        self.inside.fetch_sub(1, Ordering::Release);
        match state.deferred.iter().position(|deferred| *deferred == who) {
            Some(at) => {
                state.deferred.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// Decides the abort: from now on a shield entered protects nobody.
    /// Returns who it spares (those inside a shield now, usually nobody):
    /// the caller aborts every other child, and these as they leave.
    pub fn abort(&self) -> Vec<K> {
        let mut state = lock(&self.state);
        state.aborted = true;
        let spared: Vec<K> = state.inside.iter().map(|(who, _)| *who).collect();
        state.deferred.clone_from(&spared);
        spared
    }

    /// Whether `who` is inside a shield now.
    pub fn is_inside(&self, who: K) -> bool {
        self.inside.load(Ordering::Acquire) > 0
            && lock(&self.state)
                .inside
                .iter()
                .any(|(inside, _)| *inside == who)
    }

    /// How many children are inside a shield now.
    pub fn count(&self) -> usize {
        self.inside.load(Ordering::Acquire)
    }
}

impl<K: Copy + PartialEq> Default for Shields<K> {
    fn default() -> Shields<K> {
        Shields::new()
    }
}

impl<K> fmt::Debug for Shields<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shields")
            .field("inside", &self.inside.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

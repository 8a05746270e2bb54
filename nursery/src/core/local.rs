//! What the wakers and admission tickets of a scope's local children tell
//! the scope future that polls them.
//!
//! A local child runs on the scope's own task: the scope future polls it.
//! Its waker may fire on any thread, and so may the limiter's decision to
//! admit it (a parallel child ending elsewhere hands its weight on). Both
//! leave a note here and wake the scope future, which reads the notes on
//! its next poll ([`Signals::take`]) and polls only the children named.
//!
//! Plain data over [`crate::sync`]: no tokio types, so loom can drive it.

// `pub` so that the loom models in `nursery-tests` can reach these types
// through `nursery::__loom` (built only with `--cfg nursery_loom`).
#![cfg_attr(not(nursery_loom), allow(unreachable_pub))]

use std::fmt;
use std::task::Waker;

use crate::sync::{AtomicBool, Mutex, Ordering, lock};

/// The notes left for one scope future by its local children's wakers and
/// tickets, and the waker that brings the scope future round to read them.
///
/// # Invariants
///
/// - A wake that happens after the scope future cleared a child's flag
///   ([`Wakeup::clear`]) leaves that child's slot in `woken` (or finds it
///   there already), and wakes the scope future: a child woken while it is
///   being polled is polled again.
/// - Every note is read exactly once: [`Signals::take`] swaps the lists
///   out under the lock that the notes are written under.
pub struct Signals {
    state: Mutex<Notes>,
}

/// The notes, as [`Signals::take`] hands them over.
#[derive(Default)]
pub struct Notes {
    /// The slots of the children woken since the last look, each once.
    pub woken: Vec<usize>,
    /// Queued children admitted under the limit: their ticket number and
    /// the weight they now hold.
    pub admitted: Vec<(u64, usize)>,
    /// Queued children that will never be admitted (the queue closed on a
    /// cancel): their ticket numbers.
    pub refused: Vec<u64>,
    waker: Option<Waker>,
}

impl Notes {
    /// Whether there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.woken.is_empty() && self.admitted.is_empty() && self.refused.is_empty()
    }
}

impl Signals {
    /// No notes, and no waker yet.
    pub fn new() -> Signals {
        Signals {
            state: Mutex::new(Notes::default()),
        }
    }

    /// Sets the waker of the scope future; call before [`Signals::take`], so
    /// that a note written after the take wakes it.
    pub fn register(&self, waker: &Waker) {
        let mut state = lock(&self.state);
        match &state.waker {
            Some(current) if current.will_wake(waker) => {}
            _ => state.waker = Some(waker.clone()),
        }
    }

    /// Hands over every note written since the last call, swapping the
    /// caller's emptied lists in (so that neither side allocates in the
    /// steady state).
    pub fn take(&self, into: &mut Notes) {
        into.woken.clear();
        into.admitted.clear();
        into.refused.clear();
        let mut state = lock(&self.state);
        std::mem::swap(&mut state.woken, &mut into.woken);
        std::mem::swap(&mut state.admitted, &mut into.admitted);
        std::mem::swap(&mut state.refused, &mut into.refused);
    }

    /// The child in `slot` was woken.
    pub fn woken(&self, slot: usize) {
        self.note(|notes| notes.woken.push(slot));
    }

    /// The queued child with ticket `ticket` was admitted, holding `weight`.
    pub fn admitted(&self, ticket: u64, weight: usize) {
        self.note(|notes| notes.admitted.push((ticket, weight)));
    }

    /// The queued child with ticket `ticket` will never be admitted.
    pub fn refused(&self, ticket: u64) {
        self.note(|notes| notes.refused.push(ticket));
    }

    fn note(&self, write: impl FnOnce(&mut Notes)) {
        let mut state = lock(&self.state);
        write(&mut state);
        // Waking a tokio waker by reference only schedules the task:
        // holding the lock is fine, and spares a clone.
        if let Some(waker) = &state.waker {
            waker.wake_by_ref();
        }
    }
}

impl Default for Signals {
    fn default() -> Signals {
        Signals::new()
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Signals")
            .field("woken", &state.woken.len())
            .field("admitted", &state.admitted.len())
            .field("refused", &state.refused.len())
            .finish()
    }
}

/// Whether the child in one slot has a wake pending: a wake notes the slot
/// once, however often it fires, until the scope future clears the flag to
/// poll the child.
#[derive(Debug)]
pub struct Wakeup {
    queued: AtomicBool,
}

impl Wakeup {
    /// A flag with no wake pending.
    pub fn new() -> Wakeup {
        Wakeup {
            queued: AtomicBool::new(false),
        }
    }

    /// Wakes the child in `slot`: notes it with `signals` unless a wake is
    /// pending already.
    pub fn wake(&self, slot: usize, signals: &Signals) {
        // AcqRel: the scope future's clear (and the poll after it) comes
        // before a wake that finds the flag clear, or the note is written.
        if !self.queued.swap(true, Ordering::AcqRel) {
            signals.woken(slot);
        }
    }

    /// Clears a pending wake, just before the child is polled: a wake from
    /// then on notes the slot again.
    pub fn clear(&self) {
        // A read-modify-write, not a store: the child's poll must not be
        // ordered before it, or a wake between the two would be lost.
        self.queued.swap(false, Ordering::AcqRel);
    }
}

impl Default for Wakeup {
    fn default() -> Wakeup {
        Wakeup::new()
    }
}

impl fmt::Debug for Notes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notes")
            .field("woken", &self.woken)
            .field("admitted", &self.admitted)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

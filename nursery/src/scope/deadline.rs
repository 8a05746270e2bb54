//! [`Deadline`]: a deadline that can move while its scope runs
//! ([`Nursery::set_deadline`](crate::Nursery::set_deadline)), read on
//! every check of the scope without a lock.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::FAR_FUTURE;
use crate::sync::{AtomicU64, Ordering};

/// No deadline.
const NONE: u64 = u64::MAX;

/// An optional deadline, as nanoseconds after its scope's epoch (the
/// instant the scope opened). A deadline before the epoch reads as the
/// epoch: passed already. One beyond 584 years reads as the far future.
pub(crate) struct Deadline(AtomicU64);

impl Deadline {
    pub(crate) fn new(at: Option<Instant>, epoch: Instant) -> Deadline {
        Deadline(AtomicU64::new(encode(at, epoch)))
    }

    pub(crate) fn get(&self, epoch: Instant) -> Option<Instant> {
        // Acquire: a scope that reads a moved deadline sees what the mover
        // did before it (the own deadline it set, the scopes it walked).
        match self.0.load(Ordering::Acquire) {
            NONE => None,
            nanos => Some(
                epoch
                    .checked_add(Duration::from_nanos(nanos))
                    .unwrap_or_else(|| Instant::now() + FAR_FUTURE),
            ),
        }
    }

    pub(crate) fn set(&self, at: Option<Instant>, epoch: Instant) {
        self.0.store(encode(at, epoch), Ordering::Release);
    }

    /// Whether the deadline has passed at `now`.
    pub(crate) fn passed(&self, epoch: Instant, now: Instant) -> bool {
        match self.0.load(Ordering::Acquire) {
            NONE => false,
            nanos => now.saturating_duration_since(epoch).as_nanos() >= u128::from(nanos),
        }
    }
}

fn encode(at: Option<Instant>, epoch: Instant) -> u64 {
    match at {
        None => NONE,
        Some(at) => u64::try_from(at.saturating_duration_since(epoch).as_nanos())
            .unwrap_or(NONE - 1)
            .min(NONE - 1),
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.load(Ordering::Relaxed) {
            NONE => f.write_str("none"),
            nanos => write!(f, "{:?} after opening", Duration::from_nanos(nanos)),
        }
    }
}

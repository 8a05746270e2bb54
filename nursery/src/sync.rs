//! The std/loom facade: the only place that names atomics, locks and `Arc`.
//!
//! Built normally it re-exports `std`; built with `--cfg nursery_loom` it
//! re-exports `loom`, so the scope's shared core ([`crate::core::Core`] and
//! [`crate::core::limiter::Limiter`]) can be model-checked under every interleaving.

#[cfg(not(nursery_loom))]
pub(crate) use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

#[cfg(nursery_loom)]
pub(crate) use loom::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

/// A reference that does not keep a scope alive (the leak watcher's).
///
/// loom's `Arc` has no weak counterpart; under loom this holds a strong
/// reference instead, which the models never reach (they run no watcher).
#[cfg(not(nursery_loom))]
#[derive(Debug)]
pub(crate) struct Weak<T>(std::sync::Weak<T>);

#[cfg(not(nursery_loom))]
impl<T> Weak<T> {
    pub(crate) fn new(value: &Arc<T>) -> Weak<T> {
        Weak(Arc::downgrade(value))
    }

    pub(crate) fn upgrade(&self) -> Option<Arc<T>> {
        self.0.upgrade()
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

#[cfg(nursery_loom)]
#[derive(Debug)]
pub(crate) struct Weak<T>(Arc<T>);

#[cfg(nursery_loom)]
impl<T> Weak<T> {
    pub(crate) fn new(value: &Arc<T>) -> Weak<T> {
        Weak(value.clone())
    }

    pub(crate) fn upgrade(&self) -> Option<Arc<T>> {
        Some(self.0.clone())
    }

    pub(crate) fn is_alive(&self) -> bool {
        true
    }
}

/// Shared values outside the modelled core that tokio APIs take as
/// `std::sync::Arc` (an owned semaphore permit, say): the bulk helpers' and
/// pipelines' plumbing, and the traces snapshots share. Never loom's.
pub(crate) use std::sync::Arc as StdArc;
/// A counter of that plumbing (a pipeline stage's workers). Never loom's.
pub(crate) use std::sync::atomic::AtomicUsize as StdAtomicUsize;

pub(crate) use std::sync::atomic::AtomicUsize as StaticAtomicUsize;
/// Process-wide state outside the modelled core (the list of root scopes,
/// kept leaks, the leak watcher's queue) lives in statics, which loom's
/// types cannot: it always uses std.
pub(crate) use std::sync::{Condvar as StaticCondvar, Mutex as StaticMutex};

/// Immutable shared text (task and scope names), behind a thin pointer. It
/// carries no synchronisation of its own beyond the refcount, so it is never
/// modelled.
pub(crate) type SharedName = std::sync::Arc<std::borrow::Cow<'static, str>>;

/// Locks a process-wide `mutex`, ignoring poisoning (see [`lock`]).
pub(crate) fn static_lock<T>(mutex: &StaticMutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Locks `mutex`, ignoring poisoning.
///
/// No user code runs while one of the crate's locks is held (futures and
/// errors are always dropped after unlocking), so a poisoned lock can only
/// mean a panic inside the crate's own bookkeeping, whose state is still
/// consistent at every unlock point.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

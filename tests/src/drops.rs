//! What was dropped, and when: counters and guards to put inside child futures.

/// Counts the [`DropGuard`]s it handed out that have been dropped, and wakes
/// whoever waits for a given number of drops.
///
/// Put a guard into a child future (or body) to learn when that future has
/// been dropped: completed, or aborted after a cancel.
#[derive(Clone, Debug, Default)]
pub struct DropCounter {
    inner: std::sync::Arc<DropCounterInner>,
}

#[derive(Debug, Default)]
struct DropCounterInner {
    dropped: std::sync::atomic::AtomicUsize,
    notify: tokio::sync::Notify,
}

impl DropCounter {
    /// A counter with nothing dropped yet.
    pub fn new() -> DropCounter {
        DropCounter::default()
    }

    /// A guard that counts one drop when it is dropped.
    pub fn guard(&self) -> DropGuard {
        DropGuard {
            counter: self.clone(),
        }
    }

    /// How many guards have been dropped so far.
    pub fn dropped(&self) -> usize {
        self.inner.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until at least `n` guards have been dropped.
    pub async fn wait_for(&self, n: usize) {
        loop {
            let notified = self.inner.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a drop in between still wakes us.
            notified.as_mut().enable();
            if self.dropped() >= n {
                return;
            }
            notified.await;
        }
    }
}

/// Counts one drop on its [`DropCounter`] when dropped.
#[derive(Debug)]
pub struct DropGuard {
    counter: DropCounter,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.counter
            .inner
            .dropped
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.counter.inner.notify.notify_waiters();
    }
}

/// Awaits `future`; the first time it is pending, drops `parked` (after the
/// poll that checked it), so a test waiting for every `parked` guard knows
/// each task is idle inside `future` and no poll of it is in flight.
pub async fn parked_in<F: std::future::Future>(future: F, parked: DropGuard) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut parked = Some(parked);
    std::future::poll_fn(|cx| {
        let polled = future.as_mut().poll(cx);
        if polled.is_pending() {
            parked.take();
        }
        polled
    })
    .await
}

/// Panics with `payload` when dropped (unless the thread is already
/// unwinding): a future whose destructor panics.
#[derive(Debug)]
pub struct PanicOnDrop(pub &'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            std::panic::panic_any(self.0);
        }
    }
}

/// Watches one future: whether it was ever polled, whether it ran to
/// completion, and when (on tokio's clock, so paused-time tests can compare
/// instants) it was dropped.
///
/// Wrap a child with [`Tracker::track`] before spawning it.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    inner: std::sync::Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    polled: std::sync::atomic::AtomicBool,
    completed: std::sync::atomic::AtomicBool,
    dropped_at: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Tracker {
    /// A tracker that has seen nothing yet.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Wraps `future` so that this tracker records its first poll, its
    /// completion and its drop (also when it is dropped unpolled).
    pub fn track<F: std::future::Future>(
        &self,
        future: F,
    ) -> impl std::future::Future<Output = F::Output> + use<F> {
        let stamp = TrackerDropStamp(self.clone());
        let tracker = self.clone();
        async move {
            let _stamp = stamp;
            tracker
                .inner
                .polled
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let output = future.await;
            tracker
                .inner
                .completed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            output
        }
    }

    /// Whether the future was polled at least once.
    pub fn was_polled(&self) -> bool {
        self.inner.polled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the future ran to completion (as opposed to being dropped
    /// while pending).
    pub fn completed(&self) -> bool {
        self.inner
            .completed
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// When the future was dropped, if it was.
    pub fn dropped_at(&self) -> Option<tokio::time::Instant> {
        *self
            .inner
            .dropped_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the future has been dropped.
    pub fn was_dropped(&self) -> bool {
        self.dropped_at().is_some()
    }
}

/// Records the drop instant on its [`Tracker`].
struct TrackerDropStamp(Tracker);

impl Drop for TrackerDropStamp {
    fn drop(&mut self) {
        let mut slot = self
            .0
            .inner
            .dropped_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(tokio::time::Instant::now);
    }
}

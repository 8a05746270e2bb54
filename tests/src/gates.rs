//! Ordering a test's steps across tasks and threads: gates, rendezvous, and a gauge of how many run at once.

/// A one-shot gate for blocking code: closures on tokio's blocking pool wait
/// on it until the test opens it.
#[derive(Debug, Default)]
pub struct Latch {
    open: std::sync::Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Latch {
    /// A closed latch, shared.
    pub fn new() -> std::sync::Arc<Latch> {
        std::sync::Arc::new(Latch::default())
    }

    /// Opens the latch for every waiter, present and future.
    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.changed.notify_all();
    }

    /// Blocks the thread until the latch is open, or `limit` has passed (a
    /// safety net so a broken test fails instead of hanging). Returns whether
    /// the latch was opened.
    pub fn wait(&self, limit: std::time::Duration) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (open, _) = self
            .changed
            .wait_timeout_while(open, limit, |open| !*open)
            .unwrap_or_else(|e| e.into_inner());
        *open
    }
}

/// Yields to the scheduler `rounds` times, so every task that is ready to
/// run gets polled. Only for checking that something has *not* happened
/// (a scope that must still be waiting): on a current-thread runtime every
/// ready task runs before this returns.
pub async fn yield_rounds(rounds: usize) {
    for _ in 0..rounds {
        tokio::task::yield_now().await;
    }
}

/// A concurrency gauge with a high-water mark: how many holders of a
/// [`HighWaterGuard`] exist now, and the most that ever existed at once.
#[derive(Clone, Debug, Default)]
pub struct HighWater {
    inner: std::sync::Arc<HighWaterInner>,
}

#[derive(Debug, Default)]
struct HighWaterInner {
    current: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    notify: tokio::sync::Notify,
}

impl HighWater {
    /// A gauge at zero.
    pub fn new() -> HighWater {
        HighWater::default()
    }

    /// Counts one more holder until the guard is dropped.
    pub fn enter(&self) -> HighWaterGuard {
        let now = self
            .inner
            .current
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.inner
            .peak
            .fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        self.inner.notify.notify_waiters();
        HighWaterGuard(self.clone())
    }

    /// Waits until at least `n` holders exist at once.
    pub async fn wait_for_current(&self, n: usize) {
        loop {
            let notified = self.inner.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so an `enter` in between still
            // wakes us.
            notified.as_mut().enable();
            if self.current() >= n {
                return;
            }
            notified.await;
        }
    }

    /// Holders right now.
    pub fn current(&self) -> usize {
        self.inner.current.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most holders there ever were at once.
    pub fn peak(&self) -> usize {
        self.inner.peak.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One holder of a [`HighWater`] gauge.
#[derive(Debug)]
pub struct HighWaterGuard(HighWater);

impl Drop for HighWaterGuard {
    fn drop(&mut self) {
        self.0
            .inner
            .current
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A `std::sync::Barrier` with a time limit, for blocking code: `parties`
/// threads meet, or each gives up after the limit (so a broken test fails
/// instead of hanging).
#[derive(Debug)]
pub struct Rendezvous {
    parties: usize,
    arrived: std::sync::Mutex<usize>,
    changed: std::sync::Condvar,
}

impl Rendezvous {
    /// A rendezvous for `parties` threads, shared.
    pub fn new(parties: usize) -> std::sync::Arc<Rendezvous> {
        std::sync::Arc::new(Rendezvous {
            parties,
            arrived: std::sync::Mutex::new(0),
            changed: std::sync::Condvar::new(),
        })
    }

    /// Arrives and blocks until all parties have arrived, or `limit` has
    /// passed. Returns whether all of them met.
    pub fn meet(&self, limit: std::time::Duration) -> bool {
        let mut arrived = self.arrived.lock().unwrap_or_else(|e| e.into_inner());
        *arrived += 1;
        self.changed.notify_all();
        let (arrived, _) = self
            .changed
            .wait_timeout_while(arrived, limit, |arrived| *arrived < self.parties)
            .unwrap_or_else(|e| e.into_inner());
        *arrived >= self.parties
    }
}

/// Polls `future` once under a waker that wakes nobody, then moves it to a
/// task of its own that polls it from then on; returns once that task has
/// polled it and found it pending, with the task's handle. For checking
/// that a future keeps the waker of the task that polls it now, not the
/// first one it saw.
///
/// # Panics
///
/// If the future is ready at the first poll, or the task has not polled it
/// within the bound of [`within`](crate::within).
pub async fn moved_to_a_new_task<F>(
    mut future: std::pin::Pin<Box<F>>,
) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(
        future.as_mut().poll(&mut cx).is_pending(),
        "the future waits at its first poll"
    );
    let (waiting_tx, waiting) = tokio::sync::oneshot::channel();
    let mut waiting_tx = Some(waiting_tx);
    let task = tokio::spawn(std::future::poll_fn(move |cx| {
        let polled = future.as_mut().poll(cx);
        if polled.is_pending()
            && let Some(waiting_tx) = waiting_tx.take()
        {
            let _ = waiting_tx.send(());
        }
        polled
    }));
    crate::within("the task's first poll", waiting)
        .await
        .expect("the task polled the future");
    task
}

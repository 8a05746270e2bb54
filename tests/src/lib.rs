//! Shared helpers for the integration tests and benchmarks of `nursery`.
//!
//! The tests themselves live in `tests/tests/`, one file per guarantee or
//! feature; the benchmarks against the peers in `tests/benches/`.

#![forbid(unsafe_code)]

// ===== helpers for g1_join, g2_fail_fast, g3_panics, g6_grace, g7_drop =====

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

// ===== bounded waits, for every test =====

/// How long [`within`] waits for something that should end: far beyond
/// what any passing test takes, so only a hang reaches it.
pub const BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Awaits `future`, failing the test with "still running after 10 s:
/// `what`" if it has not finished within [`BOUND`] of real time: a scope
/// that should end but does not (a broken cancel) fails the test instead
/// of hanging the suite.
///
/// The bound is real time, kept by a thread of its own, not tokio's clock:
/// on a paused clock (`start_paused = true`) tokio's time jumps ahead
/// whenever the runtime is idle, so a `tokio::time::timeout` would cut
/// short a test that sleeps through a virtual hour, and would fire at
/// once, not after 10 s, on a hang. Real time needs no timer on the
/// runtime either.
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    within_for(BOUND, what, future).await
}

/// [`within`] with a bound of `limit` instead of [`BOUND`], for work that
/// is slow by design (tens of thousands of nested scopes in a debug build).
pub async fn within_for<F: std::future::Future>(
    limit: std::time::Duration,
    what: &str,
    future: F,
) -> F::Output {
    let (expired_tx, expired) = tokio::sync::oneshot::channel::<()>();
    // Dropped when this future ends (or is dropped): the watchdog then
    // stops waiting at once.
    let (_done, done) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("nursery-tests-within".to_owned())
        .spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(limit) {
                let _ = expired_tx.send(());
            }
        })
        .expect("within: failed to start the watchdog thread");
    tokio::select! {
        biased;
        output = future => output,
        Ok(()) = expired => panic!("still running after {} s: {what}", limit.as_secs_f64()),
    }
}

// ===== helpers for g4_hierarchy, g5_deadline, g6_grace, g8_limits, g9_self_cancel, scope_misuse =====

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

/// The message of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

// ===== helpers for leaks, dump =====

/// Every [`nursery::Leak`] reported in this test binary, from a hook set
/// once with [`nursery::set_leak_hook`].
///
/// The hook is process-wide and tests run in parallel, so there is one log
/// for all of them: each test picks out its own leaks by something only it
/// has (a task name, a spawn location, a scope name).
#[derive(Debug)]
pub struct LeakLog {
    leaks: std::sync::Mutex<Vec<nursery::Leak>>,
    notify: tokio::sync::Notify,
}

impl LeakLog {
    /// The log, with the hook set the first time it is asked for.
    pub fn get() -> &'static LeakLog {
        static LOG: std::sync::OnceLock<&'static LeakLog> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let log: &'static LeakLog = Box::leak(Box::new(LeakLog {
                leaks: std::sync::Mutex::new(Vec::new()),
                notify: tokio::sync::Notify::new(),
            }));
            nursery::set_leak_hook(move |leak| {
                log.leaks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(leak.clone());
                log.notify.notify_waiters();
            });
            log
        })
    }

    /// The leaks reported so far that `mine` picks out.
    pub fn matching(&self, mine: impl Fn(&nursery::Leak) -> bool) -> Vec<nursery::Leak> {
        self.leaks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|leak| mine(leak))
            .cloned()
            .collect()
    }

    /// Waits until at least `n` of the reported leaks are picked out by
    /// `mine`, or `limit` has passed; returns those found. Needs the
    /// runtime's timer, running (not paused).
    pub async fn wait_for(
        &self,
        n: usize,
        limit: std::time::Duration,
        mine: impl Fn(&nursery::Leak) -> bool,
    ) -> Vec<nursery::Leak> {
        let give_up = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a report in between still wakes us.
            notified.as_mut().enable();
            let found = self.matching(&mine);
            if found.len() >= n || tokio::time::Instant::now() >= give_up {
                return found;
            }
            let _ = tokio::time::timeout_at(give_up, notified).await;
        }
    }
}

/// The lines of one root scope's tree in a printed [`nursery::Dump`]: from
/// the line `scope `root` opened at ...` up to the next root.
///
/// Panics if the dump has no root of that name, or more than one.
pub fn dump_subtree(dump: &str, root: &str) -> String {
    let head = format!("scope `{root}` opened at ");
    let mut found = 0;
    let mut lines = Vec::new();
    let mut inside = false;
    for line in dump.lines() {
        if !line.starts_with(' ') {
            inside = line.starts_with(&head);
            found += usize::from(inside);
        }
        if inside {
            lines.push(line);
        }
    }
    assert_eq!(found, 1, "root scope `{root}` in the dump:\n{dump}");
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// `text` with every age (what follows the last ` for ` on a line, as in
/// `running for 12ms`) replaced by `<age>`, so a dump or report can be
/// compared exactly.
pub fn mask_ages(text: &str) -> String {
    let mut masked = String::new();
    for line in text.lines() {
        match line.rfind(", age ") {
            Some(at) => {
                masked.push_str(&line[..at]);
                masked.push_str(", age <age>");
            }
            None => masked.push_str(line),
        }
        masked.push('\n');
    }
    masked
}

// ===== helpers for pipeline, weighted =====

/// Where a panic happened and what it said, as [`catch_panic_site`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicSite {
    /// The panic's message (see [`panic_message`]).
    pub message: String,
    /// `file:line` of the panic, as the panic hook reported it (the caller's
    /// line for a `#[track_caller]` function).
    pub location: String,
}

std::thread_local! {
    /// Set while [`catch_panic_site`] runs on this thread: the location of
    /// the last panic here.
    static PANIC_SITE: std::cell::RefCell<Option<Option<String>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` and, if it panics, returns where and with what message instead
/// of unwinding further. The panic hook is wrapped once per process: panics
/// on other threads, or outside this function, go to the previous hook as
/// before, so tests running in parallel are not disturbed.
pub fn catch_panic_site<R>(f: impl FnOnce() -> R) -> Result<R, PanicSite> {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    WRAPPED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|location| format!("{}:{}", location.file(), location.line()));
            let captured = PANIC_SITE.with(|site| match site.try_borrow_mut() {
                Ok(mut site) if site.is_some() => {
                    *site = Some(location);
                    true
                }
                _ => false,
            });
            if !captured {
                previous(info);
            }
        }));
    });
    PANIC_SITE.with(|site| *site.borrow_mut() = Some(None));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let location = PANIC_SITE.with(|site| site.borrow_mut().take()).flatten();
    result.map_err(|payload| PanicSite {
        message: panic_message(&*payload),
        location: location.unwrap_or_default(),
    })
}

// ===== helpers for tree_props, soak =====

/// The current runtime's tasks still alive, called right after a scope
/// returned: every child future has been dropped then (G1), but on a
/// multi-thread runtime the worker that dropped the last one may still be
/// taking its finished task off the runtime's list, in parallel with the
/// scope returning. Tokio wakes a `JoinHandle` before that step too, so
/// even a plain `tokio::spawn` awaited through its handle is counted alive
/// for a moment (about 3% of the time on the development machine). On a
/// multi-thread runtime this waits (up to a second, yielding the thread)
/// for the count to fall to zero by itself; on a current-thread runtime,
/// where that step ran before the scope's task was polled again, it
/// returns the count at once.
pub fn settled_alive_tasks() -> usize {
    let metrics = tokio::runtime::Handle::current().metrics();
    if metrics.num_workers() > 1 {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while metrics.num_alive_tasks() != 0 && std::time::Instant::now() < give_up {
            std::thread::yield_now();
        }
    }
    metrics.num_alive_tasks()
}

// ===== the guide and the README, compiled and run as doctests =====

/// Every Rust code block of the guide (`docs/src/*.md`) and of `README.md`,
/// run by `cargo test -p nursery-tests --doc` (and `cargo test --workspace`)
/// so that the documentation cannot drift from the code.
#[cfg(doctest)]
pub mod guide {
    #[doc = include_str!("../../README.md")]
    pub mod readme {}
    #[doc = include_str!("../../docs/src/why.md")]
    pub mod why {}
    #[doc = include_str!("../../docs/src/scopes.md")]
    pub mod scopes {}
    #[doc = include_str!("../../docs/src/errors.md")]
    pub mod errors {}
    #[doc = include_str!("../../docs/src/cancellation.md")]
    pub mod cancellation {}
    #[doc = include_str!("../../docs/src/limits.md")]
    pub mod limits {}
    #[doc = include_str!("../../docs/src/fan_out.md")]
    pub mod fan_out {}
    #[doc = include_str!("../../docs/src/testing.md")]
    pub mod testing {}
    #[doc = include_str!("../../docs/src/macros.md")]
    pub mod macros {}
    #[doc = include_str!("../../docs/src/observability.md")]
    pub mod observability {}
    #[doc = include_str!("../../docs/src/performance.md")]
    pub mod performance {}
    #[doc = include_str!("../../docs/src/comparison.md")]
    pub mod comparison {}
    #[doc = include_str!("../../docs/src/from_go.md")]
    pub mod from_go {}
}

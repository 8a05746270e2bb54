//! [`Leak`]: what escaped a dropped scope, the hook it is reported
//! through ([`set_leak_hook`]), and the leaks kept for the checks in
//! [`testing`](crate::testing).

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use tokio::task::Id;

use crate::snapshot::{Age, DisplayName, TaskSnapshot};
use crate::sync::{StaticMutex, static_lock};

/// What escaped a dropped scope: a task still alive a leak-grace window
/// after its scope was dropped, or a panic that no scope was left to
/// re-raise ([`Leak::panic`]).
///
/// Reported through the hook set with [`set_leak_hook`], and kept for
/// [`testing::assert_no_leaks`](crate::testing::assert_no_leaks) on the
/// same runtime.
///
/// A panic in a task of a dropped scope is re-raised by the nearest
/// enclosing scope still running, as its own child's would be (G3). Under
/// a dropped *root* scope (or one whose parent has returned) nobody is
/// left to re-raise it: it is reported as a lost panic, with the task's
/// name and spawn site when known, rather than only printed by the panic
/// hook.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Mutex;
/// use std::time::Duration;
///
/// static FOUND: Mutex<Vec<nursery::Leak>> = Mutex::new(Vec::new());
/// nursery::set_leak_hook(|leak| FOUND.lock().unwrap().push(leak.clone()));
///
/// let (started, running) = tokio::sync::oneshot::channel();
/// let (release, stuck) = std::sync::mpsc::channel::<()>();
/// let scope = nursery::Nursery::builder()
///     .leak_grace(Duration::from_millis(10))
///     .scope(|n| async move {
///         n.spawn_blocking_named("stuck", move |_token| {
///             let _ = started.send(());
///             let _ = stuck.recv(); // blocking: no abort can stop it
///             Ok::<_, ()>(())
///         });
///         std::future::pending::<Result<(), ()>>().await
///     });
/// tokio::select! {
///     _ = scope => unreachable!("the body never returns"),
///     _ = running => {} // the scope is dropped here, its child blocked
/// }
/// let leak = tokio::time::timeout(Duration::from_secs(10), async {
///     loop {
///         if let Some(leak) = FOUND.lock().unwrap().first().cloned() {
///             break leak;
///         }
///         tokio::time::sleep(Duration::from_millis(10)).await;
///     }
/// })
/// .await
/// .expect("reported once the leak grace has passed");
/// drop(release); // the child ends
/// // task `stuck` spawned at FILE:LINE:COL, in scope <unnamed>: still alive 10ms after its scope was dropped
/// println!("{leak}");
/// assert_eq!(leak.task().name(), Some("stuck"));
/// assert!(leak.after() >= Duration::from_millis(10)); // the leak grace
/// assert_eq!(leak.runtime(), tokio::runtime::Handle::current().id());
/// assert_eq!(leak.panic(), None);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Leak {
    task: TaskSnapshot,
    after: Duration,
    runtime: tokio::runtime::Id,
    /// The panic's message, for a lost panic.
    panic: Option<std::sync::Arc<str>>,
}

impl Leak {
    pub(crate) fn new(
        task: TaskSnapshot,
        after: Duration,
        runtime: tokio::runtime::Id,
        panic: Option<std::sync::Arc<str>>,
    ) -> Leak {
        Leak {
            task,
            after,
            runtime,
            panic,
        }
    }

    /// The task, as it was when the leak was found (see [`Leak`]'s
    /// example).
    pub fn task(&self) -> &TaskSnapshot {
        &self.task
    }

    /// How long after its scope was dropped it was found still alive (at
    /// least the scope's leak-grace window), or it panicked.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// The runtime its scope ran on.
    pub fn runtime(&self) -> tokio::runtime::Id {
        self.runtime
    }

    /// For a lost panic, the panic's message (`"Box<dyn Any>"` when the
    /// payload is not text): the task panicked after its scope was
    /// dropped, and no enclosing scope was left to re-raise it. `None` for
    /// a task found still alive.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Mutex;
    ///
    /// static FOUND: Mutex<Vec<nursery::Leak>> = Mutex::new(Vec::new());
    /// nursery::set_leak_hook(|leak| FOUND.lock().unwrap().push(leak.clone()));
    ///
    /// let (started, running) = tokio::sync::oneshot::channel();
    /// let (drop_tx, dropped) = std::sync::mpsc::channel::<()>();
    /// let scope = nursery::scope(|n| async move {
    ///     n.spawn_blocking_named("late", move |_token| {
    ///         let _ = started.send(());
    ///         let _ = dropped.recv(); // until the scope has been dropped
    ///         panic!("too late to re-raise");
    ///         #[allow(unreachable_code)]
    ///         Ok::<_, ()>(())
    ///     });
    ///     std::future::pending::<Result<(), ()>>().await
    /// });
    /// tokio::select! {
    ///     _ = scope => unreachable!(),
    ///     _ = running => {} // the scope future is dropped here
    /// }
    /// drop(drop_tx);
    /// let leak = tokio::time::timeout(std::time::Duration::from_secs(10), async {
    ///     loop {
    ///         if let Some(leak) = FOUND.lock().unwrap().first().cloned() {
    ///             break leak;
    ///         }
    ///         tokio::task::yield_now().await;
    ///     }
    /// })
    /// .await
    /// .expect("reported once the child has panicked");
    /// assert_eq!(leak.panic(), Some("too late to re-raise"));
    /// assert_eq!(leak.task().name(), Some("late"));
    /// # }
    /// ```
    pub fn panic(&self) -> Option<&str> {
        self.panic.as_deref()
    }

    /// The tokio task's id, to tell a leak from the same task still alive.
    pub(crate) fn task_id(&self) -> Option<Id> {
        self.task.id
    }
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task {} spawned at {}, in scope {}: ",
            DisplayName(self.task.name()),
            self.task.location,
            self.task.scope_path,
        )?;
        match &self.panic {
            None => write!(
                f,
                "still alive {} after its scope was dropped",
                Age(self.after)
            ),
            Some(message) => write!(
                f,
                "panicked {} after its scope was dropped, with no scope left to re-raise it: {message}",
                Age(self.after)
            ),
        }
    }
}

type Hook = std::sync::Arc<dyn Fn(&Leak) + Send + Sync>;

static HOOK: StaticMutex<Option<Hook>> = StaticMutex::new(None);

/// Leaks kept for the test helpers, newest last; bounded, oldest dropped.
static LEAKS: StaticMutex<VecDeque<Leak>> = StaticMutex::new(VecDeque::new());
const KEPT_LEAKS: usize = 1024;

/// Sets the function called for every [`Leak`]: a task still alive a
/// leak-grace window ([`Builder::leak_grace`](crate::Builder::leak_grace))
/// after its scope was dropped. Replaces the previous hook.
///
/// Without a hook, leaks are logged as `tracing` warnings when the
/// `tracing` feature is on; either way the test helpers in
/// [`testing`](crate::testing) see them.
///
/// The hook runs on the leak watcher thread: keep it short and do not
/// block.
///
/// # Examples
///
/// ```
/// nursery::set_leak_hook(|leak| eprintln!("nursery: {leak}"));
/// ```
pub fn set_leak_hook(hook: impl Fn(&Leak) + Send + Sync + 'static) {
    *static_lock(&HOOK) = Some(std::sync::Arc::new(hook));
}

pub(crate) fn report(leak: Leak) {
    {
        let mut kept = static_lock(&LEAKS);
        if kept.len() == KEPT_LEAKS {
            kept.pop_front();
        }
        kept.push_back(leak.clone());
    }
    let hook = static_lock(&HOOK).clone();
    // A panicking hook must not take the watcher thread down with it: the
    // leak is kept already, and later checks still run.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match hook {
        Some(hook) => hook(&leak),
        None => default_report(&leak),
    }));
}

#[cfg(feature = "tracing")]
fn default_report(leak: &Leak) {
    tracing::warn!(
        task.name = leak.task.name(),
        task.location = %leak.task.location,
        scope = %leak.task.scope_path,
        after_ms = leak.after.as_millis() as u64,
        "nursery: {leak}"
    );
}

#[cfg(not(feature = "tracing"))]
fn default_report(_: &Leak) {}

/// Takes the kept leaks found on `runtime`.
pub(crate) fn take_leaks(runtime: tokio::runtime::Id) -> Vec<Leak> {
    let mut kept = static_lock(&LEAKS);
    let (mine, others): (Vec<Leak>, Vec<Leak>) =
        kept.drain(..).partition(|leak| leak.runtime == runtime);
    kept.extend(others);
    mine
}

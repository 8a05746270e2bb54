//! Leak checks for tests: what Go's `goleak` gives Go programmers, plus what
//! it cannot: the spawn site and the owning scope of every leaked task.
//!
//! Wrap a test's body in [`assert_no_leaks`] (or write the test with
//! `#[nursery::test]`, which does it for you): once the body is done, every
//! task it started, in any scope, must end within a grace window, or the
//! test fails with a report naming each one. Plain `tokio::spawn` tasks left
//! running are caught too, from the runtime's task count, though without a
//! spawn site.
//!
//! Tests run in parallel (cargo's default) do not see each other's tasks:
//! each `#[tokio::test]` or `#[nursery::test]` has its own runtime, and a
//! check looks only at the runtime it runs on.
//!
//! Plain tokio tasks have no registry entry: they are counted from the
//! runtime's metrics, against the count when the check started. A task that
//! was running before the check and ends during it therefore hides one new
//! task left running; with `#[nursery::test]`, which starts on a fresh
//! runtime, the starting count is zero.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::dump::{census, dump_runtime_traced};
use crate::leak::{self, Leak};
use crate::snapshot::{Age, TaskSnapshot};
use crate::timer::real_sleep;

/// How long a check waits for tasks to end, unless set: the same window a
/// dropped scope gives its children.
const DEFAULT_GRACE: Duration = Duration::from_secs(1);

/// Runs `future`, then fails if any task it left behind is still alive
/// after a grace window (one second; see [`LeakCheck`] to change it).
///
/// Goleak-style, it retries (with a short backoff, in real time) until every
/// task has ended or the window has passed, so a task that needs a few
/// milliseconds to observe its abort is not a leak.
///
/// # Panics
///
/// With a report listing every task still alive: name, spawn location,
/// scope path, state and age; every task reported as a [`Leak`] by a scope
/// dropped during the test; and the number of plain tokio tasks left
/// running. Also panics outside a tokio runtime.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use nursery::testing::assert_no_leaks;
///
/// let sum = assert_no_leaks(async {
///     nursery::scope(|n| async move {
///         let a = n.spawn(async { Ok::<_, ()>(1) });
///         Ok(a.await.unwrap() + 1)
///     })
///     .await
/// })
/// .await;
/// assert_eq!(sum, Ok(2));
/// # }
/// ```
///
/// # Cancel safety
///
/// Dropping the returned future drops `future` where it stands and
/// checks nothing.
pub async fn assert_no_leaks<F: Future>(future: F) -> F::Output {
    LeakCheck::new().run(future).await
}

/// A leak check with settings: the grace window.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use nursery::testing::LeakCheck;
///
/// let report = LeakCheck::new()
///     .grace(Duration::from_millis(20))
///     .try_run(async {
///         // A task nobody owns, left running: the check catches it.
///         tokio::spawn(std::future::pending::<()>());
///     })
///     .await
///     .unwrap_err();
/// assert_eq!(report.unscoped_tasks(), 1);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct LeakCheck {
    grace: Option<Duration>,
    timeout: Option<Duration>,
}

impl LeakCheck {
    /// A check with the default grace window (one second).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let value = nursery::testing::LeakCheck::new().run(async { 7 }).await;
    /// assert_eq!(value, 7);
    /// # }
    /// ```
    pub fn new() -> LeakCheck {
        LeakCheck {
            grace: None,
            timeout: None,
        }
    }

    /// How long the future may run, in real time (whatever it does with
    /// tokio's clock). Past it the future is dropped, and the check fails
    /// with the live tree of the scopes on the runtime, taken just before:
    /// every scope and task still running, with its name, spawn site, age
    /// and state ([`LeakReport::timed_out`]), and, in a build with tokio's
    /// task dumps, where each waits (see [`dump_traced`](crate::dump_traced);
    /// without them the tree ends with a line saying how to turn them on).
    /// Without a timeout, a future that never ends hangs the check. A
    /// future that blocks its thread cannot be interrupted.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use nursery::testing::LeakCheck;
    ///
    /// let report = LeakCheck::new()
    ///     .timeout(Duration::from_millis(50))
    ///     .try_run(nursery::scope(|n| async move {
    ///         n.spawn_named("stuck", std::future::pending::<Result<(), ()>>());
    ///         Ok(())
    ///     }))
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(report.timed_out(), Some(Duration::from_millis(50)));
    /// assert!(report.to_string().contains("task `stuck` spawned at"));
    /// # }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> LeakCheck {
        self.timeout = Some(timeout);
        self
    }

    /// How long to wait, after the future is done, for its tasks to end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let check = nursery::testing::LeakCheck::new().grace(Duration::from_millis(200));
    /// check.run(async { /* the test */ }).await;
    /// # }
    /// ```
    pub fn grace(mut self, grace: Duration) -> LeakCheck {
        self.grace = Some(grace);
        self
    }

    /// Runs `future`, then checks for leaks.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let sum = nursery::testing::LeakCheck::new()
    ///     .run(nursery::scope(|n| async move {
    ///         let a = n.spawn(async { Ok::<_, ()>(1) });
    ///         Ok(a.await.unwrap() + 1)
    ///     }))
    ///     .await;
    /// assert_eq!(sum, Ok(2));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// With the [`LeakReport`] if tasks are left; outside a tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future drops `future` where it stands and
    /// checks nothing.
    pub async fn run<F: Future>(self, future: F) -> F::Output {
        match self.try_run(future).await {
            Ok(output) => output,
            Err(report) => panic!("{report}"),
        }
    }

    /// Runs `future`, then checks for leaks, returning what was found
    /// instead of panicking.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use nursery::testing::LeakCheck;
    ///
    /// let report = LeakCheck::new()
    ///     .grace(Duration::from_millis(20))
    ///     .try_run(async {
    ///         tokio::spawn(std::future::pending::<()>()); // owned by no scope
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert!(report.to_string().contains("1 tokio task"));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// A [`LeakReport`] if any task is left, or a scope dropped during the
    /// run reported a [`Leak`]. The future's output is dropped then.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future drops `future` where it stands and
    /// checks nothing.
    pub async fn try_run<F: Future>(self, future: F) -> Result<F::Output, LeakReport> {
        let handle = Handle::try_current().unwrap_or_else(|_| {
            panic!("nursery: no tokio runtime: a leak check must run inside the runtime it checks")
        });
        let runtime = handle.id();
        let baseline = handle.metrics().num_alive_tasks();
        // Leaks reported on this runtime before the run are not its own.
        drop(leak::take_leaks(runtime));

        let output = match self.timeout {
            None => future.await,
            Some(limit) => match within(limit, future, runtime).await {
                Ok(output) => output,
                Err(tree) => return Err(LeakReport::out_of_time(limit, tree)),
            },
        };

        let grace = self.grace.unwrap_or(DEFAULT_GRACE);
        let started = std::time::Instant::now();
        let mut leaks = Vec::new();
        let mut backoff = Duration::from_millis(1);
        loop {
            leaks.extend(leak::take_leaks(runtime));
            let census = census(runtime);
            let alive = handle.metrics().num_alive_tasks();
            let unscoped = alive
                .saturating_sub(baseline)
                .saturating_sub(census.async_tasks);
            let waited = started.elapsed();
            if census.tasks.is_empty() && unscoped == 0 && leaks.is_empty() {
                return Ok(output);
            }
            // Reported leaks are facts: once nothing else is left to wait
            // for, there is no point in waiting out the window.
            let only_reported = census.tasks.is_empty() && unscoped == 0;
            if waited >= grace || only_reported {
                return Err(LeakReport::new(census.tasks, leaks, unscoped, waited));
            }
            // Let aborted tasks of this runtime run (it may be a current-
            // thread runtime driven by this very future), then wait a little
            // in real time: the runtime's clock may be paused.
            tokio::task::yield_now().await;
            let _ = real_sleep(backoff.min(grace - waited)).await;
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }
}

/// Runs `future` for up to `limit` of real time; past it, returns the text
/// of the live tree of `runtime`'s scopes, with where each task waits when
/// the build has task dumps, taken before the future is dropped.
async fn within<F: Future>(
    limit: Duration,
    future: F,
    runtime: tokio::runtime::Id,
) -> Result<F::Output, String> {
    let mut future = std::pin::pin!(future);
    let mut expired = real_sleep(limit);
    let finished = std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        match Pin::new(&mut expired).poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match finished {
        Some(output) => Ok(output),
        // The future stays where it stands (not polled, not dropped) while
        // the tree is taken.
        None => Err(dump_runtime_traced(runtime).await.to_string()),
    }
}

/// What a failed leak check found. Its `Display` is the report a failing
/// test prints.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use nursery::testing::LeakCheck;
///
/// let report = LeakCheck::new()
///     .grace(Duration::from_millis(20))
///     .try_run(async {
///         tokio::spawn(std::future::pending::<()>());
///     })
///     .await
///     .unwrap_err();
/// println!("{report}"); // what a failing test prints
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct LeakReport {
    tasks: Vec<TaskSnapshot>,
    leaks: Vec<Leak>,
    unscoped: usize,
    waited: Duration,
    /// The future ran out of time: the limit, and the live tree then.
    timed_out: Option<(Duration, String)>,
}

impl LeakReport {
    fn new(
        tasks: Vec<TaskSnapshot>,
        mut leaks: Vec<Leak>,
        unscoped: usize,
        waited: Duration,
    ) -> Self {
        // A task still alive is listed once, under `tasks`, even if its
        // dropped scope has reported it as a leak already.
        let alive: Vec<_> = tasks.iter().filter_map(TaskSnapshot::id).collect();
        leaks.retain(|leak| leak.task_id().is_none_or(|id| !alive.contains(&id)));
        LeakReport {
            tasks,
            leaks,
            unscoped,
            waited,
            timed_out: None,
        }
    }

    fn out_of_time(limit: Duration, tree: String) -> Self {
        LeakReport {
            tasks: Vec::new(),
            leaks: Vec::new(),
            unscoped: 0,
            waited: Duration::ZERO,
            timed_out: Some((limit, tree)),
        }
    }

    /// The [`timeout`](LeakCheck::timeout) the future ran out of, if it
    /// did: the report then shows the live tree when it did, and no leaks
    /// (nothing was left to check).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use nursery::testing::LeakCheck;
    ///
    /// let report = LeakCheck::new()
    ///     .grace(Duration::from_millis(20))
    ///     .try_run(async {
    ///         tokio::spawn(std::future::pending::<()>()); // a leak, not a hang
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(report.timed_out(), None);
    /// # }
    /// ```
    pub fn timed_out(&self) -> Option<Duration> {
        self.timed_out.as_ref().map(|(limit, _)| *limit)
    }

    /// Tasks of scopes on the checked runtime still alive at the end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use nursery::testing::LeakCheck;
    ///
    /// let (release, stuck) = std::sync::mpsc::channel::<()>();
    /// let report = LeakCheck::new()
    ///     .grace(Duration::from_millis(20))
    ///     .try_run(async {
    ///         let (started, running) = tokio::sync::oneshot::channel();
    ///         let scope = nursery::scope(|n| async move {
    ///             n.spawn_blocking_named("stuck", move |_token| {
    ///                 let _ = started.send(());
    ///                 let _ = stuck.recv(); // ignores its token
    ///                 Ok::<_, ()>(())
    ///             });
    ///             std::future::pending::<Result<(), ()>>().await
    ///         });
    ///         // Dropping the scope cannot stop a blocking call that is running.
    ///         tokio::select! {
    ///             _ = scope => unreachable!("the body never returns"),
    ///             _ = running => {}
    ///         }
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// drop(release); // the child ends
    /// assert_eq!(report.tasks()[0].name(), Some("stuck"));
    /// # }
    /// ```
    pub fn tasks(&self) -> &[TaskSnapshot] {
        &self.tasks
    }

    /// Tasks that outlived a scope dropped during the run by more than its
    /// leak-grace window and have ended since (those still alive are in
    /// [`tasks`](LeakReport::tasks)), and panics lost under a dropped scope
    /// ([`Leak::panic`]): a task that panicked after its scope was dropped,
    /// with no enclosing scope left to re-raise the panic.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use nursery::testing::LeakCheck;
    ///
    /// let report = LeakCheck::new()
    ///     .grace(Duration::from_millis(20))
    ///     .try_run(async {
    ///         tokio::spawn(std::future::pending::<()>()); // owned by no scope
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert!(report.leaks().is_empty()); // no scope was dropped
    /// # }
    /// ```
    pub fn leaks(&self) -> &[Leak] {
        &self.leaks
    }

    /// How long the check waited, after the future was done, for the tasks
    /// to end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use nursery::testing::LeakCheck;
    ///
    /// let report = LeakCheck::new()
    ///     .grace(Duration::from_millis(20))
    ///     .try_run(async {
    ///         tokio::spawn(std::future::pending::<()>()); // owned by no scope
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert!(report.waited() >= Duration::from_millis(20));
    /// # }
    /// ```
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Tokio tasks still alive that no scope owns (plain `tokio::spawn`):
    /// counted from the runtime's metrics, so nothing more is known.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use nursery::testing::LeakCheck;
    ///
    /// let report = LeakCheck::new()
    ///     .grace(Duration::from_millis(20))
    ///     .try_run(async {
    ///         tokio::spawn(std::future::pending::<()>()); // owned by no scope
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(report.unscoped_tasks(), 1);
    /// # }
    /// ```
    pub fn unscoped_tasks(&self) -> usize {
        self.unscoped
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((limit, tree)) = &self.timed_out {
            return write!(
                f,
                "nursery: did not finish within {limit:?}; still running:\n{tree}"
            );
        }
        let total = self.tasks.len() + self.leaks.len() + self.unscoped;
        let (tasks, them) = if total == 1 {
            ("task", "it")
        } else {
            ("tasks", "them")
        };
        writeln!(
            f,
            "nursery: {total} {tasks} leaked (waited {} for {them} to end)",
            Age(self.waited)
        )?;
        if !self.tasks.is_empty() {
            writeln!(f, "still alive:")?;
            for task in &self.tasks {
                writeln!(f, "  {task}")?;
            }
        }
        let (panics, outlived): (Vec<&Leak>, Vec<&Leak>) =
            self.leaks.iter().partition(|leak| leak.panic().is_some());
        if !outlived.is_empty() {
            writeln!(f, "outlived their dropped scope (ended since):")?;
            for leak in outlived {
                writeln!(f, "  {leak}")?;
            }
        }
        if !panics.is_empty() {
            writeln!(
                f,
                "panicked after their scope was dropped (no scope left to re-raise the panic):"
            )?;
            for leak in panics {
                writeln!(f, "  {leak}")?;
            }
        }
        match self.unscoped {
            0 => Ok(()),
            n => writeln!(
                f,
                "spawned outside any scope: {n} tokio task{} (tokio::spawn) still running; \
                 no spawn site is known: spawn {} into a scope to see where",
                if n == 1 { "" } else { "s" },
                if n == 1 { "it" } else { "them" }
            ),
        }
    }
}

impl std::error::Error for LeakReport {}

/// Runs the body of a `#[nursery::test]` on the runtime the expansion
/// built: in a root scope, then the leak check.
#[cfg(feature = "macros")]
#[doc(hidden)]
pub async fn run_test<F: Future>(
    leak_grace: Option<Duration>,
    timeout: Option<Duration>,
    body: F,
) -> F::Output {
    use crate::nursery::Nursery;

    let mut check = LeakCheck::new();
    if let Some(timeout) = timeout {
        check = check.timeout(timeout);
    }
    let mut root = Nursery::builder().name("test");
    if let Some(grace) = leak_grace {
        check = check.grace(grace);
        root = root.leak_grace(grace);
    }
    let output = check
        .run(root.scope(|_: Nursery<std::convert::Infallible>| async move { Ok(body.await) }))
        .await;
    match output {
        Ok(output) => output,
        Err(error) => panic!("nursery::test: the test's root scope ended with {error:?}"),
    }
}

//! [`Stuck`]: what a scope reports when it has waited for its children
//! longer than its [`warn_after`](crate::Builder::warn_after), and the hook
//! that receives it.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::snapshot::{Age, AwaitPoints, TaskSnapshot, Traces, take_traces};
use crate::sync::{StaticMutex, static_lock};

/// A scope that has waited for its children longer than its
/// [`warn_after`](crate::Builder::warn_after), since its body returned or
/// since it was cancelled: which scope, how long, and every child of its
/// own still alive, with its name, spawn site, age and state (running,
/// cancelling — cancelled but not ended yet —, shielded, queued), whether
/// it is a blocking child ([`TaskSnapshot::is_blocking`]), and, in a build
/// with tokio's task dumps, where it waits ([`TaskSnapshot::trace`]).
///
/// Its `Display` is the report [`set_stuck_hook`]'s default prints.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let keep = seen.clone();
/// nursery::set_stuck_hook(move |stuck| keep.lock().unwrap().push(stuck.clone()));
/// let _ = nursery::Nursery::builder()
///     .name("shutdown")
///     .grace(Duration::from_secs(10))
///     .warn_after(Duration::from_secs(1))
///     .scope(|n| async move {
///         n.spawn_named("flusher", std::future::pending::<Result<(), ()>>());
///         n.cancel(); // the flusher ignores it
///         Ok(())
///     })
///     .await;
/// let stuck = seen.lock().unwrap()[0].clone();
/// assert_eq!(stuck.scope_path(), "`shutdown`");
/// assert!(stuck.is_cancelled());
/// assert_eq!(stuck.waited(), Duration::from_secs(1));
/// assert_eq!(stuck.tasks()[0].name(), Some("flusher"));
/// println!("`shutdown` was opened at {}", stuck.location());
/// let report = stuck.to_string();
/// assert!(report.contains("scope `shutdown`"));
/// assert!(report.contains("task `flusher` spawned at"));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Stuck {
    pub(crate) scope_path: String,
    pub(crate) location: &'static Location<'static>,
    pub(crate) waited: Duration,
    pub(crate) cancelled: bool,
    pub(crate) tasks: Vec<TaskSnapshot>,
    pub(crate) await_points: AwaitPoints,
}

impl Stuck {
    /// The names of the scope and those around it, outermost first (see
    /// [`TaskSnapshot::scope_path`]).
    pub fn scope_path(&self) -> &str {
        &self.scope_path
    }

    /// Where the scope was opened.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// How long the scope had waited for its children when it reported.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Whether it waits since it was cancelled (else since its body
    /// returned).
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    /// The scope's own children still alive, each with where it waits
    /// ([`TaskSnapshot::trace`]) when the report's
    /// [`await_points`](Stuck::await_points) were taken.
    pub fn tasks(&self) -> &[TaskSnapshot] {
        &self.tasks
    }

    /// Whether its tasks hold where they wait: [`Taken`](AwaitPoints::Taken)
    /// in a build with task dumps (see [`dump_traced`](crate::dump_traced)),
    /// else why not. A scope that has task dumps reports once tokio's task
    /// dump is taken, a moment after its timer fires.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let keep = seen.clone();
    /// nursery::set_stuck_hook(move |stuck| keep.lock().unwrap().push(stuck.clone()));
    /// let _ = nursery::Nursery::builder()
    ///     .warn_after(Duration::from_secs(1))
    ///     .scope(|n| async move {
    ///         n.spawn(async {
    ///             tokio::time::sleep(Duration::from_secs(2)).await;
    ///             Ok::<_, ()>(())
    ///         });
    ///         Ok(())
    ///     })
    ///     .await;
    /// let stuck = seen.lock().unwrap()[0].clone();
    /// match stuck.await_points() {
    ///     nursery::AwaitPoints::Taken => assert!(stuck.tasks()[0].trace().is_some()),
    ///     why => assert!(stuck.to_string().ends_with(&format!("({why})"))),
    /// }
    /// # }
    /// ```
    pub fn await_points(&self) -> AwaitPoints {
        self.await_points
    }

    /// The tasks' ids, to take their traces.
    pub(crate) fn task_ids(&self) -> Vec<tokio::task::Id> {
        self.tasks.iter().filter_map(TaskSnapshot::id).collect()
    }

    /// Gives each task the trace `traces` holds for it.
    pub(crate) fn find_traces(&mut self, points: AwaitPoints, traces: &Traces) {
        self.await_points = points;
        for task in &mut self.tasks {
            task.find_trace(traces);
        }
    }
}

impl fmt::Display for Stuck {
    /// `nursery: scope <path> (opened at <site>) has waited <age> for its
    /// children since ...; still running:`, then one line per child, each
    /// followed by where it waits when the trace was taken; without
    /// traces, a last line says why (and how to turn them on).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = if self.cancelled {
            "since it was cancelled"
        } else {
            "since its body returned"
        };
        write!(
            f,
            "nursery: scope {} (opened at {}) has waited {} for its children {since}; still running:",
            self.scope_path,
            self.location,
            Age(self.waited),
        )?;
        for task in &self.tasks {
            write!(f, "\n  {task}")?;
            for line in task.trace_lines() {
                write!(f, "\n      {line}")?;
            }
        }
        match self.await_points {
            AwaitPoints::Taken | AwaitPoints::NotAsked => Ok(()),
            missing => write!(f, "\n  ({missing})"),
        }
    }
}

type Hook = std::sync::Arc<dyn Fn(&Stuck) + Send + Sync>;

static HOOK: StaticMutex<Option<Hook>> = StaticMutex::new(None);

/// Sets the function called for every [`Stuck`] report: a scope that has
/// waited for its children longer than its
/// [`warn_after`](crate::Builder::warn_after). Replaces the previous hook.
///
/// Without a hook, reports go to stderr, and, with the `tracing` feature,
/// are `tracing` warnings in the scope's span. The hook runs on the thread
/// that polls the scope: keep it short and do not block.
///
/// # Examples
///
/// ```no_run
/// // Compiled, not run: the hook is process-wide, and the doctests share
/// // a process.
/// nursery::set_stuck_hook(|stuck| eprintln!("{stuck}"));
/// ```
pub fn set_stuck_hook(hook: impl Fn(&Stuck) + Send + Sync + 'static) {
    *static_lock(&HOOK) = Some(std::sync::Arc::new(hook));
}

/// Hands `stuck` to the hook, or to the default report.
pub(crate) fn report(stuck: &Stuck) {
    let hook = static_lock(&HOOK).clone();
    // A panicking hook must not take the scope down with it.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match hook {
        Some(hook) => hook(stuck),
        None => eprintln!("{stuck}"),
    }));
}

/// The future that takes the traces of a report's tasks.
type TakingTraces = Pin<Box<dyn Future<Output = (AwaitPoints, Traces)> + Send + Sync>>;

/// A stuck report waiting for where its tasks wait: made when a scope's
/// `warn_after` timer fires, handed on once the traces are taken (at once
/// in a build without task dumps), or without them if the scope future
/// lets go of it first. So a report that fired is never lost.
pub(crate) struct PendingReport {
    stuck: Option<Stuck>,
    traces: TakingTraces,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl PendingReport {
    /// Starts taking the traces of `stuck`'s tasks.
    pub(crate) fn new(stuck: Stuck, #[cfg(feature = "tracing")] span: tracing::Span) -> Self {
        let traces = Box::pin(take_traces(stuck.task_ids()));
        PendingReport {
            stuck: Some(stuck),
            traces,
            #[cfg(feature = "tracing")]
            span,
        }
    }

    /// Hands the report on if its traces have been taken; `true` once it
    /// has been.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(stuck) = self.stuck.as_mut() else {
            return true;
        };
        let Poll::Ready((points, traces)) = self.traces.as_mut().poll(cx) else {
            return false;
        };
        stuck.find_traces(points, &traces);
        self.send();
        true
    }

    /// Hands the report to the hook (and `tracing`), once.
    fn send(&mut self) {
        let Some(stuck) = self.stuck.take() else {
            return;
        };
        #[cfg(feature = "tracing")]
        tracing::warn!(
            parent: &self.span,
            waited_ms = stuck.waited.as_millis() as u64,
            "{stuck}"
        );
        report(&stuck);
    }
}

impl Drop for PendingReport {
    /// A report whose traces were not taken yet goes without them.
    fn drop(&mut self) {
        if let Some(stuck) = &mut self.stuck {
            stuck.await_points = AwaitPoints::Interrupted;
        }
        self.send();
    }
}

#[cfg(all(test, not(nursery_loom)))]
mod tests {
    use super::*;

    fn stuck(path: &str) -> Stuck {
        Stuck {
            scope_path: path.to_owned(),
            location: Location::caller(),
            waited: Duration::from_secs(1),
            cancelled: true,
            tasks: Vec::new(),
            await_points: AwaitPoints::NotAsked,
        }
    }

    /// The reports the hook got for `path`; installs the hook first.
    fn reported(path: &str) -> Vec<Stuck> {
        static REPORTS: StaticMutex<Vec<Stuck>> = StaticMutex::new(Vec::new());
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| set_stuck_hook(|stuck| static_lock(&REPORTS).push(stuck.clone())));
        let reports = static_lock(&REPORTS);
        let reports = reports.iter().filter(|stuck| stuck.scope_path == path);
        reports.cloned().collect()
    }

    fn pending(stuck: Stuck) -> PendingReport {
        PendingReport::new(
            stuck,
            #[cfg(feature = "tracing")]
            tracing::Span::none(),
        )
    }

    #[test]
    fn a_report_whose_traces_were_not_taken_goes_without_them_once() {
        reported("`interrupted`");
        drop(pending(stuck("`interrupted`")));
        let reports = reported("`interrupted`");
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].await_points(), AwaitPoints::Interrupted);
        let text = reports[0].to_string();
        assert!(
            text.ends_with(
                "(where tasks wait: the scope ended before tokio's task dump was taken)"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_report_goes_once_its_traces_are_taken_and_not_again_when_dropped() {
        reported("`taken`");
        let mut report = pending(stuck("`taken`"));
        let sent = std::future::poll_fn(|cx| {
            if report.poll(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::time::timeout(Duration::from_secs(10), sent)
            .await
            .expect("the traces are taken");
        drop(report);
        let reports = reported("`taken`");
        assert_eq!(reports.len(), 1, "sent once, not again on drop");
        let expected = if cfg!(nursery_taskdump) {
            AwaitPoints::Taken
        } else {
            AwaitPoints::NotBuilt
        };
        assert_eq!(reports[0].await_points(), expected);
    }
}

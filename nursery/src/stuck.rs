//! [`Stuck`]: what a scope reports when it has waited for its children
//! longer than its [`warn_after`](crate::Builder::warn_after), and the hook
//! that receives it.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::snapshot::{Age, TaskSnapshot};
use crate::sync::{StaticMutex, static_lock};

/// A scope that has waited for its children longer than its
/// [`warn_after`](crate::Builder::warn_after), since its body returned or
/// since it was cancelled: which scope, how long, and every child of its
/// own still alive, with its name, spawn site, age and state (running,
/// cancelling — cancelled but not ended yet —, shielded, queued).
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

    /// The scope's own children still alive.
    pub fn tasks(&self) -> &[TaskSnapshot] {
        &self.tasks
    }
}

impl fmt::Display for Stuck {
    /// `nursery: scope <path> (opened at <site>) has waited <age> for its
    /// children since ...; still running:`, then one line per child.
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
        }
        Ok(())
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

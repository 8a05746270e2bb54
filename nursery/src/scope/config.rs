//! [`Config`]: the settings a scope opens with, as a
//! [`Builder`](crate::Builder) collects them.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::limiter::Rate;
use crate::id::Name;

/// Formats an error of the type given to
/// [`Builder::trace_errors`](crate::Builder::trace_errors), if the error
/// has that type.
pub(crate) type DisplayError = fn(&dyn std::any::Any) -> Option<String>;

/// How long children of a dropped scope may take to end before they count
/// as leaks, unless set.
pub(crate) const DEFAULT_LEAK_GRACE: Duration = Duration::from_secs(1);

/// A scope's settings. `None` means "not set": inherited from the
/// enclosing scope where that makes sense (grace, leak grace, the error
/// formatter), else off.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) name: Option<Name>,
    pub(crate) limit: Option<usize>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) grace: Option<Duration>,
    pub(crate) leak_grace: Option<Duration>,
    pub(crate) warn_after: Option<Duration>,
    pub(crate) rate: Option<Rate>,
    pub(crate) fail_fast: bool,
    /// `usize::MAX`: no cap. (Not an `Option`: the settings travel in
    /// the unopened scope future, whose size a nest of scopes pays per
    /// level.)
    pub(crate) max_suppressed: usize,
    pub(crate) cancel_on: Option<CancellationToken>,
    pub(crate) display_error: Option<DisplayError>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            name: None,
            limit: None,
            timeout: None,
            deadline: None,
            grace: None,
            leak_grace: None,
            warn_after: None,
            rate: None,
            fail_fast: true,
            max_suppressed: usize::MAX,
            cancel_on: None,
            display_error: None,
        }
    }
}

impl Config {
    /// The scope's own deadline, from its timeout (counted from now) and
    /// its deadline, whichever comes first. A timeout too long for the
    /// clock is no deadline.
    pub(crate) fn own_deadline(&self) -> Option<Instant> {
        let from_timeout = self
            .timeout
            .and_then(|timeout| Instant::now().checked_add(timeout));
        earliest(self.deadline, from_timeout)
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

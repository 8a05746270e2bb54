//! Time for reports: a coarse monotonic [`Stamp`], and [`FAR_FUTURE`].

use std::time::Duration;

/// A time later than any a user means, which `Instant` always holds
/// (tokio's own timer treats what lies beyond as "never" the same way).
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// A point on a coarse monotonic clock: cheap enough for the spawn path
/// (a vDSO read of `CLOCK_MONOTONIC_COARSE` on Linux, about 10 ns here,
/// where `Instant::now()` costs about 38 ns), precise to a few
/// milliseconds, which is plenty for the age of a task in a report.
///
/// Nanoseconds in a `u64` (centuries of range) rather than a `Duration`, so a
/// registry entry stays within 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(pub(crate) u64);

impl Stamp {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn now() -> Stamp {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
        let secs = u64::try_from(now.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
        // Even, so a registry entry can keep a flag in the lowest bit
        // without changing the time.
        Stamp(secs.saturating_mul(1_000_000_000).saturating_add(nanos) & !1)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn now() -> Stamp {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let elapsed = EPOCH.get_or_init(std::time::Instant::now).elapsed();
        Stamp(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX) & !1)
    }

    /// Time from this stamp to `later` (zero if `later` is earlier).
    pub(crate) fn until(self, later: Stamp) -> Duration {
        Duration::from_nanos(later.0.saturating_sub(self.0))
    }
}

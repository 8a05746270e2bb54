//! [`Stats`]: what a scope's children have done so far.

use crate::core::Counts;

/// Counts of a scope's own children, from [`Nursery::stats`](crate::Nursery::stats).
///
/// Read from the bookkeeping the scope keeps anyway, so keeping them costs
/// the spawn path nothing. Each counter is read on its own: while children
/// start and end the figures may disagree by the few children in flight,
/// and once the scope is quiet (or has returned) they are exact, with
///
/// `spawned == queued + running + succeeded + failed + cancelled + panicked`.
///
/// Children of scopes opened inside a child are that scope's, not counted
/// here. A child handed back by [`try_spawn`](crate::Nursery::try_spawn),
/// or refused because the scope was already cancelled or closed, was never
/// spawned and counts nowhere.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// nursery::Nursery::builder()
///     .collect_errors()
///     .scope(|n| async move {
///         let ok = n.spawn(async { Ok::<_, String>(()) });
///         let bad = n.spawn(async { Err::<(), _>("no".to_string()) });
///         let _ = (ok.await, bad.await);
///         let stats = n.stats();
///         assert_eq!((stats.spawned, stats.succeeded, stats.failed), (2, 1, 1));
///         assert_eq!(stats.running, 0);
///         Ok(())
///     })
///     .await
///     .unwrap_err();
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Children accepted by the scope: started at once or queued under its
    /// limit.
    pub spawned: usize,
    /// Children waiting for room under the scope's
    /// [`limit`](crate::Builder::limit) or [`rate`](crate::Builder::rate).
    pub queued: usize,
    /// Children started and not ended yet.
    pub running: usize,
    /// Children that returned `Ok`.
    pub succeeded: usize,
    /// Children that returned `Err`.
    pub failed: usize,
    /// Children dropped before they completed: aborted by a cancel, or
    /// queued when it came and never started.
    pub cancelled: usize,
    /// Children that panicked (in their body or their destructor).
    pub panicked: usize,
    /// Children (and the body) inside a [`shield`](crate::shield) now:
    /// running on through a cancel until they leave it.
    pub shielded: usize,
}

impl Stats {
    /// From the counts the scope keeps: `spawned` children were accepted,
    /// `live` of them have not ended (`queued` of those wait), and `counts`
    /// says how the others ended except for those cancelled (dropped before
    /// they completed), which are what remains.
    pub(crate) fn new(spawned: usize, queued: usize, live: usize, counts: Counts) -> Stats {
        let ended = spawned.saturating_sub(live);
        let completed = counts.succeeded + counts.failed + counts.panicked;
        Stats {
            spawned,
            queued,
            running: live.saturating_sub(queued),
            succeeded: counts.succeeded,
            failed: counts.failed,
            cancelled: ended.saturating_sub(completed),
            panicked: counts.panicked,
            shielded: 0,
        }
    }
}

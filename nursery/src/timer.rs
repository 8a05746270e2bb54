//! One thread for the whole process, started the first time it is needed,
//! that runs jobs at their time in real time: the checks of dropped scopes,
//! freeing their tasks, and the test helpers' waits. Not a tokio task, so
//! it shows in no runtime's task count, and it keeps time whatever a
//! runtime's clock does (paused or not).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::clock::FAR_FUTURE;
use crate::sync::{Ordering, StaticAtomicUsize, StaticCondvar, StaticMutex, static_lock};

/// Resolves after `duration` of real time, whatever the runtime's clock
/// (paused or not) and whether it has a timer at all.
pub(crate) fn real_sleep(duration: Duration) -> oneshot::Receiver<()> {
    let (wake, woken) = oneshot::channel();
    schedule(duration, Box::new(wake));
    woken
}

/// Work for the timer thread, run once it is due.
pub(crate) trait Job: Send + 'static {
    /// Does the work. A panic is caught: nothing a job does may stop the
    /// thread.
    fn run(self: Box<Self>);

    /// Whether running the job could still do anything; one that could not
    /// may be dropped unrun, to keep the queue short.
    fn is_wanted(&self) -> bool {
        true
    }
}

/// Wakes a waiter; wanted while it still waits.
impl Job for oneshot::Sender<()> {
    fn run(self: Box<Self>) {
        let _ = self.send(());
    }

    fn is_wanted(&self) -> bool {
        !self.is_closed()
    }
}

struct Due {
    at: Instant,
    seq: u64,
    job: Box<dyn Job>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Watcher {
    queue: StaticMutex<Queue>,
    wake: StaticCondvar,
}

struct Queue {
    /// Jobs by due time.
    due: BinaryHeap<Reverse<Due>>,
    /// The next sequence number (ties in FIFO).
    seq: u64,
    /// At this many jobs, those no longer wanted are dropped.
    purge_at: usize,
}

/// Below this many jobs the queue is not purged for its length.
const MIN_PURGE: usize = 1024;

/// Jobs no longer wanted since the last purge (relaxed: a count that only
/// decides when to purge).
static ENDED: StaticAtomicUsize = StaticAtomicUsize::new(0);

/// Unwanted jobs that make a purge worth it, however short the queue.
const MIN_ENDED: usize = 16;

/// Something a queued job was for has ended (a dropped scope, say): the
/// job, if there is one, is no longer wanted.
pub(crate) fn job_ended() {
    ENDED.fetch_add(1, Ordering::Relaxed);
}

fn watcher() -> &'static Watcher {
    static WATCHER: OnceLock<&'static Watcher> = OnceLock::new();
    WATCHER.get_or_init(|| {
        let watcher: &'static Watcher = Box::leak(Box::new(Watcher {
            queue: StaticMutex::new(Queue {
                due: BinaryHeap::new(),
                seq: 0,
                purge_at: MIN_PURGE,
            }),
            wake: StaticCondvar::new(),
        }));
        std::thread::Builder::new()
            .name("nursery-leak-watcher".into())
            .spawn(move || run(watcher))
            .expect("nursery: could not start the leak watcher thread");
        watcher
    })
}

/// Runs `job` on the timer thread once `after` has passed.
pub(crate) fn schedule(after: Duration, job: Box<dyn Job>) {
    let watcher = watcher();
    // A window too long for the clock (`Duration::MAX`, say) is a
    // job that never comes due: it waits at the end of the queue.
    let at = Instant::now().checked_add(after).unwrap_or_else(far_future);
    let mut queue = static_lock(&watcher.queue);
    // Jobs whose scope has ended (every child gone) or whose waiter
    // has gone would wait out their window for nothing, and a note of
    // an ended scope still holds the scope's memory (a weak reference
    // keeps the allocation, though not what is in it): with long
    // windows they would pile up. They go when the queue has doubled
    // since the last purge, or when as many scopes have ended as half
    // the queue (and at least `MIN_ENDED`): the queue stays within
    // twice the jobs still wanted, plus a few, at a constant cost per
    // job.
    let ended = ENDED.load(Ordering::Relaxed);
    if queue.due.len() >= queue.purge_at || ended >= (queue.due.len() / 2).max(MIN_ENDED) {
        ENDED.fetch_sub(ended, Ordering::Relaxed);
        queue.due.retain(|Reverse(due)| due.job.is_wanted());
        queue.purge_at = (queue.due.len() * 2).max(MIN_PURGE);
    }
    let seq = queue.seq;
    queue.seq += 1;
    queue.due.push(Reverse(Due { at, seq, job }));
    // The watcher sleeps until its earliest job is due: it needs waking
    // only if this job is the new earliest. Waking it for every dropped
    // scope would take a core from the runtime while the dropped
    // scope's children are being torn down.
    let earliest = queue.due.peek().is_some_and(|Reverse(due)| due.seq == seq);
    drop(queue);
    if earliest {
        watcher.wake.notify_one();
    }
}

/// A time later than any window a user means: [`FAR_FUTURE`] from now,
/// which `Instant` always holds.
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(FAR_FUTURE).unwrap_or(now)
}

fn run(watcher: &'static Watcher) {
    let mut queue = static_lock(&watcher.queue);
    loop {
        let now = Instant::now();
        match queue.due.peek() {
            Some(Reverse(due)) if due.at <= now => {
                let Some(Reverse(due)) = queue.due.pop() else {
                    continue;
                };
                drop(queue);
                // Nothing a job does may stop the thread: every later
                // check and wait depends on it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| due.job.run()));
                queue = static_lock(&watcher.queue);
            }
            Some(Reverse(due)) => {
                let wait = due.at - now;
                queue = match watcher.wake.wait_timeout(queue, wait) {
                    Ok((queue, _)) => queue,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
            None => {
                queue = match watcher.wake.wait(queue) {
                    Ok(queue) => queue,
                    Err(poisoned) => poisoned.into_inner(),
                };
            }
        }
    }
}

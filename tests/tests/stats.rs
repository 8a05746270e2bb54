//! `Nursery::stats()`: exact counts of a scope's children after a mix of
//! successes, failures, a panic, queued and cancelled children, each
//! counter checked against what the children themselves saw happen.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use nursery::{Nursery, Stats};
use nursery_tests::within;
use tokio::sync::{Notify, oneshot};

fn counts(stats: Stats) -> [usize; 7] {
    [
        stats.spawned,
        stats.queued,
        stats.running,
        stats.succeeded,
        stats.failed,
        stats.cancelled,
        stats.panicked,
    ]
}

/// How a child ended, as it saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Ok,
    Err,
    Panicked,
    /// Dropped before it completed: aborted, or queued and never started.
    Dropped,
}

/// What one child saw: whether it started, and how it ended.
#[derive(Clone, Debug, Default)]
struct Probe {
    started: Arc<AtomicBool>,
    end: Arc<Mutex<Option<End>>>,
}

/// Records, when dropped, that its child ended without a result: by a panic
/// if the thread is unwinding, else by being dropped.
struct EndOnDrop(Probe);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let mut end = self.0.end.lock().unwrap();
        if end.is_none() {
            *end = Some(if std::thread::panicking() {
                End::Panicked
            } else {
                End::Dropped
            });
        }
    }
}

impl Probe {
    fn ended(&self, result: &Result<(), String>) {
        let end = if result.is_ok() { End::Ok } else { End::Err };
        *self.end.lock().unwrap() = Some(end);
    }

    /// `child`, reporting to this probe.
    fn watch(
        &self,
        child: impl Future<Output = Result<(), String>> + Send + 'static,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let guard = EndOnDrop(self.clone());
        async move {
            let guard = guard;
            guard.0.started.store(true, SeqCst);
            let result = child.await;
            guard.0.ended(&result);
            result
        }
    }

    /// A blocking `child`, reporting to this probe.
    fn watch_blocking(
        &self,
        child: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> impl FnOnce(tokio_util::sync::CancellationToken) -> Result<(), String> + Send + 'static
    {
        let guard = EndOnDrop(self.clone());
        move |_token| {
            let guard = guard;
            guard.0.started.store(true, SeqCst);
            let result = child();
            guard.0.ended(&result);
            result
        }
    }
}

/// The counts as the children saw them, in the order of [`counts`]: one
/// probe per child the scope accepted.
fn observed(probes: &[Probe]) -> [usize; 7] {
    let seen: Vec<(bool, Option<End>)> = probes
        .iter()
        .map(|probe| (probe.started.load(SeqCst), *probe.end.lock().unwrap()))
        .collect();
    let ended = |how| seen.iter().filter(|(_, end)| *end == Some(how)).count();
    let unended = |started| seen.iter().filter(|&&s| s == (started, None)).count();
    [
        probes.len(),
        unended(false),
        unended(true),
        ended(End::Ok),
        ended(End::Err),
        ended(End::Dropped),
        ended(End::Panicked),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_successes_failures_queued_cancelled_and_panicked_children() {
    let (handle_tx, handle_rx) = oneshot::channel();
    let panic_now = Arc::new(Notify::new());
    let trigger = panic_now.clone();
    let probes: Vec<Probe> = (0..7).map(|_| Probe::default()).collect();
    let watched = probes.clone();
    let scope = tokio::spawn(
        Nursery::builder()
            .limit(2)
            .collect_errors() // failures cancel nothing; the panic will
            .scope(|n: Nursery<String>| async move {
                let _ = handle_tx.send(n.clone());
                assert_eq!(counts(n.stats()), [0; 7]);
                let p = &watched;

                // Two successes and a failure, one after the other.
                n.spawn(p[0].watch(async { Ok(()) })).await.unwrap();
                assert!(
                    n.spawn(p[1].watch(async { Err("no".to_string()) }))
                        .await
                        .is_err()
                );
                n.spawn(p[2].watch(async { Ok(()) })).await.unwrap();
                //               spawned queued running ok  failed cancelled panicked
                assert_eq!(counts(n.stats()), [3, 0, 0, 2, 1, 0, 0]);
                assert_eq!(counts(n.stats()), observed(&p[..3]));

                // Fill both slots, then queue two more behind them.
                let (started_tx, started_rx) = oneshot::channel();
                n.spawn(p[3].watch(async move {
                    let _ = started_tx.send(());
                    std::future::pending::<Result<(), String>>().await
                }));
                let (armed_tx, armed_rx) = oneshot::channel();
                n.spawn(p[4].watch(async move {
                    let notified = trigger.notified();
                    let _ = armed_tx.send(());
                    notified.await;
                    panic!("on purpose") as Result<(), String>
                }));
                n.spawn(p[5].watch(async { Ok(()) }));
                n.spawn(p[6].watch(async { Ok(()) }));
                assert_eq!(counts(n.stats()), [7, 2, 2, 2, 1, 0, 0]);
                started_rx.await.unwrap();
                armed_rx.await.unwrap();
                assert_eq!(counts(n.stats()), [7, 2, 2, 2, 1, 0, 0]);
                assert_eq!(counts(n.stats()), observed(p));

                // The panic cancels the rest: the running child is aborted,
                // the queued ones never start, and the body is cancelled.
                panic_now.notify_one();
                std::future::pending::<Result<(), String>>().await
            }),
    );
    let n: Nursery<String> = handle_rx.await.unwrap();
    let joined = within("the scope whose child panicked", scope).await;
    assert!(
        joined.unwrap_err().is_panic(),
        "the scope re-raised the panic"
    );

    // Read after the scope returned, through a clone of its handle.
    let stats = n.stats();
    //                          spawned queued running ok  failed cancelled panicked
    assert_eq!(counts(stats), [7, 0, 0, 2, 1, 3, 1]);
    assert_eq!(counts(stats), observed(&probes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_without_a_limit_count_tasks_and_blocking_children() {
    let (handle_tx, handle_rx) = oneshot::channel();
    let probes: Vec<Probe> = (0..4).map(|_| Probe::default()).collect();
    let watched = probes.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .collect_errors()
            .scope(|n: Nursery<String>| async move {
                let _ = handle_tx.send(n.clone());
                let p = &watched;
                n.spawn(p[0].watch(async { Ok(()) })).await.unwrap();
                n.spawn_blocking(p[1].watch_blocking(|| Ok(())))
                    .await
                    .unwrap();
                assert!(
                    n.spawn_blocking(p[2].watch_blocking(|| Err("no".to_string())))
                        .await
                        .is_err()
                );
                let (started_tx, started_rx) = oneshot::channel();
                n.spawn(p[3].watch(async move {
                    let _ = started_tx.send(());
                    std::future::pending::<Result<(), String>>().await
                }));
                started_rx.await.unwrap();
                //               spawned queued running ok  failed cancelled panicked
                assert_eq!(counts(n.stats()), [4, 0, 1, 2, 1, 0, 0]);
                assert_eq!(counts(n.stats()), observed(p));
                // Without a grace period the pending child is aborted at once.
                n.cancel();
                // Refused: the scope is cancelled. Not spawned, counted nowhere.
                assert!(n.spawn(async { Ok(()) }).await.unwrap_err().is_cancelled());
                Ok(())
            }),
    )
    .await;
    // The error collected before the cancel is returned.
    assert!(matches!(result, Err(nursery::Error::Failed { .. })));
    let n: Nursery<String> = handle_rx.await.unwrap();
    assert_eq!(counts(n.stats()), [4, 0, 0, 2, 1, 1, 0]);
    assert_eq!(counts(n.stats()), observed(&probes));
}

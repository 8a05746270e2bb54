//! `nursery::shield`: code that runs to completion through a cancel —
//! fail-fast, timeout, `n.cancel()`, an outside cancel — and is still
//! dropped with its scope's future (G7). The clock is paused, so every time
//! asserted is exact.

use std::future::pending;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nursery::{Error, Interrupted, Nursery, TaskState};
use nursery_tests::{Tracker, within};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

type E = &'static str;

const MS: Duration = Duration::from_millis(1);

fn millis(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// A child that enters a shield at once, works `work` inside it, then
/// awaits forever; `done` is set when the shielded work has finished,
/// `after` if it ever gets past the first await after the shield.
async fn shielded_child(
    work: Duration,
    entered: Arc<Notify>,
    done: Arc<AtomicBool>,
    after: Arc<AtomicBool>,
) -> Result<(), E> {
    nursery::shield(async {
        entered.notify_one();
        sleep(work).await;
        done.store(true, SeqCst);
    })
    .await;
    tokio::task::yield_now().await;
    after.store(true, SeqCst);
    pending::<()>().await;
    Ok(())
}

struct Flags {
    entered: Arc<Notify>,
    done: Arc<AtomicBool>,
    after: Arc<AtomicBool>,
}

impl Flags {
    fn new() -> Flags {
        Flags {
            entered: Arc::new(Notify::new()),
            done: Arc::new(AtomicBool::new(false)),
            after: Arc::new(AtomicBool::new(false)),
        }
    }

    fn child(&self, work: Duration) -> impl Future<Output = Result<(), E>> + Send + 'static {
        shielded_child(
            work,
            self.entered.clone(),
            self.done.clone(),
            self.after.clone(),
        )
    }
}

#[tokio::test(start_paused = true)]
async fn a_shielded_child_finishes_its_work_through_fail_fast_then_is_aborted() {
    let flags = Flags::new();
    let started = Instant::now();
    let child = flags.child(50 * MS);
    let entered = flags.entered.clone();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            n.spawn(child);
            entered.notified().await;
            n.spawn(async { Err::<(), _>("sibling failed") });
            pending::<()>().await;
            Ok(())
        }),
    )
    .await;
    assert_eq!(result.unwrap_err().error(), Some(&"sibling failed"));
    assert!(flags.done.load(SeqCst), "the shielded work finished");
    assert!(
        !flags.after.load(SeqCst),
        "aborted at its first await after the shield"
    );
    assert_eq!(millis(started), 50, "the scope waited for the shield (G1)");
}

#[tokio::test(start_paused = true)]
async fn inside_a_shield_the_cancel_is_not_seen_and_after_it_is() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(Duration::from_secs(1))
            .scope(|n: Nursery<E>| async move {
                n.spawn(async move {
                    nursery::cancelled().await;
                    nursery::shield(async {
                        let mut seen = record.lock().unwrap();
                        seen.push(format!("{:?}", nursery::check()));
                        seen.push(format!("{:?}", nursery::cause()));
                    })
                    .await;
                    nursery::shield(async {
                        tokio::select! {
                            _ = nursery::cancelled() => record.lock().unwrap().push("cancelled".into()),
                            () = sleep(10 * MS) => record.lock().unwrap().push("slept".into()),
                        }
                    })
                    .await;
                    record.lock().unwrap().push(format!("{:?}", nursery::check()));
                    Ok(())
                });
                tokio::task::yield_now().await;
                n.cancel();
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(
        *seen.lock().unwrap(),
        ["Ok(())", "None", "slept", "Err(Cancelled)"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_shield_outlasts_the_grace_period() {
    let flags = Flags::new();
    let started = Instant::now();
    let child = flags.child(80 * MS);
    let entered = flags.entered.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(10 * MS)
            .scope(|n: Nursery<E>| async move {
                n.spawn(child);
                entered.notified().await;
                n.cancel();
                Ok("kept")
            }),
    )
    .await;
    assert_eq!(result, Ok("kept"));
    assert!(flags.done.load(SeqCst) && !flags.after.load(SeqCst));
    assert_eq!(millis(started), 80);
}

#[tokio::test(start_paused = true)]
async fn children_inside_shields_at_once_all_outlast_the_grace_period() {
    let (first, second) = (Flags::new(), Flags::new());
    let started = Instant::now();
    let children = (first.child(60 * MS), second.child(80 * MS));
    let entered = (first.entered.clone(), second.entered.clone());
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(10 * MS)
            .scope(|n: Nursery<E>| async move {
                n.spawn(children.0);
                n.spawn(children.1);
                entered.0.notified().await;
                entered.1.notified().await;
                n.cancel();
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Ok(()));
    for (which, flags) in [("first", &first), ("second", &second)] {
        assert!(
            flags.done.load(SeqCst),
            "the {which} child's shielded work finished"
        );
        assert!(
            !flags.after.load(SeqCst),
            "the {which} child was aborted after its shield"
        );
    }
    assert_eq!(millis(started), 80, "the scope waited for both shields");
}

#[tokio::test(start_paused = true)]
async fn a_shield_inside_a_shield_protects_until_the_outer_one_ends() {
    let flags = Flags::new();
    let (entered, done, after) = (
        flags.entered.clone(),
        flags.done.clone(),
        flags.after.clone(),
    );
    let wait = flags.entered.clone();
    let started = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .grace(10 * MS)
            .scope(|n: Nursery<E>| async move {
                n.spawn(async move {
                    nursery::shield(async {
                        // The grace period ends inside the inner shield.
                        nursery::shield(async {
                            entered.notify_one();
                            sleep(20 * MS).await;
                        })
                        .await;
                        // Out of the inner shield, still inside the outer.
                        sleep(40 * MS).await;
                        done.store(true, SeqCst);
                    })
                    .await;
                    tokio::task::yield_now().await;
                    after.store(true, SeqCst);
                    Ok(())
                });
                wait.notified().await;
                n.cancel();
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert!(flags.done.load(SeqCst), "the outer shield's work finished");
    assert!(
        !flags.after.load(SeqCst),
        "aborted once out of the outer shield"
    );
    assert_eq!(millis(started), 60);
}

#[tokio::test(start_paused = true)]
async fn a_shield_runs_past_the_scopes_deadline() {
    let flags = Flags::new();
    let started = Instant::now();
    let child = flags.child(100 * MS);
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(20 * MS)
            .scope(|n: Nursery<E>| async move {
                n.spawn(child);
                pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert!(flags.done.load(SeqCst) && !flags.after.load(SeqCst));
    assert_eq!(millis(started), 100);
}

#[tokio::test(start_paused = true)]
async fn a_shield_runs_through_an_outside_cancel() {
    let flags = Flags::new();
    let started = Instant::now();
    let child = flags.child(30 * MS);
    let entered = flags.entered.clone();
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        entered.notified().await;
        cancel.cancel();
    });
    let result = within(
        "the scope",
        Nursery::builder()
            .cancel_on(token)
            .scope(|n: Nursery<E>| async move {
                n.spawn(child);
                pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::Cancelled));
    assert!(flags.done.load(SeqCst) && !flags.after.load(SeqCst));
    assert_eq!(millis(started), 30);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_scope_future_drops_a_shielded_child_at_once() {
    let inside = Tracker::new();
    let tracked = inside.clone();
    let entered = Arc::new(Notify::new());
    let entered_child = entered.clone();
    {
        let scope = nursery::scope(|n: Nursery<E>| async move {
            n.spawn(async move {
                nursery::shield(tracked.track(async move {
                    entered_child.notify_one();
                    sleep(Duration::from_secs(60)).await;
                }))
                .await;
                Ok(())
            });
            pending::<()>().await;
            Ok(())
        });
        let mut scope = std::pin::pin!(scope);
        tokio::select! {
            _ = scope.as_mut() => unreachable!("the body never returns"),
            () = entered.notified() => {}
        }
    }
    // The abort lands at the child's next poll: give the runtime a turn.
    within("the drop", async {
        while !inside.was_dropped() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!inside.completed(), "G7 wins over the shield");
}

#[tokio::test(start_paused = true)]
async fn a_body_inside_a_shield_runs_on_through_a_childs_failure() {
    let started = Instant::now();
    let after = Arc::new(AtomicBool::new(false));
    let after_body = after.clone();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            nursery::shield(async {
                n.spawn(async { Err::<(), _>("child failed") });
                sleep(40 * MS).await;
            })
            .await;
            tokio::task::yield_now().await;
            after_body.store(true, SeqCst);
            Ok(())
        }),
    )
    .await;
    assert_eq!(result.unwrap_err().error(), Some(&"child failed"));
    assert_eq!(millis(started), 40, "the body's shield ran to its end");
    assert!(!after.load(SeqCst), "then the body was dropped");
}

#[tokio::test(start_paused = true)]
async fn a_local_child_inside_a_shield_runs_on_through_a_failure() {
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let after = AtomicBool::new(false);
    let (done_ref, after_ref) = (&done, &after);
    let result = within(
        "the scope",
        nursery::scope_local(|_n: Nursery<E>, local| async move {
            let entered = Arc::new(Notify::new());
            let entered_child = entered.clone();
            local.spawn(async move {
                nursery::shield(async {
                    entered_child.notify_one();
                    sleep(25 * MS).await;
                    done_ref.store(true, SeqCst);
                })
                .await;
                tokio::task::yield_now().await;
                after_ref.store(true, SeqCst);
                Ok(())
            });
            entered.notified().await;
            local.spawn(async { Err::<(), _>("local sibling failed") });
            pending::<()>().await;
            Ok(())
        }),
    )
    .await;
    assert_eq!(result.unwrap_err().error(), Some(&"local sibling failed"));
    assert!(done.load(SeqCst) && !after.load(SeqCst));
    assert_eq!(millis(started), 25);
}

#[tokio::test(start_paused = true)]
async fn a_shield_in_an_inner_scope_protects_the_child_that_holds_that_scope() {
    // Outer scope > child > inner scope > grandchild in a shield: the
    // outer's cancel must not abort the child (which would drop the inner
    // scope and the grandchild with it).
    let flags = Flags::new();
    let started = Instant::now();
    let grandchild = flags.child(60 * MS);
    let entered = flags.entered.clone();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<E>| async move {
            n.spawn(async move {
                nursery::scope(|inner: Nursery<E>| async move {
                    inner.spawn(grandchild);
                    pending::<()>().await;
                    Ok(())
                })
                .await
                .map_err(|_| "inner")
            });
            entered.notified().await;
            n.spawn(async { Err::<(), _>("failed") });
            pending::<()>().await;
            Ok(())
        }),
    )
    .await;
    assert_eq!(result.unwrap_err().error(), Some(&"failed"));
    assert!(flags.done.load(SeqCst) && !flags.after.load(SeqCst));
    assert_eq!(millis(started), 60);
}

#[tokio::test(start_paused = true)]
async fn a_scope_opened_inside_a_shield_is_not_cancelled_from_above() {
    let inner_result = Arc::new(Mutex::new(None));
    let inner_seen = inner_result.clone();
    let entered = Arc::new(Notify::new());
    let entered_child = entered.clone();
    let result = within(
        "the scope",
        Nursery::builder()
            .timeout(10 * MS)
            .scope(|n: Nursery<E>| async move {
                n.spawn(async move {
                    let inner = nursery::shield(nursery::scope(|inner: Nursery<E>| async move {
                        entered_child.notify_one();
                        assert_eq!(inner.deadline(), None, "no deadline from above");
                        let handle = inner.spawn(async {
                            sleep(30 * MS).await;
                            Ok(7)
                        });
                        handle.await.map_err(|_| "joined")
                    }))
                    .await;
                    *inner_seen.lock().unwrap() = Some(inner);
                    Ok(())
                });
                entered.notified().await;
                pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(*inner_result.lock().unwrap(), Some(Ok(7)));
}

#[tokio::test(start_paused = true)]
async fn stats_and_dump_show_shielded_children() {
    let flags = Flags::new();
    let child = flags.child(20 * MS);
    let entered = flags.entered.clone();
    let (before, stats, states) = within(
        "the scope",
        Nursery::builder()
            .name("shield-dump")
            .scope(|n: Nursery<E>| async move {
                n.spawn_named("plain", async {
                    nursery::cancelled().await;
                    Ok(())
                });
                let before = n.stats();
                n.spawn_named("shielded", child);
                entered.notified().await;
                let dump = nursery::dump();
                let scope = dump
                    .scopes()
                    .iter()
                    .find(|scope| scope.name() == Some("shield-dump"))
                    .expect("the scope is in the dump");
                let mut states: Vec<(String, TaskState)> = scope
                    .tasks()
                    .iter()
                    .map(|task| (task.name().unwrap_or("?").to_owned(), task.state()))
                    .collect();
                states.sort_by(|a, b| a.0.cmp(&b.0));
                let stats = n.stats();
                n.cancel();
                Ok((before, stats, states))
            }),
    )
    .await
    .unwrap();
    assert_eq!(before.shielded, 0, "nobody inside a shield yet");
    assert_eq!(stats.shielded, 1);
    assert_eq!(
        states,
        [
            ("plain".to_owned(), TaskState::Running),
            ("shielded".to_owned(), TaskState::Shielded)
        ]
    );
}

#[tokio::test]
async fn outside_any_scope_a_shield_only_runs_its_future() {
    let value = within("the shield", nursery::shield(async { 42 })).await;
    assert_eq!(value, 42);
    assert_eq!(nursery::check(), Ok::<(), Interrupted>(()));
}

//! Local children (`scope_local`, `Local::spawn`): children that borrow
//! from the caller, polled by the scope future on its own task, beside the
//! scope's parallel children, under every guarantee G1–G9.
//!
//! Every test borrows something declared outside the scope, so each one
//! also checks that the borrow compiles.

use std::future::pending;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use nursery::{Cause, Error, Nursery, TaskState};
use nursery_tests::{
    DropCounter, HighWater, PanicOnDrop, Tracker, catch_panic_site, panic_message, within,
};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

type E = &'static str;

// ===== G1: the join =====

#[tokio::test]
async fn g1_the_scope_returns_only_after_every_local_child_has_ended() {
    const CHILDREN: usize = 8;
    let ended = AtomicUsize::new(0);
    let go = std::sync::Arc::new(Notify::new());
    let go_parallel = go.clone();
    let (ended_ref, go_ref) = (&ended, &*go);
    let result = within(
        "the scope",
        nursery::scope_local(|n: Nursery<E>, local| async move {
            for _ in 0..CHILDREN {
                // Handles dropped at once: that detaches nothing.
                drop(local.spawn(async move {
                    go_ref.notified().await;
                    ended_ref.fetch_add(1, SeqCst);
                    Ok(())
                }));
            }
            // A parallel child lets them go once the body has returned.
            n.spawn(async move {
                go_parallel.notify_waiters();
                Ok(())
            });
            Ok("body done")
        }),
    )
    .await;
    assert_eq!(result, Ok("body done"));
    assert_eq!(
        ended.load(SeqCst),
        CHILDREN,
        "every local child ended before the scope returned"
    );
}

#[tokio::test]
async fn g1_local_children_spawned_by_local_children_are_joined_too() {
    let ended = AtomicUsize::new(0);
    let ended = &ended;
    within(
        "the scope",
        nursery::scope_local(|_n: Nursery<E>, local| async move {
            let inner = local.clone();
            local.spawn(async move {
                for _ in 0..3 {
                    inner.spawn(async move {
                        tokio::task::yield_now().await;
                        ended.fetch_add(1, SeqCst);
                        Ok(())
                    });
                }
                Ok(())
            });
            Ok(())
        }),
    )
    .await
    .unwrap();
    assert_eq!(ended.load(SeqCst), 3);
}

#[tokio::test]
async fn a_local_child_runs_whether_or_not_its_handle_is_awaited() {
    // The body waits for a value the local child sends, holding the
    // child's handle unawaited: the scope polls the child anyway (no
    // futurelock).
    let payload = String::from("borrowed");
    let payload = &payload;
    let got = within(
        "the scope",
        nursery::scope_local(|_n: Nursery<E>, local| async move {
            let (tx, rx) = oneshot::channel();
            let _unawaited = local.spawn(async move {
                let _ = tx.send(payload.len());
                Ok(())
            });
            Ok(rx.await.unwrap())
        }),
    )
    .await;
    assert_eq!(got, Ok(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_with_borrowing_children_runs_inside_a_spawned_task() {
    // The data is moved into the task; the scope's children borrow it.
    let lines: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
    let task = tokio::spawn(async move {
        let lines = &lines;
        nursery::Nursery::builder()
            .limit(4)
            .scope_local(|n: Nursery<E>, local| async move {
                let parallel = n.spawn(async { Ok(1) });
                let lengths = local.map(lines, |line| async move { Ok(line.len()) }).await;
                Ok((
                    lengths.unwrap().iter().sum::<usize>(),
                    parallel.await.unwrap(),
                ))
            })
            .await
    });
    let (total, parallel) = within("the task", task).await.unwrap().unwrap();
    assert_eq!(
        total,
        (0..50).map(|i| format!("line {i}").len()).sum::<usize>()
    );
    assert_eq!(parallel, 1);
}

#[tokio::test]
async fn a_scope_local_future_moved_to_another_task_is_woken_there() {
    let (release_local, local_released) = oneshot::channel::<()>();
    let (release_parallel, parallel_released) = oneshot::channel::<()>();
    let (local_ran_tx, local_ran) = oneshot::channel::<()>();
    let (late_ran_tx, late_ran) = oneshot::channel::<()>();
    let scope = Box::pin(nursery::scope_local(
        move |n: Nursery<E>, local: nursery::Local<'static, E>| async move {
            // Woken through its slot's waker.
            local.spawn(async move {
                let _ = local_released.await;
                let _ = local_ran_tx.send(());
                Ok(())
            });
            // Spawned into the scope's inbox from another task, later.
            let spawner = local.clone();
            n.spawn(async move {
                let _ = parallel_released.await;
                drop(spawner.spawn(async move {
                    let _ = late_ran_tx.send(());
                    Ok(())
                }));
                Ok(())
            });
            Ok(())
        },
    ));
    // The first poll runs the body and the local child, under a waker that
    // wakes nobody; then a task polls it.
    let joined = nursery_tests::moved_to_a_new_task(scope).await;
    release_local.send(()).expect("the local child waits");
    within("the local child, woken on the new task", local_ran)
        .await
        .expect("it ran");
    release_parallel.send(()).expect("the parallel child waits");
    within("the local child spawned into the inbox", late_ran)
        .await
        .expect("it ran");
    let result = within("the scope, polled from its new task", joined).await;
    assert_eq!(result.expect("the task ran"), Ok(()));
}

// ===== G2: fail-fast =====

#[tokio::test]
async fn g2_a_local_childs_error_cancels_the_body_the_local_and_the_parallel_children() {
    let local_sibling = Tracker::new();
    let parallel = Tracker::new();
    let body = DropCounter::new();
    let (local_tracked, parallel_tracked) = (local_sibling.clone(), parallel.clone());
    let body_guard = body.guard();
    let name = String::from("broken");
    let name = &name;
    let result = within(
        "the scope",
        nursery::scope_local(|n: Nursery<String>, local| async move {
            let _body = body_guard;
            local.spawn(local_tracked.track(pending::<Result<(), String>>()));
            n.spawn(parallel_tracked.track(pending::<Result<(), String>>()));
            local.spawn(async move { Err::<(), _>(format!("{name} child")) });
            pending::<()>().await;
            Ok(())
        }),
    )
    .await;
    assert_eq!(
        result.unwrap_err().error().map(String::as_str),
        Some("broken child")
    );
    assert_eq!(body.dropped(), 1, "the body was cancelled");
    assert!(local_sibling.was_dropped() && !local_sibling.completed());
    assert!(parallel.was_dropped() && !parallel.completed());
}

#[tokio::test]
async fn g2_a_local_childs_error_is_named_in_the_cause_the_others_read() {
    let cause = Mutex::new(None);
    let cause_ref = &cause;
    // With a grace period the sibling runs on after the cancel, and reads it.
    let _ = within(
        "the scope",
        nursery::Nursery::builder()
            .grace(Duration::from_secs(5))
            .scope_local(|_n: Nursery<E>, local| async move {
                local.spawn(async move {
                    *cause_ref.lock().unwrap() = Some(nursery::cancelled().await);
                    Ok(())
                });
                local.spawn_named("fails", async { Err::<(), _>("no") });
                Ok(())
            }),
    )
    .await;
    let cause = cause
        .lock()
        .unwrap()
        .take()
        .expect("the sibling saw the cancel");
    match cause {
        Cause::Failed { task, location, .. } => {
            assert_eq!(task.as_deref(), Some("fails"));
            assert_eq!(location.file(), file!());
        }
        other => panic!("expected a failure cause, got {other:?}"),
    }
}

#[tokio::test]
async fn g2_later_errors_of_local_children_are_kept_as_suppressed() {
    let result = within(
        "the scope",
        nursery::Nursery::builder().collect_errors().scope_local(
            |_n: Nursery<E>, local| async move {
                let first = local.spawn(async { Err::<(), _>("first") });
                let _ = first.await;
                local.spawn(async { Err::<(), _>("second") });
                local.spawn(async { Err::<(), _>("third") });
                Ok(())
            },
        ),
    )
    .await;
    match result {
        Err(Error::Failed {
            error, suppressed, ..
        }) => {
            assert_eq!(error, "first");
            assert_eq!(suppressed, ["second", "third"]);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn g2_under_collect_errors_a_local_error_cancels_nothing() {
    let finished = AtomicUsize::new(0);
    let finished = &finished;
    let result = within(
        "the scope",
        nursery::Nursery::builder().collect_errors().scope_local(
            |_n: Nursery<E>, local| async move {
                local.spawn(async { Err::<(), _>("one") });
                for _ in 0..3 {
                    local.spawn(async move {
                        tokio::task::yield_now().await;
                        finished.fetch_add(1, SeqCst);
                        Ok(())
                    });
                }
                Ok(())
            },
        ),
    )
    .await;
    assert_eq!(result.unwrap_err().error(), Some(&"one"));
    assert_eq!(finished.load(SeqCst), 3);
}

#[tokio::test]
async fn the_handle_of_a_failed_local_child_says_failed_and_names_it() {
    let (handle_error, result) = within("the scope", async {
        let seen = Mutex::new(None);
        let seen_ref = &seen;
        let result = nursery::Nursery::builder()
            .collect_errors()
            .scope_local(|_n: Nursery<E>, local| async move {
                let error = local
                    .spawn_named("parse", async { Err::<(), _>("bad") })
                    .await
                    .unwrap_err();
                *seen_ref.lock().unwrap() = Some(error);
                Ok(())
            })
            .await;
        (seen.lock().unwrap().take().unwrap(), result)
    })
    .await;
    assert!(handle_error.is_failed());
    assert!(handle_error.to_string().contains("parse"), "{handle_error}");
    assert_eq!(result.unwrap_err().error(), Some(&"bad"));
}

// ===== G3: panics =====

#[tokio::test]
async fn g3_a_local_childs_panic_cancels_the_rest_and_is_re_raised_after_the_join() {
    let sibling = Tracker::new();
    let parallel_ended = DropCounter::new();
    let (tracked, guard) = (sibling.clone(), parallel_ended.guard());
    let message = String::from("local child panicked");
    let message = &message;
    let scope = nursery::scope_local(|n: Nursery<E>, local| async move {
        local.spawn(tracked.track(pending::<Result<(), E>>()));
        n.spawn(async move {
            let _guard = guard;
            pending::<()>().await;
            Ok(())
        });
        local.spawn(async move {
            if !message.is_empty() {
                panic!("{message}");
            }
            Ok(())
        });
        pending::<()>().await;
        Ok(())
    });
    let payload = within(
        "the scope",
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scope)),
    )
    .await
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "local child panicked");
    assert!(sibling.was_dropped() && !sibling.completed());
    assert_eq!(
        parallel_ended.dropped(),
        1,
        "the parallel child was joined before the re-raise"
    );
}

#[tokio::test]
async fn g3_a_panic_in_a_local_childs_destructor_is_re_raised() {
    let flag = String::from("x");
    let flag = &flag;
    let scope = nursery::scope_local(|_n: Nursery<E>, local| async move {
        local.spawn(async move {
            let _bomb = PanicOnDrop("local destructor");
            let _ = flag;
            Ok::<_, E>(())
        });
        Ok(())
    });
    let payload = within(
        "the scope",
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scope)),
    )
    .await
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "local destructor");
}

#[tokio::test(start_paused = true)]
async fn g3_a_panic_in_an_aborted_local_childs_destructor_is_re_raised_after_the_join() {
    let flag = String::from("x");
    let flag = &flag;
    let cleaned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cleaned_in_child = cleaned.clone();
    let scope =
        Nursery::builder()
            .grace(Duration::ZERO)
            .scope_local(|n: Nursery<E>, local| async move {
                let started = std::sync::Arc::new(Notify::new());
                let (local_started, parallel_started) = (started.clone(), started.clone());
                local.spawn(async move {
                    let _bomb = PanicOnDrop("aborted local destructor");
                    let _ = flag;
                    local_started.notify_one();
                    pending::<()>().await;
                    Ok::<_, E>(())
                });
                started.notified().await;
                // A parallel child whose cleanup the scope must wait for before
                // it re-raises the panic (G1, G3).
                n.spawn(async move {
                    nursery::shield(async move {
                        parallel_started.notify_one();
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        cleaned_in_child.store(true, SeqCst);
                    })
                    .await;
                    Ok(())
                });
                started.notified().await;
                n.cancel();
                Ok(())
            });
    let payload = within(
        "the scope",
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scope)),
    )
    .await
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "aborted local destructor");
    assert!(
        cleaned.load(SeqCst),
        "the parallel child's cleanup ran before the panic was re-raised"
    );
}

// ===== G4 / G5: the current scope, hierarchy, deadlines =====

#[tokio::test(start_paused = true)]
async fn g4_a_local_child_sees_its_scopes_deadline_and_cancel() {
    let seen = Mutex::new(Vec::new());
    let seen_ref = &seen;
    let opened = Instant::now();
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .timeout(Duration::from_secs(3))
            .grace(Duration::from_secs(1))
            .scope_local(|_n: Nursery<E>, local| async move {
                local.spawn(async move {
                    seen_ref
                        .lock()
                        .unwrap()
                        .push(format!("{:?}", nursery::check()));
                    let deadline = nursery::deadline().expect("the scope's deadline");
                    seen_ref
                        .lock()
                        .unwrap()
                        .push(format!("{:?}", deadline - opened));
                    let cause = nursery::cancelled().await;
                    seen_ref
                        .lock()
                        .unwrap()
                        .push(format!("{cause:?} at {:?}", opened.elapsed()));
                    Ok(())
                });
                pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!(*seen.lock().unwrap(), ["Ok(())", "3s", "TimedOut at 3s"]);
}

#[tokio::test]
async fn g4_a_scope_opened_in_a_local_child_is_cancelled_with_its_parent() {
    let inner_cause = std::sync::Arc::new(Mutex::new(None));
    let inner_cause_ref = &inner_cause;
    let opened = Notify::new();
    let opened_ref = &opened;
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .grace(Duration::from_secs(5))
            .scope_local(|n: Nursery<E>, local| async move {
                local.spawn(async move {
                    nursery::scope(|inner: Nursery<E>| async move {
                        // The inner scope's child reads the cancel in its grace.
                        let seen = inner_cause_ref.clone();
                        inner.spawn(async move {
                            *seen.lock().unwrap() = Some(nursery::cancelled().await);
                            Ok(())
                        });
                        opened_ref.notify_one();
                        pending::<()>().await;
                        Ok(())
                    })
                    .await
                    .map_err(|_| "inner")
                });
                opened_ref.notified().await;
                n.cancel();
                Ok("kept")
            }),
    )
    .await;
    assert_eq!(result, Ok("kept"));
    assert_eq!(*inner_cause.lock().unwrap(), Some(Cause::Requested));
}

// ===== G6: grace =====

#[tokio::test(start_paused = true)]
async fn g6_on_cancel_local_children_get_the_grace_then_are_dropped() {
    let cleaned = Tracker::new();
    let stubborn = Tracker::new();
    let (cleaned_tracked, stubborn_tracked) = (cleaned.clone(), stubborn.clone());
    let started = Instant::now();
    let label = String::from("cleanup");
    let label = &label;
    let result = within(
        "the scope",
        nursery::Nursery::builder()
            .grace(Duration::from_secs(2))
            .scope_local(|n: Nursery<E>, local| async move {
                local.spawn(cleaned_tracked.track(async move {
                    nursery::cancelled().await;
                    // Cleanup that takes a second: within the grace.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = label;
                    Ok(())
                }));
                local.spawn(stubborn_tracked.track(pending::<Result<(), E>>()));
                tokio::task::yield_now().await;
                n.cancel();
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert!(
        cleaned.completed(),
        "the local child finished its cleanup in the grace"
    );
    assert!(!stubborn.completed());
    assert_eq!(
        stubborn.dropped_at().map(|at| at - started),
        Some(Duration::from_secs(2))
    );
}

// ===== G7: drop =====

#[tokio::test]
async fn g7_dropping_the_scope_future_drops_local_children_at_once() {
    let running = Tracker::new();
    let queued = Tracker::new();
    let (running_tracked, queued_tracked) = (running.clone(), queued.clone());
    let started = Notify::new();
    let started_ref = &started;
    {
        let scope =
            nursery::Nursery::builder()
                .limit(1)
                .scope_local(|_n: Nursery<E>, local| async move {
                    local.spawn(running_tracked.track(async move {
                        started_ref.notify_one();
                        pending::<Result<(), E>>().await
                    }));
                    local.spawn(queued_tracked.track(async { Ok(()) }));
                    pending::<()>().await;
                    Ok(())
                });
        let mut scope = std::pin::pin!(scope);
        tokio::select! {
            _ = scope.as_mut() => unreachable!("the body never returns"),
            () = started_ref.notified() => {}
        }
        // Dropped here, on leaving the block.
    }
    assert!(
        running.was_dropped(),
        "the running local child was dropped with the scope future"
    );
    assert!(
        queued.was_dropped() && !queued.was_polled(),
        "the queued one was dropped unpolled"
    );
}

#[tokio::test]
async fn g7_a_dropped_scope_future_re_raises_a_local_destructors_panic_and_leaves_nothing_behind() {
    let other = Tracker::new();
    let other_tracked = other.clone();
    let checked = nursery::testing::LeakCheck::new()
        .grace(Duration::from_millis(50))
        .try_run(async move {
            let started = Notify::new();
            let started_ref = &started;
            let mut scope = Box::pin(Nursery::builder().name("dropped-with-bomb").scope_local(
                |_n: Nursery<E>, local| async move {
                    local.spawn(async move {
                        let _bomb = PanicOnDrop("dropped local destructor");
                        started_ref.notify_one();
                        pending::<Result<(), E>>().await
                    });
                    local.spawn(other_tracked.track(pending::<Result<(), E>>()));
                    pending::<()>().await;
                    Ok(())
                },
            ));
            tokio::select! {
                _ = scope.as_mut() => unreachable!("the body never returns"),
                () = started.notified() => {}
            }
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(scope)));
            panic_message(&*dropped.expect_err("the destructor's panic is re-raised"))
        });
    let message = within("the leak check", checked)
        .await
        .expect("nothing left behind");
    assert_eq!(message, "dropped local destructor");
    assert!(other.was_dropped(), "the other local child was dropped too");
}

#[tokio::test]
async fn a_forgotten_scope_future_never_polls_its_local_children_again() {
    let polls = AtomicUsize::new(0);
    let polls_ref = &polls;
    let wake = Notify::new();
    let wake_ref = &wake;
    let mut scope = Box::pin(nursery::scope_local(|_n: Nursery<E>, local| async move {
        local.spawn(async move {
            loop {
                polls_ref.fetch_add(1, SeqCst);
                wake_ref.notified().await;
            }
            #[allow(unreachable_code)]
            Ok::<(), E>(())
        });
        pending::<()>().await;
        Ok(())
    }));
    assert!(futures_util::poll!(scope.as_mut()).is_pending());
    assert_eq!(polls.load(SeqCst), 1);
    // Forgotten, not dropped: the child stays where it is, unpolled.
    std::mem::forget(scope);
    wake.notify_waiters();
    tokio::task::yield_now().await;
    assert_eq!(
        polls.load(SeqCst),
        1,
        "nothing polls a forgotten scope's children"
    );
}

// ===== G8: limits =====

#[tokio::test]
async fn g8_local_and_parallel_children_share_the_limit_and_queue_in_fifo_order() {
    const LIMIT: usize = 2;
    let high = HighWater::new();
    let order = Mutex::new(Vec::new());
    let (high_ref, order_ref) = (&high, &order);
    within(
        "the scope",
        nursery::Nursery::builder()
            .limit(LIMIT)
            .scope_local(|n: Nursery<E>, local| async move {
                for i in 0..6 {
                    local.spawn(async move {
                        let _in = high_ref.enter();
                        order_ref.lock().unwrap().push(i);
                        tokio::task::yield_now().await;
                        Ok(())
                    });
                }
                let parallel_high = high_ref.clone();
                n.spawn(async move {
                    let _in = parallel_high.enter();
                    tokio::task::yield_now().await;
                    Ok(())
                });
                Ok(())
            }),
    )
    .await
    .unwrap();
    assert!(high.peak() <= LIMIT, "peak {} over the limit", high.peak());
    assert_eq!(
        *order.lock().unwrap(),
        [0, 1, 2, 3, 4, 5],
        "local children start in spawn order"
    );
}

#[tokio::test]
async fn g8_a_weighted_local_child_holds_its_weight() {
    let high = HighWater::new();
    let high_ref = &high;
    let heavy_running = Notify::new();
    let heavy_ref = &heavy_running;
    within(
        "the scope",
        nursery::Nursery::builder()
            .limit(4)
            .scope_local(|n: Nursery<E>, local| async move {
                let heavy = local.spawn_weighted(3, async move {
                    let _in = high_ref.enter();
                    heavy_ref.notified().await;
                    Ok(())
                });
                // Two light children: one fits beside the heavy one, the
                // other waits for it.
                let lights: Vec<_> = (0..2)
                    .map(|_| {
                        local.spawn(async move {
                            let _in = high_ref.enter();
                            Ok(())
                        })
                    })
                    .collect();
                let stats = n.stats();
                assert_eq!(stats.queued, 1, "one light child waits for the heavy one");
                heavy_ref.notify_one();
                heavy.await.unwrap();
                for light in lights {
                    light.await.unwrap();
                }
                Ok(())
            }),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn g8_queued_local_children_never_start_after_a_cancel() {
    let queued = Tracker::new();
    let queued_tracked = queued.clone();
    let outcome = within(
        "the scope",
        nursery::Nursery::builder()
            .limit(1)
            .scope_local(|n: Nursery<E>, local| async move {
                local.spawn(pending::<Result<(), E>>());
                let handle = local.spawn(queued_tracked.track(async { Ok(()) }));
                n.cancel();
                Ok(handle.await.unwrap_err().is_cancelled())
            }),
    )
    .await;
    assert_eq!(outcome, Ok(true));
    assert!(queued.was_dropped() && !queued.was_polled());
}

#[tokio::test(start_paused = true)]
async fn g8_queued_local_children_end_at_the_cancel_not_after_the_grace() {
    let flag = String::from("x");
    let flag = &flag;
    let queued = Tracker::new();
    let queued_tracked = queued.clone();
    let started = Instant::now();
    let outcome = within(
        "the scope",
        Nursery::builder()
            .limit(1)
            .grace(Duration::from_secs(3600))
            .scope_local(|n: Nursery<E>, local| async move {
                // Holds the one slot until the cancel, then ends at once.
                local.spawn(async move {
                    let _ = flag;
                    nursery::cancelled().await;
                    Ok(())
                });
                local.spawn(queued_tracked.track(async { Ok(()) }));
                n.cancel();
                Ok(())
            }),
    )
    .await;
    assert_eq!(outcome, Ok(()));
    assert!(queued.was_dropped() && !queued.was_polled());
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "the queued child was let go at the cancel, not held until the grace ran out"
    );
}

#[tokio::test(start_paused = true)]
async fn g8_local_children_start_at_the_scopes_rate() {
    let flag = String::from("x");
    let flag = &flag;
    let origin = Instant::now();
    let starts = within(
        "the scope",
        Nursery::builder()
            .rate(1, Duration::from_millis(10))
            .scope_local(|_n: Nursery<E>, local| async move {
                let handles: Vec<_> = (0..3)
                    .map(|_| {
                        local.spawn(async move {
                            let _ = flag;
                            Ok(origin.elapsed())
                        })
                    })
                    .collect();
                let mut starts = Vec::new();
                for handle in handles {
                    starts.push(handle.await.unwrap());
                }
                Ok(starts)
            }),
    )
    .await
    .unwrap();
    let ms = |n| Duration::from_millis(n);
    assert_eq!(starts, [ms(0), ms(10), ms(20)], "one start per 10 ms");
}

#[tokio::test]
async fn g8_a_local_child_admitted_before_the_scope_took_it_from_its_inbox_runs() {
    // A parallel child holds the one slot, spawns a local child (queued
    // behind it, in the scope's inbox) and ends, which admits the local
    // child on the parallel child's thread before the scope future has
    // taken it: the admission must wait for it, not be lost.
    let outcome = within(
        "the scope",
        Nursery::builder().limit(1).scope_local(
            move |n: Nursery<E>, local: nursery::Local<'static, E>| async move {
                let (ran_tx, ran) = oneshot::channel();
                let spawner = local.clone();
                n.spawn(async move {
                    drop(spawner.spawn(async move {
                        let _ = ran_tx.send(());
                        Ok(())
                    }));
                    Ok(())
                });
                Ok(ran.await.is_ok())
            },
        ),
    )
    .await;
    assert_eq!(outcome, Ok(true));
}

#[test]
fn g8_a_local_child_heavier_than_the_limit_panics_at_the_call() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let site = rt.block_on(async {
        let caught = Mutex::new(None);
        let caught_ref = &caught;
        nursery::Nursery::builder()
            .limit(2)
            .scope_local(|_n: Nursery<E>, local| async move {
                *caught_ref.lock().unwrap() = Some(catch_panic_site(|| {
                    drop(local.spawn_weighted(3, async { Ok(()) }))
                }));
                Ok(())
            })
            .await
            .unwrap();
        caught.into_inner().unwrap().unwrap()
    });
    let site = site.unwrap_err();
    assert!(
        site.message
            .contains("spawn_weighted(3, ..) in a scope with limit(2)"),
        "{}",
        site.message
    );
    assert!(site.location.starts_with(file!()), "{}", site.location);
}

// ===== G9: self-cancel =====

#[tokio::test]
async fn g9_n_cancel_stops_local_children_and_keeps_the_body() {
    let child = Tracker::new();
    let tracked = child.clone();
    let result = within(
        "the scope",
        nursery::scope_local(|n: Nursery<E>, local| async move {
            let running = local.spawn(tracked.track(pending::<Result<(), E>>()));
            tokio::task::yield_now().await;
            n.cancel();
            let after = local.spawn(async { Ok(()) });
            Ok((
                running.await.unwrap_err().is_cancelled(),
                after.await.unwrap_err().is_cancelled(),
            ))
        }),
    )
    .await;
    assert_eq!(result, Ok((true, true)));
    assert!(child.was_dropped() && !child.completed());
}

// ===== outside the scope =====

#[tokio::test]
async fn a_local_handle_reads_finished_once_its_child_has_ended() {
    let flag = String::from("x");
    let flag = &flag;
    let outcome = within(
        "the scope",
        nursery::scope_local(|_n: Nursery<E>, local| async move {
            let (release_tx, release) = oneshot::channel::<()>();
            let handle = local.spawn(async move {
                let _ = flag;
                let _ = release.await;
                Ok(7)
            });
            assert!(!handle.is_finished(), "waiting for its release");
            release_tx.send(()).expect("the child holds the receiver");
            // Waits until the scope future has run the child to its end.
            while !handle.is_finished() {
                tokio::task::yield_now().await;
            }
            handle.await.map_err(|_| "the child failed")
        }),
    )
    .await;
    assert_eq!(outcome, Ok(7));
}

#[tokio::test]
async fn a_local_handle_kept_past_the_scope_refuses_new_children_as_closed() {
    let kept = within(
        "the scope",
        nursery::scope_local(|_n: Nursery<E>, local| async move { Ok(local) }),
    )
    .await
    .unwrap();
    let never = Tracker::new();
    let handle = kept.spawn(never.track(async { Ok(()) }));
    assert!(handle.await.unwrap_err().is_closed());
    assert!(never.was_dropped() && !never.was_polled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_children_spawned_from_another_task_run_on_the_scopes_own() {
    // With `'env = 'static` a `Local` can move into a parallel child: its
    // children go to the scope's task all the same, through the inbox and
    // a wake, under the limit (tickets admitted from another thread).
    let ran_on: &'static Mutex<Vec<Option<tokio::task::Id>>> =
        Box::leak(Box::new(Mutex::new(Vec::new())));
    let ran_on_ref = ran_on;
    let scope_task = within(
        "the scope",
        tokio::spawn(nursery::Nursery::builder().limit(2).scope_local(
            move |n: Nursery<E>, local: nursery::Local<'static, E>| async move {
                let spawner = local.clone();
                n.spawn(async move {
                    let handles: Vec<_> = (0..8)
                        .map(|_| {
                            spawner.spawn(async move {
                                ran_on_ref.lock().unwrap().push(tokio::task::try_id());
                                tokio::task::yield_now().await;
                                Ok(())
                            })
                        })
                        .collect();
                    for handle in handles {
                        handle.await.unwrap();
                    }
                    Ok(())
                })
                .await
                .unwrap();
                Ok(tokio::task::try_id())
            },
        )),
    )
    .await
    .unwrap()
    .unwrap();
    let ran_on = ran_on.lock().unwrap();
    assert_eq!(ran_on.len(), 8);
    assert!(
        ran_on.iter().all(|&id| id == scope_task),
        "every local child ran on the scope's task"
    );
}

// ===== stats, dump, leaks =====

#[tokio::test]
async fn stats_read_in_the_body_count_local_children() {
    let stats = within(
        "the scope",
        nursery::scope_local(|n: Nursery<E>, local| async move {
            local.spawn(async { Ok(()) }).await.unwrap();
            local.spawn(async { Ok(()) }).await.unwrap();
            let pending_child = local.spawn(pending::<Result<(), E>>());
            let stats = n.stats();
            n.cancel();
            assert!(pending_child.await.unwrap_err().is_cancelled());
            Ok((stats, n.stats()))
        }),
    )
    .await
    .unwrap();
    let (before, after) = stats;
    assert_eq!(
        (before.spawned, before.succeeded, before.running),
        (3, 2, 1)
    );
    assert_eq!((after.spawned, after.cancelled, after.running), (3, 1, 0));
}

#[tokio::test]
async fn dump_shows_local_children_with_their_name_site_and_state() {
    let text = within(
        "the scope",
        nursery::Nursery::builder()
            .name("local-dump")
            .limit(1)
            .scope_local(|n: Nursery<E>, local| async move {
                local.spawn_named("running-local", pending::<Result<(), E>>());
                let line = line!() + 1;
                local.spawn_named("queued-local", async { Ok(()) });
                let dump = nursery::dump();
                let scope = dump
                    .scopes()
                    .iter()
                    .find(|scope| scope.name() == Some("local-dump"))
                    .expect("the scope is in the dump");
                let tasks: Vec<_> = scope
                    .tasks()
                    .iter()
                    .map(|task| {
                        (
                            task.name().unwrap().to_owned(),
                            task.state(),
                            task.is_local(),
                        )
                    })
                    .collect();
                assert_eq!(
                    tasks,
                    [
                        ("running-local".to_owned(), TaskState::Running, true),
                        ("queued-local".to_owned(), TaskState::Queued, true),
                    ]
                );
                let queued = &scope.tasks()[1];
                assert_eq!(
                    (queued.location().file(), queued.location().line()),
                    (file!(), line)
                );
                let text = dump.to_string();
                n.cancel();
                Ok(text)
            }),
    )
    .await
    .unwrap();
    assert!(
        text.contains("local task `running-local` spawned at"),
        "{text}"
    );
}

#[tokio::test]
async fn a_leak_check_reports_the_local_children_of_a_forgotten_scope() {
    let report = nursery::testing::LeakCheck::new()
        .grace(Duration::from_millis(50))
        .try_run(async {
            let mut scope = Box::pin(nursery::Nursery::builder().name("forgotten").scope_local(
                |_n: Nursery<E>, local| async move {
                    local.spawn_named("left-behind", pending::<Result<(), E>>());
                    pending::<()>().await;
                    Ok(())
                },
            ));
            assert!(futures_util::poll!(scope.as_mut()).is_pending());
            std::mem::forget(scope);
        });
    let report = within("the leak check", report).await.unwrap_err();
    let names: Vec<_> = report
        .tasks()
        .iter()
        .filter_map(|task| task.name())
        .collect();
    assert!(names.contains(&"left-behind"), "{report}");
}

// ===== many children, bulk =====

#[tokio::test]
async fn ten_thousand_local_children_run_and_their_slots_are_reused() {
    const CHILDREN: usize = 10_000;
    let sum = AtomicUsize::new(0);
    let sum_ref = &sum;
    within(
        "the scope",
        nursery::scope_local(|_n: Nursery<E>, local| async move {
            for wave in 0..2 {
                let handles: Vec<_> = (0..CHILDREN / 2)
                    .map(|i| {
                        local.spawn(async move {
                            tokio::task::yield_now().await;
                            sum_ref.fetch_add(wave * CHILDREN / 2 + i, SeqCst);
                            Ok(())
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.await.unwrap();
                }
            }
            Ok(())
        }),
    )
    .await
    .unwrap();
    assert_eq!(sum.load(SeqCst), (0..CHILDREN).sum::<usize>());
}

#[tokio::test]
async fn local_map_returns_values_in_input_order_under_the_limit() {
    let items: Vec<u64> = (1..=20).collect();
    let high = HighWater::new();
    let (items_ref, high_ref) = (&items, &high);
    let values = within(
        "the scope",
        nursery::Nursery::builder()
            .limit(3)
            .scope_local(|_n: Nursery<E>, local| async move {
                let values = local
                    .map(items_ref, |&item| async move {
                        let _in = high_ref.enter();
                        // Later items finish first.
                        tokio::time::sleep(Duration::from_millis(21 - item)).await;
                        Ok(item * 10)
                    })
                    .await
                    .unwrap();
                Ok(values)
            }),
    )
    .await
    .unwrap();
    assert_eq!(
        values,
        items.iter().map(|item| item * 10).collect::<Vec<_>>()
    );
    assert!(high.peak() <= 3, "peak {}", high.peak());
}

#[tokio::test]
async fn local_map_reports_the_first_child_that_did_not_succeed() {
    let items = ["a", "", "c"];
    let items = &items;
    let result = within(
        "the scope",
        nursery::Nursery::builder().collect_errors().scope_local(
            |_n: Nursery<E>, local| async move {
                let error = local
                    .map(items, |item| async move {
                        if item.is_empty() {
                            Err("empty")
                        } else {
                            Ok(*item)
                        }
                    })
                    .await
                    .unwrap_err();
                Ok(error.is_failed())
            },
        ),
    )
    .await;
    assert_eq!(result.unwrap_err().error(), Some(&"empty"));
}

#[tokio::test]
async fn a_local_child_that_keeps_waking_itself_does_not_starve_the_body() {
    // A local child that yields forever: the body still runs and ends the
    // scope, because the scope future yields between rounds.
    let result = within(
        "the scope",
        nursery::scope_local(|n: Nursery<E>, local| async move {
            local.spawn(async {
                loop {
                    tokio::task::yield_now().await;
                }
                #[allow(unreachable_code)]
                Ok::<(), E>(())
            });
            tokio::task::yield_now().await;
            n.cancel();
            Ok("body ran")
        }),
    )
    .await;
    assert_eq!(result, Ok("body ran"));
}

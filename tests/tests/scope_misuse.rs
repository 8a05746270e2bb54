//! What happens when a scope is used wrongly (a handle outliving its scope,
//! no runtime, impossible builder settings), and the rest of the handle's
//! contract: `start`, `JoinError` messages, parallel children, borrowing
//! bodies.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use nursery::{Error, Nursery};
use nursery_tests::{Rendezvous, Tracker, panic_message, within, yield_rounds};
use tokio::sync::{Barrier, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A safety net for blocking waits: a broken test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(5);

// ----- a handle that outlives its scope -----

#[tokio::test]
async fn spawn_through_a_nursery_returned_from_its_scope_starts_nothing() {
    let smuggled = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move { Ok(n.clone()) }),
    )
    .await
    .unwrap();

    let late = Tracker::new();
    let handle = smuggled.spawn(late.track(async { Ok::<_, String>(()) }));
    assert!(late.was_dropped() && !late.was_polled(), "dropped unpolled");
    let error = handle.await.unwrap_err();
    assert!(error.is_closed(), "{error}");

    let refused = Tracker::new();
    let error = smuggled
        .try_spawn(refused.track(async { Ok::<_, String>(5) }))
        .unwrap_err();
    assert!(error.is_closed() && !error.is_full() && !error.is_cancelled());
    let future = error.into_future();
    assert!(!refused.was_polled() && !refused.was_dropped());
    assert_eq!(future.await, Ok(5), "handed back intact");

    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let blocking = smuggled.spawn_blocking(move |_| {
        flag.store(true, Ordering::SeqCst);
        Ok(())
    });
    assert!(blocking.await.unwrap_err().is_closed());
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(smuggled.live(), 0);
}

#[tokio::test]
async fn spawn_through_a_nursery_sent_out_through_a_channel_starts_nothing() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            let spawner = n.clone();
            drop(n.spawn(async move {
                tx.send(spawner).unwrap();
                Ok(())
            }));
            Ok(())
        }),
    )
    .await;
    assert_eq!(result, Ok(()));

    let smuggled = rx.recv().await.unwrap();
    let late = Tracker::new();
    let error = smuggled
        .spawn(late.track(async { Ok::<_, String>(()) }))
        .await
        .unwrap_err();
    assert!(error.is_closed());
    assert!(!late.was_polled() && late.was_dropped());
    let error = smuggled.try_spawn(async { Ok(()) }).unwrap_err();
    assert!(error.is_closed());
}

#[tokio::test]
async fn spawn_through_a_nursery_of_a_cancelled_scope_that_returned_says_closed() {
    let smuggled = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            n.cancel();
            Ok(n.clone())
        }),
    )
    .await
    .unwrap();
    let error = smuggled.spawn(async { Ok(()) }).await.unwrap_err();
    assert!(error.is_closed(), "{error:?}");
    assert!(
        smuggled
            .try_spawn(async { Ok(()) })
            .unwrap_err()
            .is_closed()
    );
}

#[tokio::test]
async fn spawn_through_a_nursery_of_a_dropped_scope_starts_nothing() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let scope = nursery::scope(|n: Nursery<String>| async move {
            tx.send(n.clone()).unwrap();
            std::future::pending::<Result<(), String>>().await
        });
        let mut scope = pin!(scope);
        // One poll runs the body up to its first await, then drop it.
        let first = std::future::poll_fn(|cx| Poll::Ready(scope.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "the body never returns");
    }
    let smuggled = rx.recv().await.unwrap();
    let late = Tracker::new();
    let error = smuggled
        .spawn(late.track(async { Ok::<_, String>(()) }))
        .await
        .unwrap_err();
    assert!(error.is_closed(), "{error:?}");
    assert!(!late.was_polled());
}

// ----- no runtime -----

fn poll_once_without_runtime<F: Future>(future: F) -> Result<Poll<F::Output>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut future = pin!(future);
        future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    }))
    .map_err(|payload| panic_message(&*payload))
}

#[test]
fn a_scope_polled_outside_a_tokio_runtime_panics_saying_so() {
    let message = poll_once_without_runtime(nursery::scope(|_: Nursery<String>| async { Ok(()) }))
        .unwrap_err();
    assert!(message.contains("no tokio runtime"), "{message}");

    let message = poll_once_without_runtime(
        Nursery::builder()
            .limit(2)
            .scope(|_: Nursery<String>| async { Ok(()) }),
    )
    .unwrap_err();
    assert!(message.contains("no tokio runtime"), "{message}");
}

#[test]
fn a_scope_run_by_another_executor_panics_saying_no_tokio_runtime() {
    let payload =
        catch_unwind(|| park_block_on(nursery::scope(|_: Nursery<String>| async { Ok(()) })))
            .unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("no tokio runtime"), "{message}");
}

/// A minimal executor that is not tokio (futures' executor is not a
/// dependency here): polls, and parks the thread until woken.
fn park_block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return output;
        }
        std::thread::park();
    }
}

// ----- builder settings that can never be right -----

#[test]
fn builder_limit_zero_panics_naming_the_setting() {
    let payload = catch_unwind(|| Nursery::builder().limit(0)).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("limit"), "{message}");
}

#[test]
fn builder_empty_name_panics_naming_the_setting() {
    let payload = catch_unwind(|| Nursery::builder().name("")).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("name"), "{message}");

    let payload = catch_unwind(|| Nursery::builder().name(String::new())).unwrap_err();
    assert!(panic_message(&*payload).contains("name"));
}

#[test]
fn builder_panics_point_at_the_callers_line() {
    use std::sync::Mutex;
    // Record the location of panics on this thread only; hand the others to
    // the previous hook, so tests running in parallel are not disturbed.
    let me = std::thread::current().id();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let previous = Arc::new(std::panic::take_hook());
    {
        let seen = seen.clone();
        let previous = previous.clone();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == me {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                seen.lock().unwrap().push(location.unwrap_or_default());
            } else {
                previous(info);
            }
        }));
    }
    let limit_line = line!() + 1;
    let limit = catch_unwind(|| Nursery::builder().limit(0));
    let name_line = line!() + 1;
    let name = catch_unwind(|| Nursery::builder().name(""));
    drop(std::panic::take_hook());
    if let Ok(previous) = Arc::try_unwrap(previous) {
        std::panic::set_hook(previous);
    }

    assert!(limit.is_err() && name.is_err());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!("{}:{limit_line}", file!()),
            format!("{}:{name_line}", file!())
        ]
    );
}

// ----- start -----

#[tokio::test]
async fn start_returns_the_value_sent_and_the_child_keeps_running() {
    let finished = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| {
            let finished = finished.clone();
            let stop = stop.clone();
            async move {
                let (child_stop, child_finished) = (stop.clone(), finished.clone());
                let value = n
                    .start(|ready| async move {
                        ready.send(8080u16);
                        child_stop.cancelled().await;
                        child_finished.store(true, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                yield_rounds(5).await;
                let still_running = !finished.load(Ordering::SeqCst) && n.live() == 1;
                stop.cancel();
                Ok((value, still_running))
            }
        }),
    )
    .await;
    assert_eq!(result, Ok((8080, true)));
    assert!(finished.load(Ordering::SeqCst), "joined by the scope");
}

#[tokio::test]
async fn start_whose_child_returns_before_send_is_not_ready() {
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            let never_ready = |_ready: nursery::Ready<u32>| async { Ok(()) };
            let started_at = format!("{}:{}", file!(), line!() + 1);
            let dropped_at_once = n.start(never_ready).await;
            let dropped_at_end = n
                .start(|ready: nursery::Ready<u32>| async move {
                    yield_rounds(3).await;
                    drop(ready);
                    yield_rounds(3).await;
                    Ok(())
                })
                .await;
            Ok((
                dropped_at_once.unwrap_err(),
                dropped_at_end.unwrap_err(),
                started_at,
            ))
        }),
    )
    .await;
    let (at_once, at_end, started_at) = result.unwrap();
    assert!(at_once.is_not_ready(), "{at_once:?}");
    assert!(at_end.is_not_ready(), "{at_end:?}");
    let message = at_once.to_string();
    assert!(message.contains("Ready::send"), "{message}");
    assert!(
        message.contains(&started_at),
        "{message} lacks {started_at}"
    );
}

#[tokio::test]
async fn start_whose_child_fails_before_send_is_failed() {
    // Under fail-fast the child's error would cancel the body that waits in
    // `start`; collecting errors lets the body see what `start` returns.
    let (tx, rx) = oneshot::channel();
    let result = within(
        "the scope",
        Nursery::builder()
            .collect_errors()
            .scope(|n: Nursery<String>| async move {
                let started = n
                    .start(|ready: nursery::Ready<u32>| async move {
                        let _keep = ready;
                        Err::<(), _>("bind failed".to_owned())
                    })
                    .await;
                tx.send(started.map_err(|e| (e.is_failed(), e.is_not_ready())))
                    .unwrap();
                Ok(())
            }),
    )
    .await;
    assert_eq!(rx.await.unwrap(), Err((true, false)));
    assert_eq!(
        result,
        Err(Error::Failed {
            error: "bind failed".to_owned(),
            suppressed: vec![],
            omitted: 0
        }),
        "the error itself goes to the scope"
    );
}

// ----- JoinError messages -----

#[tokio::test]
async fn join_error_display_names_a_cancelled_task_and_its_spawn_location() {
    let (message, spawned_at) = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            let pending = std::future::pending::<Result<(), String>>();
            let spawned_at = format!("{}:{}", file!(), line!() + 1);
            let handle = n.spawn_named("worker", pending);
            n.cancel();
            Ok((handle.await.unwrap_err().to_string(), spawned_at))
        }),
    )
    .await
    .unwrap();
    assert!(message.contains("worker"), "{message}");
    assert!(
        message.contains(&spawned_at),
        "{message} lacks {spawned_at}"
    );
}

#[tokio::test]
async fn join_error_display_names_a_failed_task_and_its_spawn_location() {
    let (tx, rx) = oneshot::channel();
    let _ = within(
        "the scope",
        Nursery::builder()
            .collect_errors()
            .scope(|n: Nursery<String>| async move {
                let failing = async { Err::<(), _>("parse error".to_owned()) };
                let named_at = format!("{}:{}", file!(), line!() + 1);
                let named = n.spawn_named("parse-config", failing);
                let unnamed_at = format!("{}:{}", file!(), line!() + 1);
                let unnamed = n.spawn(async { Err::<(), _>("second".to_owned()) });
                let named = named.await.unwrap_err();
                let unnamed = unnamed.await.unwrap_err();
                tx.send((named, named_at, unnamed, unnamed_at)).unwrap();
                Ok(())
            }),
    )
    .await;
    let (named, named_at, unnamed, unnamed_at) = rx.await.unwrap();
    assert!(named.is_failed() && unnamed.is_failed());
    let named = named.to_string();
    let unnamed = unnamed.to_string();
    assert!(named.contains("parse-config"), "{named}");
    assert!(named.contains(&named_at), "{named} lacks {named_at}");
    assert!(
        unnamed.contains(&unnamed_at),
        "{unnamed} lacks {unnamed_at}"
    );
}

// ----- children run in parallel -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_children_run_in_parallel() {
    let meeting = Rendezvous::new(2);
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let meeting = meeting.clone();
                    n.spawn_blocking(move |_| Ok(meeting.meet(PATIENCE)))
                })
                .collect();
            let mut met = Vec::new();
            for handle in handles {
                met.push(handle.await.map_err(|e| e.to_string())?);
            }
            Ok(met)
        }),
    )
    .await;
    assert_eq!(
        result,
        Ok(vec![true, true]),
        "both blocked at once, on two threads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_children_run_at_the_same_time() {
    let barrier = Arc::new(Barrier::new(2));
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let barrier = barrier.clone();
                    n.spawn(async move {
                        tokio::time::timeout(PATIENCE, barrier.wait())
                            .await
                            .map(|_| std::thread::current().id())
                            .map_err(|_| "the other child never ran alongside".to_owned())
                    })
                })
                .collect();
            let mut ids = Vec::new();
            for handle in handles {
                ids.push(handle.await.map_err(|e| e.to_string())?);
            }
            Ok(ids.len())
        }),
    )
    .await;
    assert_eq!(result, Ok(2));
}

// ----- the body may borrow -----

#[tokio::test]
async fn the_body_may_borrow_from_the_caller() {
    let mut log: Vec<u32> = vec![1];
    let prefix = String::from("item");
    let borrowed = &mut log;
    let prefix_ref = &prefix;
    let result = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            borrowed.push(2);
            let child = n.spawn(async { Ok(3) });
            borrowed.push(child.await.map_err(|e| e.to_string())?);
            Ok(format!("{prefix_ref} count {}", borrowed.len()))
        }),
    )
    .await;
    assert_eq!(result, Ok("item count 3".to_owned()));
    assert_eq!(log, [1, 2, 3]);
    assert_eq!(prefix, "item", "still ours");
}

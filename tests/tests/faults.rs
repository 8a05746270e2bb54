//! Faults: children and runtimes misbehaving in the ways real programs do.
//!
//! A child whose destructor panics, a child that never yields, a runtime
//! shut down under open scopes, a scope future polled again after it
//! completed, and a blocking child that outlives its dropped scope. In each
//! case nothing hangs, no panic is lost, no panic is invented, and the
//! leak machinery names what it cannot stop.

use std::future::{Future, pending, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once};
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;
use nursery::{Leak, Nursery, TaskState};
use nursery_tests::{DropCounter, Latch, LeakLog, PanicOnDrop, panic_message, within};
use tokio::sync::oneshot;

type E = &'static str;

/// Long enough never to be reached by a passing test; bounds a broken one.
const SAFETY: Duration = Duration::from_secs(5);

/// The leak-grace window of the dropped scopes here: short, in real time.
const LEAK_GRACE: Duration = Duration::from_millis(50);

/// The precision of leak times (a coarse clock; see `leaks.rs`).
const CLOCK_SLACK: Duration = Duration::from_millis(10);

// ===== panics nobody asked for =====

/// The payloads the tests here raise on purpose.
const INTENDED: &[&str] = &[
    "completed child destructor",
    "limited child destructor",
    "queued child destructor",
    "queued blocking destructor",
    "`async fn` resumed after completion",
];

/// Panics other than the intended ones, from any thread (the blocking pool
/// and the runtime's workers included, where tokio would catch them out of
/// sight): a fault must not make the library panic.
static UNEXPECTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn watch_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = panic_message(info.payload());
            if !INTENDED.contains(&message.as_str()) {
                let thread = std::thread::current();
                UNEXPECTED
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!(
                        "{message} (thread {:?}, at {:?})",
                        thread.name(),
                        info.location()
                    ));
                default(info);
            }
        }));
    });
}

/// The unexpected panics whose message or place mentions `needle`. Tests
/// run in parallel: each looks for its own marks.
fn unexpected_panics(needle: &str) -> Vec<String> {
    UNEXPECTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|panic| panic.contains(needle) || panic.contains("nursery/src"))
        .cloned()
        .collect()
}

/// Runs `scope` to completion (bounded by [`within`]), and returns the
/// payload of the panic it re-raised.
async fn expect_reraised<F>(scope: F) -> String
where
    F: Future<Output = Result<(), nursery::Error<E>>>,
{
    let caught = within("the scope", AssertUnwindSafe(scope).catch_unwind()).await;
    match caught {
        Ok(result) => panic!("the panic was lost: the scope returned {result:?}"),
        Err(payload) => panic_message(&*payload),
    }
}

// ===== a child whose destructor panics =====

/// A future that completes at once and panics when it is dropped after.
/// (An `async` block would drop its locals while completing, inside its
/// last poll; this one keeps the bomb in the future itself.)
struct CompletesThenPanicsWhenDropped(#[allow(dead_code)] PanicOnDrop);

impl Future for CompletesThenPanicsWhenDropped {
    type Output = Result<(), E>;

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
    }
}

/// A child that completes, and whose future panics when it is dropped
/// right after: the panic is the child's (G3), re-raised by the scope once
/// the siblings it cancelled are joined. tokio drops the future, and keeps
/// the payload; the scope re-raises one that says what happened (design
/// notes: "A child's task is the user's future plus one pointer").
async fn completed_child_destructor_panics(limit: Option<usize>, payload: &'static str) {
    watch_panics();
    let siblings = DropCounter::new();
    let guards = siblings.clone();
    let mut builder = Nursery::builder();
    if let Some(limit) = limit {
        builder = builder.limit(limit);
    }
    let reraised = expect_reraised(builder.scope(move |n: Nursery<E>| async move {
        for _ in 0..3 {
            let guard = guards.guard();
            n.spawn(async move {
                let _guard = guard;
                pending::<Result<(), E>>().await
            });
        }
        n.spawn(CompletesThenPanicsWhenDropped(PanicOnDrop(payload)));
        Ok(())
    }))
    .await;
    assert!(
        reraised.contains("panicked in its destructor"),
        "re-raised {reraised:?}, not the destructor panic of {payload:?}"
    );
    assert_eq!(
        siblings.dropped(),
        3,
        "re-raised before the cancelled siblings were joined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_completed_childs_destructor_panic_is_reraised() {
    completed_child_destructor_panics(None, "completed child destructor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_completed_childs_destructor_panic_is_reraised_under_a_limit() {
    // Under a limit the child runs as a job on a runner task: another path.
    completed_child_destructor_panics(Some(8), "limited child destructor").await;
}

/// Children queued under a limit, never started, whose futures (or blocking
/// closures) panic when dropped: the cancel drains the queue, the panics go
/// to the scope, and the first is re-raised. Nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_queued_childs_destructor_panic_when_the_cancel_drains_the_queue() {
    watch_panics();
    let started = Arc::new(AtomicUsize::new(0));
    let ran = started.clone();
    let reraised = expect_reraised(Nursery::builder().limit(1).scope(
        move |n: Nursery<E>| async move {
            let (running_tx, running) = oneshot::channel();
            n.spawn(async move {
                let _ = running_tx.send(());
                pending::<Result<(), E>>().await
            });
            let bomb = PanicOnDrop("queued child destructor");
            let counted = ran.clone();
            n.spawn(async move {
                let _bomb = bomb;
                counted.fetch_add(1, SeqCst);
                Ok(())
            });
            let bomb = PanicOnDrop("queued blocking destructor");
            n.spawn_blocking(move |_token| {
                let _bomb = bomb;
                ran.fetch_add(1, SeqCst);
                Ok(())
            });
            running.await.unwrap();
            Err("fail fast")
        },
    ))
    .await;
    assert_eq!(reraised, "queued child destructor", "the first panic");
    assert_eq!(started.load(SeqCst), 0, "a queued child started");
}

// ===== a child that never yields =====

/// Spins without ever yielding until `stop` is set, then yields once: an
/// abort issued meanwhile takes effect at that yield, so `ran_on` is set
/// only if the child was not aborted.
async fn spinner(
    started: oneshot::Sender<()>,
    stop: Arc<AtomicBool>,
    ran_on: Arc<AtomicBool>,
    guard: nursery_tests::DropGuard,
) -> Result<(), E> {
    let _guard = guard;
    let _ = started.send(());
    let give_up = std::time::Instant::now() + SAFETY;
    while !stop.load(SeqCst) && std::time::Instant::now() < give_up {
        std::hint::spin_loop();
    }
    tokio::task::yield_now().await;
    ran_on.store(true, SeqCst);
    Ok(())
}

/// Sets the flag when dropped, so a failing test does not leave a worker
/// spinning until the safety limit.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// A child that never yields cannot be stopped by its abort: the scope
/// keeps counting it and waits (G1), and the abort takes effect at its
/// first yield, where its future is dropped without running on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_child_that_never_yields_holds_its_scope_until_its_first_yield() {
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = SetOnDrop(stop.clone());
    let ran_on = Arc::new(AtomicBool::new(false));
    let guards = DropCounter::new();
    let (spin, ran, guard) = (stop.clone(), ran_on.clone(), guards.guard());
    let result = within(
        "the scope",
        nursery::scope(move |n: Nursery<E>| async move {
            let (started_tx, started) = oneshot::channel();
            n.spawn_named(
                "held-spinner",
                spinner(started_tx, spin.clone(), ran, guard),
            );
            started.await.unwrap();
            // No grace: the cancel aborts the spinner here and now.
            n.cancel();
            assert_eq!(n.live(), 1, "the aborted spinner is still counted");
            let tasks = nursery::dump();
            assert!(
                tasks
                    .tasks()
                    .iter()
                    .any(|task| task.name() == Some("held-spinner")
                        && task.state() == TaskState::Cancelling),
                "the spinner shows as cancelling:\n{tasks}"
            );
            spin.store(true, SeqCst);
            Ok(())
        }),
    )
    .await;
    assert_eq!(result, Ok(()), "cancelling on purpose is not an error (G9)");
    assert_eq!(guards.dropped(), 1, "returned before the spinner ended");
    assert!(
        !ran_on.load(SeqCst),
        "the aborted spinner ran on past its first yield"
    );
}

/// A child that never yields outlives its grace period, and its scope with
/// it; when the scope future is dropped, the child is reported as a leak
/// with its name, spawn location and scope, a leak-grace window later.
/// The report is what lets the test release it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_child_that_never_yields_is_reported_as_a_leak_when_its_scope_is_dropped() {
    const NAME: &str = "never-yields";
    let log = LeakLog::get();
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = SetOnDrop(stop.clone());
    let ran_on = Arc::new(AtomicBool::new(false));
    let guards = DropCounter::new();
    let (started_tx, started) = oneshot::channel();
    let (at_tx, at) = oneshot::channel();
    let (spin, ran, guard) = (stop.clone(), ran_on.clone(), guards.guard());
    let scope = Nursery::builder()
        .name("spin-scope")
        .grace(Duration::from_millis(10))
        .leak_grace(LEAK_GRACE)
        .scope(move |n: Nursery<E>| async move {
            let (spinning_tx, spinning) = oneshot::channel();
            let handle = n.spawn_named(NAME, spinner(spinning_tx, spin, ran, guard));
            let _ = at_tx.send(handle.location());
            spinning.await.unwrap();
            let _ = started_tx.send(());
            n.cancel();
            pending::<Result<(), E>>().await
        });
    let mut scope = Box::pin(scope);
    tokio::select! {
        result = scope.as_mut() => panic!("the scope returned with a child spinning: {result:?}"),
        started = started => started.unwrap(),
    }
    // The scope was cancelled and will wait for the spinner for ever: give
    // up on it, as a program with a deadline of its own would.
    let given_up = tokio::time::timeout(Duration::from_millis(100), scope.as_mut()).await;
    assert!(given_up.is_err(), "the scope returned: {given_up:?}");
    drop(scope);
    let at = at.await.unwrap();

    let mine = |leak: &Leak| leak.task().name() == Some(NAME);
    let leaks = log.wait_for(1, SAFETY, mine).await;
    stop.store(true, SeqCst);
    let [leak] = &leaks[..] else {
        panic!("one leak reported for the spinner, got {leaks:?}");
    };
    eprintln!("{leak}");
    assert_eq!(leak.task().location(), at);
    assert_eq!(leak.task().scope_path(), "`spin-scope`");
    assert_eq!(leak.task().state(), TaskState::Cancelling);
    assert!(leak.after() + CLOCK_SLACK >= LEAK_GRACE, "{leak}");
    assert!(
        leak.to_string().starts_with(&format!(
            "task `{NAME}` spawned at {at}, in scope `spin-scope`"
        )),
        "{leak}"
    );
    // Released, it stops at its first yield: the abort holds.
    tokio::time::timeout(SAFETY, guards.wait_for(1))
        .await
        .expect("the released spinner was never dropped");
    assert!(!ran_on.load(SeqCst), "the aborted spinner ran on");
}

// ===== a runtime shut down under open scopes =====

/// Opens, inside a task of `rt`, a scope with pending children, a scope
/// nested in a child, and a limited scope with `queued` children waiting,
/// each holding a guard of `guards`; returns once all of them are in place.
/// The scopes are named `{prefix}-outer`, `{prefix}-inner` and
/// `{prefix}-limited`: tests that run in parallel look for their own.
fn open_scopes_on(
    rt: &tokio::runtime::Runtime,
    prefix: &'static str,
    guards: &DropCounter,
    queued: usize,
) -> usize {
    let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
    let guards = guards.clone();
    // Two children, one in the inner scope, the limited scope's running
    // child and its queue.
    let expected = 2 + 1 + (1 + queued);
    rt.spawn(async move {
        let outer = Nursery::builder().name(format!("{prefix}-outer")).scope(
            move |n: Nursery<E>| async move {
                for _ in 0..2 {
                    let guard = guards.guard();
                    n.spawn(async move {
                        let _guard = guard;
                        pending::<Result<(), E>>().await
                    });
                }
                let (inner_tx, inner_ready) = oneshot::channel();
                let guard = guards.guard();
                n.spawn(async move {
                    Nursery::builder()
                        .name(format!("{prefix}-inner"))
                        .scope(move |n: Nursery<E>| async move {
                            n.spawn(async move {
                                let _guard = guard;
                                pending::<Result<(), E>>().await
                            });
                            let _ = inner_tx.send(());
                            pending::<Result<(), E>>().await
                        })
                        .await
                        .map_err(|_| "inner")
                });
                inner_ready.await.unwrap();
                let limited = guards.clone();
                n.spawn(async move {
                    Nursery::builder()
                        .name(format!("{prefix}-limited"))
                        .limit(1)
                        .scope(move |n: Nursery<E>| async move {
                            for _ in 0..=queued {
                                let guard = limited.guard();
                                n.spawn(async move {
                                    let _guard = guard;
                                    pending::<Result<(), E>>().await
                                });
                            }
                            let _ = ready_tx.send(());
                            pending::<Result<(), E>>().await
                        })
                        .await
                        .map_err(|_| "limited")
                });
                pending::<Result<(), E>>().await
            },
        );
        let _ = outer.await;
    });
    ready.recv_timeout(SAFETY).expect("the scopes never opened");
    expected
}

/// Which of the scopes [`open_scopes_on`] opened with `prefix` a dump
/// still shows.
fn scope_names_in_dump(prefix: &str) -> Vec<String> {
    let dump = nursery::dump().to_string();
    ["outer", "inner", "limited"]
        .iter()
        .map(|part| format!("{prefix}-{part}"))
        .filter(|name| dump.contains(&format!("scope `{name}`")))
        .collect()
}

/// Dropping the runtime drops every task, scopes' and children's alike, in
/// no particular order: no panic, no hang, every child future dropped,
/// none of the queued ones started, and no scope left in the tree.
#[test]
fn fault_runtime_dropped_under_open_scopes() {
    watch_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let guards = DropCounter::new();
    let expected = open_scopes_on(&rt, "dropped-runtime", &guards, 10_000);
    let (dropped_tx, dropped) = std::sync::mpsc::channel();
    let dropping = std::thread::spawn(move || {
        drop(rt);
        let _ = dropped_tx.send(());
    });
    dropped
        .recv_timeout(SAFETY)
        .expect("dropping the runtime hung, or panicked");
    dropping.join().expect("dropping the runtime panicked");
    assert_eq!(guards.dropped(), expected, "child futures left undropped");
    assert_eq!(scope_names_in_dump("dropped-runtime"), Vec::<String>::new());
    assert_eq!(unexpected_panics("dropped-runtime"), Vec::<String>::new());
}

/// `shutdown_timeout` with a blocking child still running: it returns in
/// time, the async children are dropped, and the blocking child, once it
/// returns, finds its scope gone without a panic.
#[test]
fn fault_runtime_shut_down_with_a_blocking_child_running() {
    watch_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let guards = DropCounter::new();
    let expected = open_scopes_on(&rt, "shutdown-timeout", &guards, 100);
    let latch = Latch::new();
    let (blocking_tx, blocking) = std::sync::mpsc::channel::<()>();
    let errors = DropCounter::new();
    let (stuck, error) = (latch.clone(), errors.guard());
    rt.spawn(Nursery::builder().name("shutdown-timeout-blocking").scope(
        move |n: Nursery<nursery_tests::DropGuard>| async move {
            n.spawn_blocking(move |_token| {
                let _ = blocking_tx.send(());
                stuck.wait(SAFETY);
                Err::<(), _>(error)
            });
            pending::<Result<(), nursery_tests::DropGuard>>().await
        },
    ));
    blocking.recv_timeout(SAFETY).unwrap();
    let started = std::time::Instant::now();
    rt.shutdown_timeout(Duration::from_millis(100));
    assert!(started.elapsed() < SAFETY, "shutdown_timeout hung");
    assert_eq!(guards.dropped(), expected, "child futures left undropped");
    latch.open();
    // Its error goes to the dropped scope, which discards it: dropped, the
    // last thing the child's bookkeeping does with it.
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async { tokio::time::timeout(SAFETY, errors.wait_for(1)).await })
        .expect("the blocking child's error was never dropped");
    assert_eq!(unexpected_panics("shutdown-timeout"), Vec::<String>::new());
}

/// The scope future polled from outside the runtime's tasks (a thread that
/// entered the runtime, as `Handle::block_on` does), and the runtime
/// dropped under it: the runners of its limited queue are dropped while the
/// scope, still open and not cancelled, keeps its queue. No panic, no hang,
/// every child future dropped, none of the queued ones started; the scope
/// future can still be dropped afterwards.
#[test]
fn fault_runtime_dropped_under_a_limited_scope_polled_from_outside() {
    watch_panics();
    const QUEUED: usize = 10_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let guards = DropCounter::new();
    let started = Arc::new(AtomicUsize::new(0));
    let (handed_out, count) = (guards.clone(), started.clone());
    let (running_tx, running) = std::sync::mpsc::channel::<()>();
    let mut scope = Box::pin(Nursery::builder().name("outside-limited").limit(1).scope(
        move |n: Nursery<E>| async move {
            for _ in 0..=QUEUED {
                let (guard, count, running_tx) =
                    (handed_out.guard(), count.clone(), running_tx.clone());
                n.spawn(async move {
                    let _guard = guard;
                    count.fetch_add(1, SeqCst);
                    let _ = running_tx.send(());
                    pending::<Result<(), E>>().await
                });
            }
            pending::<Result<(), E>>().await
        },
    ));
    {
        let _entered = rt.enter();
        let waker = futures_util::task::noop_waker();
        let polled = scope
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker));
        assert!(polled.is_pending());
    }
    running
        .recv_timeout(SAFETY)
        .expect("the first child never ran");
    let (dropped_tx, dropped) = std::sync::mpsc::channel();
    let dropping = std::thread::Builder::new()
        .name("drops-the-runtime".into())
        .spawn(move || {
            drop(rt);
            let _ = dropped_tx.send(());
        })
        .unwrap();
    dropped
        .recv_timeout(SAFETY)
        .expect("dropping the runtime hung, or panicked");
    dropping.join().expect("dropping the runtime panicked");
    assert_eq!(started.load(SeqCst), 1, "a queued child started");
    drop(scope);
    assert_eq!(guards.dropped(), QUEUED + 1, "child futures left undropped");
    assert_eq!(unexpected_panics("outside-limited"), Vec::<String>::new());
}

// ===== a scope polled after it completed =====

/// A scope future is an `async fn`'s future: polled again after it
/// returned, it panics with the standard message, as documented on
/// `scope`, and does nothing else (no child is spawned again).
#[tokio::test]
async fn fault_scope_polled_after_completion_panics_clearly() {
    let spawned = Arc::new(AtomicUsize::new(0));
    let count = spawned.clone();
    let mut scope = std::pin::pin!(nursery::scope(move |n: Nursery<E>| async move {
        count.fetch_add(1, SeqCst);
        n.spawn(async { Ok(()) });
        Ok(7)
    }));
    assert_eq!(within("the scope", scope.as_mut()).await, Ok(7));
    let again = poll_fn(|cx| {
        Poll::Ready(catch_unwind(AssertUnwindSafe(|| {
            scope.as_mut().poll(cx).is_ready()
        })))
    })
    .await;
    let payload = again.expect_err("polling a completed scope must panic");
    assert_eq!(
        panic_message(&*payload),
        "`async fn` resumed after completion"
    );
    assert_eq!(spawned.load(SeqCst), 1, "the body ran again");
}

// ===== a blocking child outliving its dropped scope =====

/// A blocking child still running when its scope is dropped is reported as
/// a leak (name, spawn location) a leak-grace window later; when it returns
/// at last, its value or its error is dropped there and then, without a
/// panic and without being kept anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_blocking_child_outliving_a_dropped_scope_is_reported_and_its_result_discarded() {
    watch_panics();
    const FAILING: &str = "outlives-failing";
    const SUCCEEDING: &str = "outlives-succeeding";
    let log = LeakLog::get();
    let latch = Latch::new();
    struct OpenOnDrop(Arc<Latch>);
    impl Drop for OpenOnDrop {
        fn drop(&mut self) {
            self.0.open();
        }
    }
    let _open = OpenOnDrop(latch.clone());
    let results = DropCounter::new();
    let returned = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready) = oneshot::channel();
    let (stuck, made, done) = (latch.clone(), results.clone(), returned.clone());
    let scope = Nursery::builder()
        .name("outlived")
        .leak_grace(LEAK_GRACE)
        .scope(move |n: Nursery<nursery_tests::DropGuard>| async move {
            let rendezvous = nursery_tests::Rendezvous::new(3);
            let (meet, wait, error) = (rendezvous.clone(), stuck.clone(), made.guard());
            let done_failing = done.clone();
            let failing = n.spawn_blocking_named(FAILING, move |_token| {
                meet.meet(SAFETY);
                wait.wait(SAFETY);
                done_failing.fetch_add(1, SeqCst);
                Err::<(), _>(error)
            });
            let (meet, value) = (rendezvous.clone(), made.guard());
            let succeeding = n.spawn_blocking_named(SUCCEEDING, move |_token| {
                meet.meet(SAFETY);
                stuck.wait(SAFETY);
                done.fetch_add(1, SeqCst);
                Ok(value)
            });
            let locations = [failing.location(), succeeding.location()];
            tokio::task::spawn_blocking(move || rendezvous.meet(SAFETY))
                .await
                .unwrap();
            let _ = ready_tx.send(locations);
            pending::<Result<(), nursery_tests::DropGuard>>().await
        });
    let locations = tokio::select! {
        result = scope => panic!("the scope returned: {result:?}"),
        locations = ready => locations.unwrap(),
    };
    // The scope future is dropped here, both children still blocked.

    let mine = |leak: &Leak| matches!(leak.task().name(), Some(FAILING | SUCCEEDING));
    let leaks = log.wait_for(2, SAFETY, mine).await;
    latch.open();
    assert_eq!(leaks.len(), 2, "{leaks:?}");
    for (name, at) in [(FAILING, locations[0]), (SUCCEEDING, locations[1])] {
        let leak = leaks
            .iter()
            .find(|leak| leak.task().name() == Some(name))
            .unwrap_or_else(|| panic!("no leak for {name}: {leaks:?}"));
        assert_eq!(leak.task().location(), at, "{leak}");
        assert_eq!(leak.task().scope_path(), "`outlived`", "{leak}");
        assert!(leak.after() + CLOCK_SLACK >= LEAK_GRACE, "{leak}");
    }
    // Released, both return; their error and value are dropped, not kept.
    tokio::time::timeout(SAFETY, results.wait_for(2))
        .await
        .expect("the blocking children's results were kept alive");
    assert_eq!(returned.load(SeqCst), 2);
    assert_eq!(unexpected_panics("outlives"), Vec::<String>::new());
}

//! Leak detection: children that outlive a dropped scope (G7) are reported
//! through the leak hook and by the test helpers, plain `tokio::spawn` tasks
//! left running are counted, a child that merely needs a few milliseconds
//! to observe its abort is not a leak, and leak checks on different
//! runtimes (tests run in parallel) do not see each other's tasks.

use std::future::pending;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::Poll;
use std::time::Duration;

use nursery::testing::{LeakCheck, LeakReport, assert_no_leaks};
use nursery::{Leak, Nursery, TaskHandle, TaskState};
use nursery_tests::{Latch, LeakLog, Rendezvous, within};
use tokio::sync::oneshot;

type E = &'static str;

/// Long enough never to be reached by a passing test; bounds a broken one.
const SAFETY: Duration = Duration::from_secs(5);

/// The leak-grace window of the dropped scopes here: short, in real time.
const LEAK_GRACE: Duration = Duration::from_millis(50);

/// How long the leak checks here wait for stuck tasks: well past
/// `LEAK_GRACE`, so the watcher has reported by the time the check gives up.
const CHECK_GRACE: Duration = Duration::from_millis(300);

/// The precision of task ages and leak times, which come from a coarse
/// clock (`CLOCK_MONOTONIC_COARSE`, one tick is 4 ms on this kernel); the
/// docs promise "a few milliseconds".
const CLOCK_SLACK: Duration = Duration::from_millis(10);

/// A blocking child stuck until its latch opens, and where it was spawned.
struct Stuck {
    at: &'static Location<'static>,
    handle: TaskHandle<()>,
    started: oneshot::Receiver<()>,
}

/// Spawns a blocking child that reports it has started, then blocks until
/// `latch` opens (it never looks at its cancellation token). The child's
/// spawn location is the caller's, as `spawn_blocking` is `#[track_caller]`.
#[track_caller]
fn spawn_stuck(n: &Nursery<E>, latch: Arc<Latch>) -> Stuck {
    let (started_tx, started) = oneshot::channel();
    let handle = n.spawn_blocking(move |_token| {
        let _ = started_tx.send(());
        assert!(latch.wait(SAFETY), "the test never opened the latch");
        Ok(())
    });
    Stuck {
        at: Location::caller(),
        handle,
        started,
    }
}

/// Polls `scope` until `signal` arrives, then drops it unfinished (G7) and
/// returns what the signal carried.
async fn drop_when<F, T>(scope: F, signal: oneshot::Receiver<T>) -> T
where
    F: Future<Output = Result<(), nursery::Error<E>>>,
{
    tokio::select! {
        result = scope => panic!("the scope finished: {result:?}"),
        signal = signal => signal.expect("the scope never signalled"),
        () = tokio::time::sleep(SAFETY) => panic!("the scope never signalled in time"),
    }
}

/// Opens `outer > inner` (the inner scope in a child of the outer one),
/// with a stuck blocking child in the inner scope, and drops the outer
/// scope once the child runs. Returns where the child was spawned (checked
/// against the line of the spawn) and its handle.
async fn drop_two_levels_with_stuck_child(
    outer: &'static str,
    inner: &'static str,
    latch: &Arc<Latch>,
) -> (&'static Location<'static>, TaskHandle<()>) {
    let (ready_tx, ready_rx) = oneshot::channel();
    let latch = latch.clone();
    let scope = Nursery::builder().name(outer).leak_grace(LEAK_GRACE).scope(
        move |n: Nursery<E>| async move {
            n.spawn_named("opener", async move {
                Nursery::builder()
                    .name(inner)
                    .scope(move |n: Nursery<E>| async move {
                        let (line, stuck) = (line!(), spawn_stuck(&n, latch));
                        let _ = stuck.started.await;
                        let _ = ready_tx.send((line, stuck.at, stuck.handle));
                        pending::<Result<(), E>>().await
                    })
                    .await
                    .map_err(|_| "the inner scope failed")
            });
            pending().await
        },
    );
    let (line, at, handle) = drop_when(scope, ready_rx).await;
    assert_eq!(
        (at.file(), at.line()),
        (file!(), line),
        "the spawn location"
    );
    (at, handle)
}

/// Drops a one-level scope named `name` with a stuck blocking child once the
/// child runs. Returns where the child was spawned and its handle.
async fn drop_one_level_with_stuck_child(
    name: &'static str,
    leak_grace: Duration,
    latch: &Arc<Latch>,
) -> (&'static Location<'static>, TaskHandle<()>) {
    let (ready_tx, ready_rx) = oneshot::channel();
    let latch = latch.clone();
    let scope = Nursery::builder().name(name).leak_grace(leak_grace).scope(
        move |n: Nursery<E>| async move {
            let (line, stuck) = (line!(), spawn_stuck(&n, latch));
            let _ = stuck.started.await;
            let _ = ready_tx.send((line, stuck.at, stuck.handle));
            pending().await
        },
    );
    let (line, at, handle) = drop_when(scope, ready_rx).await;
    assert_eq!(
        (at.file(), at.line()),
        (file!(), line),
        "the spawn location"
    );
    (at, handle)
}

/// Polls `future` once; whether it is still pending.
async fn pending_after_one_poll<F: Future + Unpin>(future: &mut F) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx).is_pending()))
        .await
}

/// Opens `latch` when dropped, so a failing assertion does not leave a
/// blocking child stuck until the safety limit.
struct OpenOnDrop(Arc<Latch>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

// ===== reported leaks =====

#[tokio::test]
async fn g7_blocking_child_outliving_a_dropped_scope_is_in_the_report() {
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    let mut at = None;
    let report = LeakCheck::new()
        .grace(CHECK_GRACE)
        .try_run(async {
            at = Some(
                drop_two_levels_with_stuck_child("report-outer", "report-inner", &latch)
                    .await
                    .0,
            );
        })
        .await
        .expect_err("a blocking child stuck after its scope was dropped is a leak");
    latch.open();
    let at = at.unwrap();
    eprintln!("{report}");

    // Still alive when the check gave up: in `tasks()`.
    let [task] = report.tasks() else {
        panic!("one task still alive, got {:?}", report.tasks());
    };
    assert_eq!(task.name(), None);
    assert_eq!(task.location(), at);
    assert_eq!(task.scope_path(), "`report-outer` > `report-inner`");
    assert_eq!(task.state(), TaskState::Cancelling);
    assert!(
        task.age() + CLOCK_SLACK >= CHECK_GRACE,
        "spawned before the check's {CHECK_GRACE:?} window, age {:?}",
        task.age()
    );
    // The watcher reported it too, a leak-grace window after the drop; a
    // task still alive is listed once, under `tasks()`.
    assert!(report.leaks().is_empty(), "{report}");
    assert_eq!(report.unscoped_tasks(), 0, "{report}");
    // A task still alive: the check waited out its whole window.
    assert!(report.waited() >= CHECK_GRACE, "{:?}", report.waited());
    assert!(report.waited() < SAFETY, "{:?}", report.waited());

    let text = report.to_string();
    assert!(text.starts_with("nursery: "), "{text}");
    assert!(text.contains(" leaked (waited "), "{text}");
    assert!(
        text.contains(&format!(
            "  blocking task <unnamed> spawned at {at}, in scope `report-outer` > `report-inner`: cancelling, age "
        )),
        "{text}"
    );
    assert!(text.contains("\nstill alive:\n"), "{text}");
    assert!(!text.contains("outside any scope"), "{text}");
}

#[tokio::test]
async fn g7_report_counts_each_leaked_task_once() {
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    let report = LeakCheck::new()
        .grace(CHECK_GRACE)
        .try_run(drop_two_levels_with_stuck_child(
            "once-outer",
            "once-inner",
            &latch,
        ))
        .await
        .expect_err("a blocking child stuck after its scope was dropped is a leak");
    latch.open();
    // Reported by both dropped scopes' watchers? Only the inner one owns
    // it; and still alive, it is listed once, under `tasks()`.
    assert_eq!(report.tasks().len(), 1, "{report}");
    assert!(report.leaks().is_empty(), "{report}");
    assert!(
        report
            .to_string()
            .starts_with("nursery: 1 task leaked (waited "),
        "{report}"
    );
}

#[tokio::test]
async fn g7_leak_hook_gets_the_blocking_child_of_a_dropped_scope() {
    let log = LeakLog::get();
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    let (at, _handle) = drop_two_levels_with_stuck_child("hook-outer", "hook-inner", &latch).await;
    // The hook is process-wide: this test's leak is the one spawned here.
    let leaks = log
        .wait_for(1, SAFETY, |leak| is_mine(leak, at, "hook-outer"))
        .await;
    latch.open();
    let Some(leak) = leaks.first() else {
        panic!("no leak reported within {SAFETY:?}");
    };
    eprintln!("{leak}");
    assert_eq!(leak.task().name(), None);
    assert_eq!(leak.task().state(), TaskState::Cancelling);
    assert!(
        leak.task().scope_path().starts_with("`hook-outer` > "),
        "{leak}"
    );
    assert!(leak.task().scope_path().ends_with("`hook-inner`"), "{leak}");
    assert!(leak.after() + CLOCK_SLACK >= LEAK_GRACE, "{leak}");
    assert!(leak.after() < SAFETY, "{leak}");
    assert_eq!(leak.runtime(), tokio::runtime::Handle::current().id());
    assert_eq!(leak.panic(), None, "a stuck task, not a lost panic");
    let text = leak.to_string();
    assert!(
        text.starts_with(&format!(
            "task <unnamed> spawned at {at}, in scope `hook-outer` > "
        )),
        "{text}"
    );
    assert!(text.contains(" after its scope was dropped"), "{text}");
}

#[tokio::test]
async fn g7_leak_names_the_scope_path_of_the_task() {
    let log = LeakLog::get();
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    let (one_level, _first) =
        drop_one_level_with_stuck_child("path-single", LEAK_GRACE, &latch).await;
    let (two_levels, _second) =
        drop_two_levels_with_stuck_child("path-outer", "path-inner", &latch).await;
    let single = log
        .wait_for(1, SAFETY, |leak| is_mine(leak, one_level, "path-single"))
        .await;
    let nested = log
        .wait_for(1, SAFETY, |leak| is_mine(leak, two_levels, "path-outer"))
        .await;
    latch.open();
    let paths = |leaks: &[Leak]| -> Vec<String> {
        leaks
            .iter()
            .map(|leak| leak.task().scope_path().to_owned())
            .collect()
    };
    assert_eq!(paths(&single), ["`path-single`"]);
    assert!(
        paths(&nested)
            .iter()
            .all(|path| path == "`path-outer` > `path-inner`"),
        "{:?}",
        paths(&nested)
    );
}

#[tokio::test]
async fn g7_leak_after_is_at_least_the_leak_grace() {
    // Several leaks: with a 50 ms grace (not a multiple of the 4 ms tick),
    // a drop early in a tick reads 48 ms, one late in it 52 ms.
    let log = LeakLog::get();
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    const SCOPES: [&str; 6] = [
        "after-grace-1",
        "after-grace-2",
        "after-grace-3",
        "after-grace-4",
        "after-grace-5",
        "after-grace-6",
    ];
    let mut spawned = Vec::new();
    for scope in SCOPES {
        let (at, _handle) = drop_one_level_with_stuck_child(scope, LEAK_GRACE, &latch).await;
        spawned.push((at, scope));
        // Not synchronisation: spreads the drops over one 4 ms tick of the
        // coarse clock, so some of them fall where it reads a tick short.
        std::thread::sleep(Duration::from_micros(800));
    }
    let mut afters = Vec::new();
    for (at, scope) in &spawned {
        let leaks = log
            .wait_for(1, SAFETY, |leak| is_mine(leak, at, scope))
            .await;
        afters.extend(leaks.iter().map(Leak::after));
    }
    latch.open();
    assert_eq!(afters.len(), spawned.len());
    assert!(
        afters.iter().all(|after| *after >= LEAK_GRACE),
        "found sooner than the leak grace of {LEAK_GRACE:?}: {afters:?}"
    );
}

#[tokio::test]
async fn a_short_leak_grace_is_not_held_up_by_a_long_one_pending() {
    // The watcher sleeps until its earliest check and is woken only for a
    // check due sooner: a scope dropped with a short grace after one with
    // an hour's grace must still be reported after its own grace.
    let log = LeakLog::get();
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    let (_, _long) =
        drop_one_level_with_stuck_child("grace-an-hour", Duration::from_secs(3600), &latch).await;
    let (at, _short) = drop_one_level_with_stuck_child("grace-short", LEAK_GRACE, &latch).await;
    let leaks = log
        .wait_for(1, SAFETY, |leak| is_mine(leak, at, "grace-short"))
        .await;
    assert_eq!(
        leaks.len(),
        1,
        "the short-grace scope's leak was not reported"
    );
    assert!(
        leaks[0].after() >= LEAK_GRACE - CLOCK_SLACK,
        "{:?}",
        leaks[0].after()
    );
    assert!(
        log.matching(|leak| leak.task().scope_path().contains("`grace-an-hour`"))
            .is_empty(),
        "the hour-long grace was cut short"
    );
    latch.open();
}

/// Whether `leak` is of a task spawned at `at` in a scope named `scope`
/// (anywhere on its path): the leak hook is process-wide, and the helpers
/// here spawn every stuck child from the same line.
fn is_mine(leak: &Leak, at: &Location<'_>, scope: &str) -> bool {
    leak.task().location() == at
        && leak
            .task()
            .scope_path()
            .split(" > ")
            .any(|name| name == format!("`{scope}`"))
}

/// Runs `f` when dropped: stands for an async child's cleanup that blocks.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_named_async_child_stuck_in_its_drop_is_reported_by_name() {
    const NAME: &str = "stuck-in-drop";
    let log = LeakLog::get();
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    let mut at = None;
    let report = LeakCheck::new()
        .grace(CHECK_GRACE)
        .try_run(async {
            let (ready_tx, ready_rx) = oneshot::channel();
            let stuck = latch.clone();
            let scope = Nursery::builder()
                .name("drop-stuck")
                .leak_grace(LEAK_GRACE)
                .scope(move |n: Nursery<E>| async move {
                    let (started_tx, started_rx) = oneshot::channel();
                    let handle = n.spawn_named(NAME, async move {
                        // Aborting drops this future: its cleanup blocks the
                        // worker thread until the latch opens.
                        let _cleanup = OnDrop(move || {
                            stuck.wait(SAFETY);
                        });
                        let _ = started_tx.send(());
                        pending::<Result<(), E>>().await
                    });
                    let _ = started_rx.await;
                    let _ = ready_tx.send(handle.location());
                    pending().await
                });
            at = Some(drop_when(scope, ready_rx).await);
        })
        .await
        .expect_err("a child stuck in its destructor is a leak");
    let hooked = log
        .wait_for(1, SAFETY, |leak| leak.task().name() == Some(NAME))
        .await;
    latch.open();
    let at = at.unwrap();
    eprintln!("{report}");

    let [task] = report.tasks() else {
        panic!("one task still alive: {report}");
    };
    assert_eq!(task.name(), Some(NAME));
    assert_eq!(task.location(), at);
    assert_eq!(task.scope_path(), "`drop-stuck`");
    assert_eq!(task.state(), TaskState::Cancelling);
    assert!(
        report.leaks().is_empty(),
        "listed once, under tasks(): {report}"
    );
    assert!(
        report
            .leaks()
            .iter()
            .all(|leak| leak.task().name() == Some(NAME)),
        "{report}"
    );
    // An aborted tokio task that has not ended is the scope's, not unscoped.
    assert_eq!(report.unscoped_tasks(), 0, "{report}");
    assert!(
        report.to_string().contains(&format!(
            "  task `{NAME}` spawned at {at}, in scope `drop-stuck`: cancelling, age "
        )),
        "{report}"
    );

    let [leak] = &hooked[..] else {
        panic!("the hook got the leak once: {hooked:?}");
    };
    assert_eq!(leak.task().location(), at);
    assert!(leak.after() + CLOCK_SLACK >= LEAK_GRACE, "{leak}");
    assert!(
        leak.to_string().starts_with(&format!(
            "task `{NAME}` spawned at {at}, in scope `drop-stuck`"
        )),
        "{leak}"
    );
}

// ===== plain tokio tasks =====

#[tokio::test]
async fn raw_tokio_spawn_left_running_is_reported_as_unscoped() {
    let report = LeakCheck::new()
        .grace(LEAK_GRACE)
        .try_run(async {
            tokio::spawn(pending::<()>());
        })
        .await
        .expect_err("a plain tokio task left running is a leak");
    eprintln!("{report}");
    assert_eq!(report.unscoped_tasks(), 1);
    assert!(report.tasks().is_empty(), "{report}");
    assert!(report.leaks().is_empty(), "{report}");
    let text = report.to_string();
    assert!(
        text.starts_with("nursery: 1 task leaked (waited "),
        "{text}"
    );
    assert!(
        text.contains("\nspawned outside any scope: 1 tokio task (tokio::spawn) still running"),
        "{text}"
    );
}

#[tokio::test]
async fn raw_tokio_spawn_that_ends_after_the_future_is_not_a_leak() {
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let ended = Arc::new(AtomicBool::new(false));
    let seen = ended.clone();
    LeakCheck::new()
        .grace(SAFETY)
        .try_run(async move {
            tokio::spawn(async move {
                let _ = done_rx.await;
                seen.store(true, SeqCst);
            });
            // Still alive when the future returns: the check must wait.
            drop(done_tx);
        })
        .await
        .expect("a task that ends within the grace window is no leak");
    assert!(ended.load(SeqCst));
}

#[tokio::test]
async fn scoped_queued_and_raw_tasks_are_told_apart() {
    let report = LeakCheck::new()
        .grace(LEAK_GRACE)
        .try_run(async {
            let (started_tx, started_rx) = oneshot::channel();
            let mut scope = Box::pin(Nursery::builder().name("apart").limit(1).scope(
                |n: Nursery<E>| async move {
                    n.spawn_named("apart-running", async move {
                        let _ = started_tx.send(());
                        pending::<Result<(), E>>().await
                    });
                    n.spawn_named("apart-queued", pending::<Result<(), E>>());
                    pending::<Result<(), E>>().await
                },
            ));
            assert!(pending_after_one_poll(&mut scope).await);
            started_rx.await.unwrap();
            std::mem::forget(scope);
            tokio::spawn(pending::<()>());
            tokio::spawn(pending::<()>());
        })
        .await
        .expect_err("tasks are left");
    eprintln!("{report}");
    let mut tasks: Vec<_> = report
        .tasks()
        .iter()
        .map(|task| (task.name().unwrap(), task.state()))
        .collect();
    tasks.sort_by_key(|(name, _)| *name);
    assert_eq!(
        tasks,
        [
            ("apart-queued", TaskState::Queued),
            ("apart-running", TaskState::Running)
        ]
    );
    // The running child is a tokio task too, but it has a scope; the queued
    // one is no tokio task at all.
    assert_eq!(report.unscoped_tasks(), 2, "{report}");
    assert!(
        report
            .to_string()
            .starts_with("nursery: 4 tasks leaked (waited "),
        "{report}"
    );
    assert!(
        report.to_string().contains(
            "\nspawned outside any scope: 2 tokio tasks (tokio::spawn) still running; no spawn site is known: spawn them into a scope to see where\n"
        ),
        "{report}"
    );
}

#[tokio::test]
async fn tasks_alive_before_the_check_are_not_its_own() {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let earlier = tokio::spawn(async move {
        let _ = stop_rx.await;
    });
    LeakCheck::new()
        .grace(LEAK_GRACE)
        .try_run(async {})
        .await
        .expect("a task spawned before the check is not its leak");
    drop(stop_tx);
    earlier.await.unwrap();
}

// ===== near-leaks =====

#[tokio::test]
async fn g7_blocking_child_that_needs_a_few_ms_to_stop_is_not_a_leak() {
    let stopped = Arc::new(AtomicBool::new(false));
    let seen = stopped.clone();
    LeakCheck::new()
        .try_run(async {
            let (started_tx, started_rx) = oneshot::channel();
            let scope = nursery::scope(move |n: Nursery<E>| async move {
                n.spawn_blocking(move |token| {
                    let _ = started_tx.send(());
                    let give_up = std::time::Instant::now() + SAFETY;
                    while !token.is_cancelled() && std::time::Instant::now() < give_up {
                        std::thread::sleep(Duration::from_millis(1)); // a slice of work
                    }
                    std::thread::sleep(Duration::from_millis(5)); // cleanup after the cancel
                    seen.store(token.is_cancelled(), SeqCst);
                    Ok(())
                });
                pending().await
            });
            drop_when(scope, started_rx).await;
            assert!(
                !stopped.load(SeqCst),
                "still running when its scope is dropped"
            );
        })
        .await
        .unwrap_or_else(|report| {
            panic!("a child that stops within the grace is no leak: {report}")
        });
    assert!(stopped.load(SeqCst), "it stopped because it saw the cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_async_child_with_a_slow_drop_is_not_a_leak() {
    let dropped = Arc::new(AtomicBool::new(false));
    let seen = dropped.clone();
    LeakCheck::new()
        .try_run(async move {
            let (started_tx, started_rx) = oneshot::channel();
            let scope = Nursery::builder()
                .name("slow-drop")
                .leak_grace(Duration::from_millis(500))
                .scope(move |n: Nursery<E>| async move {
                    n.spawn_named("slow-drop-child", async move {
                        let _cleanup = OnDrop(move || {
                            std::thread::sleep(Duration::from_millis(5)); // blocking cleanup
                            seen.store(true, SeqCst);
                        });
                        let _ = started_tx.send(());
                        pending::<Result<(), E>>().await
                    });
                    pending().await
                });
            drop_when(scope, started_rx).await;
        })
        .await
        .unwrap_or_else(|report| {
            panic!("a child that stops within the grace is no leak: {report}")
        });
    assert!(dropped.load(SeqCst), "the child's cleanup ran");
}

// ===== forgotten scopes =====

#[tokio::test]
async fn task_of_a_forgotten_scope_is_reported_alive_with_its_name() {
    let mut at = None;
    let report = LeakCheck::new()
        .grace(LEAK_GRACE)
        .try_run(async {
            let (started_tx, started_rx) = oneshot::channel();
            let spawned_at = &mut at;
            let mut scope = Box::pin(Nursery::builder().name("forgotten").scope(
                |n: Nursery<E>| async move {
                    let handle = n.spawn_named("forgotten-task", async move {
                        let _ = started_tx.send(());
                        pending::<Result<(), E>>().await
                    });
                    *spawned_at = Some(handle.location());
                    pending::<Result<(), E>>().await
                },
            ));
            assert!(pending_after_one_poll(&mut scope).await);
            started_rx.await.unwrap();
            // Never dropped: nothing aborts the child, and no leak is ever
            // reported by the watcher. Only the check can find it.
            std::mem::forget(scope);
        })
        .await
        .expect_err("a task of a forgotten scope is left running");
    let at = at.unwrap();
    eprintln!("{report}");
    let [task] = report.tasks() else {
        panic!("one task alive: {report}");
    };
    assert_eq!(task.name(), Some("forgotten-task"));
    assert_eq!(task.location(), at);
    assert_eq!(task.scope_path(), "`forgotten`");
    assert_eq!(task.state(), TaskState::Running);
    assert!(report.leaks().is_empty(), "{report}");
    assert_eq!(report.unscoped_tasks(), 0, "{report}");
    let text = report.to_string();
    assert!(
        text.starts_with("nursery: 1 task leaked (waited "),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "\n  task `forgotten-task` spawned at {at}, in scope `forgotten`: running, age "
        )),
        "{text}"
    );
}

// ===== assert_no_leaks =====

#[tokio::test]
#[should_panic(expected = "nursery: 1 task leaked")]
async fn assert_no_leaks_panics_with_the_report() {
    let log = LeakLog::get();
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    assert_no_leaks(async {
        let (at, handle) =
            drop_one_level_with_stuck_child("assert-panics", Duration::from_millis(20), &latch)
                .await;
        let found = log
            .wait_for(1, SAFETY, |leak| is_mine(leak, at, "assert-panics"))
            .await;
        assert_eq!(found.len(), 1, "the watcher reported the leak");
        // The child ends now: only the reported leak is left to fail on.
        latch.open();
        let _ = handle.await;
    })
    .await;
}

#[tokio::test]
async fn assert_no_leaks_returns_the_output_when_clean() {
    let output = assert_no_leaks(async {
        let sum = within(
            "the scope",
            Nursery::builder()
                .name("clean")
                .limit(2)
                .scope(|n: Nursery<E>| async move {
                    let handles: Vec<_> = (1..=4u32)
                        .map(|i| n.spawn_named(format!("clean-{i}"), async move { Ok(i) }))
                        .collect();
                    let blocking = n.spawn_blocking(|_| Ok(10));
                    let inner = nursery::scope(|n: Nursery<E>| async move {
                        n.spawn(async { Ok(()) });
                        Ok(100)
                    });
                    let mut sum = inner.await.map_err(|_| "inner failed")?;
                    for handle in handles {
                        sum += handle.await.map_err(|_| "child failed")?;
                    }
                    Ok(sum + blocking.await.map_err(|_| "blocking failed")?)
                }),
        )
        .await
        .unwrap();
        format!("sum {sum}")
    })
    .await;
    assert_eq!(output, "sum 120");
}

// ===== runtimes do not see each other =====

/// Runs `body` with its own runtime on its own thread (as cargo runs each
/// test) and returns the leak check's result.
fn check_on_own_runtime<F>(
    runtime: tokio::runtime::Runtime,
    grace: Duration,
    body: F,
) -> std::thread::JoinHandle<Result<(), LeakReport>>
where
    F: Future<Output = ()> + Send + 'static,
{
    std::thread::spawn(move || {
        let checked = runtime.block_on(LeakCheck::new().grace(grace).try_run(body));
        // Dropping the runtime would wait for its stuck blocking child.
        runtime.shutdown_background();
        checked
    })
}

#[test]
fn parallel_leak_checks_see_only_their_own_runtime() {
    let met = Rendezvous::new(2);
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    let (release_tx, release_rx) = oneshot::channel::<()>();

    // The leaking test: a stuck blocking child under a dropped scope.
    let leaky = {
        let (met, latch) = (met.clone(), latch.clone());
        check_on_own_runtime(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            CHECK_GRACE,
            async move {
                drop_one_level_with_stuck_child("parallel-leaky", LEAK_GRACE, &latch).await;
                // Both are inside their checked futures, with tasks alive.
                assert!(met.meet(SAFETY), "the clean test never arrived");
            },
        )
    };
    // The clean test: its child lives until the leaky test has its report,
    // so that report is taken while this test's tasks are alive.
    let clean = {
        let met = met.clone();
        check_on_own_runtime(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            SAFETY,
            async move {
                within(
                    "the scope",
                    Nursery::builder()
                        .name("parallel-clean")
                        .scope(|n: Nursery<E>| async move {
                            n.spawn_named("parallel-clean-task", async move {
                                let _ = release_rx.await;
                                Ok(())
                            });
                            assert!(met.meet(SAFETY), "the leaky test never arrived");
                            Ok(())
                        }),
                )
                .await
                .unwrap();
            },
        )
    };

    let leaky = leaky.join().unwrap();
    drop(release_tx);
    // The leaky test's child is still stuck while the clean test checks.
    let clean = clean.join().unwrap();
    latch.open();

    let report = leaky.expect_err("the leaking test fails");
    eprintln!("{report}");
    assert!(
        clean.is_ok(),
        "the clean test passes: {}",
        clean.unwrap_err()
    );
    assert!(!report.tasks().is_empty(), "{report}");
    assert!(
        report
            .tasks()
            .iter()
            .all(|task| task.scope_path() == "`parallel-leaky`"),
        "{report}"
    );
    assert!(
        report
            .leaks()
            .iter()
            .all(|leak| leak.task().scope_path().contains("`parallel-leaky`")),
        "{report}"
    );
    assert_eq!(report.unscoped_tasks(), 0, "{report}");
    assert!(!report.to_string().contains("parallel-clean"), "{report}");
}

#[tokio::test]
async fn leak_check_ignores_scopes_on_another_runtime() {
    let (opened_tx, opened_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let other = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(within(
                "the scope on the other runtime",
                Nursery::builder()
                    .name("other-runtime")
                    .scope(|n: Nursery<E>| async move {
                        n.spawn_named("other-runtime-task", async move {
                            let _ = release_rx.await;
                            Ok(())
                        });
                        let _ = opened_tx.send(());
                        Ok(())
                    }),
            ))
    });
    opened_rx.recv_timeout(SAFETY).unwrap();
    // The other runtime's task is alive, and visible to a dump...
    assert!(
        nursery::dump()
            .tasks()
            .iter()
            .any(|task| task.name() == Some("other-runtime-task"))
    );
    // ...but not to a leak check on this runtime.
    let checked = LeakCheck::new().grace(LEAK_GRACE).try_run(async {}).await;
    drop(release_tx);
    other.join().unwrap().unwrap();
    if let Err(report) = checked {
        panic!("another runtime's task was blamed here: {report}");
    }
}

// ===== the leak hook's own failures =====

/// Set in the process that `panicking_leak_hook_process` runs in.
const HOOK_CHILD_ENV: &str = "NURSERY_TESTS_PANICKING_HOOK_CHILD";

#[test]
fn a_panicking_leak_hook_does_not_stall_leak_checks() {
    // The hook and the watcher thread are process-wide: a process of its own.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "panicking_leak_hook_process",
            "--ignored",
            "--nocapture",
        ])
        .env(HOOK_CHILD_ENV, "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // The filter matched the test, and it ran with the variable set (it
    // says so on stdout, where `--nocapture` lets it print).
    assert!(stdout.contains(" 1 passed;"), "{stdout}\n{stderr}");
    assert!(stdout.contains(HOOK_CHILD_RAN), "{stdout}\n{stderr}");
}

/// What `panicking_leak_hook_process` prints once it has run its checks.
const HOOK_CHILD_RAN: &str = "panicking_leak_hook_process: checks done";

#[test]
#[ignore = "run in a process of its own by a_panicking_leak_hook_does_not_stall_leak_checks"]
fn panicking_leak_hook_process() {
    if std::env::var_os(HOOK_CHILD_ENV).is_none() {
        return;
    }
    const HUNG: Duration = Duration::from_millis(1500);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        nursery::set_leak_hook(|leak| panic!("a leak hook that panics on {leak}"));
        let latch = Latch::new();
        let _open = OpenOnDrop(latch.clone());
        let first = tokio::time::timeout(
            HUNG,
            LeakCheck::new()
                .grace(CHECK_GRACE)
                .try_run(drop_one_level_with_stuck_child(
                    "hook-panics",
                    Duration::from_millis(20),
                    &latch,
                )),
        )
        .await;
        latch.open();
        let report = first
            .expect("the leak check hung once the hook had panicked")
            .expect_err("the stuck child is a leak");
        assert_eq!(report.tasks().len(), 1, "{report}");
        let second = tokio::time::timeout(
            HUNG,
            LeakCheck::new().grace(LEAK_GRACE).try_run(async {
                tokio::spawn(pending::<()>());
            }),
        )
        .await
        .expect("a later leak check hung");
        assert_eq!(second.unwrap_err().unscoped_tasks(), 1);
    });
    runtime.shutdown_background();
    println!("{HOOK_CHILD_RAN}");
}

/// A task that outlived its dropped scope by more than the leak grace, then
/// ended before the check: listed under `leaks()`, not `tasks()`, with its
/// own heading in the report.
#[tokio::test]
async fn a_leak_that_ended_since_is_listed_under_leaks() {
    let log = LeakLog::get();
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    let spawned_at = Arc::new(std::sync::Mutex::new(None));
    let report = LeakCheck::new()
        .grace(CHECK_GRACE)
        .try_run(async {
            let (at, handle) =
                drop_one_level_with_stuck_child("ended-since", Duration::from_millis(20), &latch)
                    .await;
            *spawned_at.lock().unwrap() = Some(at);
            let found = log
                .wait_for(1, SAFETY, |leak| is_mine(leak, at, "ended-since"))
                .await;
            assert_eq!(found.len(), 1, "the watcher reported the leak");
            latch.open();
            let _ = handle.await;
        })
        .await
        .expect_err("a task that outlived its dropped scope has leaked");
    let at = spawned_at.lock().unwrap().expect("the child was spawned");
    assert!(report.tasks().is_empty(), "{report}");
    let [leak] = report.leaks() else {
        panic!("one leak: {report}");
    };
    assert_eq!(leak.task().location(), at);
    assert_eq!(leak.task().scope_path(), "`ended-since`");
    assert_eq!(leak.panic(), None);
    // Nothing left alive to wait for: the check did not wait out its window.
    assert!(report.waited() < CHECK_GRACE, "{:?}", report.waited());
    let text = report.to_string();
    assert!(
        text.starts_with("nursery: 1 task leaked (waited "),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "\noutlived their dropped scope (ended since):\n  task <unnamed> spawned at {at}, in scope `ended-since`: still alive "
        )),
        "{text}"
    );
    assert!(!text.contains("still alive:\n"), "{text}");
}

/// `LeakCheck::grace` is the window the check waits for tasks to end: a
/// task that never ends fails a check with a 50 ms window when that window
/// has passed, well before the default second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_check_waits_for_the_window_it_was_given() {
    let grace = Duration::from_millis(50);
    let mut forever = None;
    let report = LeakCheck::new()
        .grace(grace)
        .try_run(async {
            forever = Some(tokio::spawn(pending::<()>()));
        })
        .await
        .expect_err("a task that never ends fails the check");
    forever.expect("spawned").abort();
    assert_eq!(report.unscoped_tasks(), 1, "{report}");
    assert!(report.waited() >= grace, "waited {:?}", report.waited());
    assert!(
        report.waited() < Duration::from_secs(1),
        "waited {:?}: the default window, not the one given",
        report.waited()
    );
}

#[tokio::test(start_paused = true)]
async fn a_leak_check_with_a_timeout_reports_the_live_tree_in_real_time() {
    // The clock is paused and nothing ever advances past the child's sleep
    // but the timeout, which counts real time: the check fails then, with
    // the tree naming the scope and the child, and the future dropped.
    let child = nursery_tests::Tracker::new();
    let tracked = child.clone();
    let report = within(
        "the leak check",
        nursery::testing::LeakCheck::new()
            .timeout(Duration::from_millis(100))
            .try_run(nursery::Nursery::builder().name("timeout-tree").scope(
                move |n: nursery::Nursery<()>| async move {
                    n.spawn_named(
                        "sleeper",
                        tracked.track(std::future::pending::<Result<(), ()>>()),
                    );
                    std::future::pending::<()>().await;
                    Ok(())
                },
            )),
    )
    .await
    .unwrap_err();
    assert_eq!(report.timed_out(), Some(Duration::from_millis(100)));
    let text = report.to_string();
    assert!(
        text.starts_with("nursery: did not finish within 100ms; still running:"),
        "{text}"
    );
    assert!(text.contains("scope `timeout-tree`"), "{text}");
    assert!(
        text.contains("task `sleeper` spawned at tests/tests/leaks.rs:"),
        "{text}"
    );
    // The dropped scope aborted the child: gone at its task's next turn.
    within("the child's abort", async {
        while !child.was_dropped() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!child.completed());
}

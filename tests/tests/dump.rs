//! `nursery::dump()`: the live tree of scopes and tasks, as data and as an
//! indented text, every scope before what it contains.
//!
//! The dump is process-wide and tests run in parallel: each test finds its
//! own tree by a root scope name no other test uses.

use std::future::pending;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use nursery::{Dump, Nursery, ScopeSnapshot, ScopeState, TaskHandle, TaskState};
use nursery_tests::{DropCounter, Latch, dump_subtree, mask_ages, within};
use tokio::sync::oneshot;

type E = &'static str;

/// Long enough never to be reached by a passing test; bounds a broken one.
const SAFETY: Duration = Duration::from_secs(5);

/// The precision of ages, which come from a coarse clock (one tick is
/// 4 ms on this kernel); the docs promise "a few milliseconds".
const CLOCK_SLACK: Duration = Duration::from_millis(10);

/// The root scope named `name` in `dump`; panics unless there is exactly one.
fn root<'a>(dump: &'a Dump, name: &str) -> &'a ScopeSnapshot {
    let mut roots = dump
        .scopes()
        .iter()
        .filter(|scope| scope.name() == Some(name));
    let (Some(root), None) = (roots.next(), roots.next()) else {
        panic!("one root scope `{name}` in the dump:\n{dump}");
    };
    root
}

fn has_root(dump: &Dump, name: &str) -> bool {
    dump.scopes().iter().any(|scope| scope.name() == Some(name))
}

/// Asserts that `location` is in this file, on `line`.
#[track_caller]
fn assert_at(location: &Location<'_>, line: u32) {
    assert_eq!((location.file(), location.line()), (file!(), line));
}

/// Opens `latch` when dropped, so a failing assertion does not leave a
/// blocking child stuck until the safety limit.
struct OpenOnDrop(Arc<Latch>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Where the middle and inner parts of the three-level tree were opened
/// and spawned.
struct Inner {
    middle_scope: u32,
    inner_scope: u32,
    inner_running: &'static Location<'static>,
    inner_queued: &'static Location<'static>,
}

#[tokio::test]
async fn dump_shows_a_three_level_tree() {
    const ROOT: &str = "dump-three-levels";
    let (ready_tx, ready_rx) = oneshot::channel::<Inner>();
    let (opener_tx, opener_rx) = oneshot::channel();
    let builder = Nursery::builder().name(ROOT);
    let outer_line = line!() + 1;
    let dumped = builder.scope(|n: Nursery<E>| async move {
        let middle_opener = n.spawn_named("middle-opener", async move {
            let middle_scope = line!() + 1;
            let middle = nursery::scope(|n: Nursery<E>| async move {
                let inner_opener = n.spawn_named("inner-opener", async move {
                    let builder = Nursery::builder().name("dump-inner").limit(1);
                    let inner_scope = line!() + 1;
                    let inner = builder.scope(|n: Nursery<E>| async move {
                        let (started_tx, started_rx) = oneshot::channel();
                        let running = n.spawn_named("inner-running", async move {
                            let _ = started_tx.send(());
                            pending::<Result<(), E>>().await
                        });
                        // Beyond the limit of 1: waits, not a tokio task.
                        let queued = n.spawn(pending::<Result<(), E>>());
                        let _ = started_rx.await;
                        let _ = ready_tx.send(Inner {
                            middle_scope,
                            inner_scope,
                            inner_running: running.location(),
                            inner_queued: queued.location(),
                        });
                        pending::<Result<(), E>>().await
                    });
                    let _ = inner.await;
                    Ok(())
                });
                let _ = opener_tx.send(inner_opener.location());
                pending::<Result<(), E>>().await
            });
            let _ = middle.await;
            Ok(())
        });
        let Ok(inner) = tokio::time::timeout(SAFETY, ready_rx).await else {
            panic!("the inner scope never filled up");
        };
        let inner = inner.unwrap();
        let inner_opener = opener_rx.await.unwrap();
        let dump = nursery::dump();
        n.cancel();
        Ok((dump, middle_opener.location(), inner_opener, inner))
    });
    let (dump, middle_opener, inner_opener, inner) = within("the scope", dumped).await.unwrap();
    let text = dump.to_string();
    eprintln!("{text}");

    // ----- the structure -----
    let outer = root(&dump, ROOT);
    assert_at(outer.location(), outer_line);
    assert_eq!(outer.state(), ScopeState::Open);
    let [opener] = outer.tasks() else {
        panic!("one task in the outer scope: {outer:?}");
    };
    assert_eq!(opener.name(), Some("middle-opener"));
    assert_eq!(opener.location(), middle_opener);
    assert_eq!(opener.state(), TaskState::Running);
    assert_eq!(opener.scope_path(), "`dump-three-levels`");

    // A scope opened inside a task is shown under that task.
    assert!(outer.scopes().is_empty(), "{outer:?}");
    let [middle] = opener.scopes() else {
        panic!("one scope inside the middle opener: {opener:?}");
    };
    assert_eq!(middle.name(), None);
    assert_at(middle.location(), inner.middle_scope);
    assert_eq!(middle.state(), ScopeState::Open);
    let [opener] = middle.tasks() else {
        panic!("one task in the middle scope: {middle:?}");
    };
    assert_eq!(opener.name(), Some("inner-opener"));
    assert_eq!(opener.location(), inner_opener);
    assert_eq!(opener.state(), TaskState::Running);
    assert_eq!(opener.scope_path(), "`dump-three-levels` > <unnamed>");

    assert!(middle.scopes().is_empty(), "{middle:?}");
    let [innermost] = opener.scopes() else {
        panic!("one scope inside the inner opener: {opener:?}");
    };
    assert_eq!(innermost.name(), Some("dump-inner"));
    assert_at(innermost.location(), inner.inner_scope);
    assert_eq!(innermost.state(), ScopeState::Open);
    assert!(innermost.scopes().is_empty());
    let [running, queued] = innermost.tasks() else {
        panic!("two tasks in the inner scope: {innermost:?}");
    };
    assert_eq!(running.name(), Some("inner-running"));
    assert_eq!(running.location(), inner.inner_running);
    assert_eq!(running.state(), TaskState::Running);
    assert_eq!(queued.name(), None);
    assert_eq!(queued.location(), inner.inner_queued);
    assert_eq!(queued.state(), TaskState::Queued);
    for task in [running, queued] {
        assert_eq!(
            task.scope_path(),
            "`dump-three-levels` > <unnamed> > `dump-inner`"
        );
    }

    // Everything was opened or spawned after what contains it, and all ages
    // are read at the same instant: they never grow going down the tree.
    let ages = [
        outer.age(),
        outer.tasks()[0].age(),
        middle.age(),
        middle.tasks()[0].age(),
        innermost.age(),
        running.age(),
        queued.age(),
    ];
    assert!(
        ages.is_sorted_by(|a, b| a >= b),
        "ages down the tree: {ages:?}"
    );
    assert!(outer.age() < SAFETY, "{:?}", outer.age());

    // `Dump::tasks` lists each scope's tasks before those of inner scopes.
    let mine: Vec<_> = dump
        .tasks()
        .into_iter()
        .filter(|task| task.scope_path().starts_with("`dump-three-levels`"))
        .map(|task| (task.name(), task.state()))
        .collect();
    assert_eq!(
        mine,
        [
            (Some("middle-opener"), TaskState::Running),
            (Some("inner-opener"), TaskState::Running),
            (Some("inner-running"), TaskState::Running),
            (None, TaskState::Queued),
        ]
    );

    // ----- the text -----
    let expected = format!(
        "\
scope `dump-three-levels` opened at {}: open, age <age>
  task `middle-opener` spawned at {middle_opener}: running, age <age>
    scope <unnamed> opened at {}: open, age <age>
      task `inner-opener` spawned at {}: running, age <age>
        scope `dump-inner` opened at {}: open, age <age>
          task `inner-running` spawned at {}: running, age <age>
          task <unnamed> spawned at {}: queued, age <age>
",
        outer.location(),
        middle.location(),
        inner_opener,
        innermost.location(),
        inner.inner_running,
        inner.inner_queued,
    );
    assert_eq!(mask_ages(&dump_subtree(&text, ROOT)), expected);
    // The ages printed are the snapshot's.
    assert!(
        text.contains(&format!(
            "  task `middle-opener` spawned at {middle_opener}: running, age {}ms\n",
            outer.tasks()[0].age().as_millis()
        )),
        "{text}"
    );
}

#[tokio::test]
async fn dump_forgets_a_scope_once_it_returns() {
    const ROOT: &str = "dump-returned";
    let (seen_tx, seen_rx) = oneshot::channel();
    within(
        "the scope",
        Nursery::builder()
            .name(ROOT)
            .scope(|n: Nursery<E>| async move {
                n.spawn_named("dump-returned-task", async move {
                    let _ = seen_rx.await;
                    Ok(())
                });
                let dump = nursery::dump();
                assert_eq!(root(&dump, ROOT).tasks().len(), 1, "{dump}");
                let _ = seen_tx.send(());
                Ok(())
            }),
    )
    .await
    .unwrap();
    let dump = nursery::dump();
    assert!(!has_root(&dump, ROOT), "{dump}");
    assert!(!dump.to_string().contains(ROOT), "{dump}");
    assert!(
        dump.tasks()
            .iter()
            .all(|task| task.name() != Some("dump-returned-task")),
        "{dump}"
    );
}

#[tokio::test]
async fn dump_shows_a_cancelled_scope_and_its_children_as_cancelling() {
    const ROOT: &str = "dump-cancelling";
    let (finish_tx, finish_rx) = oneshot::channel::<()>();
    let dump = within(
        "the scope",
        Nursery::builder()
            .name(ROOT)
            .grace(SAFETY)
            .scope(|n: Nursery<E>| async move {
                let (started_tx, started_rx) = oneshot::channel();
                n.spawn_named("dump-cancelling-child", async move {
                    let _ = started_tx.send(());
                    // Ignores the cancel until told to finish: inside the grace.
                    let _ = finish_rx.await;
                    Ok(())
                });
                let _ = started_rx.await;
                n.cancel();
                let dump = nursery::dump();
                let _ = finish_tx.send(());
                Ok(dump)
            }),
    )
    .await
    .unwrap();
    eprintln!("{dump}");
    let scope = root(&dump, ROOT);
    assert_eq!(scope.state(), ScopeState::Cancelling);
    let [task] = scope.tasks() else {
        panic!("one task: {dump}");
    };
    assert_eq!(task.name(), Some("dump-cancelling-child"));
    assert_eq!(task.state(), TaskState::Cancelling);
    assert_eq!(
        mask_ages(&dump_subtree(&dump.to_string(), ROOT)),
        format!(
            "scope `{ROOT}` opened at {}: cancelling, age <age>\n  \
             task `dump-cancelling-child` spawned at {}: cancelling, age <age>\n",
            scope.location(),
            task.location()
        )
    );
}

#[tokio::test]
async fn dump_shows_a_dropped_scope_with_its_blocking_child_cancelling() {
    const ROOT: &str = "dump-dropped";
    let latch = Latch::new();
    let _open = OpenOnDrop(latch.clone());
    let aborted = DropCounter::new();
    let (ready_tx, ready_rx) = oneshot::channel::<(u32, TaskHandle<()>)>();
    let stuck = latch.clone();
    let guard = aborted.guard();
    let scope = Nursery::builder()
        .name(ROOT)
        .scope(|n: Nursery<E>| async move {
            // Aborted at once with the scope: gone from the dump.
            n.spawn_named("dump-dropped-async", async move {
                let _guard = guard;
                pending::<Result<(), E>>().await
            });
            let (started_tx, started_rx) = oneshot::channel();
            let line = line!() + 1;
            let blocking = n.spawn_blocking(move |_token| {
                let _ = started_tx.send(());
                assert!(stuck.wait(SAFETY), "the test never opened the latch");
                Ok(())
            });
            let _ = started_rx.await;
            let _ = ready_tx.send((line, blocking));
            pending::<Result<(), E>>().await
        });
    let (line, blocking) = tokio::select! {
        result = scope => panic!("the scope finished: {result:?}"),
        ready = ready_rx => ready.unwrap(),
    };
    // The scope future is gone; its async child is aborted.
    within("the async child to be aborted", aborted.wait_for(1)).await;

    let dump = nursery::dump();
    eprintln!("{dump}");
    let scope = root(&dump, ROOT);
    assert_eq!(scope.state(), ScopeState::Dropped);
    assert!(scope.scopes().is_empty());
    let [task] = scope.tasks() else {
        panic!("only the blocking child is left: {dump}");
    };
    assert_eq!(task.name(), None);
    assert_at(task.location(), line);
    assert_eq!(task.location(), blocking.location());
    assert_eq!(task.state(), TaskState::Cancelling);
    assert!(task.is_blocking());
    assert_eq!(task.scope_path(), "`dump-dropped`");
    assert_eq!(
        mask_ages(&dump_subtree(&dump.to_string(), ROOT)),
        format!(
            "scope `{ROOT}` opened at {}: dropped, age <age>\n  \
             blocking task <unnamed> spawned at {}: cancelling, age <age>\n",
            scope.location(),
            task.location()
        )
    );

    // Once the child ends, the dropped scope leaves the tree.
    latch.open();
    let _ = tokio::time::timeout(SAFETY, blocking)
        .await
        .expect("the blocking child ends once the latch opens");
    let dump = nursery::dump();
    assert!(!has_root(&dump, ROOT), "{dump}");
}

#[tokio::test]
async fn dump_ages_grow_while_a_task_runs() {
    const ROOT: &str = "dump-age";
    // The span of real time the child measures out between the two dumps.
    const SPAN: Duration = Duration::from_millis(40);
    let first_seen = Latch::new();
    let second_seen = Latch::new();
    let _open = (
        OpenOnDrop(first_seen.clone()),
        OpenOnDrop(second_seen.clone()),
    );
    let (first, second) = within(
        "the scope",
        Nursery::builder()
            .name(ROOT)
            .scope(|n: Nursery<E>| async move {
                let (started_tx, started_rx) = oneshot::channel();
                let (slept_tx, slept_rx) = oneshot::channel();
                let (first, second) = (first_seen.clone(), second_seen.clone());
                let child = n.spawn_blocking(move |_token| {
                    let _ = started_tx.send(());
                    assert!(first.wait(SAFETY), "the first dump was never taken");
                    std::thread::sleep(SPAN); // the time being measured
                    let _ = slept_tx.send(());
                    assert!(second.wait(SAFETY), "the second dump was never taken");
                    Ok(())
                });
                let _ = started_rx.await;
                let first = nursery::dump();
                first_seen.open();
                let _ = slept_rx.await;
                let second = nursery::dump();
                second_seen.open();
                child.await.map_err(|_| "the child failed")?;
                Ok((first, second))
            }),
    )
    .await
    .unwrap();

    let age = |dump: &Dump| {
        let scope = root(dump, ROOT);
        let [task] = scope.tasks() else {
            panic!("one task: {dump}");
        };
        (scope.age(), task.age())
    };
    let (scope_before, task_before) = age(&first);
    let (scope_after, task_after) = age(&second);
    assert!(
        task_after >= task_before + SPAN - CLOCK_SLACK,
        "the task aged {:?} over a real {SPAN:?}",
        task_after.saturating_sub(task_before)
    );
    assert!(
        scope_after >= scope_before + SPAN - CLOCK_SLACK,
        "the scope aged {:?} over a real {SPAN:?}",
        scope_after.saturating_sub(scope_before)
    );
    assert!(task_after < SAFETY, "{task_after:?}");
    // The printed age is the snapshot's.
    let text = dump_subtree(&second.to_string(), ROOT);
    assert!(
        text.contains(&format!(": running, age {}ms\n", task_after.as_millis())),
        "{text}"
    );
}

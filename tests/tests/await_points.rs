//! Where each child waits: `dump_traced`, stuck reports and test timeouts
//! carry every live child's await-point trace from tokio's task dumps,
//! matched to the child by its tokio task id; a build without task dumps
//! says how to turn them on.
//!
//! Both builds run these tests: `cargo test` (no task dumps), and CI's
//! `RUSTFLAGS="--cfg tokio_unstable" cargo test --features taskdump`.

use std::future::pending;
use std::sync::{Mutex, Once};
use std::time::Duration;

use nursery::testing::LeakCheck;
use nursery::{AwaitPoints, Dump, Nursery, Stuck, TaskSnapshot};
use nursery_tests::within;
use tokio::sync::{Notify, mpsc};

type E = &'static str;

/// Whether this build has tokio's task dumps, as nursery's build script
/// decides it.
const TRACED: bool = cfg!(all(
    tokio_unstable,
    feature = "taskdump",
    target_os = "linux",
    any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "s390x"
    )
));

/// Parks on a `Notify` that is never notified, after saying so. It never
/// looks at its scope's cancel: it leaves only when aborted.
#[inline(never)]
async fn parked_on_notify(parked: mpsc::UnboundedSender<()>) -> Result<(), E> {
    let never = Notify::new();
    let notified = never.notified();
    let _ = parked.send(());
    notified.await;
    Ok(())
}

/// Parks in an hour's sleep, after saying so.
#[inline(never)]
async fn parked_in_sleep(parked: mpsc::UnboundedSender<()>) -> Result<(), E> {
    let _ = parked.send(());
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

fn task<'a>(dump: &'a Dump, scope: &str, name: &str) -> &'a TaskSnapshot {
    let scope = dump.find(scope).expect("the scope is in the dump");
    let task = scope.tasks().iter().find(|task| task.name() == Some(name));
    task.expect("the task is in the dump")
}

/// The line a dump or report without traces ends with: it says how to
/// turn them on.
fn assert_says_how_to_turn_them_on(text: &str) {
    assert!(
        text.contains("RUSTFLAGS=\"--cfg tokio_unstable\"")
            && text.contains("nursery's `taskdump` feature"),
        "{text}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_traced_dump_says_where_each_child_waits() {
    let (parked, mut reached) = mpsc::unbounded_channel();
    let result = within(
        "the scope",
        Nursery::builder()
            .name("traced")
            .scope_local(|n: Nursery<E>, local| async move {
                n.spawn_named("notify", parked_on_notify(parked.clone()));
                n.spawn_named("sleep", parked_in_sleep(parked.clone()));
                local.spawn_named("local", pending::<Result<(), E>>());
                n.spawn_named("outside", pending::<Result<(), E>>());
                for _ in 0..2 {
                    reached.recv().await.expect("a child says it parked");
                }
                let dump = nursery::dump_traced().await;
                let notify = task(&dump, "traced", "notify");
                let sleep = task(&dump, "traced", "sleep");
                let local = task(&dump, "traced", "local");
                let text = dump.to_string();
                if TRACED {
                    assert_eq!(dump.await_points(), AwaitPoints::Taken);
                    let notify = notify.trace().expect("`notify` has a trace");
                    let sleep = sleep.trace().expect("`sleep` has a trace");
                    // Each child's own trace, down to the tokio future it
                    // is parked on: matched by task id, not mixed up.
                    // It starts at the child's own future: nursery's task
                    // runner (and its `catch_unwind`) is left out.
                    assert!(
                        notify.starts_with("╼ await_points::parked_on_notify at "),
                        "{notify}"
                    );
                    assert!(!notify.contains("catch_unwind"), "{notify}");
                    assert!(notify.contains("Notified"), "{notify}");
                    assert!(!notify.contains("parked_in_sleep"), "{notify}");
                    assert!(sleep.contains("parked_in_sleep"), "{sleep}");
                    assert!(sleep.contains("Sleep"), "{sleep}");
                    assert!(!sleep.contains("parked_on_notify"), "{sleep}");
                    // A local child waits inside its scope's task: no
                    // trace of its own.
                    assert_eq!(local.trace(), None);
                    // A child parked on a future outside tokio has an
                    // empty trace, and the text says what that means.
                    assert_eq!(task(&dump, "traced", "outside").trace(), Some(""));
                    assert!(
                        text.contains(
                            "(no await point tokio can trace: it waits on a future outside tokio)"
                        ),
                        "{text}"
                    );
                    // The text puts each trace under its task's line.
                    let line = text
                        .lines()
                        .position(|line| line.contains("task `notify` spawned at"))
                        .expect("`notify`'s line");
                    let under: Vec<&str> = text.lines().skip(line + 1).take(3).collect();
                    assert!(
                        under.iter().any(|line| line.contains("parked_on_notify")),
                        "{text}"
                    );
                } else {
                    assert_eq!(dump.await_points(), AwaitPoints::NotBuilt);
                    assert!(dump.tasks().iter().all(|task| task.trace().is_none()));
                    assert_says_how_to_turn_them_on(text.lines().last().unwrap());
                }
                // The JSON form carries them too.
                let json = serde_json::to_value(&dump).expect("a dump serializes");
                let scope = json["scopes"].as_array().unwrap().iter();
                let scope = scope
                    .clone()
                    .find(|scope| scope["name"] == "traced")
                    .unwrap();
                let tasks = scope["tasks"].as_array().unwrap();
                let notify_json = tasks.iter().find(|task| task["name"] == "notify").unwrap();
                if TRACED {
                    assert_eq!(json["await_points"], "taken");
                    assert_eq!(notify_json["trace"], notify.trace().unwrap());
                } else {
                    assert_eq!(json["await_points"], "not_built");
                    assert_eq!(notify_json["trace"], serde_json::Value::Null);
                }
                // A plain dump asks for none and says nothing of them.
                let plain = nursery::dump();
                assert_eq!(plain.await_points(), AwaitPoints::NotAsked);
                assert!(plain.tasks().iter().all(|task| task.trace().is_none()));
                assert!(!plain.to_string().contains("where tasks wait"));
                n.cancel();
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_dump_on_a_multi_thread_runtime_traces_children_on_every_worker() {
    let (parked, mut reached) = mpsc::unbounded_channel();
    let result = within(
        "the scope",
        Nursery::builder()
            .name("traced-mt")
            .scope(|n: Nursery<E>| async move {
                for i in 0..8 {
                    let name = if i % 2 == 0 { "notify" } else { "sleep" };
                    let parked = parked.clone();
                    n.spawn_named(name, async move {
                        if i % 2 == 0 {
                            parked_on_notify(parked).await
                        } else {
                            parked_in_sleep(parked).await
                        }
                    });
                }
                for _ in 0..8 {
                    reached.recv().await.expect("a child says it parked");
                }
                let dump = nursery::dump_traced().await;
                let scope = dump.find("traced-mt").expect("the scope");
                assert_eq!(scope.tasks().len(), 8);
                if TRACED {
                    assert_eq!(dump.await_points(), AwaitPoints::Taken);
                    for task in scope.tasks() {
                        let trace = task.trace().expect("every child has a trace");
                        let (own, other) = match task.name() {
                            Some("notify") => ("parked_on_notify", "parked_in_sleep"),
                            _ => ("parked_in_sleep", "parked_on_notify"),
                        };
                        assert!(trace.contains(own) && !trace.contains(other), "{trace}");
                    }
                } else {
                    assert_eq!(dump.await_points(), AwaitPoints::NotBuilt);
                }
                n.cancel();
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Ok(()));
}

/// Every stuck report of this binary (the hook is process-wide).
static REPORTS: Mutex<Vec<Stuck>> = Mutex::new(Vec::new());

fn reports_of(scope: &str) -> Vec<Stuck> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        nursery::set_stuck_hook(|stuck| REPORTS.lock().unwrap().push(stuck.clone()));
    });
    let path = format!("`{scope}`");
    let reports = REPORTS.lock().unwrap();
    let reports = reports.iter().filter(|stuck| stuck.scope_path() == path);
    reports.cloned().collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_stuck_report_says_where_its_stuck_child_waits() {
    reports_of("stuck-traced");
    let (parked, mut reached) = mpsc::unbounded_channel();
    let result = within(
        "the scope",
        Nursery::builder()
            .name("stuck-traced")
            .grace(Duration::from_secs(10))
            .warn_after(Duration::from_secs(1))
            .scope(|n: Nursery<E>| async move {
                n.spawn_named("deaf", parked_on_notify(parked));
                reached.recv().await.expect("`deaf` parks");
                n.cancel();
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Ok(()), "a cancel by the body is no error");
    let reports = reports_of("stuck-traced");
    assert_eq!(reports.len(), 1, "reported once");
    let stuck = &reports[0];
    let deaf = &stuck.tasks()[0];
    assert_eq!(deaf.name(), Some("deaf"));
    let text = stuck.to_string();
    if TRACED {
        assert_eq!(stuck.await_points(), AwaitPoints::Taken);
        let trace = deaf.trace().expect("`deaf` has a trace");
        assert!(trace.contains("parked_on_notify"), "{trace}");
        // The report prints it under the child's line.
        let line = text.lines().position(|line| line.contains("task `deaf`"));
        let next = text.lines().nth(line.expect("`deaf`'s line") + 1);
        assert!(
            next.is_some_and(|line| line.starts_with("      ")),
            "{text}"
        );
        assert!(text.contains("parked_on_notify"), "{text}");
    } else {
        assert_eq!(stuck.await_points(), AwaitPoints::NotBuilt);
        assert_eq!(deaf.trace(), None);
        assert_says_how_to_turn_them_on(text.lines().last().unwrap());
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_test_that_runs_out_of_time_names_where_its_stuck_child_waits() {
    let (parked, mut reached) = mpsc::unbounded_channel();
    let report = LeakCheck::new()
        .timeout(Duration::from_millis(200))
        .try_run(
            Nursery::builder()
                .name("hung-test")
                .scope(|n: Nursery<E>| async move {
                    n.spawn_named("hung", parked_on_notify(parked));
                    reached.recv().await.expect("`hung` parks");
                    Ok(())
                }),
        )
        .await
        .expect_err("the check runs out of time");
    assert_eq!(report.timed_out(), Some(Duration::from_millis(200)));
    let text = report.to_string();
    assert!(
        text.contains("task `hung` spawned at tests/tests/await_points.rs:"),
        "{text}"
    );
    if TRACED {
        assert!(text.contains("parked_on_notify"), "{text}");
        assert!(text.contains("Notified"), "{text}");
    } else {
        assert_says_how_to_turn_them_on(text.lines().last().unwrap());
    }
}

//! `Builder::warn_after` and `set_stuck_hook`: a scope that waits for its
//! children too long says so, once, naming them. The clock is paused, so
//! every time asserted is exact.

use std::future::pending;
use std::sync::{Mutex, Once};
use std::time::Duration;

use nursery::{Nursery, Stuck, TaskState};
use nursery_tests::within;
use tokio::time::{Instant, sleep};

type E = &'static str;

const SECOND: Duration = Duration::from_secs(1);

/// Every report, from every test of this binary (the hook is process-wide):
/// each test looks only at its own scope's.
static REPORTS: Mutex<Vec<(Stuck, Instant)>> = Mutex::new(Vec::new());

fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        nursery::set_stuck_hook(|stuck| {
            REPORTS
                .lock()
                .unwrap()
                .push((stuck.clone(), Instant::now()));
        });
    });
}

fn reports_of(scope: &str) -> Vec<(Stuck, Instant)> {
    let name = format!("`{scope}`");
    REPORTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(stuck, _)| stuck.scope_path() == name)
        .cloned()
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ignores_the_cancel_is_reported_once_by_name_and_spawn_site() {
    install();
    let started = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .name("stuck-cancel")
            .grace(10 * SECOND)
            .warn_after(2 * SECOND)
            .scope(|n: Nursery<E>| async move {
                n.spawn_named("deaf", pending::<Result<(), E>>());
                n.spawn(async {
                    sleep(SECOND).await;
                    Err::<(), _>("failed")
                });
                // Runs until the cancel: the wait starts then.
                pending::<()>().await;
                Ok(())
            }),
    )
    .await;
    assert_eq!(result.unwrap_err().error(), Some(&"failed"));
    assert_eq!(started.elapsed(), 11 * SECOND, "the grace ran out");
    let reports = reports_of("stuck-cancel");
    assert_eq!(reports.len(), 1, "reported once");
    let (stuck, at) = &reports[0];
    assert_eq!(*at - started, 3 * SECOND, "2 s after the cancel at 1 s");
    assert!(stuck.is_cancelled());
    assert_eq!(stuck.waited(), 2 * SECOND);
    let tasks: Vec<_> = stuck
        .tasks()
        .iter()
        .map(|task| (task.name(), task.location().file(), task.state()))
        .collect();
    assert_eq!(tasks, [(Some("deaf"), file!(), TaskState::Cancelling)]);
    let text = stuck.to_string();
    assert!(
        text.starts_with("nursery: scope `stuck-cancel` (opened at tests/tests/stuck.rs:"),
        "{text}"
    );
    assert!(
        text.contains("has waited 2.0s for its children since it was cancelled"),
        "{text}"
    );
    assert!(
        text.contains("task `deaf` spawned at tests/tests/stuck.rs:"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_child_after_the_body_returned_is_reported() {
    install();
    let started = Instant::now();
    let result = within(
        "the scope",
        Nursery::builder()
            .name("stuck-body-done")
            .warn_after(SECOND)
            .scope(|n: Nursery<E>| async move {
                n.spawn_named("slow", async {
                    sleep(5 * SECOND).await;
                    Ok(())
                });
                Ok("body done")
            }),
    )
    .await;
    assert_eq!(result, Ok("body done"));
    let reports = reports_of("stuck-body-done");
    assert_eq!(reports.len(), 1);
    let (stuck, at) = &reports[0];
    assert_eq!(*at - started, SECOND);
    assert!(!stuck.is_cancelled());
    assert_eq!(stuck.tasks()[0].name(), Some("slow"));
    assert_eq!(stuck.tasks()[0].state(), TaskState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_scope_that_finishes_in_time_reports_nothing() {
    install();
    let result = within(
        "the scope",
        Nursery::builder()
            .name("stuck-in-time")
            .warn_after(2 * SECOND)
            .grace(SECOND)
            .scope(|n: Nursery<E>| async move {
                n.spawn(async {
                    sleep(SECOND).await;
                    Ok(())
                });
                n.spawn(async {
                    nursery::cancelled().await;
                    sleep(SECOND / 2).await;
                    Ok(())
                });
                sleep(SECOND / 4).await;
                n.cancel();
                Ok(())
            }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert!(reports_of("stuck-in-time").is_empty());
}

#[tokio::test(start_paused = true)]
async fn inner_scopes_inherit_warn_after() {
    install();
    let result = within(
        "the scope",
        Nursery::builder()
            .name("stuck-outer")
            .warn_after(SECOND)
            .scope(|_n: Nursery<E>| async move {
                Nursery::builder()
                    .name("stuck-inner")
                    .scope(|n: Nursery<E>| async move {
                        n.spawn(async {
                            sleep(3 * SECOND).await;
                            Ok(())
                        });
                        Ok(())
                    })
                    .await
                    .map_err(|_| "inner")
            }),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(reports_of("stuck-outer` > `stuck-inner").len(), 1);
    assert!(
        reports_of("stuck-outer").is_empty(),
        "the outer scope's body was still running"
    );
}

#[tokio::test]
async fn a_blocking_child_that_outlives_the_cancel_is_reported_as_blocking() {
    install();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let scope = Nursery::builder()
        .name("stuck-blocking")
        .warn_after(Duration::from_millis(20))
        .scope(|n: Nursery<E>| async move {
            let (started, running) = tokio::sync::oneshot::channel();
            n.spawn_blocking_named("read-disk", move |_token| {
                let _ = started.send(());
                let _ = wait.recv(); // ignores its token
                Ok(())
            });
            // A blocking child cancelled before it starts never runs.
            running.await.unwrap();
            n.cancel();
            Ok(())
        });
    // Lets the blocking child go once the report is in.
    let release = async move {
        while reports_of("stuck-blocking").is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release.send(()).unwrap();
    };
    let (result, ()) = within("the scope and the report", async {
        tokio::join!(scope, release)
    })
    .await;
    assert_eq!(result, Ok(()));
    let reports = reports_of("stuck-blocking");
    assert_eq!(reports.len(), 1);
    let task = &reports[0].0.tasks()[0];
    assert!(task.is_blocking());
    assert_eq!(task.state(), TaskState::Cancelling);
    let text = reports[0].0.to_string();
    assert!(
        text.contains("\n  blocking task `read-disk` spawned at tests/tests/stuck.rs:"),
        "{text}"
    );
    assert!(text.contains(": cancelling, age"), "{text}");
}

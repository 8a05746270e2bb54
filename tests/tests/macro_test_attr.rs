//! `#[nursery::test]`: an `async fn` test runs on a fresh tokio runtime of
//! the chosen flavor, as the body of a root scope, with the function's
//! return type, visibility and other attributes kept.
//!
//! Each supported form of the attribute appears here at least once; the
//! forms the macro refuses are compile-fail cases for the ui-tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use nursery::Nursery;
use nursery_tests::within;
use tokio::runtime::{Handle, RuntimeFlavor};

// ===== runtime flavors =====

#[nursery::test]
async fn test_runs_on_a_current_thread_runtime_by_default() {
    assert_eq!(
        Handle::current().runtime_flavor(),
        RuntimeFlavor::CurrentThread
    );
}

#[nursery::test(flavor = "current_thread")]
async fn test_runs_on_a_current_thread_runtime_when_asked() {
    assert_eq!(
        Handle::current().runtime_flavor(),
        RuntimeFlavor::CurrentThread
    );
}

#[nursery::test(flavor = "multi_thread", worker_threads = 3)]
async fn test_runs_on_a_multi_thread_runtime_with_the_given_workers() {
    let handle = Handle::current();
    assert_eq!(handle.runtime_flavor(), RuntimeFlavor::MultiThread);
    assert_eq!(handle.metrics().num_workers(), 3);
}

#[nursery::test(flavor = "multi_thread")]
async fn test_runs_on_a_multi_thread_runtime_with_default_workers() {
    let handle = Handle::current();
    assert_eq!(handle.runtime_flavor(), RuntimeFlavor::MultiThread);
    assert!(handle.metrics().num_workers() >= 1);
}

#[nursery::test(worker_threads = 1, flavor = "multi_thread")]
async fn test_options_may_come_in_any_order() {
    assert_eq!(Handle::current().metrics().num_workers(), 1);
}

#[nursery::test]
async fn test_runtime_has_the_time_driver_enabled() {
    tokio::time::sleep(Duration::from_millis(1)).await;
    let elapsed = tokio::time::timeout(Duration::from_secs(5), async { 7 }).await;
    assert_eq!(elapsed, Ok(7));
}

// ===== leak grace =====

#[nursery::test(leak_grace = "200ms")]
async fn test_accepts_a_leak_grace_in_milliseconds() {}

#[nursery::test(leak_grace = "0s", flavor = "multi_thread", worker_threads = 2)]
async fn test_accepts_a_zero_leak_grace_with_every_other_option() {
    assert_eq!(Handle::current().metrics().num_workers(), 2);
}

#[nursery::test(leak_grace = "1500us")]
async fn test_accepts_a_leak_grace_in_microseconds() {}

#[nursery::test(leak_grace = "1m")]
async fn test_accepts_a_leak_grace_in_minutes() {}

// ===== the leak check =====

/// A test whose body leaves a plain tokio task running fails, with the
/// leak report as its panic message.
#[nursery::test(leak_grace = "20ms")]
#[should_panic(expected = "1 task leaked")]
async fn test_fails_when_its_body_leaves_a_tokio_task_running() {
    tokio::spawn(std::future::pending::<()>());
}

/// A test whose body drops a scope with a blocking child stuck past the
/// leak grace fails, naming the child.
#[nursery::test(leak_grace = "20ms", flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "task `stuck-in-the-test` spawned at")]
async fn test_fails_when_a_dropped_scope_leaves_a_blocking_child_stuck() {
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let scope = nursery::scope(|n: Nursery<String>| async move {
        drop(n.spawn_blocking_named("stuck-in-the-test", move |_token| {
            let _ = started_tx.send(());
            // Ignores its token; stuck well past the check's window (and
            // released in the end, so the runtime can shut down).
            std::thread::sleep(Duration::from_millis(500));
            Ok(())
        }));
        std::future::pending::<Result<(), String>>().await
    });
    tokio::select! {
        result = scope => panic!("the scope finished: {result:?}"),
        _ = started => {} // the scope is dropped here
    }
}

// ===== the body runs in a root scope =====

#[nursery::test]
async fn test_body_runs_in_a_root_scope_without_deadline() {
    assert_eq!(nursery::deadline(), None);
    assert_eq!(nursery::check(), Ok(()));
    let seen = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            let child = n.spawn(async {
                // A child of a scope nested in the test's root scope.
                assert_eq!(nursery::deadline(), None);
                nursery::check().map_err(|e| e.to_string())?;
                Ok(Handle::current().runtime_flavor())
            });
            assert_eq!(n.deadline(), None);
            child.await.map_err(|e| e.to_string())
        }),
    )
    .await;
    assert_eq!(seen, Ok(RuntimeFlavor::CurrentThread));
}

#[nursery::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_body_may_run_a_scope_on_the_multi_thread_runtime() {
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let sum = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            let handles: Vec<_> = (1..=8u64)
                .map(|i| {
                    let counter = counter.clone();
                    n.spawn(async move {
                        counter.fetch_add(1, SeqCst);
                        Ok(i)
                    })
                })
                .collect();
            let mut sum = 0;
            for handle in handles {
                sum += handle.await.map_err(|e| e.to_string())?;
            }
            Ok(sum)
        }),
    )
    .await;
    assert_eq!(sum, Ok(36));
    assert_eq!(ran.load(SeqCst), 8);
}

#[nursery::test]
async fn test_deadline_of_an_inner_scope_is_its_own() {
    let deadline = within(
        "the scope",
        nursery::Nursery::builder()
            .timeout(Duration::from_secs(60))
            .scope(|_: Nursery<String>| async { Ok(nursery::deadline()) }),
    )
    .await;
    assert!(matches!(deadline, Ok(Some(_))), "{deadline:?}");
    assert_eq!(nursery::deadline(), None, "the root scope has none");
}

// ===== the signature and attributes are kept =====

#[nursery::test]
async fn test_may_return_a_result_and_use_the_question_mark() -> Result<(), String> {
    let n: u32 = "42"
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    assert_eq!(n, 42);
    if n == 42 {
        return Ok(());
    }
    Err("unreachable".to_owned())
}

#[nursery::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_may_return_a_boxed_error() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = "7".parse()?;
    let joined = within(
        "the scope",
        nursery::scope(|n2: Nursery<std::io::Error>| async move {
            let handle = n2.spawn(async move { Ok(n * 6) });
            handle.await.map_err(std::io::Error::other)
        }),
    )
    .await?;
    assert_eq!(joined, 42);
    Ok(())
}

#[nursery::test]
#[should_panic(expected = "boom in the body")]
async fn test_with_should_panic_after_the_attribute_expects_the_body_to_panic() {
    panic!("boom in the body");
}

#[should_panic(expected = "boom before")]
#[nursery::test]
async fn test_with_should_panic_before_the_attribute_expects_the_body_to_panic() {
    panic!("boom before")
}

#[nursery::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "boom in a child")]
async fn test_fails_with_the_payload_of_a_panicking_child() {
    let _ = within(
        "the scope",
        nursery::scope(|n: Nursery<String>| async move {
            drop(n.spawn(async {
                if true {
                    panic!("boom in a child");
                }
                Ok(())
            }));
            Ok(())
        }),
    )
    .await;
}

#[nursery::test]
#[ignore = "checks that #[ignore] is kept: it would fail if run"]
async fn test_keeps_ignore() {
    panic!("an ignored test ran");
}

/// Doc comments are kept too.
#[nursery::test]
pub(crate) async fn test_keeps_visibility_and_docs() {}

#[nursery::test]
async fn test_lifts_inner_attributes_onto_the_function() {
    #![allow(unused_variables)]
    let unused = 1;
}

#[cfg(any())]
#[nursery::test]
async fn test_under_a_false_cfg_is_not_even_expanded() {
    this_does_not_compile
}

// ===== re-exported crates =====

mod reexport {
    pub(crate) use nursery as renamed;
}

#[nursery::test(crate = "crate::reexport::renamed")]
async fn test_finds_nursery_through_the_crate_option() {
    assert_eq!(crate::reexport::renamed::deadline(), None);
}

// ===== the examples in the macro's docs =====

#[nursery::test]
async fn children_finish_before_the_scope_returns() {
    let sum = within(
        "the scope",
        nursery::scope(|n: Nursery<std::io::Error>| async move {
            let a = n.spawn(async { Ok(1) });
            let b = n.spawn(async { Ok(2) });
            Ok(a.await.unwrap() + b.await.unwrap())
        }),
    )
    .await
    .unwrap();
    assert_eq!(sum, 3);
}

#[nursery::test(flavor = "multi_thread", worker_threads = 2, leak_grace = "50ms")]
async fn parses() -> Result<(), std::num::ParseIntError> {
    let n: u32 = "42".parse()?;
    assert_eq!(n, 42);
    Ok(())
}

// ===== timeout =====

#[nursery::test(timeout = "200ms")]
#[should_panic(expected = "task `stuck-child` spawned at tests/tests/macro_test_attr.rs:")]
async fn a_test_past_its_timeout_fails_with_the_live_tree_naming_the_stuck_child() {
    nursery::Nursery::builder()
        .name("stuck-scope")
        .scope(|n: Nursery<()>| async move {
            n.spawn_named("stuck-child", std::future::pending::<Result<(), ()>>());
            std::future::pending::<()>().await;
            Ok(())
        })
        .await
        .unwrap();
}

#[nursery::test(timeout = "10s")]
async fn a_test_that_finishes_in_time_is_not_cut_short() {
    let value = nursery::scope(|n: Nursery<()>| async move {
        let child = n.spawn(async { Ok(41) });
        Ok(child.await.unwrap() + 1)
    })
    .await;
    assert_eq!(value, Ok(42));
}

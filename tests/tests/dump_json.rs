//! The dump as JSON (nursery's `serde` feature): the schema, scopes nested
//! as in `dump()`, and a tree deeper than the nesting limit listed flat
//! below it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use nursery::Nursery;
use nursery_tests::within;
use serde_json::Value;
use tokio::sync::Notify;

type E = &'static str;

/// The root scope named `name` in a dump's JSON.
fn root<'a>(dump: &'a Value, name: &str) -> &'a Value {
    dump["scopes"]
        .as_array()
        .expect("scopes is an array")
        .iter()
        .find(|scope| scope["name"] == name)
        .unwrap_or_else(|| panic!("no root scope `{name}` in {dump:#}"))
}

#[tokio::test]
async fn a_dump_serializes_to_the_documented_schema_with_scopes_nested() {
    let opened = Arc::new(Notify::new());
    let opened_inner = opened.clone();
    let json = within(
        "the scope",
        Nursery::builder().name("json-root").limit(2).scope_local(
            |n: Nursery<E>, local| async move {
                n.spawn_named("opener", async move {
                    Nursery::builder()
                        .name("json-inner")
                        .scope(|inner: Nursery<E>| async move {
                            inner.spawn_named("deep-task", std::future::pending::<Result<(), E>>());
                            opened_inner.notify_one();
                            std::future::pending::<()>().await;
                            Ok(())
                        })
                        .await
                        .map_err(|_| "inner")
                });
                local.spawn_named("local-one", std::future::pending::<Result<(), E>>());
                local.spawn_named("queued-one", async { Ok::<_, E>(()) });
                opened.notified().await;
                let json = serde_json::to_value(nursery::dump()).expect("a dump serializes");
                n.cancel();
                Ok(json)
            },
        ),
    )
    .await
    .unwrap();
    assert_eq!(json["schema"], "nursery.dump");
    assert_eq!(json["version"], 1);
    let scope = root(&json, "json-root");
    assert_eq!(scope["kind"], "scope");
    assert_eq!(scope["state"], "open");
    assert!(
        scope["location"]
            .as_str()
            .unwrap()
            .starts_with("tests/tests/dump_json.rs:")
    );
    assert!(scope["age_ns"].is_u64());
    let tasks = scope["tasks"].as_array().unwrap();
    let by_name = |name: &str| {
        tasks
            .iter()
            .find(|task| task["name"] == name)
            .unwrap_or_else(|| panic!("no task `{name}` in {scope:#}"))
    };
    let opener = by_name("opener");
    assert_eq!(opener["state"], "running");
    assert_eq!(opener["local"], false);
    assert_eq!(opener["blocking"], false);
    assert_eq!(opener["scope_path"], "`json-root`");
    // A plain dump takes no traces, and says so.
    assert_eq!(opener["trace"], Value::Null);
    assert_eq!(json["await_points"], "not_asked");
    // The scope the task opened sits under it, with its own task.
    let inner = &opener["scopes"][0];
    assert_eq!(inner["name"], "json-inner");
    assert_eq!(inner["tasks"][0]["name"], "deep-task");
    assert_eq!(
        inner["tasks"][0]["scope_path"],
        "`json-root` > `json-inner`"
    );
    assert_eq!(by_name("local-one")["local"], true);
    assert_eq!(by_name("queued-one")["state"], "queued");
}

/// A scope whose body opens the next, `depth` deep, the innermost
/// notifying `opened` and waiting forever.
fn nest(
    level: usize,
    depth: usize,
    opened: Arc<Notify>,
) -> Pin<Box<dyn Future<Output = Result<(), nursery::Error<E>>> + Send>> {
    Box::pin(Nursery::builder().name(format!("level-{level}")).scope(
        move |_n: Nursery<E>| async move {
            if level + 1 < depth {
                nest(level + 1, depth, opened).await.map_err(|_| "inner")
            } else {
                opened.notify_one();
                std::future::pending::<()>().await;
                Ok(())
            }
        },
    ))
}

#[tokio::test]
async fn a_tree_deeper_than_the_nesting_limit_is_listed_flat_below_it() {
    const DEPTH: usize = 100;
    let opened = Arc::new(Notify::new());
    let mut tree = nest(0, DEPTH, opened.clone());
    let json = within("the nest", async {
        tokio::select! {
            _ = &mut tree => unreachable!("the innermost body never returns"),
            () = opened.notified() => {}
        }
        serde_json::to_value(nursery::dump()).expect("a dump serializes")
    })
    .await;
    drop(tree);
    // Nested down to level 32, then flat.
    let mut scope = root(&json, "level-0");
    for level in 1..=32 {
        scope = &scope["scopes"][0];
        assert_eq!(scope["name"], format!("level-{level}"));
    }
    assert!(scope.get("scopes").is_none(), "nesting stops at the limit");
    let deeper = scope["deeper"].as_array().unwrap();
    let names: Vec<&str> = deeper
        .iter()
        .map(|scope| scope["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (33..DEPTH).map(|level| format!("level-{level}")).collect();
    assert_eq!(names, expected);
    let depths: Vec<u64> = deeper
        .iter()
        .map(|scope| scope["depth"].as_u64().unwrap())
        .collect();
    assert_eq!(depths, (33..DEPTH as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_single_scope_snapshot_serializes_with_the_tree_below_it() {
    let json = within(
        "the scope",
        Nursery::builder()
            .name("json-single")
            .scope(|n: Nursery<E>| async move {
                n.spawn_named("child", std::future::pending::<Result<(), E>>());
                let dump = nursery::dump();
                let scope = dump.find("json-single").expect("the scope is in the dump");
                let json = serde_json::to_value(scope).expect("a scope serializes");
                n.cancel();
                Ok(json)
            }),
    )
    .await
    .unwrap();
    assert_eq!(json["name"], "json-single");
    assert_eq!(json["tasks"][0]["name"], "child");
    assert_eq!(json["tasks"][0]["kind"], "task");
}

//! White-box tests that need the whole crate (scopes opened through the
//! public API, looked at through the internals).

use std::time::Duration;

use crate::snapshot::{DisplayName, PATH_HEAD, PATH_TAIL};
use crate::sync::{Arc, lock};
use crate::{Dump, dump};

/// The path of scopes named `names`, every name kept.
fn full_path(names: &[Option<&str>]) -> String {
    let names: Vec<String> = names
        .iter()
        .map(|name| DisplayName(*name).to_string())
        .collect();
    names.join(" > ")
}

/// Opens scopes down to `depth`, each in the body of the last, named
/// `s{level}` except every third; in each, records the scope's
/// `path()` and spawns a task that waits for `stop`; in the innermost,
/// takes a dump, then stops the tasks.
fn nest(
    level: usize,
    depth: usize,
    stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    paths: Arc<std::sync::Mutex<Vec<String>>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Dump>> + Send>> {
    let mut builder = crate::Nursery::builder();
    if level % 3 != 1 {
        builder = builder.name(format!("s{level}"));
    }
    Box::pin(async move {
        let scoped = builder.scope(move |n: crate::Nursery<()>| async move {
            let path = crate::context::current().expect("in a scope").path();
            lock(&paths).push(path);
            let mut waiting = stop.subscribe();
            n.spawn_named(format!("t{level}"), async move {
                let _ = waiting.wait_for(|stop| *stop).await;
                Ok(())
            });
            if level + 1 == depth {
                let dump = dump();
                stop.send_replace(true);
                return Ok(Some(dump));
            }
            Ok(nest(level + 1, depth, stop, paths).await)
        });
        scoped.await.ok().flatten()
    })
}

#[test]
fn a_scopes_path_is_the_path_its_tasks_show_in_a_dump_at_every_depth() {
    const DEPTH: usize = 20;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let stop = std::sync::Arc::new(tokio::sync::watch::Sender::new(false));
    let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let dump = rt.block_on(async {
        let dumped = nest(0, DEPTH, stop, paths.clone());
        let dumped = tokio::time::timeout(Duration::from_secs(5), dumped);
        dumped.await.expect("the scopes never closed")
    });
    let dump = dump.expect("the innermost scope took a dump");
    let paths = lock(&paths).clone();
    assert_eq!(paths.len(), DEPTH);
    let names: Vec<String> = (0..DEPTH).map(|level| format!("s{level}")).collect();
    let names: Vec<Option<&str>> = (0..DEPTH)
        .map(|level| Some(names[level].as_str()).filter(|_| level % 3 != 1))
        .collect();
    for (level, path) in paths.iter().enumerate() {
        let len = level + 1;
        let expected = if len <= PATH_HEAD + PATH_TAIL {
            full_path(&names[..len])
        } else {
            format!(
                "{} > ... {} scope{} ... > {}",
                full_path(&names[..PATH_HEAD]),
                len - PATH_HEAD - PATH_TAIL,
                if len - PATH_HEAD - PATH_TAIL == 1 {
                    ""
                } else {
                    "s"
                },
                full_path(&names[len - PATH_TAIL..len]),
            )
        };
        assert_eq!(path, &expected, "path() {len} scopes deep");
        let name = format!("t{level}");
        let tasks = dump.tasks();
        let Some(task) = tasks.iter().find(|task| task.name() == Some(&name)) else {
            panic!("task {name} in the dump:\n{dump}");
        };
        assert_eq!(
            task.scope_path(),
            expected,
            "the dump's path {len} scopes deep"
        );
    }
}

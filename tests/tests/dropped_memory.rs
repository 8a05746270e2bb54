//! A dropped scope frees its memory (its own and its children's tokio
//! tasks) as soon as its last child has ended, not a leak-grace window
//! later: in a server that drops scopes (a `select!`, a `timeout` around a
//! scope) what they hold would otherwise grow with drop rate × leak grace.
//!
//! Live heap bytes are counted by a global allocator wrapper, so this test
//! has a binary of its own.

use std::time::Duration;

use nursery::Nursery;
use tokio::sync::oneshot;

#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Bounds every wait for something that should end.
const BOUND: Duration = Duration::from_secs(30);

/// Opens `scopes` scopes with a leak grace of an hour, each with
/// `children` sleeping children, drops each once its children are
/// spawned, then waits until every child has ended and the tree is empty.
async fn drop_scopes(scopes: usize, children: usize) {
    for _ in 0..scopes {
        let (spawned_tx, spawned) = oneshot::channel();
        let scope = Nursery::builder()
            .leak_grace(Duration::from_secs(3600))
            .scope(|n: Nursery<()>| async move {
                for _ in 0..children {
                    n.spawn(async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    });
                }
                let _ = spawned_tx.send(());
                std::future::pending::<Result<(), ()>>().await
            });
        tokio::select! {
            _ = scope => unreachable!("the scope cannot return"),
            _ = spawned => {} // dropped here: its children are aborted
        }
    }
    let metrics = tokio::runtime::Handle::current().metrics();
    let settled = async {
        while !nursery::dump().is_empty() || metrics.num_alive_tasks() != 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(BOUND, settled)
        .await
        .expect("the dropped scopes' children never ended");
}

/// Drops `scopes` scopes of `children` children twice, and returns the
/// heap bytes per dropped scope still held after the second round, once
/// every child has ended.
fn held_per_dropped_scope(scopes: usize, children: usize) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        // A first round grows what grows once (the runtime's tables, the
        // tree's lists, the leak watcher's queue); the second is measured.
        drop_scopes(scopes, children).await;
        let before = ALLOCATOR.allocated();
        drop_scopes(scopes, children).await;
        // A large list of a dropped scope's tasks is freed on the leak
        // watcher's thread: wait (bounded) for the level to come down.
        let held = || ALLOCATOR.allocated().saturating_sub(before) / scopes;
        let give_up = std::time::Instant::now() + BOUND;
        while held() >= MAX_HELD && std::time::Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        held()
    })
}

/// What may stay of a dropped scope until its leak grace ends: the leak
/// watcher's note to check on it, a few dozen bytes, and for the few
/// notes of ended scopes not purged yet, the scope's own allocation. (A
/// dropped scope with ten tasks takes several KiB while alive.)
const MAX_HELD: usize = 256;

#[test]
fn dropped_scopes_free_their_memory_once_their_children_have_ended() {
    // Few children: freed where the last one ends.
    let held = held_per_dropped_scope(1_000, 10);
    assert!(
        held < MAX_HELD,
        "{held} bytes still held per dropped scope of 10 children, an hour before the leak grace ends"
    );
    // Many: freed on the leak watcher's thread.
    let held = held_per_dropped_scope(200, 100);
    assert!(
        held < MAX_HELD,
        "{held} bytes still held per dropped scope of 100 children, an hour before the leak grace ends"
    );
}

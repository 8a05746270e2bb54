//! Stack per level of nesting: scopes nested in bodies against a plain
//! recursive boxed future.
//!
//! A scope's body runs inline, polled by the scope future: a scope opened
//! in the body of another (awaited there, boxed to allow the recursion)
//! puts one scope future's poll frame, and the body's, on the stack per
//! level, as any recursive future does. Each level records the address of
//! a local in a frame called from its body's poll; the difference between
//! two levels is the stack they take, exactly (it is no timing). Debug
//! builds have frames of their own sizes: the figures are for release.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use nursery::Nursery;

/// Levels measured: deep enough that the ends weigh nothing, shallow
/// enough for any build on the stack the measurement runs on.
const LEVELS: usize = 200;

/// The addresses recorded, one per level (0 until the level is polled).
type Marks = Arc<Vec<AtomicUsize>>;

fn marks(levels: usize) -> Marks {
    Arc::new((0..=levels).map(|_| AtomicUsize::new(0)).collect())
}

/// The address of a local in a frame of its own, called from the caller's:
/// where the caller's frame ends, give or take a constant.
#[inline(never)]
fn stack_address() -> usize {
    let marker = 0u8;
    std::hint::black_box(std::ptr::addr_of!(marker)) as usize
}

/// Records this level's stack address, on its first poll.
fn mark(marks: &Marks, depth: usize) {
    let _ = marks[depth].compare_exchange(0, stack_address(), Relaxed, Relaxed);
}

type Boxed<T> = Pin<Box<dyn Future<Output = T>>>;

/// The reference: a recursive `async` block, boxed.
fn plain(depth: usize, marks: Marks) -> Boxed<()> {
    Box::pin(async move {
        mark(&marks, depth);
        if depth > 0 {
            plain(depth - 1, marks).await;
        }
    })
}

/// A scope in the body of the last, and nothing else in the body.
fn scopes(depth: usize, marks: Marks) -> Boxed<Result<(), nursery::Error<()>>> {
    Box::pin(nursery::scope(move |_: Nursery<()>| async move {
        mark(&marks, depth);
        if depth == 0 {
            return Ok(());
        }
        scopes(depth - 1, marks).await.map_err(|_| ())
    }))
}

/// A scope in the body of the last, spawning a child first, as `soak.rs`'s
/// `nest_in_bodies`.
fn spawning(depth: usize, marks: Marks) -> Boxed<Result<(), nursery::Error<()>>> {
    Box::pin(nursery::scope(move |n: Nursery<()>| async move {
        n.spawn(async { Ok(()) });
        mark(&marks, depth);
        if depth == 0 {
            return Ok(());
        }
        spawning(depth - 1, marks).await.map_err(|_| ())
    }))
}

/// Stack bytes per level of `nest`, nested `LEVELS` deep, on a
/// current-thread runtime on a thread of its own with room to spare. The
/// outer and innermost ten levels are left out of the difference.
fn per_level<F, Fut>(nest: F) -> usize
where
    F: FnOnce(usize, Marks) -> Fut + Send + 'static,
    Fut: Future,
{
    std::thread::Builder::new()
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let marks = marks(LEVELS);
            rt.block_on(nest(LEVELS, marks.clone()));
            let outer = marks[LEVELS - 10].load(Relaxed);
            let inner = marks[10].load(Relaxed);
            assert!(outer != 0 && inner != 0, "a level was never polled");
            // The stack grows down: the inner levels sit lower.
            (outer - inner) / (LEVELS - 20)
        })
        .unwrap()
        .join()
        .unwrap()
}

fn plain_per_level() -> usize {
    per_level(plain)
}

fn scope_per_level() -> usize {
    per_level(|depth, marks| async move { scopes(depth, marks).await.unwrap() })
}

fn spawning_per_level() -> usize {
    per_level(|depth, marks| async move { spawning(depth, marks).await.unwrap() })
}

/// A scope nested in a body takes at most four times the stack per level
/// of a plain recursive boxed future, with or without a child spawned at
/// each level (about 290 and 300 bytes against 96 when this was written).
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "debug builds have frames of other sizes: the bound is for release builds"
)]
fn a_scope_nested_in_a_body_takes_at_most_four_times_the_stack_of_plain_recursion() {
    let plain = plain_per_level();
    let scope = scope_per_level();
    let spawning = spawning_per_level();
    let ratio = |bytes: usize| bytes as f64 / plain as f64;
    println!("plain boxed recursion: {plain} B per level");
    println!(
        "scope in a body: {scope} B per level ({:.2}x)",
        ratio(scope)
    );
    println!(
        "scope in a body, spawning a child: {spawning} B per level ({:.2}x)",
        ratio(spawning)
    );
    for (bytes, what) in [(scope, ""), (spawning, ", spawning a child,")] {
        assert!(
            bytes <= 4 * plain,
            "a scope nested in a body{what} takes {bytes} bytes of stack per level, \
             over four times the {plain} of plain recursion"
        );
    }
}

/// Three thousand scopes, each in the body of the last and each spawning a
/// child, on a current-thread runtime on a thread with a 2 MiB stack (a
/// tokio worker's default): about half of that stack, in release builds.
/// An overflow aborts the whole test binary.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "debug builds have frames several times larger: the depth is for release builds"
)]
fn three_thousand_scopes_nested_in_bodies_fit_in_two_mebibytes_of_stack() {
    const DEPTH: usize = 3_000;
    let (levels, alive) = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let marks = marks(DEPTH);
            let alive = rt.block_on(async {
                spawning(DEPTH, marks.clone()).await.unwrap();
                nursery_tests::settled_alive_tasks()
            });
            let levels = marks.iter().filter(|mark| mark.load(Relaxed) != 0).count();
            (levels, alive)
        })
        .unwrap()
        .join()
        .expect("the nested scopes panicked");
    assert_eq!(levels, DEPTH + 1, "every level ran its body");
    assert_eq!(alive, 0, "tasks left on the runtime");
}

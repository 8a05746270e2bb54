//! Structured concurrency for tokio: every task has an owner, and no owner
//! returns before its tasks have finished or been cancelled.
//!
//! A *scope* (a nursery, after Trio) runs a body and the children it
//! spawns. When [`scope`] returns, every child has terminated. The first
//! error cancels the rest and is returned, no later error is lost, panics
//! are re-raised, deadlines and cancellation flow down nested scopes, and
//! dropping a scope aborts its children.
//!
//! ```
//! use std::time::Duration;
//!
//! # #[tokio::main] async fn main() {
//! let sizes = nursery::Nursery::builder()
//!     .limit(4)                           // at most 4 children at once
//!     .timeout(Duration::from_secs(10))   // then everything is cancelled
//!     .scope(|n| async move {
//!         let handles: Vec<_> = (1..=8u64)
//!             .map(|i| n.spawn(async move { Ok::<_, std::io::Error>(i * i) }))
//!             .collect();
//!         let mut sizes = Vec::new();
//!         for handle in handles {
//!             sizes.push(handle.await.map_err(std::io::Error::other)?);
//!         }
//!         Ok(sizes)
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(sizes, [1, 4, 9, 16, 25, 36, 49, 64]);
//! # }
//! ```
//!
//! # Guarantees
//!
//! Every scope keeps these, whatever its children do; each has a test file
//! named after it in `tests/tests/` (`g1_join.rs` …).
//!
//! - **G1 join.** [`scope`] returns only after every child spawned into it
//!   has terminated: its future completed, or was dropped after
//!   cancellation. Children may spawn siblings while the scope is open. The
//!   join is transitive: a scope opened in a child that is aborted cannot
//!   wait, so its parent waits for that scope's children instead. Nothing
//!   of a scope's subtree is alive when it returns.
//! - **G2 fail-fast.** The first error, from a child or the body, cancels
//!   the body and every other child, and is returned after the join; later
//!   errors are kept as `suppressed` (up to
//!   [`max_suppressed`](Builder::max_suppressed), the rest counted). With
//!   [`collect_errors`](Builder::collect_errors) nothing is cancelled and
//!   every error is returned. No error is dropped silently.
//! - **G3 panics.** A child's panic cancels the rest like an error; after
//!   the join the scope re-raises the original payload. A panic under a
//!   dropped scope is re-raised by the nearest enclosing scope still
//!   running, or reported as a lost panic ([`Leak::panic`]).
//! - **G4 hierarchy.** A scope opened inside a child or body of another is
//!   its child: cancelling the outer cancels the inner, and deadlines nest
//!   (the earliest wins). No token is passed by hand.
//! - **G5 deadline.** A [`timeout`](Builder::timeout) or
//!   [`deadline`](Builder::deadline) cancels everything when reached, and
//!   the scope returns [`Error::TimedOut`], told apart from an outside
//!   cancel ([`Error::Cancelled`]).
//! - **G6 graceful cancellation.** On cancel the scope's token fires
//!   first; children get the [`grace`](Builder::grace) period (zero by
//!   default) to finish by themselves, then are aborted.
//! - **G7 drop.** Dropping an unfinished scope future aborts every child
//!   at once and starts no queued one; children still alive a
//!   [`leak_grace`](Builder::leak_grace) later are reported as [`Leak`]s.
//!   Dropping never blocks.
//! - **G8 limits.** At most [`limit`](Builder::limit) children (or that
//!   much weight) run at once; more queue in FIFO order without a tokio
//!   task each, or are handed back by
//!   [`try_spawn`](Nursery::try_spawn).
//! - **G9 self-cancel.** [`Nursery::cancel`] stops the children, not the
//!   body: the scope returns the body's own result. A deadline or an
//!   outside cancel still interrupts the body.
//!
//! Inside a child or body, [`cancelled`], [`cause`], [`check`] and
//! [`deadline`] speak of the current scope, the way Go code asks its `ctx`;
//! [`Nursery::stats`] counts what a scope's children did. [`shield`] lets
//! cleanup run to its end through a cancel, and
//! [`Nursery::set_deadline`] moves a running scope's deadline. Beyond
//! "all" ([`map`]) and "first" ([`race`]): [`quorum`] waits for the first
//! `k` of `n`, [`hedge`] starts a backup attempt when the first is slow.
//!
//! # Children that borrow
//!
//! A [`Nursery`]'s children are `Send + 'static` tokio tasks that run in
//! parallel. A scope opened with [`scope_local`] also gets a [`Local`]
//! handle, whose children may borrow anything that outlives the call: they
//! run on the scope's own task, polled by its future, beside the parallel
//! ones and under the same guarantees, without `unsafe`.
//!
//! # Cargo features
//!
//! - `macros` (on by default): the attributes `#[nursery(..)]`, which runs
//!   an `async fn` in a scope of its own, and `#[nursery::test]`, a test on
//!   a fresh runtime with a leak check. They come from `nursery-macros`,
//!   which compiles `syn`; a library that never writes them can turn the
//!   feature off (`default-features = false`) and keep `syn` out of its
//!   users' builds.
//! - `serde` (off by default): [`Dump`], [`ScopeSnapshot`] and
//!   [`TaskSnapshot`] implement `Serialize`, one schema versioned by a
//!   field: `{"schema": "nursery.dump", "version": 1, "scopes": [..]}`,
//!   scopes nested as in the dump (each scope: `kind`, `name`,
//!   `location`, `age_ns`, `state`, `tasks`, `scopes`; each task: `kind`,
//!   `name`, `location`, `age_ns`, `state`, `local`, `blocking`,
//!   `scope_path`, `trace`, `scopes`; and the dump's `await_points`).
//!   Nesting stops at 32 levels, as the text does: below that, a scope or
//!   task lists what is under it in `deeper`, flat, each with its `depth`,
//!   so any depth serializes in the same call stack.
//! - `taskdump` (off by default): where each child waits. Built also with
//!   `RUSTFLAGS="--cfg tokio_unstable"`, on Linux (x86, x86_64, aarch64,
//!   s390x), [`dump_traced`], [`Stuck`] reports and tests that run out of
//!   time give every live child its await-point trace
//!   ([`TaskSnapshot::trace`]) from tokio's task dumps, matched by tokio
//!   task id. It costs nothing until a trace is taken; see [`dump_traced`]
//!   for what taking one costs. Without it, they say how to turn it on.
//! - `tracing` (off by default): every scope runs in a `nursery.scope` span
//!   and every child in a `nursery.task` span parented to its scope's, so a
//!   subscriber sees the real tree of scopes and tasks across worker
//!   threads; events say when a scope is cancelled (and why), a child fails
//!   or panics, or a leak is found.
//!
//! Built with `RUSTFLAGS="--cfg tokio_unstable"`, children are spawned
//! through tokio's task builder with their names, so tokio-console shows
//! them by name (see the README).

// The other lints (`unsafe_code` forbidden among them) are the workspace's,
// in its Cargo.toml; documentation is required of this crate alone.
#![deny(missing_docs)]

// The modules in layers, each importing only from those above it (checked
// by `tests/tests/layers.rs`; drawn in `docs/architecture.md`).
mod clock;
mod sync;
mod timer;

mod id;

mod core;

mod cause;
mod error;
mod leak;
mod snapshot;
mod stats;
mod stuck;

mod scope;

mod context;
mod shield;

mod local;
#[cfg(feature = "tracing")]
mod observe;
mod task;

mod dump;

mod builder;
mod glue;
mod nursery;
mod run;

mod bulk;
mod pipeline;
mod policy;
pub mod testing;

#[cfg(all(test, not(nursery_loom)))]
mod tests;

pub use crate::builder::{Builder, scope, scope_local};
pub use crate::bulk::{MapUnordered, for_each, map, map_unordered, race};
pub use crate::cause::Cause;
pub use crate::context::{cancelled, cause, check, deadline};
pub use crate::dump::{dump, dump_traced};
pub use crate::error::{Error, Interrupted, JoinError, SpawnError};
pub use crate::leak::{Leak, set_leak_hook};
pub use crate::local::{Local, LocalHandle};
pub use crate::nursery::{Nursery, Ready};
pub use crate::pipeline::Pipeline;
pub use crate::policy::{hedge, quorum};
pub use crate::shield::shield;
pub use crate::snapshot::{AwaitPoints, Dump, ScopeSnapshot, ScopeState, TaskSnapshot, TaskState};
pub use crate::stats::Stats;
pub use crate::stuck::{Stuck, set_stuck_hook};
pub use crate::task::TaskHandle;
// `#[nursery(..)]` and `#[nursery::test]`. Their docs are written in
// `nursery-macros`: a doc comment here would be put in front of them. The
// attribute shares the crate's name but lives in the macro namespace, so
// `use nursery::nursery;` brings in the attribute alone.
#[cfg(feature = "macros")]
pub use nursery_macros::{nursery, test};

/// What the macros' expansions call. Not part of the API: it changes
/// whenever the macros do, which are pinned to this exact version.
#[cfg(feature = "macros")]
#[doc(hidden)]
pub mod __private {
    pub use crate::glue::{ReturnsResult, returns, run_scope};
    pub use crate::nursery::Nursery;
    pub use crate::testing::run_test;
    pub use tokio;
}

/// The scope's shared core, for the loom models in `nursery-tests`. Built
/// only with `RUSTFLAGS="--cfg nursery_loom"`; not part of the API.
#[cfg(nursery_loom)]
#[doc(hidden)]
pub mod __loom {
    pub use crate::core::limiter::{Admission, Job, Limiter, Rate};
    pub use crate::core::local::{Notes, Signals, Wakeup};
    pub use crate::core::shield::Shields;
    pub use crate::core::{Cancelling, Core, Outcome, Payload, Reason, Refusal};
}

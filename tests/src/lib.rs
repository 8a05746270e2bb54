//! Shared helpers for the integration tests and benchmarks of `nursery`.
//!
//! The tests themselves live in `tests/tests/`, one file per guarantee or
//! feature; the benchmarks against the peers in `tests/benches/`. The
//! helpers are grouped by concept, and all re-exported here:
//!
//! - `bounds`: bounded waits ([`within`]), so a hang fails its test;
//! - `drops`: what was dropped and when ([`DropCounter`], [`Tracker`]);
//! - `gates`: ordering steps across tasks and threads ([`Latch`],
//!   [`Rendezvous`], [`HighWater`]);
//! - `panics`: payloads and panic sites;
//! - `leaks`: leak logs, dump text and the runtime's task count.

#![forbid(unsafe_code)]

mod bounds;
mod drops;
mod gates;
mod leaks;
mod panics;

pub use crate::bounds::*;
pub use crate::drops::*;
pub use crate::gates::*;
pub use crate::leaks::*;
pub use crate::panics::*;

/// Every Rust code block of the guide (`docs/src/*.md`) and of `README.md`,
/// run by `cargo test -p nursery-tests --doc` (and `cargo test --workspace`)
/// so that the documentation cannot drift from the code.
#[cfg(doctest)]
pub mod guide {
    #[doc = include_str!("../../README.md")]
    pub mod readme {}
    #[doc = include_str!("../../docs/src/why.md")]
    pub mod why {}
    #[doc = include_str!("../../docs/src/scopes.md")]
    pub mod scopes {}
    #[doc = include_str!("../../docs/src/errors.md")]
    pub mod errors {}
    #[doc = include_str!("../../docs/src/cancellation.md")]
    pub mod cancellation {}
    #[doc = include_str!("../../docs/src/limits.md")]
    pub mod limits {}
    #[doc = include_str!("../../docs/src/fan_out.md")]
    pub mod fan_out {}
    #[doc = include_str!("../../docs/src/borrowing.md")]
    pub mod borrowing {}
    #[doc = include_str!("../../docs/src/testing.md")]
    pub mod testing {}
    #[doc = include_str!("../../docs/src/macros.md")]
    pub mod macros {}
    #[doc = include_str!("../../docs/src/observability.md")]
    pub mod observability {}
    #[doc = include_str!("../../docs/src/performance.md")]
    pub mod performance {}
    #[doc = include_str!("../../docs/src/comparison.md")]
    pub mod comparison {}
    #[doc = include_str!("../../docs/src/from_go.md")]
    pub mod from_go {}
}

//! Attribute macros for the `nursery` crate: `#[nursery]` and
//! `#[nursery::test]`. Use them through `nursery`, which re-exports them.
//!
//! The macros arrive with the macros issue; this crate holds the place in the
//! workspace so that `nursery` can pin it by exact version from the start.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

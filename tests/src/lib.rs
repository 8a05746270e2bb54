//! Shared helpers for the integration tests and benchmarks of `nursery`.
//!
//! The tests themselves live in `tests/tests/`, one file per guarantee or
//! feature; the benchmarks against the peers in `tests/benches/`.

#![forbid(unsafe_code)]

//! Compile-pass and compile-fail cases for the `nursery` macros live in
//! `tests/ui/`; this library is empty.

#![forbid(unsafe_code)]

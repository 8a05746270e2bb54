//! Attribute macros for the `nursery` crate: `#[nursery::test]` (and
//! `#[nursery]` to come). Use them through `nursery`, which re-exports
//! them; this crate is pinned to the exact version of `nursery`, and its
//! expansions call nothing of `nursery` but its hidden `__private` module.
//!
//! Parsing of the options lives in `args`, code generation in `expand`.

#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![forbid(unsafe_code)]

mod args;
mod expand;

use proc_macro::TokenStream;

/// Runs an `async fn` test on a fresh tokio runtime, inside a root scope,
/// and fails it if any task it started outlives it.
///
/// The function becomes a plain `#[test]` that builds a runtime (a
/// `current_thread` one unless told otherwise, as with `#[tokio::test]`),
/// runs the body there as the body of a root scope, then checks for leaks:
/// it waits up to a grace window for the tasks the test started to end,
/// and fails naming every task still alive, with its spawn location and
/// scope. Inside the body, `nursery::check()`, `nursery::cancelled()` and
/// `nursery::deadline()` speak of that root scope, which has no deadline.
///
/// The rest of the function is kept: its visibility, its return type (so
/// `-> Result<(), E>` with `?` works, as with `#[test]`) and its other
/// attributes, such as `#[should_panic]`, `#[ignore]` or `#[cfg(..)]`. A
/// panic in the body, or in a task it spawned into a scope, fails the test
/// with the original payload.
///
/// # Options
///
/// All optional, in any order: `#[nursery::test(flavor = "multi_thread",
/// worker_threads = 2, leak_grace = "200ms")]`.
///
/// - `flavor = "current_thread"` (the default) or `"multi_thread"`: the
///   runtime's flavor. `multi_thread` needs the `rt-multi-thread` feature
///   of tokio in your own dependencies, as for `#[tokio::test]`; the
///   runtime has every driver your tokio's features provide (`enable_all`).
/// - `worker_threads = N`: the number of worker threads (at least 1), only
///   with `flavor = "multi_thread"`. By default, one per CPU.
/// - `leak_grace = "200ms"`: how long the leak check waits for tasks to end
///   after the body has returned, before calling them leaks (default one
///   second); also the root scope's `leak_grace`, so scopes dropped during
///   the test report leaks after the same window. A whole number followed
///   by a unit:
///   `ns`, `us`, `ms`, `s`, `m` or `h`.
/// - `crate = "path"`: where `nursery` is, for crates that re-export it
///   under another name (default `::nursery`).
///
/// # Examples
///
/// ```
/// use nursery::Nursery;
///
/// #[nursery::test]
/// async fn children_finish_before_the_scope_returns() {
///     let sum = nursery::scope(|n: Nursery<std::io::Error>| async move {
///         let a = n.spawn(async { Ok(1) });
///         let b = n.spawn(async { Ok(2) });
///         Ok(a.await.unwrap() + b.await.unwrap())
///     })
///     .await
///     .unwrap();
///     assert_eq!(sum, 3);
/// }
///
/// #[nursery::test(flavor = "multi_thread", worker_threads = 2, leak_grace = "50ms")]
/// async fn parses() -> Result<(), std::num::ParseIntError> {
///     let n: u32 = "42".parse()?;
///     assert_eq!(n, 42);
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// Misuse is a compile error at the offending token, with the function
/// left as written so the rest of the crate still compiles: a missing
/// `async`, parameters, generics, a second test attribute, an unknown or
/// repeated option, a bad value, or `worker_threads` without
/// `flavor = "multi_thread"`:
///
/// ```compile_fail
/// #[nursery::test(worker_threads = 2)] // error: needs `flavor = "multi_thread"`
/// async fn sums() {}
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// #[nursery::test(leak_grace = "1.5s")] // error: expected a whole number followed by a unit
/// async fn sums() {}
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::test(args.into(), item.into()).into()
}

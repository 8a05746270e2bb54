//! Attribute macros for the `nursery` crate: `#[nursery(..)]` and
//! `#[nursery::test]`. Use them through `nursery`, which re-exports
//! them; this crate is pinned to the exact version of `nursery`, and its
//! expansions call nothing of `nursery` but its hidden `__private` module.
//! `nursery` depends on this crate only with its `macros` feature (on by
//! default).
//!
//! Parsing of the options lives in `args`, code generation in `expand`.

#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![forbid(unsafe_code)]

mod args;
mod expand;

use proc_macro::TokenStream;

/// Runs the body of an `async fn` in a scope with the given settings,
/// handing it the scope's [`Nursery`] as a parameter that callers never see.
///
/// ```
/// # use nursery::{Interrupted, Nursery};
/// # #[derive(Debug)] struct MyError;
/// # impl From<Interrupted> for MyError { fn from(_: Interrupted) -> MyError { MyError } }
/// # async fn fetch(_: String) -> Result<usize, MyError> { Ok(1) }
/// #[nursery::nursery(limit = 8, timeout = "5s")]
/// async fn crawl(n: Nursery<MyError>, urls: Vec<String>) -> Result<usize, MyError> {
///     let pages: Vec<_> = urls.into_iter().map(|url| n.spawn(fetch(url))).collect();
///     let mut total = 0;
///     for page in pages {
///         total += page.await.map_err(|_| MyError)?;
///     }
///     Ok(total)
/// }
/// // Callers see `async fn crawl(urls: Vec<String>) -> Result<usize, MyError>`.
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(crawl(vec!["a".into(), "b".into()]).await.unwrap(), 2);
/// # }
/// ```
///
/// The function keeps its name, visibility, attributes, docs, generics and
/// `where` clause, and its declared return type; only the `Nursery`
/// parameter is taken out of the signature. Calling the function opens the
/// scope (the `Builder` settings below, as with
/// `Nursery::builder()..scope(..)`), runs the body in it with the nursery
/// bound to the parameter's pattern, and returns once the body and every
/// child have finished: all of [`scope`]'s guarantees hold. The scope's
/// recorded location (in [`dump`] and leak reports) is the function's name.
///
/// The function must return `Result<T, E>`, under any name (`io::Result<T>`,
/// `anyhow::Result<T>`, an alias of your own), with
/// `E: From<`[`Interrupted`]`>`: the scope's error is handed back as the
/// function's own, the first failure as is and a timeout or outside
/// cancellation converted from `Interrupted::TimedOut` or
/// `Interrupted::Cancelled`. Errors suppressed
/// after the first are dropped; open the scope with
/// `Nursery::builder()..scope(..)` to see them.
///
/// # Where it goes
///
/// On free functions, inherent and trait-impl methods (`&self`,
/// `&mut self`, `self: Box<Self>`), generic functions, and functions taking
/// borrowed or `impl Trait` arguments. The body may borrow the arguments;
/// children are `'static` as always. The `Nursery` parameter is the one
/// whose type is `Nursery<E>` (under any path), with any pattern (`n`,
/// `mut n`, `_`); it may be left out when the body spawns nothing itself but
/// should run in a scope (a deadline for everything it awaits, say). It is
/// taken by value: as the only nursery, a `&Nursery<E>` or a tuple holding
/// one is refused, since callers would have to pass it (beside the scope's
/// own, a `&Nursery<E>` is an ordinary argument). A type alias of
/// `Nursery` is not recognised: the attribute sees tokens, not types.
///
/// Attributes expand from the top: write `#[nursery]` above
/// `#[tokio::main]`, `#[tokio::test]` and `#[nursery::test]`, so that it
/// sees the `async fn` before they turn it into a plain `fn`.
///
/// # Importing it
///
/// The crate and the attribute share a name: write `#[nursery::nursery(..)]`,
/// or import it once with `use nursery::nursery;` and write `#[nursery(..)]`.
/// The import brings only the attribute, so `nursery::Nursery` and other
/// paths through the crate keep working next to it:
///
/// ```
/// use nursery::{Interrupted, Nursery, nursery};
/// # #[derive(Debug)] struct MyError;
/// # impl From<Interrupted> for MyError { fn from(_: Interrupted) -> MyError { MyError } }
///
/// #[nursery(name = "sum")]
/// async fn sum(n: Nursery<MyError>, a: u32, b: u32) -> Result<u32, MyError> {
///     assert_eq!(n.name(), Some("sum"));
///     let a = n.spawn(async move { Ok(a) });
///     Ok(a.await.map_err(|_| MyError)? + b)
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # assert_eq!(sum(1, 2).await.unwrap(), 3);
/// # }
/// ```
///
/// # Options
///
/// All optional, in any order, each at most once:
/// `#[nursery(limit = 8, timeout = "5s", grace = "100ms", name = "crawl", collect_errors, rate = "100/s")]`.
/// Each sets the `Builder` method of the same name.
///
/// - `name = "crawl"`: the scope's name, for `n.name()`, error messages,
///   leak reports and dumps. Not empty.
/// - `limit = 8`: at most this many children run at once; the rest queue
///   (G8). At least 1.
/// - `timeout = "5s"`: cancel everything this long after the call; the
///   function then returns `E::from(Interrupted::TimedOut)`. `"0s"` is
///   allowed and cancels at once, as `Builder::timeout(Duration::ZERO)` does.
/// - `grace = "100ms"`: on cancellation, how long children get to finish by
///   themselves before they are aborted.
/// - `leak_grace = "1s"`: how long children of a dropped scope may take to
///   end before they are reported as leaks.
/// - `collect_errors`: a flag (also `collect_errors = true` or `false`):
///   failures do not cancel the rest, and the first one is returned once all
///   have finished.
/// - `max_suppressed = 100`: how many errors the scope holds behind the
///   first until it returns (`Builder::max_suppressed`). The function
///   returns the first error alone, so this bounds memory only: under
///   `collect_errors`, a flood of failures keeps at most this many.
/// - `rate = "100/s"`: at most N child starts per period: `"N/unit"` for one
///   unit (`"100/s"`, `"10/m"`) or `"N/duration"` (`"5/100ms"`); N at least 1.
/// - `crate = "path"`: where `nursery` is, for crates that re-export it
///   under another name (default `::nursery`). A path that does not lead
///   to nursery is an error at the string.
///
/// Durations are a whole number followed by a unit: `ns`, `us`, `ms`, `s`,
/// `m` (minutes) or `h`, as in `"200ms"`.
///
/// # Examples
///
/// Methods, borrowed arguments and generics:
///
/// ```
/// use nursery::{Interrupted, Nursery, nursery};
/// # #[derive(Debug)] struct MyError;
/// # impl From<Interrupted> for MyError { fn from(_: Interrupted) -> MyError { MyError } }
///
/// struct Index {
///     words: Vec<String>,
/// }
///
/// impl Index {
///     /// Counts the words of `text` that are in the index, in parallel.
///     #[nursery(limit = 4, timeout = "10s")]
///     pub async fn count(&self, n: Nursery<MyError>, text: &str) -> Result<usize, MyError> {
///         let handles: Vec<_> = text
///             .split_whitespace()
///             .map(|word| {
///                 let known = self.words.iter().any(|w| w == word);
///                 n.spawn(async move { Ok(usize::from(known)) })
///             })
///             .collect();
///         let mut count = 0;
///         for handle in handles {
///             count += handle.await.map_err(|_| MyError)?;
///         }
///         Ok(count)
///     }
/// }
///
/// #[nursery]
/// async fn total<I>(n: Nursery<MyError>, items: I) -> Result<u64, MyError>
/// where
///     I: IntoIterator<Item = u64>,
/// {
///     let handles: Vec<_> = items.into_iter().map(|i| n.spawn(async move { Ok(i) })).collect();
///     let mut sum = 0;
///     for handle in handles {
///         sum += handle.await.map_err(|_| MyError)?;
///     }
///     Ok(sum)
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let index = Index { words: vec!["scope".into(), "task".into()] };
/// assert_eq!(index.count("a scope owns each task").await.unwrap(), 2);
/// assert_eq!(total(1..=4).await.unwrap(), 10);
/// # }
/// ```
///
/// A timeout reaches the caller as its own error:
///
/// ```
/// use std::time::Duration;
/// use nursery::{Interrupted, Nursery, nursery};
///
/// #[derive(Debug, PartialEq)]
/// enum MyError {
///     Interrupted(Interrupted),
/// }
///
/// impl From<Interrupted> for MyError {
///     fn from(interrupted: Interrupted) -> MyError {
///         MyError::Interrupted(interrupted)
///     }
/// }
///
/// #[nursery(timeout = "10ms")]
/// async fn slow(n: Nursery<MyError>) -> Result<(), MyError> {
///     n.spawn(async {
///         tokio::time::sleep(Duration::from_secs(60)).await;
///         Ok(())
///     });
///     Ok(())
/// }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// assert_eq!(slow().await, Err(MyError::Interrupted(Interrupted::TimedOut)));
/// # }
/// ```
///
/// # Errors at compile time
///
/// Misuse is a compile error at the offending token: a missing `async`
/// (or `#[nursery]` below an attribute that has already expanded the
/// `async fn`), an unknown or repeated option (with the nearest known one
/// suggested), a bad value (`limit = 0`, `timeout = "5 s"`,
/// `rate = "0/s"`, `collect_errors = 3`), a second `Nursery` parameter or
/// a `&Nursery<E>` one, a second `#[nursery]`, a declaration without a
/// body, or a return type that is not a `Result` (refused by the type
/// checker, at the function's name, when it is a path such as
/// `Option<u32>`). Every error is reported at once, and the function is
/// still emitted as its callers will see it (without the `Nursery`
/// parameter, `async`), so calls to it compile and the rest of the crate
/// type-checks. A `Nursery<E>` parameter whose `E` is not the function's
/// error type is a type error at that parameter's type.
///
/// ```compile_fail
/// # use nursery::{Nursery, nursery};
/// # #[derive(Debug)] struct MyError;
/// # impl From<nursery::Interrupted> for MyError { fn from(_: nursery::Interrupted) -> MyError { MyError } }
/// #[nursery(limit = 0)] // error: `limit` must be at least 1
/// async fn crawl(n: Nursery<MyError>) -> Result<(), MyError> {
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # use nursery::{Nursery, nursery};
/// # #[derive(Debug)] struct MyError;
/// # impl From<nursery::Interrupted> for MyError { fn from(_: nursery::Interrupted) -> MyError { MyError } }
/// #[nursery]
/// async fn crawl(n: Nursery<MyError>) -> u32 { // error: must return a `Result<T, E>`
///     7
/// }
/// # fn main() {}
/// ```
///
/// [`Nursery`]: ../nursery/struct.Nursery.html
/// [`Interrupted`]: ../nursery/enum.Interrupted.html
/// [`scope`]: ../nursery/fn.scope.html
/// [`dump`]: ../nursery/fn.dump.html
#[proc_macro_attribute]
pub fn nursery(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::nursery(args.into(), item.into()).into()
}

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
/// - `timeout = "5s"`: if the body has not finished after this long (in
///   real time, whatever the test does with tokio's clock), the test fails
///   with a panic whose message is the live tree of the test's scopes:
///   every scope and child still running, with its name, spawn site, age
///   and state, and where each waits in a build with tokio's task dumps
///   (nursery's `taskdump` feature). Without it a hung test hangs. A body that blocks its
///   thread (a blocking call on the current-thread runtime) cannot be
///   interrupted.
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
/// Misuse is a compile error at the offending token, every one at once,
/// with the function left as written so the rest of the crate still
/// compiles: a missing `async`, parameters (with `#[nursery]` below, the
/// error says to write it above, so that it takes its parameter out
/// first), generics, a second test attribute, an unknown or repeated option
/// (with the nearest known one suggested), a bad value, or
/// `worker_threads` without `flavor = "multi_thread"`:
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

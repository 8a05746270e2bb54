//! What the `#[nursery]` expansion calls (the `macros` feature).
#![cfg(feature = "macros")]

use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::builder::Builder;
use crate::error::{Error, Interrupted};
use crate::nursery::Nursery;

/// Runs the body of a `#[nursery]` function in a scope built by `builder`,
/// turning the scope's error into the function's own. `returns` carries
/// the function's declared return type `R`, so `R` and its error type are
/// known before the body closure is checked. The scope's location is the
/// caller's: the span the expansion gives the call, in the user's function.
///
/// The body's output is `R` itself, not `Result<T, E>`, so that a declared
/// type that is no `Result` fails `R: ReturnsResult` only, with that
/// trait's message, and nothing else: every obligation on `R` is reported
/// at the call, where rustc shows the first and drops its duplicates.
#[doc(hidden)]
#[track_caller]
pub fn run_scope<F, Fut, R>(
    builder: Builder,
    returns: PhantomData<fn() -> R>,
    body: F,
) -> impl Future<Output = R>
where
    R: ReturnsResult,
    F: FnOnce(Nursery<R::Err>) -> Fut,
    Fut: Future<Output = R>,
{
    let _ = returns;
    let scope = builder.scope_at(
        move |nursery| IntoResult {
            future: body(nursery),
        },
        Location::caller(),
    );
    async move { R::from_result(scope.await.map_err(Error::into_error)) }
}

/// The marker `run_scope` takes: the declared return type `R`.
#[doc(hidden)]
pub fn returns<R>() -> PhantomData<fn() -> R> {
    PhantomData
}

/// The return types a `#[nursery]` function may declare: `Result<T, E>`
/// with `E: From<Interrupted>`, however it is spelt (`io::Result<T>`, an
/// alias of the user's). The attribute sees tokens, not types, so the type
/// checker decides, with this trait's message.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a `#[nursery]` function must return a `Result<T, E>` whose `E: From<nursery::Interrupted>`, not `{Self}`",
    label = "returns `{Self}`",
    note = "the function returns its scope's error as an `E`: a child's error as it is, a timeout or cancellation converted from `nursery::Interrupted`"
)]
pub trait ReturnsResult: Sized {
    /// The `T` of `Result<T, E>`.
    type Ok;
    /// The `E` of `Result<T, E>`: the scope's error type.
    type Err: From<Interrupted> + Send + 'static;

    /// The value as a `Result`.
    fn into_result(self) -> Result<Self::Ok, Self::Err>;

    /// The value from a `Result`.
    fn from_result(result: Result<Self::Ok, Self::Err>) -> Self;
}

impl<T, E> ReturnsResult for Result<T, E>
where
    E: From<Interrupted> + Send + 'static,
{
    type Ok = T;
    type Err = E;

    fn into_result(self) -> Result<T, E> {
        self
    }

    fn from_result(result: Result<T, E>) -> Self {
        result
    }
}

pin_project! {
    /// The body's future, with its output (a [`ReturnsResult`]) as the
    /// `Result` a scope's body returns.
    struct IntoResult<Fut> {
        #[pin]
        future: Fut,
    }
}

impl<Fut> Future for IntoResult<Fut>
where
    Fut: Future,
    Fut::Output: ReturnsResult,
{
    type Output = Result<<Fut::Output as ReturnsResult>::Ok, <Fut::Output as ReturnsResult>::Err>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .future
            .poll(cx)
            .map(ReturnsResult::into_result)
    }
}

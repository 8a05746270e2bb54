//! The `tracing` events of children (with the `tracing` feature): a child
//! failed, a child panicked. The spans themselves are made where scopes
//! open and children are spawned.
//!
//! A failure event carries the error's type name, and its `Display` text
//! when the type is one whose `Display` can be found without a bound (the
//! common error types, or the type named with `Builder::trace_errors`): the
//! scope's error type `E` is only `Send + 'static`, and adding `E: Display`
//! to every spawn under a feature would make the feature non-additive. See
//! `docs/decisions/0038-tracing-shows-an-error-s-display-by-downcast.md`.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt::Display;

use crate::error::Interrupted;
use crate::scope::DisplayError;

/// A child's `E` came back: `warn`, in the child's span. `display` is the
/// scope's [`Builder::trace_errors`](crate::Builder::trace_errors) setting.
pub(crate) fn child_failed<E: Any>(span: &tracing::Span, error: &E, display: Option<DisplayError>) {
    let text = display
        .and_then(|display| display(error))
        .or_else(|| known_display(error));
    tracing::warn!(
        parent: span,
        error = text.as_deref(),
        error.type = std::any::type_name::<E>(),
        "nursery: task failed"
    );
}

/// A child panicked: `error`, in the child's span, with the panic message
/// when it is text.
pub(crate) fn child_panicked(span: &tracing::Span, payload: &(dyn Any + Send)) {
    let message = payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    tracing::error!(parent: span, panic = message, "nursery: task panicked");
}

/// The `Display` text of `error` when its type is one of the common error
/// types whose `Display` is known here: text, `std::io::Error`, boxed
/// `std::error::Error`s and [`Interrupted`].
fn known_display<E: Any>(error: &E) -> Option<String> {
    let error: &dyn Any = error;
    fn text<T: Display + ?Sized>(value: &T) -> String {
        value.to_string()
    }
    if let Some(error) = error.downcast_ref::<String>() {
        return Some(error.clone());
    }
    if let Some(error) = error.downcast_ref::<&'static str>() {
        return Some((*error).to_owned());
    }
    if let Some(error) = error.downcast_ref::<std::io::Error>() {
        return Some(text(error));
    }
    if let Some(error) = error.downcast_ref::<Box<dyn StdError + Send + Sync>>() {
        return Some(text(error));
    }
    if let Some(error) = error.downcast_ref::<Box<dyn StdError + Send>>() {
        return Some(text(error));
    }
    if let Some(error) = error.downcast_ref::<Interrupted>() {
        return Some(text(error));
    }
    None
}

//! Docs, visibility and other attributes are kept, inner ones included,
//! and the future is `Send` when the body's is.
#![deny(warnings, missing_docs)]

use nursery::{Interrupted, Nursery};

/// An error.
#[derive(Debug, PartialEq)]
pub struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

/// Documented, public, inline, `must_use`.
#[inline]
#[must_use = "the future does nothing unless awaited"]
#[nursery::nursery(name = "kept")]
pub async fn kept(n: Nursery<MyError>) -> Result<&'static str, MyError> {
    #![allow(clippy::needless_return)]
    return Ok(n.name().map_or("", |_| "kept"));
}

mod inner {
    use super::*;

    #[nursery::nursery]
    pub(crate) async fn visible(_n: Nursery<MyError>) -> Result<u8, MyError> {
        Ok(1)
    }

    #[cfg(any())]
    #[nursery::nursery]
    pub(crate) async fn compiled_out(_n: Nursery<MyError>) -> Result<u8, MyError> {
        this_does_not_exist()
    }
}

#[deprecated = "kept"]
#[nursery::nursery]
async fn deprecated(_n: Nursery<MyError>) -> Result<(), MyError> {
    Ok(())
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(assert_send(kept()).await, Ok("kept"));
        assert_eq!(inner::visible().await, Ok(1));
        #[allow(deprecated)]
        let handle = tokio::spawn(deprecated());
        assert_eq!(handle.await.unwrap(), Ok(()));
    });
}

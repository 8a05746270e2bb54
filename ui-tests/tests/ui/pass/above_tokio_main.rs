//! `#[nursery]` written above `#[tokio::main]`: it expands first, taking
//! the `Nursery` parameter out of the `async fn`, and `#[tokio::main]` then
//! runs the scope on a runtime.
#![deny(warnings)]

use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::nursery(name = "main", timeout = "5s")]
#[tokio::main(flavor = "current_thread")]
async fn main(n: Nursery<MyError>) -> Result<(), MyError> {
    assert_eq!(n.name(), Some("main"));
    let child = n.spawn(async { Ok(2) });
    assert_eq!(child.await.map_err(|_| MyError)?, 2);
    Ok(())
}

use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

use std::future::Future;

#[nursery::nursery]
fn crawl(n: Nursery<MyError>) -> impl Future<Output = Result<(), MyError>> {
    async move {
        drop(n);
        Ok(())
    }
}

fn main() {}

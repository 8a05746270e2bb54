use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::nursery(limit = 99999999999999999999999)]
async fn crawl(n: Nursery<MyError>) -> Result<(), MyError> {
    drop(n);
    Ok(())
}

fn main() {}

use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::nursery(rate = "0/s")]
async fn crawl(n: Nursery<MyError>) -> Result<(), MyError> {
    drop(n);
    Ok(())
}

fn main() {}

use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::test]
#[nursery::nursery(timeout = "5s")]
async fn crawls(n: Nursery<MyError>) -> Result<(), MyError> {
    drop(n);
    Ok(())
}

fn main() {}

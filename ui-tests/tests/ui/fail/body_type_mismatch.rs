use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::nursery]
async fn crawl(n: Nursery<MyError>) -> Result<u32, MyError> {
    drop(n);
    Ok("seven")
}

fn main() {}

use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::nursery]
async fn crawl(n: Nursery<String>, urls: Vec<String>) -> Result<(), MyError> {
    drop((n, urls));
    Ok(())
}

fn main() {}

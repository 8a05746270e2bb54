use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::nursery(limit = 0, workers = 4, timeout = "5 s", name = "ok", rate = "0/s")]
async fn crawl(n: Nursery<MyError>) -> Result<(), MyError> {
    drop(n);
    Ok(())
}

fn main() {}

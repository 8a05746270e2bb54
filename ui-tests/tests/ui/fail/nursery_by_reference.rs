use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::nursery(name = "inner", limit = 1)]
async fn crawl(n: &Nursery<MyError>) -> Result<(), MyError> {
    drop(n);
    Ok(())
}

async fn caller() -> Result<(), MyError> {
    crawl().await
}

fn main() {
    drop(caller());
}

use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

/// `async` left out: the one error is at `fn`. Callers still `.await` the
/// function without passing a nursery, and get no errors of their own.
#[nursery::nursery(limit = 2)]
fn crawl(n: Nursery<MyError>, urls: Vec<String>) -> Result<usize, MyError> {
    drop(n);
    Ok(urls.len())
}

async fn caller() -> Result<usize, MyError> {
    crawl(vec!["a".into()]).await
}

fn main() {
    drop(caller());
}

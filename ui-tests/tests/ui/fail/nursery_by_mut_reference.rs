use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::nursery]
async fn crawl(urls: Vec<String>, n: &mut Nursery<MyError>) -> Result<(), MyError> {
    drop((n, urls));
    Ok(())
}

fn main() {}

use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

type Res<T> = Option<T>;

#[nursery::nursery]
async fn crawl(n: Nursery<MyError>) -> Res<u32> {
    drop(n);
    Some(1)
}

fn main() {}

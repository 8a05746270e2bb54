use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::nursery]
async fn crawl((n, depth): (Nursery<MyError>, u32)) -> Result<(), MyError> {
    drop((n, depth));
    Ok(())
}

fn main() {}

use nursery::Nursery;

#[derive(Debug)]
struct MyError;

#[nursery::nursery(timeout = "5s")]
async fn crawl(n: Nursery<MyError>) -> Result<(), MyError> {
    drop(n);
    Ok(())
}

fn main() {}

use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

trait Crawler {
    #[nursery::nursery]
    async fn crawl(&self, n: Nursery<MyError>, url: String) -> Result<usize, MyError>;
}

struct Site;

impl Crawler for Site {
    #[nursery::nursery]
    async fn crawl(&self, n: Nursery<MyError>, url: String) -> Result<usize, MyError> {
        n.spawn(async move { Ok(url.len()) }).await.map_err(|_| MyError)
    }
}

fn main() {}

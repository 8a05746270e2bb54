use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

/// The body, written for a `Result`, is still checked, with no error of
/// its own; callers see the function as declared.
#[nursery::nursery]
async fn crawl(n: Nursery<MyError>, url: String) {
    let len = n.spawn(async move { Ok(url.len()) }).await.map_err(|_| MyError)?;
    assert!(len > 0);
    Ok(())
}

async fn caller() {
    crawl("a".into()).await
}

fn main() {
    drop(caller());
}

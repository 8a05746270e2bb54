use nursery::{Interrupted, Nursery};

#[derive(Debug)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

/// A typo in an option: the one error is at the option. Callers see the
/// function as they will once it is fixed, and get no errors of their own.
#[nursery::nursery(limt = 8)]
async fn crawl(n: Nursery<MyError>, urls: Vec<String>) -> Result<usize, MyError> {
    let pages: Vec<_> = urls
        .into_iter()
        .map(|url| n.spawn(async move { Ok(url.len()) }))
        .collect();
    let mut total = 0;
    for page in pages {
        total += page.await.map_err(|_| MyError)?;
    }
    Ok(total)
}

async fn caller() -> Result<usize, MyError> {
    crawl(vec!["a".into()]).await
}

fn main() {
    drop(caller());
}

//! Every option but `rate` (see `rate.rs`), on a free function.
#![deny(warnings)]

use nursery::{Interrupted, Nursery};

#[derive(Debug, PartialEq)]
enum MyError {
    Interrupted(Interrupted),
    Child,
}

impl From<Interrupted> for MyError {
    fn from(interrupted: Interrupted) -> MyError {
        MyError::Interrupted(interrupted)
    }
}

#[nursery::nursery(
    limit = 8,
    timeout = "5s",
    grace = "100ms",
    leak_grace = "2s",
    name = "crawl",
    collect_errors,
    max_suppressed = 10,
    crate = "::nursery"
)]
async fn crawl(n: Nursery<MyError>, urls: Vec<u32>) -> Result<Vec<u32>, MyError> {
    assert_eq!(n.name(), Some("crawl"));
    let handles: Vec<_> = urls
        .into_iter()
        .map(|url| n.spawn(async move { Ok(url * 2) }))
        .collect();
    let mut pages = Vec::new();
    for handle in handles {
        pages.push(handle.await.map_err(|_| MyError::Child)?);
    }
    Ok(pages)
}

// The options in another order, and the flag spelt out.
#[nursery::nursery(collect_errors = true, name = "other", limit = 1)]
async fn other(n: Nursery<MyError>) -> Result<(), MyError> {
    assert_eq!(n.name(), Some("other"));
    Ok(())
}

#[nursery::nursery(collect_errors = false, timeout = "0s")]
async fn zero_timeout(n: Nursery<MyError>) -> Result<(), MyError> {
    n.spawn(std::future::pending::<Result<(), MyError>>());
    Ok(())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(crawl(vec![1, 2, 3]).await, Ok(vec![2, 4, 6]));
        assert_eq!(other().await, Ok(()));
        assert_eq!(
            zero_timeout().await,
            Err(MyError::Interrupted(Interrupted::TimedOut))
        );
    });
}

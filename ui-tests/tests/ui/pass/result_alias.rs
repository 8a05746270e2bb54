//! A `Result` under any name: the type checker, not the attribute, tells
//! whether the return type is one.
#![deny(warnings)]

use nursery::{Interrupted, Nursery};

#[derive(Debug, PartialEq)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

type Res<T> = Result<T, MyError>;
type Outcome = Result<u32, MyError>;

#[nursery::nursery(limit = 2)]
async fn doubled(n: Nursery<MyError>, x: u32) -> Res<u32> {
    n.spawn(async move { Ok(x * 2) }).await.map_err(|_| MyError)
}

#[nursery::nursery]
async fn counted(n: Nursery<MyError>) -> Outcome {
    Ok(n.live() as u32)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(doubled(2).await, Ok(4));
        assert_eq!(counted().await, Ok(0));
    });
}

//! `rate`, in each of its forms.
#![deny(warnings)]

use nursery::{Interrupted, Nursery};

#[derive(Debug, PartialEq)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

#[nursery::nursery(rate = "100/s")]
async fn per_unit(n: Nursery<MyError>) -> Result<u32, MyError> {
    n.spawn(async { Ok(1) }).await.map_err(|_| MyError)
}

#[nursery::nursery(rate = "5/100ms", limit = 2)]
async fn per_duration(n: Nursery<MyError>) -> Result<u32, MyError> {
    n.spawn(async { Ok(2) }).await.map_err(|_| MyError)
}

#[nursery::nursery(rate = "10/m")]
async fn per_minute(n: Nursery<MyError>) -> Result<u32, MyError> {
    n.spawn(async { Ok(3) }).await.map_err(|_| MyError)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(per_unit().await, Ok(1));
        assert_eq!(per_duration().await, Ok(2));
        assert_eq!(per_minute().await, Ok(3));
    });
}

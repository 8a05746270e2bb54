//! The attribute shares the crate's name: `use nursery::nursery;` imports
//! the attribute alone, next to `nursery::Nursery` and paths through the
//! crate.
#![deny(warnings)]

use nursery::nursery;
use nursery::Nursery;

#[derive(Debug, PartialEq)]
struct MyError;

impl From<nursery::Interrupted> for MyError {
    fn from(_: nursery::Interrupted) -> MyError {
        MyError
    }
}

#[nursery]
async fn bare(n: Nursery<MyError>) -> Result<usize, MyError> {
    Ok(n.live())
}

#[nursery(name = "imported")]
async fn named(n: nursery::Nursery<MyError>) -> Result<String, MyError> {
    let inner = nursery::scope(|inner: Nursery<MyError>| async move {
        Ok(inner.name().is_none())
    })
    .await
    .map_err(nursery::Error::into_error)?;
    assert!(inner);
    Ok(n.name().unwrap_or_default().to_owned())
}

#[nursery::nursery(name = "qualified")]
async fn qualified(n: Nursery<MyError>) -> Result<String, MyError> {
    Ok(n.name().unwrap_or_default().to_owned())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(bare().await, Ok(0));
        assert_eq!(named().await.as_deref(), Ok("imported"));
        assert_eq!(qualified().await.as_deref(), Ok("qualified"));
    });
}

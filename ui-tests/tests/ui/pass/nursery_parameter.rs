//! The `Nursery` parameter: any pattern, any position, any path to the
//! type, or none at all.
#![deny(warnings)]

use nursery::{Interrupted, Nursery};

#[derive(Debug, PartialEq)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

/// No `Nursery` parameter: the body still runs in the configured scope.
#[nursery::nursery(name = "absent")]
async fn absent(x: u32) -> Result<u32, MyError> {
    nursery::check()?;
    Ok(x + 1)
}

#[nursery::nursery]
async fn underscore(_: Nursery<MyError>, x: u32) -> Result<u32, MyError> {
    Ok(x + 2)
}

#[nursery::nursery]
async fn mutable(mut n: Nursery<MyError>, x: u32) -> Result<u32, MyError> {
    let clone = n.clone();
    n = clone;
    n.spawn(async move { Ok(x + 3) }).await.map_err(|_| MyError)
}

#[nursery::nursery]
async fn in_the_middle(a: u32, n: ::nursery::Nursery<MyError>, b: u32) -> Result<u32, MyError> {
    n.spawn(async move { Ok(a + b) }).await.map_err(|_| MyError)
}

#[nursery::nursery]
async fn with_attributes(#[allow(unused_variables)] n: Nursery<MyError>) -> Result<(), MyError> {
    Ok(())
}

/// Parameters named like the expansion's own bindings (`nursery`,
/// `returned`) are the user's: those bindings are hygienic.
#[nursery::nursery]
async fn same_names(nursery: Nursery<MyError>, returned: u32) -> Result<u32, MyError> {
    nursery.spawn(async move { Ok(returned) }).await.map_err(|_| MyError)
}

/// Beside the scope's own `Nursery`, a reference to one is an ordinary
/// argument: here the caller's, to spawn into.
#[nursery::nursery(name = "inner")]
async fn with_the_caller_s(n: Nursery<MyError>, outer: &Nursery<MyError>) -> Result<bool, MyError> {
    Ok(n.name() == Some("inner") && outer.name() == Some("outer"))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(absent(1).await, Ok(2));
        assert_eq!(underscore(1).await, Ok(3));
        assert_eq!(mutable(1).await, Ok(4));
        assert_eq!(in_the_middle(2, 3).await, Ok(5));
        assert_eq!(with_attributes().await, Ok(()));
        assert_eq!(same_names(6).await, Ok(6));
        let outer = nursery::Nursery::builder()
            .name("outer")
            .scope(|outer: Nursery<MyError>| async move { with_the_caller_s(&outer).await })
            .await;
        assert_eq!(outer, Ok(true));
    });
}

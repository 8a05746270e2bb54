//! Generic functions with `where` clauses, `impl Trait` and borrowed
//! arguments, borrowed and `impl Trait` results, and `Result` aliases.
#![deny(warnings)]

use std::fmt::Display;

use nursery::{Interrupted, Nursery};

#[derive(Debug, PartialEq)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

type Result<T> = std::result::Result<T, MyError>;

mod errors {
    pub(crate) type Result<T, E = super::MyError> = std::result::Result<T, E>;
}

#[nursery::nursery(limit = 2)]
async fn sum_all<I, T>(n: Nursery<MyError>, items: I) -> Result<T>
where
    I: IntoIterator<Item = T>,
    T: std::iter::Sum<T> + Send + 'static,
{
    let handles: Vec<_> = items
        .into_iter()
        .map(|item| n.spawn(async move { Ok(item) }))
        .collect();
    let mut values = Vec::new();
    for handle in handles {
        values.push(handle.await.map_err(|_| MyError)?);
    }
    Ok(values.into_iter().sum())
}

#[nursery::nursery]
async fn lengths(
    n: Nursery<MyError>,
    words: impl IntoIterator<Item = impl AsRef<str>>,
) -> errors::Result<Vec<usize>> {
    let handles: Vec<_> = words
        .into_iter()
        .map(|word| {
            let len = word.as_ref().len();
            n.spawn(async move { Ok(len) })
        })
        .collect();
    let mut lengths = Vec::new();
    for handle in handles {
        lengths.push(handle.await.map_err(|_| MyError)?);
    }
    Ok(lengths)
}

/// The body borrows the arguments; the children get owned copies.
#[nursery::nursery]
async fn longest<'a>(
    n: Nursery<MyError>,
    words: &'a [String],
    out: &mut Vec<usize>,
) -> std::result::Result<&'a str, MyError> {
    for word in words {
        let len = word.len();
        out.push(n.spawn(async move { Ok(len) }).await.map_err(|_| MyError)?);
    }
    words
        .iter()
        .max_by_key(|word| word.len())
        .map(String::as_str)
        .ok_or(MyError)
}

/// An elided lifetime in the result.
#[nursery::nursery]
async fn first(_n: Nursery<MyError>, text: &str) -> Result<&str> {
    text.split_whitespace().next().ok_or(MyError)
}

#[nursery::nursery]
async fn shown(n: Nursery<MyError>, value: u32) -> Result<impl Display + use<>> {
    let doubled = n.spawn(async move { Ok(value * 2) }).await.map_err(|_| MyError)?;
    Ok(format!("<{doubled}>"))
}

#[nursery::nursery]
async fn parsed(_n: Nursery<MyError>, text: &str) -> std::result::Result<u32, MyError> {
    // `?` converts through `From`, as in the function itself.
    let value: u32 = text.parse().map_err(|_| MyError)?;
    if value == 0 {
        return Err(MyError);
    }
    Ok(value)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(sum_all(1..=4u64).await, Ok(10));
        assert_eq!(lengths(["a", "bb"]).await, Ok(vec![1, 2]));
        let words = vec!["structured".to_owned(), "concurrency".to_owned()];
        let mut out = Vec::new();
        assert_eq!(longest(&words, &mut out).await, Ok("concurrency"));
        assert_eq!(out, [10, 11]);
        assert_eq!(first("a b").await, Ok("a"));
        assert_eq!(shown(4).await.unwrap().to_string(), "<8>");
        assert_eq!(parsed("3").await, Ok(3));
        assert_eq!(parsed("0").await, Err(MyError));
    });
}

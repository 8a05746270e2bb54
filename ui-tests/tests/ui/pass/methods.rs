//! Inherent, trait-impl and default trait methods, with every kind of
//! receiver.
#![deny(warnings)]

use nursery::{Interrupted, Nursery};

#[derive(Debug, PartialEq)]
struct MyError;

impl From<Interrupted> for MyError {
    fn from(_: Interrupted) -> MyError {
        MyError
    }
}

struct Counter {
    count: u32,
}

impl Counter {
    #[nursery::nursery(name = "get")]
    async fn get(&self, n: Nursery<MyError>) -> Result<u32, MyError> {
        let count = self.count;
        n.spawn(async move { Ok(count) }).await.map_err(|_| MyError)
    }

    #[nursery::nursery]
    async fn add(&mut self, n: Nursery<MyError>, by: u32) -> Result<(), MyError> {
        self.count += n.spawn(async move { Ok(by) }).await.map_err(|_| MyError)?;
        Ok(())
    }

    #[nursery::nursery]
    async fn boxed(self: Box<Self>, n: Nursery<MyError>) -> Result<u32, MyError> {
        let count = self.count;
        n.spawn(async move { Ok(count) }).await.map_err(|_| MyError)
    }

    #[nursery::nursery]
    async fn into_count(mut self, n: Nursery<MyError>) -> Result<u32, MyError> {
        self.count *= 2;
        let count = self.count;
        n.spawn(async move { Ok(count) }).await.map_err(|_| MyError)
    }

    #[nursery::nursery]
    async fn associated(n: Nursery<MyError>) -> Result<Self, MyError> {
        let count = n.spawn(async { Ok(7) }).await.map_err(|_| MyError)?;
        Ok(Self { count })
    }
}

trait Source {
    type Error;

    async fn fetch(&self, key: &str) -> Result<usize, Self::Error>;

    /// A default method, with its body in the trait.
    #[nursery::nursery(name = "default")]
    async fn doubled(&self, n: Nursery<MyError>, key: &str) -> Result<usize, MyError> {
        assert_eq!(n.name(), Some("default"));
        let len = key.len();
        n.spawn(async move { Ok(len * 2) }).await.map_err(|_| MyError)
    }
}

impl Source for Counter {
    type Error = MyError;

    #[nursery::nursery(limit = 2)]
    async fn fetch(&self, n: Nursery<Self::Error>, key: &str) -> Result<usize, Self::Error> {
        let len = key.len() + self.count as usize;
        n.spawn(async move { Ok(len) }).await.map_err(|_| MyError)
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut counter = Counter { count: 1 };
        assert_eq!(counter.get().await, Ok(1));
        counter.add(2).await.unwrap();
        assert_eq!(counter.get().await, Ok(3));
        assert_eq!(counter.fetch("key").await, Ok(6));
        assert_eq!(counter.doubled("key").await, Ok(6));
        assert_eq!(Box::new(Counter { count: 4 }).boxed().await, Ok(4));
        assert_eq!(counter.into_count().await, Ok(6));
        assert_eq!(Counter::associated().await.map(|c| c.count), Ok(7));
    });
}

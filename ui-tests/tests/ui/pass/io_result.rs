//! `io::Result<T>` as the return type: nursery converts `Interrupted` into
//! an `io::Error`, which hands the `Interrupted` back.
#![deny(warnings)]

use std::io;

use nursery::{Interrupted, Nursery};

#[nursery::nursery(timeout = "0s")]
async fn times_out(n: Nursery<io::Error>) -> io::Result<u32> {
    n.spawn(std::future::pending::<io::Result<()>>());
    Ok(1)
}

#[nursery::nursery]
async fn reads(n: Nursery<io::Error>, bytes: Vec<u8>) -> io::Result<usize> {
    n.spawn(async move { Ok(bytes.len()) }).await.map_err(io::Error::other)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let error = times_out().await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(error.to_string(), Interrupted::TimedOut.to_string());
        let inner = error.get_ref().and_then(|e| e.downcast_ref::<Interrupted>());
        assert_eq!(inner, Some(&Interrupted::TimedOut));
        assert_eq!(reads(vec![1, 2, 3]).await.unwrap(), 3);
    });
}

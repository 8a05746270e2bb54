//! `start`: run a server as a child of the scope and go on only once it is
//! ready to take connections (Trio's `nursery.start`).
//!
//! ```text
//! cargo run -p nursery --example start_server
//! ```
//!
//! The server binds an ephemeral port on 127.0.0.1 and sends its address
//! through `Ready`; `start` returns that address while the server keeps
//! running in the scope, so the clients never race the bind. Each
//! connection is a child of the server's own scope. When the clients are
//! done, `n.cancel()` stops the server and its connections, and the scope
//! returns the body's result: cancelling on purpose is not an error.

use std::net::SocketAddr;

use nursery::Nursery;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> Result<(), nursery::Error<std::io::Error>> {
    let replies = nursery::scope(|n| async move {
        let addr = n
            .start(|ready| async move {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                ready.send(listener.local_addr()?);
                serve(listener).await
            })
            .await
            .map_err(std::io::Error::other)?;
        println!("server ready on {addr}");

        let mut replies = Vec::new();
        for word in ["hello", "structured", "concurrency"] {
            replies.push(shout(addr, word).await?);
        }
        n.cancel(); // stops the server; the scope still returns `replies`
        Ok(replies)
    })
    .await?;
    println!("replies: {replies:?}; the server has stopped");
    Ok(())
}

/// Accepts connections until cancelled, each one a child of this scope.
async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let served = nursery::scope(|connections: Nursery<std::io::Error>| async move {
        loop {
            let (mut stream, peer) = listener.accept().await?;
            connections.spawn(async move {
                let mut request = String::new();
                stream.read_to_string(&mut request).await?;
                println!("  server: {peer} sent {request:?}");
                stream.write_all(request.to_uppercase().as_bytes()).await
            });
        }
    })
    .await;
    served.map_err(std::io::Error::other)
}

/// Sends `word` to the server and reads its answer.
async fn shout(addr: SocketAddr, word: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(word.as_bytes()).await?;
    stream.shutdown().await?; // end of the request
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    Ok(reply)
}

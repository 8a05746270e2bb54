//! An admin endpoint that answers "what is this program doing?": `GET
//! /dump` serves `nursery::dump_traced()` as text, `GET /dump.json` as JSON
//! (with the `serde` feature).
//!
//! ```text
//! cargo run -p nursery --features serde --example admin
//! ```
//!
//! Built with tokio's task dumps, each task's line is followed by where it
//! waits; without them, the dump ends with a line saying how to build so:
//!
//! ```text
//! RUSTFLAGS="--cfg tokio_unstable" cargo run -p nursery --features serde,taskdump --example admin
//! ```
//!
//! A small service runs in a scope: two workers, one of them stuck in a
//! call that never returns, and the admin server, a child like the others.
//! The example then asks the admin server both routes, as `curl` would,
//! prints the answers, and shuts the service down, so that it ends by
//! itself. The HTTP is the least that serves a `GET` over
//! `tokio::net::TcpListener`: a real program would use its web framework's
//! router and hand it the same two bodies.

use std::time::Duration;

use nursery::Nursery;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// A current-thread runtime: on a multi-thread one, tokio's task dump can
// leave a worker waiting forever for the others (see `nursery::dump_traced`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let answers = Nursery::builder()
        .name("service")
        .scope(|n: Nursery<std::io::Error>| async move {
            n.spawn_named("admin", serve(listener));
            n.spawn_named("worker-1", async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            });
            n.spawn_named(
                "stuck-worker",
                std::future::pending::<std::io::Result<()>>(),
            );
            let text = get(address, "/dump").await?;
            let json = get(address, "/dump.json").await?;
            n.cancel(); // the shutdown
            Ok((text, json))
        })
        .await
        .map_err(nursery::Error::into_error)?;
    println!("GET /dump\n{}\n", answers.0);
    println!("GET /dump.json\n{}", answers.1);
    Ok(())
}

/// The admin server: one connection at a time, each answered and closed.
async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..read]);
        }
        let request = String::from_utf8_lossy(&request);
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let (status, kind, body) = match path {
            "/dump" => (
                "200 OK",
                "text/plain",
                nursery::dump_traced().await.to_string(),
            ),
            "/dump.json" => json_dump().await,
            _ => (
                "404 Not Found",
                "text/plain",
                "try /dump or /dump.json\n".to_owned(),
            ),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
    }
}

#[cfg(feature = "serde")]
async fn json_dump() -> (&'static str, &'static str, String) {
    match serde_json::to_string_pretty(&nursery::dump_traced().await) {
        Ok(json) => ("200 OK", "application/json", json),
        Err(error) => ("500 Internal Server Error", "text/plain", error.to_string()),
    }
}

#[cfg(not(feature = "serde"))]
async fn json_dump() -> (&'static str, &'static str, String) {
    let body = "build with `--features serde` for the JSON form\n".to_owned();
    ("501 Not Implemented", "text/plain", body)
}

/// What `curl http://{address}{path}` prints: the response's body.
async fn get(address: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split_once("\r\n\r\n")
        .map_or(response.clone(), |(_, body)| body.to_owned()))
}
